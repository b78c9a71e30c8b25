//! `oauth2-host ui`: a local page to fill in a connection, store its secrets (write-only), run
//! its validation as a live checklist and save it, guarded as a local admin page must be.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use oauth2_plugin::provider_text::escape_controls;
use oauth2_runtime::{Plugin, Services, Token};
use serde::Serialize;
use serde_json::{Value, json};

use crate::validate::{self, Checks, Expectations, Step};
use crate::{config_file, consent, presets};

const PAGE: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// The largest request body accepted: a connection's settings are a few KiB.
const MAX_BODY_BYTES: usize = 64 << 10;
/// How many of the latest validations can still be polled.
const KEPT_RUNS: u64 = 16;
/// How long a validation waits for the consent in the browser.
const CONSENT_TIMEOUT: Duration = Duration::from_secs(300);

/// Everything the page's requests use.
pub struct Ui {
    plugin: Plugin,
    services: Services,
    /// Where saved connection files go.
    dir: PathBuf,
    /// The random per-launch token every request must carry.
    token: String,
    port: u16,
    runs: Mutex<HashMap<u64, Arc<Mutex<Run>>>>,
    next_run: AtomicU64,
}

/// A validation under way or done, as the page polls it.
#[derive(Default, Clone, Serialize)]
struct Run {
    steps: Vec<Step>,
    done: bool,
    passed: bool,
    /// The authorization URL, while the consent waits for the browser.
    consent_url: Option<String>,
}

/// What a request may reach with what it carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// The page itself: the token in the query.
    Page,
    /// Its script and style: nothing secret, only the host is checked.
    Asset,
    /// The JSON API: the token in `X-Launch-Token`.
    Api,
}

impl Ui {
    /// A page for `listener`'s port, with a fresh launch token.
    pub fn new(
        plugin: Plugin,
        services: Services,
        dir: PathBuf,
        listener: &TcpListener,
    ) -> std::io::Result<Self> {
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(std::io::Error::other)?;
        Ok(Self {
            plugin,
            services,
            dir,
            token: oauth2_plugin::config::hex("", &random),
            port: listener.local_addr()?.port(),
            runs: Mutex::default(),
            next_run: AtomicU64::new(1),
        })
    }

    /// The page's address, launch token included: what the user opens.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/?token={}", self.port, self.token)
    }

    /// Refuses what a local admin page must refuse: another `Host` (DNS rebinding), a write
    /// from another origin or without one, a cross-site fetch, a missing or wrong token. The
    /// error says why, for the 403 it becomes.
    fn guard(
        &self,
        access: Access,
        method: &Method,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<(), &'static str> {
        let ours = [
            format!("127.0.0.1:{}", self.port),
            format!("localhost:{}", self.port),
        ];
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        if !host.is_some_and(|host| ours.iter().any(|ours| ours == host)) {
            return Err("this page answers only at its own address on 127.0.0.1");
        }
        let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
        let same_origin = |origin: &str| {
            ours.iter()
                .any(|ours| origin.strip_prefix("http://") == Some(ours.as_str()))
        };
        match origin {
            Some(origin) if !same_origin(origin) => return Err("a request from another site"),
            None if !matches!(*method, Method::GET | Method::HEAD) => {
                return Err("a write without its origin");
            }
            _ => {}
        }
        let site = headers.get("sec-fetch-site").and_then(|h| h.to_str().ok());
        if site.is_some_and(|site| site == "cross-site" || site == "same-site") {
            return Err("a request from another site");
        }
        let given = match access {
            Access::Asset => return Ok(()),
            Access::Page => uri.query().and_then(|query| {
                form_urlencoded::parse(query.as_bytes())
                    .find(|(name, _)| name == "token")
                    .map(|(_, value)| value.into_owned())
            }),
            Access::Api => headers
                .get("x-launch-token")
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned),
        };
        if !given.is_some_and(|given| same_secret(&given, &self.token)) {
            return Err("open the page at the address oauth2-host ui printed (with its token)");
        }
        Ok(())
    }

    fn start_run(self: &Arc<Self>, request: &Value) -> Result<u64, String> {
        let config = connection_text(request)?;
        let api_url = request["api"]
            .as_str()
            .filter(|api| !api.trim().is_empty())
            .ok_or("the API URL to test with is missing")?
            .trim()
            .to_owned();
        let expect = Expectations {
            status: match &request["expect_status"] {
                Value::Null => None,
                Value::String(s) if s.trim().is_empty() => None,
                Value::String(s) => Some(s.trim().parse().map_err(|_| "a status is a number")?),
                Value::Number(n) => Some(
                    n.as_u64()
                        .and_then(|n| u16::try_from(n).ok())
                        .ok_or("a status is 100 to 599")?,
                ),
                _ => return Err("a status is a number".into()),
            },
            json: Vec::new(),
        };
        let id = self.next_run.fetch_add(1, Ordering::Relaxed);
        let run = Arc::new(Mutex::new(Run::default()));
        let mut runs = lock(&self.runs);
        // A page polls only its latest run; older ones are kept for a while, not forever.
        runs.retain(|kept, _| *kept + KEPT_RUNS > id);
        runs.insert(id, Arc::clone(&run));
        drop(runs);
        let ui = Arc::clone(self);
        std::thread::Builder::new()
            .name("oauth2-host-ui-validate".into())
            .spawn(move || ui.validate(&config, &api_url, &expect, &run))
            .map_err(|e| e.to_string())?;
        Ok(id)
    }

    fn validate(&self, text: &str, api_url: &str, expect: &Expectations, run: &Mutex<Run>) {
        let progress = |step: &Step| lock(run).steps.push(step.clone());
        let parsed = config_file::parse(text);
        let report_passed = match parsed {
            Err(error) => {
                progress(&Step {
                    step: "configuration",
                    passed: false,
                    detail: error.to_string(),
                });
                false
            }
            Ok(config) => {
                let problems = self.problems(&config);
                let consent = |services: &Services| self.consent(services, &config, run);
                let checks = Checks {
                    problems: problems
                        .iter()
                        .map(|(key, message)| format!("{key}: {message}"))
                        .collect(),
                    api_url,
                    expect,
                    consent: &consent,
                    progress: &progress,
                };
                validate::run(&self.plugin, &self.services, &config, &checks).passed
            }
        };
        let mut run = lock(run);
        run.done = true;
        run.passed = report_passed;
        run.consent_url = None;
    }

    /// The consent for a validation: the page sees the URL in the run and opens it in a new
    /// tab; the browser comes back to the redirect URI's listener. For a device code, the URL is
    /// the verification URI, and the approval is polled for.
    fn consent(
        &self,
        services: &Services,
        config: &oauth2_runtime::ConnectionConfig,
        run: &Mutex<Run>,
    ) -> anyhow::Result<Token> {
        let token = if config.grant_type == oauth2_runtime::GrantType::DeviceCode {
            // The page opens the verification URI as it opens a consent URL; the user code is
            // in it when the provider gives the complete URI, and on the terminal either way.
            consent::device(
                &self.plugin,
                services,
                config,
                CONSENT_TIMEOUT,
                &|uri, code| {
                    lock(run).consent_url = Some(uri.to_owned());
                    eprintln!(
                        "device code: enter {} at {}",
                        escape_controls(code),
                        escape_controls(uri)
                    );
                    Ok(())
                },
            )
        } else {
            consent::run(
                &self.plugin,
                services,
                config,
                CONSENT_TIMEOUT,
                &|url| {
                    lock(run).consent_url = Some(url.to_owned());
                    Ok(())
                },
                "The token is stored. You can close this tab.",
            )
        };
        lock(run).consent_url = None;
        token
    }

    /// Every problem in a connection, by the key it concerns: the component's rules, and the
    /// secrets it names that the store does not hold.
    fn problems(&self, config: &oauth2_runtime::ConnectionConfig) -> Vec<(String, String)> {
        let mut problems: Vec<(String, String)> =
            match self.plugin.validate_config(&self.services, config) {
                Ok(found) => found.into_iter().map(|p| (p.field, p.message)).collect(),
                Err(error) => vec![("component".into(), error.to_string())],
            };
        let private_key = config.signing_key.as_ref().map(|key| key.name.clone());
        for (key, name) in [
            ("client_secret", &config.client_secret_name),
            ("password", &config.password_name),
            ("private_key", &private_key),
        ] {
            let Some(name) = name.as_deref().filter(|n| !n.trim().is_empty()) else {
                continue;
            };
            match self.services.secrets.get(name) {
                Ok(Some(_)) => {}
                Ok(None) => problems.push((
                    key.into(),
                    format!("no secret named \"{name}\" is stored yet: enter its value"),
                )),
                Err(error) => problems.push((key.into(), format!("the store failed: {error}"))),
            }
        }
        problems
    }
}

/// The connection's settings from a request, as a config file's text.
fn connection_text(request: &Value) -> Result<String, String> {
    match &request["config"] {
        Value::Object(config) => Ok(Value::Object(config.clone()).to_string()),
        _ => Err("the request holds no connection settings".into()),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Equal without telling by its timing where two differ.
fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn plain(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.to_owned(),
    )
        .into_response()
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn bad_request(message: &str) -> Response {
    json_response(StatusCode::BAD_REQUEST, &json!({ "error": message }))
}

/// The body as a JSON object, or why not.
fn body_json(body: &Bytes) -> Result<Value, &'static str> {
    if body.len() > MAX_BODY_BYTES {
        return Err("the request is too large");
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err("the request is not a JSON object"),
    }
}

/// Headers every answer carries: nothing cached, framed, sniffed or referred (the page's
/// address holds its token), and only this origin's script.
fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

type Shared = State<Arc<Ui>>;

async fn page(State(ui): Shared, method: Method, headers: HeaderMap, uri: Uri) -> Response {
    harden(match ui.guard(Access::Page, &method, &headers, &uri) {
        Err(why) => plain(StatusCode::FORBIDDEN, why),
        Ok(()) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response(),
    })
}

async fn asset(State(ui): Shared, method: Method, headers: HeaderMap, uri: Uri) -> Response {
    let (content_type, body) = match uri.path() {
        "/app.js" => ("text/javascript; charset=utf-8", SCRIPT),
        _ => ("text/css; charset=utf-8", STYLE),
    };
    harden(match ui.guard(Access::Asset, &method, &headers, &uri) {
        Err(why) => plain(StatusCode::FORBIDDEN, why),
        Ok(()) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
    })
}

/// One API call: guarded, then `answer` on the blocking pool (it may call the component).
async fn api(
    ui: Arc<Ui>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    answer: impl FnOnce(&Arc<Ui>) -> Response + Send + 'static,
) -> Response {
    if let Err(why) = ui.guard(Access::Api, &method, &headers, &uri) {
        return harden(plain(StatusCode::FORBIDDEN, why));
    }
    let answered = tokio::task::spawn_blocking(move || answer(&ui)).await;
    harden(answered.unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "failed")))
}

async fn list_presets(State(ui): Shared, method: Method, headers: HeaderMap, uri: Uri) -> Response {
    api(ui, method, headers, uri, |_| {
        let list: Vec<Value> = presets::all()
            .iter()
            .map(|(name, preset)| {
                json!({
                    "name": name,
                    "title": preset.title,
                    "grants": preset.grants,
                    "notes": preset.notes,
                    "placeholders": preset.placeholders.iter().map(|(key, p)| json!({
                        "name": key,
                        "description": p.description,
                        "example": p.example,
                        "default": p.default,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        json_response(StatusCode::OK, &Value::Array(list))
    })
    .await
}

/// One write to the API: guarded like [`api`], its body read as a JSON object, and an error
/// from `answer` sent back as a 400 that says what is wrong.
async fn api_write(
    ui: Arc<Ui>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
    answer: impl FnOnce(&Arc<Ui>, &Value) -> Result<Response, String> + Send + 'static,
) -> Response {
    api(ui, method, headers, uri, move |ui| {
        body_json(&body)
            .map_err(str::to_owned)
            .and_then(|request| answer(ui, &request))
            .unwrap_or_else(|message| bad_request(&message))
    })
    .await
}

async fn check(
    State(ui): Shared,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    api_write(ui, method, headers, uri, body, |ui, request| {
        let text = connection_text(request)?;
        let problems: Vec<Value> = match config_file::parse(&text) {
            Ok(config) => ui.problems(&config),
            Err(config_file::ConfigFileError::Problems(found)) => {
                found.into_iter().map(|p| (p.key, p.message)).collect()
            }
            Err(other) => vec![("config".into(), other.to_string())],
        }
        .into_iter()
        .map(|(key, message)| json!({ "key": key, "message": message }))
        .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({ "problems": problems }),
        ))
    })
    .await
}

async fn store_secret(
    State(ui): Shared,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    api_write(ui, method, headers, uri, body, |ui, request| {
        let (Some(name), Some(value)) = (request["name"].as_str(), request["value"].as_str())
        else {
            return Err("a secret needs a name and a value".into());
        };
        let name = name.trim();
        if name.is_empty() || value.is_empty() {
            return Err("a secret needs a name and a value".into());
        }
        ui.services.secrets.set(name, value)?;
        // The value never comes back, not even in part.
        Ok(json_response(StatusCode::OK, &json!({ "stored": name })))
    })
    .await
}

async fn start_validation(
    State(ui): Shared,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    api_write(ui, method, headers, uri, body, |ui, request| {
        let id = ui.start_run(request)?;
        Ok(json_response(StatusCode::OK, &json!({ "run": id })))
    })
    .await
}

async fn run_status(
    State(ui): Shared,
    UrlPath(id): UrlPath<u64>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    api(ui, method, headers, uri, move |ui| {
        let run = lock(&ui.runs).get(&id).map(|run| lock(run).clone());
        match run {
            Some(run) => json_response(StatusCode::OK, &json!(run)),
            None => json_response(StatusCode::NOT_FOUND, &json!({ "error": "no such run" })),
        }
    })
    .await
}

async fn save(
    State(ui): Shared,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    api_write(ui, method, headers, uri, body, |ui, request| {
        let text = connection_text(request)?;
        let file = request["file"].as_str().and_then(file_name).ok_or(
            "the file name takes letters, digits, '.', '-' and '_', ends in .json and does not \
             start with a dot",
        )?;
        config_file::parse(&text).map_err(|e| e.to_string())?;
        let path = ui.dir.join(file);
        let pretty = serde_json::from_str::<Value>(&text)
            .and_then(|value| serde_json::to_string_pretty(&value))
            .unwrap_or(text);
        Ok(
            match write_new(&path, &pretty, request["overwrite"].as_bool() == Some(true)) {
                Ok(()) => json_response(
                    StatusCode::OK,
                    &json!({ "saved": path.display().to_string() }),
                ),
                Err(error) => json_response(
                    StatusCode::CONFLICT,
                    &json!({ "error": format!("{}: {error}", path.display()) }),
                ),
            },
        )
    })
    .await
}

/// A plain file name for a saved connection: no directory, no hidden file.
fn file_name(name: &str) -> Option<&str> {
    let ok = name.len() <= 100
        && name.ends_with(".json")
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    ok.then_some(name)
}

fn write_new(path: &Path, text: &str, overwrite: bool) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}

/// Serves the page on `listener` until the process ends.
pub fn serve(ui: Arc<Ui>, listener: TcpListener) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = Router::new()
            .route("/", get(page))
            .route("/app.js", get(asset))
            .route("/app.css", get(asset))
            .route("/api/presets", get(list_presets))
            .route("/api/check", post(check))
            .route("/api/secret", post(store_secret))
            .route("/api/validate", post(start_validation))
            .route("/api/run/{id}", get(run_status))
            .route("/api/save", post(save))
            .fallback(|| async { harden(plain(StatusCode::NOT_FOUND, "not found")) })
            .with_state(ui);
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, app).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
    }

    #[test]
    fn saved_files_stay_in_their_folder() {
        assert_eq!(file_name("crm.json"), Some("crm.json"));
        for refused in [
            "../x.json",
            "a/b.json",
            ".hidden.json",
            "x.txt",
            "x .json",
            "",
        ] {
            assert_eq!(file_name(refused), None, "{refused}");
        }
    }
}
