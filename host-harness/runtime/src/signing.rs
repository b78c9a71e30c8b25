//! Signatures for the component's JWTs with PEM private keys, on ring (the crypto rustls
//! already uses): the key is read and used here, in the host, and never enters the sandbox.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding,
    RsaKeyPair,
};
use rustls_pki_types::pem::{PemObject, SectionKind};
use sha2::{Digest, Sha256};

use crate::bindings::integration::oauth2::signing::KeyDescription;
use crate::bindings::{SigningAlgorithm, SigningError};

/// What the JWT header may say about the key in `pem`: the SHA-256 thumbprint of the first
/// certificate that follows it, when one does (`x5t#S256`, which Microsoft Entra matches
/// certificate credentials by). Checks that the key can sign with `algorithm`.
pub fn describe(pem: &str, algorithm: SigningAlgorithm) -> Result<KeyDescription, SigningError> {
    Key::parse(pem)?.fit(algorithm)?;
    let certificate = sections(pem)
        .into_iter()
        .find(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| URL_SAFE_NO_PAD.encode(Sha256::digest(der)));
    Ok(KeyDescription {
        key_id: None,
        certificate_sha256: certificate,
    })
}

/// The JWS signature (RFC 7518 §3) of `data` by the key in `pem`.
pub fn sign(pem: &str, algorithm: SigningAlgorithm, data: &[u8]) -> Result<Vec<u8>, SigningError> {
    let rng = SystemRandom::new();
    let failed = |_| SigningError::UnusableKey("the signature could not be made".into());
    match Key::parse(pem)?.fit(algorithm)? {
        Key::Rsa(key) => {
            let padding: &dyn RsaEncoding = match algorithm {
                SigningAlgorithm::Ps256 => &RSA_PSS_SHA256,
                _ => &RSA_PKCS1_SHA256,
            };
            let mut signature = vec![0; key.public().modulus_len()];
            key.sign(padding, &rng, data, &mut signature)
                .map_err(failed)?;
            Ok(signature)
        }
        Key::P256(key) => Ok(key.sign(&rng, data).map_err(failed)?.as_ref().to_vec()),
    }
}

/// Whether `value` holds a PEM private key: the host keeps such secrets from the component.
pub fn holds_private_key(value: &str) -> bool {
    value.contains("-----BEGIN") && value.contains("PRIVATE KEY-----")
}

/// A private key ring can sign with.
enum Key {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
}

impl Key {
    /// The first private key in `pem`: PKCS#8 (`BEGIN PRIVATE KEY`), RSA or P-256, or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`). Messages never quote the key.
    fn parse(pem: &str) -> Result<Key, SigningError> {
        let unusable = |what: &str| SigningError::UnusableKey(what.to_owned());
        let Some((kind, der)) = sections(pem).into_iter().find(|(kind, _)| {
            matches!(
                kind,
                SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
            )
        }) else {
            return Err(unusable(
                "it holds no PEM private key: store the key as PKCS#8 (-----BEGIN PRIVATE KEY-----)",
            ));
        };
        match kind {
            SectionKind::RsaPrivateKey => RsaKeyPair::from_der(&der)
                .map(Key::Rsa)
                .map_err(|e| unusable(&format!("the RSA private key is refused ({e})"))),
            SectionKind::EcPrivateKey => Err(unusable(
                "it is a SEC1 EC key (BEGIN EC PRIVATE KEY): convert it to PKCS#8 with \
                 `openssl pkcs8 -topk8 -nocrypt`",
            )),
            _ => RsaKeyPair::from_pkcs8(&der).map(Key::Rsa).or_else(|rsa| {
                EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &der,
                    &SystemRandom::new(),
                )
                .map(Key::P256)
                .map_err(|ec| {
                    unusable(&format!(
                        "the PKCS#8 key is neither an RSA key ({rsa}) nor a P-256 key ({ec})"
                    ))
                })
            }),
        }
    }

    /// The key, if it signs with `algorithm`.
    fn fit(self, algorithm: SigningAlgorithm) -> Result<Key, SigningError> {
        match (&self, algorithm) {
            (Key::Rsa(_), SigningAlgorithm::Rs256 | SigningAlgorithm::Ps256)
            | (Key::P256(_), SigningAlgorithm::Es256) => Ok(self),
            (Key::Rsa(_), SigningAlgorithm::Es256) => Err(SigningError::WrongAlgorithm(
                "the key is an RSA key: set signing_alg to RS256 or PS256".into(),
            )),
            (Key::P256(_), _) => Err(SigningError::WrongAlgorithm(
                "the key is a P-256 EC key: set signing_alg to ES256".into(),
            )),
        }
    }
}

/// Every PEM section of `pem` with its DER bytes; unreadable sections are left out.
fn sections(pem: &str) -> Vec<(SectionKind, Vec<u8>)> {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .collect()
}

#[cfg(test)]
mod tests {
    use ring::signature::{ECDSA_P256_SHA256_FIXED, KeyPair, UnparsedPublicKey};

    use super::*;

    fn pem(label: &str, der: &[u8]) -> String {
        use base64::engine::general_purpose::STANDARD;
        let body = STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    }

    fn p256() -> (String, Vec<u8>) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        (
            pem("PRIVATE KEY", pkcs8.as_ref()),
            pair.public_key().as_ref().to_vec(),
        )
    }

    #[test]
    fn es256_signatures_are_64_bytes_of_r_and_s_and_verify() {
        let (pem, public) = p256();
        // Text around the PEM block is allowed (RFC 7468 §5.2).
        let pem = format!("my key\n{pem}");
        let signature = sign(&pem, SigningAlgorithm::Es256, b"header.claims").unwrap();
        assert_eq!(signature.len(), 64);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public)
            .verify(b"header.claims", &signature)
            .expect("the signature verifies");
        assert!(
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public)
                .verify(b"header.claimz", &signature)
                .is_err()
        );
        let described = describe(&pem, SigningAlgorithm::Es256).unwrap();
        assert_eq!(described.key_id, None);
        assert_eq!(described.certificate_sha256, None);
    }

    #[test]
    fn a_key_that_does_not_fit_the_algorithm_says_what_it_is() {
        let (pem, _) = p256();
        for alg in [SigningAlgorithm::Rs256, SigningAlgorithm::Ps256] {
            match sign(&pem, alg, b"x") {
                Err(SigningError::WrongAlgorithm(m)) => assert!(m.contains("ES256"), "{m}"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn unusable_secrets_are_refused_without_quoting_them() {
        let cases = [
            "SENTINEL not a pem at all".to_owned(),
            pem("CERTIFICATE", b"SENTINEL"),
            pem("PRIVATE KEY", b"SENTINEL garbage"),
            pem("RSA PRIVATE KEY", b"SENTINEL garbage"),
            pem("EC PRIVATE KEY", b"SENTINEL garbage"),
        ];
        for case in cases {
            match describe(&case, SigningAlgorithm::Es256) {
                Err(SigningError::UnusableKey(m)) => {
                    assert!(!m.contains("SENTINEL") && !m.contains("U0VOVElORUw"), "{m}");
                }
                other => panic!("{case}: {other:?}"),
            }
        }
        assert!(holds_private_key(&p256().0));
        assert!(!holds_private_key("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn the_thumbprint_is_of_the_certificate_after_the_key() {
        let (key, _) = p256();
        let certificate = b"not a real certificate, only DER bytes to hash";
        let both = format!("{key}{}", pem("CERTIFICATE", certificate));
        let described = describe(&both, SigningAlgorithm::Es256).unwrap();
        assert_eq!(
            described.certificate_sha256,
            Some(URL_SAFE_NO_PAD.encode(Sha256::digest(certificate)))
        );
    }
}
