//! Secrets never leak (issue "Secrets"): every secret gets a unique sentinel value, every
//! success and error path runs, and no sentinel may show up in any error text (`Display`,
//! `{:#}`), any `Debug` output, or the `oauth2-host` command's stdout and stderr. The one
//! exception is `oauth2-host token --reveal`, which must show the access token.
//!
//! Three ways in: the library (the native rlib functions of `oauth2_plugin`), the component
//! (through `oauth2_runtime::Plugin` in wasmtime) and the command (the real `oauth2-host` binary).
//!
//! The client secret and the passwords are sentinels from the start. The provider's own tokens
//! are random, so for the library and the component a [`SentinelIssuer`] sits in front of it:
//! it swaps every token the provider issues for a fresh sentinel (and adds a sentinel ID token,
//! which the provider does not issue), and swaps sentinels back on the way out. The command
//! talks to the provider directly; its tokens are captured from its store file and checked too.
//!
//! Sentinels hold `:`, `+`, `/` and a space, so encoding cannot hide a leak: the checker also
//! looks for their percent-encoded, form-encoded, base64 (a leaked Basic header) and byte-list
//! (`Debug` of a `Vec<u8>`) forms, and for the bare word `SENTINEL` (a truncated leak).

#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{Debug, Display};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use common::{CLIENT_ID, Host, REDIRECT_URI, START, USERNAME, call_api, consent, plugin};
use oauth2_plugin as lib;
use oauth2_runtime::bindings::CodeExchange;
use oauth2_runtime::{
    CallError, ClientAuth, ConnectionConfig, GrantType, HttpClient, HttpRequest, HttpResponse,
    ManualClock, MemoryStore, OauthError, Pair, SecretStore, Services, Token, TokenStep,
    TransportError, UreqClient,
};
use oauth2_test_provider::Provider;

// ---------------------------------------------------------------------------------------------
// The sentinels
// ---------------------------------------------------------------------------------------------

const CLIENT_SECRET: &str = "SENTINEL-client-secret-7f3a: a+b/c d";
const WRONG_CLIENT_SECRET: &str = "SENTINEL-wrong-client-secret-2b9e: e+f/g h";
const PASSWORD: &str = "SENTINEL-password-c41e: i+j/k l";
const WRONG_PASSWORD: &str = "SENTINEL-wrong-password-8d07: m+n/o p";
/// Token values in responses the tests write themselves (`parse_token_response`, injected).
const CRAFTED_ACCESS_TOKEN: &str = "SENTINEL-crafted-access-token-5a11: q+r/s t";
const CRAFTED_REFRESH_TOKEN: &str = "SENTINEL-crafted-refresh-token-93c0: u+v/w x";
const CRAFTED_ID_TOKEN: &str = "SENTINEL-crafted-id-token-0e6f: y+z/a b";
/// An extra response field whose name says it is a credential (Salesforce's `signature`).
const CRAFTED_SIGNATURE: &str = "SENTINEL-crafted-signature-6b42: c+d/e f";
/// An authorization code on a redirect the tests write themselves.
const CRAFTED_CODE: &str = "SENTINEL-crafted-code-d3a8: g+h/i j";
/// What every sentinel starts with: seen anywhere, part of one leaked.
const MARKER: &str = "SENTINEL";

/// The store names of the secrets; none of them is secret.
const CLIENT_SECRET_NAME: &str = "client-secret";
const WRONG_CLIENT_SECRET_NAME: &str = "wrong-client-secret";
const PASSWORD_NAME: &str = "alice-password";
const WRONG_PASSWORD_NAME: &str = "wrong-password";
const MISSING_SECRET_NAME: &str = "nobody-stored-this";
const PROVIDER_SAYS: &str = "described by the provider";

/// A secret's label (for the report) and its value.
type Secret = (String, String);

fn fixed_secrets() -> Vec<Secret> {
    [
        ("client secret", CLIENT_SECRET),
        ("wrong client secret", WRONG_CLIENT_SECRET),
        ("password", PASSWORD),
        ("wrong password", WRONG_PASSWORD),
        ("crafted access token", CRAFTED_ACCESS_TOKEN),
        ("crafted refresh token", CRAFTED_REFRESH_TOKEN),
        ("crafted ID token", CRAFTED_ID_TOKEN),
        ("crafted signature", CRAFTED_SIGNATURE),
        ("crafted authorization code", CRAFTED_CODE),
    ]
    .into_iter()
    .map(|(label, value)| (label.to_owned(), value.to_owned()))
    .collect()
}

// ---------------------------------------------------------------------------------------------
// The checker
// ---------------------------------------------------------------------------------------------

/// RFC 3986 unreserved characters kept, everything else percent-encoded: how the Basic header's
/// halves are encoded.
const UNRESERVED_KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Every form in which `secret` would be recognisable in a text: as it is, percent- and
/// form-encoded, JSON- and `Debug`-escaped, as the byte list `Debug` prints for a `Vec<u8>`, and
/// as base64 in any surrounding (the encoding of the secret at each of the three alignments,
/// less the characters the surrounding bytes take part in).
fn forms(secret: &str) -> Vec<(String, String)> {
    let lower_hex: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect();
    let texts = [
        ("raw", secret.to_owned()),
        (
            "percent-encoded",
            utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string(),
        ),
        ("percent-encoded, lower-case hex", lower_hex),
        (
            "percent-encoded except unreserved",
            utf8_percent_encode(secret, UNRESERVED_KEPT).to_string(),
        ),
        (
            "form-urlencoded",
            form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        ),
        (
            "JSON-escaped",
            serde_json::to_string(secret)
                .unwrap()
                .trim_matches('"')
                .to_owned(),
        ),
        (
            "Debug-escaped",
            format!("{secret:?}").trim_matches('"').to_owned(),
        ),
    ];
    let mut forms: Vec<(String, String)> = Vec::new();
    for (name, text) in &texts {
        forms.push((name.to_string(), text.clone()));
        let bytes: Vec<String> = text.bytes().map(|b| b.to_string()).collect();
        forms.push((format!("byte list of {name}"), bytes.join(", ")));
        for (alphabet, engine) in [("base64", STANDARD_NO_PAD), ("base64url", URL_SAFE_NO_PAD)] {
            for offset in 0..3 {
                let mut shifted = vec![0u8; offset];
                shifted.extend_from_slice(text.as_bytes());
                let encoded = engine.encode(&shifted);
                // Characters mixing in the filler bytes, and a last one mixing in padding bits,
                // depend on the surrounding; the ones between depend on the secret alone.
                let first = (offset * 8).div_ceil(6);
                let last = shifted.len() * 8 / 6;
                forms.push((
                    format!("{alphabet} of {name} at offset {offset}"),
                    encoded[first..last].to_owned(),
                ));
            }
        }
    }
    let mut seen = BTreeSet::new();
    forms.retain(|(_, text)| seen.insert(text.clone()));
    forms
}

/// Every output a test produced, by label, to be checked at its end.
#[derive(Default)]
struct Outputs(Vec<(String, String)>);

impl Outputs {
    fn text(&mut self, label: &str, text: impl Into<String>) {
        self.0.push((label.to_owned(), text.into()));
    }

    fn debug(&mut self, label: &str, value: &impl Debug) {
        self.text(&format!("{label} (Debug)"), format!("{value:?}"));
        self.text(&format!("{label} (Debug {{:#?}})"), format!("{value:#?}"));
    }

    fn error(&mut self, label: &str, error: &(impl Display + Debug)) {
        self.text(&format!("{label} (Display)"), error.to_string());
        self.text(&format!("{label} (Display {{:#}})"), format!("{error:#}"));
        self.debug(label, error);
    }

    /// A result whose `Ok` value has a `Debug` that is meant to be shown.
    fn result(&mut self, label: &str, result: &Result<impl Debug, impl Display + Debug>) {
        match result {
            Ok(value) => self.debug(label, value),
            Err(error) => self.error(label, error),
        }
    }

    /// A result whose `Ok` value is not printed (a request or response of the WIT bindings, whose
    /// generated `Debug` shows every field: see `wit_generated_debug_of_requests_and_responses`).
    fn error_of<T>(&mut self, label: &str, result: &Result<T, impl Display + Debug>) {
        if let Err(error) = result {
            self.error(label, error);
        }
    }

    fn process(&mut self, label: &str, output: &Output) {
        self.text(&format!("{label} stdout"), stdout(output));
        self.text(&format!("{label} stderr"), stderr(output));
    }

    /// Panics naming every output that holds a secret in any of its forms, or the marker. With
    /// `SENTINELS_SHOW` set, prints every output first, to audit what the paths produced.
    fn assert_no_leaks(&self, secrets: &[Secret]) {
        if std::env::var_os("SENTINELS_SHOW").is_some() {
            for (label, text) in &self.0 {
                eprintln!("--- {label}\n{text}");
            }
        }
        let leaks = find_leaks(&self.0, secrets, true);
        assert!(
            leaks.is_empty(),
            "{} leak(s) in {} outputs:\n{}",
            leaks.len(),
            self.0.len(),
            leaks.join("\n")
        );
        eprintln!(
            "checked {} outputs ({} bytes) against {} secrets",
            self.0.len(),
            self.0.iter().map(|(_, text)| text.len()).sum::<usize>(),
            secrets.len()
        );
    }
}

/// One line per (output, secret, form) found, with the text around it.
fn find_leaks(outputs: &[(String, String)], secrets: &[Secret], marker: bool) -> Vec<String> {
    let needles: Vec<(&str, String, String)> = secrets
        .iter()
        .flat_map(|(label, value)| {
            forms(value)
                .into_iter()
                .map(move |(form, needle)| (label.as_str(), form, needle))
        })
        .collect();
    let mut leaks = Vec::new();
    for (output, text) in outputs {
        let before = leaks.len();
        for (secret, form, needle) in &needles {
            if let Some(at) = text.find(needle.as_str()) {
                let shown = excerpt(text, at, needle.len());
                leaks.push(format!("{output}: the {secret} ({form}) in {shown:?}"));
            }
        }
        if marker
            && leaks.len() == before
            && let Some(at) = text.find(MARKER)
        {
            let shown = excerpt(text, at, MARKER.len());
            leaks.push(format!("{output}: part of a sentinel in {shown:?}"));
        }
    }
    leaks
}

/// The match at `at..at + len` with up to 80 bytes either side.
fn excerpt(text: &str, at: usize, len: usize) -> &str {
    let mut start = at.saturating_sub(80);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + len + 80).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    &text[start..end]
}

// ---------------------------------------------------------------------------------------------
// A provider that knows the sentinel secrets, and one that issues sentinel tokens
// ---------------------------------------------------------------------------------------------

/// The embedded provider with the sentinel client secret and password.
fn sentinel_provider() -> Provider {
    let mut config = common::provider_config();
    config.clients[0].secret = Some(CLIENT_SECRET.to_owned());
    config.users[0].password = PASSWORD.to_owned();
    Provider::start(config).expect("the provider starts")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A token swapped for a sentinel; `real` is the provider's value (none for an ID token, which
/// the provider does not issue).
struct Swap {
    kind: &'static str,
    sentinel: String,
    real: Option<String>,
}

/// The HTTP between the client and the provider: every token in a token response is replaced by
/// a new sentinel, and an ID token sentinel added; sentinels in the headers and form bodies of
/// requests are replaced by the provider's tokens. The client only ever holds sentinels.
#[derive(Default)]
struct SentinelIssuer {
    http: UreqClient,
    swaps: Mutex<Vec<Swap>>,
}

impl SentinelIssuer {
    fn issue(swaps: &mut Vec<Swap>, kind: &'static str, real: Option<String>) -> String {
        // Numbered across issuers, so no two sentinels of the test binary are alike.
        static ISSUED: AtomicUsize = AtomicUsize::new(0);
        let n = ISSUED.fetch_add(1, Ordering::Relaxed) + 1;
        let sentinel = format!("SENTINEL-{kind}-{n:03}-e5d1: w+x/y z");
        swaps.push(Swap {
            kind,
            sentinel: sentinel.clone(),
            real,
        });
        sentinel
    }

    fn swap_out(&self, request: &HttpRequest) -> HttpRequest {
        let swaps = lock(&self.swaps);
        let real_of = |value: &str| {
            swaps
                .iter()
                .find(|s| s.sentinel == value)
                .and_then(|s| s.real.clone())
        };
        let mut request = request.clone();
        for header in &mut request.headers {
            for swap in swaps.iter() {
                if let Some(real) = &swap.real {
                    header.value = header.value.replace(&swap.sentinel, real);
                }
            }
        }
        let form: Vec<(String, String)> =
            form_urlencoded::parse(&request.body).into_owned().collect();
        if form.iter().any(|(_, value)| real_of(value).is_some()) {
            request.body =
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form.iter().map(|(name, value)| {
                        (name, real_of(value).unwrap_or_else(|| value.clone()))
                    }))
                    .finish()
                    .into_bytes();
            request
                .headers
                .retain(|h| !h.name.eq_ignore_ascii_case("content-length"));
        }
        request
    }

    fn swap_in(&self, response: &mut HttpResponse) {
        let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(&response.body) else {
            return;
        };
        let Some(Value::String(access_token)) = fields.get("access_token").cloned() else {
            return;
        };
        let mut swaps = lock(&self.swaps);
        let access = Self::issue(&mut swaps, "access-token", Some(access_token));
        fields.insert("access_token".into(), access.into());
        if let Some(Value::String(refresh_token)) = fields.get("refresh_token").cloned() {
            let refresh = Self::issue(&mut swaps, "refresh-token", Some(refresh_token));
            fields.insert("refresh_token".into(), refresh.into());
        }
        let id = Self::issue(&mut swaps, "id-token", None);
        fields.insert("id_token".into(), id.into());
        response.body = serde_json::to_vec(&fields).unwrap();
        response
            .headers
            .retain(|h| !h.name.eq_ignore_ascii_case("content-length"));
    }

    /// Every token issued: the sentinels and the provider's values behind them.
    fn secrets(&self) -> Vec<Secret> {
        let mut secrets = Vec::new();
        for swap in lock(&self.swaps).iter() {
            secrets.push((format!("{} sentinel", swap.kind), swap.sentinel.clone()));
            if let Some(real) = &swap.real {
                secrets.push((format!("provider's {}", swap.kind), real.clone()));
            }
        }
        secrets
    }

    fn count(&self, kind: &str) -> usize {
        lock(&self.swaps).iter().filter(|s| s.kind == kind).count()
    }
}

impl HttpClient for SentinelIssuer {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let token_request = request.method == "POST" && request.url.ends_with("/token");
        let mut response = self.http.send(&self.swap_out(request))?;
        if token_request && (200..300).contains(&response.status) {
            self.swap_in(&mut response);
        }
        Ok(response)
    }
}

/// The tokens in a store's entries (a `MemoryStore` snapshot or the command's store file): the
/// cached tokens and the PKCE verifiers of pending authorizations.
fn stored_secrets(label: &str, entries: &[(String, String)]) -> Vec<Secret> {
    let mut secrets = Vec::new();
    for (name, value) in entries {
        if name.starts_with("oauth2/token/") {
            let cached = lib::token_cache::CachedToken::decode(value).expect("a cached token");
            for (kind, token) in [
                ("access token", cached.access_token.map(|t| t.into_secret())),
                (
                    "refresh token",
                    cached.refresh_token.map(|t| t.into_secret()),
                ),
                ("ID token", cached.id_token.map(|t| t.into_secret())),
            ] {
                if let Some(token) = token {
                    secrets.push((format!("{label} {kind}"), token));
                }
            }
        } else if name.starts_with("oauth2/pending/") {
            let pending = lib::token_cache::PendingAuthorization::decode(value).expect("pending");
            secrets.push((
                format!("{label} PKCE verifier"),
                pending.pkce_verifier.into_secret(),
            ));
        }
    }
    secrets
}

/// The `code` parameter of a redirect URL.
fn code_of(redirect: &str) -> String {
    url::Url::parse(redirect)
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "code")
        .map(|(_, code)| code.into_owned())
        .expect("a code on the redirect")
}

/// A port nothing listens on: bind one, note it, free it.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A token URL carrying the client secret as userinfo, as a user might paste it.
fn token_url_with_credentials(provider: &Provider) -> String {
    format!(
        "http://{CLIENT_ID}:{}@{}/token",
        utf8_percent_encode(CLIENT_SECRET, UNRESERVED_KEPT),
        provider.addr()
    )
}

fn api_request(provider: &Provider) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url: format!("{}/api/me", provider.base_url()),
        headers: vec![],
        body: vec![],
    }
}

// ---------------------------------------------------------------------------------------------
// Token responses written by the tests
// ---------------------------------------------------------------------------------------------

/// A token endpoint answer: status, content type, body.
type Answer = (u16, &'static str, Vec<u8>);

fn json_response(status: u16, body: &str) -> Answer {
    (status, "application/json", body.as_bytes().to_vec())
}

/// Token endpoint answers holding crafted sentinels: the first two are tokens, the others are
/// not, and each of those must fail without repeating what the body holds.
fn crafted_responses() -> Vec<(&'static str, bool, Answer)> {
    let (at, rt, id, sig) = (
        CRAFTED_ACCESS_TOKEN,
        CRAFTED_REFRESH_TOKEN,
        CRAFTED_ID_TOKEN,
        CRAFTED_SIGNATURE,
    );
    let form = |pairs: &[(&str, &str)]| {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes()
    };
    vec![
        (
            "a full JSON token",
            true,
            json_response(
                200,
                &serde_json::json!({
                    "access_token": at, "token_type": "Bearer", "expires_in": 3600,
                    "refresh_token": rt, "id_token": id, "scope": "read",
                    "signature": sig, "instance_url": "https://na1.example.com",
                    // Credentials a name rule of "token" or "secret" would miss, and nested
                    // ones (Slack's user token and webhook URL).
                    "jwt": sig, "session": sig, "otp": sig,
                    "authed_user": { "id": "U1", "access_token": sig, "refresh_token": sig },
                    "incoming_webhook": { "channel": "#general", "url": sig },
                })
                .to_string(),
            ),
        ),
        (
            "a form-encoded token",
            true,
            (
                200,
                "application/x-www-form-urlencoded",
                form(&[
                    ("access_token", at),
                    ("refresh_token", rt),
                    ("id_token", id),
                    ("bot_access_token", sig),
                    ("expires_in", "3600"),
                ]),
            ),
        ),
        (
            "a token with a non-numeric expires_in",
            false,
            json_response(
                200,
                &serde_json::json!({
                    "access_token": at, "refresh_token": rt, "id_token": id, "expires_in": "soon",
                })
                .to_string(),
            ),
        ),
        (
            "a form token with a non-numeric expires_in",
            false,
            (
                200,
                "application/x-www-form-urlencoded",
                form(&[
                    ("access_token", at),
                    ("refresh_token", rt),
                    ("expires_in", "soon"),
                ]),
            ),
        ),
        (
            "JSON cut short",
            false,
            json_response(
                200,
                &format!(r#"{{"access_token":"{at}","refresh_token":"{rt}","id_token":"{id}"#),
            ),
        ),
        (
            "invalid JSON",
            false,
            json_response(
                200,
                &format!(r#"{{"access_token":"{at}","refresh_token":"{rt}",}}"#),
            ),
        ),
        (
            "an HTML page",
            false,
            (
                200,
                "text/html",
                format!("<html><body>{at} {rt} {id}</body></html>").into_bytes(),
            ),
        ),
        (
            "a body that is not UTF-8",
            false,
            (
                200,
                "application/octet-stream",
                [&[0xff, 0xfe][..], at.as_bytes(), rt.as_bytes()].concat(),
            ),
        ),
        (
            "an error status with tokens but no error code",
            false,
            json_response(
                500,
                &serde_json::json!({ "access_token": at, "refresh_token": rt }).to_string(),
            ),
        ),
        (
            "an OAuth error beside a refresh token",
            false,
            json_response(
                400,
                &serde_json::json!({
                    "error": "invalid_grant", "error_description": PROVIDER_SAYS,
                    "refresh_token": rt, "id_token": id,
                })
                .to_string(),
            ),
        ),
        (
            "an access token that is not a string",
            false,
            json_response(
                200,
                &serde_json::json!({ "access_token": 12, "refresh_token": rt }).to_string(),
            ),
        ),
        (
            "an error that echoes the client secret and password, encoded and not",
            false,
            json_response(
                401,
                &serde_json::json!({
                    "error": "invalid_client",
                    "error_description": format!(
                        "got client_secret={} password={PASSWORD} ({CLIENT_SECRET})",
                        form_urlencoded::byte_serialize(CLIENT_SECRET.as_bytes()).collect::<String>()
                    ),
                    "error_uri": format!("https://idp.example/{}", STANDARD.encode(PASSWORD)),
                })
                .to_string(),
            ),
        ),
        (
            "an error object (Facebook) beside an access token",
            false,
            json_response(
                200,
                &serde_json::json!({
                    "error": { "type": "OAuthException", "message": PROVIDER_SAYS },
                    "access_token": at,
                })
                .to_string(),
            ),
        ),
    ]
}

fn wit_response((status, content_type, body): &Answer) -> HttpResponse {
    HttpResponse {
        status: *status,
        headers: vec![Pair {
            name: "Content-Type".into(),
            value: (*content_type).into(),
        }],
        body: body.clone(),
    }
}

fn native_response((status, content_type, body): &Answer) -> lib::http::HttpResponse {
    lib::http::HttpResponse {
        status: *status,
        headers: vec![("Content-Type".into(), (*content_type).into())],
        body: body.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// The component
// ---------------------------------------------------------------------------------------------

/// Host services over `http`, with a store holding every sentinel secret and a manual clock.
fn host_with(http: Arc<dyn HttpClient>) -> Host {
    let store = Arc::new(MemoryStore::new());
    for (name, value) in [
        (CLIENT_SECRET_NAME, CLIENT_SECRET),
        (WRONG_CLIENT_SECRET_NAME, WRONG_CLIENT_SECRET),
        (PASSWORD_NAME, PASSWORD),
        (WRONG_PASSWORD_NAME, WRONG_PASSWORD),
    ] {
        store.set(name, value).unwrap();
    }
    let clock = Arc::new(ManualClock::at_unix(START));
    Host {
        services: Services {
            http,
            secrets: store.clone(),
            tokens: store.clone(),
            clock: clock.clone(),
        },
        clock,
        store,
    }
}

fn component_config(
    provider: &Provider,
    grant_type: GrantType,
    client_auth: ClientAuth,
) -> ConnectionConfig {
    ConnectionConfig {
        client_auth,
        ..common::config(provider, grant_type)
    }
}

/// The summary `oauth2-host token` prints goes with the outputs; the `--reveal` one must hold
/// the access token and nothing else secret.
fn summaries(out: &mut Outputs, revealed: &mut Vec<(Token, String)>, label: &str, token: &Token) {
    out.text(
        &format!("{label} summary"),
        token.summary(false).to_string(),
    );
    revealed.push((token.clone(), token.summary(true).to_string()));
}

fn provider_error(result: &Result<Token, CallError>) -> (String, u16, String) {
    match result {
        Err(CallError::OAuth(OauthError::Provider(e))) => {
            (e.code.clone(), e.status, e.hint.clone())
        }
        other => panic!("not a provider error: {other:?}"),
    }
}

#[test]
fn component_paths_leak_no_secret() {
    let provider = sentinel_provider();
    let issuer = Arc::new(SentinelIssuer::default());
    let mut out = Outputs::default();
    let mut captured: Vec<Secret> = Vec::new();
    let mut revealed: Vec<(Token, String)> = Vec::new();
    let plugin = plugin();

    // Client credentials with Basic and with request-body client authentication.
    for client_auth in [ClientAuth::Basic, ClientAuth::RequestBody] {
        let label = format!("component client_credentials {client_auth:?}");
        let host = host_with(issuer.clone());
        let config = component_config(&provider, GrantType::ClientCredentials, client_auth);
        out.debug(&format!("{label} config"), &config);
        let token = plugin.ensure_token(&host.services, &config);
        out.result(&label, &token);
        let token = token.expect("a token");
        assert!(
            token
                .access_token
                .secret()
                .starts_with("SENTINEL-access-token-")
        );
        assert!(token.id_token.is_some(), "the issuer adds an ID token");
        summaries(&mut out, &mut revealed, &label, &token);

        let (status, body) = call_api(&provider, &host, &config);
        assert_eq!(status, 200, "{body}");
        out.text(&format!("{label} API body"), body);
        let mut instance = plugin.instance(&host.services).expect("an instance");
        let headers = instance.authorization_headers(&config, &api_request(&provider).url);
        out.error_of(&format!("{label} authorization_headers"), &headers);
        assert!(!headers.unwrap().0.is_empty(), "the fresh token decorates");
        let decorated = plugin.decorate_request(&host.services, &config, &api_request(&provider));
        out.error_of(&format!("{label} decorate_request"), &decorated);
        decorated.unwrap();
        let outcome = oauth2_runtime::api_call::call(
            plugin,
            &host.services,
            &config,
            &api_request(&provider),
        );
        out.result(&format!("{label} api_call"), &outcome);
        assert_eq!(outcome.unwrap().response.status, 200);
        out.debug(&format!("{label} store"), &*host.store);
        out.debug(&format!("{label} services"), &host.services);
    }
    assert_eq!(provider.token_request_count("client_credentials"), 2);

    // A wrong client secret: Basic and request body refused, and `auto` trying both.
    for client_auth in [ClientAuth::Basic, ClientAuth::RequestBody, ClientAuth::Auto] {
        let label = format!("component wrong client secret {client_auth:?}");
        let host = host_with(issuer.clone());
        let config = ConnectionConfig {
            client_secret_name: Some(WRONG_CLIENT_SECRET_NAME.into()),
            ..component_config(&provider, GrantType::ClientCredentials, client_auth)
        };
        let result = plugin.ensure_token(&host.services, &config);
        out.result(&label, &result);
        let (code, status, hint) = provider_error(&result);
        assert_eq!((code.as_str(), status), ("invalid_client", 401));
        if client_auth == ClientAuth::Auto {
            assert!(
                result
                    .unwrap_err()
                    .to_string()
                    .contains("both HTTP Basic and the request body"),
                "{hint}"
            );
        }
    }

    // The password grant: the right password, then refreshes with rotation after expiry.
    let host = host_with(issuer.clone());
    let password = component_config(&provider, GrantType::Password, ClientAuth::Basic);
    let first = plugin.ensure_token(&host.services, &password);
    out.result("component password grant", &first);
    let first = first.expect("a token");
    summaries(&mut out, &mut revealed, "component password grant", &first);
    assert_eq!(call_api(&provider, &host, &password).0, 200);
    let mut previous = first;
    for round in 1..=2 {
        host.advance(3600);
        let label = format!("component refresh {round}");
        let next = plugin.ensure_token(&host.services, &password);
        out.result(&label, &next);
        let next = next.expect("a refreshed token");
        assert_ne!(next.access_token, previous.access_token);
        assert_ne!(
            next.refresh_token, previous.refresh_token,
            "the provider rotates"
        );
        summaries(&mut out, &mut revealed, &label, &next);
        let (status, body) = call_api(&provider, &host, &password);
        assert_eq!(status, 200, "{body}");
        out.text(&format!("{label} API body"), body);
        previous = next;
    }
    assert_eq!(provider.token_request_count("refresh_token"), 2);

    // forget_token after the API refused the token: a refresh for the password grant, a new
    // token for client credentials.
    let client = component_config(&provider, GrantType::ClientCredentials, ClientAuth::Basic);
    assert_eq!(call_api(&provider, &host, &client).0, 200);
    provider.expire_all_access_tokens();
    for (label, config) in [("password", &password), ("client_credentials", &client)] {
        let (status, body) = call_api(&provider, &host, config);
        assert_eq!(status, 401);
        out.text(&format!("component 401 for {label}"), body);
        let forgotten = plugin.forget_token(&host.services, config, None);
        out.result(&format!("component forget_token {label}"), &forgotten);
        forgotten.unwrap();
        let again = plugin.ensure_token(&host.services, config);
        out.result(&format!("component after forget_token {label}"), &again);
        again.unwrap();
        assert_eq!(call_api(&provider, &host, config).0, 200);
    }
    assert_eq!(provider.token_request_count("refresh_token"), 3);
    captured.extend(stored_secrets("component store", &host.snapshot()));

    // The wrong password.
    let host = host_with(issuer.clone());
    let wrong = ConnectionConfig {
        password_name: Some(WRONG_PASSWORD_NAME.into()),
        ..password.clone()
    };
    let result = plugin.ensure_token(&host.services, &wrong);
    out.result("component wrong password", &result);
    assert_eq!(provider_error(&result).0, "invalid_grant");

    // Authorization code: no token yet, begin, consent, complete, a forged and a replayed
    // redirect, and a refresh the provider refuses.
    let host = host_with(issuer.clone());
    let code_config = ConnectionConfig {
        scope: Some("read write".into()),
        ..component_config(
            &provider,
            GrantType::AuthorizationCode,
            ClientAuth::RequestBody,
        )
    };
    let result = plugin.ensure_token(&host.services, &code_config);
    out.result("component authorization code before authorizing", &result);
    assert!(matches!(
        result,
        Err(CallError::OAuth(OauthError::AuthorizationRequired(_)))
    ));
    let start = plugin.begin_authorization(&host.services, &code_config);
    out.result("component begin_authorization", &start);
    let start = start.expect("authorization begins");
    captured.extend(stored_secrets("component pending", &host.snapshot()));
    let redirect = consent(&host, &start.url);
    captured.push(("component authorization code".into(), code_of(&redirect)));
    let forged = redirect.replace(&format!("state={}", start.state.secret()), "state=forged");
    let result = plugin.complete_authorization(&host.services, &code_config, &forged);
    out.result("component forged redirect", &result);
    assert!(matches!(
        result,
        Err(CallError::OAuth(OauthError::StateMismatch))
    ));
    let token = plugin.complete_authorization(&host.services, &code_config, &redirect);
    out.result("component complete_authorization", &token);
    summaries(
        &mut out,
        &mut revealed,
        "component code",
        &token.expect("a token"),
    );
    let replay = plugin.complete_authorization(&host.services, &code_config, &redirect);
    out.result("component replayed redirect", &replay);
    assert!(matches!(
        replay,
        Err(CallError::OAuth(OauthError::StateMismatch))
    ));
    assert_eq!(call_api(&provider, &host, &code_config).0, 200);
    let other_url = ConnectionConfig {
        redirect_uri: Some("http://127.0.0.1:10/elsewhere".into()),
        ..code_config.clone()
    };
    let result = plugin.complete_authorization(&host.services, &other_url, &redirect);
    out.result("component redirect to another URI", &result);
    assert!(result.is_err());
    captured.extend(stored_secrets("component code store", &host.snapshot()));
    provider.reject_next_token_request("invalid_grant", PROVIDER_SAYS);
    host.advance(3600);
    let result = plugin.ensure_token(&host.services, &code_config);
    out.result("component refused refresh", &result);
    assert!(matches!(
        result,
        Err(CallError::OAuth(OauthError::AuthorizationRequired(_)))
    ));

    // The provider's errors, for a new token and for a refresh.
    for code in [
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "server_error",
    ] {
        let host = host_with(issuer.clone());
        provider.reject_next_token_request(code, PROVIDER_SAYS);
        let result = plugin.ensure_token(&host.services, &client);
        out.result(&format!("component provider error {code}"), &result);
        assert_eq!(provider_error(&result).0, code);
    }
    let host = host_with(issuer.clone());
    plugin.ensure_token(&host.services, &password).unwrap();
    host.advance(3600);
    provider.reject_next_token_request("temporarily_unavailable", PROVIDER_SAYS);
    let result = plugin.ensure_token(&host.services, &password);
    out.result("component provider error on refresh", &result);
    assert_eq!(provider_error(&result).0, "temporarily_unavailable");
    captured.extend(stored_secrets("component refresh store", &host.snapshot()));

    // Token endpoint answers that are not tokens, from the provider and parsed directly.
    for (name, is_token, response) in crafted_responses() {
        let label = format!("component {name}");
        let host = host_with(issuer.clone());
        let sent = plugin
            .build_token_request(&host.services, &client, &TokenStep::NewToken)
            .unwrap();
        let parsed =
            plugin.parse_token_response(&host.services, &client, &sent, &wit_response(&response));
        out.result(&format!("{label} parsed"), &parsed);
        assert_eq!(parsed.is_ok(), is_token, "{label}: {parsed:?}");
        if let Ok(token) = &parsed {
            summaries(&mut out, &mut revealed, &label, token);
        }
        let (status, content_type, body) = &response;
        provider.fail_next_token_requests(1, *status, &String::from_utf8_lossy(body), content_type);
        let fetched = plugin.ensure_token(&host.services, &client);
        out.result(&format!("{label} from the provider"), &fetched);
    }
    let nested = ConnectionConfig {
        response_format: oauth2_runtime::ResponseFormat {
            token_path: "authed_user".into(),
            ..Default::default()
        },
        ..client.clone()
    };
    let host = host_with(issuer.clone());
    let body = serde_json::json!({ "ok": true, "refresh_token": CRAFTED_REFRESH_TOKEN });
    let sent = plugin
        .build_token_request(&host.services, &nested, &TokenStep::NewToken)
        .unwrap();
    let parsed = plugin.parse_token_response(
        &host.services,
        &nested,
        &sent,
        &wit_response(&json_response(200, &body.to_string())),
    );
    out.result("component token_path missing", &parsed);
    assert!(parsed.is_err());

    // A missing secret, for the client secret and for the password.
    let host = host_with(issuer.clone());
    for config in [
        ConnectionConfig {
            client_secret_name: Some(MISSING_SECRET_NAME.into()),
            ..client.clone()
        },
        ConnectionConfig {
            password_name: Some(MISSING_SECRET_NAME.into()),
            ..password.clone()
        },
    ] {
        let result = plugin.ensure_token(&host.services, &config);
        out.result("component missing secret", &result);
        assert!(matches!(
            result,
            Err(CallError::OAuth(OauthError::MissingSecret(_)))
        ));
        let built = plugin.build_token_request(&host.services, &config, &TokenStep::NewToken);
        out.error_of("component build_token_request missing secret", &built);
        assert!(built.is_err());
    }

    // Invalid configurations: plain http to a remote host, the secret pasted into the token URL.
    let plain_http = ConnectionConfig {
        token_url: "http://idp.example.com/token".into(),
        ..client.clone()
    };
    let in_url = ConnectionConfig {
        token_url: token_url_with_credentials(&provider),
        ..client.clone()
    };
    for (label, config) in [
        ("plain http", &plain_http),
        ("credentials in the URL", &in_url),
    ] {
        let label = format!("component invalid config, {label}");
        let problems = plugin.validate_config(&host.services, config);
        out.result(&format!("{label} problems"), &problems);
        assert!(!problems.unwrap().is_empty());
        let result = plugin.ensure_token(&host.services, config);
        out.result(&label, &result);
        assert!(matches!(
            result,
            Err(CallError::OAuth(OauthError::InvalidConfig(_)))
        ));
        let headers = plugin
            .instance(&host.services)
            .and_then(|mut i| i.authorization_headers(config, &api_request(&provider).url));
        out.error_of(&format!("{label} authorization_headers"), &headers);
        assert!(headers.is_err());
        let decorated = plugin.decorate_request(&host.services, config, &api_request(&provider));
        out.error_of(&format!("{label} decorate_request"), &decorated);
        assert!(decorated.is_err());
    }

    // A transport error: the token URL on a closed port.
    let unreachable = ConnectionConfig {
        token_url: format!("http://127.0.0.1:{}/token", closed_port()),
        ..password.clone()
    };
    let result = plugin.ensure_token(&host.services, &unreachable);
    out.result("component transport error", &result);
    assert!(matches!(
        result,
        Err(CallError::OAuth(OauthError::Transport(
            TransportError::Connect(_)
        )))
    ));
    let result = oauth2_runtime::api_call::call(
        plugin,
        &host.services,
        &unreachable,
        &api_request(&provider),
    );
    out.result("component api_call transport error", &result);
    assert!(result.is_err());

    // The component's token requests, built without sending: only errors are printed.
    let built = plugin.build_token_request(
        &host.services,
        &password,
        &TokenStep::Refresh(CRAFTED_REFRESH_TOKEN.into()),
    );
    out.error_of("component build_token_request refresh", &built);
    built.unwrap();
    let built = plugin.build_token_request(
        &host.services,
        &code_config,
        &TokenStep::ExchangeCode(CodeExchange {
            code: CRAFTED_CODE.into(),
            pkce_verifier: "verifier-of-at-least-forty-three-characters-0123456789".into(),
        }),
    );
    out.error_of("component build_token_request code exchange", &built);
    built.unwrap();

    out.debug("component plugin", plugin);
    out.debug("component provider", &provider);

    for (token, text) in &revealed {
        assert!(
            text.contains(token.access_token.secret()),
            "reveal shows the token: {text}"
        );
    }
    check_reveals(&revealed);
    assert!(
        issuer.count("refresh-token") >= 5,
        "refresh tokens were swapped"
    );
    let mut secrets = fixed_secrets();
    secrets.extend(issuer.secrets());
    secrets.extend(captured);
    out.assert_no_leaks(&secrets);
}

/// A revealed summary holds its access token and no other secret.
fn check_reveals(revealed: &[(Token, String)]) {
    for (token, text) in revealed {
        // `--reveal` shows the access token and the extra fields, credentials among them.
        let shown: Vec<&str> = std::iter::once(token.access_token.secret())
            .chain(token.extra_fields.iter().map(|(_, value)| value.as_str()))
            .collect();
        let mut others = fixed_secrets();
        others.retain(|(_, value)| !shown.iter().any(|s| s.contains(value.as_str())));
        for (kind, value) in [
            (
                "refresh token",
                token.refresh_token.as_ref().map(|t| t.secret()),
            ),
            ("ID token", token.id_token.as_ref().map(|t| t.secret())),
        ] {
            if let Some(value) = value {
                others.push((kind.to_owned(), value.to_owned()));
            }
        }
        let leaks = find_leaks(
            &[("summary(true)".to_owned(), text.clone())],
            &others,
            false,
        );
        assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    }
}

/// The component, without the issuer: the provider's own random tokens, captured from the
/// store, are secrets too.
#[test]
fn component_with_the_providers_own_tokens_leaks_none() {
    let provider = sentinel_provider();
    let host = host_with(Arc::new(UreqClient::new()));
    let mut out = Outputs::default();
    let plugin = plugin();
    let client = component_config(&provider, GrantType::ClientCredentials, ClientAuth::Auto);
    let password = component_config(&provider, GrantType::Password, ClientAuth::RequestBody);
    for (label, config) in [("client_credentials", &client), ("password", &password)] {
        let token = plugin.ensure_token(&host.services, config);
        out.result(&format!("raw {label}"), &token);
        out.text(
            &format!("raw {label} summary"),
            token.unwrap().summary(false).to_string(),
        );
        assert_eq!(call_api(&provider, &host, config).0, 200);
    }
    let mut secrets = fixed_secrets();
    secrets.extend(stored_secrets("first", &host.snapshot()));
    host.advance(3600);
    let refreshed = plugin.ensure_token(&host.services, &password);
    out.result("raw refresh", &refreshed);
    refreshed.unwrap();
    provider.reject_next_token_request("invalid_client", PROVIDER_SAYS);
    let failed = plugin.ensure_token(&host.services, &client);
    out.result("raw auto after an invalid_client", &failed);
    host.advance(3600);
    provider.reject_next_token_request("invalid_grant", PROVIDER_SAYS);
    let failed = plugin.ensure_token(&host.services, &password);
    out.result("raw refresh refused, then a new token", &failed);
    secrets.extend(stored_secrets("second", &host.snapshot()));
    assert!(
        secrets.len() > fixed_secrets().len() + 3,
        "tokens were captured"
    );
    out.assert_no_leaks(&secrets);
}

// ---------------------------------------------------------------------------------------------
// The library, natively
// ---------------------------------------------------------------------------------------------

/// The lifecycle's host, natively: HTTP through `http`, an in-memory store, a manual clock.
struct NativeHost {
    http: Arc<dyn HttpClient>,
    secrets: BTreeMap<String, String>,
    entries: RefCell<BTreeMap<String, String>>,
    now: Cell<u64>,
}

impl NativeHost {
    fn new(http: Arc<dyn HttpClient>) -> Self {
        let secrets = [
            (CLIENT_SECRET_NAME, CLIENT_SECRET),
            (WRONG_CLIENT_SECRET_NAME, WRONG_CLIENT_SECRET),
            (PASSWORD_NAME, PASSWORD),
            (WRONG_PASSWORD_NAME, WRONG_PASSWORD),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        NativeHost {
            http,
            secrets,
            entries: RefCell::default(),
            now: Cell::new(START),
        }
    }

    /// The secrets and the token store's entries.
    fn entries(&self) -> Vec<(String, String)> {
        let mut entries: Vec<_> = self.secrets.clone().into_iter().collect();
        entries.extend(self.entries.borrow().clone());
        entries
    }
}

impl lib::lifecycle::Host for NativeHost {
    fn send(
        &self,
        request: &lib::http::HttpRequest,
    ) -> Result<lib::http::HttpResponse, lib::error::TransportError> {
        use lib::error::TransportError as Native;
        let request = HttpRequest {
            method: request.method.clone(),
            url: request.url.clone(),
            headers: request
                .headers
                .iter()
                .map(|(name, value)| Pair {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            body: request.body.clone(),
        };
        match self.http.send(&request) {
            Ok(response) => Ok(lib::http::HttpResponse {
                status: response.status,
                headers: response
                    .headers
                    .into_iter()
                    .map(|p| (p.name, p.value))
                    .collect(),
                body: response.body,
            }),
            Err(error) => Err(match error {
                TransportError::InvalidRequest(m) => Native::InvalidRequest(m),
                TransportError::ForbiddenDestination(m) => Native::ForbiddenDestination(m),
                TransportError::Dns(m) => Native::Dns(m),
                TransportError::Connect(m) => Native::Connect(m),
                TransportError::Tls(m) => Native::Tls(m),
                TransportError::Timeout => Native::Timeout,
                TransportError::Interrupted(m) => Native::Interrupted(m),
                TransportError::BodyTooLarge(n) => Native::BodyTooLarge(n),
                TransportError::Other(m) => Native::Other(m),
            }),
        }
    }

    fn get_secret(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self.secrets.get(name).cloned())
    }

    fn get_entry(&self, key: &str) -> Result<Option<String>, lib::error::StoreError> {
        Ok(self.entries.borrow().get(key).cloned())
    }

    fn set_entry(
        &self,
        key: &str,
        value: &str,
        _ttl: Option<u64>,
    ) -> Result<(), lib::error::StoreError> {
        self.entries
            .borrow_mut()
            .insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: Option<&str>,
        _ttl: Option<u64>,
    ) -> Result<bool, lib::error::StoreError> {
        let mut entries = self.entries.borrow_mut();
        if entries.get(key).map(String::as_str) != expected {
            return Ok(false);
        }
        match value {
            Some(value) => entries.insert(key.to_owned(), value.to_owned()),
            None => entries.remove(key),
        };
        Ok(true)
    }

    fn random(&self, bytes: &mut [u8]) -> Result<(), String> {
        getrandom::fill(bytes).map_err(|e| e.to_string())
    }

    // One thread: nothing to wait for.
    fn lock(&self, _key: &str) -> Result<(), lib::error::StoreError> {
        Ok(())
    }

    fn unlock(&self, _key: &str) {}

    fn now(&self) -> u64 {
        self.now.get()
    }
}

fn native_config(
    provider: &Provider,
    grant_type: lib::config::GrantType,
    client_auth: lib::config::ClientAuth,
) -> lib::config::Config {
    lib::config::Config {
        grant_type,
        token_url: provider.token_url(),
        authorization_url: Some(provider.authorization_url()),
        redirect_uri: Some(REDIRECT_URI.into()),
        client_id: CLIENT_ID.into(),
        client_secret_name: Some(CLIENT_SECRET_NAME.into()),
        username: Some(USERNAME.into()),
        password_name: Some(PASSWORD_NAME.into()),
        header_prefix: None,
        audience: None,
        resource: vec![],
        scope: None,
        client_auth,
        extra_params: vec![],
        authorization_params: vec![],
        response_format: lib::config::ResponseFormat::default(),
        api_origins: vec![],
        signing_key: None,
        assertion_audience: None,
        subject: None,
        device_authorization_url: None,
        revocation_url: None,
        issuer: None,
    }
}

fn native_api_request(provider: &Provider) -> lib::http::HttpRequest {
    lib::http::HttpRequest {
        method: "GET".into(),
        url: format!("{}/api/me", provider.base_url()),
        headers: vec![],
        body: vec![],
    }
}

/// A GET of the provider's API with a request the library decorated.
fn native_call(host: &NativeHost, request: lib::http::HttpRequest) -> (u16, String) {
    let response = lib::lifecycle::Host::send(host, &request).expect("the API answers");
    (
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    )
}

fn native_provider_code(result: &Result<lib::token::Token, lib::error::Error>) -> String {
    match result {
        Err(lib::error::Error::Provider(e)) => e.code.clone(),
        other => panic!("not a provider error: {other:?}"),
    }
}

#[test]
fn library_paths_leak_no_secret() {
    use lib::config::{ClientAuth as Auth, GrantType as Grant};
    use lib::error::Error;
    use lib::lifecycle::{
        authorization_headers, begin_authorization, build_token_request, complete_authorization,
        decorate_request, ensure_token, forget_token,
    };
    use lib::token_request::Step;

    let provider = sentinel_provider();
    let issuer = Arc::new(SentinelIssuer::default());
    let mut out = Outputs::default();
    let mut captured: Vec<Secret> = Vec::new();

    // Client credentials with Basic and request-body authentication; decorate, cached and not.
    for client_auth in [Auth::Basic, Auth::RequestBody] {
        let label = format!("library client_credentials {client_auth:?}");
        let host = NativeHost::new(issuer.clone());
        let config = native_config(&provider, Grant::ClientCredentials, client_auth);
        out.debug(&format!("{label} config"), &config);
        let token = ensure_token(&config, &host);
        out.result(&label, &token);
        assert!(
            token
                .unwrap()
                .access_token
                .secret()
                .starts_with("SENTINEL-access-token-")
        );
        let decorated = decorate_request(&config, &host, native_api_request(&provider));
        out.result(&format!("{label} decorate_request"), &decorated);
        let (status, body) = native_call(&host, decorated.unwrap());
        assert_eq!(status, 200, "{body}");
        out.text(&format!("{label} API body"), body);
        let mut request = native_api_request(&provider);
        let headers = authorization_headers(&config, &host, &request.url);
        out.result(&format!("{label} authorization_headers"), &headers);
        request.set_headers(headers.unwrap());
        assert_eq!(native_call(&host, request).0, 200);
        let built = build_token_request(&config, &host, &Step::NewToken);
        out.result(&format!("{label} build_token_request"), &built);
        built.unwrap();
        captured.extend(stored_secrets(&label, &host.entries()));
    }

    // A wrong client secret, with each client authentication.
    for client_auth in [Auth::Basic, Auth::RequestBody, Auth::Auto] {
        let label = format!("library wrong client secret {client_auth:?}");
        let host = NativeHost::new(issuer.clone());
        let config = lib::config::Config {
            client_secret_name: Some(WRONG_CLIENT_SECRET_NAME.into()),
            ..native_config(&provider, Grant::ClientCredentials, client_auth)
        };
        let result = ensure_token(&config, &host);
        out.result(&label, &result);
        assert_eq!(native_provider_code(&result), "invalid_client");
        let decorated = decorate_request(&config, &host, native_api_request(&provider));
        out.result(&format!("{label} decorate_request"), &decorated);
        assert!(decorated.is_err());
    }

    // The password grant, its refreshes with rotation, and forget_token.
    let host = NativeHost::new(issuer.clone());
    let password = native_config(&provider, Grant::Password, Auth::Basic);
    let mut previous = ensure_token(&password, &host);
    out.result("library password grant", &previous);
    for round in 1..=2 {
        host.now.set(host.now.get() + 3600);
        let next = ensure_token(&password, &host);
        out.result(&format!("library refresh {round}"), &next);
        let (before, after) = (previous.unwrap(), next.clone().unwrap());
        assert_ne!(
            before.refresh_token, after.refresh_token,
            "the provider rotates"
        );
        previous = next;
    }
    let built = build_token_request(
        &password,
        &host,
        &Step::Refresh {
            refresh_token: previous.unwrap().refresh_token.unwrap(),
        },
    );
    out.result("library build_token_request refresh", &built);
    built.unwrap();
    let forgotten = forget_token(&password, &host, None);
    out.result("library forget_token", &forgotten);
    forgotten.unwrap();
    let headers = authorization_headers(&password, &host, &native_api_request(&provider).url);
    out.result("library authorization_headers after forget_token", &headers);
    headers.unwrap();
    let again = decorate_request(&password, &host, native_api_request(&provider));
    out.result("library decorate_request after forget_token", &again);
    assert_eq!(native_call(&host, again.unwrap()).0, 200);
    captured.extend(stored_secrets("library password", &host.entries()));

    let wrong = lib::config::Config {
        password_name: Some(WRONG_PASSWORD_NAME.into()),
        ..password.clone()
    };
    let host = NativeHost::new(issuer.clone());
    let result = ensure_token(&wrong, &host);
    out.result("library wrong password", &result);
    assert_eq!(native_provider_code(&result), "invalid_grant");

    // Authorization code: begin, consent, a forged and a replayed redirect, a refused refresh.
    let host = NativeHost::new(issuer.clone());
    let code_config = native_config(&provider, Grant::AuthorizationCode, Auth::Auto);
    let start = begin_authorization(&code_config, &host);
    out.result("library begin_authorization", &start);
    let start = start.unwrap();
    captured.extend(stored_secrets("library pending", &host.entries()));
    let location = host
        .http
        .send(&HttpRequest {
            method: "GET".into(),
            url: start.url.clone(),
            headers: vec![],
            body: vec![],
        })
        .expect("the authorization endpoint answers")
        .headers
        .into_iter()
        .find(|p| p.name.eq_ignore_ascii_case("location"))
        .expect("a redirect")
        .value;
    captured.push(("library authorization code".into(), code_of(&location)));
    let parsed = lib::callback::parse(&location, REDIRECT_URI);
    out.result("library callback::parse", &parsed);
    let forged = location.replace(&format!("state={}", start.state.secret()), "state=forged");
    let result = complete_authorization(&code_config, &host, &forged);
    out.result("library forged redirect", &result);
    assert_eq!(result, Err(Error::StateMismatch));
    let token = complete_authorization(&code_config, &host, &location);
    out.result("library complete_authorization", &token);
    token.unwrap();
    let replay = complete_authorization(&code_config, &host, &location);
    out.result("library replayed redirect", &replay);
    assert_eq!(replay, Err(Error::StateMismatch));
    captured.extend(stored_secrets("library code", &host.entries()));
    host.now.set(host.now.get() + 3600);
    provider.reject_next_token_request("invalid_grant", PROVIDER_SAYS);
    let result = ensure_token(&code_config, &host);
    out.result("library refused refresh", &result);
    assert!(matches!(result, Err(Error::AuthorizationRequired(_))));
    let crafted = format!(
        "{REDIRECT_URI}?code={}&state=some-state",
        utf8_percent_encode(CRAFTED_CODE, NON_ALPHANUMERIC)
    );
    let parsed = lib::callback::parse(&crafted, REDIRECT_URI);
    out.result("library callback::parse crafted code", &parsed);
    assert!(parsed.is_ok());
    let result = complete_authorization(&code_config, &host, &crafted);
    out.result("library crafted code, unknown state", &result);
    assert_eq!(result, Err(Error::StateMismatch));

    // The provider's errors.
    let client = native_config(&provider, Grant::ClientCredentials, Auth::Basic);
    for code in [
        "invalid_client",
        "invalid_grant",
        "invalid_scope",
        "server_error",
    ] {
        let host = NativeHost::new(issuer.clone());
        provider.reject_next_token_request(code, PROVIDER_SAYS);
        let result = ensure_token(&client, &host);
        out.result(&format!("library provider error {code}"), &result);
        assert_eq!(native_provider_code(&result), code);
    }

    // Answers that are not tokens, from the provider and parsed directly.
    for (name, is_token, response) in crafted_responses() {
        let label = format!("library {name}");
        let native = native_response(&response);
        out.debug(&format!("{label} response"), &native);
        let host = NativeHost::new(issuer.clone());
        let sent = build_token_request(&client, &host, &Step::NewToken).unwrap();
        let parsed = lib::lifecycle::parse_token_response(&client, &host, &sent, &native);
        out.result(&format!("{label} parsed"), &parsed);
        assert_eq!(parsed.is_ok(), is_token, "{label}: {parsed:?}");
        let (status, content_type, body) = &response;
        provider.fail_next_token_requests(1, *status, &String::from_utf8_lossy(body), content_type);
        let host = NativeHost::new(issuer.clone());
        let fetched = ensure_token(&client, &host);
        out.result(&format!("{label} from the provider"), &fetched);
    }

    // A missing secret, invalid configurations, a transport error.
    let host = NativeHost::new(issuer.clone());
    let missing = lib::config::Config {
        client_secret_name: Some(MISSING_SECRET_NAME.into()),
        ..client.clone()
    };
    let result = ensure_token(&missing, &host);
    out.result("library missing secret", &result);
    assert!(matches!(result, Err(Error::MissingSecret { .. })));
    let built = build_token_request(&missing, &host, &Step::NewToken);
    out.result("library build_token_request missing secret", &built);
    assert!(built.is_err());
    for (label, token_url) in [
        ("plain http", "http://idp.example.com/token".to_owned()),
        (
            "credentials in the URL",
            token_url_with_credentials(&provider),
        ),
    ] {
        let config = lib::config::Config {
            token_url,
            ..client.clone()
        };
        let label = format!("library invalid config, {label}");
        out.debug(&format!("{label} problems"), &config.problems());
        let result = ensure_token(&config, &host);
        out.result(&label, &result);
        assert!(matches!(result, Err(Error::InvalidConfig(_))));
        let headers = authorization_headers(&config, &host, &native_api_request(&provider).url);
        out.result(&format!("{label} authorization_headers"), &headers);
        assert!(headers.is_err());
    }
    let unreachable = lib::config::Config {
        token_url: format!("http://127.0.0.1:{}/token", closed_port()),
        ..password.clone()
    };
    let result = decorate_request(&unreachable, &host, native_api_request(&provider));
    out.result("library transport error", &result);
    assert!(matches!(
        result,
        Err(Error::Transport(lib::error::TransportError::Connect(_)))
    ));

    // The request the library builds for each client authentication, printed whole.
    for client_auth in [Auth::Basic, Auth::BasicUnencoded, Auth::RequestBody] {
        let config = native_config(&provider, Grant::Password, client_auth);
        let credentials = lib::token_request::Credentials {
            client_secret: Some(CLIENT_SECRET.into()),
            password: Some(PASSWORD.into()),
            ..Default::default()
        };
        let method = lib::token_request::AuthMethod::from_config(
            client_auth,
            lib::token_request::AuthMethod::Basic,
        );
        let built = lib::token_request::build(&config, &Step::NewToken, &credentials, method);
        out.result(
            &format!("library token_request::build {client_auth:?}"),
            &built,
        );
        built.unwrap();
    }

    let mut secrets = fixed_secrets();
    secrets.extend(issuer.secrets());
    secrets.extend(captured);
    out.assert_no_leaks(&secrets);
}

// ---------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------

/// The `oauth2-host` binary next to this test's: `target/<profile>/deps/sentinels-<hash>` runs,
/// `target/<profile>/oauth2-host` is the command. `CARGO_BIN_EXE_*` is only set for the tests of
/// the binary's own package (oauth2-host), and this package cannot depend on a binary, so
/// `cargo test -p oauth2-plugin` does not build it: the test insists it exists and is newer
/// than every source it is built from, rather than test a stale command.
fn oauth2_host() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        const BUILD: &str = "build it first with `cargo test -p oauth2-host --no-run` (or \
            `cargo build -p oauth2-host --bin oauth2-host`); `cargo test --workspace` builds it too";
        let exe = std::env::current_exe().expect("the test binary's path");
        let binary = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary is in target/<profile>/deps")
            .join("oauth2-host");
        let built = std::fs::metadata(&binary)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| panic!("{} does not exist: {BUILD}", binary.display()));
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut newest: Option<(SystemTime, PathBuf)> = None;
        let mut pending: Vec<PathBuf> = [
            "src",
            "wit",
            "host-harness/runtime/src",
            "host-harness/cli/src",
            "host-harness/provider/src",
        ]
        .iter()
        .chain(&[
            "Cargo.toml",
            "Cargo.lock",
            "host-harness/runtime/Cargo.toml",
            "host-harness/runtime/build.rs",
            "host-harness/cli/Cargo.toml",
            "host-harness/cli/presets.json",
            "host-harness/provider/Cargo.toml",
        ])
            .map(|p| root.join(p))
            .collect();
        while let Some(path) = pending.pop() {
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if let Ok(modified) = meta.modified()
                && newest.as_ref().is_none_or(|(t, _)| modified > *t)
            {
                newest = Some((modified, path));
            }
        }
        if let Some((modified, source)) = newest
            && modified > built
        {
            panic!(
                "{} is older than {}, so it would test stale code: {BUILD}",
                binary.display(),
                source.display()
            );
        }
        binary
    })
}

/// A scratch folder for the command's config files and store, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("oauth2-sentinels-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn store(&self) -> String {
        self.0.join("store.json").display().to_string()
    }

    fn config(&self, name: &str, config: &Value) -> String {
        let path = self.0.join(format!("{name}.json"));
        std::fs::write(&path, config.to_string()).unwrap();
        path.display().to_string()
    }

    /// `oauth2-host ARGS --store STORE`.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut child = Command::new(oauth2_host())
            .args(args)
            .args(["--store", &self.store()])
            .current_dir(&self.0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("oauth2-host starts");
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    /// Every token in the store file's token namespace.
    fn tokens(&self) -> Vec<Secret> {
        let text = std::fs::read_to_string(self.store()).expect("the store file");
        let file: Value = serde_json::from_str(&text).unwrap();
        let entries: Vec<(String, String)> = file["tokens"]
            .as_object()
            .expect("a tokens object")
            .iter()
            .map(|(key, entry)| (key.clone(), entry["value"].as_str().unwrap().to_owned()))
            .collect();
        stored_secrets("command", &entries)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn command_leaks_no_secret_and_reveal_shows_the_access_token() {
    let provider = sentinel_provider();
    let scratch = Scratch::new();
    let mut out = Outputs::default();
    let mut tokens: Vec<Secret> = Vec::new();
    let cli_config = |grant_type: &str, changes: Value| {
        let mut config = serde_json::json!({
            "grant_type": grant_type,
            "token_url": provider.token_url(),
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET_NAME,
            "client_auth": "basic",
            "scope": "read",
        });
        if grant_type == "password" {
            config["username"] = USERNAME.into();
            config["password"] = PASSWORD_NAME.into();
        }
        for (key, value) in changes.as_object().unwrap() {
            config[key.as_str()] = value.clone();
        }
        config
    };

    for (name, value) in [
        (CLIENT_SECRET_NAME, CLIENT_SECRET),
        (WRONG_CLIENT_SECRET_NAME, WRONG_CLIENT_SECRET),
        (PASSWORD_NAME, PASSWORD),
        (WRONG_PASSWORD_NAME, WRONG_PASSWORD),
    ] {
        let run = scratch.run(&["secret", "set", name], Some(&format!("{value}\n")));
        assert!(run.status.success(), "{}", stderr(&run));
        out.process(&format!("secret set {name}"), &run);
    }

    // Client credentials: check, token, token --reveal, call.
    let client = scratch.config(
        "client",
        &cli_config("client_credentials", serde_json::json!({})),
    );
    let run = scratch.run(&["check", "--config", &client], None);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    assert!(stdout(&run).contains(": OK ("), "{}", stdout(&run));
    out.process("check", &run);
    let run = scratch.run(&["token", "--config", &client], None);
    assert!(run.status.success(), "{}", stderr(&run));
    let summary: Value = serde_json::from_str(&stdout(&run)).expect("a JSON summary");
    assert!(summary.get("access_token").is_none(), "{summary}");
    out.process("token", &run);
    tokens.extend(scratch.tokens());
    let access_token = tokens
        .iter()
        .find(|(label, _)| label.ends_with("access token"))
        .map(|(_, token)| token.clone())
        .expect("the command stored an access token");

    let run = scratch.run(&["token", "--config", &client, "--reveal"], None);
    assert!(run.status.success(), "{}", stderr(&run));
    let revealed: Value = serde_json::from_str(&stdout(&run)).expect("a JSON summary");
    assert_eq!(
        revealed["access_token"].as_str(),
        Some(access_token.as_str()),
        "--reveal shows the stored access token: {revealed}"
    );
    out.text("token --reveal stderr", stderr(&run));
    let revealed_stdout = stdout(&run);
    assert_eq!(
        provider.token_request_count("client_credentials"),
        1,
        "reused"
    );

    let api = format!("{}/api/me", provider.base_url());
    let run = scratch.run(&["call", "--config", &client, &api], None);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stdout(&run).contains(r#""client_id":"demo-client""#),
        "{}",
        stdout(&run)
    );
    out.process("call", &run);

    // Password: a token; the provider then expires it, so `call` meets a 401, forgets the
    // token, refreshes (the refresh token rotates) and retries.
    let password = scratch.config("password", &cli_config("password", serde_json::json!({})));
    let run = scratch.run(&["token", "--config", &password], None);
    assert!(run.status.success(), "{}", stderr(&run));
    out.process("token password", &run);
    tokens.extend(scratch.tokens());
    provider.expire_all_access_tokens();
    let run = scratch.run(&["call", "--config", &password, &api], None);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("retried"), "{}", stderr(&run));
    out.process("call password after expiry", &run);
    assert_eq!(provider.token_request_count("refresh_token"), 1);
    tokens.extend(scratch.tokens());
    let refresh_tokens: BTreeSet<&String> = tokens
        .iter()
        .filter(|(label, _)| label.ends_with("refresh token"))
        .map(|(_, token)| token)
        .collect();
    assert_eq!(refresh_tokens.len(), 2, "the refresh token rotated");

    // Errors: a wrong secret (Basic, then auto trying both), a missing secret, the wrong
    // password, a provider error, a closed port, plain http, the secret in the token URL.
    let port = closed_port();
    let failures = [
        (
            "wrong secret basic",
            cli_config(
                "client_credentials",
                serde_json::json!({
            "client_secret": WRONG_CLIENT_SECRET_NAME, "scope": "write" }),
            ),
        ),
        (
            "wrong secret auto",
            cli_config(
                "client_credentials",
                serde_json::json!({
            "client_secret": WRONG_CLIENT_SECRET_NAME, "client_auth": "auto", "scope": "write" }),
            ),
        ),
        (
            "missing secret",
            cli_config(
                "client_credentials",
                serde_json::json!({
            "client_secret": MISSING_SECRET_NAME, "scope": "write" }),
            ),
        ),
        (
            "wrong password",
            cli_config(
                "password",
                serde_json::json!({
            "password": WRONG_PASSWORD_NAME, "scope": "write" }),
            ),
        ),
        (
            "provider error",
            cli_config(
                "client_credentials",
                serde_json::json!({ "scope": "write" }),
            ),
        ),
        (
            "closed port",
            cli_config(
                "client_credentials",
                serde_json::json!({
            "token_url": format!("http://127.0.0.1:{port}/token") }),
            ),
        ),
        (
            "plain http",
            cli_config(
                "client_credentials",
                serde_json::json!({
            "token_url": "http://idp.example.com/token" }),
            ),
        ),
        (
            "secret in the token URL",
            cli_config(
                "client_credentials",
                serde_json::json!({
            "token_url": token_url_with_credentials(&provider) }),
            ),
        ),
    ];
    for (name, config) in &failures {
        let path = scratch.config("failing", config);
        let arm = || {
            if *name == "provider error" {
                provider.reject_next_token_request("server_error", PROVIDER_SAYS);
            }
        };
        arm();
        let run = scratch.run(&["token", "--config", &path], None);
        assert_eq!(run.status.code(), Some(1), "{name}: {}", stderr(&run));
        assert!(stdout(&run).is_empty(), "{name}: {}", stdout(&run));
        out.process(&format!("token, {name}"), &run);
        arm();
        let run = scratch.run(&["call", "--config", &path, &api], None);
        assert!(!run.status.success(), "{name}");
        out.process(&format!("call, {name}"), &run);
        let run = scratch.run(&["check", "--config", &path], None);
        out.process(&format!("check, {name}"), &run);
    }
    tokens.extend(scratch.tokens());

    let mut secrets = fixed_secrets();
    secrets.extend(tokens);
    // The revealed summary holds the access token, and nothing else secret.
    let others: Vec<Secret> = secrets
        .iter()
        .filter(|(_, value)| *value != access_token)
        .cloned()
        .collect();
    let leaks = find_leaks(
        &[("token --reveal stdout".into(), revealed_stdout)],
        &others,
        true,
    );
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    out.assert_no_leaks(&secrets);
}

// ---------------------------------------------------------------------------------------------
// The WIT bindings' requests and responses
// ---------------------------------------------------------------------------------------------

/// `HttpRequest` and `HttpResponse` are generated from the WIT contract by wasmtime's bindgen,
/// whose `Debug` prints every field: the `Authorization` header, the form body. The library's
/// own `HttpRequest`/`HttpResponse` print only their shape; these must not print more.
#[test]
fn wit_generated_debug_of_requests_and_responses() {
    let provider = sentinel_provider();
    let issuer = Arc::new(SentinelIssuer::default());
    let host = host_with(issuer.clone());
    let plugin = plugin();
    let mut out = Outputs::default();
    let config = component_config(&provider, GrantType::Password, ClientAuth::Basic);
    plugin.ensure_token(&host.services, &config).unwrap();
    let decorated = plugin
        .decorate_request(&host.services, &config, &api_request(&provider))
        .unwrap();
    out.debug("decorate_request", &decorated);
    let headers = plugin
        .instance(&host.services)
        .unwrap()
        .authorization_headers(&config, &api_request(&provider).url)
        .unwrap();
    out.debug("authorization_headers", &headers);
    for (client_auth, step) in [
        (ClientAuth::Basic, TokenStep::NewToken),
        (ClientAuth::RequestBody, TokenStep::NewToken),
        (
            ClientAuth::Basic,
            TokenStep::Refresh(CRAFTED_REFRESH_TOKEN.into()),
        ),
    ] {
        let config = component_config(&provider, GrantType::Password, client_auth);
        let built = plugin
            .build_token_request(&host.services, &config, &step)
            .unwrap();
        out.debug(&format!("build_token_request {client_auth:?}"), &built);
    }
    let (_, _, response) = crafted_responses().remove(0);
    out.debug("token response", &wit_response(&response));
    let mut secrets = fixed_secrets();
    secrets.extend(issuer.secrets());
    out.assert_no_leaks(&secrets);
}

// ---------------------------------------------------------------------------------------------
// The checker itself
// ---------------------------------------------------------------------------------------------

/// The checker fails on a secret in every form it claims to catch, names the output and the
/// secret, and passes clean outputs.
#[test]
fn the_checker_catches_each_form_of_a_leak() {
    let secrets = fixed_secrets();
    let form_body = format!(
        "grant_type=password&password={}",
        form_urlencoded::byte_serialize(PASSWORD.as_bytes()).collect::<String>()
    );
    let leaky = [
        ("a plain message", format!("failed with {CLIENT_SECRET}")),
        ("Debug of a struct", format!("{:?}", (1, CLIENT_SECRET))),
        (
            "a percent-encoded URL",
            format!(
                "https://x/?s={}",
                utf8_percent_encode(CLIENT_SECRET, NON_ALPHANUMERIC)
            ),
        ),
        ("a form body", form_body.clone()),
        (
            "a form body as Debug bytes",
            format!("{:?}", form_body.as_bytes()),
        ),
        (
            "a Basic header",
            lib::token_request::basic_authorization(CLIENT_ID, CLIENT_SECRET),
        ),
        (
            "an unencoded Basic header",
            format!(
                "Basic {}",
                STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
            ),
        ),
        (
            "base64 in a JSON",
            format!(
                r#"{{"x":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(format!("..{PASSWORD}"))
            ),
        ),
        (
            "a truncated secret",
            format!("secret {}...", &WRONG_PASSWORD[..12]),
        ),
    ];
    for (name, text) in leaky {
        let mut outputs = Outputs::default();
        outputs.text(
            "a clean output",
            "token endpoint answered 401 invalid_client",
        );
        outputs.text(name, text);
        let caught = std::panic::catch_unwind(|| outputs.assert_no_leaks(&secrets));
        let message = caught.expect_err(name);
        let message = message
            .downcast_ref::<String>()
            .expect("a formatted panic message");
        assert!(message.contains(name), "{name}: {message}");
        assert!(!message.contains("a clean output"), "{name}: {message}");
    }
    let mut clean = Outputs::default();
    clean.text(
        "clean",
        "token endpoint answered 401 invalid_client: secret \"client-secret\"",
    );
    clean.assert_no_leaks(&secrets);
}

// ---------------------------------------------------------------------------------------------
// Private keys never cross into the component
// ---------------------------------------------------------------------------------------------

/// What crossed between the component and its host, each side of every import call, recorded
/// by services that wrap the real ones.
#[derive(Default)]
struct Traffic(Mutex<Vec<(String, String)>>);

impl Traffic {
    fn record(&self, label: impl Into<String>, text: impl Into<String>) {
        lock(&self.0).push((label.into(), text.into()));
    }

    fn labels(&self) -> Vec<String> {
        lock(&self.0)
            .iter()
            .map(|(label, _)| label.clone())
            .collect()
    }
}

/// An HTTP client that answers as a token, device and revocation endpoint would, recording
/// every request (the component's import arguments) and answer (what goes back in).
struct CannedProvider(Arc<Traffic>);

impl HttpClient for CannedProvider {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        let body = String::from_utf8_lossy(&request.body).into_owned();
        self.0.record(
            "http.send request",
            format!(
                "{} {} {:?} {body}",
                request.method, request.url, request.headers
            ),
        );
        let answer = if request.url.ends_with("/device") {
            r#"{"device_code":"dc-1","user_code":"WDJB-MJHT","verification_uri":"https://idp.example.com/activate","expires_in":600,"interval":1}"#
        } else if request.url.ends_with("/revoke") {
            ""
        } else {
            r#"{"access_token":"at-1","refresh_token":"rt-1","token_type":"Bearer","expires_in":60}"#
        };
        self.0.record("http.send response", answer);
        Ok(HttpResponse {
            status: 200,
            headers: vec![Pair {
                name: "Content-Type".into(),
                value: "application/json".into(),
            }],
            body: answer.as_bytes().to_vec(),
        })
    }
}

/// The user's secrets, recording every value handed out and every signing request and answer.
struct RecordedSecrets {
    inner: MemoryStore,
    traffic: Arc<Traffic>,
}

impl SecretStore for RecordedSecrets {
    fn get(&self, name: &str) -> Result<Option<String>, String> {
        let value = self.inner.get(name);
        self.traffic
            .record(format!("secrets.get {name}"), format!("{value:?}"));
        value
    }

    fn set(&self, name: &str, value: &str) -> Result<(), String> {
        self.inner.set(name, value)
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        self.inner.remove(name)
    }

    fn describe_key(
        &self,
        name: &str,
        algorithm: oauth2_runtime::SigningAlgorithm,
    ) -> Result<oauth2_runtime::KeyDescription, oauth2_runtime::SigningError> {
        let described = self.inner.describe_key(name, algorithm);
        self.traffic.record(
            format!("signing.describe-key {name} {algorithm:?}"),
            format!("{described:?}"),
        );
        described
    }

    fn sign(
        &self,
        name: &str,
        algorithm: oauth2_runtime::SigningAlgorithm,
        data: &[u8],
    ) -> Result<Vec<u8>, oauth2_runtime::SigningError> {
        self.traffic.record(
            format!("signing.sign {name} {algorithm:?} input"),
            String::from_utf8_lossy(data),
        );
        let signature = self.inner.sign(name, algorithm, data);
        self.traffic.record(
            "signing.sign result",
            match &signature {
                Ok(bytes) => URL_SAFE_NO_PAD.encode(bytes),
                Err(e) => format!("{e:?}"),
            },
        );
        signature
    }
}

/// The token store, recording what the component writes and reads back.
struct RecordedTokens {
    inner: Arc<MemoryStore>,
    traffic: Arc<Traffic>,
}

impl oauth2_runtime::TokenStore for RecordedTokens {
    fn get(&self, key: &str) -> Result<Option<String>, oauth2_runtime::StoreError> {
        let value = oauth2_runtime::TokenStore::get(&*self.inner, key);
        self.traffic
            .record(format!("token-store.get {key}"), format!("{value:?}"));
        value
    }

    fn set(
        &self,
        key: &str,
        value: &str,
        ttl: Option<std::time::Duration>,
    ) -> Result<(), oauth2_runtime::StoreError> {
        self.traffic.record(format!("token-store.set {key}"), value);
        oauth2_runtime::TokenStore::set(&*self.inner, key, value, ttl)
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: Option<&str>,
        ttl: Option<std::time::Duration>,
    ) -> Result<bool, oauth2_runtime::StoreError> {
        self.traffic.record(
            format!("token-store.compare-and-swap {key}"),
            format!("{expected:?} {value:?}"),
        );
        self.inner.compare_and_swap(key, expected, value, ttl)
    }

    fn lock(
        &self,
        key: &str,
        wait: std::time::Duration,
    ) -> Result<oauth2_runtime::token_store::LockGuard, oauth2_runtime::StoreError> {
        self.inner.lock(key, wait)
    }
}

/// A fresh P-256 key as PKCS#8 PEM, with a sentinel line before it (text outside a PEM's
/// boundaries is allowed, RFC 7468 §5.2, and part of the secret all the same); the secrets to
/// look for are the whole PEM, the sentinel, and each line of the key's base64.
fn sentinel_pem() -> (String, Vec<Secret>) {
    let rng = ring::rand::SystemRandom::new();
    let der = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .expect("a fresh key");
    let body = STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).unwrap())
        .collect();
    let sentinel = "SENTINEL-private-key-4d2c: q+r/s t";
    let pem = format!(
        "{sentinel}\n-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let mut secrets = vec![
        ("private key PEM".to_owned(), pem.clone()),
        ("private key sentinel".to_owned(), sentinel.to_owned()),
    ];
    for (i, line) in lines.iter().enumerate() {
        secrets.push((format!("private key line {i}"), (*line).to_owned()));
    }
    (pem, secrets)
}

#[test]
fn private_keys_never_cross_into_the_component() {
    let (pem, secrets) = sentinel_pem();
    let traffic = Arc::new(Traffic::default());
    let clock = Arc::new(ManualClock::at_unix(START));
    let secret_store = RecordedSecrets {
        inner: MemoryStore::with_clock(clock.clone()),
        traffic: traffic.clone(),
    };
    secret_store.set("client-key", &pem).unwrap();
    secret_store
        .set("client-secret", "cs-not-a-sentinel")
        .unwrap();
    let services = Services {
        http: Arc::new(CannedProvider(traffic.clone())),
        secrets: Arc::new(secret_store),
        tokens: Arc::new(RecordedTokens {
            inner: Arc::new(MemoryStore::with_clock(clock.clone())),
            traffic: traffic.clone(),
        }),
        clock: clock.clone(),
    };
    let key = |algorithm| oauth2_runtime::SigningKey {
        name: "client-key".into(),
        algorithm,
        key_id: Some("kid-1".into()),
    };
    let base = ConnectionConfig {
        client_auth: ClientAuth::PrivateKeyJwt,
        signing_key: Some(key(oauth2_runtime::SigningAlgorithm::Es256)),
        revocation_url: Some("https://idp.example.com/revoke".into()),
        device_authorization_url: Some("https://idp.example.com/device".into()),
        ..ConnectionConfig::new(
            GrantType::ClientCredentials,
            "https://idp.example.com/token",
            CLIENT_ID,
        )
    };
    let plugin = plugin();
    let mut out = Outputs::default();

    // Every path that signs: a new token, a refresh, a JWT bearer grant, a device code's start
    // and poll, a revocation; the configuration (an export argument) and every export's result.
    out.debug("config", &base);
    out.result("ensure-token", &plugin.ensure_token(&services, &base));
    clock.advance(std::time::Duration::from_secs(120));
    out.result(
        "ensure-token (refresh)",
        &plugin.ensure_token(&services, &base),
    );
    let bearer = ConnectionConfig {
        grant_type: GrantType::JwtBearer,
        client_auth: ClientAuth::Auto,
        subject: Some("alice@example.com".into()),
        ..base.clone()
    };
    out.result(
        "ensure-token (jwt bearer)",
        &plugin.ensure_token(&services, &bearer),
    );
    let built = plugin.build_token_request(&services, &bearer, &TokenStep::NewToken);
    out.text(
        "build-token-request (jwt bearer)",
        built
            .as_ref()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .unwrap_or_default(),
    );
    out.error_of("build-token-request (jwt bearer)", &built);
    let device = ConnectionConfig {
        grant_type: GrantType::DeviceCode,
        ..base.clone()
    };
    let started = plugin.start_device_authorization(&services, &device);
    out.result("start-device-authorization", &started);
    let started = started.expect("the device authorization starts");
    out.result(
        "poll-device-authorization",
        &plugin.poll_device_authorization(&services, &device, &started.device_code),
    );
    out.result("revoke-tokens", &plugin.revoke_tokens(&services, &device));
    // Failures that involve the key: the wrong algorithm for it, and a secret that is no key.
    let wrong_alg = ConnectionConfig {
        signing_key: Some(key(oauth2_runtime::SigningAlgorithm::Rs256)),
        // Another token's connection, so that no stored token answers before the key is used.
        scope: Some("other".into()),
        ..base.clone()
    };
    let refused = plugin.ensure_token(&services, &wrong_alg);
    assert!(
        matches!(
            &refused,
            Err(CallError::OAuth(OauthError::Signing(
                oauth2_runtime::SigningError::WrongAlgorithm(_)
            )))
        ),
        "{refused:?}"
    );
    out.result("ensure-token (wrong alg)", &refused);

    let labels = traffic.labels();
    for wanted in [
        "signing.sign",
        "signing.describe-key",
        "http.send request",
        "token-store.compare-and-swap",
    ] {
        assert!(
            labels.iter().any(|l| l.starts_with(wanted)),
            "the recorder saw no {wanted}: {labels:?}"
        );
    }
    let signatures = labels
        .iter()
        .filter(|l| l.starts_with("signing.sign") && l.ends_with("input"))
        .count();
    assert!(signatures >= 6, "{signatures} signatures: {labels:?}");
    assert!(
        !labels.iter().any(|l| l == "secrets.get client-key"),
        "the component asked for the key itself: {labels:?}"
    );
    let mut outputs = lock(&traffic.0).clone();
    outputs.extend(out.0);
    let leaks = find_leaks(&outputs, &secrets, true);
    assert!(
        leaks.is_empty(),
        "{} leak(s):\n{}",
        leaks.len(),
        leaks.join("\n")
    );

    // A configuration that names the key as the client secret: the host refuses to hand it in.
    let as_secret = ConnectionConfig {
        client_auth: ClientAuth::Basic,
        client_secret_name: Some("client-key".into()),
        signing_key: None,
        ..base.clone()
    };
    let refused = plugin.ensure_token(&host_with_key(&pem), &as_secret);
    let mut out = Outputs::default();
    out.result("ensure-token (key named as client secret)", &refused);
    out.assert_no_leaks(&secrets);
    let message = refused
        .expect_err("the key is not a client secret")
        .to_string();
    assert!(message.contains("holds a private key"), "{message}");
}

/// Plain services whose store holds `pem` as `client-key`.
fn host_with_key(pem: &str) -> Services {
    let store = Arc::new(MemoryStore::new());
    store.set("client-key", pem).unwrap();
    Services {
        http: Arc::new(CannedProvider(Arc::default())),
        secrets: store.clone(),
        tokens: store,
        clock: Arc::new(oauth2_runtime::SystemClock),
    }
}
