//! Renderer tests over the embedded defaults: every template × locale, escaping, subjects,
//! branding, overrides and their checks.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use herald_domain::{Locale, TemplateName};

use crate::{Brand, EmailContext, Part, RenderError, RenderedEmail, Renderer, TemplateSources};

const URL: &str = "https://auth.example.com/tickets/verify?ticket=T0k3n";
const LOCALES: [&str; 6] = ["en", "fr", "de", "es", "pt-BR", "ja"];

fn renderer() -> &'static Renderer {
    static RENDERER: OnceLock<Renderer> = OnceLock::new();
    RENDERER.get_or_init(|| Renderer::embedded().unwrap_or_else(|e| panic!("{e}")))
}

fn locale(tag: &str) -> Locale {
    Locale::parse(tag).expect("valid tag")
}

fn ctx(template: TemplateName) -> EmailContext {
    let mut ctx = EmailContext::sample(template);
    if ctx.url.is_some() {
        ctx.url = Some(URL.into());
    }
    ctx
}

fn render(template: TemplateName, tag: &str, ctx: &EmailContext) -> RenderedEmail {
    renderer()
        .render(template, &locale(tag), ctx, None)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn with_name(name: &str) -> EmailContext {
    let mut ctx = ctx(TemplateName::VerifyEmail);
    ctx.user.name = Some(name.into());
    ctx
}

/// The text of every `<style>` block in `html`.
fn style_blocks(html: &str) -> Vec<&str> {
    html.split("<style")
        .skip(1)
        .filter_map(|rest| rest.split_once('>')?.1.split_once("</style>"))
        .map(|(css, _)| css.trim())
        .collect()
}

#[test]
fn every_template_renders_in_every_locale() {
    let r = renderer();
    let available: Vec<String> = r
        .available_locales()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(available.len(), LOCALES.len(), "{available:?}");
    for tag in LOCALES {
        assert!(available.iter().any(|a| a == tag), "{tag} is not loaded");
    }
    for template in TemplateName::ALL {
        let minimal = EmailContext {
            url: ctx(template).url,
            ..EmailContext::minimal_sample(template)
        };
        for context in [ctx(template), minimal] {
            for tag in LOCALES {
                let email = render(template, tag, &context);
                let at = format!("{template} in {tag}");
                for part in [&email.subject, &email.html, &email.text] {
                    assert!(!part.trim().is_empty(), "{at}: empty part");
                    assert!(!part.contains("Unknown"), "{at}: {part}");
                    assert!(
                        !part.contains(['\u{2068}', '\u{2069}']),
                        "{at}: isolation marks"
                    );
                    assert!(
                        !part.contains("{{") && !part.contains("{ $"),
                        "{at}: {part}"
                    );
                }
                assert!(!email.subject.contains(['\r', '\n']), "{at}");
                assert!(email.html.contains("style=\""), "{at}: CSS not inlined");
                assert!(email.html.starts_with("<!DOCTYPE html>"), "{at}");
                assert!(email.html.contains(&format!("lang=\"{tag}\"")), "{at}");
                if let Some(url) = &context.url {
                    assert!(email.html.contains(&format!("href=\"{url}\"")), "{at}");
                    assert!(email.text.contains(url.as_str()), "{at}: {}", email.text);
                }
                for css in style_blocks(&email.html) {
                    assert!(css.starts_with("@media"), "{at}: non-inlined CSS {css}");
                }
            }
        }
    }
}

#[test]
fn the_button_and_page_are_styled_inline() {
    let email = render(
        TemplateName::VerifyEmail,
        "en",
        &ctx(TemplateName::VerifyEmail),
    );
    let button = email
        .html
        .split("<a ")
        .find(|a| a.contains("class=\"button\""))
        .expect("a button");
    assert!(
        button.contains("style=\"") && button.contains("padding"),
        "{button}"
    );
    let body = email.html.split("<body").nth(1).expect("a body");
    assert!(
        body.starts_with(" style=\"") && body.contains("background-color"),
        "{body:.200}"
    );
    assert!(email.html.contains("max-width: 560px"));
}

#[test]
fn a_french_render_is_in_french() {
    let email = render(
        TemplateName::VerifyEmail,
        "fr",
        &ctx(TemplateName::VerifyEmail),
    );
    assert!(
        email.subject.starts_with("Vérifiez votre adresse e-mail"),
        "{}",
        email.subject
    );
    for part in [&email.html, &email.text] {
        assert!(part.contains("Bonjour Alex Example,"), "{part}");
        assert!(part.contains("Ce lien expire dans 5 jours."), "{part}");
        assert!(!part.contains("Verify your email"), "{part}");
    }
    let one_day = EmailContext {
        ttl_sec: Some(86_400),
        ..ctx(TemplateName::ResetEmail)
    };
    let email = render(TemplateName::ResetEmail, "fr", &one_day);
    assert!(
        email.text.contains("Ce lien expire dans 1 jour."),
        "{}",
        email.text
    );
}

#[test]
fn a_regional_or_unknown_locale_is_negotiated() {
    let template = TemplateName::WelcomeEmail;
    let fr = render(template, "fr", &ctx(template));
    assert_eq!(render(template, "fr-CA", &ctx(template)), fr);
    let en = render(template, "en", &ctx(template));
    assert_eq!(render(template, "ko", &ctx(template)), en);
}

#[test]
fn hostile_names_are_escaped_in_html_including_through_fluent() {
    for name in [
        "<script>alert(1)</script>",
        "\"><img src=x onerror=alert(1)>",
    ] {
        let email = render(TemplateName::VerifyEmail, "en", &with_name(name));
        assert!(!email.html.contains("<script"), "{}", email.html);
        assert!(!email.html.contains("<img src=x"), "{}", email.html);
        assert!(!email.html.contains("<img src=\"x\""), "{}", email.html);
        // The greeting is a fluent message with the name as an argument.
        assert!(
            email.text.contains(&format!("Hello {name},")),
            "{}",
            email.text
        );
    }
    let email = render(
        TemplateName::VerifyEmail,
        "en",
        &with_name("<script>alert(1)</script>"),
    );
    assert!(
        email
            .html
            .contains("Hello &lt;script&gt;alert(1)&lt;/script&gt;,")
    );
}

#[test]
fn the_t_helper_escapes_in_html_and_the_text_registry_does_not() {
    let overrides = TemplateSources {
        html: Some(r#"<p>{{t "greeting-named" name=user.name}}</p>"#.into()),
        text: Some(r#"{{t "greeting-named" name=user.name}}"#.into()),
        subject: None,
    };
    let ctx = with_name("<b>Tom & Jerry</b>");
    let email = renderer()
        .render(
            TemplateName::VerifyEmail,
            &locale("en"),
            &ctx,
            Some(&overrides),
        )
        .expect("renders");
    assert!(!email.html.contains("<b>"), "{}", email.html);
    assert!(
        email
            .html
            .contains("Hello &lt;b&gt;Tom &amp; Jerry&lt;/b&gt;,"),
        "{}",
        email.html
    );
    assert_eq!(email.text, "Hello <b>Tom & Jerry</b>,\n");
}

/// A user name an attacker chose, for the tests of raw output.
const HOSTILE_NAME: &str = "Eve<script>alert(1)</script><img src=x onerror=alert(2)>\"'&";

#[test]
fn html_overrides_that_print_unescaped_output_are_refused_and_never_render() {
    let r = renderer();
    let mut ctx = ctx(TemplateName::VerifyEmail);
    ctx.user.name = Some(HOSTILE_NAME.into());
    for html in [
        "<p>{{{user.name}}}</p>",
        "<p>{{~{user.name}~}}</p>",
        "<p>{{& user.name}}</p>",
        "<p>{{~&user.name~}}</p>",
        "<p>{{{lookup user \"name\"}}}</p>",
        "<p>{{{t \"greeting-named\" name=user.name}}}</p>",
        "{{#if user.name}}<p>{{{user.name}}}</p>{{/if}}",
        "{{#if url}}ok{{else}}<p>{{&user.email}}</p>{{/if}}",
        "{{#each user}}{{{this}}}{{/each}}",
        "{{#> layout}}<p>{{{user.name}}}</p>{{/layout}}",
        "{{#with user}}{{#if name}}{{{name}}}{{/if}}{{/with}}",
    ] {
        let sources = TemplateSources {
            html: Some(html.into()),
            ..TemplateSources::default()
        };
        let err = r
            .check_override(TemplateName::VerifyEmail, sources.clone())
            .expect_err(html);
        assert!(
            matches!(
                err,
                RenderError::Unescaped {
                    part: Part::Html,
                    ..
                }
            ),
            "{html}: {err}"
        );
        assert!(err.to_string().contains("unescaped"), "{err}");
        // A stored override saved before this rule is refused at render time too.
        let err = r
            .render(
                TemplateName::VerifyEmail,
                &locale("en"),
                &ctx,
                Some(&sources),
            )
            .expect_err(html);
        assert!(
            matches!(err, RenderError::Unescaped { .. }),
            "{html}: {err}"
        );
    }
}

#[test]
fn hostile_user_data_comes_out_escaped_through_every_way_an_override_can_print_it() {
    let r = renderer();
    let mut ctx = ctx(TemplateName::VerifyEmail);
    ctx.user.name = Some(HOSTILE_NAME.into());
    ctx.user.user_id = HOSTILE_NAME.into();
    for html in [
        "<p>{{user.name}}</p>",
        "<p title=\"{{user.name}}\">x</p>",
        "<p>{{lookup user \"name\"}}</p>",
        "{{#with user}}<p>{{name}}</p>{{/with}}",
        "{{#each user}}<p>{{this}}</p>{{/each}}",
        "<p>{{t \"greeting-named\" name=user.name}}</p>",
        "{{#> layout heading=user.name}}<p>{{user.user_id}}</p>{{/layout}}",
        "{{> button href=url label=user.name}}",
        "{{{{raw}}}}{{{user.name}}}{{{{/raw}}}}<p>{{user.name}}</p>",
    ] {
        let sources = TemplateSources {
            html: Some(html.into()),
            ..TemplateSources::default()
        };
        let Ok(email) = r.render(
            TemplateName::VerifyEmail,
            &locale("en"),
            &ctx,
            Some(&sources),
        ) else {
            continue;
        };
        let markup = without_attribute_values(&email.html);
        assert!(!markup.contains("<script"), "{html}: {markup}");
        assert!(!markup.contains("<img src=x"), "{html}: {markup}");
    }
}

/// `html` with the quoted attribute values inside tags blanked: what is left is the markup a
/// client parses as elements (a `<` inside a quoted attribute value is only text).
fn without_attribute_values(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let (mut in_tag, mut quote) = (false, None);
    for c in html.chars() {
        match (in_tag, quote) {
            (true, Some(q)) if c == q => quote = None,
            (true, Some(_)) => continue,
            (true, None) if c == '"' || c == '\'' => quote = Some(c),
            (true, None) if c == '>' => in_tag = false,
            (false, _) if c == '<' => in_tag = true,
            _ => {}
        }
        out.push(c);
    }
    out
}

#[test]
fn partials_named_by_an_expression_are_refused() {
    let sources = TemplateSources {
        html: Some(r#"{{> (lookup user "name")}}"#.into()),
        ..TemplateSources::default()
    };
    let err = renderer()
        .check_override(TemplateName::VerifyEmail, sources)
        .unwrap_err();
    assert!(err.to_string().contains("named literally"), "{err}");
}

#[test]
fn templates_loaded_from_disk_may_not_print_unescaped_output_either() {
    let dir = std::env::temp_dir().join(format!("herald-raw-{}", std::process::id()));
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for entry in std::fs::read_dir(root.join("templates")).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), templates.join(entry.file_name())).unwrap();
        }
    }
    let locales = root.join("locales");
    Renderer::from_dirs(&templates, &locales).expect("the copied defaults load");
    std::fs::write(
        templates.join("verify_email.html.hbs"),
        "{{#> layout}}<p>{{{user.name}}}</p>{{/layout}}",
    )
    .unwrap();
    let err = Renderer::from_dirs(&templates, &locales).unwrap_err();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        matches!(&err, crate::LoadError::Unescaped { file, .. } if file == "verify_email.html.hbs"),
        "{err}"
    );
}

#[test]
fn a_broken_override_falls_back_to_the_built_in_template_and_reports_why() {
    let r = renderer();
    let c = ctx(TemplateName::VerifyEmail);
    let broken = TemplateSources {
        subject: Some("Hi {{organization.display_name}}".into()),
        html: Some("<p>{{no_such_field}}</p>".into()),
        ..TemplateSources::default()
    };
    let strict = r.render(TemplateName::VerifyEmail, &locale("en"), &c, Some(&broken));
    assert!(strict.is_err(), "the override itself does not render");
    let rendered = r
        .render_or_fallback(TemplateName::VerifyEmail, &locale("en"), &c, Some(&broken))
        .expect("the built-in template renders");
    let built_in = r
        .render(TemplateName::VerifyEmail, &locale("en"), &c, None)
        .unwrap();
    assert_eq!(
        rendered.email, built_in,
        "the whole email is the built-in one"
    );
    let failure = rendered.override_failure.expect("the override's error");
    assert!(failure.to_string().contains("verify_email"), "{failure}");

    let good = TemplateSources {
        subject: Some("Custom".into()),
        ..TemplateSources::default()
    };
    let rendered = r
        .render_or_fallback(TemplateName::VerifyEmail, &locale("en"), &c, Some(&good))
        .unwrap();
    assert_eq!(rendered.email.subject, "Custom");
    assert!(rendered.override_failure.is_none());
}

#[test]
fn when_the_built_in_template_fails_too_that_error_is_returned() {
    let mut c = ctx(TemplateName::VerifyEmail);
    c.url = Some("javascript:alert(1)".into());
    let sources = TemplateSources {
        subject: Some("Custom".into()),
        ..TemplateSources::default()
    };
    let err = renderer()
        .render_or_fallback(TemplateName::VerifyEmail, &locale("en"), &c, Some(&sources))
        .unwrap_err();
    assert!(matches!(err, RenderError::UnsafeLink { .. }), "{err}");
}

#[test]
fn an_override_with_no_part_is_refused() {
    let err = renderer()
        .check_override(TemplateName::VerifyEmail, TemplateSources::default())
        .unwrap_err();
    assert!(
        matches!(err, RenderError::NothingToOverride { .. }),
        "{err}"
    );
}

#[test]
fn a_subject_override_cannot_inject_headers() {
    let overrides = TemplateSources {
        subject: Some("Hi {{user.email}}\r\nBcc: evil@x\n\tX-Other: y".into()),
        ..TemplateSources::default()
    };
    let email = renderer()
        .render(
            TemplateName::VerifyEmail,
            &locale("en"),
            &ctx(TemplateName::VerifyEmail),
            Some(&overrides),
        )
        .expect("renders");
    assert_eq!(email.subject, "Hi alex@example.com Bcc: evil@x X-Other: y");
}

#[test]
fn a_brand_name_with_line_breaks_cannot_inject_headers_through_the_default_subject() {
    let mut ctx = ctx(TemplateName::WelcomeEmail);
    ctx.brand.name = "Acme\r\nBcc: evil@x".into();
    let email = render(TemplateName::WelcomeEmail, "en", &ctx);
    assert_eq!(email.subject, "Welcome to Acme Bcc: evil@x");
}

#[test]
fn branding_shows_the_logo_and_primary_colour() {
    let mut ctx = ctx(TemplateName::VerifyEmail);
    ctx.brand.logo_url = Some("https://cdn.acme.test/logo.png".into());
    ctx.brand.primary_color = "#FF6600".into();
    ctx.brand.page_background = "#fafaf9".into();
    ctx.brand.name = "Acme Corp".into();
    let email = render(TemplateName::VerifyEmail, "en", &ctx);
    assert!(
        email
            .html
            .contains("src=\"https://cdn.acme.test/logo.png\""),
        "{}",
        email.html
    );
    assert!(email.html.contains("alt=\"Acme Corp\""));
    assert!(email.html.contains("bgcolor=\"#ff6600\""), "{}", email.html);
    assert!(
        email.html.contains("background-color: #ff6600"),
        "{}",
        email.html
    );
    assert!(email.html.contains("background-color: #fafaf9"));
    assert!(!email.html.contains(Brand::NEUTRAL_PAGE_BACKGROUND));
}

#[test]
fn invalid_colours_and_logo_urls_fall_back_to_neutral() {
    let mut ctx = ctx(TemplateName::VerifyEmail);
    ctx.brand.primary_color = "red;} body{display:none".into();
    ctx.brand.page_background = "url(https://evil.test/x)".into();
    ctx.brand.logo_url = Some("javascript:alert(1)".into());
    let email = render(TemplateName::VerifyEmail, "en", &ctx);
    assert!(!email.html.contains("display:none"), "{}", email.html);
    assert!(!email.html.contains("evil.test"));
    assert!(!email.html.contains("javascript:"));
    assert!(!email.html.contains("<img"));
    assert!(email.html.contains(Brand::NEUTRAL_PRIMARY_COLOR));
    assert!(email.html.contains(Brand::NEUTRAL_PAGE_BACKGROUND));
}

#[test]
fn without_an_organization_the_neutral_brand_and_friendly_name_are_used() {
    let ctx = EmailContext {
        organization: None,
        brand: Brand::neutral("Herald"),
        ..ctx(TemplateName::VerifyEmail)
    };
    let email = render(TemplateName::VerifyEmail, "en", &ctx);
    assert_eq!(email.subject, "Verify your email address for Herald");
    assert!(email.html.contains(Brand::NEUTRAL_PRIMARY_COLOR));
    assert!(email.html.contains(Brand::NEUTRAL_PAGE_BACKGROUND));
    assert!(!email.html.contains("<img"));
    assert!(email.text.contains("The Herald team"), "{}", email.text);
}

#[test]
fn a_missing_name_gets_the_neutral_greeting() {
    for name in [None, Some("   ".to_string())] {
        let mut ctx = ctx(TemplateName::ResetEmail);
        ctx.user.name = name;
        let email = render(TemplateName::ResetEmail, "de", &ctx);
        assert!(email.text.contains("Guten Tag,\n"), "{}", email.text);
    }
}

#[test]
fn the_expiry_line_appears_only_with_a_ttl() {
    let mut ctx = ctx(TemplateName::VerifyEmail);
    ctx.ttl_sec = Some(3 * 3600);
    let email = render(TemplateName::VerifyEmail, "en", &ctx);
    assert!(
        email.text.contains("This link expires in 3 hours."),
        "{}",
        email.text
    );
    assert!(email.html.contains("This link expires in 3 hours."));
    ctx.ttl_sec = None;
    let email = render(TemplateName::VerifyEmail, "en", &ctx);
    assert!(!email.text.contains("expires"), "{}", email.text);
    assert!(!email.html.contains("expires"));
}

#[test]
fn enrollment_links_the_ticket_and_names_the_factor() {
    let template = TemplateName::EnrollmentEmail;
    let email = render(template, "en", &ctx(template));
    assert!(
        email
            .text
            .contains("Method: authenticator app (one-time codes)"),
        "{}",
        email.text
    );
    let overrides = TemplateSources {
        text: Some("{{link}}".into()),
        ..TemplateSources::default()
    };
    let email = renderer()
        .render(template, &locale("en"), &ctx(template), Some(&overrides))
        .expect("renders");
    assert_eq!(email.text, format!("{URL}\n"));
    let no_factor = EmailContext {
        factor: None,
        ..ctx(template)
    };
    assert!(!render(template, "en", &no_factor).text.contains("Method"));
}

#[test]
fn welcome_has_a_login_button_only_with_somewhere_to_log_in() {
    let template = TemplateName::WelcomeEmail;
    let email = render(template, "en", &ctx(template));
    assert!(
        email.html.contains("href=\"https://app.example/login\""),
        "{}",
        email.html
    );
    assert!(
        email.text.contains("Sign in:\nhttps://app.example/login"),
        "{}",
        email.text
    );
    assert!(email.text.contains("You can now sign in to Example App."));
    let bare = EmailContext {
        application: None,
        url: None,
        ..ctx(template)
    };
    let email = render(template, "en", &bare);
    assert!(!email.html.contains("class=\"button\""), "{}", email.html);
    assert!(!email.text.contains("Sign in"), "{}", email.text);
}

#[test]
fn a_link_that_is_not_http_is_refused() {
    let mut ctx = ctx(TemplateName::VerifyEmail);
    ctx.url = Some("javascript:alert(1)".into());
    let err = renderer()
        .render(TemplateName::VerifyEmail, &locale("en"), &ctx, None)
        .unwrap_err();
    assert!(matches!(err, RenderError::UnsafeLink { .. }), "{err}");
}

#[test]
fn overrides_replace_the_default_parts() {
    let overrides = TemplateSources {
        subject: Some("Custom {{brand.name}} subject".into()),
        html: Some(
            "<html><head><style>p { color: #123456; }</style></head><body><p>Custom {{url}}</p></body></html>".into(),
        ),
        text: Some("Custom text {{url}}".into()),
    };
    let email = renderer()
        .render(
            TemplateName::VerifyEmail,
            &locale("fr"),
            &ctx(TemplateName::VerifyEmail),
            Some(&overrides),
        )
        .expect("renders");
    assert_eq!(email.subject, "Custom Example Org subject");
    assert!(
        email
            .html
            .contains(&format!("<p style=\"color: #123456;\">Custom {URL}</p>")),
        "{}",
        email.html
    );
    assert_eq!(email.text, format!("Custom text {URL}\n"));

    let only_subject = TemplateSources {
        subject: Some("Only the subject".into()),
        ..TemplateSources::default()
    };
    let email = renderer()
        .render(
            TemplateName::VerifyEmail,
            &locale("fr"),
            &ctx(TemplateName::VerifyEmail),
            Some(&only_subject),
        )
        .expect("renders");
    assert_eq!(email.subject, "Only the subject");
    assert!(email.text.contains("Bonjour"), "the default text is kept");
}

#[test]
fn an_override_may_use_the_layout_and_button_partials() {
    let overrides = TemplateSources {
        html: Some(r#"{{#> layout}}{{> button href=url label="Go"}}{{/layout}}"#.into()),
        ..TemplateSources::default()
    };
    renderer()
        .check_override(TemplateName::ResetEmail, overrides)
        .expect("a good override passes");
}

#[test]
fn check_override_refuses_broken_sources() {
    let r = renderer();
    let cases = [
        (
            TemplateSources {
                html: Some("<p>{{#if url}}unclosed</p>".into()),
                ..Default::default()
            },
            "syntax",
        ),
        (
            TemplateSources {
                text: Some("{{shout user.name}}".into()),
                ..Default::default()
            },
            "helper",
        ),
        (
            TemplateSources {
                subject: Some("{{user.nmae}}".into()),
                ..Default::default()
            },
            "variable",
        ),
        (
            TemplateSources {
                text: Some(r#"{{t "no-such-key"}}"#.into()),
                ..Default::default()
            },
            "message",
        ),
        (
            TemplateSources {
                text: Some("{{organization.display_name}}".into()),
                ..Default::default()
            },
            "sparse",
        ),
        (
            TemplateSources {
                subject: Some(" \r\n ".into()),
                ..Default::default()
            },
            "empty",
        ),
        (
            TemplateSources {
                html: Some("{{> nope}}".into()),
                ..Default::default()
            },
            "partial",
        ),
    ];
    for (sources, what) in cases {
        let err = r
            .check_override(TemplateName::VerifyEmail, sources)
            .expect_err(what);
        let message = err.to_string();
        assert!(message.contains("verify_email"), "{what}: {message}");
    }
    let err = r
        .check_override(
            TemplateName::VerifyEmail,
            TemplateSources {
                text: Some(r#"{{t "no-such-key"}}"#.into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(&err, RenderError::Message { key, .. } if key == "no-such-key"),
        "{err}"
    );
    let err = r
        .check_override(
            TemplateName::VerifyEmail,
            TemplateSources {
                html: Some("{{#if x}}".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, RenderError::Compile { .. }), "{err}");
}

#[test]
fn the_renderer_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Renderer>();
    assert_send_sync::<RenderError>();
    let shared = Arc::new(Renderer::embedded().expect("loads"));
    std::thread::scope(|s| {
        for tag in LOCALES {
            let shared = Arc::clone(&shared);
            s.spawn(move || {
                for template in TemplateName::ALL {
                    let email = shared
                        .render(template, &locale(tag), &ctx(template), None)
                        .expect("renders");
                    assert_eq!(email, render(template, tag, &ctx(template)));
                }
            });
        }
    });
}

#[test]
fn from_dirs_loads_the_same_defaults_as_embedded() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let from_disk = Renderer::from_dirs(&root.join("templates"), &root.join("locales"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        from_disk.available_locales(),
        renderer().available_locales()
    );
    let template = TemplateName::EnrollmentEmail;
    assert_eq!(
        from_disk
            .render(template, &locale("ja"), &ctx(template), None)
            .expect("renders"),
        render(template, "ja", &ctx(template))
    );
    // An operator's templates may branch on a recipient's strings: always rendered in full.
    assert_eq!(from_disk.cached_skeletons(), 0);
    let missing = Renderer::from_dirs(&root.join("locales"), &root.join("locales")).unwrap_err();
    assert!(missing.to_string().contains("layout.html.hbs"), "{missing}");
    let nowhere = Renderer::from_dirs(&root.join("no-such-dir"), &root.join("locales"));
    assert!(nowhere.is_err());
}

#[test]
fn odd_contexts_render_without_panicking() {
    let odd = |template: TemplateName| EmailContext {
        user: crate::UserView {
            user_id: String::new(),
            email: String::new(),
            name: Some("\u{0}\r\n\u{202e}ﷺ👩‍👩‍👧 {{user.email}} { $name }".into()),
        },
        url: ctx(template).url.map(|u| format!("{u}&x=\"'<>")),
        ttl_sec: Some(u64::MAX),
        application: Some(crate::ApplicationView {
            name: String::new(),
            login_uri: Some("ftp://nope".into()),
        }),
        organization: Some(crate::OrganizationView {
            id: String::new(),
            name: String::new(),
            display_name: String::new(),
        }),
        brand: Brand {
            name: "</style><script>x</script>".into(),
            logo_url: Some("https://x.test/\"onerror=\"alert(1)".into()),
            primary_color: "#FFFFFF".into(),
            page_background: "#000000".into(),
        },
        friendly_name: String::new(),
        factor: Some("}{ $x".into()),
        code: Some("<b>{{user.email}}</b>\u{E000}6\u{E001}".into()),
    };
    for template in TemplateName::ALL {
        for tag in LOCALES {
            let email = render(template, tag, &odd(template));
            // Inside a quoted attribute `<` is inert (and serializers leave it as is).
            let outside_attributes: String = email.html.split('"').step_by(2).collect();
            assert!(!outside_attributes.contains("<script"), "{}", email.html);
            assert!(!email.html.contains("onerror=\"alert"), "{}", email.html);
            assert!(!email.subject.contains(['\r', '\n', '\0']));
        }
    }
    let zero = EmailContext {
        ttl_sec: Some(0),
        ..ctx(TemplateName::VerifyEmail)
    };
    let email = render(TemplateName::VerifyEmail, "en", &zero);
    assert!(
        email.text.contains("This link expires in 1 minute."),
        "{}",
        email.text
    );
}

#[test]
fn subjects_collapse_every_kind_of_space_and_keep_no_edge_whitespace() {
    use crate::renderer::single_line;
    assert_eq!(
        single_line("\u{a0}Acme\u{3000}Corp\u{a0}"),
        "Acme\u{3000}Corp"
    );
    assert_eq!(single_line("a\u{2028}b\u{85}c\r\nd\te"), "a b c d e");
    assert_eq!(single_line(" \u{2003} "), "");
}

/// What a full render and a render from the inlined skeleton may differ in: the skeleton's
/// values are escaped for text and attributes alike (`&quot;` in text, `&lt;`/`&gt;` in
/// attributes), which browsers and mail clients read the same.
fn unescape_alike(html: &str) -> String {
    html.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

#[test]
fn emails_from_the_inlined_skeleton_read_like_full_renders() {
    let full = Renderer::embedded().unwrap().without_html_cache();
    let cached = Renderer::embedded().unwrap();
    let names = [
        None,
        Some("Ana"),
        Some("O'Brien \"<b>&co</b>\""),
        Some("山田 花子"),
        Some("سارة"),
        Some("a\u{a0}b"),
        Some("{{user.email}}"),
    ];
    let mut renders = 0;
    for template in TemplateName::ALL {
        for tag in LOCALES {
            for name in names {
                for minimal in [false, true] {
                    let mut ctx = if minimal {
                        EmailContext::minimal_sample(template)
                    } else {
                        ctx(template)
                    };
                    ctx.user.name = name.map(Into::into);
                    ctx.user.email = "x&y+\"q\"@example.com".into();
                    if ctx.url.is_some() {
                        ctx.url = Some(format!("{URL}&a=<1>&b=\"2\""));
                    }
                    if ctx.code.is_some() {
                        // Every email its own code, as in real life.
                        ctx.code = Some(format!("{:06}", 100_000 + renders));
                    }
                    let expected = full.render(template, &locale(tag), &ctx, None).unwrap();
                    // Twice: the first builds the skeleton, the second reads it back.
                    for _ in 0..2 {
                        let got = cached.render(template, &locale(tag), &ctx, None).unwrap();
                        assert_eq!(got.subject, expected.subject);
                        assert_eq!(got.text, expected.text);
                        assert!(!got.html.contains(['\u{E000}', '\u{E001}']));
                        assert_eq!(
                            unescape_alike(&got.html),
                            unescape_alike(&expected.html),
                            "{template} {tag} {name:?} minimal={minimal}"
                        );
                        renders += 1;
                    }
                }
            }
        }
    }
    assert_eq!(renders, 5 * 6 * 7 * 2 * 2);
    // One skeleton per template, locale, look and name present or not: far fewer than emails,
    // and not one per code.
    let skeletons = cached.cached_skeletons();
    assert!(skeletons > 0 && skeletons <= 5 * 6 * 2 * 2, "{skeletons}");
}

#[test]
fn each_code_email_shows_its_own_code_from_one_skeleton() {
    let r = Renderer::embedded().unwrap();
    let template = TemplateName::MfaOobCode;
    let mut ctx = ctx(template);
    ctx.code = Some("111111".into());
    let first = r.render(template, &locale("en"), &ctx, None).unwrap();
    let skeletons = r.cached_skeletons();
    for code in ["222222", "042917", "999999"] {
        ctx.code = Some(code.into());
        let email = r.render(template, &locale("en"), &ctx, None).unwrap();
        assert!(email.html.contains(code) && email.text.contains(code));
        assert!(!email.html.contains("111111") && !email.text.contains("111111"));
        assert_eq!(
            email.html.replace(code, "111111"),
            first.html,
            "only the code differs"
        );
    }
    assert_eq!(r.cached_skeletons(), skeletons, "codes are not cached");
}

#[test]
fn the_code_email_shows_the_code_large_its_expiry_and_what_to_do_if_unasked_in_every_locale() {
    let template = TemplateName::MfaOobCode;
    let expect = [
        (
            "en",
            "Your Example Org verification code",
            "This code expires in 10 minutes.",
            "If you did not ask for this code",
        ),
        (
            "fr",
            "Votre code de vérification Example Org",
            "Ce code expire dans 10 minutes.",
            "Si vous n’avez pas demandé ce code",
        ),
        (
            "de",
            "Ihr Bestätigungscode für Example Org",
            "Dieser Code läuft in 10 Minuten ab.",
            "Falls Sie diesen Code nicht angefordert haben",
        ),
        (
            "es",
            "Su código de verificación de Example Org",
            "Este código caduca en 10 minutos.",
            "Si no solicitó este código",
        ),
        (
            "pt-BR",
            "Seu código de verificação para Example Org",
            "Este código expira em 10 minutos.",
            "Se você não pediu este código",
        ),
        (
            "ja",
            "Example Org の確認コード",
            "このコードの有効期限は 10 分です。",
            "このコードをリクエストした覚えがない場合",
        ),
    ];
    assert_eq!(expect.len(), LOCALES.len());
    for (tag, subject, expiry, ignore) in expect {
        let ctx = ctx(template);
        let email = render(template, tag, &ctx);
        assert_eq!(email.subject, subject, "{tag}");
        assert!(
            !email.subject.contains("042917"),
            "{tag}: no code in the subject"
        );
        let code = email
            .html
            .split("<p ")
            .find(|p| p.contains("042917"))
            .unwrap_or_else(|| panic!("{tag}: no code in {}", email.html));
        assert!(
            code.contains("font-size: 32px") && code.contains("monospace"),
            "{tag}: {code}"
        );
        assert!(
            code.contains(">042917</p>"),
            "{tag}: the code is one copyable run: {code}"
        );
        assert!(email.html.contains("#0f766e"), "{tag}: branded");
        for part in [&email.html, &email.text] {
            assert!(part.contains(expiry), "{tag}: {part}");
            assert!(part.contains(ignore), "{tag}: {part}");
        }
        assert!(
            !email.html.contains("href="),
            "{tag}: a code email has no link"
        );
        assert!(!email.text.contains("https://"), "{tag}: {}", email.text);
        assert!(
            email.text.contains("\n    042917\n"),
            "{tag}: {}",
            email.text
        );
        // Without a lifetime, no expiry line; the code still shows.
        let no_ttl = EmailContext {
            ttl_sec: None,
            ..ctx
        };
        let email = render(template, tag, &no_ttl);
        assert!(
            !email.text.contains(expiry) && email.text.contains("042917"),
            "{tag}"
        );
    }
}

#[test]
fn a_hostile_code_is_escaped_like_any_value() {
    let template = TemplateName::MfaOobCode;
    let mut ctx = ctx(template);
    ctx.code = Some("<img src=x onerror=alert(1)>".into());
    let email = render(template, "en", &ctx);
    assert!(!email.html.contains("<img src=x"), "{}", email.html);
    assert!(email.html.contains("&lt;img src=x onerror=alert(1)&gt;"));
}

#[test]
fn the_context_debug_output_hides_the_code() {
    let shown = format!("{:?}", ctx(TemplateName::MfaOobCode));
    assert!(!shown.contains("042917"), "{shown}");
    assert!(shown.contains("code: Some(\"<redacted>\")"), "{shown}");
}

#[test]
fn values_that_cannot_stand_behind_a_placeholder_are_rendered_in_full() {
    let r = Renderer::embedded().unwrap();
    let before = r.cached_skeletons();
    let mut ctx = ctx(TemplateName::VerifyEmail);
    // A name that spells a placeholder must come out as itself, not as another field.
    ctx.user.name = Some("\u{E000}1\u{E001}".into());
    let html = r
        .render(TemplateName::VerifyEmail, &locale("en"), &ctx, None)
        .unwrap()
        .html;
    assert_eq!(r.cached_skeletons(), before, "rendered without the cache");
    assert!(html.contains("\u{E000}1\u{E001}"));
    assert!(
        !html.contains("Alex"),
        "the name is not replaced by another value"
    );
}

#[test]
fn overrides_are_always_rendered_in_full() {
    let r = Renderer::embedded().unwrap();
    let before = r.cached_skeletons();
    let sources = TemplateSources {
        html: Some("<p style=\"color: red\">{{#if user.name}}{{user.name}}{{/if}}</p>".into()),
        ..TemplateSources::default()
    };
    let email = r
        .render(
            TemplateName::VerifyEmail,
            &locale("en"),
            &with_name("Zed"),
            Some(&sources),
        )
        .unwrap();
    assert!(email.html.contains("Zed"), "{}", email.html);
    assert_eq!(r.cached_skeletons(), before);
}
