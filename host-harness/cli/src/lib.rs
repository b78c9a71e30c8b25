//! The pieces of the `oauth2-host` command: connection files and provider presets, the loopback
//! listener for the authorization redirect, the demo against the embedded provider, the
//! validation checklist and the local connection page.

pub mod callback;
pub mod config_file;
pub mod consent;
pub mod demo;
pub mod presets;
pub mod ui;
pub mod validate;
