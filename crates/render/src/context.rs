//! The data an email is rendered from (recipient, link or one-time code, client, organization,
//! brand) and the validated view of it that templates actually see.

use std::fmt;

use herald_domain::{Locale, TemplateName};
use serde::{Deserialize, Serialize};
use unic_langid::CharacterDirection;

use crate::skeleton::{PLACEHOLDERS, Values, fits};

/// The recipient, as templates see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub user_id: String,
    pub email: String,
    pub name: Option<String>,
}

/// The client (application) the email is sent for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplicationView {
    pub name: String,
    /// Where the welcome email's sign-in button points; dropped unless it is an http(s) URL.
    pub login_uri: Option<String>,
}

/// The organization the user belongs to, when the job names one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationView {
    pub id: String,
    pub name: String,
    pub display_name: String,
}

/// How the email looks: the name and logo in the header and two colours.
///
/// The colours are checked at render time: anything but `#RRGGBB` is replaced by the neutral
/// colour, so no caller-supplied text ever reaches the stylesheet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Brand {
    pub name: String,
    /// Shown in the header when it is an http(s) URL; ignored otherwise.
    pub logo_url: Option<String>,
    pub primary_color: String,
    pub page_background: String,
}

impl Brand {
    pub const NEUTRAL_PRIMARY_COLOR: &'static str = "#334155";
    pub const NEUTRAL_PAGE_BACKGROUND: &'static str = "#f4f4f5";

    /// An organization's brand: its display name, and its logo and colours where it set them
    /// (the neutral colours otherwise).
    pub fn of_organization(
        display_name: &str,
        logo_url: Option<&str>,
        primary_color: Option<&str>,
        page_background: Option<&str>,
    ) -> Self {
        Self {
            name: display_name.to_owned(),
            logo_url: logo_url.map(str::to_owned),
            primary_color: primary_color
                .unwrap_or(Self::NEUTRAL_PRIMARY_COLOR)
                .to_owned(),
            page_background: page_background
                .unwrap_or(Self::NEUTRAL_PAGE_BACKGROUND)
                .to_owned(),
        }
    }

    /// The brand used when there is no organization (or it has no branding): slate on light grey.
    pub fn neutral(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            logo_url: None,
            primary_color: Self::NEUTRAL_PRIMARY_COLOR.to_string(),
            page_background: Self::NEUTRAL_PAGE_BACKGROUND.to_string(),
        }
    }
}

/// Everything a template can show about one email.
///
/// Its `Debug` output leaves the one-time code out.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailContext {
    pub user: UserView,
    /// The ticket link. Templates also see it as `link` (Auth0's name in enrollment emails).
    pub url: Option<String>,
    /// The seconds the ticket link has left when the email is rendered (the worker passes the
    /// ticket's expiry minus now, not the job's `ttl_sec`); templates show it as a localized
    /// "expires in" line. With a `code`, it is the code's lifetime, and the line speaks of the
    /// code.
    pub ttl_sec: Option<u64>,
    pub application: Option<ApplicationView>,
    pub organization: Option<OrganizationView>,
    pub brand: Brand,
    /// The product or tenant name, shown when there is no organization.
    pub friendly_name: String,
    /// The enrollment factor (`otp`, `phone`, `email`, `push-notification`, `webauthn-roaming`,
    /// `webauthn-platform`).
    pub factor: Option<String>,
    /// The one-time code of an `mfa_oob_code` email (Auth0's `code` variable). A secret, per
    /// recipient: it stands behind a placeholder in the inlined-skeleton cache, like the links.
    #[serde(default)]
    pub code: Option<String>,
}

impl fmt::Debug for EmailContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailContext")
            .field("user", &self.user)
            .field("url", &self.url)
            .field("ttl_sec", &self.ttl_sec)
            .field("application", &self.application)
            .field("organization", &self.organization)
            .field("brand", &self.brand)
            .field("friendly_name", &self.friendly_name)
            .field("factor", &self.factor)
            .field("code", &self.code.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl EmailContext {
    /// A fully populated context for `template`, for previews and for checking overrides.
    pub fn sample(template: TemplateName) -> Self {
        let ticket = !matches!(
            template,
            TemplateName::WelcomeEmail | TemplateName::MfaOobCode
        );
        let code = template == TemplateName::MfaOobCode;
        Self {
            user: UserView {
                user_id: "auth0|sample".into(),
                email: "alex@example.com".into(),
                name: Some("Alex Example".into()),
            },
            url: ticket.then(|| "https://herald.example/tickets/sample?ticket=SAMPLE#".into()),
            ttl_sec: if code {
                Some(600)
            } else {
                ticket.then_some(432_000)
            },
            application: Some(ApplicationView {
                name: "Example App".into(),
                login_uri: Some("https://app.example/login".into()),
            }),
            organization: Some(OrganizationView {
                id: "org_sample".into(),
                name: "example".into(),
                display_name: "Example Org".into(),
            }),
            brand: Brand {
                name: "Example Org".into(),
                logo_url: Some("https://herald.example/logo.png".into()),
                primary_color: "#0f766e".into(),
                page_background: "#f1f5f9".into(),
            },
            friendly_name: "Herald".into(),
            factor: (template == TemplateName::EnrollmentEmail).then(|| "otp".into()),
            code: code.then(|| "042917".into()),
        }
    }

    /// The sparsest context a job can produce for `template`: no name, client, organization or
    /// factor (and for a code, no lifetime). Overrides must render with it too, or they would
    /// fail on real jobs.
    pub(crate) fn minimal_sample(template: TemplateName) -> Self {
        let full = Self::sample(template);
        Self {
            ttl_sec: full.ttl_sec.filter(|_| full.code.is_none()),
            user: UserView {
                name: None,
                ..full.user
            },
            application: None,
            organization: None,
            brand: Brand::neutral("Herald"),
            factor: None,
            ..full
        }
    }
}

/// The JSON templates are rendered with: the context after validation, plus derived fields.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct View<'a> {
    user: UserOut<'a>,
    url: Option<&'a str>,
    link: Option<&'a str>,
    /// Where the welcome email's button points: the client's login URI, else `url`.
    login_url: Option<&'a str>,
    ttl_sec: Option<u64>,
    expires_in: Option<Expiry>,
    application: Option<ApplicationOut<'a>>,
    organization: Option<&'a OrganizationView>,
    brand: BrandOut<'a>,
    friendly_name: &'a str,
    factor: Option<&'a str>,
    /// The one-time code (`mfa_oob_code`).
    code: Option<&'a str>,
    /// The locale being rendered; the `t` helper reads it.
    lang: String,
    dir: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct UserOut<'a> {
    user_id: &'a str,
    email: &'a str,
    name: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
struct ApplicationOut<'a> {
    name: &'a str,
    login_uri: Option<&'a str>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct BrandOut<'a> {
    name: &'a str,
    logo_url: Option<&'a str>,
    primary_color: String,
    page_background: String,
    /// Black or white, whichever reads better on the primary colour.
    button_text_color: &'static str,
    /// The primary colour when it is readable on white, else a neutral dark one.
    link_color: String,
    /// Black or white, whichever reads better on the page background (the pages' footer).
    background_text_color: &'static str,
}

impl<'a> BrandOut<'a> {
    /// The brand as templates see it: colours validated as `#RRGGBB` (else the neutral ones),
    /// the logo only when it is an http(s) URL, and text colours that stay readable.
    pub(crate) fn of(brand: &'a Brand) -> Self {
        let primary = hex_color(&brand.primary_color).unwrap_or(NEUTRAL_PRIMARY_RGB);
        let background = hex_color(&brand.page_background).unwrap_or(NEUTRAL_PAGE_BACKGROUND_RGB);
        let readable_on = |rgb: Rgb| {
            if contrast(rgb, WHITE) >= contrast(rgb, INK) {
                "#ffffff"
            } else {
                "#111827"
            }
        };
        BrandOut {
            name: &brand.name,
            logo_url: brand.logo_url.as_deref().filter(|u| is_http_url(u)),
            primary_color: css_hex(primary),
            page_background: css_hex(background),
            button_text_color: readable_on(primary),
            link_color: if contrast(primary, WHITE) >= 3.0 {
                css_hex(primary)
            } else {
                css_hex(NEUTRAL_PRIMARY_RGB)
            },
            background_text_color: readable_on(background),
        }
    }
}

/// The "this link expires in ..." line: which message to use and the number it takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Expiry {
    key: &'static str,
    count: u64,
}

/// Why a context cannot be rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ViewError {
    /// The ticket link is not an http(s) URL.
    UnsafeLink,
}

impl<'a> View<'a> {
    pub(crate) fn new(ctx: &'a EmailContext, locale: &Locale) -> Result<Self, ViewError> {
        let url = match ctx.url.as_deref() {
            Some(u) if is_http_url(u) => Some(u),
            Some(_) => return Err(ViewError::UnsafeLink),
            None => None,
        };
        let application = ctx.application.as_ref().map(|a| ApplicationOut {
            name: &a.name,
            login_uri: a.login_uri.as_deref().filter(|u| is_http_url(u)),
        });
        let login_url = application.as_ref().and_then(|a| a.login_uri).or(url);
        let direction = match locale.langid().character_direction() {
            CharacterDirection::RTL => "rtl",
            _ => "ltr",
        };
        Ok(Self {
            user: UserOut {
                user_id: &ctx.user.user_id,
                email: &ctx.user.email,
                name: ctx
                    .user
                    .name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty()),
            },
            url,
            link: url,
            login_url,
            ttl_sec: ctx.ttl_sec,
            expires_in: ctx.ttl_sec.map(|t| expiry(t, ctx.code.is_some())),
            application,
            organization: ctx.organization.as_ref(),
            brand: BrandOut::of(&ctx.brand),
            friendly_name: &ctx.friendly_name,
            factor: ctx
                .factor
                .as_deref()
                .map(str::trim)
                .filter(|f| !f.is_empty()),
            code: ctx.code.as_deref().map(str::trim).filter(|c| !c.is_empty()),
            lang: locale.to_string(),
            dir: direction,
        })
    }
}

impl<'a> View<'a> {
    /// This view with its per-recipient strings replaced by [`PLACEHOLDERS`], and the values they
    /// stand for; `None` if a value does not [`fits`].
    pub(crate) fn skeleton(&self) -> Option<(View<'a>, Values<'a>)> {
        let mut skeleton = self.clone();
        let values: Values<'a> = [
            Some(self.user.user_id),
            Some(self.user.email),
            self.user.name,
            self.url,
            self.link,
            self.login_url,
            self.code,
        ];
        if values.iter().flatten().any(|v| !fits(v)) {
            return None;
        }
        let slot = |i: usize, v: Option<&'a str>| v.map(|_| PLACEHOLDERS[i]);
        skeleton.user.user_id = PLACEHOLDERS[0];
        skeleton.user.email = PLACEHOLDERS[1];
        skeleton.user.name = slot(2, self.user.name);
        skeleton.url = slot(3, self.url);
        skeleton.link = slot(4, self.link);
        skeleton.login_url = slot(5, self.login_url);
        skeleton.code = slot(6, self.code);
        Some((skeleton, values))
    }
}

type Rgb = [u8; 3];
const NEUTRAL_PRIMARY_RGB: Rgb = [0x33, 0x41, 0x55];
const NEUTRAL_PAGE_BACKGROUND_RGB: Rgb = [0xf4, 0xf4, 0xf5];
const WHITE: Rgb = [0xff, 0xff, 0xff];
const INK: Rgb = [0x11, 0x18, 0x27];

/// Parses exactly `#RRGGBB` (surrounding space allowed); anything else is refused.
pub(crate) fn hex_color(s: &str) -> Option<Rgb> {
    let hex = s.trim().strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let channel = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    Some([channel(0)?, channel(2)?, channel(4)?])
}

pub(crate) fn css_hex([r, g, b]: Rgb) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}

/// WCAG relative luminance.
fn luminance(rgb: Rgb) -> f64 {
    let linear = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.039_28 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * linear(rgb[0]) + 0.7152 * linear(rgb[1]) + 0.0722 * linear(rgb[2])
}

/// WCAG contrast ratio, 1.0 to 21.0.
fn contrast(a: Rgb, b: Rgb) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// An absolute http(s) URL with no whitespace or control characters.
pub(crate) fn is_http_url(s: &str) -> bool {
    let scheme = s.get(..8).unwrap_or(s).to_ascii_lowercase();
    let rest = if scheme.starts_with("https://") {
        s.get(8..)
    } else if scheme.starts_with("http://") {
        s.get(7..)
    } else {
        None
    };
    rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/'))
        && s.len() <= 4096
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;

/// Picks the unit a person would use, rounding down so the email never promises more time than
/// the ticket has: whole days from two days up (or exact days), hours from one hour, else minutes.
/// The messages speak of the link, or of the code (`code-expiry-*`) when the email carries one.
fn expiry(ttl_sec: u64, of_code: bool) -> Expiry {
    let (link_key, code_key, count) =
        if ttl_sec >= 2 * DAY || (ttl_sec >= DAY && ttl_sec.is_multiple_of(DAY)) {
            ("expiry-days", "code-expiry-days", ttl_sec / DAY)
        } else if ttl_sec >= HOUR {
            ("expiry-hours", "code-expiry-hours", ttl_sec / HOUR)
        } else {
            (
                "expiry-minutes",
                "code-expiry-minutes",
                (ttl_sec / MINUTE).max(1),
            )
        };
    Expiry {
        key: if of_code { code_key } else { link_key },
        count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_six_digit_hex_colours_are_accepted() {
        assert_eq!(hex_color("#FF6600"), Some([0xff, 0x66, 0x00]));
        assert_eq!(hex_color(" #0f766e "), Some([0x0f, 0x76, 0x6e]));
        for bad in [
            "red",
            "#fff",
            "#ff660",
            "#ff66001",
            "#gg6600",
            "ff6600",
            "red;} body{display:none",
            "#ff6600;}",
            "",
            "#",
            "#ÿÿÿ",
        ] {
            assert_eq!(hex_color(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn expiry_uses_the_largest_whole_unit_and_never_rounds_up() {
        let e = |ttl| {
            let x = expiry(ttl, false);
            (x.key, x.count)
        };
        assert_eq!(e(432_000), ("expiry-days", 5));
        assert_eq!(e(DAY), ("expiry-days", 1));
        assert_eq!(e(DAY + HOUR), ("expiry-hours", 25));
        assert_eq!(e(2 * DAY + 5 * HOUR), ("expiry-days", 2));
        assert_eq!(e(HOUR), ("expiry-hours", 1));
        assert_eq!(e(90 * MINUTE), ("expiry-hours", 1));
        assert_eq!(e(30 * MINUTE), ("expiry-minutes", 30));
        assert_eq!(e(0), ("expiry-minutes", 1));
        assert_eq!(e(u64::MAX).0, "expiry-days");
        assert_eq!(
            expiry(600, true),
            Expiry {
                key: "code-expiry-minutes",
                count: 10
            }
        );
        assert_eq!(expiry(3_600, true).key, "code-expiry-hours");
    }

    #[test]
    fn only_http_urls_are_links() {
        assert!(is_http_url("https://a.example/x?y=1"));
        assert!(is_http_url("HTTP://a.example"));
        for bad in [
            "javascript:alert(1)",
            "https://",
            "data:text/html,hi",
            "https://a.example/\r\nx",
            " https://a.example",
            "//a.example",
            "é",
        ] {
            assert!(!is_http_url(bad), "{bad:?}");
        }
    }

    #[test]
    fn light_primary_colours_get_dark_button_text() {
        assert!(contrast([0xff, 0xff, 0x00], WHITE) < contrast([0xff, 0xff, 0x00], INK));
        assert!(contrast(NEUTRAL_PRIMARY_RGB, WHITE) > 4.5);
    }
}
