//! Measures how many realistic jobs per second the producer gets confirmed by the local
//! RabbitMQ, publishing from many tasks at once into a fresh vhost with Herald's real topology.
//!
//! `cargo run --release -p herald-producer --example publish_rate [JOBS] [CONCURRENCY]`
//! (defaults 20000 and 256). The vhost is deleted afterwards.

use herald_testkit::broker::TestBroker;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let jobs: usize = args.next().map_or(Ok(20_000), |a| a.parse())?;
    let concurrency: usize = args.next().map_or(Ok(256), |a| a.parse())?;
    let broker = TestBroker::new().await?;
    let rate = herald_producer::bench::publish_rate(&broker.url, jobs, concurrency).await?;
    let queued = broker.depth("herald.email").await;
    println!("herald-producer, Producer::publish: {rate}");
    anyhow::ensure!(
        queued as usize == jobs,
        "herald.email holds {queued} jobs, expected {jobs}"
    );
    Ok(())
}
