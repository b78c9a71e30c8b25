//! `callback::parse` on arbitrary redirect URLs and configured redirect URIs. It must never
//! panic; it fails only with `InvalidRedirect`; and for redirects built from the configured URI
//! plus query parameters, its answer must match those parameters.

#![no_main]

#[path = "../common/known_findings.rs"]
mod known_findings;

use arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use oauth2_plugin::callback::{Outcome, parse};
use oauth2_plugin::error::Error;

const REDIRECT_URIS: &[&str] = &[
    "http://127.0.0.1:8765/callback",
    "http://localhost/cb",
    "http://[::1]:9/",
    "https://app.example.com/oauth/callback?tenant=a",
    "https://app.example.com:443/cb",
    "com.example.app:/oauth2redirect",
    "urn:ietf:wg:oauth:2.0:oob",
    "  http://127.0.0.1:8765/callback  ",
    "",
];

const NAMES: &[&str] = &[
    "state",
    "code",
    "error",
    "error_description",
    "error_uri",
    "iss",
    "session_state",
    "",
];

const VALUES: &[&str] = &[
    "", "abc", "a b", "a+b", "%", "%zz", "#", "&", "=", "\u{0}", "é",
];

#[derive(Debug)]
enum Input {
    /// Both strings as the fuzzer made them.
    Raw {
        redirect_url: String,
        redirect_uri: String,
    },
    /// The configured URI with a query of known parameter names, as a provider would redirect.
    Built {
        redirect_uri: String,
        pairs: Vec<(String, String)>,
        fragment: Option<String>,
    },
}

fn one(u: &mut Unstructured<'_>, pool: &[&str]) -> Result<String> {
    if u.ratio(3, 4)? {
        Ok((*u.choose(pool)?).to_owned())
    } else {
        String::arbitrary(u)
    }
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        if u.ratio(1, 3)? {
            return Ok(Input::Raw {
                redirect_uri: one(u, REDIRECT_URIS)?,
                redirect_url: String::arbitrary(u)?,
            });
        }
        let redirect_uri = (*u.choose(&REDIRECT_URIS[..5])?).to_owned();
        let mut pairs = Vec::new();
        for _ in 0..u.int_in_range(0..=6)? {
            pairs.push((one(u, NAMES)?, one(u, VALUES)?));
        }
        let fragment = Option::<String>::arbitrary(u)?;
        Ok(Input::Built {
            redirect_uri,
            pairs,
            fragment,
        })
    }
}

/// The only value of `name` among `pairs`, `None` when absent; `Err` when repeated.
fn single(pairs: &[(String, String)], name: &str) -> std::result::Result<Option<String>, ()> {
    let mut found = pairs
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.clone());
    match (found.next(), found.next()) {
        (first, None) => Ok(first),
        _ => Err(()),
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw {
            redirect_url,
            redirect_uri,
        } => {
            if known_findings::may_hit_known_idna_panic(&redirect_url)
                || known_findings::may_hit_known_idna_panic(&redirect_uri)
            {
                return;
            }
            let result = parse(&redirect_url, &redirect_uri);
            assert_eq!(result, parse(&redirect_url, &redirect_uri));
            match result {
                Ok(redirect) => {
                    assert!(url::Url::parse(redirect_url.trim()).is_ok());
                    if let Outcome::Code(code) = &redirect.outcome {
                        assert!(!code.secret().is_empty());
                    }
                }
                Err(Error::InvalidRedirect(message)) => assert!(!message.is_empty()),
                Err(other) => panic!("not an InvalidRedirect: {other:?}"),
            }
        }
        Input::Built {
            redirect_uri,
            pairs,
            fragment,
        } => {
            let mut url = url::Url::parse(&redirect_uri).expect("the pool's URIs parse");
            url.query_pairs_mut()
                .clear()
                .extend_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));
            url.set_fragment(fragment.as_deref());
            let result = parse(url.as_str(), &redirect_uri);
            let names = [
                "state",
                "code",
                "error",
                "error_description",
                "error_uri",
                "iss",
            ];
            let singles: std::result::Result<Vec<Option<String>>, ()> =
                names.iter().map(|n| single(&pairs, n)).collect();
            match (singles, result) {
                (Err(()), Err(Error::InvalidRedirect(_))) => {}
                (Err(()), other) => panic!("a repeated parameter accepted: {other:?}"),
                (Ok(values), result) => {
                    let [state, code, error, description, uri, iss] =
                        <[Option<String>; 6]>::try_from(values).unwrap();
                    let expected = match (error, code) {
                        (Some(code), _) => Some(Outcome::Error {
                            code,
                            description,
                            uri,
                        }),
                        (None, Some(code)) if !code.is_empty() => Some(Outcome::Code(code.into())),
                        _ => None,
                    };
                    match (expected, result) {
                        (Some(outcome), Ok(redirect)) => {
                            assert_eq!(redirect.outcome, outcome);
                            assert_eq!(redirect.state, state.map(Into::into));
                            assert_eq!(redirect.iss, iss);
                        }
                        (None, Err(Error::InvalidRedirect(_))) => {}
                        (expected, got) => panic!("expected {expected:?}, got {got:?}"),
                    }
                }
            }
        }
    }
});
