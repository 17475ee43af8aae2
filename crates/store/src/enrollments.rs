//! MFA enrollments: the confirmed factors of users (stored by the enrollment page inside the
//! transaction that uses its ticket), listed and deleted by the Management API; the TOTP replay
//! guard (the last accepted time step, moved forward atomically); the per-user limit on login
//! OTP checks; and the codes emailed for the email factor, with their expiry and attempt count.
//!
//! Secrets arrive sealed (herald-mfa) and codes as keyed digests: nothing here can read them.

use std::fmt;
use std::time::Duration;

use herald_domain::TokenHash;
use sqlx::{PgConnection, Row};
use time::OffsetDateTime;

use crate::Store;
use crate::error::StoreError;

/// The factors Herald enrolls (Auth0's `otp` and `email`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MfaFactor {
    Otp,
    Email,
}

impl MfaFactor {
    /// The value of the `factor` column (and Auth0's factor name).
    pub fn as_str(self) -> &'static str {
        match self {
            MfaFactor::Otp => "otp",
            MfaFactor::Email => "email",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "otp" => Some(MfaFactor::Otp),
            "email" => Some(MfaFactor::Email),
            _ => None,
        }
    }

    /// The start of the enrollment ids of this factor (`totp|dev_…`, `email|dev_…`).
    fn id_prefix(self) -> &'static str {
        match self {
            MfaFactor::Otp => "totp",
            MfaFactor::Email => "email",
        }
    }
}

/// A stored enrollment, without its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub id: String,
    pub user_id: String,
    pub factor: MfaFactor,
    /// Always `confirmed`: only confirmed enrollments are stored.
    pub status: String,
    pub name: Option<String>,
    /// The email address, for the email factor.
    pub identifier: Option<String>,
    pub enrolled_at: OffsetDateTime,
    pub last_auth: Option<OffsetDateTime>,
}

/// What the enrollment page stores once the user proved the factor.
#[derive(Clone, PartialEq, Eq)]
pub struct NewEnrollment<'a> {
    pub user_id: &'a str,
    pub factor: MfaFactor,
    pub name: Option<&'a str>,
    /// The email address, for the email factor.
    pub identifier: Option<&'a str>,
    /// For `otp` (required): the secret sealed with the MFA key (`TotpSecret::seal`).
    pub secret_sealed: Option<&'a [u8]>,
    /// For `otp`: the step of the code the user confirmed with, so it cannot be replayed at login.
    pub last_step: Option<u64>,
}

impl fmt::Debug for NewEnrollment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewEnrollment")
            .field("user_id", &self.user_id)
            .field("factor", &self.factor)
            .field("has_secret", &self.secret_sealed.is_some())
            .finish_non_exhaustive()
    }
}

/// An `otp` enrollment as the login check needs it: its sealed secret and replay guard.
#[derive(Clone, PartialEq, Eq)]
pub struct OtpEnrollment {
    pub id: String,
    pub user_id: String,
    pub secret_sealed: Vec<u8>,
    pub last_step: Option<u64>,
}

impl fmt::Debug for OtpEnrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtpEnrollment")
            .field("id", &self.id)
            .field("last_step", &self.last_step)
            .finish_non_exhaustive()
    }
}

/// An enrollment's sealed secret, as `herald mfa reseal` moves it to the current key.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub id: String,
    pub user_id: String,
    /// The factor's name, as the secret's associated data names it (`otp`).
    pub factor: String,
    pub secret_sealed: Vec<u8>,
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("id", &self.id)
            .field("factor", &self.factor)
            .finish_non_exhaustive()
    }
}

/// Whether one more login OTP check of a user may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpAttempt {
    /// Counted; `remaining` more fit in the current window.
    Allowed { remaining: u32 },
    /// The window's attempts are used up; the next window opens in `retry_after`.
    Refused { retry_after: Duration },
}

/// A code to store for an email-factor enrollment ticket.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailCodeSpec<'a> {
    pub ticket_hash: &'a TokenHash,
    pub user_id: &'a str,
    pub email: &'a str,
    /// `EmailCode::digest` (32 bytes); never the code.
    pub code_digest: &'a [u8],
    pub ttl: Duration,
    /// Codes one ticket may be sent in all (the first included).
    pub max_sends: u32,
}

impl fmt::Debug for EmailCodeSpec<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailCodeSpec")
            .field("user_id", &self.user_id)
            .field("ttl", &self.ttl)
            .field("max_sends", &self.max_sends)
            .finish_non_exhaustive()
    }
}

/// The answer to storing an emailed code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailCodeIssue {
    /// Stored (replacing any earlier code of the ticket, whose attempts start again); this is
    /// the ticket's `sends`-th code.
    Issued { sends: u32 },
    /// The ticket had `max_sends` codes already; nothing changed.
    TooManySends,
}

/// The answer to a typed email code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailCodeCheck {
    /// The right code: it is used up now (a second check of it is `Unknown`).
    Valid { user_id: String, email: String },
    /// Not the code; `attempts_left` more tries before the code is dead.
    Wrong { attempts_left: u32 },
    /// The code's time is up: send another.
    Expired,
    /// Tried too many times: send another.
    TooManyAttempts,
    /// No code was sent for this ticket (or it was used).
    Unknown,
}

const COLUMNS: &str = "id, user_id, factor, status, name, identifier, enrolled_at, last_auth";

fn enrollment(row: &sqlx::postgres::PgRow) -> Result<Enrollment, StoreError> {
    let factor: String = row.try_get("factor")?;
    Ok(Enrollment {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        factor: MfaFactor::from_db(&factor)
            .ok_or_else(|| StoreError::Invalid(format!("unknown MFA factor {factor:?}")))?,
        status: row.try_get("status")?,
        name: row.try_get("name")?,
        identifier: row.try_get("identifier")?,
        enrolled_at: row.try_get("enrolled_at")?,
        last_auth: row.try_get("last_auth")?,
    })
}

fn step(value: Option<i64>) -> Option<u64> {
    value.and_then(|s| u64::try_from(s).ok())
}

fn to_db_step(step: u64) -> Result<i64, StoreError> {
    i64::try_from(step).map_err(|_| StoreError::Invalid(format!("TOTP step {step} is too large")))
}

impl Store {
    /// Whether the user has any confirmed enrollment, on `conn` (the caller's transaction).
    /// It first takes a transaction-scoped lock on the user's enrollments, so two enrollment
    /// tickets of one user redeemed at once are taken in turn: the second sees the first's
    /// enrollment (and, without `allow_multiple_enrollments`, refuses).
    pub async fn has_confirmed_enrollment(
        conn: &mut PgConnection,
        user_id: &str,
    ) -> Result<bool, StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('herald.mfa:' || $1, 0))")
            .bind(user_id)
            .execute(&mut *conn)
            .await?;
        let found: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM mfa_enrollments \
             WHERE user_id = $1 AND status = 'confirmed')",
        )
        .bind(user_id)
        .fetch_one(&mut *conn)
        .await?;
        Ok(found)
    }

    /// Stores a confirmed enrollment on `conn` (the caller's transaction, the one that used the
    /// enrollment ticket), with a new Auth0-like id. An `otp` enrollment needs its sealed
    /// secret; an `email` one must have none.
    pub async fn insert_enrollment(
        conn: &mut PgConnection,
        new: &NewEnrollment<'_>,
    ) -> Result<Enrollment, StoreError> {
        if (new.factor == MfaFactor::Otp) != new.secret_sealed.is_some() {
            return Err(StoreError::Invalid(
                "an otp enrollment needs its sealed secret, and only an otp enrollment has one"
                    .to_owned(),
            ));
        }
        let hex = uuid::Uuid::new_v4().simple().to_string();
        let id = format!("{}|dev_{}", new.factor.id_prefix(), &hex[..16]);
        let last_step = new.last_step.map(to_db_step).transpose()?;
        let sql = format!(
            "INSERT INTO mfa_enrollments \
             (id, user_id, factor, name, identifier, secret_sealed, last_step) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&id)
            .bind(new.user_id)
            .bind(new.factor.as_str())
            .bind(new.name)
            .bind(new.identifier)
            .bind(new.secret_sealed)
            .bind(last_step)
            .fetch_one(&mut *conn)
            .await?;
        enrollment(&row)
    }

    /// The user's enrollments, oldest first.
    pub async fn list_enrollments(&self, user_id: &str) -> Result<Vec<Enrollment>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM mfa_enrollments WHERE user_id = $1 ORDER BY enrolled_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(enrollment).collect()
    }

    /// The enrollment with this id.
    pub async fn get_enrollment(&self, id: &str) -> Result<Option<Enrollment>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM mfa_enrollments WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(enrollment).transpose()
    }

    /// Deletes the enrollment; false when there was none.
    pub async fn delete_enrollment(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM mfa_enrollments WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    /// The user's `otp` enrollments with their sealed secrets, oldest first (the login check).
    pub async fn otp_enrollments(&self, user_id: &str) -> Result<Vec<OtpEnrollment>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, user_id, secret_sealed, last_step FROM mfa_enrollments \
             WHERE user_id = $1 AND factor = 'otp' AND status = 'confirmed' \
             ORDER BY enrolled_at, id",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OtpEnrollment {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    secret_sealed: row.try_get("secret_sealed")?,
                    last_step: step(row.try_get("last_step")?),
                })
            })
            .collect()
    }

    /// Replaces the sealed secret of enrollment `id` with `resealed` (the same secret under
    /// the current MFA key) if it is still `sealed`. False when it changed or is gone.
    pub async fn reseal_enrollment(
        &self,
        id: &str,
        sealed: &[u8],
        resealed: &[u8],
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE mfa_enrollments SET secret_sealed = $3 WHERE id = $1 AND secret_sealed = $2",
        )
        .bind(id)
        .bind(sealed)
        .bind(resealed)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Up to `limit` enrollments with a sealed secret whose key id is not `current_key_id`,
    /// after the enrollment id `after`, by id (`herald mfa reseal` pages through them).
    pub async fn enrollments_sealed_elsewhere(
        &self,
        current_key_id: &[u8],
        after: &str,
        limit: i64,
    ) -> Result<Vec<SealedSecret>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, user_id, factor, secret_sealed FROM mfa_enrollments \
             WHERE secret_sealed IS NOT NULL AND id > $2 \
               AND substring(secret_sealed FROM 1 FOR $3) <> $1 \
             ORDER BY id LIMIT $4",
        )
        .bind(current_key_id)
        .bind(after)
        .bind(i32::try_from(current_key_id.len()).unwrap_or(i32::MAX))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SealedSecret {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    factor: row.try_get("factor")?,
                    secret_sealed: row.try_get("secret_sealed")?,
                })
            })
            .collect()
    }

    /// Accepts `step` for the `otp` enrollment `id` if it is after the last accepted step, in
    /// one statement, and notes the authentication. False when the step (or a later one) was
    /// accepted already, by this call's rival or before: the code is a replay.
    pub async fn record_otp_step(&self, id: &str, step: u64) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE mfa_enrollments SET last_step = $2, last_auth = now() \
             WHERE id = $1 AND factor = 'otp' AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(id)
        .bind(to_db_step(step)?)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Counts one login OTP check of `user_id`: at most `max` in a fixed `window`, counted in
    /// PostgreSQL so that every replica shares the count. A success should
    /// [`Store::clear_otp_attempts`].
    pub async fn take_otp_attempt(
        &self,
        user_id: &str,
        max: u32,
        window: Duration,
    ) -> Result<OtpAttempt, StoreError> {
        let row = sqlx::query(
            "INSERT INTO mfa_otp_attempts AS a (user_id, window_start, attempts) \
             VALUES ($1, now(), 1) \
             ON CONFLICT (user_id) DO UPDATE SET \
               window_start = CASE WHEN a.window_start <= now() - make_interval(secs => $2) \
                              THEN now() ELSE a.window_start END, \
               attempts = CASE WHEN a.window_start <= now() - make_interval(secs => $2) \
                          THEN 1 ELSE a.attempts + 1 END \
             RETURNING attempts, \
               extract(epoch FROM window_start + make_interval(secs => $2) - now())::float8 AS left_s",
        )
        .bind(user_id)
        .bind(window.as_secs_f64())
        .fetch_one(self.pool())
        .await?;
        let attempts: i32 = row.try_get("attempts")?;
        let left: f64 = row.try_get("left_s")?;
        let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
        Ok(if attempts <= max {
            OtpAttempt::Allowed {
                remaining: max - attempts,
            }
        } else {
            OtpAttempt::Refused {
                retry_after: Duration::from_secs_f64(left.max(1.0)),
            }
        })
    }

    /// Forgets the user's counted login OTP checks (after a successful one).
    pub async fn clear_otp_attempts(&self, user_id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM mfa_otp_attempts WHERE user_id = $1")
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Stores the code emailed for an email-factor enrollment ticket, replacing an earlier one
    /// (whose attempts start again), unless the ticket had `max_sends` codes already.
    pub async fn issue_email_code(
        &self,
        spec: &EmailCodeSpec<'_>,
    ) -> Result<EmailCodeIssue, StoreError> {
        let sends: Option<i32> = sqlx::query_scalar(
            "INSERT INTO mfa_email_codes AS c \
             (ticket_hash, user_id, email, code_digest, expires_at) \
             VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) \
             ON CONFLICT (ticket_hash) DO UPDATE SET \
               user_id = EXCLUDED.user_id, email = EXCLUDED.email, \
               code_digest = EXCLUDED.code_digest, attempts = 0, sends = c.sends + 1, \
               created_at = now(), expires_at = EXCLUDED.expires_at \
             WHERE c.sends < $6 \
             RETURNING sends",
        )
        .bind(spec.ticket_hash.as_bytes())
        .bind(spec.user_id)
        .bind(spec.email)
        .bind(spec.code_digest)
        .bind(spec.ttl.as_secs_f64())
        .bind(i32::try_from(spec.max_sends).unwrap_or(i32::MAX))
        .fetch_optional(self.pool())
        .await?;
        Ok(match sends {
            Some(n) => EmailCodeIssue::Issued {
                sends: u32::try_from(n).unwrap_or(0),
            },
            None => EmailCodeIssue::TooManySends,
        })
    }

    /// Checks a typed code against the ticket's emailed one. The attempt is counted first, in
    /// its own statement (not in any caller's transaction, so a rolled-back page cannot undo
    /// it): at most `max_attempts` per code. `matches` compares the stored digest with the typed
    /// code's (herald-mfa `code_matches`, constant-time). The right code is deleted in the same
    /// step that accepts it, so of two concurrent checks of it one is `Valid`.
    pub async fn check_email_code(
        &self,
        ticket_hash: &TokenHash,
        max_attempts: u32,
        matches: impl FnOnce(&[u8]) -> bool,
    ) -> Result<EmailCodeCheck, StoreError> {
        let max = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        let counted = sqlx::query(
            "UPDATE mfa_email_codes SET attempts = attempts + 1 \
             WHERE ticket_hash = $1 AND expires_at > now() AND attempts < $2 \
             RETURNING code_digest, attempts",
        )
        .bind(ticket_hash.as_bytes())
        .bind(max)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = counted else {
            let state: Option<(bool, bool)> = sqlx::query_as(
                "SELECT expires_at <= now(), attempts >= $2 FROM mfa_email_codes \
                 WHERE ticket_hash = $1",
            )
            .bind(ticket_hash.as_bytes())
            .bind(max)
            .fetch_optional(self.pool())
            .await?;
            return Ok(match state {
                None => EmailCodeCheck::Unknown,
                Some((true, _)) => EmailCodeCheck::Expired,
                Some((false, _)) => EmailCodeCheck::TooManyAttempts,
            });
        };
        let digest: Vec<u8> = row.try_get("code_digest")?;
        let attempts: i32 = row.try_get("attempts")?;
        if !matches(&digest) {
            return Ok(EmailCodeCheck::Wrong {
                attempts_left: u32::try_from(max - attempts).unwrap_or(0),
            });
        }
        let used: Option<(String, String)> = sqlx::query_as(
            "DELETE FROM mfa_email_codes WHERE ticket_hash = $1 AND code_digest = $2 \
             RETURNING user_id, email",
        )
        .bind(ticket_hash.as_bytes())
        .bind(&digest)
        .fetch_optional(self.pool())
        .await?;
        Ok(match used {
            Some((user_id, email)) => EmailCodeCheck::Valid { user_id, email },
            None => EmailCodeCheck::Unknown,
        })
    }
}
