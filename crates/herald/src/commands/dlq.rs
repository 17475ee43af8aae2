//! `herald dlq list|show|replay|purge`: the operator's tools for `herald.email.dead`.
//!
//! Every command reads the queue with [`herald_queue::dlq::browse`], which puts back whatever it
//! keeps, so listing or a dry run loses nothing. Replay re-validates each job, reopens it in the
//! ledger (a dead job is otherwise ignored by the worker), publishes it to `herald.jobs` under
//! its id and original routing key with publisher confirms, and acks the dead copy only after
//! the broker confirmed the new one. Purge notes each deleted letter in its job's ledger row
//! first, so the dead queue's oldest-message age stops counting it.

use std::collections::HashSet;
use std::fmt::Write as _;

use anyhow::{Context, bail};
use herald_domain::{EmailJob, JobKind};
use herald_queue::dlq::{self, BrowseOptions, BrowseSummary, DeadLetter, Verdict};
use herald_queue::{Publisher, Topology};
use herald_store::Store;
use lapin::Connection;

use crate::app;
use crate::cli::{DlqCommand, DlqFilter, DlqSelect};
use crate::settings::Settings;

use super::jobs::timestamp;
use super::queues::{human_age, unix_now};

/// The longest error text `list` prints; `show` prints it whole.
const LIST_ERROR_CHARS: usize = 120;

pub async fn run(settings: &Settings, cmd: DlqCommand) -> anyhow::Result<()> {
    let topology = app::topology(settings);
    let conn = herald_queue::connect(
        secrecy::ExposeSecret::expose_secret(&settings.amqp_url),
        "herald dlq",
    )
    .await
    .context("connecting to RabbitMQ")?;
    // The exchanges and queues a replay needs; identical to what producers and workers declare.
    let channel = conn
        .create_channel()
        .await
        .context("opening an AMQP channel")?;
    topology.declare_core(&channel).await?;
    let _ = channel.close(200, "OK".into()).await;

    let result = match cmd {
        DlqCommand::List { filter, limit } => list(&conn, &topology, &filter, limit).await,
        DlqCommand::Show { job_id } => show(&conn, &topology, &job_id).await,
        DlqCommand::Replay { select, dry_run } => {
            check_selection(&select, "replay")?;
            let store = app::store(settings).await?;
            replay(
                &conn,
                &topology,
                &store,
                &select,
                dry_run,
                settings.max_job_bytes,
            )
            .await
        }
        DlqCommand::Purge { select, yes } => {
            check_selection(&select, "purge")?;
            // Only a real purge writes to the ledger; a dry run needs no database.
            let store = if yes {
                Some(app::store(settings).await?)
            } else {
                None
            };
            purge(&conn, &topology, store.as_ref(), &select).await
        }
    };
    let _ = conn.close(200, "OK".into()).await;
    result
}

/// What the commands need to know about a dead letter, read once.
#[derive(Debug, Clone)]
struct Letter {
    /// The `message_id`, else the body's `id`.
    job_id: Option<String>,
    /// The body's `id` when it differs from `message_id` (so `--id` matches either).
    body_id: Option<String>,
    /// The body's `type`, as written (it may be an unknown type).
    kind: Option<String>,
    reason: Option<String>,
    error: Option<String>,
    attempts: Option<u32>,
    dead_at: Option<u64>,
}

impl Letter {
    fn read(letter: &DeadLetter) -> Letter {
        let body: Option<serde_json::Value> = serde_json::from_slice(&letter.body).ok();
        let field = |name: &str| {
            body.as_ref()
                .and_then(|b| b.get(name))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let body_id = field("id");
        Letter {
            job_id: letter.message_id().or_else(|| body_id.clone()),
            body_id,
            kind: field("type"),
            reason: letter.reason(),
            error: letter.error(),
            attempts: letter.attempts(),
            dead_at: letter.dead_at(),
        }
    }

    fn has_id(&self, id: &str) -> bool {
        self.job_id.as_deref() == Some(id) || self.body_id.as_deref() == Some(id)
    }

    fn age(&self, now: u64) -> String {
        self.dead_at
            .map_or_else(|| "?".into(), |at| human_age(now.saturating_sub(at)))
    }

    fn id_or_dash(&self) -> &str {
        self.job_id.as_deref().unwrap_or("-")
    }
}

impl DlqFilter {
    fn is_empty(&self) -> bool {
        self.kind.is_none() && self.reason.is_none() && self.older_than.is_none()
    }

    fn matches(&self, letter: &Letter, now: u64) -> bool {
        if let Some(wanted) = &self.kind {
            // Accept the wire name, the CLI name or the routing key of a known type.
            let wanted = wanted
                .parse::<JobKind>()
                .map_or_else(|_| wanted.clone(), |k| k.type_name().to_owned());
            if letter.kind.as_deref() != Some(wanted.as_str()) {
                return false;
            }
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

impl DlqSelect {
    fn matches(&self, letter: &Letter, now: u64) -> bool {
        if self.all {
            return true;
        }
        (self.ids.is_empty() || self.ids.iter().any(|id| letter.has_id(id)))
            && self.filter.matches(letter, now)
    }
}

/// Replay and purge act on what was chosen explicitly: filters, ids, or `--all`.
fn check_selection(select: &DlqSelect, verb: &str) -> anyhow::Result<()> {
    let narrowed = !select.filter.is_empty() || !select.ids.is_empty();
    match (select.all, narrowed) {
        (false, false) => bail!(
            "say which dead letters to {verb}: --type, --reason, --older-than or --id, or --all \
             for every one"
        ),
        (true, true) => bail!("--all selects every dead letter; leave out the filters and ids"),
        _ => Ok(()),
    }
}

async fn list(
    conn: &Connection,
    topology: &Topology,
    filter: &DlqFilter,
    limit: u32,
) -> anyhow::Result<()> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let now = unix_now();
    let mut rows: Vec<Letter> = Vec::new();
    let summary = dlq::browse(
        conn,
        &topology.dead_queue,
        BrowseOptions::default(),
        async |letter: &DeadLetter| {
            let letter = Letter::read(letter);
            if !filter.matches(&letter, now) {
                return Verdict::Keep;
            }
            rows.push(letter);
            if rows.len() >= limit {
                Verdict::Stop
            } else {
                Verdict::Keep
            }
        },
    )
    .await?;

    if rows.is_empty() {
        println!("{}", nothing_matched(&topology.dead_queue, &summary));
        return Ok(());
    }
    let header = ["JOB ID", "TYPE", "REASON", "ATTEMPTS", "DEAD FOR", "ERROR"];
    let table: Vec<[String; 6]> = rows
        .iter()
        .map(|l| {
            [
                l.id_or_dash().to_owned(),
                l.kind.clone().unwrap_or_else(|| "-".into()),
                l.reason.clone().unwrap_or_else(|| "-".into()),
                l.attempts.map_or_else(|| "-".into(), |n| n.to_string()),
                l.age(now),
                shorten(l.error.as_deref().unwrap_or("-"), LIST_ERROR_CHARS),
            ]
        })
        .collect();
    print!("{}", format_table(header, &table));
    let more = if rows.len() >= limit && summary.seen < summary.depth {
        format!(" (stopped at --limit {limit})")
    } else {
        String::new()
    };
    println!(
        "\n{} shown of {} in {}{more}. `herald dlq show <job id>` prints one in full.",
        plural(rows.len(), "dead letter"),
        summary.depth,
        topology.dead_queue
    );
    Ok(())
}

async fn show(conn: &Connection, topology: &Topology, job_id: &str) -> anyhow::Result<()> {
    let mut copies: Vec<DeadLetter> = Vec::new();
    let summary = dlq::browse(
        conn,
        &topology.dead_queue,
        BrowseOptions::default(),
        async |letter: &DeadLetter| {
            if Letter::read(letter).has_id(job_id) {
                copies.push(letter.clone());
            }
            Verdict::Keep
        },
    )
    .await?;
    if copies.is_empty() {
        bail!(
            "job {job_id:?} is not in {} ({} looked at); `herald jobs show {job_id}` shows its \
             history",
            topology.dead_queue,
            plural(summary.seen as usize, "message")
        );
    }
    let now = unix_now();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} holds {} of job {job_id}.",
        topology.dead_queue,
        plural(copies.len(), "copy")
    );
    for (n, copy) in copies.iter().enumerate() {
        let letter = Letter::read(copy);
        let props = &copy.properties;
        let _ = writeln!(out, "\nCopy {}", n + 1);
        let field = |label: &str, value: String| format!("  {:<14} {value}\n", format!("{label}:"));
        out.push_str(&field(
            "reason",
            letter.reason.clone().unwrap_or("-".into()),
        ));
        out.push_str(&field("error", letter.error.clone().unwrap_or("-".into())));
        out.push_str(&field(
            "dead since",
            letter.dead_at.map_or_else(
                || "-".into(),
                |at| format!("{} ({} ago)", unix_time(at), letter.age(now)),
            ),
        ));
        out.push_str(&field(
            "routing key",
            copy.original_routing_key()
                .unwrap_or_else(|| copy.routing_key.clone()),
        ));
        out.push_str(&field(
            "message_id",
            props
                .message_id()
                .as_ref()
                .map_or("-".into(), ToString::to_string),
        ));
        out.push_str(&field(
            "content_type",
            props
                .content_type()
                .as_ref()
                .map_or("-".into(), ToString::to_string),
        ));
        out.push_str(&field(
            "published",
            props.timestamp().map_or_else(|| "-".into(), unix_time),
        ));
        out.push_str("  headers:\n");
        for (name, value) in copy.header_lines() {
            let _ = writeln!(out, "    {name}: {value}");
        }
        out.push_str("  body:\n");
        let body = match serde_json::from_slice::<serde_json::Value>(&copy.body) {
            Ok(json) => serde_json::to_string_pretty(&json).unwrap_or_default(),
            Err(_) => String::from_utf8_lossy(&copy.body).into_owned(),
        };
        for line in body.lines() {
            let _ = writeln!(out, "    {line}");
        }
    }
    print!("{out}");
    Ok(())
}

/// One line of a replay or purge report.
#[derive(Debug)]
struct Line {
    verb: &'static str,
    id: String,
    note: String,
}

async fn replay(
    conn: &Connection,
    topology: &Topology,
    store: &Store,
    select: &DlqSelect,
    dry_run: bool,
    max_job_bytes: usize,
) -> anyhow::Result<()> {
    let publisher = Publisher::new(conn, topology.clone()).await?;
    let now = unix_now();
    let mut lines: Vec<Line> = Vec::new();
    let mut replayed: HashSet<String> = HashSet::new();
    let mut invalid = 0usize;
    let mut skipped = 0usize;
    let mut failure: Option<anyhow::Error> = None;
    let (replay_verb, keep_verb) = if dry_run {
        ("would replay", "would keep")
    } else {
        ("replayed", "kept")
    };

    let summary = dlq::browse(
        conn,
        &topology.dead_queue,
        BrowseOptions::default(),
        async |dead: &DeadLetter| {
            let letter = Letter::read(dead);
            if !select.matches(&letter, now) {
                return Verdict::Keep;
            }
            let id = letter.id_or_dash().to_owned();
            let job = match EmailJob::parse(&dead.body, max_job_bytes) {
                Ok(job) => job,
                Err(e) => {
                    invalid += 1;
                    lines.push(Line {
                        verb: keep_verb,
                        id,
                        note: format!("not a valid job ({}: {e})", e.reason()),
                    });
                    return Verdict::Keep;
                }
            };
            let job_id = job.id.as_str().to_owned();
            if replayed.contains(&job_id) {
                // Another copy of a job replayed in this run: the worker would ignore it anyway.
                lines.push(Line {
                    verb: if dry_run { "would drop" } else { "dropped" },
                    id: job_id,
                    note: "another copy of a job replayed above".into(),
                });
                return if dry_run {
                    Verdict::Keep
                } else {
                    Verdict::Remove
                };
            }
            match store.job(&job_id).await {
                Ok(Some(row)) if row.status == "sent" => {
                    skipped += 1;
                    lines.push(Line {
                        verb: keep_verb,
                        id: job_id,
                        note: "already sent according to the ledger; purge it with --id".into(),
                    });
                    return Verdict::Keep;
                }
                Ok(_) => {}
                Err(e) => {
                    failure = Some(anyhow::Error::new(e).context("reading the ledger"));
                    return Verdict::Stop;
                }
            }
            let routing_key = dead
                .original_routing_key()
                .unwrap_or_else(|| job.kind().routing_key().to_owned());
            let note = format!("{} via {}", job.kind(), routing_key);
            if dry_run {
                replayed.insert(job_id.clone());
                lines.push(Line {
                    verb: replay_verb,
                    id: job_id,
                    note,
                });
                return Verdict::Keep;
            }
            // Reopen first: a worker that took the copy before the ledger said `queued` would
            // see a dead job and drop the copy as a duplicate.
            let reopened = match store.reopen_for_replay(&job_id).await {
                Ok(reopened) => reopened,
                Err(e) => {
                    failure = Some(anyhow::Error::new(e).context("reopening the job"));
                    return Verdict::Stop;
                }
            };
            match dlq::replay(&publisher, dead, &routing_key, &job_id).await {
                Ok(()) => {
                    replayed.insert(job_id.clone());
                    lines.push(Line {
                        verb: replay_verb,
                        id: job_id,
                        note,
                    });
                    Verdict::Remove
                }
                Err(e) => {
                    if reopened {
                        // Put the ledger back the way it was: the job is still parked.
                        let reason = letter.reason.as_deref().unwrap_or("replay_failed");
                        let error = letter.error.as_deref().unwrap_or("replay failed");
                        let kind = job.kind().type_name();
                        let _ = store.mark_dead(&job_id, kind, 0, reason, error, None).await;
                    }
                    failure = Some(anyhow::Error::new(e).context(format!(
                        "publishing job {job_id}; it is still in {}",
                        topology.dead_queue
                    )));
                    Verdict::Stop
                }
            }
        },
    )
    .await;
    drop(publisher);
    let summary = summary?;

    print!("{}", format_lines(&lines));
    if lines.is_empty() {
        println!("{}", nothing_matched(&topology.dead_queue, &summary));
    } else {
        let done = replayed.len();
        let mut sentence = format!(
            "{} {}",
            if dry_run { "Would replay" } else { "Replayed" },
            plural(done, "job")
        );
        if invalid > 0 {
            let _ = write!(
                sentence,
                "; {} not valid, left in {}",
                plural(invalid, "job"),
                topology.dead_queue
            );
        }
        if skipped > 0 {
            let _ = write!(sentence, "; {} already sent, left", plural(skipped, "job"));
        }
        println!("\n{sentence}.");
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Deletes the selected dead letters when `store` is given (`--yes`), else only lists them.
///
/// The ledger keeps a purged job `dead`, so that a stray copy is still ignored, and notes the
/// purge (a `purged` event, and `purged_at`) before the letter is acked: the dead queue's
/// oldest-message age counts only jobs whose letter is still parked.
async fn purge(
    conn: &Connection,
    topology: &Topology,
    store: Option<&Store>,
    select: &DlqSelect,
) -> anyhow::Result<()> {
    let yes = store.is_some();
    let now = unix_now();
    let mut lines: Vec<Line> = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    let summary = dlq::browse(
        conn,
        &topology.dead_queue,
        BrowseOptions::default(),
        async |dead: &DeadLetter| {
            let letter = Letter::read(dead);
            if !select.matches(&letter, now) {
                return Verdict::Keep;
            }
            if let (Some(store), Some(job_id)) = (store, letter.job_id.as_deref()) {
                let detail = format!(
                    "dead letter deleted by `herald dlq purge` (reason: {})",
                    letter.reason.as_deref().unwrap_or("none recorded")
                );
                if let Err(e) = store.mark_purged(job_id, &detail).await {
                    failure = Some(anyhow::Error::new(e).context(format!(
                        "recording the purge of job {job_id}; it is still in {}",
                        topology.dead_queue
                    )));
                    return Verdict::Stop;
                }
            }
            lines.push(Line {
                verb: if yes { "deleted" } else { "would delete" },
                id: letter.id_or_dash().to_owned(),
                note: format!(
                    "{} {}",
                    letter.kind.as_deref().unwrap_or("-"),
                    letter.reason.as_deref().unwrap_or("-")
                ),
            });
            if yes { Verdict::Remove } else { Verdict::Keep }
        },
    )
    .await?;
    print!("{}", format_lines(&lines));
    if lines.is_empty() {
        println!("{}", nothing_matched(&topology.dead_queue, &summary));
    } else if yes {
        println!(
            "\nDeleted {} from {}.",
            plural(lines.len(), "dead letter"),
            topology.dead_queue
        );
    } else {
        println!(
            "\nWould delete {}; nothing was deleted. Run again with --yes to delete them.",
            plural(lines.len(), "dead letter")
        );
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Unix seconds as `2026-11-23 14:05:09Z`, or the number itself when it is out of range.
fn unix_time(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .map_or_else(|| secs.to_string(), timestamp)
}

fn nothing_matched(queue: &str, summary: &BrowseSummary) -> String {
    if summary.depth == 0 {
        format!("{queue} is empty.")
    } else {
        format!(
            "No dead letter matches ({} in {queue}).",
            plural(summary.depth as usize, "message")
        )
    }
}

fn format_lines(lines: &[Line]) -> String {
    let verb = lines.iter().map(|l| l.verb.len()).max().unwrap_or(0);
    let id = lines
        .iter()
        .map(|l| l.id.chars().count())
        .max()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| format!("{:<verb$}  {:<id$}  {}\n", l.verb, l.id, l.note))
        .collect()
}

fn format_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        text.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn shorten(text: &str, max: usize) -> String {
    let one_line = text.replace(['\r', '\n'], " ");
    if one_line.chars().count() <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

fn plural(n: usize, noun: &str) -> String {
    match (n, noun) {
        (1, _) => format!("1 {noun}"),
        (_, "copy") => format!("{n} copies"),
        _ => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn letter(kind: &str, reason: &str, dead_at: Option<u64>) -> Letter {
        Letter {
            job_id: Some("job_1".into()),
            body_id: Some("job_1".into()),
            kind: Some(kind.into()),
            reason: Some(reason.into()),
            error: None,
            attempts: Some(1),
            dead_at,
        }
    }

    #[test]
    fn filters_match_type_spellings_reason_and_age() {
        let l = letter("verification_email", "smtp_permanent", Some(1_000));
        let f = |kind: Option<&str>, reason: Option<&str>, older: Option<u64>| DlqFilter {
            kind: kind.map(str::to_owned),
            reason: reason.map(str::to_owned),
            older_than: older.map(Duration::from_secs),
        };
        assert!(f(None, None, None).matches(&l, 2_000));
        assert!(f(Some("verification_email"), None, None).matches(&l, 2_000));
        assert!(f(Some("verification-email"), None, None).matches(&l, 2_000));
        assert!(f(Some("email.verification"), None, None).matches(&l, 2_000));
        assert!(!f(Some("welcome_email"), None, None).matches(&l, 2_000));
        assert!(f(None, Some("smtp_permanent"), None).matches(&l, 2_000));
        assert!(!f(None, Some("invalid_job"), None).matches(&l, 2_000));
        assert!(f(None, None, Some(600)).matches(&l, 2_000));
        assert!(!f(None, None, Some(6_000)).matches(&l, 2_000));
        let timeless = letter("verification_email", "rejected", None);
        assert!(!f(None, None, Some(1)).matches(&timeless, 2_000));
        let unknown = letter("sms", "unknown_type", Some(1_000));
        assert!(f(Some("sms"), None, None).matches(&unknown, 2_000));
    }

    #[test]
    fn replay_and_purge_need_an_explicit_selection() {
        let mut s = DlqSelect::default();
        assert!(check_selection(&s, "purge").is_err());
        s.all = true;
        assert!(check_selection(&s, "purge").is_ok());
        s.ids.push("job_1".into());
        assert!(check_selection(&s, "purge").is_err());
        s.all = false;
        assert!(check_selection(&s, "purge").is_ok());
        let l = letter("welcome_email", "x", None);
        assert!(s.matches(&l, 0));
        s.ids = vec!["job_2".into()];
        assert!(!s.matches(&l, 0));
    }

    #[test]
    fn long_errors_are_cut_to_one_line() {
        assert_eq!(shorten("a\nb", 10), "a b");
        let cut = shorten(&"x".repeat(100), 10);
        assert_eq!(cut.chars().count(), 10);
        assert!(cut.ends_with('…'));
    }
}
