//! Passwords given to the API: hashed with argon2id (OWASP's first recommendation:
//! m = 19 MiB, t = 2, p = 1) off the async runtime, a few at a time, never logged or returned.

use std::sync::LazyLock;

use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Hashes at once at most: each takes 19 MiB and tens of milliseconds of one core.
static HASHING: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(4));

/// The PHC string of `password` (which is checked for length first).
pub async fn hash(password: String) -> Result<String, ApiError> {
    if !(8..=128).contains(&password.chars().count()) {
        return Err(ApiError::invalid_property(
            "The password must be 8 to 128 characters long",
            "password",
        ));
    }
    let _permit = HASHING.acquire().await.map_err(|_| ApiError::internal())?;
    tokio::task::spawn_blocking(move || herald_domain::hash_password(&password))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| {
            tracing::error!(error = %e, "argon2 could not hash a password.");
            ApiError::internal()
        })
}
