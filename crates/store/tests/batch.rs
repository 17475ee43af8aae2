//! Batched ledger writes against a real PostgreSQL: a batch gives each job exactly what the
//! single-job calls give it, in the caller's order, and a batch that fails writes nothing of
//! its own before each job is tried alone.

use std::time::Duration;

use herald_domain::{TicketPurpose, TicketSecret};
use herald_store::{
    BeginOutcome, BeginRequest, JobRecord, SentRequest, Store, TicketSpec, ledger::JobStatus,
};
use herald_testkit::db::TestDb;

const LEASE: Duration = Duration::from_secs(60);

fn request(id: &str, ticket: bool, min_attempt: u32) -> BeginRequest {
    request_to(
        id,
        ticket,
        min_attempt,
        "a@example.com",
        serde_json::json!({"id": id}),
    )
}

fn request_to(
    id: &str,
    ticket: bool,
    min_attempt: u32,
    recipient: &str,
    payload: serde_json::Value,
) -> BeginRequest {
    let record = JobRecord {
        id,
        kind: if ticket {
            "password_change_email"
        } else {
            "welcome_email"
        },
        recipient,
        user_id: "u1",
        organization_id: None,
        client_id: None,
        locale: "fr",
        message_id: "<m@herald.test>",
        payload: &payload,
    };
    let spec = TicketSpec {
        purpose: TicketPurpose::PasswordChange,
        user_id: "u1",
        email: "a@example.com",
        client_id: None,
        organization_id: None,
        result_url: Some("https://app.test/done"),
        include_email_in_redirect: false,
        mark_email_as_verified: true,
        factor: None,
        allow_multiple_enrollments: false,
        custom_domain: None,
        ttl: Duration::from_secs(7200),
    };
    BeginRequest::new(&record, ticket.then_some(&spec), min_attempt)
}

async fn status(store: &Store, id: &str) -> String {
    store.job(id).await.unwrap().unwrap().status
}

#[tokio::test]
async fn a_batch_answers_each_job_in_order_like_the_single_calls() {
    let db = TestDb::new().await.unwrap();
    let secret = TicketSecret::random();
    // Out of id order on purpose, one without a ticket, one claiming attempt 3 from its header.
    let batch = vec![
        request("job-c", true, 1),
        request("job-a", false, 1),
        request("job-b", true, 3),
    ];
    let outcomes = db.store.begin_attempts(&batch, &secret, LEASE).await;
    assert_eq!(outcomes.len(), 3);

    let mut tokens = Vec::new();
    for (req, outcome) in batch.iter().zip(&outcomes) {
        match outcome.as_ref().unwrap() {
            BeginOutcome::Proceed { attempt, ticket } => {
                let expected = if req.id == "job-b" { 3 } else { 1 };
                assert_eq!(*attempt, expected, "{}", req.id);
                assert_eq!(ticket.is_some(), req.issues_ticket(), "{}", req.id);
                if let Some(t) = ticket {
                    assert!(t.created);
                    // The ticket stored for this job is the one handed back for it.
                    let stored = db.store.ticket_for_job(&req.id).await.unwrap().unwrap();
                    assert_eq!(stored.token_hash, t.token.hash().as_bytes(), "{}", req.id);
                    assert_eq!(stored.purpose, "password_change");
                    assert!(stored.mark_email_as_verified);
                    assert_eq!(stored.result_url.as_deref(), Some("https://app.test/done"));
                    let ttl = stored.expires_at - stored.created_at;
                    assert!((ttl.whole_seconds() - 7200).abs() <= 1, "{ttl}");
                    tokens.push(t.token.clone());
                }
            }
            other => panic!("{}: expected Proceed, got {other:?}", req.id),
        }
        assert_eq!(status(&db.store, &req.id).await, "sending");
    }
    assert_ne!(tokens[0], tokens[1], "each job has its own token");
    assert!(db.store.ticket_for_job("job-a").await.unwrap().is_none());

    // The same jobs again while leased: busy. Then sent in one batch, then duplicates.
    let again = db.store.begin_attempts(&batch, &secret, LEASE).await;
    assert!(
        again
            .iter()
            .all(|o| matches!(o, Ok(BeginOutcome::Busy { .. }))),
        "{again:?}"
    );
    let sent: Vec<SentRequest> = batch
        .iter()
        .map(|r| SentRequest {
            id: r.id.clone(),
            attempt: 1,
            reply: "250 OK".into(),
        })
        .collect();
    assert!(
        db.store
            .mark_sent_many(&sent)
            .await
            .iter()
            .all(Result::is_ok)
    );
    for req in &batch {
        assert_eq!(status(&db.store, &req.id).await, JobStatus::Sent.as_str());
        let events = db.store.job_events(&req.id).await.unwrap();
        let names: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(
            names.iter().filter(|e| **e == "sent").count(),
            1,
            "{names:?}"
        );
    }
    let finished = db.store.begin_attempts(&batch, &secret, LEASE).await;
    assert!(
        finished
            .iter()
            .all(|o| matches!(o, Ok(BeginOutcome::AlreadySent))),
        "{finished:?}"
    );
}

#[tokio::test]
async fn a_retried_job_in_a_batch_gets_back_its_first_link() {
    let db = TestDb::new().await.unwrap();
    let secret = TicketSecret::random();
    let first = match db
        .store
        .begin_one(&request("r1", true, 1), &secret, LEASE)
        .await
    {
        Ok(BeginOutcome::Proceed {
            ticket: Some(t), ..
        }) => t,
        other => panic!("{other:?}"),
    };
    db.store
        .mark_retrying("r1", 1, "451 busy", Duration::from_secs(5), None)
        .await
        .unwrap();
    let batch = vec![request("r0", true, 1), request("r1", true, 2)];
    let outcomes = db.store.begin_attempts(&batch, &secret, LEASE).await;
    match &outcomes[1] {
        Ok(BeginOutcome::Proceed {
            attempt: 2,
            ticket: Some(t),
        }) => {
            assert!(!t.created);
            assert_eq!(t.token, first.token, "the same link is rebuilt");
            assert_eq!(t.id, first.id);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_same_job_twice_in_one_batch_is_attempted_once() {
    let db = TestDb::new().await.unwrap();
    let secret = TicketSecret::random();
    let batch = vec![request("twice", true, 1), request("twice", true, 1)];
    let outcomes = db.store.begin_attempts(&batch, &secret, LEASE).await;
    let proceeded = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(BeginOutcome::Proceed { .. })))
        .count();
    let busy = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(BeginOutcome::Busy { .. })))
        .count();
    assert_eq!((proceeded, busy), (1, 1), "{outcomes:?}");
}

#[tokio::test]
async fn a_failing_batch_falls_back_to_each_job_so_only_the_bad_one_fails() {
    let db = TestDb::new().await.unwrap();
    let secret = TicketSecret::random();
    // PostgreSQL text cannot hold NUL: this job makes the whole batch statement fail.
    let bad = request_to(
        "bad",
        false,
        1,
        "a\u{0}@example.com",
        serde_json::json!({"id": "bad"}),
    );
    let batch = vec![request("good-1", true, 1), bad, request("good-2", false, 1)];
    let outcomes = db.store.begin_attempts(&batch, &secret, LEASE).await;
    assert!(
        matches!(outcomes[0], Ok(BeginOutcome::Proceed { .. })),
        "{outcomes:?}"
    );
    assert!(outcomes[1].is_err(), "{outcomes:?}");
    assert!(
        matches!(outcomes[2], Ok(BeginOutcome::Proceed { .. })),
        "{outcomes:?}"
    );
    // Each good job was recorded once, with one ticket and one 'received' event.
    let events = db.store.job_events("good-1").await.unwrap();
    assert_eq!(events.iter().filter(|e| e.event == "received").count(), 1);
    assert!(db.store.job("bad").await.unwrap().is_none());
}

#[tokio::test]
async fn a_different_job_under_a_known_id_is_a_conflict_in_a_batch_too() {
    let db = TestDb::new().await.unwrap();
    let secret = TicketSecret::random();
    let first = db
        .store
        .begin_one(&request("c1", true, 1), &secret, LEASE)
        .await
        .unwrap();
    assert!(matches!(first, BeginOutcome::Proceed { .. }), "{first:?}");
    let other = request_to(
        "c1",
        true,
        1,
        "mallory@example.com",
        serde_json::json!({"id": "c1", "to": "mallory@example.com"}),
    );
    let batch = vec![request("c0", true, 1), other];
    let outcomes = db.store.begin_attempts(&batch, &secret, LEASE).await;
    assert!(
        matches!(outcomes[0], Ok(BeginOutcome::Proceed { .. })),
        "{outcomes:?}"
    );
    assert!(
        matches!(outcomes[1], Ok(BeginOutcome::Conflict)),
        "{outcomes:?}"
    );
    let job = db.store.job("c1").await.unwrap().unwrap();
    assert_eq!((job.status.as_str(), job.attempts), ("sending", 1));
    assert_eq!(job.recipient.as_deref(), Some("a@example.com"));
}
