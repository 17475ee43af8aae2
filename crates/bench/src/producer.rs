//! Phase 2, the producer rate: the run's jobs published with `herald_producer::Producer::publish`
//! from many concurrent tasks, each publish waiting for its confirm. They stay queued as the
//! backlog the drain phase starts from.

use std::time::Instant;

use futures::{StreamExt, TryStreamExt, stream};
use herald_domain::EmailJob;
use herald_producer::Producer;
use serde::Serialize;

/// Publishes in flight at once in `herald bench`, as many concurrent request handlers of an upstream service would.
pub const CONCURRENCY: usize = 256;

/// How fast the producer library published.
#[derive(Debug, Clone, Serialize)]
pub struct ProducerResult {
    pub jobs: usize,
    pub concurrency: usize,
    pub seconds: f64,
    pub per_second: f64,
}

/// Publishes every job with up to `concurrency` publishes in flight and times it, from the first
/// publish to the last confirm. The first unconfirmed publish ends it with its error: a rate with
/// failures would flatter.
pub async fn publish_all(
    producer: &Producer,
    jobs: &[EmailJob],
    concurrency: usize,
) -> anyhow::Result<ProducerResult> {
    let concurrency = concurrency.max(1);
    let start = Instant::now();
    stream::iter(jobs)
        .map(|job| producer.publish(job))
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(ProducerResult {
        jobs: jobs.len(),
        concurrency,
        seconds,
        per_second: jobs.len() as f64 / seconds,
    })
}
