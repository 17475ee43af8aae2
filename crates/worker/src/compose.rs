//! Turns a rendered email into a MIME message: multipart/alternative, a stable Message-ID, and
//! headers that cannot be injected into.

use herald_domain::{JobId, TraceParent};
use herald_render::RenderedEmail;
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

/// `<{job id}@{domain}>`: the same for every attempt at a job, so a duplicate is recognizable.
pub fn message_id(job_id: &JobId, domain: &str) -> String {
    format!("<{job_id}@{domain}>")
}

/// Replaces control characters (CR and LF above all) with spaces. Names reach headers only
/// through this, so a hostile display name cannot add a header.
pub fn header_safe(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Header text is capped so that no header line can exceed RFC 5322's 998-octet limit: lettre
/// folds at spaces and inside encoded words, but cannot fold one long ASCII word.
pub const MAX_SUBJECT_CHARS: usize = 250;
pub const MAX_NAME_CHARS: usize = 120;

/// `header_safe`, then cut to `max` characters (marked with an ellipsis).
fn header_text(text: &str, max: usize) -> String {
    let safe = header_safe(text);
    if safe.chars().count() <= max {
        return safe;
    }
    let mut cut: String = safe.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

pub fn compose(
    from: &Mailbox,
    to_name: Option<&str>,
    to_email: &str,
    message_id: &str,
    job_id: &JobId,
    email: &RenderedEmail,
) -> Result<Message, String> {
    compose_traced(from, to_name, to_email, message_id, job_id, email, None)
}

/// [`compose`], plus a `traceparent` header carrying the job's W3C trace context, so mail logs
/// downstream can be joined to the trace of the request that caused the email.
pub fn compose_traced(
    from: &Mailbox,
    to_name: Option<&str>,
    to_email: &str,
    message_id: &str,
    job_id: &JobId,
    email: &RenderedEmail,
    traceparent: Option<&TraceParent>,
) -> Result<Message, String> {
    let to = Mailbox::new(
        to_name
            .map(|n| header_text(n, MAX_NAME_CHARS))
            .filter(|n| !n.is_empty()),
        to_email
            .parse()
            .map_err(|e| format!("recipient {to_email:?}: {e}"))?,
    );
    let from = Mailbox::new(
        from.name.as_deref().map(|n| header_text(n, MAX_NAME_CHARS)),
        from.email.clone(),
    );
    let mut builder = Message::builder();
    if let Some(tp) = traceparent {
        builder = builder.raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("traceparent"),
            tp.to_string(),
        ));
    }
    builder
        .from(from)
        .to(to)
        .subject(header_text(&email.subject, MAX_SUBJECT_CHARS))
        .message_id(Some(message_id.to_string()))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Herald-Job-Id"),
            job_id.to_string(),
        ))
        .multipart(MultiPart::alternative_plain_html(
            email.text.clone(),
            email.html.clone(),
        ))
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(subject: &str) -> RenderedEmail {
        RenderedEmail {
            subject: subject.to_string(),
            html: "<p>Hello</p>".to_string(),
            text: "Hello".to_string(),
        }
    }

    fn formatted(name: Option<&str>, subject: &str) -> String {
        let id = JobId::parse("job-1").unwrap();
        let from: Mailbox = "Acme <no-reply@acme.test>".parse().unwrap();
        let msg = compose(
            &from,
            name,
            "a@example.com",
            &message_id(&id, "herald.test"),
            &id,
            &rendered(subject),
        )
        .unwrap();
        String::from_utf8(msg.formatted()).unwrap()
    }

    #[test]
    fn the_message_is_multipart_alternative_with_a_stable_message_id() {
        let raw = formatted(Some("Ana"), "Verify your email");
        assert!(raw.contains("Message-ID: <job-1@herald.test>"), "{raw}");
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain"));
        assert!(raw.contains("text/html"));
        assert!(raw.contains("X-Herald-Job-Id: job-1"));
    }

    #[test]
    fn crlf_in_names_and_subjects_cannot_add_headers() {
        let raw = formatted(
            Some("Eve\r\nBcc: victim@evil.test"),
            "Hi\r\nBcc: victim@evil.test",
        );
        let headers = raw.split("\r\n\r\n").next().unwrap();
        assert!(
            !headers
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
            "{headers}"
        );
    }

    #[test]
    fn long_subjects_and_names_are_cut_so_header_lines_stay_under_998_octets() {
        let raw = formatted(Some(&"n".repeat(2000)), &"s".repeat(2000));
        let headers = raw.split("\r\n\r\n").next().unwrap();
        assert!(headers.lines().all(|l| l.len() <= 998), "{headers}");
        assert!(
            headers.contains(&format!("{}…", "s".repeat(MAX_SUBJECT_CHARS - 1)))
                || headers.contains("Subject: =?utf-8?")
        );
    }

    #[test]
    fn a_trace_context_is_carried_into_the_headers_when_given() {
        let id = JobId::parse("job-1").unwrap();
        let from: Mailbox = "a@b.test".parse().unwrap();
        let tp =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let msg = compose_traced(
            &from,
            None,
            "x@example.com",
            "<m@x>",
            &id,
            &rendered("s"),
            Some(&tp),
        )
        .unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(
            raw.contains("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            "{raw}"
        );
        assert!(
            !formatted(None, "s")
                .to_ascii_lowercase()
                .contains("traceparent")
        );
    }

    #[test]
    fn a_bad_recipient_is_an_error_not_a_panic() {
        let id = JobId::parse("job-1").unwrap();
        let from: Mailbox = "a@b.test".parse().unwrap();
        assert!(compose(&from, None, "not an address", "<x@y>", &id, &rendered("s")).is_err());
    }
}
