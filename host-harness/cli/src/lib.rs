//! The pieces of the `oauth2-host` command: connection files and provider presets, the loopback
//! listener for the authorization redirect, and the demo against the embedded provider.

pub mod callback;
pub mod config_file;
pub mod demo;
pub mod presets;
