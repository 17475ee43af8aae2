//! `herald serve`: Herald's Auth0-compatible Management API on axum.
//!
//! - `/api/v2/...`: users, organizations, clients, tickets (email verification, password
//!   change, MFA enrollment), MFA enrollments, verification-email jobs and email templates, called the way Auth0's are (same paths, bodies, scopes, error
//!   bodies and rate-limit headers), so the official SDKs work by changing only the base URL.
//! - `/api/v2/x-herald/...`: Herald's extensions, which Auth0 has no equivalent of (checking a
//!   user's OTP code at login, `enrollments`).
//! - `/api/v2/openapi.json`: the OpenAPI document of the above (`openapi`), served without a
//!   token since it is documentation.
//! - `/healthz`, `/readyz` (database and broker) and `/metrics` (request counts and latency by
//!   route, method and status), from `herald-observe`.
//!
//! Handlers are thin: they check the caller's scope and the body, then call the store, the
//! contract's own rules (`herald_domain`) and the producer. Nothing that matters is kept in
//! this process (see `state`), so replicas behind a load balancer behave as one.

pub mod auth;
pub mod connections;
pub mod email_templates;
pub mod enrollments;
pub mod error;
pub mod fields;
pub mod jobs;
pub mod jwks;
pub mod jwt;
pub mod openapi;
pub mod password;
pub mod payload;
pub mod ratelimit;
pub mod registry;
pub mod state;
pub mod text;
pub mod tickets;
pub mod users;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use herald_domain::{ClientAddress, TrustedProxies};
use herald_observe::ObserveState;

pub use error::ApiError;
pub use state::{ApiConfig, ApiState};

/// How often idle tokens' rate-limit buckets are forgotten.
const LIMITER_UPKEEP: Duration = Duration::from_secs(60);

/// Every route: the API under `/api/v2` (authenticated, rate-limited), the health and metrics
/// endpoints in `observe`, and `pages` (the ticket pages, or an empty router), all counted in
/// the request metrics.
pub fn router(state: ApiState, observe: ObserveState, pages: Router) -> Router {
    let trusted_proxies = Arc::new(state.config().trusted_proxies.clone());
    let api = Router::new()
        .route("/users", post(users::create))
        .route(
            "/users/{id}",
            get(users::get).patch(users::update).delete(users::delete),
        )
        .route("/users/{id}/enrollments", get(enrollments::list))
        .route("/users-by-email", get(users::by_email))
        .route("/organizations", post(registry::create_org))
        .route(
            "/organizations/{id}",
            get(registry::get_org)
                .patch(registry::update_org)
                .delete(registry::delete_org),
        )
        .route("/organizations/name/{name}", get(registry::get_org_by_name))
        .route("/clients", post(registry::create_client))
        .route(
            "/clients/{id}",
            get(registry::get_client)
                .patch(registry::update_client)
                .delete(registry::delete_client),
        )
        .route("/jobs/verification-email", post(jobs::verification_email))
        .route("/jobs/{id}", get(jobs::get))
        .route(
            "/tickets/email-verification",
            post(tickets::email_verification),
        )
        .route("/tickets/password-change", post(tickets::password_change))
        .route("/guardian/enrollments/ticket", post(tickets::enrollment))
        .route(
            "/guardian/enrollments/{id}",
            axum::routing::delete(enrollments::delete),
        )
        .route(
            "/x-herald/users/{id}/otp-verifications",
            post(enrollments::verify_otp),
        )
        .route("/email-templates", post(email_templates::create))
        .route(
            "/email-templates/{name}",
            get(email_templates::get)
                .patch(email_templates::update)
                .put(email_templates::replace),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        // Added after the authentication layer, so it is served without a token.
        .route("/openapi.json", get(openapi::serve))
        .layer(DefaultBodyLimit::max(state.config().max_body_bytes))
        .with_state(state);
    Router::new()
        .nest("/api/v2", api)
        .merge(herald_observe::router(Arc::new(observe)))
        .merge(pages)
        .fallback(not_found)
        .layer(middleware::from_fn(record_request))
        .layer(middleware::from_fn_with_state(
            trusted_proxies,
            resolve_client_address,
        ))
}

/// Middleware: resolves the client's address once, from the TCP peer and, behind the trusted
/// proxies of HERALD_TRUSTED_PROXIES, their `X-Forwarded-For`; it is left in the request as a
/// [`ClientAddress`] for the rate limits of the API and the pages.
async fn resolve_client_address(
    axum::extract::State(proxies): axum::extract::State<Arc<TrustedProxies>>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(peer) = peer {
        let forwarded = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            // A value that is not text is not an address: it ends the walk.
            .map(|v| v.to_str().unwrap_or("?"));
        let client = proxies.client_address(peer, forwarded);
        request.extensions_mut().insert(ClientAddress(client));
    }
    next.run(request).await
}

/// The readiness checks of `herald serve`: the database answers, the producer's connection is up.
pub fn observe_state(state: &ApiState) -> ObserveState {
    let store = state.store().clone();
    let api = state.clone();
    ObserveState::new()
        .check("database", move || {
            let store = store.clone();
            async move { store.ping().await.map_err(|e| e.to_string()) }
        })
        .check("broker", move || {
            let open = api.producer().is_open();
            async move {
                if open {
                    Ok(())
                } else {
                    Err(
                        "the connection to RabbitMQ is down (reconnecting on the next publish)"
                            .to_owned(),
                    )
                }
            }
        })
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// for up to `grace` (an idle keep-alive connection cannot hold the process longer).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    pages: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let upkeep = state.clone();
    let upkeep = tokio::spawn(async move {
        let mut tick = tokio::time::interval(LIMITER_UPKEEP);
        loop {
            tick.tick().await;
            upkeep.limiter().forget_idle();
            upkeep.failed_auth_limiter().forget_idle();
        }
    });
    let app = router(state.clone(), observe_state(&state), pages);
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopping_tx.send(());
    });
    let server = tokio::spawn(async move { server.await });
    let result = match tokio::select! {
        r = server => Some(r),
        _ = async {
            let _ = stopping_rx.await;
            tokio::time::sleep(grace).await;
        } => None,
    } {
        Some(Ok(r)) => r,
        Some(Err(_)) => Ok(()),
        None => {
            tracing::warn!(
                "Requests were still open after the shutdown grace period; exiting anyway."
            );
            Ok(())
        }
    };
    upkeep.abort();
    result
}

/// The `auth0-custom-domain` header: 3–255 characters and one of HERALD_ALLOWED_CUSTOM_DOMAINS.
pub fn custom_domain(state: &ApiState, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("auth0-custom-domain") else {
        return Ok(None);
    };
    let domain = value
        .to_str()
        .map_err(|_| ApiError::bad_request("The auth0-custom-domain header is not valid text"))?
        .trim()
        .to_ascii_lowercase();
    if !(3..=255).contains(&domain.len()) {
        return Err(ApiError::bad_request(
            "The auth0-custom-domain header must be 3 to 255 characters long",
        ));
    }
    if !state.config().allowed_custom_domains.contains(&domain) {
        return Err(ApiError::bad_request(format!(
            "The custom domain {domain} is not configured (HERALD_ALLOWED_CUSTOM_DOMAINS)"
        )));
    }
    Ok(Some(domain))
}

async fn not_found() -> ApiError {
    ApiError::not_found("Not Found", None)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed",
        None,
    )
}

/// Counts every answer by route template, method and status, with its latency.
async fn record_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    herald_observe::record_http(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
