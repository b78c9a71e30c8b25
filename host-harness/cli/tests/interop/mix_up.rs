//! The mix-up defence (RFC 9207): with `issuer` configured, the authorization response must
//! name it in `iss`. oidc-provider sends `iss`; Authlib's server does not.

use oauth2_runtime::{CallError, OauthError};

use crate::host::{self, Host};
use crate::server::{Kind, Server, WEB_CLIENT};

#[test]
fn the_configured_issuer_is_accepted_and_another_is_refused() {
    let server = Server::start(Kind::OidcProvider);
    let host = Host::new(&server);
    let mut connection = server.connection("authorization_code", WEB_CLIENT);
    connection["issuer"] = server.issuer().into();
    host.authorize(&server, &host::config(&connection));
    assert!(host.token()["access_token"].is_string());

    let host = Host::new(&server);
    connection["issuer"] = "https://idp.example.com".into();
    let error = host
        .try_authorize(&server, &host::config(&connection))
        .expect_err("another issuer answered");
    let CallError::OAuth(OauthError::IssuerMismatch(mismatch)) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(mismatch.expected, "https://idp.example.com");
    assert_eq!(mismatch.received.as_deref(), Some(server.issuer().as_str()));
    let line = error.to_string();
    assert!(
        line.contains("https://idp.example.com") && line.contains(&server.issuer()),
        "the message names both: {line}"
    );
    assert!(host.tokens().is_empty(), "the code was not used");
}

#[test]
fn a_response_without_iss_is_refused_when_an_issuer_is_configured() {
    let server = Server::start(Kind::Authlib);
    let host = Host::new(&server);
    let mut connection = server.connection("authorization_code", WEB_CLIENT);
    connection["issuer"] = server.issuer().into();
    let error = host
        .try_authorize(&server, &host::config(&connection))
        .expect_err("no iss came");
    let CallError::OAuth(OauthError::IssuerMismatch(mismatch)) = &error else {
        panic!("{error:?}");
    };
    assert_eq!(mismatch.received, None);
    assert!(error.to_string().contains("carries no iss"), "{error}");
    assert!(host.tokens().is_empty());
}
