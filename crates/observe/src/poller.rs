//! The queue gauges: a background task that, for the work queue, each retry tier and the dead
//! queue, reads the ready messages and consumers with a passive declare on its own AMQP connection
//! and works out how long the oldest message has waited.
//!
//! RabbitMQ cannot tell that age: every Herald queue is a quorum queue, RabbitMQ 3.10 reports no
//! `head_message_timestamp` for quorum queues (rabbitmq-server issue #6813), and peeking with
//! `basic.get` would count a delivery against the work queue's `x-delivery-limit`. So
//! `herald_queue_oldest_message_age_seconds` comes from what Herald itself knows:
//!
//! - **Each retry tier**, from the job ledger: now − the oldest `updated_at` among the `retrying`
//!   jobs of that tier (attempt *n* waits in tier *n*, the last tier repeats), which is when each
//!   one's retry copy was made.
//! - **The dead queue**, from the job ledger: now − the oldest time at which a job still
//!   dead-lettered (`dead`, and not deleted by `herald dlq purge` since) was dead-lettered.
//! - **The work queue**, from what this worker consumes: now − the newest AMQP `timestamp` (the
//!   publish time Herald's publisher sets) among the messages it was delivered. Messages are
//!   delivered FIFO, so the head is at most that old: an upper bound, which keeps growing if the
//!   consumer stalls. NaN while this worker has not been delivered a timestamped message.
//!
//! Every age is 0 when the queue has no ready messages, which also keeps a stale ledger row (a
//! retry copy that never reached its tier, a letter deleted by other means) from showing in an
//! empty queue. A queue whose depth, or whose ledger age, cannot be read keeps its last values.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_queue::{QueueRole, Topology, queue_stats};
use herald_store::Store;
use herald_store::queue_age::LedgerQueueAges;
use herald_worker::CancellationToken;
use herald_worker::lag::NewestDelivered;
use herald_worker::metrics::{record_queue, record_queue_age};
use lapin::Connection;
use secrecy::{ExposeSecret, SecretString};
use tokio::task::JoinHandle;
use tracing::debug;

/// How often `herald worker` refreshes the queue gauges.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// Everything the queue poller reads.
#[derive(Debug, Clone)]
pub struct QueuePoller {
    /// Where it opens its own AMQP connection (it holds the broker password).
    pub amqp_url: SecretString,
    /// Names the work queue, the retry tiers and the dead queue.
    pub topology: Topology,
    /// The job ledger: the source of the retry tiers' and the dead queue's ages.
    pub store: Store,
    /// The worker's newest delivered publish time: the bound on the work queue's age.
    pub newest_delivered: NewestDelivered,
    /// How often it refreshes the gauges.
    pub every: Duration,
}

/// The queues worth watching: the work queue, each retry tier, and the dead-letter queue.
pub fn queues_of(topology: &Topology) -> Vec<String> {
    topology
        .queues_by_role()
        .into_iter()
        .map(|(q, _)| q)
        .collect()
}

/// The age, in seconds, reported for a queue with `ready` ready messages; `None` when its source
/// (`ledger`, for a retry tier or the dead queue) could not be read. `now` is Unix seconds.
fn oldest_age(
    source: QueueRole,
    ready: u32,
    ledger: Option<&LedgerQueueAges>,
    newest_delivered: Option<u64>,
    now: f64,
) -> Option<f64> {
    if ready == 0 {
        return Some(0.0);
    }
    match source {
        // The timestamp has whole seconds and was taken no later than the publish, so the bound
        // holds; a producer's clock running ahead of ours gives 0.
        QueueRole::Work => Some(newest_delivered.map_or(f64::NAN, |t| (now - t as f64).max(0.0))),
        QueueRole::Retry(tier) => ledger.map(|l| {
            l.retry_tiers
                .get(tier)
                .copied()
                .unwrap_or_default()
                .as_secs_f64()
        }),
        QueueRole::Dead => ledger.map(|l| l.dead.as_secs_f64()),
        // A deferred copy waits out another delivery's lease, so about one lease at most; no
        // source dates it more closely.
        QueueRole::Defer => Some(f64::NAN),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Sets `herald_queue_messages`, `herald_queue_consumers` and
/// `herald_queue_oldest_message_age_seconds` for each watched queue every `poller.every` (the
/// first time `poller.every` after the start), until `shutdown`. A lost connection is reopened on
/// a later round.
pub fn spawn_queue_poller(poller: QueuePoller, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let queues = poller.topology.queues_by_role();
        let tiers = poller.topology.retry_delays.len();
        let mut conn: Option<Connection> = None;
        // The first round one interval in, not at once: a worker starting on a fresh broker
        // declares its queues first, and a passive declare of a queue not there yet makes the
        // broker close the channel (which lapin logs as an error).
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + poller.every, poller.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if conn
                .as_ref()
                .is_some_and(|c| c.status().closed() || c.status().errored())
            {
                conn = None;
            }
            if conn.is_none() {
                match herald_queue::connect(
                    poller.amqp_url.expose_secret(),
                    "herald-observe (queue stats)",
                )
                .await
                {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        debug!(error = %e, "Queue stats: cannot connect to RabbitMQ yet.");
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_ref().filter(|c| c.status().connected()) else {
                continue; // lapin is recovering the connection
            };
            let mut ready: Vec<(&str, QueueRole, u32)> = Vec::with_capacity(queues.len());
            for (queue, source) in &queues {
                match queue_stats(c, queue).await {
                    Ok(stats) => {
                        record_queue(queue, stats.messages, stats.consumers);
                        ready.push((queue, *source, stats.messages));
                    }
                    Err(e) => debug!(queue, error = %e, "Queue stats: could not read the queue."),
                }
            }
            // The ledger is asked only when a queue it knows about holds messages.
            let needs_ledger = ready
                .iter()
                .any(|(_, source, n)| *n > 0 && *source != QueueRole::Work);
            let ledger = if needs_ledger {
                match poller.store.queue_ages(tiers).await {
                    Ok(ages) => Some(ages),
                    Err(e) => {
                        debug!(error = %e, "Queue ages: could not read the ledger.");
                        None
                    }
                }
            } else {
                None
            };
            let newest = poller.newest_delivered.unix_secs();
            let now = unix_now();
            for (queue, source, messages) in ready {
                if let Some(age) = oldest_age(source, messages, ledger.as_ref(), newest, now) {
                    record_queue_age(queue, age);
                }
            }
        }
        if let Some(c) = conn {
            let _ = c.close(200, "herald stopping".into()).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> LedgerQueueAges {
        LedgerQueueAges {
            retry_tiers: vec![Duration::ZERO, Duration::from_millis(42_500)],
            dead: Duration::from_secs(600),
        }
    }

    #[test]
    fn every_queue_is_watched_with_its_source() {
        let topology = Topology::default()
            .with_retry_delays(vec![Duration::from_secs(5), Duration::from_secs(60)]);
        assert_eq!(
            topology.queues_by_role(),
            [
                ("herald.email".to_owned(), QueueRole::Work),
                ("herald.email.retry.5s".to_owned(), QueueRole::Retry(0)),
                ("herald.email.retry.1m".to_owned(), QueueRole::Retry(1)),
                ("herald.email.defer".to_owned(), QueueRole::Defer),
                ("herald.email.dead".to_owned(), QueueRole::Dead),
            ]
        );
        assert_eq!(queues_of(&topology).len(), 5);
    }

    #[test]
    fn an_empty_queue_is_zero_whatever_the_sources_say() {
        for source in [
            QueueRole::Work,
            QueueRole::Retry(1),
            QueueRole::Defer,
            QueueRole::Dead,
        ] {
            assert_eq!(
                oldest_age(source, 0, Some(&ledger()), Some(1_000), 5_000.0),
                Some(0.0)
            );
            assert_eq!(oldest_age(source, 0, None, None, 5_000.0), Some(0.0));
        }
    }

    #[test]
    fn retry_tiers_and_the_dead_queue_take_the_ledgers_age() {
        let l = ledger();
        let age = |source, ledger| oldest_age(source, 3, ledger, Some(4_990), 5_000.0);
        assert_eq!(age(QueueRole::Retry(1), Some(&l)), Some(42.5));
        assert_eq!(age(QueueRole::Retry(0), Some(&l)), Some(0.0));
        assert_eq!(age(QueueRole::Retry(9), Some(&l)), Some(0.0));
        assert_eq!(age(QueueRole::Dead, Some(&l)), Some(600.0));
        // An unreadable ledger leaves the gauge as it was.
        assert_eq!(age(QueueRole::Retry(1), None), None);
        assert_eq!(age(QueueRole::Dead, None), None);
    }

    #[test]
    fn the_work_queue_is_bounded_by_the_newest_delivered_publish_time() {
        let age = |newest, now| oldest_age(QueueRole::Work, 7, None, newest, now);
        assert_eq!(age(Some(1_000), 1_012.25), Some(12.25));
        // The bound keeps growing while nothing is delivered (a stalled consumer).
        assert_eq!(age(Some(1_000), 1_300.0), Some(300.0));
        // A producer whose clock runs ahead never gives a negative age.
        assert_eq!(age(Some(2_000), 1_999.5), Some(0.0));
        assert!(
            age(None, 1_000.0).unwrap().is_nan(),
            "unknown before any delivery"
        );
    }
}
