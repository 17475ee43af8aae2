//! The text part of an email whose template only gives HTML (Auth0's templates have no text
//! part): the visible text of the HTML, with block elements on lines of their own and every
//! link's address after its text, so that a reader without HTML can still follow the link.

use crate::renderer::tidy_text;

/// Elements whose contents are never shown.
const HIDDEN: [&str; 4] = ["head", "style", "script", "template"];
/// Elements that start and end a line.
const BLOCKS: [&str; 22] = [
    "p",
    "div",
    "br",
    "tr",
    "li",
    "ul",
    "ol",
    "table",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "blockquote",
    "section",
    "article",
    "header",
    "footer",
    "title",
    "center",
];

/// The text of `html`: tags dropped, entities decoded, runs of spaces collapsed, one line per
/// block, at most one blank line in a row, links as `text (address)`.
pub(crate) fn html_to_text(html: &str) -> String {
    let mut out = String::new();
    let mut hidden: Option<String> = None;
    let mut links: Vec<(Option<String>, usize)> = Vec::new();
    let mut rest = html;
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if hidden.is_none() {
                push_text(&mut out, rest);
            }
            break;
        };
        if hidden.is_none() {
            push_text(&mut out, &rest[..lt]);
        }
        rest = &rest[lt..];
        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        let end = tag_end(rest);
        let tag = &rest[1..end.saturating_sub(1).max(1)];
        rest = &rest[end..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if let Some(open) = &hidden {
            if closing && *open == name {
                hidden = None;
            }
            continue;
        }
        if HIDDEN.contains(&name.as_str()) && !closing && !tag.ends_with('/') {
            hidden = Some(name);
            continue;
        }
        if name == "a" {
            if closing {
                if let Some((Some(href), start)) = links.pop() {
                    let text = out[start..].trim();
                    if !text.is_empty() && text != href {
                        out.push_str(" (");
                        out.push_str(&href);
                        out.push(')');
                    } else if text.is_empty() {
                        out.push_str(&href);
                    }
                }
            } else {
                links.push((attribute(tag, "href").filter(|h| is_link(h)), out.len()));
            }
        } else if BLOCKS.contains(&name.as_str()) {
            out.push('\n');
            if matches!(name.as_str(), "p" | "h1" | "h2" | "h3" | "table") {
                out.push('\n');
            }
        }
    }
    tidy_text(&out)
}

/// Where the tag starting at `s[0] == '<'` ends (after its `>`), skipping quoted attributes.
fn tag_end(s: &str) -> usize {
    let mut quote = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return i + 1,
            _ => {}
        }
    }
    s.len()
}

/// The value of `name="…"` in a tag's source, entities decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = at > 0 && lower.as_bytes()[at - 1].is_ascii_whitespace();
        let after = tag[from..].trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value = after[1..].trim_start();
        let (value, _) = match value.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let inner = &value[1..];
                (&inner[..inner.find(q).unwrap_or(inner.len())], ())
            }
            _ => (
                &value[..value
                    .find(|c: char| c.is_whitespace() || c == '>')
                    .unwrap_or(value.len())],
                (),
            ),
        };
        return Some(decode(value));
    }
    None
}

fn is_link(href: &str) -> bool {
    let lower = href.trim().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:")
}

fn push_text(out: &mut String, raw: &str) {
    let text = decode(raw);
    for (i, word) in text.split_whitespace().enumerate() {
        let at_line_start = out.is_empty() || out.ends_with('\n');
        if (i > 0 || starts_with_space(&text)) && !at_line_start && !out.ends_with(' ') {
            out.push(' ');
        }
        out.push_str(word);
    }
    if text.ends_with(char::is_whitespace) && !text.trim().is_empty() {
        out.push(' ');
    }
}

fn starts_with_space(s: &str) -> bool {
    s.starts_with(char::is_whitespace)
}

/// Decodes the named entities emails use and every numeric one.
fn decode(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').filter(|&e| e <= 12);
        let decoded = end.and_then(|e| entity(&rest[1..e]));
        match (decoded, end) {
            (Some(c), Some(e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            _ => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code).filter(|c| !c.is_control() || c.is_whitespace());
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => '\u{a0}',
        "copy" => '©',
        "reg" => '®',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "rsquo" => '’',
        "lsquo" => '‘',
        "rdquo" => '”',
        "ldquo" => '“',
        "middot" => '·',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::html_to_text;

    #[test]
    fn blocks_become_lines_and_links_keep_their_address() {
        let html = r#"<html><head><title>x</title><style>p { color: red }</style></head>
            <body><h1>Welcome,  Alex &amp; co</h1><p>Please <a href="https://app.example/v?a=1&amp;b=2">verify
            your email</a>.</p><!-- hidden --><script>alert(1)</script>
            <p><a href="https://app.example/x">https://app.example/x</a></p><div>Bye&nbsp;now&#33;</div></body></html>"#;
        assert_eq!(
            html_to_text(html),
            "Welcome, Alex & co\n\nPlease verify your email (https://app.example/v?a=1&b=2).\n\nhttps://app.example/x\n\nBye now!\n"
        );
    }

    #[test]
    fn javascript_links_are_not_printed_and_broken_markup_ends_cleanly() {
        assert_eq!(
            html_to_text(r#"<p><a href="javascript:alert(1)">click</a></p><p>a < b"#),
            "click\n\na\n"
        );
        assert_eq!(
            html_to_text("plain &unknown; &#0; text"),
            "plain &unknown; &#0; text\n"
        );
    }
}
