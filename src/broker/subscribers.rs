//! One topic's subscribers on this node, and the fan-out of an encoded frame to them.
//!
//! Both engines keep a topic's local subscribers in this list, behind that topic's lock: the
//! memory engine next to its history, the Redis engine next to the seq it last delivered. The
//! list is indexed by client id, so subscribing, unsubscribing and a mass disconnect are
//! constant time per client while a publish walks a dense vector.

use std::collections::HashMap;
use std::sync::Arc;

use super::outbox::{Delivery, FrameKind, Outbox};
use super::policy_log::PolicyLog;
use crate::protocol::{Frame, ServerFrame, encode_server_frame};

struct Subscriber {
    client: u64,
    outbox: Arc<Outbox>,
    /// Live messages with a seq at or below this one reached the client another way (its
    /// replay): skip them. Only the Redis engine sets it above zero.
    after: u64,
}

#[derive(Default)]
pub struct Subscribers {
    list: Vec<Subscriber>,
    /// Where each client sits in `list`.
    index: HashMap<u64, usize>,
}

impl Subscribers {
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Adds `client` once, however often it subscribes; `after` as in [`Subscriber::after`].
    pub fn add(&mut self, client: u64, outbox: &Arc<Outbox>, after: u64) {
        if let Some(&i) = self.index.get(&client) {
            self.list[i].after = self.list[i].after.max(after);
            return;
        }
        self.index.insert(client, self.list.len());
        self.list.push(Subscriber {
            client,
            outbox: outbox.clone(),
            after,
        });
    }

    pub fn remove(&mut self, client: u64) {
        if let Some(i) = self.index.remove(&client) {
            self.list.swap_remove(i);
            if let Some(moved) = self.list.get(i) {
                self.index.insert(moved.client, i);
            }
        }
    }

    /// Offers a live message with `seq` to every subscriber, forgetting those that are gone.
    pub fn fan_out(&mut self, frame: &Frame, seq: u64, topic: &Arc<str>, log: &mut PolicyLog) {
        let mut i = 0;
        while i < self.list.len() {
            let s = &self.list[i];
            if seq > s.after && s.outbox.push_message(frame, topic, log) == Delivery::Gone {
                let client = s.client;
                self.remove(client);
                continue; // the last subscriber moved into slot i
            }
            i += 1;
        }
    }

    /// Queues `frame`, a notice about `topic`, for every subscriber (after the `lagged` notice
    /// still pending for it).
    pub fn notify(&self, topic: &str, frame: &Frame, log: &mut PolicyLog) {
        for s in &self.list {
            let notice = (frame.clone(), FrameKind::Reply);
            s.outbox.push_topic_frames(topic, [notice], log);
        }
    }

    /// Tells every subscriber the topic is gone and lets go of them all.
    pub fn delete(&mut self, topic: &str, log: &mut PolicyLog) {
        let notice = encode_server_frame(&ServerFrame::TopicDeleted { topic });
        self.notify(topic, &notice, log);
        self.list.clear();
        self.index.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::SlowConsumerPolicy;
    use crate::broker::stats::Counters;

    fn outbox(id: u64) -> Arc<Outbox> {
        Arc::new(Outbox::new(
            id,
            1 << 20,
            SlowConsumerPolicy::Disconnect,
            Arc::new(Counters::default()),
        ))
    }

    #[test]
    fn removal_keeps_the_index_of_the_moved_subscriber() {
        let mut subs = Subscribers::default();
        let boxes: Vec<_> = (1..=3).map(outbox).collect();
        for (i, b) in boxes.iter().enumerate() {
            subs.add(i as u64 + 1, b, 0);
        }
        subs.add(1, &boxes[0], 0);
        assert_eq!(subs.len(), 3);
        subs.remove(1); // client 3 moves into slot 0
        subs.remove(3);
        assert_eq!(subs.len(), 1);
        subs.remove(2);
        assert!(subs.is_empty());
    }

    #[test]
    fn fan_out_skips_what_a_subscriber_had_replayed_and_drops_closed_ones() {
        let mut subs = Subscribers::default();
        let (a, b) = (outbox(1), outbox(2));
        subs.add(1, &a, 0);
        subs.add(2, &b, 5);
        let topic: Arc<str> = Arc::from("t");
        let mut log = PolicyLog::default();
        subs.fan_out(&Frame::from("m5"), 5, &topic, &mut log);
        b.close(crate::broker::Close::NORMAL);
        subs.fan_out(&Frame::from("m6"), 6, &topic, &mut log);
        log.write();
        assert_eq!(subs.len(), 1, "the closed subscriber is forgotten");
    }
}
