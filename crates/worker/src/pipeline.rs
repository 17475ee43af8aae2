//! One job, start to finish: parse, look up, record the attempt and ticket, render, send, record.
//!
//! `Pipeline::handle` never panics on input and never talks to AMQP: it returns an [`Outcome`] and
//! the consumer carries it out (ack, retry copy, or dead-letter copy).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use herald_domain::{
    EmailJob, JobError, JobKind, TemplateName, TraceParent, Unset, negotiate, ticket_base,
};
use herald_render::{LiquidExtras, Renderer, UserProfile};
use herald_smtp::{Delivered, Mailer};
use herald_store::{
    BeginOutcome, BeginRequest, Client, EmailTemplate, JobRecord, Organization, SentRequest, Store,
    StoreError, TemplateSyntax, TicketSpec,
};
use time::OffsetDateTime;
use tracing::{Instrument, info, warn};

use crate::compose::{compose_traced, message_id};
use crate::config::WorkerConfig;
use crate::context::email_context;
use crate::leases::HeldLeases;
use crate::ledger_batch::LedgerBatcher;
use crate::outcome::{Failure, Outcome, decide, known_reason};
use crate::registry_cache::RegistryCache;

/// A delivery as the pipeline sees it.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub body: &'a [u8],
    /// Attempts made before this delivery, from the message's retry header.
    pub failed_attempts: u32,
    /// The W3C trace context upstream put on the message, if any (and valid).
    pub traceparent: Option<&'a TraceParent>,
}

#[derive(Debug)]
pub struct Pipeline {
    pub store: Store,
    pub renderer: Arc<Renderer>,
    pub mailer: Mailer,
    pub config: WorkerConfig,
    registry: RegistryCache,
    batcher: OnceLock<LedgerBatcher>,
    leases: HeldLeases,
    /// Held from before a send until the ledger records it sent (see `WorkerConfig::send_slots`).
    send_slots: Arc<tokio::sync::Semaphore>,
}

impl Pipeline {
    pub fn new(
        store: Store,
        renderer: Arc<Renderer>,
        mailer: Mailer,
        config: WorkerConfig,
    ) -> Self {
        Self {
            registry: RegistryCache::new(config.registry_cache_ttl),
            send_slots: Arc::new(tokio::sync::Semaphore::new(config.send_slots.max(1))),
            batcher: OnceLock::new(),
            leases: HeldLeases::new(config.lease),
            store,
            renderer,
            mailer,
            config,
        }
    }

    pub async fn handle(&self, msg: Incoming<'_>) -> Outcome {
        self.handle_typed(msg).await.0
    }

    /// [`Pipeline::handle`], also returning the job's `type` (for metrics), or
    /// [`crate::metrics::INVALID_TYPE`] when the body is not a valid job.
    pub async fn handle_typed(&self, msg: Incoming<'_>) -> (Outcome, &'static str) {
        let job = match EmailJob::parse(msg.body, self.config.max_job_bytes) {
            Ok(job) => job,
            Err(e) => {
                // An oversize body is not read any further: not parsed for its id, not stored.
                let readable = !matches!(e, JobError::TooLarge { .. });
                let failure = Failure::Job(e);
                warn!(reason = %failure, "Refused an invalid job.");
                let attempts = msg.failed_attempts + 1;
                let outcome = decide(&failure, attempts, 1, Duration::ZERO, None, now());
                if readable && let Some(id) = EmailJob::peek_id(msg.body) {
                    let payload = serde_json::from_slice::<serde_json::Value>(msg.body).ok();
                    self.record_dead(id.as_str(), "invalid", &outcome, payload.as_ref())
                        .await;
                }
                return (outcome, crate::metrics::INVALID_TYPE);
            }
        };
        let span = tracing::info_span!("job", job_id = %job.id, kind = %job.kind());
        let outcome = self.handle_job(&job, msg).instrument(span).await;
        (outcome, job.kind().type_name())
    }

    async fn handle_job(&self, job: &EmailJob, msg: Incoming<'_>) -> Outcome {
        let header_attempt = msg.failed_attempts + 1;
        let prepared = match self.prepare(job).await {
            Ok(p) => p,
            Err(failure) => return self.fail(job, &failure, header_attempt, None).await,
        };
        let Prepared {
            client,
            base,
            locale,
            message_id,
            tenant,
            ..
        } = &prepared;

        // The ledger's copy: a code email's code is redacted there (`EmailJob::to_record`).
        let payload = serde_json::to_value(job.to_record()).unwrap_or(serde_json::Value::Null);
        let kind = job.kind();
        let record = JobRecord {
            id: job.id.as_str(),
            kind: kind.type_name(),
            recipient: job.user.email.as_str(),
            user_id: job.user.user_id.as_str(),
            organization_id: job.organization_id.as_ref().map(|o| o.as_str()),
            client_id: job.client_id.as_ref().map(|c| c.as_str()),
            locale: &locale.to_string(),
            message_id,
            payload: &payload,
        };
        if let Some(t) = tenant
            && !t.enabled
        {
            return self.skip(job, &record, header_attempt).await;
        }
        // The tenant template's ticket defaults fill what the job left out. The ledger keeps
        // the job as it arrived (`payload`), so a template edited between two deliveries of one
        // job is not mistaken for a different job under the same id.
        let with_defaults;
        let ticket_job = match tenant {
            Some(t) if job.ticket().is_some_and(|o| o.unset != Unset::default()) => {
                match self.store.ticket_defaults(t, client.as_ref()).await {
                    Ok(defaults) => {
                        let mut j = job.clone();
                        j.apply_ticket_defaults(&defaults);
                        with_defaults = j;
                        &with_defaults
                    }
                    Err(e) => {
                        return self
                            .fail(job, &Failure::Store(e), header_attempt, None)
                            .await;
                    }
                }
            }
            _ => job,
        };
        let ticket_spec = TicketSpec::for_job(ticket_job);
        let begun = self
            .begin_attempt(&record, ticket_spec.as_ref(), header_attempt)
            .await;
        let (attempt, ticket, _lease) = match begun {
            Ok(BeginOutcome::Proceed { attempt, ticket }) => {
                // Renewed from now until this function returns, whatever it returns.
                let lease = self.leases.hold(&self.store, job.id.as_str());
                (attempt, ticket, lease)
            }
            Ok(BeginOutcome::DeadUnfiled {
                attempts,
                reason,
                error,
            }) => {
                warn!(
                    reason = %reason,
                    "The job was recorded dead but its dead letter was never confirmed; filing it."
                );
                return Outcome::DeadLetter {
                    reason: known_reason(&reason),
                    error,
                    attempts,
                };
            }
            Ok(BeginOutcome::AlreadySent | BeginOutcome::AlreadyDead) => {
                info!("Ignored a duplicate delivery of a finished job.");
                return Outcome::Duplicate;
            }
            Ok(BeginOutcome::Conflict) => {
                // Not recorded: the ledger's row under this id belongs to the other job.
                warn!(
                    reason = "id_conflict",
                    "A different job is already recorded under this id; dead-lettering this one \
                     unsent."
                );
                let failure = Failure::IdConflict;
                return decide(
                    &failure,
                    header_attempt,
                    self.config.max_attempts,
                    Duration::ZERO,
                    None,
                    now(),
                );
            }
            Ok(BeginOutcome::Busy {
                until,
                left,
                attempts,
            }) => {
                // Wait what the lease has left (at least a moment, at most one lease: a longer
                // answer would come from a worker configured with a longer lease).
                let wait = left.clamp(MIN_DEFER, self.config.lease);
                info!(%until, wait = ?wait, "Another delivery of this job is in progress; deferring this one.");
                let detail = format!(
                    "another delivery holds the job until {until}; waiting {:.1}s",
                    wait.as_secs_f64()
                );
                if let Err(e) = self
                    .store
                    .mark_deferred(job.id.as_str(), attempts, &detail)
                    .await
                {
                    warn!(error = %e, "Could not record the deferral.");
                }
                return Outcome::Defer { attempts, wait };
            }
            Err(e) => {
                return self
                    .fail(job, &Failure::Store(e), header_attempt, None)
                    .await;
            }
        };
        if let (Some(t), Some(purpose)) = (&ticket, kind.ticket_purpose())
            && t.created
        {
            crate::metrics::record_ticket_issued(purpose);
        }
        let expires_at = ticket.as_ref().map(|t| t.expires_at);
        if expires_at.is_some_and(|e| e <= now()) {
            return self
                .fail(job, &Failure::TicketExpired, attempt, expires_at)
                .await;
        }

        let url = match (&ticket, kind.ticket_purpose()) {
            (Some(t), Some(purpose)) => Some(purpose.url(base, &t.token).to_string()),
            // The welcome email's sign-in button; a code email has no link.
            _ if kind == JobKind::Welcome => client.as_ref().and_then(|c| c.login_uri.clone()),
            _ => None,
        };
        // A job re-sent after a crash is one whose send started and was not yet recorded; the
        // slot spans both, so a crash re-sends at most `send_slots` jobs. (Without it, a send
        // the SMTP server accepted frees its pooled connection for the next one while its
        // ledger write is still waiting for the group commit.)
        let Ok(_slot) = self.send_slots.acquire().await else {
            unreachable!("the send slots are never closed")
        };
        match self
            .render_and_send(
                job,
                &prepared,
                url,
                expires_at,
                msg.traceparent
                    .filter(|_| self.config.propagate_traceparent),
            )
            .await
        {
            Ok(delivered) => {
                let reply = match &delivered {
                    Delivered::Smtp { reply } => reply.clone(),
                    Delivered::File { path } => format!("written to {}", path.display()),
                };
                info!(attempt, %message_id, "Delivered the email.");
                self.record_sent(job.id.as_str(), attempt, &reply).await;
                Outcome::Sent { attempt }
            }
            Err(failure) => self.fail(job, &failure, attempt, expires_at).await,
        }
    }

    /// The ledger's idempotency gate, through the batcher unless batching is off.
    async fn begin_attempt(
        &self,
        record: &JobRecord<'_>,
        spec: Option<&TicketSpec<'_>>,
        min_attempt: u32,
    ) -> Result<BeginOutcome, StoreError> {
        match self.batcher() {
            Some(batcher) => {
                batcher
                    .begin(BeginRequest::new(record, spec, min_attempt))
                    .await
            }
            None => {
                self.store
                    .begin_attempt(
                        record,
                        spec,
                        &self.config.ticket_secret,
                        self.leases.lease(),
                        min_attempt,
                    )
                    .await
            }
        }
    }

    async fn mark_sent(&self, job_id: &str, attempt: u32, reply: &str) -> Result<(), StoreError> {
        match self.batcher() {
            Some(batcher) => {
                batcher
                    .mark_sent(SentRequest {
                        id: job_id.to_owned(),
                        attempt,
                        reply: reply.to_owned(),
                    })
                    .await
            }
            None => self.store.mark_sent(job_id, attempt, reply).await,
        }
    }

    /// The group-commit task, started on first use (so on the runtime that handles jobs); `None`
    /// when `ledger_batch` is 1.
    fn batcher(&self) -> Option<&LedgerBatcher> {
        (self.config.ledger_batch > 1).then(|| {
            self.batcher.get_or_init(|| {
                LedgerBatcher::spawn(
                    self.store.clone(),
                    self.config.ticket_secret.clone(),
                    self.leases.lease(),
                    self.config.ledger_batch,
                )
            })
        })
    }

    async fn prepare(&self, job: &EmailJob) -> Result<Prepared, Failure> {
        let base = ticket_base(
            job.custom_domain.as_deref(),
            &self.config.allowed_custom_domains,
            &self.config.public_url,
        )
        .map_err(Failure::CustomDomainNotAllowed)?;
        let organization = match &job.organization_id {
            None => None,
            Some(id) => Some(
                self.registry
                    .organization(&self.store, id.as_str())
                    .await?
                    .ok_or_else(|| Failure::UnknownOrganization(id.to_string()))?,
            ),
        };
        let client = match &job.client_id {
            None => None,
            Some(id) => Some(
                self.registry
                    .client(&self.store, id.as_str())
                    .await?
                    .ok_or_else(|| Failure::UnknownClient(id.to_string()))?,
            ),
        };
        let locale = negotiate(
            [
                job.email_locale.as_deref(),
                job.user.locale.as_deref(),
                organization
                    .as_ref()
                    .and_then(|o| o.default_locale.as_deref()),
            ],
            self.renderer.available_locales(),
            &self.config.default_locale,
        );
        let tenant = self
            .registry
            .email_template(&self.store, job.kind().template())
            .await?;
        Ok(Prepared {
            organization,
            client,
            base,
            tenant,
            locale,
            message_id: message_id(&job.id, &self.config.message_id_domain),
        })
    }

    async fn render_and_send(
        &self,
        job: &EmailJob,
        prepared: &Prepared,
        url: Option<String>,
        ticket_expires_at: Option<OffsetDateTime>,
        traceparent: Option<&TraceParent>,
    ) -> Result<Delivered, Failure> {
        let organization = prepared.organization.as_ref();
        let client = prepared.client.as_ref();
        let locale = &prepared.locale;
        let message_id = prepared.message_id.as_str();
        let template: TemplateName = job.kind().template();
        let stored = self
            .registry
            .template_override(
                &self.store,
                template,
                organization.map(|o| o.id.as_str()),
                client.map(|c| c.id.as_str()),
                &locale.to_string(),
            )
            .await?;
        let ctx = email_context(
            job,
            organization,
            client,
            url,
            ticket_expires_at,
            now(),
            &self.config.friendly_name,
        );
        let started = Instant::now();
        let rendered = match (stored.as_ref(), prepared.tenant.as_deref()) {
            // An organization's or client's override ranks above the tenant's template.
            (None, Some(tenant))
                if tenant.body.is_some() || tenant.subject.is_some() || tenant.from.is_some() =>
            {
                let extras = self.liquid_extras(job, prepared, tenant).await?;
                crate::render_step::render_tenant(
                    &self.renderer,
                    template,
                    locale,
                    &ctx,
                    tenant,
                    &extras,
                )
            }
            _ => crate::render_step::render_email(
                &self.store,
                &self.renderer,
                template,
                locale,
                &ctx,
                stored.as_ref(),
            )
            .await
            .map(|email| (email, None)),
        };
        crate::metrics::record_render(started.elapsed());
        let (rendered, tenant_from) = rendered?;
        let from = organization
            .and_then(|o| o.from_address.as_deref())
            .or(tenant_from.as_deref())
            .and_then(|a| match a.parse() {
                Ok(mailbox) => Some(mailbox),
                Err(e) => {
                    warn!(error = %e, "The organization's or template's from address does not parse; using the default.");
                    None
                }
            })
            .unwrap_or_else(|| self.config.default_from.clone());
        let message = compose_traced(
            &from,
            job.user.name.as_deref(),
            job.user.email.as_str(),
            message_id,
            &job.id,
            &rendered,
            traceparent,
        )
        .map_err(Failure::Compose)?;
        let started = Instant::now();
        let sent = tokio::time::timeout(self.config.send_timeout, self.mailer.send(&message)).await;
        let result = match &sent {
            Ok(Ok(_)) => "ok",
            Ok(Err(_)) => "error",
            Err(_) => "timeout",
        };
        crate::metrics::record_send(started.elapsed(), result);
        match sent {
            Ok(result) => Ok(result?),
            Err(_) => Err(Failure::SendTimeout(self.config.send_timeout)),
        }
    }

    /// Auth0's variables a tenant template may use beyond the email context. The user's
    /// profile comes from the user registry (when the user was created through the Management
    /// API); the client's callbacks and the organization's metadata are read only when the
    /// template mentions them.
    async fn liquid_extras(
        &self,
        job: &EmailJob,
        prepared: &Prepared,
        tenant: &EmailTemplate,
    ) -> Result<LiquidExtras, Failure> {
        if tenant.syntax != TemplateSyntax::Liquid {
            return Ok(LiquidExtras::default());
        }
        let mentions = |word: &str| {
            [&tenant.body, &tenant.subject, &tenant.from]
                .into_iter()
                .flatten()
                .any(|s| s.contains(word))
        };
        let profile = self.store.get_user(job.user.user_id.as_str()).await?;
        let callback_domain = match &prepared.client {
            Some(c) if mentions("callback_domain") => self
                .store
                .client_urls(&c.id)
                .await?
                .0
                .first()
                .and_then(|u| url::Url::parse(u).ok())
                .map(|u| u.origin().ascii_serialization()),
            _ => None,
        };
        let organization_metadata = match &prepared.organization {
            Some(o) if mentions("metadata") => Some(self.store.organization_metadata(&o.id).await?),
            _ => None,
        };
        Ok(LiquidExtras {
            connection: profile
                .as_ref()
                .filter(|_| job.kind() != JobKind::Enrollment)
                .map(|p| p.connection.clone()),
            user: profile.map(|p| UserProfile {
                email_verified: p.email_verified,
                given_name: p.given_name,
                family_name: p.family_name,
                nickname: p.nickname,
                picture: p.picture,
                user_metadata: p.user_metadata,
                app_metadata: p.app_metadata,
            }),
            client_id: prepared.client.as_ref().map(|c| c.id.clone()),
            callback_domain,
            organization_metadata,
            support_email: self.config.support_email.clone(),
            support_url: self.config.support_url.clone(),
            custom_domain: job.custom_domain.clone(),
        })
    }

    /// Decides what a failure leads to and records it in the ledger (best effort: the AMQP copy,
    /// made by the consumer afterwards, is what guarantees nothing is lost).
    async fn fail(
        &self,
        job: &EmailJob,
        failure: &Failure,
        attempt: u32,
        ticket_expires_at: Option<OffsetDateTime>,
    ) -> Outcome {
        let (_, delay) = self.config.topology.retry_delay_for_attempt(attempt.max(1));
        let outcome = decide(
            failure,
            attempt,
            self.config.max_attempts,
            delay,
            ticket_expires_at,
            now(),
        );
        // The job's row is only written if it holds this job (same payload digest).
        let payload = serde_json::to_value(job.to_record()).ok();
        match &outcome {
            Outcome::Retry { error, .. } => {
                warn!(attempt, error = %error, retry_in = ?delay, "Delivery failed; will retry.");
                if let Err(e) = self
                    .store
                    .mark_retrying(job.id.as_str(), attempt, error, delay, payload.as_ref())
                    .await
                {
                    warn!(error = %e, "Could not record the retry in the ledger.");
                }
            }
            Outcome::DeadLetter { reason, .. } => {
                warn!(attempt, reason, error = %failure, "Dead-lettering the job.");
                self.record_dead(
                    job.id.as_str(),
                    job.kind().type_name(),
                    &outcome,
                    payload.as_ref(),
                )
                .await;
            }
            _ => {}
        }
        outcome
    }

    /// The broker confirmed the job's dead-letter copy: record it, so that a redelivery is a
    /// duplicate rather than a dead letter to file again. Best effort: a miss costs at most a
    /// second copy of the dead letter.
    /// Records a job whose template the tenant disabled as skipped and acks it unsent.
    async fn skip(&self, job: &EmailJob, record: &JobRecord<'_>, attempt: u32) -> Outcome {
        let detail = format!(
            "not sent: the tenant's {} template is disabled (enabled: false)",
            job.kind().template()
        );
        match self.store.mark_skipped(record, &detail).await {
            Ok(true) => {
                info!("Skipped the job: its template is disabled.");
                Outcome::Skipped
            }
            Ok(false) => {
                info!(
                    "Ignored a delivery of a job already taken further (its template is now disabled)."
                );
                Outcome::Duplicate
            }
            Err(e) => self.fail(job, &Failure::Store(e), attempt, None).await,
        }
    }

    pub async fn record_dead_lettered(&self, body: &[u8], reason: &str) {
        let Some(id) = EmailJob::peek_id(body) else {
            return;
        };
        if let Err(e) = self.store.mark_dead_lettered(id.as_str(), reason).await {
            warn!(error = %e, "Could not record that the dead letter was filed.");
        }
    }

    /// Records a dead letter with the decision's own reason and error, so the ledger says what
    /// the dead letter's headers and the metric say.
    async fn record_dead(
        &self,
        job_id: &str,
        kind: &str,
        outcome: &Outcome,
        payload: Option<&serde_json::Value>,
    ) {
        let Outcome::DeadLetter {
            reason,
            error,
            attempts,
        } = outcome
        else {
            return;
        };
        if let Err(e) = self
            .store
            .mark_dead(job_id, kind, *attempts, reason, error, payload)
            .await
        {
            warn!(error = %e, "Could not record the dead letter in the ledger.");
        }
    }

    /// The email is out: record it, trying a little harder than usual, since a job whose send is
    /// not recorded would be sent again if it were redelivered.
    /// Records that the SMTP server accepted the email. The email is out, so the delivery is
    /// not acked before the ledger says so: while PostgreSQL is unreachable this keeps trying
    /// (every 5 s at most) and holds the delivery, so consumption slows down instead of leaving
    /// the job `sending`. An error retrying cannot fix is given up on after a few tries.
    async fn record_sent(&self, job_id: &str, attempt: u32, reply: &str) {
        let mut wait = Duration::from_millis(100);
        let mut failures = 0u32;
        loop {
            match self.mark_sent(job_id, attempt, reply).await {
                Ok(()) => return,
                Err(e) if !e.is_transient() && failures >= 5 => {
                    warn!(
                        error = %e,
                        "The email was delivered but the ledger refused to record it; the job \
                         stays 'sending'."
                    );
                    return;
                }
                Err(e) => {
                    warn!(error = %e, "Could not record the delivery yet; trying again.");
                    failures += 1;
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

struct Prepared {
    organization: Option<Organization>,
    client: Option<Client>,
    base: url::Url,
    /// The tenant's template of the job's kind (`/email-templates`), if one was created.
    tenant: Option<Arc<EmailTemplate>>,
    locale: herald_domain::Locale,
    message_id: String,
}

/// The shortest a deferred delivery waits, so that a lease about to run out is not polled in a
/// tight loop.
const MIN_DEFER: Duration = Duration::from_millis(250);

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}
