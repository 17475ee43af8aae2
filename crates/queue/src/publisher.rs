//! Confirmed publishing: jobs to the jobs exchange, copies to the retry tiers and dead letters.
//!
//! Every publish is `mandatory` on a confirm-mode channel and waits for its own confirm, so a
//! nack, an unroutable return or a missing confirm is an error the caller sees, never a message
//! silently lost. Publishes on one [`Publisher`] are serialised: lapin hands a `basic.return` to
//! whichever pending confirm a multiple-ack resolves first, so with several confirms in flight an
//! unroutable message could be reported as delivered. One publish in flight keeps that exact.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use tokio::sync::Mutex;
use tokio::time::{Instant, timeout_at};

use crate::error::{PublishError, QueueError};
use crate::headers::{self, copied_headers, long_string, truncate};
use crate::topology::Topology;

/// How long a publish waits for its confirm before it reports [`PublishError::Timeout`].
pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes with publisher confirms on one channel. Cheap to clone; clones share the channel.
#[derive(Debug, Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
    confirm_timeout: Duration,
}

#[derive(Debug)]
struct Inner {
    channel: Channel,
    topology: Topology,
    /// Held from `basic.publish` until its confirm arrives; see the module docs for why.
    in_flight: Mutex<()>,
}

/// The properties of a job message: persistent, JSON, `message_id` = the job id, a timestamp
/// and `app_id` "herald".
pub fn job_properties(message_id: &str) -> Result<BasicProperties, PublishError> {
    Ok(BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(short(message_id, "message id")?)
        .with_timestamp(unix_now())
        .with_app_id("herald".into()))
}

impl Publisher {
    /// Opens a channel on `conn` and puts it in confirm mode. It declares nothing: call
    /// [`Topology::declare`] or [`Topology::declare_core`] first.
    pub async fn new(conn: &Connection, topology: Topology) -> Result<Self, QueueError> {
        topology.validate()?;
        let channel = conn
            .create_channel()
            .await
            .map_err(QueueError::amqp("open a publishing channel"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(QueueError::amqp("enable publisher confirms"))?;
        Ok(Publisher {
            inner: Arc::new(Inner {
                channel,
                topology,
                in_flight: Mutex::new(()),
            }),
            confirm_timeout: DEFAULT_CONFIRM_TIMEOUT,
        })
    }

    /// Replaces [`DEFAULT_CONFIRM_TIMEOUT`] for this handle (clones made afterwards keep it).
    #[must_use]
    pub fn with_confirm_timeout(mut self, confirm_timeout: Duration) -> Self {
        self.confirm_timeout = confirm_timeout;
        self
    }

    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// Whether the channel can still publish. A channel closed by the broker (say, a publish to
    /// an exchange that does not exist) is not reopened: build a new `Publisher`. A connection
    /// that is recovering counts as open.
    pub fn is_open(&self) -> bool {
        let status = self.inner.channel.status();
        status.connected() || status.reconnecting() || status.initializing()
    }

    /// Publishes a job to the jobs exchange: persistent, `application/json`, `message_id`,
    /// timestamp, `app_id` "herald", mandatory, and waits for the confirm (bounded by the confirm
    /// timeout). A nack, an unroutable return or a timeout is an error.
    pub async fn publish_job(
        &self,
        routing_key: &str,
        message_id: &str,
        body: &[u8],
    ) -> Result<(), PublishError> {
        let props = job_properties(message_id)?;
        let exchange = self.inner.topology.exchange.clone();
        self.publish_with(&exchange, routing_key, body, props).await
    }

    /// Copies a delivery that failed transiently to the retry tier for `failed_attempts` (the
    /// attempts made so far, >= 1), keeping body, `message_id` and properties and setting
    /// `x-herald-attempt`, `x-herald-last-error` and `x-herald-routing-key`. Returns the delay
    /// after which the copy reappears in the work queue. Ack the original only after this
    /// returns `Ok`.
    pub async fn publish_retry(
        &self,
        body: &[u8],
        props: &BasicProperties,
        original_routing_key: &str,
        failed_attempts: u32,
        last_error: &str,
    ) -> Result<Duration, PublishError> {
        let topology = &self.inner.topology;
        let (queue, delay) = topology.retry_delay_for_attempt(failed_attempts);
        let mut headers = copied_headers(props);
        headers.insert(
            headers::ATTEMPT.into(),
            AMQPValue::LongInt(clamp_i32(failed_attempts)),
        );
        headers.insert(
            headers::LAST_ERROR.into(),
            long_string(&truncate(last_error)),
        );
        headers.insert(
            headers::ROUTING_KEY.into(),
            long_string(original_routing_key),
        );
        let props = props.clone().with_headers(headers).with_delivery_mode(2);
        let exchange = topology.retry_exchange.clone();
        self.publish_with(&exchange, &queue, body, props).await?;
        tracing::debug!(
            failed_attempts,
            retry_queue = %queue,
            delay = %humantime::format_duration(delay),
            "Published a retry copy."
        );
        Ok(delay)
    }

    /// Copies a delivery to the dead-letter exchange (queue `herald.email.dead`) with
    /// `x-herald-reason` (a machine code), `x-herald-error` (a sentence, truncated),
    /// `x-herald-attempts`, `x-herald-dead-at` (unix seconds) and `x-herald-routing-key`.
    /// Ack the original only after this returns `Ok`.
    pub async fn publish_dead(
        &self,
        body: &[u8],
        props: &BasicProperties,
        original_routing_key: &str,
        reason: &str,
        error: &str,
        attempts: u32,
    ) -> Result<(), PublishError> {
        let topology = &self.inner.topology;
        let mut headers = copied_headers(props);
        headers.insert(headers::REASON.into(), long_string(reason));
        headers.insert(headers::ERROR.into(), long_string(&truncate(error)));
        headers.insert(
            headers::ATTEMPTS.into(),
            AMQPValue::LongInt(clamp_i32(attempts)),
        );
        headers.insert(
            headers::DEAD_AT.into(),
            AMQPValue::LongLongInt(unix_now().try_into().unwrap_or(i64::MAX)),
        );
        headers.insert(
            headers::ROUTING_KEY.into(),
            long_string(original_routing_key),
        );
        let props = props.clone().with_headers(headers).with_delivery_mode(2);
        let (exchange, key) = (topology.dead_exchange.clone(), topology.dead_queue.clone());
        self.publish_with(&exchange, &key, body, props).await
    }

    /// Publishes `body` with `props` as given, mandatory, and waits for its confirm. The other
    /// `publish_*` methods go through here; it is public for producers that add headers.
    ///
    /// When the connection drops mid-publish and auto-recovery brings it back within the
    /// confirm timeout, the message is published once more; the broker may then hold it twice,
    /// which consumers tolerate because they are idempotent on the job id.
    pub async fn publish_with(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<(), PublishError> {
        let exchange = short(exchange, "exchange name")?;
        let routing_key = short(routing_key, "routing key")?;
        let deadline = Instant::now() + self.confirm_timeout;
        let channel = &self.inner.channel;

        let Ok(_in_flight) = timeout_at(deadline, self.inner.in_flight.lock()).await else {
            return Err(PublishError::Timeout);
        };
        let mut recovered = false;
        loop {
            let publish = async {
                channel
                    .basic_publish(
                        exchange.clone(),
                        routing_key.clone(),
                        BasicPublishOptions {
                            mandatory: true,
                            immediate: false,
                        },
                        body,
                        props.clone(),
                    )
                    .await?
                    .await
            };
            let error = match timeout_at(deadline, publish).await {
                Err(_) => return Err(PublishError::Timeout),
                Ok(Ok(confirmation)) => return confirmed(confirmation),
                Ok(Err(error)) => error,
            };
            if recovered {
                return Err(PublishError::Amqp(error));
            }
            match timeout_at(deadline, channel.wait_for_recovery(error)).await {
                Err(_) => return Err(PublishError::Timeout),
                Ok(Err(error)) => return Err(PublishError::Amqp(error)),
                Ok(Ok(())) => {
                    tracing::warn!(
                        exchange = %exchange,
                        routing_key = %routing_key,
                        "The connection recovered during a publish; publishing again."
                    );
                    recovered = true;
                }
            }
        }
    }
}

fn confirmed(confirmation: Confirmation) -> Result<(), PublishError> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
            Err(PublishError::Returned {
                reply_code: returned.reply_code,
                reply_text: returned.reply_text.to_string(),
            })
        }
        // NotRequested cannot happen on a confirm-mode channel; an unconfirmed publish is
        // treated like a refused one rather than as a success.
        Confirmation::Nack(None) | Confirmation::NotRequested => Err(PublishError::Nacked),
    }
}

/// An AMQP short string, or an error instead of lapin's panic past 255 bytes.
fn short(value: &str, what: &str) -> Result<ShortString, PublishError> {
    ShortString::try_new(value).map_err(|_| {
        PublishError::Amqp(lapin::Error::from(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "the {what} is {} bytes long; AMQP allows at most 255",
                value.len()
            ),
        )))
    })
}

fn clamp_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
