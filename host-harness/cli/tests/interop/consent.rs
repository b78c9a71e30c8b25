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

/// The user's decision on a device authorization's verification page (RFC 8628 §3.3), reached
/// at `uri` (the complete one, carrying `user_code`): Authlib's form posted by an HTTP client,
/// oidc-provider's pages clicked through by headless Chromium.
pub fn decide_device(server: &Server, uri: &str, user_code: &str, approve: bool) {
    match server.kind {
        Kind::Authlib => {
            use oauth2_runtime::{HttpClient, HttpRequest};
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("user_code", user_code);
            if approve {
                form.append_pair("username", USERNAME);
                form.append_pair("password", PASSWORD);
            }
            form.append_pair("action", if approve { "allow" } else { "deny" });
            let response = server
                .http()
                .send(&HttpRequest {
                    method: "POST".into(),
                    url: server.url("device_verification_url"),
                    headers: vec![crate::server::header(
                        "Content-Type",
                        "application/x-www-form-urlencoded",
                    )],
                    body: form.finish().into_bytes(),
                })
                .expect("the verification page answers");
            let page = String::from_utf8_lossy(&response.body);
            let result = if approve { "approved" } else { "denied" };
            assert!(
                response.status == 200 && page.contains(&format!("data-result=\"{result}\"")),
                "the verification page answered {}: {page}",
                response.status
            );
        }
        Kind::OidcProvider => {
            require("/usr/bin/chromium".as_ref());
            let mut command = node("browser");
            command
                .arg(kit("oidc-provider/device.mjs"))
                .arg(uri)
                .args(["--login", USERNAME]);
            if !approve {
                command.arg("--deny");
            }
            Spawned::start(&mut command, Some(""))
                .finish(LIMIT)
                .assert_success("the device page driver");
        }
    }
}
