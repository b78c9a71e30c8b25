//! OAuth 2.0 grant logic (client credentials, password, authorization code with PKCE) for a
//! connector runtime, built as a WebAssembly component.
//!
//! Everything but [`glue`] is plain Rust without I/O: the host's HTTP, secret store and clock
//! reach the logic through [`lifecycle::Host`], so the same code is unit-tested natively and
//! exported over the WIT contract in `wit/` when compiled for `wasm32-wasip2`.

pub mod authorization_url;
pub mod callback;
pub mod config;
pub mod error;
pub mod hints;
pub mod http;
pub mod lifecycle;
pub mod pkce;
pub mod token;
pub mod token_cache;
pub mod token_request;
pub mod token_response;

#[cfg(target_arch = "wasm32")]
mod glue;
