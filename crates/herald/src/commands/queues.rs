//! `herald queues`: the work queue, each retry tier and the dead queue, with their ready
//! messages, consumers and the age of their oldest message.
//!
//! Depth and consumers come from a passive declare, which needs nothing but AMQP and consumes
//! nothing. RabbitMQ cannot date the head of a quorum queue (it reports no
//! `head_message_timestamp` for them, and peeking with `basic.get` would count a delivery against
//! the work queue's `x-delivery-limit`), so the ages come from the job ledger, exactly as the
//! worker's `herald_queue_oldest_message_age_seconds` gauge gets them
//! ([`herald_store::Store::queue_ages`]): a retry tier is as old as its oldest `retrying` job, the
//! dead queue as its oldest job still dead-lettered. The ledger records a job only when a worker
//! first takes it, so it cannot date the work queue.

use std::time::Duration;

use anyhow::Context;
use herald_queue::{QueueError, QueueRole, QueueStats, Topology, queue_stats};
use herald_store::queue_age::LedgerQueueAges;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use secrecy::ExposeSecret;

use crate::app;
use crate::cli::QueuesArgs;
use crate::settings::Settings;

pub async fn run(settings: &Settings, _args: QueuesArgs) -> anyhow::Result<()> {
    let topology = settings.topology();
    let conn = herald_queue::connect(settings.amqp_url.expose_secret(), "herald queues")
        .await
        .context("connecting to RabbitMQ")?;
    let queues = topology.queues_by_role();
    let mut stats: Vec<Option<QueueStats>> = Vec::with_capacity(queues.len());
    for (name, _) in &queues {
        match queue_stats(&conn, name).await {
            Ok(s) => stats.push(Some(s)),
            Err(e) if is_not_found(&e) => stats.push(None),
            Err(e) => return Err(e).with_context(|| format!("reading queue {name}")),
        }
    }
    let _ = conn.close(200, "OK".into()).await;

    // The ledger is asked only when a queue it can date holds messages.
    let needs_ledger = queues
        .iter()
        .zip(&stats)
        .any(|((_, role), s)| *role != QueueRole::Work && s.is_some_and(|s| s.messages > 0));
    let ages = if needs_ledger {
        match app::store(settings).await {
            Ok(store) => store
                .queue_ages(topology.retry_delays.len())
                .await
                .map_err(|e| format!("{e:#}")),
            Err(e) => Err(format!("{e:#}")),
        }
    } else {
        Ok(LedgerQueueAges {
            retry_tiers: vec![Duration::ZERO; topology.retry_delays.len()],
            dead: Duration::ZERO,
        })
    };
    print!("{}", render(&topology, &queues, &stats, &ages));
    Ok(())
}

fn role_name(topology: &Topology, role: QueueRole) -> String {
    match role {
        QueueRole::Work => "work".to_owned(),
        QueueRole::Retry(tier) => format!(
            "retry {}",
            topology
                .retry_delays
                .get(tier)
                .map_or_else(|| "?".to_owned(), |d| herald_queue::topology::compact(*d))
        ),
        QueueRole::Defer => "deferred".to_owned(),
        QueueRole::Dead => "dead letters".to_owned(),
    }
}

/// Whether a passive declare failed because the queue does not exist.
pub(super) fn is_not_found(e: &QueueError) -> bool {
    matches!(
        e,
        QueueError::Amqp { source, .. }
            if matches!(
                source.kind(),
                lapin::ErrorKind::ProtocolError(p)
                    if *p.kind() == AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)
            )
    )
}

/// Why a queue's age is not shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoAge {
    /// The work queue: the ledger has not seen the jobs waiting there.
    WorkQueue,
    /// The defer queue: its copies wait at most about one HERALD_SEND_LEASE.
    Deferred,
    /// The ledger knows no job waiting in a queue that holds messages.
    Unknown,
    /// The ledger could not be read.
    Unreadable,
}

fn render(
    topology: &Topology,
    queues: &[(String, QueueRole)],
    stats: &[Option<QueueStats>],
    ages: &Result<LedgerQueueAges, String>,
) -> String {
    let mut rows: Vec<[String; 5]> = Vec::with_capacity(queues.len());
    let mut reasons: Vec<NoAge> = Vec::new();
    for ((name, role), stats) in queues.iter().zip(stats) {
        let role_text = role_name(topology, *role);
        let Some(stats) = stats else {
            rows.push([
                name.clone(),
                role_text,
                "missing".into(),
                "-".into(),
                "-".into(),
            ]);
            continue;
        };
        let age = if stats.messages == 0 {
            Ok(None)
        } else {
            match (role, ages) {
                (QueueRole::Work, _) => Err(NoAge::WorkQueue),
                (QueueRole::Defer, _) => Err(NoAge::Deferred),
                (_, Err(_)) => Err(NoAge::Unreadable),
                (QueueRole::Retry(tier), Ok(ages)) => Ok(Some(
                    ages.retry_tiers.get(*tier).copied().unwrap_or_default(),
                )),
                (QueueRole::Dead, Ok(ages)) => Ok(Some(ages.dead)),
            }
        };
        let age = match age {
            Ok(None) => "-".to_owned(),
            // The ledger reports zero when it knows no job there.
            Ok(Some(Duration::ZERO)) | Err(NoAge::Unknown) => {
                reasons.push(NoAge::Unknown);
                "?".to_owned()
            }
            Ok(Some(age)) => human_age(age.as_secs()),
            Err(why) => {
                reasons.push(why);
                "?".to_owned()
            }
        };
        rows.push([
            name.clone(),
            role_text,
            stats.messages.to_string(),
            stats.consumers.to_string(),
            age,
        ]);
    }
    let header = ["QUEUE", "ROLE", "READY", "CONSUMERS", "OLDEST"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        format!(
            "{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}  {:>w4$}\n",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            cells[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
        )
    };
    let mut out = line(header);
    for row in &rows {
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
    }
    if rows.iter().any(|r| r[2] == "missing") {
        out.push_str(
            "\nA missing queue has not been declared yet in this vhost: `herald worker` declares \
             every queue when it starts.\n",
        );
    }
    out.push_str(
        "\nOLDEST comes from the job ledger (RabbitMQ cannot date the head of a quorum queue); \
         `-` means the queue has no ready message.\n",
    );
    if reasons.contains(&NoAge::WorkQueue) {
        out.push_str(
            "The work queue's `?`: the ledger records a job only when a worker takes it. A \
             running worker exports an upper bound as herald_queue_oldest_message_age_seconds.\n",
        );
    }
    if reasons.contains(&NoAge::Deferred) {
        out.push_str(
            "The defer queue's `?`: a copy there waits for another delivery's lease on its job, \
             so at most about HERALD_SEND_LEASE (twice that behind an older copy).\n",
        );
    }
    if reasons.contains(&NoAge::Unknown) {
        out.push_str(
            "Another `?`: the ledger knows no job waiting there (a body without a readable id, a \
             copy RabbitMQ dead-lettered itself, or one written while PostgreSQL was \
             unreachable).\n",
        );
    }
    if let (true, Err(why)) = (reasons.contains(&NoAge::Unreadable), ages) {
        out.push_str(&format!(
            "The ledger could not be read, so the retry and dead queues' ages are unknown: {why}\n"
        ));
    }
    out
}

/// A short age: `42s`, `12m`, `3h 5m`, `4d 2h`.
pub(super) fn human_age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_short() {
        assert_eq!(human_age(0), "0s");
        assert_eq!(human_age(59), "59s");
        assert_eq!(human_age(90), "1m");
        assert_eq!(human_age(3 * 3600 + 5 * 60 + 7), "3h 5m");
        assert_eq!(human_age(4 * 86_400 + 2 * 3600), "4d 2h");
    }

    fn stats(messages: u32, consumers: u32) -> Option<QueueStats> {
        Some(QueueStats {
            messages,
            consumers,
        })
    }

    /// The cells of `queue`'s row, the role's words joined.
    fn row(text: &str, queue: &str) -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{queue} ")))
            .unwrap_or_else(|| panic!("no row for {queue}:\n{text}"));
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn ages_come_from_the_ledger_and_the_work_queue_says_why_it_has_none() {
        let topology = Topology::default()
            .with_retry_delays(vec![Duration::from_secs(5), Duration::from_secs(60)]);
        let queues = topology.queues_by_role();
        assert_eq!(queues.len(), 5);
        let ledger = LedgerQueueAges {
            retry_tiers: vec![Duration::from_secs(42), Duration::ZERO],
            dead: Duration::from_secs(3 * 3600 + 600),
        };
        let all = [
            stats(7, 2),
            stats(1, 0),
            stats(2, 0),
            stats(3, 0),
            stats(1, 0),
        ];
        let text = render(&topology, &queues, &all, &Ok(ledger.clone()));
        assert_eq!(
            row(&text, "herald.email"),
            ["herald.email", "work", "7", "2", "?"]
        );
        assert_eq!(row(&text, "herald.email.retry.5s")[2..], ["1", "0", "42s"]);
        assert_eq!(row(&text, "herald.email.retry.1m")[4], "?");
        assert_eq!(
            row(&text, "herald.email.dead")[1..],
            ["dead letters", "1", "0", "3h 10m"]
        );
        assert!(
            text.contains("herald_queue_oldest_message_age_seconds"),
            "{text}"
        );
        assert!(text.contains("knows no job waiting there"), "{text}");
        assert_eq!(
            row(&text, "herald.email.defer")[1..],
            ["deferred", "3", "0", "?"]
        );
        assert!(text.contains("HERALD_SEND_LEASE"), "{text}");

        // Empty queues have no age, whatever the ledger says; a missing one says so.
        let idle = [stats(0, 1), None, stats(0, 0), stats(0, 0), stats(0, 0)];
        let text = render(&topology, &queues, &idle, &Ok(ledger));
        assert_eq!(row(&text, "herald.email")[2..], ["0", "1", "-"]);
        assert_eq!(row(&text, "herald.email.retry.5s")[2], "missing");
        assert!(text.contains("herald worker"), "{text}");
        assert!(!text.contains("knows no job"), "{text}");
        assert!(!text.contains("upper bound"), "{text}");

        let unreadable = render(&topology, &queues, &all, &Err("connection refused".into()));
        assert_eq!(row(&unreadable, "herald.email.dead")[4], "?");
        assert!(unreadable.contains("connection refused"), "{unreadable}");
    }
}
