//! Builds Herald's parts from settings: the store, the renderer, the mailer and the worker.
//! Commands and tests assemble the same parts, so there is one way to wire them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use herald_observe::ObserveState;
use herald_queue::Topology;
use herald_render::Renderer;
use herald_smtp::Mailer;
use herald_store::Store;
use herald_worker::{CancellationToken, Pipeline, Worker, WorkerConfig};
use secrecy::ExposeSecret;

use crate::settings::{DEFAULT_SMTP_URL, Settings};

/// Connects to PostgreSQL (creating the database if needed) and applies migrations.
pub async fn store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(settings.database_url.expose_secret()).await?;
    store.migrate().await?;
    Ok(store)
}

/// The templates and locales: the built-in ones, or the directories named in the settings.
pub fn renderer(settings: &Settings) -> anyhow::Result<Arc<Renderer>> {
    let renderer = match (&settings.templates_dir, &settings.locales_dir) {
        (Some(t), Some(l)) => Renderer::from_dirs(t, l).with_context(|| {
            format!(
                "loading templates from {} and locales from {}",
                t.display(),
                l.display()
            )
        })?,
        _ => Renderer::embedded().context("loading the built-in templates")?,
    };
    if !renderer
        .available_locales()
        .contains(&settings.default_locale)
    {
        let available: Vec<String> = renderer
            .available_locales()
            .iter()
            .map(ToString::to_string)
            .collect();
        bail!(
            "HERALD_DEFAULT_LOCALE {} is not one of the available locales ({})",
            settings.default_locale,
            available.join(", ")
        );
    }
    Ok(Arc::new(renderer))
}

/// The SMTP transport named by HERALD_SMTP_URL, or `override_url` when given (the demo's sink).
pub fn mailer(settings: &Settings, override_url: Option<&str>) -> anyhow::Result<Mailer> {
    let url = match (override_url, &settings.smtp_url) {
        (Some(url), _) => url.to_string(),
        (None, Some(url)) => url.expose_secret().to_string(),
        (None, None) => DEFAULT_SMTP_URL.to_string(),
    };
    Mailer::from_url(&url, settings.mailer_options())
        .map_err(|e| anyhow::anyhow!("HERALD_SMTP_URL {e}"))
}

pub fn topology(settings: &Settings) -> Topology {
    Topology::default().with_retry_delays(settings.retry_delays.clone())
}

/// The worker's configuration. Without HERALD_TICKET_SECRET a random secret is used (and the
/// `herald worker` command says so).
pub fn worker_config(settings: &Settings) -> WorkerConfig {
    let ticket_secret = settings
        .ticket_secret
        .clone()
        .unwrap_or_else(herald_domain::TicketSecret::random);
    WorkerConfig {
        amqp_url: settings.amqp_url.clone(),
        topology: topology(settings),
        prefetch: settings.prefetch,
        max_attempts: settings.max_attempts,
        max_job_bytes: settings.max_job_bytes,
        public_url: settings.public_url.clone(),
        allowed_custom_domains: settings.allowed_custom_domains.clone(),
        default_locale: settings.default_locale.clone(),
        default_from: settings.from.clone(),
        friendly_name: settings.friendly_name.clone(),
        message_id_domain: settings.message_id_domain(),
        ticket_secret,
        lease: settings.lease,
        send_timeout: settings.send_timeout(),
        shutdown_timeout: settings.shutdown_timeout,
        propagate_traceparent: settings.email_traceparent,
        registry_cache_ttl: settings.registry_cache_ttl,
        ledger_batch: settings.ledger_batch,
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` for `worker` on `addr`, and refreshes the queue
/// gauges every `poll_every` (until `shutdown`) on a connection of their own. Returns the bound
/// address (`addr` may use port 0).
pub async fn observe(
    worker: &Worker,
    addr: SocketAddr,
    poll_every: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let state = ObserveState::for_worker(worker);
    let bound = herald_observe::serve(addr, state)
        .await
        .with_context(|| format!("HERALD_METRICS_ADDR {addr}: cannot listen there"))?;
    let pipeline = worker.pipeline();
    let poller = herald_observe::QueuePoller {
        amqp_url: pipeline.config.amqp_url.clone(),
        topology: pipeline.config.topology.clone(),
        store: pipeline.store.clone(),
        newest_delivered: worker.newest_delivered(),
        every: poll_every,
    };
    herald_observe::spawn_queue_poller(poller, shutdown);
    Ok(bound)
}

pub fn worker(
    store: Store,
    renderer: Arc<Renderer>,
    mailer: Mailer,
    config: WorkerConfig,
) -> Worker {
    Worker::new(Pipeline::new(store, renderer, mailer, config))
}
