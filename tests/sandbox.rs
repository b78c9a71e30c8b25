//! The built component reaches the world only through what the host chooses to give it.

#![cfg(not(target_arch = "wasm32"))]

mod common;

/// Interfaces the component may import: the contract's own, and the WASI clocks, random,
/// stdio and streams that Rust's std needs. No filesystem, sockets or wasi:http.
const ALLOWED: &[&str] = &[
    "integration:oauth2/types@",
    "integration:oauth2/http@",
    "integration:oauth2/secrets@",
    "wasi:clocks/wall-clock@",
    "wasi:clocks/monotonic-clock@",
    "wasi:random/random@",
    "wasi:random/insecure@",
    "wasi:random/insecure-seed@",
    "wasi:io/error@",
    "wasi:io/poll@",
    "wasi:io/streams@",
    "wasi:cli/environment@",
    "wasi:cli/exit@",
    "wasi:cli/stdin@",
    "wasi:cli/stdout@",
    "wasi:cli/stderr@",
    "wasi:cli/terminal-input@",
    "wasi:cli/terminal-output@",
    "wasi:cli/terminal-stdin@",
    "wasi:cli/terminal-stdout@",
    "wasi:cli/terminal-stderr@",
];

#[test]
fn component_imports_nothing_beyond_http_secrets_and_basic_wasi() {
    let imports = common::plugin().imports();
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("integration:oauth2/http@")),
        "{imports:?}"
    );
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("integration:oauth2/secrets@")),
        "{imports:?}"
    );
    for import in &imports {
        assert!(
            ALLOWED.iter().any(|allowed| import.starts_with(allowed)),
            "the component imports {import}; allowed are {ALLOWED:?}"
        );
    }
}
