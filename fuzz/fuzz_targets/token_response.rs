//! `token_response::parse` on arbitrary token endpoint responses: any status, headers (a
//! Content-Type among them, or not), body bytes, and response format. It must never panic, and
//! what it returns must keep the invariants below.
//!
//! Half of the bodies are raw bytes; the other half are JSON objects or forms built from the
//! field names the reader looks for, so the fuzzer reaches past "not JSON" quickly. Their
//! strings include a secret the request carried, as it is and encoded: no error may show it,
//! nor any control character.

#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use oauth2_plugin::config::{ResponseFormat, ScopeSeparator, TimeUnit};
use oauth2_plugin::error::Error;
use oauth2_plugin::http::HttpResponse;
use oauth2_plugin::provider_text::{Redactor, is_unsafe_char};
use oauth2_plugin::token_response::parse;
use serde_json::{Map, Number, Value};

/// Segments of `token_path`, and object keys the generated bodies use.
const SEGMENTS: &[&str] = &[
    "authed_user",
    "data",
    "token",
    "a",
    "access_token",
    "error",
    "",
];

const KEYS: &[&str] = &[
    "access_token",
    "token_type",
    "expires_in",
    "expires",
    "expires_at",
    "refresh_token",
    "scope",
    "id_token",
    "error",
    "error_description",
    "error_uri",
    "error_code",
    "message",
    "reason",
    "type",
    "code",
    "authed_user",
    "data",
    "token",
    "a",
    "",
];

/// A secret the request carried, which a provider may echo.
const SECRET: &str = "s3cr:t/+&%= ~fz";

/// [`SECRET`] the ways a provider would echo it: form- and percent-encoded (upper and lower
/// case), and in base64.
const ECHOES: &[&str] = &[
    SECRET,
    "s3cr%3At%2F%2B%26%25%3D+~fz",
    "s3cr%3At%2F%2B%26%25%3D%20~fz",
    "s3cr%3at%2f%2b%26%25%3d%20~fz",
    "czNjcjp0LysmJT0gfmZ6",
];

const STRINGS: &[&str] = &[
    SECRET,
    "s3cr%3At%2F%2B%26%25%3D+~fz",
    "s3cr%3at%2f%2b%26%25%3d%20~fz",
    "czNjcjp0LysmJT0gfmZ6",
    "echo: s3cr:t/+&%= ~fz\u{1b}[2J\r\nauthorized: forged",
    "3600",
    " 3599 ",
    "-5",
    "0",
    "0.0",
    "-0",
    "1e300",
    "1e400",
    "NaN",
    "inf",
    "-inf",
    "",
    "  ",
    "soon",
    "18446744073709551615",
    "18446744073709551616",
    "9007199254740993",
    "1.5",
    "read write",
    " read  write ",
    "repo,gist",
    "Bearer",
    "invalid_client",
    "<html>",
];

const FLOATS: &[f64] = &[1e300, -1e300, 0.5, -0.0, 5e-324, 1.8e19, 3599.999, -1.0];

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json;charset=UTF-8",
    "application/x-www-form-urlencoded",
    "APPLICATION/X-WWW-FORM-URLENCODED ; charset=utf-8",
    " application/x-www-form-urlencoded",
    "text/plain",
    "text/html; charset=utf-8",
    "text/javascript",
    "",
];

const STATUSES: &[u16] = &[
    200, 201, 204, 299, 300, 302, 400, 401, 403, 404, 429, 500, 503,
];

const NOWS: &[u64] = &[0, 1, 1_700_000_000, u64::MAX - 1, u64::MAX];

#[derive(Debug)]
enum Shape {
    Raw,
    /// A JSON object serialized by serde_json: the top level is this object.
    Json(Map<String, Value>),
    Form,
}

#[derive(Debug)]
struct Input {
    response: HttpResponse,
    format: ResponseFormat,
    now: u64,
    shape: Shape,
}

fn pick<'a, T>(u: &mut Unstructured<'_>, pool: &'a [T]) -> Result<&'a T> {
    u.choose(pool)
}

fn text(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1, 2)? {
        Ok((*pick(u, STRINGS)?).to_owned())
    } else {
        String::arbitrary(u)
    }
}

fn key(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(4, 5)? {
        Ok((*pick(u, KEYS)?).to_owned())
    } else {
        String::arbitrary(u)
    }
}

fn value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let last = if depth == 0 { 5 } else { 7 };
    Ok(match u.int_in_range(0..=last)? {
        0 => Value::Null,
        1 => Value::Bool(bool::arbitrary(u)?),
        2 => Value::Number(match u.int_in_range(0..=2)? {
            0 => Number::from(i64::arbitrary(u)?),
            1 => Number::from(u64::arbitrary(u)?),
            _ => Number::from_f64(*pick(u, FLOATS)?).unwrap_or_else(|| Number::from(0)),
        }),
        3 => Value::Number(Number::from_f64(f64::arbitrary(u)?).unwrap_or_else(|| Number::from(7))),
        4 | 5 => Value::String(text(u)?),
        6 => {
            let n = u.int_in_range(0..=3)?;
            Value::Array((0..n).map(|_| value(u, depth - 1)).collect::<Result<_>>()?)
        }
        _ => Value::Object(object(u, depth - 1)?),
    })
}

fn object(u: &mut Unstructured<'_>, depth: u32) -> Result<Map<String, Value>> {
    let n = u.int_in_range(0..=6)?;
    let mut map = Map::new();
    for _ in 0..n {
        map.insert(key(u)?, value(u, depth)?);
    }
    Ok(map)
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let status = if u.ratio(3, 4)? {
            *pick(u, STATUSES)?
        } else {
            u16::arbitrary(u)?
        };
        let mut headers = Vec::new();
        for _ in 0..u.int_in_range(0..=3)? {
            let name = match u.int_in_range(0..=4)? {
                0 => "Content-Type".to_owned(),
                1 => "content-type".to_owned(),
                2 => "Retry-After".to_owned(),
                3 => "X-Other".to_owned(),
                _ => String::arbitrary(u)?,
            };
            let value = if u.ratio(2, 3)? {
                (*pick(u, CONTENT_TYPES)?).to_owned()
            } else {
                String::arbitrary(u)?
            };
            headers.push((name, value));
        }
        let segments = u.int_in_range(0..=3)?;
        let token_path = if u.ratio(1, 10)? {
            String::arbitrary(u)?
        } else {
            (0..segments)
                .map(|_| pick(u, SEGMENTS).copied())
                .collect::<Result<Vec<_>>>()?
                .join(".")
        };
        let format = ResponseFormat {
            token_path,
            expires_in_unit: if bool::arbitrary(u)? {
                TimeUnit::Milliseconds
            } else {
                TimeUnit::Seconds
            },
            scope_separator: if bool::arbitrary(u)? {
                ScopeSeparator::Comma
            } else {
                ScopeSeparator::Space
            },
        };
        let now = if u.ratio(1, 2)? {
            *pick(u, NOWS)?
        } else {
            u64::arbitrary(u)?
        };
        let (shape, body) = match u.int_in_range(0..=3)? {
            0 | 1 => {
                let top = object(u, 3)?;
                let body = serde_json::to_vec(&top).expect("a Value serializes");
                (Shape::Json(top), body)
            }
            2 => {
                let mut form = form_urlencoded::Serializer::new(String::new());
                for _ in 0..u.int_in_range(0..=6)? {
                    form.append_pair(&key(u)?, &text(u)?);
                }
                (Shape::Form, form.finish().into_bytes())
            }
            _ => (Shape::Raw, u.bytes(u.len())?.to_vec()),
        };
        Ok(Input {
            response: HttpResponse {
                status,
                headers,
                body,
            },
            format,
            now,
            shape,
        })
    }
}

/// Whether any object in the body (JSON, or the form's names) has a field `name`.
fn has_field_anywhere(body: &[u8], name: &str) -> bool {
    fn walk(value: &Value, name: &str) -> bool {
        match value {
            Value::Object(map) => map.iter().any(|(k, v)| k == name || walk(v, name)),
            Value::Array(items) => items.iter().any(|v| walk(v, name)),
            _ => false,
        }
    }
    serde_json::from_slice::<Value>(body).is_ok_and(|v| walk(&v, name))
        || form_urlencoded::parse(body).any(|(k, _)| k == name)
}

/// The media type the reader keys on: the first Content-Type, before any parameter.
fn is_form(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .and_then(|(_, v)| v.split(';').next())
        .is_some_and(|mt| {
            mt.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fuzz_target!(|input: Input| {
    let Input {
        response,
        format,
        now,
        shape,
    } = input;
    let secrets = || {
        let mut redactor = Redactor::none();
        redactor.add_secret(SECRET);
        redactor
    };
    let result = parse(&response, now, &format, secrets);
    // Pure: the same input reads the same.
    assert_eq!(result, parse(&response, now, &format, secrets));
    if let Err(e) = &result {
        let shown = format!("{e} {e:?}");
        assert!(!shown.chars().any(is_unsafe_char), "{shown:?}");
        for echo in ECHOES {
            assert!(!shown.contains(echo), "{echo} in {shown}");
        }
    }

    match &result {
        Ok(token) => {
            assert!(
                (200..300).contains(&response.status),
                "a token from an error status"
            );
            assert!(
                !token.access_token.secret().trim().is_empty(),
                "a blank access token"
            );
            assert!(
                token
                    .access_token
                    .secret()
                    .bytes()
                    .all(|b| (0x20..0x7f).contains(&b)),
                "an access token a header cannot carry"
            );
            assert_eq!(token.issued_at, now);
            assert!(
                token
                    .refresh_token
                    .as_ref()
                    .is_none_or(|t| !t.secret().is_empty())
            );
            // A lifetime (expires_in, expires) never ends before now; only an absolute
            // expires_at can lie in the past.
            if let Some(expires_at) = token.expires_at {
                assert!(
                    expires_at >= now || has_field_anywhere(&response.body, "expires_at"),
                    "expires_at {expires_at} < now {now}"
                );
            }
            // Extra fields are sorted by name, each once.
            assert!(
                token.extra.windows(2).all(|w| w[0].0 < w[1].0),
                "{:?}",
                token.extra
            );
            if format.token_path.is_empty() {
                for (name, _) in &token.extra {
                    assert!(
                        ![
                            "access_token",
                            "token_type",
                            "refresh_token",
                            "scope",
                            "id_token"
                        ]
                        .contains(&name.as_str()),
                        "a token field {name} among the extra fields"
                    );
                }
            }
        }
        Err(Error::Provider(e)) => assert_eq!(e.status, response.status),
        Err(Error::MalformedResponse(p)) => {
            assert_eq!(p.status, response.status);
            assert!(!p.message.is_empty() && !p.hint.is_empty());
        }
        Err(other) => panic!("parse gave a non-response error: {other:?}"),
    }

    // A JSON object whose `error` is a string is the provider's error, whatever the status.
    if let Shape::Json(top) = &shape
        && !is_form(&response.headers)
        && let Some(Value::String(code)) = top.get("error")
    {
        match &result {
            Err(Error::Provider(e)) => assert_eq!(e.code, secrets().clean_code(code)),
            other => panic!("error {code:?} not reported as the provider's: {other:?}"),
        }
    }
});
