//! The results: one record per run, the medians over runs, the targets of issue 4 with pass or
//! fail, and their printed form (the JSON form is the same structures, serialized).

use serde::Serialize;

use crate::ceiling::CeilingResult;
use crate::drain::DrainResult;
use crate::latency::LatencyResult;
use crate::machine::Machine;
use crate::producer::ProducerResult;

const MIB: f64 = 1024.0 * 1024.0;

/// One SMTP connection's rate against the sink.
#[derive(Debug, Clone, Serialize)]
pub struct SmtpResult {
    pub messages: usize,
    /// The HTML size of each message: the average email of the drain phase, when known.
    pub html_bytes: usize,
    pub seconds: f64,
    pub per_second: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub run: u32,
    pub started_at: String,
    /// The 1/5/15-minute load averages before and after the run: how busy the machine was.
    pub load_before: [f64; 3],
    pub load_after: [f64; 3],
    pub ceiling: CeilingResult,
    pub producer: ProducerResult,
    pub drain: DrainResult,
    /// `None` with an external SMTP server (latency needs Herald's sink).
    pub latency: Option<LatencyResult>,
    pub smtp: SmtpResult,
    /// The largest worker's VmHWM just before SIGTERM: phases 3 and 4.
    pub worker_peak_rss_bytes: u64,
    /// End-to-end throughput over the broker ceiling.
    pub ratio_to_ceiling: f64,
}

/// The worker configuration the figures were measured with.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerSettings {
    pub workers: usize,
    pub prefetch: u16,
    pub smtp_pool_size: usize,
    /// A sentence: the pool size and where it comes from.
    pub database_pool: String,
    pub smtp_server: String,
    /// The variables set for each worker process on top of the inherited environment (the
    /// ticket secret shown as `(set)`; URLs name this run's vhost and database).
    pub environment: Vec<(String, String)>,
}

/// The medians over runs of the figures the targets speak of.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub runs: usize,
    pub e2e_per_second: f64,
    pub e2e_first_to_last_per_second: Option<f64>,
    pub ceiling_per_second: f64,
    pub ratio_to_ceiling: f64,
    pub producer_per_second: f64,
    pub latency_target_rate: u32,
    pub latency_offered_per_second: Option<f64>,
    pub latency_p50_ms: Option<f64>,
    pub latency_p90_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    pub cpu_seconds_per_1000_jobs: f64,
    pub peak_rss_mib: f64,
    pub smtp_one_connection_per_second: f64,
}

/// One target of issue 4 against the median.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    pub metric: &'static str,
    pub target: String,
    pub measured: String,
    /// `None` when the run could not measure it (the latency phase with an external sink).
    pub met: Option<bool>,
}

/// The whole benchmark: what ran where, each run, the medians and the targets.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub date: String,
    pub jobs: usize,
    pub machine: Machine,
    pub settings: WorkerSettings,
    pub runs: Vec<RunResult>,
    pub median: Summary,
    pub targets: Vec<TargetCheck>,
}

impl BenchReport {
    pub fn new(
        date: String,
        jobs: usize,
        machine: Machine,
        settings: WorkerSettings,
        runs: Vec<RunResult>,
        latency_rate: u32,
    ) -> BenchReport {
        let median = Summary::of(&runs, latency_rate);
        let targets = targets(&median);
        BenchReport {
            date,
            jobs,
            machine,
            settings,
            runs,
            median,
            targets,
        }
    }

    /// Whether every target that was measured is met.
    pub fn all_targets_met(&self) -> bool {
        self.targets.iter().all(|t| t.met != Some(false))
    }

    /// The machine, the settings, the medians and the targets.
    pub fn print_summary(&self) {
        let m = &self.machine;
        let s = &self.settings;
        let median = &self.median;
        println!();
        println!(
            "Herald benchmark, {}: median of {} run(s) of {} jobs",
            self.date,
            median.runs,
            thousands(self.jobs as f64)
        );
        println!(
            "  machine:  {} CPU(s), {}, {:.1} GiB, Linux {}; RabbitMQ {}, PostgreSQL {}",
            m.cpus, m.cpu_model, m.memory_gib, m.kernel, m.rabbitmq, m.postgresql
        );
        println!(
            "  worker:   {} process(es); HERALD_PREFETCH={}, HERALD_SMTP_POOL_SIZE={}; database pool: {}",
            s.workers, s.prefetch, s.smtp_pool_size, s.database_pool
        );
        println!("  SMTP:     {}", s.smtp_server);
        let environment: Vec<String> = s
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("  env:      {}", environment.join(" "));
        println!();
        println!(
            "  {:<34} {:>20} {:>20}  result",
            "metric", "median", "target"
        );
        for t in &self.targets {
            let verdict = match t.met {
                Some(true) => "met",
                Some(false) => "NOT MET",
                None => "not measured",
            };
            println!(
                "  {:<34} {:>20} {:>20}  {verdict}",
                t.metric, t.measured, t.target
            );
        }
        println!(
            "  {:<34} {:>20}",
            "broker ceiling (informational)",
            format!("{}/s", thousands(median.ceiling_per_second))
        );
        if let Some(rate) = median.e2e_first_to_last_per_second {
            println!(
                "  {:<34} {:>20}",
                "e2e, first to last 250 (informational)",
                format!("{}/s", thousands(rate))
            );
        }
        println!(
            "  {:<34} {:>20}",
            "worker CPU per 1,000 jobs (drain)",
            format!("{:.2} s", median.cpu_seconds_per_1000_jobs)
        );
        if let (Some(p50), Some(p90), Some(max)) = (
            median.latency_p50_ms,
            median.latency_p90_ms,
            median.latency_max_ms,
        ) {
            println!(
                "  {:<34} {:>20}",
                "latency p50 / p90 / max",
                format!("{p50:.1} / {p90:.1} / {max:.0} ms")
            );
        }
    }
}

impl RunResult {
    /// The run as a small table.
    pub fn print(&self, runs: u32) {
        let c = &self.ceiling;
        let p = &self.producer;
        let d = &self.drain;
        println!();
        println!(
            "Run {} of {runs} ({}; load average {:.2} before, {:.2} after)",
            self.run, self.started_at, self.load_before[0], self.load_after[0]
        );
        row(
            "1 broker ceiling",
            format!("{}/s", thousands(c.per_second)),
            format!(
                "{} msgs of {} B, persistent, confirms (window {}), manual ack (prefetch {}); confirms done in {:.1} s",
                thousands(c.messages as f64),
                c.average_body_bytes,
                thousands(c.confirm_window as f64),
                c.prefetch,
                c.publish_seconds
            ),
        );
        row(
            "2 producer, with confirms",
            format!("{}/s", thousands(p.per_second)),
            format!(
                "Producer::publish, {} concurrent, {:.1} s",
                p.concurrency, p.seconds
            ),
        );
        let steady = d
            .first_to_last_per_second
            .map(|r| format!("; {}/s from first to last 250", thousands(r)))
            .unwrap_or_default();
        row(
            "3 end-to-end drain",
            format!("{}/s", thousands(d.per_second)),
            format!(
                "{} worker(s), {:.1} s from spawn{steady}",
                d.workers, d.seconds
            ),
        );
        row(
            "  worker CPU, memory",
            format!("{:.2} s/1k", d.cpu_seconds_per_1000_jobs),
            format!(
                "{:.1} CPU-s in all; peak RSS {:.1} MiB (drain), {:.1} MiB (whole run)",
                d.worker_cpu_seconds,
                d.peak_rss_bytes as f64 / MIB,
                self.worker_peak_rss_bytes as f64 / MIB
            ),
        );
        let emails = match (d.accepted, d.distinct, d.duplicates) {
            (Some(a), Some(n), Some(dup)) => format!(
                "{} accepted, {} distinct, {dup} duplicate(s), ",
                thousands(a as f64),
                thousands(n as f64)
            ),
            _ => String::new(),
        };
        row(
            "  delivery",
            format!("{} lost", d.lost),
            format!(
                "{emails}{} sent in the ledger, {} dead, {} dead letter(s), {} left queued",
                thousands(d.sent as f64),
                d.dead,
                d.dead_letters,
                d.left_in_queue
            ),
        );
        match &self.latency {
            Some(l) => {
                let confirms = l.publish_confirm_ms.map_or_else(
                    || "no confirm".to_owned(),
                    |c| format!("confirm p50 {:.1}, p99 {:.1} ms", c.p50, c.p99),
                );
                row(
                    &format!("4 latency at {}/s", l.target_rate),
                    format!("p99 {:.1} ms", l.latency_ms.p99),
                    format!(
                        "p50 {:.1}, p90 {:.1}, max {:.1} ms; offered {:.1}/s, {} jobs, {} unconfirmed, {} lost; {confirms}; {:.2} CPU-s/1k",
                        l.latency_ms.p50,
                        l.latency_ms.p90,
                        l.latency_ms.max,
                        l.offered_per_second,
                        thousands(l.jobs as f64),
                        l.publish_errors,
                        l.lost,
                        l.cpu_seconds_per_1000_jobs
                    ),
                );
            }
            None => row(
                "4 latency",
                "skipped".into(),
                "needs Herald's own sink (no --smtp-sink)".into(),
            ),
        }
        row(
            "5 one SMTP connection",
            format!("{}/s", thousands(self.smtp.per_second)),
            format!(
                "{} messages, HTML of {} B",
                thousands(self.smtp.messages as f64),
                self.smtp.html_bytes
            ),
        );
        row(
            "Herald / broker ceiling",
            format!("{:.1} %", self.ratio_to_ceiling * 100.0),
            String::new(),
        );
    }
}

fn row(phase: &str, figure: String, detail: String) {
    println!("  {phase:<28} {figure:>14}  {detail}");
}

impl Summary {
    fn of(runs: &[RunResult], latency_rate: u32) -> Summary {
        let of = |f: &dyn Fn(&RunResult) -> f64| median(runs.iter().map(f).collect());
        let of_some = |f: &dyn Fn(&RunResult) -> Option<f64>| {
            let values: Vec<f64> = runs.iter().filter_map(f).collect();
            (!values.is_empty()).then(|| median(values))
        };
        Summary {
            runs: runs.len(),
            e2e_per_second: of(&|r| r.drain.per_second),
            e2e_first_to_last_per_second: of_some(&|r| r.drain.first_to_last_per_second),
            ceiling_per_second: of(&|r| r.ceiling.per_second),
            ratio_to_ceiling: of(&|r| r.ratio_to_ceiling),
            producer_per_second: of(&|r| r.producer.per_second),
            latency_target_rate: latency_rate,
            latency_offered_per_second: of_some(&|r| {
                r.latency.as_ref().map(|l| l.offered_per_second)
            }),
            latency_p50_ms: of_some(&|r| r.latency.as_ref().map(|l| l.latency_ms.p50)),
            latency_p90_ms: of_some(&|r| r.latency.as_ref().map(|l| l.latency_ms.p90)),
            latency_p99_ms: of_some(&|r| r.latency.as_ref().map(|l| l.latency_ms.p99)),
            latency_max_ms: of_some(&|r| r.latency.as_ref().map(|l| l.latency_ms.max)),
            cpu_seconds_per_1000_jobs: of(&|r| r.drain.cpu_seconds_per_1000_jobs),
            peak_rss_mib: of(&|r| r.worker_peak_rss_bytes as f64 / MIB),
            smtp_one_connection_per_second: of(&|r| r.smtp.per_second),
        }
    }
}

/// The targets of issue 4 (a 2-core machine, medians of several runs).
fn targets(m: &Summary) -> Vec<TargetCheck> {
    let at_least = |metric, value: f64, min: f64, unit: &str| TargetCheck {
        metric,
        target: format!(">= {}{unit}", thousands(min)),
        measured: format!("{}{unit}", thousands(value)),
        met: Some(value >= min),
    };
    let p99 = TargetCheck {
        metric: "p99 latency, publish to SMTP 250",
        target: "<= 100 ms at 500/s".into(),
        measured: m.latency_p99_ms.map_or_else(
            || "-".into(),
            |p99| format!("{p99:.1} ms at {}/s", m.latency_target_rate),
        ),
        // The target is set at 500 jobs/s; another rate is reported but not judged.
        met: m
            .latency_p99_ms
            .filter(|_| m.latency_target_rate == 500)
            .map(|p99| p99 <= 100.0),
    };
    vec![
        at_least("end-to-end throughput", m.e2e_per_second, 2000.0, "/s"),
        TargetCheck {
            metric: "end-to-end / broker ceiling",
            target: ">= 30.0 %".into(),
            measured: format!("{:.1} %", m.ratio_to_ceiling * 100.0),
            met: Some(m.ratio_to_ceiling >= 0.30),
        },
        p99,
        TargetCheck {
            metric: "worker peak RSS",
            target: "<= 100 MiB".into(),
            measured: format!("{:.1} MiB", m.peak_rss_mib),
            met: Some(m.peak_rss_mib <= 100.0),
        },
        at_least(
            "one SMTP connection",
            m.smtp_one_connection_per_second,
            1000.0,
            "/s",
        ),
        at_least(
            "producer, with confirms",
            m.producer_per_second,
            5000.0,
            "/s",
        ),
    ]
}

/// The median (the mean of the two middle values for an even count); 0 for none.
fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// A rate or count rounded to a whole number, with thousands separators: `12,345`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1234.6), "1,235");
        assert_eq!(thousands(50_000.0), "50,000");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
        assert_eq!(thousands(-1500.0), "-1,500");
    }
}
