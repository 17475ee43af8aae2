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
use herald_testkit::command;
use herald_testkit::db::TestDb;
use herald_testkit::env::{TestEnv, TestWorker};
use lapin::options::{BasicAckOptions, BasicGetOptions};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");
const DEAD: &str = "herald.email.dead";

/// `herald` pointed at the test's services, with TestEnv's retry tiers.
fn herald(env: &TestEnv) -> Command {
    command::herald(HERALD, env)
}

/// Runs the command off the runtime's threads, so in-process workers and servers keep going.
async fn run(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args);
    command::output(cmd).await
}

/// Runs `herald <args>`, asserts it succeeded and returns its standard output.
async fn ok(env: &TestEnv, args: &[&str]) -> String {
    let mut cmd = herald(env);
    cmd.args(args);
    command::stdout_of_success(cmd).await
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
    let worker = env.spawn_worker(env.settings()).await;

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
    env.wait_status("ops-3.bad", "dead").await;

    // list: every dead letter with its reason, from the ledger; the queue is left alone.
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
    assert!(
        shown
            .lines()
            .any(|l| l.trim_start().starts_with("reason:") && l.ends_with(" smtp_permanent")),
        "{shown}"
    );
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
    settle_and_stop(&env, worker).await;
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

    // queues: every queue with its depth; the worker is gone, so no consumers.
    let queues = ok(&env, &["queues"]).await;
    for expected in [
        "herald.email ",
        "herald.email.retry.200ms",
        "herald.email.retry.400ms",
        "herald.email.dead",
        "OLDEST comes from the job ledger",
    ] {
        assert!(queues.contains(expected), "{expected:?} missing:\n{queues}");
    }
    let work = queues
        .lines()
        .find(|l| l.starts_with("herald.email "))
        .unwrap();
    assert!(
        work.split_whitespace().collect::<Vec<_>>()[2..] == ["0", "0", "-"],
        "{work}"
    );
}

/// Waits until the ledger and the queues are settled (no job queued, sending or retrying; the
/// work queue and both retry tiers empty), then stops `worker`, which finishes or hands back
/// whatever it still holds. After that nothing is left that could be sent: this checks the
/// queues once more, so a copy handed back at the stop fails the test instead of hiding.
async fn settle_and_stop(env: &TestEnv, worker: TestWorker) {
    const BUSY: [&str; 3] = [
        "herald.email",
        "herald.email.retry.200ms",
        "herald.email.retry.400ms",
    ];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let unfinished: i64 = env
            .db
            .store
            .job_status_counts()
            .await
            .unwrap()
            .into_iter()
            .filter(|(status, _)| matches!(status.as_str(), "queued" | "sending" | "retrying"))
            .map(|(_, n)| n)
            .sum();
        let mut ready = 0;
        for queue in BUSY {
            ready += env.broker.depth(queue).await;
        }
        if unfinished == 0 && ready == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never settled: {unfinished} unfinished jobs in the ledger, {ready} ready messages"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.stop().await.unwrap();
    for queue in BUSY {
        assert_eq!(
            env.broker.depth(queue).await,
            0,
            "{queue} still holds a message after the worker stopped"
        );
    }
}

/// Takes every message of `queue` with `basic.get`, oldest first: its message id and whether
/// the broker marks it redelivered (it was delivered before and put back).
async fn drain(env: &TestEnv, queue: &str) -> Vec<(String, bool)> {
    let conn = env.broker.connection().await;
    let channel = conn.create_channel().await.unwrap();
    let mut messages = Vec::new();
    while let Some(message) = channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await
        .unwrap()
    {
        let delivery = message.delivery;
        let id = delivery
            .properties
            .message_id()
            .as_ref()
            .map_or_else(String::new, ToString::to_string);
        messages.push((id, delivery.redelivered));
        delivery.ack(BasicAckOptions::default()).await.unwrap();
    }
    let _ = conn.close(200, "OK".into()).await;
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_and_showing_dead_letters_do_not_consume_or_reorder_the_dead_queue() {
    let env = TestEnv::new().await.unwrap();
    let producer = env.producer().await; // declares the dead queue
    let conn = env.broker.connection().await;
    let publisher = Publisher::new(&conn, TestEnv::topology()).await.unwrap();
    // d0 and d1 are in the ledger; d2 is not (as if PostgreSQL was down when it died).
    for id in ["d0", "d1", "d2"] {
        let body = format!(
            r#"{{"id":"{id}","type":"welcome_email","user":{{"email":"{id}@example.com"}}}}"#
        );
        publisher
            .publish_dead(
                body.as_bytes(),
                &job_properties(id).unwrap(),
                "email.welcome",
                "smtp_permanent",
                "554 no",
                1,
            )
            .await
            .unwrap();
        if id != "d2" {
            let payload: serde_json::Value = serde_json::from_str(&body).unwrap();
            env.db
                .store
                .mark_dead(
                    id,
                    "welcome_email",
                    1,
                    "smtp_permanent",
                    "554 no",
                    Some(&payload),
                )
                .await
                .unwrap();
        }
    }
    drop(publisher);
    let _ = conn.close(200, "OK".into()).await;
    producer.close().await;

    let listed = ok(&env, &["dlq", "list"]).await;
    assert!(listed.contains("d0") && listed.contains("d1"), "{listed}");
    assert!(!listed.contains("d2 "), "{listed}");
    assert!(listed.contains("2 dead letters shown of 2"), "{listed}");
    assert!(listed.contains("holds 3 messages, 1 more"), "{listed}");
    let limited = ok(&env, &["dlq", "list", "--limit", "1"]).await;
    assert!(limited.contains("1 dead letter shown of 2"), "{limited}");
    let shown = ok(&env, &["dlq", "show", "d1"]).await;
    assert!(shown.contains("d1@example.com"), "{shown}");
    assert!(shown.contains("email.welcome"), "{shown}");
    let unknown = run(herald(&env), &["dlq", "show", "d2"]).await;
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("the ledger has no job"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );

    // Every letter is still there, in order, and none was ever delivered.
    assert_eq!(
        drain(&env, DEAD).await,
        [
            ("d0".to_owned(), false),
            ("d1".to_owned(), false),
            ("d2".to_owned(), false)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_queues_dates_the_dead_queue_from_the_ledger_and_shows_missing_tiers() {
    let env = TestEnv::new().await.unwrap();
    // A producer declares the work and dead queues; no worker has declared the retry tiers.
    let producer = env.producer().await;
    producer
        .publish(&job(JobKind::Welcome, "q-1.welcome", "a@example.com"))
        .await
        .unwrap();
    producer.close().await;
    let conn = env.broker.connection().await;
    let publisher = Publisher::new(&conn, TestEnv::topology()).await.unwrap();
    publisher
        .publish_dead(
            b"{}",
            &job_properties("q-2.dead").unwrap(),
            "email.welcome",
            "smtp_permanent",
            "554 no",
            1,
        )
        .await
        .unwrap();
    drop(publisher);
    let _ = conn.close(200, "OK".into()).await;
    let store = &env.db.store;
    store
        .mark_dead(
            "q-2.dead",
            "welcome_email",
            1,
            "smtp_permanent",
            "554 no",
            None,
        )
        .await
        .unwrap();
    sqlx::query("UPDATE email_jobs SET updated_at = now() - interval '150 seconds'")
        .execute(store.pool())
        .await
        .unwrap();

    let stdout = ok(&env, &["queues"]).await;
    let cells = |queue: &str| -> Vec<String> {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{queue} ")))
            .unwrap_or_else(|| panic!("no row for {queue}:\n{stdout}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(cells("herald.email")[2..], ["1", "0", "?"], "{stdout}");
    assert_eq!(cells(DEAD)[3..], ["1", "0", "2m"], "{stdout}");
    assert!(cells("herald.email.retry.200ms").contains(&"missing".to_owned()));
    assert!(stdout.contains("herald worker"), "{stdout}");
    assert!(
        stdout.contains("herald_queue_oldest_message_age_seconds"),
        "the work queue's `?` is explained:\n{stdout}"
    );
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

#[tokio::test]
async fn template_list_shows_the_tenant_templates_below_the_overrides() {
    let env = TestEnv::new().await.unwrap();
    let empty = ok(&env, &["template", "list"]).await;
    assert!(empty.contains("No template overrides"), "{empty}");
    env.db
        .store
        .create_email_template(&herald_store::EmailTemplate {
            body: Some("<p>{{ url }}</p>".into()),
            ..herald_store::EmailTemplate::new(herald_domain::TemplateName::VerifyEmail)
        })
        .await
        .unwrap();
    let listed = ok(&env, &["template", "list"]).await;
    let line = listed
        .lines()
        .find(|l| l.contains("verify_email"))
        .unwrap_or_else(|| panic!("no tenant template line in {listed}"));
    assert!(line.starts_with("tenant (liquid)"), "{line}");
    assert!(line.contains("html"), "{line}");
    assert!(line.contains("DISABLED (jobs skipped)"), "{line}");
}
