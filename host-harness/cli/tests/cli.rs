//! The `oauth2-host` command as a user runs it: a real process, a store file, and the embedded
//! provider on loopback.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[path = "../../runtime/tests/redis_server/mod.rs"]
mod redis_server;

use oauth2_runtime::{HttpClient, HttpRequest, UreqClient};
use oauth2_test_provider::{Answer, Provider, ProviderConfig, Scripted};

const CLIENT_SECRET: &str = "demo-secret";
const PASSWORD: &str = "wonderland";

/// A scratch folder for one test's config and store, removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("oauth2-host-cli-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn store(&self) -> String {
        self.0.join("store.json").display().to_string()
    }

    fn write_config(&self, config: serde_json::Value) -> String {
        let path = self.0.join("config.json");
        std::fs::write(&path, config.to_string()).unwrap();
        path.display().to_string()
    }

    /// `oauth2-host check` on `config` against this scratch's store.
    fn check(&self, config: serde_json::Value) -> Output {
        let path = self.write_config(config);
        oauth2_host(
            &["check", "--config", &path, "--store", &self.store()],
            None,
        )
    }

    fn set_secret(&self, name: &str, value: &str) {
        let out = oauth2_host(
            &["secret", "set", name, "--store", &self.store()],
            Some(&format!("{value}\n")),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!stderr(&out).contains(value) && !stdout(&out).contains(value));
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn oauth2_host(args: &[&str], stdin: Option<&str>) -> Output {
    oauth2_host_with(args, stdin, &[])
}

/// `oauth2-host` with these environment variables set.
fn oauth2_host_with(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_oauth2-host"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("oauth2-host starts");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// No secret value the test put anywhere shows up in what the command printed.
fn assert_no_secrets(out: &Output, tokens: &[&str]) {
    let printed = format!("{}{}", stdout(out), stderr(out));
    for secret in [CLIENT_SECRET, PASSWORD].iter().chain(tokens) {
        assert!(!printed.contains(secret), "a secret was printed: {printed}");
    }
}

fn config(provider: &Provider, grant_type: &str) -> serde_json::Value {
    serde_json::json!({
        "grant_type": grant_type,
        "token_url": provider.token_url(),
        "client_id": "demo-client",
        "client_secret": "demo-client-secret",
        "scope": "read",
    })
}

fn ready(name: &str, provider: &Provider, grant_type: &str) -> (Scratch, String) {
    let scratch = Scratch::new(name);
    scratch.set_secret("demo-client-secret", CLIENT_SECRET);
    let config = scratch.write_config(config(provider, grant_type));
    (scratch, config)
}

#[test]
fn demo_runs_every_grant() {
    let out = oauth2_host(&["demo"], None);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    for heading in [
        "Client credentials",
        "Password",
        "Authorization code with PKCE",
        "Device code (RFC 8628)",
    ] {
        assert!(text.contains(heading), "{text}");
    }
    assert!(
        text.contains("token refreshed; the provider rotated the refresh token"),
        "{text}"
    );
    assert!(
        text.contains("disconnected: the refresh token, then the access token, revoked")
            && text.contains("with the revoked token -> 401"),
        "{text}"
    );
    assert!(
        text.contains("polled before the user approved: authorization_pending")
            && text.contains("the user opened the verification page with the code and approved"),
        "{text}"
    );
    assert_eq!(
        text.matches("token refreshed; the provider rotated the refresh token")
            .count(),
        3,
        "password, authorization code and device code each refresh: {text}"
    );
    assert!(
        text.trim_end().ends_with("All four grants passed."),
        "{text}"
    );
}

#[test]
fn token_prints_a_summary_and_reuses_the_stored_token() {
    let provider = Provider::start(ProviderConfig::demo("http://127.0.0.1:9/callback")).unwrap();
    let (scratch, config) = ready("token", &provider, "client_credentials");
    let mode = std::fs::metadata(scratch.store())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let out = oauth2_host(
        &["token", "--config", &config, "--store", &scratch.store()],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let summary: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["token_type"], "Bearer");
    assert_eq!(summary["scope"], "read");
    assert!(summary["expires_at"].as_u64().unwrap() > 1_700_000_000);
    assert!(summary.get("access_token").is_none(), "{summary}");

    let out = oauth2_host(
        &[
            "token",
            "--config",
            &config,
            "--store",
            &scratch.store(),
            "--reveal",
        ],
        None,
    );
    let revealed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let access_token = revealed["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        provider.token_request_count("client_credentials"),
        1,
        "the stored token was reused"
    );

    let out = oauth2_host(
        &["token", "--config", &config, "--store", &scratch.store()],
        None,
    );
    assert_no_secrets(&out, &[&access_token]);
}

#[test]
fn call_sends_the_token_and_retries_once_after_401() {
    let provider = Provider::start(ProviderConfig::demo("http://127.0.0.1:9/callback")).unwrap();
    let (scratch, config) = ready("call", &provider, "client_credentials");
    let url = format!("{}/api/orders", provider.base_url());
    let store = scratch.store();
    let args = [
        "call",
        "--config",
        &config,
        "--store",
        &store,
        "-H",
        "X-Trace: 1",
        &url,
    ];

    let out = oauth2_host(&args, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(r#""path":"/api/orders""#),
        "{}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("HTTP 200"), "{}", stderr(&out));

    provider.revoke_all();
    let out = oauth2_host(&args, None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("retried"), "{}", stderr(&out));
    assert_eq!(provider.token_request_count("client_credentials"), 2);
    assert_no_secrets(&out, &[]);

    // A non-2xx answer that a fresh token does not cure is the command's failure.
    let out = oauth2_host(
        &[
            "call",
            "--config",
            &config,
            "--store",
            &store,
            &format!("{}/nowhere", provider.base_url()),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("HTTP 404"), "{}", stderr(&out));
}

#[test]
fn authorize_completes_when_the_browser_comes_back() {
    let (provider, scratch, config, redirect_uri) =
        authorization_code_connection("authorize", |_| {});
    let store = scratch.store();

    let mut child = Command::new(env!("CARGO_BIN_EXE_oauth2-host"))
        .args(["authorize", "--config", &config, "--store", &store])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    assert!(url.starts_with(&provider.authorization_url()), "{url}");

    // Any local process or page may call the listener first: refused, and the login goes on.
    let http = UreqClient::new();
    for forged in [
        "?code=evil&state=forged",
        "?code=evil",
        "?error=access_denied",
    ] {
        let answer = http.send(&get(&format!("{redirect_uri}{forged}"))).unwrap();
        assert_eq!(answer.status, 400, "{forged}");
    }

    // The browser: the provider consents and redirects, the redirect reaches oauth2-host.
    let location = consent_at(&url);
    assert!(location.starts_with(&redirect_uri), "{location}");

    let out = wait_with_timeout(child, Duration::from_secs(30));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("authorized"), "{}", stderr(&out));
    assert_eq!(provider.token_request_count("authorization_code"), 1);

    let api = format!("{}/api/me", provider.base_url());
    let out = oauth2_host(
        &["call", "--config", &config, "--store", &store, &api],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(r#""sub":"alice""#),
        "{}",
        stdout(&out)
    );
    assert_no_secrets(&out, &[]);
}

#[test]
fn errors_are_one_line_naming_the_code_and_what_to_check() {
    let provider = Provider::start(ProviderConfig::demo("http://127.0.0.1:9/callback")).unwrap();
    let scratch = Scratch::new("errors");
    scratch.set_secret("demo-client-secret", "not-the-secret");
    let config = scratch.write_config(config(&provider, "client_credentials"));
    let store = scratch.store();

    let out = oauth2_host(&["token", "--config", &config, "--store", &store], None);
    assert_eq!(out.status.code(), Some(1));
    let line = stderr(&out);
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(
        line.contains("invalid_client")
            && line.contains("both HTTP Basic and the request body")
            && line.contains("client ID and client secret"),
        "{line}"
    );
    assert!(!line.contains("not-the-secret"), "{line}");
    assert!(stdout(&out).is_empty());

    let mut missing = self::config(&provider, "client_credentials");
    missing["client_secret"] = "nobody-stored-this".into();
    let path = scratch.write_config(missing);
    let out = oauth2_host(&["token", "--config", &path, "--store", &store], None);
    let line = stderr(&out);
    assert!(
        line.contains("nobody-stored-this") && line.contains("secret set"),
        "{line}"
    );

    let mut unknown = self::config(&provider, "client_credentials");
    unknown["client_secrett"] = "x".into();
    let path = scratch.write_config(unknown);
    let out = oauth2_host(&["token", "--config", &path, "--store", &store], None);
    assert!(stderr(&out).contains("client_secrett"), "{}", stderr(&out));

    let mut plain_http = self::config(&provider, "client_credentials");
    plain_http["token_url"] = "http://idp.example.com/token".into();
    let path = scratch.write_config(plain_http);
    let out = oauth2_host(&["token", "--config", &path, "--store", &store], None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("token_url") && stderr(&out).contains("https"),
        "{}",
        stderr(&out)
    );
    // client_auth is not set, so auto: Basic, then the body once; the later commands failed
    // before sending anything.
    assert_eq!(provider.token_request_count("client_credentials"), 2);
}

fn get(url: &str) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: vec![],
        body: vec![],
    }
}

/// Waits for the child, killing it if it overstays: a hung `authorize` must fail the test, not
/// hang the suite.
/// An authorization-code connection to a provider made from `ProviderConfig::demo` (changed by
/// `adjust`), with its redirect URI on a free loopback port: the provider, the scratch folder
/// with the client secret stored, the connection file and the redirect URI.
fn authorization_code_connection(
    name: &str,
    adjust: impl FnOnce(&mut ProviderConfig),
) -> (Provider, Scratch, String, String) {
    let callback_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redirect_uri = format!("http://127.0.0.1:{callback_port}/callback");
    let mut provider_config = ProviderConfig::demo(&redirect_uri);
    adjust(&mut provider_config);
    let provider = Provider::start(provider_config).unwrap();
    let scratch = Scratch::new(name);
    scratch.set_secret("demo-client-secret", CLIENT_SECRET);
    let mut settings = config(&provider, "authorization_code");
    settings["authorization_url"] = provider.authorization_url().into();
    settings["redirect_uri"] = redirect_uri.clone().into();
    let config = scratch.write_config(settings);
    (provider, scratch, config, redirect_uri)
}

/// The browser's part with a provider that consents at once: the authorization URL answers
/// with a redirect, which is followed to the waiting listener. Returns the redirect's target.
fn consent_at(url: &str) -> String {
    let http = UreqClient::new();
    let consent = http.send(&get(url.trim())).unwrap();
    assert_eq!(consent.status, 302);
    let location = consent
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("location"))
        .unwrap()
        .value
        .clone();
    let page = http.send(&get(&location)).unwrap();
    assert_eq!(page.status, 200, "{}", String::from_utf8_lossy(&page.body));
    location
}

fn wait_with_timeout(mut child: std::process::Child, limit: Duration) -> Output {
    let deadline = std::time::Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("oauth2-host did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn every_preset_passes_check_for_each_grant_it_offers() {
    let scratch = Scratch::new("presets");
    scratch.set_secret("preset-client-secret", CLIENT_SECRET);
    scratch.set_secret("preset-password", PASSWORD);
    // `check` looks the key up by name; signing with it is for the interop tests.
    scratch.set_secret("preset-key", "a private key's name is all check needs");
    let mut checked = 0;
    for (name, preset) in oauth2_host::presets::all() {
        let values: serde_json::Map<String, serde_json::Value> = preset
            .placeholders
            .iter()
            .map(|(key, p)| (key.clone(), p.example.clone().into()))
            .collect();
        for grant in &preset.grants {
            let mut config = serde_json::json!({
                "preset": name,
                "preset_values": values,
                "grant_type": grant,
                "client_id": "my-client",
                "client_secret": "preset-client-secret",
            });
            match grant.as_str() {
                "password" => {
                    config["username"] = "alice@example.com".into();
                    config["password"] = "preset-password".into();
                }
                "authorization_code" => {
                    config["redirect_uri"] = "http://127.0.0.1:8765/callback".into();
                }
                _ => {}
            }
            let signs = grant == "jwt_bearer"
                || preset.config.get("client_auth").and_then(|a| a.as_str())
                    == Some("private_key_jwt");
            if signs {
                config["private_key"] = "preset-key".into();
            }
            let out = scratch.check(config);
            assert!(
                out.status.success(),
                "{name} {grant}: {}{}",
                stdout(&out),
                stderr(&out)
            );
            assert!(stdout(&out).contains(": OK ("), "{}", stdout(&out));
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} preset/grant pairs checked");

    let out = oauth2_host(&["presets"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    for name in oauth2_host::presets::all().keys() {
        assert!(stdout(&out).contains(name.as_str()), "{name} not listed");
    }
    let out = oauth2_host(&["presets", "okta"], None);
    assert!(
        stdout(&out).contains("https://{okta_domain}/oauth2/{authorization_server_id}/v1/token"),
        "{}",
        stdout(&out)
    );
    let out = oauth2_host(&["presets", "gitlab"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("\"gitlab\" is not a preset"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_prints_every_problem_at_once_and_finds_missing_secrets() {
    let scratch = Scratch::new("check");
    // The file's own problems, found without the component.
    let out = scratch.check(serde_json::json!({
        "preset": "microsoft-entra",
        "grant_type": "implicit",
        "client_id": "app",
        "clientSecret": "x",
        "client_auth": "post",
    }));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    for key in [
        "clientSecret:",
        "preset_values.tenant:",
        "grant_type:",
        "client_auth:",
    ] {
        assert!(
            text.contains(&format!("\n  {key}")),
            "{key} missing from:\n{text}"
        );
    }
    assert!(text.contains("4 problem(s)"), "{text}");

    // A well-formed file: the grant's rules, https, and secrets missing from the store.
    let out = scratch.check(serde_json::json!({
        "grant_type": "password",
        "token_url": "http://login.example.com/token",
        "client_id": "app",
        "client_secret": "app-secret",
        "password": "alice-password",
        "resource": "not a uri",
    }));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    for expected in [
        "token_url: must use https",
        "username: is required",
        "resource: ",
        "client_secret: the secret \"app-secret\" is not in",
        "password: the secret \"alice-password\" is not in",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
    assert!(text.contains("5 problem(s)"), "{text}");
}

/// Writers killed at random moments never leave the store unreadable or a finished write lost:
/// each write goes to a temporary file renamed over the store.
#[test]
fn a_writer_killed_mid_write_leaves_the_previous_store_readable() {
    let scratch = Scratch::new("killed");
    let temporaries = || {
        std::fs::read_dir(&scratch.0)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count()
    };
    // A large value makes each write take long enough to be interrupted.
    let big = "x".repeat(4 << 20);
    scratch.set_secret("kept", "the value before any kill");
    let mut interrupted = 0;
    for round in 0..20u64 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_oauth2-host"))
            .args([
                "secret",
                "set",
                &format!("big-{round}"),
                "--store",
                &scratch.store(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(big.as_bytes()).unwrap();
        drop(input);
        std::thread::sleep(Duration::from_millis(round % 7));
        let _ = child.kill();
        child.wait().unwrap();
        // A writer killed mid-write leaves its temporary file (the next writer removes it).
        if temporaries() > 0 {
            interrupted += 1;
        }

        let store = oauth2_runtime::FileStore::open(scratch.store())
            .unwrap_or_else(|e| panic!("round {round}: the store is unreadable: {e}"));
        assert_eq!(
            oauth2_runtime::SecretStore::get(&store, "kept")
                .unwrap()
                .as_deref(),
            Some("the value before any kill"),
            "round {round}"
        );
        if let Some(value) =
            oauth2_runtime::SecretStore::get(&store, &format!("big-{round}")).unwrap()
        {
            assert_eq!(
                value.len(),
                big.len(),
                "round {round}: a write is whole or absent"
            );
        }
    }
    assert!(interrupted > 0, "no writer was killed while writing");
    // The next write, which holds the store's lock, clears what killed writers left.
    scratch.set_secret("after", "the kills");
    assert_eq!(temporaries(), 0, "abandoned temporary files are removed");
}

/// Processes that write different names at the same time lose none of them.
#[test]
fn concurrent_writer_processes_lose_no_write() {
    let scratch = Scratch::new("writers");
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = scratch.store();
            std::thread::spawn(move || {
                for i in 0..15 {
                    let out = oauth2_host(
                        &["secret", "set", &format!("w{w}-{i}"), "--store", &store],
                        Some(&format!("value {w} {i}\n")),
                    );
                    assert!(out.status.success(), "{}", stderr(&out));
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let store = oauth2_runtime::FileStore::open(scratch.store()).unwrap();
    for w in 0..4 {
        for i in 0..15 {
            assert_eq!(
                oauth2_runtime::SecretStore::get(&store, &format!("w{w}-{i}"))
                    .unwrap()
                    .as_deref(),
                Some(format!("value {w} {i}").as_str()),
                "w{w}-{i} was lost"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A hostile provider, API, configuration or neighbour
// ---------------------------------------------------------------------------------------------

/// A token endpoint that answers every request with an OAuth error whose description echoes
/// the request back, its `Authorization` header and body included, wrapped in terminal escape
/// sequences and a forged line.
fn echoing_token_endpoint() -> Scripted {
    Scripted::start(|received| {
        let authorization = received.header("authorization").unwrap_or_default();
        let body = String::from_utf8_lossy(&received.body);
        let echo = format!(
            "\u{1b}]0;pwned\u{7}\u{1b}[2J you sent {authorization} and {body}\r\nauthorized: Bearer forged"
        );
        let answer = serde_json::json!({
            "error": "invalid_client",
            "error_description": echo,
            "error_uri": format!("https://idp.example/?{body}"),
        });
        Answer::new(401, "application/json", answer.to_string())
    })
    .unwrap()
}

#[test]
fn a_provider_that_echoes_the_request_cannot_print_secrets_or_control_characters() {
    let endpoint = echoing_token_endpoint();
    let token_url = format!("{}/token", endpoint.base_url());
    let scratch = Scratch::new("echo");
    scratch.set_secret("demo-client-secret", "s3cr:t/+&%= ~q7x");
    scratch.set_secret("alice-password", "p@ss w0rd&=z9k");
    for client_auth in ["basic", "request_body", "basic_unencoded"] {
        let config = scratch.write_config(serde_json::json!({
            "grant_type": "password",
            "token_url": token_url,
            "client_id": "demo-client",
            "client_secret": "demo-client-secret",
            "username": "alice",
            "password": "alice-password",
            "client_auth": client_auth,
        }));
        let out = oauth2_host(
            &["token", "--config", &config, "--store", &scratch.store()],
            None,
        );
        assert_eq!(out.status.code(), Some(1));
        let printed = format!("{}{}", stdout(&out), stderr(&out));
        assert!(printed.contains("invalid_client"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
        // Every encoding of the secret and the password the request used: none is left.
        for leak in ["s3cr", "q7x", "p@ss", "p%40ss", "w0rd", "z9k", "czNjcjp0"] {
            assert!(
                !printed.contains(leak),
                "{client_auth}: {leak} in {printed}"
            );
        }
        for control in ['\u{1b}', '\u{7}', '\r'] {
            assert!(!printed.contains(control), "{client_auth}: {printed:?}");
        }
        assert_eq!(
            stderr(&out).lines().count(),
            1,
            "no forged line: {printed:?}"
        );
    }
}

#[test]
fn the_token_goes_only_over_https_and_to_the_configured_origins() {
    let provider = Provider::start(ProviderConfig::demo("http://127.0.0.1:9/callback")).unwrap();
    let elsewhere = Provider::start(ProviderConfig::demo("http://127.0.0.1:9/callback")).unwrap();
    let (scratch, config) = ready("origins", &provider, "client_credentials");
    let store = scratch.store();

    let out = oauth2_host(
        &[
            "call",
            "--config",
            &config,
            "--store",
            &store,
            "http://api.example.com/v1",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("only over https"), "{}", stderr(&out));

    let mut settings = self::config(&provider, "client_credentials");
    settings["api_origins"] = serde_json::json!([provider.base_url()]);
    let config = scratch.write_config(settings);
    let refused = format!("{}/api/me", elsewhere.base_url());
    let out = oauth2_host(
        &["call", "--config", &config, "--store", &store, &refused],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("api_origins"), "{}", stderr(&out));
    assert_eq!(elsewhere.api_call_count(), 0, "nothing was sent there");

    // Where it may go, it goes, and a 401 retry goes there too.
    provider.revoke_all();
    let allowed = format!("{}/api/me", provider.base_url());
    let out = oauth2_host(
        &["call", "--config", &config, "--store", &store, &allowed],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(elsewhere.api_call_count(), 0);
    assert_eq!(
        provider.token_request_count("client_credentials"),
        1,
        "the refused calls fetched no token"
    );
}

/// A proxy that records the first line of each connection and closes it.
fn recording_proxy() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            record.lock().unwrap().push(line.trim().to_owned());
        }
    });
    (format!("http://127.0.0.1:{port}"), seen)
}

#[test]
fn loopback_and_plain_http_never_go_through_a_proxy() {
    let provider = Provider::start(ProviderConfig::demo("http://127.0.0.1:9/callback")).unwrap();
    let scratch = Scratch::new("proxy");
    scratch.set_secret("demo-client-secret", CLIENT_SECRET);
    let mut settings = config(&provider, "client_credentials");
    // 127.0.0.1 as an integer: the proxy, had it been used, would have seen the raw text.
    let port = provider.addr().port();
    settings["token_url"] = format!("http://2130706433:{port}/token").into();
    let config = scratch.write_config(settings);
    let (proxy, seen) = recording_proxy();
    let with_proxy = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_oauth2-host"))
            .args(args)
            .env("HTTPS_PROXY", &proxy)
            .env("HTTP_PROXY", &proxy)
            .env("ALL_PROXY", &proxy)
            .env("https_proxy", &proxy)
            .env("http_proxy", &proxy)
            .env("all_proxy", &proxy)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .output()
            .unwrap()
    };
    let store = scratch.store();
    let out = with_proxy(&["token", "--config", &config, "--store", &store]);
    assert!(out.status.success(), "{}", stderr(&out));
    let api = format!("http://localhost:{port}/api/me");
    let out = with_proxy(&["call", "--config", &config, "--store", &store, &api]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    assert_no_secrets(&out, &[]);

    // https to another machine does go through it, named as the parser reads the host.
    let out = with_proxy(&[
        "call",
        "--config",
        &config,
        "--store",
        &store,
        "https://API.Example.invalid/v1",
    ]);
    assert!(!out.status.success());
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with("CONNECT api.example.invalid:443"),
        "{seen:?}"
    );
}

#[test]
fn durations_from_the_user_are_bounded() {
    let scratch = Scratch::new("durations");
    let config = scratch.write_config(serde_json::json!({}));
    for (flag, value) in [
        ("--timeout", "18446744073709551615"),
        ("--timeout", "0"),
        ("--deadline", "3601"),
        ("--deadline", "-1"),
    ] {
        let flag = format!("{flag}={value}");
        let out = oauth2_host(&["authorize", "--config", &config, &flag], None);
        assert_eq!(out.status.code(), Some(2), "{flag}: {}", stderr(&out));
        assert!(stderr(&out).contains("1 to 3600"), "{}", stderr(&out));
    }
}

#[test]
fn a_command_gives_up_at_its_deadline_and_says_so() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().take(4).collect();
        std::thread::sleep(Duration::from_secs(60));
        drop(held);
    });
    let scratch = Scratch::new("deadline");
    scratch.set_secret("demo-client-secret", CLIENT_SECRET);
    let config = scratch.write_config(serde_json::json!({
        "grant_type": "client_credentials",
        "token_url": format!("http://127.0.0.1:{port}/token"),
        "client_id": "demo-client",
        "client_secret": "demo-client-secret",
    }));
    let started = std::time::Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_oauth2-host"))
        .args([
            "token",
            "--config",
            &config,
            "--store",
            &scratch.store(),
            "--deadline",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_timeout(child, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(stderr(&out).contains("deadline of 2 s"), "{}", stderr(&out));
}

#[test]
fn oversized_configs_and_stores_that_are_not_files_are_refused_at_once() {
    let scratch = Scratch::new("not-files");
    let big = scratch.0.join("big.json");
    std::fs::write(&big, format!("{{\"x\": \"{}\"}}", "a".repeat(2 << 20))).unwrap();
    let out = oauth2_host(&["check", "--config", big.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("over 1024 KiB"), "{}", stdout(&out));

    let fifo = scratch.0.join("fifo.json");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let config = scratch.write_config(serde_json::json!({
        "grant_type": "client_credentials",
        "token_url": "https://idp.example.com/token",
        "client_id": "app",
        "client_secret": "app-secret",
    }));
    let child = Command::new(env!("CARGO_BIN_EXE_oauth2-host"))
        .args([
            "check",
            "--config",
            &config,
            "--store",
            fifo.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_timeout(child, Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("not a regular file"),
        "{}",
        stdout(&out)
    );
}

/// Several `call` processes find the stored token expired at the same moment, against a provider
/// that rotates refresh tokens and refuses a replayed one: the store's per-connection lock file
/// lets one refresh and the others use what it stored.
#[test]
fn processes_that_find_the_token_expired_together_refresh_it_once() {
    let mut provider_config = ProviderConfig::demo("http://127.0.0.1:9/callback");
    provider_config.access_token_lifetime_secs = 2;
    provider_config.token_delay = Duration::from_millis(500);
    let provider = Provider::start(provider_config).unwrap();
    let scratch = Scratch::new("processes");
    scratch.set_secret("demo-client-secret", CLIENT_SECRET);
    scratch.set_secret("alice-password", PASSWORD);
    let mut settings = config(&provider, "password");
    settings["username"] = "alice".into();
    settings["password"] = "alice-password".into();
    let config = scratch.write_config(settings);
    let store = scratch.store();
    let out = oauth2_host(&["token", "--config", &config, "--store", &store], None);
    assert!(out.status.success(), "{}", stderr(&out));
    // Expiry is kept in whole seconds: only after three has the two-second token expired
    // whatever fraction of a second it was issued at.
    std::thread::sleep(Duration::from_secs(3));

    let api = format!("{}/api/me", provider.base_url());
    let children: Vec<_> = (0..6)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_oauth2-host"))
                .args(["call", "--config", &config, "--store", &store, &api])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = wait_with_timeout(child, Duration::from_secs(60));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(provider.token_request_count("refresh_token"), 1);
    assert_eq!(
        provider.token_request_count("password"),
        1,
        "no fallback to a new token"
    );
}

#[test]
fn a_secret_typed_at_a_terminal_is_not_echoed() {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let scratch = Scratch::new("tty");
    let controller = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY).unwrap();
    grantpt(&controller).unwrap();
    unlockpt(&controller).unwrap();
    let name = ptsname(&controller, Vec::new()).unwrap();
    let terminal = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(name.to_str().unwrap())
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oauth2-host"))
        .args(["secret", "set", "typed", "--store", &scratch.store()])
        .stdin(terminal.try_clone().unwrap())
        .stdout(terminal.try_clone().unwrap())
        .stderr(terminal)
        .spawn()
        .unwrap();
    let mut controller = std::fs::File::from(controller);
    // The prompt comes once echo is off; then the secret is typed.
    let mut seen = Vec::new();
    let mut buffer = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("not shown") {
        let n = std::io::Read::read(&mut controller, &mut buffer).unwrap();
        assert!(n > 0, "the prompt never came");
        seen.extend_from_slice(&buffer[..n]);
    }
    controller.write_all(b"typed-sentinel-value\n").unwrap();
    // Whatever the terminal shows from now on (the echo, if any, and the confirmation), until
    // the command has exited and closed it.
    loop {
        match std::io::Read::read(&mut controller, &mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
        }
    }
    assert!(child.wait().unwrap().success());
    let shown = String::from_utf8_lossy(&seen);
    assert!(shown.contains("stored secret"), "{shown}");
    assert!(!shown.contains("typed-sentinel-value"), "{shown}");
    let store = oauth2_runtime::FileStore::open(scratch.store()).unwrap();
    assert_eq!(
        oauth2_runtime::SecretStore::get(&store, "typed")
            .unwrap()
            .as_deref(),
        Some("typed-sentinel-value")
    );
}

/// Output piped into `head` and cut short ends the command quietly, as it does any Unix tool.
#[test]
fn output_cut_short_by_the_reader_ends_quietly() {
    let provider = Provider::start(ProviderConfig::demo("http://127.0.0.1:9/callback")).unwrap();
    let api = Scripted::start(|_| Answer::new(200, "text/plain", vec![b'x'; 900 * 1024])).unwrap();
    let (scratch, config) = ready("pipe", &provider, "client_credentials");
    let mut child = Command::new(env!("CARGO_BIN_EXE_oauth2-host"))
        .args(["call", "--config", &config, "--store", &scratch.store()])
        .arg(format!("{}/big", api.base_url()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = wait_with_timeout(child, Duration::from_secs(30));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("Broken pipe") && !stderr(&out).contains("error"),
        "{}",
        stderr(&out)
    );
}

/// Every command on a shared Redis store, as a platform's workers would run them: the
/// password and the key file from the environment, values encrypted at rest, the token reused
/// across processes, and clear errors without a key or with a wrong password.
#[test]
fn every_command_works_on_a_redis_store() {
    let server = redis_server::RedisServer::start();
    let provider = Provider::start(ProviderConfig::demo("http://127.0.0.1:9/callback")).unwrap();
    let scratch = Scratch::new("redis");
    let key_file = scratch.0.join("store.key").display().to_string();
    let out = oauth2_host(&["store-key", "new", "--output", &key_file], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(!stdout(&out).contains(key.trim()) && !stderr(&out).contains(key.trim()));
    let again = oauth2_host(&["store-key", "new", "--output", &key_file], None);
    assert!(
        !again.status.success(),
        "an existing key file is never overwritten"
    );
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);

    let url = server
        .url()
        .replace(&format!(":{}@", redis_server::PASSWORD), "@");
    let env = [
        ("OAUTH2_HOST_STORE_KEY_FILE", key_file.as_str()),
        ("OAUTH2_HOST_REDIS_PASSWORD", redis_server::PASSWORD),
    ];
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut args = args.to_vec();
        args.extend(["--store", url.as_str()]);
        oauth2_host_with(&args, stdin, &env)
    };
    let out = run(
        &["secret", "set", "demo-client-secret"],
        Some(CLIENT_SECRET),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains(&url), "{}", stderr(&out));
    let config = scratch.write_config(config(&provider, "client_credentials"));
    let out = run(&["check", "--config", &config], None);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let out = run(&["token", "--config", &config, "--reveal"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let revealed: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let access_token = revealed["access_token"].as_str().unwrap().to_owned();
    let api = format!("{}/api/me", provider.base_url());
    let out = run(&["call", "--config", &config, &api], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_secrets(&out, &[&access_token]);
    assert_eq!(
        provider.token_request_count("client_credentials"),
        1,
        "the second process found the first one's token in Redis"
    );
    for (name, value) in server.dump() {
        assert!(value.starts_with("v1."), "{name} is not sealed");
        for secret in [CLIENT_SECRET, access_token.as_str()] {
            assert!(!value.contains(secret) && !name.contains(secret), "{name}");
        }
    }

    let no_key = oauth2_host_with(
        &["token", "--config", &config, "--store", &url],
        None,
        &[("OAUTH2_HOST_REDIS_PASSWORD", redis_server::PASSWORD)],
    );
    assert!(!no_key.status.success());
    let said = stderr(&no_key);
    assert!(said.contains("OAUTH2_HOST_STORE_KEY_FILE"), "{said}");
    assert!(said.contains("oauth2-host store-key new"), "{said}");

    let wrong_password = oauth2_host_with(
        &["token", "--config", &config, "--store", &url],
        None,
        &[
            ("OAUTH2_HOST_STORE_KEY_FILE", key_file.as_str()),
            ("OAUTH2_HOST_REDIS_PASSWORD", "not-the-redis-password"),
        ],
    );
    assert!(!wrong_password.status.success());
    let said = stderr(&wrong_password);
    assert!(said.contains("Redis at redis://"), "{said}");
    assert!(!said.contains("not-the-redis-password"), "{said}");
}

/// `validate` runs the whole checklist: a pass for each grant the form has without a browser,
/// and a failure at each step that names what to check.
#[test]
fn validate_runs_the_checklist_and_fails_at_the_step_that_breaks() {
    let provider = Provider::start(ProviderConfig::demo("http://127.0.0.1:9/callback")).unwrap();
    let api = format!("{}/api/me", provider.base_url());
    let (scratch, cc) = ready("validate", &provider, "client_credentials");
    let store = scratch.store();
    let validate = |config: &str, extra: &[&str]| {
        let mut args = vec![
            "validate", "--config", config, "--store", &store, "--api", &api,
        ];
        args.extend_from_slice(extra);
        oauth2_host(&args, None)
    };

    let out = validate(&cc, &["--expect-json", "/sub=demo-client"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for line in [
        "[pass] configuration: client_credentials",
        "[pass] token: fetched with client_credentials",
        "[pass] API call: HTTP 200",
        "[pass] after expiry: no refresh token: a new token was fetched with client_credentials",
        "[pass] API call after expiry: HTTP 200",
        "every step passed",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }
    assert_no_secrets(&out, &[]);

    scratch.set_secret("alice-password", PASSWORD);
    let pw = scratch.write_config(serde_json::json!({
        "grant_type": "password",
        "token_url": provider.token_url(),
        "client_id": "demo-client",
        "client_secret": "demo-client-secret",
        "username": "alice",
        "password": "alice-password",
    }));
    let out = validate(&pw, &["--json", "--expect-json", "/sub=alice"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["passed"], true);
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 5, "{report}");
    assert_eq!(
        steps[3]["detail"],
        "refreshed; the provider rotated the refresh token and the new one is stored"
    );
    assert_eq!(provider.token_request_count("refresh_token"), 1);
    assert_no_secrets(&out, &[]);

    // A failure at each step, with what to check. (Every config is written to one file.)
    let cc = scratch.write_config(config(&provider, "client_credentials"));
    let out = validate(&cc, &["--expect-status", "204"]);
    let text = stdout(&out);
    assert!(!out.status.success());
    assert!(text.contains("[FAIL] API call: HTTP 200"), "{text}");
    assert!(text.contains("expected status 204"), "{text}");
    assert!(
        !text.contains("after expiry"),
        "later steps are left out: {text}"
    );

    let out = validate(&cc, &["--expect-json", "/sub=someone-else"]);
    let text = stdout(&out);
    assert!(
        text.contains("expected /sub = someone-else, found \"demo-client\""),
        "{text}"
    );

    scratch.set_secret("demo-client-secret", "not-the-secret");
    let fresh = scratch.write_config(serde_json::json!({
        "grant_type": "client_credentials",
        "token_url": provider.token_url(),
        "client_id": "demo-client",
        "client_secret": "demo-client-secret",
        "scope": "write",
    }));
    let out = validate(&fresh, &[]);
    let text = stdout(&out);
    assert!(!out.status.success());
    assert!(text.contains("[FAIL] token:"), "{text}");
    assert!(text.contains("invalid_client"), "{text}");
    assert!(text.contains("client ID and client secret"), "{text}");
    assert!(!text.contains("not-the-secret"), "{text}");

    let bad = scratch.write_config(serde_json::json!({
        "grant_type": "client_credentials",
        "token_url": "http://login.example.com/token",
        "client_id": "demo-client",
    }));
    let out = validate(&bad, &[]);
    let text = stdout(&out);
    assert!(!out.status.success());
    assert!(text.contains("[FAIL] configuration:"), "{text}");
    assert!(text.contains("token_url"), "{text}");
    assert!(!text.contains("[pass] token"), "{text}");
}

/// Authorization code against a provider that issues no refresh token: the consent and the
/// first call pass, and the step after the expiry fails with what to do about it.
#[test]
fn validate_fails_after_expiry_when_no_refresh_token_comes() {
    let (provider, scratch, config, _) =
        authorization_code_connection("validate-no-refresh", |provider| {
            provider.refresh_token_grants.clear();
        });
    let api = format!("{}/api/me", provider.base_url());
    let store = scratch.store();

    let mut child = Command::new(env!("CARGO_BIN_EXE_oauth2-host"))
        .args([
            "validate", "--config", &config, "--store", &store, "--api", &api,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut url = String::new();
    stdout.read_line(&mut url).unwrap();
    assert!(url.starts_with(&provider.authorization_url()), "{url}");
    consent_at(&url);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = wait_with_timeout(child, Duration::from_secs(30));
    assert!(!out.status.success(), "{rest}");
    for line in [
        "[pass] token: fetched with authorization_code",
        "[pass] API call: HTTP 200",
        "[FAIL] after expiry:",
        "authorize",
        "validation failed",
    ] {
        assert!(rest.contains(line), "missing {line:?} in:\n{rest}");
    }
}

/// The time a user takes to consent is theirs: `--deadline` counts the network's time only.
#[test]
fn a_slow_consent_does_not_use_up_the_deadline() {
    let (_provider, scratch, config, _) = authorization_code_connection("slow-consent", |_| {});
    let store = scratch.store();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oauth2-host"))
        .args([
            "authorize",
            "--config",
            &config,
            "--store",
            &store,
            "--deadline",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    std::thread::sleep(Duration::from_millis(1_500));
    consent_at(&url);
    let out = wait_with_timeout(child, Duration::from_secs(30));
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A `rediss://` store whose certificate a private CA signed: refused without the CA, used
/// with `--store-ca-cert`.
#[test]
fn a_rediss_store_with_a_private_ca() {
    let kit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/authlib");
    let python = kit.join(".venv/bin/python");
    assert!(python.exists(), "run tests/interop/setup.sh");
    let scratch = Scratch::new("rediss");
    let certs = scratch.0.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let made = Command::new(python)
        .arg(kit.join("make_ca.py"))
        .arg(&certs)
        .status()
        .unwrap();
    assert!(made.success());
    let server = redis_server::RedisServer::start_tls(&certs);
    let key_file = scratch.0.join("store.key").display().to_string();
    assert!(
        oauth2_host(&["store-key", "new", "--output", &key_file], None)
            .status
            .success()
    );
    let url = server.url();
    let env = [("OAUTH2_HOST_STORE_KEY_FILE", key_file.as_str())];

    let out = oauth2_host_with(&["secret", "set", "s", "--store", &url], Some("v"), &env);
    assert!(
        !out.status.success(),
        "the system does not trust the test's CA"
    );
    assert!(
        stderr(&out).contains("Redis at rediss://"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains(redis_server::PASSWORD),
        "{}",
        stderr(&out)
    );

    let ca = certs.join("ca.pem").display().to_string();
    let out = oauth2_host_with(
        &[
            "secret",
            "set",
            "s",
            "--store",
            &url,
            "--store-ca-cert",
            &ca,
        ],
        Some("v"),
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("stored secret"), "{}", stderr(&out));
}

#[test]
fn a_google_service_account_key_file_becomes_a_connection_in_one_step() {
    let scratch = Scratch::new("google-service-account");
    let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvSENTINELkey\n-----END PRIVATE KEY-----\n";
    let key_file = scratch.0.join("key.json");
    std::fs::write(
        &key_file,
        serde_json::json!({
            "type": "service_account",
            "project_id": "p",
            "private_key_id": "0123abcd",
            "private_key": pem,
            "client_email": "svc@p.iam.gserviceaccount.com",
            "token_uri": "https://oauth2.googleapis.com/token",
        })
        .to_string(),
    )
    .unwrap();
    let config = scratch.0.join("google.json");
    let out = oauth2_host(
        &[
            "google-service-account",
            "--key-file",
            &key_file.display().to_string(),
            "--scope",
            "https://www.googleapis.com/auth/drive.readonly",
            "--output",
            &config.display().to_string(),
            "--store",
            &scratch.store(),
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!printed.contains("SENTINEL"), "{printed}");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    assert_eq!(written["grant_type"], "jwt_bearer");
    assert_eq!(written["client_id"], "svc@p.iam.gserviceaccount.com");
    assert_eq!(written["key_id"], "0123abcd");
    assert_eq!(written["private_key"], "svc@p.iam.gserviceaccount.com-key");
    assert!(!written.to_string().contains("SENTINEL"));
    let store = std::fs::read_to_string(scratch.store()).unwrap();
    assert!(
        store.contains("svc@p.iam.gserviceaccount.com-key"),
        "the key is stored"
    );

    // The written file is a connection `check` accepts, its key found in the store.
    let out = oauth2_host(
        &[
            "check",
            "--config",
            &config.display().to_string(),
            "--store",
            &scratch.store(),
        ],
        None,
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("OK (jwt_bearer"), "{}", stdout(&out));

    // An existing file is never overwritten, and nothing else is changed.
    let again = oauth2_host(
        &[
            "google-service-account",
            "--key-file",
            &key_file.display().to_string(),
            "--scope",
            "x",
            "--output",
            &config.display().to_string(),
            "--store",
            &scratch.store(),
        ],
        None,
    );
    assert!(!again.status.success());
    assert!(stderr(&again).contains("creating"), "{}", stderr(&again));
}
