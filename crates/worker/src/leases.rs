//! The leases this worker process holds on jobs it is working on, and the task that renews them.
//!
//! `begin_attempt` gives a delivery a short lease (HERALD_SEND_LEASE, 10 s by default) under this
//! process's owner id. While the delivery is being worked on, its job id is registered here, and
//! a background task extends every registered lease by one lease length each quarter of it, in
//! one statement. A worker that dies stops renewing, so the jobs it held are free again within
//! one lease length: the survivors that the broker redelivers them to wait that long (deferred
//! for exactly the time left), not the length of the slowest possible send.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use herald_store::{Lease, Store};
use tracing::warn;

/// The renewal period, as a fraction of the lease: three renewals can fail in a row (or be late
/// by three quarters of a lease) before a lease runs out under a live worker.
const RENEWALS_PER_LEASE: u32 = 4;

type Held = Mutex<HashMap<String, usize>>;

/// The leases of one worker process. Cheap to share by reference; the renewal task starts on
/// first use, on the runtime that handles jobs, and stops once this and every guard are gone.
#[derive(Debug)]
pub struct HeldLeases {
    lease: Lease,
    held: Arc<Held>,
    renewer: OnceLock<()>,
}

impl HeldLeases {
    pub fn new(length: Duration) -> Self {
        HeldLeases {
            lease: Lease::new(length),
            held: Arc::new(Mutex::new(HashMap::new())),
            renewer: OnceLock::new(),
        }
    }

    /// The lease every delivery of this process takes.
    pub fn lease(&self) -> Lease {
        self.lease
    }

    /// Registers `job_id` as worked on (a lease this process took in `begin_attempt`) until the
    /// guard is dropped; renewed meanwhile.
    pub fn hold(&self, store: &Store, job_id: &str) -> LeaseGuard {
        self.renewer.get_or_init(|| {
            tokio::spawn(renew(store.clone(), self.lease, Arc::downgrade(&self.held)));
        });
        *lock(&self.held).entry(job_id.to_owned()).or_default() += 1;
        LeaseGuard {
            held: Arc::clone(&self.held),
            job_id: job_id.to_owned(),
        }
    }
}

/// A registered lease; dropping it stops its renewal.
#[derive(Debug)]
pub struct LeaseGuard {
    held: Arc<Held>,
    job_id: String,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        let mut held = lock(&self.held);
        if let Some(n) = held.get_mut(&self.job_id) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.job_id);
            }
        }
    }
}

fn lock(held: &Held) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn renew(store: Store, lease: Lease, held: Weak<Held>) {
    let period = lease.length / RENEWALS_PER_LEASE;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(held) = held.upgrade() else { return };
        let ids: Vec<String> = lock(&held).keys().cloned().collect();
        drop(held);
        if ids.is_empty() {
            continue;
        }
        // Bounded, so that a stalled database delays the next renewal by one period at most.
        match tokio::time::timeout(period, store.renew_leases(lease.owner, &ids, lease.length))
            .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                warn!(error = %e, jobs = ids.len(), "Could not renew this worker's leases.")
            }
            Err(_) => warn!(jobs = ids.len(), "Renewing this worker's leases timed out."),
        }
    }
}
