//! Fluent message catalogs (one bundle per locale) and the escaping `t` handlebars helper.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use fluent_syntax::ast;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, JsonValue, Output, RenderContext,
    RenderErrorReason, ScopedJson,
};
use herald_domain::Locale;

use crate::error::LoadError;
use crate::sources::SourceFile;

/// Every locale's messages, loaded once and shared by both handlebars registries.
pub(crate) struct Catalog {
    /// Keyed by the locale's canonical tag (`pt-BR`), which is what the view's `lang` holds.
    bundles: BTreeMap<String, FluentBundle<FluentResource>>,
    locales: Vec<Locale>,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog")
            .field("locales", &self.bundles.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A message that could not be produced.
#[derive(Debug, thiserror::Error)]
#[error("message {key:?} in locale {locale}: {problem}")]
pub(crate) struct MessageError {
    pub(crate) locale: String,
    pub(crate) key: String,
    pub(crate) problem: String,
}

impl Catalog {
    /// Builds one bundle per `<lang>/` directory from its `.ftl` files, and refuses a set of
    /// locales that do not all define the same messages.
    pub(crate) fn load(files: &[SourceFile]) -> Result<Self, LoadError> {
        let mut by_locale: BTreeMap<String, (Locale, Vec<&SourceFile>)> = BTreeMap::new();
        for file in files {
            let mut parts = file.path.iter();
            let (Some(dir), Some(_name), None) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            if file.path.extension().is_none_or(|e| e != "ftl") {
                continue;
            }
            let dir = dir.to_string_lossy();
            let locale = Locale::parse(&dir).ok_or_else(|| LoadError::LocaleDir {
                name: dir.to_string(),
            })?;
            by_locale
                .entry(locale.to_string())
                .or_insert_with(|| (locale, Vec::new()))
                .1
                .push(file);
        }
        if by_locale.is_empty() {
            return Err(LoadError::NoLocales);
        }

        let mut bundles = BTreeMap::new();
        let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut locales = Vec::new();
        for (tag, (locale, files)) in by_locale {
            let mut bundle = FluentBundle::new_concurrent(vec![locale.langid().clone()]);
            // Bidi isolation marks (U+2068/U+2069) show up as junk in subjects and text parts.
            bundle.set_use_isolating(false);
            bundle.add_builtins().map_err(|e| LoadError::Ftl {
                locale: tag.clone(),
                file: String::new(),
                problem: e.to_string(),
            })?;
            let locale_ids = ids.entry(tag.clone()).or_default();
            for file in files {
                let resource = parse_ftl(&tag, file)?;
                locale_ids.extend(message_ids(&resource));
                bundle
                    .add_resource(resource)
                    .map_err(|errors| LoadError::Ftl {
                        locale: tag.clone(),
                        file: file.path.display().to_string(),
                        problem: join(&errors),
                    })?;
            }
            bundles.insert(tag, bundle);
            locales.push(locale);
        }

        let all: BTreeSet<&String> = ids.values().flatten().collect();
        for (tag, have) in &ids {
            let missing: Vec<String> = all
                .iter()
                .filter(|id| !have.contains(id.as_str()))
                .map(|id| id.to_string())
                .collect();
            if !missing.is_empty() {
                return Err(LoadError::MissingMessages {
                    locale: tag.clone(),
                    keys: missing.join(", "),
                });
            }
        }
        Ok(Self { bundles, locales })
    }

    /// Every loaded locale, sorted by tag.
    pub(crate) fn locales(&self) -> &[Locale] {
        &self.locales
    }

    /// Formats message `key` in locale `lang`. A missing message or any formatting error (an
    /// unknown variable, say) is an error, never a placeholder in the email.
    pub(crate) fn format(
        &self,
        lang: &str,
        key: &str,
        args: &FluentArgs<'_>,
    ) -> Result<String, MessageError> {
        let fail = |problem: String| MessageError {
            locale: lang.to_string(),
            key: key.to_string(),
            problem,
        };
        let bundle = self
            .bundles
            .get(lang)
            .ok_or_else(|| fail("the locale is not loaded".into()))?;
        let message = bundle
            .get_message(key)
            .ok_or_else(|| fail("no such message".into()))?;
        let pattern = message
            .value()
            .ok_or_else(|| fail("the message has no value".into()))?;
        let mut errors = Vec::new();
        let text = bundle.format_pattern(pattern, Some(args), &mut errors);
        if errors.is_empty() {
            Ok(text.into_owned())
        } else {
            Err(fail(join(&errors)))
        }
    }
}

fn parse_ftl(locale: &str, file: &SourceFile) -> Result<FluentResource, LoadError> {
    FluentResource::try_new(file.contents.clone()).map_err(|(_, errors)| LoadError::Ftl {
        locale: locale.to_string(),
        file: file.path.display().to_string(),
        problem: errors
            .iter()
            .map(|e| format!("{:?} at bytes {:?}", e.kind, e.pos))
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// The ids of the messages and terms (`-name`) a resource defines.
pub(crate) fn message_ids(resource: &FluentResource) -> impl Iterator<Item = String> + '_ {
    resource.entries().filter_map(|entry| match entry {
        ast::Entry::Message(m) => Some(m.id.name.to_string()),
        ast::Entry::Term(t) => Some(format!("-{}", t.id.name)),
        _ => None,
    })
}

fn join(errors: &[impl fmt::Display]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// `{{t "key" name=user.name}}`: the message `key` in the locale being rendered (the view's
/// `lang`), with the hash as fluent arguments.
///
/// Written to the output, the whole message (its text and every argument) goes through the
/// registry's escape function: HTML-escaped in the HTML registry, raw in the text one, and even
/// inside `{{{ }}}`. Used as a subexpression (`label=(t "key")`) it yields the raw string, which
/// is escaped where it is finally output.
#[derive(Debug, Clone)]
pub(crate) struct TranslateHelper {
    catalog: Arc<Catalog>,
}

impl TranslateHelper {
    pub(crate) fn new(catalog: Arc<Catalog>) -> Self {
        Self { catalog }
    }

    fn translate(
        &self,
        h: &Helper<'_>,
        r: &Handlebars<'_>,
        ctx: &Context,
    ) -> Result<String, handlebars::RenderError> {
        let key = h
            .param(0)
            .ok_or(RenderErrorReason::ParamNotFoundForIndex("t", 0))?;
        if r.strict_mode() && key.is_value_missing() {
            return Err(handlebars::RenderError::strict_error(key.relative_path()));
        }
        let key = key
            .value()
            .as_str()
            .ok_or(RenderErrorReason::InvalidParamType("a message id string"))?;
        let lang = ctx
            .data()
            .get("lang")
            .and_then(JsonValue::as_str)
            .ok_or_else(|| {
                RenderErrorReason::Other("the `t` helper needs `lang` in the context".into())
            })?;

        let mut args = FluentArgs::new();
        for (name, value) in h.hash() {
            if r.strict_mode() && value.is_value_missing() {
                return Err(handlebars::RenderError::strict_error(value.relative_path()));
            }
            let value = match value.value() {
                // A null argument is left out: a message that uses it then fails loudly.
                JsonValue::Null => continue,
                JsonValue::String(s) => FluentValue::from(s.clone()),
                JsonValue::Bool(b) => FluentValue::from(b.to_string()),
                JsonValue::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                    (Some(u), _, _) => FluentValue::from(u),
                    (None, Some(i), _) => FluentValue::from(i),
                    (None, None, Some(f)) => FluentValue::from(f),
                    _ => FluentValue::from(n.to_string()),
                },
                JsonValue::Array(_) | JsonValue::Object(_) => {
                    return Err(RenderErrorReason::HashTypeMismatchForName(
                        "t",
                        name.to_string(),
                        "a string or number".into(),
                    )
                    .into());
                }
            };
            args.set(name.to_string(), value);
        }

        self.catalog
            .format(lang, key, &args)
            .map_err(|e| RenderErrorReason::NestedError(Box::new(e)).into())
    }
}

impl HelperDef for TranslateHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, handlebars::RenderError> {
        let text = self.translate(h, r, ctx)?;
        Ok(ScopedJson::Derived(JsonValue::String(text)))
    }

    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        r: &'reg Handlebars<'reg>,
        ctx: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let text = self.translate(h, r, ctx)?;
        out.write(&r.get_escape_fn()(&text))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources;

    fn embedded_ids() -> BTreeMap<String, BTreeSet<String>> {
        let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in sources::embedded_locales().expect("the embedded locales are UTF-8") {
            if file.path.extension().is_none_or(|e| e != "ftl") {
                continue;
            }
            let locale = file
                .path
                .iter()
                .next()
                .map(|d| d.to_string_lossy().to_string());
            let locale = locale.expect("an ftl file sits in a locale directory");
            let resource = FluentResource::try_new(file.contents.clone())
                .unwrap_or_else(|(_, e)| panic!("{} does not parse: {e:?}", file.path.display()));
            ids.entry(locale)
                .or_default()
                .extend(message_ids(&resource));
        }
        ids
    }

    #[test]
    fn every_locale_defines_exactly_the_english_message_ids() {
        let ids = embedded_ids();
        let en = ids.get("en").expect("an en locale");
        assert!(en.len() > 20, "en looks empty: {en:?}");
        for tag in ["en", "fr", "de", "es", "pt-BR", "ja"] {
            let have = ids.get(tag).unwrap_or_else(|| panic!("no {tag} locale"));
            let missing: Vec<_> = en.difference(have).collect();
            let extra: Vec<_> = have.difference(en).collect();
            assert!(missing.is_empty(), "{tag} lacks {missing:?}");
            assert!(extra.is_empty(), "{tag} has ids en lacks: {extra:?}");
        }
    }

    #[test]
    fn every_embedded_message_formats_in_every_locale_without_isolation_marks() {
        let files = sources::embedded_locales().expect("utf-8");
        let catalog = Catalog::load(&files).expect("the embedded locales load");
        let en = embedded_ids().remove("en").expect("en");
        let mut args = FluentArgs::new();
        for (name, value) in [
            ("name", "Alex"),
            ("email", "a@example.com"),
            ("brand", "Acme"),
            ("app", "App"),
            ("factor", "otp"),
            ("label", "Go"),
        ] {
            args.set(name, value);
        }
        for (name, value) in [("min", 10u64), ("max", 128)] {
            args.set(name, value);
        }
        for locale in catalog.locales() {
            for count in [0u64, 1, 2, 5, 21, 1_000_000] {
                args.set("count", count);
                for key in en.iter().filter(|k| !k.starts_with('-')) {
                    let text = catalog
                        .format(&locale.to_string(), key, &args)
                        .unwrap_or_else(|e| panic!("{e}"));
                    assert!(!text.trim().is_empty(), "{locale} {key} is empty");
                    assert!(!text.contains(['\u{2068}', '\u{2069}']), "{locale} {key}");
                }
            }
        }
    }

    #[test]
    fn a_missing_message_or_argument_is_an_error_not_a_placeholder() {
        let files = vec![SourceFile::new("en/a.ftl", "hello = Hello { $name }\n")];
        let catalog = Catalog::load(&files).expect("loads");
        let err = catalog
            .format("en", "nope", &FluentArgs::new())
            .unwrap_err();
        assert!(err.to_string().contains("\"nope\""), "{err}");
        assert!(catalog.format("en", "hello", &FluentArgs::new()).is_err());
        assert!(catalog.format("fr", "hello", &FluentArgs::new()).is_err());
    }

    #[test]
    fn locales_with_different_message_sets_are_refused_at_load() {
        let files = vec![
            SourceFile::new("en/a.ftl", "a = A\nb = B\n"),
            SourceFile::new("fr/a.ftl", "a = A\n"),
        ];
        let err = Catalog::load(&files).unwrap_err().to_string();
        assert!(err.contains("fr") && err.contains('b'), "{err}");
    }

    #[test]
    fn an_ftl_syntax_error_is_refused_at_load_naming_the_file() {
        let files = vec![SourceFile::new("en/a.ftl", "a = { $x ->\n")];
        let err = Catalog::load(&files).unwrap_err().to_string();
        assert!(err.contains("en/a.ftl"), "{err}");
    }
}
