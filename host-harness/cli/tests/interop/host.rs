//! The harness used as a library, the way a connector runtime embeds it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use oauth2_host::callback::CallbackListener;
use oauth2_host::config_file;
use oauth2_runtime::{
    CallError, ConnectionConfig, HttpRequest, HttpResponse, MemoryStore, Plugin, SecretStore,
    Services, SystemClock, Token, UreqClient,
};
use serde_json::Value;

use crate::consent::{self, Driver};
use crate::server::{CLIENT_KEYS, PASSWORD, Server, key_pem};

/// How long the library's redirect listener waits for the consent driver.
const CALLBACK_LIMIT: Duration = Duration::from_secs(60);

/// The component, compiled once per test binary.
pub fn plugin() -> &'static Plugin {
    static PLUGIN: OnceLock<Plugin> = OnceLock::new();
    PLUGIN.get_or_init(|| Plugin::embedded().expect("the embedded component loads"))
}

/// A connection file's content as the library's config.
pub fn config(connection: &Value) -> ConnectionConfig {
    config_file::parse(&connection.to_string()).expect("a valid connection")
}

/// Host services against one server: real HTTP, an in-memory store and the system clock (the
/// servers judge expiry by theirs, so the tests wait rather than move a virtual clock).
pub struct Host {
    pub services: Services,
    store: Arc<MemoryStore>,
}

impl Host {
    /// Trusts the server's CA; the store holds each client's secret under its client ID,
    /// Alice's password under `alice-password`, and the client keys ([`CLIENT_KEYS`]).
    pub fn new(server: &Server) -> Self {
        Self::with_http(server, server.http())
    }

    pub fn with_http(server: &Server, http: UreqClient) -> Self {
        let store = Arc::new(MemoryStore::new());
        for (client, secret) in server.secrets() {
            store.set(client, secret).unwrap();
        }
        store.set("alice-password", PASSWORD).unwrap();
        for (name, file) in CLIENT_KEYS {
            store.set(name, &key_pem(file)).unwrap();
        }
        Self {
            services: Services {
                http: Arc::new(http),
                secrets: store.clone(),
                tokens: store.clone(),
                clock: Arc::new(SystemClock),
            },
            store,
        }
    }

    pub fn set_secret(&self, name: &str, value: &str) {
        self.store.set(name, value).unwrap();
    }

    /// Every entry in the store, sorted by name.
    pub fn entries(&self) -> Vec<(String, String)> {
        self.store.entries()
    }

    /// Every value in the store: secrets and tokens alike.
    pub fn values(&self) -> Vec<String> {
        self.store
            .entries()
            .into_iter()
            .map(|(_, value)| value)
            .collect()
    }

    /// The store's `oauth2/token/<connection>` entries, parsed.
    pub fn tokens(&self) -> Vec<Value> {
        token_entries(self.store.entries())
    }

    /// The one stored token entry.
    pub fn token(&self) -> Value {
        only_token(self.tokens())
    }

    /// A GET of `url` decorated by the component (which fetches or refreshes as needed).
    pub fn get(&self, config: &ConnectionConfig, url: &str) -> HttpResponse {
        let decorated = plugin()
            .decorate_request(&self.services, config, &get(url))
            .unwrap_or_else(|e| panic!("decorating GET {url}: {e}"));
        self.send(&decorated)
    }

    pub fn send(&self, request: &HttpRequest) -> HttpResponse {
        self.services
            .http
            .send(request)
            .unwrap_or_else(|e| panic!("{} {}: {e:?}", request.method, request.url))
    }

    /// The authorization-code flow through the library: listen on the redirect URI, begin,
    /// let the cookie-jar driver consent, complete with the redirect it delivers.
    pub fn authorize(&self, server: &Server, config: &ConnectionConfig) {
        if let Err(e) = self.try_authorize(server, config) {
            panic!("completing the authorization: {e}");
        }
    }

    /// As [`Host::authorize`], returning how completing the authorization ended.
    pub fn try_authorize(
        &self,
        server: &Server,
        config: &ConnectionConfig,
    ) -> Result<Token, CallError> {
        let listener = CallbackListener::bind(&server.redirect_uri)
            .expect("the redirect URI's port is free")
            .with_timeout(CALLBACK_LIMIT);
        let start = plugin()
            .begin_authorization(&self.services, config)
            .expect("authorization begins");
        let driver = consent::start(server, Driver::CookieJar, &start.url);
        let redirect = listener
            .wait(start.state.secret())
            .unwrap_or_else(|e| panic!("{e}; consent driver said:\n{}", driver.stderr()));
        let completed = plugin().complete_authorization(&self.services, config, redirect.url());
        redirect.respond_success("authorized");
        driver
            .finish(consent::LIMIT)
            .assert_success("the consent driver");
        completed
    }
}

/// The `oauth2/token/<connection>` entries of a token store's contents, parsed.
pub fn token_entries(entries: impl IntoIterator<Item = (String, String)>) -> Vec<Value> {
    entries
        .into_iter()
        .filter(|(name, _)| name.starts_with("oauth2/token/"))
        .map(|(_, value)| entry_fields(&value))
        .collect()
}

/// The fields of one of the component's store entries: a JSON object per line (a token entry
/// has two, what a connector step reads and then the rest), merged.
pub fn entry_fields(value: &str) -> Value {
    let mut fields = serde_json::Map::new();
    for line in value.lines() {
        match serde_json::from_str(line) {
            Ok(Value::Object(line)) => fields.extend(line),
            other => panic!("a store entry's line is a JSON object: {other:?}"),
        }
    }
    Value::Object(fields)
}

/// The one token entry among `tokens`.
pub fn only_token(tokens: Vec<Value>) -> Value {
    match <[Value; 1]>::try_from(tokens) {
        Ok([token]) => token,
        Err(other) => panic!("expected one stored token, found {}", other.len()),
    }
}

pub fn get(url: &str) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url: url.into(),
        headers: vec![],
        body: vec![],
    }
}

/// The response body as JSON.
pub fn json(response: &HttpResponse) -> Value {
    serde_json::from_slice(&response.body).unwrap_or_else(|e| {
        panic!(
            "HTTP {} with a body that is not JSON ({e}): {}",
            response.status,
            String::from_utf8_lossy(&response.body)
        )
    })
}
