//! Case 7: a client secret with `:`, `%`, `+`, `/`, `&`, `=` and a space. Both client_auth
//! styles work at both servers with it (case 1 runs them); this case pins down why Basic does.
//!
//! RFC 6749 §2.3.1 says to form-urlencode ID and secret before base64, and form encoding turns
//! a space into `+`. oidc-provider form-decodes the credentials (`+` is a space, `%2B` a plus);
//! Authlib only percent-decodes them (`unquote`: `+` stays a plus), so it refuses the strict
//! form. Our client writes the space as `%20`, which both decode to a space.

use oauth2_runtime::{ClientAuth, HttpRequest, TokenStep};

use crate::host::{self, Host, plugin};
use crate::server::{Kind, SPECIAL_SECRET, Server, basic_auth};

/// [`SPECIAL_SECRET`] as our client encodes it: everything but letters, digits and `-._~`.
const ENCODED_SECRET: &str = "s3cr%3At%2F%2B%26%25%3D%20~";

fn basic_credentials_encoding(kind: Kind) {
    let server = Server::start(kind);
    let host = Host::new(&server);
    let client = kind.service_client(ClientAuth::Basic);
    assert_eq!(server.secret(client), SPECIAL_SECRET);
    let config = host::config(&server.connection("client_credentials", client));

    let ours = plugin()
        .build_token_request(&host.services, &config, &TokenStep::NewToken)
        .unwrap();
    assert_eq!(
        credentials(&ours),
        format!("{}:{ENCODED_SECRET}", client.id),
        "each part percent-encoded, the space as %20"
    );
    let response = host.send(&ours);
    assert_eq!(
        response.status,
        200,
        "{}",
        String::from_utf8_lossy(&response.body)
    );

    let mut form_encoded = ours.clone();
    let value = basic_auth(client.id, SPECIAL_SECRET, "+");
    form_encoded
        .headers
        .iter_mut()
        .find(|h| h.name == "Authorization")
        .unwrap()
        .value = value;
    let response = host.send(&form_encoded);
    match kind {
        Kind::OidcProvider => assert_eq!(response.status, 200, "a form-decoding server"),
        Kind::Authlib => {
            assert_eq!(
                response.status, 401,
                "a percent-decoding server reads '+' as a plus"
            );
            assert_eq!(host::json(&response)["error"], "invalid_client");
        }
    }
}
on_both_servers!(basic_credentials_encoding);

/// The `Authorization: Basic` header's credentials, decoded from base64.
fn credentials(request: &HttpRequest) -> String {
    use base64::Engine as _;
    let header = request.headers.iter().find(|h| h.name == "Authorization");
    let value = header.expect("an Authorization header").value.as_str();
    let base64 = value.strip_prefix("Basic ").expect("Basic auth");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .unwrap();
    String::from_utf8(decoded).unwrap()
}
