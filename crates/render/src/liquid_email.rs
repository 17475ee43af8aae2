//! Auth0's email templates, in Liquid: compiled and test-rendered before they are saved, and
//! rendered with Auth0's variables (`user.*`, `application.*`, `organization.*`, `url`, `link`,
//! `code` (the MFA OOB code email's one-time code), `friendly_name`, `support_email`, `support_url`, ...), so a template pasted from Auth0 works
//! unchanged.
//!
//! Two choices keep pasted templates working and user data safe:
//! - **Lax lookups, as LiquidJS has them.** Any variable or key that is not there is `nil`
//!   (`{{ user.user_metadata.lang }}` on a user without one prints nothing, and
//!   `{{ missing | default: "x" }}` prints `x`) instead of the strict error of the Liquid crate.
//!   An absent object (`organization` without an organization) is falsy, as in LiquidJS.
//! - **Escaped by default.** In the HTML body every string value arrives HTML-escaped, and
//!   `escape` does not escape twice (it works like `escape_once`), so `{{ user.name }}` and
//!   Auth0's recommended `{{ user.name | escape }}` print the same safe text. The subject and
//!   From address see the raw values (they are not HTML; the subject is made single-line).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};

use herald_domain::{Locale, TemplateName, negotiate};
use liquid::model::{KString, KStringCow, ScalarCow, State, Value};
use liquid::{ObjectView, ValueView};
use liquid_core::model::{ArrayView, DisplayCow};
use liquid_core::parser::{FilterArguments, ParameterReflection};
use liquid_core::runtime::Runtime;
use liquid_core::{Filter, FilterReflection, ParseFilter};
use serde_json::{Map, Value as Json};

use crate::Brand;
use crate::context::{EmailContext, css_hex, hex_color, is_http_url};
use crate::error::{Part, RenderError};
use crate::renderer::{RenderedEmail, Renderer, single_line};
use crate::text_part::html_to_text;

/// The largest Liquid part accepted (as for handlebars overrides).
pub const MAX_LIQUID_BYTES: usize = crate::renderer::MAX_OVERRIDE_BYTES;

/// The parts of an Auth0 template written in Liquid. `None` keeps Herald's built-in part (the
/// localized subject; the built-in HTML and text); the text part of a Liquid body is made from
/// its HTML.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiquidSources {
    pub subject: Option<String>,
    /// The HTML body.
    pub body: Option<String>,
    /// The From mailbox, e.g. `{{ application.name }} <no-reply@example.com>`.
    pub from: Option<String>,
}

/// The user's profile from the user registry, for the Auth0 variables Herald's own templates
/// do not use. Absent for users that only exist in the job.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserProfile {
    pub email_verified: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub nickname: Option<String>,
    pub picture: Option<String>,
    pub user_metadata: Json,
    pub app_metadata: Json,
}

/// Auth0's variables beyond the [`EmailContext`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiquidExtras {
    pub user: Option<UserProfile>,
    /// The client's id (`application.clientID`).
    pub client_id: Option<String>,
    /// The origin of the client's first callback URL (`application.callback_domain`).
    pub callback_domain: Option<String>,
    /// The organization's metadata (`organization.metadata`).
    pub organization_metadata: Option<Json>,
    /// The user's connection (`connection.name`; absent in enrollment emails, as in Auth0).
    pub connection: Option<String>,
    pub support_email: Option<String>,
    pub support_url: Option<String>,
    /// The host of the ticket link when the job named a custom domain.
    pub custom_domain: Option<String>,
}

/// A Liquid template rendered for one email.
#[derive(Debug, Clone, PartialEq)]
pub struct LiquidEmail {
    pub email: RenderedEmail,
    /// The rendered From mailbox text (one line), when the template sets one.
    pub from: Option<String>,
}

/// The Liquid parser: the standard library, with `escape` that never escapes twice.
static PARSER: LazyLock<liquid::Parser> = LazyLock::new(|| {
    liquid::ParserBuilder::with_stdlib()
        .filter(EscapeOnce)
        .build()
        .expect("the Liquid standard library builds")
});

impl Renderer {
    /// Compiles `sources` and renders them in every loaded locale against a fully populated and
    /// a sparse sample, so that a broken template is refused with what is wrong before it is
    /// saved. The From part must render to a single line.
    pub fn check_liquid(
        &self,
        template: TemplateName,
        sources: &LiquidSources,
    ) -> Result<(), RenderError> {
        for (part, source) in parts(sources) {
            compile(template, part, source)?;
        }
        let samples = [
            (EmailContext::sample(template), LiquidExtras::sample()),
            (
                EmailContext::minimal_sample(template),
                LiquidExtras::default(),
            ),
        ];
        for locale in self.available_locales() {
            for (ctx, extras) in &samples {
                self.render_liquid(template, locale, ctx, extras, sources)?;
            }
        }
        Ok(())
    }

    /// Renders one email with a Liquid template (parts it leaves unset are Herald's built-in
    /// ones in `locale`).
    pub fn render_liquid(
        &self,
        template: TemplateName,
        locale: &Locale,
        ctx: &EmailContext,
        extras: &LiquidExtras,
        sources: &LiquidSources,
    ) -> Result<LiquidEmail, RenderError> {
        let tag = locale.to_string();
        let locale = negotiate(
            [Some(tag.as_str())],
            self.available_locales(),
            self.default_locale(),
        );
        let builtin = if sources.body.is_none() || sources.subject.is_none() {
            Some(self.render(template, &locale, ctx, None)?)
        } else {
            None
        };
        let fail = |part, message: String| RenderError::Liquid {
            template,
            part,
            locale: Some(locale.clone()),
            message,
        };
        let raw = globals(ctx, extras, &locale, false);
        let subject = match &sources.subject {
            Some(source) => {
                let subject = single_line(&render(template, Part::Subject, source, &raw, &locale)?);
                if subject.is_empty() {
                    return Err(fail(Part::Subject, "it rendered empty".into()));
                }
                subject
            }
            None => builtin
                .as_ref()
                .map(|b| b.subject.clone())
                .unwrap_or_default(),
        };
        let from = match &sources.from {
            Some(source) => {
                let from = render(template, Part::From, source, &raw, &locale)?;
                if from.contains(['\r', '\n']) {
                    return Err(fail(Part::From, "it renders on more than one line".into()));
                }
                let from = from.trim().to_owned();
                if from.is_empty() {
                    return Err(fail(Part::From, "it rendered empty".into()));
                }
                Some(from)
            }
            None => None,
        };
        let (html, text) = match (&sources.body, builtin) {
            (Some(source), _) => {
                let escaped = globals(ctx, extras, &locale, true);
                let html = render(template, Part::Html, source, &escaped, &locale)?;
                if html.trim().is_empty() {
                    return Err(fail(Part::Html, "it rendered empty".into()));
                }
                let html = self.inline_css(template, &locale, &html)?;
                let text = html_to_text(&html);
                if text.is_empty() {
                    return Err(fail(Part::Html, "it has no text".into()));
                }
                (html, text)
            }
            (None, Some(builtin)) => (builtin.html, builtin.text),
            (None, None) => unreachable!("the built-in email is rendered when there is no body"),
        };
        Ok(LiquidEmail {
            email: RenderedEmail {
                subject,
                html,
                text,
            },
            from,
        })
    }
}

impl LiquidExtras {
    /// Every Auth0 variable set, for checking templates before they are saved.
    pub fn sample() -> Self {
        let mut metadata = Map::new();
        metadata.insert("lang".into(), Json::String("en".into()));
        Self {
            user: Some(UserProfile {
                email_verified: false,
                given_name: Some("Alex".into()),
                family_name: Some("Example".into()),
                nickname: Some("alex".into()),
                picture: Some("https://herald.example/alex.png".into()),
                user_metadata: Json::Object(metadata),
                app_metadata: Json::Object(Map::new()),
            }),
            client_id: Some("sample_client_id".into()),
            callback_domain: Some("https://app.example".into()),
            organization_metadata: Some(Json::Object(Map::new())),
            connection: Some("Username-Password-Authentication".into()),
            support_email: Some("support@herald.example".into()),
            support_url: Some("https://herald.example/support".into()),
            custom_domain: None,
        }
    }
}

fn parts(sources: &LiquidSources) -> impl Iterator<Item = (Part, &str)> {
    [
        (Part::Subject, sources.subject.as_deref()),
        (Part::Html, sources.body.as_deref()),
        (Part::From, sources.from.as_deref()),
    ]
    .into_iter()
    .filter_map(|(part, source)| source.map(|s| (part, s)))
}

/// Compiled templates by source: parsing is most of a Liquid render (about 300 µs of 400 µs for
/// a typical body, measured in release), and a tenant has only a few templates. Emptied when it
/// reaches [`COMPILED_ENTRIES`].
static COMPILED: LazyLock<Mutex<HashMap<String, Arc<liquid::Template>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const COMPILED_ENTRIES: usize = 256;

/// The compiled `source`, from the cache or parsed now.
fn compiled(
    template: TemplateName,
    part: Part,
    source: &str,
) -> Result<Arc<liquid::Template>, RenderError> {
    let cache = || COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(hit) = cache().get(source) {
        return Ok(Arc::clone(hit));
    }
    let fresh = Arc::new(compile(template, part, source)?);
    let mut cache = cache();
    if cache.len() >= COMPILED_ENTRIES {
        cache.clear();
    }
    cache.insert(source.to_owned(), Arc::clone(&fresh));
    Ok(fresh)
}

fn compile(
    template: TemplateName,
    part: Part,
    source: &str,
) -> Result<liquid::Template, RenderError> {
    if source.len() > MAX_LIQUID_BYTES {
        return Err(RenderError::Liquid {
            template,
            part,
            locale: None,
            message: format!(
                "it is {} bytes long; the limit is {MAX_LIQUID_BYTES}",
                source.len()
            ),
        });
    }
    PARSER.parse(source).map_err(|e| RenderError::Liquid {
        template,
        part,
        locale: None,
        message: e.to_string(),
    })
}

fn render(
    template: TemplateName,
    part: Part,
    source: &str,
    globals: &Lax,
    locale: &Locale,
) -> Result<String, RenderError> {
    let compiled = compiled(template, part, source)?;
    let Lax::Object(globals) = globals else {
        unreachable!("the globals are an object")
    };
    compiled.render(globals).map_err(|e| RenderError::Liquid {
        template,
        part,
        locale: Some(locale.clone()),
        message: e.to_string(),
    })
}

/// Auth0's variables for one email; every string HTML-escaped when `escaped`.
fn globals(ctx: &EmailContext, extras: &LiquidExtras, locale: &Locale, escaped: bool) -> Lax {
    let s = |v: &str| Json::String(v.to_owned());
    let opt = |v: Option<&str>| v.map_or(Json::Null, s);
    let profile = extras.user.as_ref();
    let mut user = Map::new();
    user.insert("user_id".into(), s(&ctx.user.user_id));
    user.insert("email".into(), s(&ctx.user.email));
    user.insert("name".into(), opt(ctx.user.name.as_deref()));
    user.insert(
        "email_verified".into(),
        Json::Bool(profile.is_some_and(|p| p.email_verified)),
    );
    for (key, value) in [
        ("given_name", profile.and_then(|p| p.given_name.as_deref())),
        (
            "family_name",
            profile.and_then(|p| p.family_name.as_deref()),
        ),
        ("nickname", profile.and_then(|p| p.nickname.as_deref())),
        ("picture", profile.and_then(|p| p.picture.as_deref())),
    ] {
        user.insert(key.into(), opt(value));
    }
    for (key, value) in [
        ("user_metadata", profile.map(|p| &p.user_metadata)),
        ("app_metadata", profile.map(|p| &p.app_metadata)),
    ] {
        user.insert(
            key.into(),
            value.cloned().unwrap_or_else(|| Json::Object(Map::new())),
        );
    }

    let application = ctx.application.as_ref().map(|a| {
        let mut app = Map::new();
        app.insert("name".into(), s(&a.name));
        app.insert("clientID".into(), opt(extras.client_id.as_deref()));
        app.insert(
            "callback_domain".into(),
            opt(extras.callback_domain.as_deref()),
        );
        app.insert("login_uri".into(), opt(a.login_uri.as_deref()));
        app.insert("metadata".into(), Json::Object(Map::new()));
        app.insert("client_metadata".into(), Json::Object(Map::new()));
        app
    });
    let organization = ctx.organization.as_ref().map(|o| {
        let mut org = Map::new();
        org.insert("id".into(), s(&o.id));
        org.insert("name".into(), s(&o.name));
        org.insert("display_name".into(), s(&o.display_name));
        org.insert(
            "metadata".into(),
            extras
                .organization_metadata
                .clone()
                .unwrap_or_else(|| Json::Object(Map::new())),
        );
        // As in Herald's own templates: colours only as `#rrggbb` (else the neutral ones) and
        // the logo only as an http(s) URL, whatever the organization's record holds.
        let color = |c: &str, neutral: &str| {
            Json::String(hex_color(c).map_or_else(|| neutral.to_owned(), css_hex))
        };
        let mut colors = Map::new();
        colors.insert(
            "primary".into(),
            color(&ctx.brand.primary_color, Brand::NEUTRAL_PRIMARY_COLOR),
        );
        colors.insert(
            "page_background".into(),
            color(&ctx.brand.page_background, Brand::NEUTRAL_PAGE_BACKGROUND),
        );
        let mut branding = Map::new();
        branding.insert(
            "logo_url".into(),
            opt(ctx.brand.logo_url.as_deref().filter(|u| is_http_url(u))),
        );
        branding.insert("colors".into(), Json::Object(colors));
        org.insert("branding".into(), Json::Object(branding));
        org
    });
    let connection = extras.connection.as_deref().map(|name| {
        let mut c = Map::new();
        c.insert("name".into(), s(name));
        c
    });
    let custom_domain = extras.custom_domain.as_deref().map(|domain| {
        let mut c = Map::new();
        c.insert("domain".into(), s(domain));
        c
    });

    let mut root = BTreeMap::new();
    let mut put = |key: &str, value: Lax| {
        root.insert(KString::from_ref(key), value);
    };
    put("user", Lax::from_json(&Json::Object(user), escaped));
    for (key, object) in [
        ("application", application.clone()),
        ("client", application),
        ("organization", organization),
        ("connection", connection),
        ("custom_domain", custom_domain),
    ] {
        put(
            key,
            match object {
                Some(map) => Lax::from_json(&Json::Object(map), escaped),
                None => Lax::absent(),
            },
        );
    }
    for (key, value) in [
        ("url", ctx.url.as_deref()),
        ("link", ctx.url.as_deref()),
        ("code", ctx.code.as_deref()),
        ("friendly_name", Some(ctx.friendly_name.as_str())),
        ("tenant", Some(ctx.friendly_name.as_str())),
        ("support_email", extras.support_email.as_deref()),
        ("support_url", extras.support_url.as_deref()),
        ("request_language", Some(&locale.to_string())),
    ] {
        put(key, Lax::from_json(&opt(value), escaped));
    }
    Lax::Object(LaxObject {
        map: root,
        present: true,
    })
}

/// A value in which every missing key of an object is `nil` (LiquidJS' behaviour).
#[derive(Debug)]
enum Lax {
    Scalar(Value),
    Array(Vec<Lax>),
    Object(LaxObject),
}

#[derive(Debug)]
struct LaxObject {
    map: BTreeMap<KString, Lax>,
    /// False for an object Auth0 would leave undefined (no organization): falsy and blank, but
    /// its keys still answer `nil`.
    present: bool,
}

/// What a missing key or a `null` reads as: `nil` that also answers `nil` for any key of its
/// own, so that `organization.branding.colors.primary` without an organization prints nothing,
/// as in LiquidJS.
static NIL: Lax = Lax::Object(LaxObject {
    map: BTreeMap::new(),
    present: false,
});

impl Lax {
    fn absent() -> Self {
        Lax::Object(LaxObject {
            map: BTreeMap::new(),
            present: false,
        })
    }

    fn from_json(json: &Json, escaped: bool) -> Self {
        match json {
            Json::Null => Lax::absent(),
            Json::Bool(b) => Lax::Scalar(Value::scalar(*b)),
            Json::Number(n) => Lax::Scalar(match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Value::scalar(i),
                (None, Some(f)) => Value::scalar(f),
                (None, None) => Value::Nil,
            }),
            Json::String(s) if escaped => Lax::Scalar(Value::scalar(escape_html(s))),
            Json::String(s) => Lax::Scalar(Value::scalar(s.clone())),
            Json::Array(items) => {
                Lax::Array(items.iter().map(|i| Lax::from_json(i, escaped)).collect())
            }
            Json::Object(map) => Lax::Object(LaxObject {
                map: map
                    .iter()
                    .map(|(k, v)| (KString::from_ref(k), Lax::from_json(v, escaped)))
                    .collect(),
                present: true,
            }),
        }
    }

    fn inner(&self) -> &dyn ValueView {
        match self {
            Lax::Scalar(v) => v,
            Lax::Array(a) => a,
            Lax::Object(o) => o,
        }
    }
}

impl ValueView for Lax {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        self.inner().render()
    }
    fn source(&self) -> DisplayCow<'_> {
        self.inner().source()
    }
    fn type_name(&self) -> &'static str {
        self.inner().type_name()
    }
    fn query_state(&self, state: State) -> bool {
        self.inner().query_state(state)
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        self.inner().to_kstr()
    }
    fn to_value(&self) -> Value {
        self.inner().to_value()
    }
    fn as_scalar(&self) -> Option<ScalarCow<'_>> {
        self.inner().as_scalar()
    }
    fn as_array(&self) -> Option<&dyn ArrayView> {
        match self {
            Lax::Array(a) => Some(a),
            _ => None,
        }
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        match self {
            Lax::Object(o) => Some(o),
            _ => None,
        }
    }
    fn is_nil(&self) -> bool {
        self.inner().is_nil()
    }
}

impl ValueView for LaxObject {
    fn as_debug(&self) -> &dyn fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        DisplayCow::Owned(Box::new(self.to_value().render().to_string()))
    }
    fn source(&self) -> DisplayCow<'_> {
        DisplayCow::Owned(Box::new(self.to_value().source().to_string()))
    }
    fn type_name(&self) -> &'static str {
        if self.present { "object" } else { "nil" }
    }
    fn query_state(&self, state: State) -> bool {
        match state {
            State::Truthy => self.present,
            State::DefaultValue | State::Empty | State::Blank => {
                !self.present || self.map.is_empty()
            }
        }
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        KStringCow::from_string(self.render().to_string())
    }
    fn to_value(&self) -> Value {
        if !self.present {
            return Value::Nil;
        }
        Value::Object(
            self.map
                .iter()
                .map(|(k, v)| (k.clone(), v.to_value()))
                .collect(),
        )
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        Some(self)
    }
    fn is_nil(&self) -> bool {
        !self.present
    }
}

impl ObjectView for LaxObject {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        i64::try_from(self.map.len()).unwrap_or(i64::MAX)
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        Box::new(self.map.keys().map(|k| k.as_ref().into()))
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        Box::new(self.map.values().map(|v| v as &dyn ValueView))
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        Box::new(
            self.map
                .iter()
                .map(|(k, v)| (k.as_ref().into(), v as &dyn ValueView)),
        )
    }
    /// Every key "exists": the ones not set are `nil`.
    fn contains_key(&self, _index: &str) -> bool {
        true
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        Some(self.map.get(index).unwrap_or(&NIL))
    }
}

pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            c => out.push(c),
        }
    }
    out
}

/// `escape` that leaves existing entities alone (Liquid's `escape_once`), registered under
/// Auth0's name: values arrive escaped already, and Auth0's templates escape them again.
#[derive(Debug, Clone, Copy)]
struct EscapeOnce;

static NO_PARAMETERS: [ParameterReflection; 0] = [];

impl FilterReflection for EscapeOnce {
    fn name(&self) -> &str {
        "escape"
    }
    fn description(&self) -> &str {
        "Escapes a string for HTML, leaving existing entities as they are."
    }
    fn positional_parameters(&self) -> &'static [ParameterReflection] {
        &NO_PARAMETERS
    }
    fn keyword_parameters(&self) -> &'static [ParameterReflection] {
        &NO_PARAMETERS
    }
}

impl ParseFilter for EscapeOnce {
    fn parse(&self, mut arguments: FilterArguments<'_>) -> liquid_core::Result<Box<dyn Filter>> {
        if arguments.positional.next().is_some() || arguments.keyword.next().is_some() {
            return Err(liquid_core::Error::with_msg(
                "Invalid number of arguments: escape takes none",
            ));
        }
        Ok(Box::new(EscapeOnceFilter))
    }

    fn reflection(&self) -> &dyn FilterReflection {
        self
    }
}

#[derive(Debug, Clone, Copy)]
struct EscapeOnceFilter;

impl fmt::Display for EscapeOnceFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("escape")
    }
}

impl Filter for EscapeOnceFilter {
    fn evaluate(
        &self,
        input: &dyn ValueView,
        _runtime: &dyn Runtime,
    ) -> liquid_core::Result<Value> {
        if input.is_nil() {
            return Ok(Value::Nil);
        }
        let s = input.to_kstr();
        let mut out = String::with_capacity(s.len());
        let mut rest = s.as_str();
        while let Some(i) = rest.find(['<', '>', '"', '\'', '&']) {
            out.push_str(&rest[..i]);
            let c = rest.as_bytes()[i];
            rest = &rest[i + 1..];
            match c {
                b'<' => out.push_str("&lt;"),
                b'>' => out.push_str("&gt;"),
                b'"' => out.push_str("&quot;"),
                b'\'' => out.push_str("&#39;"),
                _ if is_entity(rest) => out.push('&'),
                _ => out.push_str("&amp;"),
            }
        }
        out.push_str(rest);
        Ok(Value::scalar(out))
    }
}

/// Whether `rest` (what follows an `&`) starts an entity: `name;`, `#123;` or `#x1F;`.
fn is_entity(rest: &str) -> bool {
    let Some(end) = rest.find(';') else {
        return false;
    };
    let name = &rest[..end];
    if end == 0 || end > 32 {
        return false;
    }
    match name.strip_prefix('#') {
        Some(num) => match num.strip_prefix(['x', 'X']) {
            Some(hex) => !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()),
            None => !num.is_empty() && num.chars().all(|c| c.is_ascii_digit()),
        },
        None => name.chars().all(|c| c.is_ascii_alphanumeric()),
    }
}

/// The application a ticket is for, as a template's Liquid `resultUrl` sees it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResultUrlApplication<'a> {
    pub name: Option<&'a str>,
    pub client_id: Option<&'a str>,
    /// The origin of the client's first callback URL.
    pub callback_domain: Option<&'a str>,
}

/// Renders a template's `resultUrl`, which may use Auth0's few variables there:
/// `application.name` (URL-encoded), `application.clientID` and `application.callback_domain`
/// (also as `client.*`). The result must be an absolute http(s) URL.
pub fn render_result_url(source: &str, app: ResultUrlApplication<'_>) -> Result<String, String> {
    if source.len() > 2048 {
        return Err("it is longer than 2048 characters".into());
    }
    let compiled = PARSER.parse(source).map_err(|e| e.to_string())?;
    let opt = |v: Option<&str>| v.map_or(Json::Null, |v| Json::String(v.to_owned()));
    let mut application = Map::new();
    application.insert("name".into(), opt(app.name.map(url_encode).as_deref()));
    application.insert("clientID".into(), opt(app.client_id));
    application.insert("callback_domain".into(), opt(app.callback_domain));
    let application = Json::Object(application);
    let mut root = BTreeMap::new();
    for key in ["application", "client"] {
        root.insert(
            KString::from_static(key),
            Lax::from_json(&application, false),
        );
    }
    let globals = LaxObject {
        map: root,
        present: true,
    };
    let url = compiled.render(&globals).map_err(|e| e.to_string())?;
    let url = url.trim().to_owned();
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("https://") || lower.starts_with("http://"))
        || url.contains(char::is_whitespace)
    {
        return Err(format!(
            "it must be an absolute http(s) URL, and it renders as {url:?}"
        ));
    }
    Ok(url)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use herald_domain::{Locale, TemplateName};
    use serde_json::json;

    use super::*;
    use crate::Renderer;

    /// Written the way Auth0's documentation writes its examples: the documented greeting, the
    /// documented language branch on `user.user_metadata`, untrusted fields through `escape`,
    /// and a variable Auth0 leaves undefined with a `default`.
    const AUTH0_STYLE: &str = r#"<html><head><style>.btn { color: #ffffff; }</style></head><body>
{% assign language = user.user_metadata.lang | slice: 0,2 %}
<p>Hello {{ user.name }}. Welcome to {{ application.name }} from {{ friendly_name }}.</p>
{% if language == 'ja' %}<p>メールアドレスを確認してください。</p>{% else %}<p>Please verify your email.</p>{% endif %}
{% if organization %}<p>Org: {{ organization.display_name | escape }}</p>{% endif %}
<p>{{ user.nickname | escape }} / {{ undefined_variable | default: "Default value" }}</p>
<a class="btn" href="{{ url }}">Confirm</a>
<p>Questions? {{ support_email }}</p></body></html>"#;

    fn renderer() -> Renderer {
        Renderer::embedded().expect("the built-in templates load")
    }

    fn sources(body: &str) -> LiquidSources {
        LiquidSources {
            subject: Some("Verify your {{ application.name }} account".into()),
            body: Some(body.into()),
            from: Some("{{ application.name }} <no-reply@app.example>".into()),
        }
    }

    fn japanese_user() -> LiquidExtras {
        let mut extras = LiquidExtras::sample();
        let profile = extras.user.as_mut().unwrap();
        profile.user_metadata = json!({"lang": "ja-JP"});
        profile.nickname = Some("<b>al</b>".into());
        extras
    }

    #[test]
    fn an_auth0_style_template_renders_with_auth0s_variables() {
        let r = renderer();
        let template = TemplateName::VerifyEmail;
        r.check_liquid(template, &sources(AUTH0_STYLE))
            .expect("the template is accepted");
        let mut ctx = EmailContext::sample(template);
        ctx.user.name = Some("Alex <script>".into());
        let out = r
            .render_liquid(
                template,
                &Locale::english(),
                &ctx,
                &japanese_user(),
                &sources(AUTH0_STYLE),
            )
            .unwrap();
        let html = &out.email.html;
        assert!(
            html.contains("Hello Alex &lt;script&gt;. Welcome to Example App from Herald."),
            "{html}"
        );
        assert!(
            html.contains("メールアドレスを確認してください。"),
            "{html}"
        );
        assert!(html.contains("Org: Example Org"), "{html}");
        // Escaped once, whether or not the template asks for `escape`.
        assert!(
            html.contains("&lt;b&gt;al&lt;/b&gt; / Default value"),
            "{html}"
        );
        assert!(
            html.contains(r#"href="https://herald.example/tickets/sample?ticket=SAMPLE#""#),
            "{html}"
        );
        assert!(html.contains("support@herald.example"), "{html}");
        // The stylesheet is inlined, as in Herald's own emails.
        assert!(html.contains(r#"style="color: #ffffff;""#), "{html}");
        assert_eq!(out.email.subject, "Verify your Example App account");
        assert_eq!(
            out.from.as_deref(),
            Some("Example App <no-reply@app.example>")
        );
        // The text part is the HTML's text, with the link's address.
        assert!(
            out.email
                .text
                .contains("Confirm (https://herald.example/tickets/sample?ticket=SAMPLE#)"),
            "{}",
            out.email.text
        );
        assert!(
            !out.email.text.contains("<p>") && !out.email.text.contains("href"),
            "{}",
            out.email.text
        );
    }

    #[test]
    fn absent_objects_and_keys_are_nil_and_falsy() {
        let r = renderer();
        let template = TemplateName::VerifyEmail;
        let ctx = EmailContext::minimal_sample(template);
        let out = r
            .render_liquid(
                template,
                &Locale::english(),
                &ctx,
                &LiquidExtras::default(),
                &sources(AUTH0_STYLE),
            )
            .unwrap();
        assert!(!out.email.html.contains("Org:"), "{}", out.email.html);
        assert!(out.email.html.contains("Please verify your email."));
        assert!(
            out.email.html.contains("Hello . Welcome to  from Herald."),
            "{}",
            out.email.html
        );
    }

    #[test]
    fn lookups_through_nil_are_nil_at_any_depth() {
        let r = renderer();
        let template = TemplateName::VerifyEmail;
        let ctx = EmailContext::minimal_sample(template);
        let body = "<p>[{{ organization.branding.colors.primary }}][{{ user.name.first }}]\
                    [{% if organization.branding %}x{% endif %}]\
                    [{{ user.missing.deeper | default: 'd' }}][{% if user.name == nil %}nil{% endif %}]</p>";
        let s = LiquidSources {
            body: Some(body.into()),
            ..LiquidSources::default()
        };
        let out = r
            .render_liquid(
                template,
                &Locale::english(),
                &ctx,
                &LiquidExtras::default(),
                &s,
            )
            .unwrap();
        assert!(
            out.email.html.contains("[][][][d][nil]"),
            "{}",
            out.email.html
        );
    }

    #[test]
    fn brand_values_reach_templates_only_in_safe_shapes() {
        let r = renderer();
        let template = TemplateName::VerifyEmail;
        let mut ctx = EmailContext::sample(template);
        ctx.brand.primary_color = "red;background:url(https://evil.example/x)".into();
        ctx.brand.page_background = "#ABCDEF".into();
        ctx.brand.logo_url = Some("javascript:alert(1)".into());
        let s = LiquidSources {
            body: Some(
                "<p>[{{ organization.branding.colors.primary }}][{{ organization.branding.colors.page_background }}][{{ organization.branding.logo_url }}]</p>"
                    .into(),
            ),
            ..LiquidSources::default()
        };
        let out = r
            .render_liquid(
                template,
                &Locale::english(),
                &ctx,
                &LiquidExtras::default(),
                &s,
            )
            .unwrap();
        assert!(
            out.email
                .html
                .contains(&format!("[{}][#abcdef][]", Brand::NEUTRAL_PRIMARY_COLOR)),
            "{}",
            out.email.html
        );
    }

    #[test]
    fn unset_parts_keep_herald_s_localized_ones() {
        let r = renderer();
        let template = TemplateName::VerifyEmail;
        let ctx = EmailContext::sample(template);
        let only_body = LiquidSources {
            body: Some("<p>{{ url }}</p>".into()),
            ..LiquidSources::default()
        };
        let builtin = r
            .render(template, &"fr".parse().unwrap(), &ctx, None)
            .unwrap();
        let out = r
            .render_liquid(
                template,
                &"fr".parse().unwrap(),
                &ctx,
                &LiquidExtras::default(),
                &only_body,
            )
            .unwrap();
        assert_eq!(out.email.subject, builtin.subject);
        assert_eq!(out.from, None);
        assert!(out.email.html.contains("SAMPLE"));
        let only_subject = LiquidSources {
            subject: Some("Hi {{ user.email }}".into()),
            ..LiquidSources::default()
        };
        let out = r
            .render_liquid(
                template,
                &Locale::english(),
                &ctx,
                &LiquidExtras::default(),
                &only_subject,
            )
            .unwrap();
        assert_eq!(out.email.subject, "Hi alex@example.com");
        assert_eq!(
            out.email.html,
            r.render(template, &Locale::english(), &ctx, None)
                .unwrap()
                .html
        );
    }

    #[test]
    fn broken_templates_are_refused_with_what_is_wrong() {
        let r = renderer();
        let template = TemplateName::VerifyEmail;
        let err = r
            .check_liquid(template, &sources("{% if user.name %}unclosed"))
            .unwrap_err();
        assert!(
            matches!(
                err,
                RenderError::Liquid {
                    part: Part::Html,
                    locale: None,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("HTML body of the verify_email template"),
            "{err}"
        );
        let err = r
            .check_liquid(template, &sources("{{ url | no_such_filter }}"))
            .unwrap_err();
        assert!(err.to_string().contains("no_such_filter"), "{err}");
        let from_two_lines = LiquidSources {
            from: Some("a@b.example\n{{ user.email }}".replace("\\n", "\n")),
            ..LiquidSources::default()
        };
        let err = r.check_liquid(template, &from_two_lines).unwrap_err();
        assert!(err.to_string().contains("more than one line"), "{err}");
        let empty = LiquidSources {
            body: Some("{% if false %}x{% endif %}".into()),
            ..LiquidSources::default()
        };
        assert!(r.check_liquid(template, &empty).is_err());
    }

    #[test]
    fn escape_leaves_entities_alone_and_subjects_see_raw_values() {
        let r = renderer();
        let template = TemplateName::WelcomeEmail;
        let mut ctx = EmailContext::sample(template);
        ctx.user.name = Some("Tom & \"Jerry\"".into());
        let s = LiquidSources {
            subject: Some("Welcome {{ user.name }}".into()),
            body: Some("<p>{{ user.name | escape }}|{{ '&amp; <i>' | escape }}</p>".into()),
            from: None,
        };
        let out = r
            .render_liquid(
                template,
                &Locale::english(),
                &ctx,
                &LiquidExtras::default(),
                &s,
            )
            .unwrap();
        assert!(
            out.email
                .html
                .contains(r#"Tom &amp; "Jerry"|&amp; &lt;i&gt;"#),
            "{}",
            out.email.html
        );
        assert_eq!(out.email.subject, "Welcome Tom & \"Jerry\"");
    }

    #[test]
    fn an_auth0_mfa_oob_code_template_gets_the_code() {
        let r = renderer();
        let template = TemplateName::MfaOobCode;
        // As Auth0's "MFA OOB code" template is written: the code is `code`.
        let s = LiquidSources {
            subject: Some("{{ code }} is your {{ friendly_name }} code".into()),
            body: Some(
                "<p>Your verification code is <b>{{ code }}</b>.{% if url %} {{ url }}{% endif %}</p>"
                    .into(),
            ),
            from: None,
        };
        r.check_liquid(template, &s).unwrap();
        let ctx = EmailContext::sample(template);
        let out = r
            .render_liquid(
                template,
                &Locale::english(),
                &ctx,
                &LiquidExtras::default(),
                &s,
            )
            .unwrap();
        assert_eq!(out.email.subject, "042917 is your Herald code");
        assert!(
            out.email
                .html
                .contains("Your verification code is <b>042917</b>.</p>"),
            "{}",
            out.email.html
        );
        assert!(out.email.text.contains("042917"), "{}", out.email.text);
    }

    #[test]
    fn result_urls_take_the_three_application_variables_only() {
        let app = ResultUrlApplication {
            name: Some("My App"),
            client_id: Some("abc123"),
            callback_domain: Some("https://app.example"),
        };
        assert_eq!(
            render_result_url("{{ application.callback_domain }}/done?app={{ application.name }}&id={{ client.clientID }}", app).unwrap(),
            "https://app.example/done?app=My%20App&id=abc123"
        );
        assert!(render_result_url("{{ user.email }}", app).is_err());
        assert!(render_result_url("javascript:alert(1)", app).is_err());
        assert!(
            render_result_url(
                "{{ application.callback_domain }}/x",
                ResultUrlApplication::default()
            )
            .is_err()
        );
    }
}
