-- A job id names one job. The ledger used to trust that: a second, different job published under
-- an id it already knew (a producer bug, a reused id) got the first job's row and, while that job
-- was queued or retrying, the first job's ticket, then was rendered and sent to its own
-- recipient. One user's password-reset link could reach another person.
--
-- Now every job row carries a SHA-256 of its canonical payload (the job as Herald re-serializes
-- it, stored as jsonb, whose text form is canonical: keys sorted, no duplicates, fixed spacing).
-- `herald_begin_attempt` compares the digest of the delivery in hand with the stored one before
-- anything else: a different body under a known id is answered 'conflict', the worker
-- dead-letters it as `id_conflict`, and the first job's row and ticket are left exactly as they
-- were (only a 'duplicate' event in its history tells the operator it happened). An identical
-- redelivery has the same digest and goes on as before.

-- The digest of a payload. convert_to is only STABLE because it depends on the database
-- encoding, which never changes for a database, so the digest is immutable in practice and can
-- back a generated column.
CREATE FUNCTION herald_payload_digest(p jsonb) RETURNS bytea
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN sha256(convert_to(p::text, 'UTF8'));

-- Generated, so every path that writes a payload (begin_attempt, mark_dead) records its digest,
-- and the rows already there get theirs now.
ALTER TABLE email_jobs
    ADD COLUMN payload_digest bytea GENERATED ALWAYS AS (herald_payload_digest(payload)) STORED;

CREATE OR REPLACE FUNCTION herald_begin_attempt(
    p_id text, p_type text, p_recipient text, p_user_id text, p_organization_id text,
    p_client_id text, p_locale text, p_message_id text, p_payload jsonb,
    p_lease interval, p_min_attempt integer,
    -- The ticket to create if the job has none yet; p_purpose NULL means the job issues none.
    p_ticket_id uuid, p_token_hash bytea, p_token_salt bytea, p_purpose text,
    p_t_user_id text, p_t_email text, p_t_client_id text, p_t_organization_id text,
    p_result_url text, p_include_email_in_redirect boolean, p_mark_email_as_verified boolean,
    p_factor text, p_allow_multiple_enrollments boolean, p_custom_domain text, p_ttl interval
) RETURNS TABLE (
    r_outcome text,          -- 'proceed', 'sent', 'dead', 'busy' or 'conflict'
    r_attempt integer,       -- this attempt's number (proceed), else the attempts so far
    r_lease_until timestamptz,
    r_ticket_id uuid,
    r_token_salt bytea,
    r_token_hash bytea,
    r_expires_at timestamptz,
    r_ticket_created boolean
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    j email_jobs%ROWTYPE;
    n integer;
BEGIN
    INSERT INTO email_jobs (id, type, status, recipient, user_id, organization_id, client_id,
                            locale, message_id, payload)
    VALUES (p_id, p_type, 'queued', p_recipient, p_user_id, p_organization_id, p_client_id,
            p_locale, p_message_id, p_payload)
    ON CONFLICT (id) DO NOTHING;

    SELECT * INTO j FROM email_jobs WHERE id = p_id FOR UPDATE;

    -- Before anything else: is this the job the ledger knows under this id?
    IF j.payload_digest IS DISTINCT FROM herald_payload_digest(p_payload) THEN
        INSERT INTO job_events (job_id, attempt, event, detail)
        VALUES (p_id, j.attempts, 'duplicate',
                'id_conflict: a different job published under this id was dead-lettered; '
                || 'this job was left as it was');
        RETURN QUERY SELECT 'conflict'::text, j.attempts, NULL::timestamptz, NULL::uuid,
                            NULL::bytea, NULL::bytea, NULL::timestamptz, false;
        RETURN;
    END IF;

    IF j.status IN ('sent', 'dead') THEN
        INSERT INTO job_events (job_id, attempt, event, detail)
        VALUES (p_id, j.attempts, 'duplicate', 'delivery of a finished job ignored');
        RETURN QUERY SELECT j.status, j.attempts, NULL::timestamptz, NULL::uuid, NULL::bytea,
                            NULL::bytea, NULL::timestamptz, false;
        RETURN;
    END IF;

    IF j.status = 'sending' AND j.lease_until > now() THEN
        RETURN QUERY SELECT 'busy'::text, j.attempts, j.lease_until, NULL::uuid, NULL::bytea,
                            NULL::bytea, NULL::timestamptz, false;
        RETURN;
    END IF;

    n := GREATEST(j.attempts + 1, p_min_attempt);
    UPDATE email_jobs
       SET status = 'sending', attempts = n, lease_until = now() + p_lease, locale = p_locale,
           message_id = p_message_id, updated_at = now()
     WHERE id = p_id;
    INSERT INTO job_events (job_id, attempt, event, detail) VALUES (p_id, n, 'received', NULL);

    IF p_purpose IS NULL THEN
        RETURN QUERY SELECT 'proceed'::text, n, NULL::timestamptz, NULL::uuid, NULL::bytea,
                            NULL::bytea, NULL::timestamptz, false;
        RETURN;
    END IF;

    RETURN QUERY
        INSERT INTO tickets AS t (id, job_id, token_hash, token_salt, purpose, user_id, email,
                                  client_id, organization_id, result_url,
                                  include_email_in_redirect, mark_email_as_verified, factor,
                                  allow_multiple_enrollments, custom_domain, expires_at)
        VALUES (p_ticket_id, p_id, p_token_hash, p_token_salt, p_purpose, p_t_user_id, p_t_email,
                p_t_client_id, p_t_organization_id, p_result_url, p_include_email_in_redirect,
                p_mark_email_as_verified, p_factor, p_allow_multiple_enrollments,
                p_custom_domain, now() + p_ttl)
        ON CONFLICT (job_id) DO NOTHING
        RETURNING 'proceed'::text, n, NULL::timestamptz, t.id, t.token_salt, t.token_hash,
                  t.expires_at, true;
    IF NOT FOUND THEN
        RETURN QUERY
            SELECT 'proceed'::text, n, NULL::timestamptz, t.id, t.token_salt, t.token_hash,
                   t.expires_at, false
              FROM tickets t WHERE t.job_id = p_id;
    END IF;
END
$$;
