//! The AMQP side of the worker: consume `herald.email`, run each delivery through the pipeline,
//! carry out its outcome (retry copy, dead-letter copy) with publisher confirms, then ack.
//!
//! A session owns two connections (consuming and publishing are kept apart so broker flow control
//! on publishes never stalls acks). When a session fails, `run` opens the next one at once (then
//! with backoff while the broker stays away) and gives up only after repeated failures. The jobs
//! the failed session had in flight are not waited for: they finish in the background on its
//! connections, which close once they are done. On shutdown it stops consuming, lets in-flight
//! jobs finish and ack within the configured deadline, and returns.
//!
//! A delivery is acked only once its copy (retry, defer or dead letter) is confirmed. When a copy
//! cannot be confirmed, the delivery is left unsettled and the session is ended: the broker
//! redelivers it when its channel closes. It is never rejected into the dead-letter queue for
//! that: the dead-letter queue holds only jobs that have a reason and are recorded dead.
//!
//! [`Stepper`] drives the same processing one delivery at a time, so a test can publish a job,
//! call [`Stepper::process_next`] and assert on the outcome instead of polling the ledger.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use herald_domain::TraceParent;
use herald_queue::{Publisher, QueueError, failed_attempts, header_string, original_routing_key};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};
use secrecy::ExposeSecret;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::lag::NewestDelivered;
use crate::outcome::Outcome;
use crate::pipeline::{Incoming, Pipeline};

/// Consecutive failed sessions after which the worker exits non-zero (for its supervisor).
const MAX_SESSION_FAILURES: u32 = 30;
/// How often a session checks that both of its connections are still up.
const HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long ending a session waits for the broker to answer its cancel and closes.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("AMQP: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker cancelled the consumer on {0} (queue deleted or node failover)")]
    ConsumerCancelled(String),
    #[error("the {0} connection to RabbitMQ was lost")]
    ConnectionLost(&'static str),
    #[error("a retry, defer or dead-letter copy could not be confirmed; reconnecting")]
    CopyFailed,
    #[error("giving up after {failures} failed attempts to (re)connect; last error: {last}")]
    GaveUp { failures: u32, last: String },
}

#[derive(Debug, Clone)]
pub struct Worker {
    pipeline: Arc<Pipeline>,
    consuming: Arc<AtomicBool>,
    /// Bounds the work queue's oldest-message age for the queue poller.
    newest_delivered: NewestDelivered,
}

impl Worker {
    pub fn new(pipeline: Pipeline) -> Self {
        Self {
            pipeline: Arc::new(pipeline),
            consuming: Arc::new(AtomicBool::new(false)),
            newest_delivered: NewestDelivered::new(),
        }
    }

    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// True while a session is connected and consuming the work queue (for readiness probes).
    pub fn is_consuming(&self) -> bool {
        self.consuming.load(Ordering::Relaxed)
    }

    /// The newest publish time (AMQP `timestamp`) among the deliveries this worker took from the
    /// work queue, shared with whoever holds the handle.
    pub fn newest_delivered(&self) -> NewestDelivered {
        self.newest_delivered.clone()
    }

    /// Consumes until `shutdown` is cancelled, reconnecting when the broker goes away.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let mut failures = 0u32;
        let mut backoff = Duration::from_millis(200);
        loop {
            let started = Instant::now();
            let mut consumed = false;
            match self.session(&shutdown, &mut consumed).await {
                Ok(()) => return Ok(()),
                Err(e) => {
                    // A session that got as far as consuming was not a failed attempt: count
                    // afresh, or short outages minutes apart would add up to giving up. Its
                    // successor is opened at once; backoff applies while reconnecting fails.
                    if consumed || started.elapsed() > Duration::from_secs(60) {
                        failures = 0;
                        backoff = Duration::from_millis(200);
                    }
                    if consumed {
                        warn!(error = %e, "The AMQP session ended; reconnecting now.");
                        continue;
                    }
                    failures += 1;
                    if failures >= MAX_SESSION_FAILURES {
                        return Err(WorkerError::GaveUp {
                            failures,
                            last: e.to_string(),
                        });
                    }
                    warn!(error = %e, retry_in = ?backoff, failures, "Could not open an AMQP session; trying again.");
                    tokio::select! {
                        () = shutdown.cancelled() => return Ok(()),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn session(
        &self,
        shutdown: &CancellationToken,
        consumed: &mut bool,
    ) -> Result<(), WorkerError> {
        let config = &self.pipeline.config;
        let topology = config.topology.clone();
        let Session {
            consume_conn,
            publish_conn,
            channel,
            publisher,
            tag,
            mut consumer,
        } = Session::open(&self.pipeline, config.prefetch).await?;
        info!(queue = %topology.work_queue, prefetch = config.prefetch, "Consuming jobs.");
        *consumed = true;
        let _consuming = ConsumingFlag::raise(&self.consuming);

        let mut tasks = JoinSet::new();
        let mut health = tokio::time::interval(HEALTH_CHECK_INTERVAL);
        // Cancelled by a delivery whose copy could not be confirmed: the session is broken.
        let copy_failed = CancellationToken::new();
        let ended: Result<(), WorkerError> = loop {
            tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                () = copy_failed.cancelled() => break Err(WorkerError::CopyFailed),
                _ = health.tick() => {
                    // A dead publishing side would leave every retry and defer unsettled.
                    if !publish_conn.status().connected() || !publisher.is_open() {
                        break Err(WorkerError::ConnectionLost("publishing"));
                    }
                    if !consume_conn.status().connected() {
                        break Err(WorkerError::ConnectionLost("consuming"));
                    }
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        if let Some(published) = delivery.properties.timestamp() {
                            self.newest_delivered.record(*published);
                        }
                        let pipeline = self.pipeline.clone();
                        let publisher = publisher.clone();
                        tasks.spawn(process(pipeline, publisher, delivery, copy_failed.clone()));
                    }
                    Some(Err(e)) => break Err(e.into()),
                    None => break Err(WorkerError::ConsumerCancelled(topology.work_queue.clone())),
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        };

        let ending = Ending {
            consume_conn,
            publish_conn,
            channel,
            tag,
            consumer,
            tasks,
            drain: config.shutdown_timeout,
        };
        if ended.is_ok() {
            info!(
                in_flight = ending.tasks.len(),
                "Stopping: no new jobs; finishing the ones in flight."
            );
            ending.wind_down().await;
        } else {
            // The next session starts now; this one's jobs finish (and settle, where its
            // channel still can) in the background.
            tokio::spawn(ending.wind_down());
        }
        ended
    }
}

/// What is left of a session once it stops consuming: its connections, the consumer and the
/// jobs still in flight.
struct Ending {
    consume_conn: Connection,
    publish_conn: Connection,
    channel: Channel,
    tag: String,
    consumer: Consumer,
    tasks: JoinSet<Outcome>,
    drain: Duration,
}

impl Ending {
    /// Stops the broker's deliveries, gives back the ones received but not started, lets the
    /// jobs in flight finish within `drain`, then closes the connections. Every broker call is
    /// bounded: on a connection that has just died, one can wait for an answer forever.
    async fn wind_down(self) {
        let Ending {
            consume_conn,
            publish_conn,
            channel,
            tag,
            mut consumer,
            mut tasks,
            drain,
        } = self;
        let cancel = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default());
        match tokio::time::timeout(CLOSE_TIMEOUT, cancel).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => debug!(error = %e, "Could not cancel the consumer cleanly."),
            Err(_) => debug!("The broker did not confirm the consumer's cancellation."),
        }
        while let Some(Some(Ok(delivery))) = consumer.next().now_or_never() {
            let requeue = BasicNackOptions {
                requeue: true,
                multiple: false,
            };
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, delivery.nack(requeue)).await;
        }
        let drained =
            tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            warn!(
                abandoned = tasks.len(),
                "Shutdown deadline passed; unacked jobs will be redelivered."
            );
            tasks.abort_all();
        }
        let goodbye = async {
            let _ = channel.close(200, "herald worker stopping".into()).await;
            let _ = consume_conn
                .close(200, "herald worker stopping".into())
                .await;
            let _ = publish_conn
                .close(200, "herald worker stopping".into())
                .await;
        };
        if tokio::time::timeout(CLOSE_TIMEOUT, goodbye).await.is_err() {
            warn!("The broker did not answer while closing the session; dropping its connections.");
        }
    }
}

/// The connections, channel and consumer of one session.
struct Session {
    consume_conn: Connection,
    publish_conn: Connection,
    channel: Channel,
    publisher: Arc<Publisher>,
    tag: String,
    consumer: Consumer,
}

impl Session {
    /// Connects (twice: consuming and publishing are kept apart), declares the topology and
    /// starts consuming the work queue with `prefetch` unacked deliveries at most.
    async fn open(pipeline: &Pipeline, prefetch: u16) -> Result<Session, WorkerError> {
        let config = &pipeline.config;
        let topology = config.topology.clone();
        // No lapin auto-recovery here: `run` rebuilds the whole session instead, so an outage
        // always ends the session (recovery inside lapin hid it, and stalled for good once lapin
        // stopped retrying).
        let consume_conn = herald_queue::connect::connect_without_recovery(
            config.amqp_url.expose_secret(),
            "herald-worker (consume)",
        )
        .await?;
        let publish_conn = herald_queue::connect::connect_without_recovery(
            config.amqp_url.expose_secret(),
            "herald-worker (publish)",
        )
        .await?;
        let channel = consume_conn.create_channel().await?;
        topology.declare(&channel).await?;
        channel
            .basic_qos(prefetch, BasicQosOptions { global: false })
            .await?;
        let publisher = Arc::new(Publisher::new(&publish_conn, topology.clone()).await?);
        let tag = format!("herald-worker-{}-{}", std::process::id(), uuid_suffix());
        let consumer = channel
            .basic_consume(
                topology.work_queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(Session {
            consume_conn,
            publish_conn,
            channel,
            publisher,
            tag,
            consumer,
        })
    }
}

/// A worker session driven by the caller, one delivery at a time (prefetch 1): each
/// [`Stepper::process_next`] takes the next delivery of the work queue, runs it through the
/// pipeline and settles it exactly as [`Worker::run`] does, and returns its outcome.
pub struct Stepper {
    worker: Worker,
    session: Session,
}

impl std::fmt::Debug for Stepper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stepper")
            .field("consumer_tag", &self.session.tag)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Opens a session that processes nothing until [`Stepper::process_next`] is called.
    pub async fn stepper(&self) -> Result<Stepper, WorkerError> {
        let session = Session::open(&self.pipeline, 1).await?;
        Ok(Stepper {
            worker: self.clone(),
            session,
        })
    }
}

impl Stepper {
    /// Waits up to `wait` for the next delivery of the work queue, processes and settles it (a
    /// retry or dead-letter copy is confirmed before the ack), and returns its outcome; `None`
    /// when nothing arrived in time. A retried job comes back as a later delivery once its
    /// retry tier's delay has passed.
    pub async fn process_next(&mut self, wait: Duration) -> Result<Option<Outcome>, WorkerError> {
        let next = match tokio::time::timeout(wait, self.session.consumer.next()).await {
            Err(_) => return Ok(None),
            Ok(next) => next,
        };
        let delivery = match next {
            Some(Ok(delivery)) => delivery,
            Some(Err(e)) => return Err(e.into()),
            None => {
                return Err(WorkerError::ConsumerCancelled(
                    self.worker.pipeline.config.topology.work_queue.clone(),
                ));
            }
        };
        if let Some(published) = delivery.properties.timestamp() {
            self.worker.newest_delivered.record(*published);
        }
        Ok(Some(
            process(
                self.worker.pipeline.clone(),
                self.session.publisher.clone(),
                delivery,
                CancellationToken::new(),
            )
            .await,
        ))
    }

    /// Closes the session; a delivery taken but not processed goes back to the queue.
    pub async fn close(self) {
        let s = self.session;
        let goodbye = async {
            let _ = s.channel.close(200, "herald stepper closing".into()).await;
            let _ = s
                .consume_conn
                .close(200, "herald stepper closing".into())
                .await;
            let _ = s
                .publish_conn
                .close(200, "herald stepper closing".into())
                .await;
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, goodbye).await;
    }
}

/// Runs one delivery through the pipeline, settles it with the broker and returns its outcome.
///
/// When the outcome's copy cannot be confirmed, the delivery is left unsettled (the broker
/// redelivers it once its channel closes) and `copy_failed` is cancelled, so that the session
/// ends and the next one starts with new connections.
async fn process(
    pipeline: Arc<Pipeline>,
    publisher: Arc<Publisher>,
    delivery: Delivery,
    copy_failed: CancellationToken,
) -> Outcome {
    let message_id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    // The contract makes message_id the job id, so every line logged for this delivery carries
    // job_id, plus the upstream trace when the message has a valid W3C traceparent header.
    let traceparent = header_string(&delivery.properties, "traceparent")
        .as_deref()
        .and_then(TraceParent::parse);
    let span = info_span!(
        "delivery",
        job_id = %message_id,
        trace_id = tracing::field::Empty,
        parent_span_id = tracing::field::Empty,
    );
    if let Some(tp) = &traceparent {
        span.record("trace_id", tp.trace_id());
        span.record("parent_span_id", tp.parent_id());
    }
    async move {
        let incoming = Incoming {
            body: &delivery.data,
            failed_attempts: failed_attempts(&delivery.properties),
            traceparent: traceparent.as_ref(),
        };
        let (outcome, kind) = pipeline.handle_typed(incoming).await;
        let routing_key = original_routing_key(&delivery);
        let copied = match &outcome {
            Outcome::Sent { .. } | Outcome::Duplicate | Outcome::Skipped => Ok(()),
            Outcome::Retry { attempt, error } => publisher
                .publish_retry(&delivery.data, &delivery.properties, &routing_key, *attempt, error)
                .await
                .map(|_| ()),
            Outcome::Defer { attempts, wait } => publisher
                .publish_deferred(
                    &delivery.data,
                    &delivery.properties,
                    &routing_key,
                    *attempts,
                    *wait,
                )
                .await,
            Outcome::DeadLetter {
                reason,
                error,
                attempts,
            } => {
                // A one-time code does not outlive its job: the dead letter keeps it redacted.
                let redacted = herald_domain::redact_code_in_body(&delivery.data);
                let body = redacted.as_deref().unwrap_or(&delivery.data);
                publisher
                    .publish_dead(body, &delivery.properties, &routing_key, reason, error, *attempts)
                    .await
            }
        };
        crate::metrics::record_outcome(&outcome, kind, copied.is_ok());
        if let Err(e) = copied {
            // Not acked (the copy is not safe) and not rejected (that would park a healthy job
            // in the dead-letter queue): left to the broker, which redelivers it when this
            // session's channel closes, which it does now.
            error!(error = %e, ?outcome, "Could not copy the job to its retry, defer or dead-letter queue; leaving it to be redelivered and reconnecting.");
            copy_failed.cancel();
            drop(delivery);
            return outcome;
        }
        if let Outcome::DeadLetter { reason, .. } = &outcome {
            pipeline.record_dead_lettered(&delivery.data, reason).await;
        }
        match delivery.ack(BasicAckOptions::default()).await {
            Ok(true) => {}
            Ok(false) => warn!("The delivery could not be settled (its channel was recovered); the broker will redeliver it and the ledger will recognise it."),
            Err(e) => warn!(error = %e, "Settling the delivery failed; the broker will redeliver it."),
        }
        outcome
    }
    .instrument(span)
    .await
}

/// Raised while a session consumes; lowered when the session ends, however it ends.
struct ConsumingFlag<'a>(&'a AtomicBool);

impl<'a> ConsumingFlag<'a> {
    fn raise(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::Relaxed);
        ConsumingFlag(flag)
    }
}

impl Drop for ConsumingFlag<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

fn uuid_suffix() -> String {
    use std::time::SystemTime;
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{nanos:08x}")
}
