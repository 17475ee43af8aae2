//! The producer library against a real RabbitMQ.

use std::time::Duration;

use herald_domain::{EmailJob, JobKind};
use herald_producer::{ProduceError, Producer, ProducerOptions};
use herald_queue::{PublishError, header_string, headers};
use herald_testkit::broker::TestBroker;
use lapin::types::AMQPValue;

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_published_job_waits_in_herald_email_before_any_worker_starts() -> anyhow::Result<()> {
    let broker = TestBroker::new().await?;
    let producer = Producer::connect(&broker.url).await?;
    let job = EmailJob::builder(JobKind::PasswordChange, "auth0|7", "grace@example.com")
        .id("job_producer_1")
        .build()?;

    producer.publish(&job).await?;
    producer.close().await;

    let (body, props) = broker
        .wait_get("herald.email", WAIT)
        .await
        .expect("the job is queued");
    assert_eq!(EmailJob::parse(&body, 64 * 1024)?, job);
    assert_eq!(
        props.message_id().as_ref().map(|s| s.as_str()),
        Some("job_producer_1")
    );
    assert_eq!(*props.delivery_mode(), Some(2));
    assert_eq!(
        props.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    let schema = props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(headers::SCHEMA).cloned());
    assert_eq!(schema, Some(AMQPValue::LongInt(1)));
    assert_eq!(header_string(&props, headers::ROUTING_KEY), None);
    Ok(())
}

#[tokio::test]
async fn a_raw_publish_with_an_unbound_routing_key_is_an_error() -> anyhow::Result<()> {
    let broker = TestBroker::new().await?;
    let producer = Producer::connect(&broker.url).await?;

    let err = producer
        .publish_raw("sms.x", "job_sms", b"{}")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ProduceError::Publish { message_id, source: PublishError::Returned { .. } } if message_id == "job_sms"),
        "{err:?}"
    );
    producer
        .publish_raw("email.welcome", "job_raw", b"not json")
        .await?;
    let (body, _) = broker
        .wait_get("herald.email", WAIT)
        .await
        .expect("the raw body is queued");
    assert_eq!(body, b"not json");
    Ok(())
}

#[tokio::test]
async fn connecting_where_nothing_listens_fails_fast_with_advice() {
    let started = std::time::Instant::now();
    let err = Producer::connect("amqp://guest:secret@127.0.0.1:1/%2f")
        .await
        .unwrap_err();
    let message = format!("{:#}", anyhow::Error::new(err));
    assert!(message.contains("127.0.0.1:1"), "{message}");
    assert!(message.contains("rabbitmq-server -detached"), "{message}");
    assert!(
        !message.contains("secret"),
        "the password leaked: {message}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_wrong_vhost_is_reported_without_hanging() {
    let started = std::time::Instant::now();
    let err = Producer::connect("amqp://guest:guest@127.0.0.1:5672/herald-no-such-vhost")
        .await
        .unwrap_err();
    let message = format!("{:#}", anyhow::Error::new(err));
    assert!(message.contains("herald-no-such-vhost"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(11),
        "{:?}",
        started.elapsed()
    );
}

fn welcome(id: &str) -> EmailJob {
    EmailJob::builder(JobKind::Welcome, "auth0|9", "ada@example.com")
        .id(id)
        .build()
        .expect("a valid job")
}

/// The message ids in `herald.email`, sorted (the queue is emptied).
async fn queued_ids(broker: &TestBroker) -> Vec<String> {
    let mut ids = Vec::new();
    while let Some((_, props)) = broker.get("herald.email").await {
        ids.extend(props.message_id().as_ref().map(|s| s.to_string()));
    }
    ids.sort();
    ids
}

#[tokio::test]
async fn after_the_jobs_exchange_is_deleted_one_publish_fails_and_the_next_declares_it_again()
-> anyhow::Result<()> {
    let broker = TestBroker::new().await?;
    let producer = Producer::connect(&broker.url).await?;
    producer.publish(&welcome("job_before")).await?;
    assert!(producer.is_open());

    // An operator deletes the exchange: the next publish makes the broker close its channel.
    let admin = broker.connection().await;
    admin
        .create_channel()
        .await?
        .exchange_delete(
            "herald.jobs".into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await?;
    let err = producer.publish(&welcome("job_lost")).await.unwrap_err();
    assert!(
        matches!(&err, ProduceError::Publish { message_id, source: PublishError::Amqp(_) } if message_id == "job_lost"),
        "{err:?}"
    );
    assert!(!producer.is_open());

    producer.publish(&welcome("job_after")).await?;
    assert!(producer.is_open());
    // The failed publish was reported, not sent again behind the caller's back.
    assert_eq!(queued_ids(&broker).await, ["job_after", "job_before"]);
    Ok(())
}

/// The channel count of each client connection open on `vhost`, from `rabbitmqctl`.
async fn channels_per_connection(vhost: &str) -> anyhow::Result<Vec<u32>> {
    let output = tokio::task::spawn_blocking(|| {
        std::process::Command::new("rabbitmqctl")
            .args([
                "-q",
                "list_connections",
                "--no-table-headers",
                "vhost",
                "channels",
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
        .filter_map(|line| line.split_once('\t'))
        .filter(|(v, _)| *v == vhost)
        .filter_map(|(_, channels)| channels.trim().parse().ok())
        .collect())
}

#[tokio::test]
async fn the_producer_opens_as_many_channels_as_its_options_say() -> anyhow::Result<()> {
    let broker = TestBroker::new().await?;
    let options = ProducerOptions {
        channels: 3,
        ..ProducerOptions::default()
    };
    assert_eq!(ProducerOptions::default().channels, 128);
    let producer = Producer::connect_with_options(&broker.url, options).await?;
    producer.publish(&welcome("job_1")).await?;
    assert_eq!(channels_per_connection(&broker.vhost).await?, [3]);

    // A rebuilt connection keeps the setting.
    broker
        .connection()
        .await
        .create_channel()
        .await?
        .exchange_delete(
            "herald.jobs".into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await?;
    producer.publish(&welcome("job_lost")).await.unwrap_err();
    producer.publish(&welcome("job_2")).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while producer.retiring_connections() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the old connection stays open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut counts = channels_per_connection(&broker.vhost).await?;
    // The broker's helper connection (testkit) has its channel too.
    counts.sort();
    assert!(counts.contains(&3), "{counts:?}");
    assert_eq!(counts.iter().filter(|c| **c == 3).count(), 1, "{counts:?}");
    Ok(())
}
