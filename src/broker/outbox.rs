//! A connection's outbound queue: bounded in bytes, never awaited by a publisher.
//!
//! Publishers push shared, already-encoded frames and return at once. One writer task per
//! connection takes everything queued in one batch and writes it to the socket. Live messages
//! are counted until the write that sends them completes, so a connection holds at most its
//! limit in live messages however slowly its client reads. When a live message would pass the
//! limit, the slow-consumer policy decides: disconnect the client, or drop the message for it
//! and later tell it how many it missed (`lagged`).
//!
//! What a client asked for (replies, and the replay of a subscribe) is queued whole and does not
//! count towards that limit: a client is never judged slow for a replay it requested. Instead
//! the reader stops taking the client's requests while the whole queue is over the limit.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::lock;
use super::policy_log::{PolicyEvent, PolicyLog};
use super::stats::Counters;
use crate::protocol::{Frame, ServerFrame, close, encode_server_frame};

/// What to do with a subscriber whose queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlowConsumerPolicy {
    /// Discard its queue, free its subscriptions and close it with 1008 "slow consumer".
    Disconnect,
    /// Drop the message for it, count it, and send `lagged` once its queue has room.
    Drop,
}

/// Why and how a connection is being closed: the WebSocket close frame the writer sends last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Close {
    pub code: u16,
    pub reason: &'static str,
    /// Throw away what is still queued instead of writing it first.
    pub discard: bool,
    /// How long the writer may take, from the moment the close starts, to write what is left
    /// (and the close frame) before it drops the socket.
    pub linger: Duration,
}

impl Close {
    pub const SLOW_CONSUMER: Close = Close {
        code: close::POLICY_VIOLATION,
        reason: "slow consumer",
        discard: true,
        linger: Close::LINGER,
    };
    /// The client did not answer a ping in time: the peer is probably gone, so the close frame
    /// gets only a moment.
    pub const PING_TIMEOUT: Close = Close {
        code: close::POLICY_VIOLATION,
        reason: "ping timeout",
        discard: true,
        linger: Duration::from_secs(1),
    };
    pub const GOING_AWAY: Close = Close {
        code: close::GOING_AWAY,
        reason: "server shutting down",
        discard: false,
        linger: Close::LINGER,
    };
    pub const NORMAL: Close = Close {
        code: close::NORMAL,
        reason: "",
        discard: false,
        linger: Close::LINGER,
    };
    /// The client sent its close. It said it is done, so what is queued is dropped; the server
    /// owes it only the WebSocket library's answer to its close frame. That answer waits behind
    /// at most the socket's own buffers, so a client that reads gets it at once, and one that
    /// stopped reading gets a few seconds, not the full linger.
    pub const CLIENT_CLOSED: Close = Close {
        code: close::NORMAL,
        reason: "client closed",
        discard: true,
        linger: Duration::from_secs(5),
    };
    /// The connection's task failed (it panicked): what was queued is dropped, and the client
    /// is told the server was at fault.
    pub const INTERNAL_ERROR: Close = Close {
        code: close::INTERNAL_ERROR,
        reason: "server error",
        discard: true,
        linger: Duration::from_secs(1),
    };
    /// The socket failed: nothing more can be written, not even a close frame.
    pub const LOST: Close = Close {
        code: close::ABNORMAL,
        reason: "connection lost",
        discard: true,
        linger: Duration::ZERO,
    };
    /// How long a client that is still reading gets to take its close frame.
    pub const LINGER: Duration = Duration::from_secs(30);

    /// Whether the server writes a close frame of its own: not when the client closed first
    /// (its close is answered for it), nor when the socket is lost.
    pub fn sends_frame(&self) -> bool {
        *self != Close::CLIENT_CLOSED && *self != Close::LOST
    }
}

/// What a queued frame is, for the writer and the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A delivered `message` frame, live or replayed (counted in `messages_delivered` once
    /// written).
    Message,
    /// Any other text frame: a reply to a request, an ack, a notice.
    Reply,
    /// A WebSocket ping (the frame is empty), sent to check the client is still there.
    Ping,
}

/// Whether a frame counts against the limit the slow-consumer policy enforces: only live
/// messages do, never what a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Live {
    Yes,
    No,
}

/// One frame waiting to be written.
#[derive(Debug, Clone)]
pub struct OutFrame {
    /// The frame; the writer may take it out to write it (see [`OutFrame::len`]).
    pub frame: Frame,
    /// The frame's length, kept for accounting after the writer has taken the frame.
    len: usize,
    pub kind: FrameKind,
    live: Live,
}

impl OutFrame {
    fn text(frame: Frame, kind: FrameKind, live: Live) -> Self {
        OutFrame {
            len: frame.len(),
            frame,
            kind,
            live,
        }
    }
}

/// The outcome of offering a delivered message to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Queued,
    /// Dropped under the `drop` policy; the subscription stays.
    Dropped,
    /// The connection is closing (now or before): forget this subscriber.
    Gone,
}

#[derive(Default)]
struct State {
    frames: VecDeque<OutFrame>,
    /// Queued bytes plus the bytes of the batch the writer is writing.
    bytes: usize,
    /// The part of `bytes` that is live messages.
    live_bytes: usize,
    close: Option<Close>,
    /// Under the `drop` policy: messages dropped per topic, not yet reported.
    lagged: Vec<(Arc<str>, u64)>,
}

impl State {
    /// Stops counting a frame that was written or discarded.
    fn release(&mut self, frame: &OutFrame) {
        self.bytes = self.bytes.saturating_sub(frame.len);
        if frame.live == Live::Yes {
            self.live_bytes = self.live_bytes.saturating_sub(frame.len);
        }
    }
}

pub struct Outbox {
    state: Mutex<State>,
    /// Wakes the writer: frames or a close are waiting.
    ready: Notify,
    /// Wakes the reader: the queue went back under its limit.
    room: Notify,
    /// Wakes everyone waiting for the close (`State::close` is set once). A `Notify` rather
    /// than a watch channel: it lives inline, where a channel would be one more allocation of
    /// about 240 bytes per connection.
    closed: Notify,
    /// The client's id, for the logs.
    client: u64,
    limit: usize,
    policy: SlowConsumerPolicy,
    counters: Arc<Counters>,
}

impl Outbox {
    pub fn new(
        client: u64,
        limit: usize,
        policy: SlowConsumerPolicy,
        counters: Arc<Counters>,
    ) -> Self {
        Outbox {
            client,
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            room: Notify::new(),
            closed: Notify::new(),
            limit,
            policy,
            counters,
        }
    }

    /// Offers a live message. Never waits: a full queue triggers the slow-consumer policy,
    /// noted in `log` for the caller to write once it holds no lock.
    pub fn push_message(&self, frame: &Frame, topic: &Arc<str>, log: &mut PolicyLog) -> Delivery {
        let mut st = lock(&self.state);
        if st.close.is_some() {
            return Delivery::Gone;
        }
        if st.live_bytes + frame.len() > self.limit {
            return match self.policy {
                SlowConsumerPolicy::Disconnect => {
                    log.note(PolicyEvent::Disconnecting {
                        client: self.client,
                        topic: topic.clone(),
                        queued_bytes: st.live_bytes,
                    });
                    self.counters.slow_consumer_disconnected();
                    self.close_locked(&mut st, Close::SLOW_CONSUMER);
                    Delivery::Gone
                }
                SlowConsumerPolicy::Drop => {
                    self.counters.dropped(1);
                    match st.lagged.iter_mut().find(|(t, _)| t == topic) {
                        Some((_, n)) => *n += 1,
                        None => {
                            log.note(PolicyEvent::Dropping {
                                client: self.client,
                                topic: topic.clone(),
                            });
                            st.lagged.push((topic.clone(), 1));
                        }
                    }
                    Delivery::Dropped
                }
            };
        }
        // The gap notice goes ahead of the first message after the gap.
        self.flush_lagged_locked(&mut st, None, log);
        self.enqueue_locked(
            &mut st,
            OutFrame::text(frame.clone(), FrameKind::Message, Live::Yes),
        );
        Delivery::Queued
    }

    /// Queues a reply, a notice, or a replayed message. These answer the client's own requests
    /// (which the reader stops taking while the queue is over its limit, see [`Outbox::room`]),
    /// so they are never dropped and never count as slowness.
    pub fn push(&self, frame: Frame, kind: FrameKind) {
        let mut st = lock(&self.state);
        if st.close.is_none() {
            self.enqueue_locked(&mut st, OutFrame::text(frame, kind, Live::No));
        }
    }

    /// Queues frames about `topic` (a subscribe's ack and replay, a notice) as [`Outbox::push`]
    /// does, but after the `lagged` notice still pending for that topic: the client learns of a
    /// gap before whatever comes after it.
    pub fn push_topic_frames(
        &self,
        topic: &str,
        frames: impl IntoIterator<Item = (Frame, FrameKind)>,
        log: &mut PolicyLog,
    ) {
        let mut st = lock(&self.state);
        if st.close.is_some() {
            return;
        }
        self.flush_lagged_locked(&mut st, Some(topic), log);
        for (frame, kind) in frames {
            self.enqueue_locked(&mut st, OutFrame::text(frame, kind, Live::No));
        }
    }

    /// Queues a WebSocket ping ahead of everything else, so a client that reads steadily
    /// answers it in time however much is queued.
    pub fn push_ping(&self) {
        let mut st = lock(&self.state);
        if st.close.is_none() {
            let ping = OutFrame::text(Frame::default(), FrameKind::Ping, Live::No);
            st.frames.push_front(ping);
            self.ready.notify_one();
        }
    }

    /// Starts closing the connection: the writer sends `close` as its last frame.
    pub fn close(&self, close: Close) {
        let mut st = lock(&self.state);
        if st.close.is_none() {
            self.close_locked(&mut st, close);
        }
    }

    /// Resolves once the connection is closing, with how.
    pub async fn closing(&self) -> Close {
        self.wait_closing(|_| true).await
    }

    /// Resolves once the connection is closing in a way that discards what is queued: a write
    /// in progress may be abandoned.
    pub async fn aborting(&self) -> Close {
        self.wait_closing(|close| close.discard).await
    }

    async fn wait_closing(&self, accept: impl Fn(&Close) -> bool) -> Close {
        loop {
            let notified = self.closed.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so a close set in between still wakes it.
            notified.as_mut().enable();
            if let Some(close) = lock(&self.state).close.filter(&accept) {
                return close;
            }
            notified.await;
        }
    }

    /// Resolves once the queue is within its limit (or the connection is closing): the reader
    /// waits here before taking the next client frame, so a client that sends without reading
    /// is slowed down by TCP instead of growing the queue.
    pub async fn room(&self) {
        loop {
            let notified = self.room.notified();
            {
                let st = lock(&self.state);
                if st.bytes <= self.limit || st.close.is_some() {
                    return;
                }
            }
            notified.await;
        }
    }

    /// Waits for work and moves every queued frame into `batch`. Returns
    /// the close to send instead once the connection is closing and nothing is left to write
    /// first.
    ///
    /// The queue and `batch` swap buffers, so a busy connection allocates none; before it waits,
    /// both are freed, so an idle connection holds none.
    pub async fn next_batch(&self, batch: &mut VecDeque<OutFrame>) -> Result<(), Close> {
        loop {
            let notified = self.ready.notified();
            {
                let mut st = lock(&self.state);
                if !st.frames.is_empty() {
                    if batch.is_empty() {
                        std::mem::swap(&mut st.frames, batch);
                    } else {
                        batch.extend(st.frames.drain(..));
                    }
                    return Ok(());
                }
                if let Some(close) = st.close {
                    return Err(close);
                }
                if st.frames.capacity() > 0 {
                    st.frames = VecDeque::new();
                }
            }
            if batch.is_empty() && batch.capacity() > 0 {
                *batch = VecDeque::new();
            }
            notified.await;
        }
    }

    /// The writer wrote a batch: release its bytes and count its messages as delivered.
    pub fn written(&self, batch: &VecDeque<OutFrame>) {
        let messages = batch
            .iter()
            .filter(|f| f.kind == FrameKind::Message)
            .count() as u64;
        self.counters.delivered(messages);
        let mut log = PolicyLog::default();
        let mut st = lock(&self.state);
        let was_over = st.bytes > self.limit;
        for frame in batch {
            st.release(frame);
        }
        if st.frames.is_empty() && st.close.is_none() {
            self.flush_lagged_locked(&mut st, None, &mut log);
        }
        // Only a reader that found the queue over its limit waits for room.
        if was_over && st.bytes <= self.limit {
            self.room.notify_one();
        }
        drop(st);
        log.write();
    }

    /// Whether this outbox's lock is held now (by this thread or another).
    #[cfg(test)]
    pub(crate) fn is_locked(&self) -> bool {
        self.state.try_lock().is_err()
    }

    fn enqueue_locked(&self, st: &mut State, frame: OutFrame) {
        st.bytes += frame.len;
        if frame.live == Live::Yes {
            st.live_bytes += frame.len;
        }
        st.frames.push_back(frame);
        if st.frames.len() == 1 {
            self.ready.notify_one();
        }
    }

    /// Queues the pending `lagged` notices: every topic's, or `only` that one's.
    fn flush_lagged_locked(&self, st: &mut State, only: Option<&str>, log: &mut PolicyLog) {
        let pending = std::mem::take(&mut st.lagged);
        for (topic, dropped) in pending {
            if only.is_some_and(|only| *only != *topic) {
                st.lagged.push((topic, dropped));
                continue;
            }
            let notice = encode_server_frame(&ServerFrame::Lagged {
                topic: &topic,
                dropped,
            });
            self.enqueue_locked(st, OutFrame::text(notice, FrameKind::Reply, Live::No));
            log.note(PolicyEvent::CaughtUp {
                client: self.client,
                topic,
                dropped,
            });
        }
    }

    fn close_locked(&self, st: &mut State, close: Close) {
        if close.discard {
            for frame in std::mem::take(&mut st.frames) {
                st.release(&frame);
            }
            st.lagged.clear();
        }
        st.close = Some(close);
        self.closed.notify_waiters();
        self.ready.notify_one();
        self.room.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(limit: usize, policy: SlowConsumerPolicy) -> (Outbox, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        (Outbox::new(1, limit, policy, counters.clone()), counters)
    }

    fn frame(n: usize) -> Frame {
        Frame::from("x".repeat(n))
    }

    /// Offers a live message of `n` bytes, writing the policy's lines at once.
    fn offer(out: &Outbox, n: usize, topic: &Arc<str>) -> Delivery {
        let mut log = PolicyLog::default();
        let delivery = out.push_message(&frame(n), topic, &mut log);
        log.write();
        delivery
    }

    #[tokio::test]
    async fn disconnect_policy_discards_and_closes_once_full() {
        let (out, counters) = outbox(100, SlowConsumerPolicy::Disconnect);
        let topic: Arc<str> = Arc::from("t");
        assert_eq!(offer(&out, 60, &topic), Delivery::Queued);
        assert_eq!(offer(&out, 40, &topic), Delivery::Queued);
        assert_eq!(offer(&out, 1, &topic), Delivery::Gone);
        assert_eq!(counters.snapshot().slow_consumers_disconnected, 1);
        let mut batch = VecDeque::new();
        assert_eq!(out.next_batch(&mut batch).await, Err(Close::SLOW_CONSUMER));
        assert!(batch.is_empty());
        assert_eq!(offer(&out, 1, &topic), Delivery::Gone);
    }

    #[tokio::test]
    async fn drop_policy_counts_and_reports_lag_before_the_next_message() {
        let (out, counters) = outbox(100, SlowConsumerPolicy::Drop);
        let topic: Arc<str> = Arc::from("t");
        assert_eq!(offer(&out, 100, &topic), Delivery::Queued);
        assert_eq!(offer(&out, 10, &topic), Delivery::Dropped);
        assert_eq!(offer(&out, 10, &topic), Delivery::Dropped);
        assert_eq!(counters.snapshot().messages_dropped, 2);
        let mut batch = VecDeque::new();
        out.next_batch(&mut batch).await.unwrap();
        assert_eq!(batch.len(), 1);
        out.written(&batch);
        assert_eq!(counters.snapshot().messages_delivered, 1);
        batch.clear();
        out.next_batch(&mut batch).await.unwrap();
        assert_eq!(
            batch[0].frame.as_str(),
            r#"{"action":"lagged","topic":"t","dropped":2}"#
        );
        assert_eq!(batch[0].kind, FrameKind::Reply);
    }

    #[tokio::test]
    async fn bytes_in_flight_count_until_written() {
        let (out, _) = outbox(100, SlowConsumerPolicy::Drop);
        let topic: Arc<str> = Arc::from("t");
        offer(&out, 80, &topic);
        let mut batch = VecDeque::new();
        out.next_batch(&mut batch).await.unwrap();
        assert_eq!(offer(&out, 30, &topic), Delivery::Dropped);
        out.written(&batch);
        assert_eq!(offer(&out, 30, &topic), Delivery::Queued);
    }

    #[tokio::test]
    async fn requested_frames_do_not_count_against_the_live_limit() {
        let (out, counters) = outbox(100, SlowConsumerPolicy::Disconnect);
        let topic: Arc<str> = Arc::from("t");
        // A replay three times the limit, then live messages up to the limit: all queued.
        for _ in 0..3 {
            out.push(frame(100), FrameKind::Message);
        }
        assert_eq!(offer(&out, 100, &topic), Delivery::Queued);
        assert_eq!(counters.snapshot().slow_consumers_disconnected, 0);
        // The reader waits for room: the whole queue is over the limit.
        let waited = tokio::time::timeout(std::time::Duration::from_millis(20), out.room()).await;
        assert!(waited.is_err(), "no room while 400 bytes are queued");
        let mut batch = VecDeque::new();
        out.next_batch(&mut batch).await.unwrap();
        out.written(&batch);
        out.room().await;
        assert_eq!(offer(&out, 100, &topic), Delivery::Queued);
        assert_eq!(offer(&out, 1, &topic), Delivery::Gone);
    }

    #[tokio::test]
    async fn graceful_close_writes_queued_frames_first() {
        let (out, _) = outbox(100, SlowConsumerPolicy::Disconnect);
        out.push(frame(5), FrameKind::Reply);
        out.close(Close::GOING_AWAY);
        out.push(frame(5), FrameKind::Reply);
        let mut batch = VecDeque::new();
        out.next_batch(&mut batch).await.unwrap();
        assert_eq!(batch.len(), 1);
        assert_eq!(out.next_batch(&mut batch).await, Err(Close::GOING_AWAY));
    }

    #[tokio::test]
    async fn the_caught_up_line_is_logged_after_the_lock_is_released() {
        let (out, _) = outbox(100, SlowConsumerPolicy::Drop);
        let out = Arc::new(out);
        let probed = out.clone();
        let (_guard, logs) = crate::broker::log_probe::probe_logs(move || !probed.is_locked());
        let topic: Arc<str> = Arc::from("t");
        offer(&out, 100, &topic);
        offer(&out, 10, &topic);
        let mut batch = VecDeque::new();
        out.next_batch(&mut batch).await.unwrap();
        out.written(&batch); // the queue emptied: the lagged notice is queued, and logged
        assert_eq!(logs.lines(), 2, "dropping and caught-up lines");
        assert_eq!(logs.failed(), 0, "lines logged under the outbox lock");
    }

    #[tokio::test]
    async fn a_topics_frames_follow_its_pending_lagged_notice() {
        let (out, _) = outbox(100, SlowConsumerPolicy::Drop);
        let (t, u): (Arc<str>, Arc<str>) = (Arc::from("t"), Arc::from("u"));
        offer(&out, 100, &t);
        offer(&out, 10, &u);
        offer(&out, 10, &t);
        let mut log = PolicyLog::default();
        let ack = (Frame::from("ack"), FrameKind::Reply);
        let replayed = (Frame::from("m"), FrameKind::Message);
        out.push_topic_frames("t", [ack, replayed], &mut log);
        assert_eq!(
            log.events(),
            [PolicyEvent::CaughtUp {
                client: 1,
                topic: t.clone(),
                dropped: 1
            }]
        );
        let mut batch = VecDeque::new();
        out.next_batch(&mut batch).await.unwrap();
        let frames: Vec<&str> = batch.iter().map(|f| f.frame.as_str()).collect();
        assert_eq!(
            frames[1..],
            [r#"{"action":"lagged","topic":"t","dropped":1}"#, "ack", "m"],
            "t's gap first; u's notice waits for room"
        );
        out.written(&batch);
        batch.clear();
        out.next_batch(&mut batch).await.unwrap();
        assert_eq!(
            batch[0].frame.as_str(),
            r#"{"action":"lagged","topic":"u","dropped":1}"#
        );
    }
}
