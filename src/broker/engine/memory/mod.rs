//! The memory engine: every topic, its history and its subscribers in this process.
//!
//! One read-mostly map from name to topic, held only to look a topic up, and one mutex per
//! topic. A publish assigns the seq, records the message and offers it to every subscriber
//! under that lock, and a subscribe registers and queues its ack and replay under the same
//! lock: that is what makes "ack, then replay, then live, no gap, no duplicate" hold while
//! publishers are busy. Nothing under a lock waits: pushing to an outbox never blocks.
//!
//! History is bounded in messages and bytes, per topic and in total ([`history`]).

mod history;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{AckBuilder, Engine, LocalFigures, Published, Subscriber, Subscription};
use crate::broker::info::{HistoryPage, NodeInfo, Subscribed, TopicInfo};
use crate::broker::outbox::FrameKind;
use crate::broker::policy_log::PolicyLog;
use crate::broker::subscribers::Subscribers;
use crate::broker::{BrokerConfig, BrokerError, NodeGauges, lock, new_epoch, validate_topic_name};
use crate::protocol::{MessageFrame, Replay, Timestamp, encode_message_frame};
use history::{Budget, History};

pub struct MemoryEngine {
    config: BrokerConfig,
    topics: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    budget: Budget,
    gauges: Arc<NodeGauges>,
}

impl MemoryEngine {
    pub fn new(config: BrokerConfig, gauges: Arc<NodeGauges>) -> Self {
        MemoryEngine {
            budget: Budget::new(config.history_bytes_per_topic, config.history_bytes_total),
            config,
            topics: RwLock::default(),
            gauges,
        }
    }

    /// Runs `op` on the topic named `name`, creating it first if that is configured. Retries
    /// when the topic is deleted under our feet and auto-creation may bring it back.
    fn with_topic<T>(
        &self,
        name: &str,
        mut op: impl FnMut(&Arc<Topic>) -> Result<T, Deleted>,
    ) -> Result<T, BrokerError> {
        loop {
            let topic = if self.config.auto_create_topics {
                self.existing_or_new(name)?
            } else {
                self.existing(name)?
            };
            match op(&topic) {
                Ok(value) => return Ok(value),
                Err(Deleted) if self.config.auto_create_topics => continue,
                Err(Deleted) => return Err(BrokerError::TopicNotFound(name.to_owned())),
            }
        }
    }

    fn existing(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        // Looked up first: every topic's name was validated when it was made, so a name found
        // needs no check (every publish comes through here), and one not found is checked then.
        if let Some(topic) = self.read_topics().get(name) {
            return Ok(topic.clone());
        }
        validate_topic_name(name)?;
        Err(BrokerError::TopicNotFound(name.to_owned()))
    }

    fn existing_or_new(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        match self.existing(name) {
            Err(BrokerError::TopicNotFound(_)) => {}
            found_or_invalid => return found_or_invalid,
        }
        let mut topics = self.write_topics();
        if let Some(topic) = topics.get(name) {
            return Ok(topic.clone());
        }
        self.check_room_for_topic(&topics)?;
        let topic = self.new_topic(name);
        topics.insert(topic.name.clone(), topic.clone());
        drop(topics);
        tracing::info!(topic = name, "topic created on first use");
        Ok(topic)
    }

    fn check_room_for_topic(
        &self,
        topics: &HashMap<Arc<str>, Arc<Topic>>,
    ) -> Result<(), BrokerError> {
        let max = self.config.max_topics;
        if topics.len() >= max {
            return Err(BrokerError::TooManyTopics { max });
        }
        Ok(())
    }

    fn new_topic(&self, name: &str) -> Arc<Topic> {
        Arc::new(Topic::new(
            Arc::from(name),
            Arc::from(new_epoch()),
            self.config.history_size,
        ))
    }

    fn read_topics(&self) -> RwLockReadGuard<'_, HashMap<Arc<str>, Arc<Topic>>> {
        self.topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_topics(&self) -> RwLockWriteGuard<'_, HashMap<Arc<str>, Arc<Topic>>> {
        self.topics
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn create_topic_now(&self, name: &str) -> Result<TopicInfo, BrokerError> {
        validate_topic_name(name)?;
        let mut topics = self.write_topics();
        if topics.contains_key(name) {
            return Err(BrokerError::TopicExists(name.to_owned()));
        }
        self.check_room_for_topic(&topics)?;
        let topic = self.new_topic(name);
        let info = topic.info();
        topics.insert(topic.name.clone(), topic);
        drop(topics);
        tracing::info!(topic = name, "topic created");
        Ok(info)
    }

    fn delete_topic_now(&self, name: &str) -> Result<(), BrokerError> {
        validate_topic_name(name)?;
        let topic = self
            .write_topics()
            .remove(name)
            .ok_or_else(|| BrokerError::TopicNotFound(name.to_owned()))?;
        topic.delete(&self.budget);
        tracing::info!(topic = name, "topic deleted");
        Ok(())
    }

    /// Trims the oldest messages of the topics holding the most (other than `publisher`, which
    /// trimmed itself to its share), while history as a whole is over its budget.
    fn trim_largest(&self, publisher: &Arc<Topic>) {
        while self.budget.over() {
            let largest = self
                .read_topics()
                .values()
                .filter(|t| !Arc::ptr_eq(t, publisher) && t.history_bytes() > 0)
                .max_by_key(|t| t.history_bytes())
                .cloned();
            match largest {
                Some(topic) => topic.trim_while_over(&self.budget),
                None => return,
            }
        }
    }

    fn topics_now(&self) -> Vec<TopicInfo> {
        let topics: Vec<Arc<Topic>> = self.read_topics().values().cloned().collect();
        let mut infos: Vec<TopicInfo> = topics.iter().map(|t| t.info()).collect();
        infos.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        infos
    }
}

impl Engine for MemoryEngine {
    async fn create_topic(&self, name: &str) -> Result<TopicInfo, BrokerError> {
        self.create_topic_now(name)
    }

    async fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        self.delete_topic_now(name)
    }

    async fn topics(&self) -> Result<Vec<TopicInfo>, BrokerError> {
        Ok(self.topics_now())
    }

    async fn topic(&self, name: &str) -> Result<TopicInfo, BrokerError> {
        Ok(self.existing(name)?.info())
    }

    async fn publish(&self, name: &str, message: &str) -> Result<Published, BrokerError> {
        self.with_topic(name, |topic| {
            let published = topic.publish(message, &self.budget)?;
            if self.budget.over() {
                self.trim_largest(topic);
            }
            Ok(published)
        })
    }

    async fn history(
        &self,
        name: &str,
        since: u64,
        limit: usize,
    ) -> Result<HistoryPage, BrokerError> {
        let (messages, last_seq) = self.existing(name)?.history(since, limit);
        Ok(HistoryPage { messages, last_seq })
    }

    async fn subscribe(
        &self,
        name: &str,
        subscriber: Subscriber<'_>,
        replay: &Replay<'_>,
        ack: AckBuilder<'_>,
    ) -> Result<Arc<dyn Subscription>, BrokerError> {
        let topic = self.with_topic(name, |topic| {
            topic.subscribe(subscriber, replay, &mut *ack)?;
            Ok(topic.clone())
        })?;
        Ok(topic)
    }

    fn unavailable(&self) -> Option<String> {
        None
    }

    async fn nodes(&self) -> Vec<NodeInfo> {
        vec![self.gauges.node_info(self.local().subscriptions)]
    }

    fn local(&self) -> LocalFigures {
        let topics: Vec<Arc<Topic>> = self.read_topics().values().cloned().collect();
        LocalFigures {
            subscriptions: topics.iter().map(|t| t.info().subscribers as u64).sum(),
            topics: Some(topics.len() as u64),
        }
    }

    fn history_bytes(&self) -> Option<u64> {
        Some(self.budget.held() as u64)
    }
}

/// The topic was deleted between looking it up and locking it.
#[derive(Debug)]
struct Deleted;

struct Topic {
    name: Arc<str>,
    /// The name as a JSON string, ready to splice into frames.
    name_json: String,
    epoch: Arc<str>,
    history_size: usize,
    /// What its history holds, in bytes, readable without the lock (to find the largest).
    history_bytes: AtomicUsize,
    state: Mutex<TopicState>,
}

#[derive(Default)]
struct TopicState {
    last_seq: u64,
    /// The newest messages, oldest first; seqs are consecutive and end at `last_seq`.
    history: History,
    subscribers: Subscribers,
    deleted: bool,
}

impl Topic {
    fn new(name: Arc<str>, epoch: Arc<str>, history_size: usize) -> Self {
        let name_json = serde_json::to_string(&*name).unwrap_or_default();
        Topic {
            name,
            name_json,
            epoch,
            history_size,
            history_bytes: AtomicUsize::new(0),
            state: Mutex::new(TopicState::default()),
        }
    }

    fn history_bytes(&self) -> usize {
        self.history_bytes.load(Relaxed)
    }

    /// Assigns the next seq, keeps the message in history and offers it to every subscriber.
    fn publish(&self, message: &str, budget: &Budget) -> Result<Published, Deleted> {
        let mut log = PolicyLog::default();
        let mut st = lock(&self.state);
        if st.deleted {
            return Err(Deleted);
        }
        st.last_seq += 1;
        let seq = st.last_seq;
        let published_at = Timestamp::now();
        let publication = Arc::new(encode_message_frame(
            &self.name_json,
            seq,
            message,
            published_at.as_str(),
        ));
        st.subscribers
            .fan_out(&publication.frame, seq, &self.name, &mut log);
        if self.history_size > 0 {
            st.history.push(publication, self.history_size, budget);
            self.history_bytes.store(st.history.bytes(), Relaxed);
        }
        drop(st);
        log.write();
        Ok(Published {
            seq,
            epoch: self.epoch.clone(),
        })
    }

    /// Registers the subscriber (once, however often it subscribes) and queues the ack built by
    /// `ack` followed by the replayed messages, all before any later publish can reach it.
    fn subscribe(
        &self,
        subscriber: Subscriber<'_>,
        replay: &Replay<'_>,
        ack: AckBuilder<'_>,
    ) -> Result<(), Deleted> {
        let mut log = PolicyLog::default();
        let mut st = lock(&self.state);
        if st.deleted {
            return Err(Deleted);
        }
        let (skip, recovered) = replay_start(&self.epoch, st.last_seq, st.history.len(), replay);
        let replayed = st.history.len() - skip;
        st.subscribers.add(subscriber.client, subscriber.outbox, 0);
        let ack = ack(&Subscribed {
            topic: &self.name,
            epoch: &self.epoch,
            replayed,
            last_seq: st.last_seq,
            recovered,
        });
        let replay = st.history.iter().skip(skip);
        let frames = std::iter::once((ack, FrameKind::Reply))
            .chain(replay.map(|p| (p.frame.clone(), FrameKind::Message)));
        subscriber
            .outbox
            .push_topic_frames(&self.name, frames, &mut log);
        drop(st);
        log.write();
        Ok(())
    }

    /// Marks the topic deleted, tells every subscriber and lets go of them and of history.
    fn delete(&self, budget: &Budget) {
        let mut log = PolicyLog::default();
        let mut st = lock(&self.state);
        st.deleted = true;
        st.subscribers.delete(&self.name, &mut log);
        st.history.clear(budget);
        self.history_bytes.store(0, Relaxed);
        drop(st);
        log.write();
    }

    /// Drops the oldest messages while history as a whole is over its budget.
    fn trim_while_over(&self, budget: &Budget) {
        let mut st = lock(&self.state);
        while budget.over() && st.history.pop_oldest(budget) {}
        self.history_bytes.store(st.history.bytes(), Relaxed);
    }

    fn info(&self) -> TopicInfo {
        let st = lock(&self.state);
        TopicInfo {
            name: self.name.clone(),
            epoch: self.epoch.clone(),
            subscribers: st.subscribers.len(),
            last_seq: st.last_seq,
            in_history: st.history.len(),
        }
    }

    /// History after `since`, oldest first, at most `limit` entries, and the last seq.
    fn history(&self, since: u64, limit: usize) -> (Vec<Arc<MessageFrame>>, u64) {
        let st = lock(&self.state);
        let page = st
            .history
            .iter()
            .filter(|p| p.seq > since)
            .take(limit)
            .cloned()
            .collect();
        (page, st.last_seq)
    }
}

impl Subscription for Topic {
    fn unsubscribe(&self, client: u64) {
        lock(&self.state).subscribers.remove(client);
    }

    fn is_deleted(&self) -> bool {
        lock(&self.state).deleted
    }

    fn delivered(&self, _epoch: &str, _seq: u64) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(std::future::ready(()))
    }
}

/// Where a replay starts in a history of `held` messages ending at `last_seq`: how many to skip,
/// and the `recovered` flag for a resume. Shared by both engines.
pub fn replay_start(
    epoch: &str,
    last_seq: u64,
    held: usize,
    replay: &Replay<'_>,
) -> (usize, Option<bool>) {
    match replay {
        Replay::None => (held, None),
        Replay::Last(n) => (held - (*n).min(held as u64) as usize, None),
        Replay::After { seq, epoch: seen } => {
            let same_life = seen.as_deref().is_none_or(|e| e == epoch);
            if !same_life || *seq > last_seq {
                // The position means nothing in this topic's life: hand over all it holds.
                return (0, Some(false));
            }
            let oldest_held = last_seq + 1 - held as u64;
            let missed = seq + 1 < oldest_held;
            let skip = (seq + 1).saturating_sub(oldest_held) as usize;
            (skip, Some(!missed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::SlowConsumerPolicy;
    use crate::broker::log_probe::probe_logs;
    use crate::broker::outbox::Outbox;
    use crate::protocol::Frame;

    #[test]
    fn slow_consumer_lines_are_logged_after_the_topic_and_outbox_locks_are_released() {
        for policy in [SlowConsumerPolicy::Drop, SlowConsumerPolicy::Disconnect] {
            let topic = Arc::new(Topic::new(Arc::from("t"), Arc::from("e"), 10));
            let outbox = Arc::new(Outbox::new(1, 200, policy, Arc::default()));
            let (t, o) = (topic.clone(), outbox.clone());
            let (_guard, logs) = probe_logs(move || t.state.try_lock().is_ok() && !o.is_locked());
            let subscriber = Subscriber {
                client: 1,
                outbox: &outbox,
            };
            let mut ack = |_: &Subscribed<'_>| Frame::from("ack");
            topic
                .subscribe(subscriber, &Replay::None, &mut ack)
                .unwrap();
            let message = format!("\"{}\"", "x".repeat(100));
            let budget = Budget::new(1 << 20, 1 << 20);
            for _ in 0..3 {
                topic.publish(&message, &budget).unwrap();
            }
            topic
                .subscribe(subscriber, &Replay::None, &mut ack)
                .unwrap();
            assert!(logs.lines() >= 1, "{policy:?}: a slow-consumer line");
            assert_eq!(logs.failed(), 0, "{policy:?}: lines logged under a lock");
        }
    }
}
