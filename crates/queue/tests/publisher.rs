//! Confirmed publishing against a real RabbitMQ: jobs, unroutable messages, retries, dead letters.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt};
use herald_domain::{EmailJob, JobKind};
use herald_queue::{
    DEFAULT_CHANNELS, PublishError, Publisher, Topology, failed_attempts, header_string, headers,
};
use herald_testkit::broker::TestBroker;
use lapin::BasicProperties;
use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};

const WAIT: Duration = Duration::from_secs(5);

async fn setup(topology: Topology) -> anyhow::Result<(TestBroker, lapin::Connection, Publisher)> {
    setup_with_channels(topology, DEFAULT_CHANNELS).await
}

/// A fresh vhost with `topology` declared and a publisher of `channels` channels.
async fn setup_with_channels(
    topology: Topology,
    channels: usize,
) -> anyhow::Result<(TestBroker, lapin::Connection, Publisher)> {
    let broker = TestBroker::new().await?;
    let conn = broker.connection().await;
    topology.declare(&conn.create_channel().await?).await?;
    let publisher = Publisher::with_channels(&conn, topology, channels).await?;
    Ok((broker, conn, publisher))
}

fn quick_tiers() -> Topology {
    Topology::default()
        .with_retry_delays(vec![Duration::from_millis(200), Duration::from_millis(400)])
}

fn header<'a>(props: &'a BasicProperties, name: &str) -> Option<&'a AMQPValue> {
    props.headers().as_ref()?.inner().get(name)
}

#[tokio::test]
async fn a_published_job_lands_in_the_work_queue_with_its_properties() -> anyhow::Result<()> {
    let (broker, _conn, publisher) = setup(Topology::default()).await?;
    let job = EmailJob::builder(JobKind::Verification, "auth0|42", "ada@example.com").build()?;

    publisher
        .publish_job(job.kind().routing_key(), job.id.as_str(), &job.to_json())
        .await?;

    let (body, props) = broker
        .wait_get("herald.email", WAIT)
        .await
        .expect("the job is queued");
    assert_eq!(body, job.to_json());
    assert_eq!(
        props.message_id().as_ref().map(|s| s.as_str()),
        Some(job.id.as_str())
    );
    assert_eq!(*props.delivery_mode(), Some(2), "persistent");
    assert_eq!(
        props.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(props.app_id().as_ref().map(|s| s.as_str()), Some("herald"));
    assert!(props.timestamp().is_some());
    assert_eq!(broker.depth("herald.email").await, 0);
    Ok(())
}

#[tokio::test]
async fn an_unroutable_publish_is_returned_as_an_error() -> anyhow::Result<()> {
    let (broker, _conn, publisher) = setup(Topology::default()).await?;

    let err = publisher
        .publish_job("sms.x", "job_sms", b"{}")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            PublishError::Returned {
                reply_code: 312,
                ..
            }
        ),
        "expected NO_ROUTE, got {err:?}"
    );
    // The channel stays usable after a return.
    publisher
        .publish_job("email.welcome", "job_ok", b"{}")
        .await?;
    assert_eq!(broker.depth("herald.email").await, 1);
    Ok(())
}

#[tokio::test]
async fn a_publish_to_a_missing_retry_tier_is_returned() -> anyhow::Result<()> {
    // The worker was configured with tiers nobody declared: the copy must not vanish.
    let broker = TestBroker::new().await?;
    let conn = broker.connection().await;
    quick_tiers().declare(&conn.create_channel().await?).await?;
    let other_tiers = Topology::default().with_retry_delays(vec![Duration::from_secs(7)]);
    let publisher = Publisher::new(&conn, other_tiers).await?;

    let err = publisher
        .publish_retry(
            b"{}",
            &BasicProperties::default(),
            "email.welcome",
            1,
            "421 try later",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Returned { .. }), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn a_retry_copy_reappears_in_the_work_queue_after_its_tier_delay() -> anyhow::Result<()> {
    let topology = quick_tiers();
    let (broker, _conn, publisher) = setup(topology.clone()).await?;
    let mut original_headers = FieldTable::default();
    original_headers.insert(headers::SCHEMA.into(), AMQPValue::LongInt(1));
    original_headers.insert("x-delivery-count".into(), AMQPValue::LongInt(3));
    let original = herald_queue::job_properties("job_retry")?.with_headers(original_headers);
    let long_error = "x".repeat(2_000);

    let delay = publisher
        .publish_retry(
            b"{\"id\":\"job_retry\"}",
            &original,
            "email.password_change",
            1,
            &long_error,
        )
        .await?;
    assert_eq!(delay, Duration::from_millis(200));
    let tier = topology.retry_queue(0);
    assert_eq!(tier, "herald.email.retry.200ms");
    // Confirmed means stored in the tier; it is not in the work queue before the TTL expires.
    assert_eq!(broker.depth(&tier).await, 1);
    assert_eq!(broker.depth("herald.email").await, 0);

    let (body, props) = broker
        .wait_get("herald.email", WAIT)
        .await
        .expect("the copy comes back");
    assert_eq!(body, b"{\"id\":\"job_retry\"}");
    assert_eq!(
        props.message_id().as_ref().map(|s| s.as_str()),
        Some("job_retry")
    );
    assert_eq!(*props.delivery_mode(), Some(2));
    assert_eq!(
        props.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(failed_attempts(&props), 1);
    assert_eq!(
        header(&props, headers::ATTEMPT),
        Some(&AMQPValue::LongInt(1))
    );
    assert_eq!(
        header_string(&props, headers::ROUTING_KEY).as_deref(),
        Some("email.password_change")
    );
    assert_eq!(
        header(&props, headers::SCHEMA),
        Some(&AMQPValue::LongInt(1))
    );
    // Our stale counter (3) was dropped; the broker may add its own, starting at 0.
    assert!(matches!(
        header(&props, "x-delivery-count"),
        None | Some(AMQPValue::LongLongInt(0) | AMQPValue::LongInt(0))
    ));
    let last_error = header_string(&props, headers::LAST_ERROR).unwrap();
    assert_eq!(last_error.chars().count(), headers::MAX_ERROR_CHARS);

    for queue in topology.retry_queues().iter().chain([&topology.dead_queue]) {
        assert_eq!(broker.depth(queue).await, 0, "{queue} should be empty");
    }
    assert_eq!(
        broker.depth("herald.email").await,
        0,
        "exactly one copy came back"
    );
    Ok(())
}

#[tokio::test]
async fn later_attempts_use_later_tiers_clamped_to_the_last() -> anyhow::Result<()> {
    let topology = quick_tiers();
    let (broker, _conn, publisher) = setup(topology.clone()).await?;
    let props = herald_queue::job_properties("job_tiers")?;

    let second = publisher
        .publish_retry(b"2", &props, "email.welcome", 2, "e")
        .await?;
    let ninth = publisher
        .publish_retry(b"9", &props, "email.welcome", 9, "e")
        .await?;
    assert_eq!(
        (second, ninth),
        (Duration::from_millis(400), Duration::from_millis(400))
    );
    assert_eq!(broker.depth("herald.email.retry.400ms").await, 2);
    assert_eq!(broker.depth("herald.email.retry.200ms").await, 0);

    let mut attempts = Vec::new();
    for _ in 0..2 {
        let (_, props) = broker
            .wait_get("herald.email", WAIT)
            .await
            .expect("both come back");
        attempts.push(failed_attempts(&props));
    }
    attempts.sort_unstable();
    assert_eq!(attempts, [2, 9]);
    Ok(())
}

#[tokio::test]
async fn publish_dead_lands_in_the_dead_queue_with_reason_headers() -> anyhow::Result<()> {
    let (broker, _conn, publisher) = setup(Topology::default()).await?;
    let props = herald_queue::job_properties("job_dead")?;
    let before = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();

    publisher
        .publish_dead(
            b"not json",
            &props,
            "email.enrollment",
            "malformed_json",
            "the job body is not valid JSON",
            1,
        )
        .await?;

    let (body, props) = broker
        .wait_get("herald.email.dead", WAIT)
        .await
        .expect("dead-lettered");
    assert_eq!(body, b"not json");
    assert_eq!(
        props.message_id().as_ref().map(|s| s.as_str()),
        Some("job_dead")
    );
    assert_eq!(
        header_string(&props, headers::REASON).as_deref(),
        Some("malformed_json")
    );
    assert_eq!(
        header_string(&props, headers::ERROR).as_deref(),
        Some("the job body is not valid JSON")
    );
    assert_eq!(
        header(&props, headers::ATTEMPTS),
        Some(&AMQPValue::LongInt(1))
    );
    assert_eq!(
        header_string(&props, headers::ROUTING_KEY).as_deref(),
        Some("email.enrollment")
    );
    let Some(AMQPValue::LongLongInt(dead_at)) = header(&props, headers::DEAD_AT) else {
        panic!("x-herald-dead-at should be a long long");
    };
    assert!((*dead_at as u64) >= before && (*dead_at as u64) <= before + 60);
    assert_eq!(broker.depth("herald.email").await, 0);
    Ok(())
}

/// Routing keys on the jobs exchange: bound to the work queue, bound to nothing (returned),
/// and bound to a queue that refuses every message (nacked; see [`with_a_full_queue`]).
const ROUTED: &str = "email.welcome";
const UNROUTABLE: &str = "sms.unbound";
const REFUSED: &str = "full.welcome";

/// Binds a classic queue with `x-max-length` 0 and `reject-publish` overflow to the jobs
/// exchange for [`REFUSED`], so the broker nacks every message routed there.
async fn with_a_full_queue(conn: &lapin::Connection) -> anyhow::Result<()> {
    let channel = conn.create_channel().await?;
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(0));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    channel
        .queue_declare("full".into(), QueueDeclareOptions::default(), args)
        .await?;
    channel
        .queue_bind(
            "full".into(),
            "herald.jobs".into(),
            "full.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Publishes `n` messages, at most `in_flight` at once, with the routing key `key_of(i)`, and
/// returns each publish's outcome by index.
async fn publish_concurrently(
    publisher: &Publisher,
    n: usize,
    in_flight: usize,
    key_of: impl Fn(usize) -> &'static str,
) -> Vec<Result<(), PublishError>> {
    let mut outcomes: Vec<(usize, Result<(), PublishError>)> = stream::iter(0..n)
        .map(|i| {
            let key = key_of(i);
            async move {
                let id = format!("job_{i}");
                (i, publisher.publish_job(key, &id, id.as_bytes()).await)
            }
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    outcomes.sort_by_key(|(i, _)| *i);
    outcomes.into_iter().map(|(_, outcome)| outcome).collect()
}

#[tokio::test]
async fn an_unroutable_publish_among_many_concurrent_ones_fails_for_exactly_its_caller()
-> anyhow::Result<()> {
    let (broker, _conn, publisher) = setup(Topology::default()).await?;
    // Dense returns: a mismatch shows within a few hundred publishes when confirms share a
    // channel.
    let unroutable = |i: usize| i % 3 == 1;
    let key_of = |i| if unroutable(i) { UNROUTABLE } else { ROUTED };

    let outcomes = publish_concurrently(&publisher, 2_000, 256, key_of).await;

    for (i, outcome) in outcomes.iter().enumerate() {
        match (unroutable(i), outcome) {
            (
                true,
                Err(PublishError::Returned {
                    reply_code: 312, ..
                }),
            )
            | (false, Ok(())) => {}
            (unroutable, other) => panic!("publish {i} (unroutable: {unroutable}) gave {other:?}"),
        }
    }
    let routed = (0..2_000).filter(|i| !unroutable(*i)).count();
    assert_eq!(broker.depth("herald.email").await as usize, routed);
    Ok(())
}

#[tokio::test]
async fn a_nacked_publish_among_many_concurrent_ones_fails_for_exactly_its_caller()
-> anyhow::Result<()> {
    let (broker, conn, publisher) = setup(Topology::default()).await?;
    with_a_full_queue(&conn).await?;
    let kind = |i: usize| match i % 5 {
        1 => REFUSED,
        3 => UNROUTABLE,
        _ => ROUTED,
    };

    let outcomes = publish_concurrently(&publisher, 2_000, 256, kind).await;

    for (i, outcome) in outcomes.iter().enumerate() {
        match (kind(i), outcome) {
            (REFUSED, Err(PublishError::Nacked))
            | (UNROUTABLE, Err(PublishError::Returned { .. }))
            | (ROUTED, Ok(())) => {}
            (key, other) => panic!("publish {i} (key {key}) gave {other:?}"),
        }
    }
    let routed = (0..2_000).filter(|i| kind(*i) == ROUTED).count();
    assert_eq!(broker.depth("herald.email").await as usize, routed);
    assert_eq!(broker.depth("full").await, 0);
    Ok(())
}

#[tokio::test]
async fn more_callers_than_channels_wait_their_turn_and_each_gets_its_own_outcome()
-> anyhow::Result<()> {
    let (broker, _conn, publisher) = setup_with_channels(Topology::default(), 3).await?;
    let key_of = |i: usize| {
        if i.is_multiple_of(10) {
            UNROUTABLE
        } else {
            ROUTED
        }
    };

    let outcomes = publish_concurrently(&publisher, 200, 64, key_of).await;

    for (i, outcome) in outcomes.iter().enumerate() {
        match (i.is_multiple_of(10), outcome) {
            (true, Err(PublishError::Returned { .. })) | (false, Ok(())) => {}
            (unroutable, other) => panic!("publish {i} (unroutable: {unroutable}) gave {other:?}"),
        }
    }
    assert_eq!(broker.depth("herald.email").await, 180);
    assert!(publisher.is_open());
    Ok(())
}

#[tokio::test]
async fn an_abandoned_publish_gives_its_channel_back_once_its_confirm_arrives() -> anyhow::Result<()>
{
    // One channel: if the abandoned publish lost it, nothing could be published after it.
    let (broker, _conn, publisher) = setup_with_channels(Topology::default(), 1).await?;
    let publisher = publisher.with_confirm_timeout(WAIT);
    {
        let abandoned = publisher.publish_job(ROUTED, "job_abandoned", b"{}");
        tokio::pin!(abandoned);
        // One poll sends the message; dropping the future then abandons its confirm.
        assert!(futures::poll!(abandoned.as_mut()).is_pending());
    }

    let err = publisher
        .publish_job(UNROUTABLE, "job_unroutable", b"{}")
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Returned { .. }), "{err:?}");
    publisher.publish_job(ROUTED, "job_after", b"{}").await?;
    let mut ids = Vec::new();
    while let Some((_, props)) = broker.get("herald.email").await {
        ids.extend(props.message_id().as_ref().map(|s| s.to_string()));
    }
    ids.sort();
    assert_eq!(ids, ["job_abandoned", "job_after"]);
    Ok(())
}

#[tokio::test]
async fn a_publisher_whose_connection_closed_is_not_open_and_fails_at_once() -> anyhow::Result<()> {
    let (_broker, conn, publisher) = setup(Topology::default()).await?;
    assert!(publisher.is_open());

    conn.close(200, "test: closing".into()).await?;

    assert!(!publisher.is_open());
    let err = publisher
        .publish_job(ROUTED, "job_late", b"{}")
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Amqp(_)), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn a_publish_to_a_missing_exchange_fails_at_once_and_closes_the_publisher()
-> anyhow::Result<()> {
    let broker = TestBroker::new().await?;
    let conn = broker.connection().await;
    // Nothing declared: herald.dead does not exist, so the broker closes the channel (404).
    let publisher = Publisher::new(&conn, Topology::default())
        .await?
        .with_confirm_timeout(Duration::from_secs(3));
    let started = std::time::Instant::now();

    let err = publisher
        .publish_dead(
            b"{}",
            &BasicProperties::default(),
            "email.welcome",
            "r",
            "e",
            1,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Amqp(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(!publisher.is_open());
    // The publisher stays closed, although its other channels are still open.
    let err = publisher
        .publish_job("email.welcome", "job_after", b"{}")
        .await
        .unwrap_err();
    assert!(matches!(err, PublishError::Amqp(_)), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn a_job_retried_through_the_same_tier_again_still_comes_back() -> anyhow::Result<()> {
    // Each pass adds the tier to x-death; RabbitMQ must not take the loop for a DLX cycle.
    let topology = Topology::default().with_retry_delays(vec![Duration::from_millis(200)]);
    let (broker, _conn, publisher) = setup(topology).await?;
    let mut props = herald_queue::job_properties("job_loop")?;
    for attempt in 1..=3 {
        publisher
            .publish_retry(b"{}", &props, "email.welcome", attempt, "421")
            .await?;
        let (_, back) = broker
            .wait_get("herald.email", WAIT)
            .await
            .unwrap_or_else(|| panic!("pass {attempt} never came back"));
        assert_eq!(failed_attempts(&back), attempt);
        props = back;
    }
    assert_eq!(broker.depth("herald.email.dead").await, 0);
    Ok(())
}
