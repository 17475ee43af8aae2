//! Rate limiting per API token, with Auth0's headers on every answer: `x-ratelimit-limit`,
//! `x-ratelimit-remaining` and `x-ratelimit-reset` (Unix seconds when the bucket is full again),
//! plus `retry-after` on a 429.
//!
//! The buckets live in this process's memory (governor's GCRA): behind a load balancer each
//! `herald serve` replica limits on its own, so a token may make up to N times the limit over
//! N replicas. Everything else the API keeps is in PostgreSQL.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use uuid::Uuid;

type Limiter<K> =
    RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// The limiter: `per_second` requests a second per key (a token's id, or a client address for
/// failed authentications), in bursts of as many.
#[derive(Clone)]
pub struct KeyedLimiter<K: std::hash::Hash + Eq + Clone> {
    limiter: Arc<Limiter<K>>,
    clock: DefaultClock,
    limit: u32,
    per_request: Duration,
}

/// Requests per API token.
pub type TokenLimiter = KeyedLimiter<Uuid>;
/// Failed authentications per client address.
pub type AddressLimiter = KeyedLimiter<std::net::IpAddr>;

impl<K: std::hash::Hash + Eq + Clone> std::fmt::Debug for KeyedLimiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimiter")
            .field("limit", &self.limit)
            .finish()
    }
}

/// The headers one decision puts on the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitHeaders {
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds.
    pub reset: u64,
    /// Seconds to wait, on a refusal.
    pub retry_after: Option<u64>,
}

impl LimitHeaders {
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(self.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(self.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(self.reset));
        if let Some(wait) = self.retry_after {
            headers.insert("retry-after", HeaderValue::from(wait));
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> KeyedLimiter<K> {
    pub fn new(per_second: NonZeroU32) -> Self {
        let quota = Quota::per_second(per_second);
        KeyedLimiter {
            limiter: Arc::new(
                RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            ),
            clock: DefaultClock::default(),
            limit: per_second.get(),
            per_request: Duration::from_secs(1) / per_second.get(),
        }
    }

    /// Takes one request from `key`'s bucket: `Ok` with the headers when it may go on, `Err`
    /// with the headers of a 429 when it may not.
    pub fn check(&self, key: K) -> Result<LimitHeaders, LimitHeaders> {
        match self.limiter.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let refill = self.per_request * (self.limit - remaining.min(self.limit));
                Ok(LimitHeaders {
                    limit: self.limit,
                    remaining,
                    reset: unix_after(refill),
                    retry_after: None,
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(LimitHeaders {
                    limit: self.limit,
                    remaining: 0,
                    reset: unix_after(self.per_request * self.limit),
                    retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
                })
            }
        }
    }

    /// Forgets tokens whose buckets are full again, so memory follows the active tokens.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

fn unix_after(wait: Duration) -> u64 {
    (SystemTime::now() + wait)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs_f64().ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gets_its_burst_then_a_refusal_with_headers() {
        let limiter: TokenLimiter = KeyedLimiter::new(NonZeroU32::new(3).unwrap());
        let token = Uuid::new_v4();
        let remaining: Vec<u32> = (0..3)
            .map(|_| limiter.check(token).unwrap().remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limiter.check(token).unwrap_err();
        assert_eq!((refused.limit, refused.remaining), (3, 0));
        assert!(refused.retry_after.is_some());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            refused.reset >= now && refused.reset <= now + 2,
            "{refused:?}"
        );
        // Another token has a bucket of its own.
        assert_eq!(limiter.check(Uuid::new_v4()).unwrap().remaining, 2);
    }
}
