//! Configuration: the only place that reads environment variables. Every value is parsed and
//! checked here, and a bad one stops the process with a sentence naming the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use herald_domain::{Locale, TicketSecret};
use herald_mfa::MfaKey;
use herald_queue::Topology;
use herald_smtp::{Destination, MailerOptions};
use secrecy::{ExposeSecret, SecretString};
use url::{Host, Url};

/// A configuration problem, phrased for the operator who has to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{var} {problem}")]
pub struct SettingsError {
    pub var: &'static str,
    pub problem: String,
}

fn bad(var: &'static str, problem: impl Into<String>) -> SettingsError {
    SettingsError {
        var,
        problem: problem.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where Herald runs (HERALD_ENV). Production refuses the local defaults that would make it
/// unsafe or wrong there: a random ticket secret, a loopback or plain-http public URL, a
/// `localhost` sender, and plain-text SMTP to another machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// HERALD_ENV: `development` (the default) or `production`.
    pub environment: Environment,
    /// One URL or a cluster's comma-separated URLs; they hold the broker password.
    pub amqp_url: SecretString,
    pub database_url: SecretString,
    /// `None` when HERALD_SMTP_URL is unset: the worker then uses `smtp://127.0.0.1:1025`
    /// (Mailpit's port) and `herald demo` captures mail itself.
    pub smtp_url: Option<SecretString>,
    pub smtp_pool_size: usize,
    pub smtp_timeout: Duration,
    /// HERALD_SMTP_ALLOW_PLAINTEXT_AUTH: let an SMTP password travel unencrypted to a host that
    /// is not loopback (refused by default).
    pub smtp_allow_plaintext_auth: bool,
    pub public_url: Url,
    pub default_locale: Locale,
    pub allowed_custom_domains: Vec<String>,
    pub from: lettre::message::Mailbox,
    pub friendly_name: String,
    /// HERALD_SUPPORT_EMAIL and HERALD_SUPPORT_URL: Auth0's `support_email` and `support_url`
    /// in Liquid email templates.
    pub support_email: Option<String>,
    pub support_url: Option<String>,
    pub ticket_secret: Option<TicketSecret>,
    /// HERALD_MFA_KEY: seals TOTP secrets at rest and derives enrollment secrets (32+ bytes).
    /// `None`: the key is derived from the ticket secret (`MfaKey::derived_from`).
    pub mfa_key: Option<MfaKey>,
    /// HERALD_MFA_PREVIOUS_KEYS: keys HERALD_MFA_KEY replaced, comma-separated; they still open
    /// the secrets they sealed until `herald mfa reseal` has moved them to the current key.
    pub mfa_previous_keys: Vec<MfaKey>,
    pub max_attempts: u32,
    pub retry_delays: Vec<Duration>,
    pub prefetch: u16,
    pub max_job_bytes: usize,
    pub shutdown_timeout: Duration,
    pub lease: Duration,
    /// How long the worker caches organizations, clients and overrides (HERALD_REGISTRY_CACHE_TTL).
    pub registry_cache_ttl: Duration,
    /// The most deliveries whose ledger writes share one statement (HERALD_LEDGER_BATCH).
    pub ledger_batch: usize,
    pub log_format: LogFormat,
    /// Copy a job's W3C `traceparent` into the email's headers (HERALD_EMAIL_TRACEPARENT).
    pub email_traceparent: bool,
    /// Where `herald worker` serves /metrics, /healthz and /readyz; `None` when set to `off`.
    pub metrics_addr: Option<SocketAddr>,
    /// HERALD_HTTP_ADDR: where `herald serve` listens.
    pub http_addr: SocketAddr,
    /// HERALD_API_RATE_LIMIT: Management API requests per second per token (also the burst).
    pub api_rate_limit: u32,
    /// HERALD_API_MAX_BODY_BYTES: larger request bodies get a 413.
    pub api_max_body_bytes: usize,
    /// HERALD_PASSWORD_MIN_LENGTH and HERALD_PASSWORD_MIN_SCORE: what a password set on the
    /// password-change page must be.
    pub password_policy: herald_password::PasswordPolicy,
    /// HERALD_PAGE_RATE_LIMIT: POSTs per minute per ticket and per client address on the pages.
    pub page_rate_limit: u32,
    /// HERALD_TRUSTED_PROXIES: the proxies whose `X-Forwarded-For` names the client, for the
    /// rate limits of the API and the pages (none by default: the TCP peer is the client).
    pub trusted_proxies: herald_domain::TrustedProxies,
    /// HERALD_JWT_HS256_SECRET: accept HS256 JWT access tokens signed with it (32+ bytes).
    pub jwt_hs256_secret: Option<SecretString>,
    /// HERALD_JWT_JWKS_URL: accept RS256 JWT access tokens signed with a key of this JSON Web
    /// Key Set (https://, or http:// to this machine only).
    pub jwt_jwks_url: Option<Url>,
    /// HERALD_JWT_ISSUER and HERALD_JWT_AUDIENCE: what an accepted JWT's `iss` and `aud` say
    /// (whichever key signed it).
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub templates_dir: Option<PathBuf>,
    pub locales_dir: Option<PathBuf>,
}

pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/herald";
pub const DEFAULT_SMTP_URL: &str = "smtp://127.0.0.1:1025";
pub const DEFAULT_PUBLIC_URL: &str = "http://localhost:8080";
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9464";
/// `herald serve`'s default address: what DEFAULT_PUBLIC_URL points at.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";

impl Settings {
    pub fn load() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Every default: the local services on their standard ports, as a machine with no HERALD_*
    /// variable gets them. Tests start here and change the fields they need.
    pub fn local() -> Self {
        Self::from_lookup(|_| None).expect("the defaults are valid settings")
    }

    /// Reads settings through `lookup` (tests pass a map instead of the environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };

        let environment = match get("HERALD_ENV").as_deref() {
            None | Some("development") => Environment::Development,
            Some("production") => Environment::Production,
            Some(other) => {
                return Err(bad(
                    "HERALD_ENV",
                    format!("must be development or production (got {other:?})"),
                ));
            }
        };

        let amqp_url = get("HERALD_AMQP_URL").unwrap_or_else(|| DEFAULT_AMQP_URL.to_string());
        check_amqp_urls(&amqp_url)?;
        let amqp_url = SecretString::from(amqp_url);

        let database_url =
            get("HERALD_DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());
        match Url::parse(&database_url) {
            Ok(u)
                if matches!(u.scheme(), "postgres" | "postgresql")
                    && !u.path().trim_start_matches('/').is_empty() => {}
            _ => {
                return Err(bad(
                    "HERALD_DATABASE_URL",
                    "must be a postgres:// URL naming a database, such as postgres://postgres@127.0.0.1:5432/herald",
                ));
            }
        }

        let smtp_url = get("HERALD_SMTP_URL").map(SecretString::from);

        let public_url = get("HERALD_PUBLIC_URL").unwrap_or_else(|| DEFAULT_PUBLIC_URL.to_string());
        let public_url = match Url::parse(&public_url) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.query().is_none() =>
            {
                u
            }
            _ => {
                return Err(bad(
                    "HERALD_PUBLIC_URL",
                    format!(
                        "must be an absolute http(s) URL without a query, such as https://id.example.com (got {public_url:?})"
                    ),
                ));
            }
        };

        let default_locale = match get("HERALD_DEFAULT_LOCALE") {
            None => Locale::english(),
            Some(tag) => Locale::parse(&tag).ok_or_else(|| {
                bad(
                    "HERALD_DEFAULT_LOCALE",
                    format!("{tag:?} is not a language tag such as en, fr or pt-BR"),
                )
            })?,
        };

        let allowed_custom_domains = get("HERALD_ALLOWED_CUSTOM_DOMAINS")
            .map(|list| {
                list.split(',')
                    .map(|d| d.trim().to_ascii_lowercase())
                    .filter(|d| !d.is_empty())
                    .map(|d| {
                        let ok = d.contains('.')
                            && d.split('.').all(|l| {
                                !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                            });
                        if ok {
                            Ok(d)
                        } else {
                            Err(bad(
                                "HERALD_ALLOWED_CUSTOM_DOMAINS",
                                format!("must be a comma-separated list of hostnames such as login.acme.com; {d:?} is not one"),
                            ))
                        }
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?
            .unwrap_or_default();

        let from_raw =
            get("HERALD_FROM").unwrap_or_else(|| "Herald <no-reply@localhost>".to_string());
        let from = from_raw.parse().map_err(|e| {
            bad(
                "HERALD_FROM",
                format!("must be a mailbox such as \"Acme <no-reply@acme.com>\" ({e})"),
            )
        })?;

        let friendly_name = get("HERALD_FRIENDLY_NAME").unwrap_or_else(|| "Herald".to_string());
        if friendly_name.chars().any(char::is_control) {
            return Err(bad(
                "HERALD_FRIENDLY_NAME",
                "must not contain control characters",
            ));
        }

        let support_email = get("HERALD_SUPPORT_EMAIL")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        if let Some(email) = &support_email
            && herald_domain::EmailAddress::parse(email).is_err()
        {
            return Err(bad(
                "HERALD_SUPPORT_EMAIL",
                "must be an email address such as support@acme.com",
            ));
        }
        let support_url = get("HERALD_SUPPORT_URL")
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        if let Some(u) = &support_url
            && !Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            return Err(bad(
                "HERALD_SUPPORT_URL",
                "must be an http(s) URL such as https://acme.com/support",
            ));
        }

        let ticket_secret = get("HERALD_TICKET_SECRET")
            .map(|s| {
                TicketSecret::from_bytes(s.as_bytes()).map_err(|e| bad("HERALD_TICKET_SECRET", e))
            })
            .transpose()?;
        let mfa_key = get("HERALD_MFA_KEY")
            .map(|s| {
                MfaKey::from_bytes(s.as_bytes()).map_err(|e| {
                    bad(
                        "HERALD_MFA_KEY",
                        format!("{e}; it seals the TOTP secrets of MFA enrollments"),
                    )
                })
            })
            .transpose()?;

        let mfa_previous_keys = get("HERALD_MFA_PREVIOUS_KEYS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .enumerate()
            .map(|(i, k)| {
                MfaKey::from_bytes(k.as_bytes()).map_err(|e| {
                    bad(
                        "HERALD_MFA_PREVIOUS_KEYS",
                        format!("key {} of the list {e}", i + 1),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let max_attempts = number(&get, "HERALD_MAX_ATTEMPTS", 10u32, 1, 100)?;
        let prefetch = number(&get, "HERALD_PREFETCH", 128u16, 1, 1000)?;
        let max_job_bytes = number(
            &get,
            "HERALD_MAX_JOB_BYTES",
            65_536usize,
            1024,
            16 * 1024 * 1024,
        )?;
        // The mailer's own defaults, so they are written down once.
        let mailer_defaults = herald_smtp::MailerOptions::default();
        let smtp_pool_size = number(
            &get,
            "HERALD_SMTP_POOL_SIZE",
            mailer_defaults.pool_size,
            1,
            256,
        )?;
        let smtp_timeout = duration(
            &get,
            "HERALD_SMTP_TIMEOUT",
            &humantime::format_duration(mailer_defaults.timeout).to_string(),
        )?;
        let smtp_allow_plaintext_auth = boolean(&get, "HERALD_SMTP_ALLOW_PLAINTEXT_AUTH")?;
        let shutdown_timeout = duration(&get, "HERALD_SHUTDOWN_TIMEOUT", "30s")?;
        let registry_cache_ttl = match get("HERALD_REGISTRY_CACHE_TTL").as_deref().map(str::trim) {
            Some("0" | "0s" | "off") => Duration::ZERO,
            _ => duration(&get, "HERALD_REGISTRY_CACHE_TTL", "5s")?,
        };
        let ledger_batch = number(&get, "HERALD_LEDGER_BATCH", 64usize, 1, 1000)?;
        // Renewed every quarter of itself while its job is worked on, so it need not cover a
        // send; it bounds how long a dead worker's jobs wait for the survivors.
        let lease = duration(&get, "HERALD_SEND_LEASE", "10s")?;
        if !(Duration::from_secs(2)..=Duration::from_secs(600)).contains(&lease) {
            return Err(bad(
                "HERALD_SEND_LEASE",
                format!(
                    "must be between 2s and 10m (it is renewed every quarter of itself, and a \
                     dead worker's jobs wait that long); {} is not",
                    humantime::format_duration(lease)
                ),
            ));
        }

        // The tiers of contract v1 (herald_queue's DEFAULT_RETRY_DELAYS) when unset.
        let default_retry_delays = herald_queue::topology::DEFAULT_RETRY_DELAYS
            .iter()
            .map(|d| herald_queue::topology::compact(*d))
            .collect::<Vec<_>>()
            .join(",");
        let retry_raw = get("HERALD_RETRY_DELAYS").unwrap_or_else(|| default_retry_delays.clone());
        let retry_delays = retry_raw
            .split(',')
            .map(|d| {
                humantime::parse_duration(d.trim())
                    .ok()
                    .filter(|d| *d >= Duration::from_millis(100) && *d <= Duration::from_secs(7 * 86_400))
                    .ok_or_else(|| {
                        bad(
                            "HERALD_RETRY_DELAYS",
                            format!("must be a comma-separated list of delays between 100ms and 7d, such as {default_retry_delays} ({:?} is not)", d.trim()),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let email_traceparent = boolean(&get, "HERALD_EMAIL_TRACEPARENT")?;

        let log_format = match get("HERALD_LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(bad(
                    "HERALD_LOG_FORMAT",
                    format!("must be text or json (got {other:?})"),
                ));
            }
        };

        let metrics_addr = match get("HERALD_METRICS_ADDR").as_deref() {
            Some(off) if off.eq_ignore_ascii_case("off") => None,
            raw => {
                let raw = raw.unwrap_or(DEFAULT_METRICS_ADDR);
                Some(raw.parse::<SocketAddr>().map_err(|_| {
                    bad(
                        "HERALD_METRICS_ADDR",
                        format!(
                            "must be an IP address and port such as {DEFAULT_METRICS_ADDR} or 0.0.0.0:9464, or off (got {raw:?})"
                        ),
                    )
                })?)
            }
        };

        let http_raw = get("HERALD_HTTP_ADDR").unwrap_or_else(|| DEFAULT_HTTP_ADDR.to_owned());
        let http_addr = http_raw.trim().parse::<SocketAddr>().map_err(|_| {
            bad(
                "HERALD_HTTP_ADDR",
                format!(
                    "must be an IP address and port such as {DEFAULT_HTTP_ADDR} or 0.0.0.0:8080 (got {http_raw:?})"
                ),
            )
        })?;
        let api_rate_limit = number(&get, "HERALD_API_RATE_LIMIT", 50u32, 1, 100_000)?;
        let api_max_body_bytes = number(
            &get,
            "HERALD_API_MAX_BODY_BYTES",
            65_536usize,
            1_024,
            10_485_760,
        )?;

        let password_policy = herald_password::PasswordPolicy {
            min_length: number(&get, "HERALD_PASSWORD_MIN_LENGTH", 10usize, 8, 128)?,
            min_score: number(&get, "HERALD_PASSWORD_MIN_SCORE", 3u8, 0, 4)?,
        };
        let page_rate_limit = number(&get, "HERALD_PAGE_RATE_LIMIT", 10u32, 1, 100_000)?;
        let trusted_proxies = herald_domain::TrustedProxies::parse(
            &get("HERALD_TRUSTED_PROXIES").unwrap_or_default(),
        )
        .map_err(|e| {
            bad(
                "HERALD_TRUSTED_PROXIES",
                format!("{e}; give a comma-separated list of addresses and networks"),
            )
        })?;

        let jwt_hs256_secret = get("HERALD_JWT_HS256_SECRET").filter(|v| !v.is_empty());
        if let Some(secret) = &jwt_hs256_secret
            && secret.len() < 32
        {
            return Err(bad(
                "HERALD_JWT_HS256_SECRET",
                format!("must be at least 32 bytes long (got {})", secret.len()),
            ));
        }
        let jwt_jwks_url = get("HERALD_JWT_JWKS_URL")
            .map(|raw| jwks_url(&raw))
            .transpose()?;
        let jwt_issuer = get("HERALD_JWT_ISSUER").filter(|v| !v.trim().is_empty());
        let jwt_audience = get("HERALD_JWT_AUDIENCE").filter(|v| !v.trim().is_empty());
        if jwt_hs256_secret.is_some() || jwt_jwks_url.is_some() {
            if jwt_issuer.is_none() {
                return Err(bad(
                    "HERALD_JWT_ISSUER",
                    "must be set when HERALD_JWT_HS256_SECRET or HERALD_JWT_JWKS_URL is (the `iss` accepted JWTs carry, e.g. https://your-tenant.eu.auth0.com/)",
                ));
            }
            if jwt_audience.is_none() {
                return Err(bad(
                    "HERALD_JWT_AUDIENCE",
                    "must be set when HERALD_JWT_HS256_SECRET or HERALD_JWT_JWKS_URL is (the `aud` accepted JWTs carry, e.g. https://herald.example.com/api/v2/)",
                ));
            }
        } else if jwt_issuer.is_some() || jwt_audience.is_some() {
            let var = if jwt_issuer.is_some() {
                "HERALD_JWT_ISSUER"
            } else {
                "HERALD_JWT_AUDIENCE"
            };
            return Err(bad(
                var,
                "is set, but neither HERALD_JWT_JWKS_URL nor HERALD_JWT_HS256_SECRET is, so no JWT would be accepted: set one of them, or unset this",
            ));
        }
        let jwt_hs256_secret = jwt_hs256_secret.map(SecretString::from);

        let dir = |var: &'static str| -> Result<Option<PathBuf>, SettingsError> {
            match get(var) {
                None => Ok(None),
                Some(p) => {
                    let path = PathBuf::from(&p);
                    if path.is_dir() {
                        Ok(Some(path))
                    } else {
                        Err(bad(
                            var,
                            format!("must name an existing directory ({p:?} is not one)"),
                        ))
                    }
                }
            }
        };
        let templates_dir = dir("HERALD_TEMPLATES_DIR")?;
        let locales_dir = dir("HERALD_LOCALES_DIR")?;
        if templates_dir.is_some() != locales_dir.is_some() {
            return Err(bad(
                "HERALD_TEMPLATES_DIR",
                "and HERALD_LOCALES_DIR must be set together (or neither, to use the built-in ones)",
            ));
        }

        let settings = Settings {
            environment,
            amqp_url,
            database_url: SecretString::from(database_url),
            smtp_url,
            smtp_pool_size,
            smtp_timeout,
            smtp_allow_plaintext_auth,
            public_url,
            default_locale,
            allowed_custom_domains,
            from,
            friendly_name,
            support_email,
            support_url,
            ticket_secret,
            mfa_key,
            mfa_previous_keys,
            max_attempts,
            retry_delays,
            prefetch,
            max_job_bytes,
            shutdown_timeout,
            registry_cache_ttl,
            ledger_batch,
            lease,
            log_format,
            email_traceparent,
            metrics_addr,
            http_addr,
            api_rate_limit,
            api_max_body_bytes,
            password_policy,
            page_rate_limit,
            trusted_proxies,
            jwt_hs256_secret,
            jwt_jwks_url,
            jwt_issuer,
            jwt_audience,
            templates_dir,
            locales_dir,
        };
        settings.check_with_the_workers_rules()?;
        if environment == Environment::Production {
            settings.check_for_production()?;
        }
        Ok(settings)
    }

    /// Runs the rules the worker and the mailer apply once they start, so that a value they
    /// would refuse stops the process now, with the variable's name, instead of failing inside
    /// every broker session (which looks like an outage and is retried for minutes).
    fn check_with_the_workers_rules(&self) -> Result<(), SettingsError> {
        self.topology().validate().map_err(|e| {
            bad(
                "HERALD_RETRY_DELAYS",
                format!(
                    "must give each retry tier a name of its own, in whole milliseconds \
                     (two delays that are the same length, such as 5s and 5000ms, are one tier): {e}"
                ),
            )
        })?;
        self.smtp_destination().map(drop)
    }

    /// Where HERALD_SMTP_URL (or the default) sends mail, checked by the mailer's own rule.
    fn smtp_destination(&self) -> Result<Destination, SettingsError> {
        let url = self
            .smtp_url
            .as_ref()
            .map_or(DEFAULT_SMTP_URL, |u| u.expose_secret());
        herald_smtp::check_url(url, &self.mailer_options())
            .map_err(|e| bad("HERALD_SMTP_URL", format!("is not usable: {e}")))
    }

    /// HERALD_ENV=production: the local defaults that must not reach production.
    fn check_for_production(&self) -> Result<(), SettingsError> {
        const WHY: &str = "when HERALD_ENV=production";
        if self.ticket_secret.is_none() {
            return Err(bad(
                "HERALD_TICKET_SECRET",
                format!(
                    "must be set {WHY}: with a random secret per process, a job retried after a \
                     restart is sent with a new link and the first one stops working"
                ),
            ));
        }
        match self.public_url.host() {
            Some(host) if is_local_host(&host) => {
                return Err(bad(
                    "HERALD_PUBLIC_URL",
                    format!(
                        "must name the public host of the ticket pages {WHY}, not this machine ({})",
                        self.public_url
                    ),
                ));
            }
            _ if self.public_url.scheme() != "https" => {
                return Err(bad(
                    "HERALD_PUBLIC_URL",
                    format!(
                        "must be an https:// URL {WHY}: ticket links carry secrets ({})",
                        self.public_url
                    ),
                ));
            }
            _ => {}
        }
        let from_domain = self.from.email.domain();
        if Host::parse(from_domain).is_ok_and(|h| is_local_host(&h)) {
            return Err(bad(
                "HERALD_FROM",
                format!(
                    "must be an address at a real mail domain {WHY}, not {} (mail from it is \
                     rejected or lands in spam)",
                    self.from.email
                ),
            ));
        }
        if let Destination::Smtp {
            encrypted: false,
            loopback: false,
        } = self.smtp_destination()?
        {
            return Err(bad(
                "HERALD_SMTP_URL",
                format!(
                    "must use smtps:// or ?tls=required to reach a remote server {WHY}: the \
                     emails carry ticket links (plain smtp:// is only for a relay on this machine)"
                ),
            ));
        }
        Ok(())
    }

    /// The AMQP topology the worker and producers declare: contract v1's names with
    /// HERALD_RETRY_DELAYS as the retry tiers.
    pub fn topology(&self) -> Topology {
        Topology::default().with_retry_delays(self.retry_delays.clone())
    }

    /// The mailer's options from HERALD_SMTP_POOL_SIZE, HERALD_SMTP_TIMEOUT and
    /// HERALD_SMTP_ALLOW_PLAINTEXT_AUTH (the rest are the mailer's defaults).
    pub fn mailer_options(&self) -> MailerOptions {
        MailerOptions {
            pool_size: self.smtp_pool_size,
            timeout: self.smtp_timeout,
            allow_plaintext_auth: self.smtp_allow_plaintext_auth,
            ..MailerOptions::default()
        }
    }

    /// The domain of generated Message-IDs: the host of HERALD_PUBLIC_URL.
    pub fn message_id_domain(&self) -> String {
        self.public_url
            .host_str()
            .unwrap_or("localhost")
            .to_string()
    }
}

fn number<T>(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, SettingsError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match get(var) {
        None => Ok(default),
        Some(raw) => raw
            .parse::<T>()
            .ok()
            .filter(|v| *v >= min && *v <= max)
            .ok_or_else(|| {
                bad(
                    var,
                    format!("must be a whole number from {min} to {max} (got {raw:?})"),
                )
            }),
    }
}

/// `true`/`1` or `false`/`0`; unset is false.
fn boolean(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<bool, SettingsError> {
    match get(var).as_deref() {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(bad(var, format!("must be true or false (got {other:?})"))),
    }
}

/// Whether `host` is this machine: `localhost` or a name under `.localhost` (RFC 6761), or a
/// loopback address.
fn is_local_host<S: AsRef<str>>(host: &Host<S>) -> bool {
    match host {
        Host::Domain(name) => {
            let name = name.as_ref().trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Host::Ipv4(ip) => ip.is_loopback() || ip.is_unspecified(),
        Host::Ipv6(ip) => ip.is_loopback() || ip.is_unspecified(),
    }
}

/// How much longer than HERALD_SMTP_TIMEOUT a whole send may take before the worker gives up on
/// it (the timeout applies per SMTP command).
pub const SEND_TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

impl Settings {
    /// How long one whole send may take: HERALD_SMTP_TIMEOUT plus a margin. (The job's lease
    /// is renewed while the send runs, so the send need not fit inside HERALD_SEND_LEASE.)
    pub fn send_timeout(&self) -> Duration {
        self.smtp_timeout + SEND_TIMEOUT_MARGIN
    }
}

fn duration(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: &str,
) -> Result<Duration, SettingsError> {
    let raw = get(var).unwrap_or_else(|| default.to_string());
    humantime::parse_duration(&raw)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            bad(
                var,
                format!("must be a duration such as 30s or 2m (got {raw:?})"),
            )
        })
}

/// HERALD_JWT_JWKS_URL: an https:// URL, or http:// to this machine (a sidecar, a test). Keys
/// fetched over plain http from another machine could be swapped on the way, and whoever swaps
/// them can sign any token.
fn jwks_url(raw: &str) -> Result<Url, SettingsError> {
    const VAR: &str = "HERALD_JWT_JWKS_URL";
    const EXAMPLE: &str = "such as https://your-tenant.eu.auth0.com/.well-known/jwks.json";
    let url = Url::parse(raw).map_err(|_| {
        bad(
            VAR,
            format!("must be an https:// URL {EXAMPLE} (got {raw:?})"),
        )
    })?;
    let Some(host) = url.host() else {
        return Err(bad(VAR, format!("must name a host, {EXAMPLE}")));
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_local_host(&host) => Ok(url),
        "http" => Err(bad(
            VAR,
            format!(
                "must be an https:// URL: the signing keys decide who may call the API, and over \
                 plain http:// anyone on the way to {host} could replace them (http:// is only \
                 accepted for this machine, such as http://127.0.0.1:8081/jwks.json)"
            ),
        )),
        other => Err(bad(
            VAR,
            format!("must be an https:// URL {EXAMPLE} (got a {other}: URL)"),
        )),
    }
}

/// HERALD_AMQP_URL: one `amqp://` URL with a host, or the nodes of one cluster as several such
/// URLs separated by commas, differing only in host and port (the rules
/// `herald_queue::connect::parse_urls` enforces, which also refuses `amqps://`: this build has
/// no AMQP TLS). Errors never repeat a URL: it may hold a password.
fn check_amqp_urls(urls: &str) -> Result<(), SettingsError> {
    const EXAMPLE: &str = "must be an amqp:// URL such as \
        amqp://guest:guest@127.0.0.1:5672/%2f, or the nodes of one cluster separated by commas \
        (amqp://guest:guest@10.0.0.1:5672/%2f,amqp://guest:guest@10.0.0.2:5672/%2f)";
    let entries: Vec<&str> = herald_queue::connect::split_urls(urls).collect();
    for (i, entry) in entries.iter().enumerate() {
        match Url::parse(entry) {
            Ok(u) if matches!(u.scheme(), "amqp" | "amqps") && u.host_str().is_some() => {}
            _ if entries.len() > 1 => {
                return Err(bad(
                    "HERALD_AMQP_URL",
                    format!("entry {} of the list is not a URL: {EXAMPLE}", i + 1),
                ));
            }
            _ => return Err(bad("HERALD_AMQP_URL", EXAMPLE)),
        }
    }
    herald_queue::connect::parse_urls(urls)
        .map(drop)
        .map_err(|e| bad("HERALD_AMQP_URL", format!("is not usable: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_local_services() {
        let s = load(&[]).unwrap();
        assert_eq!(s.environment, Environment::Development);
        assert_eq!(s.amqp_url.expose_secret(), DEFAULT_AMQP_URL);
        assert_eq!(s.database_url.expose_secret(), DEFAULT_DATABASE_URL);
        assert!(s.smtp_url.is_none());
        assert_eq!(s.default_locale.to_string(), "en");
        assert_eq!(s.max_attempts, 10);
        assert_eq!(s.retry_delays, herald_queue::topology::DEFAULT_RETRY_DELAYS);
        let mailer = herald_smtp::MailerOptions::default();
        assert_eq!(
            (s.smtp_pool_size, s.smtp_timeout),
            (mailer.pool_size, mailer.timeout)
        );
        assert_eq!(s.message_id_domain(), "localhost");
    }

    #[test]
    fn each_bad_value_names_its_variable() {
        for (var, value) in [
            ("HERALD_AMQP_URL", "http://nope"),
            ("HERALD_DATABASE_URL", "mysql://x/y"),
            ("HERALD_SMTP_URL", "ftp://mail"),
            ("HERALD_PUBLIC_URL", "not a url"),
            ("HERALD_DEFAULT_LOCALE", "!!"),
            ("HERALD_ALLOWED_CUSTOM_DOMAINS", "ok.example.com,bad domain"),
            ("HERALD_FROM", "nobody"),
            ("HERALD_TICKET_SECRET", "too-short"),
            ("HERALD_MFA_KEY", "too-short"),
            (
                "HERALD_MFA_PREVIOUS_KEYS",
                "an-old-key-of-more-than-32-bytes-0123456789, short",
            ),
            ("HERALD_TRUSTED_PROXIES", "10.0.0.0/8, lb.internal"),
            ("HERALD_MAX_ATTEMPTS", "0"),
            ("HERALD_PREFETCH", "lots"),
            ("HERALD_RETRY_DELAYS", "5s,forever"),
            ("HERALD_SMTP_TIMEOUT", "0s"),
            ("HERALD_LOG_FORMAT", "xml"),
            ("HERALD_EMAIL_TRACEPARENT", "maybe"),
            ("HERALD_METRICS_ADDR", "localhost"),
            ("HERALD_TEMPLATES_DIR", "/definitely/not/here"),
            ("HERALD_REGISTRY_CACHE_TTL", "soon"),
            ("HERALD_LEDGER_BATCH", "0"),
            ("HERALD_ENV", "prod"),
            ("HERALD_SMTP_ALLOW_PLAINTEXT_AUTH", "yes"),
            ("HERALD_SMTP_URL", "smtp://mail.example.com?tls=yes"),
            ("HERALD_RETRY_DELAYS", "5s,5000ms"),
        ] {
            let err = load(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var, "{value}");
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }

    #[test]
    fn the_amqp_url_may_list_the_nodes_of_a_cluster() {
        let list = "amqp://guest:guest@127.0.0.1:5701/%2f, amqp://guest:guest@127.0.0.1:5702/%2f";
        assert_eq!(
            load(&[("HERALD_AMQP_URL", list)])
                .unwrap()
                .amqp_url
                .expose_secret(),
            list
        );
        for bad_list in [
            // An entry that is not an AMQP URL, an empty entry.
            "amqp://guest:guest@127.0.0.1:5701/%2f,http://127.0.0.1:5702",
            "amqp://guest:guest@127.0.0.1:5701/%2f,,amqp://guest:guest@127.0.0.1:5702/%2f",
            // Nodes of one cluster share credentials and vhost.
            "amqp://guest:guest@127.0.0.1:5701/%2f,amqp://guest:s3cret@127.0.0.1:5702/%2f",
            "amqp://guest:guest@127.0.0.1:5701/%2f,amqp://guest:guest@127.0.0.1:5702/other",
        ] {
            let err = load(&[("HERALD_AMQP_URL", bad_list)]).unwrap_err();
            assert_eq!(err.var, "HERALD_AMQP_URL", "{bad_list}");
            assert!(!err.to_string().contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn the_registry_cache_defaults_to_five_seconds_and_zero_turns_it_off() {
        assert_eq!(
            load(&[]).unwrap().registry_cache_ttl,
            Duration::from_secs(5)
        );
        for off in ["0", "0s", "off"] {
            let s = load(&[("HERALD_REGISTRY_CACHE_TTL", off)]).unwrap();
            assert_eq!(s.registry_cache_ttl, Duration::ZERO, "{off}");
        }
        let s = load(&[("HERALD_REGISTRY_CACHE_TTL", "30s")]).unwrap();
        assert_eq!(s.registry_cache_ttl, Duration::from_secs(30));
    }

    #[test]
    fn the_metrics_address_defaults_to_loopback_and_can_be_turned_off() {
        let default = load(&[]).unwrap().metrics_addr;
        assert_eq!(default, Some(DEFAULT_METRICS_ADDR.parse().unwrap()));
        let set = load(&[("HERALD_METRICS_ADDR", "0.0.0.0:9100")]).unwrap();
        assert_eq!(set.metrics_addr, Some("0.0.0.0:9100".parse().unwrap()));
        assert_eq!(
            load(&[("HERALD_METRICS_ADDR", "off")])
                .unwrap()
                .metrics_addr,
            None
        );
        let err = load(&[("HERALD_METRICS_ADDR", "9464")]).unwrap_err();
        assert_eq!(err.var, "HERALD_METRICS_ADDR");
    }

    #[test]
    fn a_send_may_take_the_smtp_timeout_plus_a_margin() {
        let defaults = load(&[]).unwrap();
        assert_eq!(defaults.send_timeout(), Duration::from_secs(35));
        assert_eq!(defaults.lease, Duration::from_secs(10));
        let slow = load(&[("HERALD_SMTP_TIMEOUT", "2m"), ("HERALD_SEND_LEASE", "3s")]).unwrap();
        assert_eq!(slow.send_timeout(), Duration::from_secs(125));
    }

    #[test]
    fn a_lease_outside_2s_to_10m_is_refused() {
        for lease in ["1s", "500ms", "11m"] {
            let err = load(&[("HERALD_SEND_LEASE", lease)]).unwrap_err();
            assert_eq!(err.var, "HERALD_SEND_LEASE", "{lease}");
            assert!(err.to_string().starts_with("HERALD_SEND_LEASE "), "{err}");
        }
        assert!(load(&[("HERALD_SEND_LEASE", "2s")]).is_ok());
    }

    #[test]
    fn the_http_settings_have_defaults_and_are_checked() {
        let s = load(&[]).unwrap();
        assert_eq!(s.http_addr, DEFAULT_HTTP_ADDR.parse().unwrap());
        assert_eq!((s.api_rate_limit, s.api_max_body_bytes), (50, 65_536));
        for (var, value) in [
            ("HERALD_HTTP_ADDR", "8080"),
            ("HERALD_API_RATE_LIMIT", "0"),
            ("HERALD_API_MAX_BODY_BYTES", "12"),
        ] {
            let err = load(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }

    #[test]
    fn a_jwt_secret_needs_an_issuer_and_an_audience() {
        let secret = (
            "HERALD_JWT_HS256_SECRET",
            "0123456789abcdef0123456789abcdef",
        );
        assert_eq!(load(&[secret]).unwrap_err().var, "HERALD_JWT_ISSUER");
        assert_eq!(
            load(&[secret, ("HERALD_JWT_ISSUER", "https://idp.test/")])
                .unwrap_err()
                .var,
            "HERALD_JWT_AUDIENCE"
        );
        let short = load(&[("HERALD_JWT_HS256_SECRET", "short")]).unwrap_err();
        assert_eq!(short.var, "HERALD_JWT_HS256_SECRET");
        let s = load(&[
            secret,
            ("HERALD_JWT_ISSUER", "https://idp.test/"),
            ("HERALD_JWT_AUDIENCE", "https://herald.test/api/v2/"),
        ])
        .unwrap();
        assert!(s.jwt_hs256_secret.is_some());
        assert!(!format!("{s:?}").contains("0123456789abcdef0123"));
    }

    #[test]
    fn a_jwks_url_is_https_or_plain_http_to_this_machine() {
        let claims = [
            ("HERALD_JWT_ISSUER", "https://idp.test/"),
            ("HERALD_JWT_AUDIENCE", "https://herald.test/api/v2/"),
        ];
        let with = |url: &'static str| {
            let mut vars = vec![("HERALD_JWT_JWKS_URL", url)];
            vars.extend(claims);
            load(&vars)
        };
        for ok in [
            "https://tenant.eu.auth0.com/.well-known/jwks.json",
            "http://127.0.0.1:8081/jwks.json",
            "http://[::1]:8081/jwks.json",
            "http://localhost/jwks.json",
        ] {
            let s = with(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(s.jwt_jwks_url.unwrap().as_str(), ok);
        }
        for (bad_url, says) in [
            ("http://idp.example.com/.well-known/jwks.json", "https://"),
            (
                "http://10.0.0.5/jwks.json",
                "only accepted for this machine",
            ),
            ("ftp://idp.example.com/jwks.json", "got a ftp: URL"),
            ("not a url", "must be an https:// URL"),
        ] {
            let err = with(bad_url).unwrap_err();
            assert_eq!(err.var, "HERALD_JWT_JWKS_URL", "{bad_url}");
            let text = err.to_string();
            assert!(
                text.starts_with("HERALD_JWT_JWKS_URL must") && text.contains(says),
                "{bad_url}: {text}"
            );
        }
        // It needs the claims every JWT is checked against, as the HS256 secret does.
        let alone = [("HERALD_JWT_JWKS_URL", "https://idp.test/jwks.json")];
        assert_eq!(load(&alone).unwrap_err().var, "HERALD_JWT_ISSUER");
        let mut no_audience = alone.to_vec();
        no_audience.push(claims[0]);
        assert_eq!(load(&no_audience).unwrap_err().var, "HERALD_JWT_AUDIENCE");
        // Both key kinds at once.
        let mut both = vec![
            ("HERALD_JWT_JWKS_URL", "https://idp.test/jwks.json"),
            (
                "HERALD_JWT_HS256_SECRET",
                "0123456789abcdef0123456789abcdef",
            ),
        ];
        both.extend(claims);
        let s = load(&both).unwrap();
        assert!(s.jwt_jwks_url.is_some() && s.jwt_hs256_secret.is_some());
    }

    #[test]
    fn an_issuer_without_a_key_is_refused_rather_than_ignored() {
        let err = load(&[("HERALD_JWT_ISSUER", "https://idp.test/")]).unwrap_err();
        assert_eq!(err.var, "HERALD_JWT_ISSUER");
        assert!(err.to_string().contains("HERALD_JWT_JWKS_URL"), "{err}");
        let err = load(&[("HERALD_JWT_AUDIENCE", "https://herald.test/api/v2/")]).unwrap_err();
        assert_eq!(err.var, "HERALD_JWT_AUDIENCE");
    }

    #[test]
    fn custom_domains_are_normalised() {
        let s = load(&[(
            "HERALD_ALLOWED_CUSTOM_DOMAINS",
            " Login.Acme.com , id.beta.io ",
        )])
        .unwrap();
        assert_eq!(
            s.allowed_custom_domains,
            vec!["login.acme.com", "id.beta.io"]
        );
    }

    #[test]
    fn retry_delays_the_topology_would_refuse_are_refused_at_startup() {
        // Each of these used to pass Settings, then failed Topology::validate inside every
        // broker session, so the worker reconnected for minutes as if RabbitMQ were down.
        for delays in ["5s,5000ms", "1m,60s,2m", "100500us", "5s,30s,30s"] {
            let err = load(&[("HERALD_RETRY_DELAYS", delays)]).unwrap_err();
            assert_eq!(err.var, "HERALD_RETRY_DELAYS", "{delays}");
            assert!(err.to_string().starts_with("HERALD_RETRY_DELAYS "), "{err}");
        }
        let s = load(&[("HERALD_RETRY_DELAYS", "500ms,5s,1h")]).unwrap();
        s.topology().validate().unwrap();
        assert_eq!(s.topology().retry_delays, s.retry_delays);
    }

    #[test]
    fn smtp_urls_the_mailer_would_refuse_are_refused_at_startup() {
        for url in [
            "smtp://mail.example.com?pool=3",
            "smtps://mail.example.com?tls=required",
            "smtp://user@mail.example.com",
            "file:///",
            "smtp://user:hunter2@mail.example.com",
        ] {
            let err = load(&[("HERALD_SMTP_URL", url)]).unwrap_err();
            assert_eq!(err.var, "HERALD_SMTP_URL", "{url}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn plain_text_smtp_auth_to_a_remote_host_needs_an_explicit_yes() {
        let url = (
            "HERALD_SMTP_URL",
            "smtp://user:hunter2@mail.example.com:2525",
        );
        let err = load(&[url]).unwrap_err();
        assert_eq!(err.var, "HERALD_SMTP_URL");
        assert!(
            err.to_string()
                .contains("HERALD_SMTP_ALLOW_PLAINTEXT_AUTH=true"),
            "{err}"
        );
        let s = load(&[url, ("HERALD_SMTP_ALLOW_PLAINTEXT_AUTH", "true")]).unwrap();
        assert!(s.mailer_options().allow_plaintext_auth);
        // A local relay needs no TLS.
        load(&[("HERALD_SMTP_URL", "smtp://user:hunter2@127.0.0.1:1025")]).unwrap();
        load(&[("HERALD_SMTP_URL", "smtp://user:hunter2@localhost:1025")]).unwrap();
        load(&[("HERALD_SMTP_URL", "smtp://user:hunter2@[::1]:1025")]).unwrap();
    }

    #[test]
    fn an_amqps_url_is_refused_because_this_build_has_no_amqp_tls() {
        let err = load(&[(
            "HERALD_AMQP_URL",
            "amqps://guest:s3cret@mq.example.com:5671/%2f",
        )])
        .unwrap_err();
        assert_eq!(err.var, "HERALD_AMQP_URL");
        assert!(err.to_string().contains("amqps://"), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn debug_output_shows_no_password() {
        let s = load(&[
            (
                "HERALD_AMQP_URL",
                "amqp://herald:amqp-s3cret@127.0.0.1:5672/%2f",
            ),
            (
                "HERALD_DATABASE_URL",
                "postgres://herald:db-s3cret@127.0.0.1:5432/herald",
            ),
            (
                "HERALD_SMTP_URL",
                "smtps://herald:smtp-s3cret@mail.example.com",
            ),
            (
                "HERALD_TICKET_SECRET",
                "ticket-s3cret-0123456789abcdef0123456789",
            ),
            (
                "HERALD_MFA_KEY",
                "mfa-key-s3cret-0123456789abcdef0123456789",
            ),
        ])
        .unwrap();
        let config = crate::application::worker_config(&s, herald_domain::TicketSecret::random());
        for shown in [format!("{s:?}"), format!("{s:#?}"), format!("{config:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("amqp_url"), "{shown}");
        }
    }

    /// A production configuration that passes; each test below breaks one thing.
    const PRODUCTION: &[(&str, &str)] = &[
        ("HERALD_ENV", "production"),
        (
            "HERALD_TICKET_SECRET",
            "production-secret-0123456789abcdef0123",
        ),
        ("HERALD_PUBLIC_URL", "https://id.acme.com"),
        ("HERALD_FROM", "Acme <no-reply@acme.com>"),
        (
            "HERALD_SMTP_URL",
            "smtp://herald:pw@smtp.acme.com:587?tls=required",
        ),
    ];

    fn production_with(var: &str, value: Option<&str>) -> Result<Settings, SettingsError> {
        let vars: Vec<(&str, &str)> = PRODUCTION
            .iter()
            .copied()
            .filter(|(k, _)| *k != var)
            .chain(value.map(|v| (var, v)))
            .collect();
        load(&vars)
    }

    #[test]
    fn a_sound_production_configuration_is_accepted() {
        let s = load(PRODUCTION).unwrap();
        assert_eq!(s.environment, Environment::Production);
        // A relay on this machine may be plain text, and an outbox directory is local.
        production_with("HERALD_SMTP_URL", Some("smtp://127.0.0.1:25")).unwrap();
        production_with("HERALD_SMTP_URL", Some("smtps://smtp.acme.com")).unwrap();
        production_with("HERALD_SMTP_URL", Some("file:///var/spool/herald")).unwrap();
        // The same local defaults are fine in development.
        load(&[("HERALD_ENV", "development")]).unwrap();
    }

    #[test]
    fn production_refuses_a_random_ticket_secret() {
        let err = production_with("HERALD_TICKET_SECRET", None).unwrap_err();
        assert_eq!(err.var, "HERALD_TICKET_SECRET");
        assert!(err.to_string().contains("HERALD_ENV=production"), "{err}");
    }

    #[test]
    fn production_refuses_a_local_or_plain_http_public_url() {
        for url in [
            None,
            Some("http://localhost:8080"),
            Some("https://localhost"),
            Some("https://id.localhost"),
            Some("https://127.0.0.1:8443"),
            Some("https://[::1]"),
            Some("http://id.acme.com"),
        ] {
            let err = production_with("HERALD_PUBLIC_URL", url).unwrap_err();
            assert_eq!(err.var, "HERALD_PUBLIC_URL", "{url:?}");
            assert!(err.to_string().contains("HERALD_ENV=production"), "{err}");
        }
    }

    #[test]
    fn production_refuses_a_localhost_sender() {
        for from in [
            None,
            Some("no-reply@localhost"),
            Some("Herald <no-reply@herald.localhost>"),
        ] {
            let err = production_with("HERALD_FROM", from).unwrap_err();
            assert_eq!(err.var, "HERALD_FROM", "{from:?}");
            assert!(err.to_string().contains("HERALD_ENV=production"), "{err}");
        }
    }

    #[test]
    fn production_refuses_plain_text_smtp_to_a_remote_host() {
        for url in [
            "smtp://smtp.acme.com:25",
            "smtp://smtp.acme.com?tls=opportunistic",
            "smtp://herald:pw@smtp.acme.com:2525",
        ] {
            let err = production_with("HERALD_SMTP_URL", Some(url)).unwrap_err();
            assert_eq!(err.var, "HERALD_SMTP_URL", "{url}");
            assert!(!err.to_string().contains(":pw@"), "{err}");
        }
        // Even when plain-text AUTH is allowed, production wants the mail itself encrypted.
        let mut vars = PRODUCTION.to_vec();
        vars.retain(|(k, _)| *k != "HERALD_SMTP_URL");
        vars.push(("HERALD_SMTP_URL", "smtp://herald:pw@smtp.acme.com:2525"));
        vars.push(("HERALD_SMTP_ALLOW_PLAINTEXT_AUTH", "true"));
        let err = load(&vars).unwrap_err();
        assert_eq!(err.var, "HERALD_SMTP_URL");
        assert!(err.to_string().contains("HERALD_ENV=production"), "{err}");
    }
}
