//! The embedding example (`examples/embed.rs`, shown in docs/embedding.md) works: against the
//! embedded provider, it gets a token and the API accepts it.

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
