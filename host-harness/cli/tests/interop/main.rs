//! Interop suite: the component, driven through the harness library and through the
//! `oauth2-host` command, agrees with two independent real authorization servers on loopback,
//! npm oidc-provider and PyPI Authlib (also over https with a CA made at test time), with the
//! consent pages completed by cookie-jar HTTP clients and by headless Chromium. A token counts
//! only once the server's protected API accepts it. The servers and the browser are installed by
//! `tests/interop/setup.sh`; when they are missing the suite fails, it never skips.

/// One `#[test]` per server for a case written once as `fn(Kind)`.
macro_rules! on_both_servers {
    ($case:ident) => {
        mod $case {
            #[test]
            fn oidc_provider() {
                super::$case(crate::server::Kind::OidcProvider)
            }

            #[test]
            fn authlib() {
                super::$case(crate::server::Kind::Authlib)
            }
        }
    };
}

mod cli;
mod consent;
mod host;
mod process;
mod server;

mod assertions;
mod authorization_code;
mod client_auth_auto;
mod client_credentials;
mod device;
mod errors;
mod mix_up;
mod password;
mod refresh;
mod revocation;
mod special_secret;
mod tls;
mod validate;
