//! What to check for each OAuth error code: the one table every error message draws from.

/// The advice for an RFC 6749 §5.2 / §4.1.2.1 error code, or a general one for codes we do not
/// know (providers invent their own).
pub fn for_code(code: &str) -> &'static str {
    match code {
        "invalid_request" => {
            "the provider rejected the request as malformed: check the grant type, the fields that grant needs, and extra_params"
        }
        "invalid_client" => {
            "check the client ID and client secret; if both are right, the provider may expect the other client_auth (basic or request_body)"
        }
        "invalid_grant" => {
            "the provider refused the grant: an authorization code is single-use and short-lived, a refresh token may be expired or revoked (authorize again), a password grant needs the right username and password"
        }
        "unauthorized_client" => {
            "this client is not allowed to use this grant type: enable the grant for the client at the provider"
        }
        "unsupported_grant_type" => {
            "the token endpoint does not support this grant type: check grant_type and token_url"
        }
        "invalid_scope" => {
            "the scope is unknown or not allowed for this client: check scope against what the provider grants this client"
        }
        "access_denied" => {
            "the user or the provider declined the request: authorize again and allow access"
        }
        "unsupported_response_type" => {
            "the authorization endpoint does not issue codes to this client: enable the authorization code flow for it"
        }
        "invalid_redirect_uri" | "redirect_uri_mismatch" => {
            "the redirect URI must match one registered at the provider exactly: scheme, host, port, path and trailing slash"
        }
        "server_error" | "temporarily_unavailable" => "the provider had a problem: retry later",
        _ => "see the provider's description and check the connection settings",
    }
}

/// Advice for a token endpoint answer that is not OAuth at all.
pub fn for_unreadable_response(status: u16, html: bool) -> &'static str {
    if html || status == 404 || status == 405 {
        "the token URL does not look like a token endpoint: check token_url against the provider's documentation"
    } else if status >= 500 {
        "the provider had a problem: retry later"
    } else {
        "check token_url and the grant's required fields"
    }
}
