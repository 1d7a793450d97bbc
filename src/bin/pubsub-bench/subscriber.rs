//! A subscriber connection's receive loop: counts deliveries and records their latency.

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::Parse;
use crate::client::Ws;
use crate::wire::{self, Received};

/// Latency is recorded in microseconds, from 1 µs to 10 minutes, to three significant digits.
const LATENCY_MAX_US: u64 = 600_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
        .expect("constant bounds: low >= 1, high >= 2 * low, 3 significant digits")
}

/// What one subscriber saw.
pub struct Outcome {
    pub deliveries: u64,
    /// Harness clock (ns) at the last delivery; 0 when there was none.
    pub last_ns: u64,
    pub latency: Option<Histogram<u64>>,
    /// Frames that were neither deliveries nor expected: errors, closes, protocol failures.
    pub failure: Option<String>,
}

/// This subscriber's share of the publishes: publish number i goes to topic i % topics.
#[derive(Debug, Clone, Copy)]
pub struct Share {
    pub topic: u64,
    pub topics: u64,
}

impl Share {
    /// Deliveries this subscriber gets out of `total` publishes.
    pub fn of(&self, total: u64) -> u64 {
        let topics = self.topics.max(1);
        total / topics + u64::from(self.topic < total % topics)
    }
}

/// How a subscriber reads.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    pub record_latency: bool,
    pub parse: Parse,
}

/// Reads until its share of the `total` publishes arrived, the connection ends, or `stop` turns
/// true. `total` is unknown (`None`) while the publisher may still decide to publish more.
pub async fn receive(
    mut ws: Ws,
    share: Share,
    mut total: watch::Receiver<Option<u64>>,
    reading: Reading,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let mut out = Outcome {
        deliveries: 0,
        last_ns: 0,
        latency: reading.record_latency.then(new_histogram),
        failure: None,
    };
    let mut expected = total.borrow().map(|t| share.of(t));
    // Pinned once so that waiting on them costs nothing per frame.
    let known = total.wait_for(Option::is_some);
    tokio::pin!(known);
    let stopped = stop.wait_for(|stop| *stop);
    tokio::pin!(stopped);
    loop {
        if expected.is_some_and(|e| out.deliveries >= e) {
            break;
        }
        tokio::select! {
            biased;
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    let kind = match reading.parse {
                        Parse::Cheap => wire::classify(text.as_bytes()),
                        Parse::Full => wire::classify_full(text.as_bytes()),
                    };
                    match kind {
                        Received::Delivery { sent_ns } => {
                            let now = wire::now_ns();
                            out.deliveries += 1;
                            out.last_ns = now;
                            if let Some(h) = out.latency.as_mut() {
                                h.saturating_record((now.saturating_sub(sent_ns) / 1000).max(1));
                            }
                        }
                        Received::Error => {
                            out.failure = Some(format!("error frame: {}", text.as_str()));
                            break;
                        }
                        Received::Reply => {}
                    }
                }
                Some(Ok(Message::Close(close))) => {
                    out.failure = Some(format!("closed by the server: {close:?}"));
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    out.failure = Some(format!("connection failed: {e}"));
                    break;
                }
                None => {
                    out.failure = Some("connection ended".to_owned());
                    break;
                }
            },
            total = &mut known, if expected.is_none() => match total {
                Ok(total) => expected = Some(share.of((*total).unwrap_or(0))),
                // The run was abandoned before the publisher finished.
                Err(_) => break,
            },
            _ = &mut stopped => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Share;

    #[test]
    fn shares_add_up_to_the_total() {
        for topics in 1..6u64 {
            for total in 0..20u64 {
                let sum: u64 = (0..topics)
                    .map(|topic| Share { topic, topics }.of(total))
                    .sum();
                assert_eq!(sum, total);
            }
        }
    }
}
