//! What every ticket page does the same way: read the ticket from the link or the form, load
//! what the page shows around it (brand, language, application, redirect target), render a page
//! or redirect with Auth0's result, and answer for tickets that cannot be used.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use herald_domain::{ClientAddress, Locale, TicketPurpose, TicketToken, TokenHash};
use herald_render::{Brand, ContinueTo, Page, PageBody, PageMessage};
use herald_store::{Redemption, StoredTicket};
use serde::de::DeserializeOwned;
use url::Url;

use crate::PagesState;
use crate::http;
use crate::locale::{browser_locale, page_locale};
use crate::redirect::{self, Message};

/// The longest ticket read from a link or a form; Herald's are 43 characters.
const MAX_TICKET_LEN: usize = 128;

/// The ticket a link or form presents, when it has a plausible one.
pub(crate) fn presented(ticket: Option<&str>) -> Option<(String, TokenHash)> {
    let ticket = ticket?.trim();
    if ticket.is_empty() || ticket.len() > MAX_TICKET_LEN {
        return None;
    }
    let token = TicketToken::from_presented(ticket);
    let hash = token.hash();
    Some((ticket.to_owned(), hash))
}

/// The `ticket` parameter of a link's query (read leniently: a malformed query is no ticket).
pub(crate) fn ticket_from_query(query: Option<&str>) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "ticket")
        .map(|(_, v)| v.into_owned())
}

/// The checks every POST passes before it is acted on: a plausible ticket, within the rate
/// limits of the ticket and the client's address, and a CSRF token that fits the ticket and the
/// browser's cookie. Returns the ticket and its hash, or the answer to give.
fn admit(
    state: &PagesState,
    address: IpAddr,
    headers: &HeaderMap,
    jar: &CookieJar,
    ticket: Option<&str>,
    csrf: Option<&str>,
) -> Result<(String, TokenHash), Box<Response>> {
    let Some((token, hash)) = presented(ticket) else {
        return Err(Box::new(invalid_link(state, headers)));
    };
    if !state.limiter().allow(&hash, address) {
        return Err(Box::new(too_many(state, headers)));
    }
    if !state.csrf().check(jar, &hash, csrf.unwrap_or_default()) {
        return Err(Box::new(stale_form(state, headers)));
    }
    Ok((token, hash))
}

/// The hidden fields every page form carries.
pub(crate) trait TicketForm {
    fn ticket(&self) -> Option<&str>;
    fn csrf(&self) -> Option<&str>;
}

/// Implements [`TicketForm`] for a form struct with `ticket` and `csrf` fields.
macro_rules! ticket_form {
    ($form:ty) => {
        impl $crate::ticket_page::TicketForm for $form {
            fn ticket(&self) -> Option<&str> {
                self.ticket.as_deref()
            }
            fn csrf(&self) -> Option<&str> {
                self.csrf.as_deref()
            }
        }
    };
}
pub(crate) use ticket_form;

/// A page form's POST that passed [`admit`]: the ticket and its hash, the form, and the
/// request's headers and cookies. A form that does not parse is an empty one (and so an
/// unknown link); a refused POST is answered before the handler runs.
pub(crate) struct Posted<F> {
    pub(crate) token: String,
    pub(crate) hash: TokenHash,
    pub(crate) form: F,
    pub(crate) headers: HeaderMap,
    pub(crate) jar: CookieJar,
}

impl<F> FromRequest<PagesState> for Posted<F>
where
    F: TicketForm + DeserializeOwned + Default + Send,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &PagesState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let Ok(ClientAddr(address)) = ClientAddr::from_request_parts(&mut parts, state).await;
        let headers = parts.headers.clone();
        let jar = CookieJar::from_headers(&headers);
        let form =
            match axum::Form::<F>::from_request(Request::from_parts(parts, body), state).await {
                Ok(form) => form.0,
                // Larger than any form of these pages: refused unread (413), nothing used.
                Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    return Err(neutral_page(
                        state,
                        &headers,
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "page-error-title",
                        "page-error",
                    ));
                }
                // A form that does not parse holds no usable ticket.
                Err(_) => F::default(),
            };
        let (token, hash) = admit(state, address, &headers, &jar, form.ticket(), form.csrf())
            .map_err(|response| *response)?;
        Ok(Posted {
            token,
            hash,
            form,
            headers,
            jar,
        })
    }
}

/// The client's address as rate limits count it ([`herald_domain::limit_key`]): the one the
/// server resolved behind its trusted proxies ([`ClientAddress`]), else the TCP peer, else
/// 0.0.0.0 when the server recorded neither.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientAddr(pub(crate) IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let address = match parts.extensions.get::<ClientAddress>() {
            Some(resolved) => resolved.0,
            None => parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
        };
        Ok(ClientAddr(herald_domain::limit_key(address)))
    }
}

/// A usable (or used, or expired) ticket with what its pages show around it.
#[derive(Debug)]
pub(crate) struct TicketView {
    pub(crate) ticket: Box<StoredTicket>,
    pub(crate) locale: Locale,
    pub(crate) brand: Brand,
    /// Id and name, for the redirect's `organization_id` and `organization_name`.
    pub(crate) organization: Option<(String, String)>,
    /// Where the user goes afterwards: the ticket's `result_url`, else its client's login URI.
    pub(crate) target: Option<Url>,
    /// The client's name, for "Back to {app}".
    pub(crate) app: Option<String>,
}

impl TicketView {
    pub(crate) async fn load(
        state: &PagesState,
        ticket: Box<StoredTicket>,
        headers: &HeaderMap,
    ) -> Result<Self, herald_store::StoreError> {
        let store = state.store();
        let organization = match &ticket.organization_id {
            Some(id) => store.get_organization(id).await?,
            None => None,
        };
        let client = match &ticket.client_id {
            Some(id) => store.get_client(id).await?,
            None => None,
        };
        let hints = store.ticket_locale_hints(&ticket).await?;
        let locale = page_locale(
            state.renderer(),
            &hints,
            headers,
            organization
                .as_ref()
                .and_then(|o| o.default_locale.as_deref()),
        );
        let brand = organization.as_ref().map_or_else(
            || Brand::neutral(&state.config().friendly_name),
            herald_store::Organization::brand,
        );
        let target = redirect::target(
            ticket.result_url.as_deref(),
            client.as_ref().and_then(|c| c.login_uri.as_deref()),
        );
        Ok(TicketView {
            app: client.map(|c| c.name),
            organization: organization.map(|o| (o.id, o.name)),
            ticket,
            locale,
            brand,
            target,
        })
    }

    /// The page data of the ticket of `hash` when it can still be used for `purpose` (a GET's
    /// look, which uses nothing), else the answer to give: used, expired, unknown or unavailable.
    pub(crate) async fn usable(
        state: &PagesState,
        hash: &TokenHash,
        purpose: TicketPurpose,
        headers: &HeaderMap,
    ) -> Result<Self, Box<Response>> {
        let ticket = match state.store().peek_ticket(hash, purpose).await {
            Ok(Redemption::Valid(ticket)) => ticket,
            Ok(other) => return Err(Box::new(refused(state, other, headers).await)),
            Err(e) => {
                tracing::warn!(error = %e, purpose = purpose.as_str(), "Could not look a ticket up.");
                return Err(Box::new(unavailable(state, headers)));
            }
        };
        TicketView::load(state, ticket, headers).await.map_err(|e| {
            tracing::warn!(error = %e, purpose = purpose.as_str(), "Could not load a ticket's page.");
            Box::new(unavailable(state, headers))
        })
    }

    /// The page's form fields for `token` in the browser of `jar` (setting the CSRF cookie
    /// when it has none).
    pub(crate) fn form(
        &self,
        state: &PagesState,
        action: &str,
        token: &str,
        hash: &TokenHash,
        jar: CookieJar,
    ) -> (herald_render::Form, CookieJar) {
        let (cookie, jar) = state.csrf().cookie(jar);
        let form = herald_render::Form {
            action: action.to_owned(),
            csrf: state.csrf().token(&cookie, hash),
            ticket: token.to_owned(),
        };
        (form, jar)
    }

    /// A link onwards to the ticket's target, for pages that end without a redirect.
    pub(crate) fn continue_to(&self) -> Option<ContinueTo> {
        self.target.as_ref().map(|url| ContinueTo {
            url: url.to_string(),
            app: self.app.clone(),
        })
    }

    /// A page of this ticket's brand and language.
    pub(crate) fn page(
        &self,
        state: &PagesState,
        status: StatusCode,
        body: PageBody,
        jar: Option<CookieJar>,
    ) -> Response {
        render(
            state,
            &self.locale,
            &self.brand,
            status,
            body,
            self.target.as_ref(),
            jar,
        )
    }

    /// How it went: a redirect to the target with Auth0's query when there is one, else a
    /// result page saying `title` and `message`.
    pub(crate) fn finish(
        &self,
        state: &PagesState,
        status: StatusCode,
        message: Message,
        title: &'static str,
        text: &'static str,
    ) -> Response {
        if let Some(target) = &self.target {
            let email = self
                .ticket
                .include_email_in_redirect
                .then_some(self.ticket.email.as_str());
            let organization = self
                .organization
                .as_ref()
                .map(|(id, name)| (id.as_str(), name.as_str()));
            return http::redirect(&redirect::with_result(target, message, email, organization));
        }
        self.page(
            state,
            status,
            PageBody::Result {
                success: message.success(),
                title: PageMessage::new(title),
                message: PageMessage::new(text),
                continue_to: None::<ContinueTo>,
            },
            None,
        )
    }
}

/// Renders `body`; a page that cannot be rendered (it never should: every page renders in
/// every locale at startup) is a plain 500.
pub(crate) fn render(
    state: &PagesState,
    locale: &Locale,
    brand: &Brand,
    status: StatusCode,
    body: PageBody,
    redirect_target: Option<&Url>,
    jar: Option<CookieJar>,
) -> Response {
    let nonce = http::nonce();
    let page = Page {
        brand,
        style_nonce: &nonce,
        body,
    };
    match state.renderer().render_page(locale, &page) {
        Ok(html) => http::page(status, html, &nonce, redirect_target, jar),
        Err(e) => {
            tracing::error!(error = %e, "A ticket page could not be rendered.");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page cannot be shown.",
            )
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    use axum::response::IntoResponse;
    (
        status,
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// A page of the neutral brand in the browser's language (no usable ticket to take them from).
pub(crate) fn neutral_page(
    state: &PagesState,
    headers: &HeaderMap,
    status: StatusCode,
    title: &'static str,
    text: &'static str,
) -> Response {
    let brand = Brand::neutral(&state.config().friendly_name);
    render(
        state,
        &browser_locale(state.renderer(), headers),
        &brand,
        status,
        PageBody::Result {
            success: false,
            title: PageMessage::new(title),
            message: PageMessage::new(text),
            continue_to: None,
        },
        None,
        None,
    )
}

/// A link with no ticket, or one Herald never issued for this page.
pub(crate) fn invalid_link(state: &PagesState, headers: &HeaderMap) -> Response {
    neutral_page(
        state,
        headers,
        StatusCode::NOT_FOUND,
        "page-link-invalid-title",
        "page-link-invalid",
    )
}

/// The database or the broker failed: nothing was used, the user may try again.
pub(crate) fn unavailable(state: &PagesState, headers: &HeaderMap) -> Response {
    neutral_page(
        state,
        headers,
        StatusCode::SERVICE_UNAVAILABLE,
        "page-error-title",
        "page-error",
    )
}

/// Over the POST limit for this ticket or address.
pub(crate) fn too_many(state: &PagesState, headers: &HeaderMap) -> Response {
    let mut response = neutral_page(
        state,
        headers,
        StatusCode::TOO_MANY_REQUESTS,
        "page-too-many-title",
        "page-too-many",
    );
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("60"),
    );
    response
}

/// A POST whose CSRF token does not fit its cookie and ticket.
pub(crate) fn stale_form(state: &PagesState, headers: &HeaderMap) -> Response {
    neutral_page(
        state,
        headers,
        StatusCode::FORBIDDEN,
        "page-session-title",
        "page-session",
    )
}

/// The answer for a ticket that cannot be used: Auth0's message in a redirect to its target,
/// or a page saying it was used, expired, or is unknown.
pub(crate) async fn refused(
    state: &PagesState,
    redemption: Redemption,
    headers: &HeaderMap,
) -> Response {
    let (ticket, message, title, text) = match redemption {
        Redemption::Used(ticket) => (
            ticket,
            Message::Used,
            "page-link-used-title",
            "page-link-used",
        ),
        Redemption::Expired(ticket) => (
            ticket,
            Message::Expired,
            "page-link-expired-title",
            "page-link-expired",
        ),
        Redemption::Unknown | Redemption::Valid(_) => return invalid_link(state, headers),
    };
    match TicketView::load(state, ticket, headers).await {
        Ok(view) => view.finish(state, StatusCode::GONE, message, title, text),
        Err(e) => {
            tracing::warn!(error = %e, "Could not load a ticket's page.");
            unavailable(state, headers)
        }
    }
}

/// The event `kind` caused by redeeming `ticket` (its id is derived from the ticket's, so a
/// publish retried after a rollback carries the same id).
pub(crate) fn event(
    kind: herald_domain::EventKind,
    ticket: &StoredTicket,
    data: herald_domain::EventData,
) -> herald_domain::Event {
    use time::format_description::well_known::Rfc3339;
    herald_domain::Event {
        id: herald_domain::event_id(kind, &ticket.id.to_string()),
        kind: kind.routing_key(),
        occurred_at: time::OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default(),
        user_id: ticket.user_id.clone(),
        email: ticket.email.clone(),
        organization_id: ticket.organization_id.clone(),
        client_id: ticket.client_id.clone(),
        data,
    }
}
