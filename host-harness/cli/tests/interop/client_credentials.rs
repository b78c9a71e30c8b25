//! Case 1: client credentials with each client authentication style, a scope and a resource
//! indicator; the protected API accepts the token.

use oauth2_runtime::ClientAuth;
use serde_json::json;

use crate::cli::Scratch;
use crate::host::{self, Host, plugin};
use crate::server::{API_RESOURCE, Kind, Server};

fn connection(server: &Server, auth: ClientAuth) -> serde_json::Value {
    let mut connection = server.connection("client_credentials", server.kind.service_client(auth));
    connection["scope"] = server.kind.api_scope().into();
    // oidc-provider issues a token for the API only when asked for it (RFC 8707); Authlib
    // ignores the parameter, as servers without resource indicators do.
    connection["resource"] = json!([API_RESOURCE]);
    connection
}

fn library_with_each_client_auth(kind: Kind) {
    let server = Server::start(kind);
    let host = Host::new(&server);
    for auth in [ClientAuth::Basic, ClientAuth::RequestBody] {
        let client = kind.service_client(auth);
        let config = host::config(&connection(&server, auth));
        let token = plugin()
            .ensure_token(&host.services, &config)
            .unwrap_or_else(|e| panic!("{client:?}: {e}"));
        assert_eq!(token.scope.as_deref(), Some(kind.api_scope()), "{client:?}");

        let response = host.get(&config, &server.api_url());
        assert_eq!(response.status, 200, "{client:?}");
        let body = host::json(&response);
        assert_eq!(body["client_id"], client.id);
        if kind == Kind::OidcProvider {
            assert_eq!(
                body["aud"], API_RESOURCE,
                "the token is for the resource asked for"
            );
        }
    }
}
on_both_servers!(library_with_each_client_auth);

fn cli_token_then_call(kind: Kind) {
    let server = Server::start(kind);
    let scratch = Scratch::new(&server);
    let connection = scratch.connection(&connection(&server, ClientAuth::Basic));

    let token = scratch.run(&["token", "--config", &connection]);
    token.assert_success("token");
    let summary: serde_json::Value = serde_json::from_str(&token.stdout).unwrap();
    assert_eq!(summary["scope"], kind.api_scope());
    assert_eq!(summary["token_type"], "Bearer");

    let call = scratch.run(&["call", "--config", &connection, &server.api_url()]);
    call.assert_success("call");
    assert!(call.stderr.contains("HTTP 200"), "{}", call.stderr);
    assert!(call.stdout.contains(r#""ok":true"#), "{}", call.stdout);
    assert_eq!(
        scratch.tokens().len(),
        1,
        "call reused the token that token stored"
    );
}
on_both_servers!(cli_token_then_call);
