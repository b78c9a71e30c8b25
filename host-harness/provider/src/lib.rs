//! An embedded OAuth 2.0 authorization server and protected API on 127.0.0.1, for the `demo`
//! command and the integration tests.
//!
//! It is strict where a client can get the protocol wrong: client authentication by HTTP Basic
//! with form-urlencoded halves (RFC 6749 §2.3.1) or by request body, never both; the client
//! credentials, password, authorization code (PKCE S256 required, RFC 7636), device code
//! (RFC 8628) and refresh token grants, with optional refresh token rotation; an authorization
//! endpoint and a device verification page with automatic or interactive consent; token
//! revocation (RFC 7009); a bearer-protected API (RFC 6750). Tests steer it (injected failures,
//! revocation, forced expiry) and inspect what it received (recorded token requests, counters).
//!
//! HTTP is axum's, on a tokio runtime of its own: dropping the [`Provider`] stops accepting,
//! ends the connections it holds and joins the runtime's thread before it returns. The OAuth
//! logic below is plain synchronous code over [`Request`] and [`Response`].

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Largest request body accepted; a longer one is answered 413.
const MAX_BODY: usize = 64 * 1024;
/// How long in-flight requests get to finish when the provider stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Authorization codes are short-lived (RFC 6749 §4.1.2 recommends at most ten minutes).
const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// How long a device code waits for the user's decision (RFC 8628 §3.2 `expires_in`).
const DEVICE_CODE_LIFETIME: Duration = Duration::from_secs(600);
/// What a poll sooner than the interval adds to it (RFC 8628 §3.5 `slow_down`).
const SLOW_DOWN: Duration = Duration::from_secs(5);
/// User codes: capital consonants only, so that no word is spelled (RFC 8628 §6.1); eight of
/// them carry about 34.5 bits.
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// The realm named in `WWW-Authenticate` challenges.
const REALM: &str = "demo";
/// Form parameters that carry credentials: recorded as present, never with their value.
const SECRET_PARAMS: [&str; 5] = [
    "client_secret",
    "password",
    "code_verifier",
    "refresh_token",
    "device_code",
];
const REDACTED: &str = "[redacted]";

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// A grant a client may use at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    ClientCredentials,
    Password,
    AuthorizationCode,
    RefreshToken,
    DeviceCode,
}

impl GrantType {
    pub const ALL: [GrantType; 5] = [
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
        GrantType::DeviceCode,
    ];

    /// The `grant_type` value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::Password => "password",
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
        }
    }

    fn from_wire(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|grant| grant.as_str() == value)
    }
}

/// How a confidential client may authenticate at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// HTTP Basic only (`client_secret_basic`).
    Basic,
    /// `client_id` and `client_secret` in the form body only (`client_secret_post`).
    Body,
    /// Either of them.
    Any,
}

/// What the authorization endpoint does once a request is valid, and the device verification
/// page once it is given a known user code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentMode {
    /// Redirect with a code at once; approve the device at once.
    AutoAllow,
    /// Redirect with `error=access_denied` at once; deny the device at once.
    AutoDeny,
    /// Show a page with "Allow" and "Deny" buttons (for browser tests).
    Interactive,
}

/// A registered client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub id: String,
    /// `None` makes a public client: authorization code (with PKCE), device code and refresh only.
    pub secret: Option<String>,
    pub auth_method: ClientAuthMethod,
    pub grants: Vec<GrantType>,
    /// Compared exactly with the `redirect_uri` of authorization requests.
    pub redirect_uris: Vec<String>,
    /// The scopes it may obtain; also what it gets when it asks for none (RFC 6749 §3.3).
    pub scopes: Vec<String>,
}

impl ClientConfig {
    /// A confidential client allowed every grant and either authentication method, with the
    /// scopes `read` and `write` and no redirect URI yet.
    pub fn confidential(id: &str, secret: &str) -> Self {
        ClientConfig {
            id: id.to_owned(),
            secret: Some(secret.to_owned()),
            auth_method: ClientAuthMethod::Any,
            grants: GrantType::ALL.to_vec(),
            redirect_uris: Vec::new(),
            scopes: vec!["read".to_owned(), "write".to_owned()],
        }
    }

    /// A public client (no secret) for the authorization code grant, with the scopes `read` and
    /// `write`. A public client may also be given the device code grant, which is made for one.
    pub fn public(id: &str, redirect_uri: &str) -> Self {
        ClientConfig {
            id: id.to_owned(),
            secret: None,
            auth_method: ClientAuthMethod::Any,
            grants: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            redirect_uris: vec![redirect_uri.to_owned()],
            scopes: vec!["read".to_owned(), "write".to_owned()],
        }
    }
}

/// A resource owner who can use the password grant.
#[derive(Debug, Clone)]
pub struct User {
    pub username: String,
    pub password: String,
}

/// Everything a [`Provider`] serves.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub clients: Vec<ClientConfig>,
    pub users: Vec<User>,
    /// The user on whose behalf consent is given at the authorization endpoint, which has no
    /// login page; the `sub` of tokens from authorization codes.
    pub resource_owner: String,
    /// `expires_in` of every access token.
    pub access_token_lifetime_secs: u64,
    /// When on, each refresh returns a new refresh token and invalidates the one used, and a
    /// used one presented again revokes every token of its grant (OAuth 2.1's refresh token
    /// reuse detection, as oidc-provider does); when off, the response has no refresh token and
    /// the one used stays valid.
    pub rotate_refresh_tokens: bool,
    /// Grants whose responses carry a refresh token, for clients allowed the refresh grant.
    pub refresh_token_grants: Vec<GrantType>,
    pub consent: ConsentMode,
    /// How long the token endpoint takes before it answers, as a distant provider would: what
    /// gives concurrent clients time to collide.
    pub token_delay: Duration,
    /// The polling interval announced with a device code (RFC 8628 §3.2, whole seconds): a poll
    /// sooner than that after the code's previous one is answered `slow_down`, and the code's
    /// interval grows by 5 s (§3.5).
    pub device_poll_interval: Duration,
}

impl ProviderConfig {
    /// The confidential client `demo-client` / `demo-secret` (every grant, either authentication
    /// method, scopes `read write`, the given redirect URI), the user `alice` / `wonderland`,
    /// one-hour access tokens, refresh tokens for password, authorization code and device code,
    /// rotation on, automatic consent, device codes polled at most once a second.
    ///
    /// The redirect URI is the caller's: it picks the port of its callback listener first.
    pub fn demo(redirect_uri: &str) -> Self {
        let mut client = ClientConfig::confidential("demo-client", "demo-secret");
        client.redirect_uris.push(redirect_uri.to_owned());
        ProviderConfig {
            clients: vec![client],
            users: vec![User {
                username: "alice".to_owned(),
                password: "wonderland".to_owned(),
            }],
            resource_owner: "alice".to_owned(),
            access_token_lifetime_secs: 3600,
            rotate_refresh_tokens: true,
            refresh_token_grants: vec![
                GrantType::Password,
                GrantType::AuthorizationCode,
                GrantType::DeviceCode,
            ],
            consent: ConsentMode::AutoAllow,
            token_delay: Duration::ZERO,
            device_poll_interval: Duration::from_secs(1),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// What tests can inspect
// ---------------------------------------------------------------------------------------------

/// Which client authentication a token request carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthUsed {
    /// An `Authorization: Basic` header.
    Basic,
    /// A `client_secret` form parameter.
    Body,
    /// Both (rejected with `invalid_request`).
    Both,
    /// Neither: a public client, or none at all.
    Neither,
}

/// One request received at the token endpoint, as recorded for tests.
#[derive(Debug, Clone)]
pub struct TokenRequestRecord {
    pub grant_type: Option<String>,
    pub client_auth: ClientAuthUsed,
    /// Whether an `Authorization` header was present, whatever its scheme.
    pub authorization_header: bool,
    pub accept: Option<String>,
    pub content_type: Option<String>,
    /// The form parameters in order, credentials (see `SECRET_PARAMS`) replaced by `[redacted]`.
    pub params: Vec<(String, String)>,
}

impl TokenRequestRecord {
    /// The first value of a form parameter (`[redacted]` for credentials).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn new(request: &Request, params: &[(String, String)]) -> Self {
        let has_param = |name: &str| params.iter().any(|(key, _)| key == name);
        let basic = request
            .header("authorization")
            .and_then(|value| value.split_once(' '))
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
        let client_auth = match (basic, has_param("client_secret")) {
            (true, true) => ClientAuthUsed::Both,
            (true, false) => ClientAuthUsed::Basic,
            (false, true) => ClientAuthUsed::Body,
            (false, false) => ClientAuthUsed::Neither,
        };
        TokenRequestRecord {
            grant_type: params
                .iter()
                .find(|(key, _)| key == "grant_type")
                .map(|(_, value)| value.clone()),
            client_auth,
            authorization_header: request.header("authorization").is_some(),
            accept: request.header("accept").map(str::to_owned),
            content_type: request.header("content-type").map(str::to_owned),
            params: params
                .iter()
                .map(|(key, value)| {
                    let value = if SECRET_PARAMS.contains(&key.as_str()) {
                        REDACTED.to_owned()
                    } else {
                        value.clone()
                    };
                    (key.clone(), value)
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The provider
// ---------------------------------------------------------------------------------------------

/// A running provider. Dropping it (or [`Provider::shutdown`]) stops it.
pub struct Provider {
    server: Server,
    shared: Arc<Shared>,
}

impl Provider {
    /// Binds a free port on 127.0.0.1 and serves on a thread of its own.
    pub fn start(config: ProviderConfig) -> io::Result<Provider> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let shared = Arc::new(Shared {
            config,
            origin: format!("http://{}", listener.local_addr()?),
            state: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(serve)
            .with_state(Arc::clone(&shared));
        Ok(Provider {
            server: Server::start(listener, app)?,
            shared,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        self.shared.origin.clone()
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    pub fn authorization_url(&self) -> String {
        format!("{}/authorize", self.base_url())
    }

    /// The RFC 7009 revocation endpoint.
    pub fn revocation_url(&self) -> String {
        format!("{}/revoke", self.base_url())
    }

    /// The RFC 8628 device authorization endpoint.
    pub fn device_authorization_url(&self) -> String {
        format!("{}/device_authorization", self.base_url())
    }

    /// Every request received at the token endpoint so far, oldest first.
    pub fn token_requests(&self) -> Vec<TokenRequestRecord> {
        self.shared.lock().token_requests.clone()
    }

    /// How many token requests named this `grant_type` (e.g. `"refresh_token"`).
    pub fn token_request_count(&self, grant_type: &str) -> usize {
        self.shared
            .lock()
            .token_requests
            .iter()
            .filter(|record| record.grant_type.as_deref() == Some(grant_type))
            .count()
    }

    /// How many requests reached the protected API, whether or not they were authorized.
    pub fn api_call_count(&self) -> usize {
        self.shared.lock().api_calls
    }

    /// Answers the next `count` token requests with this raw response instead of processing them
    /// (they are still recorded).
    pub fn fail_next_token_requests(
        &self,
        count: usize,
        status: u16,
        body: &str,
        content_type: &str,
    ) {
        let response = Response::new(status, content_type, body);
        self.shared
            .lock()
            .injected
            .extend(std::iter::repeat_n(response, count));
    }

    /// Answers the next token request with this RFC 6749 §5.2 error (401 for `invalid_client`,
    /// 400 otherwise) instead of processing it.
    pub fn reject_next_token_request(&self, error: &str, description: &str) {
        let response = token_error_response(error, description);
        self.shared.lock().injected.push_back(response);
    }

    /// How many used refresh tokens were presented again (each revoked its grant).
    pub fn refresh_replays(&self) -> usize {
        self.shared.lock().refresh_replays
    }

    /// The refresh tokens valid now.
    pub fn live_refresh_tokens(&self) -> Vec<String> {
        self.shared.lock().refresh_tokens.keys().cloned().collect()
    }

    /// The access and refresh tokens issued so far that are still known (valid, or rotated
    /// away), for tests that look for them where they must not be.
    pub fn known_tokens(&self) -> Vec<String> {
        let state = self.shared.lock();
        state
            .access_tokens
            .keys()
            .chain(state.refresh_tokens.keys())
            .chain(state.used_refresh_tokens.keys())
            .cloned()
            .collect()
    }

    /// Invalidates every access and refresh token issued so far.
    pub fn revoke_all(&self) {
        let mut state = self.shared.lock();
        state.access_tokens.clear();
        state.refresh_tokens.clear();
    }

    /// Makes every access token issued so far expired; refresh tokens stay valid.
    pub fn expire_all_access_tokens(&self) {
        for token in self.shared.lock().access_tokens.values_mut() {
            token.lifetime = Duration::ZERO;
        }
    }

    /// Makes every device code expire now: its next poll hears `expired_token`.
    pub fn expire_device_codes(&self) {
        let now = Instant::now();
        for authorization in self.shared.lock().device_authorizations.values_mut() {
            authorization.expires = now;
        }
    }

    /// Stops serving, closes the port and joins all threads (as dropping does).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("addr", &self.server.addr)
            .finish_non_exhaustive()
    }
}

/// An axum app served on a free port of 127.0.0.1 by a runtime thread of its own, until dropped:
/// then it stops accepting, ends the connections it holds, and joins the thread.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(listener: TcpListener, app: axum::Router) -> io::Result<Server> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("oauth-provider")
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = thread::Builder::new()
            .name("oauth-provider".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await;
                });
                runtime.shutdown_timeout(SHUTDOWN_GRACE);
            })?;
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A request as a [`Scripted`] server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// What a [`Scripted`] server answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Answer {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }
}

/// A server on 127.0.0.1 that answers every request with what a function makes of it: for tests
/// of clients against answers no real server gives (echoes, redirects, oversized bodies).
pub struct Scripted {
    server: Server,
}

impl Scripted {
    pub fn start(answer: impl Fn(Received) -> Answer + Send + Sync + 'static) -> io::Result<Self> {
        let answer = Arc::new(answer);
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let answer = Arc::clone(&answer);
            async move {
                let (parts, body) = request.into_parts();
                // Tests send what they choose: no limit beyond the test's own.
                let body = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                let received = Received {
                    method: parts.method.as_str().to_owned(),
                    target: parts
                        .uri
                        .path_and_query()
                        .map_or_else(|| parts.uri.path().to_owned(), |t| t.as_str().to_owned()),
                    headers: header_pairs(&parts.headers),
                    body: body.to_vec(),
                };
                let answer = answer(received);
                into_axum(answer.status, answer.headers, answer.body)
            }
        });
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        Ok(Scripted {
            server: Server::start(listener, app)?,
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }
}

fn header_pairs(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect()
}

/// A response for axum; a header it cannot carry is left out, and a status HTTP cannot carry is a
/// server error (tests inject any).
fn into_axum(
    status: u16,
    headers: impl IntoIterator<Item = (impl AsRef<str>, String)>,
    body: Vec<u8>,
) -> axum::response::Response {
    let mut response = axum::response::Response::new(axum::body::Body::from(body));
    *response.status_mut() = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_ref().as_bytes()),
            axum::http::HeaderValue::from_str(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

/// One request through axum into the OAuth logic, and its answer back.
async fn serve(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let too_large = || {
        Response::new(
            413,
            "text/plain; charset=utf-8",
            format!("the body is limited to {MAX_BODY} bytes\n"),
        )
        .into_axum()
    };
    // A body announced too large is refused before it is waited for.
    let announced = parts
        .headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|length| length > MAX_BODY as u64) {
        return too_large();
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return too_large();
    };
    let request = Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: header_pairs(&parts.headers),
        body: body.to_vec(),
    };
    if request.path == "/token" {
        // Before the state is locked, so that delayed requests overlap.
        tokio::time::sleep(shared.config.token_delay).await;
    }
    shared.handle(&request).into_axum()
}

// ---------------------------------------------------------------------------------------------
// OAuth state and endpoints
// ---------------------------------------------------------------------------------------------

struct Shared {
    config: ProviderConfig,
    /// `http://127.0.0.1:PORT`: its own address, never a request's Host header, goes into the
    /// verification URI.
    origin: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    access_tokens: HashMap<String, AccessToken>,
    refresh_tokens: HashMap<String, Grant>,
    codes: HashMap<String, Code>,
    /// Codes already exchanged, with the family of the tokens they gave.
    redeemed_codes: HashMap<String, u64>,
    /// Refresh tokens rotated away, with their family.
    used_refresh_tokens: HashMap<String, u64>,
    refresh_replays: usize,
    /// Authorization requests waiting for the user's decision, by the id on the consent page.
    pending_consents: HashMap<String, Authorization>,
    /// Device authorizations, by device code, until they are redeemed or long expired.
    device_authorizations: HashMap<String, DeviceAuthorization>,
    /// Device consent pages shown, by the id on the page: the device code each decides.
    pending_device_consents: HashMap<String, String>,
    next_family: u64,
    injected: VecDeque<Response>,
    token_requests: Vec<TokenRequestRecord>,
    api_calls: usize,
}

/// What a token stands for. `family` ties together all tokens that descend from one grant, so
/// that a replayed authorization code can revoke them (RFC 6749 §4.1.2).
#[derive(Clone)]
struct Grant {
    client_id: String,
    subject: String,
    scope: Vec<String>,
    family: u64,
}

struct AccessToken {
    grant: Grant,
    issued: Instant,
    lifetime: Duration,
}

/// A valid authorization request, waiting for consent or bound to a code.
struct Authorization {
    client_id: String,
    redirect: Redirect,
    /// Whether the request named its `redirect_uri`: then the token request must repeat it
    /// (RFC 6749 §4.1.3).
    redirect_uri_given: bool,
    scope: Vec<String>,
    code_challenge: String,
}

struct Code {
    authorization: Authorization,
    issued: Instant,
}

/// A device code and what the user made of it (RFC 8628 §3.2-3.5).
struct DeviceAuthorization {
    client_id: String,
    user_code: String,
    scope: Vec<String>,
    expires: Instant,
    decision: Decision,
    /// Between polls, as announced and then slowed down.
    interval: Duration,
    last_poll: Option<Instant>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Decision {
    Pending,
    Allowed,
    Denied,
}

impl DeviceAuthorization {
    fn is_expired(&self) -> bool {
        Instant::now() >= self.expires
    }

    fn is_undecided(&self) -> bool {
        self.decision == Decision::Pending && !self.is_expired()
    }
}

/// Where the authorization endpoint sends the user agent back, with the client's `state`.
struct Redirect {
    uri: String,
    state: Option<String>,
}

impl Redirect {
    /// A 302 to the redirect URI with these query parameters and the `state`, unchanged.
    fn with(&self, params: &[(&str, &str)]) -> Response {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.extend_pairs(params);
        if let Some(state) = &self.state {
            query.append_pair("state", state);
        }
        let separator = if self.uri.contains('?') { '&' } else { '?' };
        let location = format!("{}{separator}{}", self.uri, query.finish());
        Response::new(302, "text/plain; charset=utf-8", "")
            .with_header("Location", location)
            .with_header("Cache-Control", "no-store")
    }

    fn with_error(&self, error: &OAuthError) -> Response {
        self.with(&[
            ("error", error.code),
            ("error_description", &error.description),
        ])
    }
}

/// Token endpoint success (RFC 6749 §5.1).
struct TokenResponse {
    access_token: String,
    expires_in: u64,
    refresh_token: Option<String>,
    scope: Vec<String>,
}

impl TokenResponse {
    fn into_response(self) -> Response {
        let mut body = json!({
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        });
        if let Some(refresh_token) = self.refresh_token {
            body["refresh_token"] = refresh_token.into();
        }
        if !self.scope.is_empty() {
            body["scope"] = self.scope.join(" ").into();
        }
        Response::json(200, &body).no_store()
    }
}

/// An RFC 6749 error: §5.2 at the token endpoint, §4.1.2.1 in an authorization redirect.
#[derive(Debug)]
struct OAuthError {
    code: &'static str,
    description: String,
}

impl OAuthError {
    fn new(code: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
        }
    }
}

fn token_error_response(error: &str, description: &str) -> Response {
    let status = match error {
        "invalid_client" => 401,
        "server_error" => 500,
        _ => 400,
    };
    let body = json!({ "error": error, "error_description": description });
    let response = Response::json(status, &body).no_store();
    if status == 401 {
        response.with_header("WWW-Authenticate", format!("Basic realm=\"{REALM}\""))
    } else {
        response
    }
}

/// Request parameters, each present at most once (RFC 6749 §3.1, §3.2).
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(input: &[u8]) -> Result<Self, OAuthError> {
        let params: Vec<(String, String)> = form_urlencoded::parse(input).into_owned().collect();
        Self::new(params)
    }

    fn new(params: Vec<(String, String)>) -> Result<Self, OAuthError> {
        let mut seen = HashSet::new();
        if let Some((name, _)) = params.iter().find(|(name, _)| !seen.insert(name.as_str())) {
            return Err(OAuthError::new(
                "invalid_request",
                format!("parameter {name} is repeated"),
            ));
        }
        Ok(Form(params))
    }

    /// A parameter's value; an empty one counts as absent (RFC 6749 §3.1).
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No handler panics while holding the lock; should one, its state is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn client(&self, id: &str) -> Option<&ClientConfig> {
        self.config.clients.iter().find(|client| client.id == id)
    }

    fn handle(&self, request: &Request) -> Response {
        let path = request.path.as_str();
        match (request.method.as_str(), path) {
            ("POST", "/token") => self.token_endpoint(request),
            ("GET", "/authorize") => self.authorize(request),
            ("POST", "/authorize/decision") => self.decide(request),
            ("POST", "/revoke") => self.revocation_endpoint(request),
            ("POST", "/device_authorization") => self.device_authorization_endpoint(request),
            ("GET", "/device") => self.device_page(request),
            ("POST", "/device/decision") => self.device_decision(request),
            (
                _,
                "/token"
                | "/authorize/decision"
                | "/revoke"
                | "/device_authorization"
                | "/device/decision",
            ) => method_not_allowed("POST"),
            (_, "/authorize" | "/device") => method_not_allowed("GET"),
            _ if path == "/api" || path.starts_with("/api/") => self.api(request),
            _ => Response::new(404, "text/plain; charset=utf-8", "not found\n"),
        }
    }

    // --- token endpoint ------------------------------------------------------------------------

    fn token_endpoint(&self, request: &Request) -> Response {
        let params: Vec<(String, String)> =
            form_urlencoded::parse(&request.body).into_owned().collect();
        let mut state = self.lock();
        state
            .token_requests
            .push(TokenRequestRecord::new(request, &params));
        if let Some(injected) = state.injected.pop_front() {
            return injected;
        }
        match self.token_grant(&mut state, request, params) {
            Ok(issued) => issued.into_response(),
            Err(error) => token_error_response(error.code, &error.description),
        }
    }

    fn token_grant(
        &self,
        state: &mut State,
        request: &Request,
        params: Vec<(String, String)>,
    ) -> Result<TokenResponse, OAuthError> {
        if !request.has_media_type("application/x-www-form-urlencoded") {
            return Err(OAuthError::new(
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let form = Form::new(params)?;
        let grant_type = form
            .get("grant_type")
            .ok_or_else(|| OAuthError::new("invalid_request", "grant_type is missing"))?;
        let grant_type = GrantType::from_wire(grant_type).ok_or_else(|| {
            OAuthError::new(
                "unsupported_grant_type",
                format!("grant_type {grant_type} is not supported"),
            )
        })?;
        let client = self.authenticate(request, &form)?;
        // A public client cannot prove who it is: only a PKCE-bound code, a device code the
        // user approved (and the refresh tokens that came from them) are safe to honour for it.
        let public_may_use = matches!(
            grant_type,
            GrantType::AuthorizationCode | GrantType::RefreshToken | GrantType::DeviceCode
        );
        if !client.grants.contains(&grant_type) || (client.secret.is_none() && !public_may_use) {
            return Err(OAuthError::new(
                "unauthorized_client",
                format!(
                    "client {} may not use the {} grant",
                    client.id,
                    grant_type.as_str()
                ),
            ));
        }
        match grant_type {
            GrantType::ClientCredentials => {
                let grant = Grant {
                    client_id: client.id.clone(),
                    subject: client.id.clone(),
                    scope: negotiate_scope(form.get("scope"), &client.scopes)?,
                    family: state.new_family(),
                };
                self.issue_new(state, client, grant_type, grant)
            }
            GrantType::Password => self.password_grant(state, client, &form),
            GrantType::AuthorizationCode => self.code_grant(state, client, &form),
            GrantType::RefreshToken => self.refresh_grant(state, client, &form),
            GrantType::DeviceCode => self.device_code_grant(state, client, &form),
        }
    }

    /// RFC 7009: an authenticated client revokes one of its tokens. A refresh token takes its
    /// whole grant with it, an access token only itself; a token that is unknown or another
    /// client's is answered 200 all the same (§2.2), so the answer tells nothing about it.
    fn revocation_endpoint(&self, request: &Request) -> Response {
        let revoked = Form::parse(&request.body).and_then(|form| {
            let client = self.authenticate(request, &form)?;
            let token = form
                .get("token")
                .ok_or_else(|| OAuthError::new("invalid_request", "token is missing"))?;
            let mut state = self.lock();
            let family = state
                .refresh_tokens
                .get(token)
                .filter(|grant| grant.client_id == client.id)
                .map(|grant| grant.family);
            if let Some(family) = family {
                state.revoke_family(family);
            } else if state
                .access_tokens
                .get(token)
                .is_some_and(|access| access.grant.client_id == client.id)
            {
                state.access_tokens.remove(token);
            }
            Ok(())
        });
        match revoked {
            Ok(()) => Response::new(200, "text/plain; charset=utf-8", ""),
            Err(error) => token_error_response(error.code, &error.description),
        }
    }

    /// Client authentication (RFC 6749 §2.3): HTTP Basic or body, exactly one of them, or none
    /// for a public client.
    fn authenticate(&self, request: &Request, form: &Form) -> Result<&ClientConfig, OAuthError> {
        let invalid_client = |description: &str| OAuthError::new("invalid_client", description);
        let basic = match request.header("authorization") {
            Some(header) => Some(
                parse_basic(header)
                    .ok_or_else(|| invalid_client("the Authorization header is not valid Basic"))?,
            ),
            None => None,
        };
        let (id, secret, method) = match (basic, form.get("client_secret")) {
            (Some(_), Some(_)) => {
                return Err(OAuthError::new(
                    "invalid_request",
                    "use one client authentication method, not both Basic and client_secret",
                ));
            }
            (Some((id, secret)), None) => {
                if form.get("client_id").is_some_and(|body_id| body_id != id) {
                    return Err(OAuthError::new(
                        "invalid_request",
                        "client_id differs from the Basic credentials",
                    ));
                }
                (id, Some(secret), ClientAuthMethod::Basic)
            }
            (None, secret) => {
                let id = form
                    .get("client_id")
                    .ok_or_else(|| invalid_client("no client authentication"))?;
                (
                    id.to_owned(),
                    secret.map(str::to_owned),
                    ClientAuthMethod::Body,
                )
            }
        };
        let client = self
            .client(&id)
            .ok_or_else(|| invalid_client("unknown client"))?;
        match (&client.secret, secret) {
            (None, None) => Ok(client),
            (None, Some(_)) => Err(invalid_client("a public client has no secret")),
            (Some(_), None) => Err(invalid_client("client authentication is required")),
            (Some(expected), Some(given)) => {
                if client.auth_method != ClientAuthMethod::Any && client.auth_method != method {
                    let allowed = match client.auth_method {
                        ClientAuthMethod::Basic => "HTTP Basic",
                        _ => "client_secret in the body",
                    };
                    Err(invalid_client(&format!(
                        "this client must authenticate with {allowed}"
                    )))
                } else if constant_time_eq(expected.as_bytes(), given.as_bytes()) {
                    Ok(client)
                } else {
                    Err(invalid_client("wrong client secret"))
                }
            }
        }
    }

    fn password_grant(
        &self,
        state: &mut State,
        client: &ClientConfig,
        form: &Form,
    ) -> Result<TokenResponse, OAuthError> {
        let (Some(username), Some(password)) = (form.get("username"), form.get("password")) else {
            return Err(OAuthError::new(
                "invalid_request",
                "username and password are required",
            ));
        };
        let user = self
            .config
            .users
            .iter()
            .find(|user| user.username == username)
            .filter(|user| constant_time_eq(user.password.as_bytes(), password.as_bytes()))
            .ok_or_else(|| OAuthError::new("invalid_grant", "wrong username or password"))?;
        let grant = Grant {
            client_id: client.id.clone(),
            subject: user.username.clone(),
            scope: negotiate_scope(form.get("scope"), &client.scopes)?,
            family: state.new_family(),
        };
        self.issue_new(state, client, GrantType::Password, grant)
    }

    fn code_grant(
        &self,
        state: &mut State,
        client: &ClientConfig,
        form: &Form,
    ) -> Result<TokenResponse, OAuthError> {
        let invalid_grant = |description: &str| OAuthError::new("invalid_grant", description);
        let value = form
            .get("code")
            .ok_or_else(|| OAuthError::new("invalid_request", "code is missing"))?;
        let verifier = form
            .get("code_verifier")
            .ok_or_else(|| OAuthError::new("invalid_request", "code_verifier is missing (PKCE)"))?;
        if let Some(&family) = state.redeemed_codes.get(value) {
            state.revoke_family(family);
            return Err(invalid_grant(
                "the authorization code was already used; the tokens it gave are revoked",
            ));
        }
        let code = state
            .codes
            .get(value)
            .ok_or_else(|| invalid_grant("unknown authorization code"))?;
        let authorization = &code.authorization;
        if code.issued.elapsed() >= CODE_LIFETIME {
            return Err(invalid_grant("the authorization code has expired"));
        }
        if authorization.client_id != client.id {
            return Err(invalid_grant(
                "the authorization code was issued to another client",
            ));
        }
        let redirect_uri_matches = match form.get("redirect_uri") {
            Some(uri) => uri == authorization.redirect.uri,
            None => !authorization.redirect_uri_given,
        };
        if !redirect_uri_matches {
            return Err(invalid_grant(
                "redirect_uri differs from the authorization request",
            ));
        }
        if !pkce_verifies(verifier, &authorization.code_challenge) {
            return Err(invalid_grant("code_verifier does not match code_challenge"));
        }
        let scope = authorization.scope.clone();
        state.codes.remove(value);
        let family = state.new_family();
        state.redeemed_codes.insert(value.to_owned(), family);
        let grant = Grant {
            client_id: client.id.clone(),
            subject: self.config.resource_owner.clone(),
            scope,
            family,
        };
        self.issue_new(state, client, GrantType::AuthorizationCode, grant)
    }

    fn refresh_grant(
        &self,
        state: &mut State,
        client: &ClientConfig,
        form: &Form,
    ) -> Result<TokenResponse, OAuthError> {
        let value = form
            .get("refresh_token")
            .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is missing"))?;
        if let Some(&family) = state.used_refresh_tokens.get(value) {
            state.revoke_family(family);
            state.refresh_replays += 1;
            return Err(OAuthError::new(
                "invalid_grant",
                "refresh token already used: every token of its grant is revoked",
            ));
        }
        let grant = state.refresh_tokens.get(value).ok_or_else(|| {
            OAuthError::new("invalid_grant", "unknown, used or revoked refresh token")
        })?;
        if grant.client_id != client.id {
            return Err(OAuthError::new(
                "invalid_grant",
                "the refresh token was issued to another client",
            ));
        }
        // A refresh may narrow the scope of the new access token (RFC 6749 §6); a rotated
        // refresh token keeps the original scope.
        let access = Grant {
            scope: negotiate_scope(form.get("scope"), &grant.scope)?,
            ..grant.clone()
        };
        let rotated = if self.config.rotate_refresh_tokens {
            state
                .used_refresh_tokens
                .insert(value.to_owned(), grant.family);
            state.refresh_tokens.remove(value)
        } else {
            None
        };
        state.issue(access, self.config.access_token_lifetime_secs, rotated)
    }

    /// RFC 8628 §3.4-3.5: the state of the client's device code, or its tokens once the user
    /// approved. An approved, denied or expired code is spent by the answer that says so.
    fn device_code_grant(
        &self,
        state: &mut State,
        client: &ClientConfig,
        form: &Form,
    ) -> Result<TokenResponse, OAuthError> {
        let device_code = form
            .get("device_code")
            .ok_or_else(|| OAuthError::new("invalid_request", "device_code is missing"))?;
        let unknown = || OAuthError::new("invalid_grant", "unknown device code");
        let Entry::Occupied(mut entry) = state.device_authorizations.entry(device_code.to_owned())
        else {
            return Err(unknown());
        };
        if entry.get().client_id != client.id {
            return Err(unknown());
        }
        let waiting = entry.get_mut();
        if waiting.is_undecided() {
            let now = Instant::now();
            let too_soon = waiting
                .last_poll
                .is_some_and(|last| now.duration_since(last) < waiting.interval);
            waiting.last_poll = Some(now);
            if too_soon {
                waiting.interval += SLOW_DOWN;
                return Err(OAuthError::new(
                    "slow_down",
                    format!(
                        "polled sooner than the interval: poll every {} s from now on",
                        waiting.interval.as_secs()
                    ),
                ));
            }
            return Err(OAuthError::new(
                "authorization_pending",
                "the user has not decided yet",
            ));
        }
        let authorization = entry.remove();
        if authorization.is_expired() {
            return Err(OAuthError::new(
                "expired_token",
                "the device code expired: start again",
            ));
        }
        match authorization.decision {
            Decision::Allowed => {
                let grant = Grant {
                    client_id: client.id.clone(),
                    subject: self.config.resource_owner.clone(),
                    scope: authorization.scope,
                    family: state.new_family(),
                };
                self.issue_new(state, client, GrantType::DeviceCode, grant)
            }
            Decision::Denied | Decision::Pending => Err(access_denied()),
        }
    }

    /// Issues the tokens of a new grant: an access token, and a refresh token when configured for
    /// this grant and the client may use it.
    fn issue_new(
        &self,
        state: &mut State,
        client: &ClientConfig,
        grant_type: GrantType,
        grant: Grant,
    ) -> Result<TokenResponse, OAuthError> {
        let with_refresh = self.config.refresh_token_grants.contains(&grant_type)
            && client.grants.contains(&GrantType::RefreshToken);
        let refresh = with_refresh.then(|| grant.clone());
        state.issue(grant, self.config.access_token_lifetime_secs, refresh)
    }

    // --- authorization endpoint ----------------------------------------------------------------

    fn authorize(&self, request: &Request) -> Response {
        let form = match Form::parse(request.query.as_bytes()) {
            Ok(form) => form,
            Err(error) => return html_error(400, &error.description),
        };
        // Until client and redirect URI are known to be good, errors are shown, not redirected:
        // an open redirector would hand codes to anyone (RFC 6749 §4.1.2.1).
        let Some(client) = form.get("client_id").and_then(|id| self.client(id)) else {
            return html_error(400, "unknown or missing client_id");
        };
        let registered = |uri: &str| client.redirect_uris.iter().any(|known| known == uri);
        let requested = form.get("redirect_uri");
        let (uri, redirect_uri_given) = match (requested, client.redirect_uris.as_slice()) {
            (Some(uri), _) if registered(uri) => (uri.to_owned(), true),
            (None, [only]) => (only.clone(), false),
            _ => return html_error(400, "redirect_uri is not registered for this client"),
        };
        let redirect = Redirect {
            uri,
            state: form.get("state").map(str::to_owned),
        };
        let (scope, code_challenge) = match check_authorization_request(client, &form) {
            Ok(checked) => checked,
            Err(error) => return redirect.with_error(&error),
        };
        let authorization = Authorization {
            client_id: client.id.clone(),
            redirect,
            redirect_uri_given,
            scope,
            code_challenge,
        };
        let mut state = self.lock();
        match self.config.consent {
            ConsentMode::AutoAllow => state.approve(authorization),
            ConsentMode::AutoDeny => authorization.redirect.with_error(&access_denied()),
            ConsentMode::Interactive => match random_token() {
                Ok(id) => {
                    let page = consent_page(&id, &authorization, &self.config.resource_owner);
                    state.pending_consents.insert(id, authorization);
                    page
                }
                Err(error) => authorization.redirect.with_error(&error),
            },
        }
    }

    /// The form posted from the consent page.
    fn decide(&self, request: &Request) -> Response {
        let form = match Form::parse(&request.body) {
            Ok(form) => form,
            Err(error) => return html_error(400, &error.description),
        };
        let mut state = self.lock();
        let Some(authorization) = form
            .get("request_id")
            .and_then(|id| state.pending_consents.remove(id))
        else {
            return html_error(400, "unknown or already decided authorization request");
        };
        if form.get("decision") == Some("allow") {
            state.approve(authorization)
        } else {
            authorization.redirect.with_error(&access_denied())
        }
    }

    // --- device authorization (RFC 8628) -----------------------------------------------------

    /// §3.1-3.2: a device code for an authenticated client allowed the grant, with the user
    /// code and where the user enters it.
    fn device_authorization_endpoint(&self, request: &Request) -> Response {
        let started = self.start_device_authorization(request);
        match started {
            Ok(body) => Response::json(200, &body).no_store(),
            Err(error) => token_error_response(error.code, &error.description),
        }
    }

    fn start_device_authorization(
        &self,
        request: &Request,
    ) -> Result<serde_json::Value, OAuthError> {
        if !request.has_media_type("application/x-www-form-urlencoded") {
            return Err(OAuthError::new(
                "invalid_request",
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let form = Form::parse(&request.body)?;
        let client = self.authenticate(request, &form)?;
        if !client.grants.contains(&GrantType::DeviceCode) {
            return Err(OAuthError::new(
                "unauthorized_client",
                format!("client {} may not use the device code grant", client.id),
            ));
        }
        let scope = negotiate_scope(form.get("scope"), &client.scopes)?;
        let device_code = random_token()?;
        let mut state = self.lock();
        // Codes expired for a lifetime more are forgotten: until then a poll hears expired_token.
        let forgotten = Instant::now().checked_sub(DEVICE_CODE_LIFETIME);
        state.device_authorizations.retain(|_, authorization| {
            forgotten.is_none_or(|forgotten| authorization.expires > forgotten)
        });
        // A user code stands for one waiting device at a time.
        let user_code = loop {
            let code = user_code()?;
            if state.undecided_device_code(&code).is_none() {
                break code;
            }
        };
        let origin = &self.origin;
        let body = json!({
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": format!("{origin}/device"),
            "verification_uri_complete": format!("{origin}/device?user_code={user_code}"),
            "expires_in": DEVICE_CODE_LIFETIME.as_secs(),
            "interval": self.config.device_poll_interval.as_secs(),
        });
        state.device_authorizations.insert(
            device_code,
            DeviceAuthorization {
                client_id: client.id.clone(),
                user_code,
                scope,
                expires: Instant::now() + DEVICE_CODE_LIFETIME,
                decision: Decision::Pending,
                interval: self.config.device_poll_interval,
                last_poll: None,
            },
        );
        Ok(body)
    }

    /// §3.3: where the user enters the user code, or arrives with it in the URI
    /// (`verification_uri_complete`). With automatic consent a known code is decided at once.
    fn device_page(&self, request: &Request) -> Response {
        let form = match Form::parse(request.query.as_bytes()) {
            Ok(form) => form,
            Err(error) => return html_error(400, &error.description),
        };
        let Some(entered) = form.get("user_code") else {
            return device_entry_page();
        };
        let mut state = self.lock();
        let Some(device_code) = state.undecided_device_code(entered) else {
            return html_error(400, "unknown, expired or already used user code");
        };
        match self.config.consent {
            ConsentMode::AutoAllow => state.decide_device(&device_code, Decision::Allowed),
            ConsentMode::AutoDeny => state.decide_device(&device_code, Decision::Denied),
            ConsentMode::Interactive => {
                let id = match random_token() {
                    Ok(id) => id,
                    Err(error) => return html_error(500, &error.description),
                };
                let owner = &self.config.resource_owner;
                let Some(page) = (state.device_authorizations.get(&device_code))
                    .map(|authorization| device_consent_page(&id, authorization, owner))
                else {
                    return html_error(400, "unknown, expired or already used user code");
                };
                state.pending_device_consents.insert(id, device_code);
                page
            }
        }
    }

    /// The form posted from the device consent page: only a page this provider showed can
    /// decide, once.
    fn device_decision(&self, request: &Request) -> Response {
        let form = match Form::parse(&request.body) {
            Ok(form) => form,
            Err(error) => return html_error(400, &error.description),
        };
        let mut state = self.lock();
        let Some(device_code) = form
            .get("request_id")
            .and_then(|id| state.pending_device_consents.remove(id))
        else {
            return html_error(400, "unknown or already decided device authorization");
        };
        let decision = if form.get("decision") == Some("allow") {
            Decision::Allowed
        } else {
            Decision::Denied
        };
        state.decide_device(&device_code, decision)
    }

    // --- protected API -------------------------------------------------------------------------

    fn api(&self, request: &Request) -> Response {
        let mut state = self.lock();
        state.api_calls += 1;
        let Some(token) = request.header("authorization").and_then(bearer_token) else {
            // No credentials at all: a challenge without an error code (RFC 6750 §3.1).
            return Response::json(
                401,
                &json!({ "error": "invalid_token", "error_description": "no bearer token" }),
            )
            .with_header("WWW-Authenticate", format!("Bearer realm=\"{REALM}\""));
        };
        let rejection = match state.access_tokens.get(token) {
            None => "unknown or revoked access token",
            Some(access) if access.issued.elapsed() >= access.lifetime => "expired access token",
            Some(access) => {
                let grant = &access.grant;
                return Response::json(
                    200,
                    &json!({
                        "ok": true,
                        "client_id": grant.client_id,
                        "sub": grant.subject,
                        "scope": grant.scope.join(" "),
                        "path": request.path,
                    }),
                );
            }
        };
        let challenge = format!(
            "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{rejection}\""
        );
        Response::json(
            401,
            &json!({ "error": "invalid_token", "error_description": rejection }),
        )
        .with_header("WWW-Authenticate", challenge)
    }
}

impl State {
    /// The device code still waiting for the user who typed `entered`: compared in capitals
    /// without separators, as users type codes (RFC 8628 §6.1).
    fn undecided_device_code(&self, entered: &str) -> Option<String> {
        let entered = normalized_user_code(entered);
        self.device_authorizations
            .iter()
            .find(|(_, a)| a.is_undecided() && normalized_user_code(&a.user_code) == entered)
            .map(|(device_code, _)| device_code.clone())
    }

    /// Records the user's decision, unless the code expired or was decided meanwhile.
    fn decide_device(&mut self, device_code: &str, decision: Decision) -> Response {
        let Some(authorization) = self
            .device_authorizations
            .get_mut(device_code)
            .filter(|authorization| authorization.is_undecided())
        else {
            return html_error(400, "unknown, expired or already used user code");
        };
        authorization.decision = decision;
        let outcome = if decision == Decision::Allowed {
            "approved"
        } else {
            "denied"
        };
        html_page(
            200,
            "Device",
            &format!("<p>The device was {outcome}. You can close this page.</p>"),
        )
        .no_store()
    }

    fn new_family(&mut self) -> u64 {
        self.next_family += 1;
        self.next_family
    }

    fn revoke_family(&mut self, family: u64) {
        self.access_tokens
            .retain(|_, token| token.grant.family != family);
        self.refresh_tokens
            .retain(|_, grant| grant.family != family);
    }

    /// Stores a new access token for `grant`, and a new refresh token for `refresh` if given.
    fn issue(
        &mut self,
        grant: Grant,
        lifetime_secs: u64,
        refresh: Option<Grant>,
    ) -> Result<TokenResponse, OAuthError> {
        let access_token = random_token()?;
        let refresh_token = match refresh {
            Some(refresh) => {
                let token = random_token()?;
                self.refresh_tokens.insert(token.clone(), refresh);
                Some(token)
            }
            None => None,
        };
        let scope = grant.scope.clone();
        self.access_tokens.insert(
            access_token.clone(),
            AccessToken {
                grant,
                issued: Instant::now(),
                lifetime: Duration::from_secs(lifetime_secs),
            },
        );
        Ok(TokenResponse {
            access_token,
            expires_in: lifetime_secs,
            refresh_token,
            scope,
        })
    }

    /// Binds the authorization to a new code and redirects with it.
    fn approve(&mut self, authorization: Authorization) -> Response {
        match random_token() {
            Ok(code) => {
                let response = authorization.redirect.with(&[("code", &code)]);
                let issued = Instant::now();
                self.codes.insert(
                    code,
                    Code {
                        authorization,
                        issued,
                    },
                );
                response
            }
            Err(error) => authorization.redirect.with_error(&error),
        }
    }
}

/// Checks an authorization request whose client and redirect URI are good; gives the granted
/// scope and the PKCE challenge.
fn check_authorization_request(
    client: &ClientConfig,
    form: &Form,
) -> Result<(Vec<String>, String), OAuthError> {
    match form.get("response_type") {
        Some("code") => {}
        Some(other) => {
            return Err(OAuthError::new(
                "unsupported_response_type",
                format!("response_type {other} is not supported"),
            ));
        }
        None => {
            return Err(OAuthError::new(
                "invalid_request",
                "response_type is missing",
            ));
        }
    }
    if !client.grants.contains(&GrantType::AuthorizationCode) {
        return Err(OAuthError::new(
            "unauthorized_client",
            "this client may not use the authorization code grant",
        ));
    }
    let Some(challenge) = form.get("code_challenge") else {
        return Err(OAuthError::new(
            "invalid_request",
            "code_challenge is required (PKCE)",
        ));
    };
    if form.get("code_challenge_method") != Some("S256") {
        return Err(OAuthError::new(
            "invalid_request",
            "code_challenge_method must be S256",
        ));
    }
    // An S256 challenge is a base64url SHA-256 digest without padding: 43 characters.
    let well_formed = challenge.len() == 43
        && challenge
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if !well_formed {
        return Err(OAuthError::new(
            "invalid_request",
            "code_challenge is not a base64url SHA-256 digest",
        ));
    }
    let scope = negotiate_scope(form.get("scope"), &client.scopes)?;
    Ok((scope, challenge.to_owned()))
}

fn access_denied() -> OAuthError {
    OAuthError::new("access_denied", "the resource owner denied the request")
}

/// The scope to grant: the requested one if every token of it is allowed, or everything allowed
/// when none is requested (RFC 6749 §3.3).
fn negotiate_scope(requested: Option<&str>, allowed: &[String]) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = requested else {
        return Ok(allowed.to_vec());
    };
    let mut granted: Vec<String> = Vec::new();
    for token in requested.split(' ').filter(|token| !token.is_empty()) {
        if !allowed.iter().any(|scope| scope == token) {
            return Err(OAuthError::new(
                "invalid_scope",
                format!("scope {token} is not allowed"),
            ));
        }
        if !granted.iter().any(|scope| scope == token) {
            granted.push(token.to_owned());
        }
    }
    if granted.is_empty() {
        return Err(OAuthError::new("invalid_scope", "the scope is empty"));
    }
    Ok(granted)
}

/// RFC 7636 §4.6: BASE64URL-NOPAD(SHA256(verifier)) == challenge, for a well-formed verifier.
fn pkce_verifies(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte));
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    well_formed && constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1) to (id, secret).
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, credentials) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(credentials.trim()).ok()?;
    let colon = decoded.iter().position(|&byte| byte == b':')?;
    let (id, secret) = (&decoded[..colon], &decoded[colon + 1..]);
    Some((form_decode(id)?, form_decode(secret)?))
}

/// Decodes one `application/x-www-form-urlencoded` value; `None` if it is not UTF-8.
fn form_decode(encoded: &[u8]) -> Option<String> {
    let plus_as_space: Vec<u8> = encoded
        .iter()
        .map(|&byte| if byte == b'+' { b' ' } else { byte })
        .collect();
    percent_encoding::percent_decode(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|value| value.into_owned())
}

/// The token of an `Authorization: Bearer <token>` header, the scheme in any case.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// 256 bits from the OS CSPRNG, base64url: unguessable tokens, codes and consent ids.
fn random_token() -> Result<String, OAuthError> {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn fill_random(bytes: &mut [u8]) -> Result<(), OAuthError> {
    getrandom::fill(bytes)
        .map_err(|error| OAuthError::new("server_error", format!("no randomness: {error}")))
}

/// Eight letters of [`USER_CODE_ALPHABET`] as `XXXX-XXXX`, each drawn without modulo bias.
fn user_code() -> Result<String, OAuthError> {
    // The largest multiple of the alphabet's length that fits a byte: bytes from it up are
    // drawn again, so every letter is equally likely.
    const LIMIT: u8 = (256 / USER_CODE_ALPHABET.len() * USER_CODE_ALPHABET.len()) as u8;
    let mut code = String::with_capacity(9);
    while code.len() < 9 {
        let mut bytes = [0u8; 16];
        fill_random(&mut bytes)?;
        for byte in bytes.into_iter().filter(|&byte| byte < LIMIT) {
            if code.len() == 4 {
                code.push('-');
            }
            if code.len() == 9 {
                break;
            }
            let letter = USER_CODE_ALPHABET[usize::from(byte) % USER_CODE_ALPHABET.len()];
            code.push(char::from(letter));
        }
    }
    Ok(code)
}

fn normalized_user_code(entered: &str) -> String {
    entered
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |diff, (x, y)| diff | (x ^ y)) == 0
}

// ---------------------------------------------------------------------------------------------
// Pages
// ---------------------------------------------------------------------------------------------

fn consent_page(request_id: &str, authorization: &Authorization, owner: &str) -> Response {
    let body = format!(
        "<p>Signed in as <b>{owner}</b>.</p>\n\
         <p>The application <b>{client}</b> asks for access with scope <code>{scope}</code>.</p>\n\
         <form method=\"post\" action=\"/authorize/decision\">\n\
         <input type=\"hidden\" name=\"request_id\" value=\"{request_id}\">\n\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\n\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n\
         </form>",
        owner = escape_html(owner),
        client = escape_html(&authorization.client_id),
        scope = escape_html(&authorization.scope.join(" ")),
        request_id = escape_html(request_id),
    );
    html_page(200, "Authorize", &body).no_store()
}

fn device_entry_page() -> Response {
    let body = "<form method=\"get\" action=\"/device\">\n\
                <label>Code shown on your device <input name=\"user_code\" autocomplete=\"off\"></label>\n\
                <button type=\"submit\">Continue</button>\n\
                </form>";
    html_page(200, "Connect a device", body).no_store()
}

fn device_consent_page(
    request_id: &str,
    authorization: &DeviceAuthorization,
    owner: &str,
) -> Response {
    let body = format!(
        "<p>Signed in as <b>{owner}</b>.</p>\n\
         <p>The device showing <b>{user_code}</b> asks for access for <b>{client}</b> with scope \
         <code>{scope}</code>.</p>\n\
         <form method=\"post\" action=\"/device/decision\">\n\
         <input type=\"hidden\" name=\"request_id\" value=\"{request_id}\">\n\
         <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\n\
         <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\n\
         </form>",
        owner = escape_html(owner),
        request_id = escape_html(request_id),
        user_code = escape_html(&authorization.user_code),
        client = escape_html(&authorization.client_id),
        scope = escape_html(&authorization.scope.join(" ")),
    );
    html_page(200, "Connect a device", &body).no_store()
}

fn html_error(status: u16, message: &str) -> Response {
    let body = format!("<p>{}</p>", escape_html(message));
    html_page(status, "Authorization error", &body)
}

fn html_page(status: u16, title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n\
         <body>\n<h1>{title}</h1>\n{body}\n</body></html>\n"
    );
    Response::new(status, "text/html; charset=utf-8", page)
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

fn method_not_allowed(allow: &str) -> Response {
    Response::new(405, "text/plain; charset=utf-8", "method not allowed\n")
        .with_header("Allow", allow)
}

// ---------------------------------------------------------------------------------------------
// Requests and responses as the OAuth logic sees them
// ---------------------------------------------------------------------------------------------

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    /// The first value of a header, by case-insensitive name.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn has_media_type(&self, expected: &str) -> bool {
        self.header("content-type")
            .and_then(|value| value.split(';').next())
            .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case(expected))
    }
}

#[derive(Clone)]
struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Response {
    fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_owned())],
            body: body.into(),
        }
    }

    fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::new(status, "application/json", body.to_string())
    }

    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Token responses and pages carrying one-time values must not be cached (RFC 6749 §5.1).
    fn no_store(self) -> Self {
        self.with_header("Cache-Control", "no-store")
            .with_header("Pragma", "no-cache")
    }

    fn into_axum(self) -> axum::response::Response {
        into_axum(self.status, self.headers, self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
    /// The example of RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const DEMO: Option<(&str, &str)> = Some(("demo-client", "demo-secret"));
    const CLIENT_CREDENTIALS: (&str, &str) = ("grant_type", "client_credentials");

    fn start(configure: impl FnOnce(&mut ProviderConfig)) -> Provider {
        let mut config = ProviderConfig::demo(REDIRECT_URI);
        configure(&mut config);
        Provider::start(config).expect("provider starts")
    }

    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str())
        }

        fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body).expect("a JSON body")
        }

        /// Status and RFC 6749 error code.
        fn error(&self) -> (u16, String) {
            let code = self.json()["error"].as_str().expect("an error").to_owned();
            (self.status, code)
        }

        fn access_token(&self) -> String {
            assert_eq!(self.status, 200, "{}", self.body);
            let token = &self.json()["access_token"];
            token.as_str().expect("access_token").to_owned()
        }

        fn refresh_token(&self) -> Option<String> {
            let token = &self.json()["refresh_token"];
            token.as_str().map(str::to_owned)
        }

        /// The query parameters of a redirect's `Location`.
        fn redirect_params(&self) -> HashMap<String, String> {
            assert_eq!(self.status, 302, "{}", self.body);
            let location = self.header("location").expect("a Location");
            let (_, query) = location.split_once('?').expect("a query");
            form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect()
        }
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build()
            .new_agent()
    }

    fn reply(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response = result.expect("an HTTP response");
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.to_string(), value)
            })
            .collect();
        Reply {
            status: response.status().as_u16(),
            headers,
            body: response.body_mut().read_to_string().expect("a body"),
        }
    }

    /// RFC 6749 §2.3.1: each half form-urlencoded, then base64.
    fn basic(id: &str, secret: &str) -> String {
        let encode =
            |value: &str| -> String { form_urlencoded::byte_serialize(value.as_bytes()).collect() };
        let credentials = format!("{}:{}", encode(id), encode(secret));
        format!("Basic {}", STANDARD.encode(credentials))
    }

    fn post_token(
        provider: &Provider,
        authorization: Option<&str>,
        params: &[(&str, &str)],
    ) -> Reply {
        let mut request = agent()
            .post(provider.token_url())
            .header("Accept", "application/json");
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        reply(request.send_form(params.iter().copied()))
    }

    fn token(provider: &Provider, client: Option<(&str, &str)>, params: &[(&str, &str)]) -> Reply {
        let authorization = client.map(|(id, secret)| basic(id, secret));
        post_token(provider, authorization.as_deref(), params)
    }

    fn api(provider: &Provider, authorization: Option<&str>) -> Reply {
        let mut request = agent().get(format!("{}/api/things?page=1", provider.base_url()));
        if let Some(authorization) = authorization {
            request = request.header("Authorization", authorization);
        }
        reply(request.call())
    }

    fn bearer(token: &str) -> Option<String> {
        Some(format!("Bearer {token}"))
    }

    fn authorize(provider: &Provider, params: &[(&str, &str)]) -> Reply {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        reply(
            agent()
                .get(format!("{}?{query}", provider.authorization_url()))
                .call(),
        )
    }

    /// A valid authorization request, with `overrides` replacing or adding parameters.
    fn authorize_with(provider: &Provider, overrides: &[(&str, &str)]) -> Reply {
        let mut params = vec![
            ("response_type", "code"),
            ("client_id", "demo-client"),
            ("redirect_uri", REDIRECT_URI),
            ("scope", "read"),
            ("state", "st/+&= é"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ];
        for &(name, value) in overrides {
            params.retain(|(key, _)| *key != name);
            params.push((name, value));
        }
        authorize(provider, &params)
    }

    fn code(provider: &Provider) -> String {
        let params = authorize_with(provider, &[]).redirect_params();
        assert_eq!(params["state"], "st/+&= é");
        params["code"].clone()
    }

    fn exchange(provider: &Provider, code: &str, verifier: &str) -> Reply {
        token(
            provider,
            DEMO,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ],
        )
    }

    fn refresh(provider: &Provider, refresh_token: &str) -> Reply {
        token(
            provider,
            DEMO,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
    }

    /// Sends raw bytes and returns what comes back until the server closes the connection
    /// (requests say `Connection: close`) or a few seconds pass.
    fn raw(provider: &Provider, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(provider.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a read timeout");
        stream.write_all(request).expect("send");
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[test]
    fn client_credentials_token_works_at_the_api() {
        let provider = start(|_| {});
        let reply = token(
            &provider,
            DEMO,
            &[
                CLIENT_CREDENTIALS,
                ("audience", "https://api.example.com"),
                ("scope", "read"),
            ],
        );
        let token = reply.access_token();
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        let body = reply.json();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 3600);
        assert_eq!(body["scope"], "read");
        assert_eq!(reply.refresh_token(), None);
        assert_eq!(token.len(), 43);

        let answer = api(&provider, bearer(&token).as_deref());
        assert_eq!(answer.status, 200, "{}", answer.body);
        let body = answer.json();
        assert_eq!(body["ok"], true);
        assert_eq!(body["client_id"], "demo-client");
        assert_eq!(body["sub"], "demo-client");
        assert_eq!(body["scope"], "read");
        assert_eq!(body["path"], "/api/things");

        let records = provider.token_requests();
        assert_eq!(records.len(), 1);
        let record = &records[0];
        assert_eq!(record.grant_type.as_deref(), Some("client_credentials"));
        assert_eq!(record.client_auth, ClientAuthUsed::Basic);
        assert!(record.authorization_header);
        assert_eq!(record.accept.as_deref(), Some("application/json"));
        assert_eq!(
            record.content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(record.param("audience"), Some("https://api.example.com"));
        assert_eq!(provider.token_request_count("client_credentials"), 1);
        assert_eq!(provider.token_request_count("password"), 0);
        assert_eq!(provider.api_call_count(), 1);
    }

    #[test]
    fn client_authentication_rules() {
        let provider = start(|config| {
            let mut basic_only = ClientConfig::confidential("basic-only", "b-secret");
            basic_only.auth_method = ClientAuthMethod::Basic;
            let mut body_only = ClientConfig::confidential("body-only", "p-secret");
            body_only.auth_method = ClientAuthMethod::Body;
            config.clients.extend([basic_only, body_only]);
        });
        let in_body = |id: &str, secret: &str| {
            let params = [
                CLIENT_CREDENTIALS,
                ("client_id", id),
                ("client_secret", secret),
            ];
            token(&provider, None, &params)
        };

        in_body("demo-client", "demo-secret").access_token();
        let record = provider.token_requests().pop().expect("a record");
        assert_eq!(record.client_auth, ClientAuthUsed::Body);
        assert!(!record.authorization_header);
        assert_eq!(record.param("client_secret"), Some(REDACTED));
        in_body("body-only", "p-secret").access_token();
        token(
            &provider,
            Some(("basic-only", "b-secret")),
            &[CLIENT_CREDENTIALS],
        )
        .access_token();

        let both = token(
            &provider,
            DEMO,
            &[CLIENT_CREDENTIALS, ("client_secret", "demo-secret")],
        );
        assert_eq!(both.error(), (400, "invalid_request".to_owned()));
        let record = provider.token_requests().pop().expect("a record");
        assert_eq!(record.client_auth, ClientAuthUsed::Both);

        let wrong = token(
            &provider,
            Some(("demo-client", "nope")),
            &[CLIENT_CREDENTIALS],
        );
        assert_eq!(wrong.error(), (401, "invalid_client".to_owned()));
        assert_eq!(
            wrong.header("www-authenticate"),
            Some("Basic realm=\"demo\"")
        );
        assert_eq!(wrong.header("cache-control"), Some("no-store"));

        let rejected = [
            token(&provider, Some(("nobody", "x")), &[CLIENT_CREDENTIALS]),
            token(&provider, None, &[CLIENT_CREDENTIALS]),
            token(
                &provider,
                None,
                &[CLIENT_CREDENTIALS, ("client_id", "demo-client")],
            ),
            post_token(
                &provider,
                Some("Basic !!not base64!!"),
                &[CLIENT_CREDENTIALS],
            ),
            post_token(&provider, Some("Bearer abc"), &[CLIENT_CREDENTIALS]),
            in_body("basic-only", "b-secret"),
            token(
                &provider,
                Some(("body-only", "p-secret")),
                &[CLIENT_CREDENTIALS],
            ),
        ];
        for reply in rejected {
            assert_eq!(
                reply.error(),
                (401, "invalid_client".to_owned()),
                "{}",
                reply.body
            );
        }
    }

    #[test]
    fn basic_credentials_are_form_urlencoded() {
        let secret = "s3cr:t/+&%= ~";
        let provider = start(|config| {
            config
                .clients
                .push(ClientConfig::confidential("odd id:é", secret));
        });
        token(&provider, Some(("odd id:é", secret)), &[CLIENT_CREDENTIALS]).access_token();

        // Without the form-urlencoding, `:` `+` and `%` mean something else.
        let unencoded = format!("Basic {}", STANDARD.encode(format!("odd id:é:{secret}")));
        let reply = post_token(&provider, Some(&unencoded), &[CLIENT_CREDENTIALS]);
        assert_eq!(reply.error(), (401, "invalid_client".to_owned()));
    }

    #[test]
    fn grant_errors() {
        let provider = start(|config| {
            let mut limited = ClientConfig::confidential("cc-only", "secret");
            limited.grants = vec![GrantType::ClientCredentials];
            config
                .clients
                .extend([limited, ClientConfig::public("public", REDIRECT_URI)]);
        });
        let cases: [(Reply, u16, &str); 7] = [
            (
                token(&provider, DEMO, &[("grant_type", "urn:x")]),
                400,
                "unsupported_grant_type",
            ),
            (
                token(&provider, DEMO, &[("scope", "read")]),
                400,
                "invalid_request",
            ),
            (
                token(
                    &provider,
                    DEMO,
                    &[CLIENT_CREDENTIALS, ("scope", "read admin")],
                ),
                400,
                "invalid_scope",
            ),
            (
                token(
                    &provider,
                    Some(("cc-only", "secret")),
                    &[
                        ("grant_type", "password"),
                        ("username", "alice"),
                        ("password", "wonderland"),
                    ],
                ),
                400,
                "unauthorized_client",
            ),
            (
                token(
                    &provider,
                    None,
                    &[CLIENT_CREDENTIALS, ("client_id", "public")],
                ),
                400,
                "unauthorized_client",
            ),
            (
                token(
                    &provider,
                    DEMO,
                    &[CLIENT_CREDENTIALS, ("scope", "read"), ("scope", "write")],
                ),
                400,
                "invalid_request",
            ),
            (
                token(
                    &provider,
                    DEMO,
                    &[
                        ("grant_type", "password"),
                        ("username", "alice"),
                        ("password", "alice"),
                    ],
                ),
                400,
                "invalid_grant",
            ),
        ];
        for (reply, status, error) in cases {
            assert_eq!(reply.error(), (status, error.to_owned()), "{}", reply.body);
            assert_eq!(reply.header("cache-control"), Some("no-store"));
        }

        let json_body = agent()
            .post(provider.token_url())
            .header("Authorization", basic("demo-client", "demo-secret"))
            .header("Content-Type", "application/json")
            .send(r#"{"grant_type":"client_credentials"}"#);
        assert_eq!(
            reply(json_body).error(),
            (400, "invalid_request".to_owned())
        );
        assert_eq!(provider.token_requests().len(), 8);
    }

    fn revoke(provider: &Provider, client: (&str, &str), token: &str) -> Reply {
        reply(
            agent()
                .post(provider.revocation_url())
                .header("Authorization", basic(client.0, client.1))
                .send_form([("token", token)]),
        )
    }

    #[test]
    fn revocation_takes_a_clients_own_tokens_only() {
        let provider = start(|config| {
            config
                .clients
                .push(ClientConfig::confidential("other-client", "o-secret"));
        });
        let password = [
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "wonderland"),
        ];
        let first = token(&provider, DEMO, &password);
        let access = first.access_token();
        let first_refresh = first.refresh_token().expect("a refresh token");

        // Another client's token, and an unknown one, are answered 200 and left as they are.
        assert_eq!(
            revoke(&provider, ("other-client", "o-secret"), &access).status,
            200
        );
        assert_eq!(
            revoke(&provider, ("demo-client", "demo-secret"), "no-such").status,
            200
        );
        assert_eq!(api(&provider, bearer(&access).as_deref()).status, 200);
        // A wrong secret is refused as at the token endpoint.
        let refused = revoke(&provider, ("demo-client", "wrong"), &access);
        assert_eq!(refused.error(), (401, "invalid_client".to_owned()));

        // The access token alone: the refresh token still works.
        assert_eq!(
            revoke(&provider, ("demo-client", "demo-secret"), &access).status,
            200
        );
        assert_eq!(api(&provider, bearer(&access).as_deref()).status, 401);
        let renewed = refresh(&provider, &first_refresh);
        let second_access = renewed.access_token();
        let second_refresh = renewed.refresh_token().expect("a rotated refresh token");

        // The refresh token: its whole grant goes.
        assert_eq!(
            revoke(&provider, ("demo-client", "demo-secret"), &second_refresh).status,
            200
        );
        assert_eq!(
            api(&provider, bearer(&second_access).as_deref()).status,
            401
        );
        let gone = token(
            &provider,
            DEMO,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &second_refresh),
            ],
        );
        assert_eq!(gone.error(), (400, "invalid_grant".to_owned()));
    }

    #[test]
    fn password_grant_and_refresh_rotation() {
        let provider = start(|_| {});
        let reply = token(
            &provider,
            DEMO,
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "wonderland"),
            ],
        );
        let first_access = reply.access_token();
        let first_refresh = reply.refresh_token().expect("a refresh token");
        assert_eq!(reply.json()["scope"], "read write");
        let record = provider.token_requests().pop().expect("a record");
        assert_eq!(record.param("password"), Some(REDACTED));
        assert_eq!(record.param("username"), Some("alice"));
        let answer = api(&provider, bearer(&first_access).as_deref());
        assert_eq!(answer.json()["sub"], "alice");

        let narrowed = token(
            &provider,
            DEMO,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &first_refresh),
                ("scope", "read"),
            ],
        );
        let second_access = narrowed.access_token();
        assert_eq!(narrowed.json()["scope"], "read");
        let second_refresh = narrowed.refresh_token().expect("a rotated refresh token");
        assert_ne!(second_refresh, first_refresh);
        assert_eq!(
            provider
                .token_requests()
                .pop()
                .expect("a record")
                .param("refresh_token"),
            Some(REDACTED)
        );

        // The rotated token keeps the original scope.
        let third = refresh(&provider, &second_refresh);
        assert_eq!(third.json()["scope"], "read write");
        assert_eq!(
            api(&provider, bearer(&second_access).as_deref()).status,
            200
        );
        assert_eq!(provider.refresh_replays(), 0);

        // A used refresh token coming back revokes every token of its grant.
        let reused = refresh(&provider, &first_refresh);
        assert_eq!(reused.error(), (400, "invalid_grant".to_owned()));
        assert_eq!(provider.refresh_replays(), 1);
        assert_eq!(
            api(&provider, bearer(&third.access_token()).as_deref()).status,
            401
        );
        let after = refresh(&provider, &third.refresh_token().expect("rotated"));
        assert_eq!(after.error(), (400, "invalid_grant".to_owned()));
        assert!(provider.live_refresh_tokens().is_empty());
        assert_eq!(provider.token_request_count("refresh_token"), 4);

        let other_client = token(
            &provider,
            None,
            &[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    &third.refresh_token().expect("a refresh token"),
                ),
                ("client_id", "nobody"),
            ],
        );
        assert_eq!(other_client.error(), (401, "invalid_client".to_owned()));
    }

    #[test]
    fn refresh_without_rotation_keeps_the_token() {
        let provider = start(|config| config.rotate_refresh_tokens = false);
        let reply = exchange(&provider, &code(&provider), VERIFIER);
        let refresh_token = reply.refresh_token().expect("a refresh token");
        for _ in 0..2 {
            let refreshed = refresh(&provider, &refresh_token);
            refreshed.access_token();
            assert_eq!(refreshed.refresh_token(), None);
        }
    }

    #[test]
    fn authorization_code_with_pkce() {
        let provider = start(|_| {});
        let code = code(&provider);
        let reply = exchange(&provider, &code, VERIFIER);
        let access = reply.access_token();
        assert!(reply.refresh_token().is_some());
        assert_eq!(reply.json()["scope"], "read");
        let answer = api(&provider, bearer(&access).as_deref()).json();
        assert_eq!(
            (&answer["sub"], &answer["scope"]),
            (&"alice".into(), &"read".into())
        );
        assert_eq!(provider.token_request_count("authorization_code"), 1);
    }

    #[test]
    fn pkce_mismatch_and_code_reuse_are_rejected() {
        let provider = start(|_| {});
        let code = code(&provider);
        let wrong_verifier = "a".repeat(43);
        for verifier in [wrong_verifier.as_str(), "short"] {
            let mismatch = exchange(&provider, &code, verifier);
            assert_eq!(mismatch.error(), (400, "invalid_grant".to_owned()));
        }
        let missing = token(
            &provider,
            DEMO,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
            ],
        );
        assert_eq!(missing.error(), (400, "invalid_request".to_owned()));
        let other_redirect = token(
            &provider,
            DEMO,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", "http://127.0.0.1:9/other"),
                ("code_verifier", VERIFIER),
            ],
        );
        assert_eq!(other_redirect.error(), (400, "invalid_grant".to_owned()));

        let first = exchange(&provider, &code, VERIFIER);
        let access = first.access_token();
        let refresh_token = first.refresh_token().expect("a refresh token");
        let replay = exchange(&provider, &code, VERIFIER);
        assert_eq!(replay.error(), (400, "invalid_grant".to_owned()));
        // RFC 6749 §4.1.2: the tokens issued from a replayed code are revoked.
        assert_eq!(api(&provider, bearer(&access).as_deref()).status, 401);
        assert_eq!(
            refresh(&provider, &refresh_token).error(),
            (400, "invalid_grant".to_owned())
        );
    }

    #[test]
    fn authorization_endpoint_errors() {
        let provider = start(|_| {});
        // Errors about the client or the redirect URI are shown, never redirected.
        let repeated = [
            ("client_id", "demo-client"),
            ("client_id", "demo-client"),
            ("redirect_uri", REDIRECT_URI),
        ];
        for reply in [
            authorize_with(
                &provider,
                &[("redirect_uri", "http://127.0.0.1:9/elsewhere")],
            ),
            authorize_with(&provider, &[("client_id", "nobody")]),
            authorize(&provider, &repeated),
        ] {
            assert_eq!(reply.status, 400, "{}", reply.body);
            assert_eq!(reply.header("location"), None);
            assert!(
                reply
                    .header("content-type")
                    .unwrap()
                    .starts_with("text/html")
            );
        }
        for (overrides, error) in [
            (&[("code_challenge", "")][..], "invalid_request"),
            (&[("code_challenge_method", "plain")], "invalid_request"),
            (&[("code_challenge", "too-short")], "invalid_request"),
            (&[("response_type", "token")], "unsupported_response_type"),
            (&[("scope", "admin")], "invalid_scope"),
        ] {
            let params = authorize_with(&provider, overrides).redirect_params();
            assert_eq!(params["error"], error, "{overrides:?}");
            assert_eq!(params["state"], "st/+&= é");
            assert!(!params.contains_key("code"));
        }

        let denying = start(|config| config.consent = ConsentMode::AutoDeny);
        let params = authorize_with(&denying, &[]).redirect_params();
        assert_eq!(params["error"], "access_denied");
        assert_eq!(params["state"], "st/+&= é");
    }

    #[test]
    fn public_client_redeems_a_code_with_pkce() {
        let provider = start(|config| {
            config
                .clients
                .push(ClientConfig::public("public", REDIRECT_URI));
        });
        // The only registered redirect URI may be left out, and then not repeated.
        let params = authorize_with(&provider, &[("client_id", "public"), ("redirect_uri", "")])
            .redirect_params();
        let reply = token(
            &provider,
            None,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "public"),
                ("code", &params["code"]),
                ("code_verifier", VERIFIER),
            ],
        );
        reply.access_token();
        assert_eq!(
            provider.token_requests()[0].client_auth,
            ClientAuthUsed::Neither
        );
    }

    #[test]
    fn interactive_consent() {
        let provider = start(|config| config.consent = ConsentMode::Interactive);
        let decide = |decision: &str| {
            let page = authorize_with(&provider, &[]);
            assert_eq!(page.status, 200);
            assert!(page.body.contains("Allow") && page.body.contains("Deny"));
            let marker = "name=\"request_id\" value=\"";
            let start = page.body.find(marker).expect("a request id") + marker.len();
            let id = page.body[start..]
                .split('"')
                .next()
                .expect("an id")
                .to_owned();
            let post = |id: &str| {
                let form = [("request_id", id), ("decision", decision)];
                reply(
                    agent()
                        .post(format!("{}/authorize/decision", provider.base_url()))
                        .send_form(form),
                )
            };
            let answer = post(&id);
            assert_eq!(post(&id).status, 400, "a decision is taken once");
            answer.redirect_params()
        };
        let allowed = decide("allow");
        exchange(&provider, &allowed["code"], VERIFIER).access_token();
        let denied = decide("deny");
        assert_eq!(denied["error"], "access_denied");
        assert_eq!(denied["state"], "st/+&= é");
    }

    #[test]
    fn api_rejects_what_it_did_not_issue() {
        let provider = start(|_| {});
        let access = token(&provider, DEMO, &[CLIENT_CREDENTIALS]).access_token();
        assert_eq!(
            api(&provider, Some(&format!("bEaReR {access}"))).status,
            200
        );

        // Without bearer credentials the challenge carries no error code (RFC 6750 §3.1).
        for authorization in [None, Some(format!("Basic {access}")), Some(access.clone())] {
            let reply = api(&provider, authorization.as_deref());
            assert_eq!(reply.error(), (401, "invalid_token".to_owned()));
            let challenge = reply.header("www-authenticate");
            assert_eq!(challenge, Some("Bearer realm=\"demo\""));
        }
        for authorization in [format!("Bearer {access}x"), "Bearer other".to_owned()] {
            let reply = api(&provider, Some(&authorization));
            assert_eq!(reply.error(), (401, "invalid_token".to_owned()));
            let challenge = reply.header("www-authenticate").unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
                "{challenge}"
            );
        }

        provider.expire_all_access_tokens();
        let expired = api(&provider, bearer(&access).as_deref());
        assert!(
            expired.json()["error_description"]
                .as_str()
                .unwrap()
                .contains("expired")
        );
        let fresh = token(&provider, DEMO, &[CLIENT_CREDENTIALS]).access_token();
        assert_eq!(api(&provider, bearer(&fresh).as_deref()).status, 200);
        provider.revoke_all();
        assert_eq!(api(&provider, bearer(&fresh).as_deref()).status, 401);
        assert_eq!(provider.api_call_count(), 9);
    }

    #[test]
    fn zero_lifetime_tokens_expire_at_once() {
        let provider = start(|config| config.access_token_lifetime_secs = 0);
        let reply = token(&provider, DEMO, &[CLIENT_CREDENTIALS]);
        assert_eq!(reply.json()["expires_in"], 0);
        assert_eq!(
            api(&provider, bearer(&reply.access_token()).as_deref()).status,
            401
        );
    }

    #[test]
    fn injected_token_responses() {
        let provider = start(|_| {});
        provider.fail_next_token_requests(2, 404, "<html>Not Found</html>", "text/html");
        provider.reject_next_token_request("invalid_client", "client disabled");
        provider.reject_next_token_request("temporarily_unavailable", "try later");
        for _ in 0..2 {
            let reply = token(&provider, DEMO, &[CLIENT_CREDENTIALS]);
            assert_eq!(reply.status, 404);
            assert_eq!(reply.header("content-type"), Some("text/html"));
            assert_eq!(reply.body, "<html>Not Found</html>");
        }
        let disabled = token(&provider, DEMO, &[CLIENT_CREDENTIALS]);
        assert_eq!(disabled.error(), (401, "invalid_client".to_owned()));
        assert!(disabled.header("www-authenticate").is_some());
        let unavailable = token(&provider, DEMO, &[CLIENT_CREDENTIALS]);
        assert_eq!(
            unavailable.error(),
            (400, "temporarily_unavailable".to_owned())
        );
        assert_eq!(unavailable.json()["error_description"], "try later");
        token(&provider, DEMO, &[CLIENT_CREDENTIALS]).access_token();
        assert_eq!(provider.token_request_count("client_credentials"), 5);
    }

    #[test]
    fn malformed_requests_get_errors_not_panics() {
        let provider = start(|_| {});
        let status_line = |answer: &str| answer.lines().next().unwrap_or_default().to_owned();

        let huge = agent()
            .post(provider.token_url())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(&vec![b'a'; 100_000][..]);
        assert_eq!(reply(huge).status, 413);
        let announced = raw(
            &provider,
            b"POST /token HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 99999999999\r\n\r\n",
        );
        assert!(
            status_line(&announced).starts_with("HTTP/1.1 413"),
            "{announced}"
        );
        for request in [
            &b"garbage\r\n\r\n"[..],
            b"GET /api HTTP/1.1\r\nNo colon\r\n\r\n",
        ] {
            let answer = raw(&provider, request);
            assert!(status_line(&answer).starts_with("HTTP/1.1 400"), "{answer}");
        }

        // Not UTF-8 and nonsense percent-escapes, in the body and in Basic credentials.
        let body = b"grant_type=client_credentials&client_id=demo-client&client_secret=%ff%fe\xff";
        let mut request = format!(
            "POST /token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend(body);
        let answer = raw(&provider, &request);
        assert!(status_line(&answer).starts_with("HTTP/1.1 401"), "{answer}");
        let bad_basic = format!("Basic {}", STANDARD.encode(b"demo-client:%ff\xfe"));
        let reply = post_token(&provider, Some(&bad_basic), &[CLIENT_CREDENTIALS]);
        assert_eq!(reply.error(), (401, "invalid_client".to_owned()));
        let nonsense = raw(
            &provider,
            b"GET /authorize?client_id=%ff&& HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        assert!(
            status_line(&nonsense).starts_with("HTTP/1.1 400"),
            "{nonsense}"
        );

        // And the server still works.
        token(&provider, DEMO, &[CLIENT_CREDENTIALS]).access_token();
    }

    #[test]
    fn concurrent_clients_and_expect_continue() {
        let provider = start(|_| {});
        thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..5 {
                        token(&provider, DEMO, &[CLIENT_CREDENTIALS]).access_token();
                    }
                });
            }
        });
        assert_eq!(provider.token_request_count("client_credentials"), 20);

        // As curl sends a larger body: the interim response, then the real one.
        let body = "grant_type=client_credentials&client_id=demo-client&client_secret=demo-secret";
        let request = format!(
            "POST /token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let answer = raw(&provider, request.as_bytes());
        assert!(
            answer.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"),
            "{answer}"
        );
    }

    const DEVICE_GRANT: (&str, &str) =
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code");

    fn start_device(provider: &Provider, client: Option<(&str, &str)>) -> serde_json::Value {
        let mut request = agent().post(provider.device_authorization_url());
        if let Some((id, secret)) = client {
            request = request.header("Authorization", basic(id, secret));
        }
        let started = reply(request.send_form([("scope", "read")]));
        assert_eq!(started.status, 200, "{}", started.body);
        assert_eq!(started.header("cache-control"), Some("no-store"));
        started.json()
    }

    fn poll(provider: &Provider, device_code: &str) -> Reply {
        token(
            provider,
            DEMO,
            &[DEVICE_GRANT, ("device_code", device_code)],
        )
    }

    fn page(url: &str) -> Reply {
        reply(agent().get(url).call())
    }

    #[test]
    fn device_code_is_pending_until_the_user_approves_then_spent() {
        let provider = start(|_| {});
        let started = start_device(&provider, DEMO);
        let device_code = started["device_code"].as_str().unwrap();
        let user_code = started["user_code"].as_str().unwrap();
        assert!(
            user_code.len() == 9
                && user_code.as_bytes()[4] == b'-'
                && user_code
                    .bytes()
                    .filter(|&b| b != b'-')
                    .all(|b| USER_CODE_ALPHABET.contains(&b)),
            "{user_code}"
        );
        let base = provider.base_url();
        assert_eq!(started["verification_uri"], format!("{base}/device"));
        assert_eq!(
            started["verification_uri_complete"],
            format!("{base}/device?user_code={user_code}")
        );
        assert_eq!(started["expires_in"], 600);
        assert_eq!(started["interval"], 1);

        assert_eq!(
            poll(&provider, device_code).error(),
            (400, "authorization_pending".into())
        );
        // As typed by a user: lower case, without the hyphen.
        let typed = user_code.replace('-', "").to_lowercase();
        let approved = page(&format!("{base}/device?user_code={typed}"));
        assert_eq!(approved.status, 200, "{}", approved.body);
        assert!(approved.body.contains("approved"), "{}", approved.body);

        let granted = poll(&provider, device_code);
        let access_token = granted.access_token();
        assert!(granted.refresh_token().is_some());
        assert_eq!(granted.json()["scope"], "read");
        let api = api(&provider, bearer(&access_token).as_deref());
        assert_eq!(api.json()["sub"], "alice");
        assert_eq!(
            poll(&provider, device_code).error(),
            (400, "invalid_grant".into())
        );
        // A spent code's user code opens nothing.
        assert_eq!(
            page(&format!("{base}/device?user_code={typed}")).status,
            400
        );
        let recorded = provider.token_requests();
        assert!(recorded.iter().all(|record| {
            record
                .param("device_code")
                .is_none_or(|value| value == REDACTED)
        }));
    }

    #[test]
    fn device_code_denied_unknown_or_someone_elses_gets_no_token() {
        let provider = start(|config| {
            config.consent = ConsentMode::Interactive;
            config
                .clients
                .push(ClientConfig::confidential("other", "other-secret"));
        });
        let started = start_device(&provider, DEMO);
        let device_code = started["device_code"].as_str().unwrap();
        let user_code = started["user_code"].as_str().unwrap();

        let consent = page(started["verification_uri_complete"].as_str().unwrap());
        assert_eq!(consent.status, 200);
        assert!(
            consent.body.contains(user_code) && consent.body.contains("demo-client"),
            "{}",
            consent.body
        );
        let other = token(
            &provider,
            Some(("other", "other-secret")),
            &[DEVICE_GRANT, ("device_code", device_code)],
        );
        assert_eq!(other.error(), (400, "invalid_grant".into()));

        let decide = |fields: &[(&str, &str)]| {
            reply(
                agent()
                    .post(format!("{}/device/decision", provider.base_url()))
                    .send_form(fields.iter().copied()),
            )
        };
        // Only the page the provider showed can decide: not the user code alone.
        let forged = decide(&[("user_code", user_code), ("decision", "allow")]);
        assert_eq!(forged.status, 400, "{}", forged.body);
        let request_id = consent
            .body
            .split("name=\"request_id\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the consent page carries its request id");
        let denied = decide(&[("request_id", request_id), ("decision", "deny")]);
        assert!(denied.body.contains("denied"), "{}", denied.body);
        let again = decide(&[("request_id", request_id), ("decision", "allow")]);
        assert_eq!(again.status, 400, "{}", again.body);
        assert_eq!(
            poll(&provider, device_code).error(),
            (400, "access_denied".into())
        );
        assert_eq!(
            poll(&provider, device_code).error(),
            (400, "invalid_grant".into())
        );
        assert_eq!(
            poll(&provider, "made-up").error(),
            (400, "invalid_grant".into())
        );
        assert_eq!(
            page(&format!(
                "{}/device?user_code=BCDF-GHJK",
                provider.base_url()
            ))
            .status,
            400
        );
        let entry = page(&format!("{}/device", provider.base_url()));
        assert!(entry.body.contains("name=\"user_code\""), "{}", entry.body);
    }

    #[test]
    fn device_code_expires_and_automatic_denial_denies() {
        let provider = start(|config| config.consent = ConsentMode::AutoDeny);
        let started = start_device(&provider, DEMO);
        let device_code = started["device_code"].as_str().unwrap();
        let denied = page(started["verification_uri_complete"].as_str().unwrap());
        assert!(denied.body.contains("denied"), "{}", denied.body);
        assert_eq!(
            poll(&provider, device_code).error(),
            (400, "access_denied".into())
        );

        let started = start_device(&provider, DEMO);
        let device_code = started["device_code"].as_str().unwrap();
        provider.expire_device_codes();
        // An expired code can no longer be decided, and its poll says why.
        assert_eq!(
            page(started["verification_uri_complete"].as_str().unwrap()).status,
            400
        );
        assert_eq!(
            poll(&provider, device_code).error(),
            (400, "expired_token".into())
        );
        assert_eq!(
            poll(&provider, device_code).error(),
            (400, "invalid_grant".into())
        );
    }

    #[test]
    fn polling_sooner_than_the_interval_slows_the_code_down() {
        let provider = start(|config| config.device_poll_interval = Duration::from_secs(30));
        let started = start_device(&provider, DEMO);
        assert_eq!(started["interval"], 30);
        let device_code = started["device_code"].as_str().unwrap();
        assert_eq!(
            poll(&provider, device_code).error(),
            (400, "authorization_pending".into())
        );
        for interval in [35, 40] {
            let slowed = poll(&provider, device_code);
            assert_eq!(slowed.error(), (400, "slow_down".into()));
            let description = slowed.json()["error_description"].to_string();
            assert!(
                description.contains(&format!("every {interval} s")),
                "{description}"
            );
        }
        // Another device's code keeps its own interval.
        let other = start_device(&provider, DEMO);
        assert_eq!(
            poll(&provider, other["device_code"].as_str().unwrap()).error(),
            (400, "authorization_pending".into())
        );
        // Once the user decided, the answer comes whatever the interval.
        page(started["verification_uri_complete"].as_str().unwrap());
        poll(&provider, device_code).access_token();
    }

    #[test]
    fn a_public_client_may_use_the_device_code_grant() {
        let provider = start(|config| {
            let mut device = ClientConfig::public("tv-app", REDIRECT_URI);
            device.grants.push(GrantType::DeviceCode);
            config.clients.push(device);
        });
        let started = reply(
            agent()
                .post(provider.device_authorization_url())
                .send_form([("client_id", "tv-app")]),
        );
        assert_eq!(started.status, 200, "{}", started.body);
        let started = started.json();
        page(started["verification_uri_complete"].as_str().unwrap());
        let granted = post_token(
            &provider,
            None,
            &[
                DEVICE_GRANT,
                ("client_id", "tv-app"),
                ("device_code", started["device_code"].as_str().unwrap()),
            ],
        );
        let access_token = granted.access_token();
        assert_eq!(granted.json()["scope"], "read write");
        let api = api(&provider, bearer(&access_token).as_deref());
        assert_eq!(api.json()["client_id"], "tv-app");
    }

    #[test]
    fn device_authorization_needs_an_authenticated_client_allowed_the_grant() {
        let provider = start(|config| {
            config.clients[0]
                .grants
                .retain(|grant| *grant != GrantType::DeviceCode);
        });
        let refused = |client| {
            let mut request = agent().post(provider.device_authorization_url());
            if let Some((id, secret)) = client {
                request = request.header("Authorization", basic(id, secret));
            }
            reply(request.send_form([("scope", "read")])).error()
        };
        assert_eq!(refused(DEMO), (400, "unauthorized_client".into()));
        assert_eq!(
            refused(Some(("demo-client", "wrong"))),
            (401, "invalid_client".into())
        );
        assert_eq!(refused(None), (401, "invalid_client".into()));
    }

    #[test]
    fn shutdown_joins_threads_and_frees_the_port() {
        let provider = start(|_| {});
        let addr = provider.addr();
        token(&provider, DEMO, &[CLIENT_CREDENTIALS]).access_token();
        // A client holding an idle connection must not hold up the shutdown.
        let _idle = TcpStream::connect(addr).expect("connect");
        let started = Instant::now();
        provider.shutdown();
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(TcpStream::connect(addr).is_err());
        TcpListener::bind(addr).expect("the port is free again");
    }
}
