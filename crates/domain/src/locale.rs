//! Locales and the negotiation that picks one for an email; an unusable request always falls back.

use std::fmt;
use std::str::FromStr;

use fluent_langneg::{NegotiationStrategy, negotiate_languages};
use unic_langid::LanguageIdentifier;

/// A BCP 47 language tag that parsed, e.g. `fr`, `fr-CA` or `pt-BR`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Locale(LanguageIdentifier);

impl Locale {
    /// Parses a tag leniently: surrounding space is trimmed and `_` is read as `-` (`pt_BR`).
    pub fn parse(tag: &str) -> Option<Self> {
        let tag = tag.trim().replace('_', "-");
        if tag.is_empty() || tag.len() > 35 {
            return None;
        }
        tag.parse::<LanguageIdentifier>().ok().map(Self)
    }

    pub fn langid(&self) -> &LanguageIdentifier {
        &self.0
    }

    pub fn english() -> Self {
        Self("en".parse().expect("static tag"))
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Locale {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| format!("{s:?} is not a valid BCP 47 language tag"))
    }
}

impl From<LanguageIdentifier> for Locale {
    fn from(id: LanguageIdentifier) -> Self {
        Self(id)
    }
}

/// Picks the locale to render in.
///
/// `requested` is tried in order (for a job: `email_locale`, `user.locale`, the organization's
/// default locale); the first one that matches an available locale wins. A regional tag falls back
/// to its language (`fr-CA` → `fr`) and a bare language finds its regional variant (`pt` → `pt-BR`).
/// Tags that are missing, malformed or unsupported are skipped; when none matches, `default` is used.
pub fn negotiate<'a>(
    requested: impl IntoIterator<Item = Option<&'a str>>,
    available: &[Locale],
    default: &Locale,
) -> Locale {
    let available_ids: Vec<&LanguageIdentifier> = available.iter().map(|l| &l.0).collect();
    for tag in requested.into_iter().flatten() {
        let Some(wanted) = Locale::parse(tag) else {
            continue;
        };
        let matched = negotiate_languages(
            &[&wanted.0],
            &available_ids,
            None,
            NegotiationStrategy::Filtering,
        );
        if let Some(best) = matched.first() {
            return Locale((**best).clone());
        }
    }
    default.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn available() -> Vec<Locale> {
        ["en", "fr", "de", "es", "pt-BR", "ja"]
            .iter()
            .map(|t| Locale::parse(t).unwrap())
            .collect()
    }

    fn pick(requested: &[Option<&str>]) -> String {
        negotiate(requested.iter().copied(), &available(), &Locale::english()).to_string()
    }

    #[test]
    fn the_first_usable_request_wins() {
        assert_eq!(pick(&[Some("de"), Some("fr"), Some("ja")]), "de");
        assert_eq!(pick(&[None, Some("fr"), Some("ja")]), "fr");
        assert_eq!(pick(&[None, None, Some("ja")]), "ja");
        assert_eq!(pick(&[None, None, None]), "en");
    }

    #[test]
    fn regional_tags_fall_back_to_their_language() {
        assert_eq!(pick(&[Some("fr-CA")]), "fr");
        assert_eq!(pick(&[Some("de-AT")]), "de");
        assert_eq!(pick(&[Some("pt")]), "pt-BR");
        assert_eq!(pick(&[Some("pt_BR")]), "pt-BR");
        assert_eq!(pick(&[Some("ja-JP")]), "ja");
    }

    #[test]
    fn unknown_or_malformed_tags_are_skipped_not_fatal() {
        assert_eq!(pick(&[Some("zz"), Some("es")]), "es");
        assert_eq!(pick(&[Some("!!not a tag!!"), Some("fr")]), "fr");
        assert_eq!(pick(&[Some(""), Some("   ")]), "en");
        assert_eq!(pick(&[Some("x".repeat(100).as_str())]), "en");
        assert_eq!(pick(&[Some("ko")]), "en");
    }
}
