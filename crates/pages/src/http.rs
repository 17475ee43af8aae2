//! What every page answer carries: the security headers, a CSP whose one `<style>` nonce is
//! fresh per response and whose `form-action` names only this site and the ticket's redirect
//! target, and the refusal of cross-origin POSTs.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use rand::RngCore;
use tower_http::csrf::{CsrfLayer, ProtectionError};
use url::Url;

/// Headers every answer under `/u/` gets unless the handler set its own.
const FIXED_HEADERS: [(HeaderName, &str); 6] = [
    // The ticket is in the page's URL: no Referer may carry it to the logo's host or onwards.
    (header::REFERRER_POLICY, "no-referrer"),
    (header::CACHE_CONTROL, "no-store"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
    // A link posted somewhere public is not a page for search engines to keep.
    (HeaderName::from_static("x-robots-tag"), "noindex, nofollow"),
];

/// For answers that are not a rendered page (a refused cross-origin POST, a 405).
const STRICTEST_CSP: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in FIXED_HEADERS {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(STRICTEST_CSP));
    response
}

/// Refuses POSTs a browser says come from another site (`Sec-Fetch-Site`, else `Origin`
/// against `Host`); non-browser clients sending neither pass, and still need the form's token.
pub(crate) fn cross_origin_protection()
-> CsrfLayer<impl FnMut(ProtectionError) -> Response<Body> + Clone> {
    CsrfLayer::new().with_rejection_response(|_: ProtectionError| {
        (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "This form can only be sent from the page it belongs to. Open the link from the email again.",
        )
            .into_response()
    })
}

/// A fresh nonce for a page's `<style>` element.
pub(crate) fn nonce() -> String {
    let mut bytes = [0u8; 18];
    rand::rng().fill_bytes(&mut bytes);
    STANDARD_NO_PAD.encode(bytes)
}

/// A rendered page with its status, CSP and cookies. `redirect_origin` is where its form's
/// POST may redirect to (the CSP's `form-action` covers redirects after a submission).
pub(crate) fn page(
    status: StatusCode,
    html: String,
    nonce: &str,
    redirect_origin: Option<&Url>,
    jar: Option<CookieJar>,
) -> Response {
    let form_action = match redirect_origin.map(|u| u.origin()) {
        Some(origin @ url::Origin::Tuple(..)) => format!("'self' {}", origin.ascii_serialization()),
        _ => "'self'".to_owned(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data: https:; \
         form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&csp) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    match jar {
        Some(jar) => (jar, response).into_response(),
        None => response,
    }
}

/// A 303 to `target` (after a POST, the browser follows with a GET).
pub(crate) fn redirect(target: &Url) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(target.as_str()) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
