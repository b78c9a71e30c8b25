//! The per-step cost of the component against the engine's floor, the native build of the same
//! logic and oauth2-rs. `cargo bench -p oauth2-runtime` (figures in BENCHMARKS.md); `-- --quick`
//! for a short run. Nothing here touches the network: every token comes from the token store,
//! and an HTTP import that is called at all fails the run.
//!
//! Groups (benchmark ids are `group/function`):
//! - `step`: a fresh `Store` + instance + `decorate-request` with a cached, valid token, through
//!   the public [`Plugin`] API (what a connector step costs); `step/floor`, the same call into
//!   `tests/fixtures/floor-guest`, a component whose exports answer at once (the engine's own
//!   cost of a step); `step/no-op`, a fresh instance of the real component asked for a request
//!   URL it refuses before any grant logic runs (the engine's cost of a component this size);
//!   `step/instantiate-only`, the fresh `Store` and instance alone.
//! - `decorate-warm`: `authorization-headers` on an instance that is already there.
//! - `decorate-native`: `lifecycle::decorate_request` of the rlib with an in-memory host.
//! - `parse`: `parse-token-response` on a 1 KB response with an id token: wasm, native, oauth2-rs;
//!   and on the smallest token response, wasm and native (`*-minimal`): the cost of a call.
//! - `build`: `build-token-request` for each grant: wasm and native.
//! - `throughput`: decorations with 2 threads sharing one `Plugin`, the token in memory and in
//!   Redis (near cache on); time per decoration.
//! - `store`: the step with the token in `MemoryStore`, and in a `RedisStore` on a real
//!   redis-server on loopback, with its near cache (`redis-near`) and without (`redis-direct`).
//!
//! After them, [`ratios`] prints `step / floor`, `step / no-op`, `no-op / floor`, `step / native`
//! and the Redis step over the memory step, each from blocks of calls alternated between the two,
//! so the machine's drift hits both alike; [`processes`] prints decorations per second of 4
//! processes sharing one Redis.
//!
//! `OAUTH2_BENCH_BASELINE=old.wasm cargo bench -p oauth2-runtime --bench plugin` runs none of
//! these: it compares the embedded component with another build of it ([`compare`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use oauth2_plugin::error::StoreError;
use oauth2_plugin::lifecycle::{self, Host};
use oauth2_plugin::provider_text::Redactor;
use oauth2_plugin::token_cache::{CachedToken, token_key};
use oauth2_plugin::token_request::{self, AuthMethod, Credentials, Step};
use oauth2_plugin::{config as native_config, http as native_http, token_response};
use oauth2_runtime::{
    CallError, ClientAuth, ConnectionConfig, GrantType, HttpClient, HttpRequest, HttpResponse,
    Instance, ManualClock, MemoryStore, OauthError, Pair, Plugin, RedisStore, SealingKeys,
    SecretStore, Services, TokenStep, TokenStore, TransportError,
};

#[path = "../tests/redis_server/mod.rs"]
mod redis_server;
use redis_server::RedisServer;

/// The benchmarks' "now", Unix seconds; the cached token was issued then and lives a day.
const NOW: u64 = 1_700_000_000;
const CLIENT_SECRET: &str = "s3cr:t/+&%= ~";
const PASSWORD: &str = "correct horse battery staple";
const REFRESH_TOKEN: &str = "rt-8xQmY2vN5kLpR7sT1uWz3aBcDeFgHiJk";
const CODE: &str = "SplxlOBeZQQYbYS6WxSbIA";
const PKCE_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

// ---------------------------------------------------------------------------------------------
// Fixtures: one configuration per grant, in both the contract's and the rlib's types.

/// Every token request the component builds, by grant (refresh and code exchange by step).
const GRANTS: [&str; 4] = ["client_credentials", "password", "refresh", "code_exchange"];

fn wit_config(grant: GrantType) -> ConnectionConfig {
    let code = grant == GrantType::AuthorizationCode;
    let password = grant == GrantType::Password;
    ConnectionConfig {
        authorization_url: code.then(|| "https://login.example.com/authorize".into()),
        redirect_uri: code.then(|| "http://127.0.0.1:8765/callback".into()),
        client_secret_name: Some("client-secret".into()),
        username: password.then(|| "alice@example.com".into()),
        password_name: password.then(|| "alice-password".into()),
        audience: Some("https://api.example.com".into()),
        resource_indicators: vec!["https://api.example.com/v1".into()],
        scope: Some("openid profile email orders:read".into()),
        client_auth: ClientAuth::Basic,
        ..ConnectionConfig::new(
            grant,
            "https://login.example.com/oauth/token",
            "connector-7f3a",
        )
    }
}

/// The same configuration as the rlib sees it (what the component's glue converts it to).
fn native_config(c: &ConnectionConfig) -> native_config::Config {
    native_config::Config {
        grant_type: match c.grant_type {
            GrantType::ClientCredentials => native_config::GrantType::ClientCredentials,
            GrantType::Password => native_config::GrantType::Password,
            GrantType::AuthorizationCode => native_config::GrantType::AuthorizationCode,
            GrantType::JwtBearer => native_config::GrantType::JwtBearer,
            GrantType::DeviceCode => native_config::GrantType::DeviceCode,
        },
        token_url: c.token_url.clone(),
        authorization_url: c.authorization_url.clone(),
        redirect_uri: c.redirect_uri.clone(),
        client_id: c.client_id.clone(),
        client_secret_name: c.client_secret_name.clone(),
        username: c.username.clone(),
        password_name: c.password_name.clone(),
        header_prefix: c.header_prefix.clone(),
        audience: c.audience.clone(),
        resource: c.resource_indicators.clone(),
        scope: c.scope.clone(),
        client_auth: match c.client_auth {
            ClientAuth::Auto => native_config::ClientAuth::Auto,
            ClientAuth::Basic => native_config::ClientAuth::Basic,
            ClientAuth::BasicUnencoded => native_config::ClientAuth::BasicUnencoded,
            ClientAuth::RequestBody => native_config::ClientAuth::RequestBody,
            ClientAuth::PrivateKeyJwt => native_config::ClientAuth::PrivateKeyJwt,
            ClientAuth::ClientSecretJwt => native_config::ClientAuth::ClientSecretJwt,
        },
        extra_params: native_pairs(&c.extra_params),
        authorization_params: native_pairs(&c.authorization_params),
        response_format: native_config::ResponseFormat::default(),
        api_origins: c.api_origins.clone(),
        // The benchmarked connections sign nothing.
        signing_key: None,
        assertion_audience: c.assertion_audience.clone(),
        subject: c.subject.clone(),
        device_authorization_url: c.device_authorization_url.clone(),
        revocation_url: c.revocation_url.clone(),
        issuer: c.issuer.clone(),
    }
}

fn native_pairs(pairs: &[Pair]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|p| (p.name.clone(), p.value.clone()))
        .collect()
}

/// (configuration, step) of one grant's token request.
fn grant_case(name: &str) -> (ConnectionConfig, TokenStep, Step) {
    match name {
        "client_credentials" => (
            wit_config(GrantType::ClientCredentials),
            TokenStep::NewToken,
            Step::NewToken,
        ),
        "password" => (
            wit_config(GrantType::Password),
            TokenStep::NewToken,
            Step::NewToken,
        ),
        "refresh" => (
            wit_config(GrantType::ClientCredentials),
            TokenStep::Refresh(REFRESH_TOKEN.into()),
            Step::Refresh {
                refresh_token: REFRESH_TOKEN.into(),
            },
        ),
        "code_exchange" => (
            wit_config(GrantType::AuthorizationCode),
            TokenStep::ExchangeCode(oauth2_runtime::bindings::CodeExchange {
                code: CODE.into(),
                pkce_verifier: PKCE_VERIFIER.into(),
            }),
            Step::ExchangeCode {
                code: CODE.into(),
                pkce_verifier: PKCE_VERIFIER.into(),
            },
        ),
        other => unreachable!("no grant case {other}"),
    }
}

/// A JWT-shaped string of `len` characters (three base64url parts), deterministic.
fn jwt(len: usize, seed: u8) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let header = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyIsInR5cCI6IkpXVCJ9.";
    let mut s = String::from(header);
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    while s.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        s.push(ALPHABET[(x % 64) as usize] as char);
        if s.len() == len * 2 / 3 {
            s.push('.');
        }
    }
    s
}

/// A typical token response with an id token, about 1 KB (asserted in `fixture_checks`).
fn token_response_body() -> String {
    format!(
        r#"{{"access_token":"{}","token_type":"Bearer","expires_in":86400,"refresh_token":"{}","scope":"openid profile email orders:read","id_token":"{}"}}"#,
        jwt(360, 1),
        REFRESH_TOKEN,
        jwt(480, 2),
    )
}

/// The least a token endpoint can answer (RFC 6749 §5.1): a token and its type.
const MINIMAL_TOKEN_RESPONSE: &str = r#"{"access_token":"a","token_type":"Bearer"}"#;

fn token_response(body: &str) -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![
            Pair {
                name: "Content-Type".into(),
                value: "application/json;charset=UTF-8".into(),
            },
            Pair {
                name: "Cache-Control".into(),
                value: "no-store".into(),
            },
            Pair {
                name: "Pragma".into(),
                value: "no-cache".into(),
            },
        ],
        body: body.as_bytes().to_vec(),
    }
}

fn native_response(r: &HttpResponse) -> native_http::HttpResponse {
    native_http::HttpResponse {
        status: r.status,
        headers: r
            .headers
            .iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect(),
        body: r.body.clone(),
    }
}

/// The store entry a successful token request leaves: the typical response, read at `NOW`.
fn cached_token_entry(config: &ConnectionConfig) -> (String, String) {
    let response = native_response(&token_response(&token_response_body()));
    let token = token_response::parse(&response, NOW, &Default::default(), Redactor::none)
        .expect("the fixture is a token response");
    (
        token_key(&native_config(config)),
        CachedToken::new(&token, Default::default()).encode(),
    )
}

/// The API request a connector step sends, before decoration.
/// The token request the parsed responses answer: what the component cleans provider text of.
fn token_request() -> HttpRequest {
    HttpRequest {
        method: "POST".into(),
        url: "https://login.example.com/oauth/token".into(),
        headers: vec![Pair {
            name: "Authorization".into(),
            value: "Basic Y29ubmVjdG9yLTdmM2E6c2VjcmV0".into(),
        }],
        body: b"grant_type=client_credentials&scope=orders%3Aread".to_vec(),
    }
}

fn api_request() -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url: "https://api.example.com/v1/orders?status=open&limit=50".into(),
        headers: vec![
            Pair {
                name: "Accept".into(),
                value: "application/json".into(),
            },
            Pair {
                name: "User-Agent".into(),
                value: "connector-runtime/1.0".into(),
            },
        ],
        body: vec![],
    }
}

fn native_request(r: &HttpRequest) -> native_http::HttpRequest {
    native_http::HttpRequest {
        method: r.method.clone(),
        url: r.url.clone(),
        headers: r
            .headers
            .iter()
            .map(|p| (p.name.clone(), p.value.clone()))
            .collect(),
        body: r.body.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Hosts: the harness's services for the component, an in-memory `lifecycle::Host` for the rlib.

/// Every benchmark works from the cache or is pure: reaching the network is a bug in the setup.
struct NoNetwork;

impl HttpClient for NoNetwork {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        panic!(
            "the benchmark sent {} {}: the cached token was not used",
            request.method, request.url
        )
    }
}

/// The harness's services with the secrets and the cached token of `config` already stored.
fn services(config: &ConnectionConfig) -> Services {
    let store = Arc::new(MemoryStore::new());
    SecretStore::set(&*store, "client-secret", CLIENT_SECRET).unwrap();
    SecretStore::set(&*store, "alice-password", PASSWORD).unwrap();
    let (key, value) = cached_token_entry(config);
    TokenStore::set(&*store, &key, &value, None).unwrap();
    Services {
        http: Arc::new(NoNetwork),
        secrets: store.clone(),
        tokens: store,
        clock: Arc::new(ManualClock::at_unix(NOW)),
    }
}

/// [`services`] with the token state in Redis instead, near cache on or off.
fn redis_services(config: &ConnectionConfig, url: &str, near: bool) -> Services {
    let memory = services(config);
    let keys = SealingKeys::from_keys(&[[5; 32]]);
    let mut store = RedisStore::open(url, keys).unwrap();
    if !near {
        store = store.with_near_cache(Duration::ZERO);
    }
    let (key, value) = cached_token_entry(config);
    TokenStore::set(&store, &key, &value, None).unwrap();
    Services {
        tokens: Arc::new(store),
        ..memory
    }
}

/// The rlib's host: the secrets, the cached token and a clock that stands still.
struct FakeHost {
    secrets: HashMap<String, String>,
    entries: RefCell<HashMap<String, String>>,
}

impl FakeHost {
    fn new(config: &ConnectionConfig) -> Self {
        let (key, value) = cached_token_entry(config);
        let secrets = HashMap::from([
            ("client-secret".to_owned(), CLIENT_SECRET.to_owned()),
            ("alice-password".to_owned(), PASSWORD.to_owned()),
        ]);
        Self {
            secrets,
            entries: RefCell::new(HashMap::from([(key, value)])),
        }
    }
}

impl Host for FakeHost {
    fn send(
        &self,
        request: &native_http::HttpRequest,
    ) -> Result<native_http::HttpResponse, oauth2_plugin::error::TransportError> {
        panic!(
            "the benchmark sent {} {}: the cached token was not used",
            request.method, request.url
        )
    }
    fn get_secret(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self.secrets.get(name).cloned())
    }
    fn get_entry(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.entries.borrow().get(key).cloned())
    }
    fn set_entry(&self, key: &str, value: &str, _ttl: Option<u64>) -> Result<(), StoreError> {
        self.entries
            .borrow_mut()
            .insert(key.to_owned(), value.to_owned());
        Ok(())
    }
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: Option<&str>,
        _ttl: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut entries = self.entries.borrow_mut();
        if entries.get(key).map(String::as_str) != expected {
            return Ok(false);
        }
        match value {
            Some(value) => entries.insert(key.to_owned(), value.to_owned()),
            None => entries.remove(key),
        };
        Ok(true)
    }
    // One thread, one instance: nothing to wait for.
    fn lock(&self, _key: &str) -> Result<(), StoreError> {
        Ok(())
    }
    fn unlock(&self, _key: &str) {}
    fn now(&self) -> u64 {
        NOW
    }
    fn random(&self, bytes: &mut [u8]) -> Result<(), String> {
        getrandom::fill(bytes).map_err(|e| e.to_string())
    }
}

#[path = "../tests/fixtures/mod.rs"]
mod fixtures;

fn plugin() -> Plugin {
    Plugin::embedded().expect("the embedded component loads")
}

/// The floor component: the contract's exports, each answering at once.
fn floor() -> Plugin {
    Plugin::from_file(&fixtures::build("floor-guest")).expect("the floor component loads")
}

/// A step's crossing into the real component without its grant logic: a fresh instance asked
/// for the headers of a request whose URL it refuses first of all.
fn no_op(plugin: &Plugin, services: &Services, config: &ConnectionConfig) {
    let refused = plugin
        .instance(services)
        .unwrap()
        .authorization_headers(black_box(config), black_box(""));
    assert!(
        matches!(refused, Err(CallError::OAuth(OauthError::ApiUrlRefused(_)))),
        "{refused:?}"
    );
}

fn authorization(request: &HttpRequest) -> Option<&str> {
    request
        .headers
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case("authorization"))
        .map(|p| p.value.as_str())
}

// ---------------------------------------------------------------------------------------------
// Benchmarks.

fn fixture_checks() {
    let body = token_response_body();
    assert!(
        (1000..=1100).contains(&body.len()),
        "the token response is about 1 KB: {} bytes",
        body.len()
    );
    // oauth2-rs reads the same response (an id token is an extra field it ignores).
    let peer: oauth2::basic::BasicTokenResponse = serde_json::from_slice(body.as_bytes()).unwrap();
    assert_eq!(
        oauth2::TokenResponse::expires_in(&peer),
        Some(Duration::from_secs(86_400))
    );
}

fn bench_step(c: &mut Criterion) {
    let plugin = plugin();
    let floor = floor();
    let config = wit_config(GrantType::ClientCredentials);
    let services = services(&config);
    let request = api_request();
    let decorated = plugin
        .decorate_request(&services, &config, &request)
        .unwrap();
    let value = authorization(&decorated).unwrap_or_default();
    assert!(value.starts_with("Bearer eyJ"), "{value}");
    // The floor answers with a header as long, so lifting it costs the same.
    let floor_decorated = floor
        .decorate_request(&services, &config, &request)
        .unwrap();
    assert_eq!(
        authorization(&floor_decorated).map(str::len),
        Some(value.len())
    );

    let mut group = c.benchmark_group("step");
    group.bench_function("decorate-request", |b| {
        b.iter(|| {
            plugin
                .decorate_request(&services, black_box(&config), black_box(&request))
                .unwrap()
        })
    });
    group.bench_function("floor", |b| {
        b.iter(|| {
            floor
                .decorate_request(&services, black_box(&config), black_box(&request))
                .unwrap()
        })
    });
    group.bench_function("no-op", |b| b.iter(|| no_op(&plugin, &services, &config)));
    group.bench_function("instantiate-only", |b| {
        b.iter(|| black_box(plugin.instance(&services).unwrap()))
    });
    group.finish();
}

fn bench_decorate_warm(c: &mut Criterion) {
    let config = wit_config(GrantType::ClientCredentials);
    let services = services(&config);
    let request = api_request();
    let mut group = c.benchmark_group("decorate-warm");

    let mut instance = plugin().instance(&services).unwrap();
    let headers = instance
        .authorization_headers(&config, &request.url)
        .unwrap();
    assert!(headers.0[0].value.starts_with("Bearer eyJ"));
    group.bench_function("authorization-headers", |b| {
        b.iter(|| {
            instance
                .authorization_headers(black_box(&config), black_box(&request.url))
                .unwrap()
        })
    });
    group.finish();
}

fn bench_decorate_native(c: &mut Criterion) {
    let config = wit_config(GrantType::ClientCredentials);
    let native = native_config(&config);
    let host = FakeHost::new(&config);
    let request = native_request(&api_request());
    let decorated = lifecycle::decorate_request(&native, &host, request.clone()).unwrap();
    assert_eq!(
        native_http::header(&decorated.headers, "authorization")
            .map(|v| v.starts_with("Bearer eyJ")),
        Some(true)
    );
    c.bench_function("decorate-native", |b| {
        b.iter(|| {
            // The wasm call gets its request by value too (lifted from the caller's copy).
            lifecycle::decorate_request(black_box(&native), &host, black_box(&request).clone())
                .unwrap()
        })
    });
}

fn bench_parse(c: &mut Criterion) {
    let plugin = plugin();
    let config = wit_config(GrantType::ClientCredentials);
    let services = services(&config);
    let body = token_response_body();
    let response = token_response(&body);
    let native = native_response(&response);
    let mut instance = plugin.instance(&services).unwrap();

    let sent = token_request();
    let token = plugin
        .parse_token_response(&services, &config, &sent, &response)
        .unwrap();
    assert!(token.id_token.is_some());
    assert_eq!(token.expires_at, Some(NOW + 86_400));

    let mut group = c.benchmark_group("parse");
    group.bench_function("wasm", |b| {
        b.iter(|| {
            plugin
                .parse_token_response(
                    &services,
                    black_box(&config),
                    black_box(&sent),
                    black_box(&response),
                )
                .unwrap()
        })
    });
    group.bench_function("wasm-warm", |b| {
        b.iter(|| {
            instance
                .parse_token_response(black_box(&config), black_box(&sent), black_box(&response))
                .unwrap()
        })
    });
    group.bench_function("native", |b| {
        b.iter(|| {
            token_response::parse(black_box(&native), NOW, &Default::default(), Redactor::none)
                .unwrap()
        })
    });
    group.bench_function("oauth2-rs", |b| {
        b.iter(|| {
            serde_json::from_slice::<oauth2::basic::BasicTokenResponse>(black_box(
                native.body.as_slice(),
            ))
            .unwrap()
        })
    });

    // The floor of a call: the smallest token response, so what is left is crossing into the
    // component (the configuration and response lowered, the token lifted, the clock read)
    // rather than reading the body.
    let minimal = token_response(MINIMAL_TOKEN_RESPONSE);
    let native_minimal = native_response(&minimal);
    let token = instance
        .parse_token_response(&config, &sent, &minimal)
        .unwrap();
    assert_eq!((token.access_token.secret(), token.expires_at), ("a", None));
    group.bench_function("wasm-warm-minimal", |b| {
        b.iter(|| {
            instance
                .parse_token_response(black_box(&config), black_box(&sent), black_box(&minimal))
                .unwrap()
        })
    });
    group.bench_function("native-minimal", |b| {
        b.iter(|| {
            token_response::parse(
                black_box(&native_minimal),
                NOW,
                &Default::default(),
                Redactor::none,
            )
            .unwrap()
        })
    });
    group.finish();
}

fn bench_build(c: &mut Criterion) {
    let plugin = plugin();
    let mut group = c.benchmark_group("build");
    for name in GRANTS {
        let (config, wit_step, step) = grant_case(name);
        let services = services(&config);
        let native = native_config(&config);
        let host = FakeHost::new(&config);
        let credentials = Credentials {
            client_secret: Some(CLIENT_SECRET.into()),
            password: (config.grant_type == GrantType::Password && step == Step::NewToken)
                .then(|| PASSWORD.into()),
            ..Credentials::default()
        };
        let wasm = plugin
            .build_token_request(&services, &config, &wit_step)
            .unwrap();
        let pure = token_request::build(&native, &step, &credentials, AuthMethod::Basic).unwrap();
        assert_eq!(
            (wasm.method.as_str(), wasm.body.as_slice()),
            (pure.method.as_str(), pure.body.as_slice()),
            "{name}: the component and the rlib build the same request"
        );
        let mut instance = plugin.instance(&services).unwrap();

        group.bench_with_input(BenchmarkId::new("wasm", name), &wit_step, |b, s| {
            b.iter(|| {
                plugin
                    .build_token_request(&services, black_box(&config), black_box(s))
                    .unwrap()
            })
        });
        group.bench_with_input(BenchmarkId::new("wasm-warm", name), &wit_step, |b, s| {
            b.iter(|| {
                instance
                    .build_token_request(black_box(&config), black_box(s))
                    .unwrap()
            })
        });
        // What the component runs: the secrets looked up through the host, then `build`.
        group.bench_with_input(BenchmarkId::new("native-lifecycle", name), &step, |b, s| {
            b.iter(|| lifecycle::build_token_request(black_box(&native), &host, s).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("native", name), &step, |b, s| {
            b.iter(|| {
                token_request::build(black_box(&native), s, &credentials, AuthMethod::Basic)
                    .unwrap()
            })
        });
    }
    group.finish();
}

fn bench_throughput(c: &mut Criterion, redis: &RedisServer) {
    const THREADS: u64 = 2;
    let plugin = plugin();
    let config = wit_config(GrantType::ClientCredentials);
    let request = api_request();
    let mut group = c.benchmark_group("throughput");
    // One iteration is one decoration; criterion's time per iteration is wall time divided by
    // the decorations both threads made together, so decorations/s = 1 / that time.
    for (name, services) in [
        ("decorate-2-threads", services(&config)),
        (
            "decorate-2-threads-redis",
            redis_services(&config, &redis.url(), true),
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for t in 0..THREADS {
                        let share = iters / THREADS + u64::from(t < iters % THREADS);
                        let (plugin, services, config, request) =
                            (&plugin, &services, &config, &request);
                        scope.spawn(move || {
                            for _ in 0..share {
                                black_box(
                                    plugin
                                        .decorate_request(services, config, black_box(request))
                                        .unwrap(),
                                );
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    group.finish();
}

fn bench_store(c: &mut Criterion, redis: &RedisServer) {
    let plugin = plugin();
    let config = wit_config(GrantType::ClientCredentials);
    let request = api_request();
    let mut group = c.benchmark_group("store");
    for (name, services) in [
        ("memory", services(&config)),
        ("redis-near", redis_services(&config, &redis.url(), true)),
        ("redis-direct", redis_services(&config, &redis.url(), false)),
    ] {
        let decorated = plugin
            .decorate_request(&services, &config, &request)
            .unwrap();
        assert!(authorization(&decorated).is_some_and(|v| v.starts_with("Bearer eyJ")));
        group.bench_function(name, |b| {
            b.iter(|| {
                plugin
                    .decorate_request(&services, black_box(&config), black_box(&request))
                    .unwrap()
            })
        });
    }
    group.finish();
}

const ROUNDS: usize = 7;
const CALLS: u32 = 20_000;

/// `step / floor` and `step / native`: a step through the component against the same call into
/// the floor component, and against the native build of the same logic with an in-memory host;
/// `step / no-op` and `no-op / floor` split the first into what the grant logic costs and what
/// instantiating and crossing into a component of this size does; then the step with its token
/// in Redis against the same step with `MemoryStore`.
fn ratios(redis: &RedisServer) {
    let (plugin, floor) = (plugin(), floor());
    let config = wit_config(GrantType::ClientCredentials);
    let services = services(&config);
    let request = api_request();
    let native = native_config(&config);
    let host = FakeHost::new(&config);
    let native_request = native_request(&request);
    let step = |plugin: &Plugin| {
        black_box(
            plugin
                .decorate_request(&services, black_box(&config), black_box(&request))
                .unwrap(),
        );
    };
    let mut native_step = || {
        black_box(
            lifecycle::decorate_request(black_box(&native), &host, native_request.clone()).unwrap(),
        );
    };
    alternate(
        "step / floor",
        [
            ("step", &mut || step(&plugin)),
            ("floor", &mut || step(&floor)),
        ],
    );
    alternate(
        "step / no-op",
        [
            ("step", &mut || step(&plugin)),
            ("no-op", &mut || no_op(&plugin, &services, &config)),
        ],
    );
    alternate(
        "no-op / floor",
        [
            ("no-op", &mut || no_op(&plugin, &services, &config)),
            ("floor", &mut || step(&floor)),
        ],
    );
    alternate(
        "step / native",
        [
            ("step", &mut || step(&plugin)),
            ("native", &mut native_step),
        ],
    );
    for (name, near) in [
        ("redis-near / memory", true),
        ("redis-direct / memory", false),
    ] {
        let redis_services = redis_services(&config, &redis.url(), near);
        let with = |services: &Services| {
            black_box(
                plugin
                    .decorate_request(services, black_box(&config), black_box(&request))
                    .unwrap(),
            );
        };
        alternate(
            name,
            [
                ("redis", &mut || with(&redis_services)),
                ("memory", &mut || with(&services)),
            ],
        );
    }
}

const WORKER_ENV: &str = "OAUTH2_BENCH_REDIS_WORKER";
const PROCESSES: u32 = 4;
const PER_PROCESS: u32 = 20_000;

/// Decorations per second of [`PROCESSES`] processes (this benchmark run again) sharing one
/// Redis, near cache on and off. Each compiles the component, then all start their decorations
/// at one moment; the rate is all their decorations over the time until the last one ends.
fn processes(redis: &RedisServer) {
    for near in [true, false] {
        let start_at = unix_micros() + 3_000_000;
        let children: Vec<_> = (0..PROCESSES)
            .map(|_| {
                std::process::Command::new(std::env::current_exe().unwrap())
                    .env(WORKER_ENV, format!("{}#{near}#{start_at}", redis.url()))
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut last_end = 0;
        for child in children {
            let output = child.wait_with_output().unwrap();
            assert!(output.status.success(), "a worker failed");
            let end: u64 = String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .unwrap();
            last_end = last_end.max(end);
        }
        let seconds = last_end.saturating_sub(start_at) as f64 / 1e6;
        println!(
            "{PROCESSES} processes, Redis with{} near cache: {:>8.0} decorations/s",
            if near { "" } else { "out" },
            f64::from(PROCESSES * PER_PROCESS) / seconds
        );
    }
}

fn unix_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

/// One of [`processes`]' workers: waits for the common start, makes [`PER_PROCESS`]
/// decorations on one thread, and prints when it ended (Unix microseconds).
fn worker(spec: &str) {
    let mut parts = spec.rsplitn(3, '#');
    let (start_at, near, url) = (
        parts.next().unwrap().parse::<u64>().unwrap(),
        parts.next().unwrap() == "true",
        parts.next().unwrap(),
    );
    let plugin = plugin();
    let config = wit_config(GrantType::ClientCredentials);
    let services = redis_services(&config, url, near);
    let request = api_request();
    std::thread::sleep(Duration::from_micros(
        start_at.saturating_sub(unix_micros()),
    ));
    for _ in 0..PER_PROCESS {
        black_box(
            plugin
                .decorate_request(&services, &config, black_box(&request))
                .unwrap(),
        );
    }
    println!("{}", unix_micros());
}

/// The embedded component against `baseline`, another build of it, in one process: a step, a
/// warm decoration and a warm parse, each in blocks of calls alternated between the two. This
/// machine's speed drifts between runs by more than many changes here are worth; alternating
/// makes the drift hit both builds alike. Prints the medians and their ratio.
fn compare(baseline: &Path) {
    let ours = plugin();
    let theirs = Plugin::from_file(baseline)
        .unwrap_or_else(|e| panic!("loading the baseline {}: {e:#}", baseline.display()));
    let config = wit_config(GrantType::ClientCredentials);
    let services = services(&config);
    let request = api_request();
    let response = token_response(&token_response_body());
    let (mut our_instance, mut their_instance) = (
        ours.instance(&services).unwrap(),
        theirs.instance(&services).unwrap(),
    );
    for plugin in [&ours, &theirs] {
        let decorated = plugin
            .decorate_request(&services, &config, &request)
            .unwrap();
        assert!(authorization(&decorated).is_some_and(|v| v.starts_with("Bearer eyJ")));
    }

    let step = |plugin: &Plugin| {
        black_box(
            plugin
                .decorate_request(&services, black_box(&config), black_box(&request))
                .unwrap(),
        );
    };
    let warm = |instance: &mut Instance| {
        black_box(
            instance
                .authorization_headers(black_box(&config), black_box(&request.url))
                .unwrap(),
        );
    };
    let sent = token_request();
    let parse = |instance: &mut Instance| {
        black_box(
            instance
                .parse_token_response(black_box(&config), black_box(&sent), black_box(&response))
                .unwrap(),
        );
    };
    alternate(
        "step",
        [
            ("embedded", &mut || step(&ours)),
            ("baseline", &mut || step(&theirs)),
        ],
    );
    alternate(
        "decorate-warm",
        [
            ("embedded", &mut || warm(&mut our_instance)),
            ("baseline", &mut || warm(&mut their_instance)),
        ],
    );
    alternate(
        "parse-warm",
        [
            ("embedded", &mut || parse(&mut our_instance)),
            ("baseline", &mut || parse(&mut their_instance)),
        ],
    );
}

/// Medians of [`ROUNDS`] blocks of [`CALLS`] calls of each of `calls`, the blocks alternated,
/// and the first's over the second's.
fn alternate(name: &str, mut calls: [(&str, &mut dyn FnMut()); 2]) {
    let mut times = [Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS)];
    for _ in 0..ROUNDS {
        for ((_, call), times) in calls.iter_mut().zip(&mut times) {
            let start = Instant::now();
            for _ in 0..CALLS {
                call();
            }
            times.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS));
        }
    }
    let [first, second] = times.map(|mut times| {
        times.sort_by(f64::total_cmp);
        times[ROUNDS / 2]
    });
    let [(a, _), (b, _)] = &calls;
    println!(
        "{name:<14} {a} {first:>6.2} µs   {b} {second:>6.2} µs   ratio {:.3}",
        first / second
    );
}

fn main() {
    if let Ok(spec) = std::env::var(WORKER_ENV) {
        return worker(&spec);
    }
    if let Some(baseline) = std::env::var_os("OAUTH2_BENCH_BASELINE") {
        return compare(Path::new(&baseline));
    }
    let redis = RedisServer::start();
    let mut criterion = Criterion::default().configure_from_args();
    fixture_checks();
    bench_step(&mut criterion);
    bench_decorate_warm(&mut criterion);
    bench_decorate_native(&mut criterion);
    bench_parse(&mut criterion);
    bench_build(&mut criterion);
    bench_throughput(&mut criterion, &redis);
    bench_store(&mut criterion, &redis);
    criterion.final_summary();
    ratios(&redis);
    processes(&redis);
}
