//! The render step of a job: its organization's or client's override when that renders, else the
//! tenant's template (`/email-templates`, Liquid or handlebars) when that renders, else the
//! built-in template. A broken override never withholds an email; its failure is counted
//! (`herald_template_override_failures_total`), logged with the override's scope and recorded on
//! its row, where `herald template list` shows it.

use herald_domain::{Locale, TemplateName};
use herald_render::{
    EmailContext, LiquidExtras, LiquidSources, RenderError, RenderedEmail, Renderer,
    TemplateSources,
};
use herald_store::{EmailTemplate, Store, TemplateOverride, TemplateSyntax};
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

/// Renders the email with the tenant's template `tenant`, falling back to the built-in template
/// when it does not render (counted as `scope="tenant"` in
/// `herald_template_override_failures_total` and logged). Also returns the template's From line
/// when it sets one (rendered, for Liquid).
pub fn render_tenant(
    renderer: &Renderer,
    template: TemplateName,
    locale: &Locale,
    ctx: &EmailContext,
    tenant: &EmailTemplate,
    extras: &LiquidExtras,
) -> Result<(RenderedEmail, Option<String>), RenderError> {
    let attempt = match tenant.syntax {
        TemplateSyntax::Liquid => renderer
            .render_liquid(
                template,
                locale,
                ctx,
                extras,
                &LiquidSources {
                    subject: tenant.subject.clone(),
                    body: tenant.body.clone(),
                    from: tenant.from.clone(),
                },
            )
            .map(|out| (out.email, out.from)),
        TemplateSyntax::Handlebars => {
            let sources = TemplateSources {
                subject: tenant.subject.clone(),
                html: tenant.body.clone(),
                text: None,
            };
            let sources = (sources.subject.is_some() || sources.html.is_some()).then_some(sources);
            renderer
                .render(template, locale, ctx, sources.as_ref())
                .map(|email| (email, tenant.from.clone()))
        }
    };
    match attempt {
        Ok(rendered) => Ok(rendered),
        Err(failure) => {
            crate::metrics::record_tenant_template_failure(template);
            warn!(
                %template,
                scope = "tenant",
                error = %failure,
                "The tenant's email template does not render; sent the built-in template instead."
            );
            Ok((renderer.render(template, locale, ctx, None)?, None))
        }
    }
}
