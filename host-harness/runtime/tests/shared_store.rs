//! One token per connection across processes: worker processes (this test binary run again)
//! decorate requests for one connection through a shared store, Redis or the file store, while
//! its short-lived token expires again and again, against a provider that rotates refresh
//! tokens and revokes the whole grant when a used one comes back. Then the faults: Redis
//! restarted mid-run, a worker killed while it holds the lock, a wrong encryption key.

mod redis_server;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use oauth2_runtime::redis_store::RedisStore;
use oauth2_runtime::sealing::{KEY_FILE_VARIABLE, SealingKeys};
use oauth2_runtime::{
    CallError, ClientAuth, ConnectionConfig, FileStore, GrantType, Plugin, SecretStore, Services,
    SystemClock, TokenStore, UreqClient,
};
use oauth2_test_provider::{Provider, ProviderConfig};
use redis_server::{PASSWORD as REDIS_PASSWORD, RedisServer};

const WORKERS: usize = 4;
const THREADS: usize = 4;
const PER_THREAD: usize = 2_000;
/// Spreads a thread's decorations over about 13 s: at least five lifetimes of the token.
const PAUSE: Duration = Duration::from_micros(6_500);
const LIFETIME_SECS: u64 = 2;
const CLIENT_SECRET: &str = "shared-store-client-secret-91c2";
const PASSWORD: &str = "shared-store-password-5d1e";
const API_URL: &str = "https://api.example.com/v1/items";

const WORKER_ENV: &str = "OAUTH2_SHARED_STORE_WORKER";
const STORE_ENV: &str = "OAUTH2_SHARED_STORE";
const TOKEN_URL_ENV: &str = "OAUTH2_SHARED_STORE_TOKEN_URL";

fn provider(lifetime_secs: u64) -> Provider {
    let mut config = ProviderConfig::demo("http://127.0.0.1/callback");
    config.clients[0].secret = Some(CLIENT_SECRET.to_owned());
    config.users[0].password = PASSWORD.to_owned();
    config.access_token_lifetime_secs = lifetime_secs;
    config.rotate_refresh_tokens = true;
    Provider::start(config).expect("the provider starts")
}

fn seed_secrets(store: &dyn SecretStore) {
    store.set("client-secret", CLIENT_SECRET).unwrap();
    store.set("alice-password", PASSWORD).unwrap();
}

fn connection(token_url: &str) -> ConnectionConfig {
    ConnectionConfig {
        client_secret_name: Some("client-secret".into()),
        username: Some("alice".into()),
        password_name: Some("alice-password".into()),
        client_auth: ClientAuth::Basic,
        ..ConnectionConfig::new(GrantType::Password, token_url, "demo-client")
    }
}

/// A store named as the CLI names it: a `redis://` URL (keys from the environment) or a path.
fn open_store(store: &str) -> (Arc<dyn SecretStore>, Arc<dyn TokenStore>) {
    if store.starts_with("redis://") {
        let keys = SealingKeys::from_env().expect("the key file loads");
        let redis = Arc::new(RedisStore::open(store, keys).expect("Redis opens"));
        (redis.clone(), redis)
    } else {
        let file = Arc::new(FileStore::open(store).expect("the file store opens"));
        (file.clone(), file)
    }
}

fn services(store: &str) -> Services {
    let (secrets, tokens) = open_store(store);
    Services {
        http: Arc::new(UreqClient::new()),
        secrets,
        tokens,
        clock: Arc::new(SystemClock),
    }
}

fn cache_dir() -> PathBuf {
    std::env::temp_dir().join(format!("oauth2-shared-store-cache-{}", std::process::id()))
}

/// A private directory with a key file in it, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = std::env::temp_dir().join(format!("oauth2-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        let mut key_file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(dir.join("store.key"))
            .unwrap();
        std::io::Write::write_all(
            &mut key_file,
            format!("{}\n", SealingKeys::new_key_line().unwrap()).as_bytes(),
        )
        .unwrap();
        Self(dir)
    }

    fn key_file(&self) -> PathBuf {
        self.0.join("store.key")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one worker process did.
#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    failed: usize,
    first_error: String,
}

/// The worker: THREADS threads of PER_THREAD decorations, then one summary line.
fn work() {
    let store = std::env::var(STORE_ENV).unwrap();
    let token_url = std::env::var(TOKEN_URL_ENV).unwrap();
    let plugin = Arc::new(Plugin::load(None, Some(&cache_dir())).expect("the component loads"));
    let services = Arc::new(services(&store));
    let config = Arc::new(connection(&token_url));
    let failed = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(String::new()));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (plugin, services, config) = (plugin.clone(), services.clone(), config.clone());
            let (ok, failed, first_error) = (ok.clone(), failed.clone(), first_error.clone());
            std::thread::spawn(move || {
                for _ in 0..PER_THREAD {
                    let headers = plugin
                        .instance(&services)
                        .and_then(|mut instance| instance.authorization_headers(&config, API_URL));
                    match headers {
                        Ok(headers) if headers.0.len() == 1 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            let mut first = first_error.lock().unwrap();
                            if first.is_empty() {
                                *first = format!("{:?}", other.map(|h| h.0.len()));
                            }
                        }
                    }
                    std::thread::sleep(PAUSE);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    println!(
        "WORKER ok={} failed={} first_error={}",
        ok.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst),
        first_error.lock().unwrap().replace('\n', " ")
    );
}

fn parse_tally(stdout: &str) -> Tally {
    let line = stdout
        .lines()
        // libtest prints the test's name before it, on the same line.
        .find_map(|line| line.split_once("WORKER ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no summary from the worker:\n{stdout}"));
    let mut tally = Tally::default();
    let (counts, error) = line.split_once(" first_error=").unwrap();
    tally.first_error = error.to_owned();
    for part in counts.split(' ') {
        let (name, value) = part.split_once('=').unwrap();
        let value = value.parse().unwrap();
        match name {
            "ok" => tally.ok = value,
            "failed" => tally.failed = value,
            _ => panic!("unknown field {name}"),
        }
    }
    tally
}

fn this_test(name: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", name, "--nocapture", "--test-threads=1"]);
    command
}

/// Seeds the connection's token, runs the workers against `store`, and checks the provider's
/// own count: no replayed refresh token, one refresh per token generation, no new grant, and
/// the stored refresh token is the provider's latest.
fn run_workers(name: &str, store: &str, key_file: &Path) {
    let provider = provider(LIFETIME_SECS);
    let services = services_with_key(store, key_file);
    seed_secrets(&*services.secrets);
    let plugin = Plugin::load(None, Some(&cache_dir())).unwrap();
    plugin
        .ensure_token(&services, &connection(&provider.token_url()))
        .expect("the first token");

    let started = Instant::now();
    let children: Vec<_> = (0..WORKERS)
        .map(|_| {
            this_test(name)
                .env(WORKER_ENV, "1")
                .env(STORE_ENV, store)
                .env(TOKEN_URL_ENV, provider.token_url())
                .env(KEY_FILE_VARIABLE, key_file)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut total_ok = 0;
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "a worker failed:\n{stdout}\n{stderr}"
        );
        let tally = parse_tally(&stdout);
        assert_eq!(tally.failed, 0, "failed decorations: {tally:?}\n{stderr}");
        assert_eq!(tally.ok, THREADS * PER_THREAD, "{tally:?}");
        total_ok += tally.ok;
    }
    let elapsed = started.elapsed();

    let refreshes = provider.token_request_count("refresh_token");
    // With rotation, a second refresh of one token generation would present a used refresh
    // token, which the provider counts and answers by revoking the grant.
    assert_eq!(
        provider.refresh_replays(),
        0,
        "a used refresh token came back"
    );
    assert!(
        refreshes >= 5,
        "the run spans at least five expiries: {} refreshes in {elapsed:?}",
        refreshes
    );
    // Tokens live between LIFETIME_SECS - 1 and LIFETIME_SECS seconds (whole-second expiry).
    assert!(
        refreshes as u64 <= elapsed.as_secs() / (LIFETIME_SECS - 1) + 2,
        "more refreshes ({}) than expiries in {elapsed:?}",
        refreshes
    );
    assert_eq!(provider.token_request_count("password"), 1, "no new grant");
    let live = provider.live_refresh_tokens();
    assert_eq!(live.len(), 1, "one grant, one live refresh token");
    let stored = plugin
        .ensure_token(&services, &connection(&provider.token_url()))
        .unwrap();
    assert_eq!(
        stored.refresh_token.as_ref().map(|t| t.secret().to_owned()),
        Some(live[0].clone()),
        "the stored refresh token is the provider's latest"
    );
    if store.starts_with("redis://") {
        check_at_rest(store, &provider);
    }
    println!(
        "{name}: {total_ok} decorations by {WORKERS} processes x {THREADS} threads in \
         {elapsed:.1?}, {} refreshes, 0 replays",
        refreshes
    );
}

fn services_with_key(store: &str, key_file: &Path) -> Services {
    if store.starts_with("redis://") {
        let keys = SealingKeys::from_file(key_file).unwrap();
        let redis = Arc::new(RedisStore::open(store, keys).unwrap());
        Services {
            http: Arc::new(UreqClient::new()),
            secrets: redis.clone(),
            tokens: redis,
            clock: Arc::new(SystemClock),
        }
    } else {
        services(store)
    }
}

/// No secret, password or token the provider knows, in clear, in any Redis key or value.
fn check_at_rest(url: &str, provider: &Provider) {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert!(!keys.is_empty());
    let mut secrets = provider.known_tokens();
    secrets.extend([CLIENT_SECRET.to_owned(), PASSWORD.to_owned()]);
    for key in keys {
        let value: String = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
        assert!(value.starts_with("v1."), "{key} is not sealed");
        for secret in &secrets {
            assert!(!key.contains(secret.as_str()) && !value.contains(secret.as_str()));
        }
    }
}

#[test]
fn workers_share_one_token_through_redis() {
    if std::env::var_os(WORKER_ENV).is_some() {
        return work();
    }
    let server = RedisServer::start();
    let scratch = Scratch::new("shared-redis");
    run_workers(
        "workers_share_one_token_through_redis",
        &server.url(),
        &scratch.key_file(),
    );
}

#[test]
fn workers_share_one_token_through_the_file_store() {
    if std::env::var_os(WORKER_ENV).is_some() {
        return work();
    }
    let scratch = Scratch::new("shared-file");
    let store = scratch.0.join("store.json");
    run_workers(
        "workers_share_one_token_through_the_file_store",
        store.to_str().unwrap(),
        &scratch.key_file(),
    );
}

#[test]
fn steps_fail_clearly_while_redis_is_down_and_recover_after() {
    let mut server = RedisServer::start();
    let provider = provider(3600);
    let store = Arc::new(
        RedisStore::open(&server.url(), SealingKeys::from_keys(&[[9; 32]]))
            .unwrap()
            .with_near_cache(Duration::ZERO),
    );
    seed_secrets(&*store);
    let services = Arc::new(Services {
        http: Arc::new(UreqClient::new()),
        secrets: store.clone(),
        tokens: store.clone(),
        clock: Arc::new(SystemClock),
    });
    let plugin = Arc::new(Plugin::load(None, Some(&cache_dir())).unwrap());
    let config = Arc::new(connection(&provider.token_url()));
    let first = plugin
        .decorate_request(&services, &config, &api_request())
        .unwrap();
    let before = server.dump();

    let stop = Arc::new(AtomicBool::new(false));
    let down = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (plugin, services, config) = (plugin.clone(), services.clone(), config.clone());
            let (stop, down, outcomes) = (stop.clone(), down.clone(), outcomes.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let was_down = down.load(Ordering::SeqCst);
                    let result = plugin.decorate_request(&services, &config, &api_request());
                    outcomes
                        .lock()
                        .unwrap()
                        .push((was_down, down.load(Ordering::SeqCst), result));
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    down.store(true, Ordering::SeqCst);
    server.stop();
    std::thread::sleep(Duration::from_millis(700));
    server.restart();
    down.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(700));
    stop.store(true, Ordering::SeqCst);
    for thread in threads {
        thread.join().unwrap();
    }

    let outcomes = outcomes.lock().unwrap();
    let failures: Vec<String> = outcomes
        .iter()
        .filter(|(started_down, ended_down, _)| *started_down && *ended_down)
        .filter_map(|(_, _, result)| result.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert!(!failures.is_empty(), "steps while Redis was down failed");
    for failure in &failures {
        assert!(failure.contains("Redis at redis://"), "{failure}");
        assert!(!failure.contains(REDIS_PASSWORD), "{failure}");
    }
    let recovered = outcomes
        .iter()
        .rev()
        .take_while(|(started_down, _, _)| !*started_down)
        .filter(|(_, _, result)| {
            result
                .as_ref()
                .is_ok_and(|request| request.headers == first.headers)
        })
        .count();
    assert!(
        recovered > 10,
        "steps after the restart use the same token: {recovered}"
    );
    assert_eq!(server.dump(), before, "nothing written was lost");
    assert_eq!(provider.token_request_count("password"), 1);
    assert_eq!(provider.token_request_count("refresh_token"), 0);
}

fn api_request() -> oauth2_runtime::HttpRequest {
    oauth2_runtime::HttpRequest {
        method: "GET".into(),
        url: API_URL.into(),
        headers: vec![],
        body: vec![],
    }
}

/// A worker killed while it holds the connection's lock: the others wait for the lock's
/// expiry, then one refreshes, once, with the refresh token the dead worker never spent.
#[test]
fn a_worker_killed_holding_the_lock_stops_no_one_for_longer_than_its_expiry() {
    const NAME: &str = "a_worker_killed_holding_the_lock_stops_no_one_for_longer_than_its_expiry";
    const EXPIRY: Duration = Duration::from_secs(3);
    if let Some(key) = std::env::var_os(WORKER_ENV) {
        let url = std::env::var(STORE_ENV).unwrap();
        let store = RedisStore::open(&url, SealingKeys::from_env().unwrap())
            .unwrap()
            .with_lock_expiry(EXPIRY);
        let _held = store
            .lock(key.to_str().unwrap(), Duration::from_secs(5))
            .unwrap();
        println!("LOCKED");
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let server = RedisServer::start();
    let scratch = Scratch::new("killed-holder");
    let provider = provider(LIFETIME_SECS);
    let keys = SealingKeys::from_file(&scratch.key_file()).unwrap();
    let store = Arc::new(
        RedisStore::open(&server.url(), keys)
            .unwrap()
            .with_lock_expiry(EXPIRY),
    );
    seed_secrets(&*store);
    let services = Services {
        http: Arc::new(UreqClient::new()),
        secrets: store.clone(),
        tokens: store.clone(),
        clock: Arc::new(SystemClock),
    };
    let plugin = Plugin::load(None, Some(&cache_dir())).unwrap();
    let config = connection(&provider.token_url());
    plugin.ensure_token(&services, &config).unwrap();
    let token_key = server
        .dump()
        .into_iter()
        .find_map(|(name, _)| {
            name.strip_prefix("oauth2-host:entry:{")
                .and_then(|rest| rest.strip_suffix('}'))
                .filter(|key| key.starts_with("oauth2/token/"))
                .map(str::to_owned)
        })
        .expect("the token entry");

    let mut child = this_test(NAME)
        .env(WORKER_ENV, &token_key)
        .env(STORE_ENV, server.url())
        .env(KEY_FILE_VARIABLE, scratch.key_file())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|line| line.is_ok_and(|line| line.ends_with("LOCKED"))),
        "the worker took the lock"
    );
    let killed_at = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();

    // Let the token expire meanwhile, so the next step must refresh under the lock.
    std::thread::sleep(Duration::from_secs(LIFETIME_SECS));
    let token = plugin
        .ensure_token(&services, &config)
        .expect("a refreshed token");
    assert!(
        killed_at.elapsed() >= EXPIRY - Duration::from_millis(500),
        "the lock outlived its holder until its expiry"
    );
    assert!(token.access_token.secret().len() > 10);
    assert_eq!(provider.token_request_count("refresh_token"), 1);
    assert_eq!(provider.refresh_replays(), 0);
}

#[test]
fn a_wrong_encryption_key_is_a_clear_error_and_overwrites_nothing() {
    let server = RedisServer::start();
    let provider = provider(LIFETIME_SECS);
    let right =
        Arc::new(RedisStore::open(&server.url(), SealingKeys::from_keys(&[[3; 32]])).unwrap());
    seed_secrets(&*right);
    let plugin = Plugin::load(None, Some(&cache_dir())).unwrap();
    let config = connection(&provider.token_url());
    let with = |store: Arc<RedisStore>| Services {
        http: Arc::new(UreqClient::new()),
        secrets: store.clone(),
        tokens: store,
        clock: Arc::new(SystemClock),
    };
    plugin.ensure_token(&with(right.clone()), &config).unwrap();
    let before = server.dump();

    let wrong =
        Arc::new(RedisStore::open(&server.url(), SealingKeys::from_keys(&[[4; 32]])).unwrap());
    std::thread::sleep(Duration::from_secs(LIFETIME_SECS));
    for _ in 0..3 {
        let err = plugin
            .ensure_token(&with(wrong.clone()), &config)
            .expect_err("nothing opens with the wrong key");
        let message = err.to_string();
        assert!(
            message.contains("store key file does not hold"),
            "{message}"
        );
        assert!(matches!(err, CallError::OAuth(_)), "{err:?}");
    }
    assert_eq!(server.dump(), before, "nothing was overwritten");
    assert_eq!(provider.token_request_count("refresh_token"), 0);
}
