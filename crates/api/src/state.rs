//! [`ApiState`]: what every request handler shares (the store, the producer, the settings it
//! needs and the rate limiter). Nothing that matters lives only here: users, tokens, tickets and
//! jobs are in PostgreSQL, so replicas behind a load balancer behave as one (the rate limiter's
//! buckets are the exception, see `ratelimit`).

use std::num::NonZeroU32;
use std::sync::Arc;

use herald_domain::TicketSecret;
use herald_producer::Producer;
use herald_render::Renderer;
use herald_store::Store;
use url::Url;

use crate::ratelimit::{AddressLimiter, TokenLimiter};

/// Failed authentications allowed per client address and second (and the burst).
const FAILED_AUTH_PER_SECOND: NonZeroU32 = NonZeroU32::new(10).expect("not zero");

/// The API's part of Herald's settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// HERALD_PUBLIC_URL: the base of ticket links.
    pub public_url: Url,
    /// HERALD_ALLOWED_CUSTOM_DOMAINS: what an `auth0-custom-domain` header may name.
    pub allowed_custom_domains: Vec<String>,
    /// Tickets are derived from it, as the worker's are.
    pub ticket_secret: TicketSecret,
    /// HERALD_MFA_KEY (or derived from the ticket secret) and HERALD_MFA_PREVIOUS_KEYS: open
    /// sealed TOTP secrets for the login check (which reseals an old key's under the current).
    pub mfa_keys: herald_mfa::MfaKeys,
    /// HERALD_API_RATE_LIMIT: requests per second per token (and the burst).
    pub rate_limit: NonZeroU32,
    /// HERALD_API_MAX_BODY_BYTES: larger bodies get a 413.
    pub max_body_bytes: usize,
    /// HERALD_JWT_*: JWT access tokens are accepted when set.
    pub jwt: Option<crate::jwt::JwtConfig>,
    /// HERALD_TRUSTED_PROXIES: whose `X-Forwarded-For` names the client (for rate limits).
    pub trusted_proxies: herald_domain::TrustedProxies,
}

/// Cheap to clone: one `Arc`.
#[derive(Debug, Clone)]
pub struct ApiState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    store: Store,
    producer: Arc<Producer>,
    /// Checks email templates before they are saved.
    renderer: Arc<Renderer>,
    config: ApiConfig,
    limiter: TokenLimiter,
    failed_auth: AddressLimiter,
    jwt: Option<crate::jwt::JwtVerifier>,
}

impl ApiState {
    /// # Errors
    /// When the JWT configuration cannot be used (a sentence naming the setting).
    pub fn new(
        store: Store,
        producer: Arc<Producer>,
        renderer: Arc<Renderer>,
        config: ApiConfig,
    ) -> Result<Self, String> {
        let jwt = config
            .jwt
            .as_ref()
            .map(crate::jwt::JwtVerifier::new)
            .transpose()?;
        let limiter = TokenLimiter::new(config.rate_limit);
        Ok(ApiState(Arc::new(Inner {
            store,
            producer,
            renderer,
            config,
            limiter,
            failed_auth: AddressLimiter::new(FAILED_AUTH_PER_SECOND),
            jwt,
        })))
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn producer(&self) -> &Producer {
        &self.0.producer
    }

    /// The producer, to share with the ticket pages served alongside.
    pub fn shared_producer(&self) -> Arc<Producer> {
        Arc::clone(&self.0.producer)
    }

    pub fn renderer(&self) -> &Renderer {
        &self.0.renderer
    }

    pub fn config(&self) -> &ApiConfig {
        &self.0.config
    }

    pub fn limiter(&self) -> &TokenLimiter {
        &self.0.limiter
    }

    /// The JWT checker, when JWT access tokens are configured.
    pub fn jwt(&self) -> Option<&crate::jwt::JwtVerifier> {
        self.0.jwt.as_ref()
    }

    /// Failed authentications per client address (10 a second).
    pub fn failed_auth_limiter(&self) -> &AddressLimiter {
        &self.0.failed_auth
    }
}
