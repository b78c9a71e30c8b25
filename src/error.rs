//! Every way a grant operation fails, as values a caller can match on.

use crate::prelude::*;

use core::fmt;

use crate::config::ConfigProblem;
use crate::provider_text::Redactor;

/// Why the host could not complete an HTTP exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    InvalidRequest(String),
    ForbiddenDestination(String),
    Dns(String),
    Connect(String),
    Tls(String),
    Timeout,
    Interrupted(String),
    BodyTooLarge(u64),
    Other(String),
}

/// Why the host's token store could not serve a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The store failed or could not be reached; the host's message.
    Unavailable(String),
    /// Another holder kept the lock longer than the host waits, in seconds.
    LockTimeout(u32),
}

/// Why the host could not sign with the connection's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SigningError {
    /// The host holds no key of that name.
    UnknownKey(String),
    /// The key cannot sign with the configured algorithm; the host's message.
    WrongAlgorithm(String),
    /// The key could not be read or used; the host's message.
    UnusableKey(String),
}

/// An OAuth error reported by the provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderError {
    /// HTTP status; 0 for an error delivered on the redirect.
    pub status: u16,
    pub code: String,
    pub description: Option<String>,
    pub uri: Option<String>,
    pub hint: String,
}

/// A token endpoint answer that is neither a token nor an OAuth error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseProblem {
    pub status: u16,
    pub content_type: Option<String>,
    pub message: String,
    pub hint: String,
}

/// Every way a grant operation can fail. No variant holds a secret value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    InvalidConfig(ConfigProblem),
    MissingSecret {
        field: String,
        name: String,
    },
    SecretStore(String),
    TokenStore(StoreError),
    Transport(TransportError),
    Provider(ProviderError),
    MalformedResponse(ResponseProblem),
    AuthorizationRequired(String),
    AuthorizationDenied(ProviderError),
    StateMismatch,
    InvalidRedirect(String),
    RandomnessUnavailable(String),
    /// The request's URL may not receive the connection's token.
    ApiUrlRefused(String),
    Signing(SigningError),
    /// An authorization response without the configured issuer's `iss` (RFC 9207).
    IssuerMismatch {
        expected: String,
        received: Option<String>,
    },
}

impl Error {
    /// The error with every piece of text that did not come from this crate (the provider's,
    /// the host's) cleaned by `redactor`: secrets removed, control characters escaped, length
    /// bounded. Configuration problems and secret names are the user's own words, kept.
    pub fn cleaned(self, redactor: &Redactor) -> Error {
        let clean = |text: String| redactor.clean(&text);
        let clean_provider = |e: ProviderError| ProviderError {
            code: redactor.clean_code(&e.code),
            description: e.description.map(clean),
            uri: e.uri.map(clean),
            ..e
        };
        match self {
            Error::SecretStore(m) => Error::SecretStore(clean(m)),
            Error::TokenStore(StoreError::Unavailable(m)) => {
                Error::TokenStore(StoreError::Unavailable(clean(m)))
            }
            Error::Transport(e) => Error::Transport(e.cleaned(redactor)),
            Error::Provider(e) => Error::Provider(clean_provider(e)),
            Error::MalformedResponse(p) => Error::MalformedResponse(ResponseProblem {
                content_type: p.content_type.map(clean),
                message: clean(p.message),
                ..p
            }),
            Error::AuthorizationRequired(m) => Error::AuthorizationRequired(clean(m)),
            Error::AuthorizationDenied(e) => Error::AuthorizationDenied(clean_provider(e)),
            Error::InvalidRedirect(m) => Error::InvalidRedirect(clean(m)),
            Error::RandomnessUnavailable(m) => Error::RandomnessUnavailable(clean(m)),
            Error::ApiUrlRefused(m) => Error::ApiUrlRefused(clean(m)),
            Error::Signing(e) => Error::Signing(match e {
                SigningError::UnknownKey(m) => SigningError::UnknownKey(clean(m)),
                SigningError::WrongAlgorithm(m) => SigningError::WrongAlgorithm(clean(m)),
                SigningError::UnusableKey(m) => SigningError::UnusableKey(clean(m)),
            }),
            Error::IssuerMismatch { expected, received } => Error::IssuerMismatch {
                expected,
                received: received.map(clean),
            },
            other @ (Error::InvalidConfig(_)
            | Error::MissingSecret { .. }
            | Error::TokenStore(StoreError::LockTimeout(_))
            | Error::StateMismatch) => other,
        }
    }
}

impl TransportError {
    fn cleaned(self, redactor: &Redactor) -> TransportError {
        let clean = |text: String| redactor.clean(&text);
        match self {
            TransportError::InvalidRequest(m) => TransportError::InvalidRequest(clean(m)),
            TransportError::ForbiddenDestination(m) => {
                TransportError::ForbiddenDestination(clean(m))
            }
            TransportError::Dns(m) => TransportError::Dns(clean(m)),
            TransportError::Connect(m) => TransportError::Connect(clean(m)),
            TransportError::Tls(m) => TransportError::Tls(clean(m)),
            TransportError::Interrupted(m) => TransportError::Interrupted(clean(m)),
            TransportError::Other(m) => TransportError::Other(clean(m)),
            other @ (TransportError::Timeout | TransportError::BodyTooLarge(_)) => other,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(m) => f.write_str(m),
            StoreError::LockTimeout(secs) => write!(
                f,
                "another step held this connection's lock for over {secs} s (a slow token \
                 request, or a stuck worker): try again"
            ),
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::InvalidRequest(m) => write!(f, "unusable request: {m}"),
            TransportError::ForbiddenDestination(m) => {
                write!(f, "destination refused by the host: {m}")
            }
            TransportError::Dns(m) => write!(f, "host name lookup failed: {m}"),
            TransportError::Connect(m) => write!(f, "could not connect: {m}"),
            TransportError::Tls(m) => write!(f, "TLS failed: {m}"),
            TransportError::Timeout => write!(f, "timed out"),
            TransportError::Interrupted(m) => write!(f, "the connection broke mid-answer: {m}"),
            TransportError::BodyTooLarge(n) => write!(f, "response body over {n} bytes"),
            TransportError::Other(m) => write!(f, "{m}"),
        }
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.status != 0 {
            write!(f, "HTTP {} ", self.status)?;
        }
        write!(f, "{}", self.code)?;
        if let Some(description) = &self.description {
            write!(f, ": {description}")?;
        }
        if let Some(uri) = &self.uri {
            write!(f, " ({uri})")?;
        }
        write!(f, ". Hint: {}", self.hint)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig(p) => {
                write!(f, "invalid configuration: {}: {}", p.field, p.message)
            }
            Error::MissingSecret { field, name } => {
                write!(
                    f,
                    "the secret {name:?} named by {field} is not in the secret store"
                )
            }
            Error::SecretStore(m) => write!(f, "secret store failed: {m}"),
            Error::TokenStore(e) => write!(f, "token store failed: {e}"),
            Error::Transport(e) => write!(f, "token endpoint unreachable: {e}"),
            Error::Provider(e) => write!(f, "token endpoint answered {e}"),
            Error::MalformedResponse(p) => {
                write!(f, "token endpoint answered HTTP {}", p.status)?;
                if let Some(ct) = &p.content_type {
                    write!(f, " ({ct})")?;
                }
                write!(f, " that is not a token: {}. Hint: {}", p.message, p.hint)
            }
            Error::AuthorizationRequired(m) => write!(f, "authorization required: {m}"),
            Error::AuthorizationDenied(e) => write!(f, "authorization failed: {e}"),
            Error::StateMismatch => write!(
                f,
                "the redirect's state is not one this connection issued, or it was already used: start the authorization again"
            ),
            Error::InvalidRedirect(m) => write!(f, "unusable redirect: {m}"),
            Error::RandomnessUnavailable(m) => write!(f, "no secure randomness from the host: {m}"),
            Error::ApiUrlRefused(m) => write!(f, "the token may not be sent there: {m}"),
            Error::Signing(SigningError::UnknownKey(m)) => {
                write!(
                    f,
                    "the host holds no such signing key: {m} (check private_key)"
                )
            }
            Error::Signing(SigningError::WrongAlgorithm(m)) => {
                write!(f, "the signing key does not fit signing_alg: {m}")
            }
            Error::Signing(SigningError::UnusableKey(m)) => {
                write!(f, "the signing key is unusable: {m}")
            }
            Error::IssuerMismatch { expected, received } => match received {
                Some(received) => write!(
                    f,
                    "the authorization response came from issuer {received:?}, not the configured {expected:?}: \
                     the code was not used (a mix-up attack, or issuer is wrong)"
                ),
                None => write!(
                    f,
                    "the authorization response carries no iss, but issuer {expected:?} is configured: \
                     the code was not used (remove issuer if the provider does not send iss, RFC 9207)"
                ),
            },
        }
    }
}

impl core::error::Error for Error {}
