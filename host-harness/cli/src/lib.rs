//! The pieces of the `oauth2-host` command: connection files and provider presets, the loopback
//! listener for the authorization redirect, the demo against the embedded provider, the
//! validation checklist, the local connection page, and Google service account key files.

pub mod callback;
pub mod config_file;
pub mod consent;
pub mod demo;
pub mod presets;
pub mod service_account;
pub mod ui;
pub mod validate;
