//! `/u/reset-password`: a GET shows the new-password form; its POST checks the password against
//! the policy (length and a zxcvbn estimate, with the user's email and name counted against it),
//! hashes it with argon2id off the runtime, then in one transaction uses the ticket, stores the
//! hash, verifies the email if the ticket says so and uses up the user's other password-change
//! tickets, and publishes `user.password_changed` (with the PHC string, never the password)
//! before it commits.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use herald_domain::{EventData, EventKind, TicketPurpose, TokenHash};
use herald_password::PolicyProblem;
use herald_render::{PageBody, PageMessage};
use herald_store::{PasswordChange, Redemption, StoredTicket};
use serde::Deserialize;

use crate::PagesState;
use crate::redirect::Message;
use crate::ticket_page::{
    Posted, TicketView, event, invalid_link, presented, refused, ticket_form, ticket_from_query,
    unavailable,
};

const ACTION: &str = "/u/reset-password";

pub(crate) async fn show(
    State(state): State<PagesState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    jar: CookieJar,
) -> Response {
    let Some((token, hash)) = presented(ticket_from_query(query.as_deref()).as_deref()) else {
        return invalid_link(&state, &headers);
    };
    let view = match usable(&state, &hash, &headers).await {
        Ok(view) => view,
        Err(response) => return response,
    };
    form_page(&state, &view, &token, &hash, jar, Vec::new())
}

/// The form a password page posts.
#[derive(Default, Deserialize)]
pub(crate) struct PasswordForm {
    ticket: Option<String>,
    csrf: Option<String>,
    password: Option<String>,
    confirmation: Option<String>,
}

ticket_form!(PasswordForm);

pub(crate) async fn redeem(
    State(state): State<PagesState>,
    posted: Posted<PasswordForm>,
) -> Response {
    let Posted {
        token,
        hash,
        form,
        headers,
        jar,
    } = posted;
    let view = match usable(&state, &hash, &headers).await {
        Ok(view) => view,
        Err(response) => return response,
    };
    let password = form.password.unwrap_or_default();
    let problems = problems(
        &state,
        &view.ticket,
        &password,
        form.confirmation.as_deref(),
    );
    if !problems.is_empty() {
        return form_page(&state, &view, &token, &hash, jar, problems);
    }
    let phc = match herald_password::hash(password).await {
        Ok(phc) => phc,
        Err(e) => {
            tracing::error!(error = %e, "argon2 could not hash a password.");
            return unavailable(&state, &headers);
        }
    };
    match change(&state, &hash, &phc).await {
        Ok(Changed::Refused(redemption)) => refused(&state, redemption, &headers).await,
        Ok(Changed::Done(message)) => {
            let (status, title, text) = if message.success() {
                (
                    StatusCode::OK,
                    "page-password-done-title",
                    "page-password-done",
                )
            } else {
                (
                    StatusCode::NOT_FOUND,
                    "page-error-title",
                    "page-password-failed",
                )
            };
            view.finish(&state, status, message, title, text)
        }
        Err(e) => {
            tracing::warn!(error = %e, "Could not change a password; the ticket is still unused.");
            unavailable(&state, &headers)
        }
    }
}

/// The ticket's page data when it can still be used, else the answer to give.
async fn usable(
    state: &PagesState,
    hash: &TokenHash,
    headers: &HeaderMap,
) -> Result<TicketView, Response> {
    TicketView::usable(state, hash, TicketPurpose::PasswordChange, headers)
        .await
        .map_err(|response| *response)
}

fn form_page(
    state: &PagesState,
    view: &TicketView,
    token: &str,
    hash: &TokenHash,
    jar: CookieJar,
    errors: Vec<PageMessage>,
) -> Response {
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let (form, jar) = view.form(state, ACTION, token, hash, jar);
    let min_length = u64::try_from(state.config().password_policy.min_length).unwrap_or(u64::MAX);
    view.page(
        state,
        status,
        PageBody::ChangePassword {
            form,
            email: view.ticket.email.clone(),
            min_length,
            errors,
        },
        Some(jar),
    )
}

/// What is wrong with the new password, as the page's messages.
fn problems(
    state: &PagesState,
    ticket: &StoredTicket,
    password: &str,
    confirmation: Option<&str>,
) -> Vec<PageMessage> {
    let local_part = ticket.email.split('@').next().unwrap_or_default();
    let inputs = [ticket.email.as_str(), local_part];
    let mut messages: Vec<PageMessage> = state
        .config()
        .password_policy
        .check(password, &inputs)
        .into_iter()
        .map(|problem| match problem {
            PolicyProblem::TooShort { min } => {
                PageMessage::new("page-password-too-short").min(min as u64)
            }
            PolicyProblem::TooLong { max } => {
                PageMessage::new("page-password-too-long").max(max as u64)
            }
            PolicyProblem::Weak => PageMessage::new("page-password-weak"),
        })
        .collect();
    if confirmation != Some(password) {
        messages.push(PageMessage::new("page-password-mismatch"));
    }
    messages
}

enum Changed {
    Done(Message),
    Refused(Redemption),
}

async fn change(
    state: &PagesState,
    hash: &TokenHash,
    phc: &str,
) -> Result<Changed, Box<dyn std::error::Error + Send + Sync>> {
    let mut tx = state.store().pool().begin().await?;
    let message = match herald_store::Store::change_password_in(&mut tx, hash, phc).await? {
        PasswordChange::Refused(redemption) => {
            tx.rollback().await?;
            return Ok(Changed::Refused(redemption));
        }
        PasswordChange::NoSuchUser(_) => Message::OperationFailed,
        PasswordChange::Changed {
            ticket,
            email_verified,
            revoked_tickets,
        } => {
            let event = event(
                EventKind::PasswordChanged,
                &ticket,
                EventData::PasswordChanged {
                    password_hash: phc.to_owned(),
                    email_verified,
                },
            );
            state.producer().publish_event(&event).await?;
            tracing::info!(
                revoked_tickets,
                "Changed a user's password; their other password-change links are used up."
            );
            Message::PasswordChanged
        }
    };
    tx.commit().await?;
    crate::metrics::redeemed(TicketPurpose::PasswordChange);
    Ok(Changed::Done(message))
}
