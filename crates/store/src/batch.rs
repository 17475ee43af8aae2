//! Batched ledger writes (group commit): many deliveries' `begin_attempt`, or many `mark_sent`,
//! in one statement, so one round trip and one commit serve them all.
//!
//! Each job keeps the guarantees of the single-job calls: its steps are the same and all or
//! nothing, because a statement commits whole. If a batch statement fails, nothing of it was
//! written and every job in it is tried again on its own, so one job's error reaches that job
//! only and a batch never half-applies. (If the statement committed but its answer cannot be
//! read, the jobs are tried alone too; their leases make that safe, see `begin_batch`.) Batches
//! are sorted by job id, so two batches lock rows in one order and cannot deadlock each other.

use futures::future::join_all;
use herald_domain::TicketSecret;
use sqlx::Row;

use crate::Store;
use crate::error::StoreError;
use crate::ledger::{
    BeginOutcome, FreshTicket, JobRecord, Lease, TicketSpec, fresh_ticket, pg_interval,
    ticket_json, to_json, truncate,
};

/// One delivery's `begin_attempt`, owned so it can wait in a batch: the job record and ticket
/// spec already serialized, as `herald_begin_attempt` takes them.
#[derive(Debug, Clone)]
pub struct BeginRequest {
    pub id: String,
    /// The attempt number the message claims (its retry header plus one).
    pub min_attempt: u32,
    /// The serialized [`JobRecord`] and [`TicketSpec`], or why they could not be serialized.
    body: Result<(serde_json::Value, Option<serde_json::Value>), String>,
}

impl BeginRequest {
    pub fn new(job: &JobRecord<'_>, ticket: Option<&TicketSpec<'_>>, min_attempt: u32) -> Self {
        let body = to_json(job)
            .and_then(|job| Ok((job, ticket.map(to_json).transpose()?)))
            .map_err(|e| e.to_string());
        BeginRequest {
            id: job.id.to_owned(),
            min_attempt,
            body,
        }
    }

    /// True when the job issues a ticket.
    pub fn issues_ticket(&self) -> bool {
        matches!(&self.body, Ok((_, Some(_))))
    }

    fn body(&self) -> Result<(&serde_json::Value, Option<&serde_json::Value>), StoreError> {
        match &self.body {
            Ok((job, ticket)) => Ok((job, ticket.as_ref())),
            Err(e) => Err(StoreError::Invalid(e.clone())),
        }
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
        lease: impl Into<Lease>,
    ) -> Vec<Result<BeginOutcome, StoreError>> {
        let lease = lease.into();
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
        lease: impl Into<Lease>,
    ) -> Result<BeginOutcome, StoreError> {
        let (job, ticket) = request.body()?;
        self.begin_json(
            job.clone(),
            ticket,
            secret,
            lease.into(),
            request.min_attempt,
        )
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
        lease: Lease,
    ) -> Result<Vec<Result<BeginOutcome, StoreError>>, StoreError> {
        let mut order: Vec<usize> = (0..requests.len()).collect();
        order.sort_by(|a, b| requests[*a].id.cmp(&requests[*b].id));
        let mut fresh: Vec<Option<FreshTicket>> = Vec::with_capacity(order.len());
        let mut batch: Vec<serde_json::Value> = Vec::with_capacity(order.len());
        for i in &order {
            let request = &requests[*i];
            let (job, ticket) = request.body()?;
            let offered = ticket.map(|_| fresh_ticket(secret));
            batch.push(serde_json::json!({
                "job": job,
                "ticket": ticket.zip(offered.as_ref()).map(|(t, f)| ticket_json(t, f)),
                "min_attempt": attempt_number(request.min_attempt),
            }));
            fresh.push(offered);
        }
        let rows = sqlx::query(
            "SELECT r_index, r_outcome, r_attempt, r_lease_until, r_ticket_id, r_token_salt, \
             r_token_hash, r_expires_at, r_ticket_created, r_lease_left_ms \
             FROM herald_begin_attempts($1, $2, $3)",
        )
        .bind(serde_json::Value::Array(batch))
        .bind(pg_interval(lease.length))
        .bind(lease.owner)
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
            let id = &requests[order[position]].id;
            outcomes[order[position]] = Some(self.finish_begin(id, row, offered, secret).await);
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
