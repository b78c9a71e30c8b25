//! The WIT side of the component: converts between generated bindings and the plain types, and
//! gives the lifecycle the host's imports.

use crate::config::{
    ClientAuth, Config, ConfigProblem, GrantType, ResponseFormat, ScopeSeparator, SigningAlgorithm,
    SigningKey, TimeUnit,
};
use crate::device::{self, Poll};
use crate::error::{
    Error, ProviderError, ResponseProblem, SigningError, StoreError, TransportError,
};
use crate::http::{HttpRequest, HttpResponse};
use crate::jwt::KeyDescription;
use crate::lifecycle::{self, Host};
use crate::prelude::*;
use crate::revocation::{self, Outcome};
use crate::secret::{IdToken, RefreshToken};
use crate::token::Token;
use crate::token_request::Step;

wit_bindgen::generate!({
    world: "oauth2-plugin",
    path: "wit",
    // The world's WASI imports are generated from the vendored WIT like the contract's own.
    generate_all,
});

use exports::integration::oauth2::grant::Guest;
use integration::oauth2::types as wit;
use integration::oauth2::{http, secrets, signing, token_store};
use wasi::clocks::wall_clock;
use wasi::random::random;

struct Component;

export!(Component);

/// The host's imports, as the lifecycle sees them.
struct Imports;

impl Host for Imports {
    fn send(&self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        match http::send(&request_to_wit(request.clone())) {
            Ok(r) => Ok(response_from_wit(r)),
            Err(e) => Err(transport_from_wit(e)),
        }
    }

    fn get_secret(&self, name: &str) -> Result<Option<String>, String> {
        secrets::get(name)
    }

    fn get_entry(&self, key: &str) -> Result<Option<String>, StoreError> {
        token_store::get(key).map_err(store_error_from_wit)
    }

    fn set_entry(&self, key: &str, value: &str, ttl_secs: Option<u64>) -> Result<(), StoreError> {
        token_store::set(key, value, ttl_secs).map_err(store_error_from_wit)
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: Option<&str>,
        ttl_secs: Option<u64>,
    ) -> Result<bool, StoreError> {
        token_store::compare_and_swap(key, expected, value, ttl_secs).map_err(store_error_from_wit)
    }

    fn lock(&self, key: &str) -> Result<(), StoreError> {
        token_store::lock(key).map_err(store_error_from_wit)
    }

    fn unlock(&self, key: &str) {
        token_store::unlock(key);
    }

    fn now(&self) -> u64 {
        wall_clock::now().seconds
    }

    fn random(&self, bytes: &mut [u8]) -> Result<(), String> {
        let drawn = random::get_random_bytes(bytes.len() as u64);
        if drawn.len() != bytes.len() {
            return Err(format!(
                "the host gave {} random bytes for {}",
                drawn.len(),
                bytes.len()
            ));
        }
        bytes.copy_from_slice(&drawn);
        Ok(())
    }

    fn describe_key(
        &self,
        name: &str,
        algorithm: SigningAlgorithm,
    ) -> Result<KeyDescription, SigningError> {
        signing::describe_key(name, algorithm_to_wit(algorithm))
            .map(|d| KeyDescription {
                key_id: d.key_id,
                certificate_sha256: d.certificate_sha256,
            })
            .map_err(signing_error_from_wit)
    }

    fn sign(
        &self,
        name: &str,
        algorithm: SigningAlgorithm,
        data: &[u8],
    ) -> Result<Vec<u8>, SigningError> {
        signing::sign(name, algorithm_to_wit(algorithm), data).map_err(signing_error_from_wit)
    }
}

impl Guest for Component {
    fn validate_config(config: wit::ConnectionConfig) -> Vec<wit::ConfigProblem> {
        config_from_wit(config)
            .problems()
            .into_iter()
            .map(problem_to_wit)
            .collect()
    }

    fn build_token_request(
        config: wit::ConnectionConfig,
        step: wit::TokenStep,
    ) -> Result<wit::HttpRequest, wit::OauthError> {
        let step = match step {
            wit::TokenStep::NewToken => Step::NewToken,
            wit::TokenStep::ExchangeCode(e) => Step::ExchangeCode {
                code: e.code.into(),
                pkce_verifier: e.pkce_verifier.into(),
            },
            wit::TokenStep::Refresh(refresh_token) => Step::Refresh {
                refresh_token: refresh_token.into(),
            },
            wit::TokenStep::PollDeviceCode(device_code) => Step::PollDeviceCode {
                device_code: device_code.into(),
            },
        };
        lifecycle::build_token_request(&config_from_wit(config), &Imports, &step)
            .map(request_to_wit)
            .map_err(error_to_wit)
    }

    fn parse_token_response(
        config: wit::ConnectionConfig,
        request: wit::HttpRequest,
        response: wit::HttpResponse,
    ) -> Result<wit::Token, wit::OauthError> {
        lifecycle::parse_token_response(
            &config_from_wit(config),
            &Imports,
            &request_from_wit(request),
            &response_from_wit(response),
        )
        .map(token_to_wit)
        .map_err(error_to_wit)
    }

    fn ensure_token(config: wit::ConnectionConfig) -> Result<wit::Token, wit::OauthError> {
        lifecycle::ensure_token(&config_from_wit(config), &Imports)
            .map(token_to_wit)
            .map_err(error_to_wit)
    }

    fn decorate_request(
        config: wit::ConnectionConfig,
        request: wit::HttpRequest,
    ) -> Result<wit::HttpRequest, wit::OauthError> {
        lifecycle::decorate_request(
            &config_from_wit(config),
            &Imports,
            request_from_wit(request),
        )
        .map(request_to_wit)
        .map_err(error_to_wit)
    }

    fn authorization_headers(
        config: wit::ConnectionConfig,
        url: String,
    ) -> Result<Vec<wit::Pair>, wit::OauthError> {
        lifecycle::authorization_headers(&config_from_wit(config), &Imports, &url)
            .map(|headers| pairs_to_wit(headers.0))
            .map_err(error_to_wit)
    }

    fn begin_authorization(
        config: wit::ConnectionConfig,
    ) -> Result<wit::AuthorizationStart, wit::OauthError> {
        lifecycle::begin_authorization(&config_from_wit(config), &Imports)
            .map(|s| wit::AuthorizationStart {
                url: s.url,
                state: s.state.into_secret(),
            })
            .map_err(error_to_wit)
    }

    fn complete_authorization(
        config: wit::ConnectionConfig,
        redirect_url: String,
    ) -> Result<wit::Token, wit::OauthError> {
        lifecycle::complete_authorization(&config_from_wit(config), &Imports, &redirect_url)
            .map(token_to_wit)
            .map_err(error_to_wit)
    }

    fn forget_token(
        config: wit::ConnectionConfig,
        refused: Option<String>,
    ) -> Result<(), wit::OauthError> {
        lifecycle::forget_token(&config_from_wit(config), &Imports, refused.as_deref())
            .map_err(error_to_wit)
    }

    fn start_device_authorization(
        config: wit::ConnectionConfig,
    ) -> Result<wit::DeviceAuthorization, wit::OauthError> {
        device::start(&config_from_wit(config), &Imports)
            .map(|d| wit::DeviceAuthorization {
                device_code: d.device_code.into_secret(),
                user_code: d.user_code,
                verification_uri: d.verification_uri,
                verification_uri_complete: d.verification_uri_complete,
                interval_seconds: d.interval_secs,
                expires_at: d.expires_at,
            })
            .map_err(error_to_wit)
    }

    fn poll_device_authorization(
        config: wit::ConnectionConfig,
        device_code: String,
    ) -> Result<wit::DevicePoll, wit::OauthError> {
        device::poll(&config_from_wit(config), &Imports, device_code.into())
            .map(|poll| match poll {
                Poll::Granted(token) => wit::DevicePoll::Granted(token_to_wit(token)),
                Poll::Pending => wit::DevicePoll::Pending,
                Poll::SlowDown => wit::DevicePoll::SlowDown,
                Poll::Denied(e) => wit::DevicePoll::Denied(provider_to_wit(e)),
                Poll::Expired(e) => wit::DevicePoll::Expired(provider_to_wit(e)),
            })
            .map_err(error_to_wit)
    }

    fn revoke_tokens(config: wit::ConnectionConfig) -> Result<wit::Revocation, wit::OauthError> {
        revocation::revoke(&config_from_wit(config), &Imports)
            .map(|r| wit::Revocation {
                refresh_token: outcome_to_wit(r.refresh_token),
                access_token: outcome_to_wit(r.access_token),
            })
            .map_err(error_to_wit)
    }
}

fn outcome_to_wit(outcome: Outcome) -> wit::RevocationOutcome {
    match outcome {
        Outcome::Revoked => wit::RevocationOutcome::Revoked,
        Outcome::NotStored => wit::RevocationOutcome::NotStored,
        Outcome::NoEndpoint => wit::RevocationOutcome::NoEndpoint,
        Outcome::Failed(e) => wit::RevocationOutcome::Failed(error_to_wit(e)),
    }
}

fn algorithm_to_wit(algorithm: SigningAlgorithm) -> wit::SigningAlgorithm {
    match algorithm {
        SigningAlgorithm::Rs256 => wit::SigningAlgorithm::Rs256,
        SigningAlgorithm::Ps256 => wit::SigningAlgorithm::Ps256,
        SigningAlgorithm::Es256 => wit::SigningAlgorithm::Es256,
    }
}

fn signing_error_from_wit(e: wit::SigningError) -> SigningError {
    match e {
        wit::SigningError::UnknownKey(m) => SigningError::UnknownKey(m),
        wit::SigningError::WrongAlgorithm(m) => SigningError::WrongAlgorithm(m),
        wit::SigningError::UnusableKey(m) => SigningError::UnusableKey(m),
    }
}

// The conversions below serve several exports each: kept out of line, the component holds one
// copy of each instead of one per export.
#[inline(never)]
fn config_from_wit(c: wit::ConnectionConfig) -> Config {
    Config {
        grant_type: match c.grant_type {
            wit::GrantType::ClientCredentials => GrantType::ClientCredentials,
            wit::GrantType::Password => GrantType::Password,
            wit::GrantType::AuthorizationCode => GrantType::AuthorizationCode,
            wit::GrantType::JwtBearer => GrantType::JwtBearer,
            wit::GrantType::DeviceCode => GrantType::DeviceCode,
        },
        token_url: c.token_url,
        authorization_url: c.authorization_url,
        redirect_uri: c.redirect_uri,
        client_id: c.client_id,
        client_secret_name: c.client_secret_name,
        username: c.username,
        password_name: c.password_name,
        header_prefix: c.header_prefix,
        audience: c.audience,
        resource: c.resource_indicators,
        scope: c.scope,
        client_auth: match c.client_auth {
            wit::ClientAuth::Auto => ClientAuth::Auto,
            wit::ClientAuth::Basic => ClientAuth::Basic,
            wit::ClientAuth::BasicUnencoded => ClientAuth::BasicUnencoded,
            wit::ClientAuth::RequestBody => ClientAuth::RequestBody,
            wit::ClientAuth::PrivateKeyJwt => ClientAuth::PrivateKeyJwt,
            wit::ClientAuth::ClientSecretJwt => ClientAuth::ClientSecretJwt,
        },
        extra_params: pairs_from_wit(c.extra_params),
        authorization_params: pairs_from_wit(c.authorization_params),
        response_format: ResponseFormat {
            token_path: c.response_format.token_path,
            expires_in_unit: match c.response_format.expires_in_unit {
                wit::TimeUnit::Seconds => TimeUnit::Seconds,
                wit::TimeUnit::Milliseconds => TimeUnit::Milliseconds,
            },
            scope_separator: match c.response_format.scope_separator {
                wit::ScopeSeparator::Space => ScopeSeparator::Space,
                wit::ScopeSeparator::Comma => ScopeSeparator::Comma,
            },
        },
        api_origins: c.api_origins,
        signing_key: c.signing_key.map(|k| SigningKey {
            name: k.name,
            algorithm: match k.algorithm {
                wit::SigningAlgorithm::Rs256 => SigningAlgorithm::Rs256,
                wit::SigningAlgorithm::Ps256 => SigningAlgorithm::Ps256,
                wit::SigningAlgorithm::Es256 => SigningAlgorithm::Es256,
            },
            key_id: k.key_id,
        }),
        assertion_audience: c.assertion_audience,
        subject: c.subject,
        device_authorization_url: c.device_authorization_url,
        revocation_url: c.revocation_url,
        issuer: c.issuer,
    }
}

#[inline(never)]
fn request_to_wit(r: HttpRequest) -> wit::HttpRequest {
    wit::HttpRequest {
        headers: r
            .headers
            .into_iter()
            .map(|(name, value)| wit::Pair { name, value })
            .collect(),
        method: r.method,
        url: r.url,
        body: r.body,
    }
}

#[inline(never)]
fn request_from_wit(r: wit::HttpRequest) -> HttpRequest {
    HttpRequest {
        method: r.method,
        url: r.url,
        headers: pairs_from_wit(r.headers),
        body: r.body,
    }
}

#[inline(never)]
fn response_from_wit(r: wit::HttpResponse) -> HttpResponse {
    HttpResponse {
        status: r.status,
        headers: pairs_from_wit(r.headers),
        body: r.body,
    }
}

fn pairs_from_wit(pairs: Vec<wit::Pair>) -> Vec<(String, String)> {
    pairs.into_iter().map(|p| (p.name, p.value)).collect()
}

fn pairs_to_wit(pairs: Vec<(String, String)>) -> Vec<wit::Pair> {
    pairs
        .into_iter()
        .map(|(name, value)| wit::Pair { name, value })
        .collect()
}

#[inline(never)]
fn token_to_wit(t: Token) -> wit::Token {
    wit::Token {
        access_token: t.access_token.into_secret(),
        token_type: t.token_type,
        expires_at: t.expires_at,
        refresh_token: t.refresh_token.map(RefreshToken::into_secret),
        scope: t.scope,
        id_token: t.id_token.map(IdToken::into_secret),
        extra_fields: pairs_to_wit(t.extra.0),
    }
}

fn problem_to_wit(p: ConfigProblem) -> wit::ConfigProblem {
    wit::ConfigProblem {
        field: p.field,
        message: p.message,
    }
}

fn provider_to_wit(e: ProviderError) -> wit::ProviderError {
    wit::ProviderError {
        status: e.status,
        code: e.code,
        description: e.description,
        uri: e.uri,
        hint: e.hint,
    }
}

fn store_error_from_wit(e: wit::StoreError) -> StoreError {
    match e {
        wit::StoreError::Unavailable(m) => StoreError::Unavailable(m),
        wit::StoreError::LockTimeout(secs) => StoreError::LockTimeout(secs),
    }
}

fn transport_from_wit(e: wit::TransportError) -> TransportError {
    match e {
        wit::TransportError::InvalidRequest(m) => TransportError::InvalidRequest(m),
        wit::TransportError::ForbiddenDestination(m) => TransportError::ForbiddenDestination(m),
        wit::TransportError::Dns(m) => TransportError::Dns(m),
        wit::TransportError::Connect(m) => TransportError::Connect(m),
        wit::TransportError::Tls(m) => TransportError::Tls(m),
        wit::TransportError::Timeout => TransportError::Timeout,
        wit::TransportError::Interrupted(m) => TransportError::Interrupted(m),
        wit::TransportError::BodyTooLarge(n) => TransportError::BodyTooLarge(n),
        wit::TransportError::Other(m) => TransportError::Other(m),
    }
}

fn transport_to_wit(e: TransportError) -> wit::TransportError {
    match e {
        TransportError::InvalidRequest(m) => wit::TransportError::InvalidRequest(m),
        TransportError::ForbiddenDestination(m) => wit::TransportError::ForbiddenDestination(m),
        TransportError::Dns(m) => wit::TransportError::Dns(m),
        TransportError::Connect(m) => wit::TransportError::Connect(m),
        TransportError::Tls(m) => wit::TransportError::Tls(m),
        TransportError::Timeout => wit::TransportError::Timeout,
        TransportError::Interrupted(m) => wit::TransportError::Interrupted(m),
        TransportError::BodyTooLarge(n) => wit::TransportError::BodyTooLarge(n),
        TransportError::Other(m) => wit::TransportError::Other(m),
    }
}

#[inline(never)]
fn error_to_wit(e: Error) -> wit::OauthError {
    match e {
        Error::InvalidConfig(p) => wit::OauthError::InvalidConfig(problem_to_wit(p)),
        Error::MissingSecret { field, name } => {
            wit::OauthError::MissingSecret(wit::MissingSecret { field, name })
        }
        Error::SecretStore(m) => wit::OauthError::SecretStore(m),
        Error::TokenStore(StoreError::Unavailable(m)) => {
            wit::OauthError::TokenStore(wit::StoreError::Unavailable(m))
        }
        Error::TokenStore(StoreError::LockTimeout(secs)) => {
            wit::OauthError::TokenStore(wit::StoreError::LockTimeout(secs))
        }
        Error::Transport(t) => wit::OauthError::Transport(transport_to_wit(t)),
        Error::Provider(p) => wit::OauthError::Provider(provider_to_wit(p)),
        Error::MalformedResponse(ResponseProblem {
            status,
            content_type,
            message,
            hint,
        }) => wit::OauthError::MalformedResponse(wit::ResponseProblem {
            status,
            content_type,
            message,
            hint,
        }),
        Error::AuthorizationRequired(m) => wit::OauthError::AuthorizationRequired(m),
        Error::AuthorizationDenied(p) => wit::OauthError::AuthorizationDenied(provider_to_wit(p)),
        Error::StateMismatch => wit::OauthError::StateMismatch,
        Error::InvalidRedirect(m) => wit::OauthError::InvalidRedirect(m),
        Error::RandomnessUnavailable(m) => wit::OauthError::RandomnessUnavailable(m),
        Error::ApiUrlRefused(m) => wit::OauthError::ApiUrlRefused(m),
        Error::Signing(e) => wit::OauthError::Signing(match e {
            SigningError::UnknownKey(m) => wit::SigningError::UnknownKey(m),
            SigningError::WrongAlgorithm(m) => wit::SigningError::WrongAlgorithm(m),
            SigningError::UnusableKey(m) => wit::SigningError::UnusableKey(m),
        }),
        Error::IssuerMismatch { expected, received } => {
            wit::OauthError::IssuerMismatch(wit::IssuerMismatch { expected, received })
        }
    }
}
