//! Reading token endpoint responses (RFC 6749 §5.1, §5.2) into a token or a typed error.

use serde_json::{Map, Value};

use crate::error::{Error, ProviderError, ResponseProblem};
use crate::hints;
use crate::http::{HttpResponse, header};
use crate::token::Token;

/// Reads a token endpoint response received at `now` (Unix seconds). Any input gives a value:
/// bodies that are not UTF-8, not JSON, nested too deep or missing fields become
/// [`Error::MalformedResponse`]; an OAuth `error`, under any status, becomes [`Error::Provider`].
pub fn parse(response: &HttpResponse, now: u64) -> Result<Token, Error> {
    let content_type = header(&response.headers, "content-type").map(str::to_owned);
    let fields = match read_fields(&response.body, content_type.as_deref()) {
        Some(fields) => fields,
        None => {
            return Err(unreadable(
                response,
                content_type,
                "the body is not a JSON object",
            ));
        }
    };

    // Some providers (GitHub, Slack) report errors with HTTP 200: `error` decides, not the status.
    if let Some(code) = string(&fields, "error") {
        return Err(Error::Provider(ProviderError {
            status: response.status,
            hint: hints::for_code(&code).to_owned(),
            code,
            description: string(&fields, "error_description"),
            uri: string(&fields, "error_uri"),
        }));
    }
    if !(200..300).contains(&response.status) {
        return Err(unreadable(
            response,
            content_type,
            "an error status without an OAuth error code",
        ));
    }
    let Some(access_token) = string(&fields, "access_token").filter(|t| !t.is_empty()) else {
        return Err(unreadable(
            response,
            content_type,
            "the response has no access_token",
        ));
    };
    let expires_at = match fields.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(value) => match seconds(value) {
            Some(secs) => Some(now.saturating_add(secs)),
            None => {
                return Err(unreadable(
                    response,
                    content_type,
                    "expires_in is not a number of seconds",
                ));
            }
        },
    };
    Ok(Token {
        access_token,
        // RFC 6749 makes token_type required, yet several providers omit it; the header prefix
        // comes from the configuration anyway, so its absence costs nothing.
        token_type: string(&fields, "token_type").unwrap_or_else(|| "Bearer".to_owned()),
        issued_at: now,
        expires_at,
        refresh_token: string(&fields, "refresh_token").filter(|t| !t.is_empty()),
        scope: string(&fields, "scope"),
        id_token: string(&fields, "id_token"),
    })
}

/// The body's top-level fields: a JSON object, or a form-encoded body (which older providers
/// send, GitHub among them, when the client does not get JSON).
fn read_fields(body: &[u8], content_type: Option<&str>) -> Option<Map<String, Value>> {
    let media_type = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|mt| mt.trim().to_ascii_lowercase());
    if media_type.as_deref() == Some("application/x-www-form-urlencoded") {
        return Some(form_fields(body));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(fields)) => Some(fields),
        _ => None,
    }
}

fn form_fields(body: &[u8]) -> Map<String, Value> {
    let mut fields = Map::new();
    for (name, value) in form_urlencoded::parse(body) {
        // The first occurrence wins, as for a JSON object read by the spec's parser.
        fields
            .entry(name.into_owned())
            .or_insert_with(|| Value::String(value.into_owned()));
    }
    fields
}

/// A string field; other JSON types count as absent rather than failing the whole response.
fn string(fields: &Map<String, Value>, name: &str) -> Option<String> {
    match fields.get(name) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// `expires_in` as whole seconds: a non-negative number, or a string holding one (Microsoft and
/// PayPal send `"3599"`). A negative lifetime means already expired.
fn seconds(value: &Value) -> Option<u64> {
    let number = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    number.is_finite().then(|| number.max(0.0) as u64)
}

fn unreadable(response: &HttpResponse, content_type: Option<String>, message: &str) -> Error {
    let html = content_type
        .as_deref()
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("html"))
        || response.body.trim_ascii_start().starts_with(b"<");
    Error::MalformedResponse(ResponseProblem {
        status: response.status,
        hint: hints::for_unreadable_response(response.status, html).to_owned(),
        content_type,
        message: if html {
            "the body is an HTML page".to_owned()
        } else {
            message.to_owned()
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn response(status: u16, content_type: &str, body: &[u8]) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.to_vec(),
        }
    }

    fn json(status: u16, body: &str) -> HttpResponse {
        response(status, "application/json;charset=UTF-8", body.as_bytes())
    }

    #[test]
    fn rfc6749_section_5_1_example() {
        let token = parse(
            &json(
                200,
                r#"{"access_token":"2YotnFZFEjr1zCsicMWpAA","token_type":"example","expires_in":3600,
                    "refresh_token":"tGzv3JOkF0XG5Qx2TlKWIA","example_parameter":"example_value"}"#,
            ),
            NOW,
        )
        .unwrap();
        assert_eq!(token.access_token, "2YotnFZFEjr1zCsicMWpAA");
        assert_eq!(token.token_type, "example");
        assert_eq!(token.issued_at, NOW);
        assert_eq!(token.expires_at, Some(NOW + 3600));
        assert_eq!(
            token.refresh_token.as_deref(),
            Some("tGzv3JOkF0XG5Qx2TlKWIA")
        );
        assert_eq!(token.scope, None);
        assert_eq!(token.id_token, None);
    }

    #[test]
    fn optional_fields_and_lenient_forms() {
        let token = parse(
            &json(
                200,
                r#"{"access_token":"a","expires_in":"3599","scope":"read write","id_token":"h.p.s","refresh_token":""}"#,
            ),
            NOW,
        )
        .unwrap();
        assert_eq!(token.token_type, "Bearer");
        assert_eq!(token.expires_at, Some(NOW + 3599));
        assert_eq!(token.scope.as_deref(), Some("read write"));
        assert_eq!(token.id_token.as_deref(), Some("h.p.s"));
        assert_eq!(token.refresh_token, None, "an empty refresh token is none");

        let token = parse(
            &json(
                200,
                r#"{"access_token":"a","expires_in":null,"scope":null}"#,
            ),
            NOW,
        )
        .unwrap();
        assert_eq!((token.expires_at, token.scope), (None, None));

        let form = response(
            200,
            "application/x-www-form-urlencoded; charset=utf-8",
            b"access_token=gho_x&scope=repo%2Cgist&token_type=bearer",
        );
        let token = parse(&form, NOW).unwrap();
        assert_eq!(
            (token.access_token.as_str(), token.token_type.as_str()),
            ("gho_x", "bearer")
        );
        assert_eq!(token.scope.as_deref(), Some("repo,gist"));
    }

    #[test]
    fn rfc6749_section_5_2_errors_are_typed_with_hints() {
        for (status, code) in [
            (400, "invalid_request"),
            (401, "invalid_client"),
            (400, "invalid_grant"),
            (400, "unauthorized_client"),
            (400, "unsupported_grant_type"),
            (400, "invalid_scope"),
        ] {
            let body = format!(
                r#"{{"error":"{code}","error_description":"why","error_uri":"https://idp/doc"}}"#
            );
            match parse(&json(status, &body), NOW) {
                Err(Error::Provider(e)) => {
                    assert_eq!((e.status, e.code.as_str()), (status, code));
                    assert_eq!(e.description.as_deref(), Some("why"));
                    assert_eq!(e.uri.as_deref(), Some("https://idp/doc"));
                    assert_eq!(e.hint, hints::for_code(code));
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        let Err(Error::Provider(e)) = parse(&json(401, r#"{"error":"invalid_client"}"#), NOW)
        else {
            panic!()
        };
        assert!(e.hint.contains("client ID and client secret"), "{}", e.hint);
    }

    #[test]
    fn error_in_a_200_body_is_an_error() {
        let Err(Error::Provider(e)) = parse(
            &json(200, r#"{"error":"incorrect_client_credentials"}"#),
            NOW,
        ) else {
            panic!()
        };
        assert_eq!(
            (e.status, e.code.as_str()),
            (200, "incorrect_client_credentials")
        );
    }

    #[test]
    fn html_404_says_the_url_is_not_a_token_endpoint() {
        let page = response(
            404,
            "text/html",
            b"<!DOCTYPE html><html><body>Not Found</body></html>",
        );
        let Err(Error::MalformedResponse(p)) = parse(&page, NOW) else {
            panic!()
        };
        assert_eq!(p.status, 404);
        assert_eq!(p.content_type.as_deref(), Some("text/html"));
        assert!(p.message.contains("HTML"), "{}", p.message);
        assert!(p.hint.contains("token_url"), "{}", p.hint);
    }

    #[test]
    fn hostile_bodies_give_typed_errors() {
        let deep = "[".repeat(100_000);
        let huge = format!(r#"{{"access_token":"{}"#, "a".repeat(5_000_000));
        let cases: Vec<HttpResponse> = vec![
            response(200, "application/json", &[0xff, 0xfe, 0x00, 0x80]),
            json(200, ""),
            json(200, "null"),
            json(200, "[]"),
            json(200, "\"access_token\""),
            json(200, &deep),
            json(200, &huge),
            json(200, r#"{"access_token":42}"#),
            json(200, r#"{"access_token":""}"#),
            json(200, r#"{"token_type":"Bearer"}"#),
            json(200, r#"{"access_token":"a","expires_in":"soon"}"#),
            json(200, r#"{"access_token":"a","expires_in":[1]}"#),
            json(500, r#"{"message":"boom"}"#),
            response(
                200,
                "application/x-www-form-urlencoded",
                &[0xff, b'=', 0x00],
            ),
        ];
        for r in &cases {
            assert!(
                matches!(parse(r, NOW), Err(Error::MalformedResponse(_))),
                "{r:?}"
            );
        }
    }

    #[test]
    fn extreme_lifetimes_do_not_overflow() {
        let t = parse(
            &json(200, r#"{"access_token":"a","expires_in":1e300}"#),
            NOW,
        )
        .unwrap();
        assert_eq!(t.expires_at, Some(u64::MAX));
        let t = parse(&json(200, r#"{"access_token":"a","expires_in":-5}"#), NOW).unwrap();
        assert_eq!(t.expires_at, Some(NOW));
    }
}
