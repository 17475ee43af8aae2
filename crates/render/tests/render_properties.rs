//! Property tests for the renderer: hostile contexts (markup, quotes, CR/LF, RTL, emoji, combining
//! marks, odd colours and URLs, huge ttl) in every template and locale never panic, render for
//! http(s) links, keep the subject on one line and inject no markup; random handlebars-ish
//! override sources never panic `check_override` or `render`.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use herald_domain::{Locale, TemplateName};
use herald_render::{
    ApplicationView, Brand, EmailContext, OrganizationView, RenderedEmail, Renderer,
    TemplateSources, UserView,
};
use herald_testkit::hostile::{config, hostile};
use proptest::prelude::*;

fn renderer() -> &'static Renderer {
    static RENDERER: OnceLock<Renderer> = OnceLock::new();
    RENDERER.get_or_init(|| Renderer::embedded().unwrap_or_else(|e| panic!("{e}")))
}

/// Every loaded locale, plus tags that negotiate to one (`fr-CA`, `pt`) or to the default (an
/// RTL `ar`/`he`, an unknown `zz`).
fn locales() -> &'static [Locale] {
    static LOCALES: OnceLock<Vec<Locale>> = OnceLock::new();
    LOCALES.get_or_init(|| {
        let mut all = renderer().available_locales().to_vec();
        assert!(all.len() >= 6, "{all:?}");
        for tag in ["fr-CA", "pt", "ar", "he-IL", "zz"] {
            all.push(Locale::parse(tag).expect("a valid tag"));
        }
        all
    })
}

// ----------------------------------------------------------------------------------------------
// A small HTML scanner: enough to tell markup from quoted attribute values in the renderer's
// output (css-inline re-serializes the document, always double-quoting attribute values).
// ----------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Scan {
    /// The document with every quoted attribute value emptied: only markup and text remain.
    markup: String,
    /// Lowercased tag names (`!doctype`, `html`, `/p`, ...).
    tags: BTreeSet<String>,
    /// Lowercased attribute names.
    attributes: BTreeSet<String>,
    /// `(attribute, value)` for every `href` and `src`.
    links: Vec<(String, String)>,
}

fn scan(html: &str) -> Scan {
    let mut out = Scan::default();
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        out.markup.push_str(&rest[..lt]);
        rest = &rest[lt..];
        if rest.starts_with("<!--") {
            let end = rest.find("-->").map_or(rest.len(), |i| i + 3);
            out.markup.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        // Inside a tag: name, then attributes up to '>'.
        let mut chars = rest.char_indices().skip(1).peekable();
        let mut name = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c.is_whitespace() || c == '>' {
                break;
            }
            name.push(c);
            chars.next();
        }
        out.tags
            .insert(name.trim_end_matches('/').to_ascii_lowercase());
        let mut end = rest.len();
        let mut word = String::new();
        let mut last_attr = String::new();
        let mut kept = String::from("<");
        kept.push_str(&name);
        while let Some((i, c)) = chars.next() {
            match c {
                '>' => {
                    end = i + 1;
                    break;
                }
                '"' | '\'' => {
                    let mut value = String::new();
                    for (_, v) in chars.by_ref() {
                        if v == c {
                            break;
                        }
                        value.push(v);
                    }
                    if matches!(last_attr.as_str(), "href" | "src") {
                        out.links.push((last_attr.clone(), value));
                    }
                    kept.push(c);
                    kept.push(c);
                }
                '=' => {
                    last_attr = word.to_ascii_lowercase();
                    out.attributes.insert(last_attr.clone());
                    word.clear();
                    kept.push(c);
                }
                c if c.is_whitespace() => {
                    if !word.is_empty() {
                        out.attributes.insert(word.to_ascii_lowercase());
                    }
                    word.clear();
                    kept.push(c);
                }
                c => {
                    word.push(c);
                    kept.push(c);
                }
            }
        }
        kept.push('>');
        out.markup.push_str(&kept);
        rest = &rest[end.min(rest.len())..];
    }
    out.markup.push_str(rest);
    out
}

/// The tags and attributes the default templates produce with the sample contexts: a hostile
/// context may not add any.
fn allowed() -> &'static (BTreeSet<String>, BTreeSet<String>) {
    static ALLOWED: OnceLock<(BTreeSet<String>, BTreeSet<String>)> = OnceLock::new();
    ALLOWED.get_or_init(|| {
        let mut tags = BTreeSet::new();
        let mut attributes = BTreeSet::new();
        for template in TemplateName::ALL {
            for ctx in [EmailContext::sample(template), sparse(template)] {
                let out = renderer()
                    .render(template, &Locale::english(), &ctx, None)
                    .unwrap_or_else(|e| panic!("{e}"));
                let s = scan(&out.html);
                tags.extend(s.tags);
                attributes.extend(s.attributes);
            }
        }
        assert!(tags.contains("a") && tags.contains("img"), "{tags:?}");
        (tags, attributes)
    })
}

fn sparse(template: TemplateName) -> EmailContext {
    let mut ctx = EmailContext::sample(template);
    ctx.user.name = None;
    ctx.application = None;
    ctx.organization = None;
    ctx.factor = None;
    ctx.brand = Brand::neutral("Herald");
    ctx
}

// ----------------------------------------------------------------------------------------------
// Strategies
// ----------------------------------------------------------------------------------------------

/// A name that is sure to be markup: it holds `<` followed by a tag.
fn markup_name() -> impl Strategy<Value = String> {
    (hostile(), "[a-z]{1,8}", hostile()).prop_map(|(a, tag, b)| format!("{a}<{tag} x=1>{b}"))
}

/// http(s) links as `is_http_url` defines them: no whitespace or control characters, a host.
fn good_url() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "(http|https|HTTPS|HtTp)://[a-z0-9-]{1,12}(\\.[a-z]{2,5}){1,2}(:[0-9]{1,5})?(/[a-zA-Z0-9%._~-]{0,12}){0,3}(\\?[a-z]{1,5}=[a-zA-Z0-9%&=]{0,12})?(#[a-z]{0,5})?",
        1 => prop::sample::select(vec![
            "https://a.test/\"><script>alert(1)</script>",
            "https://a.test/?q='onmouseover='alert(1)",
            "https://a.test/{{user.email}}",
            "https://例え.テスト/パス?q=✓",
            "http://[::1]:8080/",
            "https://a.test/&amp;&lt;",
            "https://user:pass@a.test/",
        ])
        .prop_map(str::to_string),
    ]
}

/// Anything a misconfigured caller might pass as a link.
fn any_url() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => good_url(),
        2 => prop::sample::select(vec![
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "https://",
            "https:///path",
            "//evil.test",
            "/relative",
            " https://a.test",
            "https://a.test/\r\nBcc: x",
            "https://a .test",
            "https://a.test/\u{0}",
            "",
        ])
        .prop_map(str::to_string),
        1 => hostile(),
        1 => (1usize..6_000).prop_map(|n| format!("https://a.test/{}", "x".repeat(n))),
    ]
}

fn colour() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "#[0-9a-fA-F]{6}",
        1 => " ?#[0-9a-f]{6} ?",
        2 => prop::sample::select(vec![
            "#fff",
            "#ff66001",
            "red",
            "red;} body{display:none",
            "#ff6600;}</style><script>alert(1)</script>",
            "url(javascript:alert(1))",
            "expression(alert(1))",
            "#ÿÿÿ",
            "",
            "#\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}",
        ])
        .prop_map(str::to_string),
        1 => hostile(),
    ]
}

/// Where the ticket link comes from, so the test knows whether to insist on `Ok`.
#[derive(Debug, Clone)]
enum Link {
    None,
    Good(String),
    Any(String),
}

impl Link {
    fn as_option(&self) -> Option<String> {
        match self {
            Link::None => None,
            Link::Good(u) | Link::Any(u) => Some(u.clone()),
        }
    }
}

fn link() -> impl Strategy<Value = Link> {
    prop_oneof![
        1 => Just(Link::None),
        4 => good_url().prop_map(Link::Good),
        2 => any_url().prop_map(Link::Any),
    ]
}

fn ttl() -> impl Strategy<Value = Option<u64>> {
    prop::option::of(prop_oneof![
        Just(0u64),
        Just(1u64),
        Just(86_400u64),
        Just(u64::MAX),
        Just(u64::MAX / 60),
        any::<u64>(),
    ])
}

fn factor() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        2 => prop::sample::select(vec![
            "otp",
            "phone",
            "email",
            "push-notification",
            "webauthn-roaming",
            "webauthn-platform",
            "  ",
        ])
        .prop_map(str::to_string),
        1 => hostile(),
    ])
}

/// A one-time code: usually six digits, sometimes whatever a buggy caller might pass.
fn code() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        3 => "[0-9]{6}",
        1 => Just("  ".to_string()),
        1 => hostile(),
    ])
}

fn context() -> BoxedStrategy<(EmailContext, Link)> {
    let user = (
        prop::option::of(prop_oneof![hostile(), markup_name()]),
        prop_oneof![
            3 => "[a-z]{1,8}@[a-z]{1,8}\\.test",
            1 => hostile(),
        ],
        hostile(),
    )
        .prop_map(|(name, email, user_id)| UserView {
            user_id,
            email,
            name,
        })
        .boxed();
    let brand = (hostile(), prop::option::of(any_url()), colour(), colour())
        .prop_map(|(name, logo_url, primary_color, page_background)| Brand {
            name,
            logo_url,
            primary_color,
            page_background,
        })
        .boxed();
    let application = prop::option::of(
        (hostile(), prop::option::of(any_url()))
            .prop_map(|(name, login_uri)| ApplicationView { name, login_uri }),
    )
    .boxed();
    let organization = prop::option::of((hostile(), hostile(), hostile()).prop_map(
        |(id, name, display_name)| OrganizationView {
            id,
            name,
            display_name,
        },
    ))
    .boxed();
    (
        user,
        link(),
        ttl(),
        application,
        organization,
        brand,
        hostile(),
        (factor(), code()),
    )
        .prop_map(
            |(
                user,
                link,
                ttl_sec,
                application,
                organization,
                brand,
                friendly_name,
                (factor, code),
            )| {
                let ctx = EmailContext {
                    user,
                    url: link.as_option(),
                    ttl_sec,
                    application,
                    organization,
                    brand,
                    friendly_name,
                    factor,
                    code,
                };
                (ctx, link)
            },
        )
        .boxed()
}

// ----------------------------------------------------------------------------------------------
// Checks
// ----------------------------------------------------------------------------------------------

/// What every rendered email promises, default templates or not.
fn check_parts(out: &RenderedEmail) -> Result<(), TestCaseError> {
    let subject = &out.subject;
    prop_assert!(!subject.contains(['\r', '\n']), "subject {subject:?}");
    prop_assert!(
        !subject.chars().any(char::is_control),
        "subject {subject:?} holds a control character"
    );
    prop_assert!(!subject.is_empty() && subject.trim() == subject);
    prop_assert!(!out.html.trim().is_empty());
    prop_assert!(out.text.ends_with('\n'), "text {:?}", out.text);
    Ok(())
}

/// The default templates with a hostile context: no new tags or attributes, no script, links
/// only over http(s), and a markup-bearing name only ever escaped.
fn check_default_html(
    out: &RenderedEmail,
    ctx: &EmailContext,
    template: TemplateName,
    locale: &Locale,
) -> Result<(), TestCaseError> {
    let s = scan(&out.html);
    let lower = s.markup.to_ascii_lowercase();
    prop_assert!(!lower.contains("<script"), "a script tag in {}", out.html);
    let (tags, attributes) = allowed();
    prop_assert!(
        s.tags.is_subset(tags),
        "new tags {:?}",
        s.tags.difference(tags)
    );
    prop_assert!(
        s.attributes.is_subset(attributes),
        "new attributes {:?}",
        s.attributes.difference(attributes)
    );
    for (attr, value) in &s.links {
        let v = value.to_ascii_lowercase();
        // A ticket email rendered without a link (`url: None`) gets an empty `href`: odd, but
        // nothing is injected. The worker always passes a link for ticket kinds.
        let no_link = value.is_empty() && ctx.url.is_none();
        prop_assert!(
            v.starts_with("https://") || v.starts_with("http://") || no_link,
            "{attr}={value:?} is not an http(s) link"
        );
    }
    if let Some(name) = ctx.user.name.as_deref().map(str::trim)
        && name.contains('<')
        && name.len() > 1
    {
        // The same email with a harmless name: if the hostile name is in its markup anyway (a
        // name like "<p" is), its presence proves nothing.
        let mut benign = ctx.clone();
        benign.user.name = Some("Benign".into());
        let baseline = renderer()
            .render(template, locale, &benign, None)
            .map(|b| scan(&b.html).markup)
            .unwrap_or_default();
        if !baseline.contains(name) {
            prop_assert!(
                !s.markup.contains(name),
                "the raw name {name:?} is in the markup of {template} in {locale}"
            );
        }
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------------
// Override sources
// ----------------------------------------------------------------------------------------------

/// Handlebars-ish pieces: valid and broken tags, blocks, partials, helpers, raw blocks.
///
/// Includes inline-partial definitions (including self-recursive ones) and, through
/// [`override_source`], sources nested far deeper than any real template: the renderer must
/// refuse those with an error (`RenderError::TooComplex`), never recurse until the stack overflows.
fn override_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec![
            "{{", "}}", "{{{", "}}}", "{{~", "~}}", "\\{{", "((", "))",
            "{{#if user.name}}", "{{#if}}", "{{else}}", "{{/if}}", "{{#unless url}}", "{{/unless}}",
            "{{#each user}}{{@key}}={{this}}", "{{/each}}", "{{#each brand}}", "{{#with brand}}",
            "{{/with}}", "{{user.name}}", "{{{user.name}}}", "{{nope}}", "{{user.nope}}",
            "{{../user}}", "{{@root.lang}}", "{{this}}", "{{lookup user \"name\"}}",
            "{{lookup nope 1}}", "{{len brand.name}}", "{{#if (eq lang \"fr\")}}",
            "{{t \"verify_email-heading\"}}", "{{t \"nope\"}}", "{{t}}", "{{t user}}", "{{t 42}}",
            "{{t \"greeting-named\" name=user.name}}", "{{t \"greeting-named\"}}",
            "{{t \"greeting-named\" name=user}}", "{{t expires_in.key count=expires_in.count}}",
            "{{t \"verify_email-subject\" brand=(t \"signature\" brand=brand.name)}}",
            "{{#> layout}}", "{{#> layout heading=\"H\" footer=(t \"footer-automated\")}}",
            "{{/layout}}", "{{> layout}}", "{{> button href=url label=\"Go\"}}", "{{> button}}",
            "{{> @partial-block}}", "{{> nope}}", "{{> verify_email}}", "{{> welcome_email}}",
            "{{!-- c --}}", "{{! c }}", "{{!--", "{{{{raw}}}}", "{{{{/raw}}}}", "{{log \"x\"}}",
            "<script>", "</style>", "\r\n", "\u{0}", "é\u{301}", "🙂",
            "{{#*inline \"p\"}}{{> p}}{{/inline}}{{> p}}", "{{#*inline \"q\"}}x{{/inline}}",
            "{{~#*inline \"r\"}}{{> r}}{{/inline~}}{{> r}}", "{{*decorator}}",
        ])
        .prop_map(str::to_string),
        2 => "[a-zA-Z{}#/>!@ .\"=()~-]{0,12}",
        1 => any::<String>(),
    ]
}

/// Sources that compile more often than not: text, expressions and balanced blocks, a few
/// levels deep (no inline partials, see [`override_piece`]).
fn well_formed_source() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        "[a-zA-Z .,!<>&\"'-]{0,16}",
        prop::sample::select(vec![
            "{{user.name}}",
            "{{user.email}}",
            "{{{user.name}}}",
            "{{brand.name}}",
            "{{url}}",
            "{{lang}}",
            "{{dir}}",
            "{{organization.display_name}}",
            "{{application.name}}",
            "{{factor}}",
            "{{code}}",
            "{{ttl_sec}}",
            "{{t \"verify_email-heading\"}}",
            "{{t \"greeting-named\" name=user.name}}",
            "{{t \"signature\" brand=brand.name}}",
            "{{t expires_in.key count=expires_in.count}}",
            "{{t \"nope\"}}",
            "{{> button href=url label=\"Go\"}}",
            "{{> button href=login_url label=(t \"welcome_email-button\")}}",
            "{{nope}}",
            "\r\n",
        ])
        .prop_map(str::to_string),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        let body = prop::collection::vec(inner, 0..4).prop_map(|v| v.concat());
        (
            prop::sample::select(vec![
                ("{{#if user.name}}", "{{/if}}"),
                ("{{#if url}}", "{{else}}none{{/if}}"),
                ("{{#unless organization}}", "{{/unless}}"),
                ("{{#with brand}}", "{{/with}}"),
                ("{{#each user}}{{@key}}: ", "{{/each}}"),
                ("{{#> layout}}", "{{/layout}}"),
                (
                    "{{#> layout heading=(t \"verify_email-heading\") footer=brand.name}}",
                    "{{/layout}}",
                ),
                ("<p>", "</p>"),
            ]),
            body,
        )
            .prop_map(|((open, close), body)| format!("{open}{body}{close}"))
    })
}

fn override_source() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => well_formed_source(),
        2 => prop::collection::vec(override_piece(), 0..40).prop_map(|v| v.concat()),
        1 => (1usize..3000).prop_map(|n| format!("{}x{}", "{{#if user}}".repeat(n), "{{/if}}".repeat(n))),
        1 => (1usize..3000).prop_map(|n| format!("{{{{t {}\"a\"{}}}}}", "(t ".repeat(n), ")".repeat(n))),
    ]
}

fn overrides() -> impl Strategy<Value = TemplateSources> {
    (
        prop::option::of(override_source()),
        prop::option::of(override_source()),
        prop::option::of(override_source()),
    )
        .prop_map(|(subject, html, text)| TemplateSources {
            subject,
            html,
            text,
        })
}

fn template() -> impl Strategy<Value = TemplateName> {
    prop::sample::select(TemplateName::ALL.to_vec())
}

// ----------------------------------------------------------------------------------------------
// Properties
// ----------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(48))]

    /// Every template in every locale (and a few that negotiate) with a hostile context.
    #[test]
    fn hostile_contexts_render_safely_everywhere((ctx, link) in context()) {
        let r = renderer();
        for template in TemplateName::ALL {
            for locale in locales() {
                match r.render(template, locale, &ctx, None) {
                    Ok(out) => {
                        check_parts(&out)?;
                        check_default_html(&out, &ctx, template, locale)?;
                    }
                    Err(e) => prop_assert!(
                        matches!(link, Link::Any(_)),
                        "{template} in {locale} failed with link {link:?}: {e}"
                    ),
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(config(96))]

    /// Random override sources: errors are fine, panics are not; what `check_override` accepts
    /// renders with the sample context in every locale, its subject still on one line.
    #[test]
    fn random_overrides_never_panic(
        template in template(),
        sources in overrides(),
        (ctx, _link) in context(),
    ) {
        let r = renderer();
        let checked = r.check_override(template, sources.clone());
        let sample = EmailContext::sample(template);
        for locale in r.available_locales() {
            let out = r.render(template, locale, &sample, Some(&sources));
            if checked.is_ok() {
                match out {
                    Ok(out) => check_parts(&out)?,
                    Err(e) => prop_assert!(false, "accepted by check_override but: {e}"),
                }
            }
        }
        for locale in &locales()[..2] {
            if let Ok(out) = r.render(template, locale, &ctx, Some(&sources)) {
                check_parts(&out)?;
            }
        }
    }
}

/// The scanner itself: attribute values are blanked, tags and links are found.
#[test]
fn the_scanner_tells_markup_from_attribute_values() {
    let s = scan(
        r#"<!DOCTYPE html><p class="x">a &lt;b&gt;<a href="https://a.test/<script>" alt='<i>'>go</a><!--[if mso]><x><![endif]--></p>"#,
    );
    assert_eq!(
        s.markup,
        r#"<!DOCTYPE html><p class="">a &lt;b&gt;<a href="" alt=''>go</a><!--[if mso]><x><![endif]--></p>"#
    );
    assert!(!s.markup.contains("<script"));
    let tags: Vec<&str> = s.tags.iter().map(String::as_str).collect();
    assert_eq!(tags, ["!doctype", "/a", "/p", "a", "p"]);
    assert!(s.attributes.contains("href") && s.attributes.contains("alt"));
    assert_eq!(
        s.links,
        [("href".to_string(), "https://a.test/<script>".to_string())]
    );
}

/// The HTML checks are not vacuous: HTML that prints the name raw (as a triple-stash override
/// did before such overrides were refused) fails them.
#[test]
fn the_html_checks_catch_a_raw_name() {
    let template = TemplateName::VerifyEmail;
    let name = "Eve<script>alert(1)</script><b x=1>";
    let mut ctx = EmailContext::sample(template);
    ctx.user.name = Some(name.into());
    let en = Locale::english();
    let safe = renderer()
        .render(template, &en, &ctx, None)
        .unwrap_or_else(|e| panic!("{e}"));
    check_default_html(&safe, &ctx, template, &en).unwrap_or_else(|e| panic!("{e}"));
    let escaped = "Eve&lt;script&gt;alert(1)&lt;/script&gt;&lt;b x=1&gt;";
    assert!(safe.html.contains(escaped), "{}", safe.html);
    let mut raw = safe.clone();
    raw.html = safe.html.replace(escaped, name);
    assert!(check_default_html(&raw, &ctx, template, &en).is_err());
}
