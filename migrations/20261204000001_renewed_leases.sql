-- Recovery without waiting (issue 11): a lease that names its holder and is renewed while the
-- holder lives, and dead letters that are known to have reached the dead-letter queue.
--
-- * `lease_owner`: the worker process whose delivery holds the job's lease. The holder renews
--   its leases every quarter of HERALD_SEND_LEASE while it works on them
--   (`Store::renew_leases`), so a lease can be short (10 s by default): a worker that dies
--   (SIGKILL, OOM, a lost node) stops renewing and its jobs are free again within one lease,
--   instead of waiting out a lease long enough to cover the slowest send.
-- * `r_lease_left_ms`: a busy answer says how long the lease has left by the database's clock,
--   so the deferred delivery waits about that long (per-message TTL on herald.email.defer)
--   rather than cycling through the first retry tier.
-- * `dead_lettered_at`: set once the job's dead-letter copy was confirmed by the broker. A job
--   that is `dead` without it was recorded dead but its copy was never confirmed (the broker
--   went away in between); a redelivery of it answers 'dead_unfiled' so the worker files the
--   dead letter again instead of acking it as a duplicate.

ALTER TABLE email_jobs ADD COLUMN lease_owner uuid;
ALTER TABLE email_jobs ADD COLUMN dead_lettered_at timestamptz;
-- Dead jobs from before this migration reached the dead-letter queue (or were parked there by
-- the work queue's dead-letter exchange).
UPDATE email_jobs SET dead_lettered_at = updated_at WHERE status = 'dead';

DROP FUNCTION herald_begin_attempts(jsonb, interval);
DROP FUNCTION herald_begin_attempt(jsonb, jsonb, interval, integer);

CREATE FUNCTION herald_begin_attempt(
    p_job jsonb, p_ticket jsonb, p_lease interval, p_min_attempt integer, p_owner uuid
) RETURNS TABLE (
    r_outcome text,          -- 'proceed', 'sent', 'dead', 'dead_unfiled', 'busy' or 'conflict'
    r_attempt integer,       -- this attempt's number (proceed), else the attempts so far
    r_lease_until timestamptz,
    r_ticket_id uuid,
    r_token_salt bytea,
    r_token_hash bytea,
    r_expires_at timestamptz,
    r_ticket_created boolean,
    r_lease_left_ms bigint    -- busy: what the holder's lease has left
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_job email_jobs%ROWTYPE := jsonb_populate_record(NULL::email_jobs, p_job);
    v_ticket tickets%ROWTYPE;
    j email_jobs%ROWTYPE;
    n integer;
BEGIN
    INSERT INTO email_jobs (id, type, status, recipient, user_id, organization_id, client_id,
                            locale, message_id, payload)
    VALUES (v_job.id, v_job.type, 'queued', v_job.recipient, v_job.user_id,
            v_job.organization_id, v_job.client_id, v_job.locale, v_job.message_id,
            v_job.payload)
    ON CONFLICT (id) DO NOTHING;

    SELECT * INTO j FROM email_jobs WHERE id = v_job.id FOR UPDATE;

    -- Before anything else: is this the job the ledger knows under this id?
    IF j.payload_digest IS DISTINCT FROM herald_payload_digest(v_job.payload) THEN
        INSERT INTO job_events (job_id, attempt, event, detail)
        VALUES (v_job.id, j.attempts, 'duplicate',
                'id_conflict: a different job published under this id was dead-lettered; '
                || 'this job was left as it was');
        RETURN QUERY SELECT 'conflict'::text, j.attempts, NULL::timestamptz, NULL::uuid,
                            NULL::bytea, NULL::bytea, NULL::timestamptz, false, NULL::bigint;
        RETURN;
    END IF;

    -- Dead, but its dead-letter copy was never confirmed: the worker files it again.
    IF j.status = 'dead' AND j.dead_lettered_at IS NULL THEN
        RETURN QUERY SELECT 'dead_unfiled'::text, j.attempts, NULL::timestamptz, NULL::uuid,
                            NULL::bytea, NULL::bytea, NULL::timestamptz, false, NULL::bigint;
        RETURN;
    END IF;

    IF j.status IN ('sent', 'dead') THEN
        INSERT INTO job_events (job_id, attempt, event, detail)
        VALUES (v_job.id, j.attempts, 'duplicate', 'delivery of a finished job ignored');
        RETURN QUERY SELECT j.status, j.attempts, NULL::timestamptz, NULL::uuid, NULL::bytea,
                            NULL::bytea, NULL::timestamptz, false, NULL::bigint;
        RETURN;
    END IF;

    IF j.status = 'sending' AND j.lease_until > now() THEN
        RETURN QUERY SELECT 'busy'::text, j.attempts, j.lease_until, NULL::uuid, NULL::bytea,
                            NULL::bytea, NULL::timestamptz, false,
                            ceil(extract(epoch FROM j.lease_until - now()) * 1000)::bigint;
        RETURN;
    END IF;

    n := GREATEST(j.attempts + 1, p_min_attempt);
    UPDATE email_jobs
       SET status = 'sending', attempts = n, lease_until = now() + p_lease, lease_owner = p_owner,
           locale = v_job.locale, message_id = v_job.message_id, updated_at = now()
     WHERE id = v_job.id;
    INSERT INTO job_events (job_id, attempt, event, detail) VALUES (v_job.id, n, 'received', NULL);

    IF p_ticket IS NULL OR jsonb_typeof(p_ticket) = 'null' THEN
        RETURN QUERY SELECT 'proceed'::text, n, NULL::timestamptz, NULL::uuid, NULL::bytea,
                            NULL::bytea, NULL::timestamptz, false, NULL::bigint;
        RETURN;
    END IF;

    -- The hex fields are decoded here rather than by the bytea input of jsonb_populate_record.
    v_ticket := jsonb_populate_record(NULL::tickets, p_ticket - 'token_hash' - 'token_salt');
    v_ticket.job_id := v_job.id;
    v_ticket.token_hash := decode(p_ticket->>'token_hash', 'hex');
    v_ticket.token_salt := decode(p_ticket->>'token_salt', 'hex');
    v_ticket.expires_at := now() + (p_ticket->>'ttl_us')::bigint * interval '1 microsecond';

    RETURN QUERY
        INSERT INTO tickets AS t (id, job_id, token_hash, token_salt, purpose, user_id, email,
                                  client_id, organization_id, result_url,
                                  include_email_in_redirect, mark_email_as_verified, factor,
                                  allow_multiple_enrollments, custom_domain, expires_at)
        VALUES (v_ticket.id, v_ticket.job_id, v_ticket.token_hash, v_ticket.token_salt,
                v_ticket.purpose, v_ticket.user_id, v_ticket.email, v_ticket.client_id,
                v_ticket.organization_id, v_ticket.result_url,
                v_ticket.include_email_in_redirect, v_ticket.mark_email_as_verified,
                v_ticket.factor, v_ticket.allow_multiple_enrollments, v_ticket.custom_domain,
                v_ticket.expires_at)
        ON CONFLICT (job_id) DO NOTHING
        RETURNING 'proceed'::text, n, NULL::timestamptz, t.id, t.token_salt, t.token_hash,
                  t.expires_at, true, NULL::bigint;
    IF NOT FOUND THEN
        RETURN QUERY
            SELECT 'proceed'::text, n, NULL::timestamptz, t.id, t.token_salt, t.token_hash,
                   t.expires_at, false, NULL::bigint
              FROM tickets t WHERE t.job_id = v_job.id;
    END IF;
END
$$;

-- Group commit: `herald_begin_attempt` for each element of one jsonb array, in array order,
-- inside the caller's one statement. Each element is {"job": ..., "ticket": ...,
-- "min_attempt": n}. The caller sorts the batch by job id, so two batches lock rows in the same
-- order and cannot deadlock each other.
CREATE FUNCTION herald_begin_attempts(p_batch jsonb, p_lease interval, p_owner uuid)
RETURNS TABLE (
    r_index integer,         -- 1-based position in the array
    r_outcome text,
    r_attempt integer,
    r_lease_until timestamptz,
    r_ticket_id uuid,
    r_token_salt bytea,
    r_token_hash bytea,
    r_expires_at timestamptz,
    r_ticket_created boolean,
    r_lease_left_ms bigint
)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(jsonb_array_length(p_batch), 0) LOOP
        RETURN QUERY
            SELECT i, b.*
              FROM herald_begin_attempt(p_batch->(i - 1)->'job', p_batch->(i - 1)->'ticket',
                                        p_lease,
                                        (p_batch->(i - 1)->>'min_attempt')::integer,
                                        p_owner) AS b;
    END LOOP;
END
$$;
