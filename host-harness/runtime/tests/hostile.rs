//! The sandbox holds against a component written to attack its host (`tests/fixtures/
//! hostile-guest`): a loop that never ends, an allocation that never stops, a request to a URL
//! other than the token endpoint, a look at the environment and arguments, and writes to stdout
//! and stderr. Each is stopped or finds nothing, and the same `Plugin` then serves the next call.
//! A component that imports more than the host offers is refused before it runs.

use std::process::Command;
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use oauth2_runtime::errors::LimitExceeded;
use oauth2_runtime::{
    CallError, ConnectionConfig, GrantType, HttpRequest, HttpResponse, ManualClock, MemoryStore,
    OauthError, Pair, Plugin, Services, TokenStep, TransportError, UreqClient,
};
use oauth2_test_provider::{Provider, ProviderConfig};

mod fixtures;

/// The hostile component, built once per test run.
fn hostile() -> &'static Plugin {
    static PLUGIN: OnceLock<Plugin> = OnceLock::new();
    PLUGIN.get_or_init(|| {
        Plugin::from_file(&fixtures::build("hostile-guest"))
            .expect("the hostile guest loads: it imports only what is allowed")
    })
}

fn services() -> Services {
    services_with(Arc::new(MemoryStore::new()))
}

fn services_with(store: Arc<MemoryStore>) -> Services {
    Services {
        http: Arc::new(UreqClient::new()),
        secrets: store.clone(),
        tokens: store,
        clock: Arc::new(ManualClock::at_unix(1_800_000_000)),
    }
}

fn config(token_url: &str) -> ConnectionConfig {
    ConnectionConfig::new(GrantType::ClientCredentials, token_url, "client")
}

fn request() -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url: "https://api.example.com/".into(),
        headers: vec![],
        body: vec![],
    }
}

/// After any attack, the plugin still answers an ordinary call.
fn still_serves(plugin: &Plugin) {
    let problems = plugin
        .validate_config(&services(), &config("https://idp.example.com/token"))
        .expect("the next call runs");
    assert!(problems.is_empty());
}

#[test]
fn a_guest_that_never_returns_is_stopped_at_its_time_limit() {
    let plugin = hostile();
    let started = Instant::now();
    // On a thread, so that a host without the limit fails this test instead of hanging it.
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let result = plugin.decorate_request(
            &services(),
            &config("https://idp.example.com/token"),
            &request(),
        );
        let _ = sender.send(result);
    });
    let result = receiver
        .recv_timeout(Duration::from_secs(20))
        .expect("the host stops the endless loop within 20 s");
    let took = started.elapsed();
    match result {
        Err(CallError::Limit(LimitExceeded::Time)) => {}
        other => panic!("expected the time limit, got {other:?}"),
    }
    assert!(
        took >= oauth2_runtime::errors::GUEST_TIME_LIMIT && took < Duration::from_secs(10),
        "stopped after {took:?}"
    );
    let message = CallError::Limit(LimitExceeded::Time).to_string();
    assert!(message.contains("was stopped"), "{message}");
    still_serves(hostile());
}

#[test]
fn a_guest_that_allocates_without_end_is_stopped_at_its_memory_limit() {
    let response = HttpResponse {
        status: 200,
        headers: vec![],
        body: b"{}".to_vec(),
    };
    let result = hostile().parse_token_response(
        &services(),
        &config("https://idp.example.com/token"),
        &request(),
        &response,
    );
    match result {
        Err(CallError::Limit(LimitExceeded::Memory)) => {}
        other => panic!("expected the memory limit, got {other:?}"),
    }
    still_serves(hostile());
}

/// The guest's text is hostile (escape sequences, the secrets it was given) and the host's
/// streams are the operator's terminal and logs: what the guest writes reaches neither. The
/// check needs the host's real stdout and stderr, so the test runs itself in a child process.
#[test]
fn a_guests_output_reaches_none_of_the_hosts_streams() {
    const NAME: &str = "a_guests_output_reaches_none_of_the_hosts_streams";
    const CHILD: &str = "OAUTH2_HOSTILE_OUTPUT_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let result = hostile().complete_authorization(
            &services(),
            &config("https://idp.example.com/token"),
            "https://app.example.com/callback",
        );
        let Err(CallError::OAuth(OauthError::InvalidRedirect(seen))) = result else {
            panic!("the hostile guest reports its writes, got {result:?}")
        };
        assert_eq!(
            seen, "stdout=true stderr=true",
            "the writes succeed, into nothing"
        );
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "the child ran the call:\n{stdout}"
    );
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(
            !text.contains("SENTINEL-guest-output") && !text.contains("hostile title"),
            "the guest wrote to the host's {name}:\n{text}"
        );
    }
}

#[test]
fn a_guest_reaches_only_the_connections_endpoints_origins() {
    // The "other" server is real and listening: the host refuses before connecting.
    let other = Provider::start(ProviderConfig::demo("http://127.0.0.1:9/callback")).unwrap();
    let token_endpoint =
        Provider::start(ProviderConfig::demo("http://127.0.0.1:9/callback")).unwrap();
    let mut connection = config(&token_endpoint.token_url());
    for target in [
        format!("{}/api/me", other.base_url()),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "file:///etc/passwd".to_owned(),
        "not a url".to_owned(),
    ] {
        connection.audience = Some(target.clone());
        match hostile().build_token_request(&services(), &connection, &TokenStep::NewToken) {
            Err(CallError::OAuth(OauthError::Transport(TransportError::ForbiddenDestination(
                message,
            )))) => {
                assert!(message.contains(&token_endpoint.base_url()), "{message}");
            }
            other => panic!("{target}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(
        other.api_call_count(),
        0,
        "nothing reached the other server"
    );

    // The token endpoint's own origin is allowed.
    connection.audience = Some(token_endpoint.token_url());
    let built = hostile().build_token_request(&services(), &connection, &TokenStep::NewToken);
    assert!(built.is_ok(), "{built:?}");

    // So are the origins of the connection's device authorization and revocation endpoints,
    // and those only while the connection names them.
    for (device, revocation) in [
        (Some(format!("{}/device", other.base_url())), None),
        (None, Some(format!("{}/revoke", other.base_url()))),
    ] {
        let connection = ConnectionConfig {
            audience: Some(format!("{}/api/me", other.base_url())),
            device_authorization_url: device,
            revocation_url: revocation,
            ..connection.clone()
        };
        let built = hostile().build_token_request(&services(), &connection, &TokenStep::NewToken);
        assert!(built.is_ok(), "{built:?}");
    }
    assert_eq!(other.api_call_count(), 2, "both reached the named origin");

    // To the token endpoint's own origin, but with a Host, a length or a framing header of the
    // guest's choosing: refused before anything is sent.
    for name in [
        "Host",
        "content-length",
        "Transfer-Encoding",
        "Connection",
        "Proxy-Authorization",
    ] {
        let connection = ConnectionConfig {
            audience: Some(token_endpoint.token_url()),
            extra_params: vec![Pair {
                name: name.into(),
                value: "other.example".into(),
            }],
            ..connection.clone()
        };
        match hostile().build_token_request(&services(), &connection, &TokenStep::NewToken) {
            Err(CallError::OAuth(OauthError::Transport(TransportError::InvalidRequest(m)))) => {
                assert!(m.contains(name), "{m}");
            }
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
    }
    still_serves(hostile());
}

#[test]
fn a_lock_a_guest_holds_is_released_when_it_traps() {
    let store = Arc::new(MemoryStore::new());
    let services = services_with(store.clone());
    let result = hostile().ensure_token(&services, &config("https://idp.example.com/token"));
    assert!(matches!(result, Err(CallError::Host(_))), "{result:?}");
    assert_eq!(store.held_locks(), 0, "the trap released the lock");
    // The connection is not blocked: the same lock is had again at once.
    let result = hostile().ensure_token(&services, &config("https://idp.example.com/token"));
    assert!(matches!(result, Err(CallError::Host(_))), "{result:?}");
    still_serves(hostile());
}

#[test]
fn a_guest_cannot_fill_the_token_store_or_hoard_locks() {
    let store = Arc::new(MemoryStore::new());
    let Err(CallError::OAuth(OauthError::InvalidRedirect(seen))) = hostile().forget_token(
        &services_with(store.clone()),
        &config("https://idp.example.com/token"),
        None,
    ) else {
        panic!("the hostile guest reports what the host allowed")
    };
    assert_eq!(seen, "writes=16 huge=false locks=4");
    assert_eq!(store.entries().len(), 16);
    assert_eq!(store.held_locks(), 0, "released when the call ended");
}

#[test]
fn a_guest_sees_no_environment_or_arguments() {
    let Err(CallError::OAuth(OauthError::InvalidRedirect(seen))) =
        hostile().begin_authorization(&services(), &config("https://idp.example.com/token"))
    else {
        panic!("the hostile guest reports what it saw")
    };
    assert_eq!(seen, "vars=[] args=[]");
}

/// The host checks the grant functions' signatures once, when it loads the component, and
/// then calls them unchecked: a component that differs must be refused at load.
#[test]
fn loading_refuses_a_component_whose_grant_interface_differs_from_the_contract() {
    let lifted = r#"(core module $m (func (export "f")))
        (core instance $i (instantiate $m))
        (func $f (canon lift (core func $i "f")))"#;
    for (exports, expected) in [
        ("", "does not export `integration:oauth2/grant@0.2.0`"),
        (
            r#"(instance $grant (export "forget-token" (func $f)))"#,
            "has no function `validate-config`",
        ),
        (
            r#"(instance $grant (export "validate-config" (func $f)))"#,
            "`validate-config` has another signature than this host's",
        ),
    ] {
        let export = if exports.is_empty() {
            String::new()
        } else {
            format!(r#"{exports} (export "integration:oauth2/grant@0.2.0" (instance $grant))"#)
        };
        let text = format!("(component {lifted} {export})");
        let error = Plugin::from_bytes(text.as_bytes()).expect_err(expected);
        let message = format!("{error:#}");
        assert!(
            message.contains("does not export the oauth2 grant interface")
                && message.contains(expected),
            "{message}"
        );
    }
}

#[test]
fn the_linker_refuses_a_component_that_imports_more_than_the_host_offers() {
    for (interface, function) in [
        ("wasi:filesystem/preopens@0.2.6", "get-directories"),
        ("wasi:sockets/tcp-create-socket@0.2.6", "create-tcp-socket"),
        ("wasi:sockets/ip-name-lookup@0.2.6", "resolve-addresses"),
        ("wasi:http/outgoing-handler@0.2.6", "handle"),
    ] {
        let text = format!(
            r#"(component (import "{interface}" (instance (export "{function}" (func)))))"#
        );
        let error = Plugin::from_bytes(text.as_bytes()).expect_err(interface);
        let message = format!("{error:#}");
        assert!(
            message.contains("imports something this host does not provide")
                && message.contains(interface),
            "{interface}: {message}"
        );
    }
}
