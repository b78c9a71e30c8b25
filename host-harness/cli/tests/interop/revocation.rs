//! Case 5: tokens revoked at the server (RFC 7009). `oauth2-host call` meets the API's 401,
//! forgets the token and fetches a new one (client credentials), or ends in a clear "authorize
//! again" (authorization code, whose refresh token was revoked too).

use oauth2_runtime::ClientAuth;

use crate::authorization_code::authorized;
use crate::cli::Scratch;
use crate::consent::Driver;
use crate::server::{Kind, Server, WEB_CLIENT};

fn client_credentials_fetches_anew(kind: Kind) {
    let server = Server::start(kind);
    let scratch = Scratch::new(&server);
    let client = kind.service_client(ClientAuth::Basic);
    let connection = scratch.connection(&server.connection("client_credentials", client));
    let call = ["call", "--config", &connection, &server.api_url()];

    // The user's way to see the token: only --reveal prints it.
    let out = scratch.run(&["token", "--config", &connection, "--reveal"]);
    out.assert_success("token --reveal");
    let summary: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let revoked = summary["access_token"].as_str().unwrap().to_owned();
    scratch.run(&call).assert_success("call");
    server.revoke(client, &revoked);

    let out = scratch.run(&call);
    out.assert_success("call after revocation");
    assert!(
        out.stderr.contains("HTTP 401 on the first try"),
        "{}",
        out.stderr
    );
    assert_ne!(
        scratch.token()["access_token"],
        revoked.as_str(),
        "a new token is stored"
    );
}
on_both_servers!(client_credentials_fetches_anew);

fn authorization_code_asks_to_authorize_again(kind: Kind) {
    let server = Server::start(kind);
    let (scratch, connection) = authorized(&server, Driver::CookieJar);
    let call = ["call", "--config", &connection, &server.api_url()];
    scratch.run(&call).assert_success("call");

    // As when a user removes the app's access: both tokens go (revoking the refresh token does
    // not revoke the access token at every server).
    let token = scratch.token();
    for field in ["access_token", "refresh_token"] {
        server.revoke(WEB_CLIENT, token[field].as_str().unwrap());
    }

    let out = scratch.run(&call);
    out.assert_failure("call with revoked tokens");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("error: authorization required: the provider refused the refresh token")
            && out.stderr.contains("invalid_grant")
            && out
                .stderr
                .contains("authorize again (run: oauth2-host authorize)"),
        "{}",
        out.stderr
    );
}
on_both_servers!(authorization_code_asks_to_authorize_again);
