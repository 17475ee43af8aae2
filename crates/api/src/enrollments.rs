//! MFA enrollments on the Management API: `GET /users/{id}/enrollments` and
//! `DELETE /guardian/enrollments/{id}` as Auth0 has them, and Herald's extension
//! `POST /x-herald/users/{id}/otp-verifications`, which checks a user's TOTP code at login for an
//! identity service that never sees the secret.
//!
//! The login check accepts each code once (the enrollment's last accepted time step moves
//! forward in one UPDATE, so of two replicas checking one code at once one accepts it) and
//! counts attempts per user in PostgreSQL: [`OTP_ATTEMPTS`] per [`OTP_WINDOW`], shared by every
//! replica, cleared by a success. The secret is opened in memory for the check and never
//! returned or logged.

use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_mfa::{CodeRefused, TotpSecret};
use herald_store::{Enrollment, MfaFactor, OtpAttempt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::payload::{FormFields, Payload};
use crate::state::ApiState;
use crate::text::{self, IdParam, PathParam, timestamp};
use crate::users::{UserIdParam, no_such_user};

/// Login OTP checks allowed per user in one [`OTP_WINDOW`].
pub const OTP_ATTEMPTS: u32 = 5;
/// The fixed window [`OTP_ATTEMPTS`] are counted in.
pub const OTP_WINDOW: Duration = Duration::from_secs(15 * 60);

/// An enrollment as Auth0 lists it. Herald stores confirmed enrollments only.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserEnrollment {
    /// `totp|dev_…` or `email|dev_…`.
    #[schema(example = "totp|dev_0d9f3c1a2b4e5f60")]
    id: String,
    #[schema(example = "confirmed")]
    status: String,
    /// `authenticator` (an OTP app) or `email`.
    #[serde(rename = "type")]
    #[schema(example = "authenticator")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// The email address, for the email factor.
    #[serde(skip_serializing_if = "Option::is_none")]
    identifier: Option<String>,
    /// `authenticator` or `email`.
    #[schema(example = "authenticator")]
    auth_method: &'static str,
    #[schema(format = DateTime, example = "2023-04-18T19:25:53.189Z")]
    enrolled_at: String,
    /// The last successful login check (absent before the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    last_auth: Option<String>,
}

impl From<&Enrollment> for UserEnrollment {
    fn from(e: &Enrollment) -> Self {
        // Auth0's auth_method names an OTP app `authenticator`; its enum has no email value,
        // so Herald answers `email`, which the SDKs accept (the enum is open).
        let kind = match e.factor {
            MfaFactor::Otp => "authenticator",
            MfaFactor::Email => "email",
        };
        UserEnrollment {
            id: e.id.clone(),
            status: e.status.clone(),
            kind,
            name: e.name.clone(),
            identifier: e.identifier.clone(),
            auth_method: kind,
            enrolled_at: timestamp(e.enrolled_at),
            last_auth: e.last_auth.map(timestamp),
        }
    }
}

/// The code a user typed at login.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpVerification {
    /// The six digits the user's authenticator app shows (spaces are ignored).
    #[schema(
        min_length = 1,
        max_length = 16,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]+$",
        example = "123456",
        write_only
    )]
    code: String,
}

impl std::fmt::Debug for OtpVerification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtpVerification(..)")
    }
}

impl FormFields for OtpVerification {}

/// The answer of a login OTP check.
#[derive(Debug, Serialize, ToSchema)]
pub struct OtpVerificationResult {
    /// True once per code: the user proved the factor.
    valid: bool,
    /// The enrollment the code belongs to, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    enrollment_id: Option<String>,
    /// When not valid: `invalid_code` (wrong or out of time) or `code_already_used`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "invalid_code")]
    reason: Option<&'static str>,
    /// When not valid: checks left for this user in the current window.
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts_remaining: Option<u32>,
}

/// The MFA enrollments of a user.
#[utoipa::path(
    get,
    path = "/users/{id}/enrollments",
    tag = "users",
    operation_id = "get_enrollments",
    params(UserIdParam),
    responses(
        (status = 200, description = "The user's confirmed enrollments, oldest first.", body = Vec<UserEnrollment>),
        (status = 400, description = "The id breaks the schema.", body = ErrorBody),
        (status = 404, description = "No such user.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["read:users"])),
)]
pub async fn list(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(id): PathParam,
) -> Result<Json<Vec<UserEnrollment>>, ApiError> {
    caller.require(&["read:users"])?;
    text::path_id("id", &id)?;
    state
        .store()
        .get_user(&id)
        .await?
        .ok_or_else(no_such_user)?;
    let enrollments = state.store().list_enrollments(&id).await?;
    Ok(Json(enrollments.iter().map(UserEnrollment::from).collect()))
}

/// Deletes an MFA enrollment: the factor no longer works at login.
#[utoipa::path(
    delete,
    path = "/guardian/enrollments/{id}",
    tag = "guardian",
    operation_id = "delete_enrollments_by_id",
    params(IdParam),
    responses(
        (status = 204, description = "The enrollment is gone."),
        (status = 400, description = "The id breaks the schema.", body = ErrorBody),
        (status = 404, description = "No such enrollment.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["delete:guardian_enrollments"])),
)]
pub async fn delete(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(id): PathParam,
) -> Result<StatusCode, ApiError> {
    caller.require(&["delete:guardian_enrollments"])?;
    text::path_id("id", &id)?;
    if state.store().delete_enrollment(&id).await? {
        tracing::info!(enrollment_id = %id, "An MFA enrollment was deleted.");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_such_enrollment())
    }
}

/// Herald extension: checks a TOTP code of the user at login, without revealing the secret.
/// A code is accepted once; attempts are limited per user across replicas.
#[utoipa::path(
    post,
    path = "/x-herald/users/{id}/otp-verifications",
    tag = "x-herald",
    operation_id = "post_x_herald_otp_verifications",
    params(UserIdParam),
    request_body(content(
        (OtpVerification = "application/json"),
        (OtpVerification = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "Whether the code is valid (once per code).", body = OtpVerificationResult),
        (status = 400, description = "The body or the id breaks the schema.", body = ErrorBody),
        (status = 404, description = "The user has no confirmed otp enrollment.", body = ErrorBody),
        (status = 429, description = "The user's checks for this window are used up (see retry-after).", body = ErrorBody),
    ),
    security(("bearerAuth" = ["verify:mfa_otp"])),
)]
pub async fn verify_otp(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(user_id): PathParam,
    Payload(body): Payload<OtpVerification>,
) -> Result<Response, ApiError> {
    caller.require(&["verify:mfa_otp"])?;
    text::path_id("id", &user_id)?;
    text::check("code", &body.code, 1, 16)?;
    let store = state.store();
    let enrollments = store.otp_enrollments(&user_id).await?;
    if enrollments.is_empty() {
        return Err(ApiError::not_found(
            "The user has no confirmed otp enrollment.",
            Some("inexistent_enrollment"),
        ));
    }
    let remaining = match store
        .take_otp_attempt(&user_id, OTP_ATTEMPTS, OTP_WINDOW)
        .await?
    {
        OtpAttempt::Allowed { remaining } => remaining,
        OtpAttempt::Refused { retry_after } => {
            tracing::warn!(user_id = %user_id, "Login OTP checks of a user were refused: too many attempts.");
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many OTP attempts for this user; try again later.",
                Some("too_many_attempts"),
            )
            .into_response();
            let wait = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            return Ok(response);
        }
    };
    let mut replayed = false;
    for enrollment in &enrollments {
        let keys = &state.config().mfa_keys;
        let secret = match TotpSecret::open(keys, &user_id, &enrollment.secret_sealed) {
            Ok(secret) => secret,
            Err(e) => {
                tracing::error!(enrollment_id = %enrollment.id, error = %e, "An OTP enrollment's secret does not open.");
                continue;
            }
        };
        match secret.verify_now(&body.code, enrollment.last_step) {
            Ok(step) if store.record_otp_step(&enrollment.id, step).await? => {
                store.clear_otp_attempts(&user_id).await?;
                if !herald_mfa::seal::is_sealed_under(keys.current(), &enrollment.secret_sealed) {
                    // Sealed under a previous key: moved to the current one while it is open.
                    let resealed = secret.seal(keys.current(), &user_id);
                    if let Err(e) = store
                        .reseal_enrollment(&enrollment.id, &enrollment.secret_sealed, &resealed)
                        .await
                    {
                        tracing::warn!(enrollment_id = %enrollment.id, error = %e, "Could not reseal an OTP secret under the current MFA key; `herald mfa reseal` will.");
                    }
                }
                return Ok(Json(OtpVerificationResult {
                    valid: true,
                    enrollment_id: Some(enrollment.id.clone()),
                    reason: None,
                    attempts_remaining: None,
                })
                .into_response());
            }
            // Another check accepted this step (or a later one) first.
            Ok(_) | Err(CodeRefused::Replayed) => replayed = true,
            Err(CodeRefused::Wrong) => {}
        }
    }
    Ok(Json(OtpVerificationResult {
        valid: false,
        enrollment_id: None,
        reason: Some(if replayed {
            "code_already_used"
        } else {
            "invalid_code"
        }),
        attempts_remaining: Some(remaining),
    })
    .into_response())
}

/// Herald's answer for an unknown enrollment id (Auth0's own body for it is unconfirmed).
pub fn no_such_enrollment() -> ApiError {
    ApiError::not_found(
        "The enrollment does not exist.",
        Some("inexistent_enrollment"),
    )
}
