//! The token store many processes on many machines share: entries in Redis sealed with
//! AES-256-GCM, per-connection locks that expire, and a near cache that keeps a fresh-token step
//! off the network.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oauth2_plugin::config::hex;
use redis::{Client, Connection, Script};
use url::Url;

use crate::http_client::OVERALL_TIMEOUT;
use crate::sealing::SealingKeys;
use crate::secret_store::{SecretStore, lock};
use crate::token_store::{KeyLocks, LockGuard, StoreError, TokenStore, lock_timeout};

/// How long a connection's lock lives in Redis when its holder never releases it (a worker
/// killed mid-refresh): longer than the two token requests a call makes at most, each bounded
/// by the HTTP client's overall timeout, so a live holder never loses it.
pub const LOCK_EXPIRY: Duration = Duration::from_secs(3 * OVERALL_TIMEOUT.as_secs());

/// How long a process serves an entry from memory before reading Redis again, by default.
pub const NEAR_CACHE_TIME: Duration = Duration::from_secs(2);

/// The longest near-cache time accepted, the component's largest expiry margin. Memory never
/// serves an expired token (the component checks a token's expiry itself); this bounds how long
/// a process goes on sending a token that another one dropped after a 401.
pub const MAX_NEAR_CACHE_TIME: Duration =
    Duration::from_secs(oauth2_plugin::token::MAX_EXPIRY_MARGIN_SECS);

/// The longest a call waits for a connection's lock, or for Redis to answer.
const LOCK_WAIT: Duration = crate::file_store::LOCK_WAIT;
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_IDLE_CONNECTIONS: usize = 16;
const MAX_NEAR_ENTRIES: usize = 4096;

/// Writes `ARGV[2]` (empty: deletes) over `KEYS[1]` if it still holds `ARGV[1]` (empty: holds
/// nothing), with `ARGV[3]` milliseconds to live (empty: forever). Sealed values are never
/// empty, so the empty string is free to mean "none".
const COMPARE_AND_SWAP: &str = include_str!("redis/compare_and_swap.lua");

/// Deletes the lock `KEYS[1]` only if it still holds this holder's random `ARGV[1]`: a holder
/// whose lock expired must not release the next holder's.
const RELEASE: &str = include_str!("redis/release.lua");

/// A Redis store: the component's token state, and optionally the user's secrets, under
/// `<namespace>entry:{<key>}`, `<namespace>lock:{<key>}` and `<namespace>secret:{<name>}`. The
/// braces are a Redis Cluster hash tag: a connection's entry and lock live in one slot.
///
/// Every value is sealed with the [`SealingKeys`] and bound to its Redis key, so neither Redis
/// nor anyone who reads it sees a secret or a token, and a value copied under another name does
/// not open. Locks are `SET NX PX` with a random holder id, released by a script that checks it.
pub struct RedisStore {
    shared: Arc<Shared>,
    namespace: String,
    keys: SealingKeys,
    near: Mutex<HashMap<String, Near>>,
    near_time: Duration,
    locks: Arc<KeyLocks>,
    lock_expiry: Duration,
    lock_wait: Duration,
    compare_and_swap: Script,
}

/// What a lock's guard needs after the store call that took it has returned.
struct Shared {
    client: Client,
    idle: Mutex<Vec<Connection>>,
    /// The URL without its password, for messages.
    shown: String,
    release: Script,
}

/// An entry as this process last read or wrote it.
struct Near {
    plain: String,
    until: Instant,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.shared.shown)
            .field("namespace", &self.namespace)
            .field("keys", &self.keys)
            .field("near_time", &self.near_time)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on the Redis at `url` (`redis://[user[:password]@]host[:port][/db]`, or
    /// `rediss://` for TLS, checked against the system's CA certificates), sealing with `keys`.
    /// Connects now, so a wrong address or password is reported before any work starts.
    pub fn open(url: &str, keys: SealingKeys) -> Result<Self, String> {
        Self::open_with(url, keys, None)
    }

    /// As [`open`](Self::open), for a `rediss://` server whose certificate a private CA
    /// signed: `ca_pem` holds that CA's certificates, trusted instead of the system's.
    pub fn open_trusting(url: &str, keys: SealingKeys, ca_pem: &[u8]) -> Result<Self, String> {
        Self::open_with(url, keys, Some(ca_pem.to_vec()))
    }

    fn open_with(url: &str, keys: SealingKeys, ca_pem: Option<Vec<u8>>) -> Result<Self, String> {
        let parsed = Url::parse(url).map_err(|e| format!("Redis URL: {e}"))?;
        let mut shown = parsed.clone();
        let _ = shown.set_password(None);
        let shown = shown.to_string();
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return Err(format!(
                "Redis URL {shown}: the scheme must be redis:// or rediss:// (TLS)"
            ));
        }
        if parsed.fragment().is_some() {
            return Err(format!(
                "Redis URL {shown}: a fragment such as #insecure (TLS without certificate checks) \
                 is refused; give the server a certificate the system trusts"
            ));
        }
        let client = match ca_pem {
            None => Client::open(url),
            Some(_) if parsed.scheme() != "rediss" => {
                return Err(format!(
                    "Redis URL {shown}: a CA certificate is for rediss:// (TLS) only"
                ));
            }
            Some(root_cert) => Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_cert),
                },
            ),
        }
        .map_err(|e| format!("Redis URL {shown}: {e}"))?;
        let store = Self {
            shared: Arc::new(Shared {
                client,
                idle: Mutex::default(),
                shown,
                release: Script::new(RELEASE),
            }),
            namespace: "oauth2-host:".to_owned(),
            keys,
            near: Mutex::default(),
            near_time: NEAR_CACHE_TIME,
            locks: Arc::default(),
            lock_expiry: LOCK_EXPIRY,
            lock_wait: LOCK_WAIT,
            compare_and_swap: Script::new(COMPARE_AND_SWAP),
        };
        store
            .shared
            .with(|con| redis::cmd("PING").query::<()>(con))
            .map_err(|e| e.to_string())?;
        Ok(store)
    }

    /// The store's URL without its password.
    pub fn url(&self) -> &str {
        &self.shared.shown
    }

    /// The same store under another key prefix (default `oauth2-host:`), for several
    /// deployments sharing one Redis.
    pub fn with_namespace(mut self, namespace: &str) -> Self {
        namespace.clone_into(&mut self.namespace);
        self
    }

    /// How long an entry read or written here is served from memory (zero: never), at most
    /// [`MAX_NEAR_CACHE_TIME`]. A read under the connection's lock always goes to Redis.
    pub fn with_near_cache(mut self, time: Duration) -> Self {
        self.near_time = time.min(MAX_NEAR_CACHE_TIME);
        lock(&self.near).clear();
        self
    }

    /// How long a lock outlives a holder that never released it (tests shorten it; a holder
    /// must finish its token requests within it).
    pub fn with_lock_expiry(mut self, expiry: Duration) -> Self {
        self.lock_expiry = expiry.max(Duration::from_millis(1));
        self
    }

    /// How long a call waits for a lock another holder has, at most [`LOCK_WAIT`].
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait.min(LOCK_WAIT);
        self
    }

    fn entry_name(&self, key: &str) -> String {
        format!("{}entry:{{{key}}}", self.namespace)
    }

    fn lock_name(&self, key: &str) -> String {
        format!("{}lock:{{{key}}}", self.namespace)
    }

    fn secret_name(&self, name: &str) -> String {
        format!("{}secret:{{{name}}}", self.namespace)
    }

    fn seal(&self, name: &str, plain: &str) -> Result<String, String> {
        self.keys
            .seal(name, plain.as_bytes())
            .map_err(|e| format!("sealing a value for Redis: {e}"))
    }

    /// The value under `name`, opened. An entry that does not open is an error, never "none":
    /// treating it as absent would let the next write replace a token with a worse one.
    fn read(&self, name: &str) -> Result<Option<(String, String)>, String> {
        let Some(sealed) = self
            .shared
            .with(|con| redis::cmd("GET").arg(name).query::<Option<String>>(con))?
        else {
            return Ok(None);
        };
        let plain = self
            .keys
            .open(name, &sealed)
            .map_err(|e| format!("{}: the entry {name} {e}", self.shared.shown))?;
        let plain = String::from_utf8(plain)
            .map_err(|_| format!("{}: the entry {name} is not text", self.shared.shown))?;
        Ok(Some((plain, sealed)))
    }

    fn remember(&self, key: &str, plain: Option<&str>) {
        let mut near = lock(&self.near);
        match plain {
            Some(plain) if !self.near_time.is_zero() => {
                if near.len() >= MAX_NEAR_ENTRIES {
                    let now = Instant::now();
                    near.retain(|_, entry| entry.until > now);
                    if near.len() >= MAX_NEAR_ENTRIES {
                        near.clear();
                    }
                }
                near.insert(
                    key.to_owned(),
                    Near {
                        plain: plain.to_owned(),
                        until: Instant::now() + self.near_time,
                    },
                );
            }
            _ => {
                near.remove(key);
            }
        }
    }

    fn recalled(&self, key: &str) -> Option<String> {
        if self.near_time.is_zero() || self.locks.is_held(key) {
            return None;
        }
        let near = lock(&self.near);
        let entry = near.get(key)?;
        (entry.until > Instant::now()).then(|| entry.plain.clone())
    }
}

impl Shared {
    /// Runs `call` on a pooled connection, opening one when none is idle; a connection that
    /// failed is dropped, so the next call reconnects once Redis is back.
    fn with<T>(
        &self,
        call: impl FnOnce(&mut Connection) -> redis::RedisResult<T>,
    ) -> Result<T, String> {
        let pooled = lock(&self.idle).pop();
        let mut con = match pooled {
            Some(con) => con,
            None => self.connect()?,
        };
        match call(&mut con) {
            Ok(value) => {
                let mut idle = lock(&self.idle);
                if idle.len() < MAX_IDLE_CONNECTIONS {
                    idle.push(con);
                }
                Ok(value)
            }
            Err(e) => Err(self.problem(&e)),
        }
    }

    fn connect(&self) -> Result<Connection, String> {
        let con = self
            .client
            .get_connection_with_timeout(IO_TIMEOUT)
            .map_err(|e| self.problem(&e))?;
        con.set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|()| con.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(|e| self.problem(&e))?;
        Ok(con)
    }

    /// Redis's errors name the command's kind and the server's reason, never an argument.
    fn problem(&self, error: &redis::RedisError) -> String {
        format!("Redis at {}: {error}", self.shown)
    }
}

impl TokenStore for RedisStore {
    fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        if let Some(plain) = self.recalled(key) {
            return Ok(Some(plain));
        }
        let entry = self
            .read(&self.entry_name(key))
            .map_err(StoreError::Unavailable)?;
        self.remember(key, entry.as_ref().map(|(plain, _)| plain.as_str()));
        Ok(entry.map(|(plain, _)| plain))
    }

    fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), StoreError> {
        let name = self.entry_name(key);
        let sealed = self.seal(&name, value).map_err(StoreError::Unavailable)?;
        let mut command = redis::cmd("SET");
        command.arg(&name).arg(&sealed);
        if let Some(ttl) = ttl {
            command.arg("PX").arg(ttl.as_millis().max(1) as u64);
        }
        self.shared
            .with(|con| command.query::<()>(con))
            .map_err(StoreError::Unavailable)?;
        self.remember(key, ttl.is_none().then_some(value));
        Ok(())
    }

    /// Compares what the entry opens to, not its sealed bytes (every seal differs), then swaps
    /// in a script only if the sealed bytes are still the ones compared. A change in between
    /// is read again.
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let name = self.entry_name(key);
        let sealed_value = match value {
            Some(value) => self.seal(&name, value).map_err(StoreError::Unavailable)?,
            None => String::new(),
        };
        let ttl_ms = ttl.map_or(String::new(), |ttl| {
            (ttl.as_millis().max(1) as u64).to_string()
        });
        // Each round reads the entry anew; three changes in the moment between a read and its
        // swap mean writers without the connection's lock, and the answer is "changed".
        for _ in 0..3 {
            let current = self.read(&name).map_err(StoreError::Unavailable)?;
            if current.as_ref().map(|(plain, _)| plain.as_str()) != expected {
                self.remember(key, current.as_ref().map(|(plain, _)| plain.as_str()));
                return Ok(false);
            }
            let current_sealed = current.map(|(_, sealed)| sealed).unwrap_or_default();
            let swapped: i64 = self
                .shared
                .with(|con| {
                    self.compare_and_swap
                        .key(&name)
                        .arg(&current_sealed)
                        .arg(&sealed_value)
                        .arg(&ttl_ms)
                        .invoke(con)
                })
                .map_err(StoreError::Unavailable)?;
            if swapped == 1 {
                self.remember(key, if ttl.is_none() { value } else { None });
                return Ok(true);
            }
        }
        self.remember(key, None);
        Ok(false)
    }

    /// This process's lock on `key` first, so one thread per process asks Redis, then the
    /// Redis lock, polled until it is free or `wait` (at most the store's bound) has passed.
    fn lock(&self, key: &str, wait: Duration) -> Result<LockGuard, StoreError> {
        let wait = wait.min(self.lock_wait);
        let deadline = Instant::now() + wait;
        let in_process = self.locks.lock(key, wait)?;
        let name = self.lock_name(key);
        let mut holder = [0u8; 16];
        getrandom::fill(&mut holder)
            .map_err(|e| StoreError::Unavailable(format!("randomness for a lock holder: {e}")))?;
        let holder = hex("", &holder);
        let expiry_ms = self.lock_expiry.as_millis().max(1) as u64;
        let mut pause = Duration::from_millis(1);
        loop {
            let taken: Option<String> = self
                .shared
                .with(|con| {
                    redis::cmd("SET")
                        .arg(&name)
                        .arg(&holder)
                        .arg("NX")
                        .arg("PX")
                        .arg(expiry_ms)
                        .query(con)
                })
                .map_err(StoreError::Unavailable)?;
            if taken.is_some() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(lock_timeout(wait));
            }
            std::thread::sleep(pause.min(left));
            pause = (pause * 2).min(Duration::from_millis(25));
        }
        // What was remembered before the lock may be older than what its last holder wrote.
        lock(&self.near).remove(key);
        Ok(LockGuard::new(RedisLock {
            shared: Arc::clone(&self.shared),
            name,
            holder,
            _in_process: in_process,
        }))
    }
}

/// A lock held in Redis; dropping it releases it if it is still this holder's, then the
/// process's own lock on the name.
struct RedisLock {
    shared: Arc<Shared>,
    name: String,
    holder: String,
    _in_process: crate::token_store::KeyLock,
}

impl Drop for RedisLock {
    fn drop(&mut self) {
        // When Redis cannot be reached the lock expires by itself.
        let _ = self.shared.with(|con| {
            self.shared
                .release
                .key(&self.name)
                .arg(&self.holder)
                .invoke::<i64>(con)
        });
    }
}

/// Secrets sealed like token entries, for platforms that keep everything in Redis.
impl SecretStore for RedisStore {
    fn get(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self.read(&self.secret_name(name))?.map(|(plain, _)| plain))
    }

    fn set(&self, name: &str, value: &str) -> Result<(), String> {
        let redis_name = self.secret_name(name);
        let sealed = self.seal(&redis_name, value)?;
        self.shared
            .with(|con| redis::cmd("SET").arg(&redis_name).arg(&sealed).query(con))
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        let redis_name = self.secret_name(name);
        self.shared
            .with(|con| redis::cmd("DEL").arg(&redis_name).query(con))
    }
}
