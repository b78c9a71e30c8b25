//! Token endpoint requests (RFC 6749 §4.1.3, §4.3.2, §4.4.2, §6) with client authentication.

use crate::prelude::*;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::config::{ClientAuth, Config, GrantType, endpoint};
use crate::error::Error;
use crate::http::HttpRequest;
use crate::jwt::CLIENT_ASSERTION_TYPE;
use crate::secret::{
    Assertion, AuthorizationCode, ClientSecret, DeviceCode, Password, PkceVerifier, RefreshToken,
};

/// Which token request to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// A new token with the configured repeatable grant.
    NewToken,
    /// Exchange an authorization code, proving possession of the PKCE verifier.
    ExchangeCode {
        code: AuthorizationCode,
        pkce_verifier: PkceVerifier,
    },
    /// Use a refresh token.
    Refresh { refresh_token: RefreshToken },
    /// Ask whether the user approved a device code (RFC 8628 §3.4).
    PollDeviceCode { device_code: DeviceCode },
}

/// Secret values the request needs, resolved from the host's store, or signed, by the caller.
#[derive(Debug, Default)]
pub struct Credentials {
    pub client_secret: Option<ClientSecret>,
    pub password: Option<Password>,
    /// A client assertion (RFC 7523 §2.2): when present, it authenticates the client instead
    /// of the secret.
    pub client_assertion: Option<Assertion>,
    /// The JWT bearer grant's assertion (RFC 7523 §2.1).
    pub grant_assertion: Option<Assertion>,
}

/// How the client authenticates on one request: `auto` resolved to one concrete method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    BasicUnencoded,
    RequestBody,
}

impl AuthMethod {
    /// The configured method, or `fallback` when the configuration says `auto` or
    /// authenticates with a JWT, which a client assertion in the credentials stands for.
    pub fn from_config(client_auth: ClientAuth, fallback: AuthMethod) -> AuthMethod {
        match client_auth {
            ClientAuth::Auto | ClientAuth::PrivateKeyJwt | ClientAuth::ClientSecretJwt => fallback,
            ClientAuth::Basic => AuthMethod::Basic,
            ClientAuth::BasicUnencoded => AuthMethod::BasicUnencoded,
            ClientAuth::RequestBody => AuthMethod::RequestBody,
        }
    }

    /// The name used in the configuration and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Basic => ClientAuth::Basic.as_str(),
            AuthMethod::BasicUnencoded => ClientAuth::BasicUnencoded.as_str(),
            AuthMethod::RequestBody => ClientAuth::RequestBody.as_str(),
        }
    }

    pub fn parse(name: &str) -> Option<AuthMethod> {
        [
            AuthMethod::Basic,
            AuthMethod::BasicUnencoded,
            AuthMethod::RequestBody,
        ]
        .into_iter()
        .find(|m| m.as_str() == name)
    }

    /// What `auto` tries after `invalid_client` with this method.
    pub fn alternative(self) -> AuthMethod {
        match self {
            AuthMethod::RequestBody => AuthMethod::Basic,
            AuthMethod::Basic | AuthMethod::BasicUnencoded => AuthMethod::RequestBody,
        }
    }
}

/// The form-encoded POST to the token endpoint for `step`, authenticating with `auth`.
pub fn build(
    config: &Config,
    step: &Step,
    credentials: &Credentials,
    auth: AuthMethod,
) -> Result<HttpRequest, Error> {
    config.check()?;
    let mut form = form_urlencoded::Serializer::new(String::new());
    match step {
        Step::NewToken => match config.grant_type {
            GrantType::ClientCredentials => {
                form.append_pair("grant_type", "client_credentials");
            }
            GrantType::Password => {
                let password =
                    credentials
                        .password
                        .as_ref()
                        .ok_or_else(|| Error::MissingSecret {
                            field: "password".into(),
                            name: config.password_name.clone().unwrap_or_default(),
                        })?;
                form.append_pair("grant_type", "password");
                form.append_pair("username", config.username.as_deref().unwrap_or_default());
                form.append_pair("password", password.secret());
            }
            GrantType::JwtBearer => {
                let assertion = credentials.grant_assertion.as_ref().ok_or_else(|| {
                    Error::AuthorizationRequired(
                        "a JWT bearer token request needs the signed assertion".into(),
                    )
                })?;
                form.append_pair("grant_type", GrantType::JwtBearer.wire_name());
                form.append_pair("assertion", assertion.secret());
            }
            GrantType::AuthorizationCode => {
                return Err(Error::AuthorizationRequired(
                    "the authorization code grant gets its first token through the user's consent, not a token request".into(),
                ));
            }
            GrantType::DeviceCode => {
                return Err(Error::AuthorizationRequired(
                    "the device code grant gets its first token through the user's approval: start a device authorization".into(),
                ));
            }
        },
        Step::ExchangeCode {
            code,
            pkce_verifier,
        } => {
            form.append_pair("grant_type", "authorization_code");
            form.append_pair("code", code.secret());
            if let Some(redirect_uri) = &config.redirect_uri {
                form.append_pair("redirect_uri", redirect_uri);
            }
            form.append_pair("code_verifier", pkce_verifier.secret());
        }
        Step::Refresh { refresh_token } => {
            form.append_pair("grant_type", "refresh_token");
            form.append_pair("refresh_token", refresh_token.secret());
        }
        Step::PollDeviceCode { device_code } => {
            form.append_pair("grant_type", GrantType::DeviceCode.wire_name());
            form.append_pair("device_code", device_code.secret());
        }
    }
    // A refresh keeps the scope, audience and resources originally granted (RFC 6749 §6,
    // RFC 8707 §2.2); asking again can only narrow them, and some providers reject parameters
    // they did not expect there. A device code's poll carries them already (RFC 8628 §3.4).
    if matches!(step, Step::NewToken | Step::ExchangeCode { .. }) {
        append_grant_params(&mut form, config);
    }
    for (name, value) in &config.extra_params {
        form.append_pair(name, value);
    }
    // The URL as the parser reads it, not as written: a host (and any proxy) then sees the
    // host name the checks judged (`127.0.0.1`, not `0177.0.0.1` or `2130706433`).
    let url = endpoint("token_url", &config.token_url).map_err(Error::InvalidConfig)?;
    // A JWT bearer grant's assertion identifies the client (RFC 7523 §2.1): a public client
    // sends nothing more.
    let identify = config.grant_type != GrantType::JwtBearer;
    Ok(authenticated_post(
        url.into(),
        form,
        config,
        credentials,
        auth,
        identify,
    ))
}

/// The scope, audience and resource indicators a request that starts a grant carries.
pub fn append_grant_params(form: &mut form_urlencoded::Serializer<'_, String>, config: &Config) {
    if let Some(scope) = config.scope_param() {
        form.append_pair("scope", &scope);
    }
    for (name, value) in config.shared_params() {
        form.append_pair(name, value);
    }
}

/// A form POST to one of the provider's endpoints, the client authenticated the way
/// `credentials` and `auth` say: by its client assertion when it has one, else by its secret,
/// else, when `identify`, by its `client_id` alone, as a public client (RFC 6749 §3.2.1).
pub fn authenticated_post(
    url: String,
    mut form: form_urlencoded::Serializer<'_, String>,
    config: &Config,
    credentials: &Credentials,
    auth: AuthMethod,
    identify: bool,
) -> HttpRequest {
    let mut headers = vec![
        (
            "Content-Type".to_owned(),
            "application/x-www-form-urlencoded".to_owned(),
        ),
        ("Accept".to_owned(), "application/json".to_owned()),
    ];
    if let Some(assertion) = &credentials.client_assertion {
        form.append_pair("client_id", &config.client_id);
        form.append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE);
        form.append_pair("client_assertion", assertion.secret());
    } else {
        match (&credentials.client_secret, auth) {
            (Some(secret), AuthMethod::Basic) => {
                headers.push((
                    "Authorization".to_owned(),
                    basic_authorization(&config.client_id, secret.secret()),
                ));
            }
            (Some(secret), AuthMethod::BasicUnencoded) => {
                let pair = format!("{}:{}", config.client_id, secret.secret());
                headers.push((
                    "Authorization".to_owned(),
                    format!("Basic {}", STANDARD.encode(pair)),
                ));
            }
            (Some(secret), AuthMethod::RequestBody) => {
                form.append_pair("client_id", &config.client_id);
                form.append_pair("client_secret", secret.secret());
            }
            (None, _) if identify => {
                form.append_pair("client_id", &config.client_id);
            }
            (None, _) => {}
        }
    }
    HttpRequest {
        method: "POST".to_owned(),
        url,
        headers,
        body: form.finish().into_bytes(),
    }
}

/// Bytes left as they are in Basic credentials: RFC 3986's unreserved characters.
const BASIC_KEEP: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `Basic base64(encode(id) ":" encode(secret))`. RFC 6749 §2.3.1 form-urlencodes both halves,
/// so a `:` in the id cannot split them. Everything but unreserved characters is percent-encoded,
/// a space included: the form encoder's `+` for a space is read back as a space by servers that
/// form-decode (Keycloak, oidc-provider) but as a literal `+` by those that only percent-decode
/// (Authlib), while `%20` means a space to both.
pub fn basic_authorization(client_id: &str, client_secret: &str) -> String {
    let id = utf8_percent_encode(client_id, BASIC_KEEP);
    let secret = utf8_percent_encode(client_secret, BASIC_KEEP);
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;
    use crate::http::header;

    const SECRET: &str = "s3cr:t/+&%= ~";

    fn creds() -> Credentials {
        Credentials {
            client_secret: Some(ClientSecret::new(SECRET)),
            password: Some(Password::new("p@ss word&=")),
            ..Credentials::default()
        }
    }

    fn method(c: &Config) -> AuthMethod {
        AuthMethod::from_config(c.client_auth, AuthMethod::Basic)
    }

    fn form(req: &HttpRequest) -> Vec<(String, String)> {
        form_urlencoded::parse(&req.body).into_owned().collect()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn client_credentials_with_basic_auth() {
        let mut c = config(GrantType::ClientCredentials);
        c.scope = Some(" read   write ".into());
        c.audience = Some("https://api.example.com".into());
        c.resource = vec!["https://api.example.com/v1".into()];
        c.extra_params = vec![("max_age".into(), "60".into())];
        let req = build(&c, &Step::NewToken, &creds(), method(&c)).unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "https://idp.example.com/oauth/token");
        assert_eq!(header(&req.headers, "accept"), Some("application/json"));
        assert_eq!(
            header(&req.headers, "content-type"),
            Some("application/x-www-form-urlencoded")
        );
        // "client-1" : "s3cr%3At%2F%2B%26%25%3D%20~", base64-encoded.
        assert_eq!(
            header(&req.headers, "authorization"),
            Some("Basic Y2xpZW50LTE6czNjciUzQXQlMkYlMkIlMjYlMjUlM0QlMjB+")
        );
        assert_eq!(
            form(&req),
            pairs(&[
                ("grant_type", "client_credentials"),
                ("scope", "read write"),
                ("audience", "https://api.example.com"),
                ("resource", "https://api.example.com/v1"),
                ("max_age", "60"),
            ])
        );
        let body = String::from_utf8(req.body).unwrap();
        assert!(!body.contains("client_secret"), "{body}");
    }

    #[test]
    fn basic_credentials_decode_the_same_by_form_or_percent_decoding() {
        let header = basic_authorization("id:with space", SECRET);
        let decoded = STANDARD
            .decode(header.strip_prefix("Basic ").unwrap())
            .unwrap();
        let decoded = String::from_utf8(decoded).unwrap();
        assert_eq!(decoded, "id%3Awith%20space:s3cr%3At%2F%2B%26%25%3D%20~");
        let (id, secret) = decoded.split_once(':').unwrap();
        // RFC 6749 Appendix B decoding, as Keycloak and oidc-provider do it...
        let form_decode = |s: &str| -> String {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .unwrap()
                .1
                .into_owned()
        };
        assert_eq!(
            (form_decode(id), form_decode(secret)),
            ("id:with space".into(), SECRET.into())
        );
        // ...and plain percent-decoding, as Authlib does it.
        let percent_decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .unwrap()
                .into_owned()
        };
        assert_eq!(
            (percent_decode(id), percent_decode(secret)),
            ("id:with space".into(), SECRET.into())
        );
    }

    #[test]
    fn unencoded_basic_joins_id_and_secret_as_they_are() {
        let mut c = config(GrantType::ClientCredentials);
        c.client_auth = ClientAuth::BasicUnencoded;
        let req = build(&c, &Step::NewToken, &creds(), method(&c)).unwrap();
        let value = header(&req.headers, "authorization").unwrap();
        let decoded = STANDARD
            .decode(value.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(decoded, format!("client-1:{SECRET}").as_bytes());
    }

    #[test]
    fn auto_resolves_to_what_the_caller_chose_and_alternates() {
        let mut c = config(GrantType::ClientCredentials);
        c.client_auth = ClientAuth::Auto;
        let req = build(&c, &Step::NewToken, &creds(), AuthMethod::RequestBody).unwrap();
        assert_eq!(header(&req.headers, "authorization"), None);
        assert!(form(&req).contains(&("client_secret".into(), SECRET.into())));
        assert_eq!(AuthMethod::Basic.alternative(), AuthMethod::RequestBody);
        assert_eq!(AuthMethod::RequestBody.alternative(), AuthMethod::Basic);
        for m in [
            AuthMethod::Basic,
            AuthMethod::BasicUnencoded,
            AuthMethod::RequestBody,
        ] {
            assert_eq!(AuthMethod::parse(m.as_str()), Some(m));
        }
    }

    #[test]
    fn request_body_auth_round_trips_special_characters() {
        let mut c = config(GrantType::Password);
        c.client_auth = ClientAuth::RequestBody;
        let req = build(&c, &Step::NewToken, &creds(), method(&c)).unwrap();
        assert_eq!(header(&req.headers, "authorization"), None);
        assert_eq!(
            form(&req),
            pairs(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "p@ss word&="),
                ("client_id", "client-1"),
                ("client_secret", SECRET),
            ])
        );
        // The raw body escapes every reserved character of the secret.
        let body = String::from_utf8(req.body).unwrap();
        assert!(
            body.contains("client_secret=s3cr%3At%2F%2B%26%25%3D+%7E"),
            "{body}"
        );
    }

    #[test]
    fn code_exchange_sends_redirect_uri_and_verifier() {
        let c = config(GrantType::AuthorizationCode);
        let step = Step::ExchangeCode {
            code: "the-code".into(),
            pkce_verifier: "v".repeat(43).into(),
        };
        let req = build(&c, &step, &creds(), method(&c)).unwrap();
        assert_eq!(
            form(&req),
            pairs(&[
                ("grant_type", "authorization_code"),
                ("code", "the-code"),
                ("redirect_uri", "http://127.0.0.1:8765/callback"),
                ("code_verifier", &"v".repeat(43)),
            ])
        );
    }

    #[test]
    fn public_client_identifies_itself_in_the_body() {
        let mut c = config(GrantType::AuthorizationCode);
        c.client_secret_name = None;
        let step = Step::Refresh {
            refresh_token: "rt".into(),
        };
        let req = build(&c, &step, &Credentials::default(), method(&c)).unwrap();
        assert_eq!(header(&req.headers, "authorization"), None);
        assert_eq!(
            form(&req),
            pairs(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "rt"),
                ("client_id", "client-1")
            ])
        );
    }

    #[test]
    fn refresh_omits_scope_and_audience_but_keeps_extra_params() {
        let mut c = config(GrantType::Password);
        c.scope = Some("read".into());
        c.audience = Some("aud".into());
        c.resource = vec!["https://api.example.com/".into()];
        c.extra_params = vec![("max_age".into(), "60".into())];
        let step = Step::Refresh {
            refresh_token: "rt+/=".into(),
        };
        let req = build(&c, &step, &creds(), method(&c)).unwrap();
        assert_eq!(
            form(&req),
            pairs(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", "rt+/="),
                ("max_age", "60")
            ])
        );
    }

    #[test]
    fn refusals_are_typed() {
        let c = config(GrantType::AuthorizationCode);
        assert!(matches!(
            build(&c, &Step::NewToken, &creds(), method(&c)),
            Err(Error::AuthorizationRequired(_))
        ));
        let c = config(GrantType::Password);
        let no_password = Credentials {
            client_secret: Some("s".into()),
            ..Credentials::default()
        };
        assert!(matches!(
            build(&c, &Step::NewToken, &no_password, method(&c)),
            Err(Error::MissingSecret { field, .. }) if field == "password"
        ));
        let mut c = config(GrantType::ClientCredentials);
        c.token_url = "http://idp.example.com/token".into();
        assert!(matches!(
            build(&c, &Step::NewToken, &creds(), method(&c)),
            Err(Error::InvalidConfig(p)) if p.field == "token_url"
        ));
    }
}
