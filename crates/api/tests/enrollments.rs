//! MFA enrollments on the Management API against real services: enrollments stored as the
//! enrollment page stores them are listed in Auth0's shape and deleted; the login OTP check
//! accepts a code once, refuses wrong and replayed codes, limits attempts per user and never
//! shows the secret; the scopes are enforced.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use herald_domain::TicketToken;
use herald_mfa::{MfaKey, TotpSecret};
use herald_store::{MfaFactor, NewEnrollment, Store};
use herald_testkit::env::{TestApi, TestEnv};
use herald_testkit::http::{Answer, request};
use serde_json::{Value, json};

const SCOPES: &str = "read:users create:users create:guardian_enrollment_tickets \
                      delete:guardian_enrollments verify:mfa_otp";

async fn call(
    addr: SocketAddr,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let auth = format!("Bearer {token}");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut headers = vec![("Authorization", auth.as_str())];
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    request(addr, method, path, &headers, body.as_bytes()).await
}

fn key() -> MfaKey {
    MfaKey::from_bytes(b"api-enrollment-tests-mfa-key-0123456789").unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A `serve` with a known MFA key, a token and a registry user; returns the user's id.
async fn serve(env: &TestEnv) -> (TestApi, String, String) {
    let mut settings = env.settings();
    settings.mfa_key = Some(key());
    let api = TestApi::start(settings).await;
    let token = api.token(SCOPES).await;
    let user_id = create_user(&api, &token, "ana@example.com").await;
    (api, token, user_id)
}

/// Creates a registry user (no verification email) and returns their id.
async fn create_user(api: &TestApi, token: &str, email: &str) -> String {
    let created = call(
        api.addr,
        token,
        "POST",
        "/api/v2/users",
        Some(json!({"connection": "Username-Password-Authentication",
                    "email": email, "verify_email": false})),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    created.json()["user_id"].as_str().unwrap().to_owned()
}

/// Stores a TOTP enrollment as the enrollment page does (secret of a ticket, sealed for the
/// user), and returns its id and secret.
async fn enroll_totp(store: &Store, user_id: &str, ticket: &str) -> (String, TotpSecret) {
    enroll_totp_under(&key(), store, user_id, ticket).await
}

/// [`enroll_totp`] as a page under another MFA key did.
async fn enroll_totp_under(
    key: &MfaKey,
    store: &Store,
    user_id: &str,
    ticket: &str,
) -> (String, TotpSecret) {
    let secret = TotpSecret::for_ticket(key, &TicketToken::from_presented(ticket).hash());
    let sealed = secret.seal(key, user_id);
    let mut tx = store.pool().begin().await.unwrap();
    let e = Store::insert_enrollment(
        &mut tx,
        &NewEnrollment {
            user_id,
            factor: MfaFactor::Otp,
            name: None,
            identifier: None,
            secret_sealed: Some(&sealed),
            last_step: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (e.id, secret)
}

fn path(id: &str) -> String {
    id.replace('|', "%7C")
}

/// A six-digit code that is not the secret's code anywhere near now.
fn wrong_code(secret: &TotpSecret) -> String {
    let t = now();
    let near: Vec<String> = (0..6).map(|i| secret.code_at(t - 60 + i * 30)).collect();
    (0..)
        .map(|n| format!("{n:06}"))
        .find(|c| !near.contains(c))
        .unwrap()
}

async fn verify(api: &TestApi, token: &str, user_id: &str, code: &str) -> Answer {
    call(
        api.addr,
        token,
        "POST",
        &format!("/api/v2/x-herald/users/{}/otp-verifications", path(user_id)),
        Some(json!({"code": code})),
    )
    .await
}

#[tokio::test]
async fn enrollments_are_listed_in_auth0s_shape_and_deleted_once() {
    let env = TestEnv::new().await.unwrap();
    let (api, token, user_id) = serve(&env).await;
    let list_path = format!("/api/v2/users/{}/enrollments", path(&user_id));

    let empty = call(api.addr, &token, "GET", &list_path, None).await;
    assert_eq!((empty.status, empty.json()), (200, json!([])));

    let (totp_id, _) = enroll_totp(&api.store, &user_id, "ticket-1").await;
    let mut tx = api.store.pool().begin().await.unwrap();
    let email = Store::insert_enrollment(
        &mut tx,
        &NewEnrollment {
            user_id: &user_id,
            factor: MfaFactor::Email,
            name: None,
            identifier: Some("ana@example.com"),
            secret_sealed: None,
            last_step: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let listed = call(api.addr, &token, "GET", &list_path, None).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let body = listed.json();
    assert_eq!(body[0]["id"], totp_id.as_str());
    assert_eq!(body[0]["status"], "confirmed");
    assert_eq!(body[0]["type"], "authenticator");
    assert_eq!(body[0]["auth_method"], "authenticator");
    assert!(body[0]["enrolled_at"].as_str().unwrap().ends_with('Z'));
    assert!(body[0].get("last_auth").is_none(), "{body}");
    assert_eq!(
        body[1],
        json!({"id": email.id, "status": "confirmed", "type": "email",
               "identifier": "ana@example.com", "auth_method": "email",
               "enrolled_at": body[1]["enrolled_at"]})
    );
    assert!(!listed.body.contains("secret"), "{}", listed.body);

    let unknown = call(
        api.addr,
        &token,
        "GET",
        "/api/v2/users/auth0%7Cnobody/enrollments",
        None,
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["errorCode"], "inexistent_user");

    let delete_path = format!("/api/v2/guardian/enrollments/{}", path(&totp_id));
    let deleted = call(api.addr, &token, "DELETE", &delete_path, None).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    let again = call(api.addr, &token, "DELETE", &delete_path, None).await;
    assert_eq!(again.status, 404, "{again:?}");
    assert_eq!(
        again.json(),
        json!({"statusCode": 404, "error": "Not Found",
               "message": "The enrollment does not exist.", "errorCode": "inexistent_enrollment"})
    );
    let left = call(api.addr, &token, "GET", &list_path, None).await.json();
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], email.id.as_str());
}

#[tokio::test]
async fn each_endpoint_needs_its_scope() {
    let env = TestEnv::new().await.unwrap();
    let (api, _, user_id) = serve(&env).await;
    let (totp_id, secret) = enroll_totp(&api.store, &user_id, "ticket-1").await;
    let reader = api.token("read:users").await;
    let deleter = api.token("delete:guardian_enrollments").await;

    let delete_path = format!("/api/v2/guardian/enrollments/{}", path(&totp_id));
    let refused = call(api.addr, &reader, "DELETE", &delete_path, None).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert_eq!(
        refused.json()["message"],
        "Insufficient scope, expected any of: delete:guardian_enrollments"
    );
    let refused = verify(&api, &reader, &user_id, &secret.code_at(now())).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(refused.body.contains("verify:mfa_otp"));
    let list_path = format!("/api/v2/users/{}/enrollments", path(&user_id));
    let refused = call(api.addr, &deleter, "GET", &list_path, None).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    // Nothing was deleted or used.
    assert_eq!(api.store.list_enrollments(&user_id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_login_code_is_valid_once_and_wrong_or_replayed_codes_are_refused() {
    let env = TestEnv::new().await.unwrap();
    let (api, token, user_id) = serve(&env).await;
    let (totp_id, secret) = enroll_totp(&api.store, &user_id, "ticket-1").await;

    let code = secret.code_at(now());
    let valid = verify(&api, &token, &user_id, &code).await;
    assert_eq!(valid.status, 200, "{valid:?}");
    assert_eq!(
        valid.json(),
        json!({"valid": true, "enrollment_id": totp_id})
    );
    assert!(!valid.body.contains(&secret.base32()));

    let replayed = verify(&api, &token, &user_id, &code).await;
    assert_eq!(replayed.status, 200, "{replayed:?}");
    assert_eq!(replayed.json()["valid"], false);
    assert_eq!(replayed.json()["reason"], "code_already_used");

    let wrong = verify(&api, &token, &user_id, &wrong_code(&secret)).await;
    assert_eq!(wrong.json()["valid"], false);
    assert_eq!(wrong.json()["reason"], "invalid_code");
    assert_eq!(wrong.json()["attempts_remaining"], 3);

    // The successful check is noted.
    let listed = api.store.list_enrollments(&user_id).await.unwrap();
    assert!(listed[0].last_auth.is_some());

    // Not six digits: refused the same way; too long: a 400.
    let letters = verify(&api, &token, &user_id, "abcdef").await;
    assert_eq!(letters.json()["reason"], "invalid_code");
    let long = verify(&api, &token, &user_id, &"1".repeat(17)).await;
    assert_eq!(long.status, 400, "{long:?}");
    let extra = call(
        api.addr,
        &token,
        "POST",
        &format!(
            "/api/v2/x-herald/users/{}/otp-verifications",
            path(&user_id)
        ),
        Some(json!({"code": "123456", "secret": "x"})),
    )
    .await;
    assert_eq!(extra.status, 400, "{extra:?}");

    // A user without an otp enrollment.
    let none = verify(&api, &token, "auth0|nobody", "123456").await;
    assert_eq!(none.status, 404, "{none:?}");
    assert_eq!(none.json()["errorCode"], "inexistent_enrollment");

    // A deleted enrollment no longer checks codes.
    let delete_path = format!("/api/v2/guardian/enrollments/{}", path(&totp_id));
    assert_eq!(
        call(api.addr, &token, "DELETE", &delete_path, None)
            .await
            .status,
        204
    );
    let gone = verify(&api, &token, &user_id, &secret.code_at(now() + 30)).await;
    assert_eq!(gone.status, 404, "{gone:?}");
}

/// The sealed secret of an enrollment, as stored.
async fn sealed(store: &Store, enrollment_id: &str) -> Vec<u8> {
    sqlx::query_scalar("SELECT secret_sealed FROM mfa_enrollments WHERE id = $1")
        .bind(enrollment_id)
        .fetch_one(store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn after_a_key_change_secrets_are_resealed_under_the_new_key_and_the_old_one_can_go() {
    use herald_mfa::MfaKeys;
    use herald_mfa::seal::is_sealed_under;

    let env = TestEnv::new().await.unwrap();
    let old = key();
    let new = MfaKey::from_bytes(b"api-enrollment-tests-the-next-mfa-key-0123").unwrap();
    let lost = MfaKey::from_bytes(b"api-enrollment-tests-a-key-nobody-kept-0123").unwrap();
    // HERALD_MFA_KEY is the new key; the old one is kept in HERALD_MFA_PREVIOUS_KEYS.
    let mut settings = env.settings();
    settings.mfa_key = Some(new.clone());
    settings.mfa_previous_keys = vec![old.clone()];
    let api = TestApi::start(settings.clone()).await;
    let token = api.token(SCOPES).await;
    let ana = create_user(&api, &token, "ana@example.com").await;
    let bo = create_user(&api, &token, "bo@example.com").await;
    let cy = create_user(&api, &token, "cy@example.com").await;
    let (ana_totp, ana_secret) = enroll_totp_under(&old, &api.store, &ana, "t-ana").await;
    let (bo_totp, bo_secret) = enroll_totp_under(&old, &api.store, &bo, "t-bo").await;
    let (cy_totp, _) = enroll_totp_under(&lost, &api.store, &cy, "t-cy").await;

    // A login check opens a secret under the old key, and moves it to the new one.
    let valid = verify(&api, &token, &ana, &ana_secret.code_at(now())).await;
    assert_eq!(valid.json()["valid"], true, "{valid:?}");
    assert!(is_sealed_under(&new, &sealed(&api.store, &ana_totp).await));
    assert!(is_sealed_under(&old, &sealed(&api.store, &bo_totp).await));

    // `herald mfa reseal` moves the rest, and reports the one no key opens.
    let keys = MfaKeys::new(new.clone(), vec![old.clone()]);
    let report = herald_app::reseal_mfa_secrets(&api.store, &keys)
        .await
        .unwrap();
    assert_eq!(report.resealed, 1, "{report:?}");
    assert_eq!(report.unopened.len(), 1, "{report:?}");
    assert_eq!(report.unopened[0].0, cy_totp);
    assert!(is_sealed_under(&new, &sealed(&api.store, &bo_totp).await));
    assert!(is_sealed_under(&lost, &sealed(&api.store, &cy_totp).await));
    // Run again, there is nothing left it can do.
    let again = herald_app::reseal_mfa_secrets(&api.store, &keys)
        .await
        .unwrap();
    assert_eq!((again.resealed, again.unopened.len()), (0, 1));

    // The old key dropped: every secret it sealed still checks codes.
    settings.mfa_previous_keys = Vec::new();
    let after = TestApi::start(settings).await;
    let valid = verify(&after, &token, &bo, &bo_secret.code_at(now())).await;
    assert_eq!(valid.json()["valid"], true, "{valid:?}");
    assert_eq!(valid.json()["enrollment_id"], bo_totp.as_str());
}

#[tokio::test]
async fn login_checks_are_limited_per_user_and_a_success_resets_the_count() {
    let env = TestEnv::new().await.unwrap();
    let (api, token, user_id) = serve(&env).await;
    let (_, secret) = enroll_totp(&api.store, &user_id, "ticket-1").await;
    let wrong = wrong_code(&secret);

    for remaining in (0..herald_api::enrollments::OTP_ATTEMPTS).rev() {
        let answer = verify(&api, &token, &user_id, &wrong).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        assert_eq!(answer.json()["attempts_remaining"], remaining);
    }
    // Even the right code is refused now, until the window passes.
    let limited = verify(&api, &token, &user_id, &secret.code_at(now())).await;
    assert_eq!(limited.status, 429, "{limited:?}");
    assert_eq!(limited.json()["errorCode"], "too_many_attempts");
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!(
        wait > 0 && wait <= herald_api::enrollments::OTP_WINDOW.as_secs(),
        "{wait}"
    );

    // Another user is not affected; their success clears only their own count.
    let bob = create_user(&api, &token, "bob@example.com").await;
    let (_, bob_secret) = enroll_totp(&api.store, &bob, "ticket-2").await;
    let bob_wrong = verify(&api, &token, &bob, &wrong_code(&bob_secret)).await;
    assert_eq!(
        bob_wrong.json()["attempts_remaining"],
        herald_api::enrollments::OTP_ATTEMPTS - 1
    );
    let bob_valid = verify(&api, &token, &bob, &bob_secret.code_at(now())).await;
    assert_eq!(bob_valid.json()["valid"], true, "{bob_valid:?}");
    let bob_after = verify(&api, &token, &bob, &wrong_code(&bob_secret)).await;
    assert_eq!(
        bob_after.json()["attempts_remaining"],
        herald_api::enrollments::OTP_ATTEMPTS - 1
    );
    assert_eq!(verify(&api, &token, &user_id, &wrong).await.status, 429);
}

#[tokio::test]
async fn tickets_for_factors_herald_cannot_enroll_are_refused() {
    let env = TestEnv::new().await.unwrap();
    let (api, token, user_id) = serve(&env).await;
    for factor in [
        "phone",
        "push-notification",
        "webauthn-roaming",
        "webauthn-platform",
    ] {
        let answer = call(
            api.addr,
            &token,
            "POST",
            "/api/v2/guardian/enrollments/ticket",
            Some(json!({"user_id": user_id, "factor": factor})),
        )
        .await;
        assert_eq!(answer.status, 400, "{factor}: {answer:?}");
        assert!(
            answer.json()["message"]
                .as_str()
                .unwrap()
                .contains(&format!("cannot enroll the {factor} factor")),
            "{answer:?}"
        );
    }
}
