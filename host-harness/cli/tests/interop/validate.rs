//! `oauth2-host validate` against both real servers: each grant a server offers passes the
//! whole checklist (consent included, and the refresh after the expiry played forward), and a
//! failure at the token step and at the API step names what to check.

use oauth2_runtime::ClientAuth;
use serde_json::json;

use crate::cli::Scratch;
use crate::consent::Driver;
use crate::server::{API_RESOURCE, Kind, Server, USERNAME, WEB_CLIENT};

fn assert_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
}

fn client_credentials(kind: Kind) {
    let server = Server::start(kind);
    let scratch = Scratch::new(&server);
    let client = kind.service_client(ClientAuth::Basic);
    let mut connection = server.connection("client_credentials", client);
    connection["scope"] = kind.api_scope().into();
    connection["resource"] = json!([API_RESOURCE]);
    let path = scratch.connection(&connection);
    let api = server.api_url();
    let expect = format!("/client_id={}", client.id);
    let out = scratch.run(&[
        "validate",
        "--config",
        &path,
        "--api",
        &api,
        "--expect-json",
        &expect,
    ]);
    out.assert_success("validate");
    assert_lines(
        &out.stdout,
        &[
            "[pass] configuration: client_credentials",
            "[pass] token: fetched with client_credentials",
            "[pass] API call: HTTP 200",
            "[pass] after expiry: no refresh token: a new token was fetched with client_credentials",
            "[pass] API call after expiry: HTTP 200",
            "every step passed",
        ],
    );

    // The API answers, but not what the user expects of it.
    let out = scratch.run(&[
        "validate",
        "--config",
        &path,
        "--api",
        &api,
        "--expect-json",
        "/client_id=someone",
    ]);
    out.assert_failure("validate with a wrong expectation");
    assert_lines(
        &out.stdout,
        &["[FAIL] API call: HTTP 200", "expected /client_id = someone"],
    );

    // A wrong secret: the token step fails with the server's code and what to check.
    scratch.set_secret("wrong-secret", "not-the-client-secret");
    connection["client_secret"] = "wrong-secret".into();
    // Another audience, so the token stored above (keyed by every field but the secret) is not it.
    connection["audience"] = "https://wrong-secret.example".into();
    let path = scratch.connection(&connection);
    let out = scratch.run(&["validate", "--config", &path, "--api", &api]);
    out.assert_failure("validate with a wrong secret");
    assert_lines(
        &out.stdout,
        &[
            "[FAIL] token:",
            "invalid_client",
            "client ID and client secret",
        ],
    );
    assert!(!out.stdout.contains("API call"), "{}", out.stdout);
}
on_both_servers!(client_credentials);

#[test]
fn password_at_authlib() {
    let server = Server::start(Kind::Authlib);
    let scratch = Scratch::new(&server);
    let connection = server.connection("password", Kind::Authlib.service_client(ClientAuth::Basic));
    let path = scratch.connection(&connection);
    let expect = format!("/sub={USERNAME}");
    let out = scratch.run(&[
        "validate",
        "--config",
        &path,
        "--api",
        &server.api_url(),
        "--json",
        "--expect-json",
        &expect,
    ]);
    out.assert_success("validate");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["passed"], true, "{report}");
    let details: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["detail"].as_str().unwrap())
        .collect();
    assert_eq!(details.len(), 5, "{report}");
    assert!(details[1].starts_with("fetched with password"), "{report}");
    assert!(details[3].starts_with("refreshed;"), "{report}");
}

fn authorization_code(kind: Kind) {
    let server = Server::start(kind);
    let scratch = Scratch::new(&server);
    let path = scratch.connection(&server.connection("authorization_code", WEB_CLIENT));
    let (out, consent) = scratch.validate_with_consent(&server, &path, Driver::CookieJar);
    consent.assert_success("the consent driver");
    out.assert_success("validate");
    assert_lines(
        &out.stdout,
        &[
            "[pass] configuration: authorization_code",
            "[pass] token: fetched with authorization_code",
            "[pass] API call: HTTP 200",
            "[pass] after expiry: refreshed;",
            "[pass] API call after expiry: HTTP 200",
            "every step passed",
        ],
    );
}
on_both_servers!(authorization_code);
