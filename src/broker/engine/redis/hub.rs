//! The node's hub: for each topic its clients hold, the local subscribers and the seq this node
//! delivered last.
//!
//! Publications arrive from Redis pub/sub in seq order, but a reconnect can lose some and a
//! subscribe races with them. So the hub applies each topic's publications strictly in order:
//! a seq already delivered is skipped, the next one is delivered, and one past a hole is held
//! back while the hole is filled from history (or, when history no longer has it, announced
//! with `lagged`): never a silent gap, never a duplicate.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, OnceCell, mpsc, watch};

use crate::broker::engine::{AckBuilder, Subscriber, Subscription};
use crate::broker::info::Subscribed;
use crate::broker::lock;
use crate::broker::outbox::FrameKind;
use crate::broker::policy_log::PolicyLog;
use crate::broker::subscribers::Subscribers;
use crate::protocol::{Frame, ServerFrame, encode_server_frame};

/// Delivered frames kept per topic for subscribers whose snapshot of history is older than what
/// the hub delivered already.
const RECENT: usize = 256;
/// Publications held back per topic while waiting for a snapshot or a hole to fill.
const PENDING: usize = 10_000;

/// What the hub asks of the engine's control task.
#[derive(Debug)]
pub enum Control {
    /// Leave the channel of a topic that no local client holds any more.
    Leave(Arc<str>),
}

/// When a topic's position is compared with Redis's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Every few seconds: only a topic that stopped moving can have a hole.
    IfStuck,
    /// After a reconnect: publications were lost.
    Now,
}

/// A range of seqs this node has not delivered: `after + 1 ..= up_to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub after: u64,
    pub up_to: u64,
}

/// What a subscribe read from Redis: the topic's life and position, and the replay.
pub struct Snapshot {
    pub epoch: Arc<str>,
    pub last_seq: u64,
    pub recovered: Option<bool>,
    pub replay: Vec<Frame>,
}

/// Why a subscribe must read its snapshot again.
#[derive(Debug, PartialEq, Eq)]
pub enum Retry {
    /// The hub topic was deleted or left meanwhile: start again with a fresh one.
    Gone,
    /// The snapshot is too old to join up with what was delivered: read again.
    Stale,
}

/// The last seq delivered, and the life it belongs to; `None` before the first snapshot and
/// once the topic is gone.
type Delivered = Option<(Arc<str>, u64)>;

pub struct HubTopic {
    pub name: Arc<str>,
    pub channel: String,
    /// Set once this node has joined the topic's channel.
    pub joined: OnceCell<()>,
    state: Mutex<HubState>,
    delivered: watch::Sender<Delivered>,
    control: mpsc::UnboundedSender<Control>,
    /// Told whenever the topic's local subscribers change, so the node reports at once.
    changed: Arc<Notify>,
}

#[derive(Default)]
struct HubState {
    life: Option<Life>,
    /// Publications that cannot be delivered yet (no snapshot, or a hole before them).
    pending: BTreeMap<u64, (Arc<str>, Frame)>,
    recent: VecDeque<(u64, Frame)>,
    /// The seq delivered when the last periodic check looked: a topic still there at the next
    /// check has stopped moving.
    checked: Option<u64>,
    subscribers: Subscribers,
    /// Subscribes under way: the topic must not be left while one is.
    joining: usize,
    /// Deleted, or left: a new subscribe needs a new hub topic.
    gone: bool,
}

struct Life {
    epoch: Arc<str>,
    delivered: u64,
}

/// Log lines owed by a section under the topic's lock, written once it is released.
#[derive(Default)]
struct LogLines {
    policy: PolicyLog,
    /// Publications announced lost.
    lost: u64,
}

impl LogLines {
    fn write(self, topic: &str) {
        if self.lost > 0 {
            tracing::warn!(
                topic,
                dropped = self.lost,
                "publications lost between Redis and this node; subscribers told with 'lagged'"
            );
        }
        self.policy.write();
    }
}

impl HubTopic {
    pub fn new(
        name: Arc<str>,
        channel: String,
        control: mpsc::UnboundedSender<Control>,
        changed: Arc<Notify>,
    ) -> Self {
        HubTopic {
            name,
            channel,
            joined: OnceCell::new(),
            state: Mutex::default(),
            delivered: watch::Sender::new(None),
            control,
            changed,
        }
    }

    /// Local subscribers now.
    pub fn subscribers(&self) -> usize {
        lock(&self.state).subscribers.len()
    }

    /// The life and seq delivered last, for a resynchronization.
    pub fn position(&self) -> Option<(Arc<str>, u64)> {
        let st = lock(&self.state);
        st.life.as_ref().map(|l| (l.epoch.clone(), l.delivered))
    }

    /// A subscribe starts: the topic is not left until [`HubTopic::joined_done`].
    /// `false` when this hub topic is gone already.
    pub fn start_joining(&self) -> bool {
        let mut st = lock(&self.state);
        if st.gone {
            return false;
        }
        st.joining += 1;
        true
    }

    /// A subscribe ended (registered or failed).
    pub fn joined_done(&self) {
        let mut st = lock(&self.state);
        st.joining = st.joining.saturating_sub(1);
        self.leave_if_unused(&st);
    }

    /// Marks the topic left, if nobody holds or joins it. `true` when it was.
    pub fn leave_now(&self) -> bool {
        let mut st = lock(&self.state);
        if st.subscribers.is_empty() && st.joining == 0 && !st.gone {
            st.gone = true;
            self.delivered.send_replace(None);
            return true;
        }
        false
    }

    fn leave_if_unused(&self, st: &HubState) {
        if st.subscribers.is_empty() && st.joining == 0 && !st.gone {
            let _ = self.control.send(Control::Leave(self.name.clone()));
        }
    }

    /// Registers a subscriber from `snapshot`: queues the ack, the replay, and what this node
    /// delivered after the snapshot was read; later publications follow as they arrive.
    pub fn register(
        &self,
        snapshot: &Snapshot,
        subscriber: Subscriber<'_>,
        ack: AckBuilder<'_>,
    ) -> Result<(), Retry> {
        self.locked(|st, lines| {
            if st.gone {
                return Err(Retry::Gone);
            }
            let life = st.life.get_or_insert_with(|| Life {
                epoch: snapshot.epoch.clone(),
                delivered: snapshot.last_seq,
            });
            if life.epoch != snapshot.epoch {
                return Err(Retry::Stale);
            }
            let delivered = life.delivered;
            let catch_up: Vec<Frame> = if snapshot.last_seq < delivered {
                let first = snapshot.last_seq + 1;
                if st.recent.front().is_none_or(|(seq, _)| *seq > first) {
                    return Err(Retry::Stale);
                }
                st.recent
                    .iter()
                    .filter(|(seq, _)| *seq >= first)
                    .map(|(_, f)| f.clone())
                    .collect()
            } else {
                Vec::new()
            };
            let ack = ack(&Subscribed {
                topic: &self.name,
                epoch: &snapshot.epoch,
                replayed: snapshot.replay.len(),
                last_seq: snapshot.last_seq,
                recovered: snapshot.recovered,
            });
            let replay = snapshot.replay.iter().chain(&catch_up);
            let frames = std::iter::once((ack, FrameKind::Reply))
                .chain(replay.map(|f| (f.clone(), FrameKind::Message)));
            let outbox = subscriber.outbox;
            outbox.push_topic_frames(&self.name, frames, &mut lines.policy);
            let after = snapshot.last_seq.max(delivered);
            st.subscribers.add(subscriber.client, outbox, after);
            self.changed.notify_one();
            self.publish_position(st);
            self.drain_pending(st, lines);
            Ok(())
        })
    }

    /// Applies a publication from the channel. Returns the hole to fill first when it comes
    /// after one (it is held back until [`HubTopic::fill`]).
    pub fn apply(&self, epoch: &str, seq: u64, frame: Frame) -> Option<Gap> {
        self.locked(|st, lines| {
            if st.gone {
                return None;
            }
            let Some(life) = &st.life else {
                hold(st, seq, Arc::from(epoch), frame);
                return None;
            };
            if &*life.epoch != epoch {
                // A publication of another life: the one we knew ended without our hearing it.
                self.end(st, lines);
                return None;
            }
            let delivered = life.delivered;
            if seq <= delivered {
                return None;
            }
            if seq == delivered + 1 {
                self.deliver(st, seq, frame, lines);
                self.drain_pending(st, lines);
                return None;
            }
            hold(st, seq, Arc::from(epoch), frame);
            Some(Gap {
                after: delivered,
                up_to: seq - 1,
            })
        })
    }

    /// Fills a hole with `frames` read from history (ascending seqs) and announces what history
    /// no longer had with `lagged`; then delivers what was held back behind the hole.
    pub fn fill(&self, epoch: &str, gap: Gap, frames: Vec<(u64, Frame)>) {
        self.locked(|st, lines| {
            let Some(life) = &st.life else { return };
            if st.gone || &*life.epoch != epoch {
                return;
            }
            for (seq, frame) in frames {
                let delivered = st.life.as_ref().map_or(0, |l| l.delivered);
                if seq <= delivered || seq > gap.up_to {
                    continue;
                }
                self.announce_lost(st, seq - 1, lines);
                self.deliver(st, seq, frame, lines);
            }
            self.announce_lost(st, gap.up_to, lines);
            self.drain_pending(st, lines);
        });
    }

    /// The topic's life `epoch` ended (deleted on some node): tell the local subscribers.
    pub fn deleted(&self, epoch: &str) {
        self.locked(|st, lines| {
            let ours = st.life.as_ref().is_none_or(|l| &*l.epoch == epoch);
            if ours && !st.gone {
                self.end(st, lines);
            }
        });
    }

    /// Checks the hub's position against the topic's in Redis (`None`: the topic is gone), and
    /// returns the hole to fill when this node is behind.
    ///
    /// A periodic check (`Check::IfStuck`) reports a hole only when this node has delivered
    /// nothing since the previous one: publications still on their way over pub/sub are no
    /// hole, and reading them from history meanwhile could find them trimmed already and call
    /// them lost. After a reconnect (`Check::Now`) what is missing is reported at once.
    pub fn check(&self, current: Option<(&str, u64)>, when: Check) -> Option<Gap> {
        self.locked(|st, lines| {
            let life = st.life.as_ref()?;
            let delivered = life.delivered;
            let stuck = st.checked.replace(delivered) == Some(delivered);
            match current {
                Some((epoch, last_seq)) if epoch == &*life.epoch => {
                    let behind = last_seq > delivered;
                    (behind && (stuck || when == Check::Now)).then_some(Gap {
                        after: delivered,
                        up_to: last_seq,
                    })
                }
                _ => {
                    if !st.gone {
                        self.end(st, lines);
                    }
                    None
                }
            }
        })
    }

    /// Runs `f` under the topic's lock, then writes the log lines it left.
    fn locked<T>(&self, f: impl FnOnce(&mut HubState, &mut LogLines) -> T) -> T {
        let mut lines = LogLines::default();
        let result = f(&mut lock(&self.state), &mut lines);
        lines.write(&self.name);
        result
    }

    fn deliver(&self, st: &mut HubState, seq: u64, frame: Frame, lines: &mut LogLines) {
        st.subscribers
            .fan_out(&frame, seq, &self.name, &mut lines.policy);
        if st.recent.len() == RECENT {
            st.recent.pop_front();
        }
        st.recent.push_back((seq, frame));
        if let Some(life) = &mut st.life {
            life.delivered = seq;
        }
        self.publish_position(st);
    }

    /// Seqs up to `up_to` that were not delivered are lost: say so, and move past them.
    fn announce_lost(&self, st: &mut HubState, up_to: u64, lines: &mut LogLines) {
        let Some(life) = &mut st.life else { return };
        if up_to <= life.delivered {
            return;
        }
        let dropped = up_to - life.delivered;
        life.delivered = up_to;
        lines.lost += dropped;
        let notice = encode_server_frame(&ServerFrame::Lagged {
            topic: &self.name,
            dropped,
        });
        st.subscribers
            .notify(&self.name, &notice, &mut lines.policy);
        self.publish_position(st);
    }

    fn drain_pending(&self, st: &mut HubState, lines: &mut LogLines) {
        while let Some(entry) = st.pending.first_entry() {
            let Some(life) = &st.life else { return };
            let seq = *entry.key();
            if seq <= life.delivered || entry.get().0 != life.epoch {
                entry.remove();
            } else if seq == life.delivered + 1 {
                let (_, frame) = entry.remove();
                self.deliver(st, seq, frame, lines);
            } else {
                return;
            }
        }
    }

    fn end(&self, st: &mut HubState, lines: &mut LogLines) {
        st.subscribers.delete(&self.name, &mut lines.policy);
        self.changed.notify_one();
        st.pending.clear();
        st.recent.clear();
        st.gone = true;
        self.delivered.send_replace(None);
        // Nobody holds it now: leave the channel.
        let _ = self.control.send(Control::Leave(self.name.clone()));
    }

    fn publish_position(&self, st: &HubState) {
        let position = st.life.as_ref().map(|l| (l.epoch.clone(), l.delivered));
        self.delivered.send_if_modified(|p| {
            let changed = *p != position;
            *p = position;
            changed
        });
    }
}

/// Holds a publication back, within bounds: past them the oldest is dropped, to be filled from
/// history like any hole.
fn hold(st: &mut HubState, seq: u64, epoch: Arc<str>, frame: Frame) {
    if st.pending.len() >= PENDING {
        st.pending.pop_first();
    }
    st.pending.insert(seq, (epoch, frame));
}

impl Subscription for HubTopic {
    fn unsubscribe(&self, client: u64) {
        let mut st = lock(&self.state);
        st.subscribers.remove(client);
        self.changed.notify_one();
        self.leave_if_unused(&st);
    }

    fn is_deleted(&self) -> bool {
        lock(&self.state).gone
    }

    fn delivered(&self, epoch: &str, seq: u64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut rx = self.delivered.subscribe();
        let epoch: Arc<str> = Arc::from(epoch);
        Box::pin(async move {
            let reached = rx.wait_for(|p| match p {
                Some((e, delivered)) => *e != epoch || *delivered >= seq,
                None => true,
            });
            // Bounded: a hole being filled from a stalled Redis must not hold the ack forever.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), reached).await;
        })
    }
}

/// Every topic this node's clients hold.
#[derive(Default)]
pub struct Hub {
    topics: Mutex<HashMap<Arc<str>, Arc<HubTopic>>>,
    /// Notified when any topic's local subscribers change.
    pub changed: Arc<Notify>,
}

impl Hub {
    /// The hub topic for `name`, made if needed, with a subscribe under way on it.
    pub fn join(
        &self,
        name: &str,
        channel: impl FnOnce() -> String,
        control: &mpsc::UnboundedSender<Control>,
    ) -> Arc<HubTopic> {
        let mut topics = lock(&self.topics);
        if let Some(topic) = topics.get(name)
            && topic.start_joining()
        {
            return topic.clone();
        }
        let name: Arc<str> = Arc::from(name);
        let topic = Arc::new(HubTopic::new(
            name.clone(),
            channel(),
            control.clone(),
            self.changed.clone(),
        ));
        topic.start_joining();
        topics.insert(name, topic.clone());
        topic
    }

    pub fn get(&self, name: &str) -> Option<Arc<HubTopic>> {
        lock(&self.topics).get(name).cloned()
    }

    /// Forgets `name` if nobody holds it; returns its channel to leave.
    pub fn leave(&self, name: &str) -> Option<String> {
        let mut topics = lock(&self.topics);
        let topic = topics.get(name)?;
        if topic.leave_now() || topic.is_deleted() {
            let topic = topics.remove(name)?;
            return Some(topic.channel.clone());
        }
        None
    }

    pub fn all(&self) -> Vec<Arc<HubTopic>> {
        lock(&self.topics).values().cloned().collect()
    }

    /// Local subscribers per topic, and their total.
    pub fn counts(&self) -> (HashMap<String, usize>, u64) {
        let topics = self.all();
        let counts: HashMap<String, usize> = topics
            .iter()
            .map(|t| (t.name.to_string(), t.subscribers()))
            .filter(|(_, n)| *n > 0)
            .collect();
        let total = counts.values().map(|n| *n as u64).sum();
        (counts, total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::SlowConsumerPolicy;
    use crate::broker::outbox::Outbox;
    use crate::broker::stats::Counters;

    fn topic() -> (HubTopic, mpsc::UnboundedReceiver<Control>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            HubTopic::new(Arc::from("t"), "ch".into(), tx, Arc::default()),
            rx,
        )
    }

    fn outbox() -> Arc<Outbox> {
        Arc::new(Outbox::new(
            1,
            1 << 20,
            SlowConsumerPolicy::Disconnect,
            Arc::new(Counters::default()),
        ))
    }

    async fn frames(outbox: &Outbox) -> Vec<String> {
        let mut batch = std::collections::VecDeque::new();
        outbox.next_batch(&mut batch).await.unwrap();
        batch.iter().map(|f| f.frame.to_string()).collect()
    }

    fn snapshot(last_seq: u64, replay: &[&str]) -> Snapshot {
        Snapshot {
            epoch: Arc::from("e"),
            last_seq,
            recovered: None,
            replay: replay.iter().map(|f| Frame::from(*f)).collect(),
        }
    }

    fn ack(_: &Subscribed<'_>) -> Frame {
        Frame::from("ack")
    }

    #[tokio::test]
    async fn publications_before_the_snapshot_are_held_then_deduplicated() {
        let (t, _rx) = topic();
        t.apply("e", 3, Frame::from("m3"));
        t.apply("e", 4, Frame::from("m4"));
        let out = outbox();
        let sub = Subscriber {
            client: 1,
            outbox: &out,
        };
        t.register(&snapshot(3, &["m2", "m3"]), sub, &mut ack)
            .unwrap();
        assert_eq!(frames(&out).await, ["ack", "m2", "m3", "m4"]);
    }

    #[tokio::test]
    async fn a_late_snapshot_catches_up_from_what_was_delivered() {
        let (t, _rx) = topic();
        let (a, b) = (outbox(), outbox());
        t.register(
            &snapshot(1, &[]),
            Subscriber {
                client: 1,
                outbox: &a,
            },
            &mut ack,
        )
        .unwrap();
        t.apply("e", 2, Frame::from("m2"));
        t.apply("e", 3, Frame::from("m3"));
        // b read history when seq 1 was the last: m2 and m3 reach it after its replay.
        t.register(
            &snapshot(1, &["m1"]),
            Subscriber {
                client: 2,
                outbox: &b,
            },
            &mut ack,
        )
        .unwrap();
        t.apply("e", 3, Frame::from("m3"));
        t.apply("e", 4, Frame::from("m4"));
        assert_eq!(frames(&b).await, ["ack", "m1", "m2", "m3", "m4"]);
        assert_eq!(frames(&a).await, ["ack", "m2", "m3", "m4"]);
    }

    #[tokio::test]
    async fn a_hole_is_filled_from_history_or_announced() {
        let (t, _rx) = topic();
        let out = outbox();
        t.register(
            &snapshot(0, &[]),
            Subscriber {
                client: 1,
                outbox: &out,
            },
            &mut ack,
        )
        .unwrap();
        assert_eq!(t.apply("e", 1, Frame::from("m1")), None);
        let gap = t.apply("e", 5, Frame::from("m5")).unwrap();
        assert_eq!(gap, Gap { after: 1, up_to: 4 });
        // History still has 3 and 4 only: 2 is announced lost, then 3, 4 and the held 5 follow.
        t.fill(
            "e",
            gap,
            vec![(3, Frame::from("m3")), (4, Frame::from("m4"))],
        );
        assert_eq!(
            frames(&out).await,
            [
                "ack",
                "m1",
                r#"{"action":"lagged","topic":"t","dropped":1}"#,
                "m3",
                "m4",
                "m5"
            ]
        );
    }

    #[tokio::test]
    async fn a_periodic_check_calls_a_topic_behind_only_once_it_stopped_moving() {
        let (t, _rx) = topic();
        let out = outbox();
        t.register(
            &snapshot(0, &[]),
            Subscriber {
                client: 1,
                outbox: &out,
            },
            &mut ack,
        )
        .unwrap();
        // Redis is at 5 while 1..5 are still on their way: no hole yet.
        assert_eq!(t.check(Some(("e", 5)), Check::IfStuck), None);
        t.apply("e", 1, Frame::from("m1"));
        assert_eq!(t.check(Some(("e", 5)), Check::IfStuck), None, "it moved");
        // Nothing arrived since: 2..5 were lost.
        let gap = Gap { after: 1, up_to: 5 };
        assert_eq!(t.check(Some(("e", 5)), Check::IfStuck), Some(gap));
        // After a reconnect the hole is reported at once.
        assert_eq!(
            t.check(Some(("e", 6)), Check::Now),
            Some(Gap { after: 1, up_to: 6 })
        );
    }

    #[tokio::test]
    async fn another_life_ends_the_topic_for_its_subscribers() {
        let (t, mut rx) = topic();
        let out = outbox();
        t.register(
            &snapshot(0, &[]),
            Subscriber {
                client: 1,
                outbox: &out,
            },
            &mut ack,
        )
        .unwrap();
        t.apply("other", 1, Frame::from("x"));
        assert_eq!(
            frames(&out).await,
            ["ack", r#"{"action":"topic_deleted","topic":"t"}"#]
        );
        assert!(t.is_deleted());
        assert!(matches!(rx.recv().await, Some(Control::Leave(_))));
    }

    #[tokio::test]
    async fn the_lost_line_is_logged_after_the_topic_lock_is_released() {
        let (t, _rx) = topic();
        let t = Arc::new(t);
        let probed = t.clone();
        let (_guard, logs) =
            crate::broker::log_probe::probe_logs(move || probed.state.try_lock().is_ok());
        let out = outbox();
        let sub = Subscriber {
            client: 1,
            outbox: &out,
        };
        t.register(&snapshot(0, &[]), sub, &mut ack).unwrap();
        t.apply("e", 1, Frame::from("m1"));
        let gap = t.apply("e", 4, Frame::from("m4")).unwrap();
        t.fill("e", gap, Vec::new()); // history had neither 2 nor 3
        assert_eq!(logs.lines(), 1, "one line for the lost publications");
        assert_eq!(logs.failed(), 0, "logged under the topic lock");
    }
}
