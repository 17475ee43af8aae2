-- Tenant-wide email templates, as Auth0's `/email-templates/{templateName}` keeps them: one per
-- template Herald sends. They rank below the organization and client overrides
-- (`template_overrides`) and above the built-in templates. `syntax` is Auth0's 'liquid' or
-- Herald's own 'handlebars'; `body` is the HTML part. `result_url`, `url_lifetime_seconds` and
-- `include_email_in_redirect` are the defaults of tickets of the template's kind.
CREATE TABLE email_templates (
    template                  text PRIMARY KEY
                              CHECK (template IN ('verify_email', 'reset_email', 'enrollment_email', 'welcome_email')),
    syntax                    text NOT NULL CHECK (syntax IN ('liquid', 'handlebars')),
    body                      text,
    subject                   text,
    from_address              text,
    result_url                text,
    url_lifetime_seconds      bigint CHECK (url_lifetime_seconds >= 0),
    include_email_in_redirect boolean NOT NULL DEFAULT true,
    enabled                   boolean NOT NULL DEFAULT false,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now()
);

-- A job whose template is disabled is recorded as skipped, and not sent.
ALTER TABLE email_jobs DROP CONSTRAINT email_jobs_status_check;
ALTER TABLE email_jobs ADD CONSTRAINT email_jobs_status_check
    CHECK (status IN ('queued', 'sending', 'sent', 'retrying', 'dead', 'skipped'));
ALTER TABLE job_events DROP CONSTRAINT job_events_event_check;
ALTER TABLE job_events ADD CONSTRAINT job_events_event_check
    CHECK (event IN ('received', 'sent', 'retrying', 'dead', 'duplicate', 'deferred', 'replayed',
                     'purged', 'skipped'));
