//! The two ways rendering can fail: loading the templates and locales, and rendering one email.

use std::fmt;
use std::path::PathBuf;

use herald_domain::{Locale, TemplateName};

/// One of the three parts of an email, or the From line a Liquid template may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Subject,
    Html,
    Text,
    From,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Subject => "subject",
            Part::Html => "HTML body",
            Part::Text => "text body",
            Part::From => "from address",
        })
    }
}

/// The templates or locale files could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    #[error("reading {path} failed: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not UTF-8")]
    NotUtf8 { path: PathBuf },
    #[error("the template file {file} is missing")]
    MissingTemplate { file: String },
    #[error("the template file {file} does not compile: {source}")]
    Template {
        file: String,
        #[source]
        source: Box<handlebars::TemplateError>,
    },
    #[error("the locale directory {name:?} is not a language tag (expected e.g. `fr` or `pt-BR`)")]
    LocaleDir { name: String },
    #[error("no locale directory with .ftl files was found (expected `<lang>/*.ftl`)")]
    NoLocales,
    #[error("the locale file {file} ({locale}) is invalid: {problem}")]
    Ftl {
        locale: String,
        file: String,
        problem: String,
    },
    #[error("locale {locale} lacks messages that other locales define: {keys}")]
    MissingMessages { locale: String, keys: String },
    #[error("the template file {file} is refused: {reason}")]
    Unescaped { file: String, reason: String },
    #[error("the default templates do not render: {source}")]
    Defaults {
        #[source]
        source: Box<RenderError>,
    },
    #[error("the ticket pages do not render: {source}")]
    Page {
        #[source]
        source: Box<PageError>,
    },
}

/// A ticket page could not be rendered (a message missing in a locale, say).
#[derive(Debug, thiserror::Error)]
#[error("rendering the {page} page in {locale} failed: {source}")]
pub struct PageError {
    pub page: &'static str,
    pub locale: Locale,
    #[source]
    pub source: Box<handlebars::RenderError>,
}

/// One email could not be rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    #[error("the {part} override of {template} does not compile: {source}")]
    Compile {
        template: TemplateName,
        part: Part,
        #[source]
        source: Box<handlebars::TemplateError>,
    },
    #[error("the {part} override of {template} is refused: {reason}")]
    TooComplex {
        template: TemplateName,
        part: Part,
        reason: String,
    },
    #[error("the {part} override of {template} is refused: {reason}")]
    Unescaped {
        template: TemplateName,
        part: Part,
        reason: String,
    },
    #[error("an override of {template} must set at least one of subject, html or text")]
    NothingToOverride { template: TemplateName },
    #[error("rendering the {part} of {template} in {locale} failed: {source}")]
    Template {
        template: TemplateName,
        part: Part,
        locale: Locale,
        #[source]
        source: Box<handlebars::RenderError>,
    },
    #[error("rendering the {part} of {template} in {locale} failed: message {key:?}: {problem}")]
    Message {
        template: TemplateName,
        part: Part,
        locale: Locale,
        key: String,
        problem: String,
    },
    #[error("the {part} of {template} in {locale} rendered empty")]
    Empty {
        template: TemplateName,
        part: Part,
        locale: Locale,
    },
    #[error("the link for {template} is not an http(s) URL")]
    UnsafeLink { template: TemplateName },
    #[error("inlining the CSS of {template} in {locale} failed: {source}")]
    Css {
        template: TemplateName,
        locale: Locale,
        #[source]
        source: Box<css_inline::InlineError>,
    },
    #[error("no locale is loaded")]
    NoLocale,
    /// A Liquid template does not parse (`locale: None`) or does not render.
    #[error("the {part} of the {template} template{} is refused: {message}", in_locale(.locale))]
    Liquid {
        template: TemplateName,
        part: Part,
        locale: Option<Locale>,
        message: String,
    },
}

fn in_locale(locale: &Option<Locale>) -> String {
    locale
        .as_ref()
        .map(|l| format!(" (rendered in {l})"))
        .unwrap_or_default()
}
