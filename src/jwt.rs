//! The JWTs the client signs (RFC 7519): client assertions (RFC 7523 §2.2) and JWT bearer
//! grants (RFC 7523 §2.1), built here and signed by the host or, for HS256, with the client
//! secret.

use crate::prelude::*;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long an assertion stays valid. Short, as RFC 7523 §3 asks, with room for a slow token
/// request and a provider's clock a little behind.
pub const LIFETIME_SECS: u64 = 300;

/// The `client_assertion_type` of RFC 7523 §2.2.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// What a JWT header may say about the host's key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyDescription {
    pub key_id: Option<String>,
    /// The base64url SHA-256 thumbprint of the key's certificate, for `x5t#S256`.
    pub certificate_sha256: Option<String>,
}

/// The JOSE header (RFC 7515 §4.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// `alg`: `RS256`, `PS256`, `ES256` or `HS256`.
    pub alg: &'a str,
    /// `kid`, when the key has an identifier.
    pub kid: Option<&'a str>,
    /// `x5t#S256`, the key's certificate's SHA-256 thumbprint, base64url.
    pub x5t_s256: Option<&'a str>,
}

/// The claims (RFC 7523 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims<'a> {
    pub iss: &'a str,
    /// Absent only for a JWT bearer grant the client makes for itself.
    pub sub: Option<&'a str>,
    pub aud: &'a str,
    /// Unique per JWT, so a server can refuse a replay.
    pub jti: &'a str,
    pub iat: u64,
    pub exp: u64,
    /// Space-separated scopes, in a JWT bearer grant (Google reads them here).
    pub scope: Option<&'a str>,
}

/// `BASE64URL(header) "." BASE64URL(claims)`: the bytes a signature covers (RFC 7515 §5.1).
/// Members in a fixed order, strings escaped by the JSON serializer, no padding.
pub fn signing_input(header: &Header<'_>, claims: &Claims<'_>) -> String {
    let mut json = String::from("{");
    member(&mut json, "alg", header.alg);
    member(&mut json, "typ", "JWT");
    if let Some(kid) = header.kid {
        member(&mut json, "kid", kid);
    }
    if let Some(x5t) = header.x5t_s256 {
        member(&mut json, "x5t#S256", x5t);
    }
    json.push('}');
    let mut input = URL_SAFE_NO_PAD.encode(&json);

    json.clear();
    json.push('{');
    member(&mut json, "iss", claims.iss);
    if let Some(sub) = claims.sub {
        member(&mut json, "sub", sub);
    }
    member(&mut json, "aud", claims.aud);
    member(&mut json, "jti", claims.jti);
    number(&mut json, "iat", claims.iat);
    number(&mut json, "exp", claims.exp);
    if let Some(scope) = claims.scope {
        member(&mut json, "scope", scope);
    }
    json.push('}');
    input.push('.');
    URL_SAFE_NO_PAD.encode_string(&json, &mut input);
    input
}

/// The compact serialization: the signing input, a dot, the signature (RFC 7515 §7.1).
pub fn finish(mut signing_input: String, signature: &[u8]) -> String {
    signing_input.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut signing_input);
    signing_input
}

/// The HS256 signature (RFC 7518 §3.2) of `input` under `key`.
pub fn hs256(key: &[u8], input: &[u8]) -> [u8; 32] {
    // HMAC takes a key of any length (RFC 2104 §3): this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(input);
    mac.finalize().into_bytes().into()
}

fn member(json: &mut String, name: &str, value: &str) {
    separate(json);
    quoted(json, name);
    json.push(':');
    quoted(json, value);
}

fn number(json: &mut String, name: &str, value: u64) {
    separate(json);
    quoted(json, name);
    json.push(':');
    json.push_str(&value.to_string());
}

fn separate(json: &mut String) {
    if !json.ends_with('{') {
        json.push(',');
    }
}

fn quoted(json: &mut String, text: &str) {
    // Serializing a string cannot fail; an empty string would only mean a malformed JWT.
    json.push_str(&serde_json::to_string(text).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(part: &str) -> String {
        String::from_utf8(URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    fn claims() -> Claims<'static> {
        Claims {
            iss: "client-1",
            sub: Some("client-1"),
            aud: "https://idp.example.com/token",
            jti: "j-1",
            iat: 1_700_000_000,
            exp: 1_700_000_300,
            scope: None,
        }
    }

    #[test]
    fn header_and_claims_are_pinned_byte_for_byte() {
        let header = Header {
            alg: "RS256",
            kid: Some("key-1"),
            x5t_s256: Some("abc-_"),
        };
        let input = signing_input(&header, &claims());
        let (h, c) = input.split_once('.').unwrap();
        assert_eq!(
            decode(h),
            r##"{"alg":"RS256","typ":"JWT","kid":"key-1","x5t#S256":"abc-_"}"##
        );
        assert_eq!(
            decode(c),
            r#"{"iss":"client-1","sub":"client-1","aud":"https://idp.example.com/token","jti":"j-1","iat":1700000000,"exp":1700000300}"#
        );
        // Base64url without padding (RFC 7515 §2): no '=', '+' or '/'.
        assert!(!input.contains(['=', '+', '/']), "{input}");
        assert_eq!(
            h,
            "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImtleS0xIiwieDV0I1MyNTYiOiJhYmMtXyJ9"
        );
    }

    #[test]
    fn optional_members_are_left_out_and_text_is_escaped() {
        let header = Header {
            alg: "ES256",
            kid: None,
            x5t_s256: None,
        };
        let claims = Claims {
            iss: "a\"b\\c\u{1}",
            sub: None,
            scope: Some("read write"),
            ..claims()
        };
        let input = signing_input(&header, &claims);
        let (h, c) = input.split_once('.').unwrap();
        assert_eq!(decode(h), r#"{"alg":"ES256","typ":"JWT"}"#);
        assert_eq!(
            decode(c),
            r#"{"iss":"a\"b\\c\u0001","aud":"https://idp.example.com/token","jti":"j-1","iat":1700000000,"exp":1700000300,"scope":"read write"}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&decode(c)).unwrap();
        assert_eq!(parsed["iss"], "a\"b\\c\u{1}");
    }

    #[test]
    fn the_signature_is_appended_base64url_without_padding() {
        assert_eq!(finish("a.b".into(), &[0xfb, 0xff]), "a.b.-_8");
    }

    #[test]
    fn hs256_matches_rfc_4231_test_case_2() {
        let mac = hs256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn rfc_7515_appendix_a1_hs256_signature() {
        // RFC 7515 A.1: the key and signing input are the RFC's, and so is the signature.
        let key = URL_SAFE_NO_PAD
            .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
            .unwrap();
        let input = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        assert_eq!(
            finish(input.into(), &hs256(&key, input.as_bytes())),
            format!("{input}.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
        );
    }
}
