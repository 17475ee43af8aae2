//! `herald worker`: consume and deliver until SIGTERM or Ctrl-C, then drain and exit.

use herald_app::Application;
use herald_worker::CancellationToken;
use tracing::{info, warn};

use crate::commands::redact_amqp_urls;
use crate::settings::Settings;

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let app = Application::build(settings.clone()).await?;
    if app.uses_random_ticket_secret() {
        warn!(
            "HERALD_TICKET_SECRET is not set: using a random secret for this process. Links stay valid, \
             but a job retried after a restart gets a new link. Set it (32+ bytes) in production."
        );
    }
    info!(
        amqp = %redact_amqp_urls(secrecy::ExposeSecret::expose_secret(&settings.amqp_url)),
        smtp = %app.mailer().describe(),
        public_url = %settings.public_url,
        "Starting the worker."
    );
    let worker = app.worker();
    let shutdown = CancellationToken::new();
    let poll_every = herald_observe::DEFAULT_POLL_INTERVAL;
    if let Some(bound) = app
        .serve_metrics(&worker, poll_every, shutdown.clone())
        .await?
    {
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
