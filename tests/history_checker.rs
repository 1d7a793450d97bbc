//! A history checker: several nodes on one Redis, publishers and subscribers on every node, faults
//! injected between each node and Redis on a schedule, and every answer recorded; afterwards the
//! record is checked against what the protocol promises.
//!
//! Recorded: every publish ack (topic, seq, epoch, message id), every failed publish (a refusal,
//! or a timeout whose outcome is unknown), every frame each subscriber got (acks, messages,
//! `lagged`), its resumes on another node. Checked, per topic and per subscriber:
//! - seqs strictly increase (no duplicate, nothing out of order);
//! - a gap between consecutive seqs is exactly what a `lagged` notice, or a resume ack with
//!   `recovered: false`, announced (no silent gap, no false alarm);
//! - every acknowledged message is in history with its seq and epoch, and reached every
//!   subscriber exactly once at that seq unless its seq was announced lost;
//! - a refused publish is nowhere; a timed-out one is in history at most once, and then delivered
//!   like any other; history holds nothing that was not published.
//!
//! No timing is asserted: the faults overlap the publishing by schedule, and the end waits (with
//! a deadline) until every subscriber has reached each topic's last seq.
//!
//! Three runs: 3 nodes on one Redis, each node behind its own proxy (one stalls, one closes
//! every connection, one is down so connections are refused); 3 nodes on a 3-master Redis
//! Cluster without faults; and the Cluster again with each master behind a proxy it announces as
//! its address, so the same faults hit one shard at a time. Each prints a one-line summary.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use common::proxy::{Proxy, ProxyMode};
use common::redis::{RedisCluster, RedisServer, redis_missing};
use common::{TestServer, WsClient, http_request};

const TOPICS: [&str; 4] = ["h0", "h1", "h2", "h3"];
const PUBLISHERS_PER_NODE: usize = 2;
const SUBSCRIBERS_PER_NODE: usize = 2;
/// Messages each publisher sends, round robin over the topics.
const MESSAGES: usize = 150;
/// The pause between two publishes of one publisher: spreads publishing over the faults.
const PACE: Duration = Duration::from_millis(30);
/// Large enough to hold every message of a run: history never forgets one here.
const HISTORY: &str = "2000";
/// How long the end may wait for every subscriber to catch up.
const QUIESCENCE: Duration = Duration::from_secs(25);

/// What a publisher was told.
#[derive(Debug, Clone)]
enum Publish {
    Acked {
        topic: String,
        seq: u64,
        epoch: String,
        id: String,
    },
    /// `engine_unavailable`: `unknown` when it timed out (the outcome is unknown), otherwise a
    /// refusal (nothing was done).
    Failed {
        topic: String,
        id: String,
        unknown: bool,
        message: String,
    },
    /// Any other answer: always a violation.
    Unexpected { id: String, frame: Value },
}

/// What a subscriber got, in order.
#[derive(Debug, Clone)]
enum Event {
    Ack {
        topic: String,
        epoch: String,
        last_seq: u64,
        replayed: u64,
        recovered: Option<bool>,
        /// The `since_seq` of a resume.
        since: Option<u64>,
    },
    Message {
        topic: String,
        seq: u64,
        id: String,
    },
    Lagged {
        topic: String,
        dropped: u64,
    },
    SubscribeError {
        topic: String,
    },
    /// Anything else (topic_deleted, an error that answers nothing, the connection ending).
    Unexpected(String),
}

/// One subscriber's record, and where it stands per topic (read by the test while it waits).
#[derive(Default)]
struct SubLog {
    events: Vec<Event>,
    /// The last seq accounted for (delivered, replayed or announced lost), per topic.
    position: HashMap<String, u64>,
    epoch: HashMap<String, String>,
}

impl SubLog {
    fn record(&mut self, event: Event) {
        match &event {
            Event::Ack {
                topic,
                epoch,
                last_seq,
                replayed,
                recovered,
                since,
            } => {
                let start = match (since, recovered) {
                    (Some(since), Some(true)) => *since,
                    _ => last_seq.saturating_sub(*replayed),
                };
                self.position.insert(topic.clone(), start);
                self.epoch.insert(topic.clone(), epoch.clone());
            }
            Event::Message { topic, seq, .. } => {
                let p = self.position.entry(topic.clone()).or_default();
                *p = (*p).max(*seq);
            }
            Event::Lagged { topic, dropped } => {
                *self.position.entry(topic.clone()).or_default() += dropped;
            }
            Event::SubscribeError { .. } | Event::Unexpected(_) => {}
        }
        self.events.push(event);
    }

    fn acked_topics(&self) -> usize {
        self.epoch.len()
    }
}

/// A subscriber that leaves its node at `at` and resumes every topic on `to`, from where it was.
#[derive(Clone, Copy)]
struct Resume {
    at: Instant,
    to: SocketAddr,
}

/// Subscribes to every topic on `addr`, records everything until `stop`, and resumes elsewhere
/// when told to.
async fn subscriber(
    addr: SocketAddr,
    resume: Option<Resume>,
    log: Arc<Mutex<SubLog>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ws = WsClient::connect(addr).await;
    for topic in TOPICS {
        ws.send(json!({"action": "subscribe", "topic": topic, "request_id": topic}))
            .await;
    }
    let mut resume = resume;
    let mut retry: HashSet<String> = HashSet::new();
    let far = Instant::now() + Duration::from_secs(3600);
    let mut retry_at = far;
    let mut open = true;
    loop {
        let resume_at = resume.map_or(far, |r| r.at);
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep_until(resume_at) => {
                let to = resume.take().map(|r| r.to).unwrap_or(addr);
                // Gone without a word: what was in flight is not delivered to this client.
                drop(ws);
                ws = WsClient::connect(to).await;
                open = true;
                let positions = {
                    let log = lock(&log);
                    TOPICS
                        .iter()
                        .map(|t| (t.to_string(), log.position[*t], log.epoch[*t].clone()))
                        .collect::<Vec<_>>()
                };
                for (topic, since, epoch) in positions {
                    ws.send(resume_request(&topic, since, &epoch)).await;
                }
            }
            _ = tokio::time::sleep_until(retry_at) => {
                retry_at = far;
                for topic in std::mem::take(&mut retry) {
                    let resume = {
                        let log = lock(&log);
                        log.epoch.get(&topic).map(|e| (log.position[&topic], e.clone()))
                    };
                    let request = match resume {
                        Some((since, epoch)) => resume_request(&topic, since, &epoch),
                        None => json!({"action": "subscribe", "topic": topic, "request_id": topic}),
                    };
                    ws.send(request).await;
                }
            }
            frame = ws.ws.next(), if open => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => {
                        open = false;
                        let ended = format!("connection ended: {other:?}");
                        lock(&log).record(Event::Unexpected(ended));
                        continue;
                    }
                };
                let frame: Value = serde_json::from_str(&text).expect("JSON frame");
                let event = parse_event(&frame, lock(&log).epoch.contains_key(topic_of(&frame)));
                if let Event::SubscribeError { topic, .. } = &event {
                    retry.insert(topic.clone());
                    retry_at = Instant::now() + Duration::from_millis(200);
                }
                lock(&log).record(event);
            }
        }
    }
}

fn topic_of(frame: &Value) -> &str {
    frame["topic"]
        .as_str()
        .or(frame["request_id"].as_str())
        .unwrap_or("")
}

fn resume_request(topic: &str, since: u64, epoch: &str) -> Value {
    json!({"action": "subscribe", "topic": topic, "since_seq": since, "epoch": epoch,
           "request_id": format!("{topic}@{since}")})
}

/// A frame as an event; `resumed` says whether the topic was subscribed before (so an ack is
/// a resume's).
fn parse_event(frame: &Value, resumed: bool) -> Event {
    let topic = topic_of(frame).to_owned();
    match frame["action"].as_str() {
        Some("message") => Event::Message {
            topic,
            seq: frame["seq"].as_u64().expect("seq"),
            id: frame["message"]["id"].as_str().unwrap_or("?").to_owned(),
        },
        Some("lagged") => Event::Lagged {
            topic,
            dropped: frame["dropped"].as_u64().expect("dropped"),
        },
        Some("subscribed") => {
            let since = resumed.then(|| {
                let id = frame["request_id"].as_str().unwrap_or("");
                let since = id.rsplit_once('@').map_or("", |(_, s)| s);
                since
                    .parse()
                    .expect("a resume's request_id carries its since_seq")
            });
            Event::Ack {
                topic,
                epoch: frame["epoch"].as_str().unwrap_or("").to_owned(),
                last_seq: frame["last_seq"].as_u64().expect("last_seq"),
                replayed: frame["replayed"].as_u64().expect("replayed"),
                recovered: frame["recovered"].as_bool(),
                since,
            }
        }
        Some("error")
            if frame["error"]["code"] == "engine_unavailable"
                && frame["request_id"].is_string() =>
        {
            let topic = frame["request_id"].as_str().unwrap_or("");
            let topic = topic.split('@').next().unwrap_or("").to_owned();
            Event::SubscribeError { topic }
        }
        _ => Event::Unexpected(frame.to_string()),
    }
}

/// Publishes `MESSAGES` messages on `addr`, each with a unique id, and records every answer.
async fn publisher(p: usize, addr: SocketAddr, log: Arc<Mutex<Vec<Publish>>>) {
    let mut ws = WsClient::connect(addr).await;
    for i in 0..MESSAGES {
        let topic = TOPICS[i % TOPICS.len()];
        let id = format!("p{p}-{i}");
        let reply = ws
            .request(
                json!({"action": "publish", "topic": topic, "message": {"id": id, "n": i},
                            "request_id": id}),
            )
            .await;
        let record = match reply["action"].as_str() {
            Some("published") if reply["request_id"] == id.as_str() => Publish::Acked {
                topic: topic.to_owned(),
                seq: reply["seq"].as_u64().expect("seq"),
                epoch: reply["epoch"].as_str().unwrap_or("").to_owned(),
                id,
            },
            Some("error")
                if reply["error"]["code"] == "engine_unavailable"
                    && reply["request_id"] == id.as_str() =>
            {
                let message = reply["error"]["message"].as_str().unwrap_or("").to_owned();
                Publish::Failed {
                    topic: topic.to_owned(),
                    unknown: message.contains("outcome is unknown"),
                    id,
                    message,
                }
            }
            _ => Publish::Unexpected { id, frame: reply },
        };
        lock(&log).push(record);
        tokio::time::sleep(PACE).await;
    }
}

/// A topic as the end of a run found it.
struct Final {
    epoch: String,
    last_seq: u64,
    /// seq → message id, as history holds them.
    history: Vec<(u64, String)>,
}

/// Everything a run recorded.
struct Record {
    publishes: Vec<Publish>,
    subscribers: Vec<(String, Vec<Event>)>,
    topics: BTreeMap<String, Final>,
    /// Found while running (a subscriber that never caught up, say).
    problems: Vec<String>,
}

#[derive(Default, Debug)]
struct Summary {
    acked: usize,
    refused: usize,
    unknown: usize,
    unknown_appeared: usize,
    deliveries: usize,
    lagged: usize,
    dropped: u64,
    resumes: usize,
    resumes_not_recovered: usize,
    subscribe_errors: usize,
}

/// Checks a run's record; returns the violations and the summary.
fn check(record: &Record) -> (Vec<String>, Summary) {
    let mut v = record.problems.clone();
    let mut s = Summary::default();
    // Publishes, by topic: acked seq → id; and the ids that failed.
    let mut acked: HashMap<&str, BTreeMap<u64, &str>> = HashMap::new();
    let mut refused: HashMap<&str, &str> = HashMap::new();
    // id → topic
    let mut unknown: HashMap<&str, &str> = HashMap::new();
    for p in &record.publishes {
        match p {
            Publish::Acked {
                topic,
                seq,
                epoch,
                id,
            } => {
                s.acked += 1;
                let Some(fin) = record.topics.get(topic) else {
                    v.push(format!("ack for an unknown topic: {p:?}"));
                    continue;
                };
                if epoch != &fin.epoch {
                    v.push(format!(
                        "{topic}: {id} acked with epoch {epoch}, the topic's is {}",
                        fin.epoch
                    ));
                }
                if let Some(other) = acked.entry(topic).or_default().insert(*seq, id) {
                    v.push(format!(
                        "{topic}: seq {seq} acked twice, to {other} and {id}"
                    ));
                }
            }
            Publish::Failed {
                topic,
                id,
                unknown: true,
                ..
            } => {
                s.unknown += 1;
                unknown.insert(id, topic);
            }
            Publish::Failed { id, message, .. } => {
                s.refused += 1;
                refused.insert(id, message);
            }
            Publish::Unexpected { id, frame } => v.push(format!("publish {id} answered {frame}")),
        }
    }
    // History, per topic: every seq once, every acked message at its seq, nothing refused,
    // nothing never published.
    let mut appeared: HashSet<&str> = HashSet::new();
    for (topic, fin) in &record.topics {
        let seqs: Vec<u64> = fin.history.iter().map(|(seq, _)| *seq).collect();
        let expected: Vec<u64> = (1..=fin.last_seq).collect();
        if seqs != expected {
            v.push(format!(
                "{topic}: history holds seqs {} (first {:?}, last {:?}), expected 1..={}",
                seqs.len(),
                seqs.first(),
                seqs.last(),
                fin.last_seq
            ));
        }
        let held: HashMap<u64, &str> = fin.history.iter().map(|(q, id)| (*q, &**id)).collect();
        let mut ids = HashSet::new();
        for (seq, id) in &fin.history {
            if !ids.insert(&**id) {
                v.push(format!(
                    "{topic}: {id} is in history twice (again at {seq})"
                ));
            }
            let was_acked = acked.get(&**topic).and_then(|a| a.get(seq)) == Some(&&**id);
            if was_acked {
                continue;
            }
            if let Some(why) = refused.get(&**id) {
                v.push(format!(
                    "{topic}: {id} is in history at seq {seq}, but its publish was refused ({why})"
                ));
            } else if let Some(published_to) = unknown.get(&**id) {
                if published_to != topic {
                    v.push(format!("{topic}: holds {id}, published to {published_to}"));
                }
                appeared.insert(id);
            } else {
                v.push(format!(
                    "{topic}: history holds {id} at seq {seq}, which no ack gave it"
                ));
            }
        }
        for (seq, id) in acked.get(&**topic).into_iter().flatten() {
            if held.get(seq) != Some(id) {
                v.push(format!(
                    "{topic}: {id} was acked with seq {seq}; history holds {:?} there",
                    held.get(seq)
                ));
            }
        }
    }
    s.unknown_appeared = appeared.len();
    // Each subscriber, per topic.
    for (name, events) in &record.subscribers {
        for (topic, fin) in &record.topics {
            let held: HashMap<u64, &str> = fin.history.iter().map(|(q, id)| (*q, &**id)).collect();
            let got = walk(name, topic, events, &mut v, &mut s);
            let Some(got) = got else { continue };
            for seq in 1..=fin.last_seq {
                match (got.delivered.get(&seq), held.get(&seq)) {
                    (Some(d), Some(h)) if d == h => {}
                    (None, _) if got.lost.iter().any(|r| r.contains(&seq)) => {}
                    (Some(d), h) => v.push(format!(
                        "{name} {topic}: got {d} at seq {seq}; history holds {h:?}"
                    )),
                    (None, h) => v.push(format!(
                        "{name} {topic}: never got seq {seq} ({h:?}), and was not told"
                    )),
                }
            }
            for (seq, id) in &got.delivered {
                if *seq > fin.last_seq {
                    v.push(format!(
                        "{name} {topic}: got {id} at seq {seq}, past the last seq {}",
                        fin.last_seq
                    ));
                }
                if let Some(why) = refused.get(&**id) {
                    v.push(format!(
                        "{name} {topic}: got {id}, whose publish was refused ({why})"
                    ));
                }
            }
        }
        for e in events {
            if let Event::Unexpected(what) = e {
                v.push(format!("{name}: unexpected {what}"));
            }
        }
    }
    (v, s)
}

/// What one subscriber got of one topic.
struct Got {
    delivered: BTreeMap<u64, String>,
    /// Seqs announced lost (by `lagged`, or a resume that could not recover).
    lost: Vec<std::ops::RangeInclusive<u64>>,
}

/// Walks one subscriber's events of `topic` in order, checking seqs and gaps.
fn walk(
    name: &str,
    topic: &str,
    events: &[Event],
    v: &mut Vec<String>,
    s: &mut Summary,
) -> Option<Got> {
    let mut got = Got {
        delivered: BTreeMap::new(),
        lost: Vec::new(),
    };
    // The last seq accounted for; None before the first ack.
    let mut position: Option<u64> = None;
    for e in events {
        match e {
            Event::Ack {
                topic: t,
                last_seq,
                replayed,
                recovered,
                since,
                ..
            } if t == topic => {
                let replay_from = last_seq + 1 - replayed;
                match (position, since) {
                    (None, None) => position = Some(replay_from - 1),
                    (Some(p), Some(since)) => {
                        s.resumes += 1;
                        if *since != p {
                            v.push(format!(
                                "{name} {topic}: resumed from {since}, but was at {p} (test bug)"
                            ));
                        }
                        if *recovered == Some(true) {
                            if replay_from != since + 1 {
                                v.push(format!(
                                    "{name} {topic}: resumed after {since}, recovered, but the \
                                     replay starts at {replay_from}"
                                ));
                            }
                        } else {
                            s.resumes_not_recovered += 1;
                            // Announced: what lies between the position and the replay is lost.
                            if replay_from > p + 1 {
                                got.lost.push(p + 1..=replay_from - 1);
                            }
                            position = Some(replay_from - 1);
                        }
                    }
                    _ => v.push(format!("{name} {topic}: unexpected ack {e:?}")),
                }
            }
            Event::Message { topic: t, seq, id } if t == topic => {
                s.deliveries += 1;
                let Some(p) = position else {
                    v.push(format!("{name} {topic}: seq {seq} before any ack"));
                    continue;
                };
                if *seq == p + 1 {
                    got.delivered.insert(*seq, id.clone());
                    position = Some(*seq);
                } else if *seq > p + 1 {
                    v.push(format!(
                        "{name} {topic}: silent gap: seq {seq} ({id}) followed {p}, no lagged \
                         for {}..={}",
                        p + 1,
                        seq - 1
                    ));
                    got.delivered.insert(*seq, id.clone());
                    position = Some(*seq);
                } else if got.lost.iter().any(|r| r.contains(seq)) {
                    v.push(format!(
                        "{name} {topic}: seq {seq} ({id}) arrived after being announced lost"
                    ));
                } else {
                    v.push(format!(
                        "{name} {topic}: seq {seq} ({id}) after {p}: duplicate or out of order"
                    ));
                }
            }
            Event::Lagged { topic: t, dropped } if t == topic => {
                s.lagged += 1;
                s.dropped += dropped;
                let Some(p) = position else {
                    v.push(format!("{name} {topic}: lagged before any ack"));
                    continue;
                };
                if *dropped == 0 {
                    v.push(format!("{name} {topic}: lagged with 0 dropped"));
                    continue;
                }
                got.lost.push(p + 1..=p + dropped);
                position = Some(p + dropped);
            }
            Event::SubscribeError { topic: t, .. } if t == topic => s.subscribe_errors += 1,
            _ => {}
        }
    }
    if position.is_none() {
        v.push(format!("{name} {topic}: never subscribed"));
        return None;
    }
    Some(got)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A scheduled change of one node's proxy, counted from the start of publishing.
struct Fault {
    after: Duration,
    proxy: usize,
    mode: ProxyMode,
}

/// Runs publishers and subscribers on `nodes` while `faults` are applied to `proxies`, waits
/// until every subscriber caught up, and returns the record.
async fn run(
    nodes: &[TestServer],
    proxies: &[Proxy],
    faults: Vec<Fault>,
    resumes: &[(usize, Duration, usize)],
) -> Record {
    for topic in TOPICS {
        nodes[0].create_topic(topic).await;
    }
    let start = Instant::now() + Duration::from_millis(300);
    let (stop, stopped) = watch::channel(false);
    let mut subscribers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for j in 0..SUBSCRIBERS_PER_NODE {
            let k = i * SUBSCRIBERS_PER_NODE + j;
            let resume = resumes
                .iter()
                .find(|(s, _, _)| *s == k)
                .map(|(_, at, to)| Resume {
                    at: start + *at,
                    to: nodes[*to].addr,
                });
            let log = Arc::new(Mutex::new(SubLog::default()));
            let task = tokio::spawn(subscriber(node.addr, resume, log.clone(), stopped.clone()));
            subscribers.push((format!("sub{k}@node{i}"), log, task));
        }
    }
    // Every subscriber holds every topic before anything is published.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !subscribers
        .iter()
        .all(|(_, log, _)| lock(log).acked_topics() == TOPICS.len())
    {
        assert!(Instant::now() < deadline, "subscribers did not subscribe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep_until(start).await;
    let publishes = Arc::new(Mutex::new(Vec::new()));
    let mut publishers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        for j in 0..PUBLISHERS_PER_NODE {
            let p = i * PUBLISHERS_PER_NODE + j;
            publishers.push(tokio::spawn(publisher(p, node.addr, publishes.clone())));
        }
    }
    for fault in faults {
        tokio::time::sleep_until(start + fault.after).await;
        proxies[fault.proxy].set(fault.mode);
    }
    for p in publishers {
        p.await.expect("publisher");
    }
    for proxy in proxies {
        proxy.set(ProxyMode::Pass);
    }
    // Quiescence: every subscriber at every topic's last seq (read again each round: a publish
    // that timed out may still land).
    let mut problems = Vec::new();
    let deadline = Instant::now() + QUIESCENCE;
    loop {
        let mut behind = Vec::new();
        for topic in TOPICS {
            let info = get(nodes[nodes.len() - 1].addr, &format!("/topics/{topic}")).await;
            let last = info["last_seq"].as_u64().expect("last_seq");
            for (name, log, _) in &subscribers {
                let at = lock(log).position.get(topic).copied().unwrap_or(0);
                if at < last {
                    behind.push(format!("{name} {topic} at {at} of {last}"));
                }
            }
        }
        if behind.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            problems.push(format!("no quiescence within {QUIESCENCE:?}: {behind:?}"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    let mut subs = Vec::new();
    for (name, log, task) in subscribers {
        task.await.expect("subscriber");
        let events = std::mem::take(&mut lock(&log).events);
        subs.push((name, events));
    }
    let mut topics = BTreeMap::new();
    for topic in TOPICS {
        let info = get(nodes[0].addr, &format!("/topics/{topic}")).await;
        let h = get(
            nodes[0].addr,
            &format!("/topics/{topic}/messages?since_seq=0&limit={HISTORY}"),
        )
        .await;
        let history = h["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| {
                let id = m["message"]["id"].as_str().unwrap_or("?").to_owned();
                (m["seq"].as_u64().expect("seq"), id)
            })
            .collect();
        topics.insert(
            topic.to_owned(),
            Final {
                epoch: info["epoch"].as_str().expect("epoch").to_owned(),
                last_seq: h["last_seq"].as_u64().expect("last_seq"),
                history,
            },
        );
    }
    let publishes = std::mem::take(&mut *lock(&publishes));
    Record {
        publishes,
        subscribers: subs,
        topics,
        problems,
    }
}

/// `GET path` as JSON, tried again for a while as long as the node answers 503 (its Redis
/// connection may still be coming back after a fault).
async fn get(addr: SocketAddr, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = http_request(addr, "GET", path, &[], b"").await;
        if r.status == 200 {
            return r.json();
        }
        assert!(
            r.status == 503 && Instant::now() < deadline,
            "GET {path}: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks the record, prints the one-line summary, and fails with the violations found.
fn report(what: &str, record: &Record) {
    let (violations, s) = check(record);
    println!(
        "history checker ({what}): publishes acked {}, failed {} (refused {}, timed out {} of \
         which {} appeared); deliveries {}; lagged {} ({} dropped); resumes {} ({} not \
         recovered, {} subscribe errors); violations {}",
        s.acked,
        s.refused + s.unknown,
        s.refused,
        s.unknown,
        s.unknown_appeared,
        s.deliveries,
        s.lagged,
        s.dropped,
        s.resumes,
        s.resumes_not_recovered,
        s.subscribe_errors,
        violations.len()
    );
    let mut reasons: Vec<&str> = record
        .publishes
        .iter()
        .filter_map(|p| match p {
            Publish::Failed { message, .. } => Some(message.as_str()),
            _ => None,
        })
        .collect();
    reasons.sort_unstable();
    reasons.dedup();
    if !reasons.is_empty() {
        println!("  publish failures ({what}): {reasons:?}");
    }
    assert!(
        violations.is_empty(),
        "{} violations; the first:\n{}",
        violations.len(),
        violations
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let total = s.acked + s.refused + s.unknown;
    assert_eq!(
        total,
        nodes_count() * PUBLISHERS_PER_NODE * MESSAGES,
        "every publish answered"
    );
}

fn nodes_count() -> usize {
    3
}

/// Node flags: a 1 s Redis timeout, and history for every message of the run.
fn node_args<'a>(flag: &'a str, target: &'a str) -> Vec<&'a str> {
    vec![
        "--engine",
        "redis",
        flag,
        target,
        "--redis-timeout",
        "1",
        "--history-size",
        HISTORY,
    ]
}

/// The faults and resumes of a run with a proxy per node (or per Cluster shard): proxy 0
/// stalls, proxy 1 closes every connection, proxy 2 is down (connections refused), overlapping
/// the publishing; subscribers leave their node and resume on another during and after them.
fn schedule() -> (Vec<Fault>, [(usize, Duration, usize); 3]) {
    let ms = Duration::from_millis;
    let fault = |after, proxy, mode| Fault {
        after: ms(after),
        proxy,
        mode,
    };
    let faults = vec![
        fault(600, 0, ProxyMode::Stall),
        fault(2100, 0, ProxyMode::Pass),
        fault(2400, 1, ProxyMode::Refuse),
        fault(3400, 2, ProxyMode::Down),
        fault(3900, 1, ProxyMode::Pass),
        fault(4900, 2, ProxyMode::Pass),
    ];
    // sub0 (node 0) leaves during proxy 1's fault and resumes on node 1; sub4 leaves node 2
    // during proxy 2's and resumes on node 0; sub2 (node 1) resumes on node 2 at the end.
    let resumes = [(0, ms(2800), 1), (4, ms(4000), 0), (2, ms(5200), 2)];
    (faults, resumes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_one_redis_under_faults_keep_the_history_promises() {
    if redis_missing() {
        return;
    }
    let redis = RedisServer::start();
    let mut proxies = Vec::new();
    let mut nodes = Vec::new();
    for _ in 0..nodes_count() {
        let proxy = Proxy::start(redis.addr()).await;
        nodes.push(TestServer::with_args(&node_args("--redis-url", &proxy.redis_url())).await);
        proxies.push(proxy);
    }
    let (faults, resumes) = schedule();
    let record = run(&nodes, &proxies, faults, &resumes).await;
    report("3 nodes, one Redis, stall, closed, down", &record);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_a_redis_cluster_keep_the_history_promises() {
    if redis_missing() {
        return;
    }
    let cluster = RedisCluster::start();
    let seeds = cluster.seeds();
    let mut nodes = Vec::new();
    for _ in 0..nodes_count() {
        nodes.push(TestServer::with_args(&node_args("--redis-cluster", &seeds)).await);
    }
    let ms = Duration::from_millis;
    let resumes = [(0, ms(1500), 1), (3, ms(3000), 2)];
    let record = run(&nodes, &[], Vec::new(), &resumes).await;
    report("3 nodes, Redis Cluster, no faults", &record);
}

/// The Cluster again, each master behind a proxy that it announces as its address
/// (`cluster-announce-port`), so every node reaches each shard through that shard's proxy: the
/// faults of [`schedule`] hit one shard at a time, for every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_a_redis_cluster_under_shard_faults_keep_the_history_promises() {
    if redis_missing() {
        return;
    }
    let cluster = RedisCluster::start();
    let mut proxies = Vec::new();
    for shard in &cluster.nodes {
        let proxy = Proxy::start(shard.addr()).await;
        let port = proxy.addr.port().to_string();
        assert_eq!(
            shard.cli(&["config", "set", "cluster-announce-port", &port]),
            "OK"
        );
        proxies.push(proxy);
    }
    // Every master lists every shard at its proxy.
    let ports: Vec<String> = proxies.iter().map(|p| p.addr.port().to_string()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster.nodes.iter().all(|n| {
        let slots = n.cli(&["cluster", "slots"]);
        ports.iter().all(|p| slots.lines().any(|l| l.trim() == p))
    }) {
        assert!(
            Instant::now() < deadline,
            "shards not announced at their proxies"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seeds = proxies
        .iter()
        .map(|p| format!("redis://{}", p.addr))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes = Vec::new();
    for _ in 0..nodes_count() {
        nodes.push(TestServer::with_args(&node_args("--redis-cluster", &seeds)).await);
    }
    let (faults, resumes) = schedule();
    let record = run(&nodes, &proxies, faults, &resumes).await;
    report(
        "3 nodes, Redis Cluster behind proxies, stall, closed, down",
        &record,
    );
}

/// The checker itself: a clean record passes, and each kind of violation is found.
#[test]
fn the_checker_finds_each_kind_of_violation() {
    let acked = |seq: u64, id: &str| Publish::Acked {
        topic: "h0".into(),
        seq,
        epoch: "E".into(),
        id: id.into(),
    };
    let failed = |id: &str, unknown: bool| Publish::Failed {
        topic: "h0".into(),
        id: id.into(),
        unknown,
        message: "m".into(),
    };
    let ack = |last_seq, replayed, since: Option<u64>| Event::Ack {
        topic: "h0".into(),
        epoch: "E".into(),
        last_seq,
        replayed,
        recovered: since.map(|_| true),
        since,
    };
    let msg = |seq, id: &str| Event::Message {
        topic: "h0".into(),
        seq,
        id: id.into(),
    };
    let lagged = |dropped| Event::Lagged {
        topic: "h0".into(),
        dropped,
    };
    let record = |history: &[(u64, &str)], publishes: Vec<Publish>, events: Vec<Event>| {
        let fin = Final {
            epoch: "E".into(),
            last_seq: history.last().map_or(0, |h| h.0),
            history: history.iter().map(|(q, id)| (*q, id.to_string())).collect(),
        };
        Record {
            publishes,
            subscribers: vec![("sub".into(), events)],
            topics: BTreeMap::from([("h0".to_owned(), fin)]),
            problems: Vec::new(),
        }
    };
    let abc = [(1, "a"), (2, "b"), (3, "c")];
    let published = || vec![acked(1, "a"), acked(2, "b"), acked(3, "c")];
    let found = |r: &Record| check(r).0.join("\n");

    let clean = [
        vec![ack(0, 0, None), msg(1, "a"), msg(2, "b"), msg(3, "c")],
        // A loss announced exactly is no violation.
        vec![ack(0, 0, None), msg(1, "a"), lagged(1), msg(3, "c")],
        // A resume that recovered replays from where the subscriber was.
        vec![
            ack(0, 0, None),
            msg(1, "a"),
            ack(3, 2, Some(1)),
            msg(2, "b"),
            msg(3, "c"),
        ],
    ];
    for events in clean {
        assert_eq!(found(&record(&abc, published(), events)), "");
    }
    let bad = [
        (
            vec![ack(0, 0, None), msg(1, "a"), msg(3, "c")],
            "silent gap",
        ),
        (
            vec![
                ack(0, 0, None),
                msg(1, "a"),
                msg(2, "b"),
                msg(2, "b"),
                msg(3, "c"),
            ],
            "duplicate or out of order",
        ),
        (
            vec![
                ack(0, 0, None),
                msg(1, "a"),
                lagged(2),
                msg(2, "b"),
                msg(3, "c"),
            ],
            "after being announced lost",
        ),
        (
            vec![ack(0, 0, None), msg(1, "a"), msg(2, "b")],
            "never got seq 3",
        ),
        (
            vec![ack(0, 0, None), msg(1, "a"), msg(2, "x"), msg(3, "c")],
            "got x at seq 2",
        ),
    ];
    for (events, expected) in bad {
        let r = record(&abc, published(), events);
        assert!(found(&r).contains(expected), "{expected}: {}", found(&r));
    }
    let all = vec![
        ack(0, 0, None),
        msg(1, "a"),
        msg(2, "b"),
        msg(3, "c"),
        msg(4, "r"),
    ];
    // A refused publish that is in history.
    let mut publishes = published();
    publishes.push(failed("r", false));
    let r = record(&[(1, "a"), (2, "b"), (3, "c"), (4, "r")], publishes, all);
    assert!(
        found(&r).contains("its publish was refused"),
        "{}",
        found(&r)
    );
    // A timed-out one may appear once, not twice.
    let mut publishes = published();
    publishes.push(failed("u", true));
    let twice = [(1, "a"), (2, "b"), (3, "c"), (4, "u"), (5, "u")];
    let events = vec![
        ack(0, 0, None),
        msg(1, "a"),
        msg(2, "b"),
        msg(3, "c"),
        msg(4, "u"),
        msg(5, "u"),
    ];
    let r = record(&twice[..4], publishes.clone(), events[..5].to_vec());
    assert_eq!(found(&r), "");
    let r = record(&twice, publishes, events);
    assert!(found(&r).contains("in history twice"), "{}", found(&r));
    // An acked message that history does not hold at its seq.
    let r = record(
        &[(1, "a"), (2, "x"), (3, "c")],
        published(),
        vec![ack(0, 0, None), msg(1, "a"), msg(2, "x"), msg(3, "c")],
    );
    assert!(found(&r).contains("history holds"), "{}", found(&r));
}

/// A publish that timed out must not claim that nothing was done: its outcome is unknown (the
/// checker's runs show such publishes landing once the stall ends).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_publish_does_not_say_nothing_was_done() {
    if redis_missing() {
        return;
    }
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.addr()).await;
    let node = TestServer::with_args(&node_args("--redis-url", &proxy.redis_url())).await;
    node.create_topic("t").await;
    let mut ws = node.ws().await;
    proxy.set(ProxyMode::Stall);
    let e = ws
        .request(json!({"action": "publish", "topic": "t", "message": 1}))
        .await;
    proxy.set(ProxyMode::Pass);
    let message = e["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("the outcome is unknown"), "{e}");
    assert!(!message.contains("nothing was done"), "{e}");
}
