-- MFA enrollments (issue 13): what the enrollment page (/u/mfa-enrollment) stores once a factor
-- is confirmed, what GET /users/{id}/enrollments lists and DELETE /guardian/enrollments/{id}
-- removes, and what the login check (POST /x-herald/users/{id}/otp-verifications) reads.

-- One confirmed factor of a user. `id` is Auth0-like: `totp|dev_<16 hex>` or `email|dev_<16 hex>`.
-- No foreign key to `users`: an enrollment ticket may come from an AMQP job for a user the
-- registry does not hold. Deleting a registry user deletes their enrollments (Store::delete_user).
CREATE TABLE mfa_enrollments (
    id              text PRIMARY KEY,
    user_id         text NOT NULL,
    factor          text NOT NULL CHECK (factor IN ('otp', 'email')),
    -- Only confirmed enrollments are stored: an unconfirmed one lives in its ticket.
    status          text NOT NULL DEFAULT 'confirmed' CHECK (status IN ('confirmed')),
    name            text,
    -- The email address, for the email factor.
    identifier      text,
    -- The TOTP secret sealed with the MFA key (herald-mfa: key id ‖ nonce ‖ ciphertext); never
    -- stored in clear, and null for the email factor.
    secret_sealed   bytea,
    -- The last TOTP time step accepted: a code of this step or an earlier one is a replay.
    last_step       bigint,
    enrolled_at     timestamptz NOT NULL DEFAULT now(),
    last_auth       timestamptz,
    CHECK ((factor = 'otp') = (secret_sealed IS NOT NULL)),
    CHECK (factor = 'email' OR identifier IS NULL OR identifier <> '')
);
CREATE INDEX mfa_enrollments_user ON mfa_enrollments (user_id, enrolled_at);

-- The code emailed for an email-factor enrollment, one per enrollment ticket: only its keyed
-- digest (herald-mfa EmailCode::digest), how many times it was tried and sent, and when it
-- expires. A re-sent code replaces the previous one. The row goes with its ticket.
CREATE TABLE mfa_email_codes (
    ticket_hash     bytea PRIMARY KEY REFERENCES tickets (token_hash) ON DELETE CASCADE,
    user_id         text NOT NULL,
    email           text NOT NULL,
    code_digest     bytea NOT NULL CHECK (length(code_digest) = 32),
    attempts        integer NOT NULL DEFAULT 0,
    sends           integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);
CREATE INDEX mfa_email_codes_expiry ON mfa_email_codes (expires_at);

-- OTP codes checked at login per user, in fixed windows: shared by every `herald serve`
-- replica, so the limit holds across a cluster. A successful check clears the user's row.
CREATE TABLE mfa_otp_attempts (
    user_id         text PRIMARY KEY,
    window_start    timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0
);
