//! The publisher: sends numbered publishes, at most `window` unacknowledged, as fast as allowed
//! or on a fixed schedule, and goes on past the planned count until the plan's minimum duration
//! has passed.

use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Ws};
use crate::target::Target;
use crate::wire::{self, PublishFrames, Received};

#[derive(Clone)]
pub struct Plan {
    /// Publish number i goes to topic i % topics.len().
    pub topics: Vec<String>,
    /// Publishes to send at least.
    pub messages: u64,
    /// Keep publishing (more messages, never slower) until this long after the first send.
    pub min_duration: Duration,
    pub window: u64,
    pub message_bytes: usize,
    /// Publishes per second; `None` is as fast as the window allows.
    pub rate: Option<u32>,
}

pub struct Outcome {
    /// Publishes sent: `messages` or more (see `min_duration`).
    pub sent: u64,
    pub acked: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// Harness clock (ns) at the first send, the last send and the last reply.
    pub start_ns: u64,
    pub last_send_ns: u64,
    pub last_reply_ns: u64,
    /// How far the sends fell behind the schedule at worst (rate mode).
    pub max_lag_ns: u64,
    /// Why publishing stopped early, if it did.
    pub failure: Option<String>,
}

impl Outcome {
    /// Adds to `notes` what went wrong while publishing; false if anything did.
    pub fn note_problems(&self, notes: &mut Vec<String>) -> bool {
        let mut ok = true;
        if let Some(f) = &self.failure {
            notes.push(format!("publisher: {f}"));
            ok = false;
        }
        if let Some(e) = &self.first_error {
            notes.push(format!(
                "{} publishes answered with an error; first: {e}",
                self.errors
            ));
            ok = false;
        }
        ok
    }
}

/// A publisher on a thread of its own, with its own single-threaded runtime, so that hundreds
/// of busy subscriber tasks cannot delay its sends (which would show as the server falling
/// behind schedule in the `rate` scenario).
pub struct Dedicated {
    go: tokio::sync::oneshot::Sender<std::time::Instant>,
    thread: std::thread::JoinHandle<Option<Outcome>>,
}

impl Dedicated {
    /// Starts the thread and connects; publishing starts with [`Dedicated::run`].
    pub async fn connect(target: &Target, plan: Plan) -> Result<Self, String> {
        use tokio::sync::oneshot;
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
        let (go, go_rx) = oneshot::channel::<std::time::Instant>();
        let target = target.clone();
        let thread = std::thread::Builder::new()
            .name("publisher".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("publisher runtime: {e}")));
                        return None;
                    }
                };
                runtime.block_on(async move {
                    let addr = target.publisher_addr();
                    let ws = match client::connect(addr, &target.ws_path, 64 * 1024).await {
                        Ok(ws) => ws,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("publisher: {e}")));
                            return None;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    // A dropped sender means the run was abandoned before it started.
                    let deadline = go_rx.await.ok()?;
                    Some(publish(ws, &plan, Instant::from_std(deadline)).await)
                })
            })
            .map_err(|e| format!("cannot start the publisher thread: {e}"))?;
        ready_rx
            .await
            .map_err(|_| "the publisher thread ended before connecting".to_owned())??;
        Ok(Dedicated { go, thread })
    }

    /// Publishes the plan, stopping at `deadline` at the latest.
    pub async fn run(self, deadline: Instant) -> Result<Outcome, String> {
        let _ = self.go.send(deadline.into_std());
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|e| format!("waiting for the publisher: {e}"))?
            .map_err(|_| "the publisher thread panicked".to_owned())?
            .ok_or_else(|| "the publisher did not start".to_owned())
    }
}

/// Publishes the plan on `ws`, stopping at `deadline` at the latest.
pub async fn publish(mut ws: Ws, plan: &Plan, deadline: Instant) -> Outcome {
    let frames: Vec<PublishFrames> = plan
        .topics
        .iter()
        .map(|t| PublishFrames::new(t, plan.message_bytes))
        .collect();
    let start = Instant::now();
    let period_ns = plan.rate.map(|r| 1_000_000_000 / u64::from(r.max(1)));
    let due = |i: u64| period_ns.map(|p| start + Duration::from_nanos(i.saturating_mul(p)));
    let min_end = start + plan.min_duration;
    // Whether publish number `sent` is still to be sent.
    let more = |sent: u64| sent < plan.messages || Instant::now() < min_end;
    let mut out = Outcome {
        sent: 0,
        acked: 0,
        errors: 0,
        first_error: None,
        start_ns: wire::now_ns(),
        last_send_ns: 0,
        last_reply_ns: 0,
        max_lag_ns: 0,
        failure: None,
    };
    while out.acked + out.errors < out.sent || more(out.sent) {
        // Send everything the window and the schedule allow, then one flush for the batch.
        let mut fed = false;
        while out.sent - out.acked - out.errors < plan.window && more(out.sent) {
            let now = Instant::now();
            if let Some(at) = due(out.sent) {
                if at > now {
                    break;
                }
                let lag = u64::try_from((now - at).as_nanos()).unwrap_or(u64::MAX);
                out.max_lag_ns = out.max_lag_ns.max(lag);
            }
            let topic = usize::try_from(out.sent % frames.len() as u64).unwrap_or(0);
            let frame = frames[topic].frame(out.sent);
            if let Err(e) = ws.feed(Message::text(frame)).await {
                out.failure = Some(format!("send failed: {e}"));
                return out;
            }
            out.sent += 1;
            fed = true;
        }
        if fed {
            out.last_send_ns = wire::now_ns();
            if let Err(e) = ws.flush().await {
                out.failure = Some(format!("send failed: {e}"));
                return out;
            }
        }
        let can_send = out.sent - out.acked - out.errors < plan.window && more(out.sent);
        let next_due = due(out.sent).filter(|_| can_send).unwrap_or(deadline);
        tokio::select! {
            biased;
            frame = ws.next() => {
                if let Err(e) = on_frame(frame, &mut out) {
                    out.failure = Some(e);
                    return out;
                }
                // Take every reply already here before sending again, so sends go out in batches.
                while let Some(frame) = ws.next().now_or_never() {
                    if let Err(e) = on_frame(frame, &mut out) {
                        out.failure = Some(e);
                        return out;
                    }
                }
            }
            _ = sleep_until(next_due.min(deadline)) => {
                if Instant::now() >= deadline {
                    out.failure = Some(format!(
                        "timed out: {} of {} publishes answered", out.acked + out.errors, out.sent
                    ));
                    return out;
                }
            }
        }
    }
    out
}

type Frame = Option<Result<Message, tokio_tungstenite::tungstenite::Error>>;

fn on_frame(frame: Frame, out: &mut Outcome) -> Result<(), String> {
    match frame {
        Some(Ok(Message::Text(text))) => {
            match wire::classify(text.as_bytes()) {
                Received::Reply => out.acked += 1,
                Received::Error => {
                    out.errors += 1;
                    if out.first_error.is_none() {
                        out.first_error = Some(text.as_str().to_owned());
                    }
                }
                // Not subscribed, so not expected; a server may echo to publishers. Not a reply.
                Received::Delivery { .. } => return Ok(()),
            }
            out.last_reply_ns = wire::now_ns();
            Ok(())
        }
        Some(Ok(Message::Close(close))) => {
            Err(format!("publisher closed by the server: {close:?}"))
        }
        Some(Ok(_)) => Ok(()),
        Some(Err(e)) => Err(format!("publisher connection failed: {e}")),
        None => Err("publisher connection ended".to_owned()),
    }
}
