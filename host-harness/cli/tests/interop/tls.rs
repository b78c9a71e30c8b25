//! The TLS path, for real: Authlib over https with a certificate from a CA made for the test,
//! trusted through `UreqClient::with_extra_ca` and `oauth2-host --ca-cert`, and refused with a
//! TLS error by a client that does not trust it.

use oauth2_runtime::{CallError, ClientAuth, OauthError, TransportError, UreqClient};

use crate::cli::Scratch;
use crate::consent::Driver;
use crate::host::{self, Host, plugin};
use crate::server::{Kind, Server, Settings, USERNAME, WEB_CLIENT};

fn https_server() -> Server {
    let server = Server::with(
        Kind::Authlib,
        Settings {
            tls: true,
            ..Settings::default()
        },
    );
    assert!(
        server.token_url().starts_with("https://127.0.0.1:"),
        "{}",
        server.token_url()
    );
    server
}

#[test]
fn library_client_credentials_and_password() {
    let server = https_server();
    let client = Kind::Authlib.service_client(ClientAuth::Basic);
    let client_credentials = host::config(&server.connection("client_credentials", client));

    let untrusting = Host::with_http(&server, UreqClient::new());
    match plugin().ensure_token(&untrusting.services, &client_credentials) {
        Err(CallError::OAuth(OauthError::Transport(TransportError::Tls(_)))) => {}
        other => panic!("expected a TLS error, got {other:?}"),
    }

    let host = Host::new(&server);
    let mut password = server.connection("password", client);
    password["password"] = "alice-password".into();
    for (config, subject) in [
        (client_credentials, None),
        (host::config(&password), Some(USERNAME)),
    ] {
        let response = host.get(&config, &server.api_url());
        assert_eq!(response.status, 200);
        assert_eq!(host::json(&response)["sub"].as_str(), subject);
    }
}

#[test]
fn cli_token_call_and_authorize() {
    let server = https_server();
    let scratch = Scratch::new(&server);
    let connection = server.connection(
        "client_credentials",
        Kind::Authlib.service_client(ClientAuth::Basic),
    );
    let path = scratch.connection(&connection);

    let out = scratch.run_without_ca(&["token", "--config", &path]);
    out.assert_failure("token without the CA");
    assert!(
        out.stderr
            .starts_with("error: could not reach the token endpoint: TLS failed"),
        "{}",
        out.stderr
    );

    let out = scratch.run(&["call", "--config", &path, &server.api_url()]);
    out.assert_success("call with --ca-cert");

    let path = scratch.connection(&server.connection("authorization_code", WEB_CLIENT));
    let (authorize, consent) = scratch.authorize(&server, &path, Driver::CookieJar, 30);
    consent.assert_success("the consent driver with the CA");
    authorize.assert_success("authorize over https");
    let out = scratch.run(&["call", "--config", &path, &server.api_url()]);
    out.assert_success("call with the authorized token");
    assert!(out.stdout.contains(r#""sub":"alice""#), "{}", out.stdout);
}
