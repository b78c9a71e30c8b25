//! The authorization-code consent, for the command and for the page: listen on the redirect
//! URI, show the URL to open, wait for the browser, exchange the code and store the token.

use std::io;
use std::time::Duration;

use oauth2_runtime::{ConnectionConfig, Plugin, Services, Token};

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
