//! The accept loop and the state every session shares: captured mail, counters, faults, outbox.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::faults::{Fault, FaultPlan, FaultStage};
use crate::{Acceptance, CapturedMail, SinkOptions, session};

/// State shared by the [`crate::MailSink`] handle and every session.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) options: SinkOptions,
    messages: Mutex<Vec<CapturedMail>>,
    acceptances: Mutex<Vec<Acceptance>>,
    /// The number of accepted messages; a watch so `wait_for` wakes without polling.
    pub(crate) captured: watch::Sender<usize>,
    sequence: AtomicU64,
    faults: Mutex<FaultPlan>,
    rejected: AtomicUsize,
    connections_total: AtomicUsize,
    connections_open: AtomicUsize,
    /// Bumped by `disconnect_all`; sessions waiting for a command close when it changes.
    pub(crate) kick: watch::Sender<u64>,
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves the data consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn new(options: SinkOptions) -> Self {
        Self {
            options,
            messages: Mutex::new(Vec::new()),
            acceptances: Mutex::new(Vec::new()),
            captured: watch::Sender::new(0),
            sequence: AtomicU64::new(0),
            faults: Mutex::new(FaultPlan::none()),
            rejected: AtomicUsize::new(0),
            connections_total: AtomicUsize::new(0),
            connections_open: AtomicUsize::new(0),
            kick: watch::Sender::new(0),
        }
    }

    pub(crate) fn messages(&self) -> Vec<CapturedMail> {
        lock(&self.messages).clone()
    }

    pub(crate) fn take_acceptances(&self) -> Vec<Acceptance> {
        std::mem::take(&mut *lock(&self.acceptances))
    }

    pub(crate) fn set_faults(&self, plan: FaultPlan) {
        *lock(&self.faults) = plan;
    }

    /// Asks the fault plan whether it fires at `stage`; counts the rejection if it does.
    pub(crate) fn fault<'a>(
        &self,
        stage: FaultStage,
        recipients: impl Iterator<Item = &'a str>,
    ) -> Option<Fault> {
        let fault = lock(&self.faults).fire(stage, recipients)?;
        if !matches!(fault.action, crate::FaultAction::Accept) {
            self.rejected.fetch_add(1, Ordering::Relaxed);
        }
        Some(fault)
    }

    pub(crate) fn rejected(&self) -> usize {
        self.rejected.load(Ordering::Relaxed)
    }

    pub(crate) fn connections_total(&self) -> usize {
        self.connections_total.load(Ordering::Relaxed)
    }

    pub(crate) fn connections_open(&self) -> usize {
        self.connections_open.load(Ordering::Relaxed)
    }

    pub(crate) fn disconnect_all(&self) {
        self.kick.send_modify(|generation| *generation += 1);
    }

    /// Stores an accepted message: writes the outbox file (if any), then records it.
    /// Returns the sequence number for the 250 reply.
    pub(crate) async fn store(
        &self,
        mail_from: String,
        rcpt_to: Vec<String>,
        data: Vec<u8>,
    ) -> std::io::Result<u64> {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed) + 1;
        let path = match &self.options.outbox_dir {
            Some(dir) => Some(write_eml(dir, sequence, &data).await?),
            None => None,
        };
        if let Some(path) = &path {
            tracing::debug!(path = %path.display(), "Mail sink wrote a message to its outbox.");
        }
        if self.options.record_acceptances {
            let acceptance = Acceptance {
                message_id: find_message_id(&data).map(|id| id.trim().to_owned()),
                bytes: data.len(),
                at: Instant::now(),
            };
            lock(&self.acceptances).push(acceptance);
        }
        if self.options.keep_in_memory {
            lock(&self.messages).push(CapturedMail {
                mail_from,
                rcpt_to,
                data,
                path,
            });
        }
        self.captured.send_modify(|count| *count += 1);
        Ok(sequence)
    }
}

/// Writes `data` to `<dir>/<sequence:06>-<message-id>.eml` through a temporary file, so a reader
/// never sees half a message.
async fn write_eml(dir: &Path, sequence: u64, data: &[u8]) -> std::io::Result<PathBuf> {
    let name = format!(
        "{sequence:06}-{}.eml",
        herald_domain::eml_file_stem(find_message_id(data).as_deref())
    );
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&tmp, data).await?;
    tokio::fs::rename(&tmp, &path).await?;
    Ok(path)
}

/// The raw value of the first Message-ID header in the header section, unfolded.
pub(crate) fn find_message_id(data: &[u8]) -> Option<String> {
    let mut lines = data.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None; // end of the header section
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon]
            .trim_ascii()
            .eq_ignore_ascii_case(b"message-id")
        {
            continue;
        }
        let mut value = String::from_utf8_lossy(&line[colon + 1..]).into_owned();
        while let Some(next) = lines.peek() {
            if !next.starts_with(b" ") && !next.starts_with(b"\t") {
                break;
            }
            let next = next.strip_suffix(b"\r").unwrap_or(next);
            value.push_str(&String::from_utf8_lossy(next));
            lines.next();
        }
        return Some(value);
    }
    None
}

/// Accepts connections until the task is aborted; aborting drops the `JoinSet`, which aborts
/// every session, so stopping the sink closes all of its sockets.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    shared.connections_total.fetch_add(1, Ordering::Relaxed);
                    let shared = Arc::clone(&shared);
                    sessions.spawn(async move {
                        let _open = OpenGuard::new(&shared.connections_open);
                        if let Err(error) = session::run(stream, &shared).await {
                            tracing::debug!(%peer, %error, "Mail sink session ended with an I/O error.");
                        }
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off a little rather than spin.
                    tracing::warn!(%error, "Mail sink could not accept a connection.");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

/// Counts an open connection for as long as it lives.
struct OpenGuard<'a>(&'a AtomicUsize);

impl<'a> OpenGuard<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self(counter)
    }
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_is_found_case_insensitively_and_unfolded() {
        let data = b"Subject: x\r\nmessage-ID:\r\n <a.b@c>\r\n\r\nMessage-ID: <body@x>\r\n";
        assert_eq!(
            find_message_id(data).as_deref().map(str::trim),
            Some("<a.b@c>")
        );
        assert_eq!(
            find_message_id(b"Subject: x\r\n\r\nMessage-ID: <b>\r\n"),
            None
        );
    }
}
