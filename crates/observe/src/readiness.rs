//! Readiness: named dependency checks, each bounded in time and optionally cached, and the
//! state the HTTP handlers share.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, join_all};
use herald_worker::Worker;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use crate::recorder::install;

/// A check's answer: `Err` carries a sentence saying what is wrong.
pub type CheckResult = Result<(), String>;

type CheckFn = Box<dyn Fn() -> BoxFuture<'static, CheckResult> + Send + Sync>;
type ScrapeHook = Box<dyn Fn() + Send + Sync>;

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an SMTP check's answer is reused, so probes do not open sessions on the server.
const SMTP_CHECK_CACHE: Duration = Duration::from_secs(5);

struct Check {
    name: &'static str,
    run: CheckFn,
    /// Zero: run on every probe.
    cache_for: Duration,
    last: Mutex<Option<(Instant, CheckResult)>>,
}

impl Check {
    async fn evaluate(&self) -> CheckResult {
        if self.cache_for.is_zero() {
            return self.run_bounded().await;
        }
        // Holding the lock while checking makes concurrent probes share one check.
        let mut last = self.last.lock().await;
        if let Some((at, result)) = &*last
            && at.elapsed() < self.cache_for
        {
            return result.clone();
        }
        let result = self.run_bounded().await;
        *last = Some((Instant::now(), result.clone()));
        result
    }

    async fn run_bounded(&self) -> CheckResult {
        match tokio::time::timeout(CHECK_TIMEOUT, (self.run)()).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {}s", CHECK_TIMEOUT.as_secs())),
        }
    }
}

/// The answers of every check for one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub checks: Vec<(&'static str, CheckResult)>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|(_, r)| r.is_ok())
    }

    /// The names of the failed checks.
    pub fn down(&self) -> Vec<&'static str> {
        self.checks
            .iter()
            .filter(|(_, r)| r.is_err())
            .map(|(name, _)| *name)
            .collect()
    }

    /// `{"status":"ready"|"unavailable","down":[…],"checks":{"name":"ok"|"<error>"}}`.
    pub fn to_json(&self) -> Value {
        let checks: Map<String, Value> = self
            .checks
            .iter()
            .map(|(name, result)| {
                let value = match result {
                    Ok(()) => "ok".to_owned(),
                    Err(e) => e.clone(),
                };
                ((*name).to_owned(), Value::String(value))
            })
            .collect();
        json!({
            "status": if self.is_ready() { "ready" } else { "unavailable" },
            "down": self.down(),
            "checks": checks,
        })
    }
}

/// What the observe server needs: the metrics handle, the readiness checks, and hooks that
/// refresh gauges just before each scrape.
pub struct ObserveState {
    metrics: &'static PrometheusHandle,
    checks: Vec<Check>,
    on_scrape: Vec<ScrapeHook>,
}

impl fmt::Debug for ObserveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObserveState")
            .field(
                "checks",
                &self.checks.iter().map(|c| c.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Default for ObserveState {
    fn default() -> Self {
        Self::new()
    }
}

impl ObserveState {
    /// No checks yet (so always ready); installs the recorder if it is not installed.
    pub fn new() -> Self {
        ObserveState {
            metrics: install(),
            checks: Vec::new(),
            on_scrape: Vec::new(),
        }
    }

    /// The worker's checks: `broker` (a session is consuming the work queue), `database`
    /// (`SELECT 1`) and `smtp` (NOOP on a pooled connection, reused for 5 s); and the SMTP pool
    /// gauges, refreshed on each scrape.
    pub fn for_worker(worker: &Worker) -> Self {
        let store = worker.pipeline().store.clone();
        let mailer = worker.pipeline().mailer.clone();
        let scraped = mailer.clone();
        let worker = worker.clone();
        ObserveState::new()
            .check("broker", move || {
                let consuming = worker.is_consuming();
                async move {
                    if consuming {
                        Ok(())
                    } else {
                        Err("the worker is not consuming from RabbitMQ (connecting or reconnecting)".to_owned())
                    }
                }
            })
            .check("database", move || {
                let store = store.clone();
                async move { store.ping().await.map_err(|e| e.to_string()) }
            })
            .cached_check("smtp", SMTP_CHECK_CACHE, move || {
                let mailer = mailer.clone();
                async move { mailer.check().await.map_err(|e| e.to_string()) }
            })
            .on_scrape(move || herald_worker::metrics::record_smtp_pool(&scraped))
    }

    /// Adds a check run on every probe (bounded to 5 s).
    pub fn check<F, Fut>(self, name: &'static str, run: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        self.cached_check(name, Duration::ZERO, run)
    }

    /// Adds a check whose answer is reused for `cache_for`.
    pub fn cached_check<F, Fut>(mut self, name: &'static str, cache_for: Duration, run: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        self.checks.push(Check {
            name,
            run: Box::new(move || Box::pin(run())),
            cache_for,
            last: Mutex::new(None),
        });
        self
    }

    /// Adds a hook run before each scrape (e.g. to set gauges from live counts).
    pub fn on_scrape(mut self, hook: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_scrape.push(Box::new(hook));
        self
    }

    /// Runs every check concurrently.
    pub async fn readiness(&self) -> Readiness {
        let results = join_all(self.checks.iter().map(Check::evaluate)).await;
        Readiness {
            checks: self.checks.iter().map(|c| c.name).zip(results).collect(),
        }
    }

    /// The Prometheus text exposition, after the scrape hooks and the recorder's upkeep.
    pub fn render_metrics(&self) -> String {
        for hook in &self.on_scrape {
            hook();
        }
        self.metrics.run_upkeep();
        self.metrics.render()
    }

    pub(crate) fn run_upkeep(&self) {
        self.metrics.run_upkeep();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_cached_check_runs_once_within_its_window() {
        let runs = Arc::new(AtomicUsize::new(0));
        let counter = runs.clone();
        let state = ObserveState::new().cached_check("smtp", Duration::from_secs(60), move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Err("down".to_owned()) }
        });
        for _ in 0..3 {
            assert_eq!(state.readiness().await.down(), ["smtp"]);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }
}
