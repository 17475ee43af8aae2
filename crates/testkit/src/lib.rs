//! Test-only helpers: an isolated database and broker vhost per test, SMTP sinks and workers.

pub mod broker;
pub mod db;
pub mod env;
pub mod services;
