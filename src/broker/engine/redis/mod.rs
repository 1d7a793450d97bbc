//! The Redis engine: many nodes, one API.
//!
//! Each topic lives in Redis under its own hash tag ([`keys`]): a hash with its epoch and last
//! seq, a stream with its history, and a channel. A publish is one script ([`scripts`]) that
//! assigns the seq, appends to the stream (capped at the history size) and publishes the
//! encoded frame on the channel, so every node sees publications in seq order and history
//! never misses a delivered one. A node joins a topic's channel while its own clients hold the
//! topic, and fans out locally through its [`hub`], which also closes the holes a reconnect
//! leaves. Nodes report their figures every second under one hash, and the totals are summed
//! from those reports.
//!
//! Every call to Redis is bounded by the configured timeout: past it the operation fails with
//! `engine_unavailable`, and `/health` says why, until Redis answers again.

mod batch;
mod conn;
mod hub;
mod keys;
mod scripts;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{ErrorKind, PushInfo, PushKind, RedisError, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::memory::replay_start;
use super::{
    AckBuilder, Engine, HISTORY_ENTRY_OVERHEAD, LocalFigures, Published, Subscriber, Subscription,
};
use crate::broker::info::{HistoryPage, NodeInfo, TopicInfo};
use crate::broker::{
    BrokerConfig, BrokerError, NodeGauges, lock, new_epoch, now_ms, validate_topic_name,
};
use crate::protocol::{Frame, MessageFrame, Replay, Timestamp, message_frame_parts};
use conn::{Conn, PubSub};
use hub::{Check, Control, Gap, Hub, HubTopic, Retry, Snapshot};
use keys::{Keys, Payload};

pub use conn::shown as shown_url;

/// A node that has not reported for this long is left out of the totals.
const NODE_EXPIRY_MS: u64 = 15_000;
/// How often a node reports its figures, checks Redis and sweeps its topics for missed
/// publications.
const REPORT_EVERY: Duration = Duration::from_secs(1);
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Where the Redis engine keeps its data.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// One Redis (`redis://` or `rediss://`), or the seed URLs of a Cluster.
    pub target: RedisTarget,
    /// Namespaces every key and channel, so deployments can share a Redis.
    pub prefix: String,
    /// The longest any call to Redis may take before the operation fails.
    pub timeout: Duration,
}

pub use conn::Target as RedisTarget;

pub struct RedisEngine {
    config: BrokerConfig,
    store: Store,
    publish_command: &'static str,
    hub: Arc<Hub>,
    control: mpsc::UnboundedSender<Control>,
    joins: mpsc::UnboundedSender<(String, oneshot::Sender<Result<(), String>>)>,
    /// Every publish of this node, pipelined to Redis in batches.
    batcher: batch::Batcher,
    gauges: Arc<NodeGauges>,
    health: Arc<Health>,
    /// Stops the background tasks when the engine goes.
    _stop: tokio::sync::watch::Sender<()>,
}

/// Whether Redis answered the last check, and why not.
#[derive(Default)]
struct Health {
    problem: Mutex<Option<String>>,
    /// Set when the pub/sub connection broke: once Redis answers again, every topic is swept.
    resync: AtomicBool,
}

/// A node's report, as stored under the nodes hash.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    connections: u64,
    subscriptions: u64,
    /// Local subscribers per topic (topics with none left out).
    topics: HashMap<String, usize>,
    last_seen_ms: u64,
}

impl RedisEngine {
    /// Connects and starts the node's background tasks. Fails with a one-line reason when the
    /// URL is wrong or Redis does not answer.
    pub async fn connect(
        config: BrokerConfig,
        redis: RedisConfig,
        gauges: Arc<NodeGauges>,
    ) -> Result<Self, String> {
        if redis.prefix.contains(['{', '}']) {
            return Err(format!(
                "--redis-prefix '{}' must not contain '{{' or '}}' (they set Redis Cluster hash tags)",
                redis.prefix
            ));
        }
        let connect = conn::connect(&redis.target, redis.timeout);
        let connected = tokio::time::timeout(redis.timeout * 3, connect)
            .await
            .map_err(|_| format!("Redis did not answer within {:?}", redis.timeout * 3))??;
        let mut commands = connected.commands;
        let pong: Result<String, _> =
            tokio::time::timeout(redis.timeout, redis::cmd("PING").query_async(&mut commands))
                .await
                .map_err(|_| "Redis accepted the connection but did not answer PING".to_owned())?;
        pong.map_err(|e| format!("Redis refused PING: {e}"))?;

        let (control, control_rx) = mpsc::unbounded_channel();
        let (joins, joins_rx) = mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::watch::channel(());
        let keys = Keys::new(&redis.prefix);
        let publish_command = conn::publish_command(&redis.target);
        let batcher = batch::Batcher::spawn(
            commands.clone(),
            keys.clone(),
            batch::Fixed {
                history_size: config.history_size,
                publish_command,
                history_bytes_per_topic: config.history_bytes_per_topic,
                entry_overhead: HISTORY_ENTRY_OVERHEAD,
            },
            redis.timeout,
        );
        let engine = RedisEngine {
            store: Store {
                keys,
                commands,
                timeout: redis.timeout,
            },
            publish_command,
            batcher,
            hub: Arc::default(),
            control,
            joins,
            gauges,
            health: Arc::default(),
            config,
            _stop: stop,
        };
        let tasks = Tasks {
            store: engine.store.clone(),
            hub: engine.hub.clone(),
            health: engine.health.clone(),
            gauges: engine.gauges.clone(),
        };
        tokio::spawn(stop_with(
            stopped.clone(),
            tasks
                .clone()
                .channels(connected.pubsub.clone(), control_rx, joins_rx),
        ));
        tokio::spawn(stop_with(
            stopped.clone(),
            tasks.clone().dispatch(connected.pushes),
        ));
        tokio::spawn(stop_with(stopped, tasks.watch(connected.pubsub)));
        Ok(engine)
    }

    /// Registers the name, then creates its life. Exactly one of several racing creators gets
    /// `Ok`; the others get `TopicExists`.
    async fn create(&self, name: &str) -> Result<TopicInfo, BrokerError> {
        validate_topic_name(name)?;
        let max = self.config.max_topics;
        let mut conn = self.store.commands.clone();
        let registered: i64 = self
            .store
            .call(
                scripts::REGISTER
                    .key(self.store.keys.registry())
                    .arg(name)
                    .arg(max)
                    .invoke_async(&mut conn),
            )
            .await?;
        if registered < 0 {
            return Err(BrokerError::TooManyTopics { max });
        }
        let epoch = new_epoch();
        let keys = self.store.keys.topic(name);
        let created: i64 = self
            .store
            .call(
                scripts::CREATE
                    .key(&keys.meta)
                    .arg(&epoch)
                    .invoke_async(&mut conn),
            )
            .await?;
        if created == 0 {
            return Err(BrokerError::TopicExists(name.to_owned()));
        }
        tracing::info!(topic = name, "topic created");
        Ok(TopicInfo {
            name: Arc::from(name),
            epoch: Arc::from(epoch),
            subscribers: 0,
            last_seq: 0,
            in_history: 0,
        })
    }

    /// Creates `name` on first use when that is configured; a racing creator's topic is as good.
    async fn create_on_first_use(&self, name: &str) -> Result<(), BrokerError> {
        if !self.config.auto_create_topics {
            return Err(BrokerError::TopicNotFound(name.to_owned()));
        }
        match self.create(name).await {
            Ok(_) | Err(BrokerError::TopicExists(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every node's last report that is recent enough, this node's replaced by its live figures.
    async fn reports(&self) -> Result<Vec<(String, Report)>, BrokerError> {
        let mut conn = self.store.commands.clone();
        let stored: HashMap<String, String> = self
            .store
            .call(
                redis::cmd("HGETALL")
                    .arg(self.store.keys.nodes())
                    .query_async(&mut conn),
            )
            .await?;
        let now = now_ms();
        let own = &self.gauges.id;
        let mut reports: Vec<(String, Report)> = stored
            .into_iter()
            .filter(|(id, _)| id != own)
            .filter_map(|(id, json)| Some((id, serde_json::from_str::<Report>(&json).ok()?)))
            .filter(|(_, r)| now.saturating_sub(r.last_seen_ms) <= NODE_EXPIRY_MS)
            .collect();
        reports.push((own.clone(), own_report(&self.hub, &self.gauges)));
        reports.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(reports)
    }

    async fn info(&self, name: &str) -> Result<Option<TopicInfo>, BrokerError> {
        let found = self.store.topic_meta(name).await?;
        Ok(found.map(|(epoch, last_seq, in_history)| TopicInfo {
            name: Arc::from(name),
            epoch: Arc::from(epoch),
            subscribers: 0,
            last_seq,
            in_history,
        }))
    }

    /// One subscribe attempt: join the channel (buffering what arrives), read the snapshot,
    /// register. `Ok(None)` when the snapshot must be read again.
    async fn try_subscribe(
        &self,
        name: &str,
        subscriber: Subscriber<'_>,
        replay: &Replay<'_>,
        ack: AckBuilder<'_>,
    ) -> Result<Option<Arc<HubTopic>>, BrokerError> {
        let topic = self
            .hub
            .join(name, || self.store.keys.topic(name).channel, &self.control);
        let result = self
            .join_and_register(&topic, subscriber, replay, ack)
            .await;
        topic.joined_done();
        match result {
            Ok(()) => Ok(Some(topic)),
            Err(Attempt::Retry) => Ok(None),
            Err(Attempt::Failed(e)) => Err(e),
        }
    }

    async fn join_and_register(
        &self,
        topic: &Arc<HubTopic>,
        subscriber: Subscriber<'_>,
        replay: &Replay<'_>,
        ack: AckBuilder<'_>,
    ) -> Result<(), Attempt> {
        topic
            .joined
            .get_or_try_init(|| async {
                let (done, joined) = oneshot::channel();
                let _ = self.joins.send((topic.channel.clone(), done));
                match tokio::time::timeout(self.store.timeout, joined).await {
                    Ok(Ok(Ok(()))) => Ok(()),
                    Ok(Ok(Err(why))) => Err(BrokerError::EngineUnavailable(why)),
                    _ => Err(unavailable_after(self.store.timeout)),
                }
            })
            .await
            .map_err(Attempt::Failed)?;
        let (mode, count, seq, epoch) = match replay {
            Replay::None => ("none", 0, 0, ""),
            Replay::Last(n) => ("last", (*n).min(self.config.history_size as u64), 0, ""),
            Replay::After { seq, epoch } => ("after", 0, *seq, epoch.as_deref().unwrap_or("")),
        };
        let Some(read) = self
            .store
            .read(&topic.name, mode, count, seq, epoch)
            .await
            .map_err(Attempt::Failed)?
        else {
            return Err(Attempt::Failed(BrokerError::TopicNotFound(
                topic.name.to_string(),
            )));
        };
        let (_, recovered) = replay_start(&read.epoch, read.last_seq, read.held, replay);
        let snapshot = Snapshot {
            epoch: Arc::from(read.epoch),
            last_seq: read.last_seq,
            recovered,
            replay: read.frames.into_iter().map(Frame::from).collect(),
        };
        match topic.register(&snapshot, subscriber, ack) {
            Ok(()) => Ok(()),
            Err(Retry::Gone | Retry::Stale) => Err(Attempt::Retry),
        }
    }
}

/// How one subscribe attempt ended, short of success.
enum Attempt {
    Retry,
    Failed(BrokerError),
}

impl Engine for RedisEngine {
    async fn create_topic(&self, name: &str) -> Result<TopicInfo, BrokerError> {
        self.create(name).await
    }

    async fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        validate_topic_name(name)?;
        let keys = self.store.keys.topic(name);
        let mut conn = self.store.commands.clone();
        let deleted: Option<String> = self
            .store
            .call(
                scripts::DELETE
                    .key(&keys.meta)
                    .key(&keys.history)
                    .key(&keys.channel)
                    .arg(self.publish_command)
                    .invoke_async(&mut conn),
            )
            .await?;
        let _: i64 = self
            .store
            .call(
                redis::cmd("SREM")
                    .arg(self.store.keys.registry())
                    .arg(name)
                    .query_async(&mut conn),
            )
            .await?;
        match deleted {
            Some(_) => {
                tracing::info!(topic = name, "topic deleted");
                Ok(())
            }
            None => Err(BrokerError::TopicNotFound(name.to_owned())),
        }
    }

    async fn topics(&self) -> Result<Vec<TopicInfo>, BrokerError> {
        let mut conn = self.store.commands.clone();
        let mut names: Vec<String> = self
            .store
            .call(
                redis::cmd("SMEMBERS")
                    .arg(self.store.keys.registry())
                    .query_async(&mut conn),
            )
            .await?;
        names.sort_unstable();
        let infos = futures_util::future::join_all(names.iter().map(|name| self.info(name))).await;
        let subscribers = subscriber_totals(&self.reports().await?);
        let mut topics = Vec::with_capacity(names.len());
        for info in infos {
            // A name registered but without a life yet (being created) is not listed.
            if let Some(mut info) = info? {
                info.subscribers = subscribers.get(&*info.name).copied().unwrap_or(0);
                topics.push(info);
            }
        }
        Ok(topics)
    }

    async fn topic(&self, name: &str) -> Result<TopicInfo, BrokerError> {
        validate_topic_name(name)?;
        let mut info = self
            .info(name)
            .await?
            .ok_or_else(|| BrokerError::TopicNotFound(name.to_owned()))?;
        info.subscribers = subscriber_totals(&self.reports().await?)
            .get(name)
            .copied()
            .unwrap_or(0);
        Ok(info)
    }

    async fn publish(&self, name: &str, message: &str) -> Result<Published, BrokerError> {
        validate_topic_name(name)?;
        let name_json = serde_json::to_string(name).unwrap_or_default();
        let published_at = Timestamp::now();
        let (head, tail) = message_frame_parts(&name_json, message, published_at.as_str());
        for attempt in 0..2 {
            let result = self
                .batcher
                .publish(name, head.clone(), tail.clone())
                .await?;
            match result {
                Some((epoch, seq)) => {
                    return Ok(Published {
                        seq,
                        epoch: Arc::from(epoch),
                    });
                }
                None if attempt == 0 => self.create_on_first_use(name).await?,
                None => break,
            }
        }
        Err(BrokerError::TopicNotFound(name.to_owned()))
    }

    async fn history(
        &self,
        name: &str,
        since: u64,
        limit: usize,
    ) -> Result<HistoryPage, BrokerError> {
        validate_topic_name(name)?;
        // Seqs never come near the top of u64; the clamp keeps the exclusive range valid.
        let since = since.min(u64::MAX - 1);
        let read = self
            .store
            .read(name, "range", limit as u64, since, "")
            .await?
            .ok_or_else(|| BrokerError::TopicNotFound(name.to_owned()))?;
        let messages = read
            .frames
            .into_iter()
            .filter_map(MessageFrame::parse)
            .map(Arc::new)
            .collect();
        Ok(HistoryPage {
            messages,
            last_seq: read.last_seq,
        })
    }

    async fn subscribe(
        &self,
        name: &str,
        subscriber: Subscriber<'_>,
        replay: &Replay<'_>,
        ack: AckBuilder<'_>,
    ) -> Result<Arc<dyn Subscription>, BrokerError> {
        validate_topic_name(name)?;
        let mut created = false;
        for _ in 0..8 {
            match self
                .try_subscribe(name, subscriber, replay, &mut *ack)
                .await
            {
                Ok(Some(topic)) => return Ok(topic),
                Ok(None) => continue,
                Err(BrokerError::TopicNotFound(_)) if !created => {
                    self.create_on_first_use(name).await?;
                    created = true;
                }
                Err(e) => return Err(e),
            }
        }
        Err(BrokerError::EngineUnavailable(
            "the topic changed under every attempt to subscribe".to_owned(),
        ))
    }

    fn unavailable(&self) -> Option<String> {
        lock(&self.health.problem).clone()
    }

    fn local(&self) -> LocalFigures {
        LocalFigures {
            subscriptions: self.hub.counts().1,
            topics: None,
        }
    }

    fn history_bytes(&self) -> Option<u64> {
        None
    }

    async fn nodes(&self) -> Vec<NodeInfo> {
        let reports = match self.reports().await {
            Ok(reports) => reports,
            Err(_) => vec![(self.gauges.id.clone(), own_report(&self.hub, &self.gauges))],
        };
        reports
            .into_iter()
            .map(|(id, r)| NodeInfo {
                id,
                connections: r.connections,
                subscriptions: r.subscriptions,
                last_seen_ms: r.last_seen_ms,
            })
            .collect()
    }
}

/// This node's report, from its live figures.
fn own_report(hub: &Hub, gauges: &NodeGauges) -> Report {
    let (topics, subscriptions) = hub.counts();
    Report {
        connections: gauges.connections(),
        subscriptions,
        topics,
        last_seen_ms: now_ms(),
    }
}

/// Subscribers per topic, summed over the reports.
fn subscriber_totals(reports: &[(String, Report)]) -> HashMap<String, usize> {
    let mut totals: HashMap<String, usize> = HashMap::new();
    for (_, report) in reports {
        for (topic, n) in &report.topics {
            *totals.entry(topic.clone()).or_default() += n;
        }
    }
    totals
}

/// What the `READ` script returned.
struct Read {
    epoch: String,
    last_seq: u64,
    held: usize,
    frames: Vec<String>,
}

/// What every call to Redis needs: where the deployment's keys are, the command connection and
/// the timeout. Shared by the engine and its background tasks.
#[derive(Clone)]
struct Store {
    keys: Keys,
    commands: Conn,
    timeout: Duration,
}

impl Store {
    /// Runs one call to Redis within the timeout.
    async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, BrokerError> {
        timed(self.timeout, call).await
    }

    /// The `READ` script on topic `name`.
    async fn read(
        &self,
        name: &str,
        mode: &str,
        count: u64,
        seq: u64,
        epoch: &str,
    ) -> Result<Option<Read>, BrokerError> {
        let topic = self.keys.topic(name);
        let mut conn = self.commands.clone();
        let found: Option<(String, u64, usize, Vec<String>)> = self
            .call(
                scripts::READ
                    .key(&topic.meta)
                    .key(&topic.history)
                    .arg(mode)
                    .arg(count)
                    .arg(seq)
                    .arg(epoch)
                    .invoke_async(&mut conn),
            )
            .await?;
        Ok(found.map(|(epoch, last_seq, held, frames)| Read {
            epoch,
            last_seq,
            held,
            frames,
        }))
    }

    /// A topic's epoch, last seq and messages held in Redis; `None` when it does not exist.
    async fn topic_meta(&self, name: &str) -> Result<Option<(String, u64, usize)>, BrokerError> {
        let topic = self.keys.topic(name);
        let mut conn = self.commands.clone();
        self.call(
            scripts::INFO
                .key(&topic.meta)
                .key(&topic.history)
                .invoke_async(&mut conn),
        )
        .await
    }
}

/// Runs one call to Redis within `timeout`. A failure says "nothing was done" only when that is
/// certain (see [`nothing_done`]); otherwise, like a timeout, that "the outcome is unknown".
async fn timed<T>(
    timeout: Duration,
    call: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, BrokerError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) if nothing_done(&e) => Err(BrokerError::EngineUnavailable(format!(
            "Redis: {e}; nothing was done"
        ))),
        Ok(Err(e)) => Err(BrokerError::EngineUnavailable(format!(
            "Redis: {e}; the outcome is unknown"
        ))),
        Err(_) => Err(unavailable_after(timeout)),
    }
}

/// Whether a failed call certainly did nothing: the connection was refused, or Redis answered
/// with an error. Any other failure may come after Redis ran the command: the client's own
/// response timeout (which fires with ours), or a connection that broke while the command was
/// out; a publish that failed so may still be in history and delivered.
fn nothing_done(e: &RedisError) -> bool {
    e.is_connection_refusal() || matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
}

fn unavailable_after(timeout: Duration) -> BrokerError {
    BrokerError::EngineUnavailable(format!(
        "Redis did not answer within {timeout:?}; the outcome is unknown"
    ))
}

/// Runs `task` until the engine is dropped.
async fn stop_with(mut stopped: tokio::sync::watch::Receiver<()>, task: impl Future<Output = ()>) {
    tokio::select! {
        _ = stopped.changed() => {}
        _ = task => {}
    }
}

/// What the node's background tasks share.
#[derive(Clone)]
struct Tasks {
    store: Store,
    hub: Arc<Hub>,
    health: Arc<Health>,
    gauges: Arc<NodeGauges>,
}

impl Tasks {
    /// Joins and leaves channels, one command at a time, so that a leave and a later join of
    /// the same channel reach Redis in that order.
    async fn channels(
        self,
        mut pubsub: PubSub,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut joins: mpsc::UnboundedReceiver<(String, oneshot::Sender<Result<(), String>>)>,
    ) {
        loop {
            tokio::select! {
                Some((channel, done)) = joins.recv() => {
                    let joined = match tokio::time::timeout(self.store.timeout, pubsub.join(&channel)).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(format!("Redis: {e}")),
                        Err(_) => Err(format!("Redis did not answer within {:?}", self.store.timeout)),
                    };
                    let _ = done.send(joined);
                }
                Some(Control::Leave(name)) = control.recv() => {
                    if let Some(channel) = self.hub.leave(&name) {
                        let left = tokio::time::timeout(self.store.timeout, pubsub.leave(&channel)).await;
                        if !matches!(left, Ok(Ok(()))) {
                            tracing::warn!(topic = %name, "could not leave the topic's channel");
                        }
                    }
                }
                else => return,
            }
        }
    }

    /// Applies what arrives on the channels, in order, filling holes from history; sweeps every
    /// topic after a reconnect and every few seconds.
    async fn dispatch(self, mut pushes: mpsc::UnboundedReceiver<PushInfo>) {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        loop {
            tokio::select! {
                push = pushes.recv() => match push {
                    Some(push) => self.on_push(push).await,
                    None => return,
                },
                _ = sweep.tick() => self.sweep(Check::IfStuck).await,
            }
        }
    }

    async fn on_push(&self, push: PushInfo) {
        match push.kind {
            PushKind::Message | PushKind::SMessage => {}
            PushKind::Disconnection => {
                tracing::warn!("lost the Redis pub/sub connection; reconnecting");
                self.health.resync.store(true, Relaxed);
                return;
            }
            _ => return,
        }
        let mut data = push.data.into_iter();
        let (Some(channel), Some(payload)) =
            (data.next().and_then(text), data.next().and_then(text))
        else {
            return;
        };
        let Some(topic) = self
            .store
            .keys
            .topic_of_channel(&channel)
            .and_then(|name| self.hub.get(name))
        else {
            return;
        };
        match Payload::parse(&payload) {
            Some(Payload::Message { epoch, seq, frame }) => {
                if let Some(gap) = topic.apply(epoch, seq, frame) {
                    self.fill(&topic, epoch, gap).await;
                }
            }
            Some(Payload::Deleted { epoch }) => topic.deleted(epoch),
            None => tracing::warn!(%channel, "unreadable payload on a topic channel; ignored"),
        }
    }

    /// Reads a hole from history and hands it to the hub (which announces what is missing).
    async fn fill(&self, topic: &HubTopic, epoch: &str, gap: Gap) {
        let count = gap.up_to - gap.after;
        let read = self
            .store
            .read(&topic.name, "range", count, gap.after, "")
            .await;
        let frames = match read {
            Ok(Some(read)) if read.epoch == epoch => read
                .frames
                .into_iter()
                .filter_map(MessageFrame::parse)
                .map(|m| (m.seq, m.frame))
                .collect(),
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(topic = %topic.name, "cannot fill a hole from history: {e}");
                Vec::new()
            }
        };
        topic.fill(epoch, gap, frames);
    }

    /// Compares every topic's position with Redis and fills what this node missed.
    async fn sweep(&self, when: Check) {
        for topic in self.hub.all() {
            let Some((epoch, _)) = topic.position() else {
                continue;
            };
            let meta = self.store.topic_meta(&topic.name).await;
            let Ok(current) = meta else {
                return; // Redis is not answering: the next sweep tries again
            };
            let current = current.as_ref().map(|(e, s, _)| (e.as_str(), *s));
            if let Some(gap) = topic.check(current, when) {
                self.fill(&topic, &epoch, gap).await;
            }
        }
    }

    /// Checks Redis and reports this node every second, and at once when its subscriptions
    /// change (so other nodes' totals follow within a round trip); sweeps after a reconnect.
    async fn watch(self, mut pubsub: PubSub) {
        let mut every = tokio::time::interval(REPORT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let changed = self.hub.changed.clone();
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = changed.notified() => {}
            }
            let problem = self.check(&mut pubsub).await;
            let was = std::mem::replace(&mut *lock(&self.health.problem), problem.clone());
            match (&was, &problem) {
                (None, Some(why)) => tracing::error!("Redis is unavailable: {why}"),
                (Some(_), None) => {
                    tracing::info!("Redis is available again");
                    self.health.resync.store(true, Relaxed);
                }
                _ => {}
            }
            if problem.is_none() && self.health.resync.swap(false, Relaxed) {
                self.sweep(Check::Now).await;
            }
        }
    }

    /// Pings both connections (reconnecting them if needed) and reports this node.
    async fn check(&self, pubsub: &mut PubSub) -> Option<String> {
        let mut conn = self.store.commands.clone();
        let report =
            serde_json::to_string(&own_report(&self.hub, &self.gauges)).unwrap_or_default();
        let reported: Result<i64, _> = timed(
            self.store.timeout,
            redis::cmd("HSET")
                .arg(self.store.keys.nodes())
                .arg(&self.gauges.id)
                .arg(report)
                .query_async(&mut conn),
        )
        .await;
        if let Err(e) = reported {
            return Some(e.to_string());
        }
        match tokio::time::timeout(self.store.timeout, pubsub.ping()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("Redis pub/sub: {e}")),
            Err(_) => Some(format!(
                "Redis pub/sub did not answer within {:?}",
                self.store.timeout
            )),
        }
    }
}

/// A bulk string's text, without copying it.
fn text(value: Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use redis::{ErrorKind, RedisError, ServerErrorKind};

    use super::nothing_done;

    #[test]
    fn only_a_refusal_or_an_error_reply_means_nothing_was_done() {
        let io = |kind| RedisError::from(io::Error::from(kind));
        assert!(nothing_done(&io(io::ErrorKind::ConnectionRefused)));
        assert!(nothing_done(&RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "ERR"
        ))));
        // The command may have gone out and run: the outcome is unknown.
        for kind in [
            io::ErrorKind::TimedOut,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::UnexpectedEof,
        ] {
            assert!(!nothing_done(&io(kind)), "{kind:?}");
        }
        assert!(!nothing_done(&RedisError::from((ErrorKind::Parse, "bad"))));
    }
}
