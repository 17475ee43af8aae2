//! `herald worker`: consume and deliver until SIGTERM or Ctrl-C, then drain and exit.

use herald_worker::CancellationToken;
use tracing::{info, warn};

use crate::app;
use crate::commands::redact_amqp_urls;
use crate::settings::Settings;

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let store = app::store(settings).await?;
    let renderer = app::renderer(settings)?;
    let mailer = app::mailer(settings, None)?;
    let config = app::worker_config(settings);
    if settings.ticket_secret.is_none() {
        warn!(
            "HERALD_TICKET_SECRET is not set: using a random secret for this process. Links stay valid, \
             but a job retried after a restart gets a new link. Set it (32+ bytes) in production."
        );
    }
    info!(
        amqp = %redact_amqp_urls(secrecy::ExposeSecret::expose_secret(&settings.amqp_url)),
        smtp = %mailer.describe(),
        public_url = %settings.public_url,
        "Starting the worker."
    );
    let worker = app::worker(store, renderer, mailer, config);
    let shutdown = CancellationToken::new();
    if let Some(addr) = settings.metrics_addr {
        let poll_every = herald_observe::DEFAULT_POLL_INTERVAL;
        let bound = app::observe(&worker, addr, poll_every, shutdown.clone()).await?;
        info!(%bound, "Serving /metrics, /healthz and /readyz.");
    }
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    worker.run(shutdown).await?;
    info!("The worker stopped.");
    Ok(())
}

/// Cancels `token` on SIGTERM or SIGINT.
pub async fn cancel_on_signal(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return,
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM received."),
        _ = tokio::signal::ctrl_c() => info!("Interrupt received."),
    }
    token.cancel();
}
