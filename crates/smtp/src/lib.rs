//! `herald-smtp`: Herald's outgoing mail transport, configured by `HERALD_SMTP_URL`.
//!
//! A [`Mailer`] delivers a built [`lettre::Message`] either over SMTP, through its own pool of
//! lettre sessions on TCP_NODELAY sockets (lettre's pooled transport stalls ~40 ms per message
//! without it), or into a directory of `.eml` files for local development.
//!
//! URL conventions (those of lettre's `from_url`):
//!
//! | URL | security | default port |
//! |---|---|---|
//! | `smtp://host` | none | 25 |
//! | `smtp://host?tls=opportunistic` | STARTTLS if offered | 587 |
//! | `smtp://host?tls=required` | STARTTLS or fail | 587 |
//! | `smtps://host` | implicit TLS | 465 |
//! | `file:///abs/dir` | no network: writes `<dir>/<unix_ms>-<message-id>.eml` | |
//!
//! `user:password@` (percent-encoded) enables AUTH PLAIN/LOGIN. To a host that is not loopback
//! it needs `smtps://` or `?tls=required`, unless `MailerOptions::allow_plaintext_auth` says
//! otherwise: plain text or opportunistic STARTTLS would show the password to anyone on the
//! path. A path names the EHLO client
//! (`smtp://host/mx.example.com`) unless `MailerOptions::hello_name` does. TLS verifies the
//! server against the webpki (Mozilla) roots.

mod config;
mod connection;
mod error;
mod outbox;
mod pool;

use std::path::PathBuf;
use std::sync::Arc;

use lettre::Message;

pub use config::{ConfigError, Destination, MailerOptions, check_url};
pub use error::{FailureClass, FailureKind, SendError, Stage, classify};

use config::Target;
use pool::Pool;

/// What happened to a message that was handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// The SMTP server accepted it; `reply` is its final reply, e.g. `250 2.0.0 Ok: queued`.
    Smtp {
        /// The reply code and text.
        reply: String,
    },
    /// It was written to the file outbox.
    File {
        /// The `.eml` file.
        path: PathBuf,
    },
}

/// Herald's mail transport. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

enum Inner {
    Smtp(Arc<Pool>),
    File(PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("target", &self.describe())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Builds a mailer from an SMTP URL (see the crate docs for the conventions). Nothing is
    /// connected yet; call [`Mailer::check`] for that. Errors are sentences naming what is wrong
    /// with the URL, with any password masked.
    pub fn from_url(url: &str, opts: MailerOptions) -> Result<Mailer, ConfigError> {
        let inner = match config::parse(url, &opts)? {
            Target::Smtp(target) => Inner::Smtp(Arc::new(Pool::new(target, &opts))),
            Target::File(dir) => Inner::File(dir),
        };
        Ok(Mailer {
            inner: Arc::new(inner),
        })
    }

    /// Delivers `message` to its envelope's recipients (lettre derives the envelope from the
    /// From/To/Cc/Bcc headers). Over SMTP it reuses a pooled connection; a pooled connection
    /// found dead at MAIL FROM is replaced and the send retried once. A refused recipient fails
    /// the whole message, so send one message per recipient.
    pub async fn send(&self, message: &Message) -> Result<Delivered, SendError> {
        match &*self.inner {
            Inner::File(dir) => {
                let path = outbox::write(dir, message).await?;
                tracing::debug!(path = %path.display(), "Wrote a message to the file outbox.");
                Ok(Delivered::File { path })
            }
            Inner::Smtp(pool) => {
                let response = pool.send(message.envelope(), &message.formatted()).await?;
                let text: Vec<&str> = response.message().collect();
                Ok(Delivered::Smtp {
                    reply: format!("{} {}", response.code(), text.join(" ")),
                })
            }
        }
    }

    /// A readiness probe: takes a pooled connection (or opens one) and sends NOOP. For the
    /// file outbox, creates the directory and checks it is a writable directory.
    pub async fn check(&self) -> Result<(), SendError> {
        match &*self.inner {
            Inner::Smtp(pool) => pool.check().await,
            Inner::File(dir) => {
                let error = |source| SendError::File {
                    path: dir.clone(),
                    source,
                };
                tokio::fs::create_dir_all(dir).await.map_err(error)?;
                let metadata = tokio::fs::metadata(dir).await.map_err(error)?;
                if metadata.permissions().readonly() {
                    return Err(error(std::io::Error::from(
                        std::io::ErrorKind::PermissionDenied,
                    )));
                }
                Ok(())
            }
        }
    }

    /// The target without secrets, e.g. `smtp://127.0.0.1:2525 (pool 8)`.
    pub fn describe(&self) -> String {
        match &*self.inner {
            Inner::Smtp(pool) => format!("{} (pool {})", pool.target.display, pool.size),
            Inner::File(dir) => format!("file://{}", dir.display()),
        }
    }

    /// Connections currently lent to senders.
    pub fn in_use(&self) -> usize {
        match &*self.inner {
            Inner::Smtp(pool) => pool.in_use(),
            Inner::File(_) => 0,
        }
    }

    /// Idle pooled connections.
    pub fn idle(&self) -> usize {
        match &*self.inner {
            Inner::Smtp(pool) => pool.idle(),
            Inner::File(_) => 0,
        }
    }

    /// Sends QUIT on the idle connections and closes them, for a graceful shutdown. Sends
    /// still in flight keep their connections.
    pub async fn close(&self) {
        if let Inner::Smtp(pool) = &*self.inner {
            pool.close().await;
        }
    }
}
