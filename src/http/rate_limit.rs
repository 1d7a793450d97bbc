//! Publish budgets: a token bucket per WebSocket connection, and for REST one per client
//! address, in a table of bounded size.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

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
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long from the last take until a token is there.
    pub fn until_next(&self) -> Duration {
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::try_from_secs_f64(missing / self.rate.per_second).unwrap_or(Duration::MAX)
    }

    /// Whether the bucket has refilled to its burst by `now`: it then holds nothing a fresh
    /// bucket would not.
    fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens + elapsed * self.rate.per_second >= self.rate.burst as f64
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.rate.per_second).min(self.rate.burst as f64);
    }
}

/// The most client addresses with a bucket of their own, about 100 bytes each.
pub const MAX_ADDRESSES: usize = 16_384;

/// REST publish budgets, one bucket per client address (an IPv6 client per /64, the block one
/// host usually gets). Past [`MAX_ADDRESSES`], buckets that have refilled (idle clients) are
/// forgotten, at most once a second; while the table is still full, newcomers share one
/// bucket, so the table's memory is bounded and the total rate of newcomers is too.
#[derive(Debug)]
pub struct AddressBuckets {
    rate: PublishRate,
    capacity: usize,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    buckets: HashMap<IpAddr, TokenBucket>,
    /// Shared by the addresses that find the table full.
    overflow: TokenBucket,
    swept: Instant,
}

impl AddressBuckets {
    pub fn new(rate: PublishRate) -> Self {
        Self::with_capacity(rate, MAX_ADDRESSES)
    }

    fn with_capacity(rate: PublishRate, capacity: usize) -> Self {
        AddressBuckets {
            rate,
            capacity,
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                overflow: TokenBucket::new(rate),
                swept: Instant::now(),
            }),
        }
    }

    pub fn rate(&self) -> PublishRate {
        self.rate
    }

    /// Takes a token for a publish from `client` (`None`: the address is unknown, and all
    /// such share a bucket), or says how long until one is there.
    pub fn try_take(&self, client: Option<IpAddr>, now: Instant) -> Result<(), Duration> {
        let key = client.map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), key);
        // Nothing here leaves the table half-updated, so a panic elsewhere cannot spoil it.
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        let table = &mut *table;
        if !table.buckets.contains_key(&key) && table.buckets.len() >= self.capacity {
            if now.saturating_duration_since(table.swept) >= Duration::from_secs(1) {
                table.swept = now;
                table.buckets.retain(|_, bucket| !bucket.is_full(now));
            }
            if table.buckets.len() >= self.capacity {
                return take(&mut table.overflow, now);
            }
        }
        let bucket = table
            .buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::new(self.rate));
        take(bucket, now)
    }
}

fn take(bucket: &mut TokenBucket, now: Instant) -> Result<(), Duration> {
    if bucket.try_take(now) {
        Ok(())
    } else {
        Err(bucket.until_next())
    }
}

/// The address a bucket belongs to: IPv4 as it is (an IPv4-mapped IPv6 address included),
/// IPv6 by its /64.
fn key(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const RATE: PublishRate = PublishRate {
        per_second: 10.0,
        burst: 3,
    };

    #[test]
    fn allows_the_burst_then_refills_at_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(RATE);
        assert!((0..3).all(|_| bucket.try_take(start)));
        assert!(!bucket.try_take(start));
        assert_eq!(bucket.until_next(), Duration::from_millis(100));
        // 100 ms at 10/s is one token, and only one.
        let later = start + Duration::from_millis(100);
        assert!(bucket.try_take(later));
        assert!(!bucket.try_take(later));
        // A long pause refills to the burst, no further.
        let much_later = later + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| bucket.try_take(much_later)).count(), 3);
    }

    #[test]
    fn each_address_has_its_bucket_an_ipv6_host_by_its_64() {
        let buckets = AddressBuckets::new(RATE);
        let now = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let v6: [IpAddr; 2] = [
            "2001:db8::1".parse().unwrap(),
            "2001:db8::2".parse().unwrap(),
        ];
        for _ in 0..3 {
            assert_eq!(buckets.try_take(Some(a), now), Ok(()));
        }
        assert_eq!(
            buckets.try_take(Some(mapped), now),
            Err(Duration::from_millis(100)),
            "the same host, written as IPv6"
        );
        assert_eq!(buckets.try_take(Some(b), now), Ok(()));
        for _ in 0..3 {
            assert_eq!(buckets.try_take(Some(v6[0]), now), Ok(()));
        }
        assert!(buckets.try_take(Some(v6[1]), now).is_err(), "one /64");
    }

    #[test]
    fn a_full_table_forgets_idle_addresses_and_newcomers_share_one_bucket_meanwhile() {
        let buckets = AddressBuckets::with_capacity(RATE, 2);
        let start = Instant::now();
        let addr = |n: u8| Some(IpAddr::from([192, 0, 2, n]));
        assert!(buckets.try_take(addr(1), start).is_ok());
        assert!(buckets.try_take(addr(2), start).is_ok());
        // Full, nobody idle: 3 and 4 share the overflow bucket's burst of three.
        let shared: Vec<bool> = [3, 4, 3, 4]
            .into_iter()
            .map(|n| buckets.try_take(addr(n), start).is_ok())
            .collect();
        assert_eq!(shared, [true, true, true, false]);
        // A second later 1 and 2 have refilled: they are forgotten and 3 gets its own bucket.
        let later = start + Duration::from_secs(1);
        assert!((0..3).all(|_| buckets.try_take(addr(3), later).is_ok()));
        assert!(buckets.try_take(addr(3), later).is_err());
        let table = buckets.table.lock().unwrap();
        assert_eq!(table.buckets.len(), 1);
    }
}
