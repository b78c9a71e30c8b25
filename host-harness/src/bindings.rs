//! Rust types and traits generated from `wit/`, the contract the component is built against.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "oauth2-plugin",
    // Lets callers and tests compare configs, requests and errors directly.
    additional_derives: [PartialEq, Eq],
});

pub use exports::integration::oauth2::grant::Guest as Grant;
pub use integration::oauth2::types::{
    AuthorizationStart, ClientAuth, CodeExchange, ConfigProblem, ConnectionConfig, GrantType,
    HttpRequest, HttpResponse, MissingSecret, OauthError, Pair, ProviderError, ResponseProblem,
    Token as WitToken, TokenStep, TransportError,
};
