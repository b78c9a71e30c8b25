//! Embeds the oauth2-plugin component in a Rust host: the wasmtime sandbox, the host services it
//! imports (HTTP, secrets, token store, signing, clock), and the calls a connector makes.

pub mod api_call;
pub mod bindings;
pub mod clock;
mod compiled_cache;
pub mod errors;
mod exports;
pub mod file_store;
pub mod http_client;
pub mod message;
pub mod plugin;
#[cfg(feature = "redis")]
pub mod redis_store;
mod sandbox;
#[cfg(feature = "redis")]
pub mod sealing;
pub mod secret_store;
pub mod signing;
pub mod token_store;

pub use bindings::integration::oauth2::signing::KeyDescription;
pub use bindings::{
    ClientAuth, ConfigProblem, ConnectionConfig, GrantType, OauthError, Pair, ProviderError,
    ResponseFormat, Revocation, RevocationOutcome, ScopeSeparator, SigningAlgorithm, SigningError,
    SigningKey, StoreError, TimeUnit, TokenStep, TransportError,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use errors::CallError;
pub use file_store::FileStore;
pub use http_client::{HttpClient, UreqClient};
pub use message::{Headers, HttpRequest, HttpResponse};
pub use plugin::{
    AuthorizationStart, DeviceAuthorization, DevicePoll, EMBEDDED_SHA256, Instance, Plugin,
    Services, Token,
};
#[cfg(feature = "redis")]
pub use redis_store::RedisStore;
#[cfg(feature = "redis")]
pub use sealing::SealingKeys;
pub use secret_store::{MemoryStore, SecretStore};
pub use token_store::TokenStore;
