//! Topics and their subscribers, and the fan-out of one publish.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde_json::value::RawValue;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_tungstenite::tungstenite::Message;

use crate::Overflow;
use crate::frames;

/// A connection's queue of outgoing frames, drained by its writer task.
pub type Outbox = mpsc::Sender<Message>;

/// Every topic, plus the names `POST /topics` has created (for its 201 / 409 answer).
pub struct Hub {
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    created: Mutex<HashSet<String>>,
    queue: usize,
    overflow: Overflow,
    next_connection: AtomicU64,
}

/// One topic's subscribers: a list replaced as a whole on every change (copy on write), so a
/// publish takes a snapshot with one reference-count increment and holds no lock while it waits
/// for a full queue.
#[derive(Default)]
pub struct Topic {
    subscribers: RwLock<Arc<Vec<(u64, Outbox)>>>,
}

impl Hub {
    pub fn new(queue: usize, overflow: Overflow) -> Self {
        Hub {
            topics: RwLock::default(),
            created: Mutex::default(),
            queue,
            overflow,
            next_connection: AtomicU64::new(1),
        }
    }

    /// Frames each connection may have queued.
    pub fn queue(&self) -> usize {
        self.queue
    }

    /// A number for a new connection, to find its entries in subscriber lists.
    pub fn connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// The topic of that name, created if it does not exist yet.
    pub fn topic(&self, name: &str) -> Arc<Topic> {
        if let Some(topic) = self.find(name) {
            return topic;
        }
        let mut topics = self.topics.write().unwrap_or_else(PoisonError::into_inner);
        topics.entry(name.to_owned()).or_default().clone()
    }

    pub fn find(&self, name: &str) -> Option<Arc<Topic>> {
        let topics = self.topics.read().unwrap_or_else(PoisonError::into_inner);
        topics.get(name).cloned()
    }

    /// `POST /topics`: true the first time a name is created this way.
    pub fn create(&self, name: &str) -> bool {
        let new = self
            .created
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned());
        if new {
            self.topic(name);
        }
        new
    }

    /// Queues one delivery for every subscriber of `topic` (none if the topic does not exist).
    /// With `Overflow::Block` a full queue makes this wait; a closed one is skipped.
    pub async fn publish(&self, topic: &str, message: &RawValue) {
        let Some(subscribers) = self.find(topic).map(|t| t.snapshot()) else {
            return;
        };
        if subscribers.is_empty() {
            return;
        }
        let frame = frames::delivery(topic, message);
        for (_, outbox) in subscribers.iter() {
            match outbox.try_send(frame.clone()) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(frame)) => {
                    if self.overflow == Overflow::Block {
                        // Err only when the connection closed meanwhile: nothing to deliver to.
                        let _ = outbox.send(frame).await;
                    }
                }
            }
        }
    }
}

impl Topic {
    fn snapshot(&self) -> Arc<Vec<(u64, Outbox)>> {
        self.subscribers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn add(&self, connection: u64, outbox: Outbox) {
        let mut list = self
            .subscribers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = Vec::with_capacity(list.len() + 1);
        next.extend(list.iter().cloned());
        next.push((connection, outbox));
        *list = Arc::new(next);
    }

    pub fn remove(&self, connection: u64) {
        let mut list = self
            .subscribers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let next = list
            .iter()
            .filter(|(id, _)| *id != connection)
            .cloned()
            .collect();
        *list = Arc::new(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[tokio::test]
    async fn a_publish_reaches_each_subscriber_once() {
        let hub = Hub::new(4, Overflow::Block);
        let (a, mut a_rx) = mpsc::channel(4);
        let (b, mut b_rx) = mpsc::channel(4);
        let topic = hub.topic("t");
        topic.add(1, a);
        topic.add(2, b);
        hub.publish("t", &message("1")).await;
        hub.publish("elsewhere", &message("2")).await;
        for rx in [&mut a_rx, &mut b_rx] {
            let got = rx.try_recv().unwrap().into_text().unwrap();
            assert_eq!(
                got.as_str(),
                r#"{"type":"message","topic":"t","message":1}"#
            );
            assert!(rx.try_recv().is_err());
        }
        topic.remove(1);
        hub.publish("t", &message("3")).await;
        assert!(a_rx.try_recv().is_err());
        assert!(b_rx.try_recv().is_ok());
    }

    #[tokio::test]
    async fn a_full_queue_drops_or_blocks() {
        let hub = Hub::new(1, Overflow::Drop);
        let (tx, mut rx) = mpsc::channel(1);
        hub.topic("t").add(1, tx);
        hub.publish("t", &message("1")).await;
        hub.publish("t", &message("2")).await; // dropped: the queue holds one
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err());

        let hub = Arc::new(Hub::new(1, Overflow::Block));
        let (tx, mut rx) = mpsc::channel(1);
        hub.topic("t").add(1, tx);
        hub.publish("t", &message("1")).await;
        let blocked = tokio::spawn({
            let hub = hub.clone();
            async move { hub.publish("t", &message("2")).await }
        });
        // The second publish can only finish once the first frame has been taken.
        assert!(rx.recv().await.is_some());
        blocked.await.unwrap();
        assert!(rx.recv().await.is_some());
    }

    #[test]
    fn create_answers_once() {
        let hub = Hub::new(1, Overflow::Block);
        assert!(hub.create("t"));
        assert!(!hub.create("t"));
        assert!(hub.find("t").is_some());
    }
}
