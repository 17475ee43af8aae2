//! The HTTP side: `GET /metrics`, `/healthz` and `/readyz` on axum.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;

use crate::readiness::ObserveState;

/// How often the recorder's histogram buffers are drained when nobody scrapes.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The routes, for tests that drive them without a socket.
pub fn router(state: Arc<ObserveState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Binds `addr` (port 0 picks a free port), serves in the background until the process ends,
/// and returns the bound address.
pub async fn serve(addr: SocketAddr, state: ObserveState) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let state = Arc::new(state);
    let upkeep = Arc::downgrade(&state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            match upkeep.upgrade() {
                Some(state) => state.run_upkeep(),
                None => break,
            }
        }
    });
    let app = router(state);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "The metrics and health server stopped.");
        }
    });
    Ok(bound)
}

async fn metrics(State(state): State<Arc<ObserveState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.render_metrics(),
    )
        .into_response()
}

/// The process is alive and serving: always 200.
async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when every dependency answers, else 503; the JSON body names what is down.
async fn readyz(State(state): State<Arc<ObserveState>>) -> Response {
    let readiness = state.readiness().await;
    let status = if readiness.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness.to_json())).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use herald_testkit::http::get;
    use herald_worker::Outcome;
    use herald_worker::metrics::{record_outcome, record_render, record_send};

    use super::*;

    async fn start(state: ObserveState) -> SocketAddr {
        serve("127.0.0.1:0".parse().unwrap(), state).await.unwrap()
    }

    #[tokio::test]
    async fn the_exposition_names_what_was_recorded() {
        let addr = start(ObserveState::new()).await;
        record_outcome(&Outcome::Sent { attempt: 2 }, "welcome_email", true);
        let dead = Outcome::DeadLetter {
            reason: "smtp_permanent",
            error: "550".into(),
            attempts: 1,
        };
        record_outcome(&dead, "verification_email", true);
        record_send(Duration::from_millis(3), "ok");
        record_render(Duration::from_millis(2));

        let (status, body) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        for needle in [
            "herald_jobs_total{type=\"welcome_email\",outcome=\"sent\"}",
            "herald_jobs_total{type=\"verification_email\",outcome=\"dead\"}",
            "herald_dead_letters_total{reason=\"smtp_permanent\"}",
            "# TYPE herald_job_attempts histogram",
            "herald_job_attempts_bucket{type=\"welcome_email\",le=\"2\"}",
            "# TYPE herald_send_duration_seconds histogram",
            "herald_send_duration_seconds_bucket{result=\"ok\",le=\"0.005\"}",
            "herald_render_duration_seconds_bucket{le=\"10\"}",
            "herald_tickets_redeemed_total{purpose=\"email_verification\"} 0",
            "# HELP herald_tickets_redeemed_total",
            "herald_build_info{version=\"",
        ] {
            assert!(body.contains(needle), "{needle} missing from:\n{body}");
        }
    }

    #[tokio::test]
    async fn healthz_is_always_ok() {
        let state = ObserveState::new().check("database", || async { Err("down".into()) });
        let (status, body) = get(start(state).await, "/healthz").await;
        assert_eq!((status, body.trim()), (200, "ok"));
    }

    #[tokio::test]
    async fn readyz_is_503_and_names_what_is_down() {
        let state = ObserveState::new()
            .check("broker", || async { Ok(()) })
            .check("smtp", || async { Err("connection refused".into()) });
        let (status, body) = get(start(state).await, "/readyz").await;
        assert_eq!(status, 503);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "unavailable");
        assert_eq!(json["down"], serde_json::json!(["smtp"]));
        assert_eq!(json["checks"]["smtp"], "connection refused");
        assert_eq!(json["checks"]["broker"], "ok");
    }

    #[tokio::test]
    async fn readyz_is_200_when_every_check_passes() {
        let state = ObserveState::new()
            .check("broker", || async { Ok(()) })
            .cached_check("smtp", Duration::from_secs(5), || async { Ok(()) });
        let (status, body) = get(start(state).await, "/readyz").await;
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["status"], "ready");
        assert_eq!(json["down"], serde_json::json!([]));
    }
}
