-- A stored override that fails to render falls back to the built-in template; these columns let
-- the operator see it in `herald template list`. Saving the override again resets them.
ALTER TABLE template_overrides
    ADD COLUMN failures        bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_failure_at timestamptz,
    ADD COLUMN last_failure    text;
