//! The browser's part of the authorization-code flow, played by the kit's drivers. Each ends by
//! requesting the redirect URI, where `oauth2-host authorize` or the library's listener waits.

use std::time::Duration;

use crate::process::Spawned;
use crate::server::{Kind, PASSWORD, Server, USERNAME, kit, node, python, require};

/// How long a driver may take; the browser driver gives up by itself after 30 s.
pub const LIMIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
pub enum Driver {
    /// An HTTP client with a cookie jar that fills in the server's own forms.
    CookieJar,
    /// Debian's headless Chromium, driven by playwright-core.
    Browser,
}

/// Starts `driver` on `url`, an authorization URL of `server`.
pub fn start(server: &Server, driver: Driver, url: &str) -> Spawned {
    let mut command = match (driver, server.kind) {
        (Driver::CookieJar, Kind::OidcProvider) => {
            let mut command = node("oidc-provider");
            command.arg(kit("oidc-provider/consent.mjs")).arg(url);
            command
        }
        (Driver::CookieJar, Kind::Authlib) => {
            let mut command = python();
            command.arg(kit("authlib/consent.py")).arg(url);
            if let Some(ca) = server.ca() {
                command.arg("--ca-cert").arg(ca);
            }
            command
        }
        (Driver::Browser, _) => {
            require("/usr/bin/chromium".as_ref());
            let mut command = node("browser");
            command.arg(kit("browser/consent.mjs")).arg(url).args([
                "--user",
                USERNAME,
                "--password",
                PASSWORD,
            ]);
            // playwright's Chromium takes no extra CA; this driver is only used over plain http.
            assert!(server.ca().is_none(), "the browser driver runs over http");
            command
        }
    };
    Spawned::start(&mut command, Some(""))
}
