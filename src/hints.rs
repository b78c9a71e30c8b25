//! What to check for each failure a user can meet: the one table every hint comes from, and
//! docs/troubleshooting.md is generated from.

use crate::config::GrantType;

/// The failure a hint answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The provider answered one of these OAuth error codes: RFC 6749's, and the names some
    /// providers use for the same thing (GitHub, Slack).
    Code(&'static [&'static str], Situation),
    /// No connection to the token endpoint.
    Transport(TransportKind),
    /// The token endpoint answered something that is not OAuth.
    Unreadable(Unreadable),
    /// The API refused the token even after the client fetched a new one.
    ApiUnauthorized,
    /// The API's answer was larger than the host reads.
    ApiTooLarge,
}

/// When an OAuth error code came back; some codes mean different things at different steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Situation {
    /// Any step without a more specific hint.
    Any,
    /// A new token with the client credentials grant.
    ClientCredentials,
    /// A new token with the password grant.
    Password,
    /// Exchanging an authorization code.
    CodeExchange,
    /// Using a refresh token.
    Refresh,
    /// On the redirect back from the consent page.
    Consent,
    /// `client_auth: auto` tried both methods and both were refused.
    BothClientAuths,
    /// The client authenticated with a JWT (`private_key_jwt`, `client_secret_jwt`).
    ClientAssertion,
    /// A new token with the JWT bearer grant.
    JwtBearer,
    /// Polling for a device code's token, or starting the device authorization.
    DevicePoll,
    /// Revoking a token.
    Revocation,
}

impl Situation {
    /// The situation of a token request for a new token with `grant`.
    pub fn new_token(grant: GrantType) -> Situation {
        match grant {
            GrantType::ClientCredentials => Situation::ClientCredentials,
            GrantType::Password => Situation::Password,
            GrantType::AuthorizationCode => Situation::CodeExchange,
            GrantType::JwtBearer => Situation::JwtBearer,
            GrantType::DeviceCode => Situation::DevicePoll,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportKind {
    Dns,
    Connect,
    Tls,
    Timeout,
    Interrupted,
    Other,
    BodyTooLarge,
    ForbiddenDestination,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unreadable {
    /// A redirect, which a client must not follow with credentials.
    Redirect,
    /// An HTML page, 404 or 405: the URL is something else.
    NotATokenEndpoint,
    /// A 5xx or 429 without an OAuth error.
    ServerTrouble,
    /// Anything else that is not a token.
    Other,
}

/// One row of the table.
pub struct Hint {
    pub failure: Failure,
    /// What the user sees, as docs/troubleshooting.md's table says it. Only the test that
    /// generates that table reads it: the component leaves it out.
    #[cfg(test)]
    pub seen: &'static str,
    /// What to check.
    pub advice: &'static str,
}

const INVALID_CLIENT: &[&str] = &[
    "invalid_client",
    "incorrect_client_credentials",
    "invalid_client_id",
    "bad_client_secret",
];
const INVALID_GRANT: &[&str] = &[
    "invalid_grant",
    "bad_verification_code",
    "invalid_code",
    "code_already_used",
    "invalid_refresh_token",
];
const INVALID_REQUEST: &[&str] = &["invalid_request"];
const REDIRECT_URI: &[&str] = &[
    "invalid_redirect_uri",
    "redirect_uri_mismatch",
    "bad_redirect_uri",
];
const RETRY_LATER: &[&str] = &["temporarily_unavailable", "server_error"];
const SERVER_TROUBLE: &str =
    "the provider had a problem: retry later; if it persists, check the provider's status page";

/// Every hint. Lookups take the first row that matches, so a specific situation comes before
/// `Situation::Any` for the same codes.
pub const TABLE: &[Hint] = &[
    Hint {
        failure: Failure::Code(INVALID_CLIENT, Situation::BothClientAuths),
        #[cfg(test)]
        seen: "`invalid_client` with `client_auth: auto`",
        advice: "the provider refused both HTTP Basic and the request body: check the client ID and client secret",
    },
    Hint {
        failure: Failure::Code(INVALID_CLIENT, Situation::ClientAssertion),
        #[cfg(test)]
        seen: "`invalid_client` with `client_auth: private_key_jwt` or `client_secret_jwt`",
        advice: "the provider refused the client assertion: check that it holds the public key (or certificate) of private_key for this client ID, signing_alg and key_id, the client secret for client_secret_jwt, assertion_audience (the token URL unless the provider wants its issuer), and this machine's clock",
    },
    Hint {
        failure: Failure::Code(INVALID_CLIENT, Situation::CodeExchange),
        #[cfg(test)]
        seen: "`invalid_client` on the code exchange",
        advice: "check the client ID and client secret; a code is single-use, so the exchange is never retried with another client_auth: set the one the provider expects (basic, request_body or basic_unencoded) and authorize again",
    },
    Hint {
        failure: Failure::Code(INVALID_CLIENT, Situation::Any),
        #[cfg(test)]
        seen: "`invalid_client` (GitHub: `incorrect_client_credentials`; Slack: `invalid_client_id`, `bad_client_secret`)",
        advice: "check the client ID and client secret; if both are right, the provider may expect the other client_auth (basic, request_body, basic_unencoded), or set client_auth to auto",
    },
    Hint {
        failure: Failure::Code(REDIRECT_URI, Situation::Any),
        #[cfg(test)]
        seen: "`invalid_redirect_uri`, `redirect_uri_mismatch` (Slack: `bad_redirect_uri`), or the provider's error page instead of the callback",
        advice: "the redirect URI must match one registered at the provider exactly: scheme, host, port, path and trailing slash",
    },
    Hint {
        failure: Failure::Code(&["invalid_scope"], Situation::Any),
        #[cfg(test)]
        seen: "`invalid_scope`",
        advice: "the provider does not allow this scope for this client: check scope against what the provider grants the client, and its separator (scope_separator)",
    },
    Hint {
        failure: Failure::Code(INVALID_GRANT, Situation::Refresh),
        #[cfg(test)]
        seen: "`invalid_grant` on a refresh",
        advice: "the refresh token expired, was revoked, or was already used where refresh tokens rotate: authorize again",
    },
    Hint {
        failure: Failure::Code(INVALID_GRANT, Situation::CodeExchange),
        #[cfg(test)]
        seen: "`invalid_grant` on the code exchange (GitHub: `bad_verification_code`; Slack: `invalid_code`)",
        advice: "the authorization code is single-use and short-lived, and redirect_uri must be the one used in the authorization request: authorize again",
    },
    Hint {
        failure: Failure::Code(INVALID_GRANT, Situation::JwtBearer),
        #[cfg(test)]
        seen: "`invalid_grant` with the JWT bearer grant",
        advice: "the provider refused the assertion: check that private_key is the key registered for client_id (the service account), key_id, that subject may be acted for, assertion_audience (the token URL unless the provider documents another, such as https://login.salesforce.com), and this machine's clock",
    },
    Hint {
        failure: Failure::Code(&["access_denied"], Situation::DevicePoll),
        #[cfg(test)]
        seen: "`access_denied` while polling a device code",
        advice: "the user declined on the verification page: start the device authorization again and approve",
    },
    Hint {
        failure: Failure::Code(&["expired_token"], Situation::DevicePoll),
        #[cfg(test)]
        seen: "`expired_token` while polling a device code",
        advice: "the user did not approve before the device code expired: start the device authorization again",
    },
    Hint {
        failure: Failure::Code(&["unsupported_token_type"], Situation::Revocation),
        #[cfg(test)]
        seen: "`unsupported_token_type` on revocation",
        advice: "the provider does not revoke this kind of token: it stays valid until it expires; the store no longer holds it",
    },
    Hint {
        failure: Failure::Code(INVALID_GRANT, Situation::Password),
        #[cfg(test)]
        seen: "`invalid_grant` with the password grant",
        advice: "check the username and the password; the account may also need multi-factor sign-in or consent, which the password grant cannot do",
    },
    Hint {
        failure: Failure::Code(INVALID_GRANT, Situation::Any),
        #[cfg(test)]
        seen: "`invalid_grant`",
        advice: "the provider refused the grant: check that this client may use it, and the grant's fields",
    },
    Hint {
        failure: Failure::Code(INVALID_REQUEST, Situation::Password),
        #[cfg(test)]
        seen: "`invalid_request` with the password grant",
        advice: "some providers (Authlib among them) answer a wrong username or password with invalid_request: check them, then the extra_params",
    },
    Hint {
        failure: Failure::Code(INVALID_REQUEST, Situation::Any),
        #[cfg(test)]
        seen: "`invalid_request`",
        advice: "the provider rejected the request as malformed: check grant_type, the fields that grant needs, audience, resource and extra_params",
    },
    Hint {
        failure: Failure::Code(&["unauthorized_client"], Situation::Any),
        #[cfg(test)]
        seen: "`unauthorized_client`",
        advice: "this client is not allowed to use this grant type: enable the grant for the client at the provider",
    },
    Hint {
        failure: Failure::Code(&["unsupported_grant_type"], Situation::Any),
        #[cfg(test)]
        seen: "`unsupported_grant_type`",
        advice: "the token endpoint does not support this grant type: check grant_type and token_url",
    },
    Hint {
        failure: Failure::Code(&["access_denied"], Situation::Any),
        #[cfg(test)]
        seen: "`access_denied` at consent",
        advice: "the user or the provider declined the request: authorize again and allow access, or ask the provider's admin to approve the app",
    },
    Hint {
        failure: Failure::Code(&["unsupported_response_type"], Situation::Any),
        #[cfg(test)]
        seen: "`unsupported_response_type`",
        advice: "the authorization endpoint does not issue codes to this client: enable the authorization code flow for it",
    },
    Hint {
        failure: Failure::Code(RETRY_LATER, Situation::Any),
        #[cfg(test)]
        seen: "`temporarily_unavailable`, `server_error`",
        advice: SERVER_TROUBLE,
    },
    Hint {
        failure: Failure::Unreadable(Unreadable::ServerTrouble),
        #[cfg(test)]
        seen: "HTTP 5xx or 429 without an OAuth error",
        advice: SERVER_TROUBLE,
    },
    Hint {
        failure: Failure::Unreadable(Unreadable::Redirect),
        #[cfg(test)]
        seen: "a redirect (3xx) from the token URL",
        advice: "redirects are not followed, as they would carry the credentials elsewhere: if the Location is the provider's token endpoint, put it in token_url",
    },
    Hint {
        failure: Failure::Unreadable(Unreadable::NotATokenEndpoint),
        #[cfg(test)]
        seen: "an HTML page (other than a 5xx), 404 or 405 from the token URL",
        advice: "the token URL does not look like a token endpoint: check token_url against the provider's documentation",
    },
    Hint {
        failure: Failure::Unreadable(Unreadable::Other),
        #[cfg(test)]
        seen: "an answer that is neither a token nor an OAuth error",
        advice: "verify token_url, grant_type and the grant's required fields; if the provider nests the token or counts lifetimes oddly, see token_path and expires_in_unit",
    },
    Hint {
        failure: Failure::Code(&[], Situation::Any),
        #[cfg(test)]
        seen: "any other error code",
        advice: "see the provider's description and check the connection settings",
    },
    Hint {
        failure: Failure::Transport(TransportKind::Dns),
        #[cfg(test)]
        seen: "DNS lookup failed",
        advice: "check the host name in the URL, and that this machine can resolve it",
    },
    Hint {
        failure: Failure::Transport(TransportKind::Connect),
        #[cfg(test)]
        seen: "connection failed",
        advice: "check the URL's host and port, and that the server is up and reachable from this machine",
    },
    Hint {
        failure: Failure::Transport(TransportKind::Tls),
        #[cfg(test)]
        seen: "TLS failed",
        advice: "the server's certificate is not trusted or does not match the host: for a private CA pass --ca-cert, and check the URL's host name",
    },
    Hint {
        failure: Failure::Transport(TransportKind::Timeout),
        #[cfg(test)]
        seen: "timed out",
        advice: "the server did not answer in time: retry later, and check that the URL points at the provider and not at a firewall",
    },
    Hint {
        failure: Failure::Transport(TransportKind::Interrupted),
        #[cfg(test)]
        seen: "the connection broke mid-answer",
        advice: "the provider or something between (a proxy, a load balancer) closed the connection before the answer was complete: retry later; if it persists, check what sits between this machine and the provider",
    },
    Hint {
        failure: Failure::Transport(TransportKind::Other),
        #[cfg(test)]
        seen: "any other network failure",
        advice: "check the URL and that this machine can reach the provider",
    },
    Hint {
        failure: Failure::Transport(TransportKind::BodyTooLarge),
        #[cfg(test)]
        seen: "response body too large",
        advice: "a token response is small: check that the URL is the token endpoint",
    },
    Hint {
        failure: Failure::Transport(TransportKind::ForbiddenDestination),
        #[cfg(test)]
        seen: "destination refused by the host",
        advice: "the host lets the component reach only the origins of the configured token, device authorization and revocation URLs: check those URLs",
    },
    Hint {
        failure: Failure::ApiUnauthorized,
        #[cfg(test)]
        seen: "the API answers 401 after setup worked",
        advice: "the API refused a freshly fetched token: it may need a different audience, resource or scope, or a different header_prefix",
    },
    Hint {
        failure: Failure::ApiTooLarge,
        #[cfg(test)]
        seen: "the API's answer is larger than 1 MiB",
        advice: "the host reads at most 1 MiB of an answer: ask the API for less (a page, a filter)",
    },
];

fn lookup(matches: impl Fn(&Failure) -> bool) -> &'static str {
    TABLE
        .iter()
        .find(|hint| matches(&hint.failure))
        .map_or("check the connection settings", |hint| hint.advice)
}

/// The advice for an OAuth error `code` met in `situation`; providers invent codes of their own,
/// which get a general hint.
pub fn for_code(code: &str, situation: Situation) -> &'static str {
    let specific = |wanted: Situation| {
        TABLE.iter().find(|hint| {
            matches!(hint.failure, Failure::Code(codes, s) if s == wanted && codes.contains(&code))
        })
    };
    specific(situation)
        .or_else(|| specific(Situation::Any))
        .map_or_else(
            || lookup(|f| matches!(f, Failure::Code(codes, _) if codes.is_empty())),
            |hint| hint.advice,
        )
}

/// Whether `code` means the client failed to authenticate, under any provider's name for it.
pub fn is_invalid_client(code: &str) -> bool {
    INVALID_CLIENT.contains(&code)
}

/// Whether `code` is one the table names: a word of the protocol, not provider prose.
pub fn is_known_code(code: &str) -> bool {
    TABLE
        .iter()
        .any(|hint| matches!(hint.failure, Failure::Code(codes, _) if codes.contains(&code)))
}

/// Whether `code` means the grant (code, refresh token, password) was refused.
pub fn is_invalid_grant(code: &str) -> bool {
    INVALID_GRANT.contains(&code)
}

pub fn for_transport(kind: TransportKind) -> &'static str {
    lookup(|f| *f == Failure::Transport(kind))
}

/// Advice for a token endpoint answer that is not OAuth at all.
pub fn for_unreadable_response(status: u16, html: bool) -> &'static str {
    // The status decides before the body does: a 5xx's stock HTML page (Django's "Server Error
    // (500)", an nginx 502) is the provider's trouble, not a wrong URL.
    let kind = if (300..400).contains(&status) {
        Unreadable::Redirect
    } else if status >= 500 || status == 429 {
        Unreadable::ServerTrouble
    } else if html || status == 404 || status == 405 {
        Unreadable::NotATokenEndpoint
    } else {
        Unreadable::Other
    };
    lookup(|f| *f == Failure::Unreadable(kind))
}

pub fn for_api_unauthorized() -> &'static str {
    lookup(|f| *f == Failure::ApiUnauthorized)
}

pub fn for_api_too_large() -> &'static str {
    lookup(|f| *f == Failure::ApiTooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/troubleshooting.md's table, generated from [`TABLE`].
    fn troubleshooting_markdown() -> String {
        let mut out = String::from("| what you see | what to check |\n|---|---|\n");
        for hint in TABLE {
            out.push_str(&format!(
                "| {} | {} |\n",
                hint.seen,
                capitalized(hint.advice)
            ));
        }
        out
    }

    fn capitalized(text: &str) -> String {
        let mut chars = text.chars();
        chars.next().map_or_else(String::new, |first| {
            first.to_uppercase().chain(chars).collect()
        })
    }

    #[test]
    fn situation_specific_hints_come_first_and_fall_back_to_any() {
        assert!(for_code("invalid_grant", Situation::Refresh).contains("authorize again"));
        assert!(for_code("invalid_code", Situation::CodeExchange).contains("single-use"));
        assert!(for_code("invalid_grant", Situation::Password).contains("password"));
        assert!(for_code("invalid_request", Situation::Password).contains("Authlib"));
        assert_eq!(
            for_code("invalid_grant", Situation::Consent),
            for_code("invalid_grant", Situation::Any)
        );
        assert!(for_code("incorrect_client_credentials", Situation::Any).contains("client ID"));
        assert!(for_code("bad_redirect_uri", Situation::Consent).contains("exactly"));
        assert!(for_code("weird_vendor_code", Situation::Any).contains("description"));
    }

    #[test]
    fn every_row_is_reachable() {
        for hint in TABLE {
            let found = match hint.failure {
                Failure::Code(codes, situation) => match codes.first() {
                    Some(code) => for_code(code, situation),
                    None => for_code("no_such_code", situation),
                },
                Failure::Transport(kind) => for_transport(kind),
                Failure::Unreadable(kind) => lookup(|f| *f == Failure::Unreadable(kind)),
                Failure::ApiUnauthorized => for_api_unauthorized(),
                Failure::ApiTooLarge => for_api_too_large(),
            };
            assert_eq!(found, hint.advice, "{}", hint.seen);
        }
    }

    #[test]
    fn the_troubleshooting_page_is_the_table() {
        let page = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/troubleshooting.md"
        ))
        .expect("docs/troubleshooting.md");
        let start = "<!-- generated from src/hints.rs: start -->\n";
        let end = "<!-- generated from src/hints.rs: end -->";
        let section = page
            .split_once(start)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(section, _)| section)
            .expect("docs/troubleshooting.md has the generated section");
        let expected = troubleshooting_markdown();
        assert!(
            section == expected,
            "docs/troubleshooting.md's table is out of date; replace it with:\n{expected}"
        );
    }

    #[test]
    fn unreadable_answers_are_told_apart() {
        assert!(for_unreadable_response(200, true).contains("token_url"));
        assert!(for_unreadable_response(404, false).contains("token_url"));
        assert!(for_unreadable_response(503, false).contains("retry later"));
        assert!(for_unreadable_response(429, false).contains("retry later"));
        // A stock 5xx page is HTML, and still the provider's trouble.
        assert!(for_unreadable_response(500, true).contains("retry later"));
        assert!(for_unreadable_response(502, true).contains("retry later"));
        assert!(for_unreadable_response(302, true).contains("redirects are not followed"));
        assert!(for_unreadable_response(200, false).contains("token_path"));
    }
}
