//! The worker driven one delivery at a time (`Stepper::process_next`): each test publishes, steps
//! and asserts on the outcome of that very delivery, with no polling of the ledger or the sink.

use std::time::Duration;

use herald_domain::{EmailJob, JobKind};
use herald_mailsink::FaultPlan;
use herald_testkit::env::TestEnv;
use herald_worker::Outcome;

/// How long a step waits for a delivery that is already queued (or due from a 200 ms tier).
const STEP: Duration = Duration::from_secs(5);
/// How long a step waits to show that nothing else is queued.
const NOTHING: Duration = Duration::from_millis(300);

fn job(email: &str) -> EmailJob {
    EmailJob::builder(JobKind::Verification, "auth0|step", email)
        .build()
        .unwrap()
}

#[tokio::test]
async fn one_step_sends_a_queued_job_and_records_it() {
    let env = TestEnv::new().await.unwrap();
    let mut worker = env.stepper(env.settings()).await;
    let job = job("ana@example.com");
    env.producer().await.publish(&job).await.unwrap();

    let outcome = worker.process_next(STEP).await.unwrap();
    assert!(
        matches!(outcome, Some(Outcome::Sent { attempt: 1 })),
        "{outcome:?}"
    );
    // The step returns once the job is acked: the ledger and the sink already show it.
    let ledger = env.db.store.job(job.id.as_str()).await.unwrap().unwrap();
    assert_eq!((ledger.status.as_str(), ledger.attempts), ("sent", 1));
    assert_eq!(env.sink.count(), 1);
    assert_eq!(worker.process_next(NOTHING).await.unwrap(), None);
    assert_eq!(env.broker.depth("herald.email").await, 0);
    worker.close().await;
}

#[tokio::test]
async fn a_second_delivery_of_a_sent_job_is_a_duplicate_and_sends_nothing() {
    let env = TestEnv::new().await.unwrap();
    let mut worker = env.stepper(env.settings()).await;
    let job = job("bo@example.com");
    let producer = env.producer().await;
    producer.publish(&job).await.unwrap();
    producer.publish(&job).await.unwrap();

    let first = worker.process_next(STEP).await.unwrap();
    assert!(matches!(first, Some(Outcome::Sent { .. })), "{first:?}");
    let second = worker.process_next(STEP).await.unwrap();
    assert_eq!(second, Some(Outcome::Duplicate));
    assert_eq!(env.sink.count(), 1);
    worker.close().await;
}

#[tokio::test]
async fn a_refused_send_is_retried_and_the_retry_is_sent_on_a_later_step() {
    let env = TestEnv::new().await.unwrap();
    env.sink
        .set_faults(FaultPlan::reject_next(1, 451, "4.3.0 Try again later"));
    let mut worker = env.stepper(env.settings()).await;
    let job = job("cy@example.com");
    env.producer().await.publish(&job).await.unwrap();

    let first = worker.process_next(STEP).await.unwrap();
    assert!(
        matches!(&first, Some(Outcome::Retry { attempt: 1, error }) if error.contains("451")),
        "{first:?}"
    );
    assert_eq!(env.sink.count(), 0);
    // The copy waits 200 ms in the first retry tier, then comes back to the work queue.
    let second = worker.process_next(STEP).await.unwrap();
    assert!(
        matches!(second, Some(Outcome::Sent { attempt: 2 })),
        "{second:?}"
    );
    assert_eq!(env.sink.count(), 1);
    worker.close().await;
}

#[tokio::test]
async fn an_unparseable_job_is_dead_lettered_in_one_step() {
    let env = TestEnv::new().await.unwrap();
    let mut worker = env.stepper(env.settings()).await;
    env.producer()
        .await
        .publish_raw(JobKind::Welcome.routing_key(), "not-json", b"{ nope")
        .await
        .unwrap();

    let outcome = worker.process_next(STEP).await.unwrap();
    assert!(
        matches!(
            &outcome,
            Some(Outcome::DeadLetter {
                reason: "malformed_json",
                ..
            })
        ),
        "{outcome:?}"
    );
    assert_eq!(env.broker.depth("herald.email.dead").await, 1);
    assert_eq!(env.sink.count(), 0);
    worker.close().await;
}
