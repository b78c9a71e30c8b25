//! The connection configuration a user fills in, and the rules that make it usable.

use crate::prelude::*;

use core::net::IpAddr;

use sha2::{Digest, Sha256};
use url::{Host, Url};

/// The grant a connection uses to obtain tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantType {
    ClientCredentials,
    Password,
    AuthorizationCode,
    /// RFC 7523 §2.1.
    JwtBearer,
    /// RFC 8628.
    DeviceCode,
}

impl GrantType {
    /// The name in the user's configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::Password => "password",
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::JwtBearer => "jwt_bearer",
            GrantType::DeviceCode => "device_code",
        }
    }

    /// The `grant_type` value on the wire.
    pub fn wire_name(self) -> &'static str {
        match self {
            GrantType::JwtBearer => "urn:ietf:params:oauth:grant-type:jwt-bearer",
            GrantType::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
            other => other.as_str(),
        }
    }

    /// Grants the client can run again on its own whenever it needs a token; the others need
    /// the user.
    pub fn is_repeatable(self) -> bool {
        !matches!(self, GrantType::AuthorizationCode | GrantType::DeviceCode)
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// What last worked for this token URL and client ID, else Basic; a new token for a
    /// repeatable grant retries `invalid_client` once with the other method.
    Auto,
    /// RFC 6749 §2.3.1: both halves form-urlencoded, then joined.
    Basic,
    /// `id:secret` as they are, for providers that do not decode Basic credentials.
    BasicUnencoded,
    RequestBody,
    /// RFC 7523 §2.2, signed by the host with the connection's signing key.
    PrivateKeyJwt,
    /// OpenID Connect Core §9, HS256 over the client secret.
    ClientSecretJwt,
}

impl ClientAuth {
    /// The name in the user's configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::Auto => "auto",
            ClientAuth::Basic => "basic",
            ClientAuth::BasicUnencoded => "basic_unencoded",
            ClientAuth::RequestBody => "request_body",
            ClientAuth::PrivateKeyJwt => "private_key_jwt",
            ClientAuth::ClientSecretJwt => "client_secret_jwt",
        }
    }
}

/// A JWS algorithm the host signs with (RFC 7518 §3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SigningAlgorithm {
    #[default]
    Rs256,
    Ps256,
    Es256,
}

impl SigningAlgorithm {
    /// The JWS `alg` value, which is also the configuration's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlgorithm::Rs256 => "RS256",
            SigningAlgorithm::Ps256 => "PS256",
            SigningAlgorithm::Es256 => "ES256",
        }
    }
}

/// The host's key that signs the connection's JWTs; the component knows only its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKey {
    pub name: String,
    pub algorithm: SigningAlgorithm,
    /// The JWT header's `kid`, when the configuration gives one.
    pub key_id: Option<String>,
}

/// The unit a provider counts token lifetimes in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimeUnit {
    #[default]
    Seconds,
    Milliseconds,
}

impl TimeUnit {
    /// The name the configuration uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "seconds",
            TimeUnit::Milliseconds => "milliseconds",
        }
    }
}

/// What separates scopes on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScopeSeparator {
    /// RFC 6749 §3.3.
    #[default]
    Space,
    /// Slack, and GitHub's responses.
    Comma,
}

impl ScopeSeparator {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeSeparator::Space => " ",
            ScopeSeparator::Comma => ",",
        }
    }
}

/// How to read token responses where a provider departs from RFC 6749 §5.1; the default is
/// the standard reading.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseFormat {
    /// Dot-separated path of the object holding the token fields; empty for the top level.
    pub token_path: String,
    pub expires_in_unit: TimeUnit,
    pub scope_separator: ScopeSeparator,
}

/// A connection as the user configured it. Secret fields hold secret *names*, never values,
/// so `Debug` is safe to print.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub grant_type: GrantType,
    pub token_url: String,
    pub authorization_url: Option<String>,
    pub redirect_uri: Option<String>,
    pub client_id: String,
    pub client_secret_name: Option<String>,
    pub username: Option<String>,
    pub password_name: Option<String>,
    pub header_prefix: Option<String>,
    pub audience: Option<String>,
    /// RFC 8707 resource indicators.
    pub resource: Vec<String>,
    pub scope: Option<String>,
    pub client_auth: ClientAuth,
    /// Sent with token requests and the authorization URL.
    pub extra_params: Vec<(String, String)>,
    /// Sent with the authorization URL only.
    pub authorization_params: Vec<(String, String)>,
    pub response_format: ResponseFormat,
    /// Origins the access token may be sent to; empty for any `https` origin (or `http` on a
    /// loopback host).
    pub api_origins: Vec<String>,
    pub signing_key: Option<SigningKey>,
    /// The `aud` of the JWTs the client signs, when not the token URL.
    pub assertion_audience: Option<String>,
    /// The `sub` of a JWT bearer grant's assertion.
    pub subject: Option<String>,
    pub device_authorization_url: Option<String>,
    pub revocation_url: Option<String>,
    /// The issuer an authorization response's `iss` must name (RFC 9207).
    pub issuer: Option<String>,
}

/// One problem in a configuration, named by the key the user writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    pub field: String,
    pub message: String,
}

impl ConfigProblem {
    fn new(field: &str, message: impl Into<String>) -> Self {
        ConfigProblem {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Parameters the component sets itself; an extra parameter may not override them.
const RESERVED_PARAMS: &[&str] = &[
    "grant_type",
    "client_id",
    "client_secret",
    "code",
    "code_verifier",
    "code_challenge",
    "code_challenge_method",
    "redirect_uri",
    "refresh_token",
    "username",
    "password",
    "response_type",
    "state",
    "scope",
    "audience",
    "resource",
    "assertion",
    "client_assertion",
    "client_assertion_type",
    "device_code",
    "token",
    "token_type_hint",
];

/// Whether `name` is one of [`RESERVED_PARAMS`], in any case: a server that reads names
/// case-insensitively would take `Client_Secret` for its own.
fn is_reserved_param(name: &str) -> bool {
    RESERVED_PARAMS.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// The default `Authorization` scheme (RFC 6750 §2.1).
pub const DEFAULT_HEADER_PREFIX: &str = "Bearer";

impl Config {
    /// Whether the client authenticates with a client assertion the host signs: configured so,
    /// or `auto` with a signing key on a grant whose JWT is not the grant itself.
    pub fn signs_client_assertions(&self) -> bool {
        match self.client_auth {
            ClientAuth::PrivateKeyJwt => true,
            ClientAuth::Auto => {
                self.signing_key.is_some() && self.grant_type != GrantType::JwtBearer
            }
            _ => false,
        }
    }

    /// Whether the client authenticates with a JWT: one the host signs, or `client_secret_jwt`.
    pub fn uses_client_assertions(&self) -> bool {
        self.client_auth == ClientAuth::ClientSecretJwt || self.signs_client_assertions()
    }

    /// The word put before the access token in the `Authorization` header.
    pub fn header_prefix(&self) -> &str {
        self.header_prefix
            .as_deref()
            .unwrap_or(DEFAULT_HEADER_PREFIX)
    }

    /// The `scope` parameter: the configured scopes, however the user spaced them, joined by the
    /// provider's separator; none when no scope is configured.
    pub fn scope_param(&self) -> Option<String> {
        let scopes: Vec<&str> = self.scope.as_deref()?.split_whitespace().collect();
        (!scopes.is_empty()).then(|| scopes.join(self.response_format.scope_separator.as_str()))
    }

    /// The audience and resource indicators (RFC 8707 §2), which go with the authorization URL
    /// and with token requests other than refreshes.
    pub fn shared_params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.audience
            .iter()
            .map(|a| ("audience", a.as_str()))
            .chain(self.resource.iter().map(|r| ("resource", r.as_str())))
    }

    /// Every problem in the configuration; empty when it is usable.
    pub fn problems(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        match endpoint("token_url", &self.token_url) {
            Err(p) => problems.push(p),
            Ok(url) => problems.extend(reserved_param_problem("token_url", &url)),
        }
        if self.client_id.trim().is_empty() {
            problems.push(ConfigProblem::new(
                "client_id",
                "is empty: paste the client ID the provider issued",
            ));
        }
        for (field, name) in [
            ("client_secret", &self.client_secret_name),
            ("password", &self.password_name),
        ] {
            if name.as_deref().is_some_and(|n| n.trim().is_empty()) {
                problems.push(ConfigProblem::new(
                    field,
                    "names no secret: give the secret's name in the store",
                ));
            }
        }
        match self.grant_type {
            GrantType::ClientCredentials => {
                if self.client_secret_name.is_none() && !self.signs_client_assertions() {
                    problems.push(ConfigProblem::new(
                        "client_secret",
                        "is required for client_credentials: name the secret holding the client secret",
                    ));
                }
            }
            GrantType::Password => {
                if self.username.as_deref().is_none_or(|u| u.is_empty()) {
                    problems.push(ConfigProblem::new(
                        "username",
                        "is required for the password grant",
                    ));
                }
                if self.password_name.is_none() {
                    problems.push(ConfigProblem::new(
                        "password",
                        "is required for the password grant: name the secret holding the password",
                    ));
                }
            }
            GrantType::AuthorizationCode => {
                match &self.authorization_url {
                    None => problems.push(ConfigProblem::new(
                        "authorization_url",
                        "is required for authorization_code: the provider's authorization endpoint",
                    )),
                    Some(url) => match endpoint("authorization_url", url) {
                        Err(problem) => problems.push(problem),
                        Ok(url) => {
                            problems.extend(reserved_param_problem("authorization_url", &url));
                        }
                    },
                }
                match &self.redirect_uri {
                    None => problems.push(ConfigProblem::new(
                        "redirect_uri",
                        "is required for authorization_code: the redirect URI registered at the provider",
                    )),
                    Some(url) => problems.extend(endpoint("redirect_uri", url).err()),
                }
            }
            GrantType::JwtBearer => {
                if self.signing_key.is_none() {
                    problems.push(ConfigProblem::new(
                        "private_key",
                        "is required for jwt_bearer: name the key that signs the assertion",
                    ));
                }
            }
            GrantType::DeviceCode => {
                if self.device_authorization_url.is_none() {
                    problems.push(ConfigProblem::new(
                        "device_authorization_url",
                        "is required for device_code: the provider's device authorization endpoint",
                    ));
                }
            }
        }
        for (field, url) in [
            ("device_authorization_url", &self.device_authorization_url),
            ("revocation_url", &self.revocation_url),
        ] {
            if let Some(url) = url {
                match endpoint(field, url) {
                    Err(problem) => problems.push(problem),
                    Ok(url) => problems.extend(reserved_param_problem(field, &url)),
                }
            }
        }
        match self.client_auth {
            ClientAuth::PrivateKeyJwt if self.signing_key.is_none() => {
                problems.push(ConfigProblem::new(
                    "private_key",
                    "is required for client_auth private_key_jwt: name the key that signs the client assertion",
                ));
            }
            ClientAuth::ClientSecretJwt if self.client_secret_name.is_none() => {
                problems.push(ConfigProblem::new(
                    "client_secret",
                    "is required for client_auth client_secret_jwt: the assertion is signed with it",
                ));
            }
            _ => {}
        }
        if let Some(key) = &self.signing_key {
            if key.name.trim().is_empty() {
                problems.push(ConfigProblem::new(
                    "private_key",
                    "names no key: give the name of the secret holding the PEM private key",
                ));
            }
            if key.key_id.as_deref().is_some_and(str::is_empty) {
                problems.push(ConfigProblem::new(
                    "key_id",
                    "is empty: remove it or give the key's ID",
                ));
            }
        }
        for (field, value) in [
            ("assertion_audience", &self.assertion_audience),
            ("subject", &self.subject),
            ("issuer", &self.issuer),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                problems.push(ConfigProblem::new(
                    field,
                    "is empty: remove it or give a value",
                ));
            }
        }
        problems.extend(self.header_prefix_problem());
        if let Some(scope) = &self.scope {
            // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), joined by spaces.
            let bad = scope.split(' ').filter(|t| !t.is_empty()).any(|t| {
                t.bytes()
                    .any(|b| !(0x21..=0x7e).contains(&b) || b == b'"' || b == b'\\')
            });
            if bad {
                problems.push(ConfigProblem::new(
                    "scope",
                    "has a character not allowed in a scope (RFC 6749 §3.3); separate scopes with spaces",
                ));
            }
        }
        for (key, params) in [
            ("extra_params", &self.extra_params),
            ("authorization_params", &self.authorization_params),
        ] {
            for (name, _) in params {
                if name.is_empty() {
                    problems.push(ConfigProblem::new(
                        key,
                        "has a parameter with an empty name",
                    ));
                } else if is_reserved_param(name) {
                    problems.push(ConfigProblem::new(
                        &format!("{key}.{name}"),
                        "is set by the grant itself; use the matching configuration key instead",
                    ));
                }
            }
        }
        for resource in &self.resource {
            // RFC 8707 §2: an absolute URI without a fragment.
            let usable = Url::parse(resource).is_ok_and(|url| url.fragment().is_none());
            if !usable {
                problems.push(ConfigProblem::new(
                    "resource",
                    format!(
                        "{resource:?} is not an absolute URI without a #fragment (RFC 8707 §2)"
                    ),
                ));
            }
        }
        for origin in &self.api_origins {
            problems.extend(api_origin(origin).err());
        }
        let path = &self.response_format.token_path;
        if !path.is_empty() && path.split('.').any(str::is_empty) {
            problems.push(ConfigProblem::new(
                "token_path",
                "must be field names joined by dots, such as authed_user",
            ));
        }
        problems
    }

    /// The first problem, as an error, or nothing when the configuration is usable.
    pub fn check(&self) -> Result<(), crate::error::Error> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(crate::error::Error::InvalidConfig(problem)),
            None => Ok(()),
        }
    }

    /// Whether a request to `url` may carry this connection's token: only over `https` (or
    /// `http` to a loopback host), and, when `api_origins` are configured, only to one of them.
    /// Checked on every decoration, before the token is read.
    pub fn check_api_url(&self, url: &str) -> Result<(), crate::error::Error> {
        use crate::error::Error;
        let url = url.trim();
        // Without `api_origins` the scheme alone decides, and any URL that begins `https://`
        // has that scheme however a parser reads the rest. Parsing it cost a sixth of a
        // connector step inside the component, so it is parsed only when more must be known.
        if self.api_origins.is_empty()
            && url
                .get(..HTTPS.len())
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case(HTTPS))
        {
            return Ok(());
        }
        let url = Url::parse(url).map_err(|e| {
            Error::ApiUrlRefused(format!("the request's URL is not an absolute URL ({e})"))
        })?;
        let origin = origin_of(&url);
        match transport_problem(&url) {
            Some(TransportProblem::PlainHttp) => {
                return Err(Error::ApiUrlRefused(format!(
                    "{origin}: the token goes only over https (plain http only to loopback hosts: 127.0.0.1, ::1, localhost)"
                )));
            }
            Some(TransportProblem::Scheme) => {
                return Err(Error::ApiUrlRefused(format!(
                    "{origin}: the token goes only in https requests"
                )));
            }
            None => {}
        }
        if self.api_origins.is_empty() {
            return Ok(());
        }
        let mut allowed = false;
        for configured in &self.api_origins {
            let configured = api_origin(configured).map_err(Error::InvalidConfig)?;
            allowed |= same_origin(&configured, &url);
        }
        if allowed {
            Ok(())
        } else {
            let origins: Vec<&str> = self.api_origins.iter().map(String::as_str).collect();
            Err(Error::ApiUrlRefused(format!(
                "{origin} is not one of the connection's api_origins ({})",
                origins.join(", ")
            )))
        }
    }

    /// What is wrong with the header prefix, which every decoration puts in a header.
    pub fn header_prefix_problem(&self) -> Option<ConfigProblem> {
        // The prefix becomes part of a header value: a space or control character would split
        // or inject headers (RFC 9110 §11.4: the scheme is a token).
        let prefix = self.header_prefix.as_deref()?;
        (!prefix.bytes().all(|b| b.is_ascii_graphic())).then(|| {
            ConfigProblem::new(
                "header_prefix",
                "must be one word of visible ASCII characters, such as Bearer or Token",
            )
        })
    }

    /// A stable name for this connection's token in the host's store. It covers everything that
    /// changes which token the provider would issue, so editing the configuration never serves
    /// a token obtained for the old one.
    pub fn connection_key(&self) -> String {
        self.prefixed_connection_key("")
    }

    /// `prefix` followed by [`Config::connection_key`], built in one allocation: the token's
    /// store key is derived on every decoration.
    pub fn prefixed_connection_key(&self, prefix: &str) -> String {
        let mut hash = Sha256::new();
        let mut field = |value: &str| {
            hash.update((value.len() as u64).to_le_bytes());
            hash.update(value.as_bytes());
        };
        field(self.grant_type.as_str());
        field(&self.token_url);
        field(&self.client_id);
        field(self.username.as_deref().unwrap_or(""));
        field(self.scope.as_deref().unwrap_or(""));
        field(self.audience.as_deref().unwrap_or(""));
        field(&self.response_format.token_path);
        // Written only when set, so that adding these settings left every earlier key as it was.
        if let Some(subject) = &self.subject {
            field("subject");
            field(subject);
        }
        // Unstable sorts: equal items are identical text, so the order is a stable sort's.
        let mut resources: Vec<_> = self.resource.iter().collect();
        heapsort(&mut resources);
        for resource in resources {
            field(resource);
        }
        for params in [&self.extra_params, &self.authorization_params] {
            field("");
            let mut sorted: Vec<_> = params.iter().collect();
            heapsort(&mut sorted);
            for (name, value) in sorted {
                field(name);
                field(value);
            }
        }
        hex(prefix, &hash.finalize()[..16])
    }
}

/// `sort_unstable` without the standard library's pattern-defeating quicksort, which costs the
/// component 5 KB for each type it sorts. The lists are a connection's resource indicators and
/// parameters, a handful of items; a heapsort keeps a long one at O(n log n) all the same.
fn heapsort<T: Ord>(v: &mut [T]) {
    fn sift_down<T: Ord>(v: &mut [T], mut node: usize, end: usize) {
        loop {
            let mut child = 2 * node + 1;
            if child >= end {
                return;
            }
            if child + 1 < end && v[child] < v[child + 1] {
                child += 1;
            }
            if v[node] >= v[child] {
                return;
            }
            v.swap(node, child);
            node = child;
        }
    }
    for node in (0..v.len() / 2).rev() {
        sift_down(v, node, v.len());
    }
    for end in (1..v.len()).rev() {
        v.swap(0, end);
        sift_down(v, 0, end);
    }
}

const HTTPS: &str = "https://";

/// `prefix` followed by `bytes` in lowercase hexadecimal.
pub fn hex(prefix: &str, bytes: &[u8]) -> String {
    // Runs on every decoration (the token's store key): no formatting machinery per byte, and
    // the string sized once.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(prefix.len() + 2 * bytes.len());
    out.push_str(prefix);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// A parameter the flow sets, carried by a configured URL: it would be sent twice, and a
/// provider may read the configured one (a fixed state, another client, a secret in a URL).
fn reserved_param_problem(field: &str, url: &Url) -> Option<ConfigProblem> {
    let (name, _) = url
        .query_pairs()
        .find(|(name, _)| is_reserved_param(name))?;
    Some(ConfigProblem::new(
        field,
        format!(
            "carries the parameter {name:?}, which the flow sets itself: remove it from the URL"
        ),
    ))
}

/// An entry of `api_origins`: an `https` origin (or `http` on a loopback host) and nothing more.
fn api_origin(value: &str) -> Result<Url, ConfigProblem> {
    let url = endpoint("api_origins", value)?;
    if url.path() != "/" || url.query().is_some() {
        return Err(ConfigProblem::new(
            "api_origins",
            format!(
                "{value:?} is not an origin: give scheme, host and port only, such as https://api.example.com"
            ),
        ));
    }
    Ok(url)
}

/// `scheme://host[:port]`, for messages: no user information, path or query, which may hold
/// credentials.
fn origin_of(url: &Url) -> String {
    let mut origin = String::from(url.scheme());
    origin.push_str("://");
    origin.push_str(url.host_str().unwrap_or_default());
    if let Some(port) = url.port() {
        origin.push(':');
        origin.push_str(&port.to_string());
    }
    origin
}

/// Whether two URLs have one origin (RFC 6454): scheme, host and port, a default port written
/// or not. The parser has already lowered the scheme and host.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Why a URL's scheme may not carry credentials.
enum TransportProblem {
    /// `http` to a host that is not loopback.
    PlainHttp,
    /// Neither `http` nor `https`.
    Scheme,
}

/// Whether `url`'s host is this machine: `127.0.0.0/8`, `::1` or `localhost`, as the URL
/// parser reads it (`0177.0.0.1` and `2130706433` are `127.0.0.1`).
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Whether `url` may carry credentials: `https`, or `http` to a loopback host.
fn transport_problem(url: &Url) -> Option<TransportProblem> {
    match url.scheme() {
        "https" => None,
        "http" if is_loopback(url) => None,
        "http" => Some(TransportProblem::PlainHttp),
        _ => Some(TransportProblem::Scheme),
    }
}

/// Parses an endpoint URL: absolute, `https`, or `http` only on a loopback host, with no
/// credentials and no fragment.
pub fn endpoint(field: &str, value: &str) -> Result<Url, ConfigProblem> {
    let url = Url::parse(value.trim()).map_err(|e| {
        ConfigProblem::new(
            field,
            format!("is not an absolute URL ({e}): give the full https:// address"),
        )
    })?;
    match transport_problem(&url) {
        None => {}
        Some(TransportProblem::PlainHttp) => {
            return Err(ConfigProblem::new(
                field,
                "must use https: plain http is allowed only for loopback hosts (127.0.0.1, ::1, localhost)",
            ));
        }
        Some(TransportProblem::Scheme) => {
            return Err(ConfigProblem::new(
                field,
                format!("has scheme {:?}: it must be https", url.scheme()),
            ));
        }
    }
    if url.host().is_none() {
        return Err(ConfigProblem::new(field, "has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigProblem::new(
            field,
            "contains credentials: put the client ID and secret in their own fields, never in a URL",
        ));
    }
    if url.fragment().is_some() {
        return Err(ConfigProblem::new(
            field,
            "must not contain a #fragment (RFC 6749 §3.1)",
        ));
    }
    Ok(url)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn heapsort_sorts_as_sort_unstable_does() {
        let mut seed = 7u32;
        for len in 0..40 {
            let mut items: Vec<(String, String)> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    let n = seed >> 16;
                    (format!("k{}", n % 5), format!("v{}", n % 3))
                })
                .collect();
            let mut expected = items.clone();
            expected.sort_unstable();
            heapsort(&mut items);
            assert_eq!(items, expected, "{len} items");
        }
    }

    pub(crate) fn config(grant_type: GrantType) -> Config {
        Config {
            grant_type,
            token_url: "https://idp.example.com/oauth/token".into(),
            authorization_url: Some("https://idp.example.com/authorize".into()),
            redirect_uri: Some("http://127.0.0.1:8765/callback".into()),
            client_id: "client-1".into(),
            client_secret_name: Some("client-secret".into()),
            username: Some("alice".into()),
            password_name: Some("alice-password".into()),
            header_prefix: None,
            audience: None,
            resource: vec![],
            scope: None,
            client_auth: ClientAuth::Basic,
            extra_params: vec![],
            authorization_params: vec![],
            response_format: ResponseFormat::default(),
            api_origins: vec![],
            signing_key: None,
            assertion_audience: None,
            subject: None,
            device_authorization_url: None,
            revocation_url: None,
            issuer: None,
        }
    }

    fn fields(config: &Config) -> Vec<String> {
        config
            .problems()
            .into_iter()
            .map(|p| p.field)
            .collect::<Vec<_>>()
    }

    #[test]
    fn complete_configs_have_no_problems() {
        for grant in [
            GrantType::ClientCredentials,
            GrantType::Password,
            GrantType::AuthorizationCode,
        ] {
            assert_eq!(config(grant).problems(), vec![], "{grant:?}");
        }
    }

    #[test]
    fn https_required_except_on_loopback() {
        for ok in [
            "https://idp.example.com/token",
            "http://127.0.0.1:8080/token",
            "http://127.5.6.7/token",
            "http://[::1]:9000/token",
            "http://localhost:3000/token",
            "http://LOCALHOST/token",
        ] {
            assert!(endpoint("token_url", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://idp.example.com/token",
            "http://10.0.0.1/token",
            "http://127.0.0.1.example.com/token",
            "http://localhost.evil.com/token",
            "ftp://idp.example.com/token",
            "idp.example.com/token",
            "https://id:secret@idp.example.com/token",
            "https://idp.example.com/token#frag",
        ] {
            let problem = endpoint("token_url", bad).unwrap_err();
            assert_eq!(problem.field, "token_url", "{bad}");
        }
    }

    #[test]
    fn every_problem_is_reported_by_field() {
        let mut c = config(GrantType::AuthorizationCode);
        c.token_url = "http://idp.example.com/token".into();
        c.authorization_url = None;
        c.redirect_uri = None;
        c.client_id = " ".into();
        c.header_prefix = Some("Bearer\r\nX-Injected: 1".into());
        c.scope = Some("read \"write\"".into());
        c.extra_params = vec![
            ("grant_type".into(), "x".into()),
            ("max_age".into(), "60".into()),
        ];
        c.authorization_params = vec![("".into(), "x".into()), ("resource".into(), "r".into())];
        c.resource = vec![
            "https://api.example.com/".into(),
            "api".into(),
            "https://a/#f".into(),
        ];
        c.response_format.token_path = "authed_user.".into();
        assert_eq!(
            fields(&c),
            [
                "token_url",
                "client_id",
                "authorization_url",
                "redirect_uri",
                "header_prefix",
                "scope",
                "extra_params.grant_type",
                "authorization_params",
                "authorization_params.resource",
                "resource",
                "resource",
                "token_path"
            ]
        );
    }

    #[test]
    fn the_authorization_url_may_not_carry_what_the_flow_sets() {
        let mut c = config(GrantType::AuthorizationCode);
        c.authorization_url = Some("https://idp.example.com/authorize?tenant=acme&prompt=x".into());
        assert_eq!(fields(&c), Vec::<String>::new());
        for name in [
            "state",
            "client_id",
            "redirect_uri",
            "response_type",
            "code_challenge",
        ] {
            c.authorization_url = Some(format!("https://idp.example.com/authorize?{name}=x"));
            assert_eq!(fields(&c), ["authorization_url"], "{name}");
        }
    }

    #[test]
    fn the_token_url_may_not_carry_what_a_token_request_sets() {
        let mut c = config(GrantType::ClientCredentials);
        c.token_url = "https://idp.example.com/token?p=B2C_1_signin".into();
        assert_eq!(
            fields(&c),
            Vec::<String>::new(),
            "other parameters are kept"
        );
        for query in [
            "client_secret=s3cret",
            "grant_type=password",
            "Client_Secret=x",
            "client%5Fsecret=x",
            "refresh_token=x",
        ] {
            c.token_url = format!("https://idp.example.com/token?{query}");
            assert_eq!(fields(&c), ["token_url"], "{query}");
        }
    }

    #[test]
    fn the_token_goes_only_over_https_and_to_the_configured_origins() {
        use crate::error::Error;
        let mut c = config(GrantType::ClientCredentials);
        for ok in [
            "https://api.example.com/v1/x?y=1",
            " HTTPS://api.example.com/v1",
            "https://api.example.com@other.example.com/",
            "http://127.0.0.1:8080/x",
            "http://[::1]/x",
            "http://localhost:1/x",
        ] {
            assert_eq!(c.check_api_url(ok), Ok(()), "{ok}");
        }
        for refused in [
            "http://api.example.com/x",
            "http://api.example.com/https://",
            "ht\ttp://api.example.com/x",
            "http://10.0.0.1/x",
            "ftp://api.example.com/x",
            "wss://api.example.com/x",
            "/relative",
        ] {
            assert!(
                matches!(c.check_api_url(refused), Err(Error::ApiUrlRefused(_))),
                "{refused}"
            );
        }

        c.api_origins = vec![
            "https://api.example.com".into(),
            "http://127.0.0.1:8080".into(),
        ];
        assert_eq!(c.problems(), vec![]);
        for ok in [
            "https://api.example.com/v1",
            "https://API.example.com:443/v1",
            "http://127.0.0.1:8080/x",
        ] {
            assert_eq!(c.check_api_url(ok), Ok(()), "{ok}");
        }
        for refused in [
            "https://evil.example.com/v1",
            "https://api.example.com:8443/v1",
            "https://api.example.com.evil.com/",
            "https://api.example.com@evil.com/",
            "http://127.0.0.1:8081/x",
        ] {
            let err = c.check_api_url(refused).unwrap_err();
            assert!(
                matches!(&err, Error::ApiUrlRefused(m) if m.contains("api_origins")),
                "{refused}: {err:?}"
            );
        }

        for bad in [
            "https://api.example.com/v1",
            "http://api.example.com",
            "api.example.com",
        ] {
            c.api_origins = vec![bad.into()];
            assert_eq!(fields(&c), ["api_origins"], "{bad}");
            assert!(
                matches!(
                    c.check_api_url("https://api.example.com/"),
                    Err(Error::InvalidConfig(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn grant_specific_requirements() {
        let mut c = config(GrantType::ClientCredentials);
        c.client_secret_name = None;
        assert_eq!(fields(&c), ["client_secret"]);

        let mut c = config(GrantType::Password);
        c.username = None;
        c.password_name = None;
        assert_eq!(fields(&c), ["username", "password"]);

        // A public client (no secret) may use the authorization code grant with PKCE.
        let mut c = config(GrantType::AuthorizationCode);
        c.client_secret_name = None;
        assert_eq!(fields(&c), Vec::<String>::new());
    }

    #[test]
    fn connection_key_changes_with_what_selects_the_token() {
        let base = config(GrantType::ClientCredentials);
        let key = base.connection_key();
        assert_eq!(key.len(), 32);
        assert_eq!(key, base.clone().connection_key());
        let mut other = base.clone();
        other.scope = Some("read".into());
        assert_ne!(other.connection_key(), key);
        let mut other = base.clone();
        other.client_id = "client-2".into();
        assert_ne!(other.connection_key(), key);
        // Field boundaries are length-prefixed: moving text between fields changes the key.
        let mut a = base.clone();
        a.client_id = "ab".into();
        a.username = Some("c".into());
        let mut b = base.clone();
        b.client_id = "a".into();
        b.username = Some("bc".into());
        assert_ne!(a.connection_key(), b.connection_key());
        // Where the token is read from, resources and authorization parameters select it too.
        let mut other = base.clone();
        other.response_format.token_path = "authed_user".into();
        assert_ne!(other.connection_key(), key);
        let mut other = base.clone();
        other.resource = vec!["https://api.example.com/".into()];
        assert_ne!(other.connection_key(), key);
        let mut a = base.clone();
        a.extra_params = vec![("prompt".into(), "consent".into())];
        let mut b = base.clone();
        b.authorization_params = a.extra_params.clone();
        assert_ne!(a.connection_key(), key);
        assert_ne!(a.connection_key(), b.connection_key());
        // The header prefix does not change which token is issued.
        let mut other = base.clone();
        other.header_prefix = Some("Token".into());
        assert_eq!(other.connection_key(), key);
    }
}
