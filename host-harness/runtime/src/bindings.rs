//! Rust types and traits generated from `wit/`, the contract the component is built against.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "oauth2-plugin",
    // Lets callers and tests compare configs, requests and errors directly.
    additional_derives: [PartialEq, Eq],
    // The world's WASI imports are wasmtime-wasi's own, at the version vendored in `wit/deps`.
    with: {
        "wasi:clocks/wall-clock": wasmtime_wasi::p2::bindings::clocks::wall_clock,
        "wasi:random/random": wasmtime_wasi::p2::bindings::random::random,
    },
});

pub use integration::oauth2::types::{
    AuthorizationStart, ClientAuth, CodeExchange, ConfigProblem, ConnectionConfig,
    DeviceAuthorization, DevicePoll, GrantType, HttpRequest, HttpResponse, IssuerMismatch,
    MissingSecret, OauthError, Pair, ProviderError, ResponseFormat, ResponseProblem, Revocation,
    RevocationOutcome, ScopeSeparator, SigningAlgorithm, SigningError, SigningKey, StoreError,
    TimeUnit, Token as WitToken, TokenStep, TransportError,
};

impl Default for ResponseFormat {
    /// The RFC 6749 reading: top-level fields, seconds, space-separated scopes.
    fn default() -> Self {
        ResponseFormat {
            token_path: String::new(),
            expires_in_unit: TimeUnit::Seconds,
            scope_separator: ScopeSeparator::Space,
        }
    }
}

impl ConnectionConfig {
    /// A connection with only what every grant needs; the other keys empty or at their
    /// defaults (`client_auth: auto`), to be filled with struct update syntax.
    pub fn new(grant_type: GrantType, token_url: &str, client_id: &str) -> Self {
        ConnectionConfig {
            grant_type,
            token_url: token_url.to_owned(),
            authorization_url: None,
            redirect_uri: None,
            client_id: client_id.to_owned(),
            client_secret_name: None,
            username: None,
            password_name: None,
            header_prefix: None,
            audience: None,
            resource_indicators: Vec::new(),
            scope: None,
            client_auth: ClientAuth::Auto,
            extra_params: Vec::new(),
            authorization_params: Vec::new(),
            response_format: ResponseFormat::default(),
            api_origins: Vec::new(),
            signing_key: None,
            assertion_audience: None,
            subject: None,
            device_authorization_url: None,
            revocation_url: None,
            issuer: None,
        }
    }
}
