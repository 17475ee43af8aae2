//! What the fault tests (`faults.rs`, `cluster.rs`) share: jobs whose recipient is their id, the
//! tally of what the SMTP sink received, the chaos report row, `herald worker` processes,
//! publishers running through outages, and polling helpers.
//!
//! Each test binary uses part of it, so the unused rest is allowed in each.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use herald_domain::{EmailJob, JobKind};
use herald_mailsink::MailSink;
use herald_producer::Producer;
use herald_store::Store;
use herald_testkit::env::TestEnv;
use herald_worker::CancellationToken;
use tokio::task::JoinHandle;

pub const HERALD: &str = env!("CARGO_BIN_EXE_herald");
pub const SECRET: &str = "fault-tests-ticket-secret-0123456789abcdef";
pub const PREFETCH: u16 = 8;

/// Logs to the test's captured output when `RUST_LOG` is set (shown for failing tests).
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .with_ansi(false)
            .try_init();
    }
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// 1 under `cargo test`; `HERALD_CHAOS_SCALE` under `scripts/chaos.sh`.
pub fn scale() -> usize {
    std::env::var("HERALD_CHAOS_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|s| *s >= 1)
        .unwrap_or(1)
}

/// A deadline stretched with the number of jobs.
pub fn scaled(timeout: Duration) -> Duration {
    timeout * u32::try_from(scale()).unwrap_or(u32::MAX)
}

/// A verification job (so it has a ticket) whose recipient's local part is its id.
pub fn job(prefix: &str, i: usize) -> EmailJob {
    let id = format!("{prefix}-{i:05}");
    EmailJob::builder(
        JobKind::Verification,
        format!("user|{id}"),
        format!("{id}@example.com"),
    )
    .id(id)
    .build()
    .expect("a valid job")
}

pub async fn publish_batch(producer: &Producer, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let job = job(prefix, i);
        producer.publish(&job).await.expect("the broker is up");
        ids.push(job.id.to_string());
    }
    ids
}

/// Publishes `n` jobs with a producer of its own, closed before returning.
pub async fn publish_fresh(amqp_url: &str, prefix: &str, n: usize) -> Vec<String> {
    let producer = Producer::connect_with(amqp_url, TestEnv::topology())
        .await
        .unwrap();
    let ids = publish_batch(&producer, prefix, n).await;
    producer.close().await;
    ids
}

/// The job ids the sink has mail for (from the envelope; cheap enough to poll).
pub fn delivered_ids(sink: &MailSink) -> BTreeSet<String> {
    sink.messages()
        .iter()
        .filter_map(|m| m.rcpt_to.first())
        .map(|r| r.split('@').next().unwrap_or_default().to_owned())
        .collect()
}

/// Polls `check` every 50 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(ms(50)).await;
    }
}

/// Waits until the ledger shows `n` jobs sent; panics with the ledger's counts after `timeout`.
pub async fn wait_all_sent(store: &Store, n: usize, timeout: Duration) {
    if let Err(counts) = all_sent_within(store, n, timeout).await {
        panic!("not all {n} jobs sent after {timeout:?}; ledger: {counts:?}");
    }
}

/// Polls the ledger until `n` jobs are sent, or returns its counts after `timeout`.
pub async fn all_sent_within(
    store: &Store,
    n: usize,
    timeout: Duration,
) -> Result<(), Vec<(String, i64)>> {
    let deadline = Instant::now() + timeout;
    loop {
        let counts = store.job_status_counts().await.unwrap_or_default();
        let sent = counts
            .iter()
            .find(|(s, _)| s == "sent")
            .map_or(0, |(_, c)| usize::try_from(*c).unwrap_or(0));
        if sent >= n {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(counts);
        }
        tokio::time::sleep(ms(100)).await;
    }
}

pub async fn assert_ledger_all_sent_with_one_ticket(store: &Store, ids: &[String]) {
    for id in ids {
        let job = store
            .job(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{id} not in the ledger"));
        assert_eq!(job.status, "sent", "{id}: {job:?}");
        // tickets.job_id is UNIQUE, so "one" means "present".
        let ticket = store.ticket_for_job(id).await.unwrap();
        assert!(ticket.is_some(), "{id} was sent without a ticket");
        let sent_events = store
            .job_events(id)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.event == "sent")
            .count();
        assert!(sent_events >= 1, "{id} has no 'sent' event");
    }
}

pub async fn dead_letters_at(url: &str) -> usize {
    let conn = herald_queue::connect(url, "herald-fault-test")
        .await
        .unwrap();
    let stats = herald_queue::queue_stats(&conn, "herald.email.dead")
        .await
        .unwrap();
    let _ = conn.close(200, "OK".into()).await;
    stats.messages as usize
}

pub async fn consumers_on(url: &str, queue: &str) -> u32 {
    let conn = herald_queue::connect(url, "herald-fault-test")
        .await
        .unwrap();
    let stats = herald_queue::queue_stats(&conn, queue).await.unwrap();
    let _ = conn.close(200, "OK".into()).await;
    stats.consumers
}

/// Publishes every job twice in a row, so that the second delivery usually arrives while the
/// first is still being sent (and is deferred).
pub async fn publish_twice(producer: &Producer, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let job = job(prefix, i);
        producer.publish(&job).await.expect("the broker is up");
        producer.publish(&job).await.expect("the broker is up");
        ids.push(job.id.to_string());
    }
    ids
}

/// The pids of the connections of `vhost` whose client-provided name contains `name`.
pub async fn connections(vhost: &str, name: &str) -> Vec<String> {
    let (vhost, name) = (vhost.to_owned(), name.to_owned());
    tokio::task::spawn_blocking(move || {
        let out = Command::new("rabbitmqctl")
            .args([
                "-q",
                "list_connections",
                "pid",
                "vhost",
                "client_properties",
            ])
            .arg("--no-table-headers")
            .output()
            .expect("rabbitmqctl runs");
        assert!(out.status.success(), "rabbitmqctl list_connections failed");
        // One connection per line: pid, vhost and client properties, tab-separated.
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| {
                let mut cols = line.splitn(3, '\t');
                let (pid, host, props) = (cols.next()?, cols.next()?, cols.next()?);
                (host == vhost && props.contains(&name)).then(|| pid.to_owned())
            })
            .collect()
    })
    .await
    .unwrap()
}

/// Closes connections by pid, as an operator would with `rabbitmqctl close_connection`: each
/// group at once, the next group `gap` after the previous one started. Returns when all are
/// done. A connection that closed meanwhile is not an error.
pub async fn close_in_order(groups: Vec<Vec<String>>, gap: Duration) {
    let mut closing = Vec::new();
    for (i, group) in groups.into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        for pid in group {
            closing.push(tokio::task::spawn_blocking(move || {
                Command::new("rabbitmqctl")
                    .args(["-q", "close_connection", &pid, "herald fault test"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("rabbitmqctl runs")
            }));
        }
    }
    for c in closing {
        c.await.unwrap();
    }
}

/// When the ledger recorded each of `ids` as sent, as seconds since the Unix epoch (the latest).
pub async fn last_sent_at(store: &Store, ids: &[String]) -> Option<f64> {
    if ids.is_empty() {
        return None;
    }
    sqlx::query_scalar::<_, Option<f64>>(
        "SELECT extract(epoch FROM max(sent_at))::float8 FROM email_jobs WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_one(store.pool())
    .await
    .unwrap()
}

/// Durations in seconds, one decimal, joined with `/` (for a report's note).
pub fn seconds(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.1}"))
        .collect::<Vec<_>>()
        .join("/")
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Closes a producer whose publishing tasks have ended.
pub async fn close(producer: Arc<Producer>) {
    if let Ok(producer) = Arc::try_unwrap(producer) {
        producer.close().await;
    }
}

/// `herald worker` as a child process, configured like the tests' in-process workers. Dropping
/// it SIGKILLs the process if it is still running.
#[derive(Debug)]
pub struct WorkerProcess {
    child: Child,
}

impl WorkerProcess {
    pub fn spawn(amqp: &str, db: &str, smtp: &str, extra: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(HERALD);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HERALD_AMQP_URL", amqp)
            .env("HERALD_DATABASE_URL", db)
            .env("HERALD_SMTP_URL", smtp)
            .env("HERALD_PUBLIC_URL", "https://id.herald.test")
            .env("HERALD_TICKET_SECRET", SECRET)
            .env("HERALD_PREFETCH", PREFETCH.to_string())
            .env("HERALD_RETRY_DELAYS", "200ms,400ms")
            .env("HERALD_MAX_ATTEMPTS", "50")
            .env("HERALD_SMTP_TIMEOUT", "2s")
            .env("HERALD_SEND_LEASE", "3s")
            .env("HERALD_METRICS_ADDR", "off")
            .env("RUST_LOG", "error");
        // An empty value unsets the variable, so the worker uses its default.
        for (k, v) in extra {
            if v.is_empty() {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let child = cmd
            .arg("worker")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the herald binary starts");
        WorkerProcess { child }
    }

    /// A worker with Herald's own defaults for the settings recovery depends on
    /// (HERALD_PREFETCH 128, HERALD_SEND_LEASE 10s, HERALD_SMTP_TIMEOUT 30s; the SMTP pool is 8
    /// unless the URL says otherwise).
    pub fn with_defaults(env: &TestEnv) -> Self {
        let defaults = [
            ("HERALD_PREFETCH", ""),
            ("HERALD_SEND_LEASE", ""),
            ("HERALD_SMTP_TIMEOUT", ""),
        ];
        Self::spawn(&env.broker.url, &env.db.url, &env.sink.url(), &defaults)
    }

    /// Whether the process is still running (it has not exited, e.g. given up on the broker).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the worker");
        self.child.wait().expect("reap the worker");
    }

    /// Sends SIGTERM and waits for the exit.
    pub async fn terminate_and_wait(&mut self, timeout: Duration) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the worker did not exit after SIGTERM"
            );
            tokio::time::sleep(ms(20)).await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Tasks publishing fresh jobs back to back until stopped, recording each outcome.
#[derive(Debug)]
pub struct Publishers {
    stop: CancellationToken,
    attempts: Arc<AtomicUsize>,
    outcomes: Arc<Mutex<Vec<(String, bool)>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Publishers {
    pub fn start(producer: Arc<Producer>, prefix: &str, tasks: usize, pause: Duration) -> Self {
        let stop = CancellationToken::new();
        let attempts = Arc::new(AtomicUsize::new(0));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..tasks)
            .map(|t| {
                let (producer, stop) = (producer.clone(), stop.clone());
                let (attempts, outcomes) = (attempts.clone(), outcomes.clone());
                let prefix = format!("{prefix}{t}");
                tokio::spawn(async move {
                    let mut i = 0;
                    while !stop.is_cancelled() {
                        let job = job(&prefix, i);
                        i += 1;
                        attempts.fetch_add(1, Ordering::SeqCst);
                        let ok = producer.publish(&job).await.is_ok();
                        outcomes.lock().unwrap().push((job.id.to_string(), ok));
                        tokio::time::sleep(pause).await;
                    }
                })
            })
            .collect();
        Publishers {
            stop,
            attempts,
            outcomes,
            tasks,
        }
    }

    /// Waits until `n` more publishes have started (so some run during an outage).
    pub async fn wait_attempts_after_now(&self, n: usize) {
        let target = self.attempts.load(Ordering::SeqCst) + n;
        wait_until("publishes during the outage", secs(60), || async {
            self.attempts.load(Ordering::SeqCst) >= target
        })
        .await;
    }

    /// Whether a publish succeeds within `timeout` from now.
    pub async fn wait_ok_after_now(&self, timeout: Duration) -> bool {
        let ok = || {
            self.outcomes
                .lock()
                .unwrap()
                .iter()
                .filter(|(_, ok)| *ok)
                .count()
        };
        let target = ok() + 1;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if ok() >= target {
                return true;
            }
            tokio::time::sleep(ms(50)).await;
        }
        false
    }

    pub async fn stop(self) -> Vec<(String, bool)> {
        self.stop.cancel();
        for task in self.tasks {
            task.await.unwrap();
        }
        std::mem::take(&mut *self.outcomes.lock().unwrap())
    }
}

/// One email as received: its Message-ID and its ticket link.
pub type MailCopy = (Option<String>, Option<String>);

/// What the sink received, per job id (the recipient's local part).
#[derive(Debug, Default)]
pub struct Tally {
    /// For each job: every copy's Message-ID and ticket link.
    pub copies: BTreeMap<String, Vec<MailCopy>>,
}

impl Tally {
    pub fn of(sink: &MailSink) -> Tally {
        let mut tally = Tally::default();
        for mail in sink.messages() {
            let rcpt = mail.rcpt_to.first().cloned().unwrap_or_default();
            let id = rcpt.split('@').next().unwrap_or_default().to_owned();
            let parsed = mail.parsed();
            let link = parsed.text().and_then(|text| {
                text.split_whitespace()
                    .find(|w| w.contains("/u/email-verification?ticket="))
                    .map(str::to_owned)
            });
            tally
                .copies
                .entry(id)
                .or_default()
                .push((parsed.message_id(), link));
        }
        tally
    }

    pub fn delivered_of(&self, ids: &[String]) -> usize {
        let ids: BTreeSet<&String> = ids.iter().collect();
        ids.iter()
            .filter(|id| self.copies.contains_key(**id))
            .count()
    }

    pub fn lost(&self, ids: &[String]) -> usize {
        let distinct: BTreeSet<&String> = ids.iter().collect();
        distinct.len() - self.delivered_of(ids)
    }

    /// Copies beyond the first, over every job.
    pub fn duplicates(&self) -> usize {
        self.copies.values().map(|c| c.len() - 1).sum()
    }

    /// A duplicate is the same email: same Message-ID and same ticket link.
    pub fn assert_copies_identical(&self) {
        for (id, copies) in &self.copies {
            let first = &copies[0];
            assert!(
                first.0.as_deref().is_some_and(|m| m.contains(id.as_str())),
                "{id}: Message-ID {:?}",
                first.0
            );
            for copy in &copies[1..] {
                assert_eq!(copy, first, "{id}: a duplicate differs from the first copy");
            }
        }
    }
}

/// One line of the chaos table.
#[derive(Debug)]
pub struct Row {
    pub scenario: &'static str,
    pub published: usize,
    pub delivered: usize,
    pub dead: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub note: String,
}

impl Row {
    /// Prints the row and, under `scripts/chaos.sh`, appends it to `HERALD_CHAOS_REPORT`.
    pub fn report(&self) {
        let line = format!(
            "{}|{}|{}|{}|{}|{}|{}",
            self.scenario,
            self.published,
            self.delivered,
            self.dead,
            self.lost,
            self.duplicated,
            self.note
        );
        eprintln!("chaos row: {line}");
        if let Ok(path) = std::env::var("HERALD_CHAOS_REPORT") {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open the chaos report");
            writeln!(file, "{line}").expect("write the chaos report");
        }
    }

    pub fn assert_nothing_lost(&self) {
        assert_eq!(self.lost, 0, "{self:?}");
        assert_eq!(self.delivered, self.published, "{self:?}");
    }
}
