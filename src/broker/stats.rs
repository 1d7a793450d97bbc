//! Server-wide counters. Updated with relaxed atomics: each is an independent tally, read only
//! for reporting, so no ordering between them is needed.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::protocol::ErrorCode;

#[derive(Debug, Default)]
pub struct Counters {
    messages_published: AtomicU64,
    messages_delivered: AtomicU64,
    messages_dropped: AtomicU64,
    slow_consumers_disconnected: AtomicU64,
    dead_connections_closed: AtomicU64,
    /// Errors answered, over REST and WebSocket, indexed by [`ErrorCode::index`].
    errors: [AtomicU64; ErrorCode::ALL.len()],
    publish_latency: LatencyHistogram,
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub messages_published: u64,
    pub messages_delivered: u64,
    pub messages_dropped: u64,
    pub slow_consumers_disconnected: u64,
    pub dead_connections_closed: u64,
    pub errors: [u64; ErrorCode::ALL.len()],
    pub publish_latency: LatencySnapshot,
}

impl CounterSnapshot {
    /// How many errors with `code` were answered.
    pub fn errors(&self, code: ErrorCode) -> u64 {
        self.errors[code.index()]
    }
}

impl Counters {
    pub fn published(&self) {
        self.messages_published.fetch_add(1, Relaxed);
    }

    pub fn delivered(&self, n: u64) {
        if n > 0 {
            self.messages_delivered.fetch_add(n, Relaxed);
        }
    }

    pub fn dropped(&self, n: u64) {
        self.messages_dropped.fetch_add(n, Relaxed);
    }

    pub fn slow_consumer_disconnected(&self) {
        self.slow_consumers_disconnected.fetch_add(1, Relaxed);
    }

    pub fn dead_connection_closed(&self) {
        self.dead_connections_closed.fetch_add(1, Relaxed);
    }

    /// A publish took `took` from arriving at the broker to being queued for every subscriber.
    pub fn publish_latency(&self, took: Duration) {
        self.publish_latency.record(took);
    }

    pub fn error(&self, code: ErrorCode) {
        self.errors[code.index()].fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            messages_published: self.messages_published.load(Relaxed),
            messages_delivered: self.messages_delivered.load(Relaxed),
            messages_dropped: self.messages_dropped.load(Relaxed),
            slow_consumers_disconnected: self.slow_consumers_disconnected.load(Relaxed),
            dead_connections_closed: self.dead_connections_closed.load(Relaxed),
            errors: std::array::from_fn(|i| self.errors[i].load(Relaxed)),
            publish_latency: self.publish_latency.snapshot(),
        }
    }
}

/// Upper bounds of the latency buckets, in nanoseconds: 1 µs to 100 ms, then everything above.
pub const LATENCY_BOUNDS_NANOS: [u64; 16] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
];

/// A histogram of durations with fixed buckets, updated without locks: a publish on any topic
/// records into it, and a lock here would make every topic wait on every other.
#[derive(Debug, Default)]
struct LatencyHistogram {
    /// Per bucket (not cumulative); the last counts everything above the last bound.
    buckets: [AtomicU64; LATENCY_BOUNDS_NANOS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A copy of the histogram: per-bucket counts (the last one above every bound) and the sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    pub buckets: [u64; LATENCY_BOUNDS_NANOS.len() + 1],
    pub sum_nanos: u64,
}

impl LatencySnapshot {
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

impl LatencyHistogram {
    fn record(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_NANOS.partition_point(|&bound| bound < nanos);
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            sum_nanos: self.sum_nanos.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_the_first_bucket_whose_bound_holds_it() {
        let h = LatencyHistogram::default();
        h.record(Duration::from_nanos(1_000)); // on a bound: that bucket
        h.record(Duration::from_nanos(1_001)); // just above: the next
        h.record(Duration::from_secs(5)); // above every bound: the last
        let s = h.snapshot();
        assert_eq!((s.buckets[0], s.buckets[1], s.buckets[16]), (1, 1, 1));
        assert_eq!(s.count(), 3);
        assert_eq!(s.sum_nanos, 5_000_002_001);
    }
}
