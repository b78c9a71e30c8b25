//! A token response's fields beyond RFC 6749's: how many are kept, and which may be shown
//! without the user asking for credentials.

use crate::prelude::*;

use core::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::provider_text::REDACTED;

/// Most extra fields kept with a token.
pub const MAX_FIELDS: usize = 64;

/// Most bytes of names and values kept with a token: a hostile response of 90,000 fields would
/// otherwise grow the store by megabytes and slow every later write.
pub const MAX_BYTES: usize = 16 * 1024;

/// A token response's fields beyond RFC 6749's, sorted by name: string values as sent, others as
/// compact JSON text. `Debug` shows them as [`shown`] does.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ExtraFields(pub Vec<(String, String)>);

impl core::ops::Deref for ExtraFields {
    type Target = Vec<(String, String)>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'a> IntoIterator for &'a ExtraFields {
    type Item = &'a (String, String);
    type IntoIter = core::slice::Iter<'a, (String, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for ExtraFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&shown(&self.0), f)
    }
}

/// `fields` (sorted by name) cut to [`MAX_FIELDS`] and [`MAX_BYTES`]: taken in name order, a
/// field that would go over the bytes left is dropped whole rather than kept cut.
pub fn bounded(fields: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut left = MAX_BYTES;
    fields
        .into_iter()
        .filter(|(name, value)| {
            let size = name.len() + value.len();
            let fits = size <= left;
            if fits {
                left -= size;
            }
            fits
        })
        .take(MAX_FIELDS)
        .collect()
}

/// Whole field names known to hold nothing that grants access, though a word in them says
/// otherwise.
const HARMLESS_NAMES: &[&str] = &[
    "instance_url",
    "token_type",
    "refresh_token_expires_in",
    "x_refresh_token_expires_in",
    "not_before_policy",
];

/// Words that make a field a credential, or too close to one to show, wherever they stand in
/// its name (`session_id`, `api_key_name`).
const DANGER_WORDS: &[&str] = &[
    "assertion",
    "auth",
    "authorization",
    "bearer",
    "cert",
    "certificate",
    "code",
    "cookie",
    "cookies",
    "cred",
    "creds",
    "credential",
    "credentials",
    "hash",
    "jwe",
    "jws",
    "jwt",
    "key",
    "keys",
    "nonce",
    "otp",
    "pass",
    "passphrase",
    "passwd",
    "password",
    "pin",
    "private",
    "pwd",
    "salt",
    "secret",
    "secrets",
    "session",
    "sid",
    "sig",
    "signature",
    "token",
    "tokens",
    "verifier",
    "webhook",
];

/// Last words of names that describe rather than grant: identifiers, names, kinds, times and
/// places (`team_id`, `bot_user_id`, `expires_in`, `issued_at`, `api_domain`).
const HARMLESS_LAST_WORDS: &[&str] = &[
    "at", "channel", "country", "domain", "email", "id", "ids", "in", "language", "locale",
    "login", "name", "on", "region", "scope", "scopes", "status", "timezone", "type", "version",
];

/// Whether a field of this name may be shown without `--reveal`. Decided from the safe end:
/// a name is harmless only when it is known to be, and a name the rule does not know is hidden.
pub fn is_harmless_name(name: &str) -> bool {
    let words = words(name);
    let joined = words.join("_");
    if HARMLESS_NAMES.contains(&joined.as_str()) {
        return true;
    }
    if words.iter().any(|w| DANGER_WORDS.contains(&w.as_str())) {
        return false;
    }
    words
        .last()
        .is_some_and(|w| HARMLESS_LAST_WORDS.contains(&w.as_str()))
}

/// The lowercase words of a field name: split at anything but ASCII letters and digits, and
/// where a lower case letter or digit meets an upper case one (`instanceUrl`,
/// `X-Refresh-Token`). ASCII only: the Unicode case tables would cost the component kilobytes,
/// and a name in another script is simply not a known one.
fn words(name: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut previous_lower = false;
    for byte in name.bytes() {
        if !byte.is_ascii_alphanumeric() {
            words.extend((!current.is_empty()).then(|| core::mem::take(&mut current)));
            previous_lower = false;
            continue;
        }
        if byte.is_ascii_uppercase() && previous_lower {
            words.push(core::mem::take(&mut current));
        }
        previous_lower = byte.is_ascii_lowercase() || byte.is_ascii_digit();
        current.push(char::from(byte.to_ascii_lowercase()));
    }
    words.extend((!current.is_empty()).then_some(current));
    words
}

/// What may be shown of `fields` without `--reveal`: an object or array value (kept as JSON
/// text) is opened and the rule applied inside it, at any depth; a value that cannot hold a
/// credential (`true`, `false`, `null`) is shown under any name; every other value under a name
/// that is not [harmless](is_harmless_name) becomes `<redacted>`.
pub fn shown(fields: &[(String, String)]) -> Map<String, Value> {
    fields
        .iter()
        .map(|(name, text)| {
            let value = match serde_json::from_str::<Value>(text) {
                Ok(
                    structured
                    @ (Value::Object(_) | Value::Array(_) | Value::Bool(_) | Value::Null),
                ) => structured,
                _ => Value::String(text.clone()),
            };
            (name.clone(), redacted(name, value))
        })
        .collect()
}

/// Every field as sent: objects and arrays as JSON, other values as the text they were kept as.
pub fn revealed(fields: &[(String, String)]) -> Map<String, Value> {
    fields
        .iter()
        .map(|(name, text)| {
            let value = match serde_json::from_str::<Value>(text) {
                Ok(structured @ (Value::Object(_) | Value::Array(_))) => structured,
                _ => Value::String(text.clone()),
            };
            (name.clone(), value)
        })
        .collect()
}

fn redacted(name: &str, value: Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .map(|(inner, value)| {
                    let value = redacted(&inner, value);
                    (inner, value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| redacted(name, v)).collect()),
        harmless @ (Value::Bool(_) | Value::Null) => harmless,
        scalar if is_harmless_name(name) => scalar,
        _ => Value::String(REDACTED.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_are_shown_only_when_known_harmless() {
        for harmless in [
            "instance_url",
            "id",
            "team_id",
            "bot_user_id",
            "teamName",
            "issued_at",
            "api_domain",
            "token_type",
            "refresh_expires_in",
            "refresh_token_expires_in",
            "scope",
        ] {
            assert!(is_harmless_name(harmless), "{harmless}");
        }
        for dangerous in [
            "signature",
            "jwt",
            "credentials",
            "assertion",
            "session",
            "session_id",
            "session_state",
            "cookie",
            "sid",
            "pwd",
            "otp",
            "bot_access_token",
            "accessToken",
            "api_key_id",
            "url",
            "configuration_url",
            "something_new",
            "",
        ] {
            assert!(!is_harmless_name(dangerous), "{dangerous}");
        }
    }

    #[test]
    fn slacks_nested_credentials_are_hidden_at_any_depth() {
        let fields = pairs(&[
            (
                "authed_user",
                r#"{"id":"U1","scope":"chat:write","access_token":"xoxp-sentinel","token_type":"user","refresh_token":"xoxe-sentinel"}"#,
            ),
            (
                "incoming_webhook",
                r##"{"channel":"#general","channel_id":"C1","configuration_url":"https://x.slack.com/sentinel","url":"https://hooks.slack.com/services/sentinel"}"##,
            ),
            ("team", r#"{"id":"T1","name":"Acme"}"#),
            ("enterprise", "null"),
            ("is_enterprise_install", "false"),
            ("jwt", "eyJ-sentinel"),
            ("otp", "123456"),
            ("list", r#"[{"id":"a","secret":"sentinel"},"sentinel"]"#),
        ]);
        let shown = Value::Object(shown(&fields));
        let text = shown.to_string();
        assert!(!text.contains("sentinel"), "{text}");
        assert!(!text.contains("123456"), "{text}");
        assert_eq!(shown["authed_user"]["id"], "U1");
        assert_eq!(shown["authed_user"]["scope"], "chat:write");
        assert_eq!(shown["authed_user"]["access_token"], REDACTED);
        assert_eq!(shown["incoming_webhook"]["channel"], "#general");
        assert_eq!(shown["team"]["name"], "Acme");
        assert_eq!(shown["enterprise"], Value::Null);
        assert_eq!(shown["is_enterprise_install"], false);
        assert_eq!(shown["list"][0]["id"], "a");

        let revealed = Value::Object(revealed(&fields));
        assert_eq!(revealed["authed_user"]["access_token"], "xoxp-sentinel");
        assert_eq!(revealed["otp"], "123456");
    }

    #[test]
    fn what_is_kept_is_bounded_and_fields_are_dropped_whole() {
        let many: Vec<(String, String)> = (0..1_000)
            .map(|i| (format!("f{i:04}"), "v".into()))
            .collect();
        let kept = bounded(many);
        assert_eq!(kept.len(), MAX_FIELDS);
        assert_eq!(kept[0].0, "f0000");

        let big = vec![
            ("a".to_owned(), "x".repeat(MAX_BYTES)),
            ("b".to_owned(), "small".to_owned()),
        ];
        assert_eq!(bounded(big), pairs(&[("b", "small")]));
    }
}
