//! The language of a ticket page: the locale the ticket's email was rendered in, then the
//! user's own, then the browser's `Accept-Language` (by q-value), then the organization's
//! default; the first one Herald has messages for wins.

use axum::http::{HeaderMap, header};
use herald_domain::{Locale, negotiate};
use herald_render::Renderer;
use herald_store::LocaleHints;

/// The longest `Accept-Language` header read; browsers send a few dozen bytes.
const MAX_HEADER: usize = 512;

pub(crate) fn page_locale(
    renderer: &Renderer,
    hints: &LocaleHints,
    headers: &HeaderMap,
    organization_default: Option<&str>,
) -> Locale {
    let browser: Vec<String> = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= MAX_HEADER)
        .map(|v| {
            accept_language::parse_with_quality(v)
                .into_iter()
                .filter(|(tag, q)| *q > 0.0 && tag != "*")
                .map(|(tag, _)| tag)
                .collect()
        })
        .unwrap_or_default();
    let requested = [hints.email_locale.as_deref(), hints.user_locale.as_deref()]
        .into_iter()
        .chain(browser.iter().map(|t| Some(t.as_str())))
        .chain(std::iter::once(organization_default));
    negotiate(
        requested,
        renderer.available_locales(),
        renderer.fallback_locale(),
    )
}

/// The browser's choice alone, for pages without a usable ticket.
pub(crate) fn browser_locale(renderer: &Renderer, headers: &HeaderMap) -> Locale {
    page_locale(renderer, &LocaleHints::default(), headers, None)
}
