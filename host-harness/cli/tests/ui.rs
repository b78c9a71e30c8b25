//! `oauth2-host ui` as a user meets it: the page driven in Debian's headless Chromium through
//! playwright-core for client credentials and for authorization code with consent in a new tab,
//! against the embedded provider; screenshots kept in `target/test-artifacts/ui/`. Then what the
//! page must refuse (no token, another `Host`, another `Origin`, a write without one) and what
//! it must never show (a secret, in its HTML, its API's answers or the saved file).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use oauth2_test_provider::{ConsentMode, Provider, ProviderConfig};

const CLIENT_SECRET: &str = "ui-client-secret-3f9d";
const PASSWORD: &str = "ui-password-8c21";

/// A running `oauth2-host ui`, stopped when dropped.
struct UiProcess {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl UiProcess {
    fn start(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("oauth2-host-ui-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = dir.join("store.json");
        let mut child = Command::new(env!("CARGO_BIN_EXE_oauth2-host"))
            .args(["ui", "--no-open", "--store"])
            .arg(&store)
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("oauth2-host starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line.trim().to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "{url:?}");
        Self { child, url, dir }
    }

    fn port(&self) -> u16 {
        let rest = self.url.strip_prefix("http://127.0.0.1:").unwrap();
        rest[..rest.find('/').unwrap()].parse().unwrap()
    }

    fn token(&self) -> &str {
        self.url.split_once("token=").unwrap().1
    }

    /// One raw request, so every header is exactly what the test says; the status and body.
    fn request(&self, head: &str, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let status = answer[9..12].parse().unwrap();
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    fn store_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("store.json")).unwrap_or_default()
    }
}

impl Drop for UiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts/ui")
}

/// The browser kit of the interop tests, which `tests/interop/setup.sh` installs.
fn kit() -> PathBuf {
    let kit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/browser");
    assert!(
        kit.join("node_modules/playwright-core").exists()
            && Path::new("/usr/bin/chromium").exists(),
        "playwright-core or chromium is missing: run tests/interop/setup.sh"
    );
    kit
}

/// Runs `ui.mjs` with `spec`; returns its summary, after checking that no secret reached the
/// page, its API's answers or the saved file.
fn drive(ui: &UiProcess, spec: serde_json::Value) -> serde_json::Value {
    let name = spec["name"].as_str().unwrap().to_owned();
    let output = Command::new("node")
        .arg(kit().join("ui.mjs"))
        .arg(&ui.url)
        .arg(spec.to_string())
        .arg(artifacts())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "ui.mjs failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let saved = std::fs::read_to_string(ui.dir.join(spec["file"].as_str().unwrap())).unwrap();
    let seen = [
        std::fs::read_to_string(artifacts().join(format!("{name}-responses.txt"))).unwrap(),
        std::fs::read_to_string(artifacts().join(format!("{name}.html"))).unwrap(),
        saved,
        stdout.into_owned(),
    ];
    for text in &seen {
        for secret in [CLIENT_SECRET, PASSWORD] {
            assert!(
                !text.contains(secret),
                "a secret reached the page or the file:\n{text}"
            );
        }
    }
    assert!(artifacts().join(format!("{name}.png")).exists());
    summary
}

fn passed_steps(summary: &serde_json::Value) -> Vec<String> {
    summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["passed"] == true)
        .map(|step| step["step"].as_str().unwrap().to_owned())
        .collect()
}

const ALL_STEPS: [&str; 5] = [
    "configuration",
    "token",
    "API call",
    "after expiry",
    "API call after expiry",
];

#[test]
fn a_client_credentials_connection_is_filled_in_tested_and_saved_in_the_browser() {
    let mut config = ProviderConfig::demo("http://127.0.0.1:9/callback");
    config.clients[0].secret = Some(CLIENT_SECRET.to_owned());
    let provider = Provider::start(config).unwrap();
    let ui = UiProcess::start("cc");
    let summary = drive(
        &ui,
        serde_json::json!({
            "name": "client-credentials",
            "fields": {
                "grant_type": "client_credentials",
                "token_url": provider.token_url(),
                "client_id": "demo-client",
                "scope": "read",
            },
            "secrets": [{"field": "client_secret", "name": "demo-client-secret", "value": CLIENT_SECRET}],
            "api": format!("{}/api/me", provider.base_url()),
            "file": "crm.json",
            "bad_token_url": "http://login.example.com/token",
        }),
    );
    let check_error = summary["check_error"].as_str().unwrap();
    assert!(
        check_error.contains("https"),
        "Check shows the problem by its field: {summary}"
    );
    assert_eq!(summary["result"], "passed", "{summary}");
    assert_eq!(passed_steps(&summary), ALL_STEPS, "{summary}");
    assert!(
        summary["saved"].as_str().unwrap().starts_with("Saved to"),
        "{summary}"
    );
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ui.dir.join("crm.json")).unwrap()).unwrap();
    assert_eq!(
        saved["client_secret"], "demo-client-secret",
        "the secret's name, not its value"
    );
    assert!(
        ui.store_text().contains(CLIENT_SECRET),
        "the value went to the store"
    );
}

#[test]
fn an_authorization_code_connection_gets_consent_in_a_new_tab() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redirect_uri = format!("http://127.0.0.1:{port}/callback");
    let mut config = ProviderConfig::demo(&redirect_uri);
    config.clients[0].secret = Some(CLIENT_SECRET.to_owned());
    config.consent = ConsentMode::Interactive;
    let provider = Provider::start(config).unwrap();
    let ui = UiProcess::start("ac");
    let summary = drive(
        &ui,
        serde_json::json!({
            "name": "authorization-code",
            "fields": {
                "grant_type": "authorization_code",
                "token_url": provider.token_url(),
                "authorization_url": provider.authorization_url(),
                "redirect_uri": redirect_uri,
                "client_id": "demo-client",
                "scope": "read",
            },
            "secrets": [{"field": "client_secret", "name": "demo-client-secret", "value": CLIENT_SECRET}],
            "api": format!("{}/api/me", provider.base_url()),
            "file": "app.json",
            "consent": true,
        }),
    );
    assert_eq!(summary["result"], "passed", "{summary}");
    assert_eq!(passed_steps(&summary), ALL_STEPS, "{summary}");
    assert!(
        summary["consent"]
            .as_str()
            .unwrap()
            .contains("The token is stored"),
        "{summary}"
    );
    assert_eq!(provider.token_request_count("authorization_code"), 1);
    assert_eq!(provider.token_request_count("refresh_token"), 1);
}

#[test]
fn the_page_refuses_requests_without_its_token_host_or_origin() {
    let ui = UiProcess::start("guard");
    let port = ui.port();
    let token = ui.token();
    let host = format!("Host: 127.0.0.1:{port}");
    let origin = format!("Origin: http://127.0.0.1:{port}");
    let with_token = format!("X-Launch-Token: {token}");
    let secret = format!(r#"{{"name":"n","value":"{PASSWORD}"}}"#);

    let (status, page) = ui.request(&format!("GET /?token={token} HTTP/1.1\r\n{host}"), "");
    assert_eq!(status, 200);
    assert!(page.contains("OAuth 2.0 connection"));
    for (what, head, body) in [
        (
            "the page without its token",
            format!("GET / HTTP/1.1\r\n{host}"),
            "",
        ),
        (
            "the page with a wrong token",
            format!("GET /?token={}x HTTP/1.1\r\n{host}", &token[1..]),
            "",
        ),
        (
            "another Host (DNS rebinding)",
            format!("GET /?token={token} HTTP/1.1\r\nHost: attacker.example:{port}"),
            "",
        ),
        (
            "the API without the token",
            format!("POST /api/secret HTTP/1.1\r\n{host}\r\n{origin}"),
            secret.as_str(),
        ),
        (
            "a write from another origin",
            format!(
                "POST /api/secret HTTP/1.1\r\n{host}\r\n{with_token}\r\nOrigin: http://attacker.example"
            ),
            secret.as_str(),
        ),
        (
            "a write without an origin",
            format!("POST /api/secret HTTP/1.1\r\n{host}\r\n{with_token}"),
            secret.as_str(),
        ),
        (
            "a cross-site fetch",
            format!(
                "GET /api/presets HTTP/1.1\r\n{host}\r\n{with_token}\r\nSec-Fetch-Site: cross-site"
            ),
            "",
        ),
    ] {
        let (status, _) = ui.request(&head, body);
        assert_eq!(status, 403, "{what}");
    }
    assert!(
        !ui.store_text().contains(PASSWORD),
        "no refused write reached the store"
    );

    let (status, answer) = ui.request(
        &format!("POST /api/secret HTTP/1.1\r\n{host}\r\n{with_token}\r\n{origin}"),
        &secret,
    );
    assert_eq!((status, answer.as_str()), (200, r#"{"stored":"n"}"#));
    assert!(ui.store_text().contains(PASSWORD));

    assert!(
        TcpStream::connect(("::1", port)).is_err(),
        "the page listens on 127.0.0.1 only"
    );
}

/// The page offers the grants beyond the form and their keys, and checks that the private key
/// a connection names is stored, as it does for the client secret.
#[test]
fn the_page_checks_a_jwt_bearer_connection_and_its_stored_key() {
    let ui = UiProcess::start("jwt-bearer");
    let port = ui.port();
    let host = format!("Host: 127.0.0.1:{port}");
    let origin = format!("Origin: http://127.0.0.1:{port}");
    let with_token = format!("X-Launch-Token: {}", ui.token());
    let (_, page) = ui.request(
        &format!("GET /?token={} HTTP/1.1\r\n{host}", ui.token()),
        "",
    );
    for wanted in [
        r#"value="jwt_bearer""#,
        r#"value="device_code""#,
        r#"value="private_key_jwt""#,
        r#"id="private_key_value""#,
        r#"id="device_authorization_url""#,
        r#"id="issuer""#,
    ] {
        assert!(page.contains(wanted), "the page lacks {wanted}");
    }
    let script = ui.request(&format!("GET /app.js HTTP/1.1\r\n{host}"), "").1;
    for field in ["'private_key'", "'subject'", "'revocation_url'"] {
        assert!(script.contains(field), "the page does not send {field}");
    }

    let check = || {
        let body = serde_json::json!({"config": {
            "grant_type": "jwt_bearer",
            "token_url": "https://oauth2.googleapis.com/token",
            "client_id": "svc@p.iam.gserviceaccount.com",
            "private_key": "svc-key",
            "scope": "https://www.googleapis.com/auth/drive.readonly",
        }});
        let (status, answer) = ui.request(
            &format!("POST /api/check HTTP/1.1\r\n{host}\r\n{with_token}\r\n{origin}"),
            &body.to_string(),
        );
        assert_eq!(status, 200, "{answer}");
        serde_json::from_str::<serde_json::Value>(&answer).unwrap()["problems"].clone()
    };
    let problems = check();
    assert_eq!(problems[0]["key"], "private_key", "{problems}");
    let pem = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
    let (status, _) = ui.request(
        &format!("POST /api/secret HTTP/1.1\r\n{host}\r\n{with_token}\r\n{origin}"),
        &serde_json::json!({"name": "svc-key", "value": pem}).to_string(),
    );
    assert_eq!(status, 200);
    assert_eq!(check(), serde_json::json!([]));
}
