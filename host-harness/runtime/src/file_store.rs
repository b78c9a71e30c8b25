//! The `oauth2-host` command's store: the user's secrets and the component's token state in one
//! private JSON file, safe across threads and processes, and wary of the directory it is in.

use std::collections::BTreeMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use oauth2_plugin::config::hex;
use rustix::fs::OFlags;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::secret_store::{SecretStore, lock};
use crate::token_store::{KeyLocks, LockGuard, StoreError, TokenStore, lock_timeout};

/// The longest any wait on a lock lasts, the store file's or a connection's, before it fails
/// with an error that says so.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// A JSON file `{"secrets": {name: value}, "tokens": {key: {"value", "expires_at"}}}` only its
/// owner may read (mode 0600), in a directory no one else may write.
///
/// The file is read on every call, so another process's writes are seen; each write replaces
/// the whole file atomically, so a crash never leaves it half-written; and a lock file beside it
/// makes each read-modify-write whole across processes, so none is lost. A connection's token
/// lock is a lock file of its own, so one refresh runs at a time across processes too.
///
/// Nothing is opened through a symbolic link; the file and every lock file must be regular
/// files of this user; a directory others may write (without the sticky bit) is refused, as
/// anyone there could replace the store. Every wait is bounded.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    // Serialises read-modify-write cycles of the threads of this process.
    guard: Mutex<()>,
    locks: Arc<KeyLocks>,
    lock_wait: Duration,
}

/// What the file holds: the two namespaces.
#[derive(Default)]
struct Contents {
    secrets: BTreeMap<String, String>,
    /// Each entry with the Unix second it expires at, if it does.
    tokens: BTreeMap<String, (String, Option<u64>)>,
}

impl FileStore {
    /// Opens the store at `path`; the file and its directory are created on the first write.
    /// An existing file or directory is checked now, so a bad store is reported before any
    /// work starts.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, String> {
        let store = Self {
            path: path.into(),
            guard: Mutex::new(()),
            locks: Arc::default(),
            lock_wait: LOCK_WAIT,
        };
        if fs::metadata(store.dir()).is_ok() {
            store.check_dir()?;
        }
        store.load()?;
        Ok(store)
    }

    /// The same store with another bound on lock waits (shorter in tests).
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait.min(LOCK_WAIT);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn load(&self) -> Result<Contents, String> {
        let mut file = match open_no_follow(OpenOptions::new().read(true), &self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Contents::default()),
            Err(e) => return Err(self.problem(&self.path, e)),
        };
        check_private_file(&file, &self.path, "secret store")?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| self.problem(&self.path, e))?;
        self.parse(&bytes)
    }

    /// Reads the file's JSON. The file written before secrets and token state were separated,
    /// one flat object of strings, is read as it was meant: `oauth2/` entries are token state.
    /// No message quotes the file's values.
    fn parse(&self, bytes: &[u8]) -> Result<Contents, String> {
        let invalid = |why: &str| format!("secret store {} {why}", self.path.display());
        // serde_json's messages give the position of a syntax error, never the text around it.
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| invalid(&format!("is not valid JSON: {e}")))?;
        let Value::Object(top) = value else {
            return Err(invalid("is not a JSON object"));
        };
        let mut contents = Contents::default();
        let structured = !top.is_empty()
            && top
                .iter()
                .all(|(k, v)| (k == "secrets" || k == "tokens") && v.is_object());
        if !structured {
            for (name, value) in top {
                let Value::String(value) = value else {
                    return Err(invalid(&format!(
                        "holds a value for {name:?} that is not a string"
                    )));
                };
                if name.starts_with("oauth2/") {
                    contents.tokens.insert(name, (value, None));
                } else {
                    contents.secrets.insert(name, value);
                }
            }
            return Ok(contents);
        }
        for (namespace, members) in top {
            let Value::Object(members) = members else {
                continue;
            };
            for (name, value) in members {
                if namespace == "secrets" {
                    let Value::String(value) = value else {
                        return Err(invalid(&format!(
                            "holds a secret {name:?} that is not a string"
                        )));
                    };
                    contents.secrets.insert(name, value);
                } else {
                    let entry = value.as_object().and_then(|entry| {
                        let value = entry.get("value")?.as_str()?.to_owned();
                        let expires_at = match entry.get("expires_at") {
                            None | Some(Value::Null) => None,
                            Some(at) => Some(at.as_u64()?),
                        };
                        Some((value, expires_at))
                    });
                    let Some(entry) = entry else {
                        return Err(invalid(&format!(
                            "holds a token entry {name:?} that is not {{\"value\", \"expires_at\"}}"
                        )));
                    };
                    contents.tokens.insert(name, entry);
                }
            }
        }
        Ok(contents)
    }

    /// The store's directory, created owner-only when it does not exist yet, and checked.
    fn private_dir(&self) -> Result<&Path, String> {
        let dir = self.dir();
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| self.problem(dir, e))?;
        self.check_dir()?;
        Ok(dir)
    }

    /// Refuses a directory where another user could replace the store or its lock files: one
    /// owned by someone else (root aside), or writable by group or others without the sticky
    /// bit that stops them renaming what is not theirs.
    fn check_dir(&self) -> Result<(), String> {
        let dir = self.dir();
        let metadata = fs::metadata(dir).map_err(|e| self.problem(dir, e))?;
        if !metadata.is_dir() {
            return Err(format!(
                "secret store directory {} is not a directory",
                dir.display()
            ));
        }
        let owner = metadata.uid();
        if owner != effective_uid() && owner != 0 {
            return Err(format!(
                "secret store directory {} belongs to another user (uid {owner}): keep the store \
                 in a directory of your own",
                dir.display()
            ));
        }
        let mode = metadata.mode();
        if mode & 0o022 != 0 && mode & 0o1000 == 0 {
            return Err(format!(
                "secret store directory {} is writable by group or others (mode {:o}), who could \
                 replace the store: restrict it with chmod go-w {}, or keep the store in a \
                 private directory (the default .oauth2-host is created 0700)",
                dir.display(),
                mode & 0o777,
                dir.display()
            ));
        }
        Ok(())
    }

    fn save(&self, contents: &Contents) -> Result<(), String> {
        let dir = self.private_dir()?;
        let temp = self.temp_path();
        let written = write_private(&temp, contents).and_then(|()| {
            fs::rename(&temp, &self.path)?;
            // The rename is durable only once the directory entry is.
            File::open(dir)?.sync_all()
        });
        written.map_err(|e| {
            let _ = fs::remove_file(&temp);
            self.problem(&self.path, e)
        })
    }

    /// Temporary files of writers that were killed before their rename. A write happens only
    /// under the exclusive lock, which this process holds now, so any such file is abandoned.
    /// Failing to remove one costs disk space only.
    fn remove_abandoned_writes(&self) {
        let prefix = format!(".{}.", self.file_name());
        let Ok(entries) = fs::read_dir(self.dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let file_name = file_name.to_string_lossy();
            if file_name.starts_with(&prefix) && file_name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// A name no one can guess in advance, so no one can plant a file or link under it.
    fn temp_path(&self) -> PathBuf {
        let mut random = [0u8; 8];
        // Without randomness the name is still unique to this process and moment; creating it
        // exclusively refuses anything planted there.
        let _ = getrandom::fill(&mut random);
        self.path.with_file_name(format!(
            ".{}.{}.{}.tmp",
            self.file_name(),
            std::process::id(),
            hex("", &random)
        ))
    }

    fn update(&self, change: impl FnOnce(&mut Contents)) -> Result<(), String> {
        let _guard = lock(&self.guard);
        let _across_processes = self.file_lock(true)?;
        self.remove_abandoned_writes();
        let mut contents = self.load()?;
        change(&mut contents);
        let now = unix_now();
        contents
            .tokens
            .retain(|_, (_, expires_at)| expires_at.is_none_or(|at| at > now));
        self.save(&contents)
    }

    /// Reads under a shared lock, so a read never meets a half-done read-modify-write.
    fn read(&self) -> Result<Contents, String> {
        let _guard = lock(&self.guard);
        let _across_processes = self.file_lock(false)?;
        self.load()
    }

    /// An advisory lock on `.<store>.lock` beside the store, shared for reading and exclusive
    /// for a read-modify-write, so two processes writing different names lose neither (the
    /// rename alone makes each write atomic, not the cycle). Released when the file is closed.
    /// Before the first write there is no directory yet, and nothing to lock.
    fn file_lock(&self, exclusive: bool) -> Result<Option<File>, String> {
        let path = self
            .path
            .with_file_name(format!(".{}.lock", self.file_name()));
        if exclusive {
            self.private_dir()?;
        }
        let file = match open_lock_file(&path, exclusive) {
            Ok(file) => file,
            Err(e) if !exclusive && e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.problem(&path, e)),
        };
        check_private_file(&file, &path, "secret store lock file")?;
        wait_for_lock(&file, exclusive, Instant::now() + self.lock_wait).map_err(|e| match e {
            Waited::TooLong => format!(
                "secret store {}: another process has held its lock file {} for over {} s",
                self.path.display(),
                path.display(),
                self.lock_wait.as_secs()
            ),
            Waited::Failed(e) => self.problem(&path, e),
        })?;
        Ok(Some(file))
    }

    /// The lock file of the token lock named `key`: `.<store>.locks/<hash of key>`, so a key,
    /// which the component chooses, never names a path.
    fn key_lock_file(&self, key: &str) -> Result<(File, PathBuf), String> {
        self.private_dir()?;
        let dir = self
            .path
            .with_file_name(format!(".{}.locks", self.file_name()));
        DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .or_else(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(e),
            })
            .map_err(|e| self.problem(&dir, e))?;
        let metadata = fs::symlink_metadata(&dir).map_err(|e| self.problem(&dir, e))?;
        if !metadata.is_dir() || metadata.uid() != effective_uid() || metadata.mode() & 0o077 != 0 {
            return Err(format!(
                "secret store lock directory {} is not a private directory of this user",
                dir.display()
            ));
        }
        let path = dir.join(hex("", &Sha256::digest(key.as_bytes())[..16]));
        let file = open_lock_file(&path, true).map_err(|e| self.problem(&path, e))?;
        check_private_file(&file, &path, "secret store lock file")?;
        Ok((file, path))
    }

    fn problem(&self, path: &Path, error: io::Error) -> String {
        if error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            return format!(
                "secret store: {} is a symbolic link, which is not followed: give the real path",
                path.display()
            );
        }
        format!("secret store {}: {error}", path.display())
    }
}

fn write_private(path: &Path, contents: &Contents) -> io::Result<()> {
    let mut file = open_no_follow(
        OpenOptions::new().write(true).create_new(true).mode(0o600),
        path,
    )?;
    let tokens: Map<String, Value> = contents
        .tokens
        .iter()
        .map(|(key, (value, expires_at))| {
            let mut entry = Map::new();
            entry.insert("value".into(), value.clone().into());
            if let Some(at) = expires_at {
                entry.insert("expires_at".into(), (*at).into());
            }
            (key.clone(), Value::Object(entry))
        })
        .collect();
    let document = serde_json::json!({"secrets": contents.secrets, "tokens": tokens});
    serde_json::to_writer_pretty(&mut file, &document)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Opens without following a symbolic link at `path` and without blocking on a FIFO, so
/// neither a planted link nor a pipe can redirect or hang the store.
pub(crate) fn open_no_follow(options: &mut OpenOptions, path: &Path) -> io::Result<File> {
    options
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path)
}

fn open_lock_file(path: &Path, create: bool) -> io::Result<File> {
    open_no_follow(
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .mode(0o600),
        path,
    )
}

/// Refuses an opened file that is not a regular file of this user, private to them.
pub(crate) fn check_private_file(file: &File, path: &Path, what: &str) -> Result<(), String> {
    let metadata = file
        .metadata()
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if !metadata.is_file() {
        return Err(format!(
            "{what} {} is not a regular file (a pipe, device or directory): give the path of a file",
            path.display()
        ));
    }
    if metadata.uid() != effective_uid() {
        return Err(format!(
            "{what} {} belongs to another user (uid {}): it may have been planted there; use a \
             store of your own",
            path.display(),
            metadata.uid()
        ));
    }
    let mode = metadata.mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "{what} {} is accessible to group or others (mode {:o}); restrict it with: chmod 600 {}",
            path.display(),
            mode & 0o777,
            path.display()
        ));
    }
    Ok(())
}

pub(crate) fn effective_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Why a lock was not had.
enum Waited {
    TooLong,
    Failed(io::Error),
}

/// Takes an advisory lock on `file`, polling until `deadline`: a blocking lock held by another
/// user's process would wait forever.
fn wait_for_lock(file: &File, exclusive: bool, deadline: Instant) -> Result<(), Waited> {
    let mut pause = Duration::from_millis(1);
    loop {
        let tried = if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match tried {
            Ok(()) => return Ok(()),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(e)) => return Err(Waited::Failed(e)),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Waited::TooLong);
        }
        std::thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl SecretStore for FileStore {
    fn get(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self.read()?.secrets.remove(name))
    }

    fn set(&self, name: &str, value: &str) -> Result<(), String> {
        self.update(|contents| {
            contents.secrets.insert(name.to_owned(), value.to_owned());
        })
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        self.update(|contents| {
            contents.secrets.remove(name);
        })
    }
}

impl TokenStore for FileStore {
    fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let now = unix_now();
        let entry = self
            .read()
            .map_err(StoreError::Unavailable)?
            .tokens
            .remove(key);
        Ok(entry
            .filter(|(_, expires_at)| expires_at.is_none_or(|at| at > now))
            .map(|(value, _)| value))
    }

    fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), StoreError> {
        let expires_at = ttl.map(|ttl| unix_now().saturating_add(ttl.as_secs()));
        self.update(|contents| {
            contents
                .tokens
                .insert(key.to_owned(), (value.to_owned(), expires_at));
        })
        .map_err(StoreError::Unavailable)
    }

    /// Under the store file's exclusive lock, so atomic across processes too.
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let now = unix_now();
        let expires_at = ttl.map(|ttl| now.saturating_add(ttl.as_secs()));
        let mut swapped = false;
        self.update(|contents| {
            let current = contents
                .tokens
                .get(key)
                .filter(|(_, expires_at)| expires_at.is_none_or(|at| at > now))
                .map(|(value, _)| value.as_str());
            if current != expected {
                return;
            }
            swapped = true;
            match value {
                Some(value) => {
                    contents
                        .tokens
                        .insert(key.to_owned(), (value.to_owned(), expires_at));
                }
                None => {
                    contents.tokens.remove(key);
                }
            }
        })
        .map_err(StoreError::Unavailable)?;
        Ok(swapped)
    }

    /// This process's lock on `key`, then the key's lock file, so one holder at a time across
    /// threads and processes; both within `wait` (at most [`LOCK_WAIT`]).
    fn lock(&self, key: &str, wait: Duration) -> Result<LockGuard, StoreError> {
        let wait = wait.min(self.lock_wait);
        let deadline = Instant::now() + wait;
        let in_process = self.locks.lock(key, wait)?;
        let (file, _) = self.key_lock_file(key).map_err(StoreError::Unavailable)?;
        wait_for_lock(&file, true, deadline).map_err(|e| match e {
            Waited::TooLong => lock_timeout(wait),
            Waited::Failed(e) => StoreError::Unavailable(format!("secret store lock: {e}")),
        })?;
        Ok(LockGuard::new((in_process, file)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A fresh directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> Self {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "host-harness-{label}-{}-{unique}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&path);
            DirBuilder::new().mode(0o700).create(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o700));
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn exercise(store: &dyn SecretStore) {
        assert_eq!(store.get("client").unwrap(), None);
        store.set("client", "s3cr:t/+&%= ~").unwrap();
        assert_eq!(
            store.get("client").unwrap().as_deref(),
            Some("s3cr:t/+&%= ~")
        );
        store.set("client", "rotated").unwrap();
        assert_eq!(store.get("client").unwrap().as_deref(), Some("rotated"));
        store.remove("client").unwrap();
        assert_eq!(store.get("client").unwrap(), None);
        store.remove("client").unwrap();
    }

    #[test]
    fn memory_store_gets_sets_and_removes() {
        exercise(&crate::MemoryStore::new());
    }

    #[test]
    fn file_store_gets_sets_and_removes() {
        let dir = TempDir::new("roundtrip");
        exercise(&FileStore::open(dir.0.join("store.json")).unwrap());
    }

    #[test]
    fn file_store_creates_private_file_and_directory() {
        let dir = TempDir::new("private");
        let path = dir.0.join("nested").join("store.json");
        let store = FileStore::open(&path).unwrap();
        assert!(!path.exists(), "opening alone writes nothing");
        SecretStore::set(&store, "a", "1").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let on_disk: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(on_disk["secrets"]["a"], "1");
    }

    #[test]
    fn secrets_and_token_state_live_apart_and_the_old_flat_file_is_read() {
        let dir = TempDir::new("namespaces");
        let path = dir.0.join("store.json");
        fs::write(
            &path,
            r#"{"client-secret":"cs","oauth2/token/abc":"{\"access_token\":\"at\"}"}"#,
        )
        .unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let store = FileStore::open(&path).unwrap();
        assert_eq!(
            SecretStore::get(&store, "client-secret")
                .unwrap()
                .as_deref(),
            Some("cs")
        );
        assert_eq!(SecretStore::get(&store, "oauth2/token/abc").unwrap(), None);
        assert_eq!(
            TokenStore::get(&store, "oauth2/token/abc")
                .unwrap()
                .as_deref(),
            Some(r#"{"access_token":"at"}"#)
        );
        TokenStore::set(
            &store,
            "oauth2/pending/p",
            "v",
            Some(Duration::from_secs(600)),
        )
        .unwrap();
        let on_disk: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(on_disk["secrets"]["client-secret"], "cs");
        assert!(on_disk["tokens"]["oauth2/token/abc"]["value"].is_string());
        assert!(
            on_disk["tokens"]["oauth2/pending/p"]["expires_at"]
                .as_u64()
                .unwrap()
                > unix_now()
        );
    }

    #[test]
    fn expired_entries_are_not_read_and_are_removed_on_the_next_write() {
        let dir = TempDir::new("expiry");
        let path = dir.0.join("store.json");
        let store = FileStore::open(&path).unwrap();
        TokenStore::set(&store, "gone", "v", Some(Duration::ZERO)).unwrap();
        assert_eq!(TokenStore::get(&store, "gone").unwrap(), None);
        TokenStore::set(&store, "kept", "v", None).unwrap();
        let on_disk = fs::read_to_string(&path).unwrap();
        assert!(
            !on_disk.contains("gone") && on_disk.contains("kept"),
            "{on_disk}"
        );
    }

    #[test]
    fn file_store_leaves_no_temporary_files() {
        let dir = TempDir::new("temps");
        let store = FileStore::open(dir.0.join("store.json")).unwrap();
        for i in 0..5 {
            SecretStore::set(&store, &format!("k{i}"), "v").unwrap();
        }
        let mut names: Vec<_> = fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, [".store.json.lock", "store.json"]);
        assert_eq!(mode(&dir.0.join(".store.json.lock")), 0o600);
    }

    #[test]
    fn file_store_sees_writes_of_another_handle() {
        let dir = TempDir::new("shared");
        let path = dir.0.join("store.json");
        let writer = FileStore::open(&path).unwrap();
        let reader = FileStore::open(&path).unwrap();
        TokenStore::set(&writer, "token", "t1", None).unwrap();
        assert_eq!(
            TokenStore::get(&reader, "token").unwrap().as_deref(),
            Some("t1")
        );
    }

    #[test]
    fn file_store_refuses_a_file_others_can_read() {
        let dir = TempDir::new("mode");
        let path = dir.0.join("store.json");
        SecretStore::set(&FileStore::open(&path).unwrap(), "a", "hidden-value").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = FileStore::open(&path).unwrap_err();
        assert!(err.contains("group or others"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        assert!(!err.contains("hidden-value"), "{err}");
    }

    #[test]
    fn file_store_reports_a_corrupt_file_without_its_content() {
        let dir = TempDir::new("corrupt");
        let path = dir.0.join("store.json");
        SecretStore::set(&FileStore::open(&path).unwrap(), "a", "1").unwrap();
        for text in [
            "{\"a\": \"hidden-value\",",
            "{\"secrets\": {\"a\": [\"hidden-value\"]}, \"tokens\": {}}",
            "{\"secrets\": {}, \"tokens\": {\"k\": \"hidden-value\"}}",
            "{\"a\": 12345}",
        ] {
            fs::write(&path, text).unwrap();
            let err = FileStore::open(&path).unwrap_err();
            assert!(err.contains("secret store"), "{err}");
            assert!(
                !err.contains("hidden-value") && !err.contains("12345"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_store_path_that_is_not_a_regular_file_is_refused_at_once() {
        let dir = TempDir::new("fifo");
        let fifo = dir.0.join("store.json");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let started = Instant::now();
        let err = FileStore::open(&fifo).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));

        let directory = dir.0.join("dir.json");
        fs::create_dir(&directory).unwrap();
        let err = FileStore::open(&directory).unwrap_err();
        assert!(err.contains("not a regular file"), "{err}");
    }

    #[test]
    fn symbolic_links_are_not_followed() {
        let dir = TempDir::new("links");
        let target = dir.0.join("elsewhere.json");
        SecretStore::set(&FileStore::open(&target).unwrap(), "a", "1").unwrap();
        let link = dir.0.join("store.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = FileStore::open(&link).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");

        // A planted link at the lock file is not followed either.
        let store_path = dir.0.join("other.json");
        let planted = dir.0.join("planted");
        std::os::unix::fs::symlink(&planted, dir.0.join(".other.json.lock")).unwrap();
        let err = SecretStore::set(&FileStore::open(&store_path).unwrap(), "a", "1").unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");
        assert!(!planted.exists(), "nothing was created through the link");
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let dir = TempDir::new("shared-dir");
        fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o777)).unwrap();
        let err = FileStore::open(dir.0.join("store.json")).unwrap_err();
        assert!(err.contains("writable by group or others"), "{err}");
        assert!(err.contains("chmod go-w"), "{err}");

        // With the sticky bit (as /tmp has), others cannot replace what is ours.
        fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o1777)).unwrap();
        let store = FileStore::open(dir.0.join("store.json")).unwrap();
        SecretStore::set(&store, "a", "1").unwrap();
    }

    #[test]
    fn a_held_lock_makes_others_wait_a_bounded_time() {
        let dir = TempDir::new("held");
        let path = dir.0.join("store.json");
        let store = FileStore::open(&path)
            .unwrap()
            .with_lock_wait(Duration::from_millis(200));
        SecretStore::set(&store, "a", "1").unwrap();

        // Another process's lock is another open file description: this one.
        let lock_path = dir.0.join(".store.json.lock");
        let holder = open_lock_file(&lock_path, false).unwrap();
        holder.lock().unwrap();
        let started = Instant::now();
        let err = SecretStore::set(&store, "b", "2").unwrap_err();
        assert!(err.contains("held its lock file"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(holder);
        SecretStore::set(&store, "b", "2").unwrap();

        // A connection's token lock: held by one handle, the other waits, then times out.
        let other = FileStore::open(&path)
            .unwrap()
            .with_lock_wait(Duration::from_millis(200));
        let held = TokenStore::lock(&store, "oauth2/token/x", LOCK_WAIT).unwrap();
        let err = TokenStore::lock(&other, "oauth2/token/x", LOCK_WAIT).unwrap_err();
        assert!(matches!(err, StoreError::LockTimeout(_)), "{err:?}");
        TokenStore::lock(&other, "oauth2/token/y", LOCK_WAIT).unwrap();
        drop(held);
        TokenStore::lock(&other, "oauth2/token/x", LOCK_WAIT).unwrap();
    }

    #[test]
    fn lock_names_never_become_paths() {
        let dir = TempDir::new("lock-names");
        let store = FileStore::open(dir.0.join("store.json")).unwrap();
        let _held = TokenStore::lock(&store, "../../escape", LOCK_WAIT).unwrap();
        let names: Vec<_> = fs::read_dir(dir.0.join(".store.json.locks"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 1);
        assert!(names[0].chars().all(|c| c.is_ascii_hexdigit()), "{names:?}");
        assert!(!dir.0.parent().unwrap().join("escape").exists());
    }

    #[test]
    fn file_store_is_safe_across_threads() {
        let dir = TempDir::new("threads");
        let store = Arc::new(FileStore::open(dir.0.join("store.json")).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    for i in 0..10 {
                        SecretStore::set(&*store, &format!("t{t}-{i}"), "v").unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        for t in 0..4 {
            for i in 0..10 {
                assert!(
                    SecretStore::get(&*store, &format!("t{t}-{i}"))
                        .unwrap()
                        .is_some()
                );
            }
        }
    }
}
