//! The per-connection publish budget: a token bucket.

use std::time::Instant;

use super::PublishRate;

/// Holds up to `burst` tokens, refilled continuously at `per_second`; each publish takes one.
#[derive(Debug)]
pub struct TokenBucket {
    rate: PublishRate,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: PublishRate) -> Self {
        TokenBucket {
            rate,
            tokens: rate.burst as f64,
            refilled: Instant::now(),
        }
    }

    pub fn rate(&self) -> PublishRate {
        self.rate
    }

    /// Takes a token if there is one at `now`.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.rate.per_second).min(self.rate.burst as f64);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn allows_the_burst_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(PublishRate {
            per_second: 10.0,
            burst: 3,
        });
        assert!((0..3).all(|_| bucket.try_take(start)));
        assert!(!bucket.try_take(start));
        // 100 ms at 10/s is one token, and only one.
        let later = start + Duration::from_millis(100);
        assert!(bucket.try_take(later));
        assert!(!bucket.try_take(later));
        // A long pause refills to the burst, no further.
        let much_later = later + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.try_take(much_later)).count(), 3);
    }
}
