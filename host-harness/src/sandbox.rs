//! What a component instance can reach: the contract's imports and a minimal slice of WASI.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::p2::bindings::{cli, clocks, random, sync};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::bindings::integration::oauth2::{http, secrets, types};
use crate::bindings::{HttpRequest, HttpResponse, Oauth2Plugin, TransportError};
use crate::clock::Clock;
use crate::plugin::Services;

/// Linear memory one instance may grow to; the grant logic needs a few MiB.
pub(crate) const MEMORY_LIMIT: usize = 64 << 20;

/// The data of one call's `Store`.
pub(crate) struct HostState {
    services: Services,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
}

impl HostState {
    pub(crate) fn new(services: &Services) -> Self {
        // No environment, arguments, preopens or stdin/stdout: only stderr, so a guest
        // panic message reaches the operator.
        let wasi = WasiCtx::builder()
            .inherit_stderr()
            .wall_clock(WallClock(Arc::clone(&services.clock)))
            .build();
        Self {
            services: services.clone(),
            wasi,
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new().memory_size(MEMORY_LIMIT).build(),
        }
    }
}

/// A linker holding exactly what the component may import. Anything else it imports (files,
/// sockets, wasi:http) is missing here, so instantiation fails instead of granting it.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    let l = &mut linker;
    Oauth2Plugin::add_to_linker::<_, HasSelf<_>>(l, |state| state)?;

    clocks::wall_clock::add_to_linker::<_, WasiClocks>(l, HostState::clocks)?;
    clocks::monotonic_clock::add_to_linker::<_, WasiClocks>(l, HostState::clocks)?;

    random::random::add_to_linker::<_, WasiRandom>(l, random_ctx)?;
    random::insecure::add_to_linker::<_, WasiRandom>(l, random_ctx)?;
    random::insecure_seed::add_to_linker::<_, WasiRandom>(l, random_ctx)?;

    // Streams are how std writes to stderr.
    sync::io::error::add_to_linker::<_, HasSelf<ResourceTable>>(l, table)?;
    sync::io::poll::add_to_linker::<_, HasSelf<ResourceTable>>(l, table)?;
    sync::io::streams::add_to_linker::<_, HasSelf<ResourceTable>>(l, table)?;

    // std's runtime asks for these even when the program never reads them; they are empty.
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
    state.wasi.random()
}

fn table(state: &mut HostState) -> &mut ResourceTable {
    &mut state.table
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl http::Host for HostState {
    fn send(&mut self, request: HttpRequest) -> Result<HttpResponse, TransportError> {
        self.services.http.send(&request)
    }
}

impl secrets::Host for HostState {
    fn get(&mut self, name: String) -> Result<Option<String>, String> {
        self.services.secrets.get(&name)
    }

    fn set(&mut self, name: String, value: String) -> Result<(), String> {
        self.services.secrets.set(&name, &value)
    }

    fn remove(&mut self, name: String) -> Result<(), String> {
        self.services.secrets.remove(&name)
    }
}

/// Presents a [`Clock`] as the guest's `wasi:clocks/wall-clock`.
struct WallClock(Arc<dyn Clock>);

impl HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        // A clock before 1970 is a broken clock; the epoch is the least surprising answer.
        self.0
            .now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
    }
}
