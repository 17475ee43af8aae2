-- The mfa_code_email job type renders Auth0's mfa_oob_code template: organizations and clients
-- may override it (template_overrides) and the tenant may set it (/email-templates) like the
-- other four. The CHECK constraints are the ones PostgreSQL named for the column checks of
-- 20261123000001_init.sql and 20261204000020_email_templates.sql.
ALTER TABLE template_overrides DROP CONSTRAINT template_overrides_template_check;
ALTER TABLE template_overrides ADD CONSTRAINT template_overrides_template_check
    CHECK (template IN ('verify_email', 'reset_email', 'enrollment_email', 'welcome_email', 'mfa_oob_code'));

ALTER TABLE email_templates DROP CONSTRAINT email_templates_template_check;
ALTER TABLE email_templates ADD CONSTRAINT email_templates_template_check
    CHECK (template IN ('verify_email', 'reset_email', 'enrollment_email', 'welcome_email', 'mfa_oob_code'));
