//! `/u/mfa-enrollment`: enrolling a second factor with an enrollment ticket.
//!
//! - `otp`: the GET shows the ticket's TOTP secret (derived from the MFA key and the ticket, so
//!   every opening shows the same one and nothing is stored before the user proves it) as a QR
//!   code and as text; the POST of a code that verifies within one step either way uses the
//!   ticket and stores the enrollment with its secret sealed (XChaCha20-Poly1305) and the code's
//!   step, so the same code cannot be replayed at login.
//! - `email`: the GET offers to email a code; that POST stores the code's keyed digest and
//!   queues an `mfa_code_email` job; the POST of the right code (a few attempts, ten minutes)
//!   uses the ticket and stores the enrollment.
//!
//! Without `allow_multiple_enrollments`, a user who already has a factor sees "Two-factor
//! Verification has Already Been Enabled." Each enrollment publishes `user.mfa_enrolled` (its id
//! and factor, never a secret) before the transaction commits.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use herald_domain::{EventData, EventKind, TicketPurpose, TokenHash};
use herald_mfa::{Issuer, TotpSecret, qr_svg};
use herald_render::{PageBody, PageMessage};
use herald_store::{MfaFactor, NewEnrollment, Redemption, Store};
use serde::Deserialize;

use crate::PagesState;
use crate::ticket_page::{
    Posted, TicketView, event, invalid_link, presented, refused, ticket_form, ticket_from_query,
    unavailable,
};

const ACTION: &str = "/u/mfa-enrollment";

/// The factor a ticket enrolls: `otp` unless it names `email` (Auth0's default is the
/// authenticator app).
fn factor_of(view: &TicketView) -> Option<MfaFactor> {
    match view.ticket.factor.as_deref() {
        None | Some("otp") => Some(MfaFactor::Otp),
        Some("email") => Some(MfaFactor::Email),
        Some(_) => None,
    }
}

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
        Err(response) => return *response,
    };
    match factor_of(&view) {
        Some(MfaFactor::Otp) => otp_page(&state, &view, &token, &hash, jar, None, &headers),
        Some(MfaFactor::Email) => {
            crate::mfa_email::page(&state, &view, &token, &hash, jar, false, None)
        }
        None => invalid_link(&state, &headers),
    }
}

/// The form an enrollment page posts.
#[derive(Default, Deserialize)]
pub(crate) struct EnrollForm {
    pub(crate) ticket: Option<String>,
    pub(crate) csrf: Option<String>,
    pub(crate) code: Option<String>,
    /// `send` asks for an emailed code (the email factor).
    pub(crate) step: Option<String>,
}

ticket_form!(EnrollForm);

pub(crate) async fn redeem(
    State(state): State<PagesState>,
    posted: Posted<EnrollForm>,
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
        Err(response) => return *response,
    };
    match factor_of(&view) {
        Some(MfaFactor::Otp) => {
            let code = form.code.unwrap_or_default();
            // The current key's secret, or, for a page shown before a key change, an old key's.
            let verified = state.mfa_keys().all().find_map(|key| {
                let secret = TotpSecret::for_ticket(key, &hash);
                let step = secret.verify_now(&code, None).ok()?;
                Some((secret, step))
            });
            let Some((secret, step)) = verified else {
                let error = PageMessage::new("page-mfa-otp-wrong");
                return otp_page(&state, &view, &token, &hash, jar, Some(error), &headers);
            };
            let sealed = secret.seal(state.mfa_keys().current(), &view.ticket.user_id);
            let new = NewEnrollment {
                user_id: &view.ticket.user_id,
                factor: MfaFactor::Otp,
                name: None,
                identifier: None,
                secret_sealed: Some(&sealed),
                last_step: Some(step),
            };
            enroll(&state, &view, &hash, &new, &headers).await
        }
        Some(MfaFactor::Email) => {
            crate::mfa_email::redeem(&state, &view, &token, &hash, jar, form, &headers).await
        }
        None => invalid_link(&state, &headers),
    }
}

/// The ticket's page data when it can still be used and the user may enroll, else the answer.
async fn usable(
    state: &PagesState,
    hash: &TokenHash,
    headers: &HeaderMap,
) -> Result<TicketView, Box<Response>> {
    let view = TicketView::usable(state, hash, TicketPurpose::MfaEnrollment, headers).await?;
    if !view.ticket.allow_multiple_enrollments {
        let enrolled = async {
            let mut conn = state.store().pool().acquire().await?;
            Store::has_confirmed_enrollment(&mut conn, &view.ticket.user_id).await
        }
        .await;
        match enrolled {
            Ok(true) => return Err(Box::new(already_enabled(state, &view))),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "Could not read a user's enrollments.");
                return Err(Box::new(unavailable(state, headers)));
            }
        }
    }
    Ok(view)
}

fn already_enabled(state: &PagesState, view: &TicketView) -> Response {
    view.page(
        state,
        StatusCode::CONFLICT,
        PageBody::Result {
            success: false,
            title: PageMessage::new("page-mfa-title"),
            message: PageMessage::new("page-mfa-already"),
            continue_to: view.continue_to(),
        },
        None,
    )
}

fn otp_page(
    state: &PagesState,
    view: &TicketView,
    token: &str,
    hash: &TokenHash,
    jar: CookieJar,
    error: Option<PageMessage>,
    headers: &HeaderMap,
) -> Response {
    let secret = TotpSecret::for_ticket(state.mfa_keys().current(), hash);
    let issuer = Issuer::named(&view.brand.name);
    let url = secret.otpauth_url(&issuer, &view.ticket.email);
    let Some(svg) = qr_svg(&url, &view.brand.name) else {
        tracing::error!("The TOTP link does not fit in a QR code.");
        return unavailable(state, headers);
    };
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let (form, jar) = view.form(state, ACTION, token, hash, jar);
    view.page(
        state,
        status,
        PageBody::EnrollOtp {
            form,
            qr_data_uri: format!("data:image/svg+xml;base64,{}", STANDARD.encode(svg)),
            secret: spaced(&secret.base32()),
            error,
        },
        Some(jar),
    )
}

/// A base32 key in groups of four, as authenticator apps show them.
fn spaced(key: &str) -> String {
    key.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Uses the ticket and stores `new`, with `user.mfa_enrolled` published before the commit.
pub(crate) async fn enroll(
    state: &PagesState,
    view: &TicketView,
    hash: &TokenHash,
    new: &NewEnrollment<'_>,
    headers: &HeaderMap,
) -> Response {
    match store_enrollment(state, hash, new).await {
        Ok(Enrolled::Done) => view.page(
            state,
            StatusCode::OK,
            PageBody::Result {
                success: true,
                title: PageMessage::new("page-mfa-done-title"),
                message: PageMessage::new("page-mfa-done"),
                continue_to: view.continue_to(),
            },
            None,
        ),
        Ok(Enrolled::AlreadyEnabled) => already_enabled(state, view),
        Ok(Enrolled::Refused(redemption)) => refused(state, redemption, headers).await,
        Err(e) => {
            tracing::warn!(error = %e, "Could not store an enrollment; the ticket is still unused.");
            unavailable(state, headers)
        }
    }
}

enum Enrolled {
    Done,
    AlreadyEnabled,
    Refused(Redemption),
}

async fn store_enrollment(
    state: &PagesState,
    hash: &TokenHash,
    new: &NewEnrollment<'_>,
) -> Result<Enrolled, Box<dyn std::error::Error + Send + Sync>> {
    let mut tx = state.store().pool().begin().await?;
    let ticket = match Store::redeem_ticket(&mut tx, hash, TicketPurpose::MfaEnrollment).await? {
        Redemption::Valid(ticket) => ticket,
        other => {
            tx.rollback().await?;
            return Ok(Enrolled::Refused(other));
        }
    };
    // Taken in turn per user, so two tickets of one user cannot both enroll a first factor.
    if Store::has_confirmed_enrollment(&mut tx, &ticket.user_id).await?
        && !ticket.allow_multiple_enrollments
    {
        tx.rollback().await?;
        return Ok(Enrolled::AlreadyEnabled);
    }
    let enrollment = Store::insert_enrollment(&mut tx, new).await?;
    let event = event(
        EventKind::MfaEnrolled,
        &ticket,
        EventData::MfaEnrolled {
            enrollment_id: enrollment.id.clone(),
            factor: enrollment.factor.as_str().to_owned(),
        },
    );
    state.producer().publish_event(&event).await?;
    tx.commit().await?;
    crate::metrics::redeemed(TicketPurpose::MfaEnrollment);
    tracing::info!(
        factor = enrollment.factor.as_str(),
        "Enrolled a second factor."
    );
    Ok(Enrolled::Done)
}
