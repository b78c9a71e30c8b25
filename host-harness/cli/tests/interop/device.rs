//! The device authorization grant (RFC 8628): `oauth2-host device` prints the verification URI
//! and the user code, one per line, the user approves on the server's own pages (or declines),
//! and the stored token calls the API; through the library, `slow_down` and an expired code
//! come back as typed answers.

use std::thread::sleep;
use std::time::Duration;

use oauth2_runtime::DevicePoll;
use serde_json::{Value, json};

use crate::cli::Scratch;
use crate::host::{self, Host, plugin};
use crate::server::{API_RESOURCE, DEVICE_CLIENT, Kind, Server, Settings, USERNAME};

fn connection(server: &Server) -> Value {
    json!({
        "grant_type": "device_code",
        "token_url": server.token_url(),
        "device_authorization_url": server.url("device_authorization_url"),
        "revocation_url": server.url("revocation_url"),
        "client_id": DEVICE_CLIENT,
        "scope": match server.kind {
            Kind::OidcProvider => "openid offline_access api:read",
            Kind::Authlib => "read",
        },
        "resource": [API_RESOURCE],
    })
}

fn approved_then_the_api_then_revoked(kind: Kind) {
    let server = Server::start(kind);
    let scratch = Scratch::new(&server);
    let path = scratch.connection(&connection(&server));
    let (out, [uri, user_code]) = scratch.device(&server, &path, true);
    out.assert_success("device");
    assert!(
        uri.starts_with(&server.issuer()) && !uri.contains(' '),
        "the first line is the verification URI alone: {uri:?}"
    );
    assert!(
        !user_code.is_empty() && !user_code.contains(' '),
        "the second line is the user code alone: {user_code:?}"
    );
    let token = scratch.token();
    assert!(token["refresh_token"].is_string(), "{token}");

    let call = scratch.run(&["call", "--config", &path, &server.api_url()]);
    call.assert_success("call");
    let body: Value = serde_json::from_str(&call.stdout).unwrap();
    assert_eq!(body["sub"], USERNAME);

    let revoke = scratch.run(&["revoke", "--config", &path]);
    revoke.assert_success("revoke");
    assert_eq!(
        serde_json::from_str::<Value>(&revoke.stdout).unwrap(),
        json!({"refresh_token": "revoked", "access_token": "revoked"})
    );
    assert!(scratch.tokens().is_empty(), "the store holds no token");
    let after = scratch.run(&["token", "--config", &path]);
    after.assert_failure("token after revoke");
    assert!(
        after.stderr.contains("authorization required")
            && after.stderr.contains("oauth2-host device"),
        "{}",
        after.stderr
    );
}
on_both_servers!(approved_then_the_api_then_revoked);

fn declined_exits_naming_the_code(kind: Kind) {
    let server = Server::start(kind);
    let scratch = Scratch::new(&server);
    let path = scratch.connection(&connection(&server));
    let (out, _) = scratch.device(&server, &path, false);
    out.assert_failure("device, declined");
    assert!(
        out.stderr.contains("access_denied") && out.stderr.contains("declined"),
        "{}",
        out.stderr
    );
    assert!(scratch.tokens().is_empty(), "nothing stored");
}
on_both_servers!(declined_exits_naming_the_code);

fn an_expired_code_is_a_typed_answer(kind: Kind) {
    let server = Server::with(
        kind,
        Settings {
            device_expires_in: 2,
            ..Settings::default()
        },
    );
    let host = Host::new(&server);
    let config = host::config(&connection(&server));
    let started = plugin()
        .start_device_authorization(&host.services, &config)
        .expect("the device authorization starts");
    assert!(started.expires_at > 0 && started.interval_seconds >= 1);
    sleep(Duration::from_secs(3));
    match plugin()
        .poll_device_authorization(&host.services, &config, &started.device_code)
        .expect("a poll answers")
    {
        DevicePoll::Expired(e) => {
            assert_eq!(e.code, "expired_token");
            assert!(
                e.hint.contains("start the device authorization again"),
                "{}",
                e.hint
            );
        }
        other => panic!("expected expired, got {other:?}"),
    }
}
on_both_servers!(an_expired_code_is_a_typed_answer);

/// Authlib answers a poll sooner than the interval with `slow_down`.
#[test]
fn polling_too_fast_is_told_to_slow_down() {
    let server = Server::start(Kind::Authlib);
    let host = Host::new(&server);
    let config = host::config(&connection(&server));
    let started = plugin()
        .start_device_authorization(&host.services, &config)
        .expect("the device authorization starts");
    let poll = || {
        plugin()
            .poll_device_authorization(&host.services, &config, &started.device_code)
            .expect("a poll answers")
    };
    assert_eq!(poll(), DevicePoll::Pending);
    assert_eq!(poll(), DevicePoll::SlowDown);
    assert!(host.tokens().is_empty());
}

/// `oauth2-host validate` on a device code connection: the URI and the user code come first on
/// stdout, as `device` prints them; once the user approves, the checklist runs to the end.
#[test]
fn validate_runs_the_device_approval() {
    let server = Server::start(Kind::Authlib);
    let scratch = Scratch::new(&server);
    let path = scratch.connection(&connection(&server));
    let (out, [uri, user_code]) = scratch.validate_device(&server, &path);
    out.assert_success("validate");
    assert!(
        uri.contains(&user_code.replace('-', "")) || uri.contains(&user_code),
        "{uri} {user_code}"
    );
    for step in [
        "[pass] token:",
        "[pass] API call:",
        "[pass] after expiry: refreshed",
    ] {
        assert!(out.stdout.contains(step), "{step}:\n{}", out.stdout);
    }
}
