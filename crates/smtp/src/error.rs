//! Send errors and the one place that decides whether a failed send is worth retrying.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Whether retrying a failed send can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// Worth retrying later: the server, the network or our own configuration may recover.
    Transient,
    /// This message will never be accepted as it is: dead-letter it.
    Permanent,
}

/// The step of an SMTP exchange that failed, for error messages and classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Opening the TCP connection.
    Connect,
    /// The implicit-TLS handshake of `smtps://`.
    TlsHandshake,
    /// The server greeting and our EHLO.
    Greeting,
    /// STARTTLS and the EHLO after it.
    StartTls,
    /// AUTH.
    Auth,
    /// MAIL FROM.
    MailFrom,
    /// RCPT TO.
    RcptTo,
    /// The DATA command.
    Data,
    /// The message body and the reply after its final dot.
    Message,
    /// NOOP, as sent by `Mailer::check`.
    Noop,
}

impl Stage {
    /// True for the steps that set a session up, before any message is involved.
    pub fn is_session_setup(self) -> bool {
        matches!(
            self,
            Stage::Connect | Stage::TlsHandshake | Stage::Greeting | Stage::StartTls | Stage::Auth
        )
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "the connection",
            Stage::TlsHandshake => "the TLS handshake",
            Stage::Greeting => "the greeting or EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::MailFrom => "MAIL FROM",
            Stage::RcptTo => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Message => "the message",
            Stage::Noop => "NOOP",
        })
    }
}

/// Why a send (or a readiness check) failed. The server address is named; credentials never are.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The TCP connection could not be opened (refused, unreachable, name not resolved...).
    #[error("could not connect to the SMTP server at {server}")]
    Connect {
        /// `host:port`.
        server: String,
        /// The I/O error from connecting.
        #[source]
        source: std::io::Error,
    },
    /// The implicit-TLS handshake failed.
    #[error("the TLS handshake with the SMTP server at {server} failed")]
    TlsHandshake {
        /// `host:port`.
        server: String,
        /// The error from rustls.
        #[source]
        source: std::io::Error,
    },
    /// The server did not complete a step within `MailerOptions::timeout`.
    #[error("the SMTP server at {server} did not complete {stage} within {timeout:?}")]
    Timeout {
        /// `host:port`.
        server: String,
        /// The step that timed out.
        stage: Stage,
        /// The limit that was exceeded.
        timeout: Duration,
    },
    /// The server answered a step with a 4xx or 5xx reply.
    #[error("the SMTP server at {server} replied to {stage} with {code} {message}")]
    Rejected {
        /// `host:port`.
        server: String,
        /// The step the server refused.
        stage: Stage,
        /// The reply code, e.g. 451 or 550.
        code: u16,
        /// The reply text, lines joined with spaces.
        message: String,
        /// lettre's error for the reply.
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// Any other failure of the SMTP session reported by lettre: a network error, a broken
    /// connection, an unparseable reply, a failed STARTTLS, or a client-side refusal.
    #[error("the SMTP session with {server} failed during {stage}")]
    Session {
        /// `host:port`.
        server: String,
        /// The step that failed.
        stage: Stage,
        /// lettre's error.
        #[source]
        source: lettre::transport::smtp::Error,
    },
    /// The server lacks an extension this message needs (8BITMIME for a non-ASCII body,
    /// SMTPUTF8 for a non-ASCII address).
    #[error("the SMTP server at {server} cannot take this message: {reason}")]
    Unsupported {
        /// `host:port`.
        server: String,
        /// What is missing.
        reason: &'static str,
    },
    /// The file outbox could not be written.
    #[error("could not write the message to the file outbox at {path}")]
    File {
        /// The file or directory involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// What went wrong, reduced to the facts that decide between retrying and dead-lettering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The server replied with `code` at `stage`.
    Reply {
        /// The SMTP reply code.
        code: u16,
        /// The step the reply answered.
        stage: Stage,
    },
    /// The connection could not be opened.
    Connect,
    /// A step timed out.
    Timeout,
    /// TLS failed: the implicit handshake, or STARTTLS.
    Tls,
    /// The connection broke: I/O error, or the server closed it mid-exchange.
    Network,
    /// The server's reply could not be parsed.
    Protocol,
    /// lettre refused on the client side (e.g. no compatible AUTH mechanism, no STARTTLS), or
    /// the server lacks an extension this message needs, at `stage`.
    Client {
        /// The step at which lettre refused.
        stage: Stage,
    },
    /// Writing to the file outbox failed.
    FileIo,
}

/// The classification: the single place that turns a failure into retry or dead-letter.
///
/// - A reply to the mail transaction (MAIL FROM, RCPT TO, DATA, the message) follows its code:
///   4xx is transient, 5xx permanent.
/// - A reply during session setup (greeting, EHLO, STARTTLS, AUTH) is transient whatever its
///   code: a 535 for a wrong password or a 554 greeting is about our configuration or the
///   server, not this message, and dead-lettering every message until an operator notices would
///   lose mail. The retry tiers still dead-letter it in the end.
/// - Connection, network, timeout, TLS and unparseable-reply failures are transient.
/// - A client-side refusal is permanent when it is about the message (no 8BITMIME for a
///   non-ASCII body), transient when it is about the session (no usable AUTH mechanism).
/// - File outbox I/O errors are transient.
pub fn classify(kind: FailureKind) -> FailureClass {
    match kind {
        FailureKind::Reply { stage, .. } if stage.is_session_setup() => FailureClass::Transient,
        FailureKind::Reply {
            code: 500..=599, ..
        } => FailureClass::Permanent,
        FailureKind::Reply { .. } => FailureClass::Transient,
        FailureKind::Client { stage } if stage.is_session_setup() => FailureClass::Transient,
        FailureKind::Client { .. } => FailureClass::Permanent,
        FailureKind::Connect
        | FailureKind::Timeout
        | FailureKind::Tls
        | FailureKind::Network
        | FailureKind::Protocol
        | FailureKind::FileIo => FailureClass::Transient,
    }
}

impl SendError {
    /// Retry or dead-letter; see [`classify`].
    pub fn class(&self) -> FailureClass {
        classify(self.kind())
    }

    /// The SMTP reply code, when the server replied with an error.
    pub fn code(&self) -> Option<u16> {
        match self {
            SendError::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The step that failed, for SMTP errors.
    pub fn stage(&self) -> Option<Stage> {
        match self {
            SendError::Connect { .. } => Some(Stage::Connect),
            SendError::TlsHandshake { .. } => Some(Stage::TlsHandshake),
            SendError::Timeout { stage, .. }
            | SendError::Rejected { stage, .. }
            | SendError::Session { stage, .. } => Some(*stage),
            SendError::Unsupported { .. } => Some(Stage::MailFrom),
            SendError::File { .. } => None,
        }
    }

    /// The failure reduced to what classification needs.
    pub fn kind(&self) -> FailureKind {
        match self {
            SendError::Connect { .. } => FailureKind::Connect,
            SendError::TlsHandshake { .. } => FailureKind::Tls,
            SendError::Timeout { .. } => FailureKind::Timeout,
            SendError::Rejected { code, stage, .. } => FailureKind::Reply {
                code: *code,
                stage: *stage,
            },
            SendError::Session { stage, source, .. } => lettre_kind(source, *stage),
            SendError::Unsupported { .. } => FailureKind::Client {
                stage: Stage::MailFrom,
            },
            SendError::File { .. } => FailureKind::FileIo,
        }
    }

    /// Turns a lettre error at `stage` into a `SendError`.
    pub(crate) fn from_lettre(
        server: &str,
        stage: Stage,
        source: lettre::transport::smtp::Error,
    ) -> Self {
        match source.status() {
            Some(code) => SendError::Rejected {
                server: server.to_owned(),
                stage,
                code: u16::from(code),
                message: reply_text(&source),
                source,
            },
            None => SendError::Session {
                server: server.to_owned(),
                stage,
                source,
            },
        }
    }

    /// True when a pooled connection was evidently dead before the transaction started: the
    /// server had closed it (EOF, reset) or says it is closing it (421). The send is then safe
    /// to repeat on a fresh connection: nothing was accepted.
    pub(crate) fn is_stale_connection(&self) -> bool {
        matches!(
            self.kind(),
            FailureKind::Network | FailureKind::Protocol | FailureKind::Reply { code: 421, .. }
        )
    }
}

/// lettre's error kinds, which it exposes only through predicates.
fn lettre_kind(error: &lettre::transport::smtp::Error, stage: Stage) -> FailureKind {
    if let Some(code) = error.status() {
        FailureKind::Reply {
            code: u16::from(code),
            stage,
        }
    } else if error.is_client() {
        FailureKind::Client { stage }
    } else if error.is_tls() || stage == Stage::StartTls {
        FailureKind::Tls
    } else if error.is_timeout() {
        FailureKind::Timeout
    } else if error.is_response() {
        // lettre reports a connection closed before a full reply ("incomplete response") as a
        // response error; either way the exchange is broken and a retry may well succeed.
        FailureKind::Protocol
    } else {
        FailureKind::Network
    }
}

/// The text of lettre's error for a reply, without its "permanent error (550): " prefix.
fn reply_text(error: &lettre::transport::smtp::Error) -> String {
    let text = error.to_string();
    match text.split_once("): ") {
        Some((_, rest)) => rest.to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::FailureClass::{Permanent, Transient};
    use super::*;

    #[test]
    fn failures_are_classified_by_one_table() {
        let reply = |code, stage| FailureKind::Reply { code, stage };
        let table = [
            (reply(421, Stage::MailFrom), Transient),
            (reply(450, Stage::RcptTo), Transient),
            (reply(451, Stage::Message), Transient),
            (reply(452, Stage::RcptTo), Transient),
            (reply(454, Stage::Data), Transient),
            (reply(550, Stage::RcptTo), Permanent),
            (reply(551, Stage::RcptTo), Permanent),
            (reply(552, Stage::Message), Permanent),
            (reply(553, Stage::MailFrom), Permanent),
            (reply(554, Stage::Message), Permanent),
            (reply(555, Stage::MailFrom), Permanent),
            // Session setup is about us or the server, never about this message.
            (reply(554, Stage::Greeting), Transient),
            (reply(535, Stage::Auth), Transient),
            (reply(530, Stage::Auth), Transient),
            (reply(454, Stage::StartTls), Transient),
            (FailureKind::Connect, Transient),
            (FailureKind::Timeout, Transient),
            (FailureKind::Tls, Transient),
            (FailureKind::Network, Transient),
            (FailureKind::Protocol, Transient),
            (
                FailureKind::Client {
                    stage: Stage::MailFrom,
                },
                Permanent,
            ),
            (
                FailureKind::Client {
                    stage: Stage::RcptTo,
                },
                Permanent,
            ),
            (FailureKind::Client { stage: Stage::Auth }, Transient),
            (
                FailureKind::Client {
                    stage: Stage::StartTls,
                },
                Transient,
            ),
            (FailureKind::FileIo, Transient),
        ];
        for (kind, expected) in table {
            assert_eq!(classify(kind), expected, "{kind:?}");
        }
    }

    #[test]
    fn non_reply_errors_classify_without_a_code() {
        let error = SendError::Connect {
            server: "127.0.0.1:1".to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert_eq!(error.class(), Transient);
        assert_eq!(error.code(), None);
        assert_eq!(
            error.to_string(),
            "could not connect to the SMTP server at 127.0.0.1:1"
        );
        let error = SendError::File {
            path: "/nonexistent/outbox".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert_eq!(error.class(), Transient);
        let error = SendError::Unsupported {
            server: "h:25".to_owned(),
            reason: "no 8BITMIME",
        };
        assert_eq!(error.class(), Permanent);
    }
}
