//! The component's own state (tokens, pending authorizations, client-auth memos) and the named
//! locks that make a refresh happen once.

use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use crate::bindings::StoreError;

/// The token store the component imports. Keys and values are the component's; errors never
/// contain a value.
pub trait TokenStore: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Writes `value` under `key`; with `ttl`, the entry is gone once that much time passed.
    fn set(&self, key: &str, value: &str, ttl: Option<Duration>) -> Result<(), StoreError>;
    /// Replaces the entry with `value` (`None`: removes it) if it is still `expected` (`None`:
    /// there is none), as one atomic step for everyone sharing the store; `false`, and nothing
    /// changed, when it is not.
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Option<&str>,
        value: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError>;
    /// Takes the lock named `key`, waiting at most `wait` for another holder (another thread,
    /// or for a shared store another process) to release it. Held until the guard is dropped.
    fn lock(&self, key: &str, wait: Duration) -> Result<LockGuard, StoreError>;
}

/// A lock taken from a [`TokenStore`]; dropping it releases the lock.
pub struct LockGuard {
    _held: Box<dyn Any + Send>,
}

impl LockGuard {
    /// A guard whose release is dropping `held`.
    pub fn new(held: impl Any + Send) -> Self {
        Self {
            _held: Box::new(held),
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

/// The message for a lock that was not released within `waited`.
pub fn lock_timeout(waited: Duration) -> StoreError {
    StoreError::LockTimeout(u32::try_from(waited.as_secs().max(1)).unwrap_or(u32::MAX))
}

/// Named locks within one process. A name's entry exists only while the lock is held, so the
/// table never grows with the names it has seen.
#[derive(Debug, Default)]
pub struct KeyLocks {
    held: Mutex<HashSet<String>>,
    released: Condvar,
}

fn lock_table(mutex: &Mutex<HashSet<String>>) -> MutexGuard<'_, HashSet<String>> {
    // The set is consistent whenever the mutex is released, even by a panicking thread.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl KeyLocks {
    /// Takes `key`, waiting at most `wait`.
    pub fn lock(self: &Arc<Self>, key: &str, wait: Duration) -> Result<KeyLock, StoreError> {
        let deadline = Instant::now() + wait;
        let mut held = lock_table(&self.held);
        while held.contains(key) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(lock_timeout(wait));
            }
            held = self
                .released
                .wait_timeout(held, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
        held.insert(key.to_owned());
        Ok(KeyLock {
            locks: Arc::clone(self),
            key: key.to_owned(),
        })
    }

    /// Whether a thread of this process holds `key` now.
    pub fn is_held(&self, key: &str) -> bool {
        lock_table(&self.held).contains(key)
    }

    /// How many names are locked now.
    pub fn len(&self) -> usize {
        lock_table(&self.held).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One name of [`KeyLocks`], held until dropped.
#[derive(Debug)]
pub struct KeyLock {
    locks: Arc<KeyLocks>,
    key: String,
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        lock_table(&self.locks.held).remove(&self.key);
        self.locks.released.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn one_holder_per_name_and_released_names_are_forgotten() {
        let locks = Arc::new(KeyLocks::default());
        let in_section = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (locks, in_section) = (Arc::clone(&locks), Arc::clone(&in_section));
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let _held = locks.lock("a", Duration::from_secs(10)).unwrap();
                        assert_eq!(in_section.fetch_add(1, Ordering::SeqCst), 0);
                        in_section.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert!(locks.is_empty());

        let _a = locks.lock("a", Duration::ZERO).unwrap();
        let _b = locks.lock("b", Duration::ZERO).unwrap();
        assert_eq!(locks.len(), 2);
    }

    #[test]
    fn waiting_is_bounded() {
        let locks = Arc::new(KeyLocks::default());
        let _held = locks.lock("a", Duration::ZERO).unwrap();
        let started = Instant::now();
        let err = locks.lock("a", Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, StoreError::LockTimeout(1)), "{err:?}");
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
