//! The broker: one node's view of the deployment.
//!
//! [`Broker`] is a cheap-to-clone handle. Its methods speak in domain terms (create a topic,
//! publish, subscribe from a resume point, take stats). It splits into two halves:
//! - what this node keeps for itself: connections ([`Client`]), their outboxes with the
//!   slow-consumer policy, and counters;
//! - the [`engine`]: topic registry, epochs, seqs, history and delivery to every node, in this
//!   process ([`engine::memory`], the default) or in Redis ([`engine::redis`], several nodes).
//!
//! Nothing here knows about HTTP or warp; the only wire knowledge is the `message` frame,
//! encoded once per publish and shared by all subscribers of a node.

mod client;
pub mod engine;
mod info;
#[cfg(test)]
mod log_probe;
mod name;
mod outbox;
mod policy_log;
mod stats;
mod subscribers;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rand::Rng;
use rand::distr::Alphanumeric;
use serde_json::value::RawValue;

pub use client::Client;
pub use engine::Published;
pub use engine::redis::RedisConfig;
pub use engine::redis::RedisTarget;
pub use info::{HistoryPage, NodeInfo, Subscribed, TopicInfo};
pub use name::{MAX_TOPIC_NAME_LEN, validate_topic_name};
pub use outbox::{Close, Delivery, FrameKind, OutFrame, Outbox, SlowConsumerPolicy};
pub use stats::{CounterSnapshot, LATENCY_BOUNDS_NANOS, LatencySnapshot};

use crate::protocol::ErrorCode;
use engine::Engine;
use engine::memory::MemoryEngine;
use engine::redis::RedisEngine;
use stats::Counters;

/// How the broker behaves; fixed for its lifetime.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Messages kept per topic for replay; 0 keeps none.
    pub history_size: usize,
    /// Bytes of history one topic may keep: each message counts for its frame plus
    /// [`engine::HISTORY_ENTRY_OVERHEAD`].
    pub history_bytes_per_topic: usize,
    /// Bytes of history all topics together may keep (the memory engine).
    pub history_bytes_total: usize,
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
            history_bytes_per_topic: 8 * 1024 * 1024,
            history_bytes_total: 256 * 1024 * 1024,
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
    MessageTooLarge {
        size: usize,
        max: usize,
    },
    TooManyTopics {
        max: usize,
    },
    TooManyConnections {
        max: usize,
    },
    TooManySubscriptions {
        max: usize,
    },
    /// The engine (Redis) refused (nothing was done) or did not answer in time (the outcome is
    /// unknown: a publish may still happen, and is then delivered in order like any other).
    EngineUnavailable(String),
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
            BrokerError::EngineUnavailable(_) => ErrorCode::EngineUnavailable,
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
            BrokerError::EngineUnavailable(why) => {
                write!(f, "the engine is unavailable: {why}")
            }
        }
    }
}

impl std::error::Error for BrokerError {}

/// The server's numbers at one instant.
#[derive(Debug, Clone)]
pub struct BrokerStats {
    /// Every topic, sorted by name, with subscribers counted over every live node.
    pub topics: Vec<TopicInfo>,
    /// This node's open client connections.
    pub connections: u64,
    /// Subscriptions across all topics and live nodes.
    pub subscriptions: u64,
    /// This node's counters.
    pub counters: CounterSnapshot,
    /// Bytes held by every topic's history, when this node holds it (the memory engine).
    pub history_bytes: Option<u64>,
    pub uptime_seconds: u64,
    /// Every live node, this one included.
    pub nodes: Vec<NodeInfo>,
    /// Which node this is.
    pub node_id: String,
}

/// This node's figures alone, read without waiting on the engine (for metrics).
#[derive(Debug, Clone)]
pub struct LocalStats {
    pub connections: u64,
    /// Subscriptions of this node's clients.
    pub subscriptions: u64,
    /// Topics that exist, when this node holds them all (the memory engine).
    pub topics: Option<u64>,
    /// Bytes held by every topic's history, when this node holds it (the memory engine).
    pub history_bytes: Option<u64>,
    pub counters: CounterSnapshot,
}

/// This node's own figures, read by the engine when it reports the node to the others.
#[derive(Debug)]
pub struct NodeGauges {
    pub id: String,
    connections: AtomicU64,
}

impl NodeGauges {
    fn new() -> Self {
        NodeGauges {
            id: new_epoch(),
            connections: AtomicU64::new(0),
        }
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(Relaxed)
    }

    /// This node as it stands now, holding `subscriptions`.
    pub fn node_info(&self, subscriptions: u64) -> NodeInfo {
        NodeInfo {
            id: self.id.clone(),
            connections: self.connections(),
            subscriptions,
            last_seen_ms: now_ms(),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A fresh random identifier: a topic's epoch, a node's id.
pub fn new_epoch() -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(12)
        .map(char::from)
        .collect()
}

/// The broker handle.
///
/// ```
/// use pubsub::broker::{Broker, BrokerConfig, BrokerError};
/// use serde_json::value::RawValue;
///
/// # tokio_test_block(async {
/// let broker = Broker::new(BrokerConfig::default());
/// broker.create_topic("news").await?;
/// let hello = RawValue::from_string(r#"{"data":"Hello"}"#.to_owned()).unwrap();
/// assert_eq!(broker.publish("news", &hello).await?.seq, 1);
/// let page = broker.history("news", 0, 10).await?;
/// assert_eq!(page.messages[0].message(), r#"{"data":"Hello"}"#);
/// let err = broker.publish("sports", &hello).await.unwrap_err();
/// assert_eq!(err, BrokerError::TopicNotFound("sports".into()));
/// # Ok::<(), BrokerError>(())
/// # }).unwrap();
/// # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct Broker {
    shared: Arc<Shared>,
}

/// The engine behind a broker: one of the two, chosen at start-up.
enum Engines {
    Memory(MemoryEngine),
    Redis(RedisEngine),
}

/// Runs `$body` with `$e` bound to whichever engine is in use.
macro_rules! with_engine {
    ($self:ident, $e:ident => $body:expr) => {
        match &$self.shared.engine {
            Engines::Memory($e) => $body,
            Engines::Redis($e) => $body,
        }
    };
}

/// Awaits `$call` on whichever engine is in use. The Redis engine's future is boxed: its state
/// (scripts, channel joins, snapshots) is large, and every connection's task would otherwise
/// carry room for it inline, idle or not; the memory engine's stays inline, and small.
macro_rules! engine_call {
    ($self:ident, $e:ident => $call:expr) => {
        match &$self.shared.engine {
            Engines::Memory($e) => $call.await,
            Engines::Redis($e) => Box::pin($call).await,
        }
    };
}

struct Shared {
    config: BrokerConfig,
    engine: Engines,
    gauges: Arc<NodeGauges>,
    /// Every connected client's outbox, to reach them all at shutdown.
    clients: Mutex<HashMap<u64, Arc<Outbox>>>,
    next_client: AtomicU64,
    /// Set by [`Broker::close_all`]: clients connecting afterwards are closed at once.
    closing_all: Mutex<Option<Close>>,
    counters: Arc<Counters>,
    started: Instant,
}

impl Broker {
    /// A broker on the memory engine: one node, nothing else to run.
    pub fn new(config: BrokerConfig) -> Self {
        let gauges = Arc::new(NodeGauges::new());
        let engine = Engines::Memory(MemoryEngine::new(config.clone(), gauges.clone()));
        Self::with_engine(config, engine, gauges)
    }

    /// A broker on the Redis engine: connects (and fails with a one-line reason if it cannot).
    pub async fn with_redis(config: BrokerConfig, redis: RedisConfig) -> Result<Self, String> {
        let gauges = Arc::new(NodeGauges::new());
        let engine = RedisEngine::connect(config.clone(), redis, gauges.clone()).await?;
        Ok(Self::with_engine(config, Engines::Redis(engine), gauges))
    }

    fn with_engine(config: BrokerConfig, engine: Engines, gauges: Arc<NodeGauges>) -> Self {
        Broker {
            shared: Arc::new(Shared {
                config,
                engine,
                gauges,
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

    /// Which engine this node runs on: `memory` or `redis`.
    pub fn engine_name(&self) -> &'static str {
        match self.shared.engine {
            Engines::Memory(_) => "memory",
            Engines::Redis(_) => "redis",
        }
    }

    /// Whether a publish waits on the network (the Redis engine): a connection then keeps
    /// several in flight instead of waiting for each in turn.
    pub fn publishes_over_network(&self) -> bool {
        matches!(self.shared.engine, Engines::Redis(_))
    }

    /// This node's id (random, new at every start).
    pub fn node_id(&self) -> &str {
        &self.shared.gauges.id
    }

    /// Creates a topic with a fresh epoch.
    pub async fn create_topic(&self, name: &str) -> Result<TopicInfo, BrokerError> {
        engine_call!(self, e => e.create_topic(name))
    }

    /// Deletes a topic; its subscribers get `topic_deleted` and are unsubscribed.
    pub async fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        engine_call!(self, e => e.delete_topic(name))
    }

    /// Every topic, sorted by name.
    pub async fn topics(&self) -> Result<Vec<TopicInfo>, BrokerError> {
        engine_call!(self, e => e.topics())
    }

    pub async fn topic(&self, name: &str) -> Result<TopicInfo, BrokerError> {
        engine_call!(self, e => e.topic(name))
    }

    /// Publishes `message` and returns its seq and epoch. Never waits for subscribers.
    pub async fn publish(&self, name: &str, message: &RawValue) -> Result<Published, BrokerError> {
        let message = message.get();
        let max = self.shared.config.max_message_bytes;
        if message.len() > max {
            return Err(BrokerError::MessageTooLarge {
                size: message.len(),
                max,
            });
        }
        let started = Instant::now();
        let published = engine_call!(self, e => e.publish(name, message))?;
        let counters = &self.shared.counters;
        counters.publish_latency(started.elapsed());
        counters.published();
        Ok(published)
    }

    /// History with seq above `since`, oldest first, at most `limit` messages.
    pub async fn history(
        &self,
        name: &str,
        since: u64,
        limit: usize,
    ) -> Result<HistoryPage, BrokerError> {
        engine_call!(self, e => e.history(name, since, limit))
    }

    pub async fn stats(&self) -> Result<BrokerStats, BrokerError> {
        let topics = self.topics().await?;
        let nodes = engine_call!(self, e => e.nodes());
        Ok(BrokerStats {
            subscriptions: topics.iter().map(|t| t.subscribers as u64).sum(),
            topics,
            connections: self.connections(),
            counters: self.shared.counters.snapshot(),
            history_bytes: with_engine!(self, e => e.history_bytes()),
            uptime_seconds: self.uptime_seconds(),
            nodes,
            node_id: self.node_id().to_owned(),
        })
    }

    /// This node's own figures, without waiting on the engine.
    pub fn local_stats(&self) -> LocalStats {
        let local = with_engine!(self, e => e.local());
        LocalStats {
            connections: self.connections(),
            subscriptions: local.subscriptions,
            topics: local.topics,
            history_bytes: with_engine!(self, e => e.history_bytes()),
            counters: self.shared.counters.snapshot(),
        }
    }

    /// Why this node cannot serve requests now (its engine is unreachable), if it cannot.
    pub fn unavailable(&self) -> Option<String> {
        with_engine!(self, e => e.unavailable())
    }

    pub fn uptime_seconds(&self) -> u64 {
        self.shared.started.elapsed().as_secs()
    }

    /// Open client connections on this node.
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
            self.shared
                .gauges
                .connections
                .store(clients.len() as u64, Relaxed);
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
        let mut clients = lock(&self.shared.clients);
        clients.remove(&client);
        self.shared
            .gauges
            .connections
            .store(clients.len() as u64, Relaxed);
    }

    /// Subscribes `subscriber` through the engine (see [`Client::subscribe`]).
    async fn subscribe(
        &self,
        name: &str,
        subscriber: engine::Subscriber<'_>,
        replay: &crate::protocol::Replay<'_>,
        ack: engine::AckBuilder<'_>,
    ) -> Result<Arc<dyn engine::Subscription>, BrokerError> {
        engine_call!(self, e => e.subscribe(name, subscriber, replay, ack))
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
