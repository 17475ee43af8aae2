//! [`Application`]: the parts every front end shares, built once from [`Settings`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use herald_domain::{Locale, TicketSecret};
use herald_mfa::MfaKeys;
use herald_observe::ObserveState;
use herald_producer::{ProduceError, Producer};
use herald_queue::Topology;
use herald_render::{LoadError, Renderer};
use herald_smtp::{ConfigError, Mailer};
use herald_store::{Store, StoreError};
use herald_worker::{CancellationToken, Pipeline, Worker, WorkerConfig};
use secrecy::ExposeSecret;

use crate::settings::{DEFAULT_SMTP_URL, Settings};

/// Why the application could not be built. Each message names the setting to look at.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("HERALD_DATABASE_URL: the database could not be opened and migrated")]
    Database(#[source] StoreError),
    #[error("loading the built-in templates")]
    EmbeddedTemplates(#[source] LoadError),
    #[error(
        "HERALD_TEMPLATES_DIR: loading templates from {} and locales from {}",
        templates.display(),
        locales.display()
    )]
    Templates {
        templates: PathBuf,
        locales: PathBuf,
        #[source]
        source: LoadError,
    },
    #[error("HERALD_DEFAULT_LOCALE {locale} is not one of the available locales ({available})")]
    UnknownLocale { locale: Locale, available: String },
    #[error("HERALD_SMTP_URL is not usable")]
    Mailer(#[source] ConfigError),
    #[error("HERALD_METRICS_ADDR {addr}: cannot listen there")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Why the Management API could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ApiBuildError {
    #[error("HERALD_AMQP_URL: connecting the API's producer to RabbitMQ")]
    Broker(#[source] ProduceError),
    #[error("{0}")]
    Jwt(String),
}

/// Connects to PostgreSQL (creating the database if needed) and applies the migrations.
pub async fn store(settings: &Settings) -> Result<Store, BuildError> {
    let store = Store::connect(settings.database_url.expose_secret())
        .await
        .map_err(BuildError::Database)?;
    store.migrate().await.map_err(BuildError::Database)?;
    Ok(store)
}

/// The templates and locales: the built-in ones, or the directories named in the settings.
/// HERALD_DEFAULT_LOCALE must be one of their locales.
pub fn renderer(settings: &Settings) -> Result<Arc<Renderer>, BuildError> {
    let renderer = match (&settings.templates_dir, &settings.locales_dir) {
        (Some(t), Some(l)) => {
            Renderer::from_dirs(t, l).map_err(|source| BuildError::Templates {
                templates: t.clone(),
                locales: l.clone(),
                source,
            })?
        }
        _ => Renderer::embedded().map_err(BuildError::EmbeddedTemplates)?,
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
        return Err(BuildError::UnknownLocale {
            locale: settings.default_locale.clone(),
            available: available.join(", "),
        });
    }
    Ok(Arc::new(renderer))
}

/// The SMTP transport named by HERALD_SMTP_URL (Mailpit's local port when it is unset).
pub fn mailer(settings: &Settings) -> Result<Mailer, BuildError> {
    let url = settings
        .smtp_url
        .as_ref()
        .map_or(DEFAULT_SMTP_URL, |u| u.expose_secret());
    Mailer::from_url(url, settings.mailer_options()).map_err(BuildError::Mailer)
}

/// The parts every front end shares, built from one [`Settings`]: the store (migrated), the
/// renderer, the mailer, and the ticket secret. [`Application::worker`] wires a worker from
/// them; the HTTP front end will take the same parts.
#[derive(Clone)]
pub struct Application {
    settings: Settings,
    store: Store,
    renderer: Arc<Renderer>,
    mailer: Mailer,
    /// Resolved once, so every worker built here signs with the same secret, even a random one.
    ticket_secret: TicketSecret,
    /// HERALD_MFA_KEY (or the key derived from `ticket_secret`) and HERALD_MFA_PREVIOUS_KEYS:
    /// the API and the pages share them.
    mfa_keys: MfaKeys,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("settings", &self.settings)
            .field("mailer", &self.mailer)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Opens and migrates the database, loads the templates and builds the mailer (which
    /// connects on first use). Nothing is consumed or served yet.
    pub async fn build(settings: Settings) -> Result<Application, BuildError> {
        let renderer = renderer(&settings)?;
        let mailer = mailer(&settings)?;
        let store = store(&settings).await?;
        let ticket_secret = settings
            .ticket_secret
            .clone()
            .unwrap_or_else(TicketSecret::random);
        let mfa_keys = crate::mfa_keys(&settings, &ticket_secret);
        Ok(Application {
            settings,
            store,
            renderer,
            mailer,
            ticket_secret,
            mfa_keys,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn renderer(&self) -> &Arc<Renderer> {
        &self.renderer
    }

    pub fn mailer(&self) -> &Mailer {
        &self.mailer
    }

    /// The MFA keys. The current one is HERALD_MFA_KEY, or when it is unset
    /// `HMAC(ticket secret, "herald.mfa-key.v1")` (stable as long as HERALD_TICKET_SECRET is;
    /// random per process when both are unset): the enrollment pages derive TOTP secrets and
    /// seal them with it. The API opens them with it or with one of HERALD_MFA_PREVIOUS_KEYS.
    pub fn mfa_keys(&self) -> &MfaKeys {
        &self.mfa_keys
    }

    /// True when HERALD_TICKET_SECRET is unset and this process signs with a random secret.
    pub fn uses_random_ticket_secret(&self) -> bool {
        self.settings.ticket_secret.is_none()
    }

    pub fn topology(&self) -> Topology {
        self.settings.topology()
    }

    /// A producer on HERALD_AMQP_URL with this application's topology.
    pub async fn producer(&self) -> Result<Producer, ProduceError> {
        Producer::connect_with(self.settings.amqp_url.expose_secret(), self.topology()).await
    }

    /// The Management API's state on these parts: the store, a producer of its own (connected
    /// now), and the API settings. `herald_api::serve` serves it.
    pub async fn api(&self) -> Result<herald_api::ApiState, ApiBuildError> {
        let producer = std::sync::Arc::new(self.producer().await.map_err(ApiBuildError::Broker)?);
        let s = &self.settings;
        let config = herald_api::ApiConfig {
            public_url: s.public_url.clone(),
            allowed_custom_domains: s.allowed_custom_domains.clone(),
            ticket_secret: self.ticket_secret.clone(),
            mfa_keys: self.mfa_keys.clone(),
            rate_limit: std::num::NonZeroU32::new(s.api_rate_limit)
                .unwrap_or(std::num::NonZeroU32::MIN),
            max_body_bytes: s.api_max_body_bytes,
            trusted_proxies: s.trusted_proxies.clone(),
            jwt: match (&s.jwt_issuer, &s.jwt_audience) {
                (Some(issuer), Some(audience))
                    if s.jwt_hs256_secret.is_some() || s.jwt_jwks_url.is_some() =>
                {
                    Some(herald_api::jwt::JwtConfig {
                        issuer: issuer.clone(),
                        audience: audience.clone(),
                        hs256_secret: s
                            .jwt_hs256_secret
                            .as_ref()
                            .map(|secret| secret.expose_secret().as_bytes().to_vec()),
                        jwks_url: s.jwt_jwks_url.clone(),
                    })
                }
                _ => None,
            },
        };
        let state = herald_api::ApiState::new(
            self.store.clone(),
            producer,
            Arc::clone(&self.renderer),
            config,
        )
        .map_err(ApiBuildError::Jwt)?;
        // The identity provider's keys, fetched once now (at most FETCH_TIMEOUT); when it cannot
        // be reached the API starts anyway, and JWTs are refused until a later fetch succeeds.
        if let Some(jwt) = state.jwt() {
            jwt.prefetch().await;
        }
        Ok(state)
    }

    /// The ticket pages' routes, sharing the API's store, producer and renderer: both are
    /// served by `herald serve` (pass it to `herald_api::serve`).
    pub fn pages(&self, api: &herald_api::ApiState) -> axum::Router {
        let s = &self.settings;
        let state = herald_pages::PagesState::new(
            self.store.clone(),
            api.shared_producer(),
            Arc::clone(&self.renderer),
            herald_pages::PagesConfig {
                public_url: s.public_url.clone(),
                friendly_name: s.friendly_name.clone(),
                ticket_secret: self.ticket_secret.clone(),
                password_policy: s.password_policy,
                limits: herald_pages::PageLimits {
                    per_minute: std::num::NonZeroU32::new(s.page_rate_limit)
                        .unwrap_or(std::num::NonZeroU32::MIN),
                },
                mfa_keys: self.mfa_keys.clone(),
            },
        );
        herald_pages::router(state)
    }

    /// A worker on these parts (not yet consuming: call [`Worker::run`], or
    /// [`Worker::stepper`] to drive it one delivery at a time).
    pub fn worker(&self) -> Worker {
        Worker::new(Pipeline::new(
            self.store.clone(),
            self.renderer.clone(),
            self.mailer.clone(),
            self.worker_config(),
        ))
    }

    fn worker_config(&self) -> WorkerConfig {
        worker_config(&self.settings, self.ticket_secret.clone())
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` for `worker` on HERALD_METRICS_ADDR (port 0
    /// picks a free one) and refreshes the queue gauges every `poll_every` until `shutdown`, on
    /// a connection of their own. Returns the bound address, or `None` when the setting is off.
    pub async fn serve_metrics(
        &self,
        worker: &Worker,
        poll_every: Duration,
        shutdown: CancellationToken,
    ) -> Result<Option<SocketAddr>, BuildError> {
        let Some(addr) = self.settings.metrics_addr else {
            return Ok(None);
        };
        let bound = herald_observe::serve(addr, ObserveState::for_worker(worker))
            .await
            .map_err(|source| BuildError::Listen { addr, source })?;
        let poller = herald_observe::QueuePoller {
            amqp_url: self.settings.amqp_url.clone(),
            topology: self.topology(),
            store: self.store.clone(),
            newest_delivered: worker.newest_delivered(),
            every: poll_every,
        };
        herald_observe::spawn_queue_poller(poller, shutdown);
        Ok(Some(bound))
    }
}

/// The worker's part of `settings`, signing tickets with `ticket_secret`.
pub fn worker_config(s: &Settings, ticket_secret: TicketSecret) -> WorkerConfig {
    WorkerConfig {
        amqp_url: s.amqp_url.clone(),
        topology: s.topology(),
        prefetch: s.prefetch,
        max_attempts: s.max_attempts,
        max_job_bytes: s.max_job_bytes,
        public_url: s.public_url.clone(),
        allowed_custom_domains: s.allowed_custom_domains.clone(),
        default_locale: s.default_locale.clone(),
        default_from: s.from.clone(),
        friendly_name: s.friendly_name.clone(),
        send_slots: s.smtp_pool_size,
        support_email: s.support_email.clone(),
        support_url: s.support_url.clone(),
        message_id_domain: s.message_id_domain(),
        ticket_secret,
        lease: s.lease,
        send_timeout: s.send_timeout(),
        shutdown_timeout: s.shutdown_timeout,
        propagate_traceparent: s.email_traceparent,
        registry_cache_ttl: s.registry_cache_ttl,
        ledger_batch: s.ledger_batch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_locale_without_templates_is_refused_naming_the_variable() {
        let mut settings = Settings::local();
        settings.default_locale = Locale::parse("ko").unwrap();
        let err = renderer(&settings).unwrap_err();
        assert!(
            err.to_string().starts_with("HERALD_DEFAULT_LOCALE ko"),
            "{err}"
        );
    }

    #[test]
    fn the_mailer_follows_the_smtp_settings() {
        let mut settings = Settings::local();
        assert!(
            mailer(&settings)
                .unwrap()
                .describe()
                .starts_with("smtp://127.0.0.1:1025")
        );
        settings.smtp_url = Some("file:///tmp/herald-outbox".to_string().into());
        assert!(
            mailer(&settings)
                .unwrap()
                .describe()
                .contains("/tmp/herald-outbox")
        );
    }

    #[test]
    fn the_topology_takes_the_retry_tiers_of_the_settings() {
        let mut settings = Settings::local();
        assert_eq!(
            settings.topology().retry_delays,
            herald_queue::topology::DEFAULT_RETRY_DELAYS
        );
        settings.retry_delays = vec![Duration::from_millis(200)];
        assert_eq!(
            settings.topology().retry_queues(),
            ["herald.email.retry.200ms"]
        );
    }
}
