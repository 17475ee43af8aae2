//! Hostile text for the property tests: strings made to break validation, HTML escaping and
//! header folding alike, and the proptest configuration those tests share.

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

/// Pieces of hostile text: line breaks and header injection, control, bidi and zero-width
/// characters, markup, entities and template syntax, combining marks, emoji and right-to-left
/// scripts, address and path punctuation, and a few ordinary names.
pub const FRAGMENTS: &[&str] = &[
    // Line breaks and header injection
    "\r\n",
    "\r\nBcc: victim@evil.test",
    "\nBcc: victim@evil.test",
    "\rBcc: victim@evil.test",
    "\r\n\r\nbody",
    "\r\n Bcc: folded@evil.test",
    "\r\n\tX-Evil: 1",
    "Bcc: victim@evil.test",
    "\nSubject: pwned",
    "\u{85}Bcc: x@evil.test",
    "\u{2028}Bcc: x@evil.test",
    "=?utf-8?q?=0D=0ABcc:_x@evil.test?=",
    "%0d%0a",
    // Control, separator, bidi and zero-width characters
    "\u{0}",
    "\t",
    "\u{b}\u{c}",
    "\u{7f}",
    "\u{85}",
    "\u{2028}",
    "\u{202e}",
    "\u{200f}",
    "\u{2068}",
    "\u{200b}",
    "\u{feff}",
    // Markup, entities and template syntax
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.test/x.js>",
    "<img src=x onerror=alert(1)>",
    "\"'><svg onload=alert(1)>",
    "</p></td></tr></table></body>",
    "<!--",
    "-->",
    "<![CDATA[",
    "&amp;",
    "&lt;",
    "&#x3C;script&#x3E;",
    "{{user.email}}",
    "{{{brand.name}}}",
    "}}",
    "{ $name }",
    "a=b`c",
    // Combining marks, emoji, right-to-left scripts
    "e\u{301}",
    "e\u{301}\u{301}\u{301}",
    "e\u{301}\u{302}\u{303}\u{304}",
    "Z\u{334}\u{321}\u{32a}\u{354}",
    "👩🏽‍💻",
    "👩‍👩‍👧‍👦",
    "🏳️‍🌈",
    "مرحبا",
    "مرحبا بالعالم",
    "שלום",
    // Quoting, address and path punctuation
    "\"",
    "\"'\\",
    "\"quoted\"",
    "\\",
    "<",
    ">",
    ",",
    ";",
    ":",
    "@",
    ".",
    "..",
    "(comment)",
    " ",
    "  ",
    // Ordinary names
    "Ana",
    "Ana Souza",
    "O'Brien",
    "Zoë Ñúñez",
];

/// A property's run configuration: `cases` runs (`PROPTEST_CASES=N` runs every property N times,
/// for a longer hunt), and no failure files persisted, so no regression files land in the repo.
pub fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(cases),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One piece of text: a [`FRAGMENTS`] entry, a short plain word, or any one character.
pub fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(FRAGMENTS).prop_map(str::to_string),
        "[a-zA-Z0-9 .,-]{1,12}",
        any::<char>().prop_map(String::from),
    ]
}

/// Untrusted text: [`fragment`]s glued together, arbitrary strings, the empty string, or one
/// fragment repeated up to 2,000 times.
pub fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec(fragment(), 0..8).prop_map(|v| v.concat()),
        2 => any::<String>(),
        1 => Just(String::new()),
        1 => (fragment(), 1usize..2_000).prop_map(|(f, n)| f.repeat(n)),
    ]
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    use super::*;

    #[test]
    fn hostile_text_reaches_header_injection_and_markup() {
        let mut runner = TestRunner::deterministic();
        let samples: Vec<String> = (0..2_000)
            .map(|_| hostile().new_tree(&mut runner).unwrap().current())
            .collect();
        for needle in ["\r\nBcc:", "<script>", "\u{202e}", "{{"] {
            assert!(
                samples.iter().any(|s| s.contains(needle)),
                "no sample holds {needle:?}"
            );
        }
        assert!(samples.iter().any(String::is_empty));
        assert!(samples.iter().any(|s| s.len() > 10_000));
    }
}
