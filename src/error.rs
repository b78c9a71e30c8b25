//! Every way a grant operation fails, as values a caller can match on.

use crate::prelude::*;

use core::fmt;

use crate::config::ConfigProblem;

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
    MissingSecret { field: String, name: String },
    SecretStore(String),
    Transport(TransportError),
    Provider(ProviderError),
    MalformedResponse(ResponseProblem),
    AuthorizationRequired(String),
    AuthorizationDenied(ProviderError),
    StateMismatch,
    InvalidRedirect(String),
    RandomnessUnavailable(String),
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
        }
    }
}

impl core::error::Error for Error {}
