//! End to end against the real services: jobs published on RabbitMQ, tickets in PostgreSQL, mail
//! received by an SMTP server on loopback. Each test has its own database, vhost and SMTP sink.

use std::time::Duration;

use herald_domain::{EmailJob, EnrollmentFactor, JobKind, Locale, REDACTED_CODE, TicketToken};
use herald_mailsink::{CapturedMail, FaultPlan};
use herald_queue::header_string;
use herald_render::TemplateSources;
use herald_store::{Branding, Client, Organization, OverrideScope};
use herald_testkit::env::{TEST_PUBLIC_URL, TestEnv};

fn acme() -> Organization {
    Organization {
        id: "org_acme".into(),
        name: "acme".into(),
        display_name: "Acme Corp".into(),
        branding: Branding {
            logo_url: Some("https://cdn.acme.test/logo.png".into()),
            primary_color: Some("#e11d48".into()),
            page_background: Some("#fff1f2".into()),
        },
        default_locale: Some("de".into()),
        from_address: Some("Acme Corp <no-reply@acme.test>".into()),
    }
}

fn portal() -> Client {
    Client {
        id: "acme-portal".into(),
        name: "Acme Portal".into(),
        login_uri: Some("https://portal.acme.test/login".into()),
    }
}

fn mail_for<'a>(mails: &'a [CapturedMail], job_id: &str) -> &'a CapturedMail {
    mails
        .iter()
        .find(|m| {
            m.parsed()
                .header("X-Herald-Job-Id")
                .map(|h| h.trim().to_string())
                == Some(job_id.to_string())
        })
        .unwrap_or_else(|| panic!("no email for job {job_id}"))
}

/// The subject the built-in templates give `job` in `locale` (rendered directly, to compare).
fn subject_in(
    env: &TestEnv,
    kind: JobKind,
    locale: &str,
    ctx_org: Option<&Organization>,
) -> String {
    let job = EmailJob::builder(kind, "u", "u@example.com")
        .build()
        .unwrap();
    let ctx = herald_worker::context::email_context(
        &job,
        ctx_org,
        None,
        Some("https://x/".into()),
        None,
        time::OffsetDateTime::now_utc(),
        "Herald",
    );
    env.renderer
        .render(kind.template(), &Locale::parse(locale).unwrap(), &ctx, None)
        .unwrap()
        .subject
}

fn ticket_link(mail: &CapturedMail) -> url::Url {
    let parsed = mail.parsed();
    let text = parsed.text().expect("a text part");
    let word = text
        .split_whitespace()
        .find(|w| w.starts_with(TEST_PUBLIC_URL) && w.contains("ticket="))
        .unwrap_or_else(|| panic!("no ticket link in:\n{text}"));
    url::Url::parse(word.trim_end_matches(['.', ',', ')'])).unwrap()
}

#[tokio::test]
async fn each_job_type_is_delivered_localized_branded_with_a_hashed_ticket() {
    let env = TestEnv::new().await.unwrap();
    env.db.store.upsert_organization(&acme()).await.unwrap();
    env.db.store.upsert_client(&portal()).await.unwrap();
    let worker = env.spawn_worker(env.settings()).await;
    let producer = env.producer().await;

    let jobs = vec![
        EmailJob::builder(JobKind::Verification, "auth0|1", "v@example.com")
            .organization_id("org_acme")
            .email_locale("fr")
            .build()
            .unwrap(),
        EmailJob::builder(JobKind::PasswordChange, "auth0|2", "p@example.com")
            .email_locale("es")
            .mark_email_as_verified(true)
            .build()
            .unwrap(),
        EmailJob::builder(JobKind::Enrollment, "auth0|3", "e@example.com")
            .user_locale("ja")
            .factor(EnrollmentFactor::Otp)
            .build()
            .unwrap(),
        EmailJob::builder(JobKind::Welcome, "auth0|4", "w@example.com")
            .organization_id("org_acme")
            .client_id("acme-portal")
            .build()
            .unwrap(),
    ];
    for job in &jobs {
        producer.publish(job).await.unwrap();
    }
    let mails = env.expect_mail(4).await;

    let expected = [
        ("fr", "/u/email-verification", "email_verification"),
        ("es", "/u/reset-password", "password_change"),
        ("ja", "/u/mfa-enrollment", "mfa_enrollment"),
    ];
    for (job, (locale, path, purpose)) in jobs.iter().zip(expected) {
        let mail = mail_for(&mails, job.id.as_str());
        let parsed = mail.parsed();
        let org = job.organization_id.as_ref().map(|_| acme());
        assert_eq!(
            parsed.subject().unwrap(),
            subject_in(&env, job.kind(), locale, org.as_ref()),
            "{}",
            job.kind()
        );
        assert_eq!(
            parsed.message_id().unwrap().trim_matches(['<', '>']),
            format!("{}@id.herald.test", job.id)
        );
        let link = ticket_link(mail);
        assert_eq!(link.path(), path);
        let token = link
            .query_pairs()
            .find(|(k, _)| k == "ticket")
            .unwrap()
            .1
            .to_string();
        assert!(token.len() >= 22, "at least 128 bits");
        let stored = env
            .db
            .store
            .ticket_by_hash(&TicketToken::from_presented(token.clone()).hash())
            .await
            .unwrap()
            .expect("ticket stored by hash");
        assert_eq!(stored.job_id.as_deref(), Some(job.id.as_str()));
        assert_eq!(stored.purpose, purpose);
        assert!(stored.used_at.is_none());
        let raw: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%' OR encode(token_salt, 'escape') LIKE '%' || $1 || '%'")
            .bind(&token).fetch_one(env.db.store.pool()).await.unwrap();
        assert_eq!(raw, 0, "the token itself is not stored");
        env.wait_status(job.id.as_str(), "sent").await;
    }
    let reset = env
        .db
        .store
        .ticket_for_job(jobs[1].id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert!(reset.mark_email_as_verified);
    let enrol = env
        .db
        .store
        .ticket_for_job(jobs[2].id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(enrol.factor.as_deref(), Some("otp"));

    // Branding: the organization's colour, logo and From; the plain user's email is neutral.
    let branded = mail_for(&mails, jobs[0].id.as_str()).parsed();
    let html = branded.html().unwrap();
    assert!(html.contains("#e11d48"), "primary colour applied");
    assert!(html.contains("https://cdn.acme.test/logo.png"));
    assert!(html.contains("Acme Corp"));
    assert!(html.contains("style="), "CSS is inlined");
    assert!(branded.from().unwrap().contains("no-reply@acme.test"));
    let plain = mail_for(&mails, jobs[1].id.as_str()).parsed();
    assert!(!plain.html().unwrap().contains("#e11d48"));
    assert!(plain.from().unwrap().contains("no-reply@localhost"));
    // The welcome email links to the client's login page and has no ticket.
    let welcome = mail_for(&mails, jobs[3].id.as_str()).parsed();
    assert!(
        welcome
            .text()
            .unwrap()
            .contains("https://portal.acme.test/login")
    );
    assert!(
        env.db
            .store
            .ticket_for_job(jobs[3].id.as_str())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        welcome.subject().unwrap(),
        subject_in(&env, JobKind::Welcome, "de", Some(&acme())),
        "organization default locale"
    );

    worker.stop().await.unwrap();
}

/// What the ledger keeps of a job, as JSON text.
async fn ledger_payload(store: &herald_store::Store, job_id: &str) -> String {
    sqlx::query_scalar::<_, serde_json::Value>("SELECT payload FROM email_jobs WHERE id = $1")
        .bind(job_id)
        .fetch_one(store.pool())
        .await
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_code_email_arrives_localized_and_branded_with_its_code_and_no_ticket() {
    let env = TestEnv::new().await.unwrap();
    env.db.store.upsert_organization(&acme()).await.unwrap();
    let worker = env.spawn_worker(env.settings()).await;
    let producer = env.producer().await;

    let job = EmailJob::builder(JobKind::MfaCode, "auth0|7", "ana@example.com")
        .name("Ana")
        .organization_id("org_acme")
        .email_locale("fr")
        .code("042917")
        .ttl_sec(600)
        .build()
        .unwrap();
    producer.publish(&job).await.unwrap();
    let mails = env.expect_mail(1).await;
    let mail = mails[0].parsed();

    assert_eq!(mail.to(), ["ana@example.com"]);
    assert_eq!(
        mail.subject().unwrap(),
        "Votre code de vérification Acme Corp"
    );
    assert!(mail.from().unwrap().contains("no-reply@acme.test"));
    let html = mail.html().unwrap();
    let text = mail.text().unwrap();
    for part in [&html, &text] {
        assert!(part.contains("042917"), "{part}");
        assert!(part.contains("Bonjour Ana,"), "{part}");
        assert!(part.contains("Ce code expire dans 10 minutes."), "{part}");
        assert!(
            part.contains("Si vous n’avez pas demandé ce code"),
            "{part}"
        );
    }
    assert!(html.contains(">042917</p>"), "one copyable run: {html}");
    assert!(html.contains("#e11d48"), "the organization's colour");
    assert!(html.contains("https://cdn.acme.test/logo.png"));
    assert!(!html.contains("href="), "a code email has no link");

    let sent = env.wait_status(job.id.as_str(), "sent").await;
    assert_eq!(sent.kind, "mfa_code_email");
    assert!(
        env.db
            .store
            .ticket_for_job(job.id.as_str())
            .await
            .unwrap()
            .is_none()
    );
    let payload = ledger_payload(&env.db.store, job.id.as_str()).await;
    assert!(!payload.contains("042917"), "{payload}");
    assert!(payload.contains(REDACTED_CODE), "{payload}");

    worker.stop().await.unwrap();
}

#[tokio::test]
async fn locales_fall_back_in_order_and_never_fail() {
    let env = TestEnv::new().await.unwrap();
    env.db.store.upsert_organization(&acme()).await.unwrap();
    let worker = env.spawn_worker(env.settings()).await;
    let producer = env.producer().await;
    let cases = [
        (Some("fr-CA"), None, false, "fr"),
        (Some("zz-ZZ"), Some("pt"), false, "pt-BR"),
        (Some("not a tag!"), None, true, "de"),
        (None, Some("ko"), false, "en"),
    ];
    let mut ids = Vec::new();
    for (email_locale, user_locale, org, _) in cases {
        let mut b = EmailJob::builder(JobKind::Verification, "u", "l@example.com");
        if let Some(l) = email_locale {
            b = b.email_locale(l);
        }
        if let Some(l) = user_locale {
            b = b.user_locale(l);
        }
        if org {
            b = b.organization_id("org_acme");
        }
        let job = b.build().unwrap();
        producer.publish(&job).await.unwrap();
        ids.push(job.id.to_string());
    }
    let mails = env.expect_mail(cases.len()).await;
    for (id, (_, _, org, want)) in ids.iter().zip(cases) {
        let org = org.then(acme);
        let parsed = mail_for(&mails, id).parsed();
        assert_eq!(
            parsed.subject().unwrap(),
            subject_in(&env, JobKind::Verification, want, org.as_ref())
        );
        assert_eq!(
            env.wait_status(id, "sent").await.locale.as_deref(),
            Some(want)
        );
    }
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn organization_overrides_beat_client_overrides_which_beat_the_default() {
    let env = TestEnv::new().await.unwrap();
    let store = &env.db.store;
    store.upsert_organization(&acme()).await.unwrap();
    store.upsert_client(&portal()).await.unwrap();
    let set = |scope: OverrideScope, subject: &str, locale: Option<&'static str>| {
        (
            scope,
            locale,
            TemplateSources {
                subject: Some(subject.into()),
                html: Some(format!(
                    "<p>{subject} for {{{{user.email}}}}: <a href=\"{{{{url}}}}\">go</a></p>"
                )),
                text: None,
            },
        )
    };
    for (scope, locale, sources) in [
        set(
            OverrideScope::Client("acme-portal".into()),
            "Client subject",
            None,
        ),
        set(
            OverrideScope::Organization("org_acme".into()),
            "Org subject",
            None,
        ),
        set(
            OverrideScope::Organization("org_acme".into()),
            "Org French subject",
            Some("fr"),
        ),
    ] {
        let checked = env
            .renderer
            .check_override(JobKind::Verification.template(), sources)
            .unwrap();
        store
            .set_template_override(&scope, locale, &checked)
            .await
            .unwrap();
    }
    let worker = env.spawn_worker(env.settings()).await;
    let producer = env.producer().await;
    let both = EmailJob::builder(JobKind::Verification, "u", "a@example.com")
        .organization_id("org_acme")
        .client_id("acme-portal")
        .email_locale("en")
        .build()
        .unwrap();
    let french = EmailJob::builder(JobKind::Verification, "u", "b@example.com")
        .organization_id("org_acme")
        .email_locale("fr")
        .build()
        .unwrap();
    let client_only = EmailJob::builder(JobKind::Verification, "u", "c@example.com")
        .client_id("acme-portal")
        .build()
        .unwrap();
    let neither = EmailJob::builder(JobKind::Verification, "u", "d@example.com")
        .build()
        .unwrap();
    for job in [&both, &french, &client_only, &neither] {
        producer.publish(job).await.unwrap();
    }
    let mails = env.expect_mail(4).await;
    let subject = |job: &EmailJob| {
        mail_for(&mails, job.id.as_str())
            .parsed()
            .subject()
            .unwrap()
            .to_string()
    };
    assert_eq!(subject(&both), "Org subject");
    assert_eq!(subject(&french), "Org French subject");
    assert_eq!(subject(&client_only), "Client subject");
    assert_eq!(
        subject(&neither),
        subject_in(&env, JobKind::Verification, "en", None)
    );
    let both_parsed = mail_for(&mails, both.id.as_str()).parsed();
    let html = both_parsed.html().unwrap();
    assert!(html.contains("Org subject for a@example.com"), "{html}");
    assert!(
        html.contains(TEST_PUBLIC_URL),
        "the override gets the ticket link"
    );
    // Text falls back to the default template when the override has none.
    let both_mail = mail_for(&mails, both.id.as_str()).parsed();
    assert!(both_mail.text().unwrap().contains("ticket="));
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_duplicate_delivery_sends_one_email_and_issues_one_ticket() {
    let env = TestEnv::new().await.unwrap();
    let producer = env.producer().await;
    let job = EmailJob::builder(JobKind::PasswordChange, "u1", "dup@example.com")
        .build()
        .unwrap();
    // Published twice before any worker runs: both copies are in the queue.
    producer.publish(&job).await.unwrap();
    producer.publish(&job).await.unwrap();
    let worker = env.spawn_worker(env.settings()).await;
    env.expect_mail(1).await;
    env.wait_status(job.id.as_str(), "sent").await;
    // Published again after it was sent.
    producer.publish(&job).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events = env.db.store.job_events(job.id.as_str()).await.unwrap();
        if events.iter().filter(|e| e.event == "duplicate").count() >= 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "duplicates not seen: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.stop().await.unwrap();
    assert_eq!(env.sink.count(), 1, "exactly one email");
    let tickets: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets WHERE job_id = $1")
        .bind(job.id.as_str())
        .fetch_one(env.db.store.pool())
        .await
        .unwrap();
    assert_eq!(tickets, 1, "exactly one ticket");
    assert_eq!(env.broker.depth("herald.email.dead").await, 0);
}

#[tokio::test]
async fn bad_input_is_dead_lettered_with_a_reason_and_the_worker_keeps_serving() {
    let env = TestEnv::new().await.unwrap();
    let mut settings = env.settings();
    settings.max_job_bytes = 4096;
    let worker = env.spawn_worker(settings).await;
    let producer = env.producer().await;
    let user = r#""user":{"user_id":"u1","email":"a@example.com"}"#;
    let cases: Vec<(&str, String, &str)> = vec![
        ("bad-json", "{not json".to_string(), "malformed_json"),
        ("bad-type", format!(r#"{{"id":"bad-type","type":"sms_email",{user}}}"#), "unknown_type"),
        ("no-email", r#"{"id":"no-email","type":"welcome_email","user":{"user_id":"u1"}}"#.to_string(), "invalid_job"),
        ("extra-field", format!(r#"{{"id":"extra-field","type":"welcome_email","colour":"red",{user}}}"#), "invalid_job"),
        ("too-big", format!(r#"{{"id":"too-big","type":"welcome_email","user":{{"user_id":"u1","email":"a@example.com","name":"{}"}}}}"#, "x".repeat(5000)), "body_too_large"),
        ("crlf-email", r#"{"id":"crlf-email","type":"welcome_email","user":{"user_id":"u1","email":"a@example.com\r\nBcc: x@evil.test"}}"#.to_string(), "invalid_job"),
        ("unknown-org", format!(r#"{{"id":"unknown-org","type":"verification_email","organization_id":"org_nope",{user}}}"#), "unknown_organization"),
        ("unknown-client", format!(r#"{{"id":"unknown-client","type":"welcome_email","client_id":"nope",{user}}}"#), "unknown_client"),
        ("bad-domain", format!(r#"{{"id":"bad-domain","type":"verification_email","custom_domain":"evil.test",{user}}}"#), "custom_domain_not_allowed"),
    ];
    for (id, body, _) in &cases {
        producer
            .publish_raw("email.welcome", id, body.as_bytes())
            .await
            .unwrap();
    }
    let good = EmailJob::builder(JobKind::Welcome, "u1", "good@example.com")
        .build()
        .unwrap();
    producer.publish(&good).await.unwrap();

    env.expect_mail(1).await;
    env.wait_status(good.id.as_str(), "sent").await;
    let mut seen = Vec::new();
    for _ in &cases {
        let (body, props) = env
            .broker
            .wait_get("herald.email.dead", Duration::from_secs(10))
            .await
            .expect("a dead letter");
        let id = props.message_id().as_ref().map(|m| m.to_string()).unwrap();
        let reason = header_string(&props, "x-herald-reason").expect("a reason header");
        let error = header_string(&props, "x-herald-error").expect("an error header");
        assert!(!error.is_empty());
        assert_eq!(
            header_string(&props, "x-herald-attempts").as_deref(),
            Some("1"),
            "{id}: refused on its first attempt"
        );
        let (_, body_sent, want) = cases.iter().find(|(i, _, _)| *i == id).unwrap();
        assert_eq!(&reason, want, "{id}: {error}");
        assert_eq!(&body, body_sent.as_bytes(), "the original body is kept");
        seen.push(id);
    }
    assert_eq!(seen.len(), cases.len());
    // An oversize body is neither parsed for its id nor stored.
    assert!(
        env.db.store.job("too-big").await.unwrap().is_none(),
        "the oversize body reached the ledger"
    );
    // Refused jobs whose id could be read are in the ledger as dead, with the reason.
    let dead = env.wait_status("unknown-org", "dead").await;
    assert_eq!(dead.dead_reason.as_deref(), Some("unknown_organization"));
    assert_eq!(
        env.wait_status("no-email", "dead")
            .await
            .dead_reason
            .as_deref(),
        Some("invalid_job")
    );
    assert_eq!(env.sink.count(), 1, "nothing was sent for bad jobs");
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn smtp_4xx_is_retried_from_a_delay_queue_then_delivered() {
    let env = TestEnv::new().await.unwrap();
    env.sink
        .set_faults(FaultPlan::reject_next(2, 451, "4.3.0 Try again later"));
    let worker = env.spawn_worker(env.settings()).await;
    let job = EmailJob::builder(JobKind::Verification, "u1", "retry@example.com")
        .build()
        .unwrap();
    env.producer().await.publish(&job).await.unwrap();
    let mails = env.expect_mail(1).await;
    let sent = env.wait_status(job.id.as_str(), "sent").await;
    assert_eq!(sent.attempts, 3);
    let events = env.db.store.job_events(job.id.as_str()).await.unwrap();
    assert_eq!(
        events.iter().filter(|e| e.event == "retrying").count(),
        2,
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.detail.as_deref().is_some_and(|d| d.contains("451"))),
        "{events:?}"
    );
    // All attempts used the same ticket: one row, and the delivered link matches it.
    let link = ticket_link(&mails[0]);
    let token = link
        .query_pairs()
        .find(|(k, _)| k == "ticket")
        .unwrap()
        .1
        .to_string();
    let stored = env
        .db
        .store
        .ticket_for_job(job.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.token_hash,
        TicketToken::from_presented(token).hash().as_bytes()
    );
    assert_eq!(env.sink.transactions_rejected(), 2);
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn smtp_5xx_is_dead_lettered_at_once() {
    let env = TestEnv::new().await.unwrap();
    env.sink
        .set_faults(FaultPlan::reject_all(554, "5.7.1 Message rejected"));
    let worker = env.spawn_worker(env.settings()).await;
    let job = EmailJob::builder(JobKind::Welcome, "u1", "bounce@example.com")
        .build()
        .unwrap();
    env.producer().await.publish(&job).await.unwrap();
    let (_, props) = env
        .broker
        .wait_get("herald.email.dead", Duration::from_secs(10))
        .await
        .expect("dead-lettered");
    assert_eq!(
        header_string(&props, "x-herald-reason").as_deref(),
        Some("smtp_permanent")
    );
    assert!(
        header_string(&props, "x-herald-error")
            .unwrap()
            .contains("554")
    );
    let dead = env.wait_status(job.id.as_str(), "dead").await;
    assert_eq!(dead.attempts, 1);
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_dead_lettered_code_email_keeps_no_code() {
    let env = TestEnv::new().await.unwrap();
    env.sink
        .set_faults(FaultPlan::reject_all(554, "5.7.1 Message rejected"));
    let worker = env.spawn_worker(env.settings()).await;
    let producer = env.producer().await;
    let job = EmailJob::builder(JobKind::MfaCode, "auth0|7", "ana@example.com")
        .code("604913")
        .ttl_sec(600)
        .build()
        .unwrap();
    producer.publish(&job).await.unwrap();
    // And a malformed job that carries a code where none belongs.
    producer
        .publish_raw(
            "email.welcome",
            "stray-code",
            br#"{"id":"stray-code","type":"welcome_email","code":"771204","user":{"user_id":"u1","email":"a@example.com"}}"#,
        )
        .await
        .unwrap();
    let mut reasons = Vec::new();
    for _ in 0..2 {
        let (body, props) = env
            .broker
            .wait_get("herald.email.dead", Duration::from_secs(10))
            .await
            .expect("dead-lettered");
        let body = String::from_utf8(body).unwrap();
        assert!(
            !body.contains("604913") && !body.contains("771204"),
            "{body}"
        );
        assert!(body.contains(REDACTED_CODE), "{body}");
        reasons.push(header_string(&props, "x-herald-reason").unwrap());
    }
    reasons.sort();
    assert_eq!(reasons, ["invalid_job", "smtp_permanent"]);
    env.wait_status(job.id.as_str(), "dead").await;
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn transient_failures_are_dead_lettered_once_attempts_run_out() {
    let env = TestEnv::new().await.unwrap();
    env.sink
        .set_faults(FaultPlan::reject_all(451, "4.3.0 Still busy"));
    let mut settings = env.settings();
    settings.max_attempts = 3;
    let worker = env.spawn_worker(settings).await;
    let job = EmailJob::builder(JobKind::Welcome, "u1", "busy@example.com")
        .build()
        .unwrap();
    env.producer().await.publish(&job).await.unwrap();
    let (_, props) = env
        .broker
        .wait_get("herald.email.dead", Duration::from_secs(15))
        .await
        .expect("dead-lettered");
    assert_eq!(
        header_string(&props, "x-herald-reason").as_deref(),
        Some("max_attempts")
    );
    assert_eq!(env.wait_status(job.id.as_str(), "dead").await.attempts, 3);
    assert_eq!(env.sink.count(), 0);
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn hostile_names_are_escaped_and_cannot_inject_headers() {
    let env = TestEnv::new().await.unwrap();
    let worker = env.spawn_worker(env.settings()).await;
    let job = EmailJob::builder(JobKind::Verification, "u1", "x@example.com")
        .name("<script>alert(1)</script>\"><img src=x onerror=alert(2)>")
        .build()
        .unwrap();
    env.producer().await.publish(&job).await.unwrap();
    let mails = env.expect_mail(1).await;
    let parsed = mails[0].parsed();
    let html = parsed.html().unwrap();
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(!html.contains("<img src=x"), "{html}");
    assert!(
        html.contains("&lt;script&gt;"),
        "the name is shown, escaped"
    );
    let raw = String::from_utf8_lossy(&mails[0].data);
    let headers = raw.split("\r\n\r\n").next().unwrap();
    assert!(!headers.to_ascii_lowercase().contains("\nbcc:"));
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_traceparent_on_the_message_reaches_the_email_when_configured() {
    use lapin::types::{AMQPValue, FieldTable, LongString};
    let env = TestEnv::new().await.unwrap();
    let mut settings = env.settings();
    settings.email_traceparent = true;
    let worker = env.spawn_worker(settings).await;
    env.producer().await.close().await; // declares the exchange and work queue
    let conn = env.broker.connection().await;
    let publisher = herald_queue::Publisher::new(&conn, TestEnv::topology())
        .await
        .unwrap();
    let traced = EmailJob::builder(JobKind::Welcome, "u1", "t@example.com")
        .build()
        .unwrap();
    let untraced = EmailJob::builder(JobKind::Welcome, "u2", "n@example.com")
        .build()
        .unwrap();
    for (job, header) in [
        (
            &traced,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        (&untraced, "not a traceparent\r\nBcc: x@evil.test"),
    ] {
        let mut headers = FieldTable::default();
        headers.insert(
            "traceparent".into(),
            AMQPValue::LongString(LongString::from(header)),
        );
        let props = herald_queue::job_properties(job.id.as_str())
            .unwrap()
            .with_headers(headers);
        publisher
            .publish_with(
                "herald.jobs",
                job.kind().routing_key(),
                &job.to_json(),
                props,
            )
            .await
            .unwrap();
    }
    let mails = env.expect_mail(2).await;
    let traced_mail = mail_for(&mails, traced.id.as_str()).parsed();
    assert_eq!(
        traced_mail.header("traceparent").as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    let untraced_mail = mail_for(&mails, untraced.id.as_str()).parsed();
    assert_eq!(
        untraced_mail.header("traceparent"),
        None,
        "an invalid traceparent is ignored"
    );
    assert_eq!(untraced_mail.header("bcc"), None);
    worker.stop().await.unwrap();
}

/// A worker whose one retry tier is `delay`, and a producer on the same topology.
async fn slow_retries(
    env: &TestEnv,
    delay: Duration,
) -> (herald_app::Settings, herald_producer::Producer) {
    let mut settings = env.settings();
    settings.retry_delays = vec![delay];
    let producer = herald_producer::Producer::connect_with(&env.broker.url, settings.topology())
        .await
        .unwrap();
    (settings, producer)
}

#[tokio::test]
async fn a_different_job_under_a_known_id_is_dead_lettered_and_never_gets_its_ticket() {
    let env = TestEnv::new().await.unwrap();
    // The first job's first attempt fails, so it waits in a retry queue with its ticket.
    env.sink
        .set_faults(FaultPlan::reject_next(1, 451, "4.3.0 Try again later"));
    let (config, producer) = slow_retries(&env, Duration::from_secs(3)).await;
    let worker = env.spawn_worker(config).await;
    let alice = EmailJob::builder(JobKind::PasswordChange, "u-alice", "alice@example.com")
        .id("reused-id")
        .build()
        .unwrap();
    producer.publish(&alice).await.unwrap();
    env.wait_status("reused-id", "retrying").await;
    let ticket_before = env
        .db
        .store
        .ticket_for_job("reused-id")
        .await
        .unwrap()
        .unwrap();

    // Another job, published under the same id, for someone else.
    let mallory = EmailJob::builder(JobKind::PasswordChange, "u-mallory", "mallory@example.com")
        .id("reused-id")
        .build()
        .unwrap();
    producer.publish(&mallory).await.unwrap();
    let (body, props) = env
        .broker
        .wait_get("herald.email.dead", Duration::from_secs(10))
        .await
        .expect("the second job is dead-lettered");
    assert_eq!(
        header_string(&props, "x-herald-reason").as_deref(),
        Some("id_conflict")
    );
    let dead: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(dead["user"]["email"], "mallory@example.com");
    // The first job was left as it was while its retry waits.
    let job = env.db.store.job("reused-id").await.unwrap().unwrap();
    assert_eq!(
        (job.status.as_str(), job.attempts, job.recipient.as_deref()),
        ("retrying", 1, Some("alice@example.com"))
    );

    // Its retry delivers it, to its own recipient, with its own ticket.
    let mails = env.expect_mail(1).await;
    let sent = env.wait_status("reused-id", "sent").await;
    assert_eq!(sent.attempts, 2);
    assert_eq!(sent.dead_reason, None);
    worker.stop().await.unwrap();
    let recipients: Vec<Vec<String>> = env
        .sink
        .messages()
        .iter()
        .map(|m| m.parsed().to())
        .collect();
    assert_eq!(recipients.len(), 1, "one email in all: {recipients:?}");
    assert!(
        recipients[0][0].contains("alice@example.com"),
        "{recipients:?}"
    );
    let ticket = env
        .db
        .store
        .ticket_for_job("reused-id")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ticket.id, ticket_before.id);
    assert_eq!(ticket.email, "alice@example.com");
    let token = ticket_link(&mails[0])
        .query_pairs()
        .find(|(k, _)| k == "ticket")
        .unwrap()
        .1
        .to_string();
    assert_eq!(
        ticket.token_hash,
        TicketToken::from_presented(token).hash().as_bytes()
    );
    assert_eq!(env.broker.depth("herald.email.dead").await, 0);
}

#[tokio::test]
async fn a_ticket_that_would_expire_before_the_next_retry_is_recorded_as_ticket_expired() {
    let env = TestEnv::new().await.unwrap();
    env.sink
        .set_faults(FaultPlan::reject_all(451, "4.3.0 Still busy"));
    // The next attempt would run after 5 s; the ticket lives 2 s.
    let (config, producer) = slow_retries(&env, Duration::from_secs(5)).await;
    let worker = env.spawn_worker(config).await;
    let job = EmailJob::builder(JobKind::PasswordChange, "u1", "late@example.com")
        .ttl_sec(2)
        .build()
        .unwrap();
    producer.publish(&job).await.unwrap();
    let (_, props) = env
        .broker
        .wait_get("herald.email.dead", Duration::from_secs(10))
        .await
        .expect("dead-lettered");
    assert_eq!(
        header_string(&props, "x-herald-reason").as_deref(),
        Some("ticket_expired")
    );
    let dead = env.wait_status(job.id.as_str(), "dead").await;
    assert_eq!(
        dead.dead_reason.as_deref(),
        Some("ticket_expired"),
        "the ledger agrees with the dead letter's header"
    );
    assert_eq!(dead.attempts, 1);
    worker.stop().await.unwrap();
}
