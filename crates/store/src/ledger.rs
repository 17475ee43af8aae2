//! The job ledger and tickets: one row per job id, its single ticket, and the job's history.
//!
//! `begin_attempt` is the idempotency gate. In one transaction it records the job (the id is the
//! primary key), refuses a different job under a known id (the row keeps a SHA-256 of the job's
//! canonical payload, and a delivery with another digest is answered [`BeginOutcome::Conflict`]
//! without touching the row), refuses duplicates of finished jobs, takes a short lease so two
//! deliveries of the same job cannot send at once, and creates or re-derives the job's one ticket. The token itself is
//! never stored: only its SHA-256 and the salt it is derived from (see `herald_domain::ticket`).
//!
//! A lease names its holder ([`Lease::owner`], one per worker process) and is short: the holder
//! renews it while it works on the job ([`Store::renew_leases`]), so the leases of a worker that
//! died run out within one lease length and its jobs go to the survivors.

use std::time::Duration;

use herald_domain::{TicketPurpose, TicketSecret, TicketToken, TokenHash, TokenSalt};
use serde::Serialize;
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Store;
use crate::error::StoreError;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Queued,
    Sending,
    Sent,
    Retrying,
    Dead,
    /// Not sent: the template of its kind is disabled (`enabled: false`).
    Skipped,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Sending => "sending",
            JobStatus::Sent => "sent",
            JobStatus::Retrying => "retrying",
            JobStatus::Dead => "dead",
            JobStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            JobStatus::Queued,
            JobStatus::Sending,
            JobStatus::Sent,
            JobStatus::Retrying,
            JobStatus::Dead,
            JobStatus::Skipped,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// What the ledger needs to know about a job that is about to be attempted.
///
/// Serialized as is (one jsonb value) for `herald_begin_attempt`, which reads its fields by the
/// `email_jobs` column names: a new field is added here and where that function stores it.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub recipient: &'a str,
    pub user_id: &'a str,
    pub organization_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub locale: &'a str,
    pub message_id: &'a str,
    pub payload: &'a serde_json::Value,
}

/// The ticket a job issues, as stored (everything the redeeming pages will need).
///
/// Serialized as is (one jsonb value) for `herald_begin_attempt`, which reads its fields by the
/// `tickets` column names: a new field is added here and where that function stores it.
#[derive(Debug, Clone, Serialize)]
pub struct TicketSpec<'a> {
    #[serde(serialize_with = "purpose_name")]
    pub purpose: TicketPurpose,
    pub user_id: &'a str,
    pub email: &'a str,
    pub client_id: Option<&'a str>,
    pub organization_id: Option<&'a str>,
    pub result_url: Option<&'a str>,
    pub include_email_in_redirect: bool,
    pub mark_email_as_verified: bool,
    pub factor: Option<&'a str>,
    pub allow_multiple_enrollments: bool,
    pub custom_domain: Option<&'a str>,
    #[serde(rename = "ttl_us", serialize_with = "micros")]
    pub ttl: Duration,
}

impl<'a> TicketSpec<'a> {
    /// The ticket a job issues, from the job's own fields (`None` for a welcome email): the
    /// worker's and the Management API's one rule for what goes into a ticket.
    pub fn for_job(job: &'a herald_domain::EmailJob) -> Option<Self> {
        use herald_domain::JobSpec;
        let purpose = job.kind().ticket_purpose()?;
        let options = job.ticket()?;
        let (mark_email_as_verified, factor, allow_multiple_enrollments) = match &job.spec {
            JobSpec::PasswordChange {
                mark_email_as_verified,
                ..
            } => (*mark_email_as_verified, None, false),
            JobSpec::Enrollment {
                factor,
                allow_multiple_enrollments,
                ..
            } => (
                false,
                factor.map(|f| f.as_str()),
                *allow_multiple_enrollments,
            ),
            _ => (false, None, false),
        };
        Some(TicketSpec {
            purpose,
            user_id: job.user.user_id.as_str(),
            email: job.user.email.as_str(),
            client_id: job.client_id.as_ref().map(|c| c.as_str()),
            organization_id: job.organization_id.as_ref().map(|o| o.as_str()),
            result_url: options.result_url.as_ref().map(|u| u.as_str()),
            include_email_in_redirect: options.include_email_in_redirect,
            mark_email_as_verified,
            factor,
            allow_multiple_enrollments,
            custom_domain: job.custom_domain.as_deref(),
            ttl: Duration::from_secs(options.ttl_sec),
        })
    }
}

fn purpose_name<S: serde::Serializer>(p: &TicketPurpose, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The lease a delivery takes on its job in [`Store::begin_attempt`]: how long it holds without
/// renewal, and who holds it (the worker process, so that it renews only its own leases).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub length: Duration,
    pub owner: Uuid,
}

impl Lease {
    /// A lease of `length` for a new holder.
    pub fn new(length: Duration) -> Self {
        Lease {
            length,
            owner: Uuid::new_v4(),
        }
    }
}

/// A lease of that length for a holder of its own (tests and one-off callers).
impl From<Duration> for Lease {
    fn from(length: Duration) -> Self {
        Lease::new(length)
    }
}

/// A job's ticket with its token rebuilt for this attempt.
#[derive(Debug, Clone)]
pub struct IssuedTicket {
    pub id: Uuid,
    pub token: TicketToken,
    pub expires_at: OffsetDateTime,
    /// True when this attempt created the ticket; false when it was already there.
    pub created: bool,
}

/// The answer of [`Store::begin_attempt`].
#[derive(Debug, Clone)]
pub enum BeginOutcome {
    /// Go ahead: this is attempt number `attempt` (1-based).
    Proceed {
        attempt: u32,
        ticket: Option<IssuedTicket>,
    },
    /// The job was already delivered; this delivery is a duplicate.
    AlreadySent,
    /// The job was already dead-lettered; this delivery is a duplicate.
    AlreadyDead,
    /// The job was recorded dead, but the broker never confirmed its dead-letter copy: this
    /// delivery must file it (copy it to the dead-letter queue with its reason), not drop it.
    DeadUnfiled {
        attempts: u32,
        reason: String,
        error: String,
    },
    /// Another delivery of the same job holds the lease until `until`, which is `left` from now
    /// by the database's clock.
    Busy {
        until: OffsetDateTime,
        left: Duration,
        attempts: u32,
    },
    /// The ledger knows a different job (another payload digest) under this id. Nothing of that
    /// job was changed; this delivery must not be sent (it would borrow the other job's ticket).
    Conflict,
}

/// A job as the ledger knows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LedgerJob {
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub dead_reason: Option<String>,
    pub recipient: Option<String>,
    pub user_id: Option<String>,
    pub organization_id: Option<String>,
    pub client_id: Option<String>,
    pub locale: Option<String>,
    pub message_id: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub sent_at: Option<OffsetDateTime>,
}

/// One line of a job's history.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobEvent {
    pub attempt: i32,
    pub event: String,
    pub detail: Option<String>,
    pub at: OffsetDateTime,
}

/// A stored ticket (never the token).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredTicket {
    pub id: Uuid,
    /// `None` for a ticket the Management API issued without a job.
    pub job_id: Option<String>,
    pub token_hash: Vec<u8>,
    pub purpose: String,
    pub user_id: String,
    pub email: String,
    pub client_id: Option<String>,
    pub organization_id: Option<String>,
    pub result_url: Option<String>,
    pub include_email_in_redirect: bool,
    pub mark_email_as_verified: bool,
    pub factor: Option<String>,
    pub allow_multiple_enrollments: bool,
    pub custom_domain: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
}

pub(crate) const TICKET_COLUMNS: &str = "id, job_id, token_hash, purpose, user_id, email, client_id, \
     organization_id, result_url, include_email_in_redirect, mark_email_as_verified, factor, \
     allow_multiple_enrollments, custom_domain, created_at, expires_at, used_at";

const JOB_COLUMNS: &str = "id, type, status, attempts, last_error, dead_reason, recipient, \
     user_id, organization_id, client_id, locale, message_id, created_at, updated_at, sent_at";

pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The ticket an attempt offers to create if its job has none: id, salt and the token derived
/// from them. Prepared in Rust because the token comes from the secret, which never goes to the
/// database.
pub(crate) type FreshTicket = (Uuid, TokenSalt, TicketToken);

pub(crate) fn fresh_ticket(secret: &TicketSecret) -> FreshTicket {
    let salt = TokenSalt::random();
    let token = secret.derive(&salt);
    (Uuid::now_v7(), salt, token)
}

/// A job record or ticket spec as the jsonb value `herald_begin_attempt` reads. (It cannot fail
/// for these types, whose keys are strings and which hold no floats, but it is not hidden.)
pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value)
        .map_err(|e| StoreError::Invalid(format!("could not serialize a ledger record: {e}")))
}

/// The ticket object `herald_begin_attempt` takes: the spec's fields (already serialized) and
/// the fresh ticket's id, token hash and salt (hex, decoded by the function).
pub(crate) fn ticket_json(spec: &serde_json::Value, fresh: &FreshTicket) -> serde_json::Value {
    let (id, salt, token) = fresh;
    let mut ticket = spec.clone();
    if let Some(fields) = ticket.as_object_mut() {
        fields.insert("id".into(), id.to_string().into());
        fields.insert("token_hash".into(), hex(token.hash().as_bytes()).into());
        fields.insert("token_salt".into(), hex(salt.as_bytes()).into());
    }
    ticket
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

pub(crate) fn pg_interval(d: Duration) -> sqlx::postgres::types::PgInterval {
    sqlx::postgres::types::PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
    }
}

impl Store {
    /// Records an attempt at a job and issues (or rebuilds) its ticket, atomically.
    ///
    /// `min_attempt` is the attempt number the message itself claims (its retry header plus one),
    /// so attempts are still counted when an earlier attempt could not reach the database.
    pub async fn begin_attempt(
        &self,
        job: &JobRecord<'_>,
        ticket: Option<&TicketSpec<'_>>,
        secret: &TicketSecret,
        lease: impl Into<Lease>,
        min_attempt: u32,
    ) -> Result<BeginOutcome, StoreError> {
        let job = to_json(job)?;
        let ticket = ticket.map(to_json).transpose()?;
        self.begin_json(job, ticket.as_ref(), secret, lease.into(), min_attempt)
            .await
    }

    /// [`Store::begin_attempt`] with the job and ticket spec already serialized.
    pub(crate) async fn begin_json(
        &self,
        job: serde_json::Value,
        ticket: Option<&serde_json::Value>,
        secret: &TicketSecret,
        lease: Lease,
        min_attempt: u32,
    ) -> Result<BeginOutcome, StoreError> {
        let job_id = job.get("id").and_then(|v| v.as_str()).map(str::to_owned);
        // The ticket this attempt creates if the job has none yet: prepared here because the
        // token is derived from the secret, which never goes to the database.
        let fresh = ticket.map(|_| fresh_ticket(secret));
        let ticket = ticket.zip(fresh.as_ref()).map(|(t, f)| ticket_json(t, f));
        let row = sqlx::query(
            "SELECT r_outcome, r_attempt, r_lease_until, r_ticket_id, r_token_salt, r_token_hash, \
             r_expires_at, r_ticket_created, r_lease_left_ms \
             FROM herald_begin_attempt($1, $2, $3, $4, $5)",
        )
        .bind(job)
        .bind(ticket)
        .bind(pg_interval(lease.length))
        .bind(i32::try_from(min_attempt).unwrap_or(i32::MAX))
        .bind(lease.owner)
        .fetch_one(self.pool())
        .await?;
        self.finish_begin(job_id.as_deref().unwrap_or_default(), &row, fresh, secret)
            .await
    }

    /// Turns a row of `herald_begin_attempt` into the outcome, rebuilding the token of a ticket an
    /// earlier attempt created. `fresh` is the ticket this attempt offered (id, salt, token).
    pub(crate) async fn finish_begin(
        &self,
        job_id: &str,
        row: &sqlx::postgres::PgRow,
        fresh: Option<FreshTicket>,
        secret: &TicketSecret,
    ) -> Result<BeginOutcome, StoreError> {
        let outcome: String = row.try_get("r_outcome")?;
        let attempt = u32::try_from(row.try_get::<i32, _>("r_attempt")?).unwrap_or(0);
        match outcome.as_str() {
            "sent" => return Ok(BeginOutcome::AlreadySent),
            "dead" => return Ok(BeginOutcome::AlreadyDead),
            "dead_unfiled" => return self.dead_unfiled(job_id, attempt).await,
            "conflict" => return Ok(BeginOutcome::Conflict),
            "busy" => {
                let left_ms: i64 = row.try_get("r_lease_left_ms")?;
                return Ok(BeginOutcome::Busy {
                    until: row.try_get("r_lease_until")?,
                    left: Duration::from_millis(u64::try_from(left_ms).unwrap_or(0)),
                    attempts: attempt,
                });
            }
            _ => {}
        }
        let issued = match fresh {
            None => None,
            Some((_, _, token)) => {
                let id: Uuid = row.try_get("r_ticket_id")?;
                let expires_at: OffsetDateTime = row.try_get("r_expires_at")?;
                let created: bool = row.try_get("r_ticket_created")?;
                let token = if created {
                    token
                } else {
                    let salt: Vec<u8> = row.try_get("r_token_salt")?;
                    let stored: Vec<u8> = row.try_get("r_token_hash")?;
                    self.rebuild_token(id, &salt, &stored, secret).await?
                };
                Some(IssuedTicket {
                    id,
                    token,
                    expires_at,
                    created,
                })
            }
        };
        Ok(BeginOutcome::Proceed {
            attempt,
            ticket: issued,
        })
    }

    /// Issues a ticket that no job stands behind (the Management API's `POST /tickets/*`): a
    /// fresh token derived from `secret`, of which only the hash and salt are stored.
    ///
    /// With `job_id`, the ticket is that (recorded, not yet published) job's: the worker then
    /// finds it when it begins the job and rebuilds the same link from its salt.
    pub async fn issue_ticket(
        &self,
        spec: &TicketSpec<'_>,
        secret: &TicketSecret,
        job_id: Option<&str>,
    ) -> Result<IssuedTicket, StoreError> {
        let (id, salt, token) = fresh_ticket(secret);
        let expires_at: OffsetDateTime = sqlx::query_scalar(
            "INSERT INTO tickets (id, job_id, token_hash, token_salt, purpose, user_id, email, \
             client_id, organization_id, result_url, include_email_in_redirect, \
             mark_email_as_verified, factor, allow_multiple_enrollments, custom_domain, expires_at) \
             VALUES ($1, $16, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
             now() + $15) RETURNING expires_at",
        )
        .bind(id)
        .bind(token.hash().as_bytes())
        .bind(salt.as_bytes())
        .bind(spec.purpose.as_str())
        .bind(spec.user_id)
        .bind(spec.email)
        .bind(spec.client_id)
        .bind(spec.organization_id)
        .bind(spec.result_url)
        .bind(spec.include_email_in_redirect)
        .bind(spec.mark_email_as_verified)
        .bind(spec.factor)
        .bind(spec.allow_multiple_enrollments)
        .bind(spec.custom_domain)
        .bind(pg_interval(spec.ttl))
        .bind(job_id)
        .fetch_one(self.pool())
        .await?;
        Ok(IssuedTicket {
            id,
            token,
            expires_at,
            created: true,
        })
    }

    /// Records a job the Management API is about to publish, as `queued`, so that `GET
    /// /jobs/{id}` knows it before a worker takes it. The worker's `begin_attempt` then finds the
    /// same payload (digest) under the id and carries on. Returns the job's `created_at` (the
    /// existing row's, unchanged, if the id is known).
    pub async fn record_queued_job(
        &self,
        job: &herald_domain::EmailJob,
    ) -> Result<OffsetDateTime, StoreError> {
        let payload = to_json(&job.to_record())?;
        let created_at = sqlx::query_scalar(
            "WITH new AS (INSERT INTO email_jobs (id, type, status, recipient, user_id, \
             organization_id, client_id, payload) VALUES ($1, $2, 'queued', $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO NOTHING RETURNING created_at) \
             SELECT created_at FROM new UNION ALL \
             SELECT created_at FROM email_jobs WHERE id = $1 LIMIT 1",
        )
        .bind(job.id.as_str())
        .bind(job.kind().type_name())
        .bind(job.user.email.as_str())
        .bind(job.user.user_id.as_str())
        .bind(job.organization_id.as_ref().map(|o| o.as_str()))
        .bind(job.client_id.as_ref().map(|c| c.as_str()))
        .bind(payload)
        .fetch_one(self.pool())
        .await?;
        Ok(created_at)
    }

    /// Removes a job recorded by [`Store::record_queued_job`] whose publish failed, with its
    /// ticket, as long as no worker has taken it.
    pub async fn forget_unpublished_job(&self, job_id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let queued: Option<String> = sqlx::query_scalar(
            "SELECT status FROM email_jobs WHERE id = $1 AND status = 'queued' FOR UPDATE",
        )
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
        if queued.is_some() {
            sqlx::query("DELETE FROM tickets WHERE job_id = $1")
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM email_jobs WHERE id = $1")
                .bind(job_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The reason and error a dead job was recorded with, for filing its dead letter again.
    /// (A rare path: only after the broker failed between recording a death and confirming its
    /// copy.)
    async fn dead_unfiled(&self, job_id: &str, attempts: u32) -> Result<BeginOutcome, StoreError> {
        let row = sqlx::query("SELECT dead_reason, last_error FROM email_jobs WHERE id = $1")
            .bind(job_id)
            .fetch_one(self.pool())
            .await?;
        let reason: Option<String> = row.try_get("dead_reason")?;
        let error: Option<String> = row.try_get("last_error")?;
        Ok(BeginOutcome::DeadUnfiled {
            attempts,
            reason: reason.unwrap_or_else(|| "unknown".to_owned()),
            error: error.unwrap_or_default(),
        })
    }

    /// The broker confirmed the dead-letter copy of the job, which died of `reason`: a later
    /// delivery of it is a duplicate. (A job is only marked when it is recorded dead of that
    /// reason, so a copy refused as `id_conflict`, which is never recorded, marks nothing.)
    pub async fn mark_dead_lettered(&self, job_id: &str, reason: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE email_jobs SET dead_lettered_at = now() \
             WHERE id = $1 AND status = 'dead' AND dead_reason = $2",
        )
        .bind(job_id)
        .bind(reason)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Extends the leases `owner` holds on `job_ids` by `length` from now, and returns how many
    /// it extended. A job that was finished meanwhile, or whose lease ran out and was taken by
    /// another delivery, is left alone. One statement whatever the number of jobs.
    pub async fn renew_leases(
        &self,
        owner: Uuid,
        job_ids: &[String],
        length: Duration,
    ) -> Result<u64, StoreError> {
        if job_ids.is_empty() {
            return Ok(0);
        }
        let renewed = sqlx::query(
            "UPDATE email_jobs SET lease_until = now() + $3 \
             WHERE id = ANY($1) AND lease_owner = $2 AND status = 'sending'",
        )
        .bind(job_ids)
        .bind(owner)
        .bind(pg_interval(length))
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(renewed)
    }

    /// The token of a ticket an earlier attempt created, rebuilt from its salt. If the ticket
    /// secret changed since (e.g. a restart without HERALD_TICKET_SECRET), the old link cannot be
    /// rebuilt, so the ticket rotates to a new token. No email carrying the old link was accepted,
    /// or the job would not be attempted again; this attempt holds the job's lease.
    async fn rebuild_token(
        &self,
        ticket_id: Uuid,
        salt: &[u8],
        stored: &[u8],
        secret: &TicketSecret,
    ) -> Result<TicketToken, StoreError> {
        if let Some(salt) = TokenSalt::from_slice(salt) {
            let token = secret.derive(&salt);
            if token.hash().as_bytes() == stored {
                return Ok(token);
            }
        }
        let salt = TokenSalt::random();
        let token = secret.derive(&salt);
        sqlx::query("UPDATE tickets SET token_salt = $2, token_hash = $3 WHERE id = $1")
            .bind(ticket_id)
            .bind(salt.as_bytes())
            .bind(token.hash().as_bytes())
            .execute(self.pool())
            .await?;
        Ok(token)
    }

    /// The SMTP server accepted the email.
    pub async fn mark_sent(
        &self,
        job_id: &str,
        attempt: u32,
        reply: &str,
    ) -> Result<(), StoreError> {
        // One statement, so one round trip and still one transaction.
        sqlx::query(
            "WITH sent AS (UPDATE email_jobs SET status = 'sent', sent_at = now(), \
             lease_until = NULL, last_error = NULL, updated_at = now() WHERE id = $1 RETURNING id) \
             INSERT INTO job_events (job_id, attempt, event, detail) \
             SELECT id, $2, 'sent', $3 FROM sent",
        )
        .bind(job_id)
        .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
        .bind(truncate(reply, 500))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The attempt failed transiently; the job waits `delay` in a retry queue. A job the ledger
    /// does not know yet, or that was sent meanwhile, is left as it is, and so is a different
    /// job under the same id: when `payload` is given, only a row with its digest is updated.
    pub async fn mark_retrying(
        &self,
        job_id: &str,
        attempt: u32,
        error: &str,
        delay: Duration,
        payload: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE email_jobs SET status = 'retrying', last_error = $2, lease_until = NULL, \
             updated_at = now() WHERE id = $1 AND status <> 'sent' \
             AND ($3::jsonb IS NULL OR payload_digest = herald_payload_digest($3::jsonb))",
        )
        .bind(job_id)
        .bind(truncate(error, 2000))
        .bind(payload)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // A job that failed before its first attempt was recorded (say, its organization could
        // not be read) has no row yet: there is no history to add to, and the retried delivery
        // will create it.
        if updated == 0 {
            return Ok(());
        }
        let detail = format!(
            "{}; next attempt in {}",
            truncate(error, 480),
            humanize(delay)
        );
        insert_event(&mut tx, job_id, attempt, "retrying", Some(&detail)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The job was dead-lettered. Works for jobs never seen before (refused at parse time, when
    /// their id could still be read) and never overwrites a job that was already sent. When
    /// `payload` is given it never overwrites a different job under the same id either (another
    /// payload digest): that job's row stays as it was. `None` means "this id, whatever its body"
    /// (an operator restoring a job's dead state).
    pub async fn mark_dead(
        &self,
        job_id: &str,
        kind: &str,
        attempt: u32,
        reason: &str,
        error: &str,
        payload: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "INSERT INTO email_jobs (id, type, status, attempts, last_error, dead_reason, payload) \
             VALUES ($1, $2, 'dead', $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET status = 'dead', last_error = EXCLUDED.last_error, \
             dead_lettered_at = NULL, \
             dead_reason = EXCLUDED.dead_reason, lease_until = NULL, updated_at = now(), \
             attempts = GREATEST(email_jobs.attempts, EXCLUDED.attempts) \
             WHERE email_jobs.status <> 'sent' AND ($6::jsonb IS NULL \
             OR email_jobs.payload_digest = herald_payload_digest($6::jsonb))",
        )
        .bind(job_id)
        .bind(kind)
        .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
        .bind(truncate(error, 2000))
        .bind(reason)
        .bind(payload)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated > 0 {
            let detail = format!("{reason}: {}", truncate(error, 480));
            insert_event(&mut tx, job_id, attempt, "dead", Some(&detail)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Another delivery held the job's lease; this one was put back on a retry queue.
    pub async fn mark_deferred(
        &self,
        job_id: &str,
        attempt: u32,
        detail: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        insert_event(&mut tx, job_id, attempt, "deferred", Some(detail)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a job that is not sent because its template is disabled: status `skipped`, with
    /// a `skipped` event saying why. A job already taken further (sent, dead, or being sent
    /// under a live lease) or recorded under this id with another payload is left as it is;
    /// returns whether the job was recorded skipped.
    pub async fn mark_skipped(
        &self,
        record: &JobRecord<'_>,
        detail: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let attempts: Option<i32> = sqlx::query_scalar(
            "INSERT INTO email_jobs AS j (id, type, status, recipient, user_id, organization_id, \
             client_id, locale, message_id, payload) \
             VALUES ($1, $2, 'skipped', $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (id) DO UPDATE SET status = 'skipped', locale = EXCLUDED.locale, \
                 message_id = EXCLUDED.message_id, updated_at = now() \
             WHERE (j.status IN ('queued', 'retrying', 'skipped') \
                    OR (j.status = 'sending' AND j.lease_until <= now())) \
               AND j.payload_digest IS NOT DISTINCT FROM herald_payload_digest(EXCLUDED.payload) \
             RETURNING attempts",
        )
        .bind(record.id)
        .bind(record.kind)
        .bind(record.recipient)
        .bind(record.user_id)
        .bind(record.organization_id)
        .bind(record.client_id)
        .bind(record.locale)
        .bind(record.message_id)
        .bind(record.payload)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(attempts) = attempts else {
            tx.commit().await?;
            return Ok(false);
        };
        let attempts = u32::try_from(attempts).unwrap_or(0);
        insert_event(&mut tx, record.id, attempts, "skipped", Some(detail)).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Reopens a dead job so that a replayed copy of its message is attempted again: status
    /// `queued`, no lease, no dead reason, and a `replayed` event in its history. The attempt
    /// count and last error are kept, so the history stays whole (a job that died of
    /// `max_attempts` therefore gets a single attempt per replay).
    ///
    /// Returns `false`, changing nothing, when the job is unknown or not `dead`: a sent job must
    /// not be sent again, and a queued or retrying one is already on its way.
    pub async fn reopen_for_replay(&self, job_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query(
            "SELECT attempts, dead_reason FROM email_jobs WHERE id = $1 AND status = 'dead' \
             FOR UPDATE",
        )
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(false);
        };
        let attempts = u32::try_from(row.try_get::<i32, _>("attempts")?).unwrap_or(0);
        let dead_reason: Option<String> = row.try_get("dead_reason")?;
        sqlx::query(
            "UPDATE email_jobs SET status = 'queued', lease_until = NULL, dead_reason = NULL, \
             dead_lettered_at = NULL, \
             updated_at = now() WHERE id = $1",
        )
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        let detail = format!(
            "replayed from the dead-letter queue (was dead: {})",
            dead_reason.as_deref().unwrap_or("no reason recorded")
        );
        insert_event(&mut tx, job_id, attempts, "replayed", Some(&detail)).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn job(&self, job_id: &str) -> Result<Option<LedgerJob>, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM email_jobs WHERE id = $1");
        Ok(sqlx::query_as::<_, LedgerJob>(sqlx::AssertSqlSafe(sql))
            .bind(job_id)
            .fetch_optional(self.pool())
            .await?)
    }

    pub async fn job_events(&self, job_id: &str) -> Result<Vec<JobEvent>, StoreError> {
        Ok(sqlx::query_as::<_, JobEvent>(
            "SELECT attempt, event, detail, at FROM job_events WHERE job_id = $1 ORDER BY id",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?)
    }

    pub async fn ticket_for_job(&self, job_id: &str) -> Result<Option<StoredTicket>, StoreError> {
        let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE job_id = $1");
        Ok(sqlx::query_as::<_, StoredTicket>(sqlx::AssertSqlSafe(sql))
            .bind(job_id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Looks a ticket up by the hash of a presented token (what the redeeming pages will do).
    pub async fn ticket_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<StoredTicket>, StoreError> {
        let sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE token_hash = $1");
        Ok(sqlx::query_as::<_, StoredTicket>(sqlx::AssertSqlSafe(sql))
            .bind(hash.as_bytes())
            .fetch_optional(self.pool())
            .await?)
    }

    /// How many jobs are in each status.
    pub async fn job_status_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT status, count(*) AS n FROM email_jobs GROUP BY status ORDER BY status",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect()
    }
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    job_id: &str,
    attempt: u32,
    event: &str,
    detail: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO job_events (job_id, attempt, event, detail) VALUES ($1, $2, $3, $4)")
        .bind(job_id)
        .bind(i32::try_from(attempt).unwrap_or(i32::MAX))
        .bind(event)
        .bind(detail)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

fn humanize(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
