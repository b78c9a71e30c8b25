//! Reading token endpoint responses (RFC 6749 §5.1, §5.2) into a token or a typed error.

use crate::prelude::*;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::config::{ResponseFormat, ScopeSeparator, TimeUnit};
use crate::error::{Error, ProviderError, ResponseProblem};
use crate::extra_fields::ExtraFields;
use crate::hints::{self, Situation};
use crate::http::{HttpResponse, header};
use crate::provider_text::Redactor;
use crate::secret::{AccessToken, IdToken, RefreshToken};
use crate::token::Token;

/// The fields RFC 6749 §5.1 defines, plus the `expires`/`expires_at` variants this reader
/// understands; everything else in a response is kept as an extra field.
#[derive(Clone, Copy)]
enum Known {
    AccessToken,
    TokenType,
    ExpiresIn,
    Expires,
    ExpiresAt,
    RefreshToken,
    Scope,
    IdToken,
}

impl Known {
    const ALL: [Known; 8] = [
        Known::AccessToken,
        Known::TokenType,
        Known::ExpiresIn,
        Known::Expires,
        Known::ExpiresAt,
        Known::RefreshToken,
        Known::Scope,
        Known::IdToken,
    ];

    fn name(self) -> &'static str {
        match self {
            Known::AccessToken => "access_token",
            Known::TokenType => "token_type",
            Known::ExpiresIn => "expires_in",
            Known::Expires => "expires",
            Known::ExpiresAt => "expires_at",
            Known::RefreshToken => "refresh_token",
            Known::Scope => "scope",
            Known::IdToken => "id_token",
        }
    }

    fn named(name: &str) -> Option<Known> {
        Known::ALL.into_iter().find(|known| known.name() == name)
    }
}

/// Reads a token endpoint response received at `now` (Unix seconds) the way `format` says.
/// Any input gives a value: bodies that are not UTF-8, not JSON, nested too deep or missing
/// fields become [`Error::MalformedResponse`]; an OAuth `error`, under any status, becomes
/// [`Error::Provider`]. The provider's text in an error is cleaned by the redactor `secrets`
/// gives (built only when there is an error): the secrets the request carried removed,
/// control characters escaped, length bounded.
pub fn parse(
    response: &HttpResponse,
    now: u64,
    format: &ResponseFormat,
    secrets: impl FnOnce() -> Redactor,
) -> Result<Token, Error> {
    read(response, now, format).map_err(|e| e.cleaned(&secrets()))
}

/// Reads the answer of another of the provider's endpoints (device authorization, revocation)
/// into its fields, or the OAuth error or unreadable answer it is, judged as [`parse`] judges a
/// token response. The provider's text in an error is as it came: the caller cleans it.
pub fn read_object(response: &HttpResponse) -> Result<Map<String, Value>, Error> {
    let content_type = header(&response.headers, "content-type");
    let fields = read_fields(&response.body, content_type)
        .map_err(|why| unreadable(response, content_type, &why))?
        .into_map();
    if let Some((code, description)) = oauth_error(&fields, response.status) {
        return Err(Error::Provider(ProviderError {
            status: response.status,
            hint: hints::for_code(&code, Situation::Any).to_owned(),
            uri: string(&fields, "error_uri"),
            code,
            description,
        }));
    }
    if !(200..300).contains(&response.status) {
        return Err(unreadable(
            response,
            content_type,
            "an error status without an OAuth error code",
        ));
    }
    Ok(fields)
}

/// A string field of an answer read by [`read_object`].
pub fn string_field(fields: &Map<String, Value>, name: &str) -> Option<String> {
    string(fields, name)
}

/// A numeric field (a JSON number or a numeric string) of an answer read by [`read_object`],
/// as whole seconds.
pub fn seconds_field(fields: &Map<String, Value>, name: &str) -> Option<u64> {
    fields
        .get(name)
        .and_then(number)
        .map(|n| seconds(n, TimeUnit::Seconds))
}

/// [`parse`], with the provider's text in errors as it came.
fn read(response: &HttpResponse, now: u64, format: &ResponseFormat) -> Result<Token, Error> {
    let content_type = header(&response.headers, "content-type");
    let not_a_token = |message: &str| unreadable(response, content_type, message);
    let mut fields = match read_fields(&response.body, content_type) {
        Ok(fields) => fields,
        Err(why) => return Err(not_a_token(&why)),
    };

    // Some providers (GitHub, Slack) report errors with HTTP 200: `error` decides, not the status.
    // None of the fields an error is read from is a token field, so all are among `others`.
    if let Some((code, description)) = oauth_error(&fields.others, response.status) {
        return Err(Error::Provider(ProviderError {
            status: response.status,
            hint: hints::for_code(&code, Situation::Any).to_owned(),
            code,
            description,
            uri: string(&fields.others, "error_uri"),
        }));
    }
    if !(200..300).contains(&response.status) {
        let mut message = "an error status without an OAuth error code".to_owned();
        if let Some(said) = free_text(&fields.others) {
            message.push_str("; it says \"");
            message.push_str(&said);
            message.push('"');
        }
        return Err(not_a_token(&message));
    }
    // The token's fields are moved out of the parsed body, not copied: the access and ID
    // tokens are most of a response's bytes.
    let path = format.token_path.as_str();
    let nested = if path.is_empty() {
        None
    } else {
        take_at_path(&mut fields, path)
    };
    let (mut object, others) = match nested {
        Some(object) => (TokenObject::from_map(object), fields.into_map()),
        // A refresh of a nested token answers at the top level (Slack's rotating user tokens).
        None if path.is_empty() || fields.known(Known::AccessToken).is_some() => {
            (fields, Map::new())
        }
        None => {
            return Err(not_a_token(&format!(
                "the response has no object at token_path {path:?}"
            )));
        }
    };
    let Some(access_token) =
        take_string(&mut object, Known::AccessToken).filter(|t| !t.trim().is_empty())
    else {
        return Err(not_a_token("the response has no access_token"));
    };
    // The token goes into a header: a control or non-ASCII character could split it or smuggle
    // another header in. RFC 6749 Appendix A.12 allows only visible ASCII and the space.
    if !access_token.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(not_a_token(
            "the access_token has characters an HTTP header cannot carry",
        ));
    }
    let Ok(expires_at) = expires_at(&object, now, format.expires_in_unit) else {
        return Err(not_a_token("expires_in is not a number"));
    };
    Ok(Token {
        access_token: AccessToken::new(access_token),
        // RFC 6749 makes token_type required, yet several providers omit it; the header prefix
        // comes from the configuration anyway, so its absence costs nothing.
        token_type: take_string(&mut object, Known::TokenType)
            .unwrap_or_else(|| "Bearer".to_owned()),
        issued_at: now,
        expires_at,
        refresh_token: take_string(&mut object, Known::RefreshToken)
            .filter(|t| !t.is_empty())
            .map(RefreshToken::new),
        scope: scope(object.take(Known::Scope), format.scope_separator),
        id_token: take_string(&mut object, Known::IdToken).map(IdToken::new),
        extra: extra_fields(others, object.others),
    })
}

/// A JSON object or form read as a token object: the [`Known`] fields each in their own place,
/// the others by name. A JSON body is read straight into one, so that a known field costs no
/// key copy and no map entry, and is found by its place; a duplicate name keeps its last value,
/// as a map would.
#[derive(Default)]
struct TokenObject {
    known: [Option<Value>; Known::ALL.len()],
    others: Map<String, Value>,
}

impl TokenObject {
    fn from_map(map: Map<String, Value>) -> Self {
        let mut fields = TokenObject::default();
        for (name, value) in map {
            fields.insert(FieldName::from(name), value);
        }
        fields
    }

    fn insert(&mut self, name: FieldName, value: Value) {
        match name {
            FieldName::Known(known) => self.known[known as usize] = Some(value),
            FieldName::Other(name) => {
                self.others.insert(name, value);
            }
        }
    }

    fn known(&self, field: Known) -> Option<&Value> {
        self.known[field as usize].as_ref()
    }

    fn take(&mut self, field: Known) -> Option<Value> {
        self.known[field as usize].take()
    }

    fn get(&self, name: &str) -> Option<&Value> {
        match Known::named(name) {
            Some(known) => self.known(known),
            None => self.others.get(name),
        }
    }

    fn take_named(&mut self, name: &str) -> Option<Value> {
        match Known::named(name) {
            Some(known) => self.take(known),
            None => self.others.remove(name),
        }
    }

    /// All fields by name, as a map would have held them.
    fn into_map(self) -> Map<String, Value> {
        let mut map = self.others;
        for (known, value) in Known::ALL.into_iter().zip(self.known) {
            if let Some(value) = value {
                map.insert(known.name().to_owned(), value);
            }
        }
        map
    }
}

/// A JSON object straight into [`TokenObject`]: a known name is matched without being copied.
impl<'de> Deserialize<'de> for TokenObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `deserialize_any` with every other kind of value refused by hand: `deserialize_map`
        // reports one through serde's `Unexpected`, whose `Display` formats floating-point
        // numbers, which costs the component 22 KB of `core::fmt` float printing. The message
        // of a data error is never shown (`read_fields`).
        deserializer.deserialize_any(TokenObjectVisitor)
    }
}

struct TokenObjectVisitor;

impl<'de> Visitor<'de> for TokenObjectVisitor {
    type Value = TokenObject;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TokenObject, A::Error> {
        let mut fields = TokenObject::default();
        while let Some(name) = map.next_key::<FieldName>()? {
            fields.insert(name, map.next_value()?);
        }
        Ok(fields)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<TokenObject, E> {
        Err(E::custom("not a JSON object"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<TokenObject, E> {
        Err(E::custom("not a JSON object"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<TokenObject, E> {
        Err(E::custom("not a JSON object"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<TokenObject, E> {
        Err(E::custom("not a JSON object"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<TokenObject, E> {
        Err(E::custom("not a JSON object"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<TokenObject, E> {
        Err(E::custom("not a JSON object"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<TokenObject, A::Error> {
        Err(de::Error::custom("not a JSON object"))
    }
}

/// A field name, owned only when it is not a [`Known`] one.
enum FieldName {
    Known(Known),
    Other(String),
}

impl From<String> for FieldName {
    fn from(name: String) -> Self {
        Known::named(&name).map_or(FieldName::Other(name), FieldName::Known)
    }
}

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(FieldNameVisitor)
    }
}

struct FieldNameVisitor;

impl Visitor<'_> for FieldNameVisitor {
    type Value = FieldName;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<FieldName, E> {
        Ok(Known::named(name).map_or_else(|| FieldName::Other(name.to_owned()), FieldName::Known))
    }
}

/// The body's top-level fields: a JSON object, or a form-encoded body. Older providers send
/// forms: GitHub when the client does not ask for JSON, Facebook as `text/plain`. `Err` says
/// why the body is neither.
fn read_fields(body: &[u8], content_type: Option<&str>) -> Result<TokenObject, String> {
    let media_type = content_type
        .and_then(|ct| ct.split(';').next())
        .map(str::trim);
    if media_type.is_some_and(|mt| mt.eq_ignore_ascii_case("application/x-www-form-urlencoded")) {
        return Ok(TokenObject::from_map(form_fields(body)));
    }
    let json_error = match serde_json::from_slice::<TokenObject>(body) {
        Ok(fields) => return Ok(fields),
        // Valid JSON other than an object.
        Err(e) if e.is_data() => None,
        Err(e) => Some(e),
    };
    let form = form_fields(body);
    if form.contains_key("access_token") || form.contains_key("error") {
        return Ok(TokenObject::from_map(form));
    }
    let looks_like_json = body.trim_ascii_start().starts_with(b"{")
        || media_type.is_some_and(|mt| mt.to_ascii_lowercase().ends_with("json"));
    Err(match json_error {
        Some(e) if looks_like_json && e.is_eof() => "the JSON body ends early".to_owned(),
        Some(e) if looks_like_json => format!("the JSON body is invalid ({e})"),
        _ if body.is_empty() => "the body is empty".to_owned(),
        _ => "the body is neither a JSON object nor a form".to_owned(),
    })
}

fn form_fields(body: &[u8]) -> Map<String, Value> {
    let mut fields = Map::new();
    for (name, value) in form_urlencoded::parse(body) {
        // The first occurrence wins: a later duplicate cannot override what came first.
        fields
            .entry(name.into_owned())
            .or_insert_with(|| Value::String(value.into_owned()));
    }
    fields
}

/// The error code and description of an error response. RFC 6749 §5.2's `error` string first;
/// then the shapes providers use instead: Facebook's `{"error":{"type","message"}}`, and, on an
/// error status, Databricks' upper-case `error_code`.
fn oauth_error(fields: &Map<String, Value>, status: u16) -> Option<(String, Option<String>)> {
    match fields.get("error") {
        Some(Value::String(code)) => {
            let description = string(fields, "error_description").or_else(|| free_text(fields));
            Some((code.clone(), description))
        }
        Some(Value::Object(error)) => {
            let code = string(error, "type").or_else(|| string(error, "code"))?;
            Some((code, string(error, "message")))
        }
        _ if !(200..300).contains(&status) => {
            let code = string(fields, "error_code")?.to_ascii_lowercase();
            Some((code, free_text(fields)))
        }
        _ => None,
    }
}

/// A provider's own words about a failure, from the fields some use instead of
/// `error_description`: Zoom's `reason`, Twitch's and HubSpot's `message`.
fn free_text(fields: &Map<String, Value>) -> Option<String> {
    ["error_description", "reason", "message"]
        .iter()
        .find_map(|name| string(fields, name))
}

/// The object at a dot-separated path; the top level for an empty path.
fn at_path<'a>(fields: &'a Map<String, Value>, path: &str) -> Option<&'a Map<String, Value>> {
    if path.is_empty() {
        return Some(fields);
    }
    path.split('.')
        .try_fold(fields, |object, name| match object.get(name) {
            Some(Value::Object(inner)) => Some(inner),
            _ => None,
        })
}

/// A string field; other JSON types count as absent rather than failing the whole response.
fn string(fields: &Map<String, Value>, name: &str) -> Option<String> {
    match fields.get(name) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// A string field, moved out of `fields`; other JSON types count as absent.
fn take_string(fields: &mut TokenObject, field: Known) -> Option<String> {
    match fields.take(field) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// The object at a dot-separated, non-empty `path`, moved out of `fields`; `fields` is left
/// whole when there is none.
fn take_at_path(fields: &mut TokenObject, path: &str) -> Option<Map<String, Value>> {
    let (root, below) = path.split_once('.').unwrap_or((path, ""));
    at_path(fields.get(root)?.as_object()?, below)?;
    let Some(Value::Object(mut object)) = fields.take_named(root) else {
        return None;
    };
    if !below.is_empty() {
        for name in below.split('.') {
            object = match object.remove(name) {
                Some(Value::Object(inner)) => inner,
                _ => return None,
            };
        }
    }
    Some(object)
}

/// The absolute expiry: from `expires_in`, or Facebook's `expires`, relative to `now`; else
/// from an absolute `expires_at`. `expires_in: 0` means no stated lifetime, as Go's x/oauth2
/// reads it (VK sends it for tokens that do not expire). `Err` for a lifetime that is not a
/// number.
fn expires_at(object: &TokenObject, now: u64, unit: TimeUnit) -> Result<Option<u64>, ()> {
    // An empty value says nothing (Facebook has sent `expires=`), as does null.
    let present = |field: Known| {
        object
            .known(field)
            .filter(|v| !v.is_null() && v.as_str().is_none_or(|s| !s.trim().is_empty()))
    };
    if let Some(value) = present(Known::ExpiresIn).or_else(|| present(Known::Expires)) {
        let amount = number(value).ok_or(())?;
        return Ok((amount != 0.0).then(|| now.saturating_add(seconds(amount, unit))));
    }
    match present(Known::ExpiresAt) {
        Some(value) => Ok(Some(seconds(number(value).ok_or(())?, unit))),
        None => Ok(None),
    }
}

/// A JSON number, or a string holding one (Microsoft and PayPal send `"3599"`).
fn number(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Number(n) => n.as_f64()?,
        // Whole seconds, or JSON's number syntax read by serde_json: Rust's `f64::from_str`
        // would add 16 KB of code and tables to the component for `.5` and `5.`.
        Value::String(s) => match s.trim().parse::<u64>() {
            Ok(whole) => whole as f64,
            Err(_) => serde_json::from_str::<Value>(s.trim()).ok()?.as_f64()?,
        },
        _ => return None,
    };
    number.is_finite().then_some(number)
}

/// Whole seconds, rounded down; a negative amount means already expired.
fn seconds(amount: f64, unit: TimeUnit) -> u64 {
    let secs = match unit {
        TimeUnit::Seconds => amount,
        TimeUnit::Milliseconds => amount / 1000.0,
    };
    secs.max(0.0) as u64
}

/// The granted scope, space-delimited (RFC 6749 §3.3) whatever form the provider used: a
/// string split on its separator, or an array of strings (Twitch).
fn scope(value: Option<Value>, separator: ScopeSeparator) -> Option<String> {
    let value = match value? {
        // Already in RFC 6749's form, as most providers send it: kept, not rebuilt.
        Value::String(s) if separator == ScopeSeparator::Space && is_space_delimited(&s) => {
            return Some(s);
        }
        other => other,
    };
    let scopes: Vec<&str> = match &value {
        Value::String(s) => match separator {
            ScopeSeparator::Space => s.split_whitespace().collect(),
            ScopeSeparator::Comma => s
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|t| !t.is_empty())
                .collect(),
        },
        Value::Array(items) => items
            .iter()
            .filter_map(Value::as_str)
            .flat_map(str::split_whitespace)
            .collect(),
        _ => return None,
    };
    (!scopes.is_empty()).then(|| scopes.join(" "))
}

/// Whether `scope` is visible ASCII words separated by single spaces, the form [`scope`] gives.
fn is_space_delimited(scope: &str) -> bool {
    let mut previous = b' ';
    scope.bytes().all(|byte| {
        let word_or_single_space = byte.is_ascii_graphic() || (byte == b' ' && previous != b' ');
        previous = byte;
        word_or_single_space
    }) && previous != b' '
}

/// The fields beyond RFC 6749's, sorted by name: what is left of the token object, and, for a
/// nested token, the top level's other fields too (Slack's `team`), the token object's taking
/// precedence. Non-string values are kept as compact JSON.
fn extra_fields(mut others: Map<String, Value>, mut object: Map<String, Value>) -> ExtraFields {
    others.append(&mut object);
    ExtraFields(crate::extra_fields::bounded(
        others
            .into_iter()
            .map(|(name, value)| match value {
                Value::String(s) => (name, s),
                other => (name, other.to_string()),
            })
            .collect(),
    ))
}

fn unreadable(response: &HttpResponse, content_type: Option<&str>, message: &str) -> Error {
    let html = content_type.is_some_and(|ct| ct.to_ascii_lowercase().contains("html"))
        || response.body.trim_ascii_start().starts_with(b"<");
    let mut message = if (300..400).contains(&response.status) {
        match header(&response.headers, "location") {
            Some(location) => format!("a redirect to {location}"),
            None => "a redirect".to_owned(),
        }
    } else if html {
        "the body is an HTML page".to_owned()
    } else {
        message.to_owned()
    };
    if let Some(after) = header(&response.headers, "retry-after") {
        message.push_str("; Retry-After: ");
        message.push_str(after.trim());
    }
    Error::MalformedResponse(ResponseProblem {
        status: response.status,
        hint: hints::for_unreadable_response(response.status, html).to_owned(),
        content_type: content_type.map(str::to_owned),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn parse_std(response: &HttpResponse, now: u64) -> Result<Token, Error> {
        parse(response, now, &ResponseFormat::default(), Redactor::none)
    }

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
        let token = parse_std(
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
            token.refresh_token.as_ref().map(|t| t.secret()),
            Some("tGzv3JOkF0XG5Qx2TlKWIA")
        );
        assert_eq!(token.scope, None);
        assert_eq!(token.id_token, None);
    }

    #[test]
    fn optional_fields_and_lenient_forms() {
        let token = parse_std(
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
        assert_eq!(token.id_token.as_ref().map(|t| t.secret()), Some("h.p.s"));
        assert_eq!(token.refresh_token, None, "an empty refresh token is none");

        let token = parse_std(
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
        let token = parse_std(&form, NOW).unwrap();
        assert_eq!(
            (token.access_token.secret(), token.token_type.as_str()),
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
            match parse_std(&json(status, &body), NOW) {
                Err(Error::Provider(e)) => {
                    assert_eq!((e.status, e.code.as_str()), (status, code));
                    assert_eq!(e.description.as_deref(), Some("why"));
                    assert_eq!(e.uri.as_deref(), Some("https://idp/doc"));
                    assert_eq!(e.hint, hints::for_code(code, Situation::Any));
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        let Err(Error::Provider(e)) = parse_std(&json(401, r#"{"error":"invalid_client"}"#), NOW)
        else {
            panic!()
        };
        assert!(e.hint.contains("client ID and client secret"), "{}", e.hint);
    }

    #[test]
    fn error_in_a_200_body_is_an_error() {
        let Err(Error::Provider(e)) = parse_std(
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
        let Err(Error::MalformedResponse(p)) = parse_std(&page, NOW) else {
            panic!()
        };
        assert_eq!(p.status, 404);
        assert_eq!(p.content_type.as_deref(), Some("text/html"));
        assert!(p.message.contains("HTML"), "{}", p.message);
        assert!(p.hint.contains("token_url"), "{}", p.hint);

        // A stock 5xx page (Django's, nginx's) is the provider's trouble, not a wrong URL.
        for (status, body) in [
            (500, &b"<h1>Server Error (500)</h1>"[..]),
            (
                502,
                b"<html><head><title>502 Bad Gateway</title></head></html>",
            ),
        ] {
            let Err(Error::MalformedResponse(p)) =
                parse_std(&response(status, "text/html", body), NOW)
            else {
                panic!()
            };
            assert!(p.hint.contains("retry later"), "{status}: {}", p.hint);
            assert!(!p.hint.contains("token_url"), "{status}: {}", p.hint);
        }
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
                matches!(parse_std(r, NOW), Err(Error::MalformedResponse(_))),
                "{r:?}"
            );
        }
    }

    #[test]
    fn a_token_a_header_cannot_carry_is_refused_and_provider_text_is_bounded() {
        for body in [
            r#"{"access_token":"a\r\nX-Injected: 1"}"#,
            r#"{"access_token":"a\u0000b"}"#,
            r#"{"access_token":"caf\u00e9"}"#,
            r#"{"access_token":"   "}"#,
        ] {
            assert!(
                matches!(
                    parse_std(&json(200, body), NOW),
                    Err(Error::MalformedResponse(_))
                ),
                "{body}"
            );
        }
        let long = "x".repeat(10_000);
        let body = format!(r#"{{"error":"invalid_grant","error_description":"{long}"}}"#);
        let Err(Error::Provider(e)) = parse_std(&json(400, &body), NOW) else {
            panic!()
        };
        assert_eq!(e.description.unwrap().chars().count(), 1_001);
        let scope = parse_std(
            &json(200, r#"{"access_token":"a","scope":["", "a b", "c"]}"#),
            NOW,
        )
        .unwrap()
        .scope;
        assert_eq!(scope.as_deref(), Some("a b c"));
        let none = parse_std(&json(200, r#"{"access_token":"a","scope":[""]}"#), NOW).unwrap();
        assert_eq!(none.scope, None);
    }

    #[test]
    fn provider_text_in_every_error_is_cleaned_of_the_requests_secrets() {
        const SECRET: &str = "cs-sentinel/+ x";
        let secrets = || {
            let mut r = Redactor::none();
            r.add_secret(SECRET);
            r
        };
        let encoded: String = form_urlencoded::byte_serialize(SECRET.as_bytes()).collect();
        let echo = format!("client_secret={encoded}\\u001b[2J\\r\\nauthorized: ok");
        let mut cases = vec![
            json(
                401,
                &format!(r#"{{"error":"invalid_client","error_description":"{echo}"}}"#),
            ),
            json(
                400,
                &format!(r#"{{"error":"{echo}","error_uri":"https://x/?{echo}"}}"#),
            ),
            json(503, &format!(r#"{{"message":"{echo}"}}"#)),
            json(500, &format!(r#"{{"reason":"{echo}"}}"#)),
        ];
        let mut redirect = response(302, "text/html", b"");
        redirect.headers.push((
            "Location".into(),
            format!("https://evil.example/?s={encoded}"),
        ));
        redirect.headers.push(("Retry-After".into(), SECRET.into()));
        cases.push(redirect);
        cases.push(response(502, &format!("text/html; x={encoded}"), b"<html>"));
        for case in &cases {
            let err = parse(case, NOW, &ResponseFormat::default(), secrets).unwrap_err();
            let shown = format!("{err:?} {err}");
            assert!(!shown.contains("sentinel"), "{shown}");
            assert!(
                !shown.contains('\u{1b}') && !shown.contains('\n'),
                "{shown}"
            );
            assert!(shown.contains("<redacted>"), "{shown}");
        }
        let Err(Error::Provider(e)) = parse(&cases[0], NOW, &ResponseFormat::default(), secrets)
        else {
            panic!("a provider error")
        };
        assert_eq!(e.code, "invalid_client", "the code is kept");
        assert_eq!(
            e.description.as_deref(),
            Some("client_secret=<redacted>\\u{1b}[2J\\r\\nauthorized: ok")
        );
    }

    #[test]
    fn a_duplicate_field_keeps_its_last_value_known_or_not() {
        let token = parse_std(
            &json(
                200,
                r#"{"access_token":"a","team":"x","expires_in":1,"team":"y","expires_in":2}"#,
            ),
            NOW,
        )
        .unwrap();
        assert_eq!(token.expires_at, Some(NOW + 2));
        assert_eq!(token.extra.0, vec![("team".to_owned(), "y".to_owned())]);
    }

    #[test]
    fn a_scope_is_space_delimited_however_it_was_spaced() {
        for (sent, read) in [
            ("a b", Some("a b")),
            ("orders:read", Some("orders:read")),
            (" a  b ", Some("a b")),
            (r"a\tb\nc", Some("a b c")),
            (r"a\u00a0b", Some("a b")),
            (r"caf\u00e9 x", Some("café x")),
            ("   ", None),
            ("", None),
        ] {
            let body = format!(r#"{{"access_token":"a","scope":"{sent}"}}"#);
            let token = parse_std(&json(200, &body), NOW).unwrap();
            assert_eq!(token.scope.as_deref(), read, "{sent:?}");
        }
    }

    #[test]
    fn extreme_lifetimes_do_not_overflow() {
        let t = parse_std(
            &json(200, r#"{"access_token":"a","expires_in":1e300}"#),
            NOW,
        )
        .unwrap();
        assert_eq!(t.expires_at, Some(u64::MAX));
        let t = parse_std(&json(200, r#"{"access_token":"a","expires_in":-5}"#), NOW).unwrap();
        assert_eq!(t.expires_at, Some(NOW));
    }

    #[test]
    fn expires_in_as_text_is_a_whole_number_or_a_json_number() {
        for (text, expected) in [
            ("3599", Ok(Some(NOW + 3599))),
            (" 60 ", Ok(Some(NOW + 60))),
            ("+60", Ok(Some(NOW + 60))),
            ("3599.9", Ok(Some(NOW + 3599))),
            ("1e3", Ok(Some(NOW + 1000))),
            ("-5", Ok(Some(NOW))),
            ("0", Ok(None)),
            ("", Ok(None)),
            ("soon", Err(())),
            ("1e999", Err(())),
            ("NaN", Err(())),
        ] {
            let body = format!(r#"{{"access_token":"a","expires_in":"{text}"}}"#);
            let read = parse_std(&json(200, &body), NOW).map(|t| t.expires_at);
            assert_eq!(read.map_err(|_| ()), expected, "{text:?}");
        }
    }
}
