//! One connected client: its outbox and the topics it is subscribed to.

use std::collections::HashMap;
use std::sync::Arc;

use super::topic::{Subscribed, Topic};
use super::{Broker, BrokerError, Outbox, validate_topic_name};
use crate::protocol::{Frame, Replay};

/// A client connection as the broker sees it. Dropping it (however the connection ends, a
/// panic included) removes every subscription it holds at once.
pub struct Client {
    id: u64,
    broker: Broker,
    outbox: Arc<Outbox>,
    topics: HashMap<Arc<str>, Arc<Topic>>,
}

impl Client {
    pub(super) fn new(id: u64, broker: Broker, outbox: Arc<Outbox>) -> Self {
        Client {
            id,
            broker,
            outbox,
            topics: HashMap::new(),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Where everything for this client is queued.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// Subscribes to `name`. The ack that `ack` builds is queued first, then the replay, then
    /// live messages. Subscribing again re-sends ack and replay but never doubles delivery.
    pub fn subscribe(
        &mut self,
        name: &str,
        replay: &Replay<'_>,
        ack: impl FnOnce(&Subscribed<'_>) -> Frame,
    ) -> Result<(), BrokerError> {
        let max = self.broker.config().max_subscriptions_per_connection;
        if self.topics.len() >= max && !self.topics.contains_key(name) {
            // Deleted topics dropped this client already; they no longer count.
            self.topics.retain(|_, topic| !topic.is_deleted());
            if self.topics.len() >= max {
                validate_topic_name(name)?;
                return Err(BrokerError::TooManySubscriptions { max });
            }
        }
        let (id, outbox) = (self.id, &self.outbox);
        // A retry (topic deleted and auto-created again) happens before the ack is built.
        let mut ack = Some(ack);
        let mut build_ack = |s: &Subscribed<'_>| ack.take().map(|f| f(s)).unwrap_or_default();
        let topic = self.broker.with_topic(name, |topic| {
            topic.subscribe(id, outbox, replay, &mut build_ack)?;
            Ok(topic.clone())
        })?;
        self.topics.insert(topic.name().clone(), topic);
        Ok(())
    }

    /// Unsubscribes from `name`; succeeds whether or not the client was subscribed.
    pub fn unsubscribe(&mut self, name: &str) -> Result<(), BrokerError> {
        validate_topic_name(name)?;
        if let Some(topic) = self.topics.remove(name) {
            topic.unsubscribe(self.id);
        }
        Ok(())
    }

    /// Removes every subscription at once (the connection is going away).
    pub fn unsubscribe_all(&mut self) {
        for (_, topic) in self.topics.drain() {
            topic.unsubscribe(self.id);
        }
    }

    pub fn publish(&self, name: &str, message: &str) -> Result<u64, BrokerError> {
        self.broker.publish(name, message)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.unsubscribe_all();
        self.outbox.close(super::Close::NORMAL);
        self.broker.disconnect(self.id);
    }
}
