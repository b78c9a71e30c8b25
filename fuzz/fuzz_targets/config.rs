//! Arbitrary connection configurations: `problems()` and `connection_key()` never panic, and a
//! configuration with no problems builds every token request and (for the authorization code
//! grant) its authorization URL without an `InvalidConfig` error.

#![no_main]

#[path = "../common/known_findings.rs"]
mod known_findings;

use arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use oauth2_plugin::authorization_url;
use oauth2_plugin::config::{
    ClientAuth, Config, GrantType, ResponseFormat, ScopeSeparator, SigningAlgorithm, SigningKey,
    TimeUnit,
};
use oauth2_plugin::error::Error;
use oauth2_plugin::token_request::{self, AuthMethod, Credentials, Step};

const URLS: &[&str] = &[
    "https://idp.example.com/oauth/token",
    "https://idp.example.com/authorize?tenant=acme",
    "http://127.0.0.1:8765/callback",
    "http://[::1]:9000/t",
    "http://localhost/x",
    "http://LOCALHOST./x",
    "http://127.1/x",
    "http://0x7f000001/x",
    "http://[::ffff:127.0.0.1]/x",
    "https://xn--nxasmq6b.example/",
    "https://münchen.example/",
    " https://idp.example.com/token ",
    "https://idp.example.com/token#frag",
    "https://id:secret@idp.example.com/token",
    "https://@idp.example.com/",
    "http://idp.example.com/token",
    "file:///etc/passwd",
    "data:text/plain,hi",
    "https:idp.example.com",
    "https://",
    "com.example.app:/cb",
    "",
];

const WORDS: &[&str] = &[
    "",
    " ",
    "client-1",
    "read write",
    " openid  offline_access ",
    "a\"b",
    "a\\b",
    "é",
    "Bearer",
    "Bearer x",
    "\r\n",
    "grant_type",
    "state",
    "prompt",
    "https://api.example.com/",
    "https://a/#f",
    "api",
    "authed_user",
    "a..b",
    ".a",
];

fn from(u: &mut Unstructured<'_>, pool: &[&str]) -> Result<String> {
    if u.ratio(3, 4)? {
        Ok((*u.choose(pool)?).to_owned())
    } else {
        String::arbitrary(u)
    }
}

fn maybe(u: &mut Unstructured<'_>, pool: &[&str]) -> Result<Option<String>> {
    Ok(if u.ratio(1, 4)? {
        None
    } else {
        Some(from(u, pool)?)
    })
}

fn params(u: &mut Unstructured<'_>) -> Result<Vec<(String, String)>> {
    (0..u.int_in_range(0..=3)?)
        .map(|_| Ok((from(u, WORDS)?, from(u, WORDS)?)))
        .collect()
}

#[derive(Debug)]
struct Input {
    config: Config,
    credentials: (Option<String>, Option<String>),
    code: String,
    verifier: String,
    refresh_token: String,
    state: String,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let config = Config {
            grant_type: *u.choose(&[
                GrantType::ClientCredentials,
                GrantType::Password,
                GrantType::AuthorizationCode,
                GrantType::JwtBearer,
                GrantType::DeviceCode,
            ])?,
            token_url: from(u, URLS)?,
            authorization_url: maybe(u, URLS)?,
            redirect_uri: maybe(u, URLS)?,
            client_id: from(u, WORDS)?,
            client_secret_name: maybe(u, WORDS)?,
            username: maybe(u, WORDS)?,
            password_name: maybe(u, WORDS)?,
            header_prefix: maybe(u, WORDS)?,
            audience: maybe(u, WORDS)?,
            resource: (0..u.int_in_range(0..=2)?)
                .map(|_| from(u, URLS))
                .collect::<Result<_>>()?,
            scope: maybe(u, WORDS)?,
            client_auth: *u.choose(&[
                ClientAuth::Auto,
                ClientAuth::Basic,
                ClientAuth::BasicUnencoded,
                ClientAuth::RequestBody,
                ClientAuth::PrivateKeyJwt,
                ClientAuth::ClientSecretJwt,
            ])?,
            extra_params: params(u)?,
            authorization_params: params(u)?,
            response_format: ResponseFormat {
                token_path: from(u, WORDS)?,
                expires_in_unit: *u.choose(&[TimeUnit::Seconds, TimeUnit::Milliseconds])?,
                scope_separator: *u.choose(&[ScopeSeparator::Space, ScopeSeparator::Comma])?,
            },
            api_origins: (0..u.int_in_range(0..=2)?)
                .map(|_| from(u, URLS))
                .collect::<Result<_>>()?,
            signing_key: match maybe(u, WORDS)? {
                Some(name) => Some(SigningKey {
                    name,
                    algorithm: *u.choose(&[
                        SigningAlgorithm::Rs256,
                        SigningAlgorithm::Ps256,
                        SigningAlgorithm::Es256,
                    ])?,
                    key_id: maybe(u, WORDS)?,
                }),
                None => None,
            },
            assertion_audience: maybe(u, URLS)?,
            subject: maybe(u, WORDS)?,
            device_authorization_url: maybe(u, URLS)?,
            revocation_url: maybe(u, URLS)?,
            issuer: maybe(u, URLS)?,
        };
        Ok(Input {
            config,
            credentials: (Option::arbitrary(u)?, Option::arbitrary(u)?),
            code: String::arbitrary(u)?,
            verifier: String::arbitrary(u)?,
            refresh_token: String::arbitrary(u)?,
            state: String::arbitrary(u)?,
        })
    }
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fuzz_target!(|input: Input| {
    let Input {
        config,
        credentials: (client_secret, password),
        code,
        verifier,
        refresh_token,
        state,
    } = input;

    let urls = [&config.token_url]
        .into_iter()
        .chain(&config.authorization_url)
        .chain(&config.redirect_uri)
        .chain(&config.resource)
        .chain(&config.api_origins);
    if urls
        .into_iter()
        .any(|u| known_findings::may_hit_known_idna_panic(u))
    {
        return;
    }

    let problems = config.problems();
    assert_eq!(problems, config.problems());
    assert!(
        problems
            .iter()
            .all(|p| !p.field.is_empty() && !p.message.is_empty())
    );
    assert_eq!(config.check().is_ok(), problems.is_empty());
    let key = config.connection_key();
    assert_eq!(key.len(), 32);
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(key, config.connection_key());

    // The token goes to a URL only over https (or http to loopback), and only to a configured
    // origin when there are some.
    for api_url in URLS {
        if known_findings::may_hit_known_idna_panic(api_url) {
            continue;
        }
        if config.check_api_url(api_url).is_ok() {
            // Without api_origins, an `https://` URL passes on its scheme alone, unparsed (a
            // step's fast path): whatever follows, the token can go only over https.
            let Ok(url) = url::Url::parse(api_url.trim()) else {
                assert!(config.api_origins.is_empty(), "{api_url}");
                assert!(
                    api_url
                        .trim()
                        .get(..8)
                        .is_some_and(|s| s.eq_ignore_ascii_case("https://")),
                    "{api_url}"
                );
                continue;
            };
            assert!(
                url.scheme() == "https"
                    || (url.scheme() == "http" && oauth2_plugin::config::is_loopback(&url)),
                "{api_url}"
            );
            assert!(
                config.api_origins.is_empty()
                    || config.api_origins.iter().any(|origin| {
                        url::Url::parse(origin.trim()).is_ok_and(|o| o.origin() == url.origin())
                    }),
                "{api_url} is not among {:?}",
                config.api_origins
            );
        }
    }

    if !problems.is_empty() {
        return;
    }

    let credentials = Credentials {
        client_secret: client_secret.map(Into::into),
        password: password.map(Into::into),
        ..Credentials::default()
    };
    let steps = [
        Step::NewToken,
        Step::ExchangeCode {
            code: code.clone().into(),
            pkce_verifier: verifier.clone().into(),
        },
        Step::Refresh {
            refresh_token: refresh_token.clone().into(),
        },
    ];
    for step in &steps {
        for auth in [
            AuthMethod::Basic,
            AuthMethod::BasicUnencoded,
            AuthMethod::RequestBody,
        ] {
            match token_request::build(&config, step, &credentials, auth) {
                Ok(request) => {
                    assert_eq!(request.method, "POST");
                    // The URL as the parser reads it, which the checks judged.
                    let parsed = url::Url::parse(config.token_url.trim()).expect("a usable URL");
                    assert_eq!(request.url, parsed.as_str());
                    let pairs = form(&request.body);
                    let grant_types: Vec<&str> = pairs
                        .iter()
                        .filter(|(n, _)| n == "grant_type")
                        .map(|(_, v)| v.as_str())
                        .collect();
                    let expected = match step {
                        Step::NewToken => config.grant_type.wire_name(),
                        Step::ExchangeCode { .. } => "authorization_code",
                        Step::Refresh { .. } => "refresh_token",
                        Step::PollDeviceCode { .. } => GrantType::DeviceCode.wire_name(),
                    };
                    assert_eq!(grant_types, [expected]);
                    let secret_in_body = pairs.iter().any(|(n, _)| n == "client_secret");
                    assert_eq!(
                        secret_in_body,
                        credentials.client_secret.is_some() && auth == AuthMethod::RequestBody
                    );
                    for (_, value) in &request.headers {
                        assert!(!value.contains(['\r', '\n']), "a header value splits");
                    }
                }
                Err(Error::InvalidConfig(p)) => {
                    panic!("build refused a configuration with no problems: {p:?}")
                }
                Err(Error::MissingSecret { field, .. }) => {
                    assert!(matches!(step, Step::NewToken));
                    assert_eq!(config.grant_type, GrantType::Password);
                    assert_eq!(field, "password");
                    assert!(credentials.password.is_none());
                }
                Err(Error::AuthorizationRequired(_)) => {
                    // The grants that need the user, and the JWT bearer grant without the
                    // assertion the lifecycle signs.
                    assert!(matches!(step, Step::NewToken));
                    assert!(matches!(
                        config.grant_type,
                        GrantType::AuthorizationCode | GrantType::DeviceCode | GrantType::JwtBearer
                    ));
                }
                Err(other) => panic!("unexpected error from build: {other:?}"),
            }
        }
    }

    if config.grant_type == GrantType::AuthorizationCode {
        let built = match authorization_url::build(&config, &state, &verifier) {
            Ok(url) => url,
            Err(e) => {
                panic!("authorization_url::build refused a configuration with no problems: {e:?}")
            }
        };
        let url = url::Url::parse(&built).expect("the authorization URL parses");
        let base = url::Url::parse(config.authorization_url.as_deref().unwrap().trim()).unwrap();
        let states: Vec<String> = url
            .query_pairs()
            .filter(|(n, _)| n == "state")
            .map(|(_, v)| v.into_owned())
            .collect();
        // The provider's own URL may carry a `state` already (kept as it is); ours is the last.
        assert_eq!(states.last(), Some(&state));
        if !base.query_pairs().any(|(n, _)| n == "state") {
            assert_eq!(states.len(), 1);
        }
        assert_eq!(
            (url.scheme(), url.host_str(), url.port(), url.path()),
            (base.scheme(), base.host_str(), base.port(), base.path())
        );
    }
});
