//! A one-shot loopback listener that catches the browser's authorization-code redirect.

use std::fmt::{self, Display, Formatter};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

/// How long a user gets to finish consenting in the browser, unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The longest wait for the browser a user may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Why no redirect could be caught.
#[derive(Debug)]
pub enum CallbackError {
    /// The redirect URI is not `http://` on a loopback host with a port this host can bind.
    UnusableRedirectUri(String),
    Bind {
        address: SocketAddr,
        message: String,
    },
    Timeout(Duration),
    Io(std::io::Error),
}

impl Display for CallbackError {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnusableRedirectUri(why) => write!(f, "config: redirect_uri: {why}"),
            Self::Bind { address, message } => write!(
                f,
                "cannot listen on {address} for the redirect: {message} \
                 (is another program using that port?)"
            ),
            Self::Timeout(after) => write!(
                f,
                "no browser redirect arrived within {} s: open the authorization URL and consent; \
                 if the provider showed an error about the redirect URI, redirect_uri must match \
                 one registered at the provider exactly (scheme, host, port, path, trailing slash)",
                after.as_secs()
            ),
            Self::Io(e) => write!(f, "while waiting for the redirect: {e}"),
        }
    }
}

impl std::error::Error for CallbackError {}

/// A page the browser gets back.
struct Page {
    status: u16,
    title: &'static str,
    message: String,
}

/// A request to the redirect path, handed from the server to [`CallbackListener::wait`], and
/// where to send the page that answers it.
struct Arrival {
    /// The request target: path and query.
    target: String,
    answer: oneshot::Sender<Page>,
}

/// A listener bound to the redirect URI's loopback address (for `localhost`, to both
/// `127.0.0.1` and `::1`, as a browser may resolve it to either). HTTP is axum's, on a runtime
/// thread of its own; requests to the redirect path come to [`CallbackListener::wait`], which
/// decides what each gets.
pub struct CallbackListener {
    addrs: Vec<SocketAddr>,
    arrivals: mpsc::Receiver<Arrival>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    /// `http://host:port` exactly as the redirect URI spells it.
    origin: String,
    path: String,
    timeout: Duration,
}

impl fmt::Debug for CallbackListener {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackListener")
            .field("addrs", &self.addrs)
            .field("origin", &self.origin)
            .field("path", &self.path)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl CallbackListener {
    /// Binds now, so a busy port is reported before the user is sent to the browser.
    pub fn bind(redirect_uri: &str) -> Result<Self, CallbackError> {
        let target =
            RedirectTarget::parse(redirect_uri).map_err(CallbackError::UnusableRedirectUri)?;
        let bind = |address: SocketAddr| {
            TcpListener::bind(address)
                .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
                .map_err(|e| CallbackError::Bind {
                    address,
                    message: e.to_string(),
                })
        };
        let mut listeners = vec![bind(target.address)?];
        if target.localhost {
            // A machine without IPv6 has no `::1` to listen on, and its browser none to use.
            let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), target.address.port());
            listeners.extend(bind(v6).ok());
        }
        let addrs = listeners
            .iter()
            .filter_map(|listener| listener.local_addr().ok())
            .collect();
        let (arrived, arrivals) = mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let server =
            serve(listeners, target.path.clone(), arrived, stopped).map_err(CallbackError::Io)?;
        Ok(Self {
            addrs,
            arrivals,
            stop: Some(stop),
            server: Some(server),
            origin: target.origin,
            path: target.path,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same listener with another time limit, at most [`MAX_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    /// The addresses actually bound.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// Waits for the browser to arrive on the redirect path with `state`, the one this
    /// authorization began with. Other paths (a favicon, a stray probe) get a 404; the redirect
    /// path without that state (a forged or stale login, a local process or page probing) gets
    /// a 400 and the wait goes on, so no one can cancel the login by calling first.
    pub fn wait(&self, state: &str) -> Result<Redirect, CallbackError> {
        let deadline = Instant::now() + self.timeout;
        let expected = Sha256::digest(state.as_bytes());
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let arrival = self
                .arrivals
                .recv_timeout(remaining)
                .map_err(|_| CallbackError::Timeout(self.timeout))?;
            let url = format!("{}{}", self.origin, arrival.target);
            // Digests compared, so the time taken says nothing about the state itself.
            if query_state(&url).map(|s| Sha256::digest(s.as_bytes())) == Some(expected) {
                return Ok(Redirect {
                    url,
                    answer: arrival.answer,
                });
            }
            let _ = arrival.answer.send(Page {
                status: 400,
                title: "Not this login",
                message: "This request does not carry the state of the authorization in \
                          progress, so it was ignored and the login goes on. If the provider \
                          showed an error, start the authorization again."
                    .to_owned(),
            });
        }
    }
}

impl Drop for CallbackListener {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
    }
}

/// Serves `listeners` until `stopped`: requests to `path` go to `arrived` and get the page sent
/// back; any other path a 404.
fn serve(
    listeners: Vec<TcpListener>,
    path: String,
    arrived: mpsc::Sender<Arrival>,
    stopped: oneshot::Receiver<()>,
) -> std::io::Result<JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("oauth2-host-callback".into())
        .spawn(move || {
            runtime.block_on(async move {
                let app = axum::Router::new()
                    .route(
                        &path,
                        axum::routing::any(move |uri: axum::http::Uri| {
                            let arrived = arrived.clone();
                            async move { arrive(&arrived, &uri).await }
                        }),
                    )
                    .fallback(|| async { axum::http::StatusCode::NOT_FOUND });
                let (shutdown, _) = tokio::sync::watch::channel(());
                let mut servers = Vec::new();
                for listener in listeners {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        continue;
                    };
                    let mut stop = shutdown.subscribe();
                    let app = app.clone();
                    servers.push(tokio::spawn(async move {
                        let _ = axum::serve(listener, app)
                            .with_graceful_shutdown(async move {
                                let _ = stop.changed().await;
                            })
                            .await;
                    }));
                }
                let _ = stopped.await;
                drop(shutdown);
                for server in servers {
                    let _ = server.await;
                }
            });
        })
}

/// Hands one redirect-path request to the waiting side and answers with the page it decides;
/// 503 if no one is waiting any more.
async fn arrive(
    arrived: &mpsc::Sender<Arrival>,
    uri: &axum::http::Uri,
) -> axum::response::Response {
    let target = uri.path_and_query().map_or_else(
        || uri.path().to_owned(),
        |target| target.as_str().to_owned(),
    );
    let (answer, page) = oneshot::channel();
    if arrived.send(Arrival { target, answer }).is_err() {
        return page_response(Page {
            status: 503,
            title: "Not listening",
            message: "No authorization is waiting for this redirect any more.".into(),
        });
    }
    match page.await {
        Ok(page) => page_response(page),
        Err(_) => page_response(Page {
            status: 503,
            title: "Not listening",
            message: "The authorization stopped waiting before this redirect was answered.".into(),
        }),
    }
}

/// A small page: `title` and `message`, escaped for HTML, never cached.
fn page_response(page: Page) -> axum::response::Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>{title}</h1><p>{}</p><p>You can close this window.</p></body></html>",
        escape_html(&page.message),
        title = page.title,
    );
    let mut response = axum::response::Response::new(axum::body::Body::from(html));
    *response.status_mut() = axum::http::StatusCode::from_u16(page.status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

/// The `state` parameter of a redirect URL; none when it has none, or more than one.
fn query_state(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let mut states = url.query_pairs().filter(|(name, _)| name == "state");
    let (_, state) = states.next()?;
    states.next().is_none().then(|| state.into_owned())
}

/// The browser's request to the redirect URI, waiting for its result page.
pub struct Redirect {
    url: String,
    answer: oneshot::Sender<Page>,
}

impl fmt::Debug for Redirect {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        // The URL carries the authorization code: a credential until it is exchanged.
        f.debug_struct("Redirect").finish_non_exhaustive()
    }
}

impl Redirect {
    /// The full redirect URL, origin as the redirect URI spells it, with its query.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Tells the browser the authorization worked.
    pub fn respond_success(self, message: &str) {
        self.respond(200, "Authorization complete", message);
    }

    /// Tells the browser the authorization failed, and why (no secrets in `message`).
    pub fn respond_failure(self, message: &str) {
        self.respond(400, "Authorization failed", message);
    }

    fn respond(self, status: u16, title: &'static str, message: &str) {
        // A browser that went away is nothing to report.
        let _ = self.answer.send(Page {
            status,
            title,
            message: message.to_owned(),
        });
    }
}

fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The parts of a loopback redirect URI the listener needs.
#[derive(Debug, PartialEq, Eq)]
struct RedirectTarget {
    address: SocketAddr,
    /// The host is `localhost`, which the browser may resolve to `::1` as well.
    localhost: bool,
    origin: String,
    path: String,
}

impl RedirectTarget {
    fn parse(uri: &str) -> Result<Self, String> {
        let rest = uri
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("http://"))
            .map(|_| &uri[7..])
            .ok_or("must start with http:// to be caught on this machine")?;
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let path = match tail.split(['?', '#']).next().unwrap_or_default() {
            "" => "/",
            path => path,
        };
        if authority.contains('@') {
            return Err("must not carry user information".into());
        }
        let (host, port) = split_host_port(authority)?;
        let localhost = host.eq_ignore_ascii_case("localhost");
        let ip = if localhost {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.parse::<IpAddr>()
                .ok()
                .filter(IpAddr::is_loopback)
                .ok_or_else(|| format!("host {host} is not a loopback address"))?
        };
        Ok(Self {
            address: SocketAddr::new(ip, port),
            localhost,
            origin: format!("{}{authority}", &uri[..7]),
            path: path.to_owned(),
        })
    }
}

fn split_host_port(authority: &str) -> Result<(&str, u16), String> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or("has an unclosed [ in its host")?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        None => 80,
        Some(port) => port
            .parse()
            .map_err(|_| format!("port {port:?} is not a number"))?,
    };
    if port == 0 {
        return Err("needs a fixed port, registered at the provider".into());
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn get(address: SocketAddr, target: &str) -> String {
        let mut stream = TcpStream::connect(address).unwrap();
        write!(
            stream,
            "GET {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn parses_loopback_redirect_uris() {
        let target = RedirectTarget::parse("http://127.0.0.1:8976/callback?x=1").unwrap();
        assert_eq!(target.address, "127.0.0.1:8976".parse().unwrap());
        assert_eq!(target.origin, "http://127.0.0.1:8976");
        assert_eq!(target.path, "/callback");

        let target = RedirectTarget::parse("http://[::1]:9000").unwrap();
        assert_eq!(target.address, "[::1]:9000".parse().unwrap());
        assert_eq!(target.path, "/");

        let target = RedirectTarget::parse("HTTP://localhost/cb").unwrap();
        assert_eq!(target.address, "127.0.0.1:80".parse().unwrap());
        assert_eq!(target.origin, "HTTP://localhost");
    }

    #[test]
    fn refuses_redirect_uris_it_cannot_catch() {
        for (uri, why) in [
            ("https://127.0.0.1:8976/cb", "http://"),
            ("http://example.com:8976/cb", "not a loopback"),
            ("http://10.0.0.1:8976/cb", "not a loopback"),
            ("http://127.0.0.1:0/cb", "fixed port"),
            ("http://127.0.0.1:http/cb", "not a number"),
            ("http://user@127.0.0.1:1/cb", "user information"),
        ] {
            let err = RedirectTarget::parse(uri).unwrap_err();
            assert!(err.contains(why), "{uri}: {err}");
        }
    }

    #[test]
    fn returns_the_redirect_with_the_state_and_ignores_everything_else() {
        let port = free_port();
        let listener = CallbackListener::bind(&format!("http://127.0.0.1:{port}/callback"))
            .unwrap()
            .with_timeout(Duration::from_secs(10));
        let address = listener.local_addrs()[0];
        let browser = std::thread::spawn(move || {
            let favicon = get(address, "/favicon.ico");
            // What any local process or web page can send before the real redirect arrives.
            let forged = [
                get(address, "/callback?code=evil&state=forged"),
                get(address, "/callback?code=evil"),
                get(address, "/callback?error=access_denied"),
                get(address, "/callback?code=evil&state=xyz&state=forged"),
            ];
            let redirect = get(address, "/callback?code=abc&state=xyz");
            (favicon, forged, redirect)
        });
        let redirect = listener.wait("xyz").unwrap();
        assert_eq!(
            redirect.url(),
            format!("http://127.0.0.1:{port}/callback?code=abc&state=xyz")
        );
        redirect.respond_failure("bad <state>");
        let (favicon, forged, page) = browser.join().unwrap();
        assert!(favicon.starts_with("HTTP/1.1 404"), "{favicon}");
        for answer in forged {
            assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
            assert!(answer.contains("the login goes on"), "{answer}");
        }
        assert!(page.starts_with("HTTP/1.1 400"), "{page}");
        assert!(page.contains("bad &lt;state&gt;"), "{page}");
    }

    #[test]
    fn localhost_is_served_on_both_loopbacks() {
        let port = free_port();
        let listener = CallbackListener::bind(&format!("http://localhost:{port}/cb")).unwrap();
        let addrs = listener.local_addrs();
        assert!(
            addrs.contains(&SocketAddr::from(([127, 0, 0, 1], port))),
            "{addrs:?}"
        );
        let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
        assert!(addrs.contains(&v6), "{addrs:?}");
        let browser = std::thread::spawn(move || get(v6, "/cb?code=c&state=s"));
        let redirect = listener.wait("s").unwrap();
        assert_eq!(
            redirect.url(),
            format!("http://localhost:{port}/cb?code=c&state=s")
        );
        redirect.respond_success("ok");
        assert!(browser.join().unwrap().starts_with("HTTP/1.1 200"));
    }

    #[test]
    fn gives_up_after_the_timeout_which_is_bounded() {
        let listener = CallbackListener::bind(&format!("http://127.0.0.1:{}/cb", free_port()))
            .unwrap()
            .with_timeout(Duration::from_millis(50));
        assert!(matches!(listener.wait("s"), Err(CallbackError::Timeout(_))));
        let listener = listener.with_timeout(Duration::from_secs(u64::MAX));
        assert_eq!(listener.timeout, MAX_TIMEOUT);
    }
}
