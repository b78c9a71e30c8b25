//! Case 6: the errors users meet, each with its code and hint, nothing stored and no secret
//! shown: wrong client secret, unknown scope, grant not allowed, a token URL that is not a token
//! endpoint (through the library), and a wrong client secret and an unregistered redirect URI
//! (through the command, whose errors are one line).

use oauth2_runtime::{CallError, ClientAuth, OauthError};
use serde_json::Value;

use crate::cli::Scratch;
use crate::consent::Driver;
use crate::host::{self, Host, plugin};
use crate::server::{Kind, Server, WEB_CLIENT, free_port};

const WRONG_SECRET: &str = "n0t:the/secret";

/// Fetches a token for `connection`, which must fail; checks that nothing was stored and that
/// the message shows nothing from the store.
pub fn refused(host: &Host, connection: &Value) -> OauthError {
    let error = plugin()
        .ensure_token(&host.services, &host::config(connection))
        .expect_err("the server refuses");
    let line = error.to_string();
    for secret in host.values() {
        assert!(!line.contains(&secret), "{line}");
    }
    assert!(host.tokens().is_empty(), "stored after {line}");
    match error {
        CallError::OAuth(error) => error,
        other => panic!("the component failed: {other}"),
    }
}

/// Asserts a provider error's code and that its hint contains `hint`.
pub fn assert_provider(error: &OauthError, code: &str, hint: &str) {
    match error {
        OauthError::Provider(p) => {
            assert_eq!(p.code, code, "{error:?}");
            assert!(p.hint.contains(hint), "{code}: {}", p.hint);
        }
        other => panic!("expected {code}, got {other:?}"),
    }
}

fn library(kind: Kind) {
    let server = Server::start(kind);
    let host = Host::new(&server);
    host.set_secret("wrong-secret", WRONG_SECRET);
    let client = kind.service_client(ClientAuth::Basic);
    let base = server.connection("client_credentials", client);
    let with = |key: &str, value: &str| {
        let mut connection = base.clone();
        connection[key] = value.into();
        connection
    };

    let error = refused(&host, &with("client_secret", "wrong-secret"));
    assert_provider(
        &error,
        "invalid_client",
        "check the client ID and client secret",
    );

    // oidc-provider silently drops scopes it has never heard of; it refuses a known scope that
    // this client may not have.
    let scope = match kind {
        Kind::OidcProvider => "openid",
        Kind::Authlib => "no-such-scope",
    };
    let error = refused(&host, &with("scope", scope));
    assert_provider(
        &error,
        "invalid_scope",
        "does not allow this scope for this client",
    );

    // oidc-provider has no password grant at all; Authlib's web client may not use client
    // credentials. (oidc-provider answers the latter with invalid_request.)
    let (connection, code) = match kind {
        Kind::OidcProvider => {
            let mut connection = server.connection("password", client);
            connection["password"] = "alice-password".into();
            (connection, "unsupported_grant_type")
        }
        Kind::Authlib => (
            server.connection("client_credentials", WEB_CLIENT),
            "unauthorized_client",
        ),
    };
    let error = refused(&host, &connection);
    assert_provider(&error, code, "grant type");

    // A path that is not the token endpoint: Authlib's Flask answers with an HTML 404 page,
    // oidc-provider's Koa with a plain-text one.
    let error = refused(
        &host,
        &with("token_url", &format!("{}/oauth/token", server.issuer())),
    );
    match &error {
        OauthError::MalformedResponse(r) => {
            assert_eq!(r.status, 404, "{r:?}");
            assert!(
                r.hint.contains("does not look like a token endpoint"),
                "{}",
                r.hint
            );
            if kind == Kind::Authlib {
                assert!(
                    r.content_type
                        .as_deref()
                        .unwrap_or_default()
                        .starts_with("text/html"),
                    "{r:?}"
                );
            }
        }
        other => panic!("expected a malformed response, got {other:?}"),
    }
}
on_both_servers!(library);

fn cli(kind: Kind) {
    let server = Server::start(kind);
    let scratch = Scratch::new(&server);
    scratch.set_secret("wrong-secret", WRONG_SECRET);

    let mut connection =
        server.connection("client_credentials", kind.service_client(ClientAuth::Basic));
    connection["client_secret"] = "wrong-secret".into();
    let path = scratch.connection(&connection);
    let out = scratch.run(&["token", "--config", &path]);
    out.assert_failure("token with a wrong secret");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("error: token endpoint answered 401 invalid_client")
            && out.stderr.contains("Check the client ID and client secret"),
        "{}",
        out.stderr
    );
    assert!(scratch.tokens().is_empty());

    // A redirect URI the server does not have: it shows an error page instead of redirecting
    // (RFC 6749 §4.1.2.1), so nothing ever reaches authorize, which gives up and says why.
    let mut connection = server.connection("authorization_code", WEB_CLIENT);
    let unregistered = format!("http://127.0.0.1:{}/callback", free_port());
    connection["redirect_uri"] = unregistered.into();
    let path = scratch.connection(&connection);
    let (authorize, consent) = scratch.authorize(&server, &path, Driver::CookieJar, 5);
    consent.assert_failure("consent at an unregistered redirect URI");
    let page = match kind {
        Kind::OidcProvider => {
            "redirect_uri did not match any of the client's registered redirect_uris"
        }
        Kind::Authlib => "is not supported by client",
    };
    assert!(
        consent.stderr.contains(page),
        "the provider's page: {}",
        consent.stderr
    );
    authorize.assert_failure("authorize with an unregistered redirect URI");
    let line = authorize.stderr.lines().last().unwrap_or_default();
    assert!(
        line.starts_with("error: no browser redirect arrived within 5 s")
            && line.contains("redirect_uri must match one registered at the provider exactly"),
        "{}",
        authorize.stderr
    );
    assert!(scratch.tokens().is_empty());
}
on_both_servers!(cli);
