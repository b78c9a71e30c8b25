//! The failures a user meets, through the component in wasmtime: each comes back as a typed
//! error naming what to check, and none changes the stored token.

#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::*;
use oauth2_runtime::{CallError, GrantType, OauthError, SecretStore, TransportError};
use oauth2_test_provider::{ConsentMode, Provider};

fn oauth_error(result: Result<oauth2_runtime::Token, CallError>) -> OauthError {
    match result {
        Err(CallError::OAuth(e)) => e,
        Err(other) => panic!("not an OAuth error: {other}"),
        Ok(token) => panic!("unexpected token {token:?}"),
    }
}

#[test]
fn every_rfc6749_error_code_is_typed_with_its_hint() {
    let provider = start_provider();
    let host = Host::new();
    let config = config(&provider, GrantType::ClientCredentials);
    let cases = [
        ("invalid_request", 400, "extra_params"),
        ("invalid_client", 401, "client ID and client secret"),
        ("invalid_grant", 400, "refused the grant"),
        (
            "unauthorized_client",
            400,
            "not allowed to use this grant type",
        ),
        ("unsupported_grant_type", 400, "grant_type and token_url"),
        ("invalid_scope", 400, "check scope"),
    ];
    for (code, status, hint) in cases {
        provider.reject_next_token_request(code, "described by the provider");
        match oauth_error(plugin().ensure_token(&host.services, &config)) {
            OauthError::Provider(e) => {
                assert_eq!((e.code.as_str(), e.status), (code, status));
                assert_eq!(e.description.as_deref(), Some("described by the provider"));
                assert!(e.hint.contains(hint), "{code}: {}", e.hint);
            }
            other => panic!("{code}: {other:?}"),
        }
    }
    assert!(
        host.snapshot()
            .iter()
            .all(|(name, _)| !name.starts_with("oauth2/")),
        "nothing stored"
    );
}

#[test]
fn real_rejections_from_the_provider() {
    let provider = start_provider();
    let host = Host::new();

    host.store.set("client-secret", "wrong").unwrap();
    let config_cc = config(&provider, GrantType::ClientCredentials);
    match oauth_error(plugin().ensure_token(&host.services, &config_cc)) {
        OauthError::Provider(e) => assert_eq!((e.code.as_str(), e.status), ("invalid_client", 401)),
        other => panic!("{other:?}"),
    }
    host.store.set("client-secret", CLIENT_SECRET).unwrap();

    host.store
        .set("alice-password", "not-her-password")
        .unwrap();
    let config_pw = config(&provider, GrantType::Password);
    match oauth_error(plugin().ensure_token(&host.services, &config_pw)) {
        OauthError::Provider(e) => assert_eq!(e.code, "invalid_grant"),
        other => panic!("{other:?}"),
    }

    let mut config_scope = config_cc.clone();
    config_scope.scope = Some("admin".into());
    match oauth_error(plugin().ensure_token(&host.services, &config_scope)) {
        OauthError::Provider(e) => assert_eq!(e.code, "invalid_scope"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn failed_refresh_keeps_the_stored_token() {
    let provider = start_provider();
    let host = Host::new();
    let config = config(&provider, GrantType::Password);
    plugin().ensure_token(&host.services, &config).unwrap();
    host.advance(3600);
    let before = host.snapshot();

    provider.fail_next_token_requests(
        1,
        503,
        r#"{"error":"temporarily_unavailable"}"#,
        "application/json",
    );
    match oauth_error(plugin().ensure_token(&host.services, &config)) {
        OauthError::Provider(e) => {
            assert_eq!(
                (e.code.as_str(), e.status),
                ("temporarily_unavailable", 503)
            );
            assert!(e.hint.contains("retry later"), "{}", e.hint);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(host.snapshot(), before);

    // The kept refresh token still works once the provider is back.
    plugin().ensure_token(&host.services, &config).unwrap();
    assert_eq!(provider.token_request_count("refresh_token"), 2);
}

#[test]
fn html_page_at_the_token_url_is_not_a_token_endpoint() {
    let provider = start_provider();
    let host = Host::new();
    let config = config(&provider, GrantType::ClientCredentials);
    provider.fail_next_token_requests(
        1,
        404,
        "<html><body><h1>Not Found</h1></body></html>",
        "text/html",
    );
    match oauth_error(plugin().ensure_token(&host.services, &config)) {
        OauthError::MalformedResponse(p) => {
            assert_eq!(p.status, 404);
            assert!(p.hint.contains("token_url"), "{}", p.hint);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        host.snapshot()
            .iter()
            .all(|(name, _)| !name.starts_with("oauth2/"))
    );
}

#[test]
fn unreachable_token_endpoint_is_a_transport_error() {
    let provider = start_provider();
    let host = Host::new();
    let mut config = config(&provider, GrantType::ClientCredentials);
    // A port nothing listens on: bind one, note it, free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    config.token_url = format!("http://127.0.0.1:{port}/token");
    match oauth_error(plugin().ensure_token(&host.services, &config)) {
        OauthError::Transport(TransportError::Connect(_)) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn non_https_endpoints_and_incomplete_configs_name_the_field() {
    let provider = start_provider();
    let host = Host::new();
    let mut config = config(&provider, GrantType::ClientCredentials);
    config.token_url = "http://idp.example.com/token".into();
    match oauth_error(plugin().ensure_token(&host.services, &config)) {
        OauthError::InvalidConfig(p) => {
            assert_eq!(p.field, "token_url");
            assert!(p.message.contains("https"), "{}", p.message);
        }
        other => panic!("{other:?}"),
    }

    let mut config = common::config(&provider, GrantType::AuthorizationCode);
    config.authorization_url = None;
    config.redirect_uri = None;
    let problems = plugin().validate_config(&host.services, &config).unwrap();
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["authorization_url", "redirect_uri"]);
    match plugin().begin_authorization(&host.services, &config) {
        Err(CallError::OAuth(OauthError::InvalidConfig(p))) => {
            assert_eq!(p.field, "authorization_url")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_state_is_refused_and_the_flow_stays_usable() {
    let provider = start_provider();
    let host = Host::new();
    let config = config(&provider, GrantType::AuthorizationCode);
    let start = plugin()
        .begin_authorization(&host.services, &config)
        .unwrap();
    let redirect = consent(&host, &start.url);

    let forged = redirect.replace(&format!("state={}", start.state.secret()), "state=forged");
    assert_ne!(forged, redirect);
    let err = oauth_error(plugin().complete_authorization(&host.services, &config, &forged));
    assert!(matches!(err, OauthError::StateMismatch), "{err:?}");
    assert_eq!(
        provider.token_request_count("authorization_code"),
        0,
        "no exchange on a bad state"
    );

    plugin()
        .complete_authorization(&host.services, &config, &redirect)
        .unwrap();
    // A replayed redirect finds its state used up.
    let err = oauth_error(plugin().complete_authorization(&host.services, &config, &redirect));
    assert!(matches!(err, OauthError::StateMismatch), "{err:?}");
    assert_eq!(provider.token_request_count("authorization_code"), 1);
}

#[test]
fn error_redirect_is_surfaced_with_its_code() {
    let mut provider_config = provider_config();
    provider_config.consent = ConsentMode::AutoDeny;
    let provider = Provider::start(provider_config).unwrap();
    let host = Host::new();
    let config = config(&provider, GrantType::AuthorizationCode);
    let start = plugin()
        .begin_authorization(&host.services, &config)
        .unwrap();
    let redirect = consent(&host, &start.url);
    match oauth_error(plugin().complete_authorization(&host.services, &config, &redirect)) {
        OauthError::AuthorizationDenied(e) => {
            assert_eq!(e.code, "access_denied");
            assert!(e.hint.contains("allow access"), "{}", e.hint);
        }
        other => panic!("{other:?}"),
    }
    assert!(provider.token_requests().is_empty());
}

/// A configuration that names another connection's token entry as its client secret finds no
/// secret: the component's token state is a namespace of its own, which no name in a
/// configuration reaches, so the other connection's tokens are never sent anywhere.
#[test]
fn a_config_cannot_name_the_components_own_entries_as_secrets() {
    let provider = start_provider();
    let host = Host::new();
    let victim = config(&provider, GrantType::ClientCredentials);
    plugin().ensure_token(&host.services, &victim).unwrap();
    let token_key = host
        .snapshot()
        .into_iter()
        .map(|(name, _)| name)
        .find(|name| name.starts_with("oauth2/token/"))
        .expect("the victim's token is stored");
    let before = provider.token_requests().len();

    let mut thief = config(&provider, GrantType::ClientCredentials);
    thief.client_id = "another-client".into();
    thief.client_secret_name = Some(token_key.clone());
    match oauth_error(plugin().ensure_token(&host.services, &thief)) {
        OauthError::MissingSecret(m) => assert_eq!(m.name, token_key),
        other => panic!("{other:?}"),
    }
    assert_eq!(provider.token_requests().len(), before, "nothing was sent");
}
