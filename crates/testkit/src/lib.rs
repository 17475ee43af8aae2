//! Test-only helpers: an isolated database and broker vhost per test, SMTP sinks and workers,
//! the `herald` command, a bare HTTP GET, hostile text for property tests and a real browser for
//! the HTML pages.

pub mod broker;
pub mod browser;
pub mod command;
pub mod db;
pub mod env;
pub mod hostile;
pub mod http;
pub mod services;
