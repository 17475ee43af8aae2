//! `herald serve`: the Management API and the ticket pages on HERALD_HTTP_ADDR until SIGTERM or Ctrl-C, then drain
//! in-flight requests (up to HERALD_SHUTDOWN_TIMEOUT) and exit 0.

use anyhow::Context;
use herald_app::Application;
use herald_worker::CancellationToken;
use tracing::{info, warn};

use crate::commands::worker::cancel_on_signal;
use crate::settings::Settings;

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    let app = Application::build(settings.clone()).await?;
    if app.uses_random_ticket_secret() {
        warn!(
            "HERALD_TICKET_SECRET is not set: using a random secret for this process. Set the \
             same secret (32+ bytes) for serve and worker, or enrollment tickets sent by email \
             get a different link from the one the API returned."
        );
    }
    let state = app.api().await?;
    let pages = app.pages(&state);
    let listener = tokio::net::TcpListener::bind(settings.http_addr)
        .await
        .with_context(|| {
            format!(
                "HERALD_HTTP_ADDR {}: cannot listen there",
                settings.http_addr
            )
        })?;
    let bound = listener.local_addr()?;
    info!(%bound, public_url = %settings.public_url, "Serving the Management API on /api/v2, the ticket pages under /u/, and /healthz, /readyz and /metrics.");
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    let stop = shutdown.clone();
    herald_api::serve(
        listener,
        state,
        pages,
        async move { stop.cancelled().await },
        settings.shutdown_timeout,
    )
    .await?;
    info!("The API server stopped.");
    Ok(())
}
