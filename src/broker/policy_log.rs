//! What the slow-consumer policy did, kept for its log lines until no lock is held.
//!
//! Outboxes are filled under a topic's lock, and a log line may block on its output (a full
//! pipe, a slow terminal): written there, it would hold up the topic's publishers and every
//! other subscriber. So the outbox notes what happened here, and whoever took the locks writes
//! the lines after releasing them.

use std::sync::Arc;

/// One slow-consumer action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyEvent {
    /// A live message of `topic` did not fit: the client is being disconnected.
    Disconnecting {
        client: u64,
        topic: Arc<str>,
        queued_bytes: usize,
    },
    /// A live message of `topic` did not fit: its messages are dropped for the client until it
    /// catches up.
    Dropping { client: u64, topic: Arc<str> },
    /// The client is told how many messages of `topic` it missed.
    CaughtUp {
        client: u64,
        topic: Arc<str>,
        dropped: u64,
    },
}

/// The actions taken while locks were held, in order; empty (and unallocated) almost always.
#[derive(Debug, Default)]
#[must_use = "write the lines once the locks are released"]
pub struct PolicyLog(Vec<PolicyEvent>);

impl PolicyLog {
    pub fn note(&mut self, event: PolicyEvent) {
        self.0.push(event);
    }

    /// Writes the lines. Call with no lock held.
    pub fn write(self) {
        for event in self.0 {
            match event {
                PolicyEvent::Disconnecting {
                    client,
                    topic,
                    queued_bytes,
                } => tracing::info!(
                    client,
                    %topic,
                    queued_bytes,
                    "slow consumer: queue full, disconnecting"
                ),
                PolicyEvent::Dropping { client, topic } => tracing::info!(
                    client,
                    %topic,
                    "slow consumer: queue full, dropping messages until it catches up"
                ),
                PolicyEvent::CaughtUp {
                    client,
                    topic,
                    dropped,
                } => tracing::info!(
                    client,
                    %topic,
                    dropped,
                    "slow consumer caught up; telling it how many it missed"
                ),
            }
        }
    }

    #[cfg(test)]
    pub fn events(&self) -> &[PolicyEvent] {
        &self.0
    }
}
