//! `herald-mailsink`: a small async SMTP server that captures mail, with fault injection.
//!
//! It is Herald's demo outbox (`herald demo` runs it when no SMTP server is configured), the sink
//! of the integration tests and the benchmark's sink. It speaks enough ESMTP for lettre and
//! most clients: EHLO/HELO, MAIL, RCPT, DATA (dot-unstuffing), RSET, NOOP, VRFY, QUIT,
//! PIPELINING, 8BITMIME, SMTPUTF8, SIZE and, when credentials are set, AUTH PLAIN and LOGIN.
//! There is no STARTTLS: it listens on loopback for trusted local clients.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! let sink = herald_mailsink::MailSink::start().await?;
//! // ... point a client at sink.url() ...
//! let mails = sink.wait_for(1, Duration::from_secs(5)).await;
//! assert_eq!(mails[0].parsed().subject().as_deref(), Some("Hello"));
//! # Ok(()) }
//! ```

mod captured;
mod faults;
mod server;
mod session;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use captured::{Acceptance, Attachment, CapturedMail, Mailbox, ParsedMail};
pub use faults::{FaultAction, FaultPlan, FaultStage};

use server::Shared;

/// The largest message the sink accepts (advertised with SIZE); larger ones get a 552.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How to run a [`MailSink`].
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// Where to listen; `None` means `127.0.0.1:0` (a free port).
    pub addr: Option<SocketAddr>,
    /// When set, every accepted message is written to
    /// `<outbox_dir>/<sequence:06>-<sanitized message-id or "nomsgid">.eml` before the 250 reply.
    /// The directory is created if missing.
    pub outbox_dir: Option<PathBuf>,
    /// When set, MAIL requires a successful `AUTH PLAIN` or `AUTH LOGIN` with this user and
    /// password first.
    pub credentials: Option<(String, String)>,
    /// Keep captured messages in memory for [`MailSink::messages`]. Defaults to `true`; a
    /// benchmark turns it off so memory stays flat (counts are kept either way).
    pub keep_in_memory: bool,
    /// Record an [`Acceptance`] (Message-ID, size, and the instant of the 250 reply) per accepted
    /// message, for [`MailSink::take_acceptances`]. A few dozen bytes a message instead of the
    /// whole message: what a benchmark needs to measure delivery latency. Defaults to `false`.
    pub record_acceptances: bool,
}

impl Default for SinkOptions {
    fn default() -> Self {
        Self {
            addr: None,
            outbox_dir: None,
            credentials: None,
            keep_in_memory: true,
            record_acceptances: false,
        }
    }
}

/// A running SMTP capture server. Dropping it, or calling [`MailSink::stop`], closes the
/// listener and every open connection.
pub struct MailSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MailSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailSink")
            .field("addr", &self.addr)
            .field("outbox_dir", &self.shared.options.outbox_dir)
            .field("captured", &self.count())
            .finish_non_exhaustive()
    }
}

impl MailSink {
    /// Starts a sink on `127.0.0.1:0` that keeps messages in memory only.
    pub async fn start() -> std::io::Result<MailSink> {
        Self::start_with(SinkOptions::default()).await
    }

    /// Starts a sink with `opts`. Fails if the address cannot be bound or the outbox directory
    /// cannot be created.
    pub async fn start_with(opts: SinkOptions) -> std::io::Result<MailSink> {
        if let Some(dir) = &opts.outbox_dir {
            tokio::fs::create_dir_all(dir).await?;
        }
        let bind = opts
            .addr
            .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(opts));
        let task = tokio::spawn(server::accept_loop(listener, Arc::clone(&shared)));
        tracing::debug!(%addr, "Mail sink is listening.");
        Ok(MailSink {
            addr,
            shared,
            task: Some(task),
        })
    }

    /// The address the sink listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `smtp://IP:PORT`, ready for `HERALD_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The messages captured so far, in the order they were accepted (empty when
    /// `keep_in_memory` is off).
    pub fn messages(&self) -> Vec<CapturedMail> {
        self.shared.messages()
    }

    /// Takes the acceptances recorded since the last call, in the order of their 250 replies
    /// (always empty unless [`SinkOptions::record_acceptances`] is set).
    pub fn take_acceptances(&self) -> Vec<Acceptance> {
        self.shared.take_acceptances()
    }

    /// How many messages were accepted (answered 250 after DATA).
    pub fn count(&self) -> usize {
        *self.shared.captured.borrow()
    }

    /// Waits until at least `n` messages were accepted, or `timeout` passed, and returns the
    /// messages captured by then (check the length: it is less than `n` on timeout).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<CapturedMail> {
        let mut rx = self.shared.captured.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|count| *count >= n)).await;
        self.messages()
    }

    /// Replaces the fault plan; it applies to transactions from now on.
    pub fn set_faults(&self, plan: FaultPlan) {
        self.shared.set_faults(plan);
    }

    /// How many replies the fault plan turned into rejections or disconnects.
    pub fn transactions_rejected(&self) -> usize {
        self.shared.rejected()
    }

    /// How many TCP connections the sink has accepted since it started.
    pub fn connections(&self) -> usize {
        self.shared.connections_total()
    }

    /// How many connections are open right now.
    pub fn open_connections(&self) -> usize {
        self.shared.connections_open()
    }

    /// Closes every open connection without a reply, as a server dropping idle clients would.
    /// The listener stays up.
    pub fn disconnect_all(&self) {
        self.shared.disconnect_all();
    }

    /// Stops accepting, closes every connection and waits until the server task has ended.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
