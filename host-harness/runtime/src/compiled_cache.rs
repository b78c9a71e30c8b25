//! The compiled component kept on disk, so a short-lived process skips Cranelift on start.

use std::fs::{DirBuilder, File};
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use oauth2_plugin::config::hex;
use rustix::fs::{Mode, OFlags};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::file_store::effective_uid;

/// The component compiled for `engine`, from `dir` when an earlier run of this user left it
/// there, else compiled now and left there for the next run. A cache that cannot be used or
/// written only costs a compilation: it never fails the load.
pub fn load_or_compile(engine: &Engine, bytes: &[u8], dir: &Path) -> wasmtime::Result<Component> {
    load_or_compile_as(engine, bytes, dir, effective_uid())
}

/// [`load_or_compile`] trusting only a directory and files that `owner` owns.
fn load_or_compile_as(
    engine: &Engine,
    bytes: &[u8],
    dir: &Path,
    owner: u32,
) -> wasmtime::Result<Component> {
    let name = file_name(engine, bytes);
    let dir = private_dir(dir, owner);
    if let Some(component) = dir.as_ref().and_then(|dir| load(engine, dir, &name, owner)) {
        return Ok(component);
    }
    let component = Component::new(engine, bytes)?;
    if let Some(dir) = &dir {
        let _ = store(&component, dir, &name);
    }
    Ok(component)
}

/// A [`Hasher`] that feeds SHA-256: the same input names the same file whatever Rust release
/// built the binary (the standard library's hasher makes no such promise).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(
            digest[..8]
                .try_into()
                .expect("a SHA-256 digest has 32 bytes"),
        )
    }
}

/// Named by the component's content and by everything in the engine that makes compiled code
/// incompatible (wasmtime version, compiler settings, CPU features), so a stale entry is never
/// even opened.
fn file_name(engine: &Engine, bytes: &[u8]) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    hasher.write(&Sha256::digest(bytes));
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex("", &hasher.0.finalize()[..20]) + ".cwasm"
}

/// `dir`, created if missing, opened without following a link, when it is `owner`'s and only
/// theirs. Deserializing runs a file's machine code as it is, so only files that nobody but
/// `owner` could have written are loaded: a directory another user owns (even 0700, even
/// when this process can read it as root) is not trusted.
fn private_dir(dir: &Path, owner: u32) -> Option<OwnedFd> {
    let _ = DirBuilder::new().recursive(true).mode(0o700).create(dir);
    let fd = rustix::fs::open(
        dir,
        OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    owned_privately(&fd, owner).then_some(fd)
}

/// Whether the open file `fd` belongs to `owner`, and no one else may write or read it.
fn owned_privately(fd: &impl AsFd, owner: u32) -> bool {
    rustix::fs::fstat(fd).is_ok_and(|stat| stat.st_uid == owner && stat.st_mode & 0o077 == 0)
}

fn load(engine: &Engine, dir: &OwnedFd, name: &str, owner: u32) -> Option<Component> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let stat = rustix::fs::fstat(&fd).ok()?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile
        || !owned_privately(&fd, owner)
    {
        return None;
    }
    let mut bytes = Vec::new();
    File::from(fd).read_to_end(&mut bytes).ok()?;
    // SAFETY: the file was opened without following a link, in a directory only `owner` (this
    // user) can write, and is a regular file only they can write; `store` wrote it there from a
    // component compiled by an engine with the same compatibility hash (its name says so). A
    // truncated or foreign file is refused by wasmtime's own header checks and compiled afresh.
    unsafe { Component::deserialize(engine, &bytes) }.ok()
}

/// Writes atomically under a name no one can plant a file or link at beforehand: a reader sees
/// the old file or the whole new one, never a partial one.
fn store(component: &Component, dir: &OwnedFd, name: &str) -> std::io::Result<()> {
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(std::io::Error::other)?;
    let temp = format!(".{}.{}.tmp", std::process::id(), hex("", &random));
    let fd = rustix::fs::openat(
        dir,
        temp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    let mut file = File::from(fd);
    let written = file
        .write_all(&bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| Ok(rustix::fs::renameat(dir, temp.as_str(), dir, name)?));
    if written.is_err() {
        let _ = rustix::fs::unlinkat(dir, temp.as_str(), rustix::fs::AtFlags::empty());
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("compiled-cache-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn entries(dir: &Path) -> Vec<PathBuf> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    fn open(dir: &Path) -> OwnedFd {
        private_dir(dir, effective_uid()).expect("a private cache directory")
    }

    #[test]
    fn second_load_comes_from_disk_and_changes_invalidate() {
        let engine = Engine::default();
        let bytes = crate::plugin::EMBEDDED;
        let dir = scratch("reuse");
        load_or_compile(&engine, bytes, &dir).unwrap();
        let cached = entries(&dir);
        assert_eq!(cached.len(), 1, "{cached:?}");
        let cached = &cached[0];
        let name = cached.file_name().unwrap().to_str().unwrap().to_owned();
        assert_eq!(name, file_name(&engine, bytes), "a stable name");
        assert_eq!(
            fs::metadata(cached).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let uid = effective_uid();
        assert!(load(&engine, &open(&dir), &name, uid).is_some());

        // Garbage under the right name is refused and replaced, not run.
        fs::write(cached, b"not compiled code").unwrap();
        assert!(load(&engine, &open(&dir), &name, uid).is_none());
        load_or_compile(&engine, bytes, &dir).unwrap();
        assert!(load(&engine, &open(&dir), &name, uid).is_some());
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
        assert!(entries(&dir).is_empty(), "nothing written or read there");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cache_of_another_user_is_neither_read_nor_written() {
        let engine = Engine::default();
        let bytes = crate::plugin::EMBEDDED;
        let dir = scratch("other-user");
        load_or_compile(&engine, bytes, &dir).unwrap();
        let name = file_name(&engine, bytes);
        let other_user = effective_uid().wrapping_add(1);
        // Seen from another user, this 0700 directory holding valid code under the right name
        // is not theirs: the code is not loaded, and nothing is written there.
        assert!(load(&engine, &open(&dir), &name, effective_uid()).is_some());
        assert!(load(&engine, &open(&dir), &name, other_user).is_none());
        assert!(private_dir(&dir, other_user).is_none());
        fs::remove_file(dir.join(&name)).unwrap();
        load_or_compile_as(&engine, bytes, &dir, other_user).unwrap();
        assert!(entries(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn links_are_not_followed() {
        let engine = Engine::default();
        let bytes = crate::plugin::EMBEDDED;
        let dir = scratch("links");
        load_or_compile(&engine, bytes, &dir).unwrap();
        let name = file_name(&engine, bytes);
        let real = dir.join("real.cwasm");
        fs::rename(dir.join(&name), &real).unwrap();
        std::os::unix::fs::symlink(&real, dir.join(&name)).unwrap();
        assert!(load(&engine, &open(&dir), &name, effective_uid()).is_none());

        let linked_dir = scratch("linked-dir");
        std::os::unix::fs::symlink(&dir, &linked_dir).unwrap();
        assert!(private_dir(&linked_dir, effective_uid()).is_none());
        fs::remove_file(&linked_dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }
}
