//! A bounded soak: the real binary as a child process, and for a fixed time many WebSocket clients
//! in a random mix: connect, subscribe (to topics that exist, that come and go, that never
//! existed), publish, stop reading until the slow-consumer policy closes them, send garbage,
//! unsubscribe, and leave by a clean close, by dropping TCP (FIN) or by a reset (RST), while a REST
//! client creates, deletes, publishes and reads. Afterwards every counter in `/stats` and
//! `/topics` must be what the clients' own tally says, no connection or subscription may be left,
//! and once every topic is deleted the server's resident memory must be back near where it
//! started.
//!
//! `PUBSUB_SOAK_SECS` sets the duration (default 8; by hand e.g. `PUBSUB_SOAK_SECS=300 cargo test
//! --release --test soak -- --nocapture`), `PUBSUB_SOAK_SEED` the seed of the random mix (printed
//! either way). The only timing in the checks is generous bounded waits.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use common::child::{ChildServer, rss_kib_of};
use common::http_request;

/// Topics created at the start and never deleted: every publish to them is tallied.
const STABLE: [&str; 4] = ["soak-a", "soak-b", "soak-c", "soak-d"];
/// Topics the REST client creates and deletes at random while clients use them.
const CHURN: [&str; 4] = ["churn-1", "churn-2", "churn-3", "churn-4"];
/// Topics that never exist.
const MISSING: [&str; 2] = ["never-1", "never-2"];

const HISTORY_SIZE: u64 = 50;
const MAX_MESSAGE_BYTES: usize = 4096;
/// The smallest queue the server allows for that message size, so a stalled reader fills it soon.
const QUEUE_BYTES: usize = MAX_MESSAGE_BYTES + 4096;

/// Clients running sessions one after another, and publishers keeping traffic up.
const WORKERS: usize = 16;
const FIREHOSES: usize = 2;

/// The longest wait for any one reply; only a stuck server would need it.
const REPLY_WAIT: Duration = Duration::from_secs(30);
/// The longest wait for the server to settle after the clients are gone.
const SETTLE_WAIT: Duration = Duration::from_secs(60);
/// How far above its starting level the server's memory may end, once every topic is deleted.
const RSS_SLACK_KIB: u64 = 8 * 1024;

type Ws = WebSocketStream<TcpStream>;

/// What the clients saw, to compare with what the server counted.
#[derive(Default)]
struct Tally {
    connections: AtomicU64,
    bare_tcp: AtomicU64,
    handshakes_refused: AtomicU64,
    sessions: Mutex<BTreeMap<&'static str, u64>>,
    endings: Mutex<BTreeMap<&'static str, u64>>,
    /// Seqs acked per stable topic (REST and WebSocket publishes).
    acked: Mutex<HashMap<String, Vec<u64>>>,
    /// Publishes to a stable topic whose reply never came (the connection ended first).
    unacked: Mutex<HashMap<String, u64>>,
    published_acks: AtomicU64,
    messages_received: AtomicU64,
    slow_consumer_closes: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    server_errors: Mutex<Vec<String>>,
}

impl Tally {
    fn count(map: &Mutex<BTreeMap<&'static str, u64>>, key: &'static str) {
        *lock(map).entry(key).or_default() += 1;
    }

    fn ack(&self, topic: &str, seq: u64) {
        self.published_acks.fetch_add(1, Ordering::Relaxed);
        if STABLE.contains(&topic) {
            lock(&self.acked)
                .entry(topic.to_owned())
                .or_default()
                .push(seq);
        }
    }

    fn lost_reply(&self, topic: &str) {
        if STABLE.contains(&topic) {
            *lock(&self.unacked).entry(topic.to_owned()).or_default() += 1;
        }
    }

    fn error(&self, code: &str) {
        *lock(&self.errors).entry(code.to_owned()).or_default() += 1;
    }

    fn server_error(&self, what: String) {
        lock(&self.server_errors).push(what);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a connection stopped answering.
#[derive(Debug)]
enum Ended {
    /// The server closed it, with this code.
    Closed(u16),
    /// The stream ended or broke without a close frame: how.
    Lost(String),
    /// Nothing arrived within [`REPLY_WAIT`].
    TimedOut,
}

/// One WebSocket client and its pending requests.
struct Client {
    ws: Ws,
    next_id: u64,
    /// request_id -> the stable topic of a publish waiting for its reply (or "" for others).
    pending: HashMap<String, String>,
}

impl Client {
    /// Connects with a small receive buffer, so a client that stops reading backs up quickly.
    async fn connect(addr: SocketAddr, tally: &Tally) -> Option<Client> {
        let socket = TcpSocket::new_v4().ok()?;
        socket.set_recv_buffer_size(4096).ok()?;
        let stream = socket.connect(addr).await.ok()?;
        match tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream).await {
            Ok((ws, _)) => {
                tally.connections.fetch_add(1, Ordering::Relaxed);
                Some(Client {
                    ws,
                    next_id: 0,
                    pending: HashMap::new(),
                })
            }
            Err(e) => {
                tally.handshakes_refused.fetch_add(1, Ordering::Relaxed);
                tally.server_error(format!("handshake failed: {e}"));
                None
            }
        }
    }

    /// Sends a request frame with a fresh request_id; `publish_to` names the topic of a publish.
    async fn send(&mut self, mut frame: Value, publish_to: Option<&str>) -> Result<(), Ended> {
        self.next_id += 1;
        let id = format!("r{}", self.next_id);
        frame["request_id"] = json!(id);
        self.pending
            .insert(id, publish_to.unwrap_or_default().to_owned());
        self.send_raw(Message::text(frame.to_string())).await
    }

    async fn send_raw(&mut self, message: Message) -> Result<(), Ended> {
        self.ws
            .send(message)
            .await
            .map_err(|e| Ended::Lost(format!("send: {e}")))
    }

    /// Reads one frame and books it; returns the reply's request_id if it was a reply.
    async fn read_one(&mut self, tally: &Tally) -> Result<Option<String>, Ended> {
        let frame = match tokio::time::timeout(REPLY_WAIT, self.ws.next()).await {
            Err(_) => return Err(Ended::TimedOut),
            Ok(None) => return Err(Ended::Lost("end of stream".into())),
            Ok(Some(Err(e))) => return Err(Ended::Lost(format!("read: {e}"))),
            Ok(Some(Ok(Message::Close(close)))) => {
                let code = close.map_or(1005, |c| u16::from(c.code));
                if code == 1008 {
                    tally.slow_consumer_closes.fetch_add(1, Ordering::Relaxed);
                }
                return Err(Ended::Closed(code));
            }
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => return Ok(None),
        };
        let Ok(frame) = serde_json::from_str::<Value>(&frame) else {
            tally.server_error(format!("a frame that is not JSON: {frame}"));
            return Ok(None);
        };
        match frame["action"].as_str() {
            Some("message") => {
                tally.messages_received.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
            Some("topic_deleted" | "lagged") => Ok(None),
            Some(action) => {
                let id = frame["request_id"].as_str().map(str::to_owned);
                let topic = id.as_ref().and_then(|id| self.pending.remove(id));
                match (action, topic) {
                    (_, None) => tally.server_error(format!("a reply to nothing sent: {frame}")),
                    ("published", Some(_)) => {
                        match (frame["topic"].as_str(), frame["seq"].as_u64()) {
                            (Some(t), Some(seq)) => tally.ack(t, seq),
                            _ => tally.server_error(format!("a bad publish ack: {frame}")),
                        }
                    }
                    ("error", Some(_)) => {
                        let code = frame["error"]["code"].as_str().unwrap_or("?");
                        if code == "internal" {
                            tally.server_error(format!("an internal error: {frame}"));
                        }
                        tally.error(code);
                    }
                    ("subscribed" | "unsubscribed" | "pong", Some(_)) => {}
                    _ => tally.server_error(format!("an unexpected frame: {frame}")),
                }
                Ok(id)
            }
            None => {
                tally.server_error(format!("a frame without an action: {frame}"));
                Ok(None)
            }
        }
    }

    /// Reads until every request sent has its reply.
    async fn settle(&mut self, tally: &Tally) -> Result<(), Ended> {
        while !self.pending.is_empty() {
            self.read_one(tally).await?;
        }
        Ok(())
    }

    /// Reads whatever arrives for `period` (replies included).
    async fn read_for(&mut self, period: Duration, tally: &Tally) -> Result<(), Ended> {
        let until = tokio::time::Instant::now() + period;
        loop {
            match tokio::time::timeout_at(until, self.read_one(tally)).await {
                Err(_) => return Ok(()),
                Ok(result) => {
                    result?;
                }
            }
        }
    }

    /// Books the connection's end: publishes still waiting for a reply may or may not have
    /// been published.
    fn ended(self, how: &'static str, tally: &Tally) {
        for topic in self.pending.values().filter(|t| !t.is_empty()) {
            tally.lost_reply(topic);
        }
        Tally::count(&tally.endings, how);
    }

    /// Leaves in a random way: a clean close, dropping TCP, or a reset.
    async fn leave(mut self, rng: &mut StdRng, tally: &Tally) {
        match rng.random_range(0..3) {
            0 => {
                let close = Message::Close(Some(CloseFrame {
                    code: 1000.into(),
                    reason: "bye".into(),
                }));
                if self.send_raw(close).await.is_ok() {
                    // Replies still owed arrive before the server's close frame.
                    let _ = self.settle(tally).await;
                    let _ = tokio::time::timeout(REPLY_WAIT, async {
                        while let Some(Ok(_)) = self.ws.next().await {}
                    })
                    .await;
                }
                self.ended("clean close", tally);
            }
            1 => self.ended("dropped (FIN)", tally),
            _ => {
                let _ = self.ws.get_ref().set_zero_linger();
                self.ended("reset (RST)", tally);
            }
        }
    }
}

fn any_topic(rng: &mut StdRng) -> &'static str {
    match rng.random_range(0..10) {
        0..5 => STABLE[rng.random_range(0..STABLE.len())],
        5..9 => CHURN[rng.random_range(0..CHURN.len())],
        _ => MISSING[rng.random_range(0..MISSING.len())],
    }
}

fn payload(rng: &mut StdRng) -> Value {
    let pad = rng.random_range(0..1500);
    json!({"n": rng.random::<u32>(), "pad": "x".repeat(pad), "text": "ünïcödé ✓"})
}

/// A subscriber: subscribes to a few topics (with or without replay), reads, publishes a
/// little, unsubscribes from some, and leaves.
async fn subscriber(client: &mut Client, rng: &mut StdRng, tally: &Tally) -> Result<(), Ended> {
    for _ in 0..rng.random_range(1..4) {
        let topic = any_topic(rng);
        let frame = match rng.random_range(0..4) {
            0 => {
                json!({"action": "subscribe", "topic": topic, "replay_last": rng.random_range(0..200)})
            }
            1 => {
                json!({"action": "subscribe", "topic": topic, "since_seq": rng.random_range(0..100)})
            }
            _ => json!({"action": "subscribe", "topic": topic}),
        };
        client.send(frame, None).await?;
    }
    client.settle(tally).await?;
    for _ in 0..rng.random_range(0..4) {
        let topic = any_topic(rng);
        let frame = json!({"action": "publish", "topic": topic, "message": payload(rng)});
        client.send(frame, Some(topic)).await?;
        client
            .read_for(Duration::from_millis(rng.random_range(0..300)), tally)
            .await?;
    }
    if rng.random_bool(0.5) {
        let topic = any_topic(rng);
        client
            .send(json!({"action": "unsubscribe", "topic": topic}), None)
            .await?;
    }
    client
        .read_for(Duration::from_millis(rng.random_range(0..500)), tally)
        .await?;
    client.settle(tally).await
}

/// A slow consumer: subscribes to busy topics and stops reading. Then it either drains what
/// is left (and sees the 1008 close if the policy struck) or just goes away.
async fn staller(client: &mut Client, rng: &mut StdRng, tally: &Tally) -> Result<(), Ended> {
    for topic in STABLE.iter().filter(|_| rng.random_bool(0.7)) {
        client
            .send(json!({"action": "subscribe", "topic": topic}), None)
            .await?;
    }
    client.settle(tally).await?;
    tokio::time::sleep(Duration::from_millis(rng.random_range(200..2500))).await;
    if rng.random_bool(0.5) {
        client.read_for(Duration::from_secs(3), tally).await?;
    }
    Ok(())
}

/// Everything else a client may send: pings, garbage, binary frames, wrong fields.
async fn odd_one(client: &mut Client, rng: &mut StdRng, tally: &Tally) -> Result<(), Ended> {
    for _ in 0..rng.random_range(1..8) {
        let topic = any_topic(rng);
        match rng.random_range(0..8) {
            0 => client.send(json!({"action": "ping"}), None).await?,
            1 => client.send(json!({"action": "jump"}), None).await?,
            2 => {
                client
                    .send(json!({"action": "subscribe", "topic": "bad topic!"}), None)
                    .await?
            }
            3 => {
                client
                    .send(
                        json!({"action": "subscribe", "topic": topic, "replay_last": -1}),
                        None,
                    )
                    .await?
            }
            4 => {
                client
                    .send(json!({"action": "publish", "topic": topic}), None)
                    .await?
            }
            5 => {
                // Not JSON: answered with bad_request and no request_id to match.
                client.send_raw(Message::text("{not json")).await?;
                client.pending.insert(String::new(), String::new());
                if !client.read_until_error(tally).await? {
                    tally.server_error("no bad_request reply to a malformed frame".into());
                }
            }
            6 => {
                client.send_raw(Message::binary(vec![1u8, 2, 3])).await?;
                client.pending.insert(String::new(), String::new());
                if !client.read_until_error(tally).await? {
                    tally.server_error("no bad_request reply to a binary frame".into());
                }
            }
            _ => {
                client
                    .send(json!({"action": "unsubscribe", "topic": topic}), None)
                    .await?
            }
        }
    }
    client.settle(tally).await
}

impl Client {
    /// Reads until the error reply to a frame that carried no request_id.
    async fn read_until_error(&mut self, tally: &Tally) -> Result<bool, Ended> {
        // Replies come in order: settle everything sent before, then the next reply is ours.
        let anonymous = self.pending.remove("");
        while !self.pending.is_empty() {
            self.read_one(tally).await?;
        }
        if anonymous.is_none() {
            return Ok(false);
        }
        loop {
            let frame = match tokio::time::timeout(REPLY_WAIT, self.ws.next()).await {
                Err(_) => return Err(Ended::TimedOut),
                Ok(None) => return Err(Ended::Lost("end of stream".into())),
                Ok(Some(Err(e))) => return Err(Ended::Lost(format!("read: {e}"))),
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(Message::Close(_)))) => return Err(Ended::Closed(0)),
                Ok(Some(Ok(_))) => continue,
            };
            let frame: Value = serde_json::from_str(&frame).unwrap_or_default();
            match frame["action"].as_str() {
                Some("message") => {
                    tally.messages_received.fetch_add(1, Ordering::Relaxed);
                }
                Some("error") if frame["error"]["code"] == "bad_request" => {
                    tally.error("bad_request");
                    return Ok(true);
                }
                Some("topic_deleted" | "lagged") => {}
                _ => return Ok(false),
            }
        }
    }
}

/// Publishes in batches to the stable topics, to keep subscribers' queues busy.
async fn firehose(client: &mut Client, rng: &mut StdRng, tally: &Tally) -> Result<(), Ended> {
    for _ in 0..rng.random_range(5..40) {
        for _ in 0..10 {
            let topic = STABLE[rng.random_range(0..STABLE.len())];
            let frame = json!({"action": "publish", "topic": topic, "message": payload(rng)});
            client.send(frame, Some(topic)).await?;
        }
        client.settle(tally).await?;
    }
    Ok(())
}

/// A client connection's life: connect, one kind of session, leave.
async fn session(addr: SocketAddr, kind: &'static str, rng: &mut StdRng, tally: &Tally) {
    Tally::count(&tally.sessions, kind);
    if kind == "connect only" && rng.random_bool(0.5) {
        // A bare TCP connection that never finishes the handshake.
        if let Ok(stream) = TcpStream::connect(addr).await {
            tally.bare_tcp.fetch_add(1, Ordering::Relaxed);
            drop(stream);
        }
        return;
    }
    let Some(mut client) = Client::connect(addr, tally).await else {
        return;
    };
    let result = match kind {
        "subscriber" => subscriber(&mut client, rng, tally).await,
        "slow consumer" => staller(&mut client, rng, tally).await,
        "odd frames" => odd_one(&mut client, rng, tally).await,
        "publisher" => firehose(&mut client, rng, tally).await,
        _ => Ok(()),
    };
    match result {
        Ok(()) => client.leave(rng, tally).await,
        Err(Ended::Closed(1008)) => client.ended("closed by the server: slow consumer", tally),
        Err(Ended::Closed(code)) => {
            tally.server_error(format!("an unexpected close {code} in a {kind} session"));
            client.ended("closed by the server: other", tally);
        }
        Err(Ended::Lost(_)) if kind == "slow consumer" => {
            client.ended("lost after stalling", tally)
        }
        // A subscriber is never reset by the server: after a close frame it reads (and drops)
        // what the client still sends until the client answers, so the 1008 arrives first.
        Err(Ended::Lost(how)) => {
            tally.server_error(format!("connection lost ({how}) in a {kind} session"));
            client.ended("failed", tally);
        }
        Err(Ended::TimedOut) => {
            tally.server_error(format!("no reply in time in a {kind} session"));
            client.ended("failed", tally);
        }
    }
}

/// The REST side: creates and deletes the churn topics, publishes, reads history and stats.
/// Returns which churn topics exist at the end.
async fn rest_client(
    addr: SocketAddr,
    mut rng: StdRng,
    deadline: Instant,
    tally: Arc<Tally>,
) -> BTreeSet<String> {
    let mut alive = BTreeSet::new();
    let mut created = 0u64;
    let mut deleted = 0u64;
    while Instant::now() < deadline {
        let topic = CHURN[rng.random_range(0..CHURN.len())];
        let (method, path, body, expected): (&str, String, Value, &[u16]) =
            match rng.random_range(0..10) {
                0..3 => (
                    "POST",
                    "/topics".into(),
                    json!({"name": topic}),
                    &[201, 409],
                ),
                3..5 => (
                    "DELETE",
                    format!("/topics/{topic}"),
                    Value::Null,
                    &[200, 404],
                ),
                5..8 => {
                    let topic = any_topic(&mut rng);
                    let body = json!({"message": payload(&mut rng)});
                    let path = format!("/topics/{topic}/messages");
                    ("POST", path, body, &[201, 404])
                }
                8 => {
                    let topic = any_topic(&mut rng);
                    let since = rng.random_range(0..100);
                    let path = format!("/topics/{topic}/messages?since_seq={since}&limit=20");
                    ("GET", path, Value::Null, &[200, 404])
                }
                _ => ("GET", "/stats".into(), Value::Null, &[200]),
            };
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let headers: &[(&str, &str)] = if body.is_empty() {
            &[]
        } else {
            &[("Content-Type", "application/json")]
        };
        let r = http_request(addr, method, &path, headers, &body).await;
        if !expected.contains(&r.status) {
            tally.server_error(format!("{method} {path}: {} {}", r.status, r.text()));
            continue;
        }
        match (method, path.as_str(), r.status) {
            ("POST", "/topics", 201) => {
                created += 1;
                alive.insert(topic.to_owned());
            }
            ("POST", "/topics", 409) => {}
            ("DELETE", _, 200) => {
                deleted += 1;
                alive.remove(topic);
            }
            ("POST", _, 201) => {
                let body = r.json();
                match (body["topic"].as_str(), body["seq"].as_u64()) {
                    (Some(t), Some(seq)) => tally.ack(t, seq),
                    _ => tally.server_error(format!("a bad publish reply: {body}")),
                }
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(1..15))).await;
    }
    println!("REST: churn topics created {created}, deleted {deleted}, alive at the end {alive:?}");
    alive
}

async fn get(addr: SocketAddr, path: &str) -> Value {
    let r = http_request(addr, "GET", path, &[], b"").await;
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r.json()
}

/// Polls `/stats` until `check` holds, or fails after [`SETTLE_WAIT`].
async fn wait_for(addr: SocketAddr, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + SETTLE_WAIT;
    loop {
        let stats = get(addr, "/stats").await;
        if check(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {SETTLE_WAIT:?}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The server's memory once it has stopped changing (two readings a second apart within 256
/// KiB), or the last reading after ten seconds.
async fn settled_rss(server: &ChildServer) -> u64 {
    let mut last = server.rss_kib().unwrap_or(0);
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = server.rss_kib().unwrap_or(0);
        if now.abs_diff(last) <= 256 {
            return now;
        }
        last = now;
    }
    last
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_leaves_no_connection_subscription_or_memory_behind() {
    let secs: u64 = std::env::var("PUBSUB_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let seed: u64 = std::env::var("PUBSUB_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("soak: {secs} s, seed {seed} (PUBSUB_SOAK_SEED={seed} repeats the mix)");

    let history = HISTORY_SIZE.to_string();
    let message_bytes = MAX_MESSAGE_BYTES.to_string();
    let queue_bytes = QUEUE_BYTES.to_string();
    let mut server = ChildServer::start(&[
        "--history-size",
        &history,
        "--max-message-bytes",
        &message_bytes,
        "--subscriber-queue-bytes",
        &queue_bytes,
        "--slow-consumer",
        "disconnect",
    ]);
    let addr = server.addr;

    for topic in STABLE {
        let r = http_request(
            addr,
            "POST",
            "/topics",
            &[("Content-Type", "application/json")],
            json!({"name": topic}).to_string().as_bytes(),
        )
        .await;
        assert_eq!(r.status, 201, "create {topic}: {}", r.text());
    }
    let rss_before = settled_rss(&server).await;

    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (pid, peak, sampling) = (server.pid(), peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib_of(pid).unwrap_or(0), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    let mut tasks = Vec::new();
    for worker in 0..WORKERS + FIREHOSES {
        let tally = tally.clone();
        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(worker as u64));
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let kind = if worker >= WORKERS {
                    "publisher"
                } else {
                    match rng.random_range(0..100) {
                        0..35 => "subscriber",
                        35..55 => "slow consumer",
                        55..70 => "odd frames",
                        70..85 => "publisher",
                        _ => "connect only",
                    }
                };
                session(addr, kind, &mut rng, &tally).await;
            }
        }));
    }
    let rest = tokio::spawn(rest_client(
        addr,
        StdRng::seed_from_u64(seed.wrapping_sub(1)),
        deadline,
        tally.clone(),
    ));
    // Every session is bounded by its own waits; this only guards against a hang.
    let all_done = tokio::time::timeout(Duration::from_secs(secs + 300), async {
        for task in tasks {
            task.await.expect("a client task panicked");
        }
    })
    .await;
    assert!(all_done.is_ok(), "the clients did not finish");
    let churn_alive = rest.await.expect("the REST client panicked");
    let ran_for = started.elapsed();

    // Every client is gone: the server must count no connection and no subscriber.
    let stats = wait_for(addr, "every connection closing", |s| {
        s["connections"] == 0
            && s["topics"]
                .as_object()
                .is_some_and(|t| t.values().all(|t| t["subscribers"] == 0))
    })
    .await;
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let rss_peak = peak.load(Ordering::Relaxed);

    let server_errors = lock(&tally.server_errors).clone();
    assert!(
        server_errors.is_empty(),
        "{} things went wrong, first: {:#?}",
        server_errors.len(),
        &server_errors[..server_errors.len().min(10)]
    );

    // The topics are exactly the stable ones and the churn topics last created.
    let expected: BTreeSet<String> = STABLE
        .iter()
        .map(|t| t.to_string())
        .chain(churn_alive)
        .collect();
    let listed = get(addr, "/topics").await;
    let listed: Vec<(String, u64)> = listed["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .map(|t| {
            let name = t["name"].as_str().expect("name").to_owned();
            (name, t["subscriber_count"].as_u64().expect("count"))
        })
        .collect();
    let names: Vec<String> = listed.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(
        names,
        expected.iter().cloned().collect::<Vec<_>>(),
        "GET /topics, sorted by name"
    );
    assert!(
        listed.iter().all(|(_, n)| *n == 0),
        "subscribers left: {listed:?}"
    );
    let stats_names: Vec<&String> = stats["topics"]
        .as_object()
        .expect("topics")
        .keys()
        .collect();
    assert_eq!(
        stats_names,
        expected.iter().collect::<Vec<_>>(),
        "/stats topics"
    );

    // Every publish to a stable topic that was acked was counted once, with its own seq; a
    // publish whose reply was lost (its connection ended first) may or may not have been.
    let acked = lock(&tally.acked).clone();
    let unacked = lock(&tally.unacked).clone();
    let mut published_total = 0;
    for topic in STABLE {
        let seqs = acked.get(topic).cloned().unwrap_or_default();
        let lost = unacked.get(topic).copied().unwrap_or(0);
        let details = get(addr, &format!("/topics/{topic}")).await;
        let published = details["messages_published"].as_u64().expect("published");
        let distinct: BTreeSet<u64> = seqs.iter().copied().collect();
        assert_eq!(distinct.len(), seqs.len(), "{topic}: a seq was acked twice");
        assert!(
            distinct.last().is_none_or(|&max| max <= published),
            "{topic}: a seq above messages_published {published}"
        );
        let acks = seqs.len() as u64;
        assert!(
            acks <= published && published <= acks + lost,
            "{topic}: {published} published, {acks} acked, {lost} replies lost"
        );
        assert_eq!(details["last_seq"].as_u64(), Some(published), "{topic}");
        assert_eq!(details["subscriber_count"], 0, "{topic}");
        assert_eq!(
            details["messages_in_history"].as_u64(),
            Some(published.min(HISTORY_SIZE)),
            "{topic}"
        );
        let counters = &stats["topics"][topic];
        assert_eq!(counters["messages_published"].as_u64(), Some(published));
        assert_eq!(counters["subscribers"], 0);
        published_total += published;
    }

    // Deliveries: every message a client read was counted; some counted ones were never read
    // (their reader left or stalled first).
    let delivered = stats["messages_delivered"].as_u64().expect("delivered");
    let received = tally.messages_received.load(Ordering::Relaxed);
    assert!(
        received <= delivered,
        "{received} received > {delivered} delivered"
    );
    let slow = stats["slow_consumers_disconnected"].as_u64().expect("slow");
    let seen_slow = tally.slow_consumer_closes.load(Ordering::Relaxed);
    assert!(
        seen_slow <= slow,
        "{seen_slow} clients saw 1008, but the server counted {slow} slow consumers"
    );
    assert_eq!(
        stats["messages_dropped"], 0,
        "nothing is dropped under disconnect"
    );

    // With every topic deleted the server holds nothing but its idle state.
    for topic in &expected {
        let r = http_request(addr, "DELETE", &format!("/topics/{topic}"), &[], b"").await;
        assert_eq!(r.status, 200, "delete {topic}: {}", r.text());
    }
    let empty = get(addr, "/stats").await;
    assert_eq!(empty["topics"], json!({}), "{empty}");
    assert_eq!(get(addr, "/topics").await, json!({"topics": []}));
    let rss_after = settled_rss(&server).await;
    assert!(server.is_running(), "the server exited");

    let tally = &tally;
    println!(
        "soak figures ({:.1} s, seed {seed}):",
        ran_for.as_secs_f64()
    );
    println!(
        "  connections churned:         {} WebSocket (plus {} bare TCP connects, {} refused handshakes)",
        tally.connections.load(Ordering::Relaxed),
        tally.bare_tcp.load(Ordering::Relaxed),
        tally.handshakes_refused.load(Ordering::Relaxed)
    );
    println!("  sessions:                    {:?}", lock(&tally.sessions));
    println!("  endings:                     {:?}", lock(&tally.endings));
    println!(
        "  messages published:          {} acked ({} to the stable topics, which counted {published_total}; {} replies lost)",
        tally.published_acks.load(Ordering::Relaxed),
        acked.values().map(Vec::len).sum::<usize>(),
        unacked.values().sum::<u64>()
    );
    println!(
        "  messages delivered:          {delivered} counted by the server, {received} read by clients"
    );
    println!(
        "  slow consumers disconnected: {slow} (clients that read on saw {seen_slow} 1008 closes)"
    );
    println!("  error replies:               {:?}", lock(&tally.errors));
    println!(
        "  server RSS:                  before {}, peak {}, after {}",
        mib(rss_before),
        mib(rss_peak),
        mib(rss_after)
    );
    assert!(
        rss_before > 0 && rss_after > 0,
        "VmRSS could not be read from /proc"
    );
    assert!(
        rss_after <= rss_before + RSS_SLACK_KIB,
        "the server's memory did not come back: before {}, peak {}, after {} (allowed: before + {})",
        mib(rss_before),
        mib(rss_peak),
        mib(rss_after),
        mib(RSS_SLACK_KIB)
    );
}
