//! Property tests for `compose`: whatever the names, subject and bodies hold, composing never
//! panics and the message's header block holds only Herald's own header lines (no injected `Bcc:`),
//! and `header_safe` output never holds a control character.

use herald_domain::JobId;
use herald_render::RenderedEmail;
use herald_testkit::hostile::{config, hostile};
use herald_worker::compose::{compose, header_safe, message_id};
use lettre::Address;
use lettre::message::Mailbox;
use proptest::prelude::*;

/// The only header fields a composed message may carry at the top level.
const OUR_HEADERS: [&str; 9] = [
    "from",
    "to",
    "subject",
    "message-id",
    "x-herald-job-id",
    "mime-version",
    "date",
    "content-type",
    "content-transfer-encoding",
];

fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z0-9]{1,10}(\\.[a-z0-9+_-]{1,6})?@[a-z0-9]{1,10}(\\.[a-z]{2,6}){1,2}",
        1 => "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,12}@[a-z]{1,8}\\.test",
        1 => hostile(),
    ]
}

fn job_id() -> impl Strategy<Value = JobId> {
    "[A-Za-z0-9_-]{1,20}(\\.[A-Za-z0-9_-]{1,10}){0,3}"
        .prop_map(|s| JobId::parse(s).expect("the regex only makes valid ids"))
}

fn from_mailbox() -> impl Strategy<Value = Mailbox> {
    (prop::option::of(hostile()), "[a-z]{1,8}@[a-z]{1,8}\\.test").prop_map(|(name, email)| {
        let email: Address = email.parse().expect("a plain address parses");
        Mailbox::new(name, email)
    })
}

fn rendered() -> impl Strategy<Value = RenderedEmail> {
    (hostile(), hostile(), hostile()).prop_map(|(subject, html, text)| RenderedEmail {
        subject,
        html,
        text,
    })
}

/// Unfolds nothing: returns the header block's physical lines, refusing a bare CR or LF.
fn header_lines(raw: &[u8]) -> Result<Vec<String>, TestCaseError> {
    let text = String::from_utf8_lossy(raw);
    let end = text.find("\r\n\r\n");
    prop_assert!(end.is_some(), "no end of headers in {text:?}");
    let block = &text[..end.unwrap_or_default()];
    let lines: Vec<String> = block.split("\r\n").map(str::to_string).collect();
    for line in &lines {
        prop_assert!(
            !line.contains(['\r', '\n']),
            "a bare CR or LF in header line {line:?}"
        );
    }
    Ok(lines)
}

/// A header field's value with its folds undone.
fn field(lines: &[String], name: &str) -> Option<String> {
    let prefix = format!("{name}:");
    let start = lines
        .iter()
        .position(|l| l.to_ascii_lowercase().starts_with(&prefix))?;
    let mut value = lines[start][prefix.len()..].to_string();
    for cont in lines[start + 1..]
        .iter()
        .take_while(|l| l.starts_with([' ', '\t']))
    {
        value.push_str(cont);
    }
    Some(value.trim().to_string())
}

/// An address header's value without its quoted strings and encoded words: what is left is the
/// syntax a mail client reads addresses from.
fn bare_syntax(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    loop {
        let quote = rest.find('"');
        let word = rest.find("=?");
        match (quote, word) {
            (Some(q), w) if w.is_none_or(|w| q < w) => {
                out.push_str(&rest[..q]);
                let mut escaped = false;
                let mut end = rest.len();
                for (i, c) in rest[q + 1..].char_indices() {
                    match c {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => {
                            end = q + 1 + i + 1;
                            break;
                        }
                        _ => {}
                    }
                }
                rest = &rest[end..];
            }
            (_, Some(w)) => {
                out.push_str(&rest[..w]);
                let end = rest[w + 2..]
                    .find("?=")
                    .map_or(rest.len(), |i| w + 2 + i + 2);
                rest = &rest[end..];
            }
            _ => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

/// The field names exactly one mailbox: `addr`, or a display name and `<addr>`, where the display
/// name, once its quoted strings and encoded words are set aside, holds no address syntax.
fn check_one_mailbox(lines: &[String], name: &str, addr: &str) -> Result<(), TestCaseError> {
    let value = field(lines, name);
    prop_assert!(value.is_some(), "no {name} in {lines:#?}");
    let value = value.unwrap_or_default();
    let angle = format!("<{addr}>");
    let display = if value == addr {
        Some("")
    } else {
        value.strip_suffix(&angle)
    };
    prop_assert!(
        display.is_some(),
        "{name}: {value:?} is neither {addr} nor a name and {angle}"
    );
    let bare = bare_syntax(display.unwrap_or_default());
    prop_assert!(
        !bare.contains(['@', ',', ';', ':', '<', '>', '"']),
        "{name}: {value:?} holds address syntax outside quotes: {bare:?}"
    );
    Ok(())
}

fn check_message(raw: &[u8], job_id: &JobId) -> Result<(), TestCaseError> {
    let lines = header_lines(raw)?;
    let mut seen: Vec<String> = Vec::new();
    for line in &lines {
        if line.starts_with([' ', '\t']) {
            prop_assert!(!seen.is_empty(), "the block starts with a continuation");
            continue;
        }
        let name = line.split_once(':').map(|(n, _)| n.to_ascii_lowercase());
        prop_assert!(name.is_some(), "header line without a colon: {line:?}");
        let name = name.unwrap_or_default();
        prop_assert!(
            OUR_HEADERS.contains(&name.as_str()),
            "injected header line {line:?} in {lines:#?}"
        );
        seen.push(name);
    }
    for once in ["from", "to", "subject", "message-id", "x-herald-job-id"] {
        let n = seen.iter().filter(|s| *s == once).count();
        prop_assert_eq!(n, 1, "{} appears {} times in {:#?}", once, n, lines);
    }
    let job_line = format!("X-Herald-Job-Id: {job_id}");
    prop_assert!(lines.contains(&job_line), "{lines:#?}");
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn header_safe_output_has_no_control_characters(s in hostile()) {
        let out = header_safe(&s);
        prop_assert!(!out.chars().any(char::is_control), "{out:?}");
        prop_assert!(!out.contains("  ") && out.trim() == out, "{out:?}");
        prop_assert_eq!(header_safe(&out), out.clone(), "not idempotent");
    }

    #[test]
    fn composed_messages_carry_only_our_headers(
        from in from_mailbox(),
        to_name in prop::option::of(hostile()),
        to_email in address(),
        job_id in job_id(),
        email in rendered(),
    ) {
        let mid = message_id(&job_id, "herald.test");
        let Ok(msg) = compose(&from, to_name.as_deref(), &to_email, &mid, &job_id, &email) else {
            // A recipient that does not parse is refused; everything else must compose.
            prop_assert!(to_email.parse::<Address>().is_err(), "{to_email:?} parses");
            return Ok(());
        };
        let raw = msg.formatted();
        check_message(&raw, &job_id)?;
        let lines = header_lines(&raw)?;
        check_one_mailbox(&lines, "to", &to_email)?;
        check_one_mailbox(&lines, "from", from.email.as_ref())?;
        // Subjects and names are cut (see compose::MAX_SUBJECT_CHARS), so no header line can
        // exceed RFC 5322's 998-octet limit, however long the words.
        for line in &lines {
            prop_assert!(line.len() <= 998, "a {}-byte header line", line.len());
        }
        let head = String::from_utf8_lossy(&raw);
        let mid_line = format!("Message-ID: {mid}");
        prop_assert!(head.contains(&mid_line), "{head}");
    }
}

/// The header checks are not vacuous: an injected line or a second recipient is caught.
#[test]
fn the_header_checks_catch_injection() {
    let id = JobId::parse("job-1").expect("valid id");
    let head = "From: a@b.test\r\nTo: t@x.test\r\nSubject: s\r\nMessage-ID: <job-1@h.test>\r\n\
                X-Herald-Job-Id: job-1\r\n";
    let clean = format!("{head}\r\nbody");
    check_message(clean.as_bytes(), &id).expect("a clean message passes");
    let injected = format!("{head}Bcc: victim@evil.test\r\n\r\nbody");
    assert!(check_message(injected.as_bytes(), &id).is_err());
    let lines = header_lines(clean.as_bytes()).expect("a header block");
    check_one_mailbox(&lines, "to", "t@x.test").expect("one mailbox");
    for to in [
        "To: v@evil.test, t@x.test",
        "To: Eve <v@evil.test>, <t@x.test>",
        "To: \"Eve\" v@evil.test <t@x.test>",
    ] {
        let lines: Vec<String> = vec![to.to_string()];
        assert!(check_one_mailbox(&lines, "to", "t@x.test").is_err(), "{to}");
    }
    let quoted = vec!["To: \"v@evil.test, Eve\" <t@x.test>".to_string()];
    check_one_mailbox(&quoted, "to", "t@x.test").expect("quoted specials are a name");
}
