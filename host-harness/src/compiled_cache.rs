//! The compiled component kept on disk, so a short-lived process skips Cranelift on start.

use std::fs::{self, DirBuilder, OpenOptions};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oauth2_plugin::config::hex;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The component compiled for `engine`, from `dir` when an earlier run left it there, else
/// compiled now and left there for the next run. A cache that cannot be used or written only
/// costs a compilation: it never fails the load.
pub fn load_or_compile(engine: &Engine, bytes: &[u8], dir: &Path) -> wasmtime::Result<Component> {
    let usable_dir = private_dir(dir);
    let path = usable_dir
        .as_ref()
        .map(|dir| dir.join(file_name(engine, bytes)));
    if let Some(component) = path.as_deref().and_then(|path| load(engine, path)) {
        return Ok(component);
    }
    let component = Component::new(engine, bytes)?;
    if let (Some(dir), Some(path)) = (&usable_dir, &path) {
        let _ = store(&component, dir, path);
    }
    Ok(component)
}

/// Named by the component's content and by everything in the engine that makes compiled code
/// incompatible (wasmtime version, compiler settings, CPU features), so a stale entry is never
/// even opened.
fn file_name(engine: &Engine, bytes: &[u8]) -> String {
    let mut engine_hash = DefaultHasher::new();
    engine
        .precompile_compatibility_hash()
        .hash(&mut engine_hash);
    let digest = Sha256::digest(bytes);
    format!(
        "{}-{:016x}.cwasm",
        hex("", &digest[..16]),
        engine_hash.finish()
    )
}

/// `dir`, created if missing, when only its owner can enter it. Deserializing runs the file's
/// machine code as it is, so only files that nobody else could have written are loaded: a
/// directory of mode 0700 that this process can read belongs to this user (or it is root).
fn private_dir(dir: &Path) -> Option<PathBuf> {
    let _ = DirBuilder::new().recursive(true).mode(0o700).create(dir);
    let metadata = fs::symlink_metadata(dir).ok()?;
    (metadata.is_dir() && metadata.permissions().mode() & 0o077 == 0).then(|| dir.to_path_buf())
}

fn load(engine: &Engine, path: &Path) -> Option<Component> {
    let metadata = fs::symlink_metadata(path).ok()?;
    if !metadata.is_file() || metadata.permissions().mode() & 0o077 != 0 {
        return None;
    }
    // SAFETY: the file lies in a directory only this user can write (`private_dir`), and
    // `store` wrote it there from a component compiled by an engine with the same
    // compatibility hash (its name says so). An unreadable or truncated file is refused by
    // wasmtime's own header checks and compiled afresh.
    unsafe { Component::deserialize_file(engine, path) }.ok()
}

/// Writes atomically: a reader sees the old file or the whole new one, never a partial one.
fn store(component: &Component, dir: &Path, path: &Path) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    let temp = dir.join(format!(".{}.tmp", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("compiled-cache-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn second_load_comes_from_disk_and_changes_invalidate() {
        let engine = Engine::default();
        let bytes = crate::plugin::EMBEDDED;
        let dir = scratch("reuse");
        load_or_compile(&engine, bytes, &dir).unwrap();
        let entries: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        let cached = &entries[0];
        assert_eq!(
            fs::metadata(cached).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert!(load(&engine, cached).is_some());

        // Garbage under the right name is refused and replaced, not run.
        fs::write(cached, b"not compiled code").unwrap();
        assert!(load(&engine, cached).is_none());
        load_or_compile(&engine, bytes, &dir).unwrap();
        assert!(load(&engine, cached).is_some());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_others_can_write_is_not_trusted() {
        let engine = Engine::default();
        let bytes = crate::plugin::EMBEDDED;
        let dir = scratch("shared");
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        load_or_compile(&engine, bytes, &dir).unwrap();
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            0,
            "nothing written or read there"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
