//! The broker: topics, history, sequence numbers, epochs, subscribers and counters.
//!
//! [`Broker`] is a cheap-to-clone handle. Its methods speak in domain terms (create a topic,
//! publish, subscribe from a resume point, take stats) and are the boundary a second engine
//! (Redis, for several nodes) will implement. Nothing here knows about HTTP or warp; the only
//! wire knowledge is the `message` frame, encoded once per publish and shared by all subscribers.
//!
//! Locking: one read-mostly map from name to topic, held only to look a topic up, and one
//! mutex per topic. Publishes to different topics never wait for each other.

mod client;
mod name;
mod outbox;
mod stats;
mod topic;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use rand::Rng;
use rand::distr::Alphanumeric;

pub use client::Client;
pub use name::{MAX_TOPIC_NAME_LEN, validate_topic_name};
pub use outbox::{Close, Delivery, OutFrame, Outbox, SlowConsumerPolicy};
pub use stats::{CounterSnapshot, LATENCY_BOUNDS_NANOS, LatencySnapshot};
pub use topic::{Subscribed, TopicInfo};

use crate::protocol::{ErrorCode, MessageFrame};
use stats::Counters;
use topic::Topic;

/// How the broker behaves; fixed for its lifetime.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Messages kept per topic for replay; 0 keeps none.
    pub history_size: usize,
    /// The largest message accepted, in bytes of JSON text.
    pub max_message_bytes: usize,
    /// Each connection's outbound queue limit, in bytes.
    pub queue_bytes: usize,
    pub slow_consumer: SlowConsumerPolicy,
    /// Subscribing or publishing to a missing topic creates it instead of failing.
    pub auto_create_topics: bool,
    /// The most topics that may exist at once.
    pub max_topics: usize,
    /// The most client connections open at once.
    pub max_connections: usize,
    /// The most topics one connection may be subscribed to.
    pub max_subscriptions_per_connection: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            history_size: 100,
            max_message_bytes: 64 * 1024,
            queue_bytes: 1024 * 1024,
            slow_consumer: SlowConsumerPolicy::Disconnect,
            auto_create_topics: false,
            max_topics: 10_000,
            max_connections: 10_000,
            max_subscriptions_per_connection: 128,
        }
    }
}

/// Why a broker operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerError {
    InvalidTopic(String),
    TopicNotFound(String),
    TopicExists(String),
    MessageTooLarge { size: usize, max: usize },
    TooManyTopics { max: usize },
    TooManyConnections { max: usize },
    TooManySubscriptions { max: usize },
}

impl BrokerError {
    pub fn code(&self) -> ErrorCode {
        match self {
            BrokerError::InvalidTopic(_) => ErrorCode::InvalidTopic,
            BrokerError::TopicNotFound(_) => ErrorCode::TopicNotFound,
            BrokerError::TopicExists(_) => ErrorCode::TopicExists,
            BrokerError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
            BrokerError::TooManyTopics { .. } => ErrorCode::TooManyTopics,
            BrokerError::TooManyConnections { .. } => ErrorCode::TooManyConnections,
            BrokerError::TooManySubscriptions { .. } => ErrorCode::TooManySubscriptions,
        }
    }
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BrokerError::InvalidTopic(why) => f.write_str(why),
            BrokerError::TopicNotFound(name) => write!(f, "topic '{name}' does not exist"),
            BrokerError::TopicExists(name) => write!(f, "topic '{name}' already exists"),
            BrokerError::MessageTooLarge { size, max } => {
                write!(f, "message is {size} bytes; the limit is {max} bytes")
            }
            BrokerError::TooManyTopics { max } => {
                write!(
                    f,
                    "the server holds its limit of {max} topics; delete one first"
                )
            }
            BrokerError::TooManyConnections { max } => {
                write!(
                    f,
                    "the server holds its limit of {max} connections; try again later"
                )
            }
            BrokerError::TooManySubscriptions { max } => write!(
                f,
                "this connection holds its limit of {max} subscriptions; unsubscribe from one first"
            ),
        }
    }
}

impl std::error::Error for BrokerError {}

/// The server's numbers at one instant.
#[derive(Debug, Clone)]
pub struct BrokerStats {
    /// Every topic, sorted by name.
    pub topics: Vec<TopicInfo>,
    pub connections: u64,
    /// Subscriptions across all topics.
    pub subscriptions: u64,
    pub counters: CounterSnapshot,
    pub uptime_seconds: u64,
}

/// A page of history.
#[derive(Debug)]
pub struct HistoryPage {
    pub messages: Vec<Arc<MessageFrame>>,
    pub last_seq: u64,
}

/// The broker handle.
///
/// ```
/// use pubsub::broker::{Broker, BrokerConfig, BrokerError};
///
/// let broker = Broker::new(BrokerConfig::default());
/// broker.create_topic("news")?;
/// assert_eq!(broker.publish("news", r#"{"data":"Hello"}"#)?, 1);
/// let page = broker.history("news", 0, 10)?;
/// assert_eq!(page.messages[0].message(), r#"{"data":"Hello"}"#);
/// assert_eq!(broker.publish("sports", "1"), Err(BrokerError::TopicNotFound("sports".into())));
/// # Ok::<(), BrokerError>(())
/// ```
#[derive(Clone)]
pub struct Broker {
    shared: Arc<Shared>,
}

struct Shared {
    config: BrokerConfig,
    topics: RwLock<HashMap<Arc<str>, Arc<Topic>>>,
    /// Every connected client's outbox, to reach them all at shutdown.
    clients: Mutex<HashMap<u64, Arc<Outbox>>>,
    next_client: AtomicU64,
    /// Set by [`Broker::close_all`]: clients connecting afterwards are closed at once.
    closing_all: Mutex<Option<Close>>,
    counters: Arc<Counters>,
    started: Instant,
}

impl Broker {
    pub fn new(config: BrokerConfig) -> Self {
        Broker {
            shared: Arc::new(Shared {
                config,
                topics: RwLock::default(),
                clients: Mutex::default(),
                next_client: AtomicU64::new(1),
                closing_all: Mutex::default(),
                counters: Arc::default(),
                started: Instant::now(),
            }),
        }
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.shared.config
    }

    /// Creates a topic with a fresh epoch.
    pub fn create_topic(&self, name: &str) -> Result<TopicInfo, BrokerError> {
        validate_topic_name(name)?;
        let mut topics = self.write_topics();
        if topics.contains_key(name) {
            return Err(BrokerError::TopicExists(name.to_owned()));
        }
        self.check_room_for_topic(&topics)?;
        let topic = self.new_topic(name);
        let info = topic.info();
        topics.insert(topic.name().clone(), topic);
        tracing::info!(topic = name, "topic created");
        Ok(info)
    }

    /// Deletes a topic; its subscribers get `topic_deleted` and are unsubscribed.
    pub fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        validate_topic_name(name)?;
        let topic = self
            .write_topics()
            .remove(name)
            .ok_or_else(|| BrokerError::TopicNotFound(name.to_owned()))?;
        topic.delete();
        tracing::info!(topic = name, "topic deleted");
        Ok(())
    }

    /// Every topic, sorted by name.
    pub fn topics(&self) -> Vec<TopicInfo> {
        let topics: Vec<Arc<Topic>> = self.read_topics().values().cloned().collect();
        let mut infos: Vec<TopicInfo> = topics.iter().map(|t| t.info()).collect();
        infos.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        infos
    }

    pub fn topic(&self, name: &str) -> Result<TopicInfo, BrokerError> {
        Ok(self.existing(name)?.info())
    }

    /// Publishes `message` (JSON text) and returns its seq. Never waits for subscribers.
    pub fn publish(&self, name: &str, message: &str) -> Result<u64, BrokerError> {
        let max = self.shared.config.max_message_bytes;
        if message.len() > max {
            return Err(BrokerError::MessageTooLarge {
                size: message.len(),
                max,
            });
        }
        let started = Instant::now();
        let seq = self.with_topic(name, |topic| topic.publish(message))?;
        let counters = &self.shared.counters;
        counters.publish_latency(started.elapsed());
        counters.published();
        Ok(seq)
    }

    /// History with seq above `since`, oldest first, at most `limit` messages.
    pub fn history(
        &self,
        name: &str,
        since: u64,
        limit: usize,
    ) -> Result<HistoryPage, BrokerError> {
        let (messages, last_seq) = self.existing(name)?.history(since, limit);
        Ok(HistoryPage { messages, last_seq })
    }

    pub fn stats(&self) -> BrokerStats {
        let topics = self.topics();
        BrokerStats {
            subscriptions: topics.iter().map(|t| t.subscribers as u64).sum(),
            topics,
            connections: self.connections(),
            counters: self.shared.counters.snapshot(),
            uptime_seconds: self.uptime_seconds(),
        }
    }

    pub fn uptime_seconds(&self) -> u64 {
        self.shared.started.elapsed().as_secs()
    }

    /// Open client connections.
    pub fn connections(&self) -> u64 {
        lock(&self.shared.clients).len() as u64
    }

    /// Registers a new client connection, unless `max_connections` are open already.
    /// Dropping the [`Client`] unsubscribes it everywhere and frees its place.
    pub fn connect(&self) -> Result<Client, BrokerError> {
        let config = &self.shared.config;
        let id = self.shared.next_client.fetch_add(1, Relaxed);
        let outbox = Arc::new(Outbox::new(
            id,
            config.queue_bytes,
            config.slow_consumer,
            self.shared.counters.clone(),
        ));
        {
            let mut clients = lock(&self.shared.clients);
            if clients.len() >= config.max_connections {
                return Err(BrokerError::TooManyConnections {
                    max: config.max_connections,
                });
            }
            clients.insert(id, outbox.clone());
        }
        if let Some(close) = *lock(&self.shared.closing_all) {
            outbox.close(close);
        }
        Ok(Client::new(id, self.clone(), outbox))
    }

    /// Counts an error answered to a client, for `/stats` and metrics.
    pub fn record_error(&self, code: ErrorCode) {
        self.shared.counters.error(code);
    }

    /// Counts a connection closed for not answering pings.
    pub fn record_dead_connection(&self) {
        self.shared.counters.dead_connection_closed();
    }

    /// Asks every connected client to close with `close`.
    pub fn close_all(&self, close: Close) {
        *lock(&self.shared.closing_all) = Some(close);
        let outboxes: Vec<Arc<Outbox>> = lock(&self.shared.clients).values().cloned().collect();
        for outbox in outboxes {
            outbox.close(close);
        }
    }

    fn disconnect(&self, client: u64) {
        lock(&self.shared.clients).remove(&client);
    }

    /// Runs `op` on the topic named `name`, creating it first if that is configured. Retries
    /// when the topic is deleted under our feet and auto-creation may bring it back.
    fn with_topic<T>(
        &self,
        name: &str,
        mut op: impl FnMut(&Arc<Topic>) -> Result<T, topic::Deleted>,
    ) -> Result<T, BrokerError> {
        loop {
            let topic = if self.shared.config.auto_create_topics {
                self.existing_or_new(name)?
            } else {
                self.existing(name)?
            };
            match op(&topic) {
                Ok(value) => return Ok(value),
                Err(topic::Deleted) if self.shared.config.auto_create_topics => continue,
                Err(topic::Deleted) => return Err(BrokerError::TopicNotFound(name.to_owned())),
            }
        }
    }

    fn existing(&self, name: &str) -> Result<Arc<Topic>, BrokerError> {
        validate_topic_name(name)?;
        self.read_topics()
            .get(name)
            .cloned()
            .ok_or_else(|| BrokerError::TopicNotFound(name.to_owned()))
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
        topics.insert(topic.name().clone(), topic.clone());
        tracing::info!(topic = name, "topic created on first use");
        Ok(topic)
    }

    fn check_room_for_topic(
        &self,
        topics: &HashMap<Arc<str>, Arc<Topic>>,
    ) -> Result<(), BrokerError> {
        let max = self.shared.config.max_topics;
        if topics.len() >= max {
            return Err(BrokerError::TooManyTopics { max });
        }
        Ok(())
    }

    fn new_topic(&self, name: &str) -> Arc<Topic> {
        let epoch: String = rand::rng()
            .sample_iter(Alphanumeric)
            .take(12)
            .map(char::from)
            .collect();
        Arc::new(Topic::new(
            Arc::from(name),
            Arc::from(epoch),
            self.shared.config.history_size,
        ))
    }

    fn read_topics(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Arc<str>, Arc<Topic>>> {
        self.shared
            .topics
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_topics(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Arc<str>, Arc<Topic>>> {
        self.shared
            .topics
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Locks a mutex, carrying on past poisoning: no critical section in the broker leaves its data
/// half-updated when it panics, and one panicking connection must not take the others down.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
