//! `oauth2-host validate`: a connection's whole check as one checklist: the configuration, a
//! token, the API called with it, and the same again after the token's expiry is played forward.

use std::sync::{Arc, Mutex};

use oauth2_plugin::provider_text::escape_controls;
use oauth2_runtime::api_call;
use oauth2_runtime::{
    ConnectionConfig, GrantType, HttpClient, HttpRequest, HttpResponse, Plugin, Services, Token,
    TransportError,
};
use serde::Serialize;

/// How much of the API's answer a step shows.
const PAYLOAD_CHARS: usize = 160;

/// What the API must answer for the API steps to pass.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// The status; any 2xx when not given.
    pub status: Option<u16>,
    /// JSON pointers into the answer and the value each must have: a JSON value, or else
    /// the text a string must equal.
    pub json: Vec<(String, String)>,
}

/// One line of the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: &'static str,
    pub passed: bool,
    pub detail: String,
}

/// The checklist; every step after a failed one is left out, since it depends on it.
#[derive(Default, Serialize)]
pub struct Report<'a> {
    pub passed: bool,
    pub steps: Vec<Step>,
    #[serde(skip)]
    progress: Option<&'a dyn Fn(&Step)>,
}

impl Report<'_> {
    /// A checklist that stopped at its first step.
    pub fn failed(step: &'static str, detail: String) -> Self {
        let mut report = Self::default();
        report.push(step, Err(detail));
        report
    }

    fn push(&mut self, step: &'static str, outcome: Result<String, String>) -> bool {
        let passed = outcome.is_ok();
        let detail = outcome.unwrap_or_else(|e| e);
        let step = Step {
            step,
            passed,
            detail,
        };
        if let Some(progress) = self.progress {
            progress(&step);
        }
        self.steps.push(step);
        self.passed = self.steps.iter().all(|step| step.passed);
        passed
    }

    /// The checklist as a person reads it, one step a line.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for step in &self.steps {
            let mark = if step.passed { "pass" } else { "FAIL" };
            out.push_str(&format!("[{mark}] {}: {}\n", step.step, step.detail));
        }
        out.push_str(if self.passed {
            "every step passed\n"
        } else {
            "validation failed\n"
        });
        out
    }
}

/// The token endpoint requests a run sent, by grant type: how the checklist knows whether a
/// token was fetched, refreshed or taken from the store.
struct Recording {
    inner: Arc<dyn HttpClient>,
    token_url: String,
    grants: Mutex<Vec<String>>,
}

impl Recording {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.grants.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl HttpClient for Recording {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        if request.url.trim() == self.token_url.trim() {
            let grant = form_urlencoded::parse(&request.body)
                .find(|(name, _)| name == "grant_type")
                .map_or_else(|| "(none)".to_owned(), |(_, value)| value.into_owned());
            self.grants
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(grant);
        }
        self.inner.send(request)
    }
}

/// What a run of the checklist needs besides the connection.
pub struct Checks<'a> {
    /// What the offline check found; empty when the configuration is usable.
    pub problems: Vec<String>,
    pub api_url: &'a str,
    pub expect: &'a Expectations,
    /// Runs the user's part of the grant (the authorization-code consent, the device code
    /// approval) and returns the token it stored.
    pub consent: &'a dyn Fn(&Services) -> anyhow::Result<Token>,
    /// Told of every step as it ends, for a page that shows the checklist live.
    pub progress: &'a dyn Fn(&Step),
}

/// Runs the checklist.
pub fn run<'a>(
    plugin: &Plugin,
    services: &Services,
    config: &ConnectionConfig,
    checks: &'a Checks<'a>,
) -> Report<'a> {
    let Checks {
        problems,
        api_url,
        expect,
        consent,
        progress,
    } = checks;
    let mut report = Report {
        progress: Some(progress),
        ..Report::default()
    };
    let grant = crate::config_file::grant_name(config.grant_type);
    let offline = if problems.is_empty() {
        Ok(format!("{grant}, token_url {}", config.token_url))
    } else {
        Err(problems.join("; "))
    };
    let consent = *consent;
    if !report.push("configuration", offline) {
        return report;
    }

    let recording = Arc::new(Recording {
        inner: Arc::clone(&services.http),
        token_url: config.token_url.clone(),
        grants: Mutex::default(),
    });
    let services = Services {
        http: recording.clone(),
        ..services.clone()
    };
    let token = if matches!(
        config.grant_type,
        GrantType::AuthorizationCode | GrantType::DeviceCode
    ) {
        consent(&services).map_err(|e| format!("{e:#}"))
    } else {
        plugin
            .ensure_token(&services, config)
            .map_err(|e| e.to_string())
    };
    let token = match token {
        Ok(token) => token,
        Err(error) => {
            report.push("token", Err(error));
            return report;
        }
    };
    let how = match recording.take().as_slice() {
        [] => "the stored token is still valid (no request sent)".to_owned(),
        grants => format!("fetched with {}", grants.join(", then ")),
    };
    report.push("token", Ok(format!("{how}; {}", describe(&token))));

    if !report.push(
        "API call",
        call_api(plugin, &services, config, api_url, expect),
    ) {
        return report;
    }

    // The access token's expiry, played forward: the component drops it and keeps the refresh
    // token, as it does after a 401, so the next step must refresh or fetch anew.
    let before = token.refresh_token.as_ref().map(|t| t.secret().to_owned());
    if let Err(error) = plugin.forget_token(&services, config, None) {
        report.push("after expiry", Err(error.to_string()));
        return report;
    }
    let renewed = plugin.ensure_token(&services, config);
    let grants = recording.take();
    let renewed = match renewed {
        Ok(token) => token,
        Err(error) => {
            report.push("after expiry", Err(error.to_string()));
            return report;
        }
    };
    let after = renewed
        .refresh_token
        .as_ref()
        .map(|t| t.secret().to_owned());
    let renewal = match (grants.as_slice(), &before, &after) {
        ([], _, _) => Err("no token request after the access token was dropped".to_owned()),
        ([only], Some(_), Some(_)) if only == "refresh_token" && before != after => Ok(
            "refreshed; the provider rotated the refresh token and the new one is stored"
                .to_owned(),
        ),
        ([only], Some(_), Some(_)) if only == "refresh_token" => {
            Ok("refreshed; the provider kept the refresh token".to_owned())
        }
        (grants, None, _) => Ok(format!(
            "no refresh token: a new token was fetched with {}",
            grants.join(", then ")
        )),
        (grants, Some(_), _) => Ok(format!(
            "the refresh token was not usable; a new token was fetched with {}",
            grants.join(", then ")
        )),
    };
    if !report.push("after expiry", renewal) {
        return report;
    }
    report.push(
        "API call after expiry",
        call_api(plugin, &services, config, api_url, expect),
    );
    report
}

fn describe(token: &Token) -> String {
    format!(
        "{} token, expires_at {}, scope {}, {}",
        escape_controls(&token.token_type),
        token
            .expires_at
            .map_or_else(|| "unknown".to_owned(), |at| at.to_string()),
        escape_controls(token.scope.as_deref().unwrap_or("(not stated)")),
        if token.refresh_token.is_some() {
            "with a refresh token"
        } else {
            "no refresh token"
        }
    )
}

/// `GET api_url` with the connection's token, checked against `expect`. The detail shows the
/// status and the start of the answer, with the connection's secrets removed.
fn call_api(
    plugin: &Plugin,
    services: &Services,
    config: &ConnectionConfig,
    api_url: &str,
    expect: &Expectations,
) -> Result<String, String> {
    let request = HttpRequest {
        method: "GET".into(),
        url: api_url.to_owned(),
        headers: vec![],
        body: vec![],
    };
    let outcome = match api_call::call(plugin, services, config, &request) {
        Ok(outcome) => outcome,
        Err(error) => return Err(error.to_string()),
    };
    let response = &outcome.response;
    let view = payload_view(plugin, services, config, &response.body);
    let mut detail = format!("HTTP {}", response.status);
    if outcome.retried {
        detail.push_str(" (after a 401 and a fresh token)");
    }
    detail.push_str(&format!(", {view}"));
    let status_ok = match expect.status {
        Some(status) => response.status == status,
        None => (200..300).contains(&response.status),
    };
    if !status_ok {
        let wanted = expect
            .status
            .map_or_else(|| "a 2xx status".to_owned(), |s| format!("status {s}"));
        let hint = outcome
            .hint()
            .map(|hint| format!("; {hint}"))
            .unwrap_or_default();
        return Err(format!("{detail}; expected {wanted}{hint}"));
    }
    for (pointer, wanted) in &expect.json {
        let body: Option<serde_json::Value> = serde_json::from_slice(&response.body).ok();
        let found = body.as_ref().and_then(|body| body.pointer(pointer));
        let matches = found.is_some_and(|found| {
            serde_json::from_str::<serde_json::Value>(wanted).is_ok_and(|wanted| *found == wanted)
                || found.as_str() == Some(wanted.as_str())
        });
        if !matches {
            let seen = found.map_or_else(
                || "nothing there".to_owned(),
                |found| shorten(&escape_controls(&found.to_string())),
            );
            return Err(format!(
                "{detail}; expected {pointer} = {}, found {seen}",
                escape_controls(wanted)
            ));
        }
    }
    Ok(detail)
}

/// The start of the answer on one line, control characters escaped, and the connection's
/// token and secrets cut out: an API that echoes the request shows none of them.
fn payload_view(
    plugin: &Plugin,
    services: &Services,
    config: &ConnectionConfig,
    body: &[u8],
) -> String {
    if body.is_empty() {
        return "empty body".to_owned();
    }
    let mut text = String::from_utf8_lossy(body).into_owned();
    let mut secrets: Vec<String> = Vec::new();
    if let Ok(token) = plugin.ensure_token(services, config) {
        secrets.push(token.access_token.secret().to_owned());
        if let Some(refresh) = &token.refresh_token {
            secrets.push(refresh.secret().to_owned());
        }
    }
    for name in [&config.client_secret_name, &config.password_name]
        .into_iter()
        .flatten()
    {
        if let Ok(Some(value)) = services.secrets.get(name) {
            secrets.push(value);
        }
    }
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        text = text.replace(secret.as_str(), "[redacted]");
    }
    format!("{} bytes: {}", body.len(), shorten(&escape_controls(&text)))
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(PAYLOAD_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The `--expect-json POINTER=VALUE` argument.
pub fn parse_expectation(argument: &str) -> Result<(String, String), String> {
    let (pointer, value) = argument
        .split_once('=')
        .ok_or("takes POINTER=VALUE, e.g. /sub=alice")?;
    if !(pointer.is_empty() || pointer.starts_with('/')) {
        return Err("the pointer starts with / (RFC 6901), e.g. /user/id=42".to_owned());
    }
    Ok((pointer.to_owned(), value.to_owned()))
}
