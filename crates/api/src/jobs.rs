//! `POST /jobs/verification-email` and `GET /jobs/{id}`: a verification email for a known user,
//! published as a contract-v1 job through the producer (the answer waits for the broker's
//! confirm) and recorded in the ledger first, so its status can be read at once.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use herald_domain::{EmailJob, WireJob};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::payload::{FormFields, Payload};
use crate::state::ApiState;
use crate::text::timestamp;
use crate::text::{IdParam, PathParam};
use crate::tickets::{Identity, check_registry, validated, wire_for};
use herald_store::UserRecord;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationEmailJob {
    /// The user to send the email to (it must have an email address).
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$",
        example = "auth0|5f7c8ec7c33c6c004bbafe82"
    )]
    user_id: String,
    /// A registered client: its name and login URI appear in the email.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    client_id: Option<String>,
    /// A registered organization: its branding and sender are used.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    organization_id: Option<String>,
    /// In a form body: the identity as a JSON string.
    #[serde(default, deserialize_with = "crate::payload::object")]
    identity: Option<Identity>,
}

/// A job as `POST /jobs/verification-email` and `GET /jobs/{id}` return it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Job {
    /// `verification_email`, or the type of a job another door published.
    #[serde(rename = "type")]
    #[schema(example = "verification_email")]
    kind: String,
    /// `pending`, `completed`, `failed` or Herald's `skipped` (the template is disabled).
    #[schema(example = "pending")]
    status: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(example = "job_18c0a5e2f1aB3dE5fG7hJ9kL")]
    id: String,
    /// Why a job failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    status_details: Option<String>,
}

impl FormFields for VerificationEmailJob {
    const OBJECTS: &'static [&'static str] = &["identity"];
}

/// The locale a user's metadata asks for: `user_metadata.lang`, else `user_metadata.locale`
/// (Auth0's documented patterns). It joins the job's locale negotiation.
pub fn user_locale(user: &UserRecord) -> Option<String> {
    ["lang", "locale"].iter().find_map(|key| {
        user.user_metadata
            .get(key)
            .and_then(Value::as_str)
            .filter(|l| (2..=35).contains(&l.len()))
            .map(str::to_owned)
    })
}

/// Sends a user the email that verifies its address: the job is recorded, then published, and the
/// answer waits for the broker's confirm.
#[utoipa::path(
    post,
    path = "/jobs/verification-email",
    tag = "jobs",
    operation_id = "post_verification_email",
    params(("auth0-custom-domain" = Option<String>, Header, description = "Build the link on this domain (one of HERALD_ALLOWED_CUSTOM_DOMAINS).")),
    request_body(content(
        (VerificationEmailJob = "application/json"),
        (VerificationEmailJob = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 201, description = "The job was queued.", body = Job),
        (status = 400, description = "The body breaks the schema or a rule (unknown organization or client, a user without email, a custom domain not allowed).", body = ErrorBody),
        (status = 404, description = "No such user.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["update:users"])),
)]
pub async fn verification_email(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    Payload(body): Payload<VerificationEmailJob>,
) -> Result<(StatusCode, Json<Job>), ApiError> {
    caller.require(&["update:users"])?;
    let custom_domain = crate::custom_domain(&state, &headers)?;
    crate::text::check("user_id", &body.user_id, 1, 255)?;
    let user = state
        .store()
        .get_user(&body.user_id)
        .await?
        .ok_or_else(crate::users::no_such_user)?;
    crate::tickets::check_identity_of(&user, body.identity.as_ref())?;
    let wire = WireJob {
        kind: "verification_email".into(),
        client_id: body.client_id,
        organization_id: body.organization_id,
        custom_domain,
        ..wire_for(&user)?
    };
    // The worker fills the ticket fields the job leaves out from the tenant's template.
    let job = validated(wire)?;
    check_registry(&state, &job).await?;
    let created = timestamp(record(&state, &job).await?);
    publish_recorded(&state, &job).await?;
    Ok((
        StatusCode::CREATED,
        Json(Job {
            kind: "verification_email".into(),
            status: "pending".into(),
            created_at: created,
            id: job.id.as_str().to_owned(),
            status_details: None,
        }),
    ))
}

/// A job's status.
#[utoipa::path(
    get,
    path = "/jobs/{id}",
    tag = "jobs",
    operation_id = "get_jobs_by_id",
    params(IdParam),
    responses(
        (status = 200, description = "The job.", body = Job),
        (status = 400, description = "The id breaks the schema.", body = ErrorBody),
        (status = 404, description = "No such job.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["create:users", "read:users"])),
)]
pub async fn get(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    PathParam(id): PathParam,
) -> Result<Json<Job>, ApiError> {
    caller.require(&["create:users", "read:users"])?;
    crate::text::path_id("id", &id)?;
    let job = state
        .store()
        .job(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("Job not found.", None))?;
    // Auth0's statuses, plus Herald's `skipped`: the tenant disabled the job's template.
    let (status, details) = match job.status.as_str() {
        "sent" => ("completed", None),
        "dead" => (
            "failed",
            Some(format!(
                "dead-lettered: {}",
                job.dead_reason.as_deref().unwrap_or("unknown")
            )),
        ),
        "skipped" => (
            "skipped",
            Some(format!(
                "not sent: the {} email template is disabled (enabled: false)",
                template_of(&job.kind)
            )),
        ),
        _ => ("pending", None),
    };
    Ok(Json(Job {
        kind: job.kind,
        status: status.to_owned(),
        created_at: timestamp(job.created_at),
        id: job.id,
        status_details: details,
    }))
}

/// Enqueues the verification email a newly created user gets (as Auth0 sends one).
pub async fn send_verification(state: &ApiState, user: &UserRecord) -> Result<(), ApiError> {
    let wire = WireJob {
        kind: "verification_email".into(),
        ..wire_for(user)?
    };
    let job = validated(wire)?;
    record(state, &job).await?;
    publish_recorded(state, &job).await
}

/// Records the job as `queued` in the ledger; returns when it was recorded.
pub async fn record(state: &ApiState, job: &EmailJob) -> Result<time::OffsetDateTime, ApiError> {
    Ok(state.store().record_queued_job(job).await?)
}

/// Publishes a recorded job and waits for the broker's confirm. If the broker does not
/// confirm, the record is removed again and the caller gets a 503 (nothing was sent).
pub async fn publish_recorded(state: &ApiState, job: &EmailJob) -> Result<(), ApiError> {
    if let Err(e) = state.producer().publish(job).await {
        tracing::warn!(error = %e, job_id = %job.id, "Could not publish a job for the API.");
        if let Err(e) = state.store().forget_unpublished_job(job.id.as_str()).await {
            tracing::warn!(error = %e, "Could not remove the unpublished job's record.");
        }
        return Err(ApiError::unavailable("message broker"));
    }
    Ok(())
}

/// The template name of a ledger job's type (`verification_email` → `verify_email`).
fn template_of(kind: &str) -> &'static str {
    herald_domain::JobKind::from_type_name(kind).map_or("", |k| k.template().as_str())
}
