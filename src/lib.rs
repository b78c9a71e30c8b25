//! OAuth 2.0 grant logic (client credentials, password, authorization code with PKCE, JWT
//! bearer, device code; client assertions; revocation) for a connector runtime, built as a
//! WebAssembly component.
//!
//! Everything but [`glue`] is plain Rust without I/O: the host's HTTP, secrets, token store,
//! clock and randomness reach the logic through [`lifecycle::Host`], so the same code is
//! unit-tested natively and exported over the WIT contract in `wit/` when compiled for
//! `wasm32-wasip2`.
//!
//! The component is `no_std` with `alloc`: std would link wasi-libc's stdio, environment and
//! exit into it, costing size and instantiation time and widening what the host must provide.
//! Its imports are the contract's `http`, `secrets`, `token-store` and `signing`, a wall clock
//! and randomness. Every other build (unit tests, also on `wasm32-wasip2`; the host's rlib) keeps
//! std.

#![cfg_attr(all(target_arch = "wasm32", not(test)), no_std)]

extern crate alloc;

pub mod authorization_url;
pub mod callback;
pub mod config;
pub mod device;
pub mod error;
pub mod extra_fields;
pub mod hints;
pub mod http;
pub mod jwt;
pub mod lifecycle;
pub mod pkce;
pub mod provider_text;
pub mod revocation;
pub mod secret;
pub mod token;
pub mod token_cache;
pub mod token_request;
pub mod token_response;

/// The part of std's prelude the modules use, taken from `alloc`.
mod prelude {
    pub(crate) use alloc::borrow::ToOwned;
    pub(crate) use alloc::format;
    pub(crate) use alloc::string::{String, ToString};
    pub(crate) use alloc::vec;
    pub(crate) use alloc::vec::Vec;
}

#[cfg(all(target_arch = "wasm32", not(test)))]
mod glue;
#[cfg(all(target_arch = "wasm32", not(test)))]
mod runtime;
