//! The HTTP the component imports: one whole request out, one whole response back, over rustls.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use oauth2_plugin::config::is_loopback;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use ureq::http::{self, HeaderName, HeaderValue};
use ureq::tls::{Certificate, RootCerts, TlsConfig};
use url::Url;

use crate::bindings::{Pair, TransportError};
use crate::message::{HttpRequest, HttpResponse};

/// Sends one request and returns whatever the server answered. Error messages never contain
/// request headers or bodies: they carry credentials.
pub trait HttpClient: Send + Sync {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError>;
}

/// Largest response body accepted; token responses are a few KiB.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one request may take, from connecting to its last byte.
pub const OVERALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A blocking client on ureq: no redirects followed, every status returned as a response.
///
/// A proxy from the environment (`HTTPS_PROXY`, `ALL_PROXY`, ...) carries only `https` requests
/// to hosts other than this machine: a loopback destination never goes through a proxy, and
/// plain `http` (which the component allows only to loopback hosts) never does, so a request
/// with credentials in clear never leaves the machine. URLs are sent as the URL parser reads
/// them, so the host name a proxy or resolver sees is the one that was checked.
#[derive(Debug, Clone)]
pub struct UreqClient {
    agent: ureq::Agent,
    overall: Duration,
}

impl UreqClient {
    /// Trusts the Mozilla root certificates bundled with the binary.
    pub fn new() -> Self {
        Self::with_roots(RootCerts::WebPki)
    }

    /// Trusts the bundled roots and every certificate in the PEM file at `path`, such as the
    /// CA of a test or corporate authorization server.
    pub fn with_extra_ca(path: &Path) -> Result<Self, CaFileError> {
        let extra = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| CaFileError::Unreadable(e.to_string()))?;
        if extra.is_empty() {
            return Err(CaFileError::NoCertificate);
        }
        let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .chain(&extra)
            .map(|der| Certificate::from_der(der.as_ref()).to_owned());
        Ok(Self::with_roots(roots.into()))
    }

    /// The same client with other time limits: `connect` for establishing the connection,
    /// `overall` for the whole exchange, connecting and reading the body included. The defaults
    /// (10 s and 30 s) suit a distant provider; a test of a server that never answers needs
    /// seconds less, and a host whose provider is known to be slow may need more.
    pub fn with_timeouts(self, connect: Duration, overall: Duration) -> Self {
        let tls = self.agent.config().tls_config().clone();
        Self {
            agent: agent(tls, connect, overall),
            overall,
        }
    }

    fn with_roots(roots: RootCerts) -> Self {
        let tls = TlsConfig::builder().root_certs(roots).build();
        Self {
            agent: agent(tls, CONNECT_TIMEOUT, OVERALL_TIMEOUT),
            overall: OVERALL_TIMEOUT,
        }
    }

    /// Sends `request`, giving the whole exchange at most `limit` (and never more than the
    /// client's own overall timeout).
    pub fn send_within(
        &self,
        request: &HttpRequest,
        limit: Duration,
    ) -> Result<HttpResponse, TransportError> {
        let url = Url::parse(&request.url)
            .map_err(|e| TransportError::InvalidRequest(format!("invalid URL: {e}")))?;
        let direct = url.scheme() != "https" || is_loopback(&url);
        let outgoing = to_http(request, url.as_str())?;
        let limit = limit.min(self.overall);
        let sent = if request.body.is_empty() {
            // An empty body as `()` keeps ureq from refusing GET "with a body".
            self.agent
                .run(self.configured(outgoing.map(|_| ()), direct, limit))
        } else {
            self.agent.run(self.configured(outgoing, direct, limit))
        };
        let response = sent.map_err(classify)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| Pair {
                name: name.as_str().to_owned(),
                value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            })
            .collect();
        let body = response
            .into_body()
            .into_with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(classify)?;
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    /// The request with this exchange's time limit and, for a `direct` one, no proxy.
    fn configured<S: ureq::AsSendBody>(
        &self,
        request: http::Request<S>,
        direct: bool,
        limit: Duration,
    ) -> http::Request<S> {
        let config = self
            .agent
            .configure_request(request)
            .timeout_global(Some(limit));
        if direct { config.proxy(None) } else { config }.build()
    }
}

/// An agent that follows no redirect and returns every status as a response.
fn agent(tls: TlsConfig, connect: Duration, overall: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_connect(Some(connect))
        .timeout_global(Some(overall))
        .tls_config(tls)
        .build()
        .new_agent()
}

impl Default for UreqClient {
    fn default() -> Self {
        Self::new()
    }
}

/// Why an extra CA file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaFileError {
    Unreadable(String),
    NoCertificate,
}

impl std::fmt::Display for CaFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreadable(e) => write!(f, "CA certificate file: {e}"),
            Self::NoCertificate => f.write_str("CA certificate file holds no PEM certificate"),
        }
    }
}

impl std::error::Error for CaFileError {}

impl HttpClient for UreqClient {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        self.send_within(request, self.overall)
    }
}

/// A client whose requests all end by one deadline: a command that makes several requests
/// (a refresh, a new token, the API call, its retry) ends within its own time limit, however
/// many it makes. A request begun after the deadline fails at once as timed out.
#[derive(Debug, Clone)]
pub struct WithDeadline {
    client: UreqClient,
    deadline: Instant,
}

impl WithDeadline {
    pub fn new(client: UreqClient, limit: Duration) -> Self {
        Self {
            client,
            deadline: Instant::now() + limit,
        }
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

impl HttpClient for WithDeadline {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TransportError::Timeout);
        }
        self.client.send_within(request, left)
    }
}

fn to_http(request: &HttpRequest, url: &str) -> Result<http::Request<Vec<u8>>, TransportError> {
    let invalid = |what: String| TransportError::InvalidRequest(what);
    let method = http::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| invalid(format!("invalid method {:?}", request.method)))?;
    let uri: http::Uri = url
        .parse()
        .map_err(|e| invalid(format!("invalid URL: {e}")))?;
    let mut builder = http::Request::builder().method(method).uri(uri);
    for Pair { name, value } in &request.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| invalid(format!("invalid header name {name:?}")))?;
        // The value is deliberately left out of the message: it may be a credential.
        let value = HeaderValue::from_str(value)
            .map_err(|_| invalid(format!("invalid value for header {name:?}")))?;
        builder = builder.header(header, value);
    }
    builder
        .body(request.body.clone())
        .map_err(|e| invalid(format!("unusable request: {e}")))
}

fn classify(error: ureq::Error) -> TransportError {
    use ureq::Error;
    match error {
        Error::Timeout(_) => TransportError::Timeout,
        Error::HostNotFound => TransportError::Dns("host not found".into()),
        Error::ConnectionFailed => TransportError::Connect("connection failed".into()),
        Error::BodyExceedsLimit(_) => TransportError::BodyTooLarge(MAX_BODY_BYTES),
        Error::Rustls(e) => TransportError::Tls(e.to_string()),
        Error::Tls(e) => TransportError::Tls(e.into()),
        Error::Pem(e) => TransportError::Tls(e.to_string()),
        Error::BadUri(e) => TransportError::InvalidRequest(format!("invalid URL: {e}")),
        Error::Http(e) => TransportError::InvalidRequest(e.to_string()),
        Error::Io(e) => classify_io(e),
        other => TransportError::Other(other.to_string()),
    }
}

fn classify_io(error: io::Error) -> TransportError {
    use io::ErrorKind;
    // rustls reports handshake and certificate failures through the stream as io errors.
    if let Some(tls) = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        return TransportError::Tls(tls.to_string());
    }
    match error.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => TransportError::Timeout,
        ErrorKind::ConnectionRefused
        | ErrorKind::HostUnreachable
        | ErrorKind::NetworkUnreachable
        | ErrorKind::AddrNotAvailable => TransportError::Connect(error.to_string()),
        // ureq reports a connection closed or reset before the body was complete this way.
        ErrorKind::UnexpectedEof
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe => TransportError::Interrupted(error.to_string()),
        // std's resolver failure has no ErrorKind of its own, only this message prefix.
        _ if error
            .to_string()
            .starts_with("failed to lookup address information") =>
        {
            TransportError::Dns(error.to_string())
        }
        _ => TransportError::Other(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oauth2_test_provider::{Answer, Received, Scripted};
    use std::net::TcpListener;
    use std::thread;

    /// A loopback server answering every request with what `answer` makes of it.
    fn serve(answer: fn(Received) -> Answer) -> Scripted {
        Scripted::start(answer).expect("a loopback server")
    }

    fn get(url: String) -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            url,
            headers: vec![],
            body: vec![],
        }
    }

    #[test]
    fn error_statuses_are_responses() {
        let server =
            serve(|_| Answer::new(401, "application/json", r#"{"error":"invalid_client"}"#));
        let response = UreqClient::new()
            .send(&get(format!("{}/token", server.base_url())))
            .unwrap();
        assert_eq!(response.status, 401);
        assert_eq!(response.body, br#"{"error":"invalid_client"}"#);
        assert!(response.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("content-type") && h.value == "application/json"
        }));
    }

    #[test]
    fn request_method_headers_and_body_reach_the_server() {
        let server = serve(|received| {
            let auth = received.header("authorization").unwrap_or_default();
            let body = String::from_utf8_lossy(&received.body);
            let echo = format!("{} {} {auth} {body}", received.method, received.target);
            Answer::new(200, "text/plain", echo)
        });
        let request = HttpRequest {
            method: "POST".into(),
            url: format!("{}/token?x=1", server.base_url()),
            headers: vec![Pair {
                name: "Authorization".into(),
                value: "Basic YTpi".into(),
            }],
            body: b"grant_type=client_credentials".to_vec(),
        };
        let response = UreqClient::new().send(&request).unwrap();
        assert_eq!(
            String::from_utf8(response.body).unwrap(),
            "POST /token?x=1 Basic YTpi grant_type=client_credentials"
        );
    }

    #[test]
    fn redirects_are_returned_not_followed() {
        let server = serve(|_| {
            let mut answer = Answer::new(302, "text/plain", "");
            answer
                .headers
                .push(("Location".into(), "/elsewhere".into()));
            answer
        });
        let response = UreqClient::new()
            .send(&get(format!("{}/start", server.base_url())))
            .unwrap();
        assert_eq!(response.status, 302);
        assert!(response.headers.iter().any(|h| h.value == "/elsewhere"));
    }

    #[test]
    fn oversized_bodies_are_refused() {
        let server =
            serve(|_| Answer::new(200, "text/plain", vec![b'x'; MAX_BODY_BYTES as usize + 1]));
        let err = UreqClient::new().send(&get(server.base_url())).unwrap_err();
        assert_eq!(err, TransportError::BodyTooLarge(MAX_BODY_BYTES));
    }

    #[test]
    fn a_body_at_the_limit_is_accepted() {
        let server = serve(|_| Answer::new(200, "text/plain", vec![b'x'; MAX_BODY_BYTES as usize]));
        let response = UreqClient::new().send(&get(server.base_url())).unwrap();
        assert_eq!(response.body.len() as u64, MAX_BODY_BYTES);
    }

    #[test]
    fn refused_connections_are_connect_errors() {
        // Bind then drop a listener: the port is free and nothing accepts on it.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = UreqClient::new()
            .send(&get(format!("http://127.0.0.1:{port}/token")))
            .unwrap_err();
        assert!(matches!(err, TransportError::Connect(_)), "{err:?}");
    }

    #[test]
    fn a_server_that_never_answers_times_out_at_the_configured_limit() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts and holds the connection without answering, until the client gives up.
        let silent = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let _ = io::copy(&mut &stream, &mut io::sink());
        });
        let client =
            UreqClient::new().with_timeouts(Duration::from_secs(1), Duration::from_millis(500));
        let started = std::time::Instant::now();
        let err = client
            .send(&get(format!("http://127.0.0.1:{port}/token")))
            .unwrap_err();
        assert_eq!(err, TransportError::Timeout);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        silent.join().unwrap();
    }

    #[test]
    fn invalid_header_values_are_not_echoed() {
        let mut request = get("http://127.0.0.1:1/".into());
        request.headers.push(Pair {
            name: "Authorization".into(),
            value: "Bearer secret\nvalue".into(),
        });
        let err = UreqClient::new().send(&request).unwrap_err();
        let TransportError::InvalidRequest(message) = err else {
            panic!("expected invalid-request, got {err:?}");
        };
        assert!(message.contains("Authorization"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn an_empty_ca_file_is_refused() {
        let path = std::env::temp_dir().join(format!("host-harness-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = UreqClient::with_extra_ca(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(err, CaFileError::NoCertificate);
    }
}
