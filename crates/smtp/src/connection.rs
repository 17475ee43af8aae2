//! Opening SMTP sessions on TCP_NODELAY sockets (plain, STARTTLS, implicit TLS) and running one
//! mail transaction on them.
//!
//! lettre's own transport opens its sockets without TCP_NODELAY. It writes the message body and
//! the final `CRLF.CRLF` in two writes, so Nagle's algorithm holds the second write until the
//! server's delayed ACK arrives: about 40 ms per message on loopback. Here every socket is ours,
//! with NODELAY set, and is handed to lettre through `connect_with_transport`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream};
use lettre::transport::smtp::commands::{Data, Mail, Noop, Rcpt, Rset};
use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};

use crate::config::{Security, SmtpTarget};
use crate::error::{SendError, Stage};

/// The mechanisms tried, in order; lettre's default set.
const MECHANISMS: &[Mechanism] = &[Mechanism::Plain, Mechanism::Login];

/// Builds the rustls client configuration for `smtps://`: ring, the webpki (Mozilla) roots.
pub(crate) fn implicit_tls_config() -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A TLS stream over a NODELAY TCP socket, in the shape lettre accepts.
#[derive(Debug)]
struct TlsTcpStream(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for TlsTcpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsTcpStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsTcpStream {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// Runs `future` with the per-step limit, naming the step on timeout.
async fn step<T>(
    target: &SmtpTarget,
    stage: Stage,
    timeout: Duration,
    future: impl Future<Output = Result<T, SendError>>,
) -> Result<T, SendError> {
    tokio::time::timeout(timeout, future)
        .await
        .unwrap_or_else(|_| {
            Err(SendError::Timeout {
                server: target.server.clone(),
                stage,
                timeout,
            })
        })
}

/// Runs a lettre call with the per-step limit, mapping its error to the step.
async fn lettre_step<T>(
    target: &SmtpTarget,
    stage: Stage,
    timeout: Duration,
    future: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, SendError> {
    step(target, stage, timeout, async {
        future
            .await
            .map_err(|error| SendError::from_lettre(&target.server, stage, error))
    })
    .await
}

/// Opens a TCP connection with TCP_NODELAY set: every SMTP socket Herald uses comes from here.
pub(crate) async fn tcp_connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Opens an SMTP session: TCP, TLS as configured, greeting, EHLO, STARTTLS, AUTH.
pub(crate) async fn open(
    target: &SmtpTarget,
    timeout: Duration,
) -> Result<AsyncSmtpConnection, SendError> {
    let tcp = step(target, Stage::Connect, timeout, async {
        tcp_connect(&target.host, target.port)
            .await
            .map_err(|source| SendError::Connect {
                server: target.server.clone(),
                source,
            })
    })
    .await?;

    let stream: Box<dyn AsyncTokioStream> = match (&target.security, &target.implicit_tls) {
        (Security::Implicit, Some(config)) => {
            let tls = step(target, Stage::TlsHandshake, timeout, async {
                let name = ServerName::try_from(target.host.clone()).map_err(|error| {
                    SendError::TlsHandshake {
                        server: target.server.clone(),
                        source: io::Error::new(io::ErrorKind::InvalidInput, error),
                    }
                })?;
                TlsConnector::from(Arc::clone(config))
                    .connect(name, tcp)
                    .await
                    .map_err(|source| SendError::TlsHandshake {
                        server: target.server.clone(),
                        source,
                    })
            })
            .await?;
            Box::new(TlsTcpStream(tls))
        }
        _ => Box::new(tcp),
    };

    let mut conn = lettre_step(
        target,
        Stage::Greeting,
        timeout,
        AsyncSmtpConnection::connect_with_transport(stream, &target.hello),
    )
    .await?;

    let upgrade = match target.security {
        Security::StartTlsRequired => true,
        Security::StartTlsOpportunistic => conn.can_starttls(),
        Security::Plain | Security::Implicit => false,
    };
    if let (true, Some(params)) = (upgrade, &target.starttls) {
        lettre_step(
            target,
            Stage::StartTls,
            timeout,
            conn.starttls(params.clone(), &target.hello),
        )
        .await?;
    }

    if let (Some(user), Some(password)) = (&target.username, &target.password) {
        let credentials = Credentials::new(user.clone(), password.expose_secret().to_owned());
        lettre_step(
            target,
            Stage::Auth,
            timeout,
            conn.auth(MECHANISMS, &credentials),
        )
        .await?;
    }
    tracing::debug!(server = %target.server, encrypted = conn.is_encrypted(), "Opened an SMTP connection.");
    Ok(conn)
}

/// Sends NOOP.
pub(crate) async fn noop(
    conn: &mut AsyncSmtpConnection,
    target: &SmtpTarget,
    timeout: Duration,
) -> Result<(), SendError> {
    lettre_step(target, Stage::Noop, timeout, conn.command(Noop))
        .await
        .map(drop)
}

/// What is left of a connection after a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    /// In a known state, ready for the next transaction.
    Reusable,
    /// Broken, timed out or in an unknown state: close it.
    Discard,
}

/// Runs MAIL FROM, RCPT TO (each recipient), DATA and the message on `conn`.
///
/// Unlike lettre's `send`, which closes the connection on any error, a 4xx/5xx reply is followed
/// by RSET so the connection can serve the next message.
pub(crate) async fn transact(
    conn: &mut AsyncSmtpConnection,
    target: &SmtpTarget,
    timeout: Duration,
    envelope: &Envelope,
    message: &[u8],
) -> (Result<Response, SendError>, After) {
    let result = transaction_steps(conn, target, timeout, envelope, message).await;
    let after = match &result {
        Ok(_) => After::Reusable,
        Err(SendError::Rejected { stage, .. }) => {
            // After the final dot the transaction is over; before it, RSET clears it.
            if *stage == Stage::Message {
                After::Reusable
            } else {
                match tokio::time::timeout(timeout, conn.command(Rset)).await {
                    Ok(Ok(_)) => After::Reusable,
                    _ => After::Discard,
                }
            }
        }
        // Nothing was sent, the session is untouched.
        Err(SendError::Unsupported { .. }) => After::Reusable,
        Err(_) => After::Discard,
    };
    (result, after)
}

async fn transaction_steps(
    conn: &mut AsyncSmtpConnection,
    target: &SmtpTarget,
    timeout: Duration,
    envelope: &Envelope,
    message: &[u8],
) -> Result<Response, SendError> {
    let mut parameters = Vec::new();
    let non_ascii_address = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|address: &Address| !AsRef::<str>::as_ref(address).is_ascii());
    if non_ascii_address {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(SendError::Unsupported {
                server: target.server.clone(),
                reason: "an address is not ASCII and the server does not offer SMTPUTF8",
            });
        }
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !message.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(SendError::Unsupported {
                server: target.server.clone(),
                reason: "the message is not ASCII and the server does not offer 8BITMIME",
            });
        }
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }

    let from = envelope.from().cloned();
    lettre_step(
        target,
        Stage::MailFrom,
        timeout,
        conn.command(Mail::new(from, parameters)),
    )
    .await?;
    for to in envelope.to() {
        lettre_step(
            target,
            Stage::RcptTo,
            timeout,
            conn.command(Rcpt::new(to.clone(), Vec::new())),
        )
        .await?;
    }
    lettre_step(target, Stage::Data, timeout, conn.command(Data)).await?;
    lettre_step(target, Stage::Message, timeout, conn.message(message)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_smtp_socket_has_tcp_nodelay_set() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = tcp_connect("127.0.0.1", port).await.unwrap();
        assert!(
            stream.nodelay().unwrap(),
            "Nagle would stall each message ~40 ms"
        );
    }

    #[test]
    fn the_implicit_tls_config_has_the_webpki_roots() {
        let config = implicit_tls_config().unwrap();
        // rustls shows the verifier's root store only in Debug, as "(N roots)".
        let roots = webpki_roots::TLS_SERVER_ROOTS.len();
        assert!(roots > 100, "the webpki set has {roots} roots");
        let shown = format!("{config:?}");
        assert!(
            shown.contains(&format!("RootCertStore {{ roots: \"({roots} roots)\" }}")),
            "{shown}"
        );
    }

    #[test]
    fn the_implicit_tls_config_uses_ring_with_several_cipher_suites() {
        let config = implicit_tls_config().unwrap();
        let ring = rustls::crypto::ring::default_provider();
        assert_eq!(
            config.crypto_provider().cipher_suites.len(),
            ring.cipher_suites.len()
        );
        assert!(config.crypto_provider().cipher_suites.len() > 1);
    }
}
