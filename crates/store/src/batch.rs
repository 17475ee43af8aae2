//! Batched ledger writes (group commit): many deliveries' `begin_attempt`, or many `mark_sent`,
//! in one statement, so one round trip and one commit serve them all.
//!
//! Each job keeps the guarantees of the single-job calls: its steps are the same and all or
//! nothing, because a statement commits whole. If a batch statement fails, nothing of it was
//! written and every job in it is tried again on its own, so one job's error reaches that job
//! only and a batch never half-applies. (If the statement committed but its answer cannot be
//! read, the jobs are tried alone too; their leases make that safe, see `begin_batch`.) Batches
//! are sorted by job id, so two batches lock rows in one order and cannot deadlock each other.

use std::time::Duration;

use futures::future::join_all;
use herald_domain::{TicketPurpose, TicketSecret};
use sqlx::Row;

use crate::Store;
use crate::error::StoreError;
use crate::ledger::{
    BeginOutcome, FreshTicket, JobRecord, TicketSpec, fresh_ticket, pg_interval, truncate,
};

/// One delivery's `begin_attempt`, owned so it can wait in a batch.
#[derive(Debug, Clone)]
pub struct BeginRequest {
    pub id: String,
    pub kind: String,
    pub recipient: String,
    pub user_id: String,
    pub organization_id: Option<String>,
    pub client_id: Option<String>,
    pub locale: String,
    pub message_id: String,
    pub payload: serde_json::Value,
    /// The attempt number the message claims (its retry header plus one).
    pub min_attempt: u32,
    pub ticket: Option<TicketRequest>,
}

/// The ticket a job issues; the owned form of [`TicketSpec`].
#[derive(Debug, Clone)]
pub struct TicketRequest {
    pub purpose: TicketPurpose,
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
    pub ttl: Duration,
}

impl BeginRequest {
    pub fn new(job: &JobRecord<'_>, ticket: Option<&TicketSpec<'_>>, min_attempt: u32) -> Self {
        let owned = |s: Option<&str>| s.map(str::to_owned);
        BeginRequest {
            id: job.id.to_owned(),
            kind: job.kind.to_owned(),
            recipient: job.recipient.to_owned(),
            user_id: job.user_id.to_owned(),
            organization_id: owned(job.organization_id),
            client_id: owned(job.client_id),
            locale: job.locale.to_owned(),
            message_id: job.message_id.to_owned(),
            payload: job.payload.clone(),
            min_attempt,
            ticket: ticket.map(|t| TicketRequest {
                purpose: t.purpose,
                user_id: t.user_id.to_owned(),
                email: t.email.to_owned(),
                client_id: owned(t.client_id),
                organization_id: owned(t.organization_id),
                result_url: owned(t.result_url),
                include_email_in_redirect: t.include_email_in_redirect,
                mark_email_as_verified: t.mark_email_as_verified,
                factor: owned(t.factor),
                allow_multiple_enrollments: t.allow_multiple_enrollments,
                custom_domain: owned(t.custom_domain),
                ttl: t.ttl,
            }),
        }
    }

    fn record(&self) -> JobRecord<'_> {
        JobRecord {
            id: &self.id,
            kind: &self.kind,
            recipient: &self.recipient,
            user_id: &self.user_id,
            organization_id: self.organization_id.as_deref(),
            client_id: self.client_id.as_deref(),
            locale: &self.locale,
            message_id: &self.message_id,
            payload: &self.payload,
        }
    }

    fn spec(&self) -> Option<TicketSpec<'_>> {
        self.ticket.as_ref().map(|t| TicketSpec {
            purpose: t.purpose,
            user_id: &t.user_id,
            email: &t.email,
            client_id: t.client_id.as_deref(),
            organization_id: t.organization_id.as_deref(),
            result_url: t.result_url.as_deref(),
            include_email_in_redirect: t.include_email_in_redirect,
            mark_email_as_verified: t.mark_email_as_verified,
            factor: t.factor.as_deref(),
            allow_multiple_enrollments: t.allow_multiple_enrollments,
            custom_domain: t.custom_domain.as_deref(),
            ttl: t.ttl,
        })
    }
}

/// One delivery's `mark_sent`.
#[derive(Debug, Clone)]
pub struct SentRequest {
    pub id: String,
    pub attempt: u32,
    pub reply: String,
}

fn attempt_number(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl Store {
    /// [`Store::begin_attempt`] for each request, in one statement when there are several.
    /// The results are in the order of `requests`.
    pub async fn begin_attempts(
        &self,
        requests: &[BeginRequest],
        secret: &TicketSecret,
        lease: Duration,
    ) -> Vec<Result<BeginOutcome, StoreError>> {
        if requests.len() > 1 {
            match self.begin_batch(requests, secret, lease).await {
                Ok(outcomes) => return outcomes,
                Err(e) => tracing::debug!(
                    error = %e,
                    jobs = requests.len(),
                    "A batch of attempts failed, or its answer could not be read; trying each \
                     job on its own."
                ),
            }
        }
        join_all(requests.iter().map(|r| self.begin_one(r, secret, lease))).await
    }

    /// One request through [`Store::begin_attempt`].
    pub async fn begin_one(
        &self,
        request: &BeginRequest,
        secret: &TicketSecret,
        lease: Duration,
    ) -> Result<BeginOutcome, StoreError> {
        let record = request.record();
        let spec = request.spec();
        self.begin_attempt(&record, spec.as_ref(), secret, lease, request.min_attempt)
            .await
    }

    /// The batch statement. Ok holds each job's own outcome, including a failed token rebuild.
    ///
    /// Err comes from one of two places. If the statement itself failed, nothing was written
    /// (it rolled back whole). If its answer could not be read (a row count or `r_index` that
    /// does not fit, a column that does not decode), the statement had already committed: every
    /// job in it was begun, with its lease taken and its ticket created. Trying each job again
    /// on its own is still safe then, since a job whose lease is held is answered `Busy` and
    /// deferred until the lease runs out, so nothing is sent twice; it costs those jobs one
    /// counted attempt and a delay of about one lease.
    async fn begin_batch(
        &self,
        requests: &[BeginRequest],
        secret: &TicketSecret,
        lease: Duration,
    ) -> Result<Vec<Result<BeginOutcome, StoreError>>, StoreError> {
        let mut order: Vec<usize> = (0..requests.len()).collect();
        order.sort_by(|a, b| requests[*a].id.cmp(&requests[*b].id));
        let mut fresh: Vec<Option<FreshTicket>> = order
            .iter()
            .map(|i| requests[*i].ticket.as_ref().map(|_| fresh_ticket(secret)))
            .collect();

        let sorted = || order.iter().map(|i| &requests[*i]);
        let ticket = |f: &dyn Fn(&TicketRequest) -> Option<String>| -> Vec<Option<String>> {
            sorted().map(|r| r.ticket.as_ref().and_then(f)).collect()
        };
        let flag = |f: &dyn Fn(&TicketRequest) -> bool| -> Vec<Option<bool>> {
            sorted().map(|r| r.ticket.as_ref().map(f)).collect()
        };
        let rows = sqlx::query(
            "SELECT r_index, r_outcome, r_attempt, r_lease_until, r_ticket_id, r_token_salt, \
             r_token_hash, r_expires_at, r_ticket_created FROM herald_begin_attempts($1, $2, $3, \
             $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
             $22, $23, $24, $25, $26)",
        )
        .bind(sorted().map(|r| r.id.clone()).collect::<Vec<_>>())
        .bind(sorted().map(|r| r.kind.clone()).collect::<Vec<_>>())
        .bind(sorted().map(|r| r.recipient.clone()).collect::<Vec<_>>())
        .bind(sorted().map(|r| r.user_id.clone()).collect::<Vec<_>>())
        .bind(
            sorted()
                .map(|r| r.organization_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind(sorted().map(|r| r.client_id.clone()).collect::<Vec<_>>())
        .bind(sorted().map(|r| r.locale.clone()).collect::<Vec<_>>())
        .bind(sorted().map(|r| r.message_id.clone()).collect::<Vec<_>>())
        .bind(sorted().map(|r| r.payload.to_string()).collect::<Vec<_>>())
        .bind(pg_interval(lease))
        .bind(
            sorted()
                .map(|r| attempt_number(r.min_attempt))
                .collect::<Vec<_>>(),
        )
        .bind(
            fresh
                .iter()
                .map(|f| f.as_ref().map(|t| t.0))
                .collect::<Vec<_>>(),
        )
        .bind(
            fresh
                .iter()
                .map(|f| f.as_ref().map(|t| t.2.hash().as_bytes().to_vec()))
                .collect::<Vec<_>>(),
        )
        .bind(
            fresh
                .iter()
                .map(|f| f.as_ref().map(|t| t.1.as_bytes().to_vec()))
                .collect::<Vec<_>>(),
        )
        .bind(ticket(&|t| Some(t.purpose.as_str().to_owned())))
        .bind(ticket(&|t| Some(t.user_id.clone())))
        .bind(ticket(&|t| Some(t.email.clone())))
        .bind(ticket(&|t| t.client_id.clone()))
        .bind(ticket(&|t| t.organization_id.clone()))
        .bind(ticket(&|t| t.result_url.clone()))
        .bind(flag(&|t| t.include_email_in_redirect))
        .bind(flag(&|t| t.mark_email_as_verified))
        .bind(ticket(&|t| t.factor.clone()))
        .bind(flag(&|t| t.allow_multiple_enrollments))
        .bind(ticket(&|t| t.custom_domain.clone()))
        .bind(
            sorted()
                .map(|r| {
                    r.ticket
                        .as_ref()
                        .map(|t| i64::try_from(t.ttl.as_micros()).unwrap_or(i64::MAX))
                })
                .collect::<Vec<_>>(),
        )
        .fetch_all(self.pool())
        .await?;
        if rows.len() != requests.len() {
            return Err(StoreError::Invalid(format!(
                "herald_begin_attempts answered {} rows for {} jobs",
                rows.len(),
                requests.len()
            )));
        }

        let mut outcomes: Vec<Option<Result<BeginOutcome, StoreError>>> =
            (0..requests.len()).map(|_| None).collect();
        for row in &rows {
            let position = usize::try_from(row.try_get::<i32, _>("r_index")?)
                .ok()
                .and_then(|i| i.checked_sub(1))
                .filter(|i| *i < order.len())
                .ok_or_else(|| StoreError::Invalid("herald_begin_attempts: bad r_index".into()))?;
            let offered = fresh[position].take();
            outcomes[order[position]] = Some(self.finish_begin(row, offered, secret).await);
        }
        Ok(outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(StoreError::Invalid(
                        "herald_begin_attempts left a job without an answer".into(),
                    ))
                })
            })
            .collect())
    }

    /// [`Store::mark_sent`] for each request, in one statement when there are several. The
    /// results are in the order of `requests`.
    pub async fn mark_sent_many(&self, requests: &[SentRequest]) -> Vec<Result<(), StoreError>> {
        if requests.len() > 1 {
            let mut sorted: Vec<&SentRequest> = requests.iter().collect();
            sorted.sort_by(|a, b| a.id.cmp(&b.id));
            let done = sqlx::query(
                "WITH done AS (SELECT * FROM unnest($1::text[], $2::int[], $3::text[]) \
                 AS d(id, attempt, reply)), \
                 sent AS (UPDATE email_jobs j SET status = 'sent', sent_at = now(), \
                 lease_until = NULL, last_error = NULL, updated_at = now() FROM done \
                 WHERE j.id = done.id RETURNING j.id) \
                 INSERT INTO job_events (job_id, attempt, event, detail) \
                 SELECT done.id, done.attempt, 'sent', done.reply FROM done JOIN sent USING (id)",
            )
            .bind(sorted.iter().map(|r| r.id.clone()).collect::<Vec<_>>())
            .bind(
                sorted
                    .iter()
                    .map(|r| attempt_number(r.attempt))
                    .collect::<Vec<_>>(),
            )
            .bind(
                sorted
                    .iter()
                    .map(|r| truncate(&r.reply, 500).to_owned())
                    .collect::<Vec<_>>(),
            )
            .execute(self.pool())
            .await;
            match done {
                Ok(_) => return requests.iter().map(|_| Ok(())).collect(),
                Err(e) => tracing::debug!(
                    error = %e,
                    jobs = requests.len(),
                    "A batch of sent records failed; recording each job on its own."
                ),
            }
        }
        join_all(
            requests
                .iter()
                .map(|r| self.mark_sent(&r.id, r.attempt, &r.reply)),
        )
        .await
    }
}
