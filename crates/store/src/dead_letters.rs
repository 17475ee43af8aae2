//! The ledger's view of the dead-letter queue: the jobs whose dead letter is still parked in
//! `herald.email.dead`, so `herald dlq list` and `herald dlq show` can answer without consuming
//! the queue, and the ledger's side of a replay or a purge ([`DeadLetterLedger`]).
//!
//! A job is parked when it is `dead` and its letter was not deleted by `herald dlq purge` since it
//! died (`purged_at` unset or older than `updated_at`); `herald dlq replay` reopens it, so it stops
//! being parked. The ledger cannot know about a dead letter whose job it has no `dead` row for: a
//! body without a readable id, a copy RabbitMQ dead-lettered on its own (`delivery_limit`), or a
//! job dead-lettered while PostgreSQL was unreachable (`store_error`). Nor does it notice a letter
//! deleted by other means (the management UI). Comparing [`DeadLetterPage::parked`] with the
//! queue's depth shows when the two disagree.

use std::time::Duration;

use herald_queue::dlq::DeadLetterLedger;
use sqlx::Row;
use time::OffsetDateTime;

use crate::Store;
use crate::error::StoreError;
use crate::ledger::pg_interval;

/// Which parked dead letters to list; every filter given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterQuery {
    /// The job's type as the ledger stores it (`verification_email`, …).
    pub kind: Option<String>,
    /// The dead-letter reason (`smtp_permanent`, …).
    pub reason: Option<String>,
    /// Only jobs dead-lettered at least this long ago.
    pub older_than: Option<Duration>,
    /// At most this many, oldest first (the queue's own order).
    pub limit: u32,
}

/// A parked dead letter, as the ledger knows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct DeadJob {
    pub id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub dead_reason: Option<String>,
    /// The error the job died of (the dead letter's `x-herald-error`).
    pub last_error: Option<String>,
    pub attempts: i32,
    pub recipient: Option<String>,
    pub message_id: Option<String>,
    pub created_at: OffsetDateTime,
    /// When it was dead-lettered (the row's `updated_at`).
    pub dead_at: OffsetDateTime,
}

/// One page of [`Store::dead_letters`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterPage {
    /// The matching jobs, oldest first, at most `limit`.
    pub jobs: Vec<DeadJob>,
    /// How many parked jobs match the query, `limit` aside.
    pub matching: u64,
    /// How many jobs are parked in all, filters aside.
    pub parked: u64,
}

/// One parked dead letter with the job's body, for `herald dlq show`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadJobDetail {
    pub job: DeadJob,
    /// The job's body as the worker recorded it; `None` when it was not stored (a body that was
    /// not JSON, or too large to keep).
    pub payload: Option<serde_json::Value>,
}

/// A `dead` job whose letter is still in the dead queue, as far as the ledger knows.
const PARKED: &str = "status = 'dead' AND (purged_at IS NULL OR purged_at < updated_at)";

const DEAD_JOB_COLUMNS: &str = "id, type, dead_reason, last_error, attempts, recipient, \
     message_id, created_at, updated_at AS dead_at";

impl Store {
    /// The parked dead letters matching `query`, oldest first, with how many match and how many
    /// are parked in all. Reads only the ledger; the dead queue is not touched.
    pub async fn dead_letters(
        &self,
        query: &DeadLetterQuery,
    ) -> Result<DeadLetterPage, StoreError> {
        let sql = format!(
            "SELECT {DEAD_JOB_COLUMNS}, count(*) OVER () AS matching FROM email_jobs \
             WHERE {PARKED} AND ($1::text IS NULL OR type = $1) \
               AND ($2::text IS NULL OR dead_reason = $2) \
               AND ($3::interval IS NULL OR updated_at <= now() - $3) \
             ORDER BY updated_at, id LIMIT $4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(query.kind.as_deref())
            .bind(query.reason.as_deref())
            .bind(query.older_than.map(pg_interval))
            .bind(i64::from(query.limit))
            .fetch_all(self.pool())
            .await?;
        let matching = match rows.first() {
            Some(row) => row.try_get::<i64, _>("matching")?,
            None => 0,
        };
        let jobs = rows
            .iter()
            .map(<DeadJob as sqlx::FromRow<_>>::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let parked: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM email_jobs WHERE {PARKED}"
        )))
        .fetch_one(self.pool())
        .await?;
        Ok(DeadLetterPage {
            jobs,
            matching: u64::try_from(matching).unwrap_or(0),
            parked: u64::try_from(parked).unwrap_or(0),
        })
    }

    /// Job `job_id` with its body, if the ledger has it parked in the dead queue. `None` when the
    /// job is unknown or not parked (see [`Store::job`] for its status).
    pub async fn dead_letter(&self, job_id: &str) -> Result<Option<DeadJobDetail>, StoreError> {
        let sql = format!(
            "SELECT {DEAD_JOB_COLUMNS}, payload FROM email_jobs WHERE id = $1 AND {PARKED}"
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(job_id)
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(DeadJobDetail {
            job: <DeadJob as sqlx::FromRow<_>>::from_row(&row)?,
            payload: row.try_get("payload")?,
        }))
    }
}

/// The ledger's part in `herald_queue::dlq::replay` and `purge`.
impl DeadLetterLedger for Store {
    type Error = StoreError;

    async fn was_sent(&self, job_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .job(job_id)
            .await?
            .is_some_and(|job| job.status == "sent"))
    }

    async fn reopen(&self, job_id: &str) -> Result<bool, StoreError> {
        self.reopen_for_replay(job_id).await
    }

    async fn restore_dead(
        &self,
        job_id: &str,
        kind: &str,
        reason: &str,
        error: &str,
    ) -> Result<(), StoreError> {
        // The letter is still in the dead-letter queue: the job is dead and filed.
        self.mark_dead(job_id, kind, 0, reason, error, None).await?;
        self.mark_dead_lettered(job_id, reason).await
    }

    async fn note_purge(&self, job_id: &str, detail: &str) -> Result<bool, StoreError> {
        self.mark_purged(job_id, detail).await
    }
}
