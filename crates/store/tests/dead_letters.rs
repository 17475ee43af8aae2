//! The ledger's list of parked dead letters against a real PostgreSQL: only jobs that are `dead`
//! and whose letter was not purged since, oldest first, filtered by type, reason and age, with
//! the counts `herald dlq list` compares with the queue's depth.

use std::time::Duration;

use herald_queue::dlq::DeadLetterLedger;
use herald_store::Store;
use herald_store::dead_letters::DeadLetterQuery;
use herald_testkit::db::TestDb;

fn all() -> DeadLetterQuery {
    DeadLetterQuery {
        limit: 50,
        ..DeadLetterQuery::default()
    }
}

async fn ids(store: &Store, query: &DeadLetterQuery) -> Vec<String> {
    let page = store.dead_letters(query).await.unwrap();
    page.jobs.into_iter().map(|j| j.id).collect()
}

/// Makes `id` look `secs` seconds older than it is.
async fn age(db: &TestDb, id: &str, secs: i64) {
    sqlx::query(
        "UPDATE email_jobs SET updated_at = updated_at - make_interval(secs => $2), \
         created_at = created_at - make_interval(secs => $2) WHERE id = $1",
    )
    .bind(id)
    .bind(secs as f64)
    .execute(db.store.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn only_parked_dead_letters_are_listed_oldest_first_and_filtered() {
    let db = TestDb::new().await.unwrap();
    let store = &db.store;
    let payload = serde_json::json!({"id": "d-old", "user": {"email": "ana@example.com"}});
    store
        .mark_dead(
            "d-old",
            "verification_email",
            2,
            "smtp_permanent",
            "554 no such user",
            Some(&payload),
        )
        .await
        .unwrap();
    store
        .mark_dead("d-new", "welcome_email", 1, "invalid_job", "bad", None)
        .await
        .unwrap();
    store
        .mark_dead(
            "d-purged",
            "welcome_email",
            1,
            "smtp_permanent",
            "554",
            None,
        )
        .await
        .unwrap();
    store
        .mark_dead(
            "d-replayed",
            "welcome_email",
            1,
            "smtp_permanent",
            "554",
            None,
        )
        .await
        .unwrap();
    store
        .mark_dead("d-sent", "welcome_email", 1, "smtp_permanent", "554", None)
        .await
        .unwrap();
    age(&db, "d-old", 3600).await;
    age(&db, "d-new", 60).await;
    assert!(store.note_purge("d-purged", "gone").await.unwrap());
    assert!(store.reopen("d-replayed").await.unwrap());
    assert!(store.reopen("d-sent").await.unwrap());
    store.mark_sent("d-sent", 2, "250 OK").await.unwrap();

    let page = store.dead_letters(&all()).await.unwrap();
    assert_eq!((page.matching, page.parked), (2, 2));
    let old = &page.jobs[0];
    assert_eq!(
        (old.id.as_str(), old.kind.as_str(), old.attempts),
        ("d-old", "verification_email", 2)
    );
    assert_eq!(old.dead_reason.as_deref(), Some("smtp_permanent"));
    assert_eq!(old.last_error.as_deref(), Some("554 no such user"));
    assert_eq!(page.jobs[1].id, "d-new", "oldest first, like the queue");

    let by_reason = DeadLetterQuery {
        reason: Some("invalid_job".into()),
        ..all()
    };
    assert_eq!(ids(store, &by_reason).await, ["d-new"]);
    let by_type = DeadLetterQuery {
        kind: Some("verification_email".into()),
        ..all()
    };
    assert_eq!(ids(store, &by_type).await, ["d-old"]);
    let old_enough = DeadLetterQuery {
        older_than: Some(Duration::from_secs(600)),
        ..all()
    };
    assert_eq!(ids(store, &old_enough).await, ["d-old"]);
    let one = DeadLetterQuery { limit: 1, ..all() };
    let page = store.dead_letters(&one).await.unwrap();
    assert_eq!(page.jobs.len(), 1);
    assert_eq!(
        (page.matching, page.parked),
        (2, 2),
        "counts ignore the limit"
    );
    let none = DeadLetterQuery {
        reason: Some("max_attempts".into()),
        ..all()
    };
    let page = store.dead_letters(&none).await.unwrap();
    assert!(page.jobs.is_empty());
    assert_eq!((page.matching, page.parked), (0, 2));

    // One job with its body; purged, reopened and sent jobs are not parked.
    let detail = store.dead_letter("d-old").await.unwrap().unwrap();
    assert_eq!(detail.payload, Some(payload));
    assert_eq!(detail.job.id, "d-old");
    assert_eq!(
        store.dead_letter("d-new").await.unwrap().unwrap().payload,
        None
    );
    for gone in ["d-purged", "d-replayed", "d-sent", "nobody"] {
        assert!(store.dead_letter(gone).await.unwrap().is_none(), "{gone}");
    }

    // Dead-lettered again after its purge, a job is parked again.
    store
        .mark_dead(
            "d-purged",
            "welcome_email",
            2,
            "smtp_permanent",
            "554",
            None,
        )
        .await
        .unwrap();
    assert!(store.dead_letter("d-purged").await.unwrap().is_some());
}

#[tokio::test]
async fn the_ledger_side_of_replay_and_purge() {
    let db = TestDb::new().await.unwrap();
    let store = &db.store;
    assert!(!store.was_sent("nobody").await.unwrap());
    assert!(!store.reopen("nobody").await.unwrap());
    assert!(!store.note_purge("nobody", "x").await.unwrap());
    store
        .mark_dead("j", "welcome_email", 1, "smtp_permanent", "554", None)
        .await
        .unwrap();
    assert!(!store.was_sent("j").await.unwrap());
    assert!(store.reopen("j").await.unwrap());
    store
        .restore_dead("j", "welcome_email", "smtp_permanent", "replay failed")
        .await
        .unwrap();
    let job = store.job("j").await.unwrap().unwrap();
    assert_eq!(job.status, "dead");
    assert_eq!(job.dead_reason.as_deref(), Some("smtp_permanent"));
    assert!(store.reopen("j").await.unwrap());
    store.mark_sent("j", 2, "250 OK").await.unwrap();
    assert!(store.was_sent("j").await.unwrap());
}
