//! The pages of `herald serve` that redeem tickets: `/u/email-verification`,
//! `/u/reset-password` and `/u/mfa-enrollment`.
//!
//! - A GET never uses a ticket: it shows a form (mail scanners open every link). Only a POST
//!   redeems, and a POST must come from this site (`Sec-Fetch-Site`/`Origin`, tower-http's
//!   `CsrfLayer`) and carry the token bound to the ticket and the browser's cookie (`csrf`).
//! - What a ticket does (verify an email, store a password) commits in the transaction that
//!   uses the ticket, after its event and any welcome email are confirmed by RabbitMQ; a failed
//!   publish rolls back and the link still works.
//! - Every page is localized and branded (`herald_render::Page`), and every answer carries the
//!   security headers of `http` (no referrer, no store, a CSP with no script, no framing).
//! - Redirects go only to the ticket's `result_url` or its client's login URI (`redirect`).
//! - POSTs are rate-limited per ticket and per client address (`limits`).
//! - Each redeemed ticket counts in `herald_tickets_redeemed_total` (`metrics`); every answer
//!   counts in `herald serve`'s request metrics, by route and status.

mod csrf;
mod http;
mod limits;
mod locale;
mod metrics;
mod mfa;
mod mfa_email;
mod password;
mod redirect;
mod ticket_page;
mod verify;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use herald_domain::TicketSecret;
use herald_password::PasswordPolicy;
use herald_producer::Producer;
use herald_render::Renderer;
use herald_store::Store;
use url::Url;

pub use limits::PageLimits;

/// Larger form posts get a 413.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The pages' part of Herald's settings.
#[derive(Debug, Clone)]
pub struct PagesConfig {
    /// HERALD_PUBLIC_URL: where the pages are served (its scheme decides the cookie's name).
    pub public_url: Url,
    /// Shown as the brand when a ticket has no organization.
    pub friendly_name: String,
    /// The CSRF tokens' key is derived from it.
    pub ticket_secret: TicketSecret,
    /// HERALD_PASSWORD_MIN_LENGTH / HERALD_PASSWORD_MIN_SCORE.
    pub password_policy: PasswordPolicy,
    /// HERALD_PAGE_RATE_LIMIT: POSTs per minute per ticket and per client address.
    pub limits: PageLimits,
    /// HERALD_MFA_KEY derives enrollment tickets' TOTP secrets and seals them at rest;
    /// HERALD_MFA_PREVIOUS_KEYS still check what they derived before a key change.
    pub mfa_keys: herald_mfa::MfaKeys,
}

/// What every page handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PagesState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    store: Store,
    producer: Arc<Producer>,
    renderer: Arc<Renderer>,
    config: PagesConfig,
    csrf: csrf::CsrfKey,
    limiter: limits::Limiter,
}

impl PagesState {
    pub fn new(
        store: Store,
        producer: Arc<Producer>,
        renderer: Arc<Renderer>,
        config: PagesConfig,
    ) -> Self {
        let csrf = csrf::CsrfKey::derive(&config.ticket_secret, &config.public_url);
        let limiter = limits::Limiter::new(config.limits);
        PagesState(Arc::new(Inner {
            store,
            producer,
            renderer,
            config,
            csrf,
            limiter,
        }))
    }

    fn store(&self) -> &Store {
        &self.0.store
    }

    fn producer(&self) -> &Producer {
        &self.0.producer
    }

    fn renderer(&self) -> &Renderer {
        &self.0.renderer
    }

    fn config(&self) -> &PagesConfig {
        &self.0.config
    }

    fn csrf(&self) -> &csrf::CsrfKey {
        &self.0.csrf
    }

    fn limiter(&self) -> &limits::Limiter {
        &self.0.limiter
    }

    fn mfa_keys(&self) -> &herald_mfa::MfaKeys {
        &self.0.config.mfa_keys
    }
}

/// The routes under `/u/`, with their security headers and cross-origin protection. Merge it
/// into the server's router (it sets no fallback).
pub fn router(state: PagesState) -> Router {
    Router::new()
        .route(
            "/u/email-verification",
            get(verify::show).post(verify::redeem),
        )
        .route(
            "/u/reset-password",
            get(password::show).post(password::redeem),
        )
        .route("/u/mfa-enrollment", get(mfa::show).post(mfa::redeem))
        // A form holds a ticket, a token and two passwords: a few hundred bytes.
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(http::cross_origin_protection())
        .layer(axum::middleware::from_fn(http::security_headers))
        .with_state(state)
}
