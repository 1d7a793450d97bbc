//! A subscriber connection's receive loop: counts deliveries and records their latency.

use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

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

/// Reads until `expected` deliveries arrived, the connection ends, or `stop` turns true.
pub async fn receive(
    mut ws: Ws,
    expected: u64,
    record_latency: bool,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let mut out = Outcome {
        deliveries: 0,
        last_ns: 0,
        latency: record_latency.then(new_histogram),
        failure: None,
    };
    // Pinned once so that waiting on it costs nothing per frame.
    let stopped = stop.wait_for(|stop| *stop);
    tokio::pin!(stopped);
    while out.deliveries < expected {
        tokio::select! {
            biased;
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => match wire::classify(text.as_bytes()) {
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
                },
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
            _ = &mut stopped => break,
        }
    }
    out
}
