//! wasmtime host for the oauth2-plugin component: the sandbox, the host services it imports
//! (HTTP, secrets, clock), and the pieces of the `oauth2-host` command.

pub mod api_call;
pub mod bindings;
pub mod callback;
pub mod clock;
mod compiled_cache;
pub mod config_file;
pub mod demo;
pub mod errors;
mod exports;
pub mod http_client;
pub mod message;
pub mod plugin;
pub mod presets;
pub mod provider;
mod sandbox;
pub mod secret_store;

pub use bindings::{
    ClientAuth, ConfigProblem, ConnectionConfig, GrantType, OauthError, Pair, ResponseFormat,
    ScopeSeparator, TimeUnit, TokenStep, TransportError,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use errors::CallError;
pub use http_client::{HttpClient, UreqClient};
pub use message::{HttpRequest, HttpResponse};
pub use plugin::{Instance, Plugin, Services, Token};
pub use secret_store::{FileStore, MemoryStore, SecretStore};
