//! `client_auth: auto`, the default: a new client-credentials token is asked for with the method
//! remembered for the token URL and client ID, else HTTP Basic; an `invalid_client` answer is
//! retried once with the other method, and the method that worked is remembered in the store.
//! Both servers refuse a client that authenticates other than as registered, so the
//! request-body client is refused Basic. A code exchange is never retried: the code is
//! single-use. Every token request is counted on its way to the server.

use std::sync::{Arc, Mutex};

use oauth2_runtime::ClientAuth::{Basic, RequestBody};
use oauth2_runtime::{
    CallError, ClientAuth, HttpClient, HttpRequest, HttpResponse, OauthError, TransportError,
    UreqClient,
};
use serde_json::{Value, json};

use crate::cli::Scratch;
use crate::host::{self, Host, plugin};
use crate::server::{API_RESOURCE, Client, Kind, SPECIAL_SECRET, Server, WEB_CLIENT};

/// Where the store remembers the method `auto` found to work, by a hash of token URL and
/// client ID.
const REMEMBERED: &str = "oauth2/client-auth/";
const WRONG_SECRET: &str = "n0t:the/secret";
/// The hint when both methods were refused (`Situation::BothClientAuths`).
const BOTH_REFUSED: &str = "the provider refused both HTTP Basic and the request body";

/// An HTTP client that notes how each request to the token URL authenticated the client, then
/// sends it.
struct Recorder {
    inner: UreqClient,
    token_url: String,
    sent: Mutex<Vec<ClientAuth>>,
}

impl Recorder {
    /// The methods of the token requests sent since the last call, in order.
    fn take(&self) -> Vec<ClientAuth> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
}

impl HttpClient for Recorder {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        if request.url == self.token_url {
            self.sent.lock().unwrap().push(method(request));
        }
        self.inner.send(request)
    }
}

/// How a token request authenticates the client: an `Authorization: Basic` header or
/// `client_secret` in the form body, never both.
fn method(request: &HttpRequest) -> ClientAuth {
    let basic = request
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("Authorization") && h.value.starts_with("Basic "));
    let in_body = form_urlencoded::parse(&request.body).any(|(name, _)| name == "client_secret");
    match (basic, in_body) {
        (true, false) => Basic,
        (false, true) => RequestBody,
        other => panic!("a token request with (Basic, client_secret in body) = {other:?}"),
    }
}

/// A library host against `server` whose token requests are recorded.
fn recording(server: &Server) -> (Host, Arc<Recorder>) {
    let mut host = Host::new(server);
    let recorder = Arc::new(Recorder {
        inner: server.http(),
        token_url: server.token_url(),
        sent: Mutex::default(),
    });
    host.services.http = recorder.clone();
    (host, recorder)
}

/// `client` with `client_auth: auto`.
fn auto(client: Client) -> Client {
    Client {
        auth: ClientAuth::Auto,
        ..client
    }
}

/// A client-credentials connection for `client` that the protected API accepts tokens of.
fn connection(server: &Server, client: Client) -> Value {
    let mut connection = server.connection("client_credentials", client);
    connection["scope"] = server.kind.api_scope().into();
    connection["resource"] = json!([API_RESOURCE]);
    connection
}

/// The remembered methods among `entries`; each entry's name must be the prefix and 32
/// lowercase hex digits.
fn remembered(entries: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    entries
        .into_iter()
        .filter_map(|(name, value)| {
            let hash = name.strip_prefix(REMEMBERED)?;
            assert!(
                hash.len() == 32 && hash.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')),
                "a remembered method's entry is named {name}"
            );
            Some(value)
        })
        .collect()
}

/// Fetches a token that the API accepts for `client`.
fn fetch_and_call(host: &Host, server: &Server, client: Client) {
    let config = host::config(&connection(server, client));
    plugin()
        .ensure_token(&host.services, &config)
        .unwrap_or_else(|e| panic!("{client:?}: {e}"));
    let response = host.get(&config, &server.api_url());
    assert_eq!(
        response.status,
        200,
        "{client:?}: {}",
        String::from_utf8_lossy(&response.body)
    );
    assert_eq!(host::json(&response)["client_id"], client.id);
}

fn request_body_client_is_remembered(kind: Kind) {
    let server = Server::start(kind);
    let (host, recorder) = recording(&server);
    let client = auto(kind.service_client(RequestBody));

    fetch_and_call(&host, &server, client);
    assert_eq!(
        recorder.take(),
        [Basic, RequestBody],
        "Basic first, refused, then the request body"
    );
    assert_eq!(
        remembered(host.entries()),
        ["request_body"],
        "the method that worked is remembered"
    );

    let config = host::config(&connection(&server, client));
    plugin()
        .forget_token(&host.services, &config, None)
        .expect("the token is forgotten");
    assert!(
        host.tokens().is_empty(),
        "no refresh token to keep: the next fetch asks for a new token"
    );
    fetch_and_call(&host, &server, client);
    assert_eq!(
        recorder.take(),
        [RequestBody],
        "the remembered method is tried first, and works"
    );
    assert_eq!(remembered(host.entries()), ["request_body"]);
}
on_both_servers!(request_body_client_is_remembered);

fn basic_client_works_at_once(kind: Kind) {
    let server = Server::start(kind);
    let (host, recorder) = recording(&server);

    fetch_and_call(&host, &server, auto(kind.service_client(Basic)));
    assert_eq!(recorder.take(), [Basic], "Basic, the first try, works");
    assert_eq!(
        remembered(host.entries()),
        Vec::<String>::new(),
        "only a method found by a retry is remembered"
    );
}
on_both_servers!(basic_client_works_at_once);

fn wrong_secret_refused_both_ways(kind: Kind) {
    let server = Server::start(kind);
    let (host, recorder) = recording(&server);
    host.set_secret("wrong-secret", WRONG_SECRET);
    let mut connection = connection(&server, auto(kind.service_client(RequestBody)));
    connection["client_secret"] = "wrong-secret".into();

    let error = plugin()
        .ensure_token(&host.services, &host::config(&connection))
        .expect_err("the server refuses a wrong secret");
    let line = error.to_string();
    match &error {
        CallError::OAuth(OauthError::Provider(p)) => {
            assert_eq!(p.code, "invalid_client", "{line}");
            assert!(p.hint.contains(BOTH_REFUSED), "{}", p.hint);
        }
        other => panic!("expected the provider's invalid_client, got {other}"),
    }
    assert!(
        !line.contains(WRONG_SECRET) && !line.contains(SPECIAL_SECRET),
        "{line}"
    );
    assert_eq!(
        recorder.take(),
        [Basic, RequestBody],
        "one retry with the other method, no more"
    );
    assert!(host.tokens().is_empty(), "a refused fetch stores no token");
    assert_eq!(
        remembered(host.entries()),
        Vec::<String>::new(),
        "a method that did not work is not remembered"
    );
}
on_both_servers!(wrong_secret_refused_both_ways);

fn cli_default_is_auto(kind: Kind) {
    let server = Server::start(kind);
    let scratch = Scratch::new(&server);
    let client = kind.service_client(RequestBody);
    let mut connection = connection(&server, client);
    connection
        .as_object_mut()
        .unwrap()
        .remove("client_auth")
        .expect("the connection had a client_auth");
    let path = scratch.connection(&connection);

    let out = scratch.run(&["token", "--config", &path]);
    out.assert_success("token without client_auth");
    assert!(
        !out.printed().contains(SPECIAL_SECRET),
        "the client secret was printed:\n{}",
        out.printed()
    );
    assert_eq!(
        remembered(scratch.store()),
        ["request_body"],
        "the default, auto, found and remembered the request body"
    );
    assert_eq!(scratch.tokens().len(), 1, "the token is stored");

    let call = scratch.run(&["call", "--config", &path, &server.api_url()]);
    call.assert_success("call");
    assert!(call.stderr.contains("HTTP 200"), "{}", call.stderr);
    assert_eq!(scratch.tokens().len(), 1, "call reused the stored token");
}
on_both_servers!(cli_default_is_auto);

fn code_exchange_first_try(kind: Kind) {
    let server = Server::start(kind);
    let (host, recorder) = recording(&server);
    let config = host::config(&server.connection("authorization_code", auto(WEB_CLIENT)));

    host.try_authorize(&server, &config)
        .unwrap_or_else(|e| panic!("completing the authorization: {e}"));
    assert_eq!(
        recorder.take(),
        [Basic],
        "the exchange works with Basic at once"
    );
    assert_eq!(remembered(host.entries()), Vec::<String>::new());
    assert_eq!(host.get(&config, &server.api_url()).status, 200);
}
on_both_servers!(code_exchange_first_try);

fn code_exchange_not_retried(kind: Kind) {
    let server = Server::start(kind);
    let (host, recorder) = recording(&server);
    host.set_secret("wrong-secret", WRONG_SECRET);
    let mut connection = server.connection("authorization_code", auto(WEB_CLIENT));
    connection["client_secret"] = "wrong-secret".into();

    let error = host
        .try_authorize(&server, &host::config(&connection))
        .expect_err("the server refuses a wrong secret");
    match &error {
        CallError::OAuth(OauthError::Provider(p)) => {
            assert_eq!(p.code, "invalid_client", "{error}");
            assert!(!p.hint.contains(BOTH_REFUSED), "{}", p.hint);
        }
        other => panic!("expected the provider's invalid_client, got {other}"),
    }
    assert_eq!(
        recorder.take(),
        [Basic],
        "a single-use code is sent once, never retried"
    );
    assert!(
        host.tokens().is_empty(),
        "a refused exchange stores no token"
    );
    assert_eq!(remembered(host.entries()), Vec::<String>::new());
}
on_both_servers!(code_exchange_not_retried);
