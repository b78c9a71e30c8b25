//! Values sealed at rest for a shared store: AES-256-GCM under keys read from a private file,
//! each value naming the key that sealed it, so a key can be replaced without losing entries.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use sha2::{Digest, Sha256};

use crate::file_store::{check_private_file, open_no_follow};

/// The environment variable naming the key file.
pub const KEY_FILE_VARIABLE: &str = "OAUTH2_HOST_STORE_KEY_FILE";

/// Sealed values start with this, so a value no sealing wrote is told apart from a forged one.
const VERSION: &str = "v1";
const KEY_BYTES: usize = 32;
const TAG_BYTES: usize = 16;
/// A key file is a few lines; anything larger is not one.
const MAX_KEY_FILE_BYTES: u64 = 64 << 10;

/// The first four bytes of a key's SHA-256 (over a label, so the id is not a hash of the key
/// alone), written in hex into every value the key seals.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyId([u8; 4]);

impl KeyId {
    fn of(key: &[u8; KEY_BYTES]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"oauth2-host store key id\0")
            .chain_update(key)
            .finalize();
        Self([digest[0], digest[1], digest[2], digest[3]])
    }

    fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 8 {
            return None;
        }
        let mut id = [0u8; 4];
        for (i, pair) in bytes.chunks(2).enumerate() {
            let pair = std::str::from_utf8(pair).ok()?;
            id[i] = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Self(id))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// The keys of a store: the first seals every new value; all of them open the values they
/// sealed. To rotate, put a new key on the first line and keep the old one below it until every
/// entry has been written again.
pub struct SealingKeys {
    keys: Vec<(KeyId, LessSafeKey)>,
}

// Only the ids: the keys are secrets.
impl fmt::Debug for SealingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKeys")
            .field("ids", &self.ids())
            .finish()
    }
}

/// Why the key file gave no keys. No message contains a key.
#[derive(Debug)]
pub enum KeyFileError {
    /// The environment variable is not set.
    NotSet,
    /// The file could not be opened or read.
    Unreadable { path: PathBuf, error: io::Error },
    /// The file is not a private regular file of this user.
    NotPrivate(String),
    /// A line is not the base64 of 32 bytes (its number, from 1).
    BadLine { path: PathBuf, line: usize },
    /// No key in the file.
    Empty { path: PathBuf },
}

impl fmt::Display for KeyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSet => write!(
                f,
                "a shared store keeps its values encrypted, and {KEY_FILE_VARIABLE} names no \
                 key file: create one with `oauth2-host store-key new --output FILE` and set \
                 {KEY_FILE_VARIABLE}=FILE, the same file for every worker"
            ),
            Self::Unreadable { path, error } => {
                write!(f, "store key file {}: {error}", path.display())
            }
            Self::NotPrivate(why) => f.write_str(why),
            Self::BadLine { path, line } => write!(
                f,
                "store key file {} line {line} is not a key: each line holds 32 random bytes in \
                 base64 (44 characters)",
                path.display()
            ),
            Self::Empty { path } => write!(f, "store key file {} holds no key", path.display()),
        }
    }
}

impl std::error::Error for KeyFileError {}

/// Why a sealed value did not open. No message contains the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenError {
    /// The value is not one this module wrote.
    NotSealed,
    /// Sealed with a key the key file does not hold.
    UnknownKey(KeyId),
    /// The key matched by id did not open it: the value was changed or moved to another name.
    Forged(KeyId),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSealed => f.write_str(
                "holds a value that was not sealed by this store: something else writes under \
                 the store's names",
            ),
            Self::UnknownKey(id) => write!(
                f,
                "was sealed with key {id}, which the store key file does not hold: use the key \
                 file the other workers use (during a rotation, keep the old key on a line below \
                 the new one)"
            ),
            Self::Forged(id) => write!(
                f,
                "does not open with key {id}: the value was altered or copied from another name"
            ),
        }
    }
}

impl SealingKeys {
    /// The keys in the file `OAUTH2_HOST_STORE_KEY_FILE` names.
    pub fn from_env() -> Result<Self, KeyFileError> {
        match std::env::var_os(KEY_FILE_VARIABLE) {
            Some(path) if !path.is_empty() => Self::from_file(Path::new(&path)),
            _ => Err(KeyFileError::NotSet),
        }
    }

    /// The keys in `path`: one per line in base64, blank lines and `#` comments skipped. The
    /// file must be a regular file of this user that no one else may read.
    pub fn from_file(path: &Path) -> Result<Self, KeyFileError> {
        let unreadable = |error| KeyFileError::Unreadable {
            path: path.to_owned(),
            error,
        };
        let file = open_no_follow(OpenOptions::new().read(true), path).map_err(unreadable)?;
        check_private_file(&file, path, "store key file").map_err(KeyFileError::NotPrivate)?;
        let mut text = String::new();
        file.take(MAX_KEY_FILE_BYTES)
            .read_to_string(&mut text)
            .map_err(unreadable)?;
        let mut keys = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = STANDARD
                .decode(line)
                .ok()
                .and_then(|bytes| <[u8; KEY_BYTES]>::try_from(bytes).ok())
                .ok_or_else(|| KeyFileError::BadLine {
                    path: path.to_owned(),
                    line: number + 1,
                })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(KeyFileError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Self::from_keys(&keys))
    }

    /// Keys given directly, the sealing one first. Panics on an empty list, which no caller
    /// can mean.
    pub fn from_keys(keys: &[[u8; KEY_BYTES]]) -> Self {
        assert!(!keys.is_empty(), "SealingKeys needs at least one key");
        let keys = keys
            .iter()
            .map(|key| {
                let unbound = UnboundKey::new(&AES_256_GCM, key)
                    .unwrap_or_else(|_| unreachable!("AES-256-GCM takes a 32-byte key"));
                (KeyId::of(key), LessSafeKey::new(unbound))
            })
            .collect();
        Self { keys }
    }

    /// A new random key, as a line of a key file.
    pub fn new_key_line() -> io::Result<String> {
        let mut key = [0u8; KEY_BYTES];
        getrandom::fill(&mut key).map_err(io::Error::other)?;
        Ok(STANDARD.encode(key))
    }

    /// The key ids, the sealing one first.
    pub fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|(id, _)| *id).collect()
    }

    /// `plaintext` sealed under the first key and bound to `name`, so it opens only under that
    /// name: `v1.<key id>.<base64url of nonce, ciphertext and tag>`.
    pub fn seal(&self, name: &str, plaintext: &[u8]) -> io::Result<String> {
        let (id, key) = &self.keys[0];
        // Random nonces: a store writes far fewer than the 2^32 values per key where their
        // collisions would start to matter.
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(io::Error::other)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_BYTES);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut sealed[NONCE_LEN..],
            )
            .map_err(|_| io::Error::other("AES-256-GCM refused to seal"))?;
        sealed.extend_from_slice(tag.as_ref());
        Ok(format!("{VERSION}.{id}.{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// The plaintext of a value [`seal`](Self::seal) wrote under `name`.
    pub fn open(&self, name: &str, value: &str) -> Result<Vec<u8>, OpenError> {
        let mut parts = value.splitn(3, '.');
        let (Some(VERSION), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(OpenError::NotSealed);
        };
        let id = KeyId::parse(id).ok_or(OpenError::NotSealed)?;
        let sealed = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| OpenError::NotSealed)?;
        if sealed.len() < NONCE_LEN + TAG_BYTES {
            return Err(OpenError::NotSealed);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError::NotSealed)?;
        let mut candidates = self
            .keys
            .iter()
            .filter(|(key_id, _)| *key_id == id)
            .peekable();
        if candidates.peek().is_none() {
            return Err(OpenError::UnknownKey(id));
        }
        for (_, key) in candidates {
            let mut attempt = body.to_vec();
            let opened = key.open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(name.as_bytes()),
                &mut attempt,
            );
            if let Ok(plain) = opened {
                let len = plain.len();
                attempt.truncate(len);
                return Ok(attempt);
            }
        }
        Err(OpenError::Forged(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(seeds: &[u8]) -> SealingKeys {
        let keys: Vec<[u8; KEY_BYTES]> = seeds.iter().map(|seed| [*seed; KEY_BYTES]).collect();
        SealingKeys::from_keys(&keys)
    }

    #[test]
    fn a_value_opens_under_its_name_with_its_key_and_nowhere_else() {
        let store = keys(&[1]);
        let sealed = store.seal("entry:a", b"refresh-token-value").unwrap();
        assert!(sealed.starts_with(&format!("v1.{}.", store.ids()[0])));
        assert!(!sealed.contains("refresh-token-value"));
        assert_eq!(
            store.open("entry:a", &sealed).unwrap(),
            b"refresh-token-value"
        );
        // Sealing twice gives two different values (random nonces).
        assert_ne!(
            sealed,
            store.seal("entry:a", b"refresh-token-value").unwrap()
        );

        assert_eq!(
            store.open("entry:b", &sealed),
            Err(OpenError::Forged(store.ids()[0]))
        );
        let other = keys(&[2]);
        assert_eq!(
            other.open("entry:a", &sealed),
            Err(OpenError::UnknownKey(store.ids()[0]))
        );
        // A character well inside the body: the last one may carry bits base64 must leave zero,
        // and changing it may make the text unreadable rather than forged.
        // Nonces are random: many seals, so no lucky one passes.
        for _ in 0..200 {
            let mut altered = store
                .seal("entry:a", b"refresh-token-value")
                .unwrap()
                .into_bytes();
            let inside = altered.len() - 8;
            altered[inside] = if altered[inside] == b'A' { b'B' } else { b'A' };
            assert_eq!(
                store.open("entry:a", std::str::from_utf8(&altered).unwrap()),
                Err(OpenError::Forged(store.ids()[0]))
            );
        }
        for not_sealed in [
            "",
            "plain text",
            "v1.zz.abc",
            "v2.00000000.AAAA",
            "v1.00000000.AA",
        ] {
            assert_eq!(store.open("entry:a", not_sealed), Err(OpenError::NotSealed));
        }
    }

    #[test]
    fn a_rotated_key_file_opens_old_values_and_seals_with_the_new_key() {
        let old = keys(&[1]);
        let sealed_before = old.seal("n", b"x").unwrap();
        let rotated = keys(&[2, 1]);
        assert_eq!(rotated.open("n", &sealed_before).unwrap(), b"x");
        let sealed_after = rotated.seal("n", b"y").unwrap();
        assert!(sealed_after.starts_with(&format!("v1.{}.", rotated.ids()[0])));
        assert_eq!(
            old.open("n", &sealed_after),
            Err(OpenError::UnknownKey(rotated.ids()[0]))
        );
    }

    #[test]
    fn every_one_character_change_to_a_sealed_value_is_refused() {
        let store = keys(&[9]);
        let sealed = store.seal("entry:x", b"a refresh token").unwrap();
        let alphabet = b"AZaz09-_.v1";
        for at in 0..sealed.len() {
            for &replacement in alphabet {
                let mut changed = sealed.clone().into_bytes();
                if changed[at] == replacement {
                    continue;
                }
                changed[at] = replacement;
                let changed = String::from_utf8(changed).unwrap();
                // Base64 without padding can spell one value two ways in its last character:
                // the same bytes then open to the same plaintext, which is no forgery.
                if let Ok(plain) = store.open("entry:x", &changed) {
                    assert_eq!(plain, b"a refresh token", "{changed}");
                }
            }
        }
        for truncated in 0..sealed.len() {
            assert!(store.open("entry:x", &sealed[..truncated]).is_err());
        }
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let store = keys(&[7]);
        let shown = format!("{store:?}");
        assert!(shown.contains(&store.ids()[0].to_string()), "{shown}");
        assert!(
            !shown.contains(&STANDARD.encode([7u8; KEY_BYTES])),
            "{shown}"
        );
        assert!(!shown.contains("7, 7"), "{shown}");
    }
}
