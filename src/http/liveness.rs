//! Pinging a WebSocket client and deciding when it is dead.

use super::Liveness;
use crate::broker::Outbox;

/// When to ping, and whether the client answered the last ping in time.
pub struct Pinger {
    liveness: Liveness,
    deadline: tokio::time::Instant,
    /// A ping is out and unanswered.
    awaiting: bool,
    /// Something arrived from the client since the last ping.
    heard: bool,
}

impl Pinger {
    pub fn new(liveness: Liveness) -> Self {
        Pinger {
            liveness,
            deadline: tokio::time::Instant::now() + liveness.ping_interval,
            awaiting: false,
            heard: false,
        }
    }

    /// When [`Pinger::tick`] is due next.
    pub fn deadline(&self) -> tokio::time::Instant {
        self.deadline
    }

    /// Something arrived from the client: it is alive.
    pub fn heard(&mut self) {
        self.heard = true;
    }

    /// The deadline passed: send a ping, or check the answer to the last one. False when the
    /// client let a ping go unanswered for the whole timeout. Any frame counts as an answer.
    /// (While its queue is over the limit the server reads nothing from the client, its pong
    /// included: a client that stays that far behind for the whole timeout is closed too.)
    pub fn tick(&mut self, outbox: &Outbox) -> bool {
        let now = tokio::time::Instant::now();
        if self.awaiting {
            if !self.heard {
                return false;
            }
            self.awaiting = false;
            let interval = self.liveness.ping_interval;
            let waited = self.liveness.ping_timeout;
            self.deadline = now + interval.saturating_sub(waited);
        } else {
            outbox.push_ping();
            self.awaiting = true;
            self.heard = false;
            self.deadline = now + self.liveness.ping_timeout;
        }
        true
    }
}
