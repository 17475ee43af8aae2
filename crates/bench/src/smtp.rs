//! Phase 5, the one-connection SMTP rate: how many messages a single pooled
//! [`herald_smtp::Mailer`] connection gets accepted per second, one after the other. The
//! `smtp_rate` example uses it too.

use std::time::{Duration, Instant};

use anyhow::Context;
use herald_smtp::{Mailer, MailerOptions};
use lettre::Message;
use lettre::message::MultiPart;

/// Messages accepted over one connection and how long they took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnectionRate {
    pub messages: usize,
    /// From the first MAIL FROM to the last 250, the connection already open.
    pub elapsed: Duration,
}

impl ConnectionRate {
    pub fn per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// A multipart (text and HTML) message numbered `n`, with Message-ID `<bench-{n}@herald.test>`
/// and an HTML part padded to about `html_bytes` (at least a short paragraph), so a measurement
/// can use the size of the emails Herald really sends.
///
/// # Panics
/// Never: every part is a valid constant.
pub fn sample_message(n: usize, html_bytes: usize) -> Message {
    let mut html = format!("<p>Your code is <b>{n}</b>.</p>");
    while html.len() < html_bytes {
        html.push_str("<p style=\"margin:0 0 16px;color:#334155\">Herald benchmark filler.</p>\n");
    }
    Message::builder()
        .from(
            "Herald <noreply@herald.test>"
                .parse()
                .expect("valid address"),
        )
        .to("bench@example.org".parse().expect("valid address"))
        .subject(format!("Your code {n}"))
        .message_id(Some(format!("<bench-{n}@herald.test>")))
        .multipart(MultiPart::alternative_plain_html(
            format!("Your code is {n}."),
            html,
        ))
        .expect("valid message")
}

/// Sends `count` [`sample_message`]s of about `html_bytes` one after the other over one pooled
/// connection to `smtp_url` (opened and checked with NOOP before the clock starts).
pub async fn one_connection_rate(
    smtp_url: &str,
    count: usize,
    html_bytes: usize,
) -> anyhow::Result<ConnectionRate> {
    let messages: Vec<Message> = (0..count).map(|n| sample_message(n, html_bytes)).collect();
    let mailer = Mailer::from_url(
        smtp_url,
        MailerOptions {
            pool_size: 1,
            ..MailerOptions::default()
        },
    )
    .context("the SMTP URL is not usable")?;
    mailer
        .check()
        .await
        .context("connecting to the SMTP server")?;
    let start = Instant::now();
    for message in &messages {
        mailer
            .send(message)
            .await
            .context("sending to the SMTP server")?;
    }
    let elapsed = start.elapsed();
    mailer.close().await;
    Ok(ConnectionRate {
        messages: count,
        elapsed,
    })
}
