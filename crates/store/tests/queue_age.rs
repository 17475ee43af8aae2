//! The ledger's oldest-message ages against a real PostgreSQL: each retry tier is as old as its
//! oldest `retrying` job (grouped exactly as the topology routes retry copies), and the dead queue
//! as old as its oldest letter still parked: purged or replayed jobs stop counting.

use std::time::Duration;

use herald_domain::TicketSecret;
use herald_store::queue_age::LedgerQueueAges;
use herald_store::{BeginOutcome, JobRecord, Store};
use herald_testkit::db::TestDb;
use herald_testkit::env::TestEnv;

/// Two tiers, like the test topology (200 ms, 400 ms).
const TIERS: usize = 2;

/// Starts attempt number `attempt` of a welcome job (no ticket).
async fn attempt(store: &Store, id: &str, attempt: u32) {
    let payload = serde_json::json!({"id": id});
    let record = JobRecord {
        id,
        kind: "welcome_email",
        recipient: "a@example.com",
        user_id: "u1",
        organization_id: None,
        client_id: None,
        locale: "en",
        message_id: "<j@herald.test>",
        payload: &payload,
    };
    let outcome = store
        .begin_attempt(
            &record,
            None,
            &TicketSecret::random(),
            Duration::from_secs(60),
            attempt,
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome, BeginOutcome::Proceed { attempt: a, .. } if a == attempt),
        "{outcome:?}"
    );
}

/// Attempt `n` of `id` failed `secs` seconds ago and the job went to its retry tier.
async fn retrying_since(store: &Store, id: &str, n: u32, secs: f64) {
    attempt(store, id, n).await;
    store
        .mark_retrying(id, n, "451 busy", Duration::from_secs(5), None)
        .await
        .unwrap();
    backdate(store, id, secs).await;
}

/// Moves the job's `updated_at` `secs` seconds into the past.
async fn backdate(store: &Store, id: &str, secs: f64) {
    sqlx::query(
        "UPDATE email_jobs SET updated_at = now() - make_interval(secs => $2) WHERE id = $1",
    )
    .bind(id)
    .bind(secs)
    .execute(store.pool())
    .await
    .unwrap();
}

async fn ages(store: &Store) -> LedgerQueueAges {
    store.queue_ages(TIERS).await.unwrap()
}

/// `age` is `secs` seconds, give or take the few seconds the test itself takes.
#[track_caller]
fn about(age: Duration, secs: f64) {
    let got = age.as_secs_f64();
    assert!(
        got >= secs && got < secs + 10.0,
        "expected about {secs}s, got {got}s"
    );
}

#[tokio::test]
async fn each_retry_tier_is_as_old_as_its_oldest_retrying_job() {
    let db = TestDb::new().await.unwrap();
    let store = &db.store;
    assert_eq!(
        ages(store).await,
        LedgerQueueAges {
            retry_tiers: vec![Duration::ZERO; TIERS],
            dead: Duration::ZERO,
        },
        "an empty ledger"
    );

    // Attempt 1 failed: the job waits in the first tier, and only that tier has an age.
    retrying_since(store, "r1", 1, 30.0).await;
    let a = ages(store).await;
    about(a.retry_tiers[0], 30.0);
    assert_eq!(a.retry_tiers[1], Duration::ZERO);
    assert_eq!(a.dead, Duration::ZERO);

    // Attempts 2 and 4 both wait in the last tier (it repeats); the tier is as old as the older.
    retrying_since(store, "r2", 2, 90.0).await;
    retrying_since(store, "r4", 4, 200.0).await;
    let a = ages(store).await;
    about(a.retry_tiers[0], 30.0);
    about(a.retry_tiers[1], 200.0);

    // The grouping is the one the publisher routes retry copies by.
    let topology = TestEnv::topology();
    let queues = topology.retry_queues();
    for (n, tier) in [(1, 0), (2, 1), (4, 1)] {
        let (queue, _) = topology.retry_delay_for_attempt(n);
        assert_eq!(queues[tier], queue, "attempt {n}");
    }

    // A worker takes r4 again: the tier is now as old as r2. r1 is sent: its tier empties.
    attempt(store, "r4", 5).await;
    attempt(store, "r1", 2).await;
    store.mark_sent("r1", 2, "250 OK").await.unwrap();
    let a = ages(store).await;
    assert_eq!(a.retry_tiers[0], Duration::ZERO);
    about(a.retry_tiers[1], 90.0);
}

#[tokio::test]
async fn the_dead_queue_counts_only_letters_still_parked() {
    let db = TestDb::new().await.unwrap();
    let store = &db.store;
    store
        .mark_dead("d1", "welcome_email", 1, "smtp_permanent", "550 no", None)
        .await
        .unwrap();
    backdate(store, "d1", 300.0).await;
    store
        .mark_dead("d2", "welcome_email", 1, "invalid_job", "bad", None)
        .await
        .unwrap();
    backdate(store, "d2", 60.0).await;
    let a = ages(store).await;
    about(a.dead, 300.0);
    assert_eq!(a.retry_tiers, [Duration::ZERO; TIERS]);

    // `herald dlq purge` deleted d1's letter: the job stays dead, with the purge in its history.
    assert!(store.mark_purged("d1", "deleted by a test").await.unwrap());
    about(ages(store).await.dead, 60.0);
    let job = store.job("d1").await.unwrap().unwrap();
    assert_eq!(job.status, "dead");
    let last = store.job_events("d1").await.unwrap().pop().unwrap();
    assert_eq!(
        (last.event.as_str(), last.detail.as_deref()),
        ("purged", Some("deleted by a test"))
    );

    // d2 is replayed: it is no longer dead, and nothing is parked any more.
    assert!(store.reopen_for_replay("d2").await.unwrap());
    assert_eq!(ages(store).await.dead, Duration::ZERO);

    // d1 is dead-lettered again after its purge: that new letter is parked.
    store
        .mark_dead("d1", "welcome_email", 2, "smtp_permanent", "550 no", None)
        .await
        .unwrap();
    let dead = ages(store).await.dead;
    assert!(
        dead > Duration::ZERO && dead < Duration::from_secs(10),
        "{dead:?}"
    );

    // Only dead jobs can be purged.
    assert!(!store.mark_purged("d2", "x").await.unwrap(), "d2 is queued");
    assert!(!store.mark_purged("nobody", "x").await.unwrap());
    let events: Vec<String> = store
        .job_events("d2")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, ["dead", "replayed"]);
}
