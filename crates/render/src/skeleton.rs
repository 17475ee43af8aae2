//! Inline CSS once per look, not once per email: the per-recipient strings of a view (user id,
//! email, name, the links and the one-time code) are swapped for placeholders, the HTML is rendered and inlined
//! for that "skeleton", and each email then only fills the placeholders in.
//!
//! A skeleton renders exactly like the real view wherever templates only print those strings,
//! which is all the built-in templates do with them; overrides, and templates loaded from disk
//! (`HERALD_TEMPLATES_DIR`), are always rendered in full.
//! `{{#if user.name}}` still sees the truth: a missing value stays missing, and a present one is
//! never empty (empty names are dropped by the view, and `View::skeleton` refuses the rest).
//! The filled-in values are HTML-escaped for text and attribute alike, so the result means the
//! same as a full render, byte for byte except that `"` may appear as `&quot;` in text and `<`,
//! `>` as `&lt;`, `&gt;` in attributes.

/// The placeholders, by index: private-use code points around a digit, which handlebars,
/// fluent and the CSS inliner all pass through untouched.
pub(crate) const PLACEHOLDERS: [&str; SLOTS] = [
    "\u{E000}0\u{E001}",
    "\u{E000}1\u{E001}",
    "\u{E000}2\u{E001}",
    "\u{E000}3\u{E001}",
    "\u{E000}4\u{E001}",
    "\u{E000}5\u{E001}",
    "\u{E000}6\u{E001}",
];
pub(crate) const SLOTS: usize = 7;

const OPEN: char = '\u{E000}';
const CLOSE: char = '\u{E001}';

/// The values the placeholders stand for, by index.
pub(crate) type Values<'a> = [Option<&'a str>; SLOTS];

/// Whether `value` can stand behind a placeholder: not blank (a blank string is falsy in
/// handlebars, a placeholder is not), no control characters (the HTML parser would rewrite
/// them) and no placeholder delimiters.
pub(crate) fn fits(value: &str) -> bool {
    !value.trim().is_empty()
        && !value
            .chars()
            .any(|c| c.is_control() || c == OPEN || c == CLOSE)
}

/// `skeleton` with every placeholder replaced by its value, HTML-escaped. `None` when the
/// skeleton holds a placeholder whose value is missing, or a stray delimiter: then the caller
/// renders in full instead.
pub(crate) fn fill(skeleton: &str, values: &Values<'_>) -> Option<String> {
    let extra: usize = values.iter().flatten().map(|v| v.len()).sum();
    let mut out = String::with_capacity(skeleton.len() + 2 * extra);
    let mut rest = skeleton;
    while let Some(at) = rest.find(OPEN) {
        out.push_str(&rest[..at]);
        let after = &rest[at + OPEN.len_utf8()..];
        let mut chars = after.chars();
        let index = chars.next()?.to_digit(10)? as usize;
        if chars.next()? != CLOSE {
            return None;
        }
        escape_into(&mut out, values.get(index).copied().flatten()?);
        rest = &after[1 + CLOSE.len_utf8()..];
    }
    if rest.contains(CLOSE) {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

/// HTML-escapes for both text and double-quoted attributes.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\u{a0}' => out.push_str("&nbsp;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_escapes_each_value_where_its_placeholder_was() {
        let values: Values<'_> = [
            Some("u1"),
            Some("a&b@example.com"),
            Some("O'Brien \"<b>\""),
            None,
            None,
            None,
            None,
        ];
        let skeleton = format!(
            "<p title=\"{}\">Hi {}, {}</p>",
            PLACEHOLDERS[2], PLACEHOLDERS[2], PLACEHOLDERS[1]
        );
        assert_eq!(
            fill(&skeleton, &values).unwrap(),
            "<p title=\"O'Brien &quot;&lt;b&gt;&quot;\">Hi O'Brien &quot;&lt;b&gt;&quot;, \
             a&amp;b@example.com</p>"
        );
    }

    #[test]
    fn fill_refuses_missing_values_and_stray_delimiters() {
        let values: Values<'_> = [Some("u1"), None, None, None, None, None, None];
        assert_eq!(fill(PLACEHOLDERS[1], &values), None);
        assert_eq!(fill("x\u{E000}9", &values), None);
        assert_eq!(fill("x\u{E000}0", &values), None);
        assert_eq!(fill("x\u{E001}", &values), None);
        assert_eq!(fill("plain", &values).as_deref(), Some("plain"));
    }

    #[test]
    fn blank_controlled_or_delimited_values_do_not_fit() {
        assert!(fits("Ana"));
        assert!(fits("山田 花子"));
        for bad in ["", "  ", "a\tb", "a\u{0}b", "a\u{E000}0\u{E001}"] {
            assert!(!fits(bad), "{bad:?}");
        }
    }
}
