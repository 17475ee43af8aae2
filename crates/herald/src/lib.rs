//! The `herald` binary's library half: settings, wiring and commands, so tests can drive them.

pub mod app;
pub mod cli;
pub mod commands;
pub mod settings;
pub mod telemetry;
