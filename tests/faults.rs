//! A token endpoint that misbehaves at the transport or HTTP level: refused connections, a body
//! cut short, a reset, silence, 5xx pages, truncated JSON, a redirect. The embedded provider
//! only fails politely, so these run against a small server of this file's own on loopback,
//! whose behaviour each test switches.
//!
//! Each failure must come back as a typed error whose text says what to check and carries no
//! credential; must leave the store exactly as it was, so the cached access token and, above
//! all, the refresh token survive; and must cost exactly one request, since a retried refresh
//! can spend a rotating refresh token and a retried code exchange a single-use code. The next
//! call after the server recovers then refreshes with the refresh token that was kept.
//!
//! The configurations use `client_auth: basic`: `auto`'s one retry on `invalid_client` is the
//! only retry in the component, and is not what these tests are about.

#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::*;
use oauth2_runtime::token_store::LockGuard;
use oauth2_runtime::{
    CallError, ClientAuth, ConnectionConfig, GrantType, MemoryStore, OauthError, StoreError, Token,
    TokenStore, TransportError, UreqClient,
};

/// What the server does with the next request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    /// A valid token response: `expires_in` 60, a new refresh token each time except for
    /// client credentials (RFC 6749 §4.4.3).
    Token,
    /// Headers announcing 500 bytes, 10 of them, then an orderly close (FIN).
    CutShort,
    /// Headers announcing 500 bytes, 10 of them, then a close with the request body unread,
    /// which makes the kernel send a reset (RST).
    ResetMidBody,
    /// No answer at all: a reset (RST) as soon as the request head is in.
    ResetBeforeAnswer,
    /// Reads the request and never answers; the connection stays open until the server stops.
    Hang,
    /// 503, `Retry-After: 120`, a text/plain page.
    Status503RetryAfter,
    /// 503, `Retry-After: 120`, a JSON body without an OAuth error.
    Status503RetryAfterJson,
    /// 500 with `{"message":"boom"}`.
    Status500Json,
    /// 200, application/json, a correct Content-Length for JSON that stops mid-number.
    TruncatedJson,
    /// 302 to this URL.
    Redirect(String),
    /// 401 `{"error":"invalid_client"}`.
    InvalidClient,
}

impl Mode {
    /// Whether the server closes with the request body unread, which resets the connection.
    fn resets(&self) -> bool {
        matches!(self, Self::ResetMidBody | Self::ResetBeforeAnswer)
    }
}

/// What the server read of one request.
#[derive(Debug, Clone)]
struct Received {
    /// The request line, such as `POST /token HTTP/1.1`.
    request_line: String,
    /// The form body; empty when the mode left it unread.
    body: String,
}

impl Received {
    fn param(&self, name: &str) -> Option<&str> {
        self.body
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    }
}

/// The misbehaving token endpoint: one connection at a time, every response with
/// `Connection: close`, so each request is one connection and none is pooled. Dropping it stops
/// its thread within a few milliseconds and closes every connection it held.
struct FaultServer {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultServer {
    fn start() -> Self {
        Self::serve(TcpListener::bind("127.0.0.1:0").expect("a loopback port"))
    }

    /// On a port used before, to come back after a test took the server away.
    fn start_on(port: u16) -> Self {
        Self::serve(TcpListener::bind(("127.0.0.1", port)).expect("the port is free again"))
    }

    fn serve(listener: TcpListener) -> Self {
        // Non-blocking accept, polled: the thread sees `stop` without a wake-up connection.
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(Mode::Token));
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = thread::spawn({
            let (mode, received, stop) = (mode.clone(), received.clone(), stop.clone());
            move || accept_loop(listener, &mode, &received, &stop)
        });
        Self {
            addr,
            mode,
            received,
            stop,
            thread: Some(thread),
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    fn set_mode(&self, mode: Mode) {
        *lock(&self.mode) = mode;
    }

    fn requests(&self) -> Vec<Received> {
        lock(&self.received).clone()
    }

    fn request_count(&self) -> usize {
        lock(&self.received).len()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // Not while unwinding from a failed assertion: its message matters more.
            if thread.join().is_err() && !thread::panicking() {
                panic!("the fault server's thread panicked");
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(
    listener: TcpListener,
    mode: &Mutex<Mode>,
    received: &Mutex<Vec<Received>>,
    stop: &AtomicBool,
) {
    // Connections of `Hang`, held open until the server stops.
    let mut held = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(_) => {
                thread::sleep(Duration::from_millis(5));
                continue;
            }
        };
        stream.set_nonblocking(false).unwrap();
        // Bounded: a client that stalls cannot keep the thread from seeing `stop`.
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mode = lock(mode).clone();
        let Some(request) = read_request(&stream, &mode) else {
            continue;
        };
        // Recorded before answering: once the client has its answer, the count includes it.
        let grant_type = request.param("grant_type").map(str::to_owned);
        lock(received).push(request);
        // A client that went away meanwhile is the client's business.
        let _ = answer(&stream, &mode, grant_type.as_deref());
        if mode.resets() {
            // Lets the client read what was sent; the drop below then resets the connection.
            thread::sleep(Duration::from_millis(50));
        }
        if mode == Mode::Hang {
            held.push(stream);
        }
    }
}

/// Reads one request; `None` when no whole request came. In the reset modes the body is left
/// in the kernel's buffer, so closing the connection resets it.
fn read_request(mut stream: &TcpStream, mode: &Mode) -> Option<Received> {
    let head = read_head(stream)?;
    let request_line = head.lines().next().unwrap_or_default().to_owned();
    let length = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let body = if mode.resets() {
        // Long enough for the body to arrive, so it is there, unread, at the close.
        thread::sleep(Duration::from_millis(50));
        String::new()
    } else {
        let mut body = vec![0; length];
        stream.read_exact(&mut body).ok()?;
        String::from_utf8_lossy(&body).into_owned()
    };
    Some(Received { request_line, body })
}

/// Answers a request as `mode` says.
fn answer(mut stream: &TcpStream, mode: &Mode, grant_type: Option<&str>) -> std::io::Result<()> {
    let json = "application/json";
    match mode {
        Mode::Token => {
            // Numbered across servers, so a restarted server issues new tokens too.
            static ISSUED: AtomicU32 = AtomicU32::new(0);
            let issued = ISSUED.fetch_add(1, Ordering::SeqCst) + 1;
            let refresh = if grant_type == Some("client_credentials") {
                String::new()
            } else {
                format!(r#","refresh_token":"fault-rt-{issued}""#)
            };
            let body = format!(
                r#"{{"access_token":"fault-at-{issued}","token_type":"Bearer","expires_in":60{refresh}}}"#
            );
            respond(stream, "200 OK", &[("Content-Type", json)], &body)
        }
        Mode::CutShort | Mode::ResetMidBody => {
            let partial = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                           Content-Length: 500\r\nConnection: close\r\n\r\n{\"access_t";
            stream.write_all(partial.as_bytes())?;
            stream.flush()
        }
        Mode::ResetBeforeAnswer | Mode::Hang => Ok(()),
        Mode::Status503RetryAfter => respond(
            stream,
            "503 Service Unavailable",
            &[("Content-Type", "text/plain"), ("Retry-After", "120")],
            "Service Unavailable",
        ),
        Mode::Status503RetryAfterJson => respond(
            stream,
            "503 Service Unavailable",
            &[("Content-Type", json), ("Retry-After", "120")],
            r#"{"message":"down for maintenance"}"#,
        ),
        Mode::Status500Json => respond(
            stream,
            "500 Internal Server Error",
            &[("Content-Type", json)],
            r#"{"message":"boom"}"#,
        ),
        Mode::TruncatedJson => respond(
            stream,
            "200 OK",
            &[("Content-Type", json)],
            r#"{"access_token":"abc","expires_in":36"#,
        ),
        Mode::Redirect(location) => respond(stream, "302 Found", &[("Location", location)], ""),
        Mode::InvalidClient => respond(
            stream,
            "401 Unauthorized",
            &[("Content-Type", json)],
            r#"{"error":"invalid_client"}"#,
        ),
    }
}

/// The request head up to the blank line, read a byte at a time so nothing after it is taken
/// from the kernel.
fn read_head(mut stream: &TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 || head.len() > 64 * 1024 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// A whole response with its Content-Length, closing the connection after it.
fn respond(
    mut stream: &TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<()> {
    let mut response = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

/// The connection of [`common::config`], at the fault server's token URL.
fn connection(server: &FaultServer, grant_type: GrantType) -> ConnectionConfig {
    ConnectionConfig {
        authorization_url: Some(format!("{}/authorize", server.base_url())),
        redirect_uri: Some(REDIRECT_URI.to_owned()),
        client_secret_name: Some("client-secret".to_owned()),
        username: Some(USERNAME.to_owned()),
        password_name: Some("alice-password".to_owned()),
        client_auth: ClientAuth::Basic,
        ..ConnectionConfig::new(grant_type, &server.token_url(), CLIENT_ID)
    }
}

/// Fetches a token from the server in `Token` mode, then lets it expire: the next
/// `ensure_token` has to go to the token endpoint (a refresh for the password grant, whose
/// token carries a refresh token; a new token for client credentials).
fn expired_token(server: &FaultServer, host: &Host, config: &ConnectionConfig) -> Token {
    server.set_mode(Mode::Token);
    let token = plugin()
        .ensure_token(&host.services, config)
        .expect("the server in Token mode issues a token");
    assert_eq!(token.expires_at, Some(START + 60), "expires_in 60 was read");
    assert_eq!(
        token.refresh_token.is_some(),
        config.grant_type == GrantType::Password,
        "only the password grant's token carries a refresh token"
    );
    host.advance(61);
    token
}

/// One `ensure_token` against the server in `mode`. Asserts what every fault must respect: the
/// store is unchanged, exactly one request reached the server, and the error's text names no
/// credential. Returns the error and its text.
fn fails_cleanly(
    server: &FaultServer,
    host: &Host,
    config: &ConnectionConfig,
    old: &Token,
    mode: Mode,
) -> (OauthError, String) {
    let before = host.snapshot();
    assert!(
        before
            .iter()
            .any(|(name, value)| name.starts_with("oauth2/token/")
                && value.contains(old.access_token.secret())),
        "the cached token is in the store"
    );
    let requests = server.request_count();
    server.set_mode(mode.clone());

    let result = plugin().ensure_token(&host.services, config);

    assert_eq!(
        host.snapshot(),
        before,
        "{mode:?}: the store, with the cached access and refresh token, is unchanged"
    );
    assert_eq!(
        server.request_count(),
        requests + 1,
        "{mode:?}: exactly one request, no retry"
    );
    let error = match result {
        Err(CallError::OAuth(e)) => e,
        Err(other) => panic!("{mode:?}: not an OAuth error: {other}"),
        Ok(token) => panic!("{mode:?}: unexpected token {token:?}"),
    };
    let text = CallError::OAuth(error.clone()).to_string();
    let debug = format!("{error:?}");
    let mut credentials = vec![CLIENT_SECRET, PASSWORD, old.access_token.secret()];
    credentials.extend(old.refresh_token.as_ref().map(|t| t.secret()));
    for credential in credentials {
        assert!(
            !text.contains(credential) && !debug.contains(credential),
            "{mode:?}: the error shows a credential: {text} / {debug}"
        );
    }
    (error, text)
}

/// Back in `Token` mode, the next `ensure_token` succeeds in one request; for the password
/// grant it is a refresh with the refresh token that was kept.
fn recovers(server: &FaultServer, host: &Host, config: &ConnectionConfig, old: &Token) {
    server.set_mode(Mode::Token);
    let requests = server.request_count();
    let token = plugin()
        .ensure_token(&host.services, config)
        .expect("the server is back");
    assert_ne!(token.access_token, old.access_token, "a new access token");
    let sent = server.requests();
    assert_eq!(sent.len(), requests + 1, "one request to recover");
    let last = sent.last().unwrap();
    match &old.refresh_token {
        Some(kept) => {
            assert_eq!(last.param("grant_type"), Some("refresh_token"));
            assert_eq!(
                last.param("refresh_token"),
                Some(kept.secret()),
                "the refresh token that survived the failure was used"
            );
        }
        None => assert_eq!(last.param("grant_type"), Some("client_credentials")),
    }
    assert!(
        host.snapshot()
            .iter()
            .any(|(_, value)| value.contains(token.access_token.secret())),
        "the new token is stored"
    );
}

const GRANTS: [GrantType; 2] = [GrantType::Password, GrantType::ClientCredentials];

#[test]
fn a_token_endpoint_that_went_away_is_a_connect_error() {
    let host = Host::new();
    let server = FaultServer::start();
    let config = connection(&server, GrantType::Password);
    let old = expired_token(&server, &host, &config);
    let port = server.port();
    let before = host.snapshot();
    drop(server);

    let err = plugin()
        .ensure_token(&host.services, &config)
        .expect_err("nothing listens");
    match &err {
        CallError::OAuth(OauthError::Transport(TransportError::Connect(message))) => {
            assert!(message.contains("refused"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("host and port"), "{text}");
    for credential in [
        CLIENT_SECRET,
        PASSWORD,
        old.refresh_token.as_ref().map(|t| t.secret()).unwrap(),
    ] {
        assert!(!text.contains(credential), "{text}");
    }
    assert_eq!(host.snapshot(), before, "the tokens are kept");

    let server = FaultServer::start_on(port);
    recovers(&server, &host, &config, &old);
}

#[test]
fn a_body_cut_short_is_a_transport_error_and_nothing_is_stored() {
    for grant_type in GRANTS {
        let host = Host::new();
        let server = FaultServer::start();
        let config = connection(&server, grant_type);
        let old = expired_token(&server, &host, &config);
        let (err, text) = fails_cleanly(&server, &host, &config, &old, Mode::CutShort);
        match err {
            OauthError::Transport(TransportError::Interrupted(message)) => {
                assert_eq!(message, "Peer disconnected", "{grant_type:?}")
            }
            other => panic!("{grant_type:?}: {other:?}"),
        }
        assert!(
            text.starts_with(
                "could not reach the token endpoint: the connection broke mid-answer: Peer disconnected. "
            ) && text.contains("retry later"),
            "{grant_type:?}: {text}"
        );
        recovers(&server, &host, &config, &old);
    }
}

/// ureq reads a reset during the body as the end of the stream, so it reports the same
/// "Peer disconnected" as an orderly close; a reset before any answer keeps its OS message.
/// Both are an interrupted answer, not an unreachable server.
#[test]
fn a_reset_connection_is_a_transport_error_and_is_not_retried() {
    let cases = [
        (Mode::ResetMidBody, "Peer disconnected"),
        (Mode::ResetBeforeAnswer, "Connection reset by peer"),
    ];
    for (mode, expected) in cases {
        let host = Host::new();
        let server = FaultServer::start();
        let config = connection(&server, GrantType::Password);
        let old = expired_token(&server, &host, &config);
        let (err, text) = fails_cleanly(&server, &host, &config, &old, mode.clone());
        match err {
            OauthError::Transport(TransportError::Interrupted(message)) => {
                assert!(message.starts_with(expected), "{mode:?}: {message}")
            }
            other => panic!("{mode:?}: {other:?}"),
        }
        assert!(
            text.starts_with("could not reach the token endpoint: the connection broke mid-answer")
                && text.contains("retry later"),
            "{text}"
        );
        recovers(&server, &host, &config, &old);
    }
}

#[test]
fn a_token_endpoint_that_never_answers_times_out_at_the_host_limit() {
    let mut host = Host::new();
    host.services.http =
        Arc::new(UreqClient::new().with_timeouts(Duration::from_secs(1), Duration::from_secs(1)));
    let server = FaultServer::start();
    let config = connection(&server, GrantType::Password);
    let old = expired_token(&server, &host, &config);

    let started = Instant::now();
    let (err, text) = fails_cleanly(&server, &host, &config, &old, Mode::Hang);
    let took = started.elapsed();
    assert_eq!(err, OauthError::Transport(TransportError::Timeout));
    assert!(text.contains("timed out"), "{text}");
    assert!(text.contains("retry later"), "{text}");
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(5)).contains(&took),
        "the 1 s limit ended the call, after {took:?}"
    );
    recovers(&server, &host, &config, &old);
}

#[test]
fn server_errors_name_the_status_and_say_retry_later() {
    for grant_type in GRANTS {
        let host = Host::new();
        let server = FaultServer::start();
        let config = connection(&server, grant_type);
        let old = expired_token(&server, &host, &config);

        let (err, text) = fails_cleanly(&server, &host, &config, &old, Mode::Status503RetryAfter);
        let OauthError::MalformedResponse(problem) = err else {
            panic!("{grant_type:?}: {err:?}");
        };
        assert_eq!(problem.status, 503);
        assert_eq!(problem.content_type.as_deref(), Some("text/plain"));
        assert!(problem.hint.contains("retry later"), "{}", problem.hint);
        assert!(text.contains("answered 503"), "{text}");

        let (err, text) =
            fails_cleanly(&server, &host, &config, &old, Mode::Status503RetryAfterJson);
        let OauthError::MalformedResponse(problem) = err else {
            panic!("{grant_type:?}: {err:?}");
        };
        assert_eq!(problem.status, 503);
        assert!(
            problem.message.contains("Retry-After: 120"),
            "{}",
            problem.message
        );
        assert!(
            problem.message.contains("down for maintenance"),
            "{}",
            problem.message
        );
        assert!(problem.hint.contains("retry later"), "{}", problem.hint);
        assert!(text.contains("Retry-After: 120"), "{text}");

        let (err, text) = fails_cleanly(&server, &host, &config, &old, Mode::Status500Json);
        let OauthError::MalformedResponse(problem) = err else {
            panic!("{grant_type:?}: {err:?}");
        };
        assert_eq!(problem.status, 500);
        assert!(problem.message.contains("\"boom\""), "{}", problem.message);
        assert!(problem.hint.contains("retry later"), "{}", problem.hint);
        assert!(text.contains("answered 500"), "{text}");

        recovers(&server, &host, &config, &old);
    }
}

/// The usual 503 is a plain-text or HTML page, and its Retry-After matters as much as a JSON
/// one's.
#[test]
fn retry_after_is_reported_whatever_the_body() {
    let host = Host::new();
    let server = FaultServer::start();
    let config = connection(&server, GrantType::Password);
    let old = expired_token(&server, &host, &config);
    let (_, text) = fails_cleanly(&server, &host, &config, &old, Mode::Status503RetryAfter);
    assert!(text.contains("Retry-After: 120"), "{text}");
}

#[test]
fn truncated_json_is_a_malformed_response_and_its_token_is_not_stored() {
    for grant_type in GRANTS {
        let host = Host::new();
        let server = FaultServer::start();
        let config = connection(&server, grant_type);
        let old = expired_token(&server, &host, &config);
        let (err, text) = fails_cleanly(&server, &host, &config, &old, Mode::TruncatedJson);
        let OauthError::MalformedResponse(problem) = err else {
            panic!("{grant_type:?}: {err:?}");
        };
        assert_eq!(problem.status, 200);
        assert_eq!(problem.content_type.as_deref(), Some("application/json"));
        assert!(problem.hint.contains("token_url"), "{}", problem.hint);
        assert!(text.contains("the JSON body ends early"), "{text}");
        assert!(
            host.snapshot()
                .iter()
                .all(|(_, value)| !value.contains("abc")),
            "the half-read access token is not stored"
        );
        recovers(&server, &host, &config, &old);
    }
}

#[test]
fn a_redirect_from_the_token_endpoint_is_not_followed() {
    let provider = start_provider();
    for grant_type in GRANTS {
        let host = Host::new();
        let server = FaultServer::start();
        let config = connection(&server, grant_type);
        let old = expired_token(&server, &host, &config);
        let (err, text) = fails_cleanly(
            &server,
            &host,
            &config,
            &old,
            Mode::Redirect(provider.token_url()),
        );
        let OauthError::MalformedResponse(problem) = err else {
            panic!("{grant_type:?}: {err:?}");
        };
        assert_eq!(problem.status, 302);
        assert_eq!(
            problem.message,
            format!("a redirect to {}", provider.token_url())
        );
        assert!(
            problem.hint.contains("redirects are not followed"),
            "{}",
            problem.hint
        );
        assert!(text.contains("answered 302"), "{text}");
        assert!(
            provider.token_requests().is_empty(),
            "{grant_type:?}: the redirect target saw no token request"
        );
        recovers(&server, &host, &config, &old);
    }
}

/// A store whose writes fail once `full` is set, as a full disk would make them.
struct FullDisk {
    inner: Arc<MemoryStore>,
    full: AtomicBool,
}

impl FullDisk {
    fn refuse(&self) -> Result<(), StoreError> {
        if self.full.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "disk full: no space left for the token store".into(),
            ));
        }
        Ok(())
    }
}

impl TokenStore for FullDisk {
    fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        TokenStore::get(&*self.inner, key)
    }

    fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), StoreError> {
        self.refuse()?;
        TokenStore::set(&*self.inner, key, value, ttl)
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.refuse()?;
        TokenStore::compare_and_swap(&*self.inner, key, expected, value, ttl)
    }

    fn lock(&self, key: &str, wait: Duration) -> Result<LockGuard, StoreError> {
        TokenStore::lock(&*self.inner, key, wait)
    }
}

#[test]
fn a_store_that_cannot_write_fails_the_call_and_keeps_the_old_entry() {
    let mut host = Host::new();
    let disk = Arc::new(FullDisk {
        inner: host.store.clone(),
        full: AtomicBool::new(false),
    });
    host.services.tokens = disk.clone();
    let server = FaultServer::start();
    let config = connection(&server, GrantType::Password);
    let old = expired_token(&server, &host, &config);
    let before = host.snapshot();

    disk.full.store(true, Ordering::SeqCst);
    let err = plugin()
        .ensure_token(&host.services, &config)
        .expect_err("the new token cannot be stored");
    match &err {
        CallError::OAuth(OauthError::TokenStore(StoreError::Unavailable(message))) => {
            assert!(message.contains("disk full"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(text.starts_with("token store: disk full"), "{text}");
    for credential in [CLIENT_SECRET, PASSWORD, "fault-"] {
        assert!(
            !text.contains(credential),
            "no credential, old or new: {text}"
        );
    }
    assert_eq!(host.snapshot(), before, "the previous entry is unchanged");
    assert_eq!(server.request_count(), 2, "one refresh, not retried");

    disk.full.store(false, Ordering::SeqCst);
    recovers(&server, &host, &config, &old);
}

#[test]
fn a_failed_code_exchange_is_not_retried_even_with_auto() {
    let host = Host::new();
    let server = FaultServer::start();
    let mut config = connection(&server, GrantType::AuthorizationCode);
    // `auto` retries invalid_client for a new token, never for a single-use code.
    config.client_auth = ClientAuth::Auto;
    for mode in [
        Mode::InvalidClient,
        Mode::ResetBeforeAnswer,
        Mode::Status500Json,
    ] {
        let start = plugin()
            .begin_authorization(&host.services, &config)
            .unwrap();
        let redirect = format!(
            "{REDIRECT_URI}?code=code-7f3a9&state={}",
            start.state.secret()
        );
        let requests = server.request_count();
        server.set_mode(mode.clone());
        let err = plugin()
            .complete_authorization(&host.services, &config, &redirect)
            .expect_err("the exchange fails");
        assert_eq!(
            server.request_count(),
            requests + 1,
            "{mode:?}: one exchange, no retry"
        );
        let last = server.requests().pop().unwrap();
        assert!(last.request_line.starts_with("POST /token "), "{last:?}");
        match (&mode, &err) {
            (Mode::InvalidClient, CallError::OAuth(OauthError::Provider(e))) => {
                assert_eq!((e.status, e.code.as_str()), (401, "invalid_client"));
                assert!(e.hint.contains("client ID"), "{}", e.hint);
            }
            (
                Mode::ResetBeforeAnswer,
                CallError::OAuth(OauthError::Transport(TransportError::Interrupted(_))),
            ) => {}
            (Mode::Status500Json, CallError::OAuth(OauthError::MalformedResponse(p))) => {
                assert_eq!(p.status, 500)
            }
            _ => panic!("{mode:?}: {err:?}"),
        }
        let text = err.to_string();
        assert!(!text.contains(CLIENT_SECRET), "{text}");
        assert!(
            !text.contains("code-7f3a9"),
            "the code is not shown: {text}"
        );
        assert!(
            host.snapshot()
                .iter()
                .all(|(name, _)| !name.starts_with("oauth2/token/")),
            "{mode:?}: no token stored, and no client authentication remembered"
        );
    }
    assert_eq!(
        host.snapshot()
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>(),
        ["alice-password", "client-secret"],
        "each pending authorization was used up, nothing else written"
    );
}
