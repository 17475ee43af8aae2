//! The producer across a RabbitMQ outage, on a private node this test may stop and start.

use std::process::Command;
use std::time::Duration;

use herald_domain::{EmailJob, JobKind};
use herald_producer::{ProduceError, Producer};
use herald_testkit::services::PrivateRabbit;
use lapin::options::BasicGetOptions;

/// lapin retries a lost connection at most 10 s apart; the producer closes the replaced one as
/// soon as it comes back. Generous, for two busy cores.
const RETIRED_WITHIN: Duration = Duration::from_secs(60);

/// Private nodes boot slowly on two cores; tests that start one run one at a time.
static PRIVATE_SERVICES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn welcome(id: &str) -> EmailJob {
    EmailJob::builder(JobKind::Welcome, "auth0|9", "ada@example.com")
        .id(id)
        .build()
        .expect("a valid job")
}

/// The names of the client connections the node has open.
async fn connection_names(rabbit: &PrivateRabbit) -> anyhow::Result<Vec<String>> {
    let node = rabbit.node.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("rabbitmqctl")
            .args([
                "-q",
                "-n",
                &node,
                "list_connections",
                "--no-table-headers",
                "client_properties",
            ])
            .output()
    })
    .await??;
    anyhow::ensure!(
        output.status.success(),
        "rabbitmqctl list_connections failed"
    );
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("herald-producer"))
        .map(str::to_owned)
        .collect())
}

/// The message ids in `herald.email` on the node, sorted (the queue is emptied).
async fn queued_ids(url: &str) -> anyhow::Result<Vec<String>> {
    let conn = herald_queue::connect(url, "outage-test").await?;
    let channel = conn.create_channel().await?;
    let mut ids = Vec::new();
    while let Some(message) = channel
        .basic_get("herald.email".into(), BasicGetOptions { no_ack: true })
        .await?
    {
        ids.extend(
            message
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string()),
        );
    }
    let _ = conn.close(200, "OK".into()).await;
    ids.sort();
    Ok(ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_reports_publishes_during_an_outage_and_publishes_again_after_it()
-> anyhow::Result<()> {
    let _serial = PRIVATE_SERVICES.lock().await;
    let mut rabbit = PrivateRabbit::start().await?;
    let producer = Producer::connect(&rabbit.url()).await?;
    producer.publish(&welcome("job_before")).await?;
    assert!(producer.is_open());

    rabbit.stop_node().await?;
    // lapin's recovery cannot reach the node: the publish waits for it, then times out.
    let err = producer.publish(&welcome("job_during")).await.unwrap_err();
    assert!(
        matches!(&err, ProduceError::Publish { message_id, .. } if message_id == "job_during"),
        "{err:?}"
    );
    assert!(
        !producer.is_open(),
        "the producer says it is open during an outage"
    );
    // The next publish tries to reconnect, is refused, and says the job was not sent.
    let err = producer.publish(&welcome("job_refused")).await.unwrap_err();
    assert!(
        matches!(&err, ProduceError::Unavailable { message_id, .. } if message_id == "job_refused"),
        "{err:?}"
    );
    assert!(!producer.is_open());

    rabbit.start_node().await?;
    producer.publish(&welcome("job_after")).await?;
    assert!(producer.is_open());
    producer.publish(&welcome("job_after_2")).await?;

    // lapin keeps recovering the connection given up on (retrying at most 10 s apart) and
    // brings it back soon after the node; the producer must close it then rather than leave
    // it open next to the new one. Wait until the producer has closed it (or lapin has given
    // it up for good, after which it cannot come back).
    let deadline = tokio::time::Instant::now() + RETIRED_WITHIN;
    while producer.retiring_connections() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the replaced connection was not closed within {RETIRED_WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names = connection_names(&rabbit).await?;
    assert_eq!(names.len(), 1, "producer connections left open: {names:?}");

    producer.close().await;
    // Neither failed publish was sent again behind its caller's back.
    assert_eq!(
        queued_ids(&rabbit.url()).await?,
        ["job_after", "job_after_2", "job_before"]
    );
    Ok(())
}
