//! Measuring the producer: how many realistic jobs per second [`Producer::publish`] gets
//! confirmed when many tasks publish at once.
//!
//! Used by `examples/publish_rate.rs` and `herald bench`. [`publish_rate`] publishes
//! [`sample_jobs`] (real contract-v1 jobs of every kind, several locales, addresses at the
//! reserved `example.com`); [`publish_jobs`] times the caller's own jobs on its own producer.
//! Either way the jobs stay queued in `herald.email`, so point it at a scratch vhost that no
//! worker consumes.

use std::fmt;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt, TryStreamExt};
use herald_domain::{EmailJob, EnrollmentFactor, JobError, JobKind};

use crate::{ProduceError, Producer};

/// The outcome of one measurement: `jobs` confirmed publishes in `elapsed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub jobs: usize,
    /// How many publishes were in flight at once.
    pub concurrency: usize,
    /// From the first publish to the last confirm; connecting and building jobs are excluded.
    pub elapsed: Duration,
}

impl Rate {
    pub fn per_second(&self) -> f64 {
        self.jobs as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} jobs in {:.2?} with {} in flight = {:.0} jobs/s",
            self.jobs,
            self.elapsed,
            self.concurrency,
            self.per_second()
        )
    }
}

/// Why a measurement did not complete.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("could not build the sample jobs")]
    Job(#[from] JobError),
    /// Connecting failed, or a publish was not confirmed: a rate with failures would flatter.
    #[error(transparent)]
    Produce(#[from] ProduceError),
}

/// `count` realistic jobs: the four kinds in turn, with names, locales, organizations, clients
/// and enrollment factors varying the way upstream traffic does. Ids are fresh.
pub fn sample_jobs(count: usize) -> Result<Vec<EmailJob>, JobError> {
    const LOCALES: [&str; 6] = ["en", "de", "fr-CA", "ja-JP", "pt-BR", "es"];
    (0..count)
        .map(|n| {
            let kind = JobKind::ALL[n % JobKind::ALL.len()];
            let mut job = EmailJob::builder(
                kind,
                format!("auth0|bench-{n}"),
                format!("user{n}@example.com"),
            )
            .name(format!("Bench User {n}"))
            .email_locale(LOCALES[n % LOCALES.len()]);
            // The contract refuses a result_url next to a client_id, so one or the other.
            if n % 3 == 0 {
                job = job.organization_id("org_acme").client_id("acme-portal");
            } else if kind == JobKind::Verification {
                job = job.result_url("https://app.example.com/verified");
            }
            match kind {
                JobKind::Enrollment => job = job.factor(EnrollmentFactor::Otp),
                JobKind::PasswordChange => job = job.ttl_sec(3600),
                JobKind::Verification | JobKind::Welcome => {}
            }
            job.build()
        })
        .collect()
}

/// Connects to `amqp_url` with the default topology (declaring it), publishes `jobs`
/// [`sample_jobs`] with [`publish_jobs`], closes the connection and returns the rate.
pub async fn publish_rate(
    amqp_url: &str,
    jobs: usize,
    concurrency: usize,
) -> Result<Rate, BenchError> {
    let sample = sample_jobs(jobs)?;
    let producer = Producer::connect(amqp_url).await?;
    let rate = publish_jobs(&producer, &sample, concurrency).await;
    producer.close().await;
    Ok(rate?)
}

/// Publishes every job in `jobs` through `producer` with up to `concurrency` publishes in
/// flight, each waiting for its confirm, and times it from the first publish to the last
/// confirm. The first unconfirmed publish ends the measurement with its error.
pub async fn publish_jobs(
    producer: &Producer,
    jobs: &[EmailJob],
    concurrency: usize,
) -> Result<Rate, ProduceError> {
    let concurrency = concurrency.max(1);
    let started = Instant::now();
    stream::iter(jobs)
        .map(|job| producer.publish(job))
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;
    Ok(Rate {
        jobs: jobs.len(),
        concurrency,
        elapsed: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_jobs_cover_every_kind_and_are_valid_v1_jobs() {
        let jobs = sample_jobs(8).unwrap();
        for kind in JobKind::ALL {
            assert_eq!(jobs.iter().filter(|j| j.kind() == kind).count(), 2);
        }
        for job in &jobs {
            assert_eq!(EmailJob::parse(&job.to_json(), 64 * 1024).unwrap(), *job);
        }
        let mut ids: Vec<_> = jobs.iter().map(|j| j.id.as_str().to_owned()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 8, "ids are fresh");
    }

    #[test]
    fn a_rate_is_jobs_over_seconds() {
        let rate = Rate {
            jobs: 5_000,
            concurrency: 256,
            elapsed: Duration::from_millis(500),
        };
        assert_eq!(rate.per_second(), 10_000.0);
        assert!(rate.to_string().ends_with("= 10000 jobs/s"), "{rate}");
    }
}
