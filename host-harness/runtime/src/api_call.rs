//! One API call the way a connector makes it: decorated by the component, and retried once
//! with a fresh token when the API answers 401.

use std::fmt;

use crate::bindings::{ConnectionConfig, TransportError};
use crate::errors::{CallError, Explain, hint};
use crate::message::{HttpRequest, HttpResponse};
use crate::plugin::{Plugin, Services};

/// The API's answer, and whether it took a second try.
#[derive(Debug)]
pub struct Outcome {
    pub response: HttpResponse,
    /// The first answer was 401: the token was forgotten and the call made again.
    pub retried: bool,
}

impl Outcome {
    /// What to check when the API refused even the token fetched after a 401.
    pub fn hint(&self) -> Option<&'static str> {
        (self.retried && self.response.status == 401)
            .then(oauth2_plugin::hints::for_api_unauthorized)
    }
}

/// Why the call produced no answer.
#[derive(Debug)]
pub enum ApiCallError {
    /// The component could not provide a token.
    Token(CallError),
    /// The API could not be reached.
    Transport { url: String, error: TransportError },
}

impl fmt::Display for ApiCallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiCallError::Token(e) => e.fmt(f),
            // The general advice for an oversized answer is about token endpoints.
            ApiCallError::Transport {
                url,
                error: TransportError::BodyTooLarge(limit),
            } => {
                write!(f, "{url}: the answer is larger than {limit} bytes")?;
                hint(f, oauth2_plugin::hints::for_api_too_large())
            }
            ApiCallError::Transport { url, error } => write!(f, "{url}: {}", Explain(error)),
        }
    }
}

impl std::error::Error for ApiCallError {}

impl From<CallError> for ApiCallError {
    fn from(e: CallError) -> Self {
        ApiCallError::Token(e)
    }
}

/// Sends `request` with the connection's token. A 401 means the API no longer accepts the
/// token (revoked, or expired before its stated time): the component forgets it, keeping the
/// refresh token, and the call is made once more with whatever token it then provides.
pub fn call(
    plugin: &Plugin,
    services: &Services,
    config: &ConnectionConfig,
    request: &HttpRequest,
) -> Result<Outcome, ApiCallError> {
    let (response, sent) = send_decorated(plugin, services, config, request)?;
    if response.status != 401 {
        return Ok(Outcome {
            response,
            retried: false,
        });
    }
    plugin.forget_token(services, config, sent.as_deref())?;
    Ok(Outcome {
        response: send_decorated(plugin, services, config, request)?.0,
        retried: true,
    })
}

/// The answer, and the `Authorization` value the request carried.
fn send_decorated(
    plugin: &Plugin,
    services: &Services,
    config: &ConnectionConfig,
    request: &HttpRequest,
) -> Result<(HttpResponse, Option<String>), ApiCallError> {
    let decorated = plugin.decorate_request(services, config, request)?;
    let sent = decorated
        .headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case("authorization"))
        .map(|header| header.value.clone());
    let response = services
        .http
        .send(&decorated)
        .map_err(|error| ApiCallError::Transport {
            url: request.url.clone(),
            error,
        })?;
    Ok((response, sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_api_answer_is_explained_as_the_apis() {
        let error = ApiCallError::Transport {
            url: "https://api.example.com/v1/export".into(),
            error: TransportError::BodyTooLarge(1 << 20),
        };
        let text = error.to_string();
        assert!(
            text.starts_with("https://api.example.com/v1/export: the answer is larger than"),
            "{text}"
        );
        assert!(text.contains("ask the API for less"), "{text}");
        assert!(!text.contains("token endpoint"), "{text}");
    }
}
