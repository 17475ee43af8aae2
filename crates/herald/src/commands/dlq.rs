//! `herald dlq list|show|replay|purge`: the operator's tools for `herald.email.dead`. Parsing the
//! arguments and printing; the work is done by the ledger and by `herald_queue::dlq`.
//!
//! `list` and `show` answer from the job ledger (`herald_store::dead_letters`), so they never
//! consume the dead queue; they only read its depth with a passive declare, and say when the
//! queue holds letters the ledger has no record of. `replay` and `purge` must take letters out of
//! the queue, so they browse it ([`herald_queue::dlq::replay_dead_letters`],
//! [`herald_queue::dlq::purge_dead_letters`]).

use std::fmt::Write as _;

use anyhow::{Context, bail};
use herald_queue::dlq::{self, Action, Report, Selection, canonical_kind};
use herald_queue::{Publisher, Topology, queue_stats};
use herald_store::Store;
use herald_store::dead_letters::{DeadJob, DeadLetterQuery};
use lapin::Connection;
use secrecy::ExposeSecret;
use time::OffsetDateTime;

use crate::app;
use crate::cli::{DlqCommand, DlqFilter, DlqSelect};
use crate::settings::Settings;

use super::jobs::timestamp;
use super::queues::human_age;

/// The longest error text `list` prints; `show` prints it whole.
const LIST_ERROR_CHARS: usize = 120;

pub async fn run(settings: &Settings, cmd: DlqCommand) -> anyhow::Result<()> {
    let topology = settings.topology();
    match cmd {
        DlqCommand::List { filter, limit } => {
            let store = app::store(settings).await?;
            let depth = dead_queue_depth(settings, &topology).await;
            list(&store, &topology, depth, &filter, limit).await
        }
        DlqCommand::Show { job_id } => {
            let store = app::store(settings).await?;
            show(&store, &topology, &job_id).await
        }
        DlqCommand::Replay { select, dry_run } => {
            let selection = selection(select);
            selection.check()?;
            let store = app::store(settings).await?;
            let conn = connect(settings, &topology).await?;
            let publisher = Publisher::new(&conn, topology.clone()).await?;
            let report = dlq::replay_dead_letters(
                &conn,
                &publisher,
                &store,
                &selection,
                dry_run,
                settings.max_job_bytes,
            )
            .await;
            drop(publisher);
            let _ = conn.close(200, "OK".into()).await;
            print_replay(&report?, &topology.dead_queue)
        }
        DlqCommand::Purge { select, yes } => {
            let selection = selection(select);
            selection.check()?;
            // Only a real purge writes to the ledger; a dry run needs no database.
            let store = if yes {
                Some(app::store(settings).await?)
            } else {
                None
            };
            let conn = connect(settings, &topology).await?;
            let report =
                dlq::purge_dead_letters(&conn, &topology.dead_queue, store.as_ref(), &selection)
                    .await;
            let _ = conn.close(200, "OK".into()).await;
            print_purge(&report?, &topology.dead_queue)
        }
    }
}

/// Connects and declares the exchanges and queues a replay needs (identical to what producers
/// and workers declare).
async fn connect(settings: &Settings, topology: &Topology) -> anyhow::Result<Connection> {
    let conn = herald_queue::connect(settings.amqp_url.expose_secret(), "herald dlq")
        .await
        .context("connecting to RabbitMQ")?;
    let channel = conn
        .create_channel()
        .await
        .context("opening an AMQP channel")?;
    topology.declare_core(&channel).await?;
    let _ = channel.close(200, "OK".into()).await;
    Ok(conn)
}

/// The dead queue's ready messages, read with a passive declare (nothing is consumed), or why
/// it could not be read.
async fn dead_queue_depth(settings: &Settings, topology: &Topology) -> Result<u32, String> {
    let conn = herald_queue::connect(settings.amqp_url.expose_secret(), "herald dlq")
        .await
        .map_err(|e| e.to_string())?;
    let depth = queue_stats(&conn, &topology.dead_queue).await;
    let _ = conn.close(200, "OK".into()).await;
    match depth {
        Ok(stats) => Ok(stats.messages),
        Err(e) if super::queues::is_not_found(&e) => Ok(0),
        Err(e) => Err(e.to_string()),
    }
}

fn selection(select: DlqSelect) -> Selection {
    Selection {
        kind: select.filter.kind,
        reason: select.filter.reason,
        older_than: select.filter.older_than,
        ids: select.ids,
        all: select.all,
    }
}

async fn list(
    store: &Store,
    topology: &Topology,
    depth: Result<u32, String>,
    filter: &DlqFilter,
    limit: u32,
) -> anyhow::Result<()> {
    let query = DeadLetterQuery {
        kind: filter.kind.as_deref().map(canonical_kind),
        reason: filter.reason.clone(),
        older_than: filter.older_than,
        limit,
    };
    let page = store
        .dead_letters(&query)
        .await
        .context("reading the ledger")?;
    let now = OffsetDateTime::now_utc();
    let queue = &topology.dead_queue;
    let mut out = String::new();
    if page.jobs.is_empty() {
        if page.parked == 0 && depth == Ok(0) {
            let _ = writeln!(out, "{queue} is empty.");
        } else {
            let _ = writeln!(
                out,
                "No dead letter matches ({} parked in the ledger).",
                page.parked
            );
        }
    } else {
        let header = ["JOB ID", "TYPE", "REASON", "ATTEMPTS", "DEAD FOR", "ERROR"];
        let table: Vec<[String; 6]> = page
            .jobs
            .iter()
            .map(|job| {
                [
                    job.id.clone(),
                    job.kind.clone(),
                    job.dead_reason.clone().unwrap_or_else(|| "-".into()),
                    job.attempts.to_string(),
                    dead_for(job, now),
                    shorten(job.last_error.as_deref().unwrap_or("-"), LIST_ERROR_CHARS),
                ]
            })
            .collect();
        out.push_str(&format_table(header, &table));
        let _ = writeln!(
            out,
            "\n{} shown of {} in the ledger. `herald dlq show <job id>` prints one in full.",
            plural(page.jobs.len(), "dead letter"),
            page.matching
        );
    }
    out.push_str(&ledger_and_queue(queue, page.parked, depth));
    print!("{out}");
    Ok(())
}

/// What the ledger's count of parked letters and the queue's depth say together: the ledger
/// cannot list a letter it has no record of.
fn ledger_and_queue(queue: &str, parked: u64, depth: Result<u32, String>) -> String {
    let depth = match depth {
        Ok(depth) => u64::from(depth),
        Err(why) => {
            return format!(
                "\nThe ledger has {parked} parked; the depth of {queue} could not be read ({why}).\n"
            );
        }
    };
    if depth > parked {
        format!(
            "\n{queue} holds {}, {} more than the ledger has parked. The ledger cannot list \
             letters of jobs it has no dead row for: a body without a readable id, a copy \
             RabbitMQ dead-lettered itself (delivery_limit), or a job dead-lettered while \
             PostgreSQL was unreachable (store_error). `herald dlq purge --all` (without --yes) \
             reads the queue itself and lists every letter.\n",
            plural_u64(depth, "message"),
            depth - parked
        )
    } else if depth < parked {
        format!(
            "\n{queue} holds only {}: {} of the letters the ledger has parked were deleted by \
             other means (the management UI, a queue purge) and are gone.\n",
            plural_u64(depth, "message"),
            parked - depth
        )
    } else if depth > 0 {
        format!(
            "\n{queue} holds {}, as many as the ledger has parked.\n",
            plural_u64(depth, "message")
        )
    } else {
        String::new()
    }
}

async fn show(store: &Store, topology: &Topology, job_id: &str) -> anyhow::Result<()> {
    let queue = &topology.dead_queue;
    let Some(detail) = store
        .dead_letter(job_id)
        .await
        .context("reading the ledger")?
    else {
        match store.job(job_id).await.context("reading the ledger")? {
            Some(job) if job.status == "dead" => bail!(
                "the dead letter of job {job_id:?} was deleted by `herald dlq purge`; \
                 `herald jobs show {job_id}` shows its history"
            ),
            Some(job) => bail!(
                "job {job_id:?} is not dead-lettered according to the ledger (its status is {}); \
                 `herald jobs show {job_id}` shows its history",
                job.status
            ),
            None => bail!(
                "the ledger has no job {job_id:?}. If its letter is in {queue} anyway (a body \
                 the ledger never recorded), `herald dlq purge --id {job_id}` without --yes \
                 looks for it in the queue"
            ),
        }
    };
    let job = &detail.job;
    let now = OffsetDateTime::now_utc();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Job {} is dead-lettered in {queue} (according to the ledger).\n",
        job.id
    );
    let routing_key = job
        .kind
        .parse::<herald_domain::JobKind>()
        .map_or_else(|_| "-".to_owned(), |k| k.routing_key().to_owned());
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows = [
        ("type", job.kind.clone()),
        ("reason", show(&job.dead_reason)),
        ("error", show(&job.last_error)),
        ("attempts", job.attempts.to_string()),
        (
            "dead since",
            format!("{} ({} ago)", timestamp(job.dead_at), dead_for(job, now)),
        ),
        ("routing key", routing_key),
        ("recipient", show(&job.recipient)),
        ("Message-ID", show(&job.message_id)),
        ("first seen", timestamp(job.created_at)),
    ];
    for (label, value) in rows {
        let _ = writeln!(out, "  {:<13} {value}", format!("{label}:"));
    }
    out.push_str("  body:\n");
    match &detail.payload {
        Some(body) => {
            for line in serde_json::to_string_pretty(body)
                .unwrap_or_default()
                .lines()
            {
                let _ = writeln!(out, "    {line}");
            }
        }
        None => out.push_str("    not recorded (it was not JSON, or too large to keep)\n"),
    }
    let _ = writeln!(
        out,
        "\n`herald jobs show {id}` prints its history. The letter's AMQP headers are not in the \
         ledger; `herald dlq replay --id {id} --dry-run` reads the queue itself.",
        id = job.id
    );
    print!("{out}");
    Ok(())
}

fn dead_for(job: &DeadJob, now: OffsetDateTime) -> String {
    human_age(u64::try_from((now - job.dead_at).whole_seconds()).unwrap_or(0))
}

fn verb(action: Action, dry_run: bool) -> &'static str {
    match (action, dry_run) {
        (Action::Replayed, false) => "replayed",
        (Action::Replayed, true) => "would replay",
        (Action::Kept, false) => "kept",
        (Action::Kept, true) => "would keep",
        (Action::Dropped, false) => "dropped",
        (Action::Dropped, true) => "would drop",
        (Action::Deleted, false) => "deleted",
        (Action::Deleted, true) => "would delete",
    }
}

fn nothing_matched(queue: &str, report: &Report) -> String {
    if report.browse.depth == 0 {
        format!("{queue} is empty.")
    } else {
        format!(
            "No dead letter matches ({} in {queue}).",
            plural(report.browse.depth as usize, "message")
        )
    }
}

fn print_replay(report: &Report, queue: &str) -> anyhow::Result<()> {
    print!("{}", format_lines(report));
    if report.lines.is_empty() {
        println!("{}", nothing_matched(queue, report));
    } else {
        let mut sentence = format!(
            "{} {}",
            if report.dry_run {
                "Would replay"
            } else {
                "Replayed"
            },
            plural(report.count(Action::Replayed), "job")
        );
        if report.invalid() > 0 {
            let _ = write!(
                sentence,
                "; {} not valid, left in {queue}",
                plural(report.invalid(), "job")
            );
        }
        if report.already_sent() > 0 {
            let _ = write!(
                sentence,
                "; {} already sent, left",
                plural(report.already_sent(), "job")
            );
        }
        println!("\n{sentence}.");
    }
    stopped(report)
}

fn print_purge(report: &Report, queue: &str) -> anyhow::Result<()> {
    print!("{}", format_lines(report));
    let n = report.count(Action::Deleted);
    if report.lines.is_empty() {
        println!("{}", nothing_matched(queue, report));
    } else if report.dry_run {
        println!(
            "\nWould delete {}; nothing was deleted. Run again with --yes to delete them.",
            plural(n, "dead letter")
        );
    } else {
        println!("\nDeleted {} from {queue}.", plural(n, "dead letter"));
    }
    stopped(report)
}

/// The error a run stopped on, if any, after its lines were printed.
fn stopped(report: &Report) -> anyhow::Result<()> {
    match &report.stopped {
        Some(e) => Err(anyhow::anyhow!("{}", error_chain(e))),
        None => Ok(()),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

fn format_lines(report: &Report) -> String {
    let lines = &report.lines;
    let width = lines
        .iter()
        .map(|l| verb(l.action, report.dry_run).len())
        .max()
        .unwrap_or(0);
    let id = lines
        .iter()
        .map(|l| l.job_id.chars().count())
        .max()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| {
            format!(
                "{:<width$}  {:<id$}  {}\n",
                verb(l.action, report.dry_run),
                l.job_id,
                l.note
            )
        })
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

fn plural_u64(n: u64, noun: &str) -> String {
    plural(usize::try_from(n).unwrap_or(usize::MAX), noun)
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

    use herald_queue::dlq::LetterSummary;

    use super::*;

    fn letter(kind: &str, reason: &str, dead_at: Option<u64>) -> LetterSummary {
        LetterSummary {
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
        let f = |kind: Option<&str>, reason: Option<&str>, older: Option<u64>| {
            selection(DlqSelect {
                filter: DlqFilter {
                    kind: kind.map(str::to_owned),
                    reason: reason.map(str::to_owned),
                    older_than: older.map(Duration::from_secs),
                },
                ..DlqSelect::default()
            })
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
        assert!(selection(s.clone()).check().is_err());
        s.all = true;
        assert!(selection(s.clone()).check().is_ok());
        s.ids.push("job_1".into());
        assert!(selection(s.clone()).check().is_err());
        s.all = false;
        assert!(selection(s.clone()).check().is_ok());
        let l = letter("welcome_email", "x", None);
        assert!(selection(s.clone()).matches(&l, 0));
        s.ids = vec!["job_2".into()];
        assert!(!selection(s).matches(&l, 0));
    }

    #[test]
    fn long_errors_are_cut_to_one_line() {
        assert_eq!(shorten("a\nb", 10), "a b");
        let cut = shorten(&"x".repeat(100), 10);
        assert_eq!(cut.chars().count(), 10);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn the_list_says_when_the_queue_holds_letters_the_ledger_does_not_know() {
        let q = "herald.email.dead";
        let more = ledger_and_queue(q, 2, Ok(5));
        assert!(more.contains("holds 5 messages, 3 more"), "{more}");
        assert!(more.contains("purge --all"), "{more}");
        let fewer = ledger_and_queue(q, 4, Ok(1));
        assert!(fewer.contains("holds only 1 message: 3 of"), "{fewer}");
        assert!(ledger_and_queue(q, 2, Ok(2)).contains("as many as"));
        assert_eq!(ledger_and_queue(q, 0, Ok(0)), "");
        assert!(ledger_and_queue(q, 1, Err("refused".into())).contains("could not be read"));
    }
}
