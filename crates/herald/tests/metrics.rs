//! `/metrics` and `/readyz` of a running worker, end to end: jobs sent, retried and
//! dead-lettered show up in the counters, and readiness follows the SMTP server.
//!
//! One test in this binary on purpose: the Prometheus recorder is process-wide, so the counts
//! asserted here are exactly this test's.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use herald_domain::{EmailJob, JobKind};
use herald_mailsink::FaultPlan;
use herald_testkit::env::TestEnv;
use herald_worker::{CancellationToken, Pipeline, Worker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(30);

/// A bare HTTP/1.1 GET; returns the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.get(9..12).and_then(|s| s.parse().ok()).unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
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
    let worker = Worker::new(Pipeline::new(
        env.db.store.clone(),
        env.renderer.clone(),
        env.mailer(),
        env.config(),
    ));
    let shutdown = CancellationToken::new();
    let addr = herald::app::observe(
        &worker,
        "127.0.0.1:0".parse()?,
        Duration::from_millis(200),
        shutdown.clone(),
    )
    .await?;
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
    for tier in TestEnv::topology().retry_queues() {
        assert!(
            body.contains(&format!("herald_queue_messages{{queue=\"{tier}\"}}")),
            "{tier}"
        );
    }

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
