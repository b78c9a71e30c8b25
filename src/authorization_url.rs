//! The authorization request URL (RFC 6749 §4.1.1) carrying state and the PKCE challenge.

use crate::prelude::*;

use crate::config::{Config, ConfigProblem, endpoint};
use crate::error::Error;
use crate::pkce;

/// The URL the user opens to consent. Parameters the provider's authorization URL already
/// carries (a tenant, a prompt) are kept.
pub fn build(config: &Config, state: &str, pkce_verifier: &str) -> Result<String, Error> {
    let authorization_url = required(&config.authorization_url, "authorization_url")?;
    let redirect_uri = required(&config.redirect_uri, "redirect_uri")?;
    let mut url = endpoint("authorization_url", authorization_url).map_err(Error::InvalidConfig)?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &config.client_id)
            .append_pair("redirect_uri", redirect_uri);
        if let Some(scope) = config.scope_param() {
            query.append_pair("scope", &scope);
        }
        query
            .append_pair("state", state)
            .append_pair("code_challenge", &pkce::s256_challenge(pkce_verifier))
            .append_pair("code_challenge_method", "S256");
        for (name, value) in config.shared_params() {
            query.append_pair(name, value);
        }
        for (name, value) in config
            .extra_params
            .iter()
            .chain(&config.authorization_params)
        {
            query.append_pair(name, value);
        }
    }
    Ok(url.into())
}

fn required<'a>(value: &'a Option<String>, field: &str) -> Result<&'a str, Error> {
    value.as_deref().ok_or_else(|| {
        Error::InvalidConfig(ConfigProblem {
            field: field.to_owned(),
            message: "is required for the authorization flow".to_owned(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GrantType;
    use crate::config::tests::config;

    #[test]
    fn carries_every_parameter_and_keeps_existing_ones() {
        let mut c = config(GrantType::AuthorizationCode);
        c.authorization_url = Some("https://idp.example.com/authorize?tenant=acme".into());
        c.scope = Some("openid  offline_access".into());
        c.audience = Some("https://api.example.com".into());
        c.resource = vec!["https://a.example/".into(), "https://b.example/".into()];
        c.extra_params = vec![("max_age".into(), "60".into())];
        c.authorization_params = vec![("prompt".into(), "consent".into())];
        let url = url::Url::parse(
            &build(&c, "st/ate+", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").unwrap(),
        )
        .unwrap();
        assert_eq!(url.path(), "/authorize");
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let expected = [
            ("tenant", "acme"),
            ("response_type", "code"),
            ("client_id", "client-1"),
            ("redirect_uri", "http://127.0.0.1:8765/callback"),
            ("scope", "openid offline_access"),
            ("state", "st/ate+"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
            ("audience", "https://api.example.com"),
            ("resource", "https://a.example/"),
            ("resource", "https://b.example/"),
            ("max_age", "60"),
            ("prompt", "consent"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(query, expected);
    }

    #[test]
    fn scope_uses_the_providers_separator() {
        let mut c = config(GrantType::AuthorizationCode);
        c.scope = Some(" commands  incoming-webhook ".into());
        c.response_format.scope_separator = crate::config::ScopeSeparator::Comma;
        let url = url::Url::parse(&build(&c, "s", "v").unwrap()).unwrap();
        let scope = url.query_pairs().find(|(k, _)| k == "scope").unwrap().1;
        assert_eq!(scope, "commands,incoming-webhook");
    }

    #[test]
    fn missing_endpoints_are_named() {
        let mut c = config(GrantType::AuthorizationCode);
        c.redirect_uri = None;
        assert!(
            matches!(build(&c, "s", "v"), Err(Error::InvalidConfig(p)) if p.field == "redirect_uri")
        );
    }
}
