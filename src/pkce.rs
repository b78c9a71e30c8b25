//! PKCE (RFC 7636) verifiers and S256 challenges, and the random state that travels with them.

use crate::prelude::*;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// 32 random bytes: 256 bits of entropy, the amount RFC 7636 §7.1 recommends, encoded as the
/// 43-character minimum verifier.
pub const RANDOM_BYTES: usize = 32;

/// A verifier or state from `random`, bytes of a CSPRNG (the host's WASI random in the
/// component): 43 characters from `[A-Za-z0-9-_]`, a subset of the verifier alphabet (RFC 7636
/// §4.1).
pub fn token_from(random: &[u8; RANDOM_BYTES]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

/// The S256 challenge: BASE64URL-NOPAD(SHA256(ASCII(verifier))) (RFC 7636 §4.2).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn verifiers_are_43_chars_of_the_allowed_alphabet_and_differ() {
        let a = token_from(&[0; RANDOM_BYTES]);
        let b = token_from(&[0xff; RANDOM_BYTES]);
        assert_ne!(a, b);
        for v in [&a, &b] {
            assert_eq!(v.len(), 43);
            assert!(
                v.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c)),
                "{v}"
            );
        }
    }
}
