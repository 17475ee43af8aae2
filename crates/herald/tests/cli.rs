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
    let status = terminate(&mut worker).await;
    assert!(status.success(), "worker exit status {status:?}");
}

/// Sends SIGTERM and waits (up to 20 s) for the process to exit.
async fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the process did not exit after SIGTERM"
        );
        // Never block the runtime here: a draining process may still be talking to the sink.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

#[tokio::test]
async fn herald_serve_answers_with_a_token_from_herald_token_create_and_stops_on_sigterm() {
    let env = TestEnv::new().await.unwrap();
    let mut create = command::herald(HERALD, &env);
    create.args([
        "token",
        "create",
        "--scopes",
        "read:users create:users",
        "--name",
        "ci",
    ]);
    let token = command::stdout_of_success(create).await;
    let token = token.trim();
    assert!(
        token.starts_with("hrld_") && !token.contains(char::is_whitespace),
        "{token:?}"
    );
    let mut bad = command::herald(HERALD, &env);
    bad.args(["token", "create", "--scopes", "read:everything"]);
    let out = command::output(bad).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown scope"));

    // `herald token list` shows the token's name and scopes, never the token.
    let mut list = command::herald(HERALD, &env);
    list.args(["token", "list"]);
    let listed = command::stdout_of_success(list).await;
    assert!(
        listed.contains("ci") && listed.contains("read:users"),
        "{listed}"
    );
    assert!(!listed.contains(token));

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut serve = command::herald(HERALD, &env)
        .arg("serve")
        .env("HERALD_HTTP_ADDR", addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "herald serve did not listen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let auth = format!("Bearer {token}");
    let body = br#"{"connection":"Username-Password-Authentication","email":"eve@example.com"}"#;
    let created = herald_testkit::http::request(
        addr,
        "POST",
        "/api/v2/users",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.json()["email"], "eve@example.com");
    let ready = herald_testkit::http::request(addr, "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 200, "{ready:?}");

    let status = terminate(&mut serve).await;
    assert!(status.success(), "serve exit status {status:?}");
}
