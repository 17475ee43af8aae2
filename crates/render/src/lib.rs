//! Herald's email rendering: handlebars templates (and a tenant's Liquid ones) and fluent messages turn a template, a locale
//! and an [`EmailContext`] into a [`RenderedEmail`] (a one-line subject, an HTML body with inlined
//! CSS, and a text body); and the ticket pages' HTML ([`Page`]), with the same messages and brand
//! rules.
//!
//! Everything is loaded once ([`Renderer::embedded`] or [`Renderer::from_dirs`]); rendering is
//! pure and takes `&self`. User data is HTML-escaped in the HTML part, including whatever passes
//! through a fluent message: no HTML template, built-in, loaded or override, may print a value
//! unescaped. Brand colours reach the stylesheet only as validated `#RRGGBB`.

mod context;
mod error;
mod i18n;
mod liquid_email;
mod page;
mod renderer;
mod skeleton;
mod sources;
#[cfg(test)]
mod tests;
mod text_part;

pub use context::{ApplicationView, Brand, EmailContext, OrganizationView, UserView};
pub use error::{LoadError, PageError, Part, RenderError};
pub use liquid_email::{
    LiquidEmail, LiquidExtras, LiquidSources, MAX_LIQUID_BYTES, ResultUrlApplication, UserProfile,
    render_result_url,
};
pub use page::{ContinueTo, Form, Page, PageBody, PageMessage};
pub use renderer::{CheckedOverride, Rendered, RenderedEmail, Renderer, TemplateSources};
