//! Case 3: authorization code with PKCE through `oauth2-host authorize`, the login and consent
//! pages completed by a cookie-jar HTTP client and by headless Chromium; then `call` succeeds.

use crate::cli::Scratch;
use crate::consent::Driver;
use crate::server::{Kind, Server, USERNAME, WEB_CLIENT};

/// Authorizes `web-client` with `driver`; returns the folder with the stored token and the
/// connection file.
pub fn authorized(server: &Server, driver: Driver) -> (Scratch, String) {
    let scratch = Scratch::new(server);
    let connection = scratch.connection(&server.connection("authorization_code", WEB_CLIENT));
    let (authorize, consent) = scratch.authorize(server, &connection, driver, 30);
    consent.assert_success("the consent driver");
    authorize.assert_success("authorize");
    assert!(
        authorize.stderr.contains("authorized: Bearer token stored"),
        "{}",
        authorize.stderr
    );
    assert!(
        scratch.token()["refresh_token"].is_string(),
        "a refresh token is stored with the access token"
    );
    (scratch, connection)
}

fn authorize_then_call(server: &Server, driver: Driver) {
    let (scratch, connection) = authorized(server, driver);
    let out = scratch.run(&["call", "--config", &connection, &server.api_url()]);
    out.assert_success("call");
    let body: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        (body["client_id"].as_str(), body["sub"].as_str()),
        (Some(WEB_CLIENT.id), Some(USERNAME))
    );
}

fn cookie_jar(kind: Kind) {
    authorize_then_call(&Server::start(kind), Driver::CookieJar);
}
on_both_servers!(cookie_jar);

fn chromium(kind: Kind) {
    authorize_then_call(&Server::start(kind), Driver::Browser);
}
on_both_servers!(chromium);
