//! The library upstream Rust services link to publish Herald email jobs, with publisher confirms.
//!
//! ```no_run
//! # async fn demo(job: herald_domain::EmailJob) -> Result<(), herald_producer::ProduceError> {
//! let producer = herald_producer::Producer::connect("amqp://guest:guest@127.0.0.1:5672/%2f").await?;
//! producer.publish(&job).await?; // Ok means RabbitMQ confirmed the job in herald.email.
//! producer.close().await;
//! # Ok(()) }
//! ```
//!
//! Publishing is at-least-once: after a [`ProduceError`] publish the same job again (same id);
//! Herald sends one email per job id.

use std::fmt;

use herald_domain::EmailJob;
use herald_queue::{PublishError, Publisher, QueueError, Topology, headers, job_properties};
use lapin::Connection;
use lapin::types::{AMQPValue, FieldTable};

/// The `x-herald-schema` header value: the version of the job body contract.
pub const SCHEMA_VERSION: i32 = 1;

/// Why a job was not published.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// Connecting, or declaring the exchange and work queue, failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// RabbitMQ did not confirm the job; it may or may not be stored (see the source).
    #[error("could not publish job {message_id}")]
    Publish {
        message_id: String,
        #[source]
        source: PublishError,
    },
}

/// A connection and a confirm-mode channel to RabbitMQ. Share it (e.g. in an `Arc`): publishes
/// from many tasks go through one channel, one confirm at a time.
pub struct Producer {
    connection: Connection,
    publisher: Publisher,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("publisher", &self.publisher)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// Connects with contract v1's [`Topology::default`] and declares the jobs exchange, the
    /// work queue and the dead-letter queue, so jobs published before any worker starts wait
    /// in `herald.email` instead of being unroutable.
    pub async fn connect(amqp_url: &str) -> Result<Producer, ProduceError> {
        Self::connect_with(amqp_url, Topology::default()).await
    }

    /// Like [`Producer::connect`] with other names or retry delays (tests, side-by-side setups).
    pub async fn connect_with(
        amqp_url: &str,
        topology: Topology,
    ) -> Result<Producer, ProduceError> {
        let connection = herald_queue::connect(amqp_url, "herald-producer").await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|source| QueueError::Amqp {
                action: "open a channel to declare the topology".into(),
                source,
            })?;
        topology.declare_core(&channel).await?;
        let _ = channel.close(200, "OK".into()).await;
        let publisher = Publisher::new(&connection, topology).await?;
        Ok(Producer {
            connection,
            publisher,
        })
    }

    /// Publishes `job` to `herald.jobs` with routing key = its kind, `message_id` = its id, the
    /// v1 JSON body and `x-herald-schema` = 1, and waits for RabbitMQ's confirm.
    #[tracing::instrument(skip_all, fields(job_id = %job.id))]
    pub async fn publish(&self, job: &EmailJob) -> Result<(), ProduceError> {
        let message_id = job.id.as_str();
        let fail = |source| ProduceError::Publish {
            message_id: message_id.to_owned(),
            source,
        };
        let mut headers = FieldTable::default();
        headers.insert(headers::SCHEMA.into(), AMQPValue::LongInt(SCHEMA_VERSION));
        let props = job_properties(message_id)
            .map_err(fail)?
            .with_headers(headers);
        let exchange = &self.publisher.topology().exchange;
        self.publisher
            .publish_with(exchange, job.kind().routing_key(), &job.to_json(), props)
            .await
            .map_err(fail)?;
        tracing::debug!(routing_key = job.kind().routing_key(), "Published the job.");
        Ok(())
    }

    /// Publishes an arbitrary body (no schema header) for tools and tests, e.g. a malformed job.
    pub async fn publish_raw(
        &self,
        routing_key: &str,
        message_id: &str,
        body: &[u8],
    ) -> Result<(), ProduceError> {
        self.publisher
            .publish_job(routing_key, message_id, body)
            .await
            .map_err(|source| ProduceError::Publish {
                message_id: message_id.to_owned(),
                source,
            })
    }

    /// The topology this producer declared and publishes to.
    pub fn topology(&self) -> &Topology {
        self.publisher.topology()
    }

    /// Closes the connection; every publish that returned `Ok` is already confirmed.
    pub async fn close(self) {
        if let Err(e) = self.connection.close(200, "OK".into()).await {
            tracing::debug!(error = %e, "The RabbitMQ connection was already closed.");
        }
    }
}
