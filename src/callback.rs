//! Reading the redirect that ends the authorization flow (RFC 6749 §4.1.2, §4.1.2.1).

use crate::prelude::*;

use url::Url;

use crate::error::Error;
use crate::secret::{AuthorizationCode, State};

/// What the provider put on the redirect.
#[derive(Debug, PartialEq, Eq)]
pub struct Redirect {
    /// The `state` to check before anything else is trusted.
    pub state: Option<State>,
    /// The issuer the response names (RFC 9207 §2).
    pub iss: Option<String>,
    pub outcome: Outcome,
}

/// A code, or the error the provider redirected with instead.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Code(AuthorizationCode),
    Error {
        code: String,
        description: Option<String>,
        uri: Option<String>,
    },
}

/// Parses the URL the browser was redirected to. It must be the configured redirect URI (same
/// scheme, host, port and path), and carry each response parameter at most once (RFC 6749 §3.1).
pub fn parse(redirect_url: &str, redirect_uri: &str) -> Result<Redirect, Error> {
    let url = Url::parse(redirect_url.trim())
        .map_err(|e| Error::InvalidRedirect(format!("not an absolute URL ({e})")))?;
    let expected = Url::parse(redirect_uri.trim()).map_err(|e| {
        Error::InvalidRedirect(format!("the configured redirect_uri is not a URL ({e})"))
    })?;
    if url.scheme() != expected.scheme()
        || url.host() != expected.host()
        || url.port_or_known_default() != expected.port_or_known_default()
        || url.path() != expected.path()
    {
        return Err(Error::InvalidRedirect(format!(
            "it does not go to the configured redirect_uri {}",
            expected.as_str()
        )));
    }

    let mut state = None;
    let mut code = None;
    let mut error = None;
    let mut description = None;
    let mut uri = None;
    let mut iss = None;
    for (name, value) in url.query_pairs() {
        let slot = match name.as_ref() {
            "state" => &mut state,
            "iss" => &mut iss,
            "code" => &mut code,
            "error" => &mut error,
            "error_description" => &mut description,
            "error_uri" => &mut uri,
            _ => continue,
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(Error::InvalidRedirect(format!(
                "the parameter {name} appears more than once"
            )));
        }
    }
    let outcome = match (error, code) {
        (Some(code), _) => Outcome::Error {
            code,
            description,
            uri,
        },
        (None, Some(code)) if !code.is_empty() => Outcome::Code(AuthorizationCode::new(code)),
        _ => {
            return Err(Error::InvalidRedirect(
                "it carries neither a code nor an error".into(),
            ));
        }
    };
    Ok(Redirect {
        state: state.map(State::new),
        iss,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REDIRECT_URI: &str = "http://127.0.0.1:8765/callback";

    #[test]
    fn code_and_state() {
        let r = parse(
            "http://127.0.0.1:8765/callback?code=abc%2B1&state=s%20t",
            REDIRECT_URI,
        )
        .unwrap();
        assert_eq!(r.state, Some("s t".into()));
        assert_eq!(r.iss, None);
        assert_eq!(r.outcome, Outcome::Code("abc+1".into()));
        let r = parse(
            "http://127.0.0.1:8765/callback?code=a&state=s&iss=https%3A%2F%2Fidp.example.com",
            REDIRECT_URI,
        )
        .unwrap();
        assert_eq!(r.iss.as_deref(), Some("https://idp.example.com"));
    }

    #[test]
    fn error_redirect_wins_over_code() {
        let r = parse(
            "http://127.0.0.1:8765/callback?error=access_denied&error_description=User+said+no&state=s&code=x",
            REDIRECT_URI,
        )
        .unwrap();
        assert_eq!(
            r.outcome,
            Outcome::Error {
                code: "access_denied".into(),
                description: Some("User said no".into()),
                uri: None
            }
        );
    }

    #[test]
    fn refusals() {
        for bad in [
            "not a url",
            "http://127.0.0.1:8766/callback?code=a&state=s",
            "http://127.0.0.1:8765/callbac?code=a&state=s",
            "https://127.0.0.1:8765/callback?code=a&state=s",
            "http://evil.example/callback?code=a&state=s",
            "http://127.0.0.1:8765/callback?state=s",
            "http://127.0.0.1:8765/callback?code=&state=s",
            "http://127.0.0.1:8765/callback?code=a&code=b&state=s",
            "http://127.0.0.1:8765/callback?code=a&state=s&state=t",
            "http://127.0.0.1:8765/callback?code=a&state=s&iss=x&iss=y",
        ] {
            assert!(
                matches!(parse(bad, REDIRECT_URI), Err(Error::InvalidRedirect(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_hides_the_code_and_state() {
        let r = parse(
            "http://127.0.0.1:8765/callback?code=secret-code&state=secret-state",
            REDIRECT_URI,
        )
        .unwrap();
        assert!(!format!("{r:?}").contains("secret"), "{r:?}");
    }
}
