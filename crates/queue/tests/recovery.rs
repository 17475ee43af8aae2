//! Publishing across a broker-side connection close, with lapin's auto-recovery.

use std::process::Command;
use std::time::Duration;

use herald_queue::{Publisher, Topology};
use herald_testkit::broker::TestBroker;

#[tokio::test]
async fn the_publisher_recovers_after_the_broker_closes_its_connection() -> anyhow::Result<()> {
    let broker = TestBroker::new().await?;
    let conn = broker.connection().await;
    Topology::default()
        .declare(&conn.create_channel().await?)
        .await?;
    let publisher = Publisher::new(&conn, Topology::default()).await?;
    publisher
        .publish_job("email.welcome", "job_before", b"{}")
        .await?;

    let vhost = broker.vhost.clone();
    let status = tokio::task::spawn_blocking(move || {
        Command::new("rabbitmqctl")
            .args([
                "-q",
                "close_all_connections",
                "-p",
                &vhost,
                "test: forced close",
            ])
            .status()
    })
    .await??;
    assert!(status.success());

    // One call rides out the recovery: the failed attempt waits for lapin to reconnect and
    // publishes again within the confirm timeout.
    let started = std::time::Instant::now();
    publisher
        .publish_job("email.welcome", "job_after", b"{}")
        .await?;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(broker.depth("herald.email").await >= 2);
    Ok(())
}
