//! Measures how many realistic jobs per second the producer gets confirmed by the local
//! RabbitMQ, publishing from many tasks at once into a fresh vhost with Herald's real topology.
//! The jobs are `herald bench`'s mix (every kind, several locales, a third branded).
//!
//! `cargo run --release -p herald-bench --example publish_rate [JOBS] [CONCURRENCY]`
//! (defaults 20000 and 256). The vhost is deleted afterwards.

use herald_bench::{jobs, producer};
use herald_producer::Producer;
use herald_testkit::broker::TestBroker;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let concurrency: usize = args
        .next()
        .map_or(Ok(producer::CONCURRENCY), |a| a.parse())?;
    let broker = TestBroker::new().await?;
    let sample = jobs::jobs("publish-rate", count)?;
    let client = Producer::connect(&broker.url).await?;
    let rate = producer::publish_all(&client, &sample, concurrency).await;
    client.close().await;
    let rate = rate?;
    println!(
        "herald-producer, Producer::publish: {} jobs in {:.2} s with {} in flight = {:.0} jobs/s",
        rate.jobs, rate.seconds, rate.concurrency, rate.per_second
    );
    let queued = broker.depth("herald.email").await;
    anyhow::ensure!(
        queued as usize == count,
        "herald.email holds {queued} jobs, expected {count}"
    );
    Ok(())
}
