//! The topology against a real RabbitMQ: idempotent declarations and the DLX safety net.

use std::time::Duration;

use herald_queue::{Topology, queue_stats};
use herald_testkit::broker::TestBroker;
use lapin::BasicProperties;
use lapin::options::{BasicGetOptions, BasicNackOptions, BasicPublishOptions};
use lapin::types::FieldTable;

fn quick_tiers() -> Topology {
    Topology::default()
        .with_retry_delays(vec![Duration::from_millis(200), Duration::from_millis(400)])
}

#[tokio::test]
async fn topology_declares_twice_idempotently() -> anyhow::Result<()> {
    let broker = TestBroker::new().await?;
    let conn = broker.connection().await;
    let topology = quick_tiers();

    // A producer declares the core first, then the worker declares everything, twice.
    topology.declare_core(&conn.create_channel().await?).await?;
    let channel = conn.create_channel().await?;
    topology.declare(&channel).await?;
    topology.declare(&channel).await?;
    topology.declare_core(&channel).await?;

    let mut queues = vec![topology.work_queue.clone(), topology.dead_queue.clone()];
    queues.extend(topology.retry_queues());
    assert_eq!(queues.len(), 4);
    for queue in queues {
        let stats = queue_stats(&conn, &queue).await?;
        assert_eq!((stats.messages, stats.consumers), (0, 0), "{queue}");
    }
    Ok(())
}

#[tokio::test]
async fn a_conflicting_declaration_is_refused_with_advice() -> anyhow::Result<()> {
    let broker = TestBroker::new().await?;
    let conn = broker.connection().await;
    let channel = conn.create_channel().await?;
    // A classic queue squatting on the work queue's name.
    channel
        .queue_declare(
            "herald.email".into(),
            lapin::options::QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await?;

    let err = Topology::default()
        .declare(&conn.create_channel().await?)
        .await
        .unwrap_err();
    let message = format!("{:#}", anyhow::Error::new(err));
    assert!(message.contains("declare queue herald.email"), "{message}");
    assert!(message.contains("PRECONDITION_FAILED"), "{message}");
    Ok(())
}

#[tokio::test]
async fn queue_stats_of_a_missing_queue_is_an_error() -> anyhow::Result<()> {
    let broker = TestBroker::new().await?;
    let conn = broker.connection().await;
    let err = queue_stats(&conn, "no.such.queue").await.unwrap_err();
    assert!(err.to_string().contains("no.such.queue"), "{err}");
    // The connection survives the closed throwaway channel.
    Topology::default()
        .declare_core(&conn.create_channel().await?)
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_rejected_delivery_falls_into_the_dead_queue() -> anyhow::Result<()> {
    let broker = TestBroker::new().await?;
    let conn = broker.connection().await;
    let channel = conn.create_channel().await?;
    let topology = quick_tiers();
    topology.declare(&channel).await?;
    channel
        .basic_publish(
            "herald.jobs".into(),
            "email.welcome".into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default().with_message_id("job_nack".into()),
        )
        .await?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let delivery = loop {
        if let Some(message) = channel
            .basic_get("herald.email".into(), BasicGetOptions { no_ack: false })
            .await?
        {
            break message.delivery;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never reached herald.email"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    delivery
        .nack(BasicNackOptions {
            requeue: false,
            multiple: false,
        })
        .await?;

    let (_, props) = broker
        .wait_get("herald.email.dead", Duration::from_secs(5))
        .await
        .expect("a nacked delivery reaches herald.email.dead through the DLX");
    assert_eq!(
        props.message_id().as_ref().map(|s| s.as_str()),
        Some("job_nack")
    );
    Ok(())
}
