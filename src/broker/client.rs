//! One connected client: its outbox and the topics it is subscribed to.

use std::future::Future;
use std::sync::Arc;

use serde_json::value::RawValue;

use super::engine::{Subscriber, Subscription};
use super::{Broker, BrokerError, Outbox, Published, Subscribed, validate_topic_name};
use crate::protocol::{Frame, Replay};

/// A client connection as the broker sees it. Dropping it (however the connection ends, a
/// panic included) removes every subscription it holds at once.
pub struct Client {
    id: u64,
    broker: Broker,
    outbox: Arc<Outbox>,
    topics: Subscriptions,
}

impl Client {
    pub(super) fn new(id: u64, broker: Broker, outbox: Arc<Outbox>) -> Self {
        Client {
            id,
            broker,
            outbox,
            topics: Subscriptions::default(),
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
    pub async fn subscribe(
        &mut self,
        name: &str,
        replay: &Replay<'_>,
        ack: impl FnOnce(&Subscribed<'_>) -> Frame + Send,
    ) -> Result<(), BrokerError> {
        let max = self.broker.config().max_subscriptions_per_connection;
        if self.topics.len() >= max && self.topics.get(name).is_none() {
            // Deleted topics dropped this client already; they no longer count.
            self.topics.retain(|topic| !topic.is_deleted());
            if self.topics.len() >= max {
                validate_topic_name(name)?;
                return Err(BrokerError::TooManySubscriptions { max });
            }
        }
        let subscriber = Subscriber {
            client: self.id,
            outbox: &self.outbox,
        };
        // An engine may retry (topic deleted and auto-created again) before it builds the ack.
        let mut ack = Some(ack);
        let mut build_ack = |s: &Subscribed<'_>| ack.take().map(|f| f(s)).unwrap_or_default();
        let topic = self
            .broker
            .subscribe(name, subscriber, replay, &mut build_ack)
            .await?;
        self.topics.insert(name, topic);
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

    /// The topics this client is subscribed to.
    pub fn subscribed_topics(&self) -> impl Iterator<Item = &Arc<str>> {
        self.topics.keys()
    }

    /// Removes every subscription at once (the connection is going away).
    pub fn unsubscribe_all(&mut self) {
        for topic in self.topics.drain() {
            topic.unsubscribe(self.id);
        }
    }

    /// Publishes `message`. When this client is subscribed to the topic, the message reaches
    /// its outbox before this returns, so the publisher sees its own message before the ack.
    pub async fn publish(&self, name: &str, message: &RawValue) -> Result<Published, BrokerError> {
        publish_then_delivered(&self.broker, self.topics.get(name), name, message).await
    }

    /// [`Client::publish`] as a future that borrows nothing, so that a connection can have
    /// several publishes in flight to a networked engine (each is sent when first polled: in
    /// the order they are made).
    pub fn publish_detached(
        &self,
        name: String,
        message: Box<RawValue>,
    ) -> impl Future<Output = Result<Published, BrokerError>> + Send + 'static {
        let broker = self.broker.clone();
        let topic = self.topics.get(&name).cloned();
        async move { publish_then_delivered(&broker, topic.as_ref(), &name, &message).await }
    }
}

/// Publishes, then waits (boundedly) until a subscription of the publisher's own has been
/// handed the message.
async fn publish_then_delivered(
    broker: &Broker,
    own: Option<&Arc<dyn Subscription>>,
    name: &str,
    message: &RawValue,
) -> Result<Published, BrokerError> {
    let published = broker.publish(name, message).await?;
    if let Some(topic) = own {
        topic.delivered(&published.epoch, published.seq).await;
    }
    Ok(published)
}

impl Drop for Client {
    fn drop(&mut self) {
        self.unsubscribe_all();
        self.outbox.close(super::Close::NORMAL);
        self.broker.disconnect(self.id);
    }
}

/// A client's subscriptions by topic name. A vector rather than a map: most connections hold one
/// or a few, and a map holding one costs about 150 bytes where this costs 32 a subscription.
#[derive(Default)]
struct Subscriptions(Vec<(Arc<str>, Arc<dyn Subscription>)>);

impl Subscriptions {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, name: &str) -> Option<&Arc<dyn Subscription>> {
        self.0.iter().find(|(n, _)| **n == *name).map(|(_, s)| s)
    }

    /// Adds or replaces the subscription to `name`.
    fn insert(&mut self, name: &str, subscription: Arc<dyn Subscription>) {
        if let Some((_, s)) = self.0.iter_mut().find(|(n, _)| **n == *name) {
            *s = subscription;
            return;
        }
        // Room for exactly one at first: a vector's first growth would make room for four.
        if self.0.capacity() == 0 {
            self.0.reserve_exact(1);
        }
        self.0.push((Arc::from(name), subscription));
    }

    fn keys(&self) -> impl Iterator<Item = &Arc<str>> {
        self.0.iter().map(|(n, _)| n)
    }

    fn remove(&mut self, name: &str) -> Option<Arc<dyn Subscription>> {
        let i = self.0.iter().position(|(n, _)| **n == *name)?;
        Some(self.0.swap_remove(i).1)
    }

    fn retain(&mut self, mut keep: impl FnMut(&Arc<dyn Subscription>) -> bool) {
        self.0.retain(|(_, s)| keep(s));
    }

    fn drain(&mut self) -> impl Iterator<Item = Arc<dyn Subscription>> + '_ {
        self.0.drain(..).map(|(_, s)| s)
    }
}
