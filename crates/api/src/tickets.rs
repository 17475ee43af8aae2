//! `POST /tickets/email-verification`, `POST /tickets/password-change` and
//! `POST /guardian/enrollments/ticket`: tickets issued over HTTP, with no job behind them, in the
//! same hashed storage and with the same link shapes as the worker's. The body is checked by the
//! AMQP contract's own rules (it is turned into the job that would issue the same ticket), so a
//! rule holds the same way on both doors.

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use herald_domain::job::WireUser;
use herald_domain::{EmailJob, EnrollmentFactor, TicketPurpose, WireJob, ticket_base};
use herald_store::{TicketSpec, UserRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::payload::{FormFields, Payload};
use crate::state::ApiState;
use crate::users::no_such_user;

/// An identity of the user, as Auth0 accepts it. Herald's users have one, `auth0`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The id without its provider.
    #[schema(min_length = 1, max_length = 255)]
    user_id: String,
    #[schema(example = "auth0", min_length = 1, max_length = 255)]
    provider: String,
    /// Accepted as Auth0 accepts it; a Herald user has one identity, so it decides nothing.
    #[allow(dead_code)]
    connection_id: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailTicket {
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$",
        example = "auth0|5f7c8ec7c33c6c004bbafe82"
    )]
    user_id: String,
    /// Where the page sends the user afterwards (not together with `client_id` or
    /// `organization_id`).
    #[schema(value_type = Option<crate::openapi::HttpUrl>)]
    result_url: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    client_id: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    organization_id: Option<String>,
    /// How long the ticket is valid, in seconds (0: the default, 5 days).
    #[schema(minimum = 0, maximum = 31_536_000)]
    #[serde(default, deserialize_with = "crate::payload::integer")]
    ttl_sec: Option<i64>,
    #[serde(rename = "includeEmailInRedirect")]
    include_email_in_redirect: Option<bool>,
    /// In a form body: the identity as a JSON string.
    #[serde(default, deserialize_with = "crate::payload::object")]
    identity: Option<Identity>,
}

impl FormFields for VerifyEmailTicket {
    const BOOLEANS: &'static [&'static str] = &["includeEmailInRedirect"];
    const INTEGERS: &'static [&'static str] = &["ttl_sec"];
    const OBJECTS: &'static [&'static str] = &["identity"];
}

/// Names the user by `user_id`, or by `email` together with `connection_id`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeTicket {
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    user_id: Option<String>,
    #[schema(format = Email, min_length = 3, max_length = 320)]
    email: Option<String>,
    /// `con_` and 16 letters or digits.
    #[schema(pattern = "^con_[A-Za-z0-9]{16}$")]
    connection_id: Option<String>,
    #[schema(value_type = Option<crate::openapi::HttpUrl>)]
    result_url: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    client_id: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    organization_id: Option<String>,
    /// How long the ticket is valid, in seconds (0: the default, 5 days).
    #[schema(minimum = 0, maximum = 31_536_000)]
    #[serde(default, deserialize_with = "crate::payload::integer")]
    ttl_sec: Option<i64>,
    mark_email_as_verified: Option<bool>,
    #[serde(rename = "includeEmailInRedirect")]
    include_email_in_redirect: Option<bool>,
    /// In a form body: the identity as a JSON string.
    #[serde(default, deserialize_with = "crate::payload::object")]
    identity: Option<Identity>,
}

impl FormFields for PasswordChangeTicket {
    const BOOLEANS: &'static [&'static str] = &["includeEmailInRedirect", "mark_email_as_verified"];
    const INTEGERS: &'static [&'static str] = &["ttl_sec"];
    const OBJECTS: &'static [&'static str] = &["identity"];
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollmentTicket {
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$"
    )]
    user_id: String,
    /// Send the email here instead of the user's address.
    #[schema(format = Email, min_length = 3, max_length = 320)]
    email: Option<String>,
    /// Email the ticket to the user (default false).
    send_mail: Option<bool>,
    /// The email's language, a BCP 47 tag such as `fr` or `pt-BR`.
    #[schema(
        min_length = 2,
        max_length = 35,
        pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$",
        example = "fr"
    )]
    email_locale: Option<String>,
    /// Herald enrolls `otp` and `email`; Auth0's other factors are refused with a 400.
    #[schema(value_type = Option<String>, example = "otp")]
    factor: Option<EnrollmentFactor>,
    allow_multiple_enrollments: Option<bool>,
}

/// The link of an email-verification or password-change ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ticket {
    #[schema(
        format = "uri",
        example = "https://id.example.com/u/email-verification?ticket=…"
    )]
    ticket: String,
}

/// An MFA enrollment ticket.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnrollmentTicketIssued {
    ticket_id: String,
    #[schema(format = "uri")]
    ticket_url: String,
}

impl FormFields for EnrollmentTicket {
    const BOOLEANS: &'static [&'static str] = &["send_mail", "allow_multiple_enrollments"];
}

/// A ticket (link) that verifies the user's email address when followed.
#[utoipa::path(
    post,
    path = "/tickets/email-verification",
    tag = "tickets",
    operation_id = "post_email_verification",
    params(("auth0-custom-domain" = Option<String>, Header, description = "Build the link on this domain (one of HERALD_ALLOWED_CUSTOM_DOMAINS).")),
    request_body(content(
        (VerifyEmailTicket = "application/json"),
        (VerifyEmailTicket = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 201, description = "The ticket.", body = Ticket),
        (status = 400, description = "The body breaks the schema or a rule (unknown organization or client, result_url with client_id, an identity the user lacks, a user without email).", body = ErrorBody),
        (status = 404, description = "No such user.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["create:user_tickets"])),
)]
pub async fn email_verification(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    Payload(body): Payload<VerifyEmailTicket>,
) -> Result<(StatusCode, Json<Ticket>), ApiError> {
    caller.require(&["create:user_tickets"])?;
    let custom_domain = crate::custom_domain(&state, &headers)?;
    let user = user(&state, &body.user_id).await?;
    check_identity_of(&user, body.identity.as_ref())?;
    let wire = WireJob {
        kind: "verification_email".into(),
        client_id: body.client_id,
        organization_id: body.organization_id,
        result_url: body.result_url,
        ttl_sec: ttl(body.ttl_sec)?,
        include_email_in_redirect: body.include_email_in_redirect,
        custom_domain,
        ..wire_for(&user)?
    };
    let url = issue(&state, wire).await?;
    Ok((StatusCode::CREATED, Json(Ticket { ticket: url })))
}

/// A ticket (link) that lets the user choose a new password.
#[utoipa::path(
    post,
    path = "/tickets/password-change",
    tag = "tickets",
    operation_id = "post_password_change",
    params(("auth0-custom-domain" = Option<String>, Header, description = "Build the link on this domain (one of HERALD_ALLOWED_CUSTOM_DOMAINS).")),
    request_body(content(
        (PasswordChangeTicket = "application/json"),
        (PasswordChangeTicket = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 201, description = "The ticket.", body = Ticket),
        (status = 400, description = "The body breaks the schema or a rule (neither user_id nor email with connection_id, unknown connection, organization or client).", body = ErrorBody),
        (status = 404, description = "No such user.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["create:user_tickets"])),
)]
pub async fn password_change(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    Payload(body): Payload<PasswordChangeTicket>,
) -> Result<(StatusCode, Json<Ticket>), ApiError> {
    caller.require(&["create:user_tickets"])?;
    let custom_domain = crate::custom_domain(&state, &headers)?;
    let user = match (&body.user_id, &body.email, &body.connection_id) {
        (Some(id), None, None) => user(&state, id).await?,
        (Some(_), _, _) => {
            return Err(ApiError::bad_request(
                "user_id cannot be specified when using email or connection_id",
            ));
        }
        (None, Some(email), Some(connection_id)) => {
            crate::text::email("email", email)?;
            let connection = crate::connections::by_id(&state, connection_id)
                .await?
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "The connection with id {connection_id} does not exist."
                    ))
                })?;
            state
                .store()
                .user_by_connection_email(&connection, email)
                .await?
                .ok_or_else(no_such_user)?
        }
        (None, Some(_), None) => {
            return Err(ApiError::bad_request(
                "connection_id is required when using email",
            ));
        }
        (None, None, Some(_)) => {
            return Err(ApiError::bad_request(
                "email is required when using connection_id",
            ));
        }
        (None, None, None) => {
            return Err(ApiError::bad_request(
                "Give user_id, or email together with connection_id",
            ));
        }
    };
    check_identity_of(&user, body.identity.as_ref())?;
    let wire = WireJob {
        kind: "password_change_email".into(),
        client_id: body.client_id,
        organization_id: body.organization_id,
        result_url: body.result_url,
        ttl_sec: ttl(body.ttl_sec)?,
        include_email_in_redirect: body.include_email_in_redirect,
        mark_email_as_verified: body.mark_email_as_verified,
        custom_domain,
        ..wire_for(&user)?
    };
    let url = issue(&state, wire).await?;
    Ok((StatusCode::CREATED, Json(Ticket { ticket: url })))
}

/// A ticket (link) that enrolls the user in an MFA factor, optionally emailed to the user.
#[utoipa::path(
    post,
    path = "/guardian/enrollments/ticket",
    tag = "guardian",
    operation_id = "post_ticket",
    params(("auth0-custom-domain" = Option<String>, Header, description = "Build the link on this domain (one of HERALD_ALLOWED_CUSTOM_DOMAINS).")),
    request_body(content(
        (EnrollmentTicket = "application/json"),
        (EnrollmentTicket = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "The ticket (and, with send_mail, the email was queued).", body = EnrollmentTicketIssued),
        (status = 400, description = "The body breaks the schema or a rule (a factor Herald cannot enroll, a user without email).", body = ErrorBody),
        (status = 404, description = "No such user.", body = ErrorBody),
    ),
    security(("bearerAuth" = ["create:guardian_enrollment_tickets"])),
)]
pub async fn enrollment(
    State(state): State<ApiState>,
    Extension(caller): Extension<Principal>,
    headers: HeaderMap,
    Payload(body): Payload<EnrollmentTicket>,
) -> Result<Json<EnrollmentTicketIssued>, ApiError> {
    caller.require(&["create:guardian_enrollment_tickets"])?;
    let custom_domain = crate::custom_domain(&state, &headers)?;
    let user = user(&state, &body.user_id).await?;
    if let Some(email) = &body.email {
        crate::text::email("email", email)?;
    }
    if let Some(locale) = &body.email_locale {
        crate::text::check("email_locale", locale, 2, 35)?;
    }
    if let Some(factor) = body.factor
        && !matches!(factor, EnrollmentFactor::Otp | EnrollmentFactor::Email)
    {
        return Err(ApiError::invalid_property(
            format!(
                "Herald cannot enroll the {} factor yet; use otp or email",
                factor.as_str()
            ),
            "factor",
        ));
    }
    let mut wire = WireJob {
        kind: "enrollment_email".into(),
        factor: body.factor,
        allow_multiple_enrollments: body.allow_multiple_enrollments,
        email_locale: body.email_locale,
        custom_domain,
        ..wire_for(&user)?
    };
    if let Some(email) = body.email {
        wire.user.email = email;
    }
    let job = validated(wire)?;
    check_registry(&state, &job).await?;
    // The ticket takes the template's defaults; the published job stays as the caller gave it
    // (a defaulted result URL is no part of the contract's job).
    let mut ticket_job = job.clone();
    with_template_defaults(&state, &mut ticket_job).await?;
    let send_mail = body.send_mail.unwrap_or(false);
    // With send_mail the ticket belongs to the enrollment job, so the worker's email carries
    // this very ticket (it finds it under the job's id and rebuilds the same link, as long as
    // serve and worker share HERALD_TICKET_SECRET).
    if send_mail {
        crate::jobs::record(&state, &job).await?;
    }
    let (ticket_id, url) = issue_for(&state, &ticket_job, send_mail).await?;
    if send_mail {
        crate::jobs::publish_recorded(&state, &job).await?;
    }
    Ok(Json(EnrollmentTicketIssued {
        ticket_id,
        ticket_url: url,
    }))
}

/// The user the request names, or Auth0's 404.
async fn user(state: &ApiState, user_id: &str) -> Result<UserRecord, ApiError> {
    crate::text::check("user_id", user_id, 1, 255)?;
    state
        .store()
        .get_user(user_id)
        .await?
        .ok_or_else(no_such_user)
}

/// The contract's job for this user, to be completed by the caller.
pub fn wire_for(user: &UserRecord) -> Result<WireJob, ApiError> {
    let email = user
        .email
        .clone()
        .ok_or_else(|| ApiError::bad_request("The user does not have an email address."))?;
    Ok(WireJob {
        id: format!("job_{}", crate::text::random_id(16)),
        user: WireUser {
            user_id: user.user_id.clone(),
            email,
            name: user.name.clone(),
            locale: crate::jobs::user_locale(user),
        },
        ..WireJob::default()
    })
}

/// The identity a request names must be the user's own.
pub fn check_identity_of(user: &UserRecord, identity: Option<&Identity>) -> Result<(), ApiError> {
    let Some(identity) = identity else {
        return Ok(());
    };
    let (provider, id) = user
        .user_id
        .split_once('|')
        .unwrap_or(("auth0", &user.user_id));
    if identity.provider != provider || identity.user_id != id {
        return Err(ApiError::bad_request(
            "The user exists, but does not contain the given identity.",
        ));
    }
    Ok(())
}

fn ttl(ttl_sec: Option<i64>) -> Result<Option<u64>, ApiError> {
    match ttl_sec {
        None => Ok(None),
        Some(t) if t < 0 => Err(ApiError::invalid_property(
            format!("Number is less than minimum value ({t} < 0)"),
            "ttl_sec",
        )),
        Some(t) => Ok(Some(t.unsigned_abs())),
    }
}

/// The contract's checks on a job, as a 400 in its words.
pub fn validated(wire: WireJob) -> Result<EmailJob, ApiError> {
    EmailJob::from_wire(wire).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// The job's organization and client exist (Auth0 answers 400 otherwise).
pub async fn check_registry(state: &ApiState, job: &EmailJob) -> Result<(), ApiError> {
    if let Some(org) = &job.organization_id
        && state
            .store()
            .get_organization(org.as_str())
            .await?
            .is_none()
    {
        return Err(ApiError::bad_request("The organization does not exist"));
    }
    if let Some(client) = &job.client_id
        && state.store().get_client(client.as_str()).await?.is_none()
    {
        return Err(ApiError::bad_request("The client does not exist"));
    }
    Ok(())
}

/// Fills the ticket fields the request left out with the defaults of the tenant's email
/// template of the job's kind (`resultUrl`, `urlLifetimeInSeconds`, `includeEmailInRedirect`).
pub async fn with_template_defaults(state: &ApiState, job: &mut EmailJob) -> Result<(), ApiError> {
    let defaults = crate::email_templates::ticket_defaults(state, job).await?;
    job.apply_ticket_defaults(&defaults);
    Ok(())
}

/// Checks the job the ticket would come with, stores the ticket and returns its link.
async fn issue(state: &ApiState, wire: WireJob) -> Result<String, ApiError> {
    let mut job = validated(wire)?;
    check_registry(state, &job).await?;
    with_template_defaults(state, &mut job).await?;
    Ok(issue_for(state, &job, false).await?.1)
}

/// Stores the ticket `job` would issue (under the job's id when `for_job`, else with no job);
/// returns its id and link.
async fn issue_for(
    state: &ApiState,
    job: &EmailJob,
    for_job: bool,
) -> Result<(String, String), ApiError> {
    let spec = TicketSpec::for_job(job).ok_or_else(ApiError::internal)?;
    let config = state.config();
    let base = ticket_base(
        job.custom_domain.as_deref(),
        &config.allowed_custom_domains,
        &config.public_url,
    )
    .map_err(ApiError::bad_request)?;
    let issued = state
        .store()
        .issue_ticket(
            &spec,
            &config.ticket_secret,
            for_job.then(|| job.id.as_str()),
        )
        .await?;
    let purpose: TicketPurpose = spec.purpose;
    Ok((
        issued.id.to_string(),
        purpose.url(&base, &issued.token).to_string(),
    ))
}
