-- The oldest-message-age gauges read the ledger (crates/store/src/queue_age.rs). A retry tier's
-- age comes from its `retrying` jobs, which the index email_jobs_status_updated (status,
-- updated_at) already serves; the dead queue's from the `dead` jobs whose letter is still parked.
--
-- `herald dlq purge` deletes dead letters but leaves their jobs `dead` (a redelivered copy must
-- still be ignored), so it records when it did so: purged_at, plus a 'purged' event in the job's
-- history. A job dead-lettered again after a purge (updated_at later than purged_at) is parked
-- again and counts again.

ALTER TABLE email_jobs ADD COLUMN purged_at timestamptz;

CREATE INDEX email_jobs_dead_parked ON email_jobs (updated_at)
    WHERE status = 'dead' AND (purged_at IS NULL OR purged_at < updated_at);

ALTER TABLE job_events DROP CONSTRAINT job_events_event_check;
ALTER TABLE job_events ADD CONSTRAINT job_events_event_check
    CHECK (event IN ('received', 'sent', 'retrying', 'dead', 'duplicate', 'deferred', 'replayed',
                     'purged'));
