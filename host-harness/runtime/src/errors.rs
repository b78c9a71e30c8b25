//! One-line, secret-free explanations of what went wrong in a call into the component.

use std::fmt::{self, Display, Formatter};

use oauth2_plugin::hints::{self, TransportKind};

use crate::bindings::{
    OauthError, ProviderError, ResponseProblem, SigningError, StoreError, TransportError,
};
pub use crate::sandbox::{GUEST_TIME_LIMIT, LimitExceeded};

/// The failure of one call into the component.
#[derive(Debug)]
pub enum CallError {
    /// The grant logic returned its typed error.
    OAuth(OauthError),
    /// The host stopped the component at one of its limits; the host serves other calls on.
    Limit(LimitExceeded),
    /// The host could not run the call: instantiation failed, the guest trapped, ...
    Host(anyhow::Error),
}

impl Display for CallError {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Self::OAuth(e) => Explain(e).fmt(f),
            Self::Limit(limit) => limit.fmt(f),
            // `:#` keeps anyhow's context chain on the one line.
            Self::Host(e) => write!(f, "component failed: {e:#}"),
        }
    }
}

impl std::error::Error for CallError {}

impl From<OauthError> for CallError {
    fn from(e: OauthError) -> Self {
        Self::OAuth(e)
    }
}

/// Displays a generated error type readably; their own `Display` (from bindgen) is `Debug`.
#[derive(Debug, Clone, Copy)]
pub struct Explain<'a, E>(pub &'a E);

impl Display for Explain<'_, OauthError> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            OauthError::InvalidConfig(p) => write!(f, "config: {}: {}", p.field, p.message),
            OauthError::MissingSecret(m) => write!(
                f,
                "secret \"{name}\" named by {field} is not in the store \
                 (add it with: oauth2-host secret set {name})",
                name = m.name,
                field = m.field
            ),
            OauthError::SecretStore(message) => write!(f, "secret store: {message}"),
            OauthError::TokenStore(StoreError::Unavailable(message)) => {
                write!(f, "token store: {message}")
            }
            OauthError::TokenStore(StoreError::LockTimeout(secs)) => write!(
                f,
                "token store: another step held this connection's lock for over {secs} s (a \
                 slow token request, or a stuck worker): try again"
            ),
            OauthError::Transport(t) => {
                write!(f, "could not reach the token endpoint: {}", Explain(t))
            }
            OauthError::Provider(p) => {
                write!(f, "token endpoint answered {} ", p.status)?;
                provider(f, p)
            }
            OauthError::MalformedResponse(r) => response_problem(f, r),
            OauthError::AuthorizationRequired(message) => {
                // The component names the export that starts over for a device code grant.
                let command = if message.contains("start-device-authorization") {
                    "oauth2-host device"
                } else {
                    "oauth2-host authorize"
                };
                write!(f, "authorization required: {message} (run: {command})")
            }
            OauthError::AuthorizationDenied(p) => {
                f.write_str("authorization server redirected with ")?;
                provider(f, p)
            }
            OauthError::StateMismatch => f.write_str(
                "state_mismatch: the redirect's state was not issued by this host or was already \
                 used; start the authorization again",
            ),
            OauthError::InvalidRedirect(message) => write!(f, "invalid redirect URL: {message}"),
            OauthError::RandomnessUnavailable(message) => {
                write!(f, "the host gave no secure randomness: {message}")
            }
            OauthError::ApiUrlRefused(message) => write!(
                f,
                "the token may not be sent there: {message} (api_origins lists where it may go)"
            ),
            OauthError::Signing(SigningError::UnknownKey(message)) => {
                write!(f, "signing key (private_key): {message}")
            }
            OauthError::Signing(SigningError::WrongAlgorithm(message)) => {
                write!(f, "signing key (private_key, signing_alg): {message}")
            }
            OauthError::Signing(SigningError::UnusableKey(message)) => {
                write!(f, "signing key (private_key): unusable: {message}")
            }
            OauthError::IssuerMismatch(m) => match &m.received {
                Some(received) => write!(
                    f,
                    "issuer_mismatch: the authorization response came from issuer {received:?}, \
                     not the configured issuer {:?}; the code was not used (a mix-up attack, or \
                     issuer is wrong)",
                    m.expected
                ),
                None => write!(
                    f,
                    "issuer_mismatch: the authorization response carries no iss, but issuer {:?} \
                     is configured; the code was not used (remove issuer if the provider does \
                     not send iss, RFC 9207)",
                    m.expected
                ),
            },
        }
    }
}

impl Display for Explain<'_, TransportError> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let kind = match self.0 {
            TransportError::InvalidRequest(m) => return write!(f, "invalid request: {m}"),
            TransportError::Other(m) => {
                f.write_str(m)?;
                TransportKind::Other
            }
            TransportError::Interrupted(m) => {
                write!(f, "the connection broke mid-answer: {m}")?;
                TransportKind::Interrupted
            }
            TransportError::ForbiddenDestination(m) => {
                write!(f, "destination refused: {m}")?;
                TransportKind::ForbiddenDestination
            }
            TransportError::Dns(m) => {
                write!(f, "DNS lookup failed: {m}")?;
                TransportKind::Dns
            }
            TransportError::Connect(m) => {
                write!(f, "connection failed: {m}")?;
                TransportKind::Connect
            }
            TransportError::Tls(m) => {
                write!(f, "TLS failed: {m}")?;
                TransportKind::Tls
            }
            TransportError::Timeout => {
                f.write_str("timed out")?;
                TransportKind::Timeout
            }
            TransportError::BodyTooLarge(limit) => {
                write!(f, "response body larger than {limit} bytes")?;
                TransportKind::BodyTooLarge
            }
        };
        hint(f, hints::for_transport(kind))
    }
}

/// `invalid_client: Client authentication failed (see URI). Check the client ID ...`
fn provider(f: &mut Formatter<'_>, p: &ProviderError) -> fmt::Result {
    f.write_str(&p.code)?;
    if let Some(description) = p.description.as_deref().filter(|d| !d.is_empty()) {
        write!(f, ": {}", description.trim_end_matches('.'))?;
    }
    if let Some(uri) = &p.uri {
        write!(f, " (see {uri})")?;
    }
    hint(f, &p.hint)
}

fn response_problem(f: &mut Formatter<'_>, r: &ResponseProblem) -> fmt::Result {
    write!(f, "token endpoint answered {}", r.status)?;
    if let Some(content_type) = &r.content_type {
        write!(f, " ({content_type})")?;
    }
    write!(
        f,
        " that is not a token: {}",
        r.message.trim_end_matches('.')
    )?;
    hint(f, &r.hint)
}

/// Ends the previous sentence and appends the advice as a sentence of its own.
pub(crate) fn hint(f: &mut Formatter<'_>, hint: &str) -> fmt::Result {
    let mut chars = hint.chars();
    let Some(first) = chars.next() else {
        return Ok(());
    };
    write!(f, ". {}{}", first.to_uppercase(), chars.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::{ConfigProblem, MissingSecret};

    fn line(e: OauthError) -> String {
        CallError::OAuth(e).to_string()
    }

    fn capitalized(text: &str) -> String {
        let mut chars = text.chars();
        chars.next().unwrap().to_uppercase().chain(chars).collect()
    }

    fn invalid_client() -> ProviderError {
        ProviderError {
            status: 401,
            code: "invalid_client".into(),
            description: Some("Client authentication failed.".into()),
            uri: None,
            hint: "check the client ID and secret, and the client_auth style".into(),
        }
    }

    #[test]
    fn provider_errors_name_status_code_description_and_hint() {
        assert_eq!(
            line(OauthError::Provider(invalid_client())),
            "token endpoint answered 401 invalid_client: Client authentication failed. \
             Check the client ID and secret, and the client_auth style"
        );
    }

    #[test]
    fn provider_errors_without_description_keep_uri_and_hint() {
        let error = ProviderError {
            description: None,
            uri: Some("https://example.com/doc".into()),
            ..invalid_client()
        };
        assert_eq!(
            line(OauthError::Provider(error)),
            "token endpoint answered 401 invalid_client (see https://example.com/doc). \
             Check the client ID and secret, and the client_auth style"
        );
    }

    #[test]
    fn denied_authorizations_name_the_code() {
        let error = ProviderError {
            status: 0,
            code: "access_denied".into(),
            description: Some("The user said no".into()),
            uri: None,
            hint: "Approve the consent screen".into(),
        };
        assert_eq!(
            line(OauthError::AuthorizationDenied(error)),
            "authorization server redirected with access_denied: The user said no. \
             Approve the consent screen"
        );
    }

    #[test]
    fn malformed_responses_name_status_type_and_hint() {
        let problem = ResponseProblem {
            status: 200,
            content_type: Some("text/html".into()),
            message: "not JSON".into(),
            hint: "Check token_url points at the token endpoint".into(),
        };
        assert_eq!(
            line(OauthError::MalformedResponse(problem)),
            "token endpoint answered 200 (text/html) that is not a token: not JSON. \
             Check token_url points at the token endpoint"
        );
    }

    #[test]
    fn config_problems_name_the_key() {
        let problem = ConfigProblem {
            field: "token_url".into(),
            message: "must be https".into(),
        };
        assert_eq!(
            line(OauthError::InvalidConfig(problem)),
            "config: token_url: must be https"
        );
    }

    #[test]
    fn missing_secrets_say_how_to_add_them() {
        let missing = MissingSecret {
            field: "client_secret".into(),
            name: "acme-secret".into(),
        };
        assert_eq!(
            line(OauthError::MissingSecret(missing)),
            "secret \"acme-secret\" named by client_secret is not in the store \
             (add it with: oauth2-host secret set acme-secret)"
        );
    }

    #[test]
    fn transport_errors_are_explained() {
        assert_eq!(
            line(OauthError::Transport(TransportError::Timeout)),
            format!(
                "could not reach the token endpoint: timed out. {}",
                capitalized(hints::for_transport(TransportKind::Timeout))
            )
        );
        let tls = Explain(&TransportError::Tls("unknown issuer".into())).to_string();
        assert!(tls.starts_with("TLS failed: unknown issuer. "), "{tls}");
        assert!(tls.contains("--ca-cert"), "{tls}");
        let dns = Explain(&TransportError::Dns("no such host".into())).to_string();
        assert!(dns.contains("host name"), "{dns}");
        assert!(
            Explain(&TransportError::BodyTooLarge(1024))
                .to_string()
                .starts_with("response body larger than 1024 bytes. ")
        );
    }

    #[test]
    fn host_errors_keep_their_context_on_one_line() {
        let error = anyhow::anyhow!("unknown import").context("instantiating the component");
        let text = CallError::Host(error).to_string();
        assert_eq!(
            text,
            "component failed: instantiating the component: unknown import"
        );
        assert!(!text.contains('\n'));
    }
}
