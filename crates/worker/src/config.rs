//! What a worker needs to know, already parsed and validated. Only `herald-app` builds it (from
//! its `Settings`, where every default lives), so there is one set of defaults.

use std::time::Duration;

use herald_domain::{Locale, TicketSecret};
use herald_queue::Topology;
use lettre::message::Mailbox;
use secrecy::SecretString;
use url::Url;

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// HERALD_AMQP_URL: it holds the broker password, so Debug and logs never show it.
    pub amqp_url: SecretString,
    pub topology: Topology,
    /// Unacked deliveries per worker; also the number of jobs processed concurrently.
    pub prefetch: u16,
    /// Attempts before a transiently failing job is dead-lettered (reason `max_attempts`).
    pub max_attempts: u32,
    /// Bodies over this size are dead-lettered unread (reason `body_too_large`).
    pub max_job_bytes: usize,
    /// Base of ticket links when a job names no (allowed) custom domain.
    pub public_url: Url,
    pub allowed_custom_domains: Vec<String>,
    pub default_locale: Locale,
    /// `From` for jobs whose organization has no address of its own.
    pub default_from: Mailbox,
    /// Shown as the sender brand when a job has no organization.
    pub friendly_name: String,
    /// Auth0's `support_email` and `support_url`, for Liquid email templates.
    pub support_email: Option<String>,
    pub support_url: Option<String>,
    /// Right-hand side of `Message-ID: <{job id}@{domain}>`.
    pub message_id_domain: String,
    pub ticket_secret: TicketSecret,
    /// How long a delivery holds its job's lease without renewal, so a concurrent duplicate
    /// waits instead of sending twice. The worker renews it every quarter of itself while it
    /// works on the job, so it bounds how long a dead worker's jobs wait, not how long a send
    /// may take.
    pub lease: Duration,
    /// Upper bound on one SMTP send (connect + transaction).
    pub send_timeout: Duration,
    /// How long a stopping worker waits for in-flight jobs before it exits anyway.
    pub shutdown_timeout: Duration,
    /// Copy a job's W3C `traceparent` (from its AMQP headers) into the email's headers.
    pub propagate_traceparent: bool,
    /// How long organizations, clients and template overrides are cached; zero turns it off.
    pub registry_cache_ttl: Duration,
    /// The most deliveries whose ledger writes share one statement (group commit); 1 turns
    /// batching off.
    pub ledger_batch: usize,
    /// How many jobs may be between "the send started" and "the ledger recorded it sent" at
    /// once: HERALD_SMTP_POOL_SIZE. A crash re-sends exactly those jobs, so this bounds the
    /// duplicates a crash can cause.
    pub send_slots: usize,
}
