//! Fixtures shared by the integration tests: the component loaded once, the embedded provider
//! on a loopback port, and host services with a clock the tests move.

#![allow(dead_code)] // each test binary uses its own part of the fixtures

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use oauth2_runtime::{
    ClientAuth, ConnectionConfig, GrantType, HttpRequest, ManualClock, MemoryStore, Plugin,
    SecretStore, Services, UreqClient,
};
use oauth2_test_provider::{ClientConfig, Provider, ProviderConfig};

pub const CLIENT_ID: &str = "demo-client";
/// Every character that needs encoding in Basic credentials or a form body.
pub const CLIENT_SECRET: &str = "s3cr:t/+&%= ~";
pub const USERNAME: &str = "alice";
pub const PASSWORD: &str = "wonder land&=";
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";
pub const START: u64 = 1_800_000_000;

/// The component, compiled once per test binary.
pub fn plugin() -> &'static Plugin {
    static PLUGIN: OnceLock<Plugin> = OnceLock::new();
    PLUGIN.get_or_init(|| Plugin::embedded().expect("the embedded component loads"))
}

/// A provider whose client has [`CLIENT_SECRET`] and whose user has [`PASSWORD`].
pub fn provider_config() -> ProviderConfig {
    let mut config = ProviderConfig::demo(REDIRECT_URI);
    config.clients = vec![{
        let mut client = ClientConfig::confidential(CLIENT_ID, CLIENT_SECRET);
        client.redirect_uris.push(REDIRECT_URI.to_owned());
        client
    }];
    config.users[0].password = PASSWORD.to_owned();
    config
}

pub fn start_provider() -> Provider {
    Provider::start(provider_config()).expect("the provider starts")
}

/// Host services: real HTTP, an in-memory store holding the client secret and password, and a
/// clock the test moves.
pub struct Host {
    pub services: Services,
    pub clock: Arc<ManualClock>,
    pub store: Arc<MemoryStore>,
}

impl Host {
    pub fn new() -> Self {
        let clock = Arc::new(ManualClock::at_unix(START));
        let store = Arc::new(MemoryStore::with_clock(clock.clone()));
        store.set("client-secret", CLIENT_SECRET).unwrap();
        store.set("alice-password", PASSWORD).unwrap();
        Host {
            services: Services {
                http: Arc::new(UreqClient::new()),
                secrets: store.clone(),
                tokens: store.clone(),
                clock: clock.clone(),
            },
            clock,
            store,
        }
    }

    pub fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    /// Every entry of the store, to prove a failure changed nothing.
    pub fn snapshot(&self) -> Vec<(String, String)> {
        self.store.entries()
    }
}

pub fn config(provider: &Provider, grant_type: GrantType) -> ConnectionConfig {
    ConnectionConfig {
        authorization_url: Some(provider.authorization_url()),
        redirect_uri: Some(REDIRECT_URI.to_owned()),
        client_secret_name: Some("client-secret".to_owned()),
        username: Some(USERNAME.to_owned()),
        password_name: Some("alice-password".to_owned()),
        client_auth: ClientAuth::Basic,
        ..ConnectionConfig::new(grant_type, &provider.token_url(), CLIENT_ID)
    }
}

/// A GET of the provider's protected API, decorated by the component.
pub fn call_api(provider: &Provider, host: &Host, config: &ConnectionConfig) -> (u16, String) {
    let request = HttpRequest {
        method: "GET".into(),
        url: format!("{}/api/me", provider.base_url()),
        headers: vec![],
        body: vec![],
    };
    let decorated = plugin()
        .decorate_request(&host.services, config, &request)
        .expect("decoration succeeds");
    let response = host
        .services
        .http
        .send(&decorated)
        .expect("the API answers");
    (
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    )
}

/// Runs the consent step as a browser would: follows the authorization URL to the provider's
/// redirect and returns the URL it redirects to.
pub fn consent(host: &Host, authorization_url: &str) -> String {
    let response = host
        .services
        .http
        .send(&HttpRequest {
            method: "GET".into(),
            url: authorization_url.to_owned(),
            headers: vec![],
            body: vec![],
        })
        .expect("the authorization endpoint answers");
    assert_eq!(response.status, 302, "the provider redirects back");
    response
        .headers
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case("location"))
        .map(|p| p.value.clone())
        .expect("a Location header")
}

/// An authorization code connection with a stored token, obtained through the real flow.
pub fn authorize(provider: &Provider, host: &Host, config: &ConnectionConfig) {
    let start = plugin()
        .begin_authorization(&host.services, config)
        .expect("authorization begins");
    let redirect = consent(host, &start.url);
    plugin()
        .complete_authorization(&host.services, config, &redirect)
        .expect("the code is exchanged");
    assert_eq!(provider.token_request_count("authorization_code"), 1);
}
