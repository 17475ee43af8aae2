-- Group commit for the ledger's idempotency gate: `herald_begin_attempts` runs
-- `herald_begin_attempt` for each element of its arrays, in array order, inside the caller's one
-- statement. The worker sends the deliveries it has in flight at the same moment together, so
-- under load one round trip and one commit serve many jobs. Each job's steps are the same as
-- alone and stay all or nothing: the whole batch commits, or none of it (the caller then retries
-- each job on its own). The caller sorts the batch by job id, so two batches lock rows in the same
-- order and cannot deadlock each other.

CREATE FUNCTION herald_begin_attempts(
    p_id text[], p_type text[], p_recipient text[], p_user_id text[], p_organization_id text[],
    p_client_id text[], p_locale text[], p_message_id text[], p_payload text[],
    p_lease interval, p_min_attempt integer[],
    p_ticket_id uuid[], p_token_hash bytea[], p_token_salt bytea[], p_purpose text[],
    p_t_user_id text[], p_t_email text[], p_t_client_id text[], p_t_organization_id text[],
    p_result_url text[], p_include_email_in_redirect boolean[], p_mark_email_as_verified boolean[],
    p_factor text[], p_allow_multiple_enrollments boolean[], p_custom_domain text[],
    p_ttl_us bigint[]
) RETURNS TABLE (
    r_index integer,         -- 1-based position in the arrays
    r_outcome text,
    r_attempt integer,
    r_lease_until timestamptz,
    r_ticket_id uuid,
    r_token_salt bytea,
    r_token_hash bytea,
    r_expires_at timestamptz,
    r_ticket_created boolean
)
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_id, 1), 0) LOOP
        RETURN QUERY
            SELECT i, b.*
              FROM herald_begin_attempt(
                  p_id[i], p_type[i], p_recipient[i], p_user_id[i], p_organization_id[i],
                  p_client_id[i], p_locale[i], p_message_id[i], p_payload[i]::jsonb, p_lease,
                  p_min_attempt[i], p_ticket_id[i], p_token_hash[i], p_token_salt[i],
                  p_purpose[i], p_t_user_id[i], p_t_email[i], p_t_client_id[i],
                  p_t_organization_id[i], p_result_url[i], p_include_email_in_redirect[i],
                  p_mark_email_as_verified[i], p_factor[i], p_allow_multiple_enrollments[i],
                  p_custom_domain[i], p_ttl_us[i] * interval '1 microsecond') AS b;
    END LOOP;
END
$$;
