//! The email factor of `/u/mfa-enrollment`: the page offers to email a six-digit code; asking
//! stores the code's keyed digest (never the code) and queues an `mfa_code_email` job, localized
//! and branded like every Herald email; the right code, typed within ten minutes and five
//! attempts, enrolls the address. A ticket can have at most five codes sent.

use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use herald_domain::{EmailJob, JobKind, TokenHash};
use herald_mfa::EmailCode;
use herald_mfa::email_code::code_matches;
use herald_render::{PageBody, PageMessage};
use herald_store::{EmailCodeCheck, EmailCodeIssue, EmailCodeSpec, MfaFactor, NewEnrollment};

use crate::PagesState;
use crate::mfa::{EnrollForm, enroll};
use crate::ticket_page::{TicketView, unavailable};

const ACTION: &str = "/u/mfa-enrollment";
/// How long an emailed code works.
const CODE_TTL: Duration = Duration::from_secs(10 * 60);
/// Wrong codes allowed per emailed code.
const MAX_ATTEMPTS: u32 = 5;
/// Codes one ticket may have sent.
const MAX_SENDS: u32 = 5;

/// The page: a button that emails a code, or (`code_sent`) the field to type it in.
pub(crate) fn page(
    state: &PagesState,
    view: &TicketView,
    token: &str,
    hash: &TokenHash,
    jar: CookieJar,
    code_sent: bool,
    error: Option<PageMessage>,
) -> Response {
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let (form, jar) = view.form(state, ACTION, token, hash, jar);
    view.page(
        state,
        status,
        PageBody::EnrollEmail {
            form,
            email: view.ticket.email.clone(),
            code_sent,
            error,
        },
        Some(jar),
    )
}

/// A POST of the email factor's page: `step=send` emails a code, anything else checks one.
pub(crate) async fn redeem(
    state: &PagesState,
    view: &TicketView,
    token: &str,
    hash: &TokenHash,
    jar: CookieJar,
    form: EnrollForm,
    headers: &HeaderMap,
) -> Response {
    if form.step.as_deref() == Some("send") {
        return match send_code(state, view, hash).await {
            Ok(EmailCodeIssue::Issued { .. }) => page(state, view, token, hash, jar, true, None),
            Ok(EmailCodeIssue::TooManySends) => page(
                state,
                view,
                token,
                hash,
                jar,
                true,
                Some(PageMessage::new("page-too-many")),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "Could not email an enrollment code.");
                unavailable(state, headers)
            }
        };
    }
    let typed = form.code.unwrap_or_default();
    let keys = state.mfa_keys();
    let checked = state
        .store()
        .check_email_code(hash, MAX_ATTEMPTS, |stored| {
            code_matches(keys, hash.as_bytes(), &typed, stored)
        })
        .await;
    let wrong = Some(PageMessage::new("page-mfa-email-wrong"));
    match checked {
        Ok(EmailCodeCheck::Valid { user_id, email }) => {
            let new = NewEnrollment {
                user_id: &user_id,
                factor: MfaFactor::Email,
                name: None,
                identifier: Some(&email),
                secret_sealed: None,
                last_step: None,
            };
            enroll(state, view, hash, &new, headers).await
        }
        Ok(EmailCodeCheck::Wrong { .. }) => page(state, view, token, hash, jar, true, wrong),
        // Expired, used up or never sent: a new code is one click away.
        Ok(_) => page(state, view, token, hash, jar, false, wrong),
        Err(e) => {
            tracing::warn!(error = %e, "Could not check an enrollment code.");
            unavailable(state, headers)
        }
    }
}

/// Stores a new code's digest for the ticket and queues the email that carries the code.
async fn send_code(
    state: &PagesState,
    view: &TicketView,
    hash: &TokenHash,
) -> Result<EmailCodeIssue, Box<dyn std::error::Error + Send + Sync>> {
    let code = EmailCode::generate();
    let digest = code.digest(state.mfa_keys().current(), hash.as_bytes());
    let ticket = &view.ticket;
    let issued = state
        .store()
        .issue_email_code(&EmailCodeSpec {
            ticket_hash: hash,
            user_id: &ticket.user_id,
            email: &ticket.email,
            code_digest: &digest,
            ttl: CODE_TTL,
            max_sends: MAX_SENDS,
        })
        .await?;
    if let EmailCodeIssue::Issued { .. } = issued {
        let mut job = EmailJob::builder(JobKind::MfaCode, &ticket.user_id, &ticket.email)
            .code(code.expose())
            .ttl_sec(CODE_TTL.as_secs())
            .email_locale(view.locale.to_string());
        if let Some(organization) = &ticket.organization_id {
            job = job.organization_id(organization);
        }
        if let Some(client) = &ticket.client_id {
            job = job.client_id(client);
        }
        let job = job.build()?;
        state.producer().publish(&job).await?;
        tracing::info!(job_id = %job.id, "Queued an enrollment code email.");
    }
    Ok(issued)
}
