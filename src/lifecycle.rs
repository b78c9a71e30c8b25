//! The token lifecycle: cached token, refresh, re-fetch, and the authorization-code flow, over
//! the host's HTTP, secrets, token store, clock and randomness.

use crate::prelude::*;

use subtle::ConstantTimeEq;

use crate::callback::{self, Outcome};
use crate::config::{ClientAuth, Config, GrantType, SigningAlgorithm};
use crate::error::{Error, ProviderError, SigningError, StoreError, TransportError};
use crate::hints::{self, Situation};
use crate::http::{Headers, HttpRequest, HttpResponse};
use crate::jwt::{self, Claims, Header, KeyDescription};
use crate::provider_text::Redactor;
use crate::secret::{Assertion, ClientSecret, PkceVerifier, State};
use crate::token::Token;
use crate::token_cache::{
    CachedAccess, CachedToken, PENDING_LIFETIME_SECS, PendingAuthorization, client_auth_key,
    pending_key, token_key,
};
use crate::token_request::{self, AuthMethod, Credentials, Step};
use crate::{authorization_url, pkce, token_response};

/// What the lifecycle needs from the host.
pub trait Host {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError>;
    /// A user secret the configuration names; read-only.
    fn get_secret(&self, name: &str) -> Result<Option<String>, String>;
    /// An entry of the component's own token store.
    fn get_entry(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Writes an entry; with `ttl_secs`, the store drops it after that many seconds.
    fn set_entry(&self, key: &str, value: &str, ttl_secs: Option<u64>) -> Result<(), StoreError>;
    /// Replaces the entry with `value` (`None`: deletes it) if it is still `expected`
    /// (`None`: absent), atomically; `false` when it was not.
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: Option<&str>,
        ttl_secs: Option<u64>,
    ) -> Result<bool, StoreError>;
    /// Takes the store's lock named `key`, waiting a bounded time for another holder.
    fn lock(&self, key: &str) -> Result<(), StoreError>;
    fn unlock(&self, key: &str);
    /// Unix seconds.
    fn now(&self) -> u64;
    /// Fills `bytes` from a CSPRNG; the error says why there is none.
    fn random(&self, bytes: &mut [u8]) -> Result<(), String>;
    /// What a JWT header may say about the host's key `name`. A host without keys keeps the
    /// defaults of this and [`Host::sign`], which say it holds none.
    fn describe_key(
        &self,
        name: &str,
        _algorithm: SigningAlgorithm,
    ) -> Result<KeyDescription, SigningError> {
        Err(no_signing_keys(name))
    }
    /// The JWS signature of `data` by the host's key `name`; the key stays with the host.
    fn sign(
        &self,
        name: &str,
        _algorithm: SigningAlgorithm,
        _data: &[u8],
    ) -> Result<Vec<u8>, SigningError> {
        Err(no_signing_keys(name))
    }
}

/// What a host without signing keys answers for the key `name`.
fn no_signing_keys(name: &str) -> SigningError {
    SigningError::UnknownKey(format!(
        "this host holds no signing keys, so none named {name:?}"
    ))
}

/// A lock of the token store, released when dropped.
pub(crate) struct Held<'a, H: Host> {
    host: &'a H,
    key: &'a str,
}

impl<H: Host> Drop for Held<'_, H> {
    fn drop(&mut self) {
        self.host.unlock(self.key);
    }
}

pub(crate) fn lock<'a, H: Host>(host: &'a H, key: &'a str) -> Result<Held<'a, H>, Error> {
    host.lock(key).map_err(Error::TokenStore)?;
    Ok(Held { host, key })
}

/// Where the user goes to consent, and the state that comes back.
#[derive(Debug, PartialEq, Eq)]
pub struct AuthorizationStart {
    pub url: String,
    pub state: State,
}

/// A usable token for the connection: the cached one while fresh; else a refresh when there is
/// a refresh token; else a new token for the repeatable grants. A failure leaves the store as
/// it was.
pub fn ensure_token(config: &Config, host: &impl Host) -> Result<Token, Error> {
    config.check()?;
    let key = token_key(config);
    let unit = config.response_format.expires_in_unit;
    let cached = read_entry(host, &key)?.and_then(|entry| CachedToken::decode(&entry));
    if let Some(token) = cached.and_then(|cached| cached.usable(host.now(), unit)) {
        return Ok(token);
    }
    obtain(config, host, &key)
}

/// The headers to set on a request to `url`: `Authorization` with the cached token while it is
/// fresh, else with one obtained (see [`obtain`]). Refused before the store is read when `url`
/// may not receive the token. The configuration is checked once and the store key hashed once,
/// whichever path the call takes.
pub fn authorization_headers(
    config: &Config,
    host: &impl Host,
    url: &str,
) -> Result<Headers, Error> {
    config.check_api_url(url)?;
    let key = token_key(config);
    if let Some(value) = fresh_authorization(config, host, &key)? {
        return Ok(decoration(value));
    }
    config.check()?;
    let token = obtain(config, host, &key)?;
    Ok(decoration(authorization(
        config,
        token.access_token.secret(),
    )))
}

/// The request with [`authorization_headers`] set, replacing any of their names it had.
pub fn decorate_request(
    config: &Config,
    host: &impl Host,
    mut request: HttpRequest,
) -> Result<HttpRequest, Error> {
    let headers = authorization_headers(config, host, &request.url)?;
    request.set_headers(headers);
    Ok(request)
}

/// What decorating a request sets: `Authorization` with `value`.
fn decoration(value: String) -> Headers {
    Headers(vec![("Authorization".to_owned(), value)])
}

/// The `Authorization` value for the cached token while it is fresh; `None` when a token must
/// be obtained. This is every connector step's path, so it reads only the access token, its
/// expiry and the unit that expiry was read under from the store entry.
///
/// A token is stored only after the whole configuration passed [`Config::check`], under a key
/// that covers every field the token depends on. So a fresh token found here vouches for those
/// fields, and only the header prefix, which the key leaves out, is checked again: parsing the
/// URLs again cost a third of a warm decoration. Without a fresh token the caller checks
/// everything.
fn fresh_authorization(
    config: &Config,
    host: &impl Host,
    key: &str,
) -> Result<Option<String>, Error> {
    let entry = read_entry(host, key)?;
    let fresh = entry.as_deref().and_then(|entry| {
        CachedAccess::decode(entry)?
            .fresh_access_token(host.now(), config.response_format.expires_in_unit)
            .map(|token| authorization(config, token))
    });
    match (fresh, config.header_prefix_problem()) {
        (Some(_), Some(problem)) => Err(Error::InvalidConfig(problem)),
        (fresh, _) => Ok(fresh),
    }
}

/// A usable token, obtained under the connection's lock: the entry is read again once the
/// lock is had, so of many steps that find the token stale at once, one refreshes and the
/// others use what it stored, and a rotating refresh token is never spent twice. Then a
/// refresh when there is a refresh token, else a new token for the repeatable grants. The
/// configuration has been checked.
fn obtain(config: &Config, host: &impl Host, key: &str) -> Result<Token, Error> {
    let _held = lock(host, key)?;
    let entry = read_entry(host, key)?;
    let cached = entry.as_deref().and_then(CachedToken::decode);
    let unit = config.response_format.expires_in_unit;

    if let Some(cached) = &cached {
        if let Some(token) = cached.usable(host.now(), unit) {
            return Ok(token);
        }
        if let Some(refresh_token) = &cached.refresh_token {
            let step = Step::Refresh {
                refresh_token: refresh_token.clone(),
            };
            match request_token(config, host, &step) {
                Ok(mut token) => {
                    // RFC 6749 §6: a new refresh token replaces the old; none means keep it.
                    token
                        .refresh_token
                        .get_or_insert_with(|| refresh_token.clone());
                    if token.scope.is_none() {
                        token.scope.clone_from(&cached.scope);
                    }
                    if token.id_token.is_none() {
                        token.id_token.clone_from(&cached.id_token);
                    }
                    if token.extra.0.is_empty() {
                        token.extra.clone_from(&cached.extra);
                    }
                    return store(config, host, key, entry.as_deref(), token).map_err(|e| match e {
                        Error::TokenStore(StoreError::Unavailable(m)) => {
                            Error::TokenStore(StoreError::Unavailable(format!(
                                "{m} (the refreshed token could not be saved: where the provider \
                                 rotates refresh tokens, the stored one may no longer work)"
                            )))
                        }
                        other => other,
                    });
                }
                // The refresh token is dead. A repeatable grant simply starts over; the
                // authorization code grant needs the user again.
                Err(Error::Provider(e)) if hints::is_invalid_grant(&e.code) => {
                    if !config.grant_type.is_repeatable() {
                        return Err(Error::AuthorizationRequired(format!(
                            "the provider refused the refresh token: {e}{}",
                            consent_again(config.grant_type)
                        )));
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    if !config.grant_type.is_repeatable() {
        let step = match config.grant_type {
            GrantType::DeviceCode => "approve it (start-device-authorization)",
            _ => "authorize it (begin-authorization)",
        };
        return Err(Error::AuthorizationRequired(format!(
            "this connection has no usable token: the user must {step}"
        )));
    }
    let token = request_token(config, host, &Step::NewToken)?;
    store(config, host, key, entry.as_deref(), token)
}

/// What a grant that needs the user adds to a refused refresh: the export that starts over,
/// where it is not the authorization flow's.
fn consent_again(grant: GrantType) -> &'static str {
    match grant {
        GrantType::DeviceCode => " (start-device-authorization)",
        _ => "",
    }
}

pub(crate) fn read_entry(host: &impl Host, key: &str) -> Result<Option<String>, Error> {
    host.get_entry(key).map_err(Error::TokenStore)
}

pub(crate) fn authorization(config: &Config, access_token: &str) -> String {
    let prefix = config.header_prefix();
    if prefix.is_empty() {
        return access_token.to_owned();
    }
    // Every decoration builds this header: no formatting machinery.
    let mut value = String::with_capacity(prefix.len() + 1 + access_token.len());
    value.push_str(prefix);
    value.push(' ');
    value.push_str(access_token);
    value
}

/// Drops the access token after the API refused it, keeping the refresh token so the next
/// `ensure_token` refreshes where it can. Under the connection's lock, and only if the entry is
/// still the one read, so a refresh under way is not undone. With `refused`, the
/// `Authorization` value the API refused, only a token that still gives that value is dropped:
/// one that another worker stored since is kept.
pub fn forget_token(config: &Config, host: &impl Host, refused: Option<&str>) -> Result<(), Error> {
    config.check()?;
    let key = token_key(config);
    let _held = lock(host, &key)?;
    let Some(entry) = read_entry(host, &key)? else {
        return Ok(());
    };
    let cached = CachedToken::decode(&entry);
    if let Some(refused) = refused {
        let stored = cached
            .as_ref()
            .and_then(|cached| cached.access_token.as_ref())
            .map(|token| authorization(config, token.secret()));
        if stored.as_deref() != Some(refused) {
            return Ok(());
        }
    }
    let kept = cached
        .filter(|cached| cached.refresh_token.is_some())
        .map(|cached| {
            CachedToken {
                access_token: None,
                ..cached
            }
            .encode()
        });
    host.compare_and_swap(&key, Some(&entry), kept.as_deref(), None)
        .map(drop)
        .map_err(Error::TokenStore)
}

/// Builds the token request for `step` with the secrets the configuration names, and the
/// client authentication `auto` would try first.
pub fn build_token_request(
    config: &Config,
    host: &impl Host,
    step: &Step,
) -> Result<HttpRequest, Error> {
    let auth = first_auth_method(config, host)?;
    build_request(config, host, step, auth)
}

/// Reads the response to a token request this host sent itself. Provider text in an error is
/// cleaned of every secret `request` carried and the configuration names.
pub fn parse_token_response(
    config: &Config,
    host: &impl Host,
    request: &HttpRequest,
    response: &HttpResponse,
) -> Result<Token, Error> {
    token_response::parse(response, host.now(), &config.response_format, || {
        with_configured_secrets(Redactor::for_request(request), config, host)
    })
}

/// `redactor` with the values of the secrets `config` names as well, whether or not the
/// request carried them: what the provider says is cleaned of every secret of the connection.
pub(crate) fn with_configured_secrets(
    mut redactor: Redactor,
    config: &Config,
    host: &impl Host,
) -> Redactor {
    for name in [&config.client_secret_name, &config.password_name]
        .into_iter()
        .flatten()
    {
        if let Ok(Some(value)) = host.get_secret(name) {
            redactor.add_secret(&value);
        }
    }
    redactor
}

fn build_request(
    config: &Config,
    host: &impl Host,
    step: &Step,
    auth: AuthMethod,
) -> Result<HttpRequest, Error> {
    let needs_password = config.grant_type == GrantType::Password && *step == Step::NewToken;
    let mut credentials = client_credentials(config, host)?;
    if needs_password {
        credentials.password = secret(host, "password", config.password_name.as_deref())?;
    }
    if config.grant_type == GrantType::JwtBearer && *step == Step::NewToken {
        let scope = config.scope_param();
        credentials.grant_assertion = Some(signed_jwt(
            config,
            host,
            config.subject.as_deref(),
            scope.as_deref(),
            None,
        )?);
    }
    token_request::build(config, step, &credentials, auth)
}

/// What authenticates the client on a request to any of the provider's endpoints: its secret,
/// and a fresh client assertion when the configuration asks for one.
pub(crate) fn client_credentials(config: &Config, host: &impl Host) -> Result<Credentials, Error> {
    let client_secret: Option<ClientSecret> =
        secret(host, "client_secret", config.client_secret_name.as_deref())?;
    let client_assertion = match (&client_secret, config.client_auth) {
        (Some(secret), ClientAuth::ClientSecretJwt) => {
            let sub = Some(config.client_id.as_str());
            Some(signed_jwt(config, host, sub, None, Some(secret))?)
        }
        _ if config.signs_client_assertions() => {
            let sub = Some(config.client_id.as_str());
            Some(signed_jwt(config, host, sub, None, None)?)
        }
        _ => None,
    };
    Ok(Credentials {
        client_secret,
        client_assertion,
        ..Credentials::default()
    })
}

/// Posts `form` to `url`, one of the provider's endpoints other than the token endpoint's
/// token requests, with the client's configured authentication. Returns the answer and the
/// redactor for any text of it that goes further: the secrets the request carried and the
/// configuration names.
pub(crate) fn send_form(
    config: &Config,
    host: &impl Host,
    url: String,
    form: form_urlencoded::Serializer<'_, String>,
) -> Result<(HttpResponse, Redactor), Error> {
    let credentials = client_credentials(config, host)?;
    let auth = first_auth_method(config, host)?;
    let request = token_request::authenticated_post(url, form, config, &credentials, auth, true);
    let secrets = with_configured_secrets(Redactor::for_request(&request), config, host);
    let response = host
        .send(&request)
        .map_err(|e| Error::Transport(e).cleaned(&secrets))?;
    Ok((response, secrets))
}

/// A JWT from the client (`iss`) to the provider (`aud`: the configured assertion audience,
/// else the token URL), valid for [`jwt::LIFETIME_SECS`], with a fresh random `jti`: signed
/// with HS256 over `hs256_secret` when given, else by the host with the connection's key.
fn signed_jwt(
    config: &Config,
    host: &impl Host,
    sub: Option<&str>,
    scope: Option<&str>,
    hs256_secret: Option<&ClientSecret>,
) -> Result<Assertion, Error> {
    let jti = random_token(host)?;
    let iat = host.now();
    let claims = Claims {
        iss: &config.client_id,
        sub,
        aud: config
            .assertion_audience
            .as_deref()
            .unwrap_or(&config.token_url)
            .trim(),
        jti: &jti,
        iat,
        exp: iat.saturating_add(jwt::LIFETIME_SECS),
        scope,
    };
    if let Some(secret) = hs256_secret {
        let header = Header {
            alg: "HS256",
            kid: None,
            x5t_s256: None,
        };
        let input = jwt::signing_input(&header, &claims);
        let signature = jwt::hs256(secret.secret().as_bytes(), input.as_bytes());
        return Ok(Assertion::new(jwt::finish(input, &signature)));
    }
    let Some(key) = &config.signing_key else {
        return Err(Error::InvalidConfig(crate::config::ConfigProblem {
            field: "private_key".into(),
            message: "is required to sign the JWT: name the key".into(),
        }));
    };
    let signing_failed = |e| Error::Signing(e).cleaned(&Redactor::none());
    let described = host
        .describe_key(&key.name, key.algorithm)
        .map_err(signing_failed)?;
    let header = Header {
        alg: key.algorithm.as_str(),
        kid: key.key_id.as_deref().or(described.key_id.as_deref()),
        x5t_s256: described.certificate_sha256.as_deref(),
    };
    let input = jwt::signing_input(&header, &claims);
    let signature = host
        .sign(&key.name, key.algorithm, input.as_bytes())
        .map_err(signing_failed)?;
    Ok(Assertion::new(jwt::finish(input, &signature)))
}

/// Starts the authorization-code flow: a fresh state and PKCE verifier, kept in the store
/// until the redirect comes back, and at most [`PENDING_LIFETIME_SECS`].
pub fn begin_authorization(config: &Config, host: &impl Host) -> Result<AuthorizationStart, Error> {
    require_authorization_code(config)?;
    let state = State::new(random_token(host)?);
    let pkce_verifier = PkceVerifier::new(random_token(host)?);
    let url = authorization_url::build(config, state.secret(), pkce_verifier.secret())?;
    let pending = PendingAuthorization {
        state: state.clone(),
        pkce_verifier,
        connection: config.connection_key(),
        created_at: host.now(),
    };
    host.set_entry(
        &pending_key(state.secret()),
        &pending.encode(),
        Some(PENDING_LIFETIME_SECS),
    )
    .map_err(Error::TokenStore)?;
    Ok(AuthorizationStart { url, state })
}

/// A state or PKCE verifier from the host's CSPRNG.
pub(crate) fn random_token(host: &impl Host) -> Result<String, Error> {
    let mut bytes = [0u8; pkce::RANDOM_BYTES];
    host.random(&mut bytes)
        .map_err(|m| Error::RandomnessUnavailable(m).cleaned(&Redactor::none()))?;
    Ok(pkce::token_from(&bytes))
}

/// Finishes the flow from the redirect URL: state first (constant time, single use), then an
/// error redirect, then the code exchange; the token is stored.
pub fn complete_authorization(
    config: &Config,
    host: &impl Host,
    redirect_url: &str,
) -> Result<Token, Error> {
    require_authorization_code(config)?;
    let redirect = callback::parse(
        redirect_url,
        config.redirect_uri.as_deref().unwrap_or_default(),
    )
    .map_err(|e| e.cleaned(&Redactor::none()))?;
    let state = redirect.state.ok_or(Error::StateMismatch)?;
    let pending = take_pending(config, host, state.secret())?;
    if host.now() > pending.created_at.saturating_add(PENDING_LIFETIME_SECS) {
        return Err(Error::AuthorizationRequired(
            "the authorization was started too long ago: start it again".into(),
        ));
    }
    // RFC 9207 §2.4: with an issuer known, an answer that names no issuer, or another, is
    // refused, an error answer included; the comparison is exact (RFC 3986 §6.2.1).
    if let Some(expected) = &config.issuer
        && redirect.iss.as_deref() != Some(expected.as_str())
    {
        return Err(Error::IssuerMismatch {
            expected: expected.clone(),
            received: redirect.iss,
        }
        .cleaned(&with_configured_secrets(Redactor::none(), config, host)));
    }

    let code = match redirect.outcome {
        Outcome::Code(code) => code,
        Outcome::Error {
            code,
            description,
            uri,
        } => {
            let mut redactor = with_configured_secrets(Redactor::none(), config, host);
            redactor.add_secret(pending.pkce_verifier.secret());
            return Err(Error::AuthorizationDenied(ProviderError {
                status: 0,
                hint: hints::for_code(&code, Situation::Consent).to_owned(),
                code,
                description,
                uri,
            })
            .cleaned(&redactor));
        }
    };
    let step = Step::ExchangeCode {
        code,
        pkce_verifier: pending.pkce_verifier,
    };
    let token = request_token(config, host, &step)?;
    let key = token_key(config);
    let _held = lock(host, &key)?;
    let entry = read_entry(host, &key)?;
    store(config, host, &key, entry.as_deref(), token)
}

/// The pending authorization `state` names, removed from the store: whatever happens next, a
/// replayed redirect finds nothing. Under the entry's lock, so two redirects carrying the same
/// state cannot both take it.
fn take_pending(
    config: &Config,
    host: &impl Host,
    state: &str,
) -> Result<PendingAuthorization, Error> {
    let key = pending_key(state);
    let _held = lock(host, &key)?;
    let entry = read_entry(host, &key)?.ok_or(Error::StateMismatch)?;
    let pending = PendingAuthorization::decode(&entry).ok_or(Error::StateMismatch)?;
    let same_state: bool = pending
        .state
        .secret()
        .as_bytes()
        .ct_eq(state.as_bytes())
        .into();
    if !same_state || pending.connection != config.connection_key() {
        return Err(Error::StateMismatch);
    }
    let taken = host
        .compare_and_swap(&key, Some(&entry), None, None)
        .map_err(Error::TokenStore)?;
    if !taken {
        return Err(Error::StateMismatch);
    }
    Ok(pending)
}

fn require_authorization_code(config: &Config) -> Result<(), Error> {
    config.check()?;
    if config.grant_type != GrantType::AuthorizationCode {
        return Err(Error::InvalidConfig(crate::config::ConfigProblem {
            field: "grant_type".into(),
            message: format!(
                "is {}: the authorization flow is for authorization_code",
                config.grant_type.as_str()
            ),
        }));
    }
    Ok(())
}

/// Obtains a token for `step`. With `client_auth: auto`, a new token for a repeatable grant
/// that fails with `invalid_client` is asked for once more with the other method, and the one
/// that worked is remembered. Nothing else is retried: a code is single-use, and a refresh
/// token may rotate on the first attempt.
pub(crate) fn request_token(
    config: &Config,
    host: &impl Host,
    step: &Step,
) -> Result<Token, Error> {
    let first = first_auth_method(config, host)?;
    let retry = config.client_auth == ClientAuth::Auto
        && *step == Step::NewToken
        && config.grant_type.is_repeatable()
        && config.client_secret_name.is_some()
        && !config.signs_client_assertions();
    match send_token_request(config, host, step, first) {
        Err(Error::Provider(e)) if retry && hints::is_invalid_client(&e.code) => {
            let second = first.alternative();
            match send_token_request(config, host, step, second) {
                Ok(token) => {
                    host.set_entry(&client_auth_key(config), second.as_str(), None)
                        .map_err(Error::TokenStore)?;
                    Ok(token)
                }
                Err(Error::Provider(mut e)) if hints::is_invalid_client(&e.code) => {
                    e.hint = hints::for_code(&e.code, Situation::BothClientAuths).to_owned();
                    Err(Error::Provider(e))
                }
                Err(e) => Err(e),
            }
        }
        result => result,
    }
}

/// The configured client authentication; for `auto`, the method remembered for this token URL
/// and client ID, else Basic (RFC 6749 §2.3.1 asks servers to support it).
pub(crate) fn first_auth_method(config: &Config, host: &impl Host) -> Result<AuthMethod, Error> {
    let remembered = if config.client_auth == ClientAuth::Auto {
        host.get_entry(&client_auth_key(config))
            .map_err(Error::TokenStore)?
            .and_then(|name| AuthMethod::parse(&name))
    } else {
        None
    };
    Ok(AuthMethod::from_config(
        config.client_auth,
        remembered.unwrap_or(AuthMethod::Basic),
    ))
}

/// Sends one token request and reads the answer. Whatever the provider or the host says about
/// it is cleaned of every secret the request carried or the configuration names before it goes
/// further.
fn send_token_request(
    config: &Config,
    host: &impl Host,
    step: &Step,
    auth: AuthMethod,
) -> Result<Token, Error> {
    let request = build_request(config, host, step, auth)?;
    let secrets = || with_configured_secrets(Redactor::for_request(&request), config, host);
    let response = host
        .send(&request)
        .map_err(|e| Error::Transport(e).cleaned(&secrets()))?;
    token_response::parse(&response, host.now(), &config.response_format, secrets).map_err(|e| {
        let situation = match step {
            Step::NewToken => Situation::new_token(config.grant_type),
            Step::ExchangeCode { .. } => Situation::CodeExchange,
            Step::Refresh { .. } => Situation::Refresh,
            Step::PollDeviceCode { .. } => Situation::DevicePoll,
        };
        with_hint(config, e, situation)
    })
}

/// `error` with the hint for its OAuth code in `situation`, or in
/// [`Situation::ClientAssertion`] when the client's JWT was refused.
pub(crate) fn with_hint(config: &Config, error: Error, situation: Situation) -> Error {
    match error {
        Error::Provider(mut e) => {
            let situation = if config.uses_client_assertions() && hints::is_invalid_client(&e.code)
            {
                Situation::ClientAssertion
            } else {
                situation
            };
            e.hint = hints::for_code(&e.code, situation).to_owned();
            Error::Provider(e)
        }
        other => other,
    }
}

/// Stores `token` under `key` if the entry is still `expected`, the one read under the lock.
/// When it is not (the lock expired during a slow token request, and another step stored a
/// token since), the newer entry is kept and this token is only handed back: it is valid, but
/// storing it could bring back a refresh token the provider has since replaced.
pub(crate) fn store(
    config: &Config,
    host: &impl Host,
    key: &str,
    expected: Option<&str>,
    token: Token,
) -> Result<Token, Error> {
    let entry = CachedToken::new(&token, config.response_format.expires_in_unit);
    host.compare_and_swap(key, expected, Some(&entry.encode()), None)
        .map_err(Error::TokenStore)?;
    Ok(token)
}

fn secret<T: From<String>>(
    host: &impl Host,
    field: &str,
    name: Option<&str>,
) -> Result<Option<T>, Error> {
    let Some(name) = name else { return Ok(None) };
    match host
        .get_secret(name)
        .map_err(|m| Error::SecretStore(m).cleaned(&Redactor::none()))?
    {
        Some(value) => Ok(Some(T::from(value))),
        None => Err(Error::MissingSecret {
            field: field.to_owned(),
            name: name.to_owned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    //! The lifecycle against an in-process fake host: it proves our own decisions (when to
    //! refresh, what to keep); the component is proven against real servers in `tests/`.

    use std::cell::{Cell, RefCell};
    use std::collections::{BTreeMap, VecDeque};

    use super::*;
    use crate::config::TimeUnit;
    use crate::config::tests::config;
    use crate::extra_fields::ExtraFields;
    use crate::http::header;

    #[derive(Default)]
    struct FakeHost {
        now: Cell<u64>,
        secrets: RefCell<BTreeMap<String, String>>,
        entries: RefCell<BTreeMap<String, String>>,
        /// Time to live each entry was last written with.
        ttls: RefCell<BTreeMap<String, Option<u64>>>,
        held: RefCell<Vec<String>>,
        /// Every lock taken, in order.
        locked: RefCell<Vec<String>>,
        /// Written when a lock is taken: what another step stored while this one waited.
        stored_while_waiting: RefCell<Option<(String, String)>>,
        /// Written when a request is sent: what another step stored after this one's lock
        /// expired.
        stored_while_sending: RefCell<Option<(String, String)>>,
        replies: RefCell<VecDeque<Result<HttpResponse, TransportError>>>,
        sent: RefCell<Vec<HttpRequest>>,
        fail_writes: Cell<bool>,
    }

    impl Host for FakeHost {
        fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
            self.sent.borrow_mut().push(request.clone());
            if let Some((key, value)) = self.stored_while_sending.borrow_mut().take() {
                self.entries.borrow_mut().insert(key, value);
            }
            self.replies
                .borrow_mut()
                .pop_front()
                .expect("an unexpected request")
        }
        fn get_secret(&self, name: &str) -> Result<Option<String>, String> {
            Ok(self.secrets.borrow().get(name).cloned())
        }
        fn get_entry(&self, key: &str) -> Result<Option<String>, StoreError> {
            Ok(self.entries.borrow().get(key).cloned())
        }
        fn set_entry(&self, key: &str, value: &str, ttl: Option<u64>) -> Result<(), StoreError> {
            if self.fail_writes.get() {
                return Err(StoreError::Unavailable("disk full".into()));
            }
            self.entries.borrow_mut().insert(key.into(), value.into());
            self.ttls.borrow_mut().insert(key.into(), ttl);
            Ok(())
        }
        fn compare_and_swap(
            &self,
            key: &str,
            expected: Option<&str>,
            value: Option<&str>,
            ttl: Option<u64>,
        ) -> Result<bool, StoreError> {
            if self.fail_writes.get() {
                return Err(StoreError::Unavailable("disk full".into()));
            }
            if self.entries.borrow().get(key).map(String::as_str) != expected {
                return Ok(false);
            }
            match value {
                Some(value) => self.set_entry(key, value, ttl)?,
                None => drop(self.entries.borrow_mut().remove(key)),
            }
            Ok(true)
        }
        fn lock(&self, key: &str) -> Result<(), StoreError> {
            assert!(
                !self.held.borrow().iter().any(|k| k == key),
                "{key} locked twice"
            );
            self.held.borrow_mut().push(key.into());
            self.locked.borrow_mut().push(key.into());
            if let Some((key, value)) = self.stored_while_waiting.borrow_mut().take() {
                self.entries.borrow_mut().insert(key, value);
            }
            Ok(())
        }
        fn unlock(&self, key: &str) {
            self.held.borrow_mut().retain(|k| k != key);
        }
        fn now(&self) -> u64 {
            self.now.get()
        }
        fn random(&self, bytes: &mut [u8]) -> Result<(), String> {
            getrandom::fill(bytes).map_err(|e| e.to_string())
        }
        fn describe_key(
            &self,
            name: &str,
            _: SigningAlgorithm,
        ) -> Result<KeyDescription, SigningError> {
            match name {
                "signing-key" => Ok(KeyDescription {
                    key_id: Some("host-kid".into()),
                    certificate_sha256: None,
                }),
                other => Err(SigningError::UnknownKey(other.into())),
            }
        }
        /// A stand-in signature that names what was signed: the algorithm and the input's length.
        fn sign(
            &self,
            name: &str,
            algorithm: SigningAlgorithm,
            data: &[u8],
        ) -> Result<Vec<u8>, SigningError> {
            self.describe_key(name, algorithm)?;
            Ok(format!("{}:{}", algorithm.as_str(), data.len()).into_bytes())
        }
    }

    impl FakeHost {
        fn new() -> Self {
            let host = FakeHost::default();
            host.now.set(1_000_000);
            host.secrets
                .borrow_mut()
                .insert("client-secret".into(), "cs".into());
            host.secrets
                .borrow_mut()
                .insert("alice-password".into(), "pw".into());
            host
        }
        fn reply(&self, status: u16, body: &str) {
            self.replies.borrow_mut().push_back(Ok(HttpResponse {
                status,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: body.as_bytes().to_vec(),
            }));
        }
        fn sent_forms(&self) -> Vec<BTreeMap<String, String>> {
            self.sent
                .borrow()
                .iter()
                .map(|r| form_urlencoded::parse(&r.body).into_owned().collect())
                .collect()
        }
        fn cached(&self, config: &Config) -> Option<CachedToken> {
            self.entries
                .borrow()
                .get(&token_key(config))
                .and_then(|v| CachedToken::decode(v))
        }
    }

    const API_URL: &str = "https://api.example.com/v1/me";

    fn api_request() -> HttpRequest {
        HttpRequest {
            method: "GET".into(),
            url: API_URL.into(),
            headers: vec![("authorization".into(), "stale".into())],
            body: vec![],
        }
    }

    #[test]
    fn fetches_once_then_serves_from_cache() {
        let c = config(GrantType::ClientCredentials);
        let host = FakeHost::new();
        host.reply(
            200,
            r#"{"access_token":"at1","token_type":"bearer","expires_in":3600}"#,
        );
        for _ in 0..5 {
            let req = decorate_request(&c, &host, api_request()).unwrap();
            assert_eq!(header(&req.headers, "Authorization"), Some("Bearer at1"));
            assert_eq!(req.headers.len(), 1);
        }
        assert_eq!(host.sent.borrow().len(), 1);
    }

    #[test]
    fn header_prefix_replaces_bearer_and_empty_means_raw_token() {
        let host = FakeHost::new();
        host.reply(200, r#"{"access_token":"at1","expires_in":3600}"#);
        let mut c = config(GrantType::ClientCredentials);
        c.header_prefix = Some("Token".into());
        let req = decorate_request(&c, &host, api_request()).unwrap();
        assert_eq!(header(&req.headers, "authorization"), Some("Token at1"));
        c.header_prefix = Some(String::new());
        let req = decorate_request(&c, &host, api_request()).unwrap();
        assert_eq!(header(&req.headers, "authorization"), Some("at1"));
    }

    #[test]
    fn expiry_leads_to_refresh_with_rotation_then_without() {
        let c = config(GrantType::Password);
        let host = FakeHost::new();
        host.reply(
            200,
            r#"{"access_token":"at1","expires_in":60,"refresh_token":"rt1","scope":"read"}"#,
        );
        assert_eq!(ensure_token(&c, &host).unwrap().access_token, "at1");

        host.now.set(host.now.get() + 55);
        host.reply(
            200,
            r#"{"access_token":"at2","expires_in":60,"refresh_token":"rt2"}"#,
        );
        let t = ensure_token(&c, &host).unwrap();
        assert_eq!(t.access_token, "at2");
        assert_eq!(
            t.refresh_token.as_ref().map(|t| t.secret()),
            Some("rt2"),
            "rotation replaces"
        );
        assert_eq!(t.scope.as_deref(), Some("read"), "scope carried over");

        host.now.set(host.now.get() + 60);
        host.reply(200, r#"{"access_token":"at3","expires_in":60}"#);
        let t = ensure_token(&c, &host).unwrap();
        assert_eq!(
            t.refresh_token.as_ref().map(|t| t.secret()),
            Some("rt2"),
            "absence keeps"
        );
        assert_eq!(
            host.cached(&c)
                .unwrap()
                .refresh_token
                .as_ref()
                .map(|t| t.secret()),
            Some("rt2")
        );

        let forms = host.sent_forms();
        assert_eq!(forms[1]["grant_type"], "refresh_token");
        assert_eq!(forms[1]["refresh_token"], "rt1");
        assert_eq!(forms[2]["refresh_token"], "rt2");
    }

    #[test]
    fn correcting_the_expiry_unit_refreshes_the_token_read_under_the_old_one() {
        let mut c = config(GrantType::Password);
        let host = FakeHost::new();
        // Milliseconds read as seconds: 41 days instead of an hour.
        host.reply(
            200,
            r#"{"access_token":"at1","expires_in":3600000,"refresh_token":"rt1"}"#,
        );
        assert_eq!(ensure_token(&c, &host).unwrap().access_token, "at1");
        let key = token_key(&c);
        assert_eq!(
            fresh_authorization(&c, &host, &key).unwrap().as_deref(),
            Some("Bearer at1")
        );

        c.response_format.expires_in_unit = TimeUnit::Milliseconds;
        assert_eq!(token_key(&c), token_key(&config(GrantType::Password)));
        assert_eq!(fresh_authorization(&c, &host, &key).unwrap(), None);
        host.reply(
            200,
            r#"{"access_token":"at2","expires_in":3600000,"refresh_token":"rt2"}"#,
        );
        let token = ensure_token(&c, &host).unwrap();
        assert_eq!(token.access_token, "at2");
        assert_eq!(token.expires_at, Some(host.now.get() + 3_600));
        assert_eq!(host.sent_forms()[1]["refresh_token"], "rt1");
        assert_eq!(
            fresh_authorization(&c, &host, &key).unwrap().as_deref(),
            Some("Bearer at2")
        );
    }

    #[test]
    fn failed_refresh_keeps_the_stored_token() {
        let c = config(GrantType::Password);
        let host = FakeHost::new();
        host.reply(
            200,
            r#"{"access_token":"at1","expires_in":60,"refresh_token":"rt1"}"#,
        );
        ensure_token(&c, &host).unwrap();
        let before = host.secrets.borrow().clone();
        host.now.set(host.now.get() + 120);
        host.reply(503, r#"{"error":"temporarily_unavailable"}"#);
        let err = ensure_token(&c, &host).unwrap_err();
        assert!(
            matches!(&err, Error::Provider(e) if e.code == "temporarily_unavailable" && e.status == 503)
        );
        host.replies
            .borrow_mut()
            .push_back(Err(TransportError::Connect("refused".into())));
        assert!(matches!(ensure_token(&c, &host), Err(Error::Transport(_))));
        assert_eq!(*host.secrets.borrow(), before);
    }

    #[test]
    fn dead_refresh_token_refetches_for_repeatable_grants() {
        let c = config(GrantType::Password);
        let host = FakeHost::new();
        host.reply(
            200,
            r#"{"access_token":"at1","expires_in":60,"refresh_token":"rt1"}"#,
        );
        ensure_token(&c, &host).unwrap();
        host.now.set(host.now.get() + 120);
        host.reply(400, r#"{"error":"invalid_grant"}"#);
        host.reply(
            200,
            r#"{"access_token":"at2","expires_in":60,"refresh_token":"rt9"}"#,
        );
        assert_eq!(ensure_token(&c, &host).unwrap().access_token, "at2");
        let forms = host.sent_forms();
        assert_eq!(forms[2]["grant_type"], "password");
        assert_eq!(forms[2]["password"], "pw");
    }

    #[test]
    fn authorization_code_needs_the_user_without_a_usable_token() {
        let c = config(GrantType::AuthorizationCode);
        let host = FakeHost::new();
        assert!(matches!(
            ensure_token(&c, &host),
            Err(Error::AuthorizationRequired(_))
        ));
        assert!(host.sent.borrow().is_empty());
    }

    #[test]
    fn forget_keeps_the_refresh_token_and_next_call_refreshes() {
        let c = config(GrantType::Password);
        let host = FakeHost::new();
        host.reply(
            200,
            r#"{"access_token":"at1","expires_in":3600,"refresh_token":"rt1"}"#,
        );
        ensure_token(&c, &host).unwrap();
        forget_token(&c, &host, None).unwrap();
        let cached = host.cached(&c).unwrap();
        assert_eq!(
            (
                cached.access_token,
                cached.refresh_token.as_ref().map(|t| t.secret())
            ),
            (None, Some("rt1"))
        );
        host.reply(200, r#"{"access_token":"at2","expires_in":3600}"#);
        assert_eq!(ensure_token(&c, &host).unwrap().access_token, "at2");
        assert_eq!(host.sent_forms()[1]["grant_type"], "refresh_token");

        let c = config(GrantType::ClientCredentials);
        host.reply(200, r#"{"access_token":"cc1","expires_in":3600}"#);
        ensure_token(&c, &host).unwrap();
        forget_token(&c, &host, None).unwrap();
        assert!(host.cached(&c).is_none(), "nothing worth keeping");
    }

    #[test]
    fn forget_drops_only_the_token_that_was_refused() {
        let c = config(GrantType::Password);
        let host = FakeHost::new();
        host.reply(
            200,
            r#"{"access_token":"at1","expires_in":3600,"refresh_token":"rt1"}"#,
        );
        ensure_token(&c, &host).unwrap();
        // Another worker met the 401 first and stored a new token.
        forget_token(&c, &host, Some("Bearer at1")).unwrap();
        host.reply(200, r#"{"access_token":"at2","expires_in":3600}"#);
        assert_eq!(ensure_token(&c, &host).unwrap().access_token, "at2");

        // This worker's 401 was for the old token: the new one stays.
        forget_token(&c, &host, Some("Bearer at1")).unwrap();
        assert_eq!(ensure_token(&c, &host).unwrap().access_token, "at2");
        assert_eq!(host.sent_forms().len(), 2, "no third token request");

        forget_token(&c, &host, Some("Bearer at2")).unwrap();
        assert_eq!(host.cached(&c).unwrap().access_token, None);
    }

    #[test]
    fn missing_secret_names_field_and_secret() {
        let c = config(GrantType::ClientCredentials);
        let host = FakeHost::new();
        host.secrets.borrow_mut().remove("client-secret");
        let err = ensure_token(&c, &host).unwrap_err();
        assert_eq!(
            err,
            Error::MissingSecret {
                field: "client_secret".into(),
                name: "client-secret".into()
            }
        );
        assert!(host.sent.borrow().is_empty());
    }

    #[test]
    fn authorization_code_flow_round_trip() {
        let c = config(GrantType::AuthorizationCode);
        let host = FakeHost::new();
        let start = begin_authorization(&c, &host).unwrap();
        let url = url::Url::parse(&start.url).unwrap();
        let challenge = url
            .query_pairs()
            .find(|(k, _)| k == "code_challenge")
            .unwrap()
            .1
            .into_owned();

        host.reply(
            200,
            r#"{"access_token":"at1","expires_in":3600,"refresh_token":"rt1"}"#,
        );
        let redirect = format!(
            "http://127.0.0.1:8765/callback?code=c0de&state={}",
            start.state.secret()
        );
        let token = complete_authorization(&c, &host, &redirect).unwrap();
        assert_eq!(token.access_token, "at1");
        let form = &host.sent_forms()[0];
        assert_eq!(form["code"], "c0de");
        assert_eq!(pkce::s256_challenge(&form["code_verifier"]), challenge);
        assert_eq!(ensure_token(&c, &host).unwrap().access_token, "at1");

        // The same redirect again finds no pending authorization.
        assert_eq!(
            complete_authorization(&c, &host, &redirect),
            Err(Error::StateMismatch)
        );
    }

    #[test]
    fn wrong_state_and_error_redirects() {
        let c = config(GrantType::AuthorizationCode);
        let host = FakeHost::new();
        let start = begin_authorization(&c, &host).unwrap();
        for redirect in [
            "http://127.0.0.1:8765/callback?code=x&state=forged".to_owned(),
            "http://127.0.0.1:8765/callback?code=x".to_owned(),
        ] {
            assert_eq!(
                complete_authorization(&c, &host, &redirect),
                Err(Error::StateMismatch)
            );
        }
        // A state begun for another connection is refused.
        let mut other = c.clone();
        other.client_id = "client-2".into();
        let redirect = format!(
            "http://127.0.0.1:8765/callback?code=x&state={}",
            start.state.secret()
        );
        assert_eq!(
            complete_authorization(&other, &host, &redirect),
            Err(Error::StateMismatch)
        );

        let redirect = format!(
            "http://127.0.0.1:8765/callback?error=access_denied&error_description=nope&state={}",
            start.state.secret()
        );
        match complete_authorization(&c, &host, &redirect) {
            Err(Error::AuthorizationDenied(e)) => {
                assert_eq!(
                    (e.code.as_str(), e.description.as_deref()),
                    ("access_denied", Some("nope"))
                );
                assert_eq!(e.hint, hints::for_code("access_denied", Situation::Consent));
            }
            other => panic!("{other:?}"),
        }
        assert!(host.sent.borrow().is_empty(), "no exchange was attempted");
    }

    #[test]
    fn the_authorization_flow_is_only_for_authorization_code() {
        let c = config(GrantType::ClientCredentials);
        let host = FakeHost::new();
        assert!(
            matches!(begin_authorization(&c, &host), Err(Error::InvalidConfig(p)) if p.field == "grant_type")
        );
    }

    #[test]
    fn stale_authorization_is_refused() {
        let c = config(GrantType::AuthorizationCode);
        let host = FakeHost::new();
        let start = begin_authorization(&c, &host).unwrap();
        host.now.set(host.now.get() + PENDING_LIFETIME_SECS + 1);
        let redirect = format!(
            "http://127.0.0.1:8765/callback?code=x&state={}",
            start.state.secret()
        );
        assert!(matches!(
            complete_authorization(&c, &host, &redirect),
            Err(Error::AuthorizationRequired(_))
        ));
    }

    #[test]
    fn revoked_refresh_token_for_authorization_code_asks_to_authorize_again() {
        let c = config(GrantType::AuthorizationCode);
        let host = FakeHost::new();
        let cached = CachedToken {
            access_token: None,
            token_type: "Bearer".into(),
            issued_at: 0,
            expires_at: None,
            refresh_token: Some("rt".into()),
            scope: None,
            id_token: None,
            extra: ExtraFields(vec![]),
            expires_in_unit: None,
        };
        host.entries
            .borrow_mut()
            .insert(token_key(&c), cached.encode());
        host.reply(
            400,
            r#"{"error":"invalid_grant","error_description":"revoked"}"#,
        );
        let err = ensure_token(&c, &host).unwrap_err();
        assert!(
            matches!(&err, Error::AuthorizationRequired(m) if m.contains("invalid_grant") && m.contains("authorize again"))
        );
        assert!(
            host.cached(&c).is_some(),
            "the stored token is left as it was"
        );
    }

    #[test]
    fn store_failure_is_reported() {
        let c = config(GrantType::ClientCredentials);
        let host = FakeHost::new();
        host.fail_writes.set(true);
        host.reply(200, r#"{"access_token":"at1","expires_in":3600}"#);
        assert_eq!(
            ensure_token(&c, &host),
            Err(Error::TokenStore(StoreError::Unavailable(
                "disk full".into()
            )))
        );
    }

    fn used_basic(request: &HttpRequest) -> bool {
        header(&request.headers, "authorization").is_some()
    }

    const INVALID_CLIENT: &str =
        r#"{"error":"invalid_client","error_description":"client authentication failed"}"#;

    #[test]
    fn auto_client_auth_falls_back_to_the_body_once_and_remembers_it() {
        let mut c = config(GrantType::ClientCredentials);
        c.client_auth = ClientAuth::Auto;
        let host = FakeHost::new();
        host.reply(401, INVALID_CLIENT);
        host.reply(200, r#"{"access_token":"at1","expires_in":3600}"#);
        assert_eq!(ensure_token(&c, &host).unwrap().access_token, "at1");
        {
            let sent = host.sent.borrow();
            assert_eq!(sent.len(), 2);
            assert!(used_basic(&sent[0]), "Basic first");
            assert!(!used_basic(&sent[1]), "then the body");
        }
        assert_eq!(host.sent_forms()[1]["client_secret"], "cs");
        assert_eq!(
            host.entries
                .borrow()
                .get(&client_auth_key(&c))
                .map(String::as_str),
            Some("request_body")
        );

        // The next token request starts with what worked: one request.
        forget_token(&c, &host, None).unwrap();
        host.reply(200, r#"{"access_token":"at2","expires_in":3600}"#);
        assert_eq!(ensure_token(&c, &host).unwrap().access_token, "at2");
        assert_eq!(host.sent.borrow().len(), 3);
        assert!(!used_basic(&host.sent.borrow()[2]));
        // And the plain token request export builds that same request.
        let built = build_token_request(&c, &host, &Step::NewToken).unwrap();
        assert!(!used_basic(&built));
    }

    #[test]
    fn auto_client_auth_gives_up_after_both_methods_and_stores_nothing() {
        let mut c = config(GrantType::Password);
        c.client_auth = ClientAuth::Auto;
        let host = FakeHost::new();
        host.reply(401, INVALID_CLIENT);
        host.reply(400, r#"{"error":"invalid_client"}"#);
        let Err(Error::Provider(e)) = ensure_token(&c, &host) else {
            panic!("invalid_client expected")
        };
        assert_eq!(e.code, "invalid_client");
        assert_eq!(
            e.hint,
            hints::for_code("invalid_client", Situation::BothClientAuths)
        );
        assert_eq!(host.sent.borrow().len(), 2);
        assert!(host.entries.borrow().is_empty(), "nothing stored");
    }

    #[test]
    fn explicit_client_auth_and_code_exchanges_are_never_retried() {
        let c = config(GrantType::ClientCredentials);
        let host = FakeHost::new();
        host.reply(401, INVALID_CLIENT);
        assert!(
            matches!(ensure_token(&c, &host), Err(Error::Provider(e)) if e.code == "invalid_client")
        );
        assert_eq!(host.sent.borrow().len(), 1, "client_auth basic: no retry");

        let mut c = config(GrantType::AuthorizationCode);
        c.client_auth = ClientAuth::Auto;
        let host = FakeHost::new();
        let start = begin_authorization(&c, &host).unwrap();
        host.reply(401, INVALID_CLIENT);
        let redirect = format!(
            "http://127.0.0.1:8765/callback?code=c&state={}",
            start.state.secret()
        );
        let Err(Error::Provider(e)) = complete_authorization(&c, &host, &redirect) else {
            panic!("invalid_client expected")
        };
        assert_eq!(
            e.hint,
            hints::for_code("invalid_client", Situation::CodeExchange)
        );
        assert!(e.hint.contains("never retried"), "{}", e.hint);
        assert_eq!(host.sent.borrow().len(), 1, "a code is single-use");
    }

    #[test]
    fn provider_hints_depend_on_the_step() {
        let c = config(GrantType::Password);
        let host = FakeHost::new();
        host.reply(400, r#"{"error":"invalid_request"}"#);
        let Err(Error::Provider(e)) = ensure_token(&c, &host) else {
            panic!("invalid_request expected")
        };
        assert_eq!(
            e.hint,
            hints::for_code("invalid_request", Situation::Password)
        );

        let c = config(GrantType::AuthorizationCode);
        let host = FakeHost::new();
        let start = begin_authorization(&c, &host).unwrap();
        host.reply(200, r#"{"error":"bad_verification_code"}"#);
        let redirect = format!(
            "http://127.0.0.1:8765/callback?code=c&state={}",
            start.state.secret()
        );
        let Err(Error::Provider(e)) = complete_authorization(&c, &host, &redirect) else {
            panic!("bad_verification_code expected")
        };
        assert_eq!(
            e.hint,
            hints::for_code("invalid_grant", Situation::CodeExchange)
        );
    }

    #[test]
    fn a_refresh_without_extra_fields_keeps_the_old_ones() {
        let c = config(GrantType::ClientCredentials);
        let host = FakeHost::new();
        host.reply(
            200,
            r#"{"access_token":"at1","expires_in":60,"refresh_token":"rt1","instance_url":"https://na1.example.com"}"#,
        );
        let first = ensure_token(&c, &host).unwrap();
        assert_eq!(
            first.extra.0,
            vec![("instance_url".into(), "https://na1.example.com".into())]
        );
        host.now.set(host.now.get() + 60);
        host.reply(200, r#"{"access_token":"at2","expires_in":60}"#);
        let second = ensure_token(&c, &host).unwrap();
        assert_eq!(second.access_token, "at2");
        assert_eq!(second.extra, first.extra);
    }

    #[test]
    fn a_fresh_token_costs_one_read_and_a_stale_one_one_lock() {
        let c = config(GrantType::ClientCredentials);
        let host = FakeHost::new();
        host.reply(200, r#"{"access_token":"at1","expires_in":60}"#);
        let headers = authorization_headers(&c, &host, API_URL).unwrap();
        assert_eq!(
            headers,
            Headers(vec![("Authorization".into(), "Bearer at1".into())])
        );
        let mut decorated = api_request();
        decorated.set_headers(headers.clone());
        assert_eq!(
            decorate_request(&c, &host, api_request()),
            Ok(decorated),
            "decorate_request sets the same headers"
        );

        let before = host.entries.borrow().clone();
        let locks = host.locked.borrow().len();
        assert_eq!(authorization_headers(&c, &host, API_URL), Ok(headers));
        assert_eq!(host.sent.borrow().len(), 1, "only the first fetch was sent");
        assert_eq!(*host.entries.borrow(), before, "nothing written");
        assert_eq!(host.locked.borrow().len(), locks, "no lock taken");

        host.now.set(host.now.get() + 60);
        host.reply(200, r#"{"access_token":"at2","expires_in":60}"#);
        let headers = authorization_headers(&c, &host, API_URL).unwrap();
        assert_eq!(headers.0[0].1, "Bearer at2");
        assert_eq!(
            host.locked.borrow().len(),
            locks + 1,
            "one lock for the fetch"
        );
    }

    #[test]
    fn a_fresh_token_still_checks_what_its_store_key_does_not_cover() {
        let c = config(GrantType::ClientCredentials);
        let host = FakeHost::new();
        host.reply(200, r#"{"access_token":"at1","expires_in":3600}"#);
        ensure_token(&c, &host).unwrap();

        let refused = |config: &Config, field: &str| {
            for result in [
                decorate_request(config, &host, api_request()).map(|_| ()),
                authorization_headers(config, &host, API_URL).map(|_| ()),
            ] {
                assert!(
                    matches!(&result, Err(Error::InvalidConfig(p)) if p.field == field),
                    "{field}: {result:?}"
                );
            }
        };

        // The header prefix is not part of the key: checked on every decoration.
        let mut bad_prefix = c.clone();
        bad_prefix.header_prefix = Some("Bearer x".into());
        refused(&bad_prefix, "header_prefix");

        // A broken token URL is another key: no token, so the whole check runs and names it.
        let mut bad_url = c.clone();
        bad_url.token_url = "ftp://login.example.com/token".into();
        refused(&bad_url, "token_url");
        assert_eq!(host.sent.borrow().len(), 1, "only the first fetch was sent");
    }

    fn stale(refresh_token: &str) -> CachedToken {
        CachedToken {
            access_token: Some("at-old".into()),
            token_type: "Bearer".into(),
            issued_at: 0,
            expires_at: Some(10),
            refresh_token: Some(refresh_token.into()),
            scope: None,
            id_token: None,
            extra: ExtraFields(vec![]),
            expires_in_unit: None,
        }
    }

    #[test]
    fn a_step_that_waited_for_the_lock_uses_what_the_holder_stored() {
        let c = config(GrantType::AuthorizationCode);
        let host = FakeHost::new();
        let key = token_key(&c);
        host.entries
            .borrow_mut()
            .insert(key.clone(), stale("rt1").encode());
        let refreshed = CachedToken {
            access_token: Some("at-new".into()),
            issued_at: host.now.get(),
            expires_at: Some(host.now.get() + 3600),
            ..stale("rt2")
        };
        *host.stored_while_waiting.borrow_mut() = Some((key.clone(), refreshed.encode()));
        let token = ensure_token(&c, &host).unwrap();
        assert_eq!(token.access_token, "at-new");
        assert!(host.sent.borrow().is_empty(), "rt1 was not spent again");
        assert_eq!(*host.locked.borrow(), [key]);
        assert!(host.held.borrow().is_empty(), "the lock was released");
    }

    #[test]
    fn every_path_that_can_write_a_token_holds_the_connections_lock() {
        let c = config(GrantType::Password);
        let host = FakeHost::new();
        let key = token_key(&c);
        host.reply(
            200,
            r#"{"access_token":"at1","expires_in":60,"refresh_token":"rt1"}"#,
        );
        ensure_token(&c, &host).unwrap();
        forget_token(&c, &host, None).unwrap();
        host.reply(200, r#"{"access_token":"at2","expires_in":60}"#);
        decorate_request(&c, &host, api_request()).unwrap();
        assert_eq!(*host.locked.borrow(), [key.clone(), key.clone(), key]);
        assert!(host.held.borrow().is_empty());

        // A failure releases the lock too.
        let host = FakeHost::new();
        host.reply(500, "");
        assert!(ensure_token(&c, &host).is_err());
        assert_eq!(host.locked.borrow().len(), 1);
        assert!(host.held.borrow().is_empty());
    }

    #[test]
    fn secrets_a_provider_echoes_never_leave_the_lifecycle() {
        // A refresh whose refusal echoes the refresh token, form-encoded.
        let c = config(GrantType::AuthorizationCode);
        let host = FakeHost::new();
        host.entries
            .borrow_mut()
            .insert(token_key(&c), stale("rt sentinel+1").encode());
        host.reply(
            400,
            r#"{"error":"invalid_grant","error_description":"refresh_token=rt+sentinel%2B1 is revoked\u001b]0;pwned\u0007"}"#,
        );
        let err = ensure_token(&c, &host).unwrap_err();
        let Error::AuthorizationRequired(message) = &err else {
            panic!("{err:?}")
        };
        assert!(!message.contains("sentinel"), "{message}");
        assert!(!message.contains('\u{1b}'), "{message}");
        assert!(message.contains("invalid_grant"), "{message}");

        // A new token whose refusal echoes the Basic header and the password.
        let c = config(GrantType::Password);
        let host = FakeHost::new();
        host.secrets
            .borrow_mut()
            .insert("alice-password".into(), "pw-sentinel".into());
        let basic = token_request::basic_authorization("client-1", "cs");
        host.reply(
            401,
            &format!(
                r#"{{"error":"invalid_client","error_description":"got {basic} and password=pw-sentinel"}}"#
            ),
        );
        let Err(Error::Provider(e)) = ensure_token(&c, &host) else {
            panic!("a provider error")
        };
        let description = e.description.unwrap();
        assert_eq!(description, "got Basic <redacted> and password=<redacted>");
        assert_eq!(e.code, "invalid_client");
    }

    #[test]
    fn pending_authorizations_expire_in_the_store() {
        let c = config(GrantType::AuthorizationCode);
        let host = FakeHost::new();
        let start = begin_authorization(&c, &host).unwrap();
        assert_eq!(
            host.ttls.borrow().get(&pending_key(start.state.secret())),
            Some(&Some(PENDING_LIFETIME_SECS))
        );
    }

    #[test]
    fn a_url_that_may_not_receive_the_token_is_refused_before_anything_is_read() {
        let mut c = config(GrantType::ClientCredentials);
        let host = FakeHost::new();
        let mut request = api_request();
        request.url = "http://api.example.com/v1/me".into();
        for result in [
            decorate_request(&c, &host, request.clone()).map(|_| ()),
            authorization_headers(&c, &host, &request.url).map(|_| ()),
        ] {
            assert!(matches!(result, Err(Error::ApiUrlRefused(_))), "{result:?}");
        }
        c.api_origins = vec!["https://api.example.com".into()];
        let mut elsewhere = api_request();
        elsewhere.url = "https://evil.example.com/".into();
        assert!(matches!(
            decorate_request(&c, &host, elsewhere),
            Err(Error::ApiUrlRefused(_))
        ));
        assert!(host.sent.borrow().is_empty() && host.locked.borrow().is_empty());

        host.reply(200, r#"{"access_token":"at1","expires_in":60}"#);
        assert!(decorate_request(&c, &host, api_request()).is_ok());
    }

    #[test]
    fn a_token_obtained_after_the_entry_changed_does_not_overwrite_it() {
        let c = config(GrantType::AuthorizationCode);
        let host = FakeHost::new();
        let key = token_key(&c);
        host.entries
            .borrow_mut()
            .insert(key.clone(), stale("rt1").encode());
        // Another step, whose lock is the one that counts now, stores rt3 while this one's
        // refresh with rt1 is under way.
        let newer = CachedToken {
            access_token: Some("at-newer".into()),
            issued_at: host.now.get(),
            expires_at: Some(host.now.get() + 3600),
            ..stale("rt3")
        }
        .encode();
        *host.stored_while_sending.borrow_mut() = Some((key.clone(), newer.clone()));
        host.reply(
            200,
            r#"{"access_token":"at2","expires_in":3600,"refresh_token":"rt2"}"#,
        );
        let token = ensure_token(&c, &host).unwrap();
        assert_eq!(
            token.access_token, "at2",
            "the token obtained is handed back"
        );
        assert_eq!(
            host.entries.borrow().get(&key),
            Some(&newer),
            "the newer entry is kept"
        );
    }

    /// The JWT in a form field, decoded: header, claims, and the raw signature bytes.
    fn jwt_parts(token: &str) -> (serde_json::Value, serde_json::Value, Vec<u8>) {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{token}");
        let json =
            |part: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap();
        (
            json(parts[0]),
            json(parts[1]),
            URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
        )
    }

    fn signing_key() -> crate::config::SigningKey {
        crate::config::SigningKey {
            name: "signing-key".into(),
            algorithm: SigningAlgorithm::Es256,
            key_id: None,
        }
    }

    #[test]
    fn private_key_jwt_sends_a_host_signed_assertion_and_no_secret() {
        let host = FakeHost::new();
        host.reply(200, r#"{"access_token":"at1","expires_in":3600}"#);
        let mut c = config(GrantType::ClientCredentials);
        c.client_auth = ClientAuth::PrivateKeyJwt;
        c.client_secret_name = None;
        c.signing_key = Some(signing_key());
        ensure_token(&c, &host).unwrap();
        let sent = host.sent.borrow();
        assert!(header(&sent[0].headers, "authorization").is_none());
        let form = &host.sent_forms()[0];
        assert_eq!(form["client_id"], "client-1");
        assert_eq!(form["client_assertion_type"], jwt::CLIENT_ASSERTION_TYPE);
        assert!(!form.contains_key("client_secret"));
        let (header, claims, signature) = jwt_parts(&form["client_assertion"]);
        assert_eq!(
            header,
            serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": "host-kid"})
        );
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["sub"], "client-1");
        assert_eq!(claims["aud"], "https://idp.example.com/oauth/token");
        assert_eq!(claims["iat"], 1_000_000);
        assert_eq!(claims["exp"], 1_000_000 + jwt::LIFETIME_SECS);
        assert_eq!(claims["jti"].as_str().unwrap().len(), 43);
        // The fake host's signature names the algorithm and the length of what it signed.
        let signed = form["client_assertion"].rsplit_once('.').unwrap().0.len();
        assert_eq!(signature, format!("ES256:{signed}").into_bytes());
    }

    #[test]
    fn each_assertion_has_its_own_jti_and_the_configured_audience_and_kid() {
        let host = FakeHost::new();
        let mut c = config(GrantType::ClientCredentials);
        c.client_auth = ClientAuth::Auto;
        c.signing_key = Some(crate::config::SigningKey {
            key_id: Some("configured-kid".into()),
            ..signing_key()
        });
        c.assertion_audience = Some("https://idp.example.com".into());
        let mut jtis = Vec::new();
        for _ in 0..2 {
            let request = build_token_request(&c, &host, &Step::NewToken).unwrap();
            let form: BTreeMap<String, String> =
                form_urlencoded::parse(&request.body).into_owned().collect();
            let (header, claims, _) = jwt_parts(&form["client_assertion"]);
            assert_eq!(header["kid"], "configured-kid");
            assert_eq!(claims["aud"], "https://idp.example.com");
            jtis.push(claims["jti"].as_str().unwrap().to_owned());
        }
        assert_ne!(jtis[0], jtis[1]);
    }

    #[test]
    fn client_secret_jwt_is_hs256_over_the_client_secret() {
        let host = FakeHost::new();
        let mut c = config(GrantType::ClientCredentials);
        c.client_auth = ClientAuth::ClientSecretJwt;
        let request = build_token_request(&c, &host, &Step::NewToken).unwrap();
        let form: BTreeMap<String, String> =
            form_urlencoded::parse(&request.body).into_owned().collect();
        let assertion = &form["client_assertion"];
        let (header, _, signature) = jwt_parts(assertion);
        assert_eq!(header, serde_json::json!({"alg": "HS256", "typ": "JWT"}));
        let (input, _) = assertion.rsplit_once('.').unwrap();
        assert_eq!(signature, jwt::hs256(b"cs", input.as_bytes()).to_vec());
        assert!(!form.contains_key("client_secret"));
        assert!(header_of(&request, "authorization").is_none());
    }

    fn header_of<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
        header(&request.headers, name)
    }

    #[test]
    fn jwt_bearer_signs_a_new_grant_per_token_with_subject_and_scope() {
        let host = FakeHost::new();
        host.reply(200, r#"{"access_token":"at1","expires_in":60}"#);
        host.reply(200, r#"{"access_token":"at2","expires_in":60}"#);
        let mut c = config(GrantType::JwtBearer);
        c.client_secret_name = None;
        c.signing_key = Some(signing_key());
        c.subject = Some("alice@example.com".into());
        c.scope = Some("read write".into());
        ensure_token(&c, &host).unwrap();
        host.now.set(1_000_100);
        assert_eq!(ensure_token(&c, &host).unwrap().access_token, "at2");
        let forms = host.sent_forms();
        assert_eq!(forms.len(), 2);
        for form in &forms {
            assert_eq!(
                form["grant_type"],
                "urn:ietf:params:oauth:grant-type:jwt-bearer"
            );
            assert_eq!(form["scope"], "read write");
            assert!(!form.contains_key("client_id") && !form.contains_key("client_assertion"));
            let (_, claims, _) = jwt_parts(&form["assertion"]);
            assert_eq!(claims["iss"], "client-1");
            assert_eq!(claims["sub"], "alice@example.com");
            assert_eq!(claims["scope"], "read write");
        }
        assert_ne!(forms[0]["assertion"], forms[1]["assertion"]);
        // Without a subject the token is the client's own: no `sub`.
        c.subject = None;
        host.reply(200, r#"{"access_token":"at3","expires_in":60}"#);
        ensure_token(&c, &host).unwrap();
        let (_, claims, _) = jwt_parts(&host.sent_forms()[2]["assertion"]);
        assert!(claims.get("sub").is_none(), "{claims}");
    }

    #[test]
    fn a_signing_failure_sends_nothing() {
        let host = FakeHost::new();
        let mut c = config(GrantType::ClientCredentials);
        c.client_auth = ClientAuth::PrivateKeyJwt;
        c.signing_key = Some(crate::config::SigningKey {
            name: "absent".into(),
            ..signing_key()
        });
        assert!(matches!(
            ensure_token(&c, &host),
            Err(Error::Signing(SigningError::UnknownKey(_)))
        ));
        assert!(host.sent.borrow().is_empty());
    }

    #[test]
    fn device_polls_map_to_typed_answers_and_a_grant_is_stored() {
        use crate::device::{self, Poll};
        let host = FakeHost::new();
        let mut c = config(GrantType::DeviceCode);
        c.device_authorization_url = Some("https://idp.example.com/device".into());
        host.reply(
            200,
            r#"{"device_code":"dc","user_code":"ABCD","verification_uri":"https://idp.example.com/activate","expires_in":600}"#,
        );
        let started = device::start(&c, &host).unwrap();
        assert_eq!(started.interval_secs, 5);
        assert_eq!(host.sent.borrow()[0].url, "https://idp.example.com/device");
        for (body, expected) in [
            (r#"{"error":"authorization_pending"}"#, Some(Poll::Pending)),
            (r#"{"error":"slow_down"}"#, Some(Poll::SlowDown)),
        ] {
            host.reply(400, body);
            assert_eq!(
                device::poll(&c, &host, started.device_code.clone()).ok(),
                expected
            );
        }
        for (body, code) in [
            (r#"{"error":"access_denied"}"#, "access_denied"),
            (r#"{"error":"expired_token"}"#, "expired_token"),
        ] {
            host.reply(400, body);
            match device::poll(&c, &host, started.device_code.clone()).unwrap() {
                Poll::Denied(e) | Poll::Expired(e) => {
                    assert_eq!(e.code, code);
                    assert!(
                        e.hint.contains("start the device authorization again"),
                        "{}",
                        e.hint
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(host.cached(&c).is_none(), "nothing stored before the grant");
        host.reply(
            200,
            r#"{"access_token":"at1","refresh_token":"rt1","expires_in":60}"#,
        );
        assert!(matches!(
            device::poll(&c, &host, started.device_code.clone()).unwrap(),
            Poll::Granted(_)
        ));
        let form = host.sent_forms().pop().unwrap();
        assert_eq!(
            form["grant_type"],
            "urn:ietf:params:oauth:grant-type:device_code"
        );
        assert_eq!(form["device_code"], "dc");
        assert_eq!(host.cached(&c).unwrap().access_token.unwrap(), "at1");
    }

    #[test]
    fn revocation_empties_the_store_whatever_the_provider_says() {
        use crate::revocation::{self, Outcome};
        let host = FakeHost::new();
        let mut c = config(GrantType::AuthorizationCode);
        c.revocation_url = Some("https://idp.example.com/revoke".into());
        host.reply(
            200,
            r#"{"access_token":"at1","refresh_token":"rt1","expires_in":60}"#,
        );
        let step = Step::ExchangeCode {
            code: "code".into(),
            pkce_verifier: "verifier".into(),
        };
        let token = request_token(&c, &host, &step).unwrap();
        store(&c, &host, &token_key(&c), None, token).unwrap();

        host.reply(200, "");
        host.reply(503, "<html>down</html>");
        let outcome = revocation::revoke(&c, &host).unwrap();
        assert_eq!(outcome.refresh_token, Outcome::Revoked);
        assert!(matches!(
            outcome.access_token,
            Outcome::Failed(Error::MalformedResponse(_))
        ));
        assert!(
            host.cached(&c).is_none(),
            "removed although the provider failed"
        );
        let forms = host.sent_forms();
        assert_eq!(
            (
                forms[1]["token"].as_str(),
                forms[1]["token_type_hint"].as_str()
            ),
            ("rt1", "refresh_token")
        );
        assert_eq!(forms[2]["token_type_hint"], "access_token");
        // Basic authentication, as for the token endpoint.
        assert!(header(&host.sent.borrow()[1].headers, "authorization").is_some());

        let again = revocation::revoke(&c, &host).unwrap();
        assert_eq!(
            (again.refresh_token, again.access_token),
            (Outcome::NotStored, Outcome::NotStored)
        );
        assert!(matches!(
            ensure_token(&c, &host),
            Err(Error::AuthorizationRequired(_))
        ));
    }

    #[test]
    fn without_a_revocation_url_the_tokens_are_only_removed() {
        use crate::revocation::{self, Outcome};
        let host = FakeHost::new();
        let c = config(GrantType::ClientCredentials);
        host.reply(200, r#"{"access_token":"at1","expires_in":60}"#);
        ensure_token(&c, &host).unwrap();
        let outcome = revocation::revoke(&c, &host).unwrap();
        assert_eq!(outcome.access_token, Outcome::NoEndpoint);
        assert_eq!(outcome.refresh_token, Outcome::NotStored);
        assert!(host.cached(&c).is_none());
        assert_eq!(
            host.sent.borrow().len(),
            1,
            "only the token request was sent"
        );
    }

    #[test]
    fn the_issuer_must_be_named_by_the_authorization_response() {
        let host = FakeHost::new();
        let mut c = config(GrantType::AuthorizationCode);
        c.issuer = Some("https://idp.example.com".into());
        for (iss, received) in [
            ("", None),
            (
                "&iss=https%3A%2F%2Fevil.example",
                Some("https://evil.example"),
            ),
        ] {
            let start = begin_authorization(&c, &host).unwrap();
            let redirect = format!(
                "http://127.0.0.1:8765/callback?code=c&state={}{iss}",
                start.state.secret()
            );
            match complete_authorization(&c, &host, &redirect) {
                Err(Error::IssuerMismatch {
                    expected,
                    received: got,
                }) => {
                    assert_eq!(expected, "https://idp.example.com");
                    assert_eq!(got.as_deref(), received);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(host.sent.borrow().is_empty(), "no code was exchanged");
        host.reply(200, r#"{"access_token":"at1","expires_in":60}"#);
        let start = begin_authorization(&c, &host).unwrap();
        let redirect = format!(
            "http://127.0.0.1:8765/callback?code=c&state={}&iss=https%3A%2F%2Fidp.example.com",
            start.state.secret()
        );
        complete_authorization(&c, &host, &redirect).unwrap();
    }
}
