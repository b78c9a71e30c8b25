//! Client assertions and the JWT bearer grant (RFC 7523): `private_key_jwt` with RS256, PS256
//! and ES256 keys the host signs with (the component never holds them), `client_secret_jwt`
//! (HS256), for client credentials, the code exchange and refresh; Authlib's JWT bearer grant,
//! for the client itself and for a user. Each ends with the protected API accepting the token;
//! each refusal (wrong key, wrong audience, expired assertion) names the code and what to check.

use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, SystemTime};

use oauth2_runtime::{CallError, ManualClock, OauthError, SigningError};
use serde_json::{Value, json};

use crate::cli::Scratch;
use crate::consent::Driver;
use crate::errors::{assert_provider, refused};
use crate::host::{self, Host, plugin};
use crate::server::{
    API_RESOURCE, CLIENT_SECRET_JWT_CLIENT, JWT_BEARER_CLIENT, Kind, PRIVATE_KEY_JWT_CLIENT,
    Server, Settings, USERNAME,
};

/// A client credentials connection of `client`'s, asking for the protected API.
fn for_api(server: &Server, client: crate::server::Client) -> Value {
    let mut connection = server.connection("client_credentials", client);
    connection["scope"] = server.kind.api_scope().into();
    connection["resource"] = json!([API_RESOURCE]);
    connection
}

fn private_key_jwt_with_each_algorithm(kind: Kind) {
    let server = Server::start(kind);
    // The certificate key has no key_id: the header's x5t#S256 names it.
    for (key, alg, key_id) in [
        ("rsa-key", "RS256", Some("rsa-1")),
        ("rsa-key", "PS256", Some("rsa-1")),
        ("ec-key", "ES256", Some("ec-1")),
        ("rsa-cert-key", "RS256", None),
    ] {
        let host = Host::new(&server);
        let mut connection = for_api(&server, PRIVATE_KEY_JWT_CLIENT);
        connection["private_key"] = key.into();
        connection["signing_alg"] = alg.into();
        match key_id {
            Some(id) => connection["key_id"] = id.into(),
            None => drop(connection.as_object_mut().unwrap().remove("key_id")),
        }
        let config = host::config(&connection);
        let response = host.get(&config, &server.api_url());
        assert_eq!(response.status, 200, "{key} {alg}");
        assert_eq!(
            host::json(&response)["client_id"],
            PRIVATE_KEY_JWT_CLIENT.id,
            "{key} {alg}"
        );
    }
}
on_both_servers!(private_key_jwt_with_each_algorithm);

fn client_secret_jwt_through_the_command(kind: Kind) {
    let server = Server::start(kind);
    let scratch = Scratch::new(&server);
    let connection = scratch.connection(&for_api(&server, CLIENT_SECRET_JWT_CLIENT));
    let call = scratch.run(&["call", "--config", &connection, &server.api_url()]);
    call.assert_success("call");
    let body: Value = serde_json::from_str(&call.stdout).unwrap();
    assert_eq!(body["client_id"], CLIENT_SECRET_JWT_CLIENT.id);
}
on_both_servers!(client_secret_jwt_through_the_command);

/// Short enough to wait out, long enough to use a token right after it was issued.
const ACCESS_TOKEN_TTL: u64 = 2;

fn code_exchange_and_refresh_with_each_assertion(kind: Kind) {
    let server = Server::with(
        kind,
        Settings {
            access_token_ttl: ACCESS_TOKEN_TTL,
            ..Settings::default()
        },
    );
    for client in [PRIVATE_KEY_JWT_CLIENT, CLIENT_SECRET_JWT_CLIENT] {
        let host = Host::new(&server);
        let mut connection = server.connection("authorization_code", client);
        connection["resource"] = json!([API_RESOURCE]);
        let config = host::config(&connection);
        host.authorize(&server, &config);
        let first = host.token();
        assert_eq!(
            host.get(&config, &server.api_url()).status,
            200,
            "{client:?}"
        );

        sleep(Duration::from_secs(ACCESS_TOKEN_TTL) + Duration::from_millis(500));
        let response = host.get(&config, &server.api_url());
        assert_eq!(response.status, 200, "{client:?}: refreshed");
        assert_eq!(host::json(&response)["sub"], USERNAME);
        let second = host.token();
        assert_ne!(second["access_token"], first["access_token"], "{client:?}");
        assert_ne!(
            second["refresh_token"], first["refresh_token"],
            "{client:?}"
        );
    }
}
on_both_servers!(code_exchange_and_refresh_with_each_assertion);

fn refused_assertions_name_the_code_and_what_to_check(kind: Kind) {
    let server = Server::start(kind);
    let host = Host::new(&server);
    let base = for_api(&server, PRIVATE_KEY_JWT_CLIENT);
    let with = |changes: &[(&str, &str)]| {
        let mut connection = base.clone();
        for (key, value) in changes {
            connection[*key] = (*value).into();
        }
        connection
    };
    // A key the server does not hold for the client, and an audience it is not.
    for changes in [
        &[("private_key", "wrong-key")][..],
        &[("assertion_audience", "https://elsewhere.example/token")][..],
    ] {
        let error = refused(&host, &with(changes));
        assert_provider(
            &error,
            "invalid_client",
            "public key (or certificate) of private_key",
        );
    }

    // An assertion that expired before it was sent: the host's clock is an hour behind.
    let mut late = Host::new(&server);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    late.services.clock = Arc::new(ManualClock::at_unix(now - 3600));
    let error = refused(&late, &base);
    assert_provider(&error, "invalid_client", "this machine's clock");

    // A key that cannot sign with the configured algorithm never reaches the provider.
    let error = refused(
        &host,
        &with(&[("private_key", "ec-key"), ("signing_alg", "RS256")]),
    );
    assert!(
        matches!(&error, OauthError::Signing(SigningError::WrongAlgorithm(m)) if m.contains("ES256")),
        "{error:?}"
    );
    let error = refused(&host, &with(&[("private_key", "no-such-key")]));
    assert!(
        matches!(&error, OauthError::Signing(SigningError::UnknownKey(_))),
        "{error:?}"
    );
}
on_both_servers!(refused_assertions_name_the_code_and_what_to_check);

/// Authlib's JWT bearer grant: the client's own token without `subject`, alice's with it.
#[test]
fn jwt_bearer_grant_for_the_client_and_for_a_user() {
    let server = Server::start(Kind::Authlib);
    let scratch = Scratch::new(&server);
    scratch.store_keys();
    for (subject, expected_sub) in [(None, Value::Null), (Some(USERNAME), json!(USERNAME))] {
        let mut connection = json!({
            "grant_type": "jwt_bearer",
            "token_url": server.token_url(),
            "client_id": JWT_BEARER_CLIENT,
            "private_key": "ec-key",
            "signing_alg": "ES256",
            "key_id": "ec-1",
            "scope": "read",
        });
        if let Some(subject) = subject {
            connection["subject"] = subject.into();
        }
        let path = scratch.connection(&connection);
        let call = scratch.run(&["call", "--config", &path, &server.api_url()]);
        call.assert_success("call");
        let body: Value = serde_json::from_str(&call.stdout).unwrap();
        assert_eq!(body["client_id"], JWT_BEARER_CLIENT);
        assert_eq!(body["sub"], expected_sub, "subject {subject:?}");
        let token = scratch
            .tokens()
            .into_iter()
            .find(|t| t["refresh_token"].is_null())
            .expect("a token without a refresh token is stored");
        assert!(token["access_token"].is_string());
    }
}

#[test]
fn jwt_bearer_refusals_give_invalid_grant_and_the_hint() {
    let server = Server::start(Kind::Authlib);
    let host = Host::new(&server);
    let base = json!({
        "grant_type": "jwt_bearer",
        "token_url": server.token_url(),
        "client_id": JWT_BEARER_CLIENT,
        "private_key": "rsa-key",
        "key_id": "rsa-1",
        "scope": "read",
    });
    let with = |key: &str, value: &str| {
        let mut connection = base.clone();
        connection[key] = value.into();
        connection
    };
    for connection in [
        with("private_key", "wrong-key"),
        with("assertion_audience", &server.issuer()),
        with("subject", "mallory"),
    ] {
        let error = refused(&host, &connection);
        assert_provider(&error, "invalid_grant", "the key registered for client_id");
    }
    let error = refused(&host, &with("scope", "admin"));
    assert_provider(&error, "invalid_scope", "scope");
}

/// The authorization code flow through the command with a private_key_jwt client, ending in an
/// API call.
fn authorize_with_private_key_jwt_through_the_command(kind: Kind) {
    let server = Server::start(kind);
    let scratch = Scratch::new(&server);
    scratch.store_keys();
    let mut connection = server.connection("authorization_code", PRIVATE_KEY_JWT_CLIENT);
    connection["resource"] = json!([API_RESOURCE]);
    let path = scratch.connection(&connection);
    let (authorize, consent) = scratch.authorize(&server, &path, Driver::CookieJar, 30);
    consent.assert_success("the consent driver");
    authorize.assert_success("authorize");
    let call = scratch.run(&["call", "--config", &path, &server.api_url()]);
    call.assert_success("call");
    let body: Value = serde_json::from_str(&call.stdout).unwrap();
    assert_eq!(body["client_id"], PRIVATE_KEY_JWT_CLIENT.id);
}
on_both_servers!(authorize_with_private_key_jwt_through_the_command);

/// The signing error never names the key's content.
#[test]
fn a_secret_that_is_no_key_is_refused_without_showing_it() {
    let server = Server::start(Kind::Authlib);
    let host = Host::new(&server);
    host.set_secret("not-a-key", "SENTINEL-not-a-pem");
    let mut connection = for_api(&server, PRIVATE_KEY_JWT_CLIENT);
    connection["private_key"] = "not-a-key".into();
    let error = plugin()
        .ensure_token(&host.services, &host::config(&connection))
        .expect_err("no key, no token");
    let CallError::OAuth(OauthError::Signing(SigningError::UnusableKey(message))) = &error else {
        panic!("{error:?}");
    };
    assert!(!message.contains("SENTINEL"), "{message}");
    assert!(error.to_string().contains("PKCS#8"), "{error}");
}

/// The host's `x5t#S256` for a key stored with its certificate is the one Python's
/// cryptography computes for that certificate (the JWKS of the kit).
#[test]
fn the_certificate_thumbprint_matches_an_independent_one() {
    let jwks: Value = serde_json::from_str(
        &std::fs::read_to_string(crate::server::keys().join("jwks.json")).unwrap(),
    )
    .unwrap();
    let expected = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["kid"] == "rsa-1")
        .and_then(|key| key["x5t#S256"].as_str())
        .expect("the kit's RSA key has a thumbprint");
    let described = oauth2_runtime::signing::describe(
        &crate::server::key_pem("rsa-cert.pem"),
        oauth2_runtime::SigningAlgorithm::Rs256,
    )
    .unwrap();
    assert_eq!(described.certificate_sha256.as_deref(), Some(expected));
    let without = oauth2_runtime::signing::describe(
        &crate::server::key_pem("rsa.pem"),
        oauth2_runtime::SigningAlgorithm::Ps256,
    )
    .unwrap();
    assert_eq!(without.certificate_sha256, None);
}
