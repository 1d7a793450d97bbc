//! Server-wide counters. Updated with relaxed atomics: each is an independent tally, read only
//! for reporting, so no ordering between them is needed.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Counters {
    messages_delivered: AtomicU64,
    messages_dropped: AtomicU64,
    slow_consumers_disconnected: AtomicU64,
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub messages_delivered: u64,
    pub messages_dropped: u64,
    pub slow_consumers_disconnected: u64,
}

impl Counters {
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

    pub fn snapshot(&self) -> CounterSnapshot {
        CounterSnapshot {
            messages_delivered: self.messages_delivered.load(Relaxed),
            messages_dropped: self.messages_dropped.load(Relaxed),
            slow_consumers_disconnected: self.slow_consumers_disconnected.load(Relaxed),
        }
    }
}
