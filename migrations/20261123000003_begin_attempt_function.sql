-- The ledger's idempotency gate in one round trip. `Store::begin_attempt` used to send seven
-- statements per delivery (begin, insert, select for update, update, event, ticket, commit); at
-- thousands of jobs a second the round trips, not the work, were the cost. This function does the
-- same steps in the same order, in the caller's single statement (so in one transaction):
--
--   1. record the job (its id is the primary key) unless it is known;
--   2. lock its row; a finished job (sent or dead) gets a 'duplicate' event and no attempt;
--   3. a job another delivery is sending (lease not run out) is reported busy, untouched;
--   4. otherwise take the lease, count the attempt, add a 'received' event;
--   5. when the job issues a ticket: insert the one the caller prepared (id, salt, SHA-256 of the
--      token) or, if the job already has one, return that one's salt and hash so the caller can
--      rebuild the same token. The token itself never reaches the database.

CREATE FUNCTION herald_begin_attempt(
    p_id text, p_type text, p_recipient text, p_user_id text, p_organization_id text,
    p_client_id text, p_locale text, p_message_id text, p_payload jsonb,
    p_lease interval, p_min_attempt integer,
    -- The ticket to create if the job has none yet; p_purpose NULL means the job issues none.
    p_ticket_id uuid, p_token_hash bytea, p_token_salt bytea, p_purpose text,
    p_t_user_id text, p_t_email text, p_t_client_id text, p_t_organization_id text,
    p_result_url text, p_include_email_in_redirect boolean, p_mark_email_as_verified boolean,
    p_factor text, p_allow_multiple_enrollments boolean, p_custom_domain text, p_ttl interval
) RETURNS TABLE (
    r_outcome text,          -- 'proceed', 'sent', 'dead' or 'busy'
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
