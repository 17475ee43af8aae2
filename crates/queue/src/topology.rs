//! The AMQP topology (contract v1): exchanges, the quorum work queue, retry tiers and dead letters.
//!
//! ```text
//! producers ─► herald.jobs (topic) ──email.#──────────────┐
//!                                                          ▼
//!        herald.requeue (direct) ──herald.email──► herald.email (quorum) ─► worker
//!               ▲                                          │ nack / delivery limit (safety net)
//!               │ TTL expiry (at-least-once)               ▼
//! herald.retry ─► herald.email.retry.<d> (quorum)   herald.dead (fanout) ─► herald.email.dead
//!             └─► herald.email.defer (quorum, per-message TTL) ─► herald.requeue
//! ```
//!
//! The worker never requeues: it publishes a copy to the retry tier for the attempt (queue-level
//! TTL, no consumers), which dead-letters it back through `herald.requeue` when the TTL expires,
//! so consumers of `herald.jobs` never see retries. A delivery whose job another delivery is
//! sending waits in `herald.email.defer` for as long as that delivery's lease has left (each copy
//! carries its own TTL). Permanent failures are copied to `herald.dead`.
//! Every declaration here must use identical arguments everywhere (RabbitMQ answers
//! PRECONDITION_FAILED otherwise), which is why producer and worker both call this module.

use std::collections::HashSet;
use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ErrorKind, ExchangeKind};

use crate::error::QueueError;

/// The binding key of the work queue on the jobs exchange: every email kind.
pub const WORK_BINDING_KEY: &str = "email.#";
/// Redeliveries of one message before the work queue dead-letters it (poison protection).
pub const WORK_DELIVERY_LIMIT: i32 = 20;
/// The default retry tiers: attempt 1 waits 5 s, attempt 2 waits 30 s, … then 1 h for good.
pub const DEFAULT_RETRY_DELAYS: [Duration; 6] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(2 * 60),
    Duration::from_secs(10 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(60 * 60),
];

/// The names and retry delays of Herald's AMQP topology. [`Topology::default`] is contract v1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Durable topic exchange producers publish to; routing key = job kind.
    pub exchange: String,
    /// Durable quorum queue the worker consumes.
    pub work_queue: String,
    /// Direct exchange retried messages come back through, so they bypass `exchange` and its
    /// other consumers.
    pub requeue_exchange: String,
    /// Direct exchange in front of the retry tiers (routing key = tier queue name).
    pub retry_exchange: String,
    /// Fanout exchange: it must route dead letters whatever their routing key, including the
    /// original key that the work queue's DLX safety net keeps.
    pub dead_exchange: String,
    pub dead_queue: String,
    /// Durable topic exchange Herald publishes its events on (`user.email_verified`,
    /// `user.password_changed`, `user.mfa_enrolled`); subscribers bind their own queues.
    pub events_exchange: String,
    /// One retry tier per delay, in attempt order; the last one repeats.
    pub retry_delays: Vec<Duration>,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            exchange: "herald.jobs".into(),
            work_queue: "herald.email".into(),
            requeue_exchange: "herald.requeue".into(),
            retry_exchange: "herald.retry".into(),
            dead_exchange: "herald.dead".into(),
            dead_queue: "herald.email.dead".into(),
            events_exchange: "herald.events".into(),
            retry_delays: DEFAULT_RETRY_DELAYS.to_vec(),
        }
    }
}

/// What a queue of the topology is for (which also says where its oldest message's age comes
/// from: the worker's deliveries for the work queue, the ledger for the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueRole {
    Work,
    /// The retry tier with this index, in attempt order.
    Retry(usize),
    /// Deliveries waiting for another delivery's lease on their job to end.
    Defer,
    Dead,
}

impl Topology {
    /// Replaces the retry delays. An empty list is refused by [`Topology::validate`].
    #[must_use]
    pub fn with_retry_delays(mut self, delays: Vec<Duration>) -> Self {
        self.retry_delays = delays;
        self
    }

    /// Checks names and delays; [`Topology::declare`] and the publisher call it first.
    pub fn validate(&self) -> Result<(), QueueError> {
        let invalid = |m: String| Err(QueueError::InvalidTopology(m));
        if self.retry_delays.is_empty() {
            return invalid("retry_delays is empty; give at least one retry delay".into());
        }
        for delay in &self.retry_delays {
            let ms = delay.as_millis();
            if ms == 0 || delay.subsec_nanos() % 1_000_000 != 0 || ms > u128::from(u32::MAX) {
                return invalid(format!(
                    "retry delay {} must be a whole number of milliseconds between 1ms and {}",
                    humantime::format_duration(*delay),
                    humantime::format_duration(Duration::from_millis(u64::from(u32::MAX))),
                ));
            }
        }
        let mut names: Vec<(&str, String)> = vec![
            ("exchange", self.exchange.clone()),
            ("requeue_exchange", self.requeue_exchange.clone()),
            ("retry_exchange", self.retry_exchange.clone()),
            ("dead_exchange", self.dead_exchange.clone()),
            ("events_exchange", self.events_exchange.clone()),
            ("work_queue", self.work_queue.clone()),
            ("dead_queue", self.dead_queue.clone()),
        ];
        names.extend(self.retry_queues().into_iter().map(|q| ("retry queue", q)));
        names.push(("defer queue", self.defer_queue()));
        for (what, name) in &names {
            if name.is_empty() || name.len() > 255 || name.starts_with("amq.") {
                return invalid(format!(
                    "{what} {name:?} must be 1 to 255 bytes long and must not start with \"amq.\""
                ));
            }
        }
        let exchanges: HashSet<&String> = names[..5].iter().map(|(_, n)| n).collect();
        if exchanges.len() != 5 {
            return invalid("the five exchange names must differ".into());
        }
        let queues: HashSet<&String> = names[5..].iter().map(|(_, n)| n).collect();
        if queues.len() != names.len() - 5 {
            return invalid(format!(
                "queue names must differ; two retry delays give the same tier name in {:?}",
                self.retry_queues()
            ));
        }
        Ok(())
    }

    /// The queue of retry tier `tier` (0-based), e.g. `herald.email.retry.30s`. Tiers past the
    /// last one map to the last one.
    ///
    /// # Panics
    /// If `retry_delays` is empty, which [`Topology::validate`] refuses.
    pub fn retry_queue(&self, tier: usize) -> String {
        format!(
            "{}.retry.{}",
            self.work_queue,
            compact(self.tier_delay(tier))
        )
    }

    /// The queue deferred deliveries wait in, e.g. `herald.email.defer`.
    pub fn defer_queue(&self) -> String {
        format!("{}.defer", self.work_queue)
    }

    /// The tier for a delivery that has failed `failed_attempts` times: 1 → first tier,
    /// 2 → second, …, clamped to the last tier (0 is treated as 1).
    pub fn retry_delay_for_attempt(&self, failed_attempts: u32) -> (String, Duration) {
        let tier = usize::try_from(failed_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        (self.retry_queue(tier), self.tier_delay(tier))
    }

    /// Every retry tier queue, in attempt order.
    /// Every queue a job can wait in, in the order a job travels, with what each is for.
    pub fn queues_by_role(&self) -> Vec<(String, QueueRole)> {
        let mut queues = vec![(self.work_queue.clone(), QueueRole::Work)];
        queues.extend(
            self.retry_queues()
                .into_iter()
                .enumerate()
                .map(|(tier, q)| (q, QueueRole::Retry(tier))),
        );
        queues.push((self.defer_queue(), QueueRole::Defer));
        queues.push((self.dead_queue.clone(), QueueRole::Dead));
        queues
    }

    pub fn retry_queues(&self) -> Vec<String> {
        (0..self.retry_delays.len())
            .map(|tier| self.retry_queue(tier))
            .collect()
    }

    fn tier_delay(&self, tier: usize) -> Duration {
        let last = self
            .retry_delays
            .len()
            .checked_sub(1)
            .expect("Topology::retry_delays is empty; Topology::validate() refuses that");
        self.retry_delays[tier.min(last)]
    }

    /// Declares everything: [`Topology::declare_core`] plus the retry exchange and tiers.
    /// Idempotent; run by the worker (and `herald queues`) at startup.
    pub async fn declare(&self, channel: &Channel) -> Result<(), QueueError> {
        self.declare_core(channel).await?;
        declare_exchange(channel, &self.retry_exchange, ExchangeKind::Direct).await?;
        for (tier, delay) in self.retry_delays.iter().enumerate() {
            let queue = self.retry_queue(tier);
            declare_queue(channel, &queue, self.retry_queue_args(*delay)).await?;
            bind(channel, &queue, &self.retry_exchange, &queue).await?;
        }
        let defer = self.defer_queue();
        declare_queue(channel, &defer, self.defer_queue_args()).await?;
        bind(channel, &defer, &self.retry_exchange, &defer).await?;
        tracing::debug!(
            tiers = ?self.retry_queues(),
            "Declared the full topology, retry tiers included."
        );
        Ok(())
    }

    /// Declares what a producer needs so that early jobs are never unroutable: the jobs
    /// exchange, the work queue with its bindings, and the dead-letter exchange and queue it
    /// points at; and the events exchange. Idempotent.
    pub async fn declare_core(&self, channel: &Channel) -> Result<(), QueueError> {
        self.validate()?;
        declare_exchange(channel, &self.exchange, ExchangeKind::Topic).await?;
        declare_exchange(channel, &self.requeue_exchange, ExchangeKind::Direct).await?;
        declare_exchange(channel, &self.dead_exchange, ExchangeKind::Fanout).await?;
        declare_exchange(channel, &self.events_exchange, ExchangeKind::Topic).await?;

        declare_queue(channel, &self.dead_queue, quorum_args()).await?;
        bind(
            channel,
            &self.dead_queue,
            &self.dead_exchange,
            &self.dead_queue,
        )
        .await?;

        declare_queue(channel, &self.work_queue, self.work_queue_args()).await?;
        bind(channel, &self.work_queue, &self.exchange, WORK_BINDING_KEY).await?;
        bind(
            channel,
            &self.work_queue,
            &self.requeue_exchange,
            &self.work_queue,
        )
        .await?;
        Ok(())
    }

    /// The work queue's arguments. They must be identical in every declaration.
    fn work_queue_args(&self) -> FieldTable {
        let mut args = quorum_args();
        args.insert("x-dead-letter-exchange".into(), string(&self.dead_exchange));
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongInt(WORK_DELIVERY_LIMIT),
        );
        args
    }

    /// A retry tier's arguments: hold for `delay`, then dead-letter back to the work queue.
    /// At-least-once dead-lettering needs `reject-publish` overflow (RabbitMQ 3.10+).
    fn retry_queue_args(&self, delay: Duration) -> FieldTable {
        let ttl = i64::try_from(delay.as_millis()).expect("validate() bounds the delay");
        let mut args = self.defer_queue_args();
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
        args
    }

    /// The defer queue's arguments: a retry tier's without a queue TTL (each copy brings its own).
    fn defer_queue_args(&self) -> FieldTable {
        let mut args = quorum_args();
        args.insert(
            "x-dead-letter-exchange".into(),
            string(&self.requeue_exchange),
        );
        args.insert("x-dead-letter-routing-key".into(), string(&self.work_queue));
        args.insert("x-dead-letter-strategy".into(), string("at-least-once"));
        args.insert("x-overflow".into(), string("reject-publish"));
        args
    }
}

/// Formats a delay the way tier queues are named: `500ms`, `5s`, `90s`, `2m`, `1h`.
pub fn compact(delay: Duration) -> String {
    let ms = delay.as_millis();
    match ms {
        0 => "0ms".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

fn string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), string("quorum"));
    args
}

async fn declare_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
) -> Result<(), QueueError> {
    let options = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            ShortString::from(name),
            kind,
            options,
            FieldTable::default(),
        )
        .await
        .map_err(|e| refused(e, format!("declare exchange {name}")))
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> Result<(), QueueError> {
    channel
        .queue_declare(
            ShortString::from(name),
            QueueDeclareOptions::durable(),
            args,
        )
        .await
        .map(drop)
        .map_err(|e| refused(e, format!("declare queue {name}")))
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), QueueError> {
    channel
        .queue_bind(
            ShortString::from(queue),
            ShortString::from(exchange),
            ShortString::from(key),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| {
            refused(
                e,
                format!("bind queue {queue} to {exchange} with key {key:?}"),
            )
        })
}

/// Adds the usual way out to a PRECONDITION_FAILED: an older declaration with other arguments.
fn refused(source: lapin::Error, action: String) -> QueueError {
    let precondition = matches!(
        source.kind(),
        ErrorKind::ProtocolError(e) if *e.kind() == AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
    );
    let action = if precondition {
        format!(
            "{action}: it already exists with other arguments or type; \
             drain it and delete it (rabbitmqctl delete_queue / delete_exchange) so Herald can \
             declare it as contract v1 requires"
        )
    } else {
        action
    };
    QueueError::amqp(action)(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn tier_names_are_compact() {
        let names = Topology::default().retry_queues();
        assert_eq!(
            names,
            [
                "herald.email.retry.5s",
                "herald.email.retry.30s",
                "herald.email.retry.2m",
                "herald.email.retry.10m",
                "herald.email.retry.30m",
                "herald.email.retry.1h",
            ]
        );
        assert_eq!(compact(ms(500)), "500ms");
        assert_eq!(compact(ms(1_500)), "1500ms");
        assert_eq!(compact(ms(90_000)), "90s");
        assert_eq!(compact(ms(7_200_000)), "2h");
    }

    #[test]
    fn retry_delay_for_attempt_clamps_to_the_last_tier() {
        let t = Topology::default().with_retry_delays(vec![ms(200), ms(400)]);
        assert_eq!(
            t.retry_delay_for_attempt(0),
            ("herald.email.retry.200ms".into(), ms(200))
        );
        assert_eq!(
            t.retry_delay_for_attempt(1),
            ("herald.email.retry.200ms".into(), ms(200))
        );
        assert_eq!(
            t.retry_delay_for_attempt(2),
            ("herald.email.retry.400ms".into(), ms(400))
        );
        assert_eq!(
            t.retry_delay_for_attempt(3),
            ("herald.email.retry.400ms".into(), ms(400))
        );
        assert_eq!(t.retry_delay_for_attempt(u32::MAX).1, ms(400));
        assert_eq!(t.retry_queue(99), "herald.email.retry.400ms");
    }

    #[test]
    fn queue_arguments_follow_contract_v1() {
        let t = Topology::default();
        let work = t.work_queue_args();
        assert_eq!(work.inner().len(), 3);
        assert_eq!(work.inner()["x-queue-type"], string("quorum"));
        assert_eq!(
            work.inner()["x-dead-letter-exchange"],
            string("herald.dead")
        );
        assert_eq!(work.inner()["x-delivery-limit"], AMQPValue::LongInt(20));

        let retry = t.retry_queue_args(ms(500));
        assert_eq!(retry.inner().len(), 6);
        assert_eq!(retry.inner()["x-queue-type"], string("quorum"));
        assert_eq!(retry.inner()["x-message-ttl"], AMQPValue::LongLongInt(500));
        assert_eq!(
            retry.inner()["x-dead-letter-exchange"],
            string("herald.requeue")
        );
        assert_eq!(
            retry.inner()["x-dead-letter-routing-key"],
            string("herald.email")
        );
        assert_eq!(
            retry.inner()["x-dead-letter-strategy"],
            string("at-least-once")
        );
        assert_eq!(retry.inner()["x-overflow"], string("reject-publish"));
    }

    #[test]
    fn the_default_topology_is_valid() {
        Topology::default().validate().unwrap();
    }

    #[test]
    fn invalid_topologies_are_refused_with_a_reason() {
        let cases = [
            (
                Topology::default().with_retry_delays(vec![]),
                "retry_delays is empty",
            ),
            (
                Topology::default().with_retry_delays(vec![ms(0)]),
                "whole number",
            ),
            (
                Topology::default().with_retry_delays(vec![Duration::from_micros(1_500)]),
                "whole number",
            ),
            (
                Topology::default().with_retry_delays(vec![ms(1_000), Duration::from_secs(1)]),
                "queue names must differ",
            ),
            (
                Topology {
                    dead_exchange: "herald.jobs".into(),
                    ..Topology::default()
                },
                "exchange names must differ",
            ),
            (
                Topology {
                    work_queue: String::new(),
                    ..Topology::default()
                },
                "1 to 255 bytes",
            ),
        ];
        for (topology, expected) in cases {
            let err = topology.validate().unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
        }
    }
}
