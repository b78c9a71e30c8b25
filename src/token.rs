//! The token a provider issued, with the freshness rule the lifecycle applies to it.

use crate::prelude::*;

use crate::extra_fields::ExtraFields;
use crate::secret::{AccessToken, IdToken, RefreshToken};

/// A token from the token endpoint (RFC 6749 §5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub access_token: AccessToken,
    pub token_type: String,
    /// Unix seconds when the token was obtained, to size the expiry margin.
    pub issued_at: u64,
    /// Unix seconds; `None` when the provider gave no lifetime.
    pub expires_at: Option<u64>,
    pub refresh_token: Option<RefreshToken>,
    pub scope: Option<String>,
    pub id_token: Option<IdToken>,
    /// Response fields beyond RFC 6749's (Salesforce's `instance_url`), sorted by name and
    /// bounded (see [`crate::extra_fields`]).
    pub extra: ExtraFields,
}

/// The longest a token is treated as expired before its stated expiry: room for clock skew
/// between host and provider and for the API request still in flight.
pub const MAX_EXPIRY_MARGIN_SECS: u64 = 30;

impl Token {
    /// Whether the token can still be sent at `now`. A token counts as expired a margin before
    /// its expiry: a tenth of its lifetime, at most [`MAX_EXPIRY_MARGIN_SECS`]. The proportional
    /// part keeps short-lived tokens (a minute or less) usable for most of their life instead of
    /// refreshing on every call.
    pub fn is_fresh(&self, now: u64) -> bool {
        is_fresh(self.issued_at, self.expires_at, now)
    }
}

/// [`Token::is_fresh`] for a token obtained at `issued_at` that expires at `expires_at`.
pub fn is_fresh(issued_at: u64, expires_at: Option<u64>, now: u64) -> bool {
    match expires_at {
        None => true,
        Some(expires_at) => {
            let lifetime = expires_at.saturating_sub(issued_at);
            let margin = (lifetime / 10).min(MAX_EXPIRY_MARGIN_SECS);
            now.saturating_add(margin) < expires_at
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(issued_at: u64, expires_at: Option<u64>) -> Token {
        Token {
            access_token: AccessToken::new("at-secret"),
            token_type: "Bearer".into(),
            issued_at,
            expires_at,
            refresh_token: Some(RefreshToken::new("rt-secret")),
            scope: None,
            id_token: Some(IdToken::new("id-secret")),
            extra: ExtraFields(vec![
                ("instance_url".into(), "https://na1.example.com".into()),
                ("signature".into(), "sig-secret".into()),
                ("bot_access_token".into(), "xoxb-secret".into()),
            ]),
        }
    }

    #[test]
    fn margin_is_a_tenth_of_the_lifetime_capped_at_thirty_seconds() {
        // One hour: stale 30 s before expiry.
        let hour = token(1_000, Some(4_600));
        assert!(hour.is_fresh(4_569));
        assert!(!hour.is_fresh(4_570));
        // One minute: stale 6 s before expiry, so it serves 54 s of its 60.
        let minute = token(1_000, Some(1_060));
        assert!(minute.is_fresh(1_053));
        assert!(!minute.is_fresh(1_054));
        // Five seconds: no margin left to take.
        let short = token(1_000, Some(1_005));
        assert!(short.is_fresh(1_004));
        assert!(!short.is_fresh(1_005));
        // No stated lifetime: fresh until the API says otherwise (then forget-token).
        assert!(token(1_000, None).is_fresh(u64::MAX));
    }

    #[test]
    fn debug_redacts_every_token_value() {
        let shown = format!("{:?}", token(0, None));
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("https://na1.example.com"), "{shown}");
    }
}
