//! The user registry behind the Management API's `/users`: Auth0-shaped users, looked up by id
//! or email, created, patched (metadata merged on the first level, as Auth0 does) and deleted.
//! A password is only ever stored as the PHC string the caller hashed.

use serde_json::Value;
use sqlx::Row;
use time::OffsetDateTime;

use crate::Store;
use crate::error::StoreError;

/// A user as the API returns it (never with its password hash).
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub user_id: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub nickname: Option<String>,
    pub picture: Option<String>,
    pub user_metadata: Value,
    pub app_metadata: Value,
    pub blocked: bool,
    pub connection: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// The fields of a new user. `password_hash` is an argon2id PHC string, never a password.
#[derive(Clone, Default, PartialEq)]
pub struct NewUser {
    pub user_id: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub nickname: Option<String>,
    pub picture: Option<String>,
    pub user_metadata: Option<Value>,
    pub app_metadata: Option<Value>,
    pub blocked: bool,
    pub connection: String,
    pub password_hash: Option<String>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("user_id", &self.user_id)
            .field("connection", &self.connection)
            .field("has_password", &self.password_hash.is_some())
            .finish_non_exhaustive()
    }
}

/// A PATCH: `None` leaves a field as it is. Metadata objects are merged into the stored ones on
/// the first level, and a key set to `null` is removed.
#[derive(Clone, Default, PartialEq)]
pub struct UserPatch {
    pub email: Option<String>,
    pub email_verified: Option<bool>,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub nickname: Option<String>,
    pub picture: Option<String>,
    pub user_metadata: Option<Value>,
    pub app_metadata: Option<Value>,
    pub blocked: Option<bool>,
    pub connection: Option<String>,
    pub password_hash: Option<String>,
}

impl std::fmt::Debug for UserPatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserPatch")
            .field("email", &self.email)
            .field("has_password", &self.password_hash.is_some())
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "user_id, email, email_verified, name, given_name, family_name, nickname, \
                       picture, user_metadata, app_metadata, blocked, connection, created_at, \
                       updated_at";

fn record(row: &sqlx::postgres::PgRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        email_verified: row.try_get("email_verified")?,
        name: row.try_get("name")?,
        given_name: row.try_get("given_name")?,
        family_name: row.try_get("family_name")?,
        nickname: row.try_get("nickname")?,
        picture: row.try_get("picture")?,
        user_metadata: row.try_get("user_metadata")?,
        app_metadata: row.try_get("app_metadata")?,
        blocked: row.try_get("blocked")?,
        connection: row.try_get("connection")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

impl Store {
    /// Creates a user. A taken `user_id`, or an email already used on the same connection, is a
    /// unique violation ([`StoreError::is_unique_violation`]).
    pub async fn create_user(&self, user: &NewUser) -> Result<UserRecord, StoreError> {
        let sql = format!(
            "INSERT INTO users (user_id, email, email_verified, name, given_name, family_name, \
             nickname, picture, user_metadata, app_metadata, blocked, connection, password_hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, COALESCE($9, '{{}}'::jsonb), \
             COALESCE($10, '{{}}'::jsonb), $11, $12, $13) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&user.user_id)
            .bind(&user.email)
            .bind(user.email_verified)
            .bind(&user.name)
            .bind(&user.given_name)
            .bind(&user.family_name)
            .bind(&user.nickname)
            .bind(&user.picture)
            .bind(&user.user_metadata)
            .bind(&user.app_metadata)
            .bind(user.blocked)
            .bind(&user.connection)
            .bind(&user.password_hash)
            .fetch_one(self.pool())
            .await?;
        record(&row)
    }

    pub async fn get_user(&self, user_id: &str) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE user_id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// Every user with this email (case-insensitive), on any connection, oldest first.
    pub async fn users_by_email(&self, email: &str) -> Result<Vec<UserRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM users WHERE lower(email) = lower($1) ORDER BY created_at, user_id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(email)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(record).collect()
    }

    /// The user with this email on this connection.
    pub async fn user_by_connection_email(
        &self,
        connection: &str,
        email: &str,
    ) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM users WHERE connection = $1 AND lower(email) = lower($2)"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(connection)
            .bind(email)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// Applies a PATCH in one statement; `None` when there is no such user.
    pub async fn update_user(
        &self,
        user_id: &str,
        patch: &UserPatch,
    ) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!(
            "UPDATE users SET \
               email = COALESCE($2, email), \
               email_verified = COALESCE($3, email_verified), \
               name = COALESCE($4, name), \
               given_name = COALESCE($5, given_name), \
               family_name = COALESCE($6, family_name), \
               nickname = COALESCE($7, nickname), \
               picture = COALESCE($8, picture), \
               user_metadata = CASE WHEN $9::jsonb IS NULL THEN user_metadata \
                               ELSE jsonb_strip_nulls(user_metadata || $9::jsonb) END, \
               app_metadata = CASE WHEN $10::jsonb IS NULL THEN app_metadata \
                              ELSE jsonb_strip_nulls(app_metadata || $10::jsonb) END, \
               blocked = COALESCE($11, blocked), \
               connection = COALESCE($12, connection), \
               password_hash = COALESCE($13, password_hash), \
               updated_at = now() \
             WHERE user_id = $1 RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user_id)
            .bind(&patch.email)
            .bind(patch.email_verified)
            .bind(&patch.name)
            .bind(&patch.given_name)
            .bind(&patch.family_name)
            .bind(&patch.nickname)
            .bind(&patch.picture)
            .bind(&patch.user_metadata)
            .bind(&patch.app_metadata)
            .bind(patch.blocked)
            .bind(&patch.connection)
            .bind(&patch.password_hash)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// The connections users are on.
    pub async fn user_connections(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT connection FROM users ORDER BY 1")
                .fetch_all(self.pool())
                .await?,
        )
    }

    /// Deletes the user, with their MFA enrollments and counted OTP checks; false when there
    /// was no such user.
    pub async fn delete_user(&self, user_id: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query(
            "WITH factors AS (DELETE FROM mfa_enrollments WHERE user_id = $1), \
             attempts AS (DELETE FROM mfa_otp_attempts WHERE user_id = $1) \
             DELETE FROM users WHERE user_id = $1",
        )
        .bind(user_id)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(deleted > 0)
    }
}
