//! How long to wait before each reconnect attempt: exponential growth, a ceiling, and jitter so
//! that clients cut off together do not all come back at the same instant.

use std::time::Duration;

/// Exponential backoff with "equal jitter": attempt `n` (from 0) waits a random time between
/// half and all of `min(max, initial × multiplier^n)`. The attempt count starts again from 0
/// once a connection works (the server answered on it, or it lasted `max`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The wait before the first attempt after a connection is lost (before jitter).
    pub initial: Duration,
    /// The longest wait (before jitter).
    pub max: Duration,
    /// How much each failed attempt multiplies the wait by; values below 1 count as 1.
    pub multiplier: f64,
}

impl Default for Backoff {
    /// 100 ms, doubling, at most 10 s.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            multiplier: 2.0,
        }
    }
}

impl Backoff {
    /// The wait before attempt `attempt` (0 for the first), given `random` in [0, 1).
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let max = self.max.as_secs_f64();
        let grown = self.initial.as_secs_f64()
            * self
                .multiplier
                .max(1.0)
                .powi(attempt.min(i32::MAX as u32) as i32);
        // `min` also turns an infinite product into the ceiling; NaN (never expected) falls back
        // to the ceiling too.
        let ceiling = if grown.is_nan() { max } else { grown.min(max) };
        let random = if random.is_finite() {
            random.clamp(0.0, 1.0)
        } else {
            0.0
        };
        Duration::try_from_secs_f64(ceiling * (0.5 + 0.5 * random)).unwrap_or(self.max)
    }

    /// [`Backoff::delay`] with a random draw.
    pub fn delay_random(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_from_the_initial_wait_up_to_the_ceiling() {
        let b = Backoff {
            initial: ms(100),
            max: ms(1000),
            multiplier: 2.0,
        };
        // With the largest draw, the wait is the ceiling of each attempt.
        let top: Vec<Duration> = (0..6).map(|n| b.delay(n, 1.0)).collect();
        assert_eq!(
            top,
            [ms(100), ms(200), ms(400), ms(800), ms(1000), ms(1000)]
        );
        // With the smallest draw, half of it.
        let bottom: Vec<Duration> = (0..6).map(|n| b.delay(n, 0.0)).collect();
        assert_eq!(
            bottom,
            [ms(50), ms(100), ms(200), ms(400), ms(500), ms(500)]
        );
    }

    #[test]
    fn jitter_stays_between_half_and_all_of_the_ceiling() {
        let b = Backoff::default();
        for attempt in [0, 1, 5, 20] {
            let ceiling = b.delay(attempt, 1.0);
            for _ in 0..200 {
                let d = b.delay_random(attempt);
                assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} for {ceiling:?}");
            }
        }
        // Two clients cut off together draw different waits.
        let draws: std::collections::HashSet<Duration> =
            (0..50).map(|_| b.delay_random(3)).collect();
        assert!(draws.len() > 10, "jitter spreads the waits: {draws:?}");
    }

    #[test]
    fn huge_attempt_counts_and_odd_inputs_do_not_overflow() {
        let b = Backoff::default();
        assert_eq!(b.delay(u32::MAX, 1.0), b.max);
        assert_eq!(b.delay(10_000, 0.0), b.max / 2);
        assert_eq!(b.delay(2, f64::NAN), b.delay(2, 0.0));
        assert_eq!(b.delay(2, 7.0), b.delay(2, 1.0));
        let flat = Backoff {
            multiplier: 0.5,
            ..Backoff::default()
        };
        assert_eq!(
            flat.delay(9, 1.0),
            flat.initial,
            "a multiplier below 1 counts as 1"
        );
        let huge = Backoff {
            multiplier: f64::INFINITY,
            ..Backoff::default()
        };
        assert_eq!(huge.delay(3, 1.0), huge.max);
    }
}
