//! Telling a live connection from a dead one: after `interval` without hearing anything from
//! the server, send a WebSocket ping; if nothing at all (the pong, or any other frame) arrives
//! within `timeout` of it, the connection is dead. A cut TCP connection is noticed at once; this
//! catches the ones that go silent (a stalled proxy, a peer gone without a FIN).

use tokio::time::{Duration, Instant};

/// What to do when the deadline of [`Liveness::deadline`] passes.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Check {
    /// Nothing yet: wait for the next deadline.
    Wait,
    /// Send a ping now.
    Ping,
    /// No answer to the ping: give the connection up.
    Dead,
}

#[derive(Debug)]
pub(super) struct Liveness {
    interval: Duration,
    timeout: Duration,
    last_heard: Instant,
    ping_sent: Option<Instant>,
}

impl Liveness {
    pub(super) fn new(now: Instant, interval: Duration, timeout: Duration) -> Self {
        Liveness {
            interval,
            timeout,
            last_heard: now,
            ping_sent: None,
        }
    }

    /// Anything arrived from the server.
    pub(super) fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.ping_sent = None;
    }

    /// When [`Liveness::check`] has something to decide.
    pub(super) fn deadline(&self) -> Instant {
        match self.ping_sent {
            Some(sent) => sent + self.timeout,
            None => self.last_heard + self.interval,
        }
    }

    pub(super) fn check(&mut self, now: Instant) -> Check {
        if now < self.deadline() {
            return Check::Wait;
        }
        match self.ping_sent {
            Some(_) => Check::Dead,
            None => {
                self.ping_sent = Some(now);
                Check::Ping
            }
        }
    }

    /// How long a silent connection lasts before it is called dead, at most.
    pub(super) fn limit(&self) -> Duration {
        self.interval + self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn pings_after_an_idle_interval_and_gives_up_after_the_timeout() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, 10 * SEC, 3 * SEC);
        assert_eq!(l.deadline(), t0 + 10 * SEC);
        assert_eq!(l.check(t0 + 9 * SEC), Check::Wait);
        assert_eq!(l.check(t0 + 10 * SEC), Check::Ping);
        assert_eq!(l.deadline(), t0 + 13 * SEC);
        assert_eq!(l.check(t0 + 12 * SEC), Check::Wait);
        assert_eq!(l.check(t0 + 13 * SEC), Check::Dead);
        assert_eq!(l.limit(), 13 * SEC);
    }

    #[test]
    fn anything_heard_answers_the_ping_and_restarts_the_interval() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, 10 * SEC, 3 * SEC);
        assert_eq!(l.check(t0 + 10 * SEC), Check::Ping);
        l.heard(t0 + 11 * SEC);
        assert_eq!(l.deadline(), t0 + 21 * SEC);
        assert_eq!(
            l.check(t0 + 14 * SEC),
            Check::Wait,
            "no longer waiting for a pong"
        );
        // Frames that keep coming keep the connection from being pinged at all.
        for s in 12..40 {
            l.heard(t0 + s * SEC);
            assert_eq!(l.check(t0 + s * SEC), Check::Wait);
        }
    }
}
