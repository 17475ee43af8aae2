//! `/metrics` and `/readyz` of a running worker, end to end: jobs sent, retried and
//! dead-lettered show up in the counters, each queue's oldest-message age follows the ledger and
//! the worker's deliveries, and readiness follows the SMTP server.
//!
//! One test in this binary on purpose: the Prometheus recorder is process-wide, so the counts
//! asserted here are exactly this test's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_domain::{EmailJob, JobKind};
use herald_mailsink::FaultPlan;
use herald_testkit::command;
use herald_testkit::env::TestEnv;
use herald_testkit::http::get;
use herald_worker::CancellationToken;
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(30);
/// The retry tiers of this test: a short one the retried job goes through, and one long enough
/// for a job to sit in while its age is read.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(200), Duration::from_secs(3600)];
const SHORT_TIER: &str = "herald.email.retry.200ms";
const LONG_TIER: &str = "herald.email.retry.1h";
const DEAD_QUEUE: &str = "herald.email.dead";
const AGE: &str = "herald_queue_oldest_message_age_seconds";

/// Runs `herald <args>` against the test's services (off the runtime's threads) with this
/// test's retry tiers and returns its standard output; fails the test if it fails.
async fn herald(env: &TestEnv, args: &[&str]) -> String {
    let mut cmd = command::herald(env!("CARGO_BIN_EXE_herald"), env);
    cmd.env("HERALD_RETRY_DELAYS", "200ms,1h").args(args);
    command::stdout_of_success(cmd).await
}

/// The value of the sample `name{labels}` (exactly those labels) in a text exposition.
fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<&str, &str> = labels.iter().copied().collect();
    exposition.lines().find_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, got) = match series.split_once('{') {
            Some((n, rest)) => {
                let got: BTreeMap<&str, &str> = rest
                    .trim_end_matches('}')
                    .split(',')
                    .filter_map(|pair| pair.split_once('='))
                    .map(|(k, v)| (k, v.trim_matches('"')))
                    .collect();
                (n, got)
            }
            None => (series, BTreeMap::new()),
        };
        (series_name == name && got == want).then(|| value.parse().ok())?
    })
}

/// Polls `/metrics` until `ready` holds for it; fails with the last exposition otherwise.
async fn metrics_until(addr: SocketAddr, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        if ready(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "never saw {what} in:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `/readyz` until it answers `want`; returns the body.
async fn readyz_until(addr: SocketAddr, want: u16) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (status, body) = get(addr, "/readyz").await;
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never answered {want}; last {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_workers_metrics_and_readiness() -> anyhow::Result<()> {
    let env = TestEnv::new().await?;
    env.sink.set_faults(
        FaultPlan::reject_next(1, 451, "4.3.0 Try again later").when_recipient_contains("retry"),
    );
    let mut settings = env.settings();
    settings.retry_delays = RETRY_DELAYS.to_vec();
    settings.metrics_addr = Some("127.0.0.1:0".parse()?);
    let app = herald::app::Application::build(settings).await?;
    let topology = app.topology();
    assert_eq!(topology.retry_queues(), [SHORT_TIER, LONG_TIER]);
    let worker = app.worker();
    let shutdown = CancellationToken::new();
    let addr = app
        .serve_metrics(&worker, Duration::from_millis(200), shutdown.clone())
        .await?
        .expect("HERALD_METRICS_ADDR is set");
    let running = tokio::spawn({
        let (worker, shutdown) = (worker.clone(), shutdown.clone());
        async move { worker.run(shutdown).await }
    });

    assert_eq!(get(addr, "/healthz").await.0, 200);
    let ready = readyz_until(addr, 200).await;
    assert!(ready.contains("\"status\":\"ready\""), "{ready}");

    let sent = EmailJob::builder(JobKind::Verification, "u1", "ana@example.com").build()?;
    let retried = EmailJob::builder(JobKind::Welcome, "u2", "retry@example.com").build()?;
    let dead = EmailJob::builder(JobKind::Welcome, "u3", "bo@example.com")
        .organization_id("org_nowhere")
        .build()?;
    let producer = env.producer().await;
    for job in [&sent, &retried, &dead] {
        producer.publish(job).await?;
    }
    env.wait_status(sent.id.as_str(), "sent").await;
    assert_eq!(
        env.wait_status(retried.id.as_str(), "sent").await.attempts,
        2
    );
    env.wait_status(dead.id.as_str(), "dead").await;

    let jobs = |kind: &'static str, outcome: &'static str| {
        move |m: &str| {
            sample(
                m,
                "herald_jobs_total",
                &[("type", kind), ("outcome", outcome)],
            )
        }
    };
    let body = metrics_until(addr, "every settled delivery", |m| {
        jobs("verification_email", "sent")(m) == Some(1.0)
            && jobs("welcome_email", "sent")(m) == Some(1.0)
            && jobs("welcome_email", "retry")(m) == Some(1.0)
            && jobs("welcome_email", "dead")(m) == Some(1.0)
    })
    .await;
    let value = |name: &str, labels: &[(&str, &str)]| sample(&body, name, labels);
    assert_eq!(
        value(
            "herald_dead_letters_total",
            &[("reason", "unknown_organization")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "herald_tickets_issued_total",
            &[("purpose", "email_verification")]
        ),
        Some(1.0),
        "one ticket, although its job was not retried"
    );
    assert_eq!(
        value(
            "herald_tickets_redeemed_total",
            &[("purpose", "password_change")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value("herald_job_attempts_sum", &[("type", "welcome_email")]),
        Some(2.0),
        "the retried job went out on attempt 2"
    );
    assert_eq!(
        value(
            "herald_job_attempts_bucket",
            &[("type", "verification_email"), ("le", "1")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value("herald_send_duration_seconds_count", &[("result", "ok")]),
        Some(2.0)
    );
    assert_eq!(
        value("herald_send_duration_seconds_count", &[("result", "error")]),
        Some(1.0)
    );
    assert_eq!(
        value("herald_render_duration_seconds_count", &[]),
        Some(3.0)
    );
    // Group commit: every attempt that reached the ledger went through a batch (the dead job
    // failed before it), whatever the batches' sizes.
    assert_eq!(
        value("herald_ledger_batch_jobs_sum", &[("statement", "begin")]),
        Some(3.0)
    );
    assert_eq!(
        value("herald_ledger_batch_jobs_sum", &[("statement", "sent")]),
        Some(2.0)
    );
    assert!(body.contains("# TYPE herald_send_duration_seconds histogram"));
    assert!(value("herald_smtp_pool_connections", &[("state", "idle")]).is_some());
    assert_eq!(
        value("herald_smtp_pool_connections", &[("state", "in_use")]),
        Some(0.0)
    );
    assert_eq!(
        value(
            "herald_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );

    // The poller reads every queue on its own connection.
    let queue =
        |name: &'static str, q: &'static str| move |m: &str| sample(m, name, &[("queue", q)]);
    let body = metrics_until(addr, "the queue gauges", |m| {
        queue("herald_queue_consumers", "herald.email")(m) == Some(1.0)
            && queue("herald_queue_messages", "herald.email")(m) == Some(0.0)
            && queue("herald_queue_messages", "herald.email.dead")(m) == Some(1.0)
    })
    .await;
    for tier in topology.retry_queues() {
        assert!(
            body.contains(&format!("herald_queue_messages{{queue=\"{tier}\"}}")),
            "{tier}"
        );
    }

    // Oldest-message ages. The worker noted the publish time of what it was delivered.
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let newest = worker.newest_delivered().unix_secs().expect("a delivery");
    assert!(newest <= now && now - newest < 60, "{newest} vs {now}");

    // A job that keeps failing goes through the 200 ms tier and then waits in the 1 h tier.
    let stuck = EmailJob::builder(JobKind::Welcome, "u4", "stuck@example.com").build()?;
    env.sink.set_faults(
        FaultPlan::reject_all(451, "4.3.0 Try again later").when_recipient_contains("stuck"),
    );
    producer.publish(&stuck).await?;
    let deadline = Instant::now() + DEADLINE;
    loop {
        let job = env.db.store.job(stuck.id.as_str()).await?;
        if job
            .as_ref()
            .is_some_and(|j| j.status == "retrying" && j.attempts == 2)
        {
            break;
        }
        assert!(Instant::now() < deadline, "never retried twice: {job:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let age = |q: &'static str| move |m: &str| sample(m, AGE, &[("queue", q)]);
    let body = metrics_until(addr, "an age for the 1 h tier", |m| {
        queue("herald_queue_messages", LONG_TIER)(m) == Some(1.0)
            && age(LONG_TIER)(m).is_some_and(|a| a > 0.0)
    })
    .await;
    let waited = age(LONG_TIER)(&body).unwrap();
    assert!(waited < DEADLINE.as_secs_f64(), "{waited}");
    assert_eq!(age(SHORT_TIER)(&body), Some(0.0), "{body}");
    assert_eq!(
        age("herald.email")(&body),
        Some(0.0),
        "the work queue is empty"
    );
    // The job that was dead-lettered earlier is still parked.
    let parked = age(DEAD_QUEUE)(&body).unwrap();
    assert!(parked > 0.0 && parked < 120.0, "{parked}");
    // The ages are measured, not fixed: the tier's grows while the job waits.
    metrics_until(addr, "the 1 h tier's age growing", |m| {
        age(LONG_TIER)(m).is_some_and(|a| a >= waited + 1.0)
    })
    .await;

    // Purging the dead letter marks it in the ledger, and the dead queue's age drops to 0.
    let purged = herald(&env, &["dlq", "purge", "--all", "--yes"]).await;
    assert!(purged.contains("Deleted 1 dead letter"), "{purged}");
    metrics_until(addr, "the dead queue's age back to 0", |m| {
        queue("herald_queue_messages", DEAD_QUEUE)(m) == Some(0.0)
            && age(DEAD_QUEUE)(m) == Some(0.0)
    })
    .await;
    let ledger = env.db.store.queue_ages(RETRY_DELAYS.len()).await?;
    assert_eq!(
        ledger.dead,
        Duration::ZERO,
        "the ledger knows it was purged"
    );
    assert!(ledger.retry_tiers[1] > Duration::ZERO);
    let dead_job = env.db.store.job(dead.id.as_str()).await?.unwrap();
    assert_eq!(dead_job.status, "dead", "a purged job stays dead");
    let shown = herald(&env, &["jobs", "show", dead.id.as_str()]).await;
    assert!(shown.contains("purged"), "{shown}");
    assert!(shown.contains("unknown_organization"), "{shown}");

    // Readiness follows the SMTP server (its check is cached for a few seconds).
    let TestEnv {
        sink, db, broker, ..
    } = env;
    sink.stop().await;
    let down = readyz_until(addr, 503).await;
    let json: serde_json::Value = serde_json::from_str(&down)?;
    assert_eq!(json["down"], serde_json::json!(["smtp"]), "{down}");

    shutdown.cancel();
    running.await??;
    drop((db, broker));
    Ok(())
}
