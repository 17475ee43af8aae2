//! Phase 3, the end-to-end drain: worker processes start on a backlog of queued jobs, and the
//! clock runs until the SMTP sink has accepted every email and the ledger shows every job sent.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use herald_mailsink::{Acceptance, MailSink};
use herald_queue::Topology;
use herald_store::Store;
use lapin::Connection;
use serde::Serialize;

use crate::process::WorkerProcesses;

/// A drain that makes no progress for this long has failed (or finished with dead letters).
const STALL: Duration = Duration::from_secs(60);

/// What the workers did with the backlog.
#[derive(Debug, Clone, Serialize)]
pub struct DrainResult {
    pub jobs: usize,
    pub workers: usize,
    /// From spawning the workers until every job was accepted by SMTP and recorded as sent.
    pub seconds: f64,
    /// `jobs / seconds`: the end-to-end throughput.
    pub per_second: f64,
    /// From the first to the last 250 of the sink (none with an external SMTP server): the
    /// steady rate, without process start-up.
    pub first_to_last_seconds: Option<f64>,
    pub first_to_last_per_second: Option<f64>,
    /// The workers' user + system CPU time over the phase, start-up included.
    pub worker_cpu_seconds: f64,
    pub cpu_seconds_per_1000_jobs: f64,
    /// The largest worker's peak resident set (VmHWM) at the end of the phase.
    pub peak_rss_bytes: u64,
    /// Jobs the ledger shows `sent`.
    pub sent: u64,
    /// Jobs the ledger shows `dead`.
    pub dead: u64,
    /// Messages in herald.email.dead after the phase.
    pub dead_letters: u32,
    /// Ready messages still in herald.email after the phase.
    pub left_in_queue: u32,
    /// 250 replies of the sink (none with an external SMTP server).
    pub accepted: Option<usize>,
    /// Distinct Message-IDs among them.
    pub distinct: Option<usize>,
    pub duplicates: Option<usize>,
    /// Jobs without an accepted email (or, with an external SMTP server, not sent).
    pub lost: u64,
    pub average_email_bytes: Option<usize>,
}

/// Where the workers take their jobs and deliver them.
#[derive(Debug)]
pub struct DrainTarget<'a> {
    pub exe: &'a Path,
    pub workers: usize,
    pub env: &'a [(String, String)],
    /// Herald's own sink, or `None` for an external SMTP server.
    pub sink: Option<&'a MailSink>,
    pub store: &'a Store,
    pub broker: &'a Connection,
}

/// Spawns the workers, waits until `jobs` jobs are delivered, and returns the figures with the
/// workers still running (the latency phase uses them).
pub async fn run(
    target: &DrainTarget<'_>,
    jobs: usize,
) -> anyhow::Result<(DrainResult, WorkerProcesses)> {
    let accepted_before = target.sink.map_or(0, MailSink::count);
    let start = Instant::now();
    let mut workers = WorkerProcesses::spawn(target.exe, target.workers, target.env)?;
    let cpu_at_start = workers.cpu_seconds()?;

    let goal = accepted_before + jobs;
    let mut progress = (0, Instant::now());
    let ledger = loop {
        workers.ensure_running()?;
        let accepting = target.sink.filter(|sink| sink.count() < goal);
        let done = if let Some(sink) = accepting {
            sink.wait_for(goal, Duration::from_secs(1)).await;
            (sink.count() - accepted_before) as u64
        } else {
            let ledger = Ledger::read(target.store).await?;
            if ledger.sent >= jobs as u64 {
                break ledger;
            }
            let pause = if target.sink.is_some() { 10 } else { 200 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
            ledger.sent + ledger.dead
        };
        if done > progress.0 {
            progress = (done, Instant::now());
        } else if progress.1.elapsed() > STALL {
            let ledger = Ledger::read(target.store).await?;
            if ledger.sent + ledger.dead >= jobs as u64 {
                break ledger; // finished, with dead letters
            }
            bail!(
                "the drain stalled for 60 s at {done} of {jobs} jobs; the ledger shows {} sent, \
                 {} dead",
                ledger.sent,
                ledger.dead
            );
        }
    };
    let seconds = start.elapsed().as_secs_f64();
    let worker_cpu_seconds = workers.cpu_seconds()? - cpu_at_start;
    let peak_rss_bytes = workers.peak_rss_bytes()?;

    let topology = Topology::default();
    let dead_letters = herald_queue::queue_stats(target.broker, &topology.dead_queue)
        .await?
        .messages;
    let left_in_queue = herald_queue::queue_stats(target.broker, &topology.work_queue)
        .await?
        .messages;
    let acceptances = target.sink.map(MailSink::take_acceptances);
    let emails = acceptances.as_deref().map(Emails::of);
    let lost = match &emails {
        Some(emails) => (jobs as u64).saturating_sub(emails.distinct as u64),
        None => (jobs as u64).saturating_sub(ledger.sent),
    };
    let first_to_last = emails.as_ref().and_then(|e| e.first_to_last);
    Ok((
        DrainResult {
            jobs,
            workers: target.workers,
            seconds,
            per_second: jobs as f64 / seconds,
            first_to_last_seconds: first_to_last.map(|d| d.as_secs_f64()),
            // n emails span n - 1 intervals between the first and the last 250.
            first_to_last_per_second: first_to_last
                .map(|d| jobs.saturating_sub(1) as f64 / d.as_secs_f64().max(f64::EPSILON)),
            worker_cpu_seconds,
            cpu_seconds_per_1000_jobs: worker_cpu_seconds * 1000.0 / jobs as f64,
            peak_rss_bytes,
            sent: ledger.sent,
            dead: ledger.dead,
            dead_letters,
            left_in_queue,
            accepted: emails.as_ref().map(|e| e.accepted),
            distinct: emails.as_ref().map(|e| e.distinct),
            duplicates: emails.as_ref().map(|e| e.accepted - e.distinct),
            lost,
            average_email_bytes: emails.as_ref().map(|e| e.average_bytes),
        },
        workers,
    ))
}

/// The ledger's `sent` and `dead` counts.
#[derive(Debug, Clone, Copy)]
struct Ledger {
    sent: u64,
    dead: u64,
}

impl Ledger {
    async fn read(store: &Store) -> anyhow::Result<Ledger> {
        let counts = store.job_status_counts().await?;
        let count = |status: &str| {
            counts
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0))
        };
        Ok(Ledger {
            sent: count("sent"),
            dead: count("dead"),
        })
    }
}

/// A summary of the sink's acceptances.
#[derive(Debug)]
struct Emails {
    accepted: usize,
    distinct: usize,
    average_bytes: usize,
    first_to_last: Option<Duration>,
}

impl Emails {
    fn of(acceptances: &[Acceptance]) -> Emails {
        let distinct: HashSet<&str> = acceptances
            .iter()
            .filter_map(|a| a.message_id.as_deref())
            .collect();
        let first = acceptances.iter().map(|a| a.at).min();
        let last = acceptances.iter().map(|a| a.at).max();
        Emails {
            accepted: acceptances.len(),
            distinct: distinct.len(),
            average_bytes: acceptances.iter().map(|a| a.bytes).sum::<usize>()
                / acceptances.len().max(1),
            first_to_last: first.zip(last).map(|(first, last)| last - first),
        }
    }
}
