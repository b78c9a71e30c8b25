//! The embedding example (`examples/embed.rs`, shown in docs/embedding.md) works: against the
//! embedded provider, it gets a token and the API accepts it. And the digest other hosts compare
//! with is the embedded component's.

#[path = "../examples/embed.rs"]
mod embed;

use oauth2_test_provider::{Provider, ProviderConfig};

#[test]
fn the_embedding_example_gets_a_token_and_calls_the_api() {
    let provider = Provider::start(ProviderConfig::demo("http://127.0.0.1:9/callback")).unwrap();
    let outcome = embed::run(
        &provider.token_url(),
        "demo-client",
        "demo-secret",
        &format!("{}/api/me", provider.base_url()),
    )
    .unwrap();
    assert_eq!(outcome.response.status, 200);
    assert!(!outcome.retried);
    assert_eq!(provider.token_request_count("client_credentials"), 1);
}

/// The guide shows the example whole: a change to one without the other fails here.
#[test]
fn the_embedding_guide_shows_the_example_as_it_is() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let guide = std::fs::read_to_string(format!("{root}/docs/embedding.md")).unwrap();
    let example = include_str!("../examples/embed.rs");
    let (_, shown) = guide
        .split_once("<!-- host-harness/runtime/examples/embed.rs: start -->\n```rust\n")
        .expect("the guide marks where the example starts");
    let (shown, _) = shown
        .split_once("```\n<!-- host-harness/runtime/examples/embed.rs: end -->")
        .expect("the guide marks where the example ends");
    assert!(
        shown == example,
        "docs/embedding.md shows an old copy of examples/embed.rs; paste the file in again"
    );
}

/// `EMBEDDED_SHA256`, which `oauth2-host --version` prints for the Node.js host's test to compare
/// with, is the digest of the bytes embedded.
#[test]
fn the_embedded_digest_is_the_components_sha256() {
    use sha2::{Digest, Sha256};
    let digest: String = Sha256::digest(oauth2_runtime::plugin::EMBEDDED)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    assert_eq!(digest, oauth2_runtime::EMBEDDED_SHA256);
}
