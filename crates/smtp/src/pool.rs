//! A small pool of SMTP sessions: at most `pool_size` open, idle ones reused newest first and
//! closed once idle longer than `idle_timeout`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::response::Response;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::config::{MailerOptions, SmtpTarget};
use crate::connection::{self, After};
use crate::error::SendError;

/// How long a polite QUIT to a retired connection may take.
const QUIT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(crate) struct Pool {
    pub(crate) target: SmtpTarget,
    pub(crate) size: usize,
    timeout: Duration,
    idle_timeout: Duration,
    /// One permit per connection that may be open; a sender holds one while it has a connection.
    permits: Semaphore,
    /// Idle connections, oldest first.
    idle: Mutex<Vec<IdleConnection>>,
    in_use: AtomicUsize,
    reaper_started: AtomicBool,
}

struct IdleConnection {
    conn: AsyncSmtpConnection,
    since: Instant,
}

impl std::fmt::Debug for IdleConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleConnection")
            .field("since", &self.since)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection lent to one sender. Dropped without [`Lease::release`] (an error, or the send
/// future was cancelled mid-transaction), the connection is closed: its state is unknown.
struct Lease<'a> {
    pool: &'a Pool,
    conn: Option<AsyncSmtpConnection>,
    reused: bool,
    _permit: SemaphorePermit<'a>,
}

impl Lease<'_> {
    fn conn(&mut self) -> &mut AsyncSmtpConnection {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until it is released or dropped")
    }

    /// Returns the connection to the idle list.
    fn release(mut self) {
        if let Some(conn) = self.conn.take() {
            lock(&self.pool.idle).push(IdleConnection {
                conn,
                since: Instant::now(),
            });
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        self.pool.in_use.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Pool {
    pub(crate) fn new(target: SmtpTarget, opts: &MailerOptions) -> Self {
        Self {
            target,
            size: opts.pool_size,
            timeout: opts.timeout,
            idle_timeout: opts.idle_timeout,
            permits: Semaphore::new(opts.pool_size),
            idle: Mutex::new(Vec::new()),
            in_use: AtomicUsize::new(0),
            reaper_started: AtomicBool::new(false),
        }
    }

    pub(crate) fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    pub(crate) fn idle(&self) -> usize {
        lock(&self.idle).len()
    }

    /// Waits for a permit, then takes the newest fresh idle connection or opens one.
    async fn lease(self: &Arc<Self>) -> Result<Lease<'_>, SendError> {
        let permit = self
            .permits
            .acquire()
            .await
            .expect("the pool never closes its semaphore");
        self.in_use.fetch_add(1, Ordering::Relaxed);
        self.start_reaper();
        let mut lease = Lease {
            pool: self,
            conn: None,
            reused: false,
            _permit: permit,
        };
        match self.take_idle() {
            Some(conn) => {
                lease.conn = Some(conn);
                lease.reused = true;
            }
            None => lease.conn = Some(connection::open(&self.target, self.timeout).await?),
        }
        Ok(lease)
    }

    /// Replaces a lease's dead connection with a new one.
    async fn reopen(&self, lease: &mut Lease<'_>) -> Result<(), SendError> {
        lease.conn = None;
        lease.reused = false;
        lease.conn = Some(connection::open(&self.target, self.timeout).await?);
        Ok(())
    }

    /// Removes the idle connections that have outlived `idle_timeout` (the oldest are first).
    fn drain_expired(&self, idle: &mut Vec<IdleConnection>) -> Vec<IdleConnection> {
        let now = Instant::now();
        let stale = idle
            .iter()
            .take_while(|c| now.duration_since(c.since) > self.idle_timeout)
            .count();
        idle.drain(..stale).collect()
    }

    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let (expired, newest) = {
            let mut idle = lock(&self.idle);
            let expired = self.drain_expired(&mut idle);
            (expired, idle.pop())
        };
        for old in expired {
            retire(old.conn);
        }
        newest.map(|c| c.conn)
    }

    /// Closes idle connections that have outlived `idle_timeout`.
    fn reap(&self) {
        let expired = self.drain_expired(&mut lock(&self.idle));
        for old in expired {
            retire(old.conn);
        }
    }

    /// Starts, once, a task that reaps idle connections; it ends when the pool is dropped.
    fn start_reaper(self: &Arc<Self>) {
        if self.reaper_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        let period = (self.idle_timeout / 2).max(Duration::from_millis(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                match weak.upgrade() {
                    Some(pool) => pool.reap(),
                    None => return,
                }
            }
        });
    }

    /// Sends one message on a pooled connection. A reused connection found dead at MAIL FROM is
    /// replaced once by a fresh one: nothing had been accepted, so the retry cannot duplicate.
    pub(crate) async fn send(
        self: &Arc<Self>,
        envelope: &Envelope,
        message: &[u8],
    ) -> Result<Response, SendError> {
        let mut lease = self.lease().await?;
        let (result, after) =
            connection::transact(lease.conn(), &self.target, self.timeout, envelope, message).await;
        let (result, after) = match result {
            Err(error) if lease.reused && stale_at_mail_from(&error) => {
                tracing::debug!(server = %self.target.server, %error, "A pooled SMTP connection was dead; retrying on a new one.");
                self.reopen(&mut lease).await?;
                connection::transact(lease.conn(), &self.target, self.timeout, envelope, message)
                    .await
            }
            other => (other, after),
        };
        if after == After::Reusable {
            lease.release();
        }
        result
    }

    /// Takes (or opens) a connection and sends NOOP, retrying once on a fresh connection if a
    /// pooled one turns out dead.
    pub(crate) async fn check(self: &Arc<Self>) -> Result<(), SendError> {
        let mut lease = self.lease().await?;
        let mut result = connection::noop(lease.conn(), &self.target, self.timeout).await;
        if lease.reused && result.as_ref().is_err_and(SendError::is_stale_connection) {
            self.reopen(&mut lease).await?;
            result = connection::noop(lease.conn(), &self.target, self.timeout).await;
        }
        if result.is_ok() {
            lease.release();
        }
        result
    }

    /// Sends QUIT on every idle connection and closes it.
    pub(crate) async fn close(&self) {
        let idle: Vec<_> = lock(&self.idle).drain(..).collect();
        for mut old in idle {
            let _ = tokio::time::timeout(QUIT_TIMEOUT, old.conn.quit()).await;
        }
    }
}

fn stale_at_mail_from(error: &SendError) -> bool {
    error.stage() == Some(crate::Stage::MailFrom) && error.is_stale_connection()
}

/// Closes a connection politely (QUIT) in the background, when there is a runtime to do it.
fn retire(mut conn: AsyncSmtpConnection) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let _ = tokio::time::timeout(QUIT_TIMEOUT, conn.quit()).await;
        });
    }
}
