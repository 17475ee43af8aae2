//! The operator commands as a user runs them: `herald dlq list|show|replay|purge`,
//! `herald jobs show` and `herald queues`, against a worker that dead-letters real jobs, plus the
//! browse and ledger building blocks underneath.

use std::collections::HashSet;
use std::process::{Command, Output};
use std::time::Duration;

use herald_domain::{EmailJob, JobKind};
use herald_mailsink::FaultPlan;
use herald_queue::dlq::{self, BrowseOptions, DeadLetter, Verdict};
use herald_queue::{Publisher, job_properties};
use herald_testkit::db::TestDb;
use herald_testkit::env::TestEnv;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");
const DEAD: &str = "herald.email.dead";

/// `herald` pointed at the test's services, with TestEnv's retry tiers and a management API
/// address where nothing listens.
fn herald(env: &TestEnv) -> Command {
    let mut cmd = Command::new(HERALD);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HERALD_AMQP_URL", &env.broker.url)
        .env("HERALD_DATABASE_URL", &env.db.url)
        .env("HERALD_SMTP_URL", env.sink.url())
        .env("HERALD_RETRY_DELAYS", "200ms,400ms")
        .env("HERALD_RABBITMQ_API_URL", "http://127.0.0.1:1")
        .env("RUST_LOG", "warn");
    cmd
}

/// Runs the command off the runtime's threads, so in-process workers and servers keep going.
async fn run(mut cmd: Command, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || cmd.args(&args).output().expect("herald runs"))
        .await
        .unwrap()
}

/// Runs `herald <args>`, asserts it succeeded and returns its standard output.
async fn ok(env: &TestEnv, args: &[&str]) -> String {
    let out = run(herald(env), args).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "herald {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn wait_depth(env: &TestEnv, queue: &str, n: u32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let depth = env.broker.depth(queue).await;
        if depth == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{queue} holds {depth} messages, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn job(kind: JobKind, id: &str, email: &str) -> EmailJob {
    EmailJob::builder(kind, "u1", email).id(id).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_replayed_once_and_purged_and_the_ledger_shows_the_replay() {
    let env = TestEnv::new().await.unwrap();
    env.sink
        .set_faults(FaultPlan::reject_all(554, "5.1.1 No such user"));
    let worker = env.spawn_worker(env.config());

    let producer = env.producer().await;
    producer
        .publish(&job(
            JobKind::Verification,
            "ops-1.verify",
            "ana@example.com",
        ))
        .await
        .unwrap();
    producer
        .publish(&job(JobKind::Welcome, "ops-2.welcome", "bo@example.com"))
        .await
        .unwrap();
    let invalid = br#"{"id":"ops-3.bad","type":"verification_email","user":{"user_id":"u1","email":"c@example.com"},"client_id":"c1","result_url":"https://app.test/done"}"#;
    producer
        .publish_raw("email.verification", "ops-3.bad", invalid)
        .await
        .unwrap();
    producer.close().await;
    wait_depth(&env, DEAD, 3).await;
    env.wait_status("ops-1.verify", "dead").await;
    env.wait_status("ops-2.welcome", "dead").await;

    // list: every dead letter with its reason, and browsing loses none of them.
    let listed = ok(&env, &["dlq", "list"]).await;
    for expected in [
        "ops-1.verify",
        "ops-2.welcome",
        "ops-3.bad",
        "verification_email",
        "welcome_email",
        "smtp_permanent",
        "invalid_job",
        "554",
        "3 dead letters shown of 3",
    ] {
        assert!(listed.contains(expected), "{expected:?} missing:\n{listed}");
    }
    assert_eq!(env.broker.depth(DEAD).await, 3);
    let invalid_only = ok(&env, &["dlq", "list", "--reason", "invalid_job"]).await;
    assert!(invalid_only.contains("ops-3.bad"), "{invalid_only}");
    assert!(!invalid_only.contains("ops-1.verify"), "{invalid_only}");
    let welcome_only = ok(&env, &["dlq", "list", "--type", "welcome-email"]).await;
    assert!(welcome_only.contains("ops-2.welcome"), "{welcome_only}");
    assert!(!welcome_only.contains("ops-1.verify"), "{welcome_only}");
    let limited = ok(&env, &["dlq", "list", "--limit", "1"]).await;
    assert!(limited.contains("1 dead letter shown of 3"), "{limited}");
    let too_recent = ok(&env, &["dlq", "list", "--older-than", "1h"]).await;
    assert!(
        too_recent.contains("No dead letter matches"),
        "{too_recent}"
    );

    let shown = ok(&env, &["dlq", "show", "ops-1.verify"]).await;
    assert!(shown.contains("x-herald-reason: smtp_permanent"), "{shown}");
    assert!(shown.contains("ana@example.com"), "{shown}");
    assert!(shown.contains("email.verification"), "{shown}");
    let missing = run(herald(&env), &["dlq", "show", "no-such-job"]).await;
    assert!(!missing.status.success());
    assert_eq!(env.broker.depth(DEAD).await, 3);

    // replay and purge refuse to guess what they act on.
    let unselected = run(herald(&env), &["dlq", "replay"]).await;
    assert!(!unselected.status.success());
    assert!(String::from_utf8_lossy(&unselected.stderr).contains("--all"));

    let dry = ok(
        &env,
        &["dlq", "replay", "--reason", "smtp_permanent", "--dry-run"],
    )
    .await;
    assert!(dry.contains("would replay"), "{dry}");
    assert!(dry.contains("Would replay 2 jobs"), "{dry}");
    assert_eq!(env.broker.depth(DEAD).await, 3);
    assert_eq!(
        env.db
            .store
            .job("ops-1.verify")
            .await
            .unwrap()
            .unwrap()
            .status,
        "dead"
    );

    // The SMTP server is fixed: replay sends each job exactly once.
    env.sink.set_faults(FaultPlan::none());
    let replayed = ok(&env, &["dlq", "replay", "--reason", "smtp_permanent"]).await;
    assert!(replayed.contains("Replayed 2 jobs"), "{replayed}");
    assert!(replayed.contains("email.verification"), "{replayed}");
    let sent = env.wait_status("ops-1.verify", "sent").await;
    assert_eq!(sent.attempts, 2, "the replay is the second attempt");
    env.wait_status("ops-2.welcome", "sent").await;
    let mails = env.expect_mail(2).await;
    wait_depth(&env, DEAD, 1).await;

    // The invalid job is reported and stays parked; nothing else is sent again.
    let again = ok(&env, &["dlq", "replay", "--all"]).await;
    assert!(again.contains("ops-3.bad"), "{again}");
    assert!(again.contains("not valid"), "{again}");
    assert!(again.contains("Replayed 0 jobs"), "{again}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        env.sink.count(),
        2,
        "each replayed job is sent exactly once"
    );
    let ids: HashSet<String> = mails
        .iter()
        .filter_map(|m| m.parsed().message_id())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert_eq!(env.broker.depth(DEAD).await, 1);
    assert_eq!(env.broker.depth("herald.email").await, 0);

    let would = ok(&env, &["dlq", "purge", "--reason", "invalid_job"]).await;
    assert!(would.contains("Would delete 1 dead letter"), "{would}");
    assert_eq!(env.broker.depth(DEAD).await, 1);
    let purged = ok(&env, &["dlq", "purge", "--reason", "invalid_job", "--yes"]).await;
    assert!(purged.contains("Deleted 1 dead letter"), "{purged}");
    assert_eq!(env.broker.depth(DEAD).await, 0);
    let empty = ok(&env, &["dlq", "list"]).await;
    assert!(empty.contains("is empty"), "{empty}");

    // jobs show: the row, the ticket without its token, and the whole history.
    let history = ok(&env, &["jobs", "show", "ops-1.verify"]).await;
    for expected in [
        "status:       sent",
        "attempts:     2",
        "email_verification",
        "token hash:",
        "received",
        "dead",
        "replayed",
        "smtp_permanent",
        "sent",
    ] {
        assert!(
            history.contains(expected),
            "{expected:?} missing:\n{history}"
        );
    }
    let events: Vec<String> = env
        .db
        .store
        .job_events("ops-1.verify")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, ["received", "dead", "replayed", "received", "sent"]);
    let mail = mails
        .iter()
        .find(|m| {
            m.parsed()
                .to()
                .iter()
                .any(|t| t.contains("ana@example.com"))
        })
        .expect("the verification email");
    let text = mail.parsed().text().unwrap();
    let token = text
        .split("ticket=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .expect("a ticket link")
        .trim_end_matches(['.', ',', '#']);
    assert!(!history.contains(token), "the token leaked:\n{history}");
    let unknown = run(herald(&env), &["jobs", "show", "no-such-job"]).await;
    assert!(!unknown.status.success());

    // queues: every queue with its depth; no management API here, so no ages.
    let queues = ok(&env, &["queues"]).await;
    for expected in [
        "herald.email ",
        "herald.email.retry.200ms",
        "herald.email.retry.400ms",
        "herald.email.dead",
        "rabbitmq_management",
    ] {
        assert!(queues.contains(expected), "{expected:?} missing:\n{queues}");
    }
    let work = queues
        .lines()
        .find(|l| l.starts_with("herald.email "))
        .unwrap();
    assert!(
        work.split_whitespace().collect::<Vec<_>>()[2..4] == ["0", "1"],
        "{work}"
    );

    worker.stop().await.unwrap();
}

/// A stand-in for the management API: answers every request with `head` as the head message's
/// timestamp, and reports the requests it saw.
async fn fake_management_api(head: u64) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (seen, requests) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = seen.send(String::from_utf8_lossy(&request).into_owned());
                let body = format!(
                    r#"{{"name":"q","messages":1,"consumers":0,"head_message_timestamp":{head}}}"#
                );
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (port, requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_queues_shows_the_oldest_age_from_the_management_api_and_missing_tiers() {
    let env = TestEnv::new().await.unwrap();
    // A producer declares the work and dead queues; no worker has declared the retry tiers.
    let producer = env.producer().await;
    producer
        .publish(&job(JobKind::Welcome, "q-1.welcome", "a@example.com"))
        .await
        .unwrap();
    producer.close().await;

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (port, mut requests) = fake_management_api(now - 150).await;
    let mut cmd = herald(&env);
    cmd.env(
        "HERALD_RABBITMQ_API_URL",
        format!("http://127.0.0.1:{port}"),
    );
    let out = run(cmd, &["queues"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let work = stdout
        .lines()
        .find(|l| l.starts_with("herald.email "))
        .unwrap_or_else(|| panic!("no work queue row:\n{stdout}"));
    let cells: Vec<&str> = work.split_whitespace().collect();
    assert_eq!(cells[2..], ["1", "0", "2m"], "{stdout}");
    let tier = stdout
        .lines()
        .find(|l| l.starts_with("herald.email.retry.200ms"))
        .unwrap();
    assert!(tier.contains("missing"), "{stdout}");
    assert!(stdout.contains("herald worker"), "{stdout}");
    assert!(!stdout.contains("rabbitmq_management"), "{stdout}");

    let first = requests.recv().await.unwrap();
    let vhost = env.broker.url.rsplit('/').next().unwrap();
    assert!(
        first.starts_with(&format!("GET /api/queues/{vhost}/herald.email HTTP/1.1")),
        "{first}"
    );
    // guest:guest, taken from the AMQP URL.
    assert!(
        first
            .to_ascii_lowercase()
            .contains("authorization: basic z3vlc3q6z3vlc3q="),
        "{first}"
    );

    let bad = run(
        {
            let mut cmd = herald(&env);
            cmd.env("HERALD_RABBITMQ_API_URL", "ftp://nope");
            cmd
        },
        &["queues"],
    )
    .await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("HERALD_RABBITMQ_API_URL"));
}

#[tokio::test]
async fn browsing_keeps_every_message_it_does_not_remove_even_past_its_window() {
    let env = TestEnv::new().await.unwrap();
    let producer = env.producer().await; // declares the dead queue
    let conn = env.broker.connection().await;
    let publisher = Publisher::new(&conn, TestEnv::topology()).await.unwrap();
    let ids: Vec<String> = (0..7).map(|i| format!("d{i}")).collect();
    for id in &ids {
        publisher
            .publish_dead(
                b"{}",
                &job_properties(id).unwrap(),
                "email.welcome",
                "smtp_permanent",
                "554 no",
                1,
            )
            .await
            .unwrap();
    }
    let small = BrowseOptions {
        window: 2,
        idle_timeout: Duration::from_secs(5),
    };

    let mut seen = Vec::new();
    let summary = dlq::browse(&conn, DEAD, small, async |l: &DeadLetter| {
        seen.push(l.message_id().unwrap());
        Verdict::Keep
    })
    .await
    .unwrap();
    assert_eq!((summary.depth, summary.seen, summary.kept), (7, 7, 7));
    assert_eq!(seen, ids, "a browse sees each message once, in queue order");
    assert_eq!(env.broker.depth(DEAD).await, 7);

    // Remove one in the middle; the others stay, each exactly once.
    let summary = dlq::browse(&conn, DEAD, small, async |l: &DeadLetter| {
        if l.message_id().as_deref() == Some("d3") {
            Verdict::Remove
        } else {
            Verdict::Keep
        }
    })
    .await
    .unwrap();
    assert_eq!((summary.seen, summary.removed), (7, 1));
    assert_eq!(env.broker.depth(DEAD).await, 6);

    // Stopping early puts everything back too.
    let summary = dlq::browse(&conn, DEAD, small, async |_: &DeadLetter| Verdict::Stop)
        .await
        .unwrap();
    assert_eq!(summary.seen, 1);
    let mut left = Vec::new();
    dlq::browse(&conn, DEAD, small, async |l: &DeadLetter| {
        left.push(l.message_id().unwrap());
        Verdict::Keep
    })
    .await
    .unwrap();
    left.sort();
    assert_eq!(left, ["d0", "d1", "d2", "d4", "d5", "d6"]);
    producer.close().await;
}

#[tokio::test]
async fn reopening_for_replay_only_touches_dead_jobs_and_records_the_replay() {
    let db = TestDb::new().await.unwrap();
    let store = &db.store;
    store
        .mark_dead("j1", "welcome_email", 3, "max_attempts", "451 busy", None)
        .await
        .unwrap();
    assert!(store.reopen_for_replay("j1").await.unwrap());
    let job = store.job("j1").await.unwrap().unwrap();
    assert_eq!(job.status, "queued");
    assert_eq!(job.dead_reason, None);
    assert_eq!(job.attempts, 3, "the attempts are history and are kept");
    assert_eq!(job.last_error.as_deref(), Some("451 busy"));
    let events = store.job_events("j1").await.unwrap();
    let last = events.last().unwrap();
    assert_eq!((last.event.as_str(), last.attempt), ("replayed", 3));
    assert!(last.detail.as_deref().unwrap().contains("max_attempts"));

    assert!(
        !store.reopen_for_replay("j1").await.unwrap(),
        "not dead any more"
    );
    assert!(!store.reopen_for_replay("nobody").await.unwrap());
    store.mark_sent("j1", 4, "250 OK").await.unwrap();
    assert!(!store.reopen_for_replay("j1").await.unwrap());
    assert_eq!(store.job("j1").await.unwrap().unwrap().status, "sent");
}
