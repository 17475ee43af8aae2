//! The Management API against real services: a `herald serve` built as the binary builds it
//! (its own database, vhost and SMTP sink), called over HTTP the way Auth0's SDKs call Auth0,
//! and, where an email is involved, a real worker delivering it.

use std::net::SocketAddr;

use herald_domain::{TicketToken, TokenHash};
use herald_testkit::env::{TestApi, TestEnv, TestWorker};
use herald_testkit::http::{Answer, request};
use serde_json::{Value, json};

const ALL: &str = "read:users create:users update:users delete:users create:user_tickets \
                   create:guardian_enrollment_tickets";

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

fn assert_error(answer: &Answer, status: u16, message: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    let body = answer.json();
    assert_eq!(body["statusCode"], status, "{body}");
    assert!(body["error"].is_string(), "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains(message),
        "expected {message:?} in {body}"
    );
}

/// Settings for a `serve` and a `worker` that share HERALD_TICKET_SECRET, as the README requires.
fn shared_secret(env: &TestEnv) -> herald_app::Settings {
    let mut settings = env.settings();
    settings.ticket_secret = Some(
        herald_domain::TicketSecret::from_bytes(b"api-tests-ticket-secret-0123456789abcdef")
            .unwrap(),
    );
    settings
}

/// A `serve` and a `worker` sharing HERALD_TICKET_SECRET, and a token with every scope.
async fn serve_and_work(env: &TestEnv) -> (TestApi, TestWorker, String) {
    let settings = shared_secret(env);
    let api = TestApi::start(settings.clone()).await;
    let worker = env.spawn_worker(settings).await;
    let token = api.token(ALL).await;
    (api, worker, token)
}

/// How many verification emails the ledger holds for the user.
async fn verification_jobs(api: &TestApi, user_id: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM email_jobs WHERE user_id = $1 AND type = 'verification_email'",
    )
    .bind(user_id)
    .fetch_one(api.store.pool())
    .await
    .unwrap()
}

async fn create_user(api: &TestApi, token: &str, body: Value) -> Value {
    let answer = call(api.addr, token, "POST", "/api/v2/users", Some(body)).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.json()
}

#[tokio::test]
async fn tokens_scopes_and_rate_limits_behave_like_auth0s() {
    let env = TestEnv::new().await.unwrap();
    let mut settings = env.settings();
    settings.api_rate_limit = 5;
    let api = TestApi::start(settings).await;

    let none = request(api.addr, "GET", "/api/v2/users/auth0%7Cx", &[], b"").await;
    assert_error(&none, 401, "Missing authentication");
    assert!(
        none.header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    let bad = call(
        api.addr,
        "hrld_nope",
        "GET",
        "/api/v2/users/auth0%7Cx",
        None,
    )
    .await;
    assert_error(&bad, 401, "Invalid token");

    let reader = api.token("read:users").await;
    let forbidden = call(
        api.addr,
        &reader,
        "POST",
        "/api/v2/users",
        Some(json!({"connection": "c"})),
    )
    .await;
    assert_error(
        &forbidden,
        403,
        "Insufficient scope, expected any of: create:users",
    );
    assert_eq!(forbidden.json()["errorCode"], "insufficient_scope");

    // Every answer carries the limit; the sixth request in a burst of five is refused.
    let mut remaining = Vec::new();
    for _ in 0..4 {
        let a = call(api.addr, &reader, "GET", "/api/v2/users/auth0%7Cx", None).await;
        assert_eq!(a.header("x-ratelimit-limit"), Some("5"));
        assert!(
            a.header("x-ratelimit-reset")
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 1_700_000_000
        );
        remaining.push(a.header("x-ratelimit-remaining").unwrap().to_owned());
    }
    assert_eq!(remaining, ["3", "2", "1", "0"]);
    let limited = call(api.addr, &reader, "GET", "/api/v2/users/auth0%7Cx", None).await;
    assert_error(&limited, 429, "Global limit has been reached");
    assert_eq!(limited.json()["errorCode"], "too_many_requests");
    assert!(limited.header("retry-after").is_some());

    // Guessing tokens is limited per client address: 10 a second, then 429.
    let mut statuses = Vec::new();
    for i in 0..15 {
        let guess = format!("hrld_guess{i}");
        statuses.push(
            call(api.addr, &guess, "GET", "/api/v2/users/auth0%7Cx", None)
                .await
                .status,
        );
    }
    // Two failures above already counted; the bucket refills at 10 a second meanwhile.
    let first_refusal = statuses.iter().position(|s| *s == 429).expect("a refusal");
    assert!((8..=10).contains(&first_refusal), "{statuses:?}");
    assert!(
        statuses[..first_refusal].iter().all(|s| *s == 401),
        "{statuses:?}"
    );
    let refused = statuses[first_refusal..]
        .iter()
        .filter(|s| **s == 429)
        .count();
    assert!(refused * 2 > statuses.len() - first_refusal, "{statuses:?}");

    // A revoked token stops working at once (after the address's bucket has refilled).
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    assert!(api.store.revoke_api_token("test").await.unwrap());
    let revoked = call(api.addr, &reader, "GET", "/api/v2/users/auth0%7Cx", None).await;
    assert_error(&revoked, 401, "Invalid token");
    api.stop().await;
}

#[tokio::test]
async fn users_are_created_read_patched_and_deleted() {
    let env = TestEnv::new().await.unwrap();
    let api = TestApi::start(env.settings()).await;
    let token = api.token(ALL).await;

    let user = create_user(
        &api,
        &token,
        json!({"connection": "Username-Password-Authentication", "email": "ana@example.com",
               "name": "Ana <b>Lima</b>", "password": "correct horse battery",
               "user_metadata": {"lang": "ja", "theme": "dark"}}),
    )
    .await;
    let id = user["user_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("auth0|"), "{user}");
    assert_eq!(user["name"], "Ana <b>Lima</b>");
    assert!(user.get("password").is_none() && !user.to_string().contains("horse"));
    assert_eq!(user["identities"][0]["provider"], "auth0");
    // The password is stored as an argon2id hash only.
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE user_id = $1")
        .bind(&id)
        .fetch_one(api.store.pool())
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");

    let again = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/users",
        Some(json!({"connection": "Username-Password-Authentication", "email": "ANA@example.com"})),
    )
    .await;
    assert_error(&again, 409, "already exists");

    // As in Auth0, a new user with an unverified email is sent the verification email.
    assert_eq!(verification_jobs(&api, &id).await, 1);

    let path = format!("/api/v2/users/{}", id.replace('|', "%7C"));
    let got = call(api.addr, &token, "GET", &path, None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["email"], "ana@example.com");

    // Metadata is merged on the first level; null removes a key.
    let patched = call(
        api.addr,
        &token,
        "PATCH",
        &path,
        Some(json!({"user_metadata": {"theme": null, "tz": "UTC"}, "email_verified": true})),
    )
    .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(
        patched.json()["user_metadata"],
        json!({"lang": "ja", "tz": "UTC"})
    );
    assert_eq!(patched.json()["email_verified"], true);

    let by_email = call(
        api.addr,
        &token,
        "GET",
        "/api/v2/users-by-email?email=ana%40example.com&include_fields=true",
        None,
    )
    .await;
    assert_eq!(by_email.json().as_array().unwrap().len(), 1);

    assert_eq!(
        call(api.addr, &token, "DELETE", &path, None).await.status,
        204
    );
    let gone = call(api.addr, &token, "GET", &path, None).await;
    assert_error(&gone, 404, "The user does not exist.");
    assert_eq!(gone.json()["errorCode"], "inexistent_user");
    api.stop().await;
}

#[tokio::test]
async fn a_patch_with_verify_email_sends_the_verification_email_to_the_new_address_only() {
    let env = TestEnv::new().await.unwrap();
    let (api, worker, token) = serve_and_work(&env).await;
    // A verified user: creating it sends nothing.
    let user = create_user(
        &api,
        &token,
        json!({"connection": "Username-Password-Authentication", "email": "eve@example.com",
               "email_verified": true}),
    )
    .await;
    let id = user["user_id"].as_str().unwrap().to_owned();
    let path = format!("/api/v2/users/{}", id.replace('|', "%7C"));

    // No email: a new address with verify_email false or absent, the same address (in another
    // case) or another field with verify_email true. The address stays verified meanwhile.
    for body in [
        json!({"email": "eve.two@example.com", "verify_email": false}),
        json!({"email": "eve.three@example.com"}),
        json!({"email": "EVE.three@example.com", "verify_email": true}),
        json!({"name": "Eve", "verify_email": true}),
    ] {
        let answer = call(api.addr, &token, "PATCH", &path, Some(body.clone())).await;
        assert_eq!(answer.status, 200, "{body}: {answer:?}");
        assert_eq!(answer.json()["email_verified"], true, "{body}");
    }
    assert_eq!(
        verification_jobs(&api, &id).await,
        0,
        "no verification email was enqueued"
    );

    // A new address to be verified: unverified (whatever email_verified says), and the email
    // goes to it.
    let changed = call(
        api.addr,
        &token,
        "PATCH",
        &path,
        Some(json!({"email": "eve.new@example.com", "verify_email": true,
                    "email_verified": true})),
    )
    .await;
    assert_eq!(changed.status, 200, "{changed:?}");
    assert_eq!(changed.json()["email"], "eve.new@example.com");
    assert_eq!(changed.json()["email_verified"], false);
    assert_eq!(verification_jobs(&api, &id).await, 1);
    let mails = env.expect_mail(1).await;
    let parsed = mails[0].parsed();
    assert_eq!(parsed.to(), ["eve.new@example.com"]);
    assert!(
        parsed
            .text()
            .unwrap()
            .contains("/u/email-verification?ticket="),
        "the email has the verification link"
    );
    let job_id: String = sqlx::query_scalar("SELECT id FROM email_jobs WHERE user_id = $1")
        .bind(&id)
        .fetch_one(api.store.pool())
        .await
        .unwrap();
    env.wait_status(&job_id, "sent").await;
    assert_eq!(
        env.sink.count(),
        1,
        "only the one verification email was sent"
    );

    worker.stop().await.unwrap();
    api.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_4xx_in_auth0s_words_and_writes_nothing() {
    let env = TestEnv::new().await.unwrap();
    let api = TestApi::start(env.settings()).await;
    let token = api.token(ALL).await;
    let auth = format!("Bearer {token}");
    let post = |body: &'static [u8], content_type: &'static str| {
        let auth = auth.clone();
        let addr = api.addr;
        async move {
            request(
                addr,
                "POST",
                "/api/v2/users",
                &[
                    ("Authorization", auth.as_str()),
                    ("Content-Type", content_type),
                ],
                body,
            )
            .await
        }
    };

    let unknown = post(br#"{"connection":"c","ttl":1}"#, "application/json").await;
    assert_error(&unknown, 400, "Additional properties not allowed: ttl");
    assert_eq!(unknown.json()["errorCode"], "invalid_body");
    assert_error(
        &post(b"{\"connection\":", "application/json").await,
        400,
        "Invalid JSON",
    );
    assert_error(
        &post(b"[1,2]", "application/json").await,
        400,
        "found type array",
    );
    assert_error(
        &post(br#"{"connection":"c","blocked":"yes"}"#, "application/json").await,
        400,
        "boolean",
    );
    assert_error(
        &post(b"\xff\xfe", "application/json").await,
        400,
        "Invalid JSON",
    );
    assert_error(
        &post(
            b"connection=c&connection=d",
            "application/x-www-form-urlencoded",
        )
        .await,
        400,
        "more than once",
    );
    assert_error(
        &post(b"<xml/>", "text/xml").await,
        415,
        "Unsupported Content-Type",
    );
    let crlf = post(
        br#"{"connection":"c","email":"a@example.com","name":"Ana\r\nBcc: x@evil.test"}"#,
        "application/json",
    )
    .await;
    assert_error(&crlf, 400, "control characters");
    let long = format!(r#"{{"connection":"c","name":"{}"}}"#, "n".repeat(10_000));
    let long = request(
        api.addr,
        "POST",
        "/api/v2/users",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        long.as_bytes(),
    )
    .await;
    assert_error(&long, 400, "too long");
    let huge = format!(
        r#"{{"connection":"c","user_metadata":{{"x":"{}"}}}}"#,
        "x".repeat(100_000)
    );
    let huge = request(
        api.addr,
        "POST",
        "/api/v2/users",
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        huge.as_bytes(),
    )
    .await;
    assert_error(&huge, 413, "too large");

    // The form encoding goes through the same schema.
    let form = post(b"connection=Username-Password-Authentication&email=bo%40example.com&email_verified=true&user_metadata=%7B%22lang%22%3A%22fr%22%7D",
        "application/x-www-form-urlencoded").await;
    assert_eq!(form.status, 201, "{form:?}");
    assert_eq!(form.json()["email_verified"], true);
    assert_eq!(form.json()["user_metadata"]["lang"], "fr");

    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(api.store.pool())
        .await
        .unwrap();
    assert_eq!(users, 1, "only the valid request wrote a user");
    let unmatched = call(api.addr, &token, "GET", "/api/v2/nothing-here", None).await;
    assert_error(&unmatched, 404, "Not Found");
    let wrong_method = call(
        api.addr,
        &token,
        "PUT",
        "/api/v2/users/auth0%7Cx",
        Some(json!({})),
    )
    .await;
    assert_error(&wrong_method, 405, "Method Not Allowed");
    let bad_path = call(api.addr, &token, "GET", "/api/v2/users/%FF%FE", None).await;
    assert_error(&bad_path, 400, "Path validation error");
    assert_eq!(bad_path.json()["errorCode"], "invalid_uri");
    api.stop().await;
}

#[tokio::test]
async fn tickets_are_issued_hashed_under_the_contracts_rules() {
    let env = TestEnv::new().await.unwrap();
    let mut settings = env.settings();
    settings.allowed_custom_domains = vec!["login.acme.test".into()];
    let api = TestApi::start(settings).await;
    let token = api.token(ALL).await;
    let user = create_user(
        &api,
        &token,
        json!({"connection": "Username-Password-Authentication",
        "email": "cy@example.com"}),
    )
    .await;
    let id = user["user_id"].as_str().unwrap();

    let made = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/tickets/email-verification",
        Some(
            json!({"user_id": id, "ttl_sec": 3600, "result_url": "https://app.test/done",
                    "includeEmailInRedirect": true}),
        ),
    )
    .await;
    assert_eq!(made.status, 201, "{made:?}");
    let link = made.json()["ticket"].as_str().unwrap().to_owned();
    assert!(
        link.starts_with("https://id.herald.test/u/email-verification?ticket="),
        "{link}"
    );
    assert!(link.ends_with('#'), "{link}");
    // Only the hash is stored, with no job behind it.
    let presented = link.split("ticket=").nth(1).unwrap().trim_end_matches('#');
    let hash: TokenHash = TicketToken::from_presented(presented).hash();
    let stored = api
        .store
        .ticket_by_hash(&hash)
        .await
        .unwrap()
        .expect("the ticket is stored by its hash");
    assert_eq!(stored.user_id, id);
    assert!(stored.job_id.is_none());
    assert!(!format!("{stored:?}").contains(presented));

    let both = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/tickets/email-verification",
        Some(json!({"user_id": id, "result_url": "https://app.test/", "client_id": "c1"})),
    )
    .await;
    assert_error(
        &both,
        400,
        "result_url cannot be specified when using client_id",
    );
    let negative = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/tickets/email-verification",
        Some(json!({"user_id": id, "ttl_sec": -1})),
    )
    .await;
    assert_error(&negative, 400, "ttl_sec");
    let nobody = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/tickets/email-verification",
        Some(json!({"user_id": "auth0|nobody"})),
    )
    .await;
    assert_error(&nobody, 404, "The user does not exist.");
    let no_org = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/tickets/email-verification",
        Some(json!({"user_id": id, "organization_id": "org_missing"})),
    )
    .await;
    assert_error(&no_org, 400, "The organization does not exist");

    // The custom domain header sets the link's host, and only a configured domain may.
    let auth = format!("Bearer {token}");
    let body = json!({"user_id": id}).to_string();
    let custom = request(
        api.addr,
        "POST",
        "/api/v2/tickets/password-change",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("auth0-custom-domain", "login.acme.test"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(custom.status, 201, "{custom:?}");
    assert!(
        custom.json()["ticket"]
            .as_str()
            .unwrap()
            .starts_with("https://login.acme.test/u/reset-password?ticket=")
    );
    let other = request(
        api.addr,
        "POST",
        "/api/v2/tickets/password-change",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("auth0-custom-domain", "evil.test"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_error(&other, 400, "not configured");

    // email + connection_id instead of user_id; not both.
    let connection = herald_api::connections::id_of("Username-Password-Authentication");
    let by_email = call(api.addr, &token, "POST", "/api/v2/tickets/password-change",
        Some(json!({"email": "cy@example.com", "connection_id": connection, "mark_email_as_verified": true}))).await;
    assert_eq!(by_email.status, 201, "{by_email:?}");
    let mixed = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/tickets/password-change",
        Some(json!({"user_id": id, "email": "cy@example.com", "connection_id": connection})),
    )
    .await;
    assert_error(&mixed, 400, "user_id cannot be specified");

    let phone = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/guardian/enrollments/ticket",
        Some(json!({"user_id": id, "factor": "phone"})),
    )
    .await;
    assert_error(&phone, 400, "cannot enroll the phone factor");
    let bogus = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/guardian/enrollments/ticket",
        Some(json!({"user_id": id, "factor": "carrier-pigeon"})),
    )
    .await;
    assert_eq!(bogus.status, 400, "{bogus:?}");
    let enroll = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/guardian/enrollments/ticket",
        Some(json!({"user_id": id, "factor": "otp"})),
    )
    .await;
    assert_eq!(enroll.status, 200, "{enroll:?}");
    assert!(
        enroll.json()["ticket_url"]
            .as_str()
            .unwrap()
            .contains("/u/mfa-enrollment?ticket=")
    );
    api.stop().await;
}

#[tokio::test]
async fn a_verification_job_is_published_sent_localized_and_reported_completed() {
    let env = TestEnv::new().await.unwrap();
    let (api, worker, token) = serve_and_work(&env).await;
    let user = create_user(
        &api,
        &token,
        json!({"connection": "Username-Password-Authentication",
        "email": "dai@example.com", "name": "Dai", "user_metadata": {"lang": "ja"},
        "verify_email": false}),
    )
    .await;
    let id = user["user_id"].as_str().unwrap();

    let job = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/jobs/verification-email",
        Some(json!({"user_id": id})),
    )
    .await;
    assert_eq!(job.status, 201, "{job:?}");
    let body = job.json();
    assert_eq!(body["type"], "verification_email");
    assert_eq!(body["status"], "pending");
    let job_id = body["id"].as_str().unwrap().to_owned();
    assert!(job_id.starts_with("job_") && job_id.len() == 20, "{job_id}");
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));

    let mail = env.expect_mail(1).await;
    let parsed = mail[0].parsed();
    assert_eq!(parsed.to(), ["dai@example.com"]);
    assert!(
        parsed.html().unwrap().contains("lang=\"ja\""),
        "the email is in Japanese"
    );
    let link = parsed
        .text()
        .unwrap()
        .split_whitespace()
        .find(|w| w.contains("/u/email-verification?ticket="))
        .expect("the email has the verification link")
        .to_owned();
    assert!(link.starts_with("https://id.herald.test/"), "{link}");

    let path = format!("/api/v2/jobs/{job_id}");
    let mut status = String::new();
    for _ in 0..100 {
        status = call(api.addr, &token, "GET", &path, None).await.json()["status"]
            .as_str()
            .unwrap()
            .to_owned();
        if status == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, "completed");
    let unknown = call(
        api.addr,
        &token,
        "GET",
        "/api/v2/jobs/job_0000000000000000",
        None,
    )
    .await;
    assert_error(&unknown, 404, "Job not found.");

    // An enrollment ticket with send_mail: the email carries the very ticket the API answered.
    let enroll = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/guardian/enrollments/ticket",
        Some(
            json!({"user_id": id, "send_mail": true, "email_locale": "fr",
                    "email": "dai.alt@example.com"}),
        ),
    )
    .await;
    assert_eq!(enroll.status, 200, "{enroll:?}");
    let url = enroll.json()["ticket_url"].as_str().unwrap().to_owned();
    let mails = env.expect_mail(2).await;
    let enrollment = mails
        .iter()
        .map(|m| m.parsed())
        .find(|p| p.to() == ["dai.alt@example.com"])
        .expect("the enrollment email went to the given address");
    assert!(
        enrollment.html().unwrap().contains("lang=\"fr\""),
        "the enrollment email is in French"
    );
    assert!(
        enrollment.text().unwrap().contains(&url),
        "the email carries {url}"
    );

    worker.stop().await.unwrap();
    api.stop().await;
}

#[tokio::test]
async fn health_readiness_and_request_metrics_are_served() {
    let env = TestEnv::new().await.unwrap();
    let api = TestApi::start(env.settings()).await;
    let token = api.token("read:users").await;
    assert_eq!(
        request(api.addr, "GET", "/healthz", &[], b"").await.status,
        200
    );
    let ready = request(api.addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 200, "{ready:?}");
    let _ = call(
        api.addr,
        &token,
        "GET",
        "/api/v2/users/auth0%7Cmissing",
        None,
    )
    .await;
    let metrics = request(api.addr, "GET", "/metrics", &[], b"").await.body;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("herald_http_requests_total{")
                && l.contains("route=\"/api/v2/users/{id}\"")
                && l.contains("status=\"404\"")),
        "{metrics}"
    );
    assert!(metrics.contains("herald_http_request_duration_seconds_bucket"));
    api.stop().await;
}

#[tokio::test]
async fn organizations_and_clients_are_the_registrys_own() {
    let env = TestEnv::new().await.unwrap();
    let api = TestApi::start(env.settings()).await;
    let token = api
        .token(&format!(
            "{ALL} read:organizations create:organizations update:organizations \
             delete:organizations read:clients create:clients update:clients delete:clients"
        ))
        .await;

    let org = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/organizations",
        Some(json!({
        "name": "acme", "display_name": "Acme <Corp>",
        "branding": {"logo_url": "https://acme.test/logo.png",
                     "colors": {"primary": "#0059d6", "page_background": "#ffffff"}},
        "metadata": {"herald_default_locale": "ja", "herald_from": "Acme <no-reply@acme.test>",
                     "tier": "gold"}})),
    )
    .await;
    assert_eq!(org.status, 201, "{org:?}");
    let org = org.json();
    let org_id = org["id"].as_str().unwrap().to_owned();
    assert!(org_id.starts_with("org_"), "{org}");
    assert_eq!(org["branding"]["colors"]["primary"], "#0059d6");
    assert_eq!(
        org["metadata"],
        json!({"herald_default_locale": "ja",
        "herald_from": "Acme <no-reply@acme.test>", "tier": "gold"})
    );
    // It is the organization `herald org` manages: Herald's settings are its columns.
    let stored = api.store.get_organization(&org_id).await.unwrap().unwrap();
    assert_eq!(stored.default_locale.as_deref(), Some("ja"));
    assert_eq!(
        stored.from_address.as_deref(),
        Some("Acme <no-reply@acme.test>")
    );
    assert_eq!(stored.display_name, "Acme <Corp>");

    let again = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/organizations",
        Some(json!({"name": "acme"})),
    )
    .await;
    assert_error(&again, 409, "already exists");
    let bad_colour = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/organizations",
        Some(json!({"name": "beta", "branding": {"colors": {"primary": "blue"}}})),
    )
    .await;
    assert_error(&bad_colour, 400, "#RRGGBB");
    let by_name = call(
        api.addr,
        &token,
        "GET",
        "/api/v2/organizations/name/acme",
        None,
    )
    .await;
    assert_eq!(by_name.json()["id"], org_id.as_str());
    let patched = call(api.addr, &token, "PATCH", &format!("/api/v2/organizations/{org_id}"),
        Some(json!({"display_name": "Acme", "metadata": {"tier": null, "herald_default_locale": "fr"}}))).await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(
        patched.json()["metadata"],
        json!({"herald_default_locale": "fr",
        "herald_from": "Acme <no-reply@acme.test>"})
    );

    let client = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/clients",
        Some(json!({
        "name": "Acme App", "callbacks": ["https://app.acme.test/callback"],
        "initiate_login_uri": "https://app.acme.test/login",
        "allowed_logout_urls": ["https://app.acme.test/"]})),
    )
    .await;
    assert_eq!(client.status, 201, "{client:?}");
    let client = client.json();
    let client_id = client["client_id"].as_str().unwrap().to_owned();
    assert_eq!(client_id.len(), 32);
    assert_eq!(
        client["callbacks"],
        json!(["https://app.acme.test/callback"])
    );
    let stored = api.store.get_client(&client_id).await.unwrap().unwrap();
    assert_eq!(
        stored.login_uri.as_deref(),
        Some("https://app.acme.test/login")
    );
    let bad_url = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/clients",
        Some(json!({"name": "x", "callbacks": ["javascript:alert(1)"]})),
    )
    .await;
    assert_error(&bad_url, 400, "not an absolute http(s) URL");

    // A ticket for that organization and client is accepted now.
    let user = create_user(
        &api,
        &token,
        json!({"connection": "Username-Password-Authentication",
        "email": "org@example.com", "verify_email": false}),
    )
    .await;
    let ticket = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/tickets/email-verification",
        Some(
            json!({"user_id": user["user_id"], "organization_id": org_id, "client_id": client_id}),
        ),
    )
    .await;
    assert_eq!(ticket.status, 201, "{ticket:?}");

    assert_eq!(
        call(
            api.addr,
            &token,
            "DELETE",
            &format!("/api/v2/clients/{client_id}"),
            None
        )
        .await
        .status,
        204
    );
    assert_error(
        &call(
            api.addr,
            &token,
            "GET",
            &format!("/api/v2/clients/{client_id}"),
            None,
        )
        .await,
        404,
        "client",
    );
    assert_eq!(
        call(
            api.addr,
            &token,
            "DELETE",
            &format!("/api/v2/organizations/{org_id}"),
            None
        )
        .await
        .status,
        204
    );
    assert_error(
        &call(
            api.addr,
            &token,
            "GET",
            &format!("/api/v2/organizations/{org_id}"),
            None,
        )
        .await,
        404,
        "organization",
    );
    api.stop().await;
}

#[tokio::test]
async fn jwt_access_tokens_are_checked_for_signature_issuer_audience_and_time() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    const SECRET: &[u8] = b"jwt-tests-shared-secret-0123456789abcdef";
    let env = TestEnv::new().await.unwrap();
    let mut settings = env.settings();
    settings.jwt_hs256_secret = Some(String::from_utf8(SECRET.to_vec()).unwrap().into());
    settings.jwt_issuer = Some("https://idp.test/".into());
    settings.jwt_audience = Some("https://herald.test/api/v2/".into());
    let api = TestApi::start(settings).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let sign = |claims: Value, key: &[u8]| {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(key).unwrap(),
        )
        .unwrap()
    };
    let good = json!({"iss": "https://idp.test/", "aud": "https://herald.test/api/v2/",
        "sub": "svc|1", "exp": now + 600, "nbf": now - 10, "scope": "read:users create:users"});
    let path = "/api/v2/users/auth0%7Cnobody";

    // A valid token: scopes from `scope`, or from Auth0's `permissions` array.
    let ok = call(api.addr, &sign(good.clone(), SECRET), "GET", path, None).await;
    assert_error(&ok, 404, "The user does not exist.");
    let mut by_permissions = good.clone();
    by_permissions["scope"] = json!("");
    by_permissions["permissions"] = json!(["read:users"]);
    assert_eq!(
        call(api.addr, &sign(by_permissions, SECRET), "GET", path, None)
            .await
            .status,
        404
    );
    let mut narrow = good.clone();
    narrow["scope"] = json!("create:users");
    assert_error(
        &call(api.addr, &sign(narrow, SECRET), "GET", path, None).await,
        403,
        "read:users",
    );

    let mut wrong_aud = good.clone();
    wrong_aud["aud"] = json!("https://other.test/");
    let mut wrong_iss = good.clone();
    wrong_iss["iss"] = json!("https://evil.test/");
    let mut expired = good.clone();
    expired["exp"] = json!(now - 3600);
    let mut early = good.clone();
    early["nbf"] = json!(now + 3600);
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    for (claims, key, why) in [
        (wrong_aud, SECRET, "Bad audience"),
        (wrong_iss, SECRET, "Bad issuer"),
        (expired, SECRET, "Expired token"),
        (early, SECRET, "not yet valid"),
        (no_exp, SECRET, "Invalid token"),
        (
            good.clone(),
            b"another-secret-of-enough-length-000000".as_slice(),
            "Invalid signature",
        ),
    ] {
        let answer = call(api.addr, &sign(claims, key), "GET", path, None).await;
        assert_error(&answer, 401, why);
        assert!(answer.header("www-authenticate").is_some());
    }
    // `alg: none` is refused whatever it claims.
    let unsigned = format!(
        "{}.{}.",
        base64_url(br#"{"alg":"none","typ":"JWT"}"#),
        base64_url(good.to_string().as_bytes())
    );
    assert_error(
        &call(api.addr, &unsigned, "GET", path, None).await,
        401,
        "Invalid token",
    );
    api.stop().await;
}

/// An RSA key pair of a test identity provider, made for the test (no key is checked in).
struct RsaSigner {
    kid: String,
    key: jsonwebtoken::EncodingKey,
    /// The public key as its JWKS entry.
    jwk: Value,
    /// The public key's PKCS#1 DER and PEM, for the algorithm-confusion attempts.
    public_der: Vec<u8>,
    public_pem: String,
}

impl RsaSigner {
    fn generate(kid: &str) -> RsaSigner {
        use rsa::Generate;
        use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
        let private = rsa::PrivateKey::generate();
        let key =
            jsonwebtoken::EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes());
        let mut jwk =
            jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::RS256)
                .unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        let public = private.to_public_key();
        RsaSigner {
            kid: kid.to_owned(),
            key,
            jwk: serde_json::to_value(&jwk).unwrap(),
            public_der: public.to_pkcs1_der().unwrap().as_bytes().to_vec(),
            public_pem: public
                .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
                .unwrap()
                .to_string(),
        }
    }

    /// An RS256 token with this key, under `kid`.
    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }
}

/// The two key pairs the JWKS tests share (generating one takes a moment).
fn rsa_signers() -> &'static [RsaSigner; 2] {
    static SIGNERS: std::sync::OnceLock<[RsaSigner; 2]> = std::sync::OnceLock::new();
    SIGNERS.get_or_init(|| [RsaSigner::generate("key-a"), RsaSigner::generate("key-b")])
}

/// A test identity provider's JWKS endpoint on a loopback port: serves the keys it is given
/// (or a 500 when given none) and counts the fetches.
struct JwksServer {
    url: url::Url,
    keys: std::sync::Arc<std::sync::Mutex<Option<Vec<Value>>>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl JwksServer {
    async fn start(keys: Option<Vec<Value>>) -> JwksServer {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let keys = Arc::new(std::sync::Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (Arc::clone(&keys), Arc::clone(&fetches));
        let app = axum::Router::new().route(
            "/.well-known/jwks.json",
            axum::routing::get(move || {
                let (served, counted) = (Arc::clone(&served), Arc::clone(&counted));
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let keys = served.lock().unwrap().clone();
                    keys.map(|keys| axum::Json(json!({ "keys": keys })))
                        .ok_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        JwksServer {
            url: format!("http://{addr}/.well-known/jwks.json")
                .parse()
                .unwrap(),
            keys,
            fetches,
        }
    }

    fn serve(&self, keys: Option<Vec<Value>>) {
        *self.keys.lock().unwrap() = keys;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

const ISSUER: &str = "https://idp.test/";
const AUDIENCE: &str = "https://herald.test/api/v2/";

/// Claims Herald accepts: this issuer and audience, valid now, with `extra` added.
fn claims(extra: Value) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "svc|rs",
        "iat": now, "nbf": now - 10, "exp": now + 600});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    claims
}

fn assert_unauthorized(answer: &Answer, message: &str) {
    assert_error(answer, 401, message);
    assert!(
        answer
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{answer:?}"
    );
}

#[tokio::test]
async fn rs256_tokens_are_checked_against_the_jwks_and_a_rotated_key_is_fetched() {
    const SECRET: &[u8] = b"jwt-tests-shared-secret-0123456789abcdef";
    let [a, b] = rsa_signers();
    let idp = JwksServer::start(Some(vec![a.jwk.clone()])).await;
    let env = TestEnv::new().await.unwrap();
    let mut settings = env.settings();
    // Both key kinds at once; the issuer and audience apply to both.
    settings.jwt_jwks_url = Some(idp.url.clone());
    settings.jwt_hs256_secret = Some(String::from_utf8(SECRET.to_vec()).unwrap().into());
    settings.jwt_issuer = Some(ISSUER.into());
    settings.jwt_audience = Some(AUDIENCE.into());
    let api = TestApi::start(settings).await;
    assert_eq!(idp.fetches(), 1, "the keys are fetched at startup");
    let path = "/api/v2/users/auth0%7Cnobody";
    let addr = api.addr;
    let get = |token: String| async move { call(addr, &token, "GET", path, None).await };

    // Valid tokens: scopes from Auth0's `permissions` array, or from `scope`.
    let by_permissions = a.sign(&claims(json!({"permissions": ["read:users"]})));
    assert_error(&get(by_permissions).await, 404, "The user does not exist.");
    let by_scope = a.sign(&claims(json!({"scope": "openid read:users"})));
    assert_error(&get(by_scope).await, 404, "The user does not exist.");
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(json!({"scope": "read:users"})),
        &jsonwebtoken::EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap();
    assert_error(&get(hs256).await, 404, "The user does not exist.");
    let narrow = a.sign(&claims(json!({"permissions": ["create:users"]})));
    assert_error(
        &get(narrow).await,
        403,
        "Insufficient scope, expected any of: read:users",
    );

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let scoped = |extra: Value| {
        let mut c = claims(json!({"permissions": ["read:users"]}));
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    for (token, why) in [
        (
            a.sign(&scoped(json!({"aud": "https://other.test/"}))),
            "Bad audience",
        ),
        (
            a.sign(&scoped(json!({"iss": "https://evil.test/"}))),
            "Bad issuer",
        ),
        (
            a.sign(&scoped(json!({"exp": now - 3600, "nbf": now - 7200}))),
            "Expired token",
        ),
        (
            a.sign(&scoped(json!({"nbf": now + 3600}))),
            "Token not yet valid",
        ),
        // Signed with a key the IdP does not publish, under a kid it does.
        (b.sign_as(&a.kid, &scoped(json!({}))), "Invalid signature"),
    ] {
        assert_unauthorized(&get(token).await, why);
    }
    // Algorithm confusion: HS256 "signed" with the RSA public key, under its kid, and `none`.
    for public in [a.public_der.as_slice(), a.public_pem.as_bytes()] {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(a.kid.clone());
        let forged = jsonwebtoken::encode(
            &header,
            &scoped(json!({})),
            &jsonwebtoken::EncodingKey::from_secret(public).unwrap(),
        )
        .unwrap();
        assert_unauthorized(&get(forged).await, "Invalid signature");
    }
    let unsigned = format!(
        "{}.{}.",
        base64_url(format!(r#"{{"alg":"none","kid":"{}"}}"#, a.kid).as_bytes()),
        base64_url(scoped(json!({})).to_string().as_bytes())
    );
    assert_unauthorized(&get(unsigned).await, "Invalid token");
    assert_eq!(idp.fetches(), 1, "a known kid needs no fetch");
    // Failed authentications are limited to 10 a second per address: let the bucket refill.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;

    // Rotation: the IdP now signs with key B and publishes only it. The first token under the
    // new kid makes Herald fetch the set again; key A, gone from it, is no longer accepted.
    idp.serve(Some(vec![b.jwk.clone()]));
    let rotated = b.sign(&scoped(json!({})));
    assert_error(&get(rotated).await, 404, "The user does not exist.");
    assert_eq!(idp.fetches(), 2);
    assert_unauthorized(&get(a.sign(&scoped(json!({})))).await, "Invalid token");

    // Unknown kids are refused, and fetch the set at most once a minute: no fetch now.
    for kid in ["nope-1", "nope-2", "nope-3"] {
        assert_unauthorized(
            &get(b.sign_as(kid, &scoped(json!({})))).await,
            "Invalid token",
        );
    }
    assert_eq!(idp.fetches(), 2, "unknown kids do not hammer the IdP");
    api.stop().await;
}

#[tokio::test]
async fn an_unreachable_jwks_refuses_jwts_with_a_401_and_opaque_tokens_keep_working() {
    let [a, _] = rsa_signers();
    // A loopback port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let env = TestEnv::new().await.unwrap();
    let mut settings = env.settings();
    settings.jwt_jwks_url = Some(format!("http://{closed}/jwks.json").parse().unwrap());
    settings.jwt_issuer = Some(ISSUER.into());
    settings.jwt_audience = Some(AUDIENCE.into());
    // The API starts although the keys cannot be fetched.
    let api = TestApi::start(settings).await;
    let path = "/api/v2/users/auth0%7Cnobody";

    let token = a.sign(&claims(json!({"permissions": ["read:users"]})));
    for _ in 0..2 {
        let refused = call(api.addr, &token, "GET", path, None).await;
        assert_unauthorized(&refused, "the signing keys could not be fetched");
    }
    // With no HS256 secret, an HS256 token is refused whatever key made it.
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(json!({"permissions": ["read:users"]})),
        &jsonwebtoken::EncodingKey::from_secret(&a.public_der).unwrap(),
    )
    .unwrap();
    assert_unauthorized(
        &call(api.addr, &forged, "GET", path, None).await,
        "Invalid token",
    );

    let opaque = api.token("read:users").await;
    assert_error(
        &call(api.addr, &opaque, "GET", path, None).await,
        404,
        "The user does not exist.",
    );
    api.stop().await;
}

#[tokio::test]
async fn an_old_key_set_is_fetched_again_and_kept_while_the_idp_fails() {
    use herald_api::jwks::{Jwks, KeyError, Refetch};
    let [a, b] = rsa_signers();
    let idp = JwksServer::start(Some(vec![a.jwk.clone()])).await;
    // Every set counts as old, and nothing limits the fetches.
    let no_limits = Refetch {
        min_interval: std::time::Duration::ZERO,
        max_age: std::time::Duration::ZERO,
    };
    let jwks = Jwks::new(idp.url.clone(), no_limits);
    jwks.prefetch().await;
    assert_eq!(idp.fetches(), 1);
    assert!(jwks.key(&a.kid).await.is_ok());
    assert_eq!(idp.fetches(), 2, "an old set is fetched again");

    // The IdP drops key A (revoked): once the set is fetched again, A is refused.
    idp.serve(Some(vec![b.jwk.clone()]));
    assert_eq!(jwks.key(&a.kid).await.unwrap_err(), KeyError::UnknownKid);
    // The IdP fails: the keys fetched before stay in use.
    idp.serve(None);
    assert!(jwks.key(&b.kid).await.is_ok());
    assert_eq!(idp.fetches(), 4);
}

#[tokio::test]
async fn with_no_key_set_yet_a_key_is_unavailable_and_fetches_wait_a_minute() {
    use herald_api::jwks::{Jwks, KeyError, Refetch};
    let idp = JwksServer::start(None).await;
    let jwks = Jwks::new(idp.url.clone(), Refetch::default());
    jwks.prefetch().await;
    for _ in 0..3 {
        assert_eq!(jwks.key("key-a").await.unwrap_err(), KeyError::Unavailable);
    }
    // The startup fetch, then one for the first request; the others wait a minute.
    assert_eq!(idp.fetches(), 2);
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A Liquid `verify_email` template in the style of Auth0's documentation.
const LIQUID_VERIFY: &str = r#"<html><body>
{% assign language = user.user_metadata.lang | slice: 0,2 %}
<h1>{% if language == 'ja' %}確認してください{% else %}Please verify{% endif %}, {{ user.name | escape }}</h1>
<p>Welcome to {{ application.name | default: friendly_name }}.</p>
<a href="{{ url }}">Verify</a></body></html>"#;

/// The ticket behind a link the API or an email gave.
async fn ticket_of(api: &TestApi, link: &str) -> herald_store::StoredTicket {
    let presented = link
        .split("ticket=")
        .nth(1)
        .unwrap()
        .trim_end_matches(')')
        .trim_end_matches('#');
    let hash: TokenHash = TicketToken::from_presented(presented).hash();
    api.store
        .ticket_by_hash(&hash)
        .await
        .unwrap()
        .expect("the ticket is stored")
}

#[tokio::test]
async fn email_templates_are_checked_saved_and_used_for_emails_and_tickets() {
    let env = TestEnv::new().await.unwrap();
    let mut settings = shared_secret(&env);
    // The worker sees template changes at once (no registry cache).
    settings.registry_cache_ttl = std::time::Duration::ZERO;
    let api = TestApi::start(settings.clone()).await;
    let worker = env.spawn_worker(settings).await;
    let token = api
        .token(&format!(
            "{ALL} read:email_templates create:email_templates update:email_templates"
        ))
        .await;
    let path = "/api/v2/email-templates/verify_email";

    assert_error(
        &call(api.addr, &token, "GET", path, None).await,
        404,
        "Template not found.",
    );
    assert_error(
        &call(
            api.addr,
            &token,
            "GET",
            "/api/v2/email-templates/blocked_account",
            None,
        )
        .await,
        400,
        "Herald does not send the blocked_account email",
    );
    assert_error(
        &call(
            api.addr,
            &token,
            "GET",
            "/api/v2/email-templates/nope",
            None,
        )
        .await,
        400,
        "Value must be one of",
    );
    // A template that does not compile is refused with what is wrong, and nothing is saved.
    let broken = json!({"template": "verify_email", "syntax": "liquid", "enabled": true,
                        "body": "<p>{% if user.name %}unclosed</p>", "from": "", "subject": ""});
    let answer = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/email-templates",
        Some(broken),
    )
    .await;
    assert_error(&answer, 400, "verify_email template");
    assert_eq!(call(api.addr, &token, "GET", path, None).await.status, 404);
    assert_error(
        &call(
            api.addr,
            &token,
            "POST",
            "/api/v2/email-templates",
            Some(json!({"template": "verify_email"})),
        )
        .await,
        400,
        "Missing required property: body",
    );
    assert_error(
        &call(
            api.addr,
            &token,
            "POST",
            "/api/v2/email-templates",
            Some(
                json!({"template": "verify_email", "syntax": "liquid", "enabled": true,
                        "body": "<p>{{ url }}</p>", "from": "not a mailbox {{ url }}"}),
            ),
        )
        .await,
        400,
        "from",
    );

    let created = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/email-templates",
        Some(json!({
            "template": "verify_email", "syntax": "liquid", "enabled": true,
            "body": LIQUID_VERIFY,
            "from": "{{ application.name | default: 'Acme' }} <no-reply@acme.example>",
            "subject": "Confirm {{ user.email }}",
            "resultUrl": "https://app.example/verified",
            "urlLifetimeInSeconds": 3600,
            "includeEmailInRedirect": false,
        })),
    )
    .await;
    assert_eq!(created.status, 200, "{created:?}");
    let body = created.json();
    assert_eq!(body["template"], "verify_email");
    assert_eq!(body["syntax"], "liquid");
    assert_eq!(body["urlLifetimeInSeconds"], 3600);
    assert_eq!(body["includeEmailInRedirect"], false);
    assert_eq!(body["body"], LIQUID_VERIFY);
    let again = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/email-templates",
        Some(
            json!({"template": "verify_email", "syntax": "liquid", "enabled": true,
                    "body": "<p>{{ url }}</p>"}),
        ),
    )
    .await;
    assert_error(&again, 409, "Template verify_email already exists.");

    let patched = call(
        api.addr,
        &token,
        "PATCH",
        path,
        Some(json!({"subject": "Please confirm, {{ user.given_name | default: 'friend' }}"})),
    )
    .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(
        patched.json()["body"],
        LIQUID_VERIFY,
        "a PATCH keeps the rest"
    );
    assert_error(
        &call(
            api.addr,
            &token,
            "PATCH",
            path,
            Some(json!({"template": "reset_email"})),
        )
        .await,
        400,
        "must be verify_email",
    );
    assert_error(
        &call(
            api.addr,
            &token,
            "PUT",
            "/api/v2/email-templates/reset_email",
            Some(
                json!({"template": "reset_email", "syntax": "liquid", "enabled": true,
                        "body": "<p>{{ url }}</p>"}),
            ),
        )
        .await,
        404,
        "Template not found.",
    );
    let reader = api.token("read:users").await;
    assert_error(
        &call(api.addr, &reader, "GET", path, None).await,
        403,
        "read:email_templates",
    );

    // The template's ticket defaults apply where the request leaves them out.
    let user = create_user(
        &api,
        &token,
        json!({"connection": "Username-Password-Authentication", "email": "kei@example.com",
               "name": "Kei <b>", "given_name": "Kei", "user_metadata": {"lang": "ja-JP"},
               "verify_email": false}),
    )
    .await;
    let id = user["user_id"].as_str().unwrap();
    let ticket = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/tickets/email-verification",
        Some(json!({"user_id": id})),
    )
    .await;
    assert_eq!(ticket.status, 201, "{ticket:?}");
    let stored = ticket_of(&api, ticket.json()["ticket"].as_str().unwrap()).await;
    assert_eq!(
        stored.result_url.as_deref(),
        Some("https://app.example/verified")
    );
    assert!(!stored.include_email_in_redirect);
    assert_eq!(
        (stored.expires_at - stored.created_at).whole_seconds(),
        3600
    );
    let explicit = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/tickets/email-verification",
        Some(
            json!({"user_id": id, "ttl_sec": 120, "includeEmailInRedirect": true,
                    "result_url": "https://other.example/"}),
        ),
    )
    .await;
    let stored = ticket_of(&api, explicit.json()["ticket"].as_str().unwrap()).await;
    assert_eq!(stored.result_url.as_deref(), Some("https://other.example/"));
    assert!(stored.include_email_in_redirect);
    assert_eq!((stored.expires_at - stored.created_at).whole_seconds(), 120);

    // A job's email is the Liquid template, in its From, subject and body.
    let job = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/jobs/verification-email",
        Some(json!({"user_id": id})),
    )
    .await;
    assert_eq!(job.status, 201, "{job:?}");
    let mail = env.expect_mail(1).await;
    let parsed = mail[0].parsed();
    assert_eq!(parsed.subject().as_deref(), Some("Please confirm, Kei"));
    let from = &parsed.from_mailboxes()[0];
    assert_eq!(
        (from.name.as_deref(), from.address.as_str()),
        (Some("Acme"), "no-reply@acme.example")
    );
    let html = parsed.html().unwrap();
    assert!(html.contains("確認してください, Kei &lt;b&gt;"), "{html}");
    let text = parsed.text().unwrap();
    assert!(
        text.contains("Verify (https://id.herald.test/u/email-verification?ticket="),
        "{text}"
    );
    let link = text
        .split_whitespace()
        .find(|w| w.contains("ticket="))
        .unwrap();
    let stored = ticket_of(&api, link).await;
    assert_eq!(
        stored.result_url.as_deref(),
        Some("https://app.example/verified")
    );

    // Disabled: the job is recorded as skipped, reported so, and nothing is sent.
    let off = call(
        api.addr,
        &token,
        "PATCH",
        path,
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(off.json()["enabled"], false, "{off:?}");
    let job = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/jobs/verification-email",
        Some(json!({"user_id": id})),
    )
    .await;
    let job_id = job.json()["id"].as_str().unwrap().to_owned();
    env.wait_status(&job_id, "skipped").await;
    let status = call(
        api.addr,
        &token,
        "GET",
        &format!("/api/v2/jobs/{job_id}"),
        None,
    )
    .await;
    assert_eq!(status.json()["status"], "skipped", "{status:?}");
    assert!(
        status.json()["status_details"]
            .as_str()
            .unwrap()
            .contains("verify_email email template is disabled")
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(env.sink.messages().len(), 1, "nothing more was sent");

    worker.stop().await.unwrap();
    api.stop().await;
}

#[tokio::test]
async fn fields_and_include_fields_select_the_properties_of_an_answer() {
    let env = TestEnv::new().await.unwrap();
    let api = TestApi::start(env.settings()).await;
    let token = api
        .token(&format!(
            "{ALL} read:organizations create:organizations read:clients create:clients"
        ))
        .await;
    let user = create_user(
        &api,
        &token,
        json!({"connection": "Username-Password-Authentication", "email": "fi@example.com",
               "name": "Fi", "verify_email": false}),
    )
    .await;
    let path = format!(
        "/api/v2/users/{}",
        user["user_id"].as_str().unwrap().replace('|', "%7C")
    );
    let keys = |answer: &Answer| -> Vec<String> {
        assert_eq!(answer.status, 200, "{answer:?}");
        let mut keys: Vec<String> = answer.json().as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };

    let only = call(
        api.addr,
        &token,
        "GET",
        &format!("{path}?fields=user_id,email"),
        None,
    )
    .await;
    assert_eq!(keys(&only), ["email", "user_id"]);
    assert_eq!(only.json()["email"], "fi@example.com");
    let also = format!("{path}?fields=email,name&include_fields=true");
    assert_eq!(
        keys(&call(api.addr, &token, "GET", &also, None).await),
        ["email", "name"]
    );
    let but = format!("{path}?fields=email,identities&include_fields=false");
    let but = keys(&call(api.addr, &token, "GET", &but, None).await);
    assert!(!but.contains(&"email".to_owned()) && !but.contains(&"identities".to_owned()));
    assert!(but.contains(&"user_id".to_owned()) && but.contains(&"name".to_owned()));
    // Without a list, every property.
    let all = keys(&call(api.addr, &token, "GET", &path, None).await);
    assert!(all.len() > 10, "{all:?}");

    let listed = call(
        api.addr,
        &token,
        "GET",
        "/api/v2/users-by-email?email=fi%40example.com&fields=user_id",
        None,
    )
    .await;
    assert_eq!(listed.json(), json!([{"user_id": user["user_id"]}]));

    // Organizations and clients take the same parameters.
    let org = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/organizations",
        Some(json!({"name": "fields-org", "display_name": "Fields"})),
    )
    .await
    .json();
    let by_name = "/api/v2/organizations/name/fields-org?fields=id,name";
    assert_eq!(
        call(api.addr, &token, "GET", by_name, None).await.json(),
        json!({"id": org["id"], "name": "fields-org"})
    );
    let by_id = format!(
        "/api/v2/organizations/{}?fields=metadata,branding&include_fields=false",
        org["id"].as_str().unwrap()
    );
    assert_eq!(
        keys(&call(api.addr, &token, "GET", &by_id, None).await),
        ["display_name", "id", "name"]
    );
    let client = call(
        api.addr,
        &token,
        "POST",
        "/api/v2/clients",
        Some(json!({"name": "Fields App"})),
    )
    .await
    .json();
    let client_path = format!(
        "/api/v2/clients/{}?fields=name",
        client["client_id"].as_str().unwrap()
    );
    assert_eq!(
        call(api.addr, &token, "GET", &client_path, None)
            .await
            .json(),
        json!({"name": "Fields App"})
    );
    // An unknown query parameter is still refused.
    let odd = call(
        api.addr,
        &token,
        "GET",
        &format!("{path}?field=email"),
        None,
    )
    .await;
    assert_error(&odd, 400, "field");
    api.stop().await;
}
