//! Disconnecting (RFC 7009): the stored tokens removed from the store, then revoked at the
//! provider.

use crate::prelude::*;

use crate::config::{Config, endpoint};
use crate::error::{Error, StoreError};
use crate::hints::Situation;
use crate::lifecycle::{self, Host};
use crate::token_cache::{CachedToken, token_key};
use crate::token_response;

/// What became of one token.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The provider confirmed the revocation.
    Revoked,
    /// No such token was stored.
    NotStored,
    /// No revocation endpoint is configured: the provider was not told.
    NoEndpoint,
    /// The provider refused, or could not be reached: it may still honour the token.
    Failed(Error),
}

/// Both tokens' outcomes. Neither is in the store any more.
#[derive(Debug, PartialEq, Eq)]
pub struct Revocation {
    pub refresh_token: Outcome,
    pub access_token: Outcome,
}

/// Removes the connection's tokens from the store, under its lock, then revokes the refresh
/// token and the access token, in that order: providers revoke a refresh token's access tokens
/// with it (RFC 7009 §2.1). Removal comes first, so that whatever the provider answers, this
/// host holds no token for the connection afterwards; an error means nothing was removed and
/// nothing sent.
pub fn revoke(config: &Config, host: &impl Host) -> Result<Revocation, Error> {
    config.check()?;
    let key = token_key(config);
    let cached = {
        let _held = lifecycle::lock(host, &key)?;
        let Some(entry) = lifecycle::read_entry(host, &key)? else {
            return Ok(Revocation {
                refresh_token: Outcome::NotStored,
                access_token: Outcome::NotStored,
            });
        };
        let removed = host
            .compare_and_swap(&key, Some(&entry), None, None)
            .map_err(Error::TokenStore)?;
        if !removed {
            return Err(Error::TokenStore(StoreError::Unavailable(
                "the stored token changed while it was being removed: try again".into(),
            )));
        }
        CachedToken::decode(&entry)
    };
    let (refresh_token, access_token) = match cached {
        Some(cached) => (
            cached.refresh_token.map(|t| t.into_secret()),
            cached.access_token.map(|t| t.into_secret()),
        ),
        None => (None, None),
    };
    Ok(Revocation {
        refresh_token: outcome(config, host, refresh_token, "refresh_token"),
        access_token: outcome(config, host, access_token, "access_token"),
    })
}

fn outcome(config: &Config, host: &impl Host, token: Option<String>, hint: &str) -> Outcome {
    match (token, &config.revocation_url) {
        (None, _) => Outcome::NotStored,
        (Some(_), None) => Outcome::NoEndpoint,
        (Some(token), Some(url)) => match send(config, host, url, &token, hint) {
            Ok(()) => Outcome::Revoked,
            Err(e) => Outcome::Failed(e),
        },
    }
}

/// One revocation request (RFC 7009 §2.1) with the client's configured authentication. Any
/// 2xx is success: the provider answers 200 for a token it does not know, too (§2.2).
fn send(
    config: &Config,
    host: &impl Host,
    url: &str,
    token: &str,
    hint: &str,
) -> Result<(), Error> {
    let url = endpoint("revocation_url", url).map_err(Error::InvalidConfig)?;
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("token", token);
    form.append_pair("token_type_hint", hint);
    let (response, secrets) = lifecycle::send_form(config, host, url.into(), form)?;
    if (200..300).contains(&response.status) {
        return Ok(());
    }
    match token_response::read_object(&response) {
        Ok(_) => Ok(()),
        Err(e) => Err(lifecycle::with_hint(config, e, Situation::Revocation).cleaned(&secrets)),
    }
}
