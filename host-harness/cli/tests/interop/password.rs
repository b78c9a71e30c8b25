//! Case 2: the password grant, at Authlib (oidc-provider has none: see the errors case). A wrong
//! password is refused with the provider's code and description and a hint, and is never shown.

use oauth2_runtime::{CallError, ClientAuth, OauthError};

use crate::cli::Scratch;
use crate::host::{self, Host, plugin};
use crate::server::{Kind, PASSWORD, Server, USERNAME};

const WRONG_PASSWORD: &str = "wonder land&=";

fn connection(server: &Server, password_name: &str) -> serde_json::Value {
    let mut connection =
        server.connection("password", Kind::Authlib.service_client(ClientAuth::Basic));
    connection["password"] = password_name.into();
    connection
}

#[test]
fn library_right_and_wrong_password() {
    let server = Server::start(Kind::Authlib);
    let host = Host::new(&server);
    host.set_secret("wrong-password", WRONG_PASSWORD);

    // The wrong one first: the token key does not depend on the password, so a token stored by
    // the right one would be served to the wrong one.
    let error = plugin()
        .ensure_token(
            &host.services,
            &host::config(&connection(&server, "wrong-password")),
        )
        .unwrap_err();
    let CallError::OAuth(OauthError::Provider(provider)) = &error else {
        panic!("expected the provider's error, got {error}");
    };
    // Authlib answers invalid_request where RFC 6749 §5.2 suggests invalid_grant.
    assert_eq!(
        (provider.status, provider.code.as_str()),
        (400, "invalid_request")
    );
    let line = error.to_string();
    assert!(line.contains("Invalid 'username' or 'password'"), "{line}");
    assert!(
        line.contains("answer a wrong username or password with invalid_request"),
        "the hint for the password grant: {line}"
    );
    assert!(
        !line.contains(WRONG_PASSWORD) && !line.contains(PASSWORD),
        "{line}"
    );
    assert!(host.tokens().is_empty(), "a refused grant stores nothing");

    let config = host::config(&connection(&server, "alice-password"));
    let response = host.get(&config, &server.api_url());
    assert_eq!(response.status, 200);
    assert_eq!(host::json(&response)["sub"], USERNAME);
}

#[test]
fn cli_right_and_wrong_password() {
    let server = Server::start(Kind::Authlib);
    let scratch = Scratch::new(&server);
    scratch.set_secret("wrong-password", WRONG_PASSWORD);

    let wrong = scratch.connection(&connection(&server, "wrong-password"));
    let out = scratch.run(&["token", "--config", &wrong]);
    out.assert_failure("token with a wrong password");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.starts_with(
            "error: token endpoint answered 400 invalid_request: Invalid 'username' or 'password'"
        ),
        "{}",
        out.stderr
    );
    assert!(scratch.tokens().is_empty());

    let right = scratch.connection(&connection(&server, "alice-password"));
    let out = scratch.run(&["call", "--config", &right, &server.api_url()]);
    out.assert_success("call with the right password");
    assert!(out.stdout.contains(r#""sub":"alice""#), "{}", out.stdout);
}
