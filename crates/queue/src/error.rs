//! The errors of the queue layer: one enum for connecting and declaring, one for publishing.

use std::time::Duration;

/// What went wrong while connecting to RabbitMQ, declaring the topology or reading a queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The URL could not be parsed. The URL itself is not repeated: it may hold a password.
    #[error("the AMQP URL is invalid: {reason}")]
    InvalidUrl { reason: String },

    #[error(
        "could not connect to RabbitMQ at {target}; is it running? \
         Start it with `rabbitmq-server -detached` and check it with `rabbitmq-diagnostics -q ping`"
    )]
    Connect {
        /// `host:port` and vhost, never the credentials.
        target: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error(
        "timed out after {} connecting to RabbitMQ at {target}; is it running? \
         Start it with `rabbitmq-server -detached` and check it with `rabbitmq-diagnostics -q ping`",
        humantime::format_duration(*.timeout)
    )]
    ConnectTimeout { target: String, timeout: Duration },

    #[error("the queue topology is invalid: {0}")]
    InvalidTopology(String),

    /// RabbitMQ refused an operation; `action` says which, e.g. "declare queue herald.email".
    #[error("RabbitMQ refused to {action}")]
    Amqp {
        action: String,
        #[source]
        source: lapin::Error,
    },
}

impl QueueError {
    pub(crate) fn amqp(action: impl Into<String>) -> impl FnOnce(lapin::Error) -> QueueError {
        let action = action.into();
        move |source| QueueError::Amqp { action, source }
    }
}

/// Why a publish did not end with a positive publisher confirm. Every variant means the caller
/// must not assume the message was stored (and must not ack the delivery it was copying).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("RabbitMQ refused to store the message (basic.nack)")]
    Nacked,

    /// The message was unroutable: no queue is bound for its exchange and routing key.
    #[error(
        "RabbitMQ returned the message as unroutable ({reply_code} {reply_text}): \
         no queue is bound for its routing key"
    )]
    Returned { reply_code: u16, reply_text: String },

    /// No confirm arrived in time. The message may still have been stored, so a retry can
    /// produce a duplicate (consumers are idempotent on the job id).
    #[error("RabbitMQ did not confirm the message in time; it may or may not have been stored")]
    Timeout,

    #[error("the AMQP channel failed while publishing")]
    Amqp(#[source] lapin::Error),
}
