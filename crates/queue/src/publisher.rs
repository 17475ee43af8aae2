//! Confirmed publishing: jobs to the jobs exchange, copies to the retry tiers and dead letters.
//!
//! Every publish is `mandatory` on a confirm-mode channel and waits for its own confirm, so a
//! nack, an unroutable return or a missing confirm is an error the caller sees, never a message
//! silently lost.
//!
//! A [`Publisher`] holds a pool of confirm-mode channels and gives each publish a channel of its
//! own until its confirm arrives: publishes from many tasks run side by side, one per channel.
//! Never more than one per channel, because lapin matches a `basic.return` to a confirm by order
//! alone: every ack or nack it receives takes the oldest return waiting on the channel, and a
//! multiple ack completes its confirms in hash-map order. With several confirms in flight on a
//! channel, an unroutable message could be reported as delivered and a delivered one as
//! returned. With one in flight it is exact: RabbitMQ sends a message's `basic.return` before
//! its `basic.ack`, so when the confirm of the channel's only publish arrives, that publish's
//! return (if any) is waiting and is the one taken. The only leftover a channel can carry is a
//! return whose ack was lost with a dropped connection; after lapin's recovery it would turn the
//! next publish's `Ok` into a spurious [`PublishError::Returned`] (a duplicate when retried),
//! never a returned message into an `Ok`.
//!
//! A publish abandoned before its confirm (its caller gave up, or the confirm timeout passed)
//! leaves a confirm in flight. Its channel goes back to the pool only once lapin has settled that
//! confirm (`Channel::wait_for_confirms`), or is retired if it never is.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::try_join_all;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionStatus};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, timeout, timeout_at};

use crate::error::{PublishError, QueueError};
use crate::headers::{self, copied_headers, long_string, truncate};
use crate::topology::Topology;

/// How long a publish waits for its confirm before it reports [`PublishError::Timeout`].
pub const DEFAULT_CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// How many channels [`Publisher::new`] opens: the most publishes one publisher has in flight.
pub const DEFAULT_CHANNELS: usize = 128;

/// How long a channel whose publish was abandoned waits for the pending confirm before it is
/// retired from the pool.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Publishes with publisher confirms over a pool of channels on one connection. Cheap to clone;
/// clones share the pool.
#[derive(Debug, Clone)]
pub struct Publisher {
    inner: Arc<Inner>,
    confirm_timeout: Duration,
}

struct Inner {
    connection: ConnectionStatus,
    topology: Topology,
    channels: Vec<Channel>,
    /// Indexes into `channels` of the channels no publish holds, used last in, first out.
    idle: std::sync::Mutex<Vec<usize>>,
    /// One permit per idle channel: a publish waits here for a channel of its own.
    free: Arc<Semaphore>,
    /// Why the publisher is closed, once the broker closed one of its channels or the
    /// connection failed for good. Kept like a single channel's state was: a closed publisher
    /// stays closed, and its owner builds a new one (after declaring the topology again).
    closed: OnceLock<lapin::Error>,
    /// Channels taken out of the pool because a confirm never settled.
    retired: AtomicUsize,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("channels", &self.channels.len())
            .field("idle", &self.free.available_permits())
            .field("retired", &self.retired.load(Ordering::Relaxed))
            .field("closed", &self.closed.get())
            .field("topology", &self.topology)
            .finish()
    }
}

impl Inner {
    fn release(&self, slot: usize, permit: OwnedSemaphorePermit) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(slot);
        drop(permit);
    }

    fn retire(&self, slot: usize, permit: OwnedSemaphorePermit) {
        self.retired.fetch_add(1, Ordering::Relaxed);
        permit.forget();
        tracing::warn!(
            channel = self.channels[slot].id(),
            "A publishing channel's pending confirm never settled; the channel is retired."
        );
    }

    /// Closes the publisher when `error` ended the channel at `slot` (rather than a recovery).
    fn note_failure(&self, slot: usize, error: &lapin::Error) {
        if !usable(&self.channels[slot]) {
            let _ = self.closed.set(error.clone());
        }
    }
}

/// Whether a channel can publish now or once lapin has recovered its connection.
fn usable(channel: &Channel) -> bool {
    let status = channel.status();
    status.connected() || status.initializing()
}

/// One pooled channel held by one publish. Dropped with its confirm settled, the channel goes
/// back to the pool; dropped with a confirm still in flight, it waits for that confirm first.
struct Lease {
    inner: Arc<Inner>,
    slot: usize,
    permit: Option<OwnedSemaphorePermit>,
    /// False from `basic.publish` until its confirm resolved (or a recovery reset the channel).
    settled: bool,
}

impl Lease {
    async fn acquire(inner: &Arc<Inner>) -> Lease {
        let permit = Arc::clone(&inner.free)
            .acquire_owned()
            .await
            .expect("the pool's semaphore is never closed");
        let slot = inner
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .expect("every permit stands for an idle channel");
        Lease {
            inner: Arc::clone(inner),
            slot,
            permit: Some(permit),
            settled: true,
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        if self.settled {
            self.inner.release(self.slot, permit);
            return;
        }
        let (inner, slot) = (Arc::clone(&self.inner), self.slot);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(settle(inner, slot, permit))),
            Err(_) => inner.retire(slot, permit),
        }
    }
}

/// Waits until the confirm left in flight on channel `slot` resolves, then returns the channel
/// to the pool; retires it if the confirm does not resolve or the channel is gone.
async fn settle(inner: Arc<Inner>, slot: usize, permit: OwnedSemaphorePermit) {
    let channel = &inner.channels[slot];
    let waited = timeout(SETTLE_TIMEOUT, channel.wait_for_confirms()).await;
    match waited {
        // A rejected confirm means lapin reset the channel's confirms (a recovery) or the
        // channel died; either way nothing is left in flight on it.
        Ok(_) if usable(channel) => {
            if let Ok(Ok(returned)) = &waited
                && !returned.is_empty()
            {
                tracing::debug!(
                    returned = returned.len(),
                    "An abandoned publish was returned by the broker."
                );
            }
            inner.release(slot, permit);
        }
        Ok(Err(error)) => {
            inner.note_failure(slot, &error);
            inner.retire(slot, permit);
        }
        Ok(Ok(_)) | Err(_) => inner.retire(slot, permit),
    }
}

async fn open_confirm_channel(conn: &Connection) -> Result<Channel, QueueError> {
    let channel = conn
        .create_channel()
        .await
        .map_err(QueueError::amqp("open a publishing channel"))?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .map_err(QueueError::amqp("enable publisher confirms"))?;
    Ok(channel)
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
    /// Opens [`DEFAULT_CHANNELS`] channels on `conn` and puts them in confirm mode. It declares
    /// nothing: call [`Topology::declare`] or [`Topology::declare_core`] first.
    pub async fn new(conn: &Connection, topology: Topology) -> Result<Self, QueueError> {
        Self::with_channels(conn, topology, DEFAULT_CHANNELS).await
    }

    /// Like [`Publisher::new`] with `channels` channels (at least one): at most that many
    /// publishes are in flight at once, the others wait for a channel within their timeout.
    pub async fn with_channels(
        conn: &Connection,
        topology: Topology,
        channels: usize,
    ) -> Result<Self, QueueError> {
        topology.validate()?;
        let channels =
            try_join_all((0..channels.max(1)).map(|_| open_confirm_channel(conn))).await?;
        Ok(Publisher {
            inner: Arc::new(Inner {
                connection: conn.status().clone(),
                topology,
                idle: std::sync::Mutex::new((0..channels.len()).rev().collect()),
                free: Arc::new(Semaphore::new(channels.len())),
                channels,
                closed: OnceLock::new(),
                retired: AtomicUsize::new(0),
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

    /// Whether a publish can go out now: the connection is connected and every channel is
    /// open. False while lapin is recovering the connection (a publish then waits for the
    /// recovery within its confirm timeout), and for good once the broker closed a channel
    /// (say, after a publish to an exchange that does not exist) or the connection failed:
    /// build a new `Publisher` then.
    pub fn is_open(&self) -> bool {
        let inner = &self.inner;
        inner.closed.get().is_none()
            && inner.connection.connected()
            && inner.retired.load(Ordering::Relaxed) < inner.channels.len()
            && inner.channels.iter().all(|c| c.status().connected())
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
        let mut headers = requeue_headers(props, original_routing_key, failed_attempts);
        headers.insert(
            headers::LAST_ERROR.into(),
            long_string(&truncate(last_error)),
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

    /// Parks a delivery that another delivery of the same job holds a lease on: a copy goes to
    /// the defer queue (`herald.email.defer`) for about `wait`, the time that lease has left,
    /// then back to the work queue. The attempt count is not raised (`failed_attempts` is what
    /// the job had). Ack the original only after this returns `Ok`.
    ///
    /// The wait is the copy's per-message TTL. RabbitMQ expires messages from the head of a queue
    /// only, so a copy can wait behind an older one with a longer TTL; waits are bounded by the
    /// lease (`HERALD_SEND_LEASE`), and so is that extra wait.
    pub async fn publish_deferred(
        &self,
        body: &[u8],
        props: &BasicProperties,
        original_routing_key: &str,
        failed_attempts: u32,
        wait: Duration,
    ) -> Result<(), PublishError> {
        let topology = &self.inner.topology;
        let queue = topology.defer_queue();
        let headers = requeue_headers(props, original_routing_key, failed_attempts);
        let ttl_ms = u64::try_from(wait.as_millis())
            .unwrap_or(u64::MAX)
            .clamp(1, u64::from(u32::MAX));
        let props = props
            .clone()
            .with_headers(headers)
            .with_delivery_mode(2)
            .with_expiration(ShortString::from(ttl_ms.to_string()));
        let exchange = topology.retry_exchange.clone();
        self.publish_with(&exchange, &queue, body, props).await?;
        tracing::debug!(
            defer_queue = %queue,
            wait = %humantime::format_duration(Duration::from_millis(ttl_ms)),
            "Published a deferred copy."
        );
        Ok(())
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
    /// The wait for a free channel counts against the confirm timeout. When the connection
    /// drops mid-publish and auto-recovery brings it back within the confirm timeout, the
    /// message is published once more; the broker may then hold it twice, which consumers
    /// tolerate because they are idempotent on the job id.
    pub async fn publish_with(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<(), PublishError> {
        let exchange = short(exchange, "exchange name")?;
        let routing_key = short(routing_key, "routing key")?;
        if let Some(error) = self.inner.closed.get() {
            return Err(PublishError::Amqp(error.clone()));
        }
        let deadline = Instant::now() + self.confirm_timeout;
        let Ok(mut lease) = timeout_at(deadline, Lease::acquire(&self.inner)).await else {
            return Err(PublishError::Timeout);
        };
        let channel = &self.inner.channels[lease.slot];
        let mut recovered = false;
        loop {
            lease.settled = false;
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
                Ok(Ok(confirmation)) => {
                    lease.settled = true;
                    return confirmed(confirmation);
                }
                Ok(Err(error)) => error,
            };
            self.inner.note_failure(lease.slot, &error);
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

/// The headers of a copy that comes back to the work queue later (a retry or a deferral): the
/// original's, plus the attempts made so far and the routing key it was first published with.
fn requeue_headers(
    props: &BasicProperties,
    original_routing_key: &str,
    failed_attempts: u32,
) -> lapin::types::FieldTable {
    let mut headers = copied_headers(props);
    headers.insert(
        headers::ATTEMPT.into(),
        AMQPValue::LongInt(clamp_i32(failed_attempts)),
    );
    headers.insert(
        headers::ROUTING_KEY.into(),
        long_string(original_routing_key),
    );
    headers
}

fn clamp_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
