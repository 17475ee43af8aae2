//! The ledger's side of the oldest-message-age gauges: how long the oldest job has waited in each
//! retry tier and in the dead-letter queue, and the mark `herald dlq purge` leaves on a job whose
//! dead letter it deleted.
//!
//! RabbitMQ cannot say how old the head of a quorum queue is, but the ledger knows where every job
//! it has seen is waiting. A job in a retry tier is `retrying`, with `updated_at` set when its
//! retry copy was made and `attempts` the attempt that failed: attempt *n* waits in tier *n* (the
//! last tier repeats), as `Topology::retry_delay_for_attempt` routes it. A dead-lettered job is
//! `dead`, with `updated_at` set when it died, until `herald dlq replay` reopens it or
//! `herald dlq purge` deletes its letter ([`Store::mark_purged`]).

use std::time::Duration;

use sqlx::Row;

use crate::Store;
use crate::error::StoreError;

/// How long the oldest job has waited in each retry tier and in the dead-letter queue, according
/// to the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerQueueAges {
    /// One entry per retry tier, in attempt order: the time since the oldest `retrying` job of
    /// that tier was put there, or zero when the tier has none.
    pub retry_tiers: Vec<Duration>,
    /// The time since the oldest job whose dead letter is still parked was dead-lettered, or zero
    /// when there is none.
    pub dead: Duration,
}

/// Retry tiers by `attempts` (attempt *n* waits in tier *n*, 1-based; the last tier repeats and 0
/// counts as 1), and parked dead letters, in one round trip. `$1` is the number of tiers. The
/// ages are measured against PostgreSQL's clock, the one that wrote `updated_at`.
const QUEUE_AGES: &str = "\
    SELECT LEAST(GREATEST(attempts, 1), $1) - 1 AS tier, \
           EXTRACT(EPOCH FROM now() - min(updated_at))::float8 AS age \
      FROM email_jobs WHERE status = 'retrying' GROUP BY 1 \
    UNION ALL \
    SELECT NULL, EXTRACT(EPOCH FROM now() - min(updated_at))::float8 \
      FROM email_jobs \
     WHERE status = 'dead' AND (purged_at IS NULL OR purged_at < updated_at)";

impl Store {
    /// The ledger's view of how long the oldest job has waited in each of `tiers` retry tiers
    /// and in the dead-letter queue (see [`LedgerQueueAges`]). Jobs the ledger never recorded
    /// (bodies without a readable id, copies the broker dead-lettered on its own) are not seen.
    pub async fn queue_ages(&self, tiers: usize) -> Result<LedgerQueueAges, StoreError> {
        let rows = sqlx::query(QUEUE_AGES)
            .bind(i32::try_from(tiers.max(1)).unwrap_or(i32::MAX))
            .fetch_all(self.pool())
            .await?;
        let rows = rows
            .iter()
            .map(|r| Ok((r.try_get("tier")?, r.try_get("age")?)))
            .collect::<Result<Vec<(Option<i32>, Option<f64>)>, sqlx::Error>>()?;
        Ok(ages_from_rows(tiers, rows))
    }

    /// Records that `herald dlq purge` deleted the dead letter of `job_id`: the job stays `dead`
    /// (a redelivered copy must still be ignored) but no longer counts as parked, and its history
    /// gets a `purged` event with `detail`. Dead-lettering the job again parks it again.
    ///
    /// Returns `false`, changing nothing, when the job is unknown or not `dead`.
    pub async fn mark_purged(&self, job_id: &str, detail: &str) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "WITH purged AS (UPDATE email_jobs SET purged_at = now() \
             WHERE id = $1 AND status = 'dead' RETURNING id, attempts) \
             INSERT INTO job_events (job_id, attempt, event, detail) \
             SELECT id, attempts, 'purged', $2 FROM purged",
        )
        .bind(job_id)
        .bind(detail)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(inserted > 0)
    }
}

/// Folds the rows of [`QUEUE_AGES`] (a tier, or NULL for the dead queue, and an age in seconds
/// that is NULL when no job matched) into one age per tier and one for the dead queue.
fn ages_from_rows(
    tiers: usize,
    rows: impl IntoIterator<Item = (Option<i32>, Option<f64>)>,
) -> LedgerQueueAges {
    let mut ages = LedgerQueueAges {
        retry_tiers: vec![Duration::ZERO; tiers],
        dead: Duration::ZERO,
    };
    for (tier, age) in rows {
        // A row written a moment after this statement's `now()` looks younger than zero.
        let age = Duration::try_from_secs_f64(age.unwrap_or(0.0).max(0.0)).unwrap_or(Duration::MAX);
        let slot = match tier {
            None => Some(&mut ages.dead),
            Some(tier) => usize::try_from(tier)
                .ok()
                .and_then(|t| ages.retry_tiers.get_mut(t)),
        };
        if let Some(slot) = slot {
            *slot = age;
        }
    }
    ages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_fill_their_tier_and_the_dead_queue_and_the_rest_stays_zero() {
        let ages = ages_from_rows(
            3,
            [
                (Some(1), Some(12.5)),
                (None, Some(90.0)),
                (Some(7), Some(1.0)),
            ],
        );
        assert_eq!(
            ages.retry_tiers,
            [
                Duration::ZERO,
                Duration::from_millis(12_500),
                Duration::ZERO
            ]
        );
        assert_eq!(ages.dead, Duration::from_secs(90));
    }

    #[test]
    fn no_matching_job_and_clock_skew_read_as_zero() {
        let ages = ages_from_rows(2, [(Some(0), Some(-0.002)), (None, None)]);
        assert_eq!(ages.retry_tiers, [Duration::ZERO, Duration::ZERO]);
        assert_eq!(ages.dead, Duration::ZERO);
        assert!(ages_from_rows(0, []).retry_tiers.is_empty());
    }
}
