//! `ApiError`: every failure of the Management API as Auth0 shapes it,
//! `{"statusCode", "error", "message", "errorCode"}`, with the right status and headers.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// A failed request. `message` is shown to the caller as is, so it never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub error_code: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>, code: Option<&'static str>) -> Self {
        ApiError {
            status,
            message: message.into(),
            error_code: code,
        }
    }

    /// 400 for a body that breaks the schema: `Payload validation error: '<reason>'.`
    pub fn invalid_body(reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("Payload validation error: '{reason}'."),
            Some("invalid_body"),
        )
    }

    /// 400 for one property that breaks the schema or a rule:
    /// `Payload validation error: '<reason>' on property <name>.`
    pub fn invalid_property(reason: impl std::fmt::Display, property: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("Payload validation error: '{reason}' on property {property}."),
            Some("invalid_body"),
        )
    }

    /// 400 for a path or query parameter that breaks the schema.
    pub fn invalid_uri(reason: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("Path validation error: '{reason}'."),
            Some("invalid_uri"),
        )
    }

    /// 400 for a request the schema allows but a rule forbids.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message, Some("invalid_body"))
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message, None)
    }

    /// 403 naming the scopes that would have been enough.
    pub fn insufficient_scope(any_of: &[&str]) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            format!("Insufficient scope, expected any of: {}", any_of.join(", ")),
            Some("insufficient_scope"),
        )
    }

    pub fn not_found(message: impl Into<String>, code: Option<&'static str>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message, code)
    }

    pub fn conflict(message: impl Into<String>, code: Option<&'static str>) -> Self {
        Self::new(StatusCode::CONFLICT, message, code)
    }

    pub fn too_many_requests() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Global limit has been reached",
            Some("too_many_requests"),
        )
    }

    /// 503 when a dependency (database, broker) is unavailable: worth retrying.
    pub fn unavailable(what: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("The {what} is unavailable; try again shortly."),
            Some("temporarily_unavailable"),
        )
    }

    /// 500 without details (they go to the log, not to the caller).
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error.",
            Some("internal_error"),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_transient() {
            tracing::warn!(error = %e, "The database is unavailable.");
            ApiError::unavailable("database")
        } else {
            tracing::error!(error = %e, "A database call failed.");
            ApiError::internal()
        }
    }
}

/// Auth0's error body: what every failed `/api/v2` request answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Error)]
pub struct ErrorBody {
    /// The HTTP status, repeated.
    #[schema(example = 404)]
    pub status_code: u16,
    /// The status's reason phrase.
    #[schema(example = "Not Found")]
    pub error: String,
    /// What went wrong, in Auth0's words.
    #[schema(example = "The user does not exist.")]
    pub message: String,
    /// A stable code for programs (`invalid_body`, `invalid_uri`, `insufficient_scope`,
    /// `inexistent_user`, `too_many_requests`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "inexistent_user")]
    pub error_code: Option<&'static str>,
    /// On a 401 only: the message again, where Auth0 puts it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<ErrorAttributes>,
}

/// The `attributes` of a 401.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorAttributes {
    pub error: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let reason = self.status.canonical_reason().unwrap_or("Error");
        let body = ErrorBody {
            status_code: self.status.as_u16(),
            error: reason.to_owned(),
            message: self.message.clone(),
            error_code: self.error_code,
            attributes: (self.status == StatusCode::UNAUTHORIZED).then(|| ErrorAttributes {
                error: self.message.clone(),
            }),
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = format!(
                "Bearer realm=\"herald\", error=\"invalid_token\", error_description=\"{}\"",
                self.message.replace('"', "'")
            );
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    async fn body(e: ApiError) -> (StatusCode, serde_json::Value, Option<String>) {
        let response = e.into_response();
        let status = response.status();
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap(), challenge)
    }

    #[tokio::test]
    async fn errors_have_auth0s_shape() {
        let (status, json, _) = body(ApiError::insufficient_scope(&["update:users"])).await;
        assert_eq!(status, 403);
        assert_eq!(
            json,
            json!({"statusCode": 403, "error": "Forbidden",
                   "message": "Insufficient scope, expected any of: update:users",
                   "errorCode": "insufficient_scope"})
        );
        let (status, json, challenge) = body(ApiError::unauthorized("Invalid token")).await;
        assert_eq!(status, 401);
        assert_eq!(json["attributes"]["error"], "Invalid token");
        assert!(challenge.unwrap().contains("error=\"invalid_token\""));
        let (_, json, _) = body(ApiError::not_found("Job not found.", None)).await;
        assert!(json.get("errorCode").is_none());
    }
}
