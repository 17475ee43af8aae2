//! The newest publish time among the messages this worker was delivered from the work queue: what
//! bounds the age of the work queue's oldest message (the queue poller in `herald-observe` reads it).
//!
//! RabbitMQ delivers a queue in FIFO order, so every ready message was enqueued after every message
//! already delivered, and no later than "now − the newest AMQP `timestamp` delivered". The newest,
//! not the latest: retry and replayed copies keep their first publish's timestamp, so the latest
//! delivery may carry an hour-old time while younger messages were delivered before it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A shared, lock-free record of the newest `timestamp` property (Unix seconds) delivered so far.
/// Cheap to clone; clones share the value.
#[derive(Debug, Clone, Default)]
pub struct NewestDelivered(Arc<AtomicU64>);

impl NewestDelivered {
    pub fn new() -> Self {
        Self::default()
    }

    /// Notes a delivery whose AMQP `timestamp` property is `unix_secs`; older times change nothing.
    pub fn record(&self, unix_secs: u64) {
        self.0.fetch_max(unix_secs, Ordering::Relaxed);
    }

    /// The newest timestamp delivered so far, or `None` before the first timestamped delivery.
    pub fn unix_secs(&self) -> Option<u64> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            t => Some(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_time_shared_between_clones() {
        let newest = NewestDelivered::new();
        assert_eq!(newest.unix_secs(), None);
        let seen_by_poller = newest.clone();
        newest.record(1_700_000_100);
        newest.record(1_700_000_000); // an old retry copy delivered later
        assert_eq!(seen_by_poller.unix_secs(), Some(1_700_000_100));
        newest.record(1_700_000_200);
        assert_eq!(seen_by_poller.unix_secs(), Some(1_700_000_200));
    }
}
