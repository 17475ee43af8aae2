//! The render step of a job: its organization's or client's override when that renders, else the
//! built-in template. A broken override never withholds an email; its failure is counted
//! (`herald_template_override_failures_total`), logged with the override's scope and recorded on
//! its row, where `herald template list` shows it.

use herald_domain::{Locale, TemplateName};
use herald_render::{EmailContext, RenderError, RenderedEmail, Renderer};
use herald_store::{Store, TemplateOverride};
use tracing::warn;

/// Renders the email of `template` in `locale`, with `stored` (the override the registry picked)
/// when it renders. An error means the built-in template failed too.
pub async fn render_email(
    store: &Store,
    renderer: &Renderer,
    template: TemplateName,
    locale: &Locale,
    ctx: &EmailContext,
    stored: Option<&TemplateOverride>,
) -> Result<RenderedEmail, RenderError> {
    let sources = stored.map(TemplateOverride::sources);
    let rendered = renderer.render_or_fallback(template, locale, ctx, sources.as_ref())?;
    if let (Some(o), Some(failure)) = (stored, &rendered.override_failure) {
        crate::metrics::record_override_failure(template, &o.scope);
        warn!(
            %template,
            scope = %o.scope,
            override_locale = o.locale.as_deref().unwrap_or("*"),
            error = %failure,
            "The template override does not render; sent the built-in template instead."
        );
        if let Err(e) = store.record_override_failure(o, &failure.to_string()).await {
            warn!(error = %e, "Could not record the override's failure.");
        }
    }
    Ok(rendered.email)
}
