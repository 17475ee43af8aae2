//! The `herald` binary's library half: the command line and the commands, so tests can drive
//! them. Settings and wiring live in `herald-app` (re-exported here as `app` and `settings`).

pub use herald_app as app;
pub use herald_app::settings;

pub mod cli;
pub mod commands;
pub mod telemetry;
