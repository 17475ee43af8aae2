//! The ticket pages' HTML (`templates/pages/*.html.hbs`): what each page shows, rendered with
//! the emails' fluent catalog and brand rules, every value HTML-escaped, and one `<style>`
//! element carrying the response's CSP nonce (no inline script, no `style=` attributes).

use std::collections::BTreeMap;
use std::sync::Arc;

use handlebars::{Handlebars, Template};
use herald_domain::Locale;
use serde::Serialize;
use unic_langid::CharacterDirection;

use crate::Brand;
use crate::context::{BrandOut, is_http_url};
use crate::error::{LoadError, PageError};
use crate::i18n::{Catalog, TranslateHelper};
use crate::renderer::{escaped_only, registry};
use crate::sources::SourceFile;

/// The partial every page is wrapped in: `{{#> page-layout title=...}} body {{/page-layout}}`.
const LAYOUT: &str = "layout";

/// One page to render: its brand, the nonce of its `<style>` and what it shows.
#[derive(Debug, Clone)]
pub struct Page<'a> {
    pub brand: &'a Brand,
    /// The response's CSP nonce for the page's one `<style>` element.
    pub style_nonce: &'a str,
    pub body: PageBody,
}

/// What a page shows. Each variant is one template in `templates/pages/`.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum PageBody {
    /// `verify_email`: a button that verifies the address.
    VerifyEmail { form: Form, email: String },
    /// `change_password`: the new password twice, with what was wrong with the last try.
    ChangePassword {
        form: Form,
        email: String,
        min_length: u64,
        errors: Vec<PageMessage>,
    },
    /// `enroll_otp`: the QR code (an SVG data URI), the key as text, and the code field.
    EnrollOtp {
        form: Form,
        qr_data_uri: String,
        secret: String,
        error: Option<PageMessage>,
    },
    /// `enroll_email`: a button that emails a code, then the code field.
    EnrollEmail {
        form: Form,
        email: String,
        code_sent: bool,
        error: Option<PageMessage>,
    },
    /// `result`: how it went (or why the link cannot be used), and where to go next.
    Result {
        success: bool,
        title: PageMessage,
        message: PageMessage,
        continue_to: Option<ContinueTo>,
    },
}

impl PageBody {
    fn template(&self) -> &'static str {
        match self {
            PageBody::VerifyEmail { .. } => "verify_email",
            PageBody::ChangePassword { .. } => "change_password",
            PageBody::EnrollOtp { .. } => "enroll_otp",
            PageBody::EnrollEmail { .. } => "enroll_email",
            PageBody::Result { .. } => "result",
        }
    }
}

/// Where a page's form posts, and the hidden fields it carries.
#[derive(Clone, Serialize)]
pub struct Form {
    /// A path on this server (`/u/email-verification`).
    pub action: String,
    /// The CSRF token bound to this ticket and the browser's cookie.
    pub csrf: String,
    /// The ticket from the link.
    pub ticket: String,
}

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Form")
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

/// A message of the catalog (`page-…`) and the numbers it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PageMessage {
    pub key: &'static str,
    /// Absent numbers are `null`, which the `t` helper leaves out.
    pub min: Option<u64>,
    pub max: Option<u64>,
}

impl PageMessage {
    pub fn new(key: &'static str) -> Self {
        Self {
            key,
            min: None,
            max: None,
        }
    }

    #[must_use]
    pub fn min(mut self, min: u64) -> Self {
        self.min = Some(min);
        self
    }

    #[must_use]
    pub fn max(mut self, max: u64) -> Self {
        self.max = Some(max);
        self
    }
}

/// A link onwards from a result page: the application's, when there is one.
#[derive(Debug, Clone, Serialize)]
pub struct ContinueTo {
    /// An http(s) URL; anything else is dropped when the page renders.
    pub url: String,
    /// The application's name, for "Back to {app}"; "Continue" without one.
    pub app: Option<String>,
}

#[derive(Serialize)]
struct PageView<'a> {
    lang: String,
    dir: &'static str,
    brand: BrandOut<'a>,
    nonce: &'a str,
    #[serde(flatten)]
    body: &'a PageBody,
    /// `continue_to.url` when it is an http(s) URL.
    continue_url: Option<&'a str>,
}

/// The page templates, compiled once, sharing the emails' catalog.
pub(crate) struct Pages {
    registry: Handlebars<'static>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages").finish_non_exhaustive()
    }
}

const TEMPLATES: [&str; 5] = [
    "verify_email",
    "change_password",
    "enroll_otp",
    "enroll_email",
    "result",
];

impl Pages {
    /// Compiles `pages/*.html.hbs` from `templates` (every file refused if it prints anything
    /// unescaped), and renders every page in every locale of `catalog` to prove the messages
    /// are all there.
    pub(crate) fn load(templates: &[SourceFile], catalog: Arc<Catalog>) -> Result<Self, LoadError> {
        let mut registry = registry(
            handlebars::html_escape,
            TranslateHelper::new(catalog.clone()),
        );
        let mut found: BTreeMap<String, &SourceFile> = BTreeMap::new();
        for file in templates {
            let mut parts = file.path.iter();
            let (Some(dir), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if dir != "pages" {
                continue;
            }
            if let Some(stem) = name.to_string_lossy().strip_suffix(".html.hbs") {
                found.insert(stem.to_string(), file);
            }
        }
        for name in std::iter::once(LAYOUT).chain(TEMPLATES) {
            let file_name = format!("pages/{name}.html.hbs");
            let file = found.get(name).ok_or_else(|| LoadError::MissingTemplate {
                file: file_name.clone(),
            })?;
            let compile_error = |e| LoadError::Template {
                file: file_name.clone(),
                source: Box::new(e),
            };
            let template = Template::compile(&file.contents).map_err(compile_error)?;
            escaped_only(&template).map_err(|reason| LoadError::Unescaped {
                file: file_name.clone(),
                reason,
            })?;
            let registered = if name == LAYOUT { "page-layout" } else { name };
            registry
                .register_template_string(registered, &file.contents)
                .map_err(compile_error)?;
        }
        let pages = Pages { registry };
        let brand = Brand::neutral("Herald");
        for locale in catalog.locales() {
            for body in samples() {
                let page = Page {
                    brand: &brand,
                    style_nonce: "sample",
                    body,
                };
                pages.render(locale, &page).map_err(|e| LoadError::Page {
                    source: Box::new(e),
                })?;
            }
        }
        Ok(pages)
    }

    pub(crate) fn render(&self, locale: &Locale, page: &Page<'_>) -> Result<String, PageError> {
        let continue_url = match &page.body {
            PageBody::Result {
                continue_to: Some(c),
                ..
            } if is_http_url(&c.url) => Some(c.url.as_str()),
            _ => None,
        };
        let view = PageView {
            lang: locale.to_string(),
            dir: match locale.langid().character_direction() {
                CharacterDirection::RTL => "rtl",
                _ => "ltr",
            },
            brand: BrandOut::of(page.brand),
            nonce: page.style_nonce,
            body: &page.body,
            continue_url,
        };
        let template = page.body.template();
        self.registry
            .render(template, &view)
            .map_err(|source| PageError {
                page: template,
                locale: locale.clone(),
                source: Box::new(source),
            })
    }
}

/// One of each page, with every optional part filled, for the load-time check and tests.
pub(crate) fn samples() -> Vec<PageBody> {
    let form = || Form {
        action: "/u/sample".into(),
        csrf: "csrf".into(),
        ticket: "ticket".into(),
    };
    vec![
        PageBody::VerifyEmail {
            form: form(),
            email: "alex@example.com".into(),
        },
        PageBody::ChangePassword {
            form: form(),
            email: "alex@example.com".into(),
            min_length: 10,
            errors: vec![
                PageMessage::new("page-password-too-short").min(10),
                PageMessage::new("page-password-too-long").max(128),
                PageMessage::new("page-password-mismatch"),
                PageMessage::new("page-password-weak"),
            ],
        },
        PageBody::EnrollOtp {
            form: form(),
            qr_data_uri: "data:image/svg+xml;base64,PHN2Zy8+".into(),
            secret: "JBSWY3DPEHPK3PXP".into(),
            error: Some(PageMessage::new("page-mfa-otp-wrong")),
        },
        PageBody::EnrollEmail {
            form: form(),
            email: "alex@example.com".into(),
            code_sent: true,
            error: Some(PageMessage::new("page-mfa-email-wrong")),
        },
        PageBody::Result {
            success: true,
            title: PageMessage::new("page-verify-done-title"),
            message: PageMessage::new("page-verify-done"),
            continue_to: Some(ContinueTo {
                url: "https://app.example/login".into(),
                app: Some("Example App".into()),
            }),
        },
    ]
}
