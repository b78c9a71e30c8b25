//! Where the lifecycle keeps tokens and pending authorizations in the host's secret store.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Config, hex};
use crate::token::Token;

/// The store entry holding a connection's token.
pub fn token_key(config: &Config) -> String {
    format!("oauth2/token/{}", config.connection_key())
}

/// The store entry remembering which client authentication `auto` found to work for a token
/// URL and client ID.
pub fn client_auth_key(config: &Config) -> String {
    let mut hash = Sha256::new();
    for field in [config.token_url.trim(), config.client_id.as_str()] {
        hash.update((field.len() as u64).to_le_bytes());
        hash.update(field.as_bytes());
    }
    format!("oauth2/client-auth/{}", hex(&hash.finalize()[..16]))
}

/// The store entry holding a pending authorization. It is named by a hash of the state so the
/// store's lookup never compares the state itself; the entry then holds the state for a
/// constant-time comparison.
pub fn pending_key(state: &str) -> String {
    format!(
        "oauth2/pending/{}",
        hex(&Sha256::digest(state.as_bytes())[..16])
    )
}

/// A connection's cached token. The access token is absent after `forget-token`, when only the
/// refresh token is worth keeping.
#[derive(Clone, Serialize, Deserialize)]
pub struct CachedToken {
    pub access_token: Option<String>,
    pub token_type: String,
    pub issued_at: u64,
    pub expires_at: Option<u64>,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub id_token: Option<String>,
    #[serde(default)]
    pub extra: Vec<(String, String)>,
}

impl CachedToken {
    /// The token, when it still has an access token that is fresh at `now`.
    pub fn usable(&self, now: u64) -> Option<Token> {
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
        serde_json::from_str(value).ok()
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a cached token always serializes")
    }
}

impl From<&Token> for CachedToken {
    fn from(t: &Token) -> Self {
        CachedToken {
            access_token: Some(t.access_token.clone()),
            token_type: t.token_type.clone(),
            issued_at: t.issued_at,
            expires_at: t.expires_at,
            refresh_token: t.refresh_token.clone(),
            scope: t.scope.clone(),
            id_token: t.id_token.clone(),
            extra: t.extra.clone(),
        }
    }
}

/// An authorization begun and not yet completed.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingAuthorization {
    pub state: String,
    pub pkce_verifier: String,
    /// The connection it was begun for: a state is only good for its own connection.
    pub connection: String,
    pub created_at: u64,
}

/// How long a user has to finish consenting; providers' own codes live minutes, not hours.
pub const PENDING_LIFETIME_SECS: u64 = 600;

impl PendingAuthorization {
    pub fn decode(value: &str) -> Option<Self> {
        serde_json::from_str(value).ok()
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("a pending authorization always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            extra: vec![("instance_url".into(), "https://na1.example.com".into())],
        };
        let back = CachedToken::decode(&cached.encode()).unwrap();
        assert_eq!(back.usable(20).unwrap().access_token, "at");
        assert_eq!(back.usable(20).unwrap().extra, cached.extra);
        assert!(back.usable(3_600).is_none(), "inside the margin");
        assert!(CachedToken::decode("not json").is_none());
        assert!(CachedToken::decode("{\"access_token\":1}").is_none());
        let forgotten = CachedToken {
            access_token: None,
            ..cached
        };
        assert!(forgotten.usable(20).is_none());
    }

    #[test]
    fn pending_key_hides_the_state() {
        let key = pending_key("some-state-value");
        assert!(!key.contains("some-state-value"));
        assert_eq!(key, pending_key("some-state-value"));
        assert_ne!(key, pending_key("some-state-valuf"));
    }
}
