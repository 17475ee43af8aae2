//! Dead letters: reading `herald.email.dead` without losing a message, and replaying one.
//!
//! [`browse`] consumes the dead queue on a dedicated channel with manual acks and a prefetch
//! window, and shows each message to a visitor that keeps it or removes it. A removed message is
//! acked only after the visitor returns (so a replay acks only after its publish was confirmed).
//! A kept message is nacked with `requeue: true`; the dead queue has no delivery limit, so that
//! never dead-letters anything. On a quorum queue (RabbitMQ 3.10+) without a delivery limit a
//! requeued message goes to the *back* of the queue, so browsing can change the order of the
//! dead queue; a parking queue has no order worth keeping. If the process dies mid-browse, the
//! broker requeues every unacked message itself.
//!
//! A browse stops after as many messages as the queue held when it started, so kept messages that
//! come round again are not shown twice, and dead letters that arrive meanwhile wait for the next.

use std::time::Duration;

use futures::StreamExt;
use lapin::Acker;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Connection};

use crate::error::{PublishError, QueueError};
use crate::headers::{self, header_string};
use crate::publisher::Publisher;
use crate::stats::queue_stats;

/// Unacked dead letters a browse holds at most; kept ones are requeued in batches of this size.
pub const DEFAULT_WINDOW: u16 = 64;
/// How long a browse waits for the next message before it concludes that the rest of the queue
/// is held by another consumer.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a browse waits at the end for the queue to count its requeued messages again.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

/// The headers a replayed message must not carry: Herald's retry and dead-letter bookkeeping, and
/// the broker's dead-lettering and redelivery records. Other headers, `x-herald-schema`
/// included, travel on.
const REPLAY_STRIPPED: [&str; 14] = [
    headers::ATTEMPT,
    headers::LAST_ERROR,
    headers::ROUTING_KEY,
    headers::REASON,
    headers::ERROR,
    headers::ATTEMPTS,
    headers::DEAD_AT,
    "x-death",
    "x-first-death-reason",
    "x-first-death-queue",
    "x-first-death-exchange",
    "x-last-death-reason",
    "x-last-death-queue",
    "x-last-death-exchange",
];

/// One message of the dead queue, as a browse shows it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The routing key the message has in the dead queue. Herald's own dead letters carry the
    /// dead queue's name here; the original key is [`DeadLetter::original_routing_key`].
    pub routing_key: String,
    pub properties: BasicProperties,
    pub body: Vec<u8>,
}

impl DeadLetter {
    pub fn new(routing_key: impl Into<String>, properties: BasicProperties, body: Vec<u8>) -> Self {
        DeadLetter {
            routing_key: routing_key.into(),
            properties,
            body,
        }
    }

    /// The `message_id` property, which producers set to the job id.
    pub fn message_id(&self) -> Option<String> {
        self.properties
            .message_id()
            .as_ref()
            .map(ToString::to_string)
            .filter(|id| !id.is_empty())
    }

    /// `x-herald-reason`, or, for a message the broker dead-lettered itself (the work queue's
    /// delivery limit, or a rejected delivery), the `x-death` reason: `delivery_limit`,
    /// `rejected`, …
    pub fn reason(&self) -> Option<String> {
        header_string(&self.properties, headers::REASON)
            .or_else(|| header_string(&self.properties, "x-first-death-reason"))
            .or_else(|| first_death(&self.properties).and_then(|t| table_string(t, "reason")))
    }

    /// `x-herald-error`, else the last retry error (`x-herald-last-error`) it carried.
    pub fn error(&self) -> Option<String> {
        header_string(&self.properties, headers::ERROR)
            .or_else(|| header_string(&self.properties, headers::LAST_ERROR))
    }

    /// `x-herald-attempts`, else the attempts its last retry copy recorded.
    pub fn attempts(&self) -> Option<u32> {
        number(&self.properties, headers::ATTEMPTS)
            .or_else(|| number(&self.properties, headers::ATTEMPT))
            .and_then(|n| u32::try_from(n).ok())
    }

    /// When the message was dead-lettered, in Unix seconds: `x-herald-dead-at`, else the time of
    /// the broker's first `x-death` record.
    pub fn dead_at(&self) -> Option<u64> {
        number(&self.properties, headers::DEAD_AT).or_else(|| {
            match first_death(&self.properties)?.inner().get("time")? {
                AMQPValue::Timestamp(t) => Some(*t),
                AMQPValue::LongLongInt(t) => u64::try_from(*t).ok(),
                _ => None,
            }
        })
    }

    /// The routing key the job was first published with (`x-herald-routing-key`), when recorded.
    pub fn original_routing_key(&self) -> Option<String> {
        header_string(&self.properties, headers::ROUTING_KEY).filter(|key| !key.is_empty())
    }

    /// Every header as `name: value` text, sorted by name, for display. Nested tables and arrays
    /// (such as `x-death`) are shown in their debug form.
    pub fn header_lines(&self) -> Vec<(String, String)> {
        self.properties
            .headers()
            .iter()
            .flat_map(|table| table.inner())
            .map(|(name, value)| {
                let text = header_string(&self.properties, name.as_str())
                    .unwrap_or_else(|| format!("{value:?}"));
                (name.to_string(), text)
            })
            .collect()
    }
}

fn number(props: &BasicProperties, name: &str) -> Option<u64> {
    header_string(props, name)?.trim().parse().ok()
}

/// The first (most recent) entry of the broker's `x-death` header.
fn first_death(props: &BasicProperties) -> Option<&FieldTable> {
    match props.headers().as_ref()?.inner().get("x-death")? {
        AMQPValue::FieldArray(deaths) => match deaths.as_slice().first()? {
            AMQPValue::FieldTable(table) => Some(table),
            _ => None,
        },
        _ => None,
    }
}

fn table_string(table: &FieldTable, name: &str) -> Option<String> {
    match table.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// What a browse does with the dead letter its visitor has just seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Leave it in the queue (it is requeued).
    Keep,
    /// Ack it: it leaves the queue for good.
    Remove,
    /// Leave it in the queue and end the browse.
    Stop,
}

/// How a browse reads the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrowseOptions {
    /// The prefetch window: unacked messages held at most (at least 1).
    pub window: u16,
    pub idle_timeout: Duration,
}

impl Default for BrowseOptions {
    fn default() -> Self {
        BrowseOptions {
            window: DEFAULT_WINDOW,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// What a browse did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrowseSummary {
    /// Ready messages in the queue when the browse started.
    pub depth: u32,
    /// Messages shown to the visitor.
    pub seen: u32,
    pub kept: u32,
    pub removed: u32,
}

/// Shows the messages of `queue` to `visit`, one at a time, and removes those it answers
/// [`Verdict::Remove`] for. See the module docs for the guarantees.
///
/// The visitor handles its own failures (a replay that could not be confirmed answers
/// [`Verdict::Keep`]). An error here means the broker failed; every message not yet removed is
/// then still in the queue.
pub async fn browse(
    conn: &Connection,
    queue: &str,
    options: BrowseOptions,
    mut visit: impl AsyncFnMut(&DeadLetter) -> Verdict,
) -> Result<BrowseSummary, QueueError> {
    let depth = queue_stats(conn, queue).await?.messages;
    let mut summary = BrowseSummary {
        depth,
        ..BrowseSummary::default()
    };
    if depth == 0 {
        return Ok(summary);
    }
    let window = options.window.max(1);
    let action = |what: &str| format!("{what} while browsing queue {queue}");
    let channel = conn
        .create_channel()
        .await
        .map_err(QueueError::amqp(action("open a channel")))?;
    channel
        .basic_qos(window, BasicQosOptions { global: false })
        .await
        .map_err(QueueError::amqp(action("set the prefetch window")))?;
    let tag = format!("herald-dlq-browse-{}", std::process::id());
    let mut consumer = channel
        .basic_consume(
            ShortString::from(queue),
            ShortString::from(tag.as_str()),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(QueueError::amqp(action("consume")))?;

    // Kept deliveries, still unacked, in the order they arrived.
    let mut held: Vec<Acker> = Vec::new();
    let ended: Result<(), QueueError> = async {
        while summary.seen < depth {
            let delivery = match tokio::time::timeout(options.idle_timeout, consumer.next()).await {
                // The rest of the queue is unacked by someone else, or was taken meanwhile.
                Err(_) => break,
                Ok(None) => {
                    return Err(QueueError::InvalidTopology(format!(
                        "the broker cancelled the browse of queue {queue} (was it deleted?)"
                    )));
                }
                Ok(Some(Err(e))) => return Err(QueueError::amqp(action("receive"))(e)),
                Ok(Some(Ok(delivery))) => delivery,
            };
            summary.seen += 1;
            let acker = delivery.acker.clone();
            let letter = DeadLetter::new(
                delivery.routing_key.to_string(),
                delivery.properties,
                delivery.data,
            );
            match visit(&letter).await {
                Verdict::Remove => {
                    let acked = acker
                        .ack(BasicAckOptions::default())
                        .await
                        .map_err(QueueError::amqp(action("ack a message")))?;
                    if !acked {
                        return Err(QueueError::InvalidTopology(format!(
                            "could not ack a message of queue {queue}: the channel was lost, so \
                             the broker keeps the message"
                        )));
                    }
                    summary.removed += 1;
                }
                Verdict::Keep => {
                    held.push(acker);
                    summary.kept += 1;
                    if held.len() >= usize::from(window) {
                        requeue(&mut held, queue).await?;
                    }
                }
                Verdict::Stop => {
                    held.push(acker);
                    summary.kept += 1;
                    break;
                }
            }
        }
        Ok(())
    }
    .await;

    // Stop the flow, then give back what was kept and what was already on its way, in order.
    if channel
        .basic_cancel(
            ShortString::from(tag.as_str()),
            BasicCancelOptions::default(),
        )
        .await
        .is_ok()
    {
        while let Ok(Some(Ok(delivery))) =
            tokio::time::timeout(Duration::from_millis(500), consumer.next()).await
        {
            held.push(delivery.acker);
        }
    }
    let requeued = requeue(&mut held, queue).await;
    // Closing the channel also requeues anything still unacked.
    let _ = channel.close(200, ShortString::from("OK")).await;
    ended?;
    requeued?;
    settle(conn, queue, depth.saturating_sub(summary.removed)).await;
    Ok(summary)
}

/// Waits, briefly, until `queue` counts the requeued messages as ready again. A quorum queue
/// applies requeues a moment after the nacks, so a browse (or `queue.declare`) that starts right
/// after this one would otherwise find fewer messages than there are.
async fn settle(conn: &Connection, queue: &str, expected: u32) {
    let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    while let Ok(stats) = queue_stats(conn, queue).await {
        if stats.messages >= expected || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Nacks `held` with requeue, in order, and empties it.
async fn requeue(held: &mut Vec<Acker>, queue: &str) -> Result<(), QueueError> {
    for acker in held.drain(..) {
        acker
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await
            .map_err(QueueError::amqp(format!(
                "requeue a kept message of queue {queue}"
            )))?;
    }
    Ok(())
}

/// The properties a replayed copy is published with: the dead letter's own (`message_id`,
/// `content_type`, timestamp, …) with `message_id` set to `job_id` when it has none, persistent,
/// and without the headers in `REPLAY_STRIPPED` or the broker's redelivery counter.
pub fn replay_properties(letter: &DeadLetter, job_id: &str) -> BasicProperties {
    let mut kept = FieldTable::default();
    for (name, value) in letter.properties.headers().iter().flat_map(|t| t.inner()) {
        let name_str = name.as_str();
        if !REPLAY_STRIPPED.contains(&name_str) && name_str != "x-delivery-count" {
            kept.insert(name.clone(), value.clone());
        }
    }
    let mut props = letter
        .properties
        .clone()
        .with_headers(kept)
        .with_delivery_mode(2);
    if letter.message_id().is_none()
        && let Ok(id) = ShortString::try_new(job_id)
    {
        props = props.with_message_id(id);
    }
    if props.content_type().is_none() {
        props = props.with_content_type(ShortString::from("application/json"));
    }
    props
}

/// Publishes a copy of `letter` to the jobs exchange with `routing_key` and
/// [`replay_properties`], and waits for the broker's confirm. Ack the dead letter (answer
/// [`Verdict::Remove`]) only after this returns `Ok`.
pub async fn replay(
    publisher: &Publisher,
    letter: &DeadLetter,
    routing_key: &str,
    job_id: &str,
) -> Result<(), PublishError> {
    let exchange = publisher.topology().exchange.clone();
    publisher
        .publish_with(
            &exchange,
            routing_key,
            &letter.body,
            replay_properties(letter, job_id),
        )
        .await
}

#[cfg(test)]
mod tests {
    use lapin::types::{FieldArray, LongString};

    use super::*;

    fn text(value: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(value))
    }

    fn letter(headers: &[(&str, AMQPValue)]) -> DeadLetter {
        let mut table = FieldTable::default();
        for (name, value) in headers {
            table.insert((*name).into(), value.clone());
        }
        DeadLetter::new(
            "herald.email.dead",
            BasicProperties::default()
                .with_message_id("job_1".into())
                .with_headers(table),
            b"{}".to_vec(),
        )
    }

    fn broker_death(reason: &str, time: u64) -> AMQPValue {
        let mut death = FieldTable::default();
        death.insert("reason".into(), text(reason));
        death.insert("time".into(), AMQPValue::Timestamp(time));
        death.insert("queue".into(), text("herald.email"));
        let mut deaths = FieldArray::default();
        deaths.push(AMQPValue::FieldTable(death));
        AMQPValue::FieldArray(deaths)
    }

    #[test]
    fn herald_dead_letters_are_read_from_their_headers() {
        let l = letter(&[
            (headers::REASON, text("smtp_permanent")),
            (headers::ERROR, text("554 no")),
            (headers::ATTEMPTS, AMQPValue::LongInt(2)),
            (headers::DEAD_AT, AMQPValue::LongLongInt(1_700_000_000)),
            (headers::ROUTING_KEY, text("email.welcome")),
        ]);
        assert_eq!(l.message_id().as_deref(), Some("job_1"));
        assert_eq!(l.reason().as_deref(), Some("smtp_permanent"));
        assert_eq!(l.error().as_deref(), Some("554 no"));
        assert_eq!(l.attempts(), Some(2));
        assert_eq!(l.dead_at(), Some(1_700_000_000));
        assert_eq!(l.original_routing_key().as_deref(), Some("email.welcome"));
    }

    #[test]
    fn broker_dead_letters_fall_back_to_x_death_and_the_retry_headers() {
        let l = letter(&[
            ("x-death", broker_death("delivery_limit", 1_600_000_000)),
            (headers::ATTEMPT, AMQPValue::LongInt(3)),
            (headers::LAST_ERROR, text("451 later")),
        ]);
        assert_eq!(l.reason().as_deref(), Some("delivery_limit"));
        assert_eq!(l.dead_at(), Some(1_600_000_000));
        assert_eq!(l.attempts(), Some(3));
        assert_eq!(l.error().as_deref(), Some("451 later"));
        assert_eq!(l.original_routing_key(), None);
        assert_eq!(letter(&[]).reason(), None);
    }

    #[test]
    fn a_replayed_copy_drops_the_bookkeeping_headers_and_keeps_the_rest() {
        let l = letter(&[
            (headers::SCHEMA, AMQPValue::LongInt(1)),
            ("x-trace", text("abc")),
            (headers::REASON, text("smtp_permanent")),
            (headers::ERROR, text("554 no")),
            (headers::ATTEMPTS, AMQPValue::LongInt(1)),
            (headers::ATTEMPT, AMQPValue::LongInt(1)),
            (headers::LAST_ERROR, text("451")),
            (headers::DEAD_AT, AMQPValue::LongLongInt(1)),
            (headers::ROUTING_KEY, text("email.welcome")),
            ("x-death", broker_death("rejected", 1)),
            ("x-first-death-reason", text("rejected")),
            ("x-delivery-count", AMQPValue::LongLongInt(4)),
        ]);
        let props = replay_properties(&l, "ignored");
        let headers = props.headers().clone().unwrap();
        let mut names: Vec<&str> = headers.inner().keys().map(ShortString::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, [headers::SCHEMA, "x-trace"]);
        assert_eq!(props.message_id().as_ref().unwrap().as_str(), "job_1");
        assert_eq!(*props.delivery_mode(), Some(2));
        assert_eq!(
            props.content_type().as_ref().unwrap().as_str(),
            "application/json"
        );
    }

    #[test]
    fn a_replayed_copy_without_a_message_id_gets_the_job_id() {
        let l = DeadLetter::new("herald.email.dead", BasicProperties::default(), vec![]);
        let props = replay_properties(&l, "job_9");
        assert_eq!(props.message_id().as_ref().unwrap().as_str(), "job_9");
    }
}
