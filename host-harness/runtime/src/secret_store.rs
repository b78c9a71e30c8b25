//! Where the user's secrets live, and the in-memory store that also keeps the component's token
//! state: for tests, and for hosts that keep nothing across restarts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::bindings::integration::oauth2::signing::KeyDescription;
use crate::bindings::{SigningAlgorithm, SigningError};
use crate::clock::{Clock, SystemClock};
use crate::signing;
use crate::token_store::{KeyLocks, LockGuard, StoreError, TokenStore};

/// The user's secrets (client secrets, passwords, private keys) that configurations name. The
/// component only reads them, and never a private key: it asks the store to sign with one.
/// `set` and `remove` are for the platform and the `oauth2-host secret` command. Errors are
/// messages for the user and never contain a secret value.
pub trait SecretStore: Send + Sync {
    fn get(&self, name: &str) -> Result<Option<String>, String>;
    fn set(&self, name: &str, value: &str) -> Result<(), String>;
    /// Removing an absent name succeeds.
    fn remove(&self, name: &str) -> Result<(), String>;

    /// What a JWT header may say about the private key `name`. By default the key is a PEM
    /// secret of this store; a store backed by a KMS or HSM overrides this and [`sign`].
    ///
    /// [`sign`]: SecretStore::sign
    fn describe_key(
        &self,
        name: &str,
        algorithm: SigningAlgorithm,
    ) -> Result<KeyDescription, SigningError> {
        signing::describe(&private_key(self, name)?, algorithm)
    }

    /// The JWS signature of `data` by the private key `name`.
    fn sign(
        &self,
        name: &str,
        algorithm: SigningAlgorithm,
        data: &[u8],
    ) -> Result<Vec<u8>, SigningError> {
        signing::sign(&private_key(self, name)?, algorithm, data)
    }
}

/// The PEM secret `name` of `store`.
fn private_key<S: SecretStore + ?Sized>(store: &S, name: &str) -> Result<String, SigningError> {
    match store.get(name) {
        Ok(Some(pem)) => Ok(pem),
        Ok(None) => Err(SigningError::UnknownKey(format!(
            "no secret named {name:?} holds a private key: store the PEM with `oauth2-host secret set {name}`"
        ))),
        Err(m) => Err(SigningError::UnusableKey(format!(
            "the secret store failed: {m}"
        ))),
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent before it can panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Secrets and token state that live as long as the process, in two separate namespaces.
pub struct MemoryStore {
    secrets: Mutex<HashMap<String, String>>,
    /// Each entry with the time it expires at, if it does.
    tokens: Mutex<HashMap<String, (String, Option<SystemTime>)>>,
    locks: Arc<KeyLocks>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose entries expire by `clock`, so tests can move time.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            secrets: Mutex::default(),
            tokens: Mutex::default(),
            locks: Arc::default(),
            clock,
        }
    }

    /// Every secret and live token entry, sorted by name: for tests that prove a failure changed
    /// nothing. Token keys all start with `oauth2/`.
    pub fn entries(&self) -> Vec<(String, String)> {
        let now = self.clock.now();
        let mut entries: Vec<_> = lock(&self.secrets).clone().into_iter().collect();
        entries.extend(
            lock(&self.tokens)
                .iter()
                .filter(|(_, (_, expires))| expires.is_none_or(|at| at > now))
                .map(|(key, (value, _))| (key.clone(), value.clone())),
        );
        entries.sort();
        entries
    }

    /// How many token locks are held now.
    pub fn held_locks(&self) -> usize {
        self.locks.len()
    }
}

// The values are secrets: only the names are shown.
impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<String> = lock(&self.secrets).keys().cloned().collect();
        names.sort();
        let mut keys: Vec<String> = lock(&self.tokens).keys().cloned().collect();
        keys.sort();
        f.debug_struct("MemoryStore")
            .field("secret_names", &names)
            .field("token_keys", &keys)
            .finish()
    }
}

impl SecretStore for MemoryStore {
    fn get(&self, name: &str) -> Result<Option<String>, String> {
        Ok(lock(&self.secrets).get(name).cloned())
    }

    fn set(&self, name: &str, value: &str) -> Result<(), String> {
        lock(&self.secrets).insert(name.to_owned(), value.to_owned());
        Ok(())
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        lock(&self.secrets).remove(name);
        Ok(())
    }
}

impl TokenStore for MemoryStore {
    fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let now = self.clock.now();
        let mut tokens = lock(&self.tokens);
        match tokens.get(key) {
            Some((_, Some(expires))) if *expires <= now => {
                tokens.remove(key);
                Ok(None)
            }
            entry => Ok(entry.map(|(value, _)| value.clone())),
        }
    }

    fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut tokens = lock(&self.tokens);
        tokens.retain(|_, (_, expires)| expires.is_none_or(|at| at > now));
        tokens.insert(key.to_owned(), (value.to_owned(), ttl.map(|ttl| now + ttl)));
        Ok(())
    }

    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut tokens = lock(&self.tokens);
        let current = tokens
            .get(key)
            .filter(|(_, expires)| expires.is_none_or(|at| at > now))
            .map(|(value, _)| value.as_str());
        if current != expected {
            return Ok(false);
        }
        match value {
            Some(value) => {
                tokens.insert(key.to_owned(), (value.to_owned(), ttl.map(|ttl| now + ttl)));
            }
            None => {
                tokens.remove(key);
            }
        }
        Ok(true)
    }

    fn lock(&self, key: &str, wait: Duration) -> Result<LockGuard, StoreError> {
        self.locks.lock(key, wait).map(LockGuard::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn secrets_and_token_state_are_separate_namespaces() {
        let store = MemoryStore::new();
        SecretStore::set(&store, "oauth2/token/x", "user-secret").unwrap();
        assert_eq!(TokenStore::get(&store, "oauth2/token/x").unwrap(), None);
        TokenStore::set(&store, "oauth2/token/x", "token-entry", None).unwrap();
        assert_eq!(
            SecretStore::get(&store, "oauth2/token/x")
                .unwrap()
                .as_deref(),
            Some("user-secret")
        );
        assert_eq!(
            TokenStore::get(&store, "oauth2/token/x")
                .unwrap()
                .as_deref(),
            Some("token-entry")
        );
    }

    #[test]
    fn compare_and_swap_changes_only_the_expected_entry() {
        let store = MemoryStore::new();
        assert!(TokenStore::compare_and_swap(&store, "k", None, Some("a"), None).unwrap());
        assert!(!TokenStore::compare_and_swap(&store, "k", None, Some("b"), None).unwrap());
        assert!(!TokenStore::compare_and_swap(&store, "k", Some("x"), Some("b"), None).unwrap());
        assert!(TokenStore::compare_and_swap(&store, "k", Some("a"), Some("b"), None).unwrap());
        assert_eq!(TokenStore::get(&store, "k").unwrap().as_deref(), Some("b"));
        assert!(TokenStore::compare_and_swap(&store, "k", Some("b"), None, None).unwrap());
        assert_eq!(TokenStore::get(&store, "k").unwrap(), None);
    }

    #[test]
    fn entries_expire_after_their_time_to_live() {
        let clock = Arc::new(ManualClock::at_unix(1_000));
        let store = MemoryStore::with_clock(clock.clone());
        TokenStore::set(&store, "pending", "p", Some(Duration::from_secs(600))).unwrap();
        TokenStore::set(&store, "token", "t", None).unwrap();
        clock.advance(Duration::from_secs(599));
        assert!(TokenStore::get(&store, "pending").unwrap().is_some());
        clock.advance(Duration::from_secs(1));
        assert_eq!(TokenStore::get(&store, "pending").unwrap(), None);
        assert_eq!(store.entries(), [("token".to_owned(), "t".to_owned())]);
    }
}
