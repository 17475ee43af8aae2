//! The Management API's opaque tokens: created with a name, scopes and an optional expiry, found
//! by the SHA-256 of the presented token, listed and revoked. The token itself is never stored.

use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Store;
use crate::error::StoreError;

/// A token as the store knows it (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    pub id: Uuid,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
}

impl ApiTokenRecord {
    /// Neither revoked nor expired at `now`.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

const COLUMNS: &str = "id, name, scopes, created_at, expires_at, revoked_at, last_used_at";

fn record(row: &sqlx::postgres::PgRow) -> Result<ApiTokenRecord, StoreError> {
    Ok(ApiTokenRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        scopes: row.try_get("scopes")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        revoked_at: row.try_get("revoked_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

impl Store {
    /// Records a token by its hash.
    pub async fn create_api_token(
        &self,
        name: &str,
        token_hash: &[u8; 32],
        scopes: &[String],
        expires_at: Option<OffsetDateTime>,
    ) -> Result<ApiTokenRecord, StoreError> {
        let sql = format!(
            "INSERT INTO api_tokens (id, name, token_hash, scopes, expires_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(Uuid::now_v7())
            .bind(name)
            .bind(&token_hash[..])
            .bind(scopes)
            .bind(expires_at)
            .fetch_one(self.pool())
            .await?;
        record(&row)
    }

    /// The token whose hash this is, active or not (the caller decides).
    pub async fn api_token_by_hash(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<ApiTokenRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&token_hash[..])
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(record).transpose()
    }

    /// Every token, newest first.
    pub async fn list_api_tokens(&self) -> Result<Vec<ApiTokenRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens ORDER BY created_at DESC, id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(record).collect()
    }

    /// Revokes the token with this id or name; false when there is none (or it was revoked).
    pub async fn revoke_api_token(&self, id_or_name: &str) -> Result<bool, StoreError> {
        let id = Uuid::parse_str(id_or_name).ok();
        let revoked = sqlx::query(
            "UPDATE api_tokens SET revoked_at = now() \
             WHERE revoked_at IS NULL AND (id = $1 OR name = $2)",
        )
        .bind(id)
        .bind(id_or_name)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(revoked > 0)
    }

    /// Notes that the token was used (at most once a minute per token, to keep requests cheap).
    pub async fn touch_api_token(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = now() WHERE id = $1 \
             AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        )
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
