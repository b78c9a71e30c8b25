//! What a component instance can reach: the contract's imports and a minimal slice of WASI.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use url::{Origin, Url};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, StoreContextMut, UpdateDeadline};
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::p2::bindings::clocks::wall_clock::{self, Datetime};
use wasmtime_wasi::p2::bindings::{cli, clocks, random, sync};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::integration::oauth2::{http, secrets, signing, token_store, types};
use crate::bindings::{
    ConnectionConfig, HttpRequest, HttpResponse, Oauth2Plugin, SigningAlgorithm, SigningError,
    StoreError, TransportError,
};
use crate::message;
use crate::plugin::Services;
use crate::token_store::LockGuard;

/// Linear memory one instance may grow to; the grant logic needs a few MiB.
pub(crate) const MEMORY_LIMIT: usize = 64 << 20;

/// Table elements one instance may grow to; the component needs a few hundred.
const TABLE_LIMIT: usize = 10_000;

/// Computation one call may spend inside the component, time in the host's imports (HTTP, the
/// secret store) excluded: the grant logic needs microseconds, a 1 MiB response milliseconds.
pub const GUEST_TIME_LIMIT: Duration = Duration::from_secs(2);

/// How often the engine's epoch advances, so how late a runaway guest is stopped.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The longest a call waits for a token lock another holder has, before `lock-timeout`.
pub const LOCK_WAIT: Duration = crate::file_store::LOCK_WAIT;

/// Headers that frame or route a request, and with them every `Proxy-` header: the HTTP client
/// sets `Host` and `Content-Length` itself, and a component choosing them could reach another
/// site served at a permitted address or desynchronise a kept-alive connection.
const HOST_ONLY_HEADERS: [&str; 9] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "expect",
    "keep-alive",
    "trailer",
];

/// What one call may do to the token store. The component writes an entry or two and holds a
/// lock or two per call; a component that does more is stopped before it fills the store.
const MAX_KEY_BYTES: usize = 256;
const MAX_VALUE_BYTES: usize = 256 << 10;
const MAX_WRITES_PER_CALL: usize = 16;
const MAX_LOCKS_PER_CALL: usize = 4;

/// A limit the host enforced by stopping the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitExceeded {
    /// The component computed for longer than [`GUEST_TIME_LIMIT`].
    Time,
    /// The component asked for more memory than [`MEMORY_LIMIT`] allows.
    Memory,
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Time => write!(
                f,
                "the component ran for more than {} s of its own computation and was stopped",
                GUEST_TIME_LIMIT.as_secs()
            ),
            Self::Memory => write!(
                f,
                "the component asked for more than {} MiB of memory and was stopped",
                MEMORY_LIMIT >> 20
            ),
        }
    }
}

impl std::error::Error for LimitExceeded {}

/// The data of one call's `Store`.
pub(crate) struct HostState {
    services: Services,
    /// What the rest of WASI needs, built on first use: only a component built with Rust's std
    /// (which drags in stdio, environment and exit) uses it, and ours does not.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    pub(crate) limits: Limits,
    /// The connection's token URL, set for each call: `http.send` reaches only its origin, and
    /// those of the device authorization and revocation endpoints when configured (kept in
    /// `endpoints`). Parsed only when the component sends, which most calls (a cached token)
    /// never do.
    token_url: String,
    endpoints: Vec<String>,
    /// When the current call began, and how much of it was spent in the host's imports.
    call_started: Instant,
    in_host: Duration,
    /// The token locks the current call holds, released at the latest when it ends.
    held: Vec<(String, LockGuard)>,
    /// Token store writes of the current call.
    writes: usize,
}

impl HostState {
    pub(crate) fn new(services: &Services) -> Self {
        Self {
            services: services.clone(),
            wasi: None,
            table: ResourceTable::new(),
            limits: Limits::default(),
            token_url: String::new(),
            endpoints: Vec::new(),
            call_started: Instant::now(),
            in_host: Duration::ZERO,
            held: Vec::new(),
            writes: 0,
        }
    }

    /// Prepares for a call made for `config`'s connection.
    pub(crate) fn begin_call(&mut self, config: &ConnectionConfig) {
        config.token_url.trim().clone_into(&mut self.token_url);
        self.endpoints.clear();
        for url in [&config.device_authorization_url, &config.revocation_url]
            .into_iter()
            .flatten()
        {
            self.endpoints.push(url.trim().to_owned());
        }
        self.call_started = Instant::now();
        self.in_host = Duration::ZERO;
        self.end_call();
    }

    /// Releases whatever the call left held, whether it returned, failed or trapped.
    pub(crate) fn end_call(&mut self) {
        self.held.clear();
        self.writes = 0;
    }

    /// Counts a write of the current call, refusing one past the limits.
    fn write_allowed(&mut self, key: &str, value_len: usize) -> Result<(), StoreError> {
        if key.len() > MAX_KEY_BYTES || value_len > MAX_VALUE_BYTES {
            return Err(StoreError::Unavailable(format!(
                "the component wrote an entry over the host's limits ({MAX_KEY_BYTES} B keys, \
                 {} KiB values)",
                MAX_VALUE_BYTES >> 10
            )));
        }
        if self.writes == MAX_WRITES_PER_CALL {
            return Err(StoreError::Unavailable(format!(
                "the component wrote more than {MAX_WRITES_PER_CALL} entries in one call"
            )));
        }
        self.writes += 1;
        Ok(())
    }

    /// Runs `f` as time spent in the host, not counted against the guest's limit.
    fn in_host<R>(&mut self, f: impl FnOnce(&Services) -> R) -> R {
        let started = Instant::now();
        let result = f(&self.services);
        self.in_host += started.elapsed();
        result
    }

    /// The deadline check, run each time the epoch passes the store's deadline: the call goes
    /// on while its own computation stays under the limit.
    pub(crate) fn on_epoch_deadline(
        store: StoreContextMut<'_, HostState>,
    ) -> wasmtime::Result<UpdateDeadline> {
        let state = store.data();
        let computed = state.call_started.elapsed().saturating_sub(state.in_host);
        if computed >= GUEST_TIME_LIMIT {
            return Err(LimitExceeded::Time.into());
        }
        Ok(UpdateDeadline::Continue(1))
    }
}

/// The memory and table caps of one instance, remembering whether a request was refused so the
/// resulting trap can be named.
#[derive(Default)]
pub(crate) struct Limits {
    pub(crate) memory_refused: bool,
    /// The largest linear memory granted, in bytes.
    pub(crate) peak_memory: usize,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= MEMORY_LIMIT;
        self.memory_refused |= !allowed;
        if allowed {
            self.peak_memory = self.peak_memory.max(desired);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_LIMIT)
    }
}

/// A linker holding exactly what the component may import. Anything else it imports (files,
/// sockets, wasi:http) is missing here, so instantiation fails instead of granting it.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    let l = &mut linker;
    // The world: the contract's interfaces, the wall clock and randomness, served without a
    // `WasiCtx`.
    Oauth2Plugin::add_to_linker::<_, HasSelf<_>>(l, |state| state)?;

    // What Rust's std asks for besides, for components built with it.
    clocks::monotonic_clock::add_to_linker::<_, WasiClocks>(l, HostState::clocks)?;
    random::insecure::add_to_linker::<_, WasiRandom>(l, random_ctx)?;
    random::insecure_seed::add_to_linker::<_, WasiRandom>(l, random_ctx)?;

    // Streams are how Rust's std writes to stderr, which goes nowhere.
    sync::io::error::add_to_linker::<_, HasSelf<ResourceTable>>(l, table)?;
    sync::io::poll::add_to_linker::<_, HasSelf<ResourceTable>>(l, table)?;
    sync::io::streams::add_to_linker::<_, HasSelf<ResourceTable>>(l, table)?;

    // Rust's std asks for these even when the program never reads them; they are empty.
    cli::environment::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::exit::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::stdin::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::stdout::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::stderr::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::terminal_input::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::terminal_output::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, HostState::cli)?;
    Ok(linker)
}

fn random_ctx(state: &mut HostState) -> &mut wasmtime_wasi::random::WasiRandomCtx {
    wasi_ctx(&mut state.wasi).random()
}

fn table(state: &mut HostState) -> &mut ResourceTable {
    &mut state.table
}

fn wasi_ctx(wasi: &mut Option<WasiCtx>) -> &mut WasiCtx {
    // No environment, arguments, preopens or stdio: what a guest writes is hostile text (escape
    // sequences, the secrets it was given) and the host's streams are the operator's terminal
    // and logs. A guest's panic reaches the caller as a trap; its message is lost.
    wasi.get_or_insert_with(|| WasiCtx::builder().build())
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: wasi_ctx(&mut self.wasi),
            table: &mut self.table,
        }
    }
}

impl wall_clock::Host for HostState {
    /// The services' clock, so tests move a virtual clock instead of sleeping.
    fn now(&mut self) -> wasmtime::Result<Datetime> {
        // A clock before 1970 is a broken clock; the epoch is the least surprising answer.
        let since_epoch = self
            .services
            .clock
            .now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Datetime {
            seconds: since_epoch.as_secs(),
            nanoseconds: since_epoch.subsec_nanos(),
        })
    }

    fn resolution(&mut self) -> wasmtime::Result<Datetime> {
        Ok(Datetime {
            seconds: 0,
            nanoseconds: 1,
        })
    }
}

impl random::random::Host for HostState {
    /// The operating system's generator: PKCE verifiers and `state` values must be unguessable.
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        let Some(len) = usize::try_from(len).ok().filter(|&len| len <= MEMORY_LIMIT) else {
            wasmtime::bail!("the component asked for {len} random bytes, more than its memory");
        };
        let mut bytes = vec![0; len];
        getrandom::fill(&mut bytes)?;
        Ok(bytes)
    }

    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        Ok(getrandom::u64()?)
    }
}

impl types::Host for HostState {}

impl http::Host for HostState {
    /// Sends only to the origins of the connection's token, device authorization and revocation
    /// URLs: a component, however written, cannot use the host to reach anything else (no SSRF
    /// through a plugin).
    fn send(&mut self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        let origin = Url::parse(&request.url).map(|url| url.origin());
        let permitted: Vec<Origin> = std::iter::once(&self.token_url)
            .chain(&self.endpoints)
            .filter_map(|url| Url::parse(url).ok().map(|url| url.origin()))
            .collect();
        let allowed = origin
            .as_ref()
            .is_ok_and(|origin| origin.is_tuple() && permitted.contains(origin));
        if !allowed {
            let permitted: Vec<String> =
                permitted.iter().map(Origin::ascii_serialization).collect();
            let asked = origin.map_or_else(
                |_| "an unparsable URL".to_owned(),
                |o| o.ascii_serialization(),
            );
            return Err(TransportError::ForbiddenDestination(format!(
                "the component may reach only the origins of the connection's token, device \
                 authorization and revocation endpoints ({}), not {asked}",
                if permitted.is_empty() {
                    "none".to_owned()
                } else {
                    permitted.join(", ")
                }
            )));
        }
        if let Some(header) = request.headers.iter().find(|header| {
            let name = header.name.to_ascii_lowercase();
            name.starts_with("proxy-") || HOST_ONLY_HEADERS.contains(&name.as_str())
        }) {
            return Err(TransportError::InvalidRequest(format!(
                "the {} header is the host's to set",
                header.name
            )));
        }
        let request = message::HttpRequest::from(request);
        self.in_host(|services| services.http.send(&request))
            .map(HttpResponse::from)
    }
}

impl secrets::Host for HostState {
    /// A secret, unless it holds a private key: keys are used through `signing` and never
    /// enter the component, whatever configuration names them.
    fn get(&mut self, name: String) -> Result<Option<String>, String> {
        let value = self.in_host(|services| services.secrets.get(&name))?;
        if value
            .as_deref()
            .is_some_and(crate::signing::holds_private_key)
        {
            return Err(format!(
                "the secret {name:?} holds a private key, which the component may not read: \
                 name it as private_key, and the host signs with it"
            ));
        }
        Ok(value)
    }
}

impl signing::Host for HostState {
    fn describe_key(
        &mut self,
        key_name: String,
        algorithm: SigningAlgorithm,
    ) -> Result<signing::KeyDescription, SigningError> {
        self.in_host(|services| services.secrets.describe_key(&key_name, algorithm))
    }

    fn sign(
        &mut self,
        key_name: String,
        algorithm: SigningAlgorithm,
        data: Vec<u8>,
    ) -> Result<Vec<u8>, SigningError> {
        self.in_host(|services| services.secrets.sign(&key_name, algorithm, &data))
    }
}

impl token_store::Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<String>, StoreError> {
        self.in_host(|services| services.tokens.get(&key))
    }

    fn set(
        &mut self,
        key: String,
        value: String,
        ttl_seconds: Option<u64>,
    ) -> Result<(), StoreError> {
        self.write_allowed(&key, value.len())?;
        let ttl = ttl_seconds.map(Duration::from_secs);
        self.in_host(|services| services.tokens.set(&key, &value, ttl))
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<String>,
        value: Option<String>,
        ttl_seconds: Option<u64>,
    ) -> Result<bool, StoreError> {
        self.write_allowed(&key, value.as_ref().map_or(0, String::len))?;
        let ttl = ttl_seconds.map(Duration::from_secs);
        self.in_host(|services| {
            services
                .tokens
                .compare_and_swap(&key, expected.as_deref(), value.as_deref(), ttl)
        })
    }

    fn lock(&mut self, key: String) -> Result<(), StoreError> {
        if self.held.iter().any(|(held, _)| *held == key) {
            return Err(StoreError::Unavailable(
                "the component asked for a lock it already holds".into(),
            ));
        }
        if self.held.len() >= MAX_LOCKS_PER_CALL || key.len() > MAX_KEY_BYTES {
            return Err(StoreError::Unavailable(format!(
                "the component asked for more than {MAX_LOCKS_PER_CALL} locks, or a name over \
                 {MAX_KEY_BYTES} B"
            )));
        }
        let guard = self.in_host(|services| services.tokens.lock(&key, LOCK_WAIT))?;
        self.held.push((key, guard));
        Ok(())
    }

    fn unlock(&mut self, key: String) {
        self.held.retain(|(held, _)| *held != key);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{ManualClock, MemoryStore, UreqClient};

    fn state(clock: Arc<ManualClock>) -> HostState {
        let store = Arc::new(MemoryStore::new());
        HostState::new(&Services {
            http: Arc::new(UreqClient::new()),
            secrets: store.clone(),
            tokens: store,
            clock,
        })
    }

    #[test]
    fn the_guest_wall_clock_is_the_services_clock() {
        let clock = Arc::new(ManualClock::at_unix(1_700_000_000));
        let mut state = state(Arc::clone(&clock));
        let now = wall_clock::Host::now(&mut state).unwrap();
        assert_eq!((now.seconds, now.nanoseconds), (1_700_000_000, 0));
        clock.advance(Duration::from_millis(2_500));
        let now = wall_clock::Host::now(&mut state).unwrap();
        assert_eq!((now.seconds, now.nanoseconds), (1_700_000_002, 500_000_000));
    }

    #[test]
    fn guest_randomness_is_bounded_by_its_memory_and_varies() {
        let mut state = state(Arc::new(ManualClock::at_unix(0)));
        let bytes = random::random::Host::get_random_bytes(&mut state, 32).unwrap();
        let again = random::random::Host::get_random_bytes(&mut state, 32).unwrap();
        assert_eq!(bytes.len(), 32);
        assert_ne!(bytes, again);
        let u64s = [(); 4].map(|()| random::random::Host::get_random_u64(&mut state).unwrap());
        assert!(u64s.windows(2).any(|w| w[0] != w[1]), "{u64s:?}");

        for len in [MEMORY_LIMIT as u64 + 1, u64::MAX] {
            let refused = random::random::Host::get_random_bytes(&mut state, len).unwrap_err();
            assert!(refused.to_string().contains("random bytes"), "{refused:#}");
        }
    }

    #[test]
    fn the_wasi_context_is_built_only_when_a_guest_needs_it() {
        let mut state = state(Arc::new(ManualClock::at_unix(0)));
        wall_clock::Host::now(&mut state).unwrap();
        random::random::Host::get_random_u64(&mut state).unwrap();
        assert!(state.wasi.is_none());
        random_ctx(&mut state);
        assert!(state.wasi.is_some());
    }
}
