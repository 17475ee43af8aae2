//! Herald's RabbitMQ layer: the AMQP topology (contract v1), confirmed publishing, retry tiers,
//! dead letters and the header helpers the worker reads deliveries with.
//!
//! The names in [`Topology::default`] are a public contract: upstream services publish to
//! `herald.jobs` and operators read `herald.email.dead`. See [`topology`] for the whole picture.

pub mod connect;
pub mod dlq;
pub mod error;
pub mod headers;
pub mod publisher;
pub mod stats;
pub mod topology;

pub use connect::{CONNECT_TIMEOUT, connect};
pub use error::{PublishError, QueueError};
pub use headers::{failed_attempts, header_string, original_routing_key};
pub use publisher::{DEFAULT_CHANNELS, DEFAULT_CONFIRM_TIMEOUT, Publisher, job_properties};
pub use stats::{QueueStats, queue_stats};
pub use topology::{QueueRole, Topology};
