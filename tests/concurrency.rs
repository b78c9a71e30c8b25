//! Many connector steps for one connection at once: 8 threads x 2,000 decorations while the
//! access token expires several times, against a provider that rotates refresh tokens and
//! refuses a replayed one. The host's per-connection single flight makes one refresh per expiry;
//! without it, steps that see the same stale token spend the same refresh token, and all but one
//! fail with "authorize again".

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use host_harness::provider::Provider;
use host_harness::{GrantType, HttpRequest};

const THREADS: usize = 8;
const PER_THREAD: usize = 2_000;
/// The provider's access token lifetime; the component renews it a tenth early.
const LIFETIME_SECS: u64 = 60;
/// The clock moves `STEP_SECS` after every `STEP_EVERY` decorations, all threads together.
const STEP_SECS: u64 = 20;
const STEP_EVERY: usize = 1_000;

#[test]
fn eight_threads_share_one_refresh_per_expiry_and_lose_no_refresh_token() {
    let mut provider_config = provider_config();
    provider_config.access_token_lifetime_secs = LIFETIME_SECS;
    provider_config.rotate_refresh_tokens = true;
    let provider = Provider::start(provider_config).expect("the provider starts");
    let host = Host::new();
    let config = config(&provider, GrantType::AuthorizationCode);
    authorize(&provider, &host, &config);

    let request = HttpRequest {
        method: "GET".into(),
        url: format!("{}/api/me", provider.base_url()),
        headers: vec![],
        body: vec![],
    };
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
