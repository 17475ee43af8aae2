//! `herald bench`: the throughput benchmark (docs/benchmarks.md). The harness lives in
//! `herald-bench`; this command hands it the servers, the worker settings and this executable.

use anyhow::Context;
use herald_bench::{BenchEnvironment, BenchOptions};
use secrecy::ExposeSecret;

use crate::settings::Settings;

pub async fn run(settings: &Settings, options: BenchOptions) -> anyhow::Result<()> {
    // HERALD_AMQP_URL may list a cluster's nodes; rabbitmqctl administers the local one.
    let amqp = match &options.amqp_url {
        Some(url) => url.as_str(),
        None => herald_queue::connect::split_urls(settings.amqp_url.expose_secret())
            .next()
            .unwrap_or_default(),
    };
    let database = options
        .database_url
        .as_deref()
        .unwrap_or(settings.database_url.expose_secret());
    let env = BenchEnvironment {
        amqp_server: url::Url::parse(amqp)
            .context("--amqp-url (or HERALD_AMQP_URL) is not a URL")?,
        database_server: url::Url::parse(database)
            .context("--database-url (or HERALD_DATABASE_URL) is not a URL")?,
        worker_exe: std::env::current_exe().context("finding the herald executable")?,
        prefetch: settings.prefetch,
        smtp_pool_size: settings.smtp_pool_size,
        database_pool: "10 connections (herald-store's fixed pool size; no setting yet)".into(),
    };
    // Ctrl-C drops the run, and with it the workers, vhosts and databases it created.
    tokio::select! {
        report = herald_bench::run(&options, &env) => report.map(drop),
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; the benchmark's vhosts and databases were removed"),
    }
}
