//! The `herald` binary as a user runs it: a worker process, `herald send` and bad configuration,
//! against the real services on loopback (`herald demo` has tests/demo.rs).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use herald_domain::{EmailJob, JobKind, Locale, TicketToken};
use herald_testkit::command;
use herald_testkit::env::TestEnv;

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

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
    let mut worker = command::herald(HERALD, &env)
        .arg("worker")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let mut send = command::herald(HERALD, &env);
    send.args([
        "send",
        "verification-email",
        "--user-id",
        "u1",
        "--email",
        "a@example.com",
        "--locale",
        "fr",
    ]);
    let out = command::output(send).await;
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
        // Never block the runtime here: the draining worker may still be talking to the sink.
        tokio::time::sleep(Duration::from_millis(100)).await;
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
        // Refused by the topology's own rule at startup, not in every broker session.
        ("HERALD_RETRY_DELAYS", "5s,5000ms"),
        ("HERALD_ENV", "staging"),
    ] {
        let mut worker = command::herald(HERALD, &env);
        worker.env(var, value).arg("worker");
        let out = command::output(worker).await;
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
    let out = command::herald(HERALD, &env)
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
