//! The `herald` binary as a user runs it: a worker process, `herald send`, bad configuration,
//! and `herald demo`, against the real services on loopback.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use herald_domain::{EmailJob, JobKind, Locale, TicketToken};
use herald_testkit::env::TestEnv;

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

fn herald(env: &TestEnv) -> Command {
    let mut cmd = Command::new(HERALD);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HERALD_AMQP_URL", &env.broker.url)
        .env("HERALD_DATABASE_URL", &env.db.url)
        .env("HERALD_SMTP_URL", env.sink.url())
        .env("HERALD_PUBLIC_URL", "https://id.herald.test")
        .env(
            "HERALD_TICKET_SECRET",
            "integration-test-secret-0123456789abcdef",
        )
        .env("RUST_LOG", "warn");
    cmd
}

fn french_subject(env: &TestEnv) -> String {
    let job = EmailJob::builder(JobKind::Verification, "u", "u@example.com")
        .build()
        .unwrap();
    let ctx = herald_worker::context::email_context(
        &job,
        None,
        None,
        Some("https://x/".into()),
        None,
        time::OffsetDateTime::now_utc(),
        "Herald",
    );
    env.renderer
        .render(
            JobKind::Verification.template(),
            &Locale::parse("fr").unwrap(),
            &ctx,
            None,
        )
        .unwrap()
        .subject
}

#[tokio::test]
async fn herald_send_with_a_running_worker_delivers_a_french_email_with_a_hashed_ticket() {
    let env = TestEnv::new().await.unwrap();
    let mut worker = herald(&env)
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let out = herald(&env)
        .args([
            "send",
            "verification-email",
            "--user-id",
            "u1",
            "--email",
            "a@example.com",
            "--locale",
            "fr",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "herald send failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("confirmed"), "{stdout}");

    let mails = env.expect_mail(1).await;
    let parsed = mails[0].parsed();
    assert_eq!(parsed.subject().unwrap(), french_subject(&env));
    let text = parsed.text().unwrap();
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with("https://id.herald.test/u/email-verification?ticket="))
        .expect("a ticket link");
    let token = link
        .split("ticket=")
        .nth(1)
        .unwrap()
        .trim_end_matches(['.', ',', '#']);
    let ticket = env
        .db
        .store
        .ticket_by_hash(&TicketToken::from_presented(token).hash())
        .await
        .unwrap()
        .expect("the ticket is stored by its hash");
    assert_eq!(ticket.user_id, "u1");
    assert_ne!(hex_of(&ticket.token_hash), token);

    // SIGTERM: the worker drains and exits cleanly.
    let pid = worker.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "worker exit status {status:?}");
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_bad_setting_stops_the_process_with_a_sentence_naming_it() {
    let env = TestEnv::new().await.unwrap();
    for (var, value) in [
        ("HERALD_PUBLIC_URL", "not a url"),
        ("HERALD_SMTP_URL", "ftp://mail.example.com"),
        ("HERALD_MAX_ATTEMPTS", "many"),
        ("HERALD_DEFAULT_LOCALE", "ko"),
    ] {
        let out = herald(&env).env(var, value).arg("worker").output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={value} was accepted");
        assert!(stderr.contains(var), "{var}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test]
async fn herald_send_refuses_an_invalid_job_before_publishing() {
    let env = TestEnv::new().await.unwrap();
    // Declare the work queue, so "nothing was published" is something that could fail.
    env.producer().await.close().await;
    let out = herald(&env)
        .args([
            "send",
            "verification-email",
            "--user-id",
            "u1",
            "--email",
            "a@example.com",
            "--client-id",
            "c1",
            "--result-url",
            "https://app.test/done",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("result_url cannot be specified when using client_id")
    );
    assert_eq!(env.broker.depth("herald.email").await, 0);
}

#[tokio::test]
async fn the_demo_delivers_every_kind_in_several_locales_and_shows_where() {
    let env = TestEnv::new().await.unwrap();
    let outbox = tempfile::tempdir().unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        ("HERALD_AMQP_URL", env.broker.url.clone()),
        ("HERALD_DATABASE_URL", env.db.url.clone()),
    ]);
    let settings = herald::settings::Settings::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let report = herald::commands::run_demo(&settings, outbox.path())
        .await
        .unwrap();

    let sent: Vec<_> = report.rows.iter().filter(|r| r.status == "sent").collect();
    assert_eq!(sent.len(), 8, "{:#?}", report.rows);
    let mut kinds: Vec<&str> = sent.iter().map(|r| r.kind.as_str()).collect();
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds.len(), 4, "every kind");
    let mut locales: Vec<&str> = sent.iter().filter_map(|r| r.locale.as_deref()).collect();
    locales.sort();
    locales.dedup();
    assert!(locales.len() >= 5, "several locales: {locales:?}");
    for row in &sent {
        let path = row
            .eml
            .as_ref()
            .unwrap_or_else(|| panic!("no .eml for {row:?}"));
        assert!(path.starts_with(outbox.path()) && path.exists(), "{path:?}");
        assert!(row.subject.is_some());
    }
    assert!(
        sent.iter()
            .filter(|r| r.kind != "welcome_email")
            .all(|r| r.link.as_deref().is_some_and(|l| l.contains("/u/")))
    );
    let dead: Vec<_> = report.rows.iter().filter(|r| r.status == "dead").collect();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0]
            .dead_reason
            .as_deref()
            .unwrap()
            .starts_with("invalid_job")
    );
}
