//! The user's part of the grants that need one, for the commands and the page: the
//! authorization-code consent (listen on the redirect URI, show the URL to open, wait for the
//! browser, exchange the code and store the token) and the device code approval (show the URI
//! and the user code, poll until the user decides).

use std::io;
use std::time::{Duration, Instant};

use anyhow::bail;
use oauth2_runtime::{
    CallError, ConnectionConfig, DevicePoll, OauthError, Plugin, Services, Token,
};

use crate::callback::CallbackListener;

/// Runs the consent for `config`: `show` gets the authorization URL once the listener is up;
/// the browser's tab is told `done` when the token is stored, or what failed.
pub fn run(
    plugin: &Plugin,
    services: &Services,
    config: &ConnectionConfig,
    timeout: Duration,
    show: &dyn Fn(&str) -> io::Result<()>,
    done: &str,
) -> anyhow::Result<Token> {
    let redirect_uri = config
        .redirect_uri
        .as_deref()
        .ok_or_else(|| anyhow::anyhow!("config: redirect_uri: required for authorization code"))?;
    // Listen before showing the URL, so a fast browser cannot arrive before the listener, and
    // before beginning, so a busy port leaves no pending authorization behind.
    let listener = CallbackListener::bind(redirect_uri)?.with_timeout(timeout);
    let start = plugin.begin_authorization(services, config)?;
    show(&start.url)?;
    eprintln!("waiting for the browser on {redirect_uri} ...");

    let redirect = listener.wait(start.state.secret())?;
    match plugin.complete_authorization(services, config, redirect.url()) {
        Ok(token) => {
            redirect.respond_success(done);
            Ok(token)
        }
        Err(error) => {
            // The browser is told why too; the message names codes and hints, never secrets.
            redirect.respond_failure(&error.to_string());
            Err(error.into())
        }
    }
}

/// Runs the device authorization for `config`: `show` gets the verification URI (the complete
/// one when the provider gives it) and the user code; then polls at the provider's interval, 5 s
/// more after each `slow_down`, until the user decides, the code expires or `timeout` passes.
pub fn device(
    plugin: &Plugin,
    services: &Services,
    config: &ConnectionConfig,
    timeout: Duration,
    show: &dyn Fn(&str, &str) -> io::Result<()>,
) -> anyhow::Result<Token> {
    let started = plugin.start_device_authorization(services, config)?;
    let uri = started
        .verification_uri_complete
        .as_deref()
        .unwrap_or(&started.verification_uri);
    show(uri, &started.user_code)?;
    eprintln!(
        "open the address and enter the code; waiting for approval (polling every {} s)",
        started.interval_seconds
    );
    let give_up = Instant::now() + timeout;
    let mut interval = Duration::from_secs(started.interval_seconds.into());
    loop {
        let now = services
            .clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if now >= started.expires_at {
            bail!("expired_token: the device code expired before the user approved: start again");
        }
        if Instant::now() + interval > give_up {
            bail!(
                "no decision within {} s (--timeout): start again",
                timeout.as_secs()
            );
        }
        std::thread::sleep(interval);
        match plugin.poll_device_authorization(services, config, &started.device_code)? {
            DevicePoll::Granted(token) => return Ok(token),
            DevicePoll::Pending => {}
            DevicePoll::SlowDown => {
                interval += Duration::from_secs(5);
                eprintln!(
                    "the provider asked to slow down: polling every {} s",
                    interval.as_secs()
                );
            }
            DevicePoll::Denied(e) | DevicePoll::Expired(e) => {
                bail!("{}", CallError::OAuth(OauthError::AuthorizationDenied(e)));
            }
        }
    }
}
