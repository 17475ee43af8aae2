-- `herald dlq replay` reopens a dead-lettered job and records a 'replayed' event in its history.
-- The first migration named the event CHECK inline, so PostgreSQL called it job_events_event_check.

ALTER TABLE job_events DROP CONSTRAINT job_events_event_check;
ALTER TABLE job_events ADD CONSTRAINT job_events_event_check
    CHECK (event IN ('received', 'sent', 'retrying', 'dead', 'duplicate', 'deferred', 'replayed'));
