//! `herald-observe`: Prometheus `/metrics`, `/healthz` and `/readyz` for Herald processes.
//!
//! - [`install`] installs the process's Prometheus recorder once and registers every metric
//!   (the names and help texts live in `herald_worker::metrics`, which records through the
//!   `metrics` facade and so never depends on this crate or on axum).
//! - [`ObserveState`] holds the readiness checks; [`ObserveState::for_worker`] builds the worker's
//!   (broker consuming, database ping, SMTP NOOP cached for a few seconds).
//! - [`serve`] binds the HTTP server and returns the bound address.
//! - [`record_http`] counts `herald serve`'s requests and their latency by route.
//! - [`spawn_queue_poller`] refreshes the queue gauges (depth, consumers, oldest-message age) on
//!   its own AMQP connection, from the broker, the job ledger and the worker's deliveries.

pub mod http;
mod poller;
mod readiness;
mod recorder;
mod server;

pub use http::record_http;
pub use poller::{DEFAULT_POLL_INTERVAL, QueuePoller, queues_of, spawn_queue_poller};
pub use readiness::{CheckResult, ObserveState, Readiness};
pub use recorder::install;
pub use server::{router, serve};
