//! Many connector steps for one connection at once: 8 threads x 2,000 decorations while the
//! access token expires several times, against a provider that rotates refresh tokens and
//! refuses a replayed one. The component takes the connection's lock in the token store before
//! it asks for a token and reads the entry again once it has it, so there is one refresh per
//! expiry; without it, steps that see the same stale token spend the same refresh token, and all
//! but one fail with "authorize again".

#![cfg(not(target_arch = "wasm32"))]

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use oauth2_runtime::{ClientAuth, ConnectionConfig, GrantType, HttpRequest, SecretStore};
use oauth2_test_provider::Provider;

const THREADS: usize = 8;
const PER_THREAD: usize = 2_000;
/// The provider's access token lifetime; the component renews it a tenth early.
const LIFETIME_SECS: u64 = 60;
/// The clock moves `STEP_SECS` after every `STEP_EVERY` decorations, all threads together.
const STEP_SECS: u64 = 20;
const STEP_EVERY: usize = 1_000;

/// A provider of short-lived tokens that rotates refresh tokens and refuses a replayed one.
fn rotating_provider() -> Provider {
    let mut provider_config = provider_config();
    provider_config.access_token_lifetime_secs = LIFETIME_SECS;
    provider_config.rotate_refresh_tokens = true;
    Provider::start(provider_config).expect("the provider starts")
}

fn api_request(provider: &Provider) -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        url: format!("{}/api/me", provider.base_url()),
        headers: vec![],
        body: vec![],
    }
}

#[test]
fn eight_threads_share_one_refresh_per_expiry_and_lose_no_refresh_token() {
    let provider = rotating_provider();
    let host = Host::new();
    let config = config(&provider, GrantType::AuthorizationCode);
    authorize(&provider, &host, &config);

    let request = api_request(&provider);
    let done = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..PER_THREAD {
                    match plugin().decorate_request(&host.services, &config, &request) {
                        Ok(decorated) => {
                            let bearer = decorated.headers.iter().any(|h| {
                                h.name == "Authorization" && h.value.starts_with("Bearer ")
                            });
                            if !bearer {
                                failures.lock().unwrap().push("no bearer token".to_owned());
                            }
                        }
                        Err(e) => failures.lock().unwrap().push(e.to_string()),
                    }
                    if (done.fetch_add(1, Ordering::SeqCst) + 1).is_multiple_of(STEP_EVERY) {
                        host.advance(STEP_SECS);
                    }
                }
            });
        }
    });

    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} decorations failed, first: {}",
        failures.len(),
        THREADS * PER_THREAD,
        failures[0]
    );
    let moved = (THREADS * PER_THREAD / STEP_EVERY) as u64 * STEP_SECS;
    let fresh_for = LIFETIME_SECS - LIFETIME_SECS / 10;
    let expiries = moved / fresh_for;
    let refreshes = provider.token_request_count("refresh_token") as u64;
    println!(
        "{} decorations, clock moved {moved} s, {expiries} expiries, {refreshes} refresh requests",
        THREADS * PER_THREAD
    );
    assert!(
        (expiries.saturating_sub(1)..=expiries + 1).contains(&refreshes),
        "{refreshes} refresh requests for {expiries} expiries"
    );
    assert_eq!(
        provider.token_request_count("authorization_code"),
        1,
        "never sent back to the user"
    );
    let (status, _) = call_api(&provider, &host, &config);
    assert_eq!(status, 200, "the last rotated token still works");
}

/// Two configurations of one connection that differ in what the token's store key leaves out
/// (header prefix, client authentication, the name of the secret holding the same client
/// secret) share one stored token, so they must share its lock: half the threads decorate
/// through `Plugin` with one, half through an `Instance` each with the other, calling
/// `ensure_token` and `decorate_request` in turn. Still one refresh per expiry, no failure, and
/// the last rotated refresh token works.
#[test]
fn configs_that_share_a_token_share_its_lock_on_every_path() {
    let provider = rotating_provider();
    let host = Host::new();
    host.store
        .set("same-secret-other-name", CLIENT_SECRET)
        .unwrap();
    let first = config(&provider, GrantType::AuthorizationCode);
    let second = ConnectionConfig {
        header_prefix: Some("Token".into()),
        client_auth: ClientAuth::RequestBody,
        client_secret_name: Some("same-secret-other-name".into()),
        ..first.clone()
    };
    authorize(&provider, &host, &first);

    let request = api_request(&provider);
    let done = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let tick = || {
        if (done.fetch_add(1, Ordering::SeqCst) + 1).is_multiple_of(STEP_EVERY) {
            host.advance(STEP_SECS);
        }
    };
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (failures, request, first, second, tick) =
                (&failures, &request, &first, &second, &tick);
            let host = &host;
            scope.spawn(move || {
                let mut instance = plugin().instance(&host.services).unwrap();
                for step in 0..PER_THREAD {
                    let outcome = if thread % 2 == 0 {
                        plugin()
                            .decorate_request(&host.services, first, request)
                            .map(|_| ())
                    } else if step % 2 == 0 {
                        instance.ensure_token(second).map(|_| ())
                    } else {
                        instance.decorate_request(second, request).map(|_| ())
                    };
                    if let Err(e) = outcome {
                        failures.lock().unwrap().push(e.to_string());
                    }
                    tick();
                }
            });
        }
    });

    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} steps failed, first: {}",
        failures.len(),
        THREADS * PER_THREAD,
        failures[0]
    );
    let moved = (THREADS * PER_THREAD / STEP_EVERY) as u64 * STEP_SECS;
    let expiries = moved / (LIFETIME_SECS - LIFETIME_SECS / 10);
    let refreshes = provider.token_request_count("refresh_token") as u64;
    println!("{expiries} expiries, {refreshes} refresh requests, two configurations");
    assert!(
        (expiries.saturating_sub(1)..=expiries + 1).contains(&refreshes),
        "{refreshes} refresh requests for {expiries} expiries"
    );
    assert_eq!(host.store.held_locks(), 0, "every lock was released");
    let (status, _) = call_api(&provider, &host, &first);
    assert_eq!(status, 200, "the last rotated token still works");
    let token = |config: &ConnectionConfig, prefix: &str| {
        let decorated = plugin()
            .decorate_request(&host.services, config, &request)
            .unwrap();
        let value = decorated
            .headers
            .iter()
            .find(|h| h.name == "Authorization")
            .map(|h| h.value.clone())
            .unwrap();
        value.strip_prefix(prefix).unwrap().to_owned()
    };
    assert_eq!(
        token(&first, "Bearer "),
        token(&second, "Token "),
        "one token"
    );
}
