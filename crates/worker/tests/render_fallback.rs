//! Against the real services: a broken template override and a hostile display name are no
//! reason to withhold an email. The override falls back to the built-in template (and is
//! recorded as failing); the name is cleaned at parse time and cannot add a header.

use herald_domain::{EmailJob, JobKind};
use herald_store::{Branding, Organization};
use herald_testkit::env::TestEnv;

fn acme() -> Organization {
    Organization {
        id: "org_acme".into(),
        name: "acme".into(),
        display_name: "Acme Corp".into(),
        branding: Branding::default(),
        default_locale: None,
        from_address: None,
    }
}

#[tokio::test]
async fn a_broken_override_still_delivers_the_built_in_email_and_is_marked_failing() {
    let env = TestEnv::new().await.unwrap();
    let store = &env.db.store;
    store.upsert_organization(&acme()).await.unwrap();
    // An override saved before raw output was refused: the renderer refuses it now, and no
    // `CheckedOverride` could carry it, so it is written directly.
    sqlx::query(
        "INSERT INTO template_overrides (organization_id, template, locale, subject, html) \
         VALUES ('org_acme', 'verify_email', '', 'Broken {{brand.name}}', '<p>{{{user.name}}}</p>')",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let worker = env.spawn_worker(env.settings()).await;
    let producer = env.producer().await;
    let job = EmailJob::builder(JobKind::Verification, "u1", "ana@example.com")
        .organization_id("org_acme")
        .name("Eve<script>alert(1)</script>")
        .email_locale("en")
        .build()
        .unwrap();
    producer.publish(&job).await.unwrap();

    let mails = env.expect_mail(1).await;
    let parsed = mails[0].parsed();
    assert_eq!(mails[0].rcpt_to, ["ana@example.com"]);
    let subject = parsed.subject().unwrap();
    assert!(
        !subject.starts_with("Broken"),
        "the whole override is dropped: {subject}"
    );
    let html = parsed.html().unwrap();
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(
        html.contains("Eve&lt;script&gt;"),
        "the built-in greeting: {html}"
    );
    env.wait_status(job.id.as_str(), "sent").await;

    let listed = store.list_template_overrides(None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].health.failures, 1, "{listed:?}");
    let why = listed[0].health.last_failure.as_deref().unwrap_or_default();
    assert!(why.contains("unescaped"), "{why}");
    assert!(listed[0].health.last_failure_at.is_some());
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn a_display_name_with_a_line_break_is_delivered_without_an_extra_header_or_recipient() {
    let env = TestEnv::new().await.unwrap();
    let worker = env.spawn_worker(env.settings()).await;
    let producer = env.producer().await;
    let body = br#"{"id":"crlf-name","type":"verification_email","user":{"user_id":"u1","email":"ana@example.com","name":"Ana\r\nBcc: x@evil.example"}}"#;
    // The raw body, so the worker's own parse is what cleans the name.
    producer
        .publish_raw(JobKind::Verification.routing_key(), "crlf-name", body)
        .await
        .unwrap();

    let mails = env.expect_mail(1).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].rcpt_to, ["ana@example.com"], "no extra recipient");
    let parsed = mails[0].parsed();
    assert!(parsed.header("Bcc").is_none(), "{:?}", parsed.headers());
    assert!(parsed.cc().is_empty());
    assert_eq!(parsed.to_mailboxes().len(), 1);
    let to = parsed.header("To").unwrap();
    assert!(to.contains("ana@example.com"), "{to}");
    assert!(!to.contains('\n') && !to.contains('\r'), "{to:?}");
    assert!(
        parsed.text().unwrap().contains("Ana Bcc: x@evil.example"),
        "greeted by the cleaned name"
    );
    env.wait_status("crlf-name", "sent").await;
    worker.stop().await.unwrap();
}
