//! Redeeming tickets against a real PostgreSQL: a ticket is used once, whatever the concurrency,
//! and a ticket that cannot be used says why (used, expired, unknown or another page's).

use std::time::Duration;

use herald_domain::{TicketPurpose, TicketSecret, TicketToken, TokenHash};
use herald_store::{EmailVerification, Redemption, Store, TicketSpec};
use herald_testkit::db::TestDb;

fn spec(purpose: TicketPurpose, ttl: Duration) -> TicketSpec<'static> {
    TicketSpec {
        purpose,
        user_id: "auth0|u1",
        email: "ana@example.com",
        client_id: None,
        organization_id: None,
        result_url: None,
        include_email_in_redirect: false,
        mark_email_as_verified: false,
        factor: None,
        allow_multiple_enrollments: false,
        custom_domain: None,
        ttl,
    }
}

async fn issue(store: &Store, purpose: TicketPurpose, ttl: Duration) -> TokenHash {
    let secret = TicketSecret::from_bytes(b"redemption-tests-secret-0123456789abcdef").unwrap();
    store
        .issue_ticket(&spec(purpose, ttl), &secret, None)
        .await
        .unwrap()
        .token
        .hash()
}

async fn redeem(store: &Store, hash: &TokenHash, purpose: TicketPurpose) -> Redemption {
    let mut tx = store.pool().begin().await.unwrap();
    let answer = Store::redeem_ticket(&mut tx, hash, purpose).await.unwrap();
    tx.commit().await.unwrap();
    answer
}

#[tokio::test]
async fn of_fifty_concurrent_redemptions_exactly_one_wins() {
    let db = TestDb::new().await.unwrap();
    let hash = issue(
        &db.store,
        TicketPurpose::EmailVerification,
        Duration::from_secs(600),
    )
    .await;
    assert!(matches!(
        db.store
            .peek_ticket(&hash, TicketPurpose::EmailVerification)
            .await
            .unwrap(),
        Redemption::Valid(_)
    ));
    let tries = (0..50).map(|_| {
        let store = db.store.clone();
        tokio::spawn(async move { redeem(&store, &hash, TicketPurpose::EmailVerification).await })
    });
    let answers = futures::future::join_all(tries).await;
    let won = answers
        .iter()
        .filter(|a| matches!(a.as_ref().unwrap(), Redemption::Valid(_)))
        .count();
    let used = answers
        .iter()
        .filter(|a| matches!(a.as_ref().unwrap(), Redemption::Used(_)))
        .count();
    assert_eq!((won, used), (1, 49));
    assert!(matches!(
        db.store
            .peek_ticket(&hash, TicketPurpose::EmailVerification)
            .await
            .unwrap(),
        Redemption::Used(_)
    ));
}

#[tokio::test]
async fn a_ticket_that_cannot_be_used_says_why_and_a_rolled_back_redemption_leaves_it_usable() {
    let db = TestDb::new().await.unwrap();
    let store = &db.store;
    let expired = issue(
        store,
        TicketPurpose::PasswordChange,
        Duration::from_millis(1),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(matches!(
        redeem(store, &expired, TicketPurpose::PasswordChange).await,
        Redemption::Expired(_)
    ));
    let unknown = TicketToken::from_presented("not-a-ticket-anyone-issued").hash();
    assert!(matches!(
        redeem(store, &unknown, TicketPurpose::PasswordChange).await,
        Redemption::Unknown
    ));
    // A password-change ticket is nothing on the verification page.
    let reset = issue(
        store,
        TicketPurpose::PasswordChange,
        Duration::from_secs(600),
    )
    .await;
    assert!(matches!(
        redeem(store, &reset, TicketPurpose::EmailVerification).await,
        Redemption::Unknown
    ));
    // What the ticket does failed: the transaction rolls back, and the ticket stays usable.
    let mut tx = store.pool().begin().await.unwrap();
    let first = Store::redeem_ticket(&mut tx, &reset, TicketPurpose::PasswordChange)
        .await
        .unwrap();
    assert!(matches!(first, Redemption::Valid(ref t) if t.used_at.is_some()));
    tx.rollback().await.unwrap();
    assert!(matches!(
        redeem(store, &reset, TicketPurpose::PasswordChange).await,
        Redemption::Valid(_)
    ));
    assert!(matches!(
        redeem(store, &reset, TicketPurpose::PasswordChange).await,
        Redemption::Used(_)
    ));
}

async fn ana(store: &Store) {
    store
        .create_user(&herald_store::NewUser {
            user_id: "auth0|u1".into(),
            email: Some("Ana@Example.com".into()),
            connection: "Username-Password-Authentication".into(),
            ..herald_store::NewUser::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn verifying_an_email_uses_the_ticket_and_claims_the_welcome_email_once_ever() {
    let db = TestDb::new().await.unwrap();
    let store = &db.store;
    ana(store).await;
    let day = Duration::from_secs(86_400);
    let purpose = TicketPurpose::EmailVerification;

    let first = issue(store, purpose, day).await;
    let answer = store.verify_email(&first).await.unwrap();
    assert!(
        matches!(answer, EmailVerification::Verified { welcome: true, .. }),
        "{answer:?}"
    );
    assert!(
        store
            .get_user("auth0|u1")
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
    assert!(matches!(
        store.verify_email(&first).await.unwrap(),
        EmailVerification::Refused(Redemption::Used(_))
    ));
    let second = issue(store, purpose, day).await;
    assert!(matches!(
        store.verify_email(&second).await.unwrap(),
        EmailVerification::AlreadyVerified(_)
    ));

    // A new address to verify (PATCH with verify_email): verified again, but no second welcome.
    store
        .update_user(
            "auth0|u1",
            &herald_store::UserPatch {
                email_verified: Some(false),
                ..herald_store::UserPatch::default()
            },
        )
        .await
        .unwrap();
    let third = issue(store, purpose, day).await;
    assert!(matches!(
        store.verify_email(&third).await.unwrap(),
        EmailVerification::Verified { welcome: false, .. }
    ));

    // The address changed since the ticket was issued: the ticket verifies nothing.
    let stale = issue(store, purpose, day).await;
    store
        .update_user(
            "auth0|u1",
            &herald_store::UserPatch {
                email: Some("ana.new@example.com".into()),
                email_verified: Some(false),
                ..herald_store::UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        store.verify_email(&stale).await.unwrap(),
        EmailVerification::NoSuchUser(_)
    ));
    assert!(
        !store
            .get_user("auth0|u1")
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
}

#[tokio::test]
async fn of_many_tickets_of_one_user_redeemed_at_once_one_verifies_and_claims_the_welcome() {
    let db = TestDb::new().await.unwrap();
    ana(&db.store).await;
    let mut hashes = Vec::new();
    for _ in 0..20 {
        hashes.push(
            issue(
                &db.store,
                TicketPurpose::EmailVerification,
                Duration::from_secs(600),
            )
            .await,
        );
    }
    let tries = hashes.into_iter().map(|hash| {
        let store = db.store.clone();
        tokio::spawn(async move { store.verify_email(&hash).await.unwrap() })
    });
    let answers: Vec<_> = futures::future::join_all(tries)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let welcomes = answers
        .iter()
        .filter(|a| matches!(a, EmailVerification::Verified { welcome: true, .. }))
        .count();
    let already = answers
        .iter()
        .filter(|a| matches!(a, EmailVerification::AlreadyVerified(_)))
        .count();
    assert_eq!((welcomes, already), (1, 19), "{answers:?}");
}
