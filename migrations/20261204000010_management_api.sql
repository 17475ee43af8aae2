-- What `herald serve` (the Auth0-compatible Management API) keeps: its API tokens, the user
-- registry that calls naming only a `user_id` resolve against, and tickets issued over HTTP.

-- Opaque API tokens. Only the SHA-256 of the token is stored; the token itself is printed once by
-- `herald token create`.
CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    scopes      text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz,
    last_used_at timestamptz
);

-- Users, in Auth0's shape. `user_id` follows Auth0's `provider|id` form. A password given at
-- creation is kept only as an argon2id PHC string.
CREATE TABLE users (
    user_id         text PRIMARY KEY,
    email           text,
    email_verified  boolean NOT NULL DEFAULT false,
    name            text,
    given_name      text,
    family_name     text,
    nickname        text,
    picture         text,
    user_metadata   jsonb NOT NULL DEFAULT '{}'::jsonb,
    app_metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    blocked         boolean NOT NULL DEFAULT false,
    connection      text NOT NULL,
    password_hash   text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One account per email and connection, as Auth0 has it.
CREATE UNIQUE INDEX users_connection_email ON users (connection, lower(email)) WHERE email IS NOT NULL;
CREATE INDEX users_email ON users (lower(email));

-- A ticket created by POST /tickets/* has no job behind it.
ALTER TABLE tickets ALTER COLUMN job_id DROP NOT NULL;

-- Auth0's organization metadata (string values) and client URL lists, which the Management API
-- keeps next to Herald's own columns. An organization's `herald_default_locale` and `herald_from`
-- metadata keys are Herald's `default_locale` and `from_address` columns, not stored here.
ALTER TABLE organizations ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE clients ADD COLUMN callbacks text[] NOT NULL DEFAULT '{}';
ALTER TABLE clients ADD COLUMN allowed_logout_urls text[] NOT NULL DEFAULT '{}';
