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
//!
//! The operator's use cases that must touch the queue live here too, free of any CLI:
//! [`replay_dead_letters`] and [`purge_dead_letters`] act on a [`Selection`] and return a
//! [`Report`]; the job ledger takes part through [`DeadLetterLedger`]. Listing and showing dead
//! letters needs no browse: the ledger answers those (`herald_store::dead_letters`).

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use herald_domain::{EmailJob, JobKind};
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

/// What [`replay_dead_letters`] and [`purge_dead_letters`] need from the job ledger
/// (`herald_store::Store` implements it). Kept to these four steps so this crate needs no database.
pub trait DeadLetterLedger {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Whether the ledger records `job_id` as sent: replaying it would send it twice.
    fn was_sent(&self, job_id: &str) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Reopens a dead job so the worker attempts its replayed copy; `false`, changing nothing,
    /// when the job is unknown or not dead.
    fn reopen(&self, job_id: &str) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Marks a job dead again after its replay could not be published.
    fn restore_dead(
        &self,
        job_id: &str,
        kind: &str,
        reason: &str,
        error: &str,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Notes that the job's dead letter is about to be deleted (`detail` goes to its history);
    /// `false` when the job is unknown or not dead.
    fn note_purge(
        &self,
        job_id: &str,
        detail: &str,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}

/// What replay and purge need to know about a dead letter, read once from its properties,
/// headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LetterSummary {
    /// The `message_id`, else the body's `id`.
    pub job_id: Option<String>,
    /// The body's `id` when it differs from `message_id` (so an id selection matches either).
    pub body_id: Option<String>,
    /// The body's `type`, as written (it may be an unknown type).
    pub kind: Option<String>,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub attempts: Option<u32>,
    /// When it was dead-lettered, in Unix seconds.
    pub dead_at: Option<u64>,
}

impl LetterSummary {
    pub fn read(letter: &DeadLetter) -> LetterSummary {
        let body: Option<serde_json::Value> = serde_json::from_slice(&letter.body).ok();
        let field = |name: &str| {
            body.as_ref()
                .and_then(|b| b.get(name))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let body_id = field("id");
        LetterSummary {
            job_id: letter.message_id().or_else(|| body_id.clone()),
            body_id,
            kind: field("type"),
            reason: letter.reason(),
            error: letter.error(),
            attempts: letter.attempts(),
            dead_at: letter.dead_at(),
        }
    }

    pub fn has_id(&self, id: &str) -> bool {
        self.job_id.as_deref() == Some(id) || self.body_id.as_deref() == Some(id)
    }

    /// The job id, or `-` when the letter has none.
    pub fn id_or_dash(&self) -> &str {
        self.job_id.as_deref().unwrap_or("-")
    }
}

/// Which dead letters a replay or purge acts on: filters and ids (all must match), or `all`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The job type: its wire name (`verification_email`), CLI name or routing key.
    pub kind: Option<String>,
    pub reason: Option<String>,
    /// Only letters dead-lettered at least this long ago; a letter without a time never matches.
    pub older_than: Option<Duration>,
    pub ids: Vec<String>,
    pub all: bool,
}

/// A selection that names nothing, or names letters and `all` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error(
        "say which dead letters to act on: --type, --reason, --older-than or --id, or --all for \
         every one"
    )]
    Nothing,
    #[error("--all selects every dead letter; leave out the filters and ids")]
    AllAndFilters,
}

impl Selection {
    /// Replay and purge act only on what was chosen explicitly: filters, ids, or `all`.
    pub fn check(&self) -> Result<(), SelectionError> {
        let narrowed = self.kind.is_some()
            || self.reason.is_some()
            || self.older_than.is_some()
            || !self.ids.is_empty();
        match (self.all, narrowed) {
            (false, false) => Err(SelectionError::Nothing),
            (true, true) => Err(SelectionError::AllAndFilters),
            _ => Ok(()),
        }
    }

    /// Whether `letter` is selected, `now` being Unix seconds.
    pub fn matches(&self, letter: &LetterSummary, now: u64) -> bool {
        if self.all {
            return true;
        }
        if !self.ids.is_empty() && !self.ids.iter().any(|id| letter.has_id(id)) {
            return false;
        }
        if let Some(wanted) = &self.kind
            && letter.kind.as_deref() != Some(canonical_kind(wanted).as_str())
        {
            return false;
        }
        if let Some(wanted) = &self.reason
            && letter.reason.as_deref() != Some(wanted.as_str())
        {
            return false;
        }
        if let Some(older) = self.older_than {
            // A letter without a time is never "old enough": purge must not guess.
            let old_enough = letter
                .dead_at
                .is_some_and(|at| now.saturating_sub(at) >= older.as_secs());
            if !old_enough {
                return false;
            }
        }
        true
    }
}

/// The wire name of a job type given as its wire name, CLI name or routing key; anything else
/// (an unknown type) as written.
pub fn canonical_kind(kind: &str) -> String {
    kind.parse::<JobKind>()
        .map_or_else(|_| kind.to_owned(), |k| k.type_name().to_owned())
}

/// What a replay or purge did (or, in a dry run, would do) with one selected dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Published back to the jobs exchange, then removed from the dead queue.
    Replayed,
    /// Left in the dead queue: not a valid job, or already sent.
    Kept,
    /// Removed: another copy of a job replayed earlier in the same run.
    Dropped,
    /// Removed by a purge.
    Deleted,
}

/// One selected dead letter and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionLine {
    pub action: Action,
    /// The job id, or `-`.
    pub job_id: String,
    /// Why, or how: e.g. `verification_email via email.verification`.
    pub note: String,
}

/// Why a replay or purge stopped before the end of the queue. Everything not yet removed is
/// still in the dead queue.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error(transparent)]
    Broker(#[from] QueueError),
    #[error("could not {action} job {job_id} in the ledger; it is still in the dead queue")]
    Ledger {
        action: &'static str,
        job_id: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("could not publish job {job_id}; it is still in the dead queue")]
    Publish {
        job_id: String,
        #[source]
        source: PublishError,
    },
}

impl DeadLetterError {
    fn ledger<E: std::error::Error + Send + Sync + 'static>(
        action: &'static str,
        job_id: &str,
    ) -> impl FnOnce(E) -> DeadLetterError {
        let job_id = job_id.to_owned();
        move |e| DeadLetterError::Ledger {
            action,
            job_id,
            source: Box::new(e),
        }
    }
}

/// What a replay or purge did, letter by letter, and where it stopped.
#[derive(Debug, Default)]
pub struct Report {
    /// Nothing was changed: the lines say what would have been done.
    pub dry_run: bool,
    pub lines: Vec<ActionLine>,
    /// What the browse of the dead queue saw.
    pub browse: BrowseSummary,
    /// Set when a ledger write or a publish failed: the run stopped at that letter, and the
    /// lines before it stand.
    pub stopped: Option<DeadLetterError>,
}

impl Report {
    /// How many letters got `action`.
    pub fn count(&self, action: Action) -> usize {
        self.lines.iter().filter(|l| l.action == action).count()
    }

    /// The lines whose note starts with `prefix` among those kept (`not a valid job`, …).
    fn kept_with(&self, prefix: &str) -> usize {
        self.lines
            .iter()
            .filter(|l| l.action == Action::Kept && l.note.starts_with(prefix))
            .count()
    }

    /// Kept letters whose body is not a valid job.
    pub fn invalid(&self) -> usize {
        self.kept_with(NOT_VALID)
    }

    /// Kept letters whose job the ledger says was already sent.
    pub fn already_sent(&self) -> usize {
        self.kept_with(ALREADY_SENT)
    }
}

const NOT_VALID: &str = "not a valid job";
const ALREADY_SENT: &str = "already sent according to the ledger";

/// Publishes the selected dead letters back to the jobs exchange so the worker attempts them
/// again, or (with `dry_run`) only says which it would.
///
/// Each body is re-validated (`max_job_bytes`): an invalid one stays in the queue, and so does a
/// job the ledger says was already sent. The job is reopened in the ledger first (a worker that
/// took the copy before the ledger said `queued` would drop it as a duplicate), then published
/// under its id and original routing key with publisher confirms; the dead copy is acked only
/// after the broker confirmed the new one. If the publish fails, the job is marked dead again.
/// Further copies of a job replayed in the same run are dropped.
pub async fn replay_dead_letters<L: DeadLetterLedger>(
    conn: &Connection,
    publisher: &Publisher,
    ledger: &L,
    selection: &Selection,
    dry_run: bool,
    max_job_bytes: usize,
) -> Result<Report, QueueError> {
    let dead_queue = publisher.topology().dead_queue.clone();
    let now = unix_now();
    let mut report = Report {
        dry_run,
        ..Report::default()
    };
    let mut replayed: HashSet<String> = HashSet::new();
    let (lines, stopped) = (&mut report.lines, &mut report.stopped);
    let removed = if dry_run {
        Verdict::Keep
    } else {
        Verdict::Remove
    };
    report.browse = browse(
        conn,
        &dead_queue,
        BrowseOptions::default(),
        async |dead: &DeadLetter| {
            let letter = LetterSummary::read(dead);
            if !selection.matches(&letter, now) {
                return Verdict::Keep;
            }
            let job = match EmailJob::parse(&dead.body, max_job_bytes) {
                Ok(job) => job,
                Err(e) => {
                    lines.push(ActionLine {
                        action: Action::Kept,
                        job_id: letter.id_or_dash().to_owned(),
                        note: format!("{NOT_VALID} ({}: {e})", e.reason()),
                    });
                    return Verdict::Keep;
                }
            };
            let job_id = job.id.as_str().to_owned();
            if replayed.contains(&job_id) {
                // The worker would ignore this copy anyway.
                lines.push(ActionLine {
                    action: Action::Dropped,
                    job_id,
                    note: "another copy of a job replayed above".into(),
                });
                return removed;
            }
            match ledger.was_sent(&job_id).await {
                Ok(true) => {
                    lines.push(ActionLine {
                        action: Action::Kept,
                        job_id,
                        note: format!("{ALREADY_SENT}; purge it with --id"),
                    });
                    return Verdict::Keep;
                }
                Ok(false) => {}
                Err(e) => {
                    *stopped = Some(DeadLetterError::ledger("read", &job_id)(e));
                    return Verdict::Stop;
                }
            }
            let routing_key = dead
                .original_routing_key()
                .unwrap_or_else(|| job.kind().routing_key().to_owned());
            let line = ActionLine {
                action: Action::Replayed,
                job_id: job_id.clone(),
                note: format!("{} via {routing_key}", job.kind()),
            };
            if dry_run {
                replayed.insert(job_id);
                lines.push(line);
                return Verdict::Keep;
            }
            let reopened = match ledger.reopen(&job_id).await {
                Ok(reopened) => reopened,
                Err(e) => {
                    *stopped = Some(DeadLetterError::ledger("reopen", &job_id)(e));
                    return Verdict::Stop;
                }
            };
            match replay(publisher, dead, &routing_key, &job_id).await {
                Ok(()) => {
                    replayed.insert(job_id);
                    lines.push(line);
                    Verdict::Remove
                }
                Err(source) => {
                    if reopened {
                        // Put the ledger back the way it was: the job is still parked.
                        let reason = letter.reason.as_deref().unwrap_or("replay_failed");
                        let error = letter.error.as_deref().unwrap_or("replay failed");
                        let _ = ledger
                            .restore_dead(&job_id, job.kind().type_name(), reason, error)
                            .await;
                    }
                    *stopped = Some(DeadLetterError::Publish { job_id, source });
                    Verdict::Stop
                }
            }
        },
    )
    .await?;
    Ok(report)
}

/// Deletes the selected dead letters when `ledger` is given, else (a dry run, which needs no
/// database) only says which it would delete.
///
/// The ledger keeps a purged job `dead`, so that a stray copy is still ignored, and notes the
/// purge (a `purged` event, and `purged_at`) before the letter is acked, so the dead queue's
/// oldest-message age and `herald dlq list` stop counting it.
pub async fn purge_dead_letters<L: DeadLetterLedger>(
    conn: &Connection,
    dead_queue: &str,
    ledger: Option<&L>,
    selection: &Selection,
) -> Result<Report, QueueError> {
    let now = unix_now();
    let mut report = Report {
        dry_run: ledger.is_none(),
        ..Report::default()
    };
    let (lines, stopped) = (&mut report.lines, &mut report.stopped);
    report.browse = browse(
        conn,
        dead_queue,
        BrowseOptions::default(),
        async |dead: &DeadLetter| {
            let letter = LetterSummary::read(dead);
            if !selection.matches(&letter, now) {
                return Verdict::Keep;
            }
            if let (Some(ledger), Some(job_id)) = (ledger, letter.job_id.as_deref()) {
                let detail = format!(
                    "dead letter deleted by `herald dlq purge` (reason: {})",
                    letter.reason.as_deref().unwrap_or("none recorded")
                );
                if let Err(e) = ledger.note_purge(job_id, &detail).await {
                    *stopped = Some(DeadLetterError::ledger("record the purge of", job_id)(e));
                    return Verdict::Stop;
                }
            }
            lines.push(ActionLine {
                action: Action::Deleted,
                job_id: letter.id_or_dash().to_owned(),
                note: format!(
                    "{} {}",
                    letter.kind.as_deref().unwrap_or("-"),
                    letter.reason.as_deref().unwrap_or("-")
                ),
            });
            if ledger.is_some() {
                Verdict::Remove
            } else {
                Verdict::Keep
            }
        },
    )
    .await?;
    Ok(report)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
