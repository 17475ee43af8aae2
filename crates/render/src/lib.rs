//! Herald's email rendering: handlebars templates and fluent messages turn a template, a locale
//! and an [`EmailContext`] into a [`RenderedEmail`] (a one-line subject, an HTML body with inlined
//! CSS, and a text body).
//!
//! Everything is loaded once ([`Renderer::embedded`] or [`Renderer::from_dirs`]); rendering is
//! pure and takes `&self`. User data is HTML-escaped in the HTML part, including whatever passes
//! through a fluent message: no HTML template, built-in, loaded or override, may print a value
//! unescaped. Brand colours reach the stylesheet only as validated `#RRGGBB`.

mod context;
mod error;
mod i18n;
mod renderer;
mod skeleton;
mod sources;
#[cfg(test)]
mod tests;

pub use context::{ApplicationView, Brand, EmailContext, OrganizationView, UserView};
pub use error::{LoadError, Part, RenderError};
pub use renderer::{CheckedOverride, Rendered, RenderedEmail, Renderer, TemplateSources};
