//! Server-wide counters. Updated with relaxed atomics: each is an independent tally, read only
//! for reporting, so no ordering between them is needed.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
        }
    }
}
