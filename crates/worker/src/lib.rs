//! Herald's worker: consume a job, issue its ticket, render, send, then ack; retry or dead-letter.
//!
//! The pure parts (how a failure is classified and what happens next, how the render context and
//! the MIME message are built) live in their own modules and are unit-tested; `pipeline` does the
//! I/O for one job and `consumer` runs the AMQP loop around it.

pub mod compose;
pub mod config;
pub mod consumer;
pub mod context;
pub mod lag;
pub mod leases;
pub mod ledger_batch;
pub mod metrics;
pub mod outcome;
pub mod pipeline;
pub mod registry_cache;
pub mod render_step;

pub use config::WorkerConfig;
pub use consumer::{Stepper, Worker, WorkerError};
pub use outcome::{Class, Failure, Outcome, classify, decide};
pub use pipeline::Pipeline;
pub use tokio_util::sync::CancellationToken;
