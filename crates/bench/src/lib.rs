//! `herald-bench`: Herald's throughput benchmark, run by `herald bench` (docs/benchmarks.md).
//!
//! Each run measures, on fresh vhosts and a fresh database, in this order:
//! 1. the raw broker ceiling ([`ceiling`]): persistent publishes with confirms and a plain
//!    consumer with manual acks, through Herald's own exchange and quorum queue;
//! 2. the producer rate ([`producer`]): the run's jobs through `Producer::publish`;
//! 3. the end-to-end drain ([`drain`]): worker processes deliver that backlog to the SMTP sink;
//! 4. latency at a fixed offered rate ([`latency`]): publish to SMTP 250, per job;
//! 5. one SMTP connection's rate against the sink ([`smtp`]).
//!
//! Then it prints a table per run, the medians against the targets of issue 4, and can write it
//! all as JSON. The harness is a command more than a library, so it reports `anyhow` errors.

pub mod ceiling;
pub mod drain;
pub mod jobs;
pub mod latency;
pub mod machine;
pub mod process;
pub mod producer;
pub mod report;
pub mod services;
pub mod smtp;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use herald_mailsink::{MailSink, SinkOptions};
use herald_producer::Producer;
use url::Url;

use crate::drain::DrainTarget;
use crate::machine::Machine;
use crate::report::SmtpResult;
pub use crate::report::{BenchReport, RunResult, WorkerSettings};
use crate::services::{FreshDatabase, FreshVhost};

/// The ticket secret of the workers under test: fixed, so runs are alike; never used elsewhere.
const BENCH_TICKET_SECRET: &str = "herald-bench-ticket-secret-for-benchmarks-only";

/// `herald bench`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// Jobs per run for the broker ceiling, the producer rate and the end-to-end drain.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: u32,
    /// Runs; each is reported, then the median of each figure.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// The offered rate of the latency phase, in jobs per second.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rate: u32,
    /// How long the latency phase offers jobs, in seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_seconds: u32,
    /// Messages sent over the one SMTP connection of phase 5.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub smtp_messages: u32,
    /// Worker processes sharing the queue.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub workers: u32,
    /// The RabbitMQ server (default: HERALD_AMQP_URL's). Its vhost is replaced by a fresh one
    /// per phase, made with `rabbitmqctl`, so the broker must run on this machine.
    #[arg(long, value_name = "URL")]
    pub amqp_url: Option<String>,
    /// The PostgreSQL server (default: HERALD_DATABASE_URL's). Its database is replaced by a
    /// fresh one per run, dropped afterwards.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Deliver to this SMTP server (e.g. postfix's smtp-sink) instead of Herald's own sink.
    /// The latency phase needs Herald's sink and is skipped then.
    #[arg(long, value_name = "HOST:PORT")]
    pub smtp_sink: Option<String>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
}

/// What the benchmark gets from the `herald` binary: the servers and the worker to run.
#[derive(Debug, Clone)]
pub struct BenchEnvironment {
    /// The broker and its user; the path (vhost) is replaced.
    pub amqp_server: Url,
    /// The PostgreSQL server and its user; the path (database) is replaced.
    pub database_server: Url,
    /// The `herald` executable, started as `<exe> worker`.
    pub worker_exe: PathBuf,
    /// HERALD_PREFETCH as the workers will read it; the ceiling's consumer uses it too.
    pub prefetch: u16,
    /// HERALD_SMTP_POOL_SIZE as the workers will read it.
    pub smtp_pool_size: usize,
    /// How big the workers' database pool is, and why (a sentence for the report).
    pub database_pool: String,
}

/// Runs the benchmark: every run, printed as it ends, then the summary; writes the JSON file if
/// asked. Fails on the first run that fails, after removing what that run created.
pub async fn run(options: &BenchOptions, env: &BenchEnvironment) -> anyhow::Result<BenchReport> {
    let smtp_server = match &options.smtp_sink {
        Some(hostport) => format!("smtp://{hostport}"),
        None => "Herald's sink (herald-mailsink) in the bench process, on loopback".to_owned(),
    };
    let machine = Machine::describe(&env.database_server).await;
    let date = now();
    let mut runs = Vec::new();
    let mut last_env = Vec::new();
    for run in 1..=options.runs {
        let (result, worker_env) = run_once(run, options, env)
            .await
            .with_context(|| format!("run {run} of {}", options.runs))?;
        result.print(options.runs);
        runs.push(result);
        last_env = worker_env;
    }
    let settings = WorkerSettings {
        workers: options.workers as usize,
        prefetch: env.prefetch,
        smtp_pool_size: env.smtp_pool_size,
        database_pool: env.database_pool.clone(),
        smtp_server,
        environment: last_env
            .into_iter()
            .map(|(k, v)| {
                let shown = match k.as_str() {
                    "HERALD_TICKET_SECRET" => "(set)".to_owned(),
                    _ => redact(&v),
                };
                (k, shown)
            })
            .collect(),
    };
    let report = BenchReport::new(
        date,
        options.jobs as usize,
        machine,
        settings,
        runs,
        options.rate,
    );
    report.print_summary();
    if let Some(path) = &options.json {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
        println!();
        println!("  results written to {}", path.display());
    }
    Ok(report)
}

/// One run: the five phases on their own vhosts, database and sink, all removed at the end.
/// Also returns the environment the workers were given.
async fn run_once(
    run: u32,
    options: &BenchOptions,
    env: &BenchEnvironment,
) -> anyhow::Result<(RunResult, Vec<(String, String)>)> {
    let pid = std::process::id();
    let tag = format!("herald-bench-{pid}-{run}");
    let prefix = format!("bench-{pid}-r{run}");
    let count = options.jobs as usize;
    let started_at = now();
    let load_before = machine::load_average();
    let clock = std::time::Instant::now();
    let step = |n: u32, what: &str| {
        eprintln!(
            "run {run}/{}, {:>5.1} s: {n}/5 {what}",
            options.runs,
            clock.elapsed().as_secs_f64()
        );
    };
    let jobs = jobs::jobs(&format!("{prefix}-d"), count)?;

    // Both vhosts at once: rabbitmqctl takes about a second a call.
    let (ceiling_vhost, vhost) = tokio::try_join!(
        FreshVhost::create(&env.amqp_server, format!("{tag}-ceiling")),
        FreshVhost::create(&env.amqp_server, tag.clone()),
    )?;
    step(1, "broker ceiling");
    let ceiling = ceiling::measure(&ceiling_vhost.url, &jobs, env.prefetch)
        .await
        .context("measuring the broker ceiling")?;
    let database = async {
        let database = FreshDatabase::create(&env.database_server, tag.replace('-', "_")).await?;
        jobs::seed(&database.store).await?;
        anyhow::Ok(database)
    };
    let ((), database) = tokio::try_join!(ceiling_vhost.delete(), database)?;
    let (sink, smtp_url) = match &options.smtp_sink {
        Some(hostport) => (None, format!("smtp://{hostport}")),
        None => {
            let sink = MailSink::start_with(SinkOptions {
                keep_in_memory: false,
                record_acceptances: true,
                ..SinkOptions::default()
            })
            .await
            .context("starting the SMTP sink")?;
            let url = sink.url();
            (Some(sink), url)
        }
    };

    step(2, "producer rate");
    let producer = Arc::new(Producer::connect(&vhost.url).await?);
    let published = producer::publish_all(&producer, &jobs, producer::CONCURRENCY)
        .await
        .context("publishing the backlog")?;
    drop(jobs);

    step(3, "end-to-end drain");
    let worker_env = vec![
        ("HERALD_AMQP_URL".to_owned(), vhost.url.clone()),
        ("HERALD_DATABASE_URL".to_owned(), database.url.clone()),
        ("HERALD_SMTP_URL".to_owned(), smtp_url.clone()),
        ("HERALD_PREFETCH".to_owned(), env.prefetch.to_string()),
        (
            "HERALD_SMTP_POOL_SIZE".to_owned(),
            env.smtp_pool_size.to_string(),
        ),
        ("HERALD_METRICS_ADDR".to_owned(), "off".to_owned()),
        (
            "HERALD_TICKET_SECRET".to_owned(),
            BENCH_TICKET_SECRET.to_owned(),
        ),
        ("RUST_LOG".to_owned(), "warn".to_owned()),
    ];
    let broker = herald_queue::connect(&vhost.url, "herald-bench-observer").await?;
    let target = DrainTarget {
        exe: &env.worker_exe,
        workers: options.workers as usize,
        env: &worker_env,
        sink: sink.as_ref(),
        store: &database.store,
        broker: &broker,
    };
    let (drain, mut workers) = drain::run(&target, count)
        .await
        .context("draining the backlog")?;

    let latency = match &sink {
        Some(sink) => {
            step(4, "latency at a fixed rate");
            let measured = latency::run(
                Arc::clone(&producer),
                sink,
                &mut workers,
                &format!("{prefix}-l"),
                options.rate,
                options.rate_seconds,
            )
            .await
            .context("measuring latency")?;
            Some(measured)
        }
        None => {
            step(4, "latency skipped: it needs Herald's sink");
            None
        }
    };
    let worker_peak_rss_bytes = workers.peak_rss_bytes()?;
    for status in workers.stop().await? {
        if !status.success() {
            bail!("a worker exited with {status} after SIGTERM; see its messages above");
        }
    }

    step(5, "one SMTP connection");
    let html_bytes = drain.average_email_bytes.unwrap_or(0);
    let one = smtp::one_connection_rate(&smtp_url, options.smtp_messages as usize, html_bytes)
        .await
        .context("measuring one SMTP connection")?;

    let _ = broker.close(200, "OK".into()).await;
    if let Ok(producer) = Arc::try_unwrap(producer) {
        producer.close().await;
    }
    if let Some(sink) = sink {
        sink.stop().await;
    }
    tokio::try_join!(database.drop_now(), vhost.delete())?;
    eprintln!(
        "run {run}/{}, {:>5.1} s: done",
        options.runs,
        clock.elapsed().as_secs_f64()
    );

    let ratio_to_ceiling = drain.per_second / ceiling.per_second;
    let result = RunResult {
        run,
        started_at,
        load_before,
        load_after: machine::load_average(),
        ceiling,
        producer: published,
        drain,
        latency,
        smtp: SmtpResult {
            messages: one.messages,
            html_bytes,
            seconds: one.elapsed.as_secs_f64(),
            per_second: one.per_second(),
        },
        worker_peak_rss_bytes,
        ratio_to_ceiling,
    };
    Ok((result, worker_env))
}

/// The current UTC time, RFC 3339.
fn now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// A URL with its password, if any, replaced by `***`; other text unchanged.
fn redact(value: &str) -> String {
    match Url::parse(value) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => value.to_owned(),
    }
}
