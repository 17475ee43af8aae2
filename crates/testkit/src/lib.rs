//! Test-only helpers: an isolated database and broker vhost per test, SMTP sinks and workers,
//! the `herald` command, a bare HTTP GET and hostile text for property tests.

pub mod broker;
pub mod command;
pub mod db;
pub mod env;
pub mod hostile;
pub mod http;
pub mod services;
