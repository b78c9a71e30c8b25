//! The device authorization grant (RFC 8628): starting it, and one poll for its token.

use crate::prelude::*;

use crate::config::{Config, ConfigProblem, GrantType, endpoint};
use crate::error::{Error, ProviderError, ResponseProblem};
use crate::hints::Situation;
use crate::http::{HttpResponse, header};
use crate::lifecycle::{self, Host};
use crate::provider_text::Redactor;
use crate::secret::DeviceCode;
use crate::token::Token;
use crate::token_cache::token_key;
use crate::token_request::{self, Step};
use crate::token_response;

/// The interval between polls when the provider names none (RFC 8628 §3.2).
pub const DEFAULT_INTERVAL_SECS: u32 = 5;

/// What the user needs to approve, and what the host polls with.
#[derive(Debug, PartialEq, Eq)]
pub struct DeviceAuthorization {
    pub device_code: DeviceCode,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub interval_secs: u32,
    /// Absolute Unix seconds.
    pub expires_at: u64,
}

/// One poll's answer (RFC 8628 §3.5).
#[derive(Debug, PartialEq, Eq)]
pub enum Poll {
    /// The user approved; the token is stored.
    Granted(Token),
    Pending,
    SlowDown,
    Denied(ProviderError),
    Expired(ProviderError),
}

/// Asks the device authorization endpoint for a device code and user code (RFC 8628 §3.1),
/// with the scope, audience, resources and extra parameters a token request would carry.
pub fn start(config: &Config, host: &impl Host) -> Result<DeviceAuthorization, Error> {
    require_device_code(config)?;
    let url = endpoint(
        "device_authorization_url",
        config
            .device_authorization_url
            .as_deref()
            .unwrap_or_default(),
    )
    .map_err(Error::InvalidConfig)?;
    let mut form = form_urlencoded::Serializer::new(String::new());
    token_request::append_grant_params(&mut form, config);
    for (name, value) in &config.extra_params {
        form.append_pair(name, value);
    }
    let (response, redactor) = lifecycle::send_form(config, host, url.into(), form)?;
    read_start(&response, host.now(), &redactor)
        .map_err(|e| lifecycle::with_hint(config, e, Situation::DevicePoll).cleaned(&redactor))
}

/// Asks the token endpoint once whether the user approved `device_code` (RFC 8628 §3.4); the
/// token is stored under the connection's lock when they did.
pub fn poll(config: &Config, host: &impl Host, device_code: DeviceCode) -> Result<Poll, Error> {
    require_device_code(config)?;
    match lifecycle::request_token(config, host, &Step::PollDeviceCode { device_code }) {
        Ok(token) => {
            let key = token_key(config);
            let _held = lifecycle::lock(host, &key)?;
            let entry = lifecycle::read_entry(host, &key)?;
            lifecycle::store(config, host, &key, entry.as_deref(), token).map(Poll::Granted)
        }
        Err(Error::Provider(e)) => match e.code.as_str() {
            "authorization_pending" => Ok(Poll::Pending),
            "slow_down" => Ok(Poll::SlowDown),
            "access_denied" => Ok(Poll::Denied(e)),
            "expired_token" => Ok(Poll::Expired(e)),
            _ => Err(Error::Provider(e)),
        },
        Err(e) => Err(e),
    }
}

fn require_device_code(config: &Config) -> Result<(), Error> {
    config.check()?;
    if config.grant_type != GrantType::DeviceCode {
        return Err(Error::InvalidConfig(ConfigProblem {
            field: "grant_type".into(),
            message: format!(
                "is {}: the device authorization is for device_code",
                config.grant_type.as_str()
            ),
        }));
    }
    Ok(())
}

/// Reads the device authorization response (RFC 8628 §3.2). What the user is shown is the
/// provider's text: cleaned like any, and the verification URIs must be URLs a browser may
/// be sent to with a code (`https`, or `http` on a loopback host).
fn read_start(
    response: &HttpResponse,
    now: u64,
    redactor: &Redactor,
) -> Result<DeviceAuthorization, Error> {
    let fields = token_response::read_object(response)?;
    let problem = |message: String| {
        Error::MalformedResponse(ResponseProblem {
            status: response.status,
            content_type: header(&response.headers, "content-type").map(str::to_owned),
            message,
            hint: "check device_authorization_url against the provider's documentation".into(),
        })
    };
    let required = |name: &str| {
        token_response::string_field(&fields, name)
            .filter(|value| !value.trim().is_empty())
            .ok_or_else(|| problem(format!("the device authorization has no {name}")))
    };
    let device_code = required("device_code")?;
    let user_code = redactor.clean(&required("user_code")?);
    // Google names it `verification_url`, after a draft of RFC 8628.
    let verification_uri = required("verification_uri")
        .or_else(|_| required("verification_url"))
        .and_then(|uri| browsable("verification_uri", &uri, &problem))?;
    let verification_uri_complete = match required("verification_uri_complete") {
        Ok(uri) => Some(browsable("verification_uri_complete", &uri, &problem)?),
        Err(_) => None,
    };
    let expires_in = token_response::seconds_field(&fields, "expires_in")
        .ok_or_else(|| problem("the device authorization has no expires_in".into()))?;
    let interval_secs = token_response::seconds_field(&fields, "interval")
        .filter(|&secs| secs > 0)
        .map_or(DEFAULT_INTERVAL_SECS, |secs| {
            u32::try_from(secs).unwrap_or(u32::MAX)
        });
    Ok(DeviceAuthorization {
        device_code: DeviceCode::new(device_code),
        user_code,
        verification_uri: redactor.clean(&verification_uri),
        verification_uri_complete: verification_uri_complete.map(|uri| redactor.clean(&uri)),
        interval_secs,
        expires_at: now.saturating_add(expires_in),
    })
}

/// `uri` if a browser may be sent there; else the problem naming `field`.
fn browsable(field: &str, uri: &str, problem: &impl Fn(String) -> Error) -> Result<String, Error> {
    match endpoint(field, uri) {
        Ok(url) => Ok(url.into()),
        Err(p) => Err(problem(format!("its {field} {}", p.message))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn reads_the_codes_and_defaults_the_interval() {
        let started = read_start(
            &response(
                200,
                r#"{"device_code":"dc","user_code":"WDJB-MJHT","verification_uri":"https://idp.example.com/device","expires_in":"1800"}"#,
            ),
            1_000,
            &Redactor::none(),
        )
        .unwrap();
        assert_eq!(started.device_code, "dc");
        assert_eq!(started.user_code, "WDJB-MJHT");
        assert_eq!(started.verification_uri, "https://idp.example.com/device");
        assert_eq!(started.verification_uri_complete, None);
        assert_eq!(started.interval_secs, DEFAULT_INTERVAL_SECS);
        assert_eq!(started.expires_at, 2_800);
    }

    #[test]
    fn google_names_the_uri_verification_url() {
        let started = read_start(
            &response(
                200,
                r#"{"device_code":"dc","user_code":"U","verification_url":"https://www.google.com/device","expires_in":1800,"interval":8,"verification_uri_complete":"https://www.google.com/device?user_code=U"}"#,
            ),
            0,
            &Redactor::none(),
        )
        .unwrap();
        assert_eq!(started.verification_uri, "https://www.google.com/device");
        assert_eq!(
            started.verification_uri_complete.as_deref(),
            Some("https://www.google.com/device?user_code=U")
        );
        assert_eq!(started.interval_secs, 8);
    }

    #[test]
    fn what_the_user_would_be_shown_is_checked() {
        for body in [
            r#"{"device_code":"dc","user_code":"U","verification_uri":"javascript:alert(1)","expires_in":60}"#,
            r#"{"device_code":"dc","user_code":"U","verification_uri":"http://evil.example/device","expires_in":60}"#,
            r#"{"device_code":"dc","user_code":"U","verification_uri":"https://idp.example.com/d","verification_uri_complete":"data:text/html,x","expires_in":60}"#,
            r#"{"device_code":"","user_code":"U","verification_uri":"https://idp.example.com/d","expires_in":60}"#,
            r#"{"device_code":"dc","user_code":"U","verification_uri":"https://idp.example.com/d"}"#,
        ] {
            let e = read_start(&response(200, body), 0, &Redactor::none()).unwrap_err();
            assert!(matches!(e, Error::MalformedResponse(_)), "{body}: {e:?}");
        }
        let started = read_start(
            &response(
                200,
                "{\"device_code\":\"dc\",\"user_code\":\"U\\u001b[2J\",\"verification_uri\":\"https://idp.example.com/d\",\"expires_in\":60}",
            ),
            0,
            &Redactor::none(),
        )
        .unwrap();
        assert!(
            !started.user_code.contains('\u{1b}'),
            "{:?}",
            started.user_code
        );
    }

    #[test]
    fn an_oauth_error_is_the_providers() {
        let e = read_start(
            &response(
                400,
                r#"{"error":"invalid_client","error_description":"unknown"}"#,
            ),
            0,
            &Redactor::none(),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Provider(p) if p.code == "invalid_client"));
    }
}
