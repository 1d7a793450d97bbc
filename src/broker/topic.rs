//! One topic: its sequence numbers, history ring, epoch and subscribers.
//!
//! Everything about a topic sits behind its own mutex, so topics never contend with each other.
//! A publish assigns the seq, records the message and offers it to every subscriber under that
//! lock, and a subscribe registers and queues its ack and replay under the same lock: that is
//! what makes "ack, then replay, then live, no gap, no duplicate" hold while publishers are busy.
//! Nothing under the lock waits: pushing to a subscriber's outbox never blocks.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

use super::lock;
use super::outbox::{Delivery, Outbox};
use crate::protocol::{
    Frame, MessageFrame, Replay, ServerFrame, encode_message_frame, encode_server_frame,
    format_timestamp,
};

/// What a subscribe found: the values of the `subscribed` ack.
#[derive(Debug, Clone, Copy)]
pub struct Subscribed<'a> {
    pub topic: &'a str,
    pub epoch: &'a str,
    pub replayed: usize,
    pub last_seq: u64,
    pub recovered: Option<bool>,
}

/// A topic's numbers at one instant.
#[derive(Debug, Clone)]
pub struct TopicInfo {
    pub name: Arc<str>,
    pub epoch: Arc<str>,
    pub subscribers: usize,
    pub last_seq: u64,
    pub in_history: usize,
}

/// The topic was deleted between looking it up and locking it.
#[derive(Debug)]
pub struct Deleted;

pub struct Topic {
    name: Arc<str>,
    /// The name as a JSON string, ready to splice into frames.
    name_json: String,
    epoch: Arc<str>,
    history_size: usize,
    state: Mutex<TopicState>,
}

#[derive(Default)]
struct TopicState {
    last_seq: u64,
    /// The newest messages, oldest first; seqs are consecutive and end at `last_seq`.
    history: VecDeque<Arc<MessageFrame>>,
    subscribers: Vec<Subscriber>,
    deleted: bool,
}

struct Subscriber {
    client: u64,
    outbox: Arc<Outbox>,
}

impl Topic {
    pub fn new(name: Arc<str>, epoch: Arc<str>, history_size: usize) -> Self {
        let name_json = serde_json::to_string(&*name).unwrap_or_default();
        Topic {
            name,
            name_json,
            epoch,
            history_size,
            state: Mutex::new(TopicState::default()),
        }
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Assigns the next seq, keeps the message in history and offers it to every subscriber.
    pub fn publish(&self, message: &str) -> Result<u64, Deleted> {
        let mut st = lock(&self.state);
        if st.deleted {
            return Err(Deleted);
        }
        st.last_seq += 1;
        let seq = st.last_seq;
        let publication = Arc::new(self.encode(seq, message));
        let name = &self.name;
        st.subscribers
            .retain(|s| s.outbox.push_message(&publication.frame, name) != Delivery::Gone);
        if self.history_size > 0 {
            if st.history.len() == self.history_size {
                st.history.pop_front();
            }
            st.history.push_back(publication);
        }
        Ok(seq)
    }

    fn encode(&self, seq: u64, message: &str) -> MessageFrame {
        let published_at = format_timestamp(OffsetDateTime::now_utc());
        encode_message_frame(&self.name_json, seq, message, &published_at)
    }

    /// Registers `client` (once, however often it subscribes) and queues the ack built by `ack`
    /// followed by the replayed messages, all before any later publish can reach the client.
    pub fn subscribe(
        &self,
        client: u64,
        outbox: &Arc<Outbox>,
        replay: &Replay<'_>,
        ack: impl FnOnce(&Subscribed<'_>) -> Frame,
    ) -> Result<(), Deleted> {
        let mut st = lock(&self.state);
        if st.deleted {
            return Err(Deleted);
        }
        let (skip, recovered) = self.replay_start(&st, replay);
        let replayed = st.history.len() - skip;
        if !st.subscribers.iter().any(|s| s.client == client) {
            st.subscribers.push(Subscriber {
                client,
                outbox: outbox.clone(),
            });
        }
        outbox.push(
            ack(&Subscribed {
                topic: &self.name,
                epoch: &self.epoch,
                replayed,
                last_seq: st.last_seq,
                recovered,
            }),
            false,
        );
        for publication in st.history.iter().skip(skip) {
            outbox.push(publication.frame.clone(), true);
        }
        Ok(())
    }

    /// How many history entries to skip, and the `recovered` flag for a resume.
    fn replay_start(&self, st: &TopicState, replay: &Replay<'_>) -> (usize, Option<bool>) {
        let held = st.history.len();
        match replay {
            Replay::None => (held, None),
            Replay::Last(n) => (held - (*n).min(held as u64) as usize, None),
            Replay::After { seq, epoch } => {
                let same_life = epoch.as_deref().is_none_or(|e| e == &*self.epoch);
                if !same_life || *seq > st.last_seq {
                    // The position means nothing in this topic's life: hand over all it holds.
                    return (0, Some(false));
                }
                let oldest_held = st.last_seq + 1 - held as u64;
                let missed = seq + 1 < oldest_held;
                let skip = (seq + 1).saturating_sub(oldest_held) as usize;
                (skip, Some(!missed))
            }
        }
    }

    pub fn is_deleted(&self) -> bool {
        lock(&self.state).deleted
    }

    pub fn unsubscribe(&self, client: u64) {
        lock(&self.state).subscribers.retain(|s| s.client != client);
    }

    /// Marks the topic deleted, tells every subscriber and lets go of them and of history.
    pub fn delete(&self) {
        let mut st = lock(&self.state);
        st.deleted = true;
        let notice = encode_server_frame(&ServerFrame::TopicDeleted { topic: &self.name });
        for s in st.subscribers.drain(..) {
            s.outbox.push(notice.clone(), false);
        }
        st.history.clear();
    }

    pub fn info(&self) -> TopicInfo {
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
    pub fn history(&self, since: u64, limit: usize) -> (Vec<Arc<MessageFrame>>, u64) {
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
