//! Every grant, run by the component inside wasmtime against the embedded provider over
//! loopback HTTP: fetch, cached reuse, expiry, refresh with and without rotation, the
//! authorization-code flow with PKCE, and the device code grant.

#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::*;
use oauth2_runtime::{
    CallError, ClientAuth, DevicePoll, GrantType, HttpRequest, OauthError, SecretStore,
};
use oauth2_test_provider::{ClientAuthUsed, Provider};

#[test]
fn client_credentials_with_basic_auth_fetches_once_and_reuses() {
    let provider = start_provider();
    let host = Host::new();
    let config = config(&provider, GrantType::ClientCredentials);

    for _ in 0..10 {
        let (status, body) = call_api(&provider, &host, &config);
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(r#""client_id":"demo-client""#), "{body}");
    }
    assert_eq!(provider.token_request_count("client_credentials"), 1);
    assert_eq!(provider.api_call_count(), 10);
    let request = &provider.token_requests()[0];
    assert_eq!(request.client_auth, ClientAuthUsed::Basic);
    assert_eq!(request.accept.as_deref(), Some("application/json"));
}

#[test]
fn client_credentials_with_request_body_auth_scope_and_audience() {
    let provider = start_provider();
    let host = Host::new();
    let mut config = config(&provider, GrantType::ClientCredentials);
    config.client_auth = ClientAuth::RequestBody;
    config.scope = Some("read".into());
    config.audience = Some("https://api.example.com".into());
    config.resource_indicators = vec!["https://api.example.com/v1".into()];

    let token = plugin().ensure_token(&host.services, &config).unwrap();
    assert_eq!(token.scope.as_deref(), Some("read"));
    let request = &provider.token_requests()[0];
    assert_eq!(request.client_auth, ClientAuthUsed::Body);
    assert!(!request.authorization_header);
    assert_eq!(request.param("scope"), Some("read"));
    assert_eq!(request.param("audience"), Some("https://api.example.com"));
    assert_eq!(
        request.param("resource"),
        Some("https://api.example.com/v1")
    );
    assert_eq!(call_api(&provider, &host, &config).0, 200);
}

#[test]
fn client_credentials_expiry_refetches() {
    let provider = start_provider();
    let host = Host::new();
    let config = config(&provider, GrantType::ClientCredentials);
    let first = plugin().ensure_token(&host.services, &config).unwrap();
    assert_eq!(first.expires_at, Some(START + 3600));

    host.advance(3600 - 31);
    assert_eq!(
        plugin().ensure_token(&host.services, &config).unwrap(),
        first
    );
    assert_eq!(provider.token_request_count("client_credentials"), 1);

    // Inside the 30-second margin: a new token, no refresh token to use.
    host.advance(1);
    let second = plugin().ensure_token(&host.services, &config).unwrap();
    assert_ne!(second.access_token, first.access_token);
    assert_eq!(provider.token_request_count("client_credentials"), 2);
    assert_eq!(provider.token_request_count("refresh_token"), 0);
    assert_eq!(call_api(&provider, &host, &config).0, 200);
}

#[test]
fn password_grant_then_refresh_with_rotation() {
    let provider = start_provider();
    let host = Host::new();
    let config = config(&provider, GrantType::Password);

    let (status, body) = call_api(&provider, &host, &config);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""sub":"alice""#), "{body}");
    let first = plugin().ensure_token(&host.services, &config).unwrap();
    let first_refresh = first.refresh_token.clone().expect("a refresh token");

    host.advance(3600);
    let second = plugin().ensure_token(&host.services, &config).unwrap();
    assert_ne!(second.access_token, first.access_token);
    let second_refresh = second
        .refresh_token
        .clone()
        .expect("a rotated refresh token");
    assert_ne!(second_refresh, first_refresh, "the provider rotates");
    assert_eq!(provider.token_request_count("password"), 1);
    assert_eq!(provider.token_request_count("refresh_token"), 1);
    assert_eq!(call_api(&provider, &host, &config).0, 200);

    // The stored refresh token is the rotated one: the next refresh succeeds at a provider
    // that rejects reuse.
    host.advance(3600);
    let third = plugin().ensure_token(&host.services, &config).unwrap();
    assert_ne!(
        third.refresh_token.as_ref().map(|t| t.secret()),
        Some(second_refresh.secret())
    );
    assert_eq!(provider.token_request_count("refresh_token"), 2);
    assert_eq!(provider.token_request_count("password"), 1);
}

#[test]
fn refresh_without_rotation_keeps_the_refresh_token() {
    let mut provider_config = provider_config();
    provider_config.rotate_refresh_tokens = false;
    let provider = Provider::start(provider_config).unwrap();
    let host = Host::new();
    let config = config(&provider, GrantType::Password);

    let first = plugin().ensure_token(&host.services, &config).unwrap();
    for _ in 0..3 {
        host.advance(3600);
        let next = plugin().ensure_token(&host.services, &config).unwrap();
        assert_ne!(next.access_token, first.access_token);
        assert_eq!(
            next.refresh_token, first.refresh_token,
            "absence keeps the old one"
        );
    }
    assert_eq!(provider.token_request_count("refresh_token"), 3);
    assert_eq!(provider.token_request_count("password"), 1);
}

#[test]
fn device_code_grant_polls_slows_down_then_stores_and_refreshes_the_token() {
    let mut provider_config = provider_config();
    provider_config.device_poll_interval = std::time::Duration::from_secs(30);
    let provider = Provider::start(provider_config).unwrap();
    let host = Host::new();
    let mut config = config(&provider, GrantType::DeviceCode);
    config.device_authorization_url = Some(provider.device_authorization_url());

    let started = plugin()
        .start_device_authorization(&host.services, &config)
        .unwrap();
    assert_eq!(started.interval_seconds, 30);
    let poll = || {
        plugin()
            .poll_device_authorization(&host.services, &config, &started.device_code)
            .unwrap()
    };
    assert_eq!(poll(), DevicePoll::Pending);
    // Polled again at once: the provider asks to slow down, and the component says so.
    assert_eq!(poll(), DevicePoll::SlowDown);
    assert!(
        matches!(
            plugin().ensure_token(&host.services, &config),
            Err(CallError::OAuth(OauthError::AuthorizationRequired(_)))
        ),
        "no token before the user approves"
    );

    let page = started.verification_uri_complete.clone().unwrap();
    let approved = host.services.http.send(&HttpRequest {
        method: "GET".into(),
        url: page,
        headers: vec![],
        body: vec![],
    });
    assert_eq!(approved.unwrap().status, 200);
    let DevicePoll::Granted(token) = poll() else {
        panic!("no token after the approval");
    };
    assert!(token.refresh_token.is_some());
    assert_eq!(call_api(&provider, &host, &config).0, 200);
    assert_eq!(
        provider.token_request_count(oauth2_test_provider::GrantType::DeviceCode.as_str()),
        3,
        "the stored token is reused, not polled for again"
    );

    host.advance(3600);
    assert_eq!(call_api(&provider, &host, &config).0, 200);
    assert_eq!(provider.token_request_count("refresh_token"), 1);
}

#[test]
fn authorization_code_with_pkce_then_refresh() {
    let provider = start_provider();
    let host = Host::new();
    let mut config = config(&provider, GrantType::AuthorizationCode);
    config.scope = Some("read write".into());

    let err = plugin().ensure_token(&host.services, &config).unwrap_err();
    assert!(
        matches!(err, CallError::OAuth(OauthError::AuthorizationRequired(_))),
        "{err}"
    );

    authorize(&provider, &host, &config);
    let exchange = &provider.token_requests()[0];
    assert_eq!(exchange.param("redirect_uri"), Some(REDIRECT_URI));
    assert_eq!(
        exchange.param("code_verifier"),
        Some("[redacted]"),
        "PKCE verifier sent"
    );
    assert_eq!(call_api(&provider, &host, &config).0, 200);

    host.advance(3600);
    assert_eq!(call_api(&provider, &host, &config).0, 200);
    assert_eq!(provider.token_request_count("refresh_token"), 1);
}

#[test]
fn forget_token_after_401_refreshes_or_refetches() {
    let provider = start_provider();
    let host = Host::new();
    let password = config(&provider, GrantType::Password);
    let client = config(&provider, GrantType::ClientCredentials);
    assert_eq!(call_api(&provider, &host, &password).0, 200);
    assert_eq!(call_api(&provider, &host, &client).0, 200);

    provider.expire_all_access_tokens();
    assert_eq!(
        call_api(&provider, &host, &password).0,
        401,
        "the cached token is still served"
    );
    for config in [&password, &client] {
        plugin().forget_token(&host.services, config, None).unwrap();
        assert_eq!(call_api(&provider, &host, config).0, 200);
    }
    assert_eq!(provider.token_request_count("refresh_token"), 1);
    assert_eq!(provider.token_request_count("client_credentials"), 2);
    assert_eq!(provider.token_request_count("password"), 1);
}

/// Two steps that sent the same token both meet a 401: the first to forget it gets a new one,
/// and the second, whose `forget-token` names the token it sent, keeps that new one.
#[test]
fn steps_that_meet_the_same_401_fetch_one_new_token() {
    let provider = start_provider();
    let host = Host::new();
    let client = config(&provider, GrantType::ClientCredentials);
    let sent = plugin()
        .ensure_token(&host.services, &client)
        .unwrap()
        .access_token;
    let refused = format!("Bearer {}", sent.secret());
    provider.expire_all_access_tokens();
    for _ in 0..2 {
        plugin()
            .forget_token(&host.services, &client, Some(&refused))
            .unwrap();
        assert_eq!(call_api(&provider, &host, &client).0, 200);
    }
    assert_eq!(provider.token_request_count("client_credentials"), 2);
}

#[test]
fn revoked_refresh_token_asks_to_authorize_again_and_keeps_the_store() {
    let provider = start_provider();
    let host = Host::new();
    let config = config(&provider, GrantType::AuthorizationCode);
    authorize(&provider, &host, &config);

    provider.revoke_all();
    host.advance(3600);
    let before = host.snapshot();
    let err = plugin().ensure_token(&host.services, &config).unwrap_err();
    match &err {
        CallError::OAuth(OauthError::AuthorizationRequired(reason)) => {
            assert!(reason.contains("invalid_grant"), "{reason}");
            assert!(reason.contains("authorize again"), "{reason}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(host.snapshot(), before);
}

#[test]
fn special_characters_in_secrets_survive_both_client_auth_styles() {
    // The provider url-decodes Basic credentials per RFC 6749 §2.3.1; the test client's secret
    // is "s3cr:t/+&%= ~" and the password "wonder land&=".
    for client_auth in [ClientAuth::Basic, ClientAuth::RequestBody] {
        let provider = start_provider();
        let host = Host::new();
        let mut config = config(&provider, GrantType::Password);
        config.client_auth = client_auth;
        let token = plugin().ensure_token(&host.services, &config);
        assert!(token.is_ok(), "{client_auth:?}: {:?}", token.err());
    }
}

#[test]
fn missing_secret_names_the_field_and_sends_nothing() {
    let provider = start_provider();
    let host = Host::new();
    host.store.remove("alice-password").unwrap();
    let config = config(&provider, GrantType::Password);
    match plugin().ensure_token(&host.services, &config).unwrap_err() {
        CallError::OAuth(OauthError::MissingSecret(m)) => {
            assert_eq!(
                (m.field.as_str(), m.name.as_str()),
                ("password", "alice-password")
            );
        }
        other => panic!("{other}"),
    }
    assert!(provider.token_requests().is_empty());
}
