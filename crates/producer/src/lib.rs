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
//! Herald sends one email per job id. The producer never re-sends a failed publish by itself on
//! a new connection; after an outage the next publish reconnects (see [`Producer`]).

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use herald_domain::{EmailJob, Event};
use herald_queue::{
    DEFAULT_CHANNELS, PublishError, Publisher, QueueError, Topology, headers, job_properties,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;

/// The `x-herald-schema` header value: the version of the job body contract.
pub const SCHEMA_VERSION: i32 = 1;

/// How long a replaced connection is kept while lapin may still be recovering it, so that it is
/// closed rather than left running once it comes back. lapin gives up after about ten minutes.
const RETIRE_WINDOW: Duration = Duration::from_secs(15 * 60);
const RETIRE_POLL: Duration = Duration::from_millis(500);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// AMQP's reply code for a mandatory message no queue is bound for.
const NO_ROUTE: u16 = 312;

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
    /// The connection was lost and reconnecting failed, so the job was not sent at all. The
    /// next publish tries to reconnect again.
    #[error("could not publish job {message_id}: the connection to RabbitMQ is lost")]
    Unavailable {
        message_id: String,
        #[source]
        source: Arc<QueueError>,
    },
}

/// How a [`Producer`] connects. `ProducerOptions::default()` is what [`Producer::connect`] uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerOptions {
    /// The exchange and queues it declares and publishes to. Default: contract v1's
    /// [`Topology::default`].
    pub topology: Topology,
    /// Confirm-mode channels opened on the connection: the most publishes in flight at once
    /// (further publishes wait for a free channel within the confirm timeout). Each channel
    /// costs the broker a little memory, so a service that publishes rarely can open fewer.
    /// At least one (0 is taken as 1). Default [`DEFAULT_CHANNELS`] (128).
    pub channels: usize,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        ProducerOptions {
            topology: Topology::default(),
            channels: DEFAULT_CHANNELS,
        }
    }
}

/// A connection to RabbitMQ with a pool of confirm-mode channels. Share it (e.g. in an `Arc`):
/// publishes from many tasks run side by side, up to [`ProducerOptions::channels`] at once.
///
/// When a publish fails while the connection is down (or the broker closed a channel), the
/// producer reports that failure and rebuilds the connection, channels and topology on the
/// next publish; a failed publish is never sent again on the new connection.
pub struct Producer {
    /// The URL holds the password.
    url: SecretString,
    topology: Topology,
    channels: usize,
    session: RwLock<Arc<Session>>,
    /// Held while a new session is being built, so concurrent publishes build one, not many.
    rebuild: tokio::sync::Mutex<()>,
    /// Rebuild attempts finished so far; a publish that waited for someone else's attempt
    /// shares its failure instead of trying again at once.
    attempts: AtomicU64,
    last_failure: Mutex<Option<Arc<QueueError>>>,
    /// Replaced connections not yet closed (see [`Producer::retiring_connections`]).
    retiring: Arc<AtomicUsize>,
}

/// One connection and its publisher.
struct Session {
    connection: Connection,
    publisher: Publisher,
    /// Set when a publish failed while the publisher was not open.
    failed: AtomicBool,
}

impl Session {
    async fn open(
        amqp_url: &str,
        topology: &Topology,
        channels: usize,
    ) -> Result<Session, QueueError> {
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
        let publisher = Publisher::with_channels(&connection, topology.clone(), channels).await?;
        Ok(Session {
            connection,
            publisher,
            failed: AtomicBool::new(false),
        })
    }

    /// A publish failed here and the publisher cannot publish now. When lapin has brought the
    /// connection back meanwhile, the session is kept.
    fn needs_rebuild(&self) -> bool {
        if !self.failed.load(Ordering::Acquire) {
            return false;
        }
        if self.publisher.is_open() {
            self.failed.store(false, Ordering::Release);
            return false;
        }
        true
    }
}

/// Closes a replaced session once nothing publishes on it any more, and once lapin has stopped
/// recovering it: a recovering connection that is merely dropped comes back on its own later.
async fn retire(old: Arc<Session>) {
    let deadline = Instant::now() + RETIRE_WINDOW;
    loop {
        let status = old.connection.status();
        let recovering = status.reconnecting() || status.connecting();
        if (Arc::strong_count(&old) == 1 && !recovering) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(RETIRE_POLL).await;
    }
    if old.connection.status().connected() {
        let close = old
            .connection
            .close(200, "replaced by a new connection".into());
        if let Ok(Err(e)) = tokio::time::timeout(CLOSE_TIMEOUT, close).await {
            tracing::debug!(error = %e, "Could not close the replaced RabbitMQ connection.");
        }
    }
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("publisher", &self.current().publisher)
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
        let options = ProducerOptions {
            topology,
            ..ProducerOptions::default()
        };
        Self::connect_with_options(amqp_url, options).await
    }

    /// Like [`Producer::connect`] with other [`ProducerOptions`], e.g. fewer channels.
    pub async fn connect_with_options(
        amqp_url: &str,
        options: ProducerOptions,
    ) -> Result<Producer, ProduceError> {
        let ProducerOptions { topology, channels } = options;
        let channels = channels.max(1);
        let session = Session::open(amqp_url, &topology, channels).await?;
        Ok(Producer {
            url: SecretString::from(amqp_url),
            topology,
            channels,
            session: RwLock::new(Arc::new(session)),
            rebuild: tokio::sync::Mutex::new(()),
            attempts: AtomicU64::new(0),
            last_failure: Mutex::new(None),
            retiring: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Publishes `job` to `herald.jobs` with routing key = its kind, `message_id` = its id, the
    /// v1 JSON body and `x-herald-schema` = 1, and waits for RabbitMQ's confirm.
    #[tracing::instrument(skip_all, fields(job_id = %job.id))]
    pub async fn publish(&self, job: &EmailJob) -> Result<(), ProduceError> {
        let message_id = job.id.as_str();
        let mut headers = FieldTable::default();
        headers.insert(headers::SCHEMA.into(), AMQPValue::LongInt(SCHEMA_VERSION));
        let props = job_properties(message_id)
            .map_err(|source| ProduceError::Publish {
                message_id: message_id.to_owned(),
                source,
            })?
            .with_headers(headers);
        let routing_key = job.kind().routing_key();
        self.send(message_id, routing_key, &job.to_json(), props)
            .await?;
        tracing::debug!(routing_key, "Published the job.");
        Ok(())
    }

    /// Publishes `event` to the events exchange (`herald.events`, a durable topic exchange)
    /// with routing key = its type and `message_id` = its id, and waits for RabbitMQ's confirm.
    ///
    /// An event no queue is bound for is dropped by RabbitMQ (there is nobody to tell), and that
    /// counts as published: subscribers bind their queues before they expect events.
    #[tracing::instrument(skip_all, fields(event_id = %event.id, event = event.kind))]
    pub async fn publish_event(&self, event: &Event) -> Result<(), ProduceError> {
        let props = job_properties(&event.id).map_err(|source| ProduceError::Publish {
            message_id: event.id.clone(),
            source,
        })?;
        match self
            .send_to(
                &self.topology.events_exchange,
                &event.id,
                event.routing_key(),
                &event.to_json(),
                props,
            )
            .await
        {
            Err(ProduceError::Publish {
                source: PublishError::Returned { reply_code, .. },
                ..
            }) if reply_code == NO_ROUTE => {
                tracing::debug!("No queue is bound for this event; RabbitMQ dropped it.");
                Ok(())
            }
            other => other,
        }
    }

    /// Publishes an arbitrary body (no schema header) for tools and tests, e.g. a malformed job.
    pub async fn publish_raw(
        &self,
        routing_key: &str,
        message_id: &str,
        body: &[u8],
    ) -> Result<(), ProduceError> {
        let props = job_properties(message_id).map_err(|source| ProduceError::Publish {
            message_id: message_id.to_owned(),
            source,
        })?;
        self.send(message_id, routing_key, body, props).await
    }

    /// Whether a publish can go out now: connected, with every channel open. False during an
    /// outage, until a publish has rebuilt the connection (or lapin has recovered it).
    pub fn is_open(&self) -> bool {
        self.current().publisher.is_open()
    }

    /// The topology this producer declared and publishes to.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Connections replaced after an outage that are not closed yet: each is watched while
    /// lapin may still bring it back, then closed (see the type's docs). Zero means the current
    /// connection is the only one this producer holds open.
    pub fn retiring_connections(&self) -> usize {
        self.retiring.load(Ordering::Acquire)
    }

    /// Closes the connection; every publish that returned `Ok` is already confirmed.
    pub async fn close(self) {
        let session = self.current();
        if let Err(e) = session.connection.close(200, "OK".into()).await {
            tracing::debug!(error = %e, "The RabbitMQ connection was already closed.");
        }
    }

    /// Publishes on the current session (rebuilding it first if it failed), and marks the
    /// session for rebuilding when the publish fails because the connection or a channel is
    /// gone. The failed publish itself is reported, never sent again: it may have been stored.
    async fn send(
        &self,
        message_id: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<(), ProduceError> {
        self.send_to(
            &self.topology.exchange,
            message_id,
            routing_key,
            body,
            props,
        )
        .await
    }

    /// [`Producer::send`] to another exchange of the topology.
    async fn send_to(
        &self,
        exchange: &str,
        message_id: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<(), ProduceError> {
        let session = self
            .session()
            .await
            .map_err(|source| ProduceError::Unavailable {
                message_id: message_id.to_owned(),
                source,
            })?;
        let result = session
            .publisher
            .publish_with(exchange, routing_key, body, props)
            .await;
        if let Err(error) = &result
            && !session.publisher.is_open()
            && !session.failed.swap(true, Ordering::AcqRel)
        {
            tracing::warn!(
                error = %error,
                "A publish failed and the connection to RabbitMQ is down; the next publish reconnects."
            );
        }
        result.map_err(|source| ProduceError::Publish {
            message_id: message_id.to_owned(),
            source,
        })
    }

    fn current(&self) -> Arc<Session> {
        Arc::clone(&self.session.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The session to publish on: the current one, or a new one when the current one failed.
    async fn session(&self) -> Result<Arc<Session>, Arc<QueueError>> {
        let current = self.current();
        if !current.needs_rebuild() {
            return Ok(current);
        }
        let seen = self.attempts.load(Ordering::Acquire);
        let _rebuilding = self.rebuild.lock().await;
        let current = self.current();
        if !current.needs_rebuild() {
            return Ok(current);
        }
        if self.attempts.load(Ordering::Acquire) != seen
            && let Some(failure) = self.last_failure().clone()
        {
            return Err(failure);
        }
        let opened = Session::open(self.url.expose_secret(), &self.topology, self.channels).await;
        let outcome = match opened {
            Ok(session) => {
                let session = Arc::new(session);
                let old = std::mem::replace(
                    &mut *self.session.write().unwrap_or_else(|e| e.into_inner()),
                    Arc::clone(&session),
                );
                *self.last_failure() = None;
                let retiring = Arc::clone(&self.retiring);
                retiring.fetch_add(1, Ordering::AcqRel);
                tokio::spawn(async move {
                    retire(old).await;
                    retiring.fetch_sub(1, Ordering::AcqRel);
                });
                tracing::info!("Reconnected to RabbitMQ.");
                Ok(session)
            }
            Err(e) => {
                let failure = Arc::new(e);
                *self.last_failure() = Some(Arc::clone(&failure));
                tracing::warn!(error = %failure, "Could not reconnect to RabbitMQ.");
                Err(failure)
            }
        };
        self.attempts.fetch_add(1, Ordering::AcqRel);
        outcome
    }

    fn last_failure(&self) -> std::sync::MutexGuard<'_, Option<Arc<QueueError>>> {
        self.last_failure.lock().unwrap_or_else(|e| e.into_inner())
    }
}
