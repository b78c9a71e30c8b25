//! The built component reaches the world only through what the host chooses to give it.

#![cfg(not(target_arch = "wasm32"))]

mod common;

/// Interfaces the component may import: the contract's own, the wall clock and randomness. The
/// component is `no_std`, so none of what Rust's std drags in (stdio, environment, exit), and no
/// filesystem, sockets or wasi:http.
const ALLOWED: &[&str] = &[
    "integration:oauth2/types@",
    "integration:oauth2/http@",
    "integration:oauth2/secrets@",
    "integration:oauth2/token-store@",
    "integration:oauth2/signing@",
    "wasi:clocks/wall-clock@",
    "wasi:random/random@",
];

#[test]
fn component_imports_nothing_beyond_the_contract_a_clock_and_randomness() {
    let imports = common::plugin().imports();
    for interface in ["http", "secrets", "token-store", "signing"] {
        let wanted = format!("integration:oauth2/{interface}@");
        assert!(
            imports.iter().any(|i| i.starts_with(&wanted)),
            "{imports:?}"
        );
    }
    for import in &imports {
        assert!(
            ALLOWED.iter().any(|allowed| import.starts_with(allowed)),
            "the component imports {import}; allowed are {ALLOWED:?}"
        );
    }
}

/// The WIT is the whole contract: the component imports exactly the interfaces its world
/// declares (and the `types` they share), so a host in another language learns every import
/// from `wit/` alone.
#[test]
fn the_component_imports_exactly_what_its_world_declares() {
    let wit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/wit/oauth2.wit"))
        .expect("the contract");
    let package = wit
        .lines()
        .find_map(|line| line.strip_prefix("package "))
        .and_then(|rest| rest.strip_suffix(';'))
        .expect("a package line");
    let (namespace, version) = package.split_once('@').expect("a versioned package");
    let world = wit
        .split_once("world oauth2-plugin {")
        .expect("the world")
        .1;
    let mut declared: Vec<String> = world
        .lines()
        .filter_map(|line| line.trim().strip_prefix("import "))
        .map(|name| name.trim_end_matches(';'))
        .map(|name| match name.contains(':') {
            true => name.to_owned(),
            false => format!("{namespace}/{name}@{version}"),
        })
        .collect();
    declared.push(format!("{namespace}/types@{version}"));
    declared.sort();
    let mut imported = common::plugin().imports();
    imported.sort();
    assert_eq!(imported, declared);
}

/// What a step costs grows with the component; the size it was tuned to is a limit.
#[test]
fn the_component_stays_within_400_kib() {
    let size = oauth2_runtime::plugin::EMBEDDED.len();
    println!("component: {size} bytes");
    assert!(
        size <= 400 << 10,
        "the component is {size} bytes, over 400 KiB"
    );
}

/// A connector step instantiates the component afresh: its linear memory is what each step
/// pays for. The initial memory, and what the hot path grows it to, stay
/// within 1 MiB.
#[test]
fn a_fresh_instance_and_the_hot_path_stay_within_one_mib_of_memory() {
    use oauth2_runtime::{GrantType, HttpRequest};

    let provider = common::start_provider();
    let host = common::Host::new();
    let config = common::config(&provider, GrantType::ClientCredentials);
    let request = HttpRequest {
        method: "GET".into(),
        url: format!("{}/api/me", provider.base_url()),
        headers: vec![],
        body: vec![],
    };
    let fresh = common::plugin().instance(&host.services).unwrap();
    let initial = fresh.peak_memory();
    let mut fetching = common::plugin().instance(&host.services).unwrap();
    fetching.decorate_request(&config, &request).unwrap();
    let mut cached = common::plugin().instance(&host.services).unwrap();
    cached.decorate_request(&config, &request).unwrap();
    println!(
        "linear memory: fresh {initial} B, after a token fetch {} B, after a cached decoration {} B",
        fetching.peak_memory(),
        cached.peak_memory()
    );
    assert!(initial > 0, "the initial memory is counted");
    for (what, bytes) in [
        ("fresh", initial),
        ("fetch", fetching.peak_memory()),
        ("cached", cached.peak_memory()),
    ] {
        assert!(bytes <= 1 << 20, "{what}: {bytes} bytes");
    }
}
