//! A host embedding the component: load once, then one call per connector step.
//!
//! `cargo run -p host-harness --example embed -- CONFIG.json URL` decorates a GET of URL with the
//! connection's token, using the same store as `oauth2-host` (`.oauth2-host/store.json`).

use std::sync::Arc;

use host_harness::errors::Explain;
use host_harness::{
    FileStore, HttpRequest, Plugin, Services, SystemClock, UreqClient, config_file,
};

fn main() -> anyhow::Result<()> {
    let [config_path, url] = std::env::args()
        .skip(1)
        .collect::<Vec<_>>()
        .try_into()
        .map_err(|_| anyhow::anyhow!("usage: embed CONFIG.json URL"))?;

    // Compiling the component is the expensive part: do it once and share the Plugin.
    let plugin = Plugin::embedded()?;
    // The user's secrets and the component's token state, in one file with two namespaces.
    let store = Arc::new(FileStore::open(".oauth2-host/store.json").map_err(anyhow::Error::msg)?);
    let services = Services {
        http: Arc::new(UreqClient::new()),
        secrets: store.clone(),
        tokens: store,
        clock: Arc::new(SystemClock),
    };
    let config = config_file::load(config_path.as_ref())?;

    // Each call runs in a fresh, sandboxed instance; the token lives in the token store.
    let request = HttpRequest {
        method: "GET".into(),
        url,
        headers: vec![],
        body: vec![],
    };
    let decorated = plugin.decorate_request(&services, &config, &request)?;
    let response = services
        .http
        .send(&decorated)
        .map_err(|e| anyhow::anyhow!("{}", Explain(&e)))?;
    println!("HTTP {}", response.status);
    Ok(())
}
