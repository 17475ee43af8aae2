//! Rate limits on the pages' POSTs, per ticket and per client address, so that codes and
//! passwords cannot be tried without end. The buckets live in this process (governor's GCRA):
//! behind a load balancer each `herald serve` replica counts on its own, so N replicas allow up
//! to N times the limit. Codes that matter (the email factor's) also count attempts in the
//! database.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::DefaultClock;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use herald_domain::TokenHash;

/// HERALD_PAGE_RATE_LIMIT: POSTs per minute, per ticket and per client address (in bursts of
/// as many).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimits {
    pub per_minute: NonZeroU32,
}

impl Default for PageLimits {
    fn default() -> Self {
        Self {
            per_minute: NonZeroU32::new(10).expect("not zero"),
        }
    }
}

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

pub(crate) struct Limiter {
    tickets: Keyed<TokenHash>,
    addresses: Keyed<IpAddr>,
    /// POSTs counted; every [`UPKEEP_EVERY`]th forgets the buckets that are full again.
    checks: AtomicU64,
}

/// How often (in POSTs) idle buckets are dropped, so memory follows recent traffic only.
const UPKEEP_EVERY: u64 = 1024;

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").finish_non_exhaustive()
    }
}

impl Limiter {
    pub(crate) fn new(limits: PageLimits) -> Self {
        let quota = Quota::per_minute(limits.per_minute);
        Limiter {
            tickets: RateLimiter::keyed(quota),
            addresses: RateLimiter::keyed(quota),
            checks: AtomicU64::new(0),
        }
    }

    /// Counts one POST of `ticket` from `address`; false when either is over its limit.
    pub(crate) fn allow(&self, ticket: &TokenHash, address: IpAddr) -> bool {
        if self.checks.fetch_add(1, Ordering::Relaxed) % UPKEEP_EVERY == UPKEEP_EVERY - 1 {
            self.forget_idle();
        }
        // Both are counted, so a client cannot spread one ticket's tries over addresses.
        let ticket_ok = self.tickets.check_key(ticket).is_ok();
        let address_ok = self.addresses.check_key(&address).is_ok();
        ticket_ok && address_ok
    }

    fn forget_idle(&self) {
        self.tickets.retain_recent();
        self.addresses.retain_recent();
    }
}
