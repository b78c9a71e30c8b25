//! Where client secrets, passwords and tokens live: in memory, or in a private JSON file.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The secret storage the component imports. Errors are messages for the user and never
/// contain a secret value.
pub trait SecretStore: Send + Sync {
    fn get(&self, name: &str) -> Result<Option<String>, String>;
    fn set(&self, name: &str, value: &str) -> Result<(), String>;
    /// Removing an absent name succeeds.
    fn remove(&self, name: &str) -> Result<(), String>;
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the data consistent before it can panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A store that lives as long as the process.
#[derive(Default)]
pub struct MemoryStore {
    secrets: Mutex<HashMap<String, String>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every entry, sorted by name: for tests that prove a failure changed nothing.
    pub fn entries(&self) -> Vec<(String, String)> {
        let mut entries: Vec<_> = lock(&self.secrets).clone().into_iter().collect();
        entries.sort();
        entries
    }
}

// The values are secrets: only the names are shown.
impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<String> = lock(&self.secrets).keys().cloned().collect();
        names.sort();
        f.debug_struct("MemoryStore")
            .field("names", &names)
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

/// A JSON object `{name: value}` in a file only its owner may read (mode 0600).
///
/// The file is read on every call, so another process's writes are seen; each write replaces
/// the whole file atomically, so a crash never leaves it half-written; and a lock file beside it
/// makes each read-modify-write whole across processes, so none is lost.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    // Serialises read-modify-write cycles of the threads of this process.
    guard: Mutex<()>,
}

impl FileStore {
    /// Opens the store at `path`; the file and its directory are created on the first write.
    /// An existing file is checked now, so a bad store is reported before any work starts.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, String> {
        let store = Self {
            path: path.into(),
            guard: Mutex::new(()),
        };
        store.load()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<BTreeMap<String, String>, String> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(self.problem(e)),
        };
        let mode = file
            .metadata()
            .map_err(|e| self.problem(e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "secret store {} is accessible to group or others (mode {:o}); \
                 restrict it with: chmod 600 {}",
                self.path.display(),
                mode & 0o777,
                self.path.display()
            ));
        }
        // serde_json's messages give the position of a syntax error, never the text around it.
        serde_json::from_reader(io::BufReader::new(file)).map_err(|e| {
            format!(
                "secret store {} is not a JSON object of strings: {e}",
                self.path.display()
            )
        })
    }

    /// The store's directory, created owner-only when it does not exist yet.
    fn private_dir(&self) -> Result<&Path, String> {
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| self.problem(e))?;
        Ok(dir)
    }

    fn save(&self, secrets: &BTreeMap<String, String>) -> Result<(), String> {
        let dir = self.private_dir()?;

        let temp = self.temp_path();
        let written = write_private(&temp, secrets).and_then(|()| {
            fs::rename(&temp, &self.path)?;
            // The rename is durable only once the directory entry is.
            File::open(dir)?.sync_all()
        });
        written.map_err(|e| {
            let _ = fs::remove_file(&temp);
            self.problem(e)
        })
    }

    /// Temporary files of writers that were killed before their rename. A write happens only
    /// under the exclusive lock, which this process holds now, so any such file is abandoned.
    /// Failing to remove one costs disk space only.
    fn remove_abandoned_writes(&self) {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let prefix = format!(".{}.", name.to_string_lossy());
        let Ok(entries) = fs::read_dir(dir) else {
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

    fn temp_path(&self) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        self.path
            .with_file_name(format!(".{name}.{}.{unique}.tmp", std::process::id()))
    }

    fn update(&self, change: impl FnOnce(&mut BTreeMap<String, String>)) -> Result<(), String> {
        let _guard = lock(&self.guard);
        let _across_processes = self.file_lock(true)?;
        self.remove_abandoned_writes();
        let mut secrets = self.load()?;
        change(&mut secrets);
        self.save(&secrets)
    }

    /// An advisory lock on `.<store>.lock` beside the store, shared for reading and exclusive
    /// for a read-modify-write, so two processes writing different names lose neither (the
    /// rename alone makes each write atomic, not the cycle). Released when the file is closed.
    /// Before the first write there is no directory yet, and nothing to lock.
    fn file_lock(&self, exclusive: bool) -> Result<Option<File>, String> {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = self.path.with_file_name(format!(".{name}.lock"));
        if exclusive {
            self.private_dir()?;
        }
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(exclusive)
            .truncate(false)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if !exclusive && e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.problem(e)),
        };
        let locked = if exclusive {
            file.lock()
        } else {
            file.lock_shared()
        };
        locked.map_err(|e| self.problem(e))?;
        Ok(Some(file))
    }

    fn problem(&self, error: io::Error) -> String {
        format!("secret store {}: {error}", self.path.display())
    }
}

fn write_private(path: &Path, secrets: &BTreeMap<String, String>) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    serde_json::to_writer_pretty(&mut file, secrets)?;
    file.write_all(b"\n")?;
    file.sync_all()
}

impl SecretStore for FileStore {
    fn get(&self, name: &str) -> Result<Option<String>, String> {
        let _guard = lock(&self.guard);
        let _across_processes = self.file_lock(false)?;
        Ok(self.load()?.remove(name))
    }

    fn set(&self, name: &str, value: &str) -> Result<(), String> {
        self.update(|secrets| {
            secrets.insert(name.to_owned(), value.to_owned());
        })
    }

    fn remove(&self, name: &str) -> Result<(), String> {
        self.update(|secrets| {
            secrets.remove(name);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
            Self(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
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
        exercise(&MemoryStore::new());
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
        store.set("a", "1").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let on_disk: BTreeMap<String, String> =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(on_disk.get("a").map(String::as_str), Some("1"));
    }

    #[test]
    fn file_store_leaves_no_temporary_files() {
        let dir = TempDir::new("temps");
        let store = FileStore::open(dir.0.join("store.json")).unwrap();
        for i in 0..5 {
            store.set(&format!("k{i}"), "v").unwrap();
        }
        let mut names: Vec<_> = fs::read_dir(&dir.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, [".store.json.lock", "store.json"]);
        let lock_mode = fs::metadata(dir.0.join(".store.json.lock"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(lock_mode & 0o777, 0o600);
    }

    #[test]
    fn file_store_sees_writes_of_another_handle() {
        let dir = TempDir::new("shared");
        let path = dir.0.join("store.json");
        let writer = FileStore::open(&path).unwrap();
        let reader = FileStore::open(&path).unwrap();
        writer.set("token", "t1").unwrap();
        assert_eq!(reader.get("token").unwrap().as_deref(), Some("t1"));
    }

    #[test]
    fn file_store_refuses_a_file_others_can_read() {
        let dir = TempDir::new("mode");
        let path = dir.0.join("store.json");
        FileStore::open(&path)
            .unwrap()
            .set("a", "hidden-value")
            .unwrap();
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
        FileStore::open(&path).unwrap().set("a", "1").unwrap();
        fs::write(&path, "{\"a\": \"hidden-value\",").unwrap();
        let err = FileStore::open(&path).unwrap_err();
        assert!(err.contains("not a JSON object"), "{err}");
        assert!(!err.contains("hidden-value"), "{err}");
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
                        store.set(&format!("t{t}-{i}"), "v").unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        for t in 0..4 {
            for i in 0..10 {
                assert!(store.get(&format!("t{t}-{i}")).unwrap().is_some());
            }
        }
    }
}
