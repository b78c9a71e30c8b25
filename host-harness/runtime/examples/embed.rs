//! A minimal host embedding the component: one connection, one decorated API call.
//!
//! `CLIENT_SECRET=... cargo run -p oauth2-runtime --example embed -- TOKEN_URL CLIENT_ID API_URL`
//! fetches a client-credentials token from TOKEN_URL and calls API_URL with it. The tests run
//! [`run`] against the embedded test provider, so this example is known to work.

use std::sync::Arc;

use oauth2_runtime::api_call::{self, Outcome};
use oauth2_runtime::{
    ConnectionConfig, GrantType, HttpRequest, MemoryStore, Plugin, SecretStore, Services,
    SystemClock, UreqClient,
};

/// Gets a token for the client at `token_url` and calls `api_url` with it.
pub fn run(
    token_url: &str,
    client_id: &str,
    client_secret: &str,
    api_url: &str,
) -> anyhow::Result<Outcome> {
    // Compiling the component is the expensive part: do it once per process and share the
    // Plugin (it is Clone + Send + Sync).
    let plugin = Plugin::embedded()?;

    // The user's secrets, which the connection names, and the component's token state. One
    // in-memory store serves both here; a platform gives its secret manager and a shared token
    // store (every worker serving the connection must share the same one).
    let store = Arc::new(MemoryStore::new());
    store
        .set("client-secret", client_secret)
        .map_err(anyhow::Error::msg)?;
    let services = Services {
        http: Arc::new(UreqClient::new()),
        secrets: store.clone(),
        tokens: store,
        clock: Arc::new(SystemClock),
    };

    // The connection as the user filled in the form; secrets by name, never by value.
    let config = ConnectionConfig {
        client_secret_name: Some("client-secret".into()),
        ..ConnectionConfig::new(GrantType::ClientCredentials, token_url, client_id)
    };

    // One connector step: the request is decorated in a fresh sandboxed instance (the token is
    // fetched, cached, refreshed as needed) and sent; a 401 is retried once with a new token.
    let request = HttpRequest {
        method: "GET".into(),
        url: api_url.into(),
        headers: vec![],
        body: vec![],
    };
    Ok(api_call::call(&plugin, &services, &config, &request)?)
}

#[allow(dead_code)] // the tests include this file for `run` and call no `main`
fn main() -> anyhow::Result<()> {
    let [token_url, client_id, api_url] =
        std::env::args()
            .skip(1)
            .collect::<Vec<_>>()
            .try_into()
            .map_err(|_| anyhow::anyhow!("usage: embed TOKEN_URL CLIENT_ID API_URL"))?;
    let client_secret = std::env::var("CLIENT_SECRET")
        .map_err(|_| anyhow::anyhow!("set CLIENT_SECRET to the client secret"))?;
    let outcome = run(&token_url, &client_id, &client_secret, &api_url)?;
    println!("HTTP {}", outcome.response.status);
    Ok(())
}
