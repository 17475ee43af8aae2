//! The official Auth0 SDK (auth0-python 6.8, unmodified) drives `herald serve` and a worker: users,
//! organizations, clients, a Liquid `verify_email` template, the verification-email job and its
//! status, the three ticket endpoints, a user's MFA enrollments, and the SDK's error class for 400, 401, 403, 404, 409 and
//! 429. The emails it causes must arrive, localized and branded, the first one from the Liquid
//! template, as the "done when" has it.
//!
//! The SDK lives in a virtualenv that `scripts/test.sh` (the README's test command) creates and
//! names in `HERALD_SDK_PYTHON`.

use std::process::Command;

use herald_testkit::env::{TestApi, TestEnv};
use serde_json::Value;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/auth0_python.py");

fn python() -> String {
    std::env::var("HERALD_SDK_PYTHON").unwrap_or_else(|_| {
        panic!(
            "HERALD_SDK_PYTHON is not set: run the tests with scripts/test.sh (the README's test \
             command), which installs auth0-python into a virtualenv and sets it"
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_drives_every_endpoint() {
    let python = python();
    let env = TestEnv::new().await.unwrap();
    let mut settings = env.settings();
    settings.ticket_secret = Some(
        herald_domain::TicketSecret::from_bytes(b"sdk-tests-ticket-secret-0123456789abcdef")
            .unwrap(),
    );
    // High enough for the script's calls; the limited token still meets it (429) in its loop.
    settings.api_rate_limit = 100;
    let api = TestApi::start(settings.clone()).await;
    let worker = env.spawn_worker(settings).await;
    // Every scope there is: the script calls every endpoint.
    let all = api.token(&herald_domain::SCOPES.join(" ")).await;
    let readonly = api.token("read:users").await;
    let limited = api.token("read:users").await;

    let base = format!("http://{}/api/v2", api.addr);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(SCRIPT)
            .env("HERALD_API_URL", base)
            .env("HERALD_API_TOKEN", all)
            .env("HERALD_API_TOKEN_READONLY", readonly)
            .env("HERALD_API_TOKEN_LIMITED", limited)
            .output()
            .expect("the SDK's python runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the SDK script failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).expect("the script prints JSON");

    let uid = report["user_id"].as_str().unwrap();
    assert!(uid.starts_with("auth0|"), "{report}");
    assert_eq!(report["user_name"], "Kenji");
    assert_eq!(report["org_by_name"], report["org_id"]);
    assert_eq!(report["client_name"], "Kenji App");
    assert_eq!(report["metadata"]["lang"], "ja");
    assert_eq!(report["metadata"]["plan"], "pro");
    assert_eq!(report["by_email"][0], uid);
    assert_eq!(report["enrollments"], serde_json::json!([]));
    assert_eq!(
        report["unknown_enrollment_delete"],
        serde_json::json!([404, "inexistent_enrollment"])
    );
    assert_eq!(report["job_type"], "verification_email");
    assert_eq!(report["job_first_status"], "pending");
    assert_eq!(report["job_status"], "completed");
    assert!(
        report["verify_ticket"]
            .as_str()
            .unwrap()
            .starts_with("https://id.herald.test/u/email-verification?ticket=")
    );
    assert!(
        report["reset_ticket"]
            .as_str()
            .unwrap()
            .contains("/u/reset-password?ticket=")
    );
    assert_eq!(report["errors"], report["errors_expected"], "{report}");

    // The verification email (Japanese, from user_metadata.lang) and the enrollment email
    // (French, from email_locale) arrive; the latter carries the ticket the SDK was given.
    let mails = env.expect_mail(2).await;
    let parsed: Vec<_> = mails.iter().map(|m| m.parsed()).collect();
    assert_eq!(report["lifecycle"], "ok", "{report}");
    assert_eq!(report["template_created"], "verify_email");
    assert_eq!(
        report["template"],
        serde_json::json!({"syntax": "liquid", "enabled": true, "url_lifetime_in_seconds": 86400.0,
                           "include_email_in_redirect": false,
                           "result_url": "https://app.kenji.test/verified"}),
        "{report}"
    );
    let verify = parsed
        .iter()
        .find(|p| {
            p.text()
                .unwrap_or_default()
                .contains("/u/email-verification?ticket=")
        })
        .expect("a verification email");
    // The Liquid template is used: its subject, From and Japanese branch.
    assert_eq!(
        verify.subject().as_deref(),
        Some("Kenji App: メールアドレスの確認")
    );
    assert_eq!(
        verify.from_mailboxes()[0].name.as_deref(),
        Some("Kenji App")
    );
    assert!(
        verify
            .html()
            .unwrap()
            .contains("Kenji さん、Kenji App へようこそ。"),
        "{:?}",
        verify.html()
    );
    assert!(verify.html().unwrap().contains("lang=\"ja\""));
    // Its ticket took the template's defaults.
    let link = verify
        .text()
        .unwrap()
        .split(['(', ')', ' ', '\n'])
        .find(|w| w.contains("ticket="))
        .unwrap()
        .to_owned();
    let presented = link.split("ticket=").nth(1).unwrap().trim_end_matches('#');
    let ticket = api
        .store
        .ticket_by_hash(&herald_domain::TicketToken::from_presented(presented).hash())
        .await
        .unwrap()
        .expect("the email's ticket is stored");
    assert_eq!(
        ticket.result_url.as_deref(),
        Some("https://app.kenji.test/verified")
    );
    assert!(!ticket.include_email_in_redirect);
    assert_eq!(
        (ticket.expires_at - ticket.created_at).whole_seconds(),
        86_400
    );
    // Branded: the organization's display name and colour from the SDK's call.
    let html = verify.html().unwrap();
    assert!(
        html.contains("Kenji Corp"),
        "the organization's name is in the email"
    );
    assert!(
        html.to_ascii_lowercase().contains("#aa0000"),
        "its primary colour is used"
    );
    let enroll = parsed
        .iter()
        .find(|p| {
            p.text()
                .unwrap_or_default()
                .contains("/u/mfa-enrollment?ticket=")
        })
        .expect("an enrollment email");
    assert!(enroll.html().unwrap().contains("lang=\"fr\""));
    assert!(
        enroll
            .text()
            .unwrap()
            .contains(report["enroll_ticket_url"].as_str().unwrap())
    );
    worker.stop().await.unwrap();
    api.stop().await;
}
