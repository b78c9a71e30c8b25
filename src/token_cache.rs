//! Where and how the lifecycle keeps tokens and pending authorizations in the host's token store.

use crate::prelude::*;

use alloc::borrow::Cow;

use serde::Serialize;
use serde::de::{
    self, Deserialize, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::{Config, TimeUnit, hex};
use crate::extra_fields::ExtraFields;
use crate::secret::{AccessToken, IdToken, PkceVerifier, RefreshToken, State};
use crate::token::{Token, is_fresh};

/// The store entry holding a connection's token.
pub fn token_key(config: &Config) -> String {
    config.prefixed_connection_key("oauth2/token/")
}

/// The store entry remembering which client authentication `auto` found to work for a token
/// URL and client ID.
pub fn client_auth_key(config: &Config) -> String {
    let mut hash = Sha256::new();
    for field in [config.token_url.trim(), config.client_id.as_str()] {
        hash.update((field.len() as u64).to_le_bytes());
        hash.update(field.as_bytes());
    }
    hex("oauth2/client-auth/", &hash.finalize()[..16])
}

/// The store entry holding a pending authorization. It is named by a hash of the state so the
/// store's lookup never compares the state itself; the entry then holds the state for a
/// constant-time comparison.
pub fn pending_key(state: &str) -> String {
    hex("oauth2/pending/", &Sha256::digest(state.as_bytes())[..16])
}

/// A connection's cached token. The access token is absent after `forget-token`, when only the
/// refresh token is worth keeping.
#[derive(Clone, Debug)]
pub struct CachedToken {
    pub access_token: Option<AccessToken>,
    pub token_type: String,
    pub issued_at: u64,
    pub expires_at: Option<u64>,
    pub refresh_token: Option<RefreshToken>,
    pub scope: Option<String>,
    pub id_token: Option<IdToken>,
    pub extra: ExtraFields,
    /// The `expires_in_unit` that `expires_at` was computed with. The store key leaves it out,
    /// so that correcting the unit keeps the refresh token; a token read under another unit is
    /// stale. `None` in entries written before it was recorded, which count as matching.
    pub expires_in_unit: Option<TimeUnit>,
}

/// The first line of a token entry: what [`CachedAccess`] reads.
#[derive(Serialize)]
struct AccessLine<'a> {
    access_token: Option<&'a AccessToken>,
    issued_at: u64,
    expires_at: Option<u64>,
    #[serde(serialize_with = "unit_name", skip_serializing_if = "Option::is_none")]
    expires_in_unit: Option<TimeUnit>,
}

/// The second line of a token entry: the rest of the token.
#[derive(Serialize)]
struct RestLine<'a> {
    token_type: &'a str,
    refresh_token: Option<&'a RefreshToken>,
    scope: Option<&'a str>,
    id_token: Option<&'a IdToken>,
    extra: &'a ExtraFields,
}

fn unit_name<S: serde::Serializer>(unit: &Option<TimeUnit>, s: S) -> Result<S::Ok, S::Error> {
    unit.map(TimeUnit::as_str).serialize(s)
}

fn unit_named(name: &str) -> Option<TimeUnit> {
    [TimeUnit::Seconds, TimeUnit::Milliseconds]
        .into_iter()
        .find(|unit| unit.as_str() == name)
}

impl CachedToken {
    /// What to store for `token`, read from a response under `unit`.
    pub fn new(token: &Token, unit: TimeUnit) -> Self {
        CachedToken {
            access_token: Some(token.access_token.clone()),
            token_type: token.token_type.clone(),
            issued_at: token.issued_at,
            expires_at: token.expires_at,
            refresh_token: token.refresh_token.clone(),
            scope: token.scope.clone(),
            id_token: token.id_token.clone(),
            extra: token.extra.clone(),
            expires_in_unit: Some(unit),
        }
    }

    /// The token, when it still has an access token that is fresh at `now` by the lifetime
    /// read under `unit`.
    pub fn usable(&self, now: u64, unit: TimeUnit) -> Option<Token> {
        if self.expires_in_unit.is_some_and(|read_as| read_as != unit) {
            return None;
        }
        let token = Token {
            access_token: self.access_token.clone()?,
            token_type: self.token_type.clone(),
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            refresh_token: self.refresh_token.clone(),
            scope: self.scope.clone(),
            id_token: self.id_token.clone(),
            extra: self.extra.clone(),
        };
        token.is_fresh(now).then_some(token)
    }

    /// Reads a store entry; an entry that does not parse counts as no token, so a corrupted or
    /// foreign value makes the lifecycle fetch anew instead of failing forever.
    pub fn decode(value: &str) -> Option<Self> {
        let (first, second);
        let (access, rest) = match value.split_once('\n') {
            Some((access, rest)) => {
                (first, second) = (Fields::parse(access)?, Fields::parse(rest)?);
                (&first, &second)
            }
            // Written before the entry had two lines: one object holds every field.
            None => {
                first = Fields::parse(value)?;
                (&first, &first)
            }
        };
        Some(CachedToken {
            access_token: access
                .optional_string("access_token")?
                .map(AccessToken::new),
            issued_at: access.number("issued_at")?,
            expires_at: access.optional_number("expires_at")?,
            expires_in_unit: match access.optional_string("expires_in_unit")? {
                Some(name) => Some(unit_named(&name)?),
                None => None,
            },
            token_type: rest.string("token_type")?,
            refresh_token: rest
                .optional_string("refresh_token")?
                .map(RefreshToken::new),
            scope: rest.optional_string("scope")?,
            id_token: rest.optional_string("id_token")?.map(IdToken::new),
            extra: ExtraFields(rest.pairs("extra")?),
        })
    }

    /// Two lines of JSON: first what every connector step reads ([`CachedAccess`]), then the
    /// rest. A step parses the few hundred bytes of the first line instead of the whole entry,
    /// which with a refresh and an ID token was a tenth of the step inside the component. JSON
    /// escapes a line break inside a string, so the first one ends the first line.
    pub fn encode(&self) -> String {
        let access = AccessLine {
            access_token: self.access_token.as_ref(),
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            expires_in_unit: self.expires_in_unit,
        };
        let rest = RestLine {
            token_type: &self.token_type,
            refresh_token: self.refresh_token.as_ref(),
            scope: self.scope.as_deref(),
            id_token: self.id_token.as_ref(),
            extra: &self.extra,
        };
        let mut entry = serde_json::to_string(&access).expect("an access line serializes");
        entry.push('\n');
        entry.push_str(&serde_json::to_string(&rest).expect("a token serializes"));
        entry
    }
}

/// What decorating a request reads of a cached token: the entry's first line, borrowed from it.
/// Every connector step decodes it.
pub struct CachedAccess<'a> {
    access_token: Option<Cow<'a, str>>,
    issued_at: u64,
    expires_at: Option<u64>,
    expires_in_unit: Option<Cow<'a, str>>,
}

impl<'a> CachedAccess<'a> {
    /// Reads a store entry written by [`CachedToken::encode`]; anything else is no token.
    pub fn decode(value: &'a str) -> Option<Self> {
        // An entry written before the entry had two lines is one object holding every field.
        let access = value.split_once('\n').map_or(value, |(access, _)| access);
        // The byte reader, which parsing token responses needs anyway.
        let mut json = serde_json::Deserializer::from_slice(access.as_bytes());
        let access = json.deserialize_any(AccessVisitor).ok()?;
        json.end().ok()?;
        Some(access)
    }

    /// The access token, when the entry has one that is fresh at `now` by the lifetime read
    /// under `unit` (see [`CachedToken::expires_in_unit`]).
    pub fn fresh_access_token(&self, now: u64, unit: TimeUnit) -> Option<&str> {
        if self
            .expires_in_unit
            .as_deref()
            .is_some_and(|read_as| read_as != unit.as_str())
        {
            return None;
        }
        let token = self.access_token.as_deref()?;
        is_fresh(self.issued_at, self.expires_at, now).then_some(token)
    }
}

/// [`CachedAccess`] read as a derived `Deserialize` would read it (a missing or null optional
/// field is `None`, a value of another type or a repeated field fails the entry, unknown fields
/// are skipped), through `deserialize_any` alone. Derived code reports a value of the wrong type
/// with serde's `Unexpected`, whose `Display` formats floating-point numbers: that alone links
/// 22 KB of `core::fmt` float printing into the component.
struct AccessVisitor;

impl<'de> Visitor<'de> for AccessVisitor {
    type Value = CachedAccess<'de>;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a cached token")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CachedAccess<'de>, A::Error> {
        let (mut access_token, mut issued_at, mut expires_at, mut unit) = (None, None, None, None);
        while let Some(field) = map.next_key::<AccessField>()? {
            let slot = match field {
                AccessField::AccessToken => &mut access_token,
                AccessField::IssuedAt => &mut issued_at,
                AccessField::ExpiresAt => &mut expires_at,
                AccessField::ExpiresInUnit => &mut unit,
                AccessField::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if slot.replace(map.next_value::<Scalar<'de>>()?).is_some() {
                return Err(A::Error::custom("duplicate field"));
            }
        }
        let wrong = || A::Error::custom("a field of the wrong type");
        let text = |s: Option<Scalar<'de>>| match s {
            None | Some(Scalar::Null) => Ok(None),
            Some(Scalar::Text(t)) => Ok(Some(t)),
            Some(_) => Err(wrong()),
        };
        Ok(CachedAccess {
            access_token: text(access_token)?,
            issued_at: match issued_at {
                Some(Scalar::Whole(n)) => n,
                None => return Err(A::Error::custom("missing field `issued_at`")),
                Some(_) => return Err(wrong()),
            },
            expires_at: match expires_at {
                None | Some(Scalar::Null) => None,
                Some(Scalar::Whole(n)) => Some(n),
                Some(_) => return Err(wrong()),
            },
            expires_in_unit: text(unit)?,
        })
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Err(E::custom("not an object"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
        Err(A::Error::custom("not an object"))
    }
}

enum AccessField {
    AccessToken,
    IssuedAt,
    ExpiresAt,
    ExpiresInUnit,
    Other,
}

impl<'de> Deserialize<'de> for AccessField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // A JSON object's keys are strings: serde_json answers only `visit_str` here.
        deserializer.deserialize_str(AccessFieldVisitor)
    }
}

struct AccessFieldVisitor;

impl Visitor<'_> for AccessFieldVisitor {
    type Value = AccessField;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<AccessField, E> {
        Ok(match name {
            "access_token" => AccessField::AccessToken,
            "issued_at" => AccessField::IssuedAt,
            "expires_at" => AccessField::ExpiresAt,
            "expires_in_unit" => AccessField::ExpiresInUnit,
            _ => AccessField::Other,
        })
    }
}

/// A field's value as [`AccessVisitor`] sorts it; arrays and objects fail the entry.
enum Scalar<'a> {
    Null,
    Whole(u64),
    Text(Cow<'a, str>),
    Other,
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("a string, a number or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Whole(n))
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Text(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Text(Cow::Owned(s.to_owned())))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Scalar<'de>, A::Error> {
        Err(A::Error::custom("a field of the wrong type"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Scalar<'de>, A::Error> {
        Err(A::Error::custom("a field of the wrong type"))
    }
}

/// An authorization begun and not yet completed.
#[derive(Clone, Debug, Serialize)]
pub struct PendingAuthorization {
    pub state: State,
    pub pkce_verifier: PkceVerifier,
    /// The connection it was begun for: a state is only good for its own connection.
    pub connection: String,
    pub created_at: u64,
}

/// How long a user has to finish consenting; providers' own codes live minutes, not hours.
pub const PENDING_LIFETIME_SECS: u64 = 600;

impl PendingAuthorization {
    pub fn decode(value: &str) -> Option<Self> {
        let fields = Fields::parse(value)?;
        Some(PendingAuthorization {
            state: State::new(fields.string("state")?),
            pkce_verifier: PkceVerifier::new(fields.string("pkce_verifier")?),
            connection: fields.string("connection")?,
            created_at: fields.number("created_at")?,
        })
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a pending authorization always serializes")
    }
}

/// A store entry's fields, read the way a derived `Deserialize` would: a missing or null
/// optional field is `None`, any other type than the field's fails the whole entry, unknown
/// fields are ignored (a duplicate field takes its last value, where derived code refuses the
/// entry). By hand because each derived `Deserialize` costs the component kilobytes, and these
/// entries are read only when a token is refreshed or an authorization completes.
struct Fields(Map<String, Value>);

impl Fields {
    fn parse(value: &str) -> Option<Self> {
        match serde_json::from_slice(value.as_bytes()) {
            Ok(Value::Object(fields)) => Some(Fields(fields)),
            _ => None,
        }
    }

    fn string(&self, name: &str) -> Option<String> {
        self.0.get(name)?.as_str().map(str::to_owned)
    }

    fn number(&self, name: &str) -> Option<u64> {
        self.0.get(name)?.as_u64()
    }

    /// `Some(None)` when absent or null, `None` when of another type.
    fn optional_string(&self, name: &str) -> Option<Option<String>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Some(None),
            Some(value) => value.as_str().map(|s| Some(s.to_owned())),
        }
    }

    fn optional_number(&self, name: &str) -> Option<Option<u64>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Some(None),
            Some(value) => value.as_u64().map(Some),
        }
    }

    /// An array of `[name, value]` string pairs; empty when absent.
    fn pairs(&self, name: &str) -> Option<Vec<(String, String)>> {
        match self.0.get(name) {
            None => Some(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item.as_array()?.as_slice() {
                    [Value::String(name), Value::String(value)] => {
                        Some((name.clone(), value.clone()))
                    }
                    _ => None,
                })
                .collect(),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TimeUnit::{Milliseconds, Seconds};
    use crate::extra_fields::ExtraFields;

    #[test]
    fn cached_token_round_trips_and_garbage_is_no_token() {
        let cached = CachedToken {
            access_token: Some("at".into()),
            token_type: "Bearer".into(),
            issued_at: 10,
            expires_at: Some(3_610),
            refresh_token: Some("rt".into()),
            scope: Some("read".into()),
            id_token: None,
            extra: ExtraFields(vec![(
                "instance_url".into(),
                "https://na1.example.com".into(),
            )]),
            expires_in_unit: Some(Seconds),
        };
        let back = CachedToken::decode(&cached.encode()).unwrap();
        assert_eq!(back.usable(20, Seconds).unwrap().access_token, "at");
        assert_eq!(back.usable(20, Seconds).unwrap().extra, cached.extra);
        assert!(back.usable(3_600, Seconds).is_none(), "inside the margin");
        assert!(CachedToken::decode("not json").is_none());
        assert!(CachedToken::decode("{\"access_token\":1}").is_none());
        let forgotten = CachedToken {
            access_token: None,
            ..cached
        };
        assert!(forgotten.usable(20, Seconds).is_none());
    }

    /// The first line carries only what a connector step needs; entries written as one
    /// object before there were two lines still read in full, refresh token and all.
    #[test]
    fn the_access_line_comes_first_and_one_line_entries_still_read() {
        let one_line = r#"{"access_token":"at\nx","token_type":"Bearer","issued_at":10,"expires_at":3610,"refresh_token":"rt","scope":"read","id_token":null,"extra":[],"expires_in_unit":"seconds"}"#;
        let cached = CachedToken::decode(one_line).unwrap();
        assert_eq!(cached.refresh_token.as_ref().unwrap(), "rt");
        assert_eq!(cached.usable(20, Seconds).unwrap().access_token, "at\nx");
        assert_eq!(
            CachedAccess::decode(one_line)
                .unwrap()
                .fresh_access_token(20, Seconds),
            Some("at\nx")
        );

        let entry = cached.encode();
        let (access, rest) = entry.split_once('\n').unwrap();
        assert!(
            access.contains("at\\nx") && !access.contains("rt"),
            "{access}"
        );
        assert!(rest.contains("\"refresh_token\":\"rt\""), "{rest}");
        let back = CachedToken::decode(&entry).unwrap();
        assert_eq!(back.usable(20, Seconds).unwrap().access_token, "at\nx");
        assert_eq!(back.refresh_token.unwrap(), "rt");
    }

    #[test]
    fn cached_access_reads_what_cached_token_writes() {
        let cached = CachedToken {
            access_token: Some("at \"quoted\" \u{e9}".into()),
            token_type: "Bearer".into(),
            issued_at: 10,
            expires_at: Some(3_610),
            refresh_token: Some("rt".into()),
            scope: None,
            id_token: Some("id".into()),
            extra: ExtraFields(vec![(
                "instance_url".into(),
                "https://na1.example.com".into(),
            )]),
            expires_in_unit: Some(Seconds),
        };
        let entry = cached.encode();
        let access = CachedAccess::decode(&entry).unwrap();
        assert_eq!(
            access.fresh_access_token(20, Seconds),
            Some("at \"quoted\" \u{e9}")
        );
        for now in [3_599, 3_600, 4_000] {
            assert_eq!(
                access.fresh_access_token(now, Seconds).is_some(),
                cached.usable(now, Seconds).is_some(),
                "at {now}"
            );
        }
        let forgotten = CachedToken {
            access_token: None,
            expires_at: None,
            ..cached
        }
        .encode();
        assert_eq!(
            CachedAccess::decode(&forgotten)
                .unwrap()
                .fresh_access_token(20, Seconds),
            None
        );
        assert!(CachedAccess::decode("not json").is_none());
        assert!(CachedAccess::decode("{\"access_token\":1}").is_none());
    }

    /// The hand-written reader accepts and refuses what a derived `Deserialize` did.
    #[test]
    fn cached_access_reads_as_derived_code_did() {
        let fresh = |entry: &str| {
            CachedAccess::decode(entry)
                .map(|a| a.fresh_access_token(20, Seconds).map(str::to_owned))
        };
        let at = Some(Some("at".to_owned()));
        assert_eq!(fresh(r#"{"access_token":"at","issued_at":10}"#), at);
        assert_eq!(
            fresh(
                r#"{"access_token":"at","issued_at":10,"expires_at":null,"expires_in_unit":null}"#
            ),
            at
        );
        assert_eq!(
            fresh(r#" {"x":[1,{"y":2.5}],"access_token":"at","issued_at":10,"expires_at":3610} "#),
            at
        );
        assert_eq!(
            fresh(r#"{"access_token":"a\u0074","issued_at":10}"#),
            at,
            "an escaped string is owned"
        );
        assert_eq!(fresh(r#"{"access_token":null,"issued_at":10}"#), Some(None));
        assert_eq!(
            fresh(r#"{"access_token":"at","issued_at":10,"expires_in_unit":"milliseconds"}"#),
            Some(None)
        );
        for refused in [
            r#"{"access_token":"at"}"#,
            r#"{"access_token":"at","issued_at":null}"#,
            r#"{"access_token":"at","issued_at":10.5}"#,
            r#"{"access_token":"at","issued_at":-1}"#,
            r#"{"access_token":"at","issued_at":"10"}"#,
            r#"{"access_token":"at","issued_at":10,"expires_at":true}"#,
            r#"{"access_token":"at","issued_at":10,"expires_at":1e3}"#,
            r#"{"access_token":["at"],"issued_at":10}"#,
            r#"{"access_token":{},"issued_at":10}"#,
            r#"{"access_token":"at","issued_at":10,"issued_at":11}"#,
            r#"{"access_token":"at","issued_at":10} x"#,
            r#"["at",10]"#,
            "null",
            "10",
            "\"at\"",
        ] {
            assert_eq!(fresh(refused), None, "{refused}");
        }
    }

    #[test]
    fn a_token_read_under_another_expiry_unit_is_stale() {
        let token = Token {
            access_token: "at".into(),
            token_type: "Bearer".into(),
            issued_at: 10,
            expires_at: Some(3_610),
            refresh_token: Some("rt".into()),
            scope: None,
            id_token: None,
            extra: ExtraFields(vec![]),
        };
        let entry = CachedToken::new(&token, Seconds).encode();
        assert!(entry.contains(r#""expires_in_unit":"seconds""#), "{entry}");
        let cached = CachedToken::decode(&entry).unwrap();
        let access = CachedAccess::decode(&entry).unwrap();
        assert!(cached.usable(20, Seconds).is_some());
        assert!(cached.usable(20, Milliseconds).is_none());
        assert_eq!(access.fresh_access_token(20, Seconds), Some("at"));
        assert_eq!(access.fresh_access_token(20, Milliseconds), None);
        assert_eq!(
            cached.refresh_token.as_ref().map(|t| t.secret()),
            Some("rt"),
            "kept to refresh"
        );

        // Entries written before the unit was recorded match either unit.
        let legacy = CachedToken {
            expires_in_unit: None,
            ..cached
        }
        .encode();
        assert!(!legacy.contains("expires_in_unit"), "{legacy}");
        for unit in [Seconds, Milliseconds] {
            assert!(
                CachedToken::decode(&legacy)
                    .unwrap()
                    .usable(20, unit)
                    .is_some()
            );
            let access = CachedAccess::decode(&legacy).unwrap();
            assert_eq!(access.fresh_access_token(20, unit), Some("at"));
        }

        let unknown = entry.replace(r#""seconds""#, r#""fortnights""#);
        assert!(CachedToken::decode(&unknown).is_none());
        assert_eq!(
            CachedAccess::decode(&unknown)
                .unwrap()
                .fresh_access_token(20, Seconds),
            None
        );
    }

    #[test]
    fn pending_key_hides_the_state() {
        let key = pending_key("some-state-value");
        assert!(!key.contains("some-state-value"));
        assert_eq!(key, pending_key("some-state-value"));
        assert_ne!(key, pending_key("some-state-valuf"));
    }

    /// The store's names are where earlier versions left tokens: a change here orphans every
    /// stored token and refresh token. The expected names were computed outside Rust (SHA-256
    /// of each field after its length as 8 little-endian bytes, resources and parameters sorted).
    #[test]
    fn store_keys_name_what_earlier_versions_stored() {
        let mut config = crate::config::tests::config(crate::config::GrantType::ClientCredentials);
        config.scope = Some("read write".into());
        config.audience = Some("https://api.example.com".into());
        config.resource = vec!["https://b.example/".into(), "https://a.example/".into()];
        config.extra_params = vec![("prompt".into(), "consent".into())];
        assert_eq!(
            token_key(&config),
            "oauth2/token/ae1a351ed854e91f5a7cde3f2729e8cb"
        );
        assert_eq!(
            client_auth_key(&config),
            "oauth2/client-auth/fc07a0096844523280bb6119b142bc98"
        );
        assert_eq!(
            pending_key("some-state-value"),
            "oauth2/pending/113fd6c4674a718a08323d5f3c9a92f4"
        );
    }
}
