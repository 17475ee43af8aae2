//! Small checks on the strings callers send (length, no control characters, email syntax, path
//! ids), ids Herald makes up, and Auth0's timestamp format.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use rand::Rng;
use rand::distr::Alphanumeric;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::ApiError;

/// A property between `min` and `max` characters with no control characters (no CR/LF, so it
/// can never split a header or a log line).
pub fn check(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    let len = value.chars().count();
    if len < min {
        return Err(ApiError::invalid_property(
            format!("String is too short ({len} chars), minimum {min}"),
            field,
        ));
    }
    if len > max {
        return Err(ApiError::invalid_property(
            format!("String is too long ({len} chars), maximum {max}"),
            field,
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid_property(
            "String must not contain control characters",
            field,
        ));
    }
    Ok(())
}

/// An email address, checked and returned as given.
pub fn email(field: &str, value: &str) -> Result<String, ApiError> {
    check(field, value, 3, 320)?;
    herald_domain::EmailAddress::parse(value)
        .map(|_| value.to_owned())
        .map_err(|_| {
            ApiError::invalid_property("Object didn't pass validation for format email", field)
        })
}

/// An id taken from the path: 1–255 characters, none of them control characters.
pub fn path_id(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() || value.chars().count() > 255 || value.chars().any(char::is_control) {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            format!("Path validation error: 'String is not a valid id' on property {field}."),
            Some("invalid_uri"),
        ));
    }
    Ok(())
}

/// One path parameter as text. A path that does not decode (bad percent-encoding, invalid UTF-8)
/// is a 400 in Auth0's words, not axum's plain-text rejection.
#[derive(Debug, Clone)]
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| PathParam(value))
            .map_err(|e| ApiError::invalid_uri(e.body_text()))
    }
}

/// The `{id}` of a path (an organization, a client, a job), as the OpenAPI document states it;
/// [`path_id`] checks the same.
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdParam {
    #[param(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$"
    )]
    #[allow(dead_code)]
    id: String,
}

/// `n` random letters and digits.
pub fn random_id(n: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// Auth0's timestamps: RFC 3339 in UTC with milliseconds, `2023-04-18T19:25:53.189Z`.
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t
        .replace_nanosecond(t.millisecond() as u32 * 1_000_000)
        .unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_bounded_and_single_line() {
        assert!(check("name", "Ana", 1, 10).is_ok());
        assert!(check("name", "", 1, 10).is_err());
        assert!(check("name", &"a".repeat(11), 1, 10).is_err());
        assert!(
            check("name", "Ana\r\nBcc: x", 1, 100)
                .unwrap_err()
                .message
                .contains("control")
        );
        assert!(email("email", "ana@example.com").is_ok());
        assert!(email("email", "not an email").is_err());
    }

    #[test]
    fn timestamps_have_milliseconds_and_z() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_681_845_953_189_654_321).unwrap();
        assert_eq!(timestamp(t), "2023-04-18T19:25:53.189Z");
        assert_eq!(random_id(16).len(), 16);
    }
}
