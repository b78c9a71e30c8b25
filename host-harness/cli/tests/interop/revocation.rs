//! Case 5: tokens revoked (RFC 7009). At the server behind our back: `oauth2-host call` meets
//! the API's 401, forgets the token and fetches a new one (client credentials), or ends in a
//! clear "authorize again" (authorization code, whose refresh token was revoked too). By the
//! user, with `oauth2-host revoke`: the server confirms and the store is emptied, or, when the
//! server does not confirm, the store is emptied and the command says so.

use oauth2_runtime::ClientAuth;
use serde_json::{Value, json};

use crate::authorization_code::authorized;
use crate::cli::Scratch;
use crate::consent::Driver;
use crate::host::{self, Host};
use crate::server::{API_RESOURCE, Kind, PRIVATE_KEY_JWT_CLIENT, Server, WEB_CLIENT, header};

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

/// `oauth2-host revoke` (RFC 7009) with the connection's client authentication, a
/// `private_key_jwt` assertion here: the server confirms, the token no longer opens the API,
/// and the store holds no token.
fn revoke_command_with_a_client_assertion(kind: Kind) {
    let server = Server::start(kind);
    let scratch = Scratch::new(&server);
    scratch.store_keys();
    let mut connection = server.connection("client_credentials", PRIVATE_KEY_JWT_CLIENT);
    connection["scope"] = kind.api_scope().into();
    connection["resource"] = json!([API_RESOURCE]);
    connection["revocation_url"] = server.url("revocation_url").into();
    let path = scratch.connection(&connection);
    let out = scratch.run(&["token", "--config", &path, "--reveal"]);
    out.assert_success("token --reveal");
    let summary: Value = serde_json::from_str(&out.stdout).unwrap();
    let access_token = summary["access_token"].as_str().unwrap().to_owned();

    let revoke = scratch.run(&["revoke", "--config", &path]);
    revoke.assert_success("revoke");
    assert_eq!(
        serde_json::from_str::<Value>(&revoke.stdout).unwrap(),
        json!({"refresh_token": "none stored", "access_token": "revoked"})
    );
    assert!(scratch.tokens().is_empty(), "the store holds no token");
    let mut stale = host::get(&server.api_url());
    stale
        .headers
        .push(header("Authorization", &format!("Bearer {access_token}")));
    assert_eq!(
        Host::new(&server).send(&stale).status,
        401,
        "revoked at the server"
    );
}
on_both_servers!(revoke_command_with_a_client_assertion);

/// A revocation endpoint that does not answer as one: the tokens leave the store all the same,
/// the command says the provider did not confirm and exits non-zero.
fn revoke_without_confirmation_still_removes_the_tokens(kind: Kind) {
    let server = Server::start(kind);
    let (scratch, _) = authorized(&server, Driver::CookieJar);
    let mut connection = server.connection("authorization_code", WEB_CLIENT);
    connection["revocation_url"] = format!("{}/no-such-endpoint", server.issuer()).into();
    let path = scratch.connection(&connection);
    assert_eq!(scratch.tokens().len(), 1);
    let revoke = scratch.run(&["revoke", "--config", &path]);
    revoke.assert_failure("revoke at a non-endpoint");
    assert!(
        revoke
            .stderr
            .contains("refresh_token: removed from the store, but the provider did not confirm"),
        "{}",
        revoke.stderr
    );
    assert!(scratch.tokens().is_empty(), "the store holds no token");
    let after = scratch.run(&["token", "--config", &path]);
    after.assert_failure("token after revoke");
    assert!(
        after.stderr.contains("authorization required"),
        "{}",
        after.stderr
    );
}
on_both_servers!(revoke_without_confirmation_still_removes_the_tokens);
