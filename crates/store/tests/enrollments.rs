//! MFA enrollments against a real PostgreSQL: stored in the caller's transaction, listed and
//! deleted; a TOTP step is accepted once however many race for it; login checks are limited per
//! user; an emailed code expires, allows a few attempts and is used once.

use std::time::Duration;

use herald_domain::{TicketPurpose, TicketSecret, TokenHash};
use herald_store::{
    EmailCodeCheck, EmailCodeIssue, EmailCodeSpec, MfaFactor, NewEnrollment, OtpAttempt, Store,
    TicketSpec,
};
use herald_testkit::db::TestDb;

const SEALED: &[u8] = b"not really sealed, the store cannot tell";

fn otp<'a>(user_id: &'a str, last_step: Option<u64>) -> NewEnrollment<'a> {
    NewEnrollment {
        user_id,
        factor: MfaFactor::Otp,
        name: None,
        identifier: None,
        secret_sealed: Some(SEALED),
        last_step,
    }
}

async fn enroll(store: &Store, new: &NewEnrollment<'_>) -> herald_store::Enrollment {
    let mut tx = store.pool().begin().await.unwrap();
    let enrollment = Store::insert_enrollment(&mut tx, new).await.unwrap();
    tx.commit().await.unwrap();
    enrollment
}

async fn enrollment_ticket(store: &Store) -> TokenHash {
    let secret = TicketSecret::from_bytes(b"enrollment-tests-secret-0123456789abcdef").unwrap();
    let spec = TicketSpec {
        purpose: TicketPurpose::MfaEnrollment,
        user_id: "auth0|ana",
        email: "ana@example.com",
        client_id: None,
        organization_id: None,
        result_url: None,
        include_email_in_redirect: false,
        mark_email_as_verified: false,
        factor: Some("email"),
        allow_multiple_enrollments: false,
        custom_domain: None,
        ttl: Duration::from_secs(600),
    };
    store
        .issue_ticket(&spec, &secret, None)
        .await
        .unwrap()
        .token
        .hash()
}

#[tokio::test]
async fn enrollments_are_stored_in_the_callers_transaction_listed_and_deleted() {
    let db = TestDb::new().await.unwrap();
    let store = &db.store;

    // Rolled back with the page's transaction: nothing is stored.
    let mut tx = store.pool().begin().await.unwrap();
    assert!(
        !Store::has_confirmed_enrollment(&mut tx, "auth0|ana")
            .await
            .unwrap()
    );
    Store::insert_enrollment(&mut tx, &otp("auth0|ana", Some(7)))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(
        store
            .list_enrollments("auth0|ana")
            .await
            .unwrap()
            .is_empty()
    );

    let totp = enroll(store, &otp("auth0|ana", Some(7))).await;
    let email = enroll(
        store,
        &NewEnrollment {
            user_id: "auth0|ana",
            factor: MfaFactor::Email,
            name: None,
            identifier: Some("ana@example.com"),
            secret_sealed: None,
            last_step: None,
        },
    )
    .await;
    assert!(totp.id.starts_with("totp|dev_") && totp.id.len() == "totp|dev_".len() + 16);
    assert!(email.id.starts_with("email|dev_"));
    assert_eq!(totp.status, "confirmed");
    assert_eq!(totp.last_auth, None);

    let listed = store.list_enrollments("auth0|ana").await.unwrap();
    assert_eq!(listed, vec![totp.clone(), email.clone()]);
    assert!(
        store
            .list_enrollments("auth0|bob")
            .await
            .unwrap()
            .is_empty()
    );
    let mut tx = store.pool().begin().await.unwrap();
    assert!(
        Store::has_confirmed_enrollment(&mut tx, "auth0|ana")
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    assert!(store.delete_enrollment(&totp.id).await.unwrap());
    assert!(!store.delete_enrollment(&totp.id).await.unwrap());
    assert_eq!(
        store.list_enrollments("auth0|ana").await.unwrap(),
        vec![email]
    );
}

#[tokio::test]
async fn an_otp_enrollment_needs_a_sealed_secret_and_an_email_one_has_none() {
    let db = TestDb::new().await.unwrap();
    let mut tx = db.store.pool().begin().await.unwrap();
    let no_secret = NewEnrollment {
        secret_sealed: None,
        ..otp("auth0|ana", None)
    };
    assert!(Store::insert_enrollment(&mut tx, &no_secret).await.is_err());
    let email_with_secret = NewEnrollment {
        factor: MfaFactor::Email,
        ..otp("auth0|ana", None)
    };
    assert!(
        Store::insert_enrollment(&mut tx, &email_with_secret)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn two_enrollments_of_one_user_at_once_are_taken_in_turn() {
    let db = TestDb::new().await.unwrap();
    let tries = (0..10).map(|_| {
        let store = db.store.clone();
        tokio::spawn(async move {
            let mut tx = store.pool().begin().await.unwrap();
            if Store::has_confirmed_enrollment(&mut tx, "auth0|ana")
                .await
                .unwrap()
            {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            Store::insert_enrollment(&mut tx, &otp("auth0|ana", None))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            true
        })
    });
    let enrolled = futures::future::join_all(tries)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(enrolled, 1);
    assert_eq!(
        db.store.list_enrollments("auth0|ana").await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn a_totp_step_is_accepted_once_and_never_an_earlier_one() {
    let db = TestDb::new().await.unwrap();
    let store = &db.store;
    let e = enroll(store, &otp("auth0|ana", Some(100))).await;
    let stored = store.otp_enrollments("auth0|ana").await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].secret_sealed, SEALED);
    assert_eq!(stored[0].last_step, Some(100));
    assert!(!format!("{:?}", stored[0]).contains("not really sealed"));

    // The enrollment's own confirming code cannot be replayed at login.
    assert!(!store.record_otp_step(&e.id, 100).await.unwrap());
    assert!(!store.record_otp_step(&e.id, 99).await.unwrap());

    // Of 20 checks of one code at once, one is accepted.
    let tries = (0..20).map(|_| {
        let store = store.clone();
        let id = e.id.clone();
        tokio::spawn(async move { store.record_otp_step(&id, 101).await.unwrap() })
    });
    let accepted = futures::future::join_all(tries)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(accepted, 1);
    let after = store.otp_enrollments("auth0|ana").await.unwrap();
    assert_eq!(after[0].last_step, Some(101));
    assert!(
        store.list_enrollments("auth0|ana").await.unwrap()[0]
            .last_auth
            .is_some()
    );
    assert!(store.record_otp_step(&e.id, 102).await.unwrap());
}

#[tokio::test]
async fn login_checks_are_limited_per_user_and_cleared_by_a_success() {
    let db = TestDb::new().await.unwrap();
    let store = &db.store;
    let window = Duration::from_secs(300);
    for remaining in [2, 1, 0] {
        assert_eq!(
            store
                .take_otp_attempt("auth0|ana", 3, window)
                .await
                .unwrap(),
            OtpAttempt::Allowed { remaining }
        );
    }
    match store
        .take_otp_attempt("auth0|ana", 3, window)
        .await
        .unwrap()
    {
        OtpAttempt::Refused { retry_after } => {
            assert!(retry_after <= window && retry_after >= Duration::from_secs(290));
        }
        other => panic!("{other:?}"),
    }
    // Another user has a count of their own.
    assert_eq!(
        store
            .take_otp_attempt("auth0|bob", 3, window)
            .await
            .unwrap(),
        OtpAttempt::Allowed { remaining: 2 }
    );
    store.clear_otp_attempts("auth0|ana").await.unwrap();
    assert_eq!(
        store
            .take_otp_attempt("auth0|ana", 3, window)
            .await
            .unwrap(),
        OtpAttempt::Allowed { remaining: 2 }
    );
    // A window that has passed starts again.
    let short = Duration::from_millis(200);
    for _ in 0..4 {
        store.take_otp_attempt("auth0|cy", 3, short).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.take_otp_attempt("auth0|cy", 3, short).await.unwrap(),
        OtpAttempt::Allowed { remaining: 2 }
    );
}

fn code_spec<'a>(hash: &'a TokenHash, digest: &'a [u8], ttl: Duration) -> EmailCodeSpec<'a> {
    EmailCodeSpec {
        ticket_hash: hash,
        user_id: "auth0|ana",
        email: "ana@example.com",
        code_digest: digest,
        ttl,
        max_sends: 3,
    }
}

#[tokio::test]
async fn an_emailed_code_allows_a_few_attempts_and_is_used_once() {
    let db = TestDb::new().await.unwrap();
    let store = &db.store;
    let hash = enrollment_ticket(store).await;
    let right = [1u8; 32];
    assert_eq!(
        store.check_email_code(&hash, 3, |_| true).await.unwrap(),
        EmailCodeCheck::Unknown
    );
    assert_eq!(
        store
            .issue_email_code(&code_spec(&hash, &right, Duration::from_secs(600)))
            .await
            .unwrap(),
        EmailCodeIssue::Issued { sends: 1 }
    );
    let check = |typed: [u8; 32]| {
        let store = store.clone();
        async move {
            store
                .check_email_code(&hash, 3, |stored| stored == typed)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        check([9; 32]).await,
        EmailCodeCheck::Wrong { attempts_left: 2 }
    );
    assert_eq!(
        check(right).await,
        EmailCodeCheck::Valid {
            user_id: "auth0|ana".into(),
            email: "ana@example.com".into()
        }
    );
    assert_eq!(check(right).await, EmailCodeCheck::Unknown);

    // A new code: three wrong tries kill it, even the right code afterwards.
    store
        .issue_email_code(&code_spec(&hash, &right, Duration::from_secs(600)))
        .await
        .unwrap();
    for left in [2, 1, 0] {
        assert_eq!(
            check([9; 32]).await,
            EmailCodeCheck::Wrong {
                attempts_left: left
            }
        );
    }
    assert_eq!(check(right).await, EmailCodeCheck::TooManyAttempts);
    // Re-sending starts the attempts again, up to max_sends codes per ticket.
    assert_eq!(
        store
            .issue_email_code(&code_spec(&hash, &right, Duration::from_secs(600)))
            .await
            .unwrap(),
        EmailCodeIssue::Issued { sends: 2 }
    );
    assert!(matches!(check(right).await, EmailCodeCheck::Valid { .. }));
    // (The code was used, so this is a first send again.)
    for sends in [1, 2, 3] {
        assert_eq!(
            store
                .issue_email_code(&code_spec(&hash, &right, Duration::from_secs(600)))
                .await
                .unwrap(),
            EmailCodeIssue::Issued { sends }
        );
    }
    assert_eq!(
        store
            .issue_email_code(&code_spec(&hash, &right, Duration::from_secs(600)))
            .await
            .unwrap(),
        EmailCodeIssue::TooManySends
    );
}

#[tokio::test]
async fn an_expired_code_is_refused_and_a_right_one_wins_once_under_concurrency() {
    let db = TestDb::new().await.unwrap();
    let store = &db.store;
    let hash = enrollment_ticket(store).await;
    let right = [1u8; 32];
    store
        .issue_email_code(&code_spec(&hash, &right, Duration::from_millis(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        store
            .check_email_code(&hash, 5, |stored| stored == right)
            .await
            .unwrap(),
        EmailCodeCheck::Expired
    );

    store
        .issue_email_code(&code_spec(&hash, &right, Duration::from_secs(600)))
        .await
        .unwrap();
    let tries = (0..5).map(|_| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .check_email_code(&hash, 5, |stored| stored == right)
                .await
                .unwrap()
        })
    });
    let valid = futures::future::join_all(tries)
        .await
        .into_iter()
        .filter(|r| matches!(r.as_ref().unwrap(), EmailCodeCheck::Valid { .. }))
        .count();
    assert_eq!(valid, 1);
}

#[tokio::test]
async fn deleting_a_user_deletes_their_enrollments() {
    let db = TestDb::new().await.unwrap();
    let store = &db.store;
    store
        .create_user(&herald_store::NewUser {
            user_id: "auth0|ana".into(),
            email: Some("ana@example.com".into()),
            connection: "Username-Password-Authentication".into(),
            ..herald_store::NewUser::default()
        })
        .await
        .unwrap();
    enroll(store, &otp("auth0|ana", None)).await;
    enroll(store, &otp("auth0|bob", None)).await;
    assert!(store.delete_user("auth0|ana").await.unwrap());
    assert!(
        store
            .list_enrollments("auth0|ana")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.list_enrollments("auth0|bob").await.unwrap().len(), 1);
    assert!(!store.delete_user("auth0|ana").await.unwrap());
}
