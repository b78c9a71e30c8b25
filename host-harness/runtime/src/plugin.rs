//! The compiled component, ready to instantiate: one per process, a fresh instance per call.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use oauth2_plugin::extra_fields::{self, ExtraFields};
use oauth2_plugin::secret::{AccessToken, DeviceCode, IdToken, RefreshToken, State};
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
};

use crate::bindings::{
    self as wit, ConfigProblem, ConnectionConfig, ProviderError, Revocation, TokenStep, WitToken,
};
use crate::clock::Clock;
use crate::compiled_cache;
use crate::errors::CallError;
use crate::exports::{Checked, Export, GrantExports};
use crate::http_client::HttpClient;
use crate::message::{Headers, HttpRequest, HttpResponse};
use crate::sandbox::{self, HostState, LimitExceeded};
use crate::secret_store::SecretStore;
use crate::token_store::TokenStore;

/// The component built from this workspace by `build.rs`: the release `.wasm` any host runs.
pub const EMBEDDED: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/oauth2_plugin.wasm"));

/// The SHA-256 of [`EMBEDDED`] in hex: the build another host (Node.js through jco) must run
/// to behave as this one does.
pub const EMBEDDED_SHA256: &str =
    include_str!(concat!(env!("OUT_DIR"), "/oauth2_plugin.wasm.sha256"));

/// What the component's imports are served by during a call.
#[derive(Clone)]
pub struct Services {
    pub http: Arc<dyn HttpClient>,
    /// The user's secrets, which configurations name; the component only reads them.
    pub secrets: Arc<dyn SecretStore>,
    /// The component's own state, and the locks that keep a refresh single. Share one store
    /// between every thread (and, for a shared store, process) that serves the same connections.
    pub tokens: Arc<dyn TokenStore>,
    pub clock: Arc<dyn Clock>,
}

impl fmt::Debug for Services {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}

/// A token as the host hands it on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub access_token: AccessToken,
    pub token_type: String,
    /// Unix seconds.
    pub expires_at: Option<u64>,
    pub refresh_token: Option<RefreshToken>,
    pub scope: Option<String>,
    pub id_token: Option<IdToken>,
    /// Response fields beyond RFC 6749's (Salesforce's `instance_url`), sorted by name.
    pub extra_fields: ExtraFields,
}

/// Where the user goes to consent, and the `state` the redirect must bring back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationStart {
    /// The authorization URL, carrying the state and the PKCE challenge.
    pub url: String,
    pub state: State,
}

/// A started device authorization: what the user is shown, and what the host polls with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAuthorization {
    pub device_code: DeviceCode,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub interval_seconds: u32,
    /// Unix seconds.
    pub expires_at: u64,
}

/// One poll's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DevicePoll {
    /// The user approved: the token, already stored.
    Granted(Token),
    Pending,
    /// Polling too fast: wait 5 s more from now on.
    SlowDown,
    Denied(ProviderError),
    Expired(ProviderError),
}

impl From<WitToken> for Token {
    fn from(t: WitToken) -> Self {
        Self {
            access_token: AccessToken::new(t.access_token),
            token_type: t.token_type,
            expires_at: t.expires_at,
            refresh_token: t.refresh_token.map(RefreshToken::new),
            scope: t.scope,
            id_token: t.id_token.map(IdToken::new),
            extra_fields: ExtraFields(
                t.extra_fields
                    .into_iter()
                    .map(|p| (p.name, p.value))
                    .collect(),
            ),
        }
    }
}

impl Token {
    /// What `oauth2-host token` prints: type, expiry, scope and the response's extra fields
    /// (Salesforce's `instance_url` is what the user calls the API with). Without `reveal`,
    /// only what is known to be harmless is shown of the extra fields, at any depth
    /// ([`extra_fields::shown`]); with it, the access token and every extra field as sent.
    pub fn summary(&self, reveal: bool) -> serde_json::Value {
        let mut summary = serde_json::json!({
            "token_type": self.token_type,
            "expires_at": self.expires_at,
            "scope": self.scope,
        });
        if !self.extra_fields.0.is_empty() {
            summary["extra_fields"] = if reveal {
                extra_fields::revealed(&self.extra_fields.0)
            } else {
                extra_fields::shown(&self.extra_fields.0)
            }
            .into();
        }
        if reveal {
            summary["access_token"] = self.access_token.secret().into();
        }
        summary
    }
}

/// Bytes of each pooled memory and table kept mapped between instances.
const KEEP_RESIDENT: usize = 256 << 10;

/// Calls that may run at once per `Plugin`; one more waits for nothing and fails to instantiate.
pub const MAX_CONCURRENT_CALLS: u32 = 128;

/// An engine whose instances come from a pre-reserved pool with copy-on-write memory images:
/// a call's instantiation then costs a few page mappings instead of allocation and copying.
fn engine() -> anyhow::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    // A Rust wasip2 component holds a handful of core instances and tables and one memory.
    pool.total_component_instances(MAX_CONCURRENT_CALLS)
        .total_core_instances(MAX_CONCURRENT_CALLS * 8)
        .total_memories(MAX_CONCURRENT_CALLS * 2)
        .total_tables(MAX_CONCURRENT_CALLS * 8)
        .max_memory_size(sandbox::MEMORY_LIMIT)
        // A freed slot's pages are reset in place instead of returned to the kernel: fewer page
        // faults and madvise calls, which otherwise serialise concurrent calls on the process's
        // address-space lock. PAGEMAP_SCAN (Linux 6.7+) finds the pages the instance wrote, so
        // only those are reset; without it the whole kept region is, which was a fifth of a
        // step.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    // Each store gets a deadline in epochs; a thread advances them while the engine lives.
    config.epoch_interruption(true);
    let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("oauth2-plugin-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(sandbox::EPOCH_TICK);
            }
        })
        .context("starting the epoch thread")?;
    Ok(engine)
}

/// The engine and the component, linked and type-checked once; cheap to share across threads.
///
/// A refresh happens once per connection however many calls find its token stale at once: the
/// component takes the connection's lock in the token store (named by the token's store key,
/// whatever the configs around it differ in) before it asks for a token, on every path and
/// through every method here or on [`Instance`].
#[derive(Clone)]
pub struct Plugin {
    pre: InstancePre<HostState>,
    exports: Arc<GrantExports>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin").finish_non_exhaustive()
    }
}

impl Plugin {
    /// The component embedded in this crate at build time.
    pub fn embedded() -> anyhow::Result<Self> {
        Self::load(None, None)
    }

    /// A component file, such as one built separately from this crate.
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        Self::load(Some(path), None)
    }

    /// A component in memory; compiles it, which takes a moment.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        Self::compile(bytes, None)
    }

    /// The component file at `component`, or the embedded one; with `cache_dir`, its compiled
    /// code is reused from there across processes instead of compiled on every start.
    pub fn load(component: Option<&Path>, cache_dir: Option<&Path>) -> anyhow::Result<Self> {
        match component {
            None => Self::compile(EMBEDDED, cache_dir),
            Some(path) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("cannot read component {}", path.display()))?;
                Self::compile(&bytes, cache_dir)
                    .with_context(|| format!("component {}", path.display()))
            }
        }
    }

    fn compile(bytes: &[u8], cache_dir: Option<&Path>) -> anyhow::Result<Self> {
        let engine = engine()?;
        let component = match cache_dir {
            Some(dir) => compiled_cache::load_or_compile(&engine, bytes, dir),
            None => Component::new(&engine, bytes),
        }
        .map_err(anyhow::Error::from)
        .context("compiling the component")?;
        let linker: Linker<HostState> = sandbox::linker(&engine)?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context(
                "the component imports something this host does not provide (it offers only the \
             oauth2 http, secrets and token-store interfaces and WASI clocks, random, io and \
             cli)",
            )?;
        let exports = GrantExports::new(&instance_pre)
            .context("the component does not export the oauth2 grant interface")?;
        Ok(Self {
            pre: instance_pre,
            exports: Arc::new(exports),
        })
    }

    /// The component's imports, as `interface` names (`wasi:io/streams@0.2.6`, ...).
    pub fn imports(&self) -> Vec<String> {
        let engine = self.pre.engine();
        self.pre
            .component()
            .component_type()
            .imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    /// Every problem in `config`, without any I/O. One fresh instance.
    pub fn validate_config(
        &self,
        services: &Services,
        config: &ConnectionConfig,
    ) -> Result<Vec<ConfigProblem>, CallError> {
        self.instance(services)?.validate_config(config)
    }

    /// The token endpoint request for `step`; sends nothing. One fresh instance.
    pub fn build_token_request(
        &self,
        services: &Services,
        config: &ConnectionConfig,
        step: &TokenStep,
    ) -> Result<HttpRequest, CallError> {
        self.instance(services)?.build_token_request(config, step)
    }

    /// Reads the response to a token request `build_token_request` gave; stores nothing. One
    /// fresh instance.
    pub fn parse_token_response(
        &self,
        services: &Services,
        config: &ConnectionConfig,
        request: &HttpRequest,
        response: &HttpResponse,
    ) -> Result<Token, CallError> {
        self.instance(services)?
            .parse_token_response(config, request, response)
    }

    /// A usable token: cached, refreshed or fetched, and stored. One fresh instance.
    pub fn ensure_token(
        &self,
        services: &Services,
        config: &ConnectionConfig,
    ) -> Result<Token, CallError> {
        self.instance(services)?.ensure_token(config)
    }

    /// `request` with the connection's `Authorization` header: one connector step, one fresh
    /// instance and one call, `authorization-headers`, which gets the request's URL only, so
    /// the request and its body never cross into the component. A fresh cached token is used
    /// without waiting for anything; otherwise the component takes the connection's lock and
    /// finds either the token another call just obtained or none, in which case it obtains one
    /// itself.
    pub fn decorate_request(
        &self,
        services: &Services,
        config: &ConnectionConfig,
        request: &HttpRequest,
    ) -> Result<HttpRequest, CallError> {
        let headers = self
            .instance(services)?
            .authorization_headers(config, &request.url)?;
        let mut decorated = request.clone();
        decorated.set_headers(headers);
        Ok(decorated)
    }

    /// Starts the authorization-code flow. One fresh instance.
    pub fn begin_authorization(
        &self,
        services: &Services,
        config: &ConnectionConfig,
    ) -> Result<AuthorizationStart, CallError> {
        self.instance(services)?.begin_authorization(config)
    }

    /// Finishes the authorization-code flow from the browser's redirect URL. One fresh instance.
    pub fn complete_authorization(
        &self,
        services: &Services,
        config: &ConnectionConfig,
        redirect_url: &str,
    ) -> Result<Token, CallError> {
        self.instance(services)?
            .complete_authorization(config, redirect_url)
    }

    /// Drops the cached access token after the API refused `refused` (the `Authorization`
    /// value it was sent), unless another worker replaced that token already; with `None`,
    /// whatever is stored. One fresh instance.
    pub fn forget_token(
        &self,
        services: &Services,
        config: &ConnectionConfig,
        refused: Option<&str>,
    ) -> Result<(), CallError> {
        self.instance(services)?.forget_token(config, refused)
    }

    /// An instance for several calls in a row, such as the steps of one connector run: it
    /// saves an instantiation per call. The component keeps no state between calls (only the
    /// secret store does), so reuse changes nothing but speed. Drop it after a
    /// `CallError::Host`: a trapped instance cannot be entered again.
    /// Starts the device authorization grant. One fresh instance.
    pub fn start_device_authorization(
        &self,
        services: &Services,
        config: &ConnectionConfig,
    ) -> Result<DeviceAuthorization, CallError> {
        self.instance(services)?.start_device_authorization(config)
    }

    /// Asks once whether the user approved `device_code`; stores the token when they did. The
    /// caller waits the interval between polls. One fresh instance.
    pub fn poll_device_authorization(
        &self,
        services: &Services,
        config: &ConnectionConfig,
        device_code: &DeviceCode,
    ) -> Result<DevicePoll, CallError> {
        self.instance(services)?
            .poll_device_authorization(config, device_code)
    }

    /// Removes the connection's tokens from the store and revokes them at the provider. One
    /// fresh instance.
    pub fn revoke_tokens(
        &self,
        services: &Services,
        config: &ConnectionConfig,
    ) -> Result<Revocation, CallError> {
        self.instance(services)?.revoke_tokens(config)
    }

    pub fn instance(&self, services: &Services) -> Result<Instance, CallError> {
        let mut store = Store::new(self.pre.engine(), HostState::new(services));
        store.limiter(|state| &mut state.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(HostState::on_epoch_deadline);
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| CallError::Host(anyhow::Error::from(e).context("instantiating")))?;
        Ok(Instance {
            store,
            instance,
            exports: Arc::clone(&self.exports),
        })
    }
}

/// A live instance of the component in its own `Store`, from [`Plugin::instance`].
pub struct Instance {
    store: Store<HostState>,
    instance: wasmtime::component::Instance,
    exports: Arc<GrantExports>,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instance").finish_non_exhaustive()
    }
}

impl Instance {
    /// Every problem in `config`, without any I/O.
    pub fn validate_config(
        &mut self,
        config: &ConnectionConfig,
    ) -> Result<Vec<ConfigProblem>, CallError> {
        let (problems,) = self.call(config, |e| &e.validate_config, (config,))?;
        Ok(problems)
    }

    /// The token endpoint request for `step`; sends nothing.
    pub fn build_token_request(
        &mut self,
        config: &ConnectionConfig,
        step: &TokenStep,
    ) -> Result<HttpRequest, CallError> {
        let (result,) = self.call(config, |e| &e.build_token_request, (config, step))?;
        result.map(HttpRequest::from).map_err(CallError::OAuth)
    }

    /// Reads the response to a token request `build_token_request` gave; stores nothing.
    pub fn parse_token_response(
        &mut self,
        config: &ConnectionConfig,
        request: &HttpRequest,
        response: &HttpResponse,
    ) -> Result<Token, CallError> {
        let request = wit::HttpRequest::from(request.clone());
        let response = wit::HttpResponse::from(response.clone());
        let (result,) = self.call(
            config,
            |e| &e.parse_token_response,
            (config, &request, &response),
        )?;
        result.map(Token::from).map_err(CallError::OAuth)
    }

    /// A usable token: cached, refreshed or fetched, and stored.
    pub fn ensure_token(&mut self, config: &ConnectionConfig) -> Result<Token, CallError> {
        let (result,) = self.call(config, |e| &e.ensure_token, (config,))?;
        result.map(Token::from).map_err(CallError::OAuth)
    }

    /// The headers to set on a request to `url`: `Authorization` with a fresh token, obtained
    /// under the connection's lock when the cached one is not.
    pub fn authorization_headers(
        &mut self,
        config: &ConnectionConfig,
        url: &str,
    ) -> Result<Headers, CallError> {
        let (result,) = self.call(config, |e| &e.authorization_headers, (config, url))?;
        result.map(Headers).map_err(CallError::OAuth)
    }

    /// `request` with the connection's `Authorization` header, the whole request passed to the
    /// component's `decorate-request` and back.
    pub fn decorate_request(
        &mut self,
        config: &ConnectionConfig,
        request: &HttpRequest,
    ) -> Result<HttpRequest, CallError> {
        let request = wit::HttpRequest::from(request.clone());
        let (result,) = self.call(config, |e| &e.decorate_request, (config, &request))?;
        result.map(HttpRequest::from).map_err(CallError::OAuth)
    }

    /// The largest linear memory this instance has had, in bytes: its initial memory, and what
    /// its calls grew it to.
    pub fn peak_memory(&self) -> usize {
        self.store.data().limits.peak_memory
    }

    /// Starts the authorization-code flow.
    pub fn begin_authorization(
        &mut self,
        config: &ConnectionConfig,
    ) -> Result<AuthorizationStart, CallError> {
        let (result,) = self.call(config, |e| &e.begin_authorization, (config,))?;
        let start = result.map_err(CallError::OAuth)?;
        Ok(AuthorizationStart {
            url: start.url,
            state: State::new(start.state),
        })
    }

    /// Finishes the authorization-code flow from the browser's redirect URL.
    pub fn complete_authorization(
        &mut self,
        config: &ConnectionConfig,
        redirect_url: &str,
    ) -> Result<Token, CallError> {
        let (result,) = self.call(
            config,
            |e| &e.complete_authorization,
            (config, redirect_url),
        )?;
        result.map(Token::from).map_err(CallError::OAuth)
    }

    /// Drops the cached access token after the API refused it (see [`Plugin::forget_token`]).
    pub fn forget_token(
        &mut self,
        config: &ConnectionConfig,
        refused: Option<&str>,
    ) -> Result<(), CallError> {
        let (result,) = self.call(config, |e| &e.forget_token, (config, refused))?;
        result.map_err(CallError::OAuth)
    }

    /// Starts the device authorization grant.
    pub fn start_device_authorization(
        &mut self,
        config: &ConnectionConfig,
    ) -> Result<DeviceAuthorization, CallError> {
        let (result,) = self.call(config, |e| &e.start_device_authorization, (config,))?;
        let started = result.map_err(CallError::OAuth)?;
        Ok(DeviceAuthorization {
            device_code: DeviceCode::new(started.device_code),
            user_code: started.user_code,
            verification_uri: started.verification_uri,
            verification_uri_complete: started.verification_uri_complete,
            interval_seconds: started.interval_seconds,
            expires_at: started.expires_at,
        })
    }

    /// Asks once whether the user approved `device_code`.
    pub fn poll_device_authorization(
        &mut self,
        config: &ConnectionConfig,
        device_code: &DeviceCode,
    ) -> Result<DevicePoll, CallError> {
        let (result,) = self.call(
            config,
            |e| &e.poll_device_authorization,
            (config, device_code.secret()),
        )?;
        Ok(match result.map_err(CallError::OAuth)? {
            wit::DevicePoll::Granted(token) => DevicePoll::Granted(Token::from(token)),
            wit::DevicePoll::Pending => DevicePoll::Pending,
            wit::DevicePoll::SlowDown => DevicePoll::SlowDown,
            wit::DevicePoll::Denied(e) => DevicePoll::Denied(e),
            wit::DevicePoll::Expired(e) => DevicePoll::Expired(e),
        })
    }

    /// Removes the connection's tokens from the store and revokes them at the provider.
    pub fn revoke_tokens(&mut self, config: &ConnectionConfig) -> Result<Revocation, CallError> {
        let (result,) = self.call(config, |e| &e.revoke_tokens, (config,))?;
        result.map_err(CallError::OAuth)
    }

    /// One call into the component for `config`'s connection: its HTTP may reach only the
    /// origins of the connection's endpoints, and the limits start afresh.
    fn call<E: Export>(
        &mut self,
        config: &ConnectionConfig,
        export: impl FnOnce(&GrantExports) -> &Checked<E>,
        params: E::Params<'_>,
    ) -> Result<E::Results, CallError> {
        self.store.data_mut().begin_call(config);
        self.store.set_epoch_deadline(1);
        let result = export(&self.exports).call(&mut self.store, &self.instance, params);
        self.store.data_mut().end_call();
        match result {
            Ok(results) => Ok(results),
            Err(e) => Err(match e.downcast::<LimitExceeded>() {
                Ok(limit) => CallError::Limit(limit),
                Err(_) if self.store.data().limits.memory_refused => {
                    CallError::Limit(LimitExceeded::Memory)
                }
                Err(e) => CallError::Host(e.into()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{ClientAuth, GrantType, OauthError, Pair};
    use crate::clock::ManualClock;
    use crate::http_client::UreqClient;
    use crate::secret_store::MemoryStore;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The pool hands a freed memory slot to the next instance after resetting only the pages
    /// the last one wrote: what an instance left behind (a token, a secret) must be gone,
    /// whether it was in the initial image, in zeroed memory, or in memory it grew.
    #[test]
    fn a_reused_memory_slot_shows_nothing_of_the_previous_instance() {
        let engine = engine().unwrap();
        let module = wasmtime::Module::new(
            &engine,
            r#"(module
                (memory (export "memory") 1)
                (data (i32.const 4096) "original")
                (func (export "grow") (result i32) (memory.grow (i32.const 1)))
                (func (export "write") (param i32 i64) (i64.store (local.get 0) (local.get 1)))
                (func (export "read") (param i32) (result i64) (i64.load (local.get 0))))"#,
        )
        .unwrap();
        let original = i64::from_le_bytes(*b"original");
        // Zeroed memory below the image, the image, and the grown page.
        let places = [(16, 0), (4096, original), (65536 + 8, 0)];
        for round in 0..3 {
            let mut store = wasmtime::Store::new(&engine, ());
            store.set_epoch_deadline(u64::MAX / 2);
            let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
            let grow = instance
                .get_typed_func::<(), i32>(&mut store, "grow")
                .unwrap();
            let write = instance
                .get_typed_func::<(i32, i64), ()>(&mut store, "write")
                .unwrap();
            let read = instance
                .get_typed_func::<i32, i64>(&mut store, "read")
                .unwrap();
            assert_eq!(grow.call(&mut store, ()).unwrap(), 1, "round {round}");
            for (address, expected) in places {
                let found = read.call(&mut store, address).unwrap();
                assert_eq!(found, expected, "round {round}, address {address}");
                write.call(&mut store, (address, 0x5ec2e7)).unwrap();
            }
        }
    }

    #[test]
    fn token_summary_and_debug_hide_credentials_unless_revealed() {
        let token = Token {
            access_token: "at-sentinel".into(),
            token_type: "Bearer".into(),
            expires_at: Some(1_800_000_000),
            refresh_token: Some("rt-sentinel".into()),
            scope: Some("api".into()),
            id_token: Some("id-sentinel".into()),
            extra_fields: ExtraFields(vec![
                ("instance_url".into(), "https://na1.example.com".into()),
                ("signature".into(), "sig-sentinel".into()),
                ("bot_access_token".into(), "xoxb-sentinel".into()),
            ]),
        };
        for shown in [token.summary(false).to_string(), format!("{token:?}")] {
            assert!(!shown.contains("sentinel"), "{shown}");
            assert!(shown.contains("https://na1.example.com"), "{shown}");
        }
        let revealed = token.summary(true);
        assert_eq!(revealed["access_token"], "at-sentinel");
        assert_eq!(revealed["extra_fields"]["signature"], "sig-sentinel");
        assert_eq!(
            revealed["extra_fields"]["instance_url"],
            "https://na1.example.com"
        );
    }

    fn plugin() -> &'static Plugin {
        static PLUGIN: OnceLock<Plugin> = OnceLock::new();
        PLUGIN.get_or_init(|| Plugin::embedded().expect("the embedded component loads"))
    }

    fn config(token_url: String) -> ConnectionConfig {
        ConnectionConfig {
            client_secret_name: Some("app-secret".into()),
            client_auth: ClientAuth::Basic,
            ..ConnectionConfig::new(GrantType::ClientCredentials, &token_url, "app")
        }
    }

    fn services() -> Services {
        let store = Arc::new(MemoryStore::new());
        SecretStore::set(&*store, "app-secret", "s3cr:t").unwrap();
        Services {
            http: Arc::new(UreqClient::new()),
            secrets: store.clone(),
            tokens: store,
            clock: Arc::new(ManualClock::at_unix(1_700_000_000)),
        }
    }

    #[test]
    fn calls_reach_the_component_and_its_imports() {
        static TOKEN_REQUESTS: AtomicUsize = AtomicUsize::new(0);
        let server = oauth2_test_provider::Scripted::start(|_| {
            TOKEN_REQUESTS.fetch_add(1, Ordering::SeqCst);
            let body = r#"{"access_token":"at-1","token_type":"bearer","expires_in":3600}"#;
            oauth2_test_provider::Answer::new(200, "application/json", body)
        })
        .unwrap();
        let config = config(format!("{}/token", server.base_url()));
        let services = services();

        assert_eq!(
            plugin().validate_config(&services, &config).unwrap(),
            vec![]
        );
        let token = plugin().ensure_token(&services, &config).unwrap();
        assert_eq!(token.access_token, "at-1");
        assert_eq!(token.expires_at, Some(1_700_000_000 + 3600));
        assert!(!format!("{token:?}").contains("at-1"));

        let request = HttpRequest {
            method: "GET".into(),
            url: "http://127.0.0.1:1/api".into(),
            headers: vec![],
            body: vec![],
        };
        let decorated = plugin()
            .decorate_request(&services, &config, &request)
            .unwrap();
        assert!(decorated.headers.contains(&Pair {
            name: "Authorization".into(),
            value: "Bearer at-1".into(),
        }));
        assert_eq!(
            TOKEN_REQUESTS.load(Ordering::SeqCst),
            1,
            "the cached token is reused"
        );
    }

    #[test]
    fn one_instance_serves_several_calls() {
        let mut config = config("https://auth.example.com/token".into());
        config.client_secret_name = Some("absent".into());
        let mut instance = plugin().instance(&services()).unwrap();
        for _ in 0..3 {
            assert_eq!(instance.validate_config(&config).unwrap(), vec![]);
            assert!(matches!(
                instance.ensure_token(&config),
                Err(CallError::OAuth(OauthError::MissingSecret(_)))
            ));
        }
    }

    #[test]
    fn typed_errors_come_back_as_oauth_errors() {
        let mut config = config("https://auth.example.com/token".into());
        config.client_secret_name = Some("absent".into());
        let err = plugin().ensure_token(&services(), &config).unwrap_err();
        assert!(
            matches!(&err, CallError::OAuth(OauthError::MissingSecret(m)) if m.name == "absent"),
            "{err:?}"
        );
    }
}
