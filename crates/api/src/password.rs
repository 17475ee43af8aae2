//! Passwords given to the API: length-checked, then hashed with argon2id off the async runtime
//! (`herald_password::hash`, which the pages share), never logged or returned.

use crate::error::ApiError;

/// The PHC string of `password` (which is checked for length first).
pub async fn hash(password: String) -> Result<String, ApiError> {
    if !(8..=herald_password::MAX_PASSWORD_CHARS).contains(&password.chars().count()) {
        return Err(ApiError::invalid_property(
            "The password must be 8 to 128 characters long",
            "password",
        ));
    }
    herald_password::hash(password).await.map_err(|e| {
        tracing::error!(error = %e, "argon2 could not hash a password.");
        ApiError::internal()
    })
}
