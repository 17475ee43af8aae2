//! Phase 4, latency at a fixed offered rate: with the workers idle on an empty queue, jobs are
//! published on a fixed schedule (open loop: a slow confirm never delays the next publish) and
//! each email's 250 at the sink is matched to its publish through the Message-ID.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use herald_mailsink::MailSink;
use herald_producer::Producer;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::jobs;
use crate::process::WorkerProcesses;

/// The wait for the last emails ends once none has arrived for this long.
const QUIET: Duration = Duration::from_secs(10);

/// Nearest-rank percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    /// `None` for an empty set.
    pub fn of(mut ms: Vec<f64>) -> Option<Percentiles> {
        if ms.is_empty() {
            return None;
        }
        ms.sort_by(f64::total_cmp);
        let rank = |p: f64| ms[((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
        Some(Percentiles {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max: ms[ms.len() - 1],
        })
    }
}

/// Publish-to-250 latency at the offered rate.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyResult {
    pub target_rate: u32,
    pub jobs: usize,
    /// Jobs per second between the first and the last publish.
    pub offered_per_second: f64,
    /// From the instant just before `Producer::publish` to the sink's 250.
    pub latency_ms: Percentiles,
    /// How long `Producer::publish` took to return (its confirm), for reading the figures above.
    /// `None` when no publish was confirmed.
    pub publish_confirm_ms: Option<Percentiles>,
    /// Publishes that failed (no confirm within the producer's timeout). Such a job may still
    /// have been stored and delivered; its latency counts if its email arrived.
    pub publish_errors: usize,
    /// Published jobs whose email never arrived.
    pub lost: usize,
    /// The workers' CPU time over the phase, per 1,000 jobs.
    pub cpu_seconds_per_1000_jobs: f64,
}

/// Offers `rate × seconds` jobs (ids `{prefix}-{n}`) at `rate` per second and measures them.
pub async fn run(
    producer: Arc<Producer>,
    sink: &MailSink,
    workers: &mut WorkerProcesses,
    prefix: &str,
    rate: u32,
    seconds: u32,
) -> anyhow::Result<LatencyResult> {
    let jobs = jobs::jobs(prefix, rate as usize * seconds as usize)?;
    let total = jobs.len();
    let _ = sink.take_acceptances();
    let accepted_before = sink.count();
    let cpu_at_start = workers.cpu_seconds()?;

    let mut published: Vec<(String, Instant)> = Vec::with_capacity(total);
    let mut confirms = JoinSet::new();
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    for job in jobs {
        ticker.tick().await;
        let at = Instant::now();
        published.push((job.id.to_string(), at));
        let producer = Arc::clone(&producer);
        confirms.spawn(async move {
            producer.publish(&job).await?;
            anyhow::Ok(at.elapsed())
        });
    }
    let offered = match (published.first(), published.last()) {
        (Some((_, first)), Some((_, last))) if total > 1 => {
            (total - 1) as f64 / (*last - *first).as_secs_f64().max(f64::EPSILON)
        }
        _ => f64::from(rate),
    };
    let mut confirm_ms = Vec::with_capacity(total);
    let mut publish_errors = 0;
    while let Some(confirm) = confirms.join_next().await {
        match confirm.context("a publish task panicked")? {
            Ok(took) => confirm_ms.push(took.as_secs_f64() * 1000.0),
            Err(error) => {
                if publish_errors == 0 {
                    eprintln!("note: a latency job was not confirmed: {error:#}");
                }
                publish_errors += 1;
            }
        }
    }

    // Wait for every email, or until none has come for a while (unconfirmed jobs may be lost).
    let goal = accepted_before + total;
    let mut last = (sink.count(), Instant::now());
    while sink.count() < goal && last.1.elapsed() < QUIET {
        workers.ensure_running()?;
        sink.wait_for(goal, Duration::from_secs(1)).await;
        if sink.count() > last.0 {
            last = (sink.count(), Instant::now());
        }
    }
    let cpu_seconds = workers.cpu_seconds()? - cpu_at_start;

    let mut accepted_at: HashMap<String, Instant> = HashMap::with_capacity(total);
    for acceptance in sink.take_acceptances() {
        if let Some(job_id) = acceptance.message_id.as_deref().and_then(job_id_of) {
            accepted_at
                .entry(job_id.to_owned())
                .or_insert(acceptance.at);
        }
    }
    let latencies: Vec<f64> = published
        .iter()
        .filter_map(|(id, at)| {
            accepted_at
                .get(id)
                .map(|done| (*done - *at).as_secs_f64() * 1000.0)
        })
        .collect();
    let lost = total - latencies.len();
    let Some(latency_ms) = Percentiles::of(latencies) else {
        bail!("none of the {total} latency jobs reached the sink");
    };
    Ok(LatencyResult {
        target_rate: rate,
        jobs: total,
        offered_per_second: offered,
        latency_ms,
        publish_confirm_ms: Percentiles::of(confirm_ms),
        publish_errors,
        lost,
        cpu_seconds_per_1000_jobs: cpu_seconds * 1000.0 / total as f64,
    })
}

/// The job id in a Message-ID `<{job id}@{domain}>` (see `herald_worker::compose::message_id`).
fn job_id_of(message_id: &str) -> Option<&str> {
    let inner = message_id.trim().strip_prefix('<')?;
    inner.split_once('@').map(|(id, _)| id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let ms: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let p = Percentiles::of(ms).unwrap();
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        let one = Percentiles::of(vec![7.0]).unwrap();
        assert_eq!((one.p50, one.p99, one.max), (7.0, 7.0, 7.0));
        assert_eq!(Percentiles::of(Vec::new()), None);
    }

    #[test]
    fn job_ids_come_out_of_message_ids() {
        assert_eq!(job_id_of("<bench-r1-7@localhost>"), Some("bench-r1-7"));
        assert_eq!(job_id_of(" <a.b:c@id.example.com> "), Some("a.b:c"));
        assert_eq!(job_id_of("no-brackets@x"), None);
    }
}
