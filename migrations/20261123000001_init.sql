-- Herald's schema: the registry (organizations, clients, template overrides), the job ledger and
-- tickets. Tickets keep only a SHA-256 of their token plus the salt it is derived from (see
-- crates/domain/src/ticket.rs); the token itself is never stored.

CREATE TABLE organizations (
    id              text PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    display_name    text NOT NULL,
    logo_url        text,
    primary_color   text CHECK (primary_color ~ '^#[0-9a-fA-F]{6}$'),
    page_background text CHECK (page_background ~ '^#[0-9a-fA-F]{6}$'),
    default_locale  text,
    from_address    text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE clients (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    login_uri   text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- An override belongs to exactly one organization or one client. locale '' applies to every locale.
CREATE TABLE template_overrides (
    id              bigserial PRIMARY KEY,
    organization_id text REFERENCES organizations (id) ON DELETE CASCADE,
    client_id       text REFERENCES clients (id) ON DELETE CASCADE,
    template        text NOT NULL
                    CHECK (template IN ('verify_email', 'reset_email', 'enrollment_email', 'welcome_email')),
    locale          text NOT NULL DEFAULT '',
    subject         text,
    html            text,
    text            text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((organization_id IS NULL) <> (client_id IS NULL)),
    CHECK (subject IS NOT NULL OR html IS NOT NULL OR text IS NOT NULL),
    UNIQUE NULLS NOT DISTINCT (organization_id, client_id, template, locale)
);

-- One row per job id: the idempotency key. Invalid jobs whose id could be read are recorded too.
CREATE TABLE email_jobs (
    id              text PRIMARY KEY,
    type            text NOT NULL,
    status          text NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'retrying', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    dead_reason     text,
    recipient       text,
    user_id         text,
    organization_id text,
    client_id       text,
    locale          text,
    message_id      text,
    payload         jsonb,
    -- A worker that is sending holds the job until lease_until, so a redelivery racing it waits.
    lease_until     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);

CREATE INDEX email_jobs_status_updated ON email_jobs (status, updated_at);

-- The history behind `herald jobs show`: one row per thing that happened to a job.
CREATE TABLE job_events (
    id          bigserial PRIMARY KEY,
    job_id      text NOT NULL REFERENCES email_jobs (id) ON DELETE CASCADE,
    attempt     integer NOT NULL,
    event       text NOT NULL CHECK (event IN ('received', 'sent', 'retrying', 'dead', 'duplicate', 'deferred')),
    detail      text,
    at          timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX job_events_job ON job_events (job_id, id);

CREATE TABLE tickets (
    id                          uuid PRIMARY KEY,
    job_id                      text NOT NULL UNIQUE REFERENCES email_jobs (id),
    token_hash                  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    token_salt                  bytea NOT NULL CHECK (length(token_salt) = 32),
    purpose                     text NOT NULL
                                CHECK (purpose IN ('email_verification', 'password_change', 'mfa_enrollment')),
    user_id                     text NOT NULL,
    email                       text NOT NULL,
    client_id                   text,
    organization_id             text,
    result_url                  text,
    include_email_in_redirect   boolean NOT NULL DEFAULT false,
    mark_email_as_verified      boolean NOT NULL DEFAULT false,
    factor                      text,
    allow_multiple_enrollments  boolean NOT NULL DEFAULT false,
    custom_domain               text,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    expires_at                  timestamptz NOT NULL,
    used_at                     timestamptz
);

CREATE INDEX tickets_unused_expiry ON tickets (expires_at) WHERE used_at IS NULL;
