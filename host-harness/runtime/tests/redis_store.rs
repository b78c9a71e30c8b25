//! The Redis token store against a real redis-server: the token-store contract (entries,
//! expiry, compare-and-swap, locks) between stores that stand for separate processes, sealing
//! at rest, the near cache, and clear errors for a wrong password or key.

mod redis_server;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use oauth2_runtime::redis_store::RedisStore;
use oauth2_runtime::sealing::SealingKeys;
use oauth2_runtime::{SecretStore, StoreError, TokenStore};
use redis_server::{PASSWORD, RedisServer};

fn keys(seed: u8) -> SealingKeys {
    SealingKeys::from_keys(&[[seed; 32]])
}

fn store(server: &RedisServer) -> RedisStore {
    RedisStore::open(&server.url(), keys(1)).expect("the store opens")
}

#[test]
fn entries_compare_and_swap_and_expire_across_stores() {
    let server = RedisServer::start();
    let (a, b) = (
        store(&server),
        store(&server).with_near_cache(Duration::ZERO),
    );
    let key = "oauth2/token/0123456789abcdef0123456789abcdef";

    assert_eq!(TokenStore::get(&a, key).unwrap(), None);
    assert!(a.compare_and_swap(key, None, Some("one"), None).unwrap());
    assert!(!b.compare_and_swap(key, None, Some("two"), None).unwrap());
    assert_eq!(TokenStore::get(&b, key).unwrap().as_deref(), Some("one"));
    assert!(
        !b.compare_and_swap(key, Some("zero"), Some("two"), None)
            .unwrap()
    );
    assert!(
        b.compare_and_swap(key, Some("one"), Some("two"), None)
            .unwrap()
    );
    assert_eq!(TokenStore::get(&b, key).unwrap().as_deref(), Some("two"));
    assert!(b.compare_and_swap(key, Some("two"), None, None).unwrap());
    assert_eq!(TokenStore::get(&b, key).unwrap(), None);

    let pending = "oauth2/pending/0123456789abcdef0123456789abcdef";
    TokenStore::set(&a, pending, "waiting", Some(Duration::from_millis(300))).unwrap();
    assert_eq!(
        TokenStore::get(&b, pending).unwrap().as_deref(),
        Some("waiting")
    );
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(TokenStore::get(&b, pending).unwrap(), None);
    assert_eq!(TokenStore::get(&a, pending).unwrap(), None);
}

#[test]
fn values_and_secrets_are_sealed_at_rest_and_bound_to_their_names() {
    let server = RedisServer::start();
    let a = store(&server);
    let key = "oauth2/token/aaaa";
    TokenStore::set(&a, key, "access-token-in-clear", None).unwrap();
    SecretStore::set(&a, "client-secret", "client-secret-in-clear").unwrap();

    let dump = server.dump();
    assert_eq!(dump.len(), 2, "{dump:?}");
    for (name, value) in &dump {
        assert!(value.starts_with("v1."), "{name} = {value}");
        assert!(!value.contains("in-clear"), "{name} = {value}");
        assert!(!name.contains("in-clear"), "{name}");
    }
    assert!(
        dump.iter()
            .any(|(name, _)| name == "oauth2-host:entry:{oauth2/token/aaaa}")
    );
    assert!(
        dump.iter()
            .any(|(name, _)| name == "oauth2-host:secret:{client-secret}")
    );
    assert_eq!(
        SecretStore::get(&a, "client-secret").unwrap().as_deref(),
        Some("client-secret-in-clear")
    );

    // A value copied under another name does not open there.
    let mut con = server.connection();
    let sealed = dump
        .iter()
        .find(|(name, _)| name.starts_with("oauth2-host:entry:"))
        .map(|(_, value)| value.clone())
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("oauth2-host:entry:{oauth2/token/bbbb}")
        .arg(&sealed)
        .query(&mut con)
        .unwrap();
    let err = TokenStore::get(&a, "oauth2/token/bbbb").unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("altered or copied")),
        "{err:?}"
    );
}

#[test]
fn a_wrong_key_is_a_clear_error_and_overwrites_nothing() {
    let server = RedisServer::start();
    let right = store(&server);
    let wrong = RedisStore::open(&server.url(), keys(2)).unwrap();
    let key = "oauth2/token/cccc";
    TokenStore::set(&right, key, "token", None).unwrap();
    let before = server.dump();

    let err = TokenStore::get(&wrong, key).unwrap_err();
    let StoreError::Unavailable(message) = &err else {
        panic!("{err:?}");
    };
    assert!(message.contains("does not hold"), "{message}");
    assert!(message.contains(&right_id(&server)), "{message}");
    assert!(
        wrong
            .compare_and_swap(key, Some("token"), Some("new"), None)
            .is_err()
    );
    assert!(
        wrong
            .compare_and_swap(key, None, Some("new"), None)
            .is_err()
    );
    assert_eq!(server.dump(), before);
}

fn right_id(server: &RedisServer) -> String {
    let (_, value) = &server.dump()[0];
    value.split('.').nth(1).unwrap().to_owned()
}

#[test]
fn a_lock_has_one_holder_across_stores_and_threads() {
    let server = RedisServer::start();
    let stores: Vec<Arc<RedisStore>> = (0..3).map(|_| Arc::new(store(&server))).collect();
    let inside = Arc::new(AtomicUsize::new(0));
    let entered = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let (store, inside, entered) = (
                Arc::clone(&stores[i % 3]),
                Arc::clone(&inside),
                Arc::clone(&entered),
            );
            std::thread::spawn(move || {
                for _ in 0..40 {
                    let _held = store
                        .lock("oauth2/token/dddd", Duration::from_secs(20))
                        .unwrap();
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    std::thread::sleep(Duration::from_micros(200));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    entered.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(entered.load(Ordering::SeqCst), 240);
    assert!(
        server
            .dump()
            .iter()
            .all(|(name, _)| !name.contains(":lock:")),
        "every lock was released"
    );
}

#[test]
fn waiting_is_bounded_and_an_abandoned_lock_expires() {
    let server = RedisServer::start();
    let holder = store(&server).with_lock_expiry(Duration::from_millis(800));
    let other = store(&server);
    let abandoned = holder.lock("k", Duration::ZERO).unwrap();

    let started = Instant::now();
    let err = other.lock("k", Duration::from_millis(200)).unwrap_err();
    assert!(matches!(err, StoreError::LockTimeout(1)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // The holder stalls past its expiry: another takes the lock, and the stalled holder's
    // release does not free the new holder's.
    let taken = other.lock("k", Duration::from_secs(5)).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(700));
    drop(abandoned);
    let third = store(&server);
    assert!(matches!(
        third.lock("k", Duration::from_millis(100)),
        Err(StoreError::LockTimeout(_))
    ));
    drop(taken);
    third.lock("k", Duration::from_millis(100)).unwrap();
}

#[test]
fn the_near_cache_serves_reads_for_its_time_but_never_under_the_lock() {
    let server = RedisServer::start();
    let near = store(&server).with_near_cache(Duration::from_millis(500));
    let writer = store(&server);
    let key = "oauth2/token/eeee";
    TokenStore::set(&writer, key, "old", None).unwrap();
    assert_eq!(TokenStore::get(&near, key).unwrap().as_deref(), Some("old"));

    TokenStore::set(&writer, key, "new", None).unwrap();
    assert_eq!(
        TokenStore::get(&near, key).unwrap().as_deref(),
        Some("old"),
        "served from memory"
    );
    {
        let _held = near.lock(key, Duration::from_secs(1)).unwrap();
        assert_eq!(TokenStore::get(&near, key).unwrap().as_deref(), Some("new"));
    }
    TokenStore::set(&writer, key, "newer", None).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        TokenStore::get(&near, key).unwrap().as_deref(),
        Some("newer")
    );

    // Its own writes and removals are seen at once.
    assert!(
        near.compare_and_swap(key, Some("newer"), None, None)
            .unwrap()
    );
    assert_eq!(TokenStore::get(&near, key).unwrap(), None);
}

#[test]
fn a_wrong_password_or_address_is_named_without_the_password() {
    let server = RedisServer::start();
    let wrong = server.url().replace(PASSWORD, "not-the-password-1234");
    let err = RedisStore::open(&wrong, keys(1)).unwrap_err();
    assert!(!err.contains("not-the-password-1234"), "{err}");
    assert!(err.contains("127.0.0.1"), "{err}");
    assert!(
        err.to_lowercase().contains("password") || err.contains("WRONGPASS"),
        "{err}"
    );

    let err = RedisStore::open("redis://127.0.0.1:1/0", keys(1)).unwrap_err();
    assert!(err.contains("Redis at redis://127.0.0.1:1/0"), "{err}");
    let err = RedisStore::open(&format!("{}#insecure", server.url()), keys(1)).unwrap_err();
    assert!(err.contains("#insecure"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    let err = RedisStore::open("http://127.0.0.1:6379", keys(1)).unwrap_err();
    assert!(err.contains("redis:// or rediss://"), "{err}");

    let shown = format!("{:?}", store(&server));
    assert!(!shown.contains(PASSWORD), "{shown}");
}

#[test]
fn a_key_file_must_be_private_and_hold_keys() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("oauth2-keyfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("store.key");
    let line = SealingKeys::new_key_line().unwrap();
    std::fs::write(&path, format!("# current\n{line}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = SealingKeys::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains(&line), "{err}");

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let loaded = SealingKeys::from_file(&path).unwrap();
    assert_eq!(loaded.ids().len(), 1);
    assert!(!format!("{loaded:?}").contains(&line));

    std::fs::write(&path, "garbage-key-material\n").unwrap();
    let err = SealingKeys::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("line 1"), "{err}");
    assert!(!err.contains("garbage-key-material"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A throwaway CA and a certificate for 127.0.0.1 it signed, made by the interop kit's script
/// (which `tests/interop/setup.sh` installs with its Python environment).
fn make_certs(label: &str) -> std::path::PathBuf {
    let kit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop/authlib");
    let python = kit.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/interop/setup.sh",
        python.display()
    );
    let dir = std::env::temp_dir().join(format!("oauth2-redis-tls-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let status = std::process::Command::new(python)
        .arg(kit.join("make_ca.py"))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "make_ca.py failed");
    dir
}

#[test]
fn rediss_with_a_private_ca_is_trusted_only_when_given() {
    let certs = make_certs("store");
    let server = RedisServer::start_tls(&certs);
    assert!(server.url().starts_with("rediss://"));
    let ca = std::fs::read(certs.join("ca.pem")).unwrap();

    let store = RedisStore::open_trusting(&server.url(), keys(1), &ca).expect("TLS with the CA");
    TokenStore::set(&store, "oauth2/token/ffff", "over TLS", None).unwrap();
    assert_eq!(
        TokenStore::get(&store, "oauth2/token/ffff")
            .unwrap()
            .as_deref(),
        Some("over TLS")
    );

    // The system's CA certificates do not know the test's CA.
    let err = RedisStore::open(&server.url(), keys(1)).unwrap_err();
    assert!(err.starts_with("Redis at rediss://"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");

    let plain = server.url().replacen("rediss://", "redis://", 1);
    let err = RedisStore::open_trusting(&plain, keys(1), &ca).unwrap_err();
    assert!(err.contains("rediss:// (TLS) only"), "{err}");
    std::fs::remove_dir_all(&certs).unwrap();
}
