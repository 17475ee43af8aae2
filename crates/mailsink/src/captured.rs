//! A captured message (envelope plus raw bytes) and its parsed view for assertions.

use std::path::PathBuf;
use std::time::Instant;

use mail_parser::{Address, MessageParser, MimeHeaders, PartType};

/// One message the sink accepted: the SMTP envelope and the bytes after DATA, dot-unstuffed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedMail {
    /// The reverse path from `MAIL FROM`, without angle brackets; empty for the null sender `<>`.
    pub mail_from: String,
    /// The forward paths from each accepted `RCPT TO`, without angle brackets, in order.
    pub rcpt_to: Vec<String>,
    /// The message as transferred, ending with the CRLF before the terminating dot.
    pub data: Vec<u8>,
    /// The `.eml` file written before the 250 reply, when the sink has an outbox directory.
    pub path: Option<PathBuf>,
}

/// What the sink remembers of an accepted message when it records acceptances only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acceptance {
    /// The Message-ID header as written (e.g. `<job_1@id.example.com>`), trimmed; `None` when
    /// the message has none.
    pub message_id: Option<String>,
    /// The size of the message, in bytes after dot-unstuffing.
    pub bytes: usize,
    /// When the message was stored, just before its 250 reply was written.
    pub at: Instant,
}

impl CapturedMail {
    /// Parses the message with `mail-parser`. Never fails: an unparseable message gives a view
    /// in which every accessor returns `None` or an empty list.
    pub fn parsed(&self) -> ParsedMail {
        ParsedMail::parse(&self.data)
    }

    /// The message as (lossy) UTF-8 text, handy in assertion messages.
    pub fn data_lossy(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// An owned, decoded view of a captured message's top-level headers and first text bodies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedMail {
    headers: Vec<(String, String)>,
    subject: Option<String>,
    message_id: Option<String>,
    from: Vec<Mailbox>,
    to: Vec<Mailbox>,
    cc: Vec<Mailbox>,
    content_type: Option<String>,
    html: Option<String>,
    text: Option<String>,
    attachments: Vec<Attachment>,
}

/// A mailbox from an address header: the display name (decoded) and the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The decoded display name, if any.
    pub name: Option<String>,
    /// The address, e.g. `ana@example.com`.
    pub address: String,
}

/// An attachment part: its file name, content type and decoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file name from Content-Disposition or Content-Type, if any.
    pub name: Option<String>,
    /// `type/subtype`, lower case.
    pub content_type: Option<String>,
    /// The decoded contents.
    pub contents: Vec<u8>,
}

impl ParsedMail {
    /// Parses raw message bytes; see [`CapturedMail::parsed`].
    pub fn parse(data: &[u8]) -> Self {
        let Some(message) = MessageParser::default().parse(data) else {
            return Self::default();
        };
        let headers = message
            .headers_raw()
            .map(|(name, value)| (name.to_owned(), unfold(value)))
            .collect();
        let root = message.root_part();
        let content_type = root.content_type().map(|ct| {
            match ct.subtype() {
                Some(sub) => format!("{}/{}", ct.ctype(), sub),
                None => ct.ctype().to_owned(),
            }
            .to_ascii_lowercase()
        });
        // mail-parser lists a text part under html_body when there is no HTML alternative (and the
        // reverse), converting it on access. Tests must see which parts really exist, so only a
        // part whose own type matches counts.
        let html = message.html_bodies().find_map(|part| match &part.body {
            PartType::Html(html) => Some(html.to_string()),
            _ => None,
        });
        let text = message.text_bodies().find_map(|part| match &part.body {
            PartType::Text(text) => Some(text.to_string()),
            _ => None,
        });
        let attachments = message
            .attachments()
            .map(|part| Attachment {
                name: part.attachment_name().map(str::to_owned),
                content_type: part.content_type().map(|ct| {
                    match ct.subtype() {
                        Some(sub) => format!("{}/{}", ct.ctype(), sub),
                        None => ct.ctype().to_owned(),
                    }
                    .to_ascii_lowercase()
                }),
                contents: part.contents().to_vec(),
            })
            .collect();
        Self {
            headers,
            subject: message.subject().map(str::to_owned),
            message_id: message.message_id().map(str::to_owned),
            from: mailboxes(message.from()),
            to: mailboxes(message.to()),
            cc: mailboxes(message.cc()),
            content_type,
            html,
            text,
            attachments,
        }
    }

    /// The decoded Subject.
    pub fn subject(&self) -> Option<String> {
        self.subject.clone()
    }

    /// The decoded HTML body of the first `text/html` body part.
    pub fn html(&self) -> Option<String> {
        self.html.clone()
    }

    /// The decoded text of the first `text/plain` body part.
    pub fn text(&self) -> Option<String> {
        self.text.clone()
    }

    /// The Message-ID without angle brackets.
    pub fn message_id(&self) -> Option<String> {
        self.message_id.clone()
    }

    /// The first top-level header called `name` (case-insensitive): its raw, undecoded value,
    /// unfolded and trimmed.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    /// Every top-level header called `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// All top-level headers as (name, raw unfolded value) pairs, in order.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first From address.
    pub fn from(&self) -> Option<String> {
        self.from.first().map(|m| m.address.clone())
    }

    /// The From mailboxes with display names.
    pub fn from_mailboxes(&self) -> &[Mailbox] {
        &self.from
    }

    /// The To addresses.
    pub fn to(&self) -> Vec<String> {
        self.to.iter().map(|m| m.address.clone()).collect()
    }

    /// The To mailboxes with display names.
    pub fn to_mailboxes(&self) -> &[Mailbox] {
        &self.to
    }

    /// The Cc addresses.
    pub fn cc(&self) -> Vec<String> {
        self.cc.iter().map(|m| m.address.clone()).collect()
    }

    /// `type/subtype` of the top-level part, lower case, e.g. `multipart/alternative`.
    pub fn content_type(&self) -> Option<String> {
        self.content_type.clone()
    }

    /// The attachment parts.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }
}

fn mailboxes(address: Option<&Address<'_>>) -> Vec<Mailbox> {
    address
        .map(|a| {
            a.iter()
                .filter_map(|addr| {
                    Some(Mailbox {
                        name: addr.name().map(str::to_owned),
                        address: addr.address()?.to_owned(),
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the CRLF of folded header lines (RFC 5322 §2.2.3) and trims the ends.
fn unfold(value: &str) -> String {
    value
        .replace("\r\n", "")
        .replace('\n', "")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTIPART: &str = "From: Ana <ana@example.com>\r\n\
        To: bo@example.org\r\n\
        Subject: =?utf-8?q?Ol=C3=A1?=\r\n\
        Message-ID: <abc@herald>\r\n\
        List-Unsubscribe: <https://example.com/u?x=1>,\r\n <mailto:u@example.com>\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/alternative; boundary=\"b\"\r\n\
        \r\n\
        --b\r\n\
        Content-Type: text/plain; charset=utf-8\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\
        \r\n\
        Ol=C3=A1 mundo\r\n\
        --b\r\n\
        Content-Type: text/html; charset=utf-8\r\n\
        Content-Transfer-Encoding: base64\r\n\
        \r\n\
        PHA+T2zDoTwvcD4=\r\n\
        --b--\r\n";

    #[test]
    fn parsed_decodes_subject_and_both_bodies() {
        let mail = ParsedMail::parse(MULTIPART.as_bytes());
        assert_eq!(mail.subject().as_deref(), Some("Olá"));
        assert_eq!(mail.text().as_deref().map(str::trim_end), Some("Olá mundo"));
        assert_eq!(mail.html().as_deref(), Some("<p>Olá</p>"));
        assert_eq!(mail.message_id().as_deref(), Some("abc@herald"));
        assert_eq!(mail.from().as_deref(), Some("ana@example.com"));
        assert_eq!(mail.from_mailboxes()[0].name.as_deref(), Some("Ana"));
        assert_eq!(mail.to(), vec!["bo@example.org"]);
        assert_eq!(
            mail.content_type().as_deref(),
            Some("multipart/alternative")
        );
        assert_eq!(
            mail.header("list-unsubscribe").as_deref(),
            Some("<https://example.com/u?x=1>, <mailto:u@example.com>")
        );
    }

    #[test]
    fn a_text_only_message_has_no_html() {
        let mail = ParsedMail::parse(b"Subject: hi\r\n\r\nplain body\r\n");
        assert_eq!(mail.html(), None);
        assert_eq!(
            mail.text().as_deref().map(str::trim_end),
            Some("plain body")
        );
    }

    #[test]
    fn garbage_parses_to_an_empty_view_without_panicking() {
        let mail = ParsedMail::parse(b"");
        assert_eq!(mail.subject(), None);
        let mail = ParsedMail::parse(&[0xff, 0x00, b'\n', b'\n', 0x80]);
        assert_eq!(mail.html(), None);
    }
}
