//! The renderer: default templates compiled once, the fluent catalog, and the pipeline that turns
//! a template, a locale and a context into a subject, an inlined HTML body and a text body.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use css_inline::CSSInliner;
use handlebars::template::{Parameter, TemplateElement};
use handlebars::{Handlebars, RenderErrorReason, Template};
use herald_domain::{Locale, TemplateName, negotiate};

use crate::context::{EmailContext, View, ViewError};
use crate::error::{LoadError, PageError, Part, RenderError};
use crate::i18n::{Catalog, MessageError, TranslateHelper};
use crate::page::{Page, Pages};
use crate::skeleton;
use crate::sources::{self, SourceFile};

/// Handlebars sources that replace the default for one part of an email; `None` keeps the default.
///
/// They are rendered with the same context, helpers (`t`) and partials (`layout`, `button`) as the
/// defaults. The subject is rendered like the text part (no escaping) and then made single-line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateSources {
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
}

/// Override sources that compiled, passed the safety rules (no raw output in HTML, no decorators,
/// bounded nesting and size) and rendered in every loaded locale against the sample contexts.
///
/// Only [`Renderer::check_override`] makes one, so holding one proves the check ran; the store's
/// `set_template_override` accepts nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedOverride {
    template: TemplateName,
    sources: TemplateSources,
}

impl CheckedOverride {
    /// The template these sources replace parts of.
    pub fn template(&self) -> TemplateName {
        self.template
    }

    pub fn sources(&self) -> &TemplateSources {
        &self.sources
    }
}

/// An email rendered for a job: with its override when that rendered, else with the built-in
/// template, and then the override's error.
#[derive(Debug)]
pub struct Rendered {
    pub email: RenderedEmail,
    /// Why the override was not used; `None` when there was none or it rendered.
    pub override_failure: Option<RenderError>,
}

/// A rendered email, ready to be put into a MIME message.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedEmail {
    /// One line: no control characters, runs of spaces collapsed, trimmed.
    pub subject: String,
    /// A full HTML document with its CSS inlined into `style` attributes.
    pub html: String,
    pub text: String,
}

/// Loaded once at startup and shared (it is `Send + Sync`); every render is `&self`.
pub struct Renderer {
    /// HTML-escaping registry for the HTML bodies.
    html: Handlebars<'static>,
    /// Non-escaping registry for the text bodies and subjects.
    text: Handlebars<'static>,
    catalog: Arc<Catalog>,
    /// The ticket pages, with the same catalog.
    pages: Pages,
    /// Used when a requested locale matches none of the loaded ones.
    default_locale: Locale,
    inliner: CSSInliner<'static>,
    /// Inlined HTML skeletons of the built-in templates (see `skeleton`), by template and view
    /// with placeholders; emptied when it reaches [`HTML_CACHE_ENTRIES`].
    html_cache: Mutex<HashMap<String, Arc<str>>>,
    /// Off only in tests that compare against full renders.
    use_html_cache: bool,
}

/// At most this many inlined skeletons are kept (each about 7 KB): one per template, locale,
/// organization or client look, "expires in" value and name present or not.
const HTML_CACHE_ENTRIES: usize = 2048;

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renderer")
            .field("locales", &self.catalog.locales())
            .field("default_locale", &self.default_locale)
            .finish_non_exhaustive()
    }
}

/// The partial every default template is wrapped in.
const LAYOUT: &str = "layout";

impl Renderer {
    /// The `templates/` and `locales/` directories compiled into the binary.
    pub fn embedded() -> Result<Self, LoadError> {
        Self::build(
            &sources::embedded_templates()?,
            &sources::embedded_locales()?,
            true,
        )
    }

    /// The same layout read from disk at runtime, for operators who customise the defaults.
    ///
    /// `templates` holds `layout.{html,text}.hbs` and `<template>.{html,text}.hbs` for every
    /// template (any other `<name>.{html,text}.hbs` becomes a partial); `locales` holds
    /// `<lang>/*.ftl`. Every locale must define the same messages, and every default template
    /// must render in every locale, or loading fails.
    ///
    /// Every email is rendered in full: the inlined-skeleton cache (see `skeleton`) relies on
    /// templates only printing the per-recipient strings, which the built-in ones are tested
    /// for and an operator's may not do (`{{#if (eq user.name …)}}`).
    pub fn from_dirs(templates: &Path, locales: &Path) -> Result<Self, LoadError> {
        Self::build(
            &sources::from_disk(templates)?,
            &sources::from_disk(locales)?,
            false,
        )
    }

    fn build(
        templates: &[SourceFile],
        locales: &[SourceFile],
        use_html_cache: bool,
    ) -> Result<Self, LoadError> {
        let catalog = Arc::new(Catalog::load(locales)?);
        let helper = TranslateHelper::new(Arc::clone(&catalog));
        let mut html = registry(handlebars::html_escape, helper.clone());
        let mut text = registry(handlebars::no_escape, helper);

        for file in templates {
            if file.path.components().count() != 1 {
                continue;
            }
            let name = file.path.to_string_lossy();
            let (registry, stem, is_html) = if let Some(stem) = name.strip_suffix(".html.hbs") {
                (&mut html, stem, true)
            } else if let Some(stem) = name.strip_suffix(".text.hbs") {
                (&mut text, stem, false)
            } else {
                continue;
            };
            let compile_error = |e| LoadError::Template {
                file: name.to_string(),
                source: Box::new(e),
            };
            if is_html
                && let Err(reason) =
                    escaped_only(&Template::compile(&file.contents).map_err(compile_error)?)
            {
                return Err(LoadError::Unescaped {
                    file: name.to_string(),
                    reason,
                });
            }
            registry
                .register_template_string(stem, &file.contents)
                .map_err(compile_error)?;
        }
        let required = std::iter::once(LAYOUT).chain(TemplateName::ALL.map(TemplateName::as_str));
        for name in required {
            for (registry, kind) in [(&html, "html"), (&text, "text")] {
                if !registry.has_template(name) {
                    return Err(LoadError::MissingTemplate {
                        file: format!("{name}.{kind}.hbs"),
                    });
                }
            }
        }
        for template in TemplateName::ALL {
            let source = format!(r#"{{{{t "{template}-subject" brand=brand.name}}}}"#);
            text.register_template_string(&subject_name(template), &source)
                .map_err(|e| LoadError::Template {
                    file: format!("<{template} subject>"),
                    source: Box::new(e),
                })?;
        }

        let english = Locale::english();
        let default_locale = if catalog.locales().contains(&english) {
            english
        } else {
            catalog
                .locales()
                .first()
                .cloned()
                .ok_or(LoadError::NoLocales)?
        };
        // An operator's templates directory without `pages/` keeps the built-in pages.
        let pages = if templates.iter().any(|f| f.path.starts_with("pages")) {
            Pages::load(templates, Arc::clone(&catalog))?
        } else {
            Pages::load(&sources::embedded_templates()?, Arc::clone(&catalog))?
        };
        let renderer = Self {
            html,
            text,
            pages,
            catalog,
            default_locale,
            inliner: CSSInliner::options()
                .load_remote_stylesheets(false)
                .keep_style_tags(false)
                // Media queries cannot be inlined; they stay in a <style> for clients that read it.
                .keep_at_rules(true)
                .build(),
            html_cache: Mutex::new(HashMap::new()),
            use_html_cache,
        };
        renderer.check_all(None).map_err(|e| LoadError::Defaults {
            source: Box::new(e),
        })?;
        Ok(renderer)
    }

    /// Renders a ticket page in `locale` (one of [`Renderer::available_locales`]; pick it with
    /// [`herald_domain::negotiate`]).
    pub fn render_page(&self, locale: &Locale, page: &Page<'_>) -> Result<String, PageError> {
        self.pages.render(locale, page)
    }

    /// The locale pages and emails fall back to (English when it is loaded).
    pub fn fallback_locale(&self) -> &Locale {
        &self.default_locale
    }

    /// The locale used when a requested one matches none of the loaded ones.
    pub(crate) fn default_locale(&self) -> &Locale {
        &self.default_locale
    }

    /// Inlines the CSS of an HTML document rendered from a tenant's template.
    pub(crate) fn inline_css(
        &self,
        template: TemplateName,
        locale: &Locale,
        html: &str,
    ) -> Result<String, RenderError> {
        self.inliner.inline(html).map_err(|e| RenderError::Css {
            template,
            locale: locale.clone(),
            source: Box::new(e),
        })
    }

    /// The loaded locales, sorted by tag; pass them to [`herald_domain::negotiate`].
    pub fn available_locales(&self) -> &[Locale] {
        self.catalog.locales()
    }

    /// Renders a job's email: with `overrides` when they render, else with the built-in template,
    /// so that a broken override never withholds an email. The override's error is returned
    /// beside the email for the caller to count, log and record. When the built-in template fails
    /// too, the fault is not the override's and that error is returned.
    pub fn render_or_fallback(
        &self,
        template: TemplateName,
        locale: &Locale,
        ctx: &EmailContext,
        overrides: Option<&TemplateSources>,
    ) -> Result<Rendered, RenderError> {
        let override_failure = match overrides {
            None => None,
            Some(o) => match self.render(template, locale, ctx, Some(o)) {
                Ok(email) => {
                    return Ok(Rendered {
                        email,
                        override_failure: None,
                    });
                }
                Err(e) => Some(e),
            },
        };
        let email = self.render(template, locale, ctx, None)?;
        Ok(Rendered {
            email,
            override_failure,
        })
    }

    /// Renders `template` in `locale` (negotiated against the loaded locales: `fr-CA` renders in
    /// `fr`, an unknown one in `en`), using `overrides` for the parts they provide; any error,
    /// the override's included, is returned (see [`Renderer::render_or_fallback`]).
    pub fn render(
        &self,
        template: TemplateName,
        locale: &Locale,
        ctx: &EmailContext,
        overrides: Option<&TemplateSources>,
    ) -> Result<RenderedEmail, RenderError> {
        let tag = locale.to_string();
        let locale = negotiate(
            [Some(tag.as_str())],
            self.available_locales(),
            &self.default_locale,
        );
        let view = View::new(ctx, &locale).map_err(|e| match e {
            ViewError::UnsafeLink => RenderError::UnsafeLink { template },
        })?;
        let data = serde_json::to_value(&view).map_err(|e| RenderError::Template {
            template,
            part: Part::Html,
            locale: locale.clone(),
            source: Box::new(RenderErrorReason::SerdeError(e).into()),
        })?;
        let data = handlebars::Context::from(data);
        let (subject_source, html_source, text_source) = match overrides {
            Some(o) => {
                guard_sources(template, o)?;
                (o.subject.as_deref(), o.html.as_deref(), o.text.as_deref())
            }
            None => (None, None, None),
        };
        let job = Job {
            template,
            locale: &locale,
            data: &data,
        };

        let subject = job.part(
            &self.text,
            Part::Subject,
            &subject_name(template),
            subject_source,
        )?;
        let subject = single_line(&subject);
        if subject.is_empty() {
            return Err(job.empty(Part::Subject));
        }

        let cached = match html_source {
            None if self.use_html_cache => self.html_from_skeleton(template, &locale, &view)?,
            _ => None,
        };
        let html = match cached {
            Some(html) => html,
            None => self.inline(
                &job,
                job.part(&self.html, Part::Html, template.as_str(), html_source)?,
            )?,
        };

        let text = tidy_text(&job.part(&self.text, Part::Text, template.as_str(), text_source)?);
        if text.is_empty() {
            return Err(job.empty(Part::Text));
        }

        Ok(RenderedEmail {
            subject,
            html,
            text,
        })
    }

    /// The built-in HTML for `view`, from its inlined skeleton (rendered and inlined on the first
    /// email with the same look). `None` when the view's values cannot stand behind
    /// placeholders, or the skeleton cannot be filled: the caller then renders in full.
    fn html_from_skeleton(
        &self,
        template: TemplateName,
        locale: &Locale,
        view: &View<'_>,
    ) -> Result<Option<String>, RenderError> {
        let Some((skeleton_view, values)) = view.skeleton() else {
            return Ok(None);
        };
        let Ok(key) = serde_json::to_string(&skeleton_view) else {
            return Ok(None);
        };
        let key = format!("{template}\n{key}");
        let hit = self.cache().get(&key).cloned();
        let inlined = match hit {
            Some(inlined) => inlined,
            None => {
                let Ok(data) = serde_json::to_value(&skeleton_view) else {
                    return Ok(None);
                };
                let data = handlebars::Context::from(data);
                let job = Job {
                    template,
                    locale,
                    data: &data,
                };
                let html = job.part(&self.html, Part::Html, template.as_str(), None)?;
                let inlined: Arc<str> = self.inline(&job, html)?.into();
                let mut cache = self.cache();
                if cache.len() >= HTML_CACHE_ENTRIES {
                    cache.clear();
                }
                cache.insert(key, Arc::clone(&inlined));
                inlined
            }
        };
        Ok(skeleton::fill(&inlined, &values))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<str>>> {
        self.html_cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Inlines the CSS of a rendered HTML part; refuses an empty one.
    fn inline(&self, job: &Job<'_>, html: String) -> Result<String, RenderError> {
        if html.trim().is_empty() {
            return Err(job.empty(Part::Html));
        }
        self.inliner.inline(&html).map_err(|e| RenderError::Css {
            template: job.template,
            locale: job.locale.clone(),
            source: Box::new(e),
        })
    }

    /// The number of inlined skeletons held (for tests).
    #[cfg(test)]
    pub(crate) fn cached_skeletons(&self) -> usize {
        self.cache().len()
    }

    /// This renderer, rendering every email in full (for tests that compare).
    #[cfg(test)]
    pub(crate) fn without_html_cache(mut self) -> Self {
        self.use_html_cache = false;
        self
    }

    /// Compiles `sources` and renders them in every loaded locale against two sample contexts
    /// (fully populated, and as sparse as a real job can be), so a broken override is refused
    /// before it is stored rather than failing on a real email. The HTML part may not print
    /// anything unescaped (`{{{x}}}`, `{{&x}}`), and partials are named literally.
    pub fn check_override(
        &self,
        template: TemplateName,
        sources: TemplateSources,
    ) -> Result<CheckedOverride, RenderError> {
        if sources.subject.is_none() && sources.html.is_none() && sources.text.is_none() {
            return Err(RenderError::NothingToOverride { template });
        }
        guard_sources(template, &sources)?;
        self.check_template(template, Some(&sources))?;
        Ok(CheckedOverride { template, sources })
    }

    fn check_all(&self, sources: Option<&TemplateSources>) -> Result<(), RenderError> {
        TemplateName::ALL
            .into_iter()
            .try_for_each(|template| self.check_template(template, sources))
    }

    fn check_template(
        &self,
        template: TemplateName,
        sources: Option<&TemplateSources>,
    ) -> Result<(), RenderError> {
        let samples = [
            EmailContext::sample(template),
            EmailContext::minimal_sample(template),
        ];
        for locale in self.available_locales() {
            for ctx in &samples {
                self.render(template, locale, ctx, sources)?;
            }
        }
        Ok(())
    }
}

/// One render in progress, for naming the template and locale in errors.
struct Job<'a> {
    template: TemplateName,
    locale: &'a Locale,
    data: &'a handlebars::Context,
}

impl Job<'_> {
    /// Renders the default template `name`, or `source` when given, with `registry`.
    fn part(
        &self,
        registry: &Handlebars<'_>,
        part: Part,
        name: &str,
        source: Option<&str>,
    ) -> Result<String, RenderError> {
        let rendered = match source {
            Some(source) => {
                compile(self.template, part, source)?;
                registry.render_template_with_context(source, self.data)
            }
            None => registry.render_with_context(name, self.data),
        };
        rendered.map_err(|e| self.classify(part, e))
    }

    /// Surfaces the `t` helper's errors (missing message, bad argument) with their key.
    fn classify(&self, part: Part, error: handlebars::RenderError) -> RenderError {
        if let RenderErrorReason::NestedError(inner) = error.reason()
            && let Some(message) = inner.downcast_ref::<MessageError>()
        {
            return RenderError::Message {
                template: self.template,
                part,
                locale: self.locale.clone(),
                key: message.key.clone(),
                problem: message.problem.clone(),
            };
        }
        RenderError::Template {
            template: self.template,
            part,
            locale: self.locale.clone(),
            source: Box::new(error),
        }
    }

    fn empty(&self, part: Part) -> RenderError {
        RenderError::Empty {
            template: self.template,
            part,
            locale: self.locale.clone(),
        }
    }
}

pub(crate) fn registry(escape: fn(&str) -> String, helper: TranslateHelper) -> Handlebars<'static> {
    let mut registry = Handlebars::new();
    registry.set_strict_mode(true);
    // Partials are not re-indented: that would add spaces inside the text part and <pre>.
    registry.set_prevent_indent(true);
    registry.register_escape_fn(escape);
    registry.register_helper("t", Box::new(helper));
    registry
}

fn subject_name(template: TemplateName) -> String {
    format!("{template}.subject")
}

/// The deepest nesting of blocks plus sub-expressions an override may use; real templates need a
/// handful, and handlebars compiles and renders nesting recursively.
pub const MAX_OVERRIDE_NESTING: usize = 24;
/// The largest override part accepted.
pub const MAX_OVERRIDE_BYTES: usize = 256 * 1024;

/// Refuses override sources that could exhaust the stack while compiling or rendering (inline
/// partial definitions and other decorators, as a partial can call itself without bound; nesting
/// deeper than [`MAX_OVERRIDE_NESTING`]; parts over [`MAX_OVERRIDE_BYTES`]), that do not compile,
/// that name a partial through an expression, or whose HTML part prints anything unescaped.
fn guard_sources(template: TemplateName, sources: &TemplateSources) -> Result<(), RenderError> {
    for (part, source) in [
        (Part::Subject, &sources.subject),
        (Part::Html, &sources.html),
        (Part::Text, &sources.text),
    ] {
        let Some(source) = source else { continue };
        let refused = |reason| RenderError::TooComplex {
            template,
            part,
            reason,
        };
        source_shape(source).map_err(refused)?;
        let compiled = compile(template, part, source)?;
        literal_partials(&compiled).map_err(refused)?;
        if part == Part::Html {
            escaped_only(&compiled).map_err(|reason| RenderError::Unescaped {
                template,
                part,
                reason,
            })?;
        }
    }
    Ok(())
}

/// Every element of `template`, blocks and partial blocks included, depth first.
fn visit(
    template: &Template,
    check: &mut dyn FnMut(&TemplateElement) -> Result<(), String>,
) -> Result<(), String> {
    for element in &template.elements {
        check(element)?;
        let inner: [Option<&Template>; 2] = match element {
            TemplateElement::HelperBlock(h) => [h.template.as_ref(), h.inverse.as_ref()],
            TemplateElement::PartialBlock(d) | TemplateElement::DecoratorBlock(d) => {
                [d.template.as_ref(), None]
            }
            _ => [None, None],
        };
        for t in inner.into_iter().flatten() {
            visit(t, check)?;
        }
    }
    Ok(())
}

/// Refuses the ways handlebars prints a value without the registry's HTML escaping:
/// `{{{value}}}`, `{{{{value}}}}`-style triple-stash and `{{&value}}`. Everything else a template
/// prints goes through the escape function: expressions, helpers (`t` escapes its output and
/// its arguments), and partials (built-in or loaded ones, themselves checked with this rule).
/// Raw blocks (`{{{{raw}}}}…{{{{/raw}}}}`) only print their own literal text.
pub(crate) fn escaped_only(template: &Template) -> Result<(), String> {
    visit(template, &mut |element| match element {
        TemplateElement::HtmlExpression(_) => Err(
            "it prints a value unescaped ({{{…}}} or {{&…}}); write {{…}} so that user data is \
             HTML-escaped"
                .to_string(),
        ),
        _ => Ok(()),
    })
}

/// Refuses partials named by an expression (`{{> (lookup …)}}`): an override may only call the
/// partials it names, never one that data picks.
fn literal_partials(template: &Template) -> Result<(), String> {
    visit(template, &mut |element| match element {
        TemplateElement::PartialExpression(d) | TemplateElement::PartialBlock(d)
            if !matches!(d.name, Parameter::Name(_)) =>
        {
            Err(
                "a partial must be named literally ({{> button …}}), not by an expression"
                    .to_string(),
            )
        }
        _ => Ok(()),
    })
}

fn source_shape(source: &str) -> Result<(), String> {
    if source.len() > MAX_OVERRIDE_BYTES {
        return Err(format!(
            "it is {} bytes long; the limit is {MAX_OVERRIDE_BYTES}",
            source.len()
        ));
    }
    let mut blocks = 0usize;
    let mut rest = source;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").unwrap_or(after.len());
        let inner = after[..end].trim_start_matches(['{', '~']).trim_start();
        if inner.starts_with('*') || inner.starts_with("#*") {
            return Err(
                "inline partials and other decorators ({{#*inline}}, {{*…}}) are not allowed in overrides"
                    .to_string(),
            );
        }
        if inner.starts_with('#') {
            blocks += 1;
        } else if inner.starts_with('/') {
            blocks = blocks.saturating_sub(1);
        }
        let mut parens = 0usize;
        let mut deepest = 0usize;
        for c in inner.chars() {
            match c {
                '(' => {
                    parens += 1;
                    deepest = deepest.max(parens);
                }
                ')' => parens = parens.saturating_sub(1),
                _ => {}
            }
        }
        if blocks + deepest > MAX_OVERRIDE_NESTING {
            return Err(format!(
                "it nests blocks and sub-expressions more than {MAX_OVERRIDE_NESTING} deep"
            ));
        }
        rest = &after[end..];
    }
    Ok(())
}

fn compile(template: TemplateName, part: Part, source: &str) -> Result<Template, RenderError> {
    Template::compile(source).map_err(|e| RenderError::Compile {
        template,
        part,
        source: Box::new(e),
    })
}

/// Makes a header-safe subject: every control character (CR, LF, tab, ...), ASCII space and line
/// separator becomes a space, runs of spaces collapse to one, and whitespace of any kind is
/// trimmed from the ends. Other spaces inside stay (French puts a no-break space before `!`).
pub(crate) fn single_line(raw: &str) -> String {
    raw.split(|c: char| {
        c.is_control() || c.is_ascii_whitespace() || matches!(c, '\u{2028}' | '\u{2029}')
    })
    .filter(|word| !word.is_empty())
    .collect::<Vec<_>>()
    .join(" ")
    .trim()
    .to_string()
}

/// Strips trailing spaces, keeps at most one blank line in a row, and ends with one newline.
pub(crate) fn tidy_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut pending_blank = false;
    for line in raw.lines() {
        let line = line.trim_end();
        if line.is_empty() {
            pending_blank = !out.is_empty();
            continue;
        }
        if pending_blank {
            out.push('\n');
            pending_blank = false;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_one_line_whatever_they_contain() {
        assert_eq!(
            single_line("  Hi\r\nBcc: evil@x\tthere\u{2028}\u{85}now \u{0}! "),
            "Hi Bcc: evil@x there now !"
        );
        assert_eq!(single_line("\r\n\t"), "");
        assert_eq!(
            single_line("Bienvenue sur Acme\u{a0}!"),
            "Bienvenue sur Acme\u{a0}!"
        );
    }

    #[test]
    fn text_keeps_single_blank_lines_only() {
        assert_eq!(tidy_text("\n\n a  \n\n\n\nb\n  \nc"), " a\n\nb\n\nc\n");
        assert_eq!(tidy_text(" \n\n"), "");
    }
}
