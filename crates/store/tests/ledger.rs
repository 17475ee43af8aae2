//! The job ledger and tickets against a real PostgreSQL: the idempotency gate, leases, and tokens
//! that are rebuilt, never stored.

use std::time::Duration;

use herald_domain::{TicketPurpose, TicketSecret};
use herald_store::{BeginOutcome, BeginRequest, IssuedTicket, JobRecord, Store, TicketSpec};
use herald_testkit::db::TestDb;

fn record<'a>(id: &'a str, payload: &'a serde_json::Value) -> JobRecord<'a> {
    JobRecord {
        id,
        kind: "verification_email",
        recipient: "a@example.com",
        user_id: "u1",
        organization_id: None,
        client_id: None,
        locale: "en",
        message_id: "<j@herald.test>",
        payload,
    }
}

fn spec() -> TicketSpec<'static> {
    TicketSpec {
        purpose: TicketPurpose::EmailVerification,
        user_id: "u1",
        email: "a@example.com",
        client_id: None,
        organization_id: None,
        result_url: Some("https://app.test/done"),
        include_email_in_redirect: true,
        mark_email_as_verified: false,
        factor: None,
        allow_multiple_enrollments: false,
        custom_domain: None,
        ttl: Duration::from_secs(3600),
    }
}

async fn begin(store: &Store, id: &str, secret: &TicketSecret, lease: Duration) -> BeginOutcome {
    let payload = serde_json::json!({"id": id});
    store
        .begin_attempt(&record(id, &payload), Some(&spec()), secret, lease, 1)
        .await
        .unwrap()
}

fn proceed(outcome: BeginOutcome) -> (u32, IssuedTicket) {
    match outcome {
        BeginOutcome::Proceed { attempt, ticket } => (attempt, ticket.expect("a ticket")),
        other => panic!("expected Proceed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_retried_job_keeps_its_one_ticket_and_its_link() {
    let db = TestDb::new().await.unwrap();
    let secret = TicketSecret::random();
    let (attempt, first) = proceed(begin(&db.store, "j1", &secret, Duration::from_secs(60)).await);
    assert_eq!(attempt, 1);
    db.store
        .mark_retrying(
            "j1",
            1,
            "451 busy",
            Duration::from_secs(5),
            Some(&serde_json::json!({"id": "j1"})),
        )
        .await
        .unwrap();
    let (attempt, second) = proceed(begin(&db.store, "j1", &secret, Duration::from_secs(60)).await);
    assert_eq!(attempt, 2);
    assert_eq!(second.token, first.token, "the same link is rebuilt");
    assert_eq!(second.id, first.id);
    assert!(
        first.created && !second.created,
        "only the first attempt creates it"
    );
    assert_eq!(
        second.expires_at, first.expires_at,
        "the expiry does not move"
    );

    let stored = db.store.ticket_for_job("j1").await.unwrap().unwrap();
    assert_eq!(stored.token_hash, first.token.hash().as_bytes());
    assert_ne!(stored.token_hash, first.token.expose().as_bytes());
    assert_eq!(stored.result_url.as_deref(), Some("https://app.test/done"));
    assert!(stored.include_email_in_redirect);
    let found = db
        .store
        .ticket_by_hash(&first.token.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.job_id.as_deref(), Some("j1"));
}

#[tokio::test]
async fn a_sent_job_is_never_attempted_again() {
    let db = TestDb::new().await.unwrap();
    let secret = TicketSecret::random();
    proceed(begin(&db.store, "j2", &secret, Duration::from_secs(60)).await);
    db.store.mark_sent("j2", 1, "250 OK").await.unwrap();
    assert!(matches!(
        begin(&db.store, "j2", &secret, Duration::from_secs(60)).await,
        BeginOutcome::AlreadySent
    ));
    // A later dead letter for the same id (e.g. a malformed re-publish) cannot undo the send.
    db.store
        .mark_dead("j2", "invalid", 1, "invalid_job", "bad", None)
        .await
        .unwrap();
    let job = db.store.job("j2").await.unwrap().unwrap();
    assert_eq!(job.status, "sent");
    assert!(job.sent_at.is_some());
    let events: Vec<String> = db
        .store
        .job_events("j2")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, ["received", "sent", "duplicate"]);
}

#[tokio::test]
async fn a_second_delivery_waits_while_the_first_holds_the_lease() {
    let db = TestDb::new().await.unwrap();
    let secret = TicketSecret::random();
    proceed(begin(&db.store, "j3", &secret, Duration::from_secs(60)).await);
    assert!(matches!(
        begin(&db.store, "j3", &secret, Duration::from_secs(60)).await,
        BeginOutcome::Busy { attempts: 1, .. }
    ));
    // A crashed holder's lease runs out, and the job can be attempted again.
    let db2 = TestDb::new().await.unwrap();
    proceed(begin(&db2.store, "j4", &secret, Duration::from_millis(200)).await);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (attempt, _) = proceed(begin(&db2.store, "j4", &secret, Duration::from_secs(60)).await);
    assert_eq!(attempt, 2);
}

#[tokio::test]
async fn concurrent_deliveries_of_one_job_let_exactly_one_proceed() {
    let db = TestDb::new().await.unwrap();
    let secret = TicketSecret::random();
    let mut handles = Vec::new();
    for _ in 0..8 {
        let store = db.store.clone();
        let secret = secret.clone();
        handles.push(tokio::spawn(async move {
            begin(&store, "j5", &secret, Duration::from_secs(60)).await
        }));
    }
    let mut proceeded = 0;
    for h in handles {
        if matches!(h.await.unwrap(), BeginOutcome::Proceed { .. }) {
            proceeded += 1;
        }
    }
    assert_eq!(proceeded, 1);
    let tickets: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE job_id = 'j5'")
        .fetch_one(db.store.pool())
        .await
        .unwrap();
    assert_eq!(tickets, 1);
}

#[tokio::test]
async fn a_changed_secret_rotates_the_stored_hash() {
    let db = TestDb::new().await.unwrap();
    let (_, before) = proceed(
        begin(
            &db.store,
            "j6",
            &TicketSecret::random(),
            Duration::from_millis(1),
        )
        .await,
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (_, after) = proceed(
        begin(
            &db.store,
            "j6",
            &TicketSecret::random(),
            Duration::from_secs(60),
        )
        .await,
    );
    assert_ne!(after.token, before.token);
    let stored = db.store.ticket_for_job("j6").await.unwrap().unwrap();
    assert_eq!(stored.token_hash, after.token.hash().as_bytes());
    assert!(
        db.store
            .ticket_by_hash(&before.token.hash())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn attempts_claimed_by_the_message_are_honoured() {
    let db = TestDb::new().await.unwrap();
    let payload = serde_json::json!({});
    let outcome = db
        .store
        .begin_attempt(
            &record("j7", &payload),
            None,
            &TicketSecret::random(),
            Duration::from_secs(60),
            4,
        )
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        BeginOutcome::Proceed {
            attempt: 4,
            ticket: None
        }
    ));
}

#[tokio::test]
async fn a_job_refused_before_it_was_recorded_is_recorded_dead() {
    let db = TestDb::new().await.unwrap();
    db.store
        .mark_dead(
            "bad-1",
            "invalid",
            1,
            "invalid_job",
            "user.email is missing",
            None,
        )
        .await
        .unwrap();
    let job = db.store.job("bad-1").await.unwrap().unwrap();
    assert_eq!(job.status, "dead");
    assert_eq!(job.dead_reason.as_deref(), Some("invalid_job"));
    let counts = db.store.job_status_counts().await.unwrap();
    assert_eq!(counts, vec![("dead".to_string(), 1)]);
}

#[tokio::test]
async fn a_retry_of_a_job_the_ledger_has_not_seen_is_not_an_error() {
    let db = TestDb::new().await.unwrap();
    // A transient failure before the first attempt was recorded (e.g. the registry lookup).
    db.store
        .mark_retrying(
            "never-begun",
            1,
            "database unavailable",
            Duration::from_secs(5),
            None,
        )
        .await
        .unwrap();
    assert!(db.store.job("never-begun").await.unwrap().is_none());
    // The retried delivery then records the job as usual, counting the earlier attempt.
    let payload = serde_json::json!({"id": "never-begun"});
    let outcome = db
        .store
        .begin_attempt(
            &record("never-begun", &payload),
            Some(&spec()),
            &TicketSecret::random(),
            Duration::from_secs(60),
            2,
        )
        .await
        .unwrap();
    assert_eq!(proceed(outcome).0, 2);
}

#[tokio::test]
async fn a_different_job_under_a_known_id_is_refused_and_the_first_job_is_untouched() {
    let db = TestDb::new().await.unwrap();
    let store = &db.store;
    let secret = TicketSecret::random();
    let lease = Duration::from_secs(60);
    let first = serde_json::json!({"id": "j9", "user": {"email": "a@example.com"}});
    let other = serde_json::json!({"id": "j9", "user": {"email": "mallory@example.com"}});
    let (_, ticket) = proceed(
        store
            .begin_attempt(&record("j9", &first), Some(&spec()), &secret, lease, 1)
            .await
            .unwrap(),
    );
    store
        .mark_retrying("j9", 1, "451 busy", Duration::from_secs(5), Some(&first))
        .await
        .unwrap();
    let before = store.job("j9").await.unwrap().unwrap();
    let ticket_before = store.ticket_for_job("j9").await.unwrap().unwrap();

    // The other job, while the first is retrying: no attempt, no lease, no ticket.
    let mut mallory = record("j9", &other);
    mallory.recipient = "mallory@example.com";
    let mut mallory_ticket = spec();
    mallory_ticket.email = "mallory@example.com";
    let outcome = store
        .begin_attempt(&mallory, Some(&mallory_ticket), &secret, lease, 1)
        .await
        .unwrap();
    assert!(matches!(outcome, BeginOutcome::Conflict), "{outcome:?}");
    // Its later failures cannot write over the first job either.
    store
        .mark_retrying("j9", 2, "database", Duration::from_secs(5), Some(&other))
        .await
        .unwrap();
    store
        .mark_dead(
            "j9",
            "verification_email",
            1,
            "id_conflict",
            "x",
            Some(&other),
        )
        .await
        .unwrap();

    let after = store.job("j9").await.unwrap().unwrap();
    assert_eq!(
        (
            &after.status,
            after.attempts,
            &after.recipient,
            &after.last_error,
            &after.dead_reason
        ),
        (
            &before.status,
            before.attempts,
            &before.recipient,
            &before.last_error,
            &before.dead_reason
        )
    );
    assert_eq!(after.status, "retrying");
    let payload: serde_json::Value =
        sqlx::query_scalar("SELECT payload FROM email_jobs WHERE id = 'j9'")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(payload, first, "the first job's payload is kept");
    let ticket_after = store.ticket_for_job("j9").await.unwrap().unwrap();
    assert_eq!(ticket_after.id, ticket_before.id);
    assert_eq!(ticket_after.token_hash, ticket_before.token_hash);
    assert_eq!(ticket_after.email, "a@example.com");
    let events = store.job_events("j9").await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.event, "duplicate");
    assert!(last.detail.as_deref().unwrap().starts_with("id_conflict"));

    // The first job's own redelivery still goes ahead, with its link.
    let (attempt, again) = proceed(
        store
            .begin_attempt(&record("j9", &first), Some(&spec()), &secret, lease, 1)
            .await
            .unwrap(),
    );
    assert_eq!(attempt, 2);
    assert_eq!(again.token, ticket.token);
}

#[tokio::test]
async fn a_different_job_under_the_id_of_a_sent_job_is_a_conflict_not_a_duplicate() {
    let db = TestDb::new().await.unwrap();
    let secret = TicketSecret::random();
    let lease = Duration::from_secs(60);
    proceed(begin(&db.store, "j10", &secret, lease).await);
    db.store.mark_sent("j10", 1, "250 OK").await.unwrap();
    let other = serde_json::json!({"id": "j10", "user": {"email": "mallory@example.com"}});
    let outcome = db
        .store
        .begin_attempt(&record("j10", &other), Some(&spec()), &secret, lease, 1)
        .await
        .unwrap();
    assert!(matches!(outcome, BeginOutcome::Conflict), "{outcome:?}");
    // The same job again is still a plain duplicate.
    assert!(matches!(
        begin(&db.store, "j10", &secret, lease).await,
        BeginOutcome::AlreadySent
    ));
    assert_eq!(db.store.job("j10").await.unwrap().unwrap().status, "sent");
}

/// The job and ticket reach PostgreSQL as jsonb read by column name, so a field whose name
/// drifted would be stored as NULL without an error: every field is set here, through the single
/// call and through a batch, and read back.
#[tokio::test]
async fn every_field_of_a_job_and_its_ticket_is_stored_alone_and_in_a_batch() {
    let db = TestDb::new().await.unwrap();
    let secret = TicketSecret::random();
    let lease = Duration::from_secs(60);
    let ids = ["f-alone", "f-batch-1", "f-batch-2"];
    let payloads: Vec<serde_json::Value> = ids
        .iter()
        .map(|id| serde_json::json!({"id": id, "n": 1}))
        .collect();
    let records: Vec<JobRecord<'_>> = ids
        .iter()
        .zip(&payloads)
        .map(|(id, payload)| JobRecord {
            id,
            kind: "mfa_enrollment_email",
            recipient: "r@example.com",
            user_id: "job-user",
            organization_id: Some("org_1"),
            client_id: Some("client_1"),
            locale: "pt-BR",
            message_id: "<full@herald.test>",
            payload,
        })
        .collect();
    let ticket = TicketSpec {
        purpose: TicketPurpose::MfaEnrollment,
        user_id: "ticket-user",
        email: "t@example.com",
        client_id: Some("client_2"),
        organization_id: Some("org_2"),
        result_url: Some("https://app.test/enrolled"),
        include_email_in_redirect: true,
        mark_email_as_verified: true,
        factor: Some("otp"),
        allow_multiple_enrollments: true,
        custom_domain: Some("login.app.test"),
        ttl: Duration::from_micros(5_400_000_001),
    };
    let alone = db
        .store
        .begin_attempt(&records[0], Some(&ticket), &secret, lease, 2)
        .await
        .unwrap();
    let batch: Vec<BeginRequest> = records[1..]
        .iter()
        .map(|r| BeginRequest::new(r, Some(&ticket), 2))
        .collect();
    let batched = db.store.begin_attempts(&batch, &secret, lease).await;
    let outcomes = std::iter::once(alone).chain(batched.into_iter().map(Result::unwrap));

    for (id, outcome) in ids.iter().zip(outcomes) {
        let (attempt, issued) = proceed(outcome);
        assert_eq!(attempt, 2, "{id}");
        let job = db.store.job(id).await.unwrap().unwrap();
        assert_eq!(job.kind, "mfa_enrollment_email", "{id}");
        assert_eq!(job.status, "sending", "{id}");
        assert_eq!(job.recipient.as_deref(), Some("r@example.com"), "{id}");
        assert_eq!(job.user_id.as_deref(), Some("job-user"), "{id}");
        assert_eq!(job.organization_id.as_deref(), Some("org_1"), "{id}");
        assert_eq!(job.client_id.as_deref(), Some("client_1"), "{id}");
        assert_eq!(job.locale.as_deref(), Some("pt-BR"), "{id}");
        assert_eq!(
            job.message_id.as_deref(),
            Some("<full@herald.test>"),
            "{id}"
        );
        let payload: serde_json::Value =
            sqlx::query_scalar("SELECT payload FROM email_jobs WHERE id = $1")
                .bind(id)
                .fetch_one(db.store.pool())
                .await
                .unwrap();
        assert_eq!(payload, serde_json::json!({"id": id, "n": 1}), "{id}");

        let stored = db.store.ticket_for_job(id).await.unwrap().unwrap();
        assert_eq!(stored.id, issued.id, "{id}");
        assert_eq!(stored.token_hash, issued.token.hash().as_bytes(), "{id}");
        assert_eq!(stored.purpose, "mfa_enrollment", "{id}");
        assert_eq!(stored.user_id, "ticket-user", "{id}");
        assert_eq!(stored.email, "t@example.com", "{id}");
        assert_eq!(stored.client_id.as_deref(), Some("client_2"), "{id}");
        assert_eq!(stored.organization_id.as_deref(), Some("org_2"), "{id}");
        assert_eq!(
            stored.result_url.as_deref(),
            Some("https://app.test/enrolled"),
            "{id}"
        );
        assert!(stored.include_email_in_redirect, "{id}");
        assert!(stored.mark_email_as_verified, "{id}");
        assert_eq!(stored.factor.as_deref(), Some("otp"), "{id}");
        assert!(stored.allow_multiple_enrollments, "{id}");
        assert_eq!(
            stored.custom_domain.as_deref(),
            Some("login.app.test"),
            "{id}"
        );
        assert_eq!(
            stored.expires_at - stored.created_at,
            time::Duration::microseconds(5_400_000_001),
            "{id}"
        );
    }
}
