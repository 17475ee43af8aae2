//! `/u/email-verification`: a GET shows a button; its POST verifies the email, publishes
//! `user.email_verified` and, on the user's first verification ever, the welcome email (a job
//! with an id derived from the user, so a retried publish is the same job), all confirmed by
//! RabbitMQ before the transaction that used the ticket commits.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use herald_domain::{EmailJob, EventData, EventKind, JobId, JobKind, TicketPurpose};
use herald_render::PageBody;
use herald_store::{EmailVerification, Redemption, StoredTicket};
use serde::Deserialize;

use crate::PagesState;
use crate::redirect::Message;
use crate::ticket_page::{
    Posted, TicketView, event, invalid_link, presented, refused, ticket_form, ticket_from_query,
    unavailable,
};

const ACTION: &str = "/u/email-verification";

pub(crate) async fn show(
    State(state): State<PagesState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    jar: CookieJar,
) -> Response {
    let Some((token, hash)) = presented(ticket_from_query(query.as_deref()).as_deref()) else {
        return invalid_link(&state, &headers);
    };
    let view =
        match TicketView::usable(&state, &hash, TicketPurpose::EmailVerification, &headers).await {
            Ok(view) => view,
            Err(response) => return *response,
        };
    let (form, jar) = view.form(&state, ACTION, &token, &hash, jar);
    let email = view.ticket.email.clone();
    view.page(
        &state,
        StatusCode::OK,
        PageBody::VerifyEmail { form, email },
        Some(jar),
    )
}

/// The form a verification page posts.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct VerifyForm {
    ticket: Option<String>,
    csrf: Option<String>,
}

ticket_form!(VerifyForm);

pub(crate) async fn redeem(
    State(state): State<PagesState>,
    posted: Posted<VerifyForm>,
) -> Response {
    let Posted { hash, headers, .. } = posted;
    match verify(&state, &hash).await {
        Ok(Verified::Refused(redemption)) => refused(&state, redemption, &headers).await,
        Ok(Verified::Done(ticket, message)) => {
            let view = match TicketView::load(&state, ticket, &headers).await {
                Ok(view) => view,
                Err(e) => {
                    tracing::warn!(error = %e, "Could not load a verification ticket's page.");
                    return unavailable(&state, &headers);
                }
            };
            let (status, title, text) = match message {
                Message::EmailVerified => {
                    (StatusCode::OK, "page-verify-done-title", "page-verify-done")
                }
                Message::AlreadyVerified => (
                    StatusCode::OK,
                    "page-verify-done-title",
                    "page-verify-already",
                ),
                _ => (
                    StatusCode::NOT_FOUND,
                    "page-link-invalid-title",
                    "page-verify-no-user",
                ),
            };
            view.finish(&state, status, message, title, text)
        }
        Err(e) => {
            tracing::warn!(error = %e, "Could not verify an email; the ticket is still unused.");
            unavailable(&state, &headers)
        }
    }
}

enum Verified {
    Done(Box<StoredTicket>, Message),
    Refused(Redemption),
}

/// Uses the ticket and verifies the email; the event and the welcome email are published before
/// the commit, so that a failed publish leaves the ticket unused (and a retried one publishes the
/// same ids again).
async fn verify(
    state: &PagesState,
    hash: &herald_domain::TokenHash,
) -> Result<Verified, Box<dyn std::error::Error + Send + Sync>> {
    let mut tx = state.store().pool().begin().await?;
    let (ticket, message) = match herald_store::Store::verify_email_in(&mut tx, hash).await? {
        EmailVerification::Refused(redemption) => {
            tx.rollback().await?;
            return Ok(Verified::Refused(redemption));
        }
        EmailVerification::AlreadyVerified(ticket) => (ticket, Message::AlreadyVerified),
        EmailVerification::NoSuchUser(ticket) => (ticket, Message::NoSuchUser),
        EmailVerification::Verified {
            ticket,
            welcome,
            name,
            locale,
        } => {
            state
                .producer()
                .publish_event(&event(
                    EventKind::EmailVerified,
                    &ticket,
                    EventData::EmailVerified {},
                ))
                .await?;
            if welcome {
                let job = welcome_job(&ticket, name, locale)?;
                state.producer().publish(&job).await?;
                tracing::info!(job_id = %job.id, "Queued the user's welcome email.");
            }
            (ticket, Message::EmailVerified)
        }
    };
    tx.commit().await?;
    crate::metrics::redeemed(TicketPurpose::EmailVerification);
    Ok(Verified::Done(ticket, message))
}

/// The welcome email of the ticket's user: one job id per user, ever. (Built from what the
/// transaction read: a second connection while it holds the user's row could wait for the
/// pool behind requests that wait for that row.)
fn welcome_job(
    ticket: &StoredTicket,
    name: Option<String>,
    locale: Option<String>,
) -> Result<EmailJob, herald_domain::JobError> {
    let mut job = EmailJob::builder(JobKind::Welcome, &ticket.user_id, &ticket.email)
        .id(JobId::welcome(&ticket.user_id).to_string());
    if let Some(name) = name {
        job = job.name(name);
    }
    if let Some(locale) = locale {
        job = job.user_locale(locale);
    }
    if let Some(client) = &ticket.client_id {
        job = job.client_id(client);
    }
    if let Some(organization) = &ticket.organization_id {
        job = job.organization_id(organization);
    }
    job.build()
}
