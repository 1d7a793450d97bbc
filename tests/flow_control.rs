//! Flow control for slow consumers, over real sockets: a client that stops reading while a fast
//! subscriber on the same topic keeps reading. Under `disconnect` the stalled client is closed
//! with 1008 "slow consumer" and resumes from history with `since_seq`; under `drop` it stays,
//! misses messages, and is told exactly how many with `lagged`. Either way the publisher's acks
//! keep coming and the fast subscriber gets every message.
//!
//! Nothing here measures wall time: "the publisher is not slowed" is shown by every publish
//! being acked while the stalled client holds its full queue.

mod common;

use std::time::Duration;

use common::{TestServer, WsClient};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

/// Small limits so that a stalled client overflows quickly; the queue must hold one largest
/// message plus its envelope (4096 bytes).
const LIMITS: [&str; 4] = [
    "--subscriber-queue-bytes",
    "65536",
    "--max-message-bytes",
    "8192",
];
/// Padding of each published message: a frame of about 6 KB, a tenth of the queue.
const PAD_BYTES: usize = 6000;
/// Publishes after the overflow was seen, to show the publisher carries on.
const EXTRA_PUBLISHES: u64 = 20;
/// Upper bound on publishes while waiting for the overflow (about 24 MB, far more than the
/// kernel buffers of a 4 KB receive window and the server's queue hold).
const MAX_PUBLISHES: u64 = 4000;
/// How often (in publishes) `/stats` is checked for the overflow.
const CHECK_EVERY: u64 = 16;
/// Upper bound on the frames any one reader takes.
const MAX_FRAMES: usize = 10_000;
/// A generous bound on a whole phase of a test (the machine may be small and shared).
const PHASE: Duration = Duration::from_secs(120);

/// A large message; `last` marks the final one of the stalled phase.
fn big_message(n: u64, last: bool) -> Value {
    json!({"n": n, "last": last, "pad": "x".repeat(PAD_BYTES)})
}

fn seq_of(frame: &Value) -> u64 {
    frame["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq in {}", summary(frame)))
}

/// A frame without its padding, for failure messages.
fn summary(frame: &Value) -> String {
    let mut f = frame.clone();
    if let Some(m) = f.get_mut("message").and_then(Value::as_object_mut) {
        m.remove("pad");
    }
    f.to_string()
}

fn assert_consecutive(seqs: &[u64], first: u64, what: &str) {
    for (i, seq) in seqs.iter().enumerate() {
        assert_eq!(
            *seq,
            first + i as u64,
            "{what}: seq #{i} breaks the run starting at {first}"
        );
    }
}

/// A WebSocket client whose socket receive buffer is tiny, so that once it stops reading the
/// kernel buffers between it and the server fill after a few frames.
async fn stalling_client(server: &TestServer) -> WsClient {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(server.addr).await.expect("connect");
    let url = format!("ws://{}/ws", server.addr);
    let (ws, response) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .expect("WebSocket handshake");
    assert_eq!(response.status(), 101);
    WsClient { ws }
}

/// Reads `message` frames on its own task until the one marked `last`; returns the client and
/// the seqs it saw. Anything else (a close, a `lagged`) fails the test.
fn spawn_fast_reader(mut client: WsClient) -> JoinHandle<(WsClient, Vec<u64>)> {
    tokio::spawn(async move {
        let mut seqs = Vec::new();
        for _ in 0..MAX_FRAMES {
            let frame = client.recv().await;
            assert_eq!(
                frame["action"],
                "message",
                "fast subscriber: {}",
                summary(&frame)
            );
            seqs.push(seq_of(&frame));
            if frame["message"]["last"] == true {
                return (client, seqs);
            }
        }
        panic!("fast subscriber: no last message within {MAX_FRAMES} frames");
    })
}

/// Publishes large messages one at a time, each awaiting its ack, until `/stats` shows the
/// overflow (`overflowed`), then [`EXTRA_PUBLISHES`] more and a last one marked `last`.
/// Returns the acked seqs. Every publish is acked within the harness's wait, so a publisher
/// held up by the stalled client fails here.
async fn publish_past_overflow(
    server: &TestServer,
    publisher: &mut WsClient,
    topic: &str,
    overflowed: impl Fn(&Value) -> bool,
) -> Vec<u64> {
    let deadline = Instant::now() + PHASE;
    let mut acked = Vec::new();
    let mut n = 0;
    let mut overflow_at = None;
    while overflow_at.is_none() {
        assert!(
            n < MAX_PUBLISHES,
            "no overflow after {n} publishes: {}",
            server.stats().await
        );
        assert!(Instant::now() < deadline, "no overflow within {PHASE:?}");
        n += 1;
        acked.push(publisher.publish(topic, big_message(n, false)).await);
        if n % CHECK_EVERY == 0 && overflowed(&server.stats().await) {
            overflow_at = Some(n);
        }
    }
    for _ in 0..EXTRA_PUBLISHES {
        n += 1;
        acked.push(publisher.publish(topic, big_message(n, false)).await);
    }
    n += 1;
    acked.push(publisher.publish(topic, big_message(n, true)).await);
    eprintln!(
        "overflow seen after {} publishes; {n} published in all",
        overflow_at.unwrap_or_default()
    );
    acked
}

/// `subscriber_count` of `topic` in `GET /topics`.
/// Publishes past the overflow and checks what must hold under either policy: every publish
/// was acked in order, and the fast subscriber got all of them. Returns the fast subscriber
/// (still connected) and how many messages were published.
async fn publish_while_stalled(
    server: &TestServer,
    publisher: &mut WsClient,
    fast: JoinHandle<(WsClient, Vec<u64>)>,
    overflowed: impl Fn(&Value) -> bool,
) -> (WsClient, u64) {
    let acked = publish_past_overflow(server, publisher, "t", overflowed).await;
    assert_consecutive(&acked, 1, "publisher acks");
    let (fast, seen) = tokio::time::timeout(PHASE, fast)
        .await
        .expect("fast subscriber done")
        .expect("fast subscriber task");
    assert_consecutive(&seen, 1, "fast subscriber");
    assert_eq!(seen.len(), acked.len(), "fast subscriber got everything");
    (fast, acked.len() as u64)
}

async fn listed_subscribers(server: &TestServer, topic: &str) -> u64 {
    let r = server.get("/topics").await;
    assert_eq!(r.status, 200);
    let body = r.json();
    body["topics"]
        .as_array()
        .expect("topics array")
        .iter()
        .find(|t| t["name"] == topic)
        .unwrap_or_else(|| panic!("{topic} not listed: {body}"))["subscriber_count"]
        .as_u64()
        .expect("subscriber_count")
}

/// Everything the stalled client reads up to the server's close frame: the seqs of the
/// messages that were already in flight, and the close's code and reason.
async fn read_to_close(client: &mut WsClient) -> (Vec<u64>, u16, String) {
    let mut seqs = Vec::new();
    for _ in 0..MAX_FRAMES {
        match client.next_raw().await {
            Some(Message::Text(text)) => {
                let frame: Value = serde_json::from_str(&text).expect("JSON frame");
                assert_eq!(
                    frame["action"],
                    "message",
                    "stalled client: {}",
                    summary(&frame)
                );
                seqs.push(seq_of(&frame));
            }
            Some(Message::Close(Some(close))) => {
                return (seqs, close.code.into(), close.reason.to_string());
            }
            Some(Message::Close(None)) => return (seqs, 1005, String::new()),
            Some(Message::Ping(_) | Message::Pong(_)) => {}
            None => panic!(
                "stream ended without a close frame after {} messages",
                seqs.len()
            ),
            Some(other) => panic!("stalled client: unexpected {other:?}"),
        }
    }
    panic!("no close frame within {MAX_FRAMES} frames");
}

#[tokio::test]
async fn disconnect_policy_closes_a_stalled_subscriber_which_then_resumes_from_history() {
    let mut args = LIMITS.to_vec();
    args.extend(["--history-size", "5000"]);
    let server = TestServer::with_args(&args).await;
    server.create_topic("t").await;
    server.create_topic("other").await;

    let mut slow = stalling_client(&server).await;
    let epoch = slow.subscribe("t").await["epoch"]
        .as_str()
        .expect("epoch")
        .to_owned();
    slow.subscribe("other").await;
    // From here on `slow` reads nothing until the publishing is over.

    let mut fast = server.ws().await;
    fast.subscribe("t").await;
    let fast = spawn_fast_reader(fast);
    let mut publisher = server.ws().await;

    let (_fast, total) = publish_while_stalled(&server, &mut publisher, fast, |s| {
        s["slow_consumers_disconnected"] == 1
    })
    .await;

    // Only the stalled client was disconnected, and its subscriptions, on every topic, are
    // gone already, before it has read its close frame.
    let stats = server.stats().await;
    assert_eq!(stats["slow_consumers_disconnected"], 1, "{stats}");
    assert_eq!(stats["topics"]["t"]["subscribers"], 1, "{stats}");
    assert_eq!(stats["topics"]["other"]["subscribers"], 0, "{stats}");
    assert_eq!(listed_subscribers(&server, "t").await, 1);
    assert_eq!(listed_subscribers(&server, "other").await, 0);

    // Reading again, it gets what was in flight, in order from the start, then the close.
    let (in_flight, code, reason) = read_to_close(&mut slow).await;
    assert_eq!(
        (code, reason.as_str()),
        (1008, "slow consumer"),
        "after {} messages",
        in_flight.len()
    );
    assert_consecutive(&in_flight, 1, "stalled client");
    let last_seen = in_flight.last().copied().unwrap_or(0);
    assert!(
        last_seen < total,
        "the stalled client missed something: it saw {last_seen} of {total}"
    );
    server
        .wait_for_stats("the slow connection to be gone", |s| s["connections"] == 2)
        .await;
    drop(slow);

    // It resumes where it stopped; history holds everything it missed.
    let mut resumed = server.ws().await;
    let ack = resumed
        .request(
            json!({"action": "subscribe", "topic": "t", "since_seq": last_seen, "epoch": epoch}),
        )
        .await;
    assert_eq!(ack["action"], "subscribed", "{ack}");
    assert_eq!(ack["recovered"], true, "{ack}");
    assert_eq!(ack["last_seq"], total, "{ack}");
    assert_eq!(ack["replayed"], total - last_seen, "{ack}");
    let mut replayed = Vec::new();
    for _ in last_seen..total {
        let frame = resumed.recv().await;
        assert_eq!(frame["action"], "message", "{}", summary(&frame));
        replayed.push(seq_of(&frame));
    }
    assert_consecutive(&replayed, last_seen + 1, "resumed client");
    // And it is live again.
    let next = publisher.publish("t", json!("after resume")).await;
    assert_eq!(next, total + 1);
    let frame = resumed.recv().await;
    assert_eq!(seq_of(&frame), total + 1);
    assert_eq!(frame["message"], "after resume");
}

/// What the stalled client reads under `drop`, checked frame by frame: every gap in its seqs
/// is announced, just before the message after it, by `lagged` frames adding up to its size.
#[derive(Default)]
struct LagCheck {
    last_seq: u64,
    /// Dropped counts announced since the last message.
    announced: u64,
    received: u64,
    dropped_total: u64,
    lagged_frames: u64,
}

impl LagCheck {
    fn take(&mut self, frame: &Value) {
        match frame["action"].as_str() {
            Some("message") => {
                assert_eq!(frame["topic"], "t", "{}", summary(frame));
                let seq = seq_of(frame);
                assert!(seq > self.last_seq, "seq {seq} after {}", self.last_seq);
                let gap = seq - self.last_seq - 1;
                assert_eq!(
                    gap, self.announced,
                    "messages {}..{seq} missing, {} announced by lagged",
                    self.last_seq, self.announced
                );
                self.last_seq = seq;
                self.announced = 0;
                self.received += 1;
            }
            Some("lagged") => {
                assert_eq!(frame["topic"], "t", "{frame}");
                let dropped = frame["dropped"].as_u64().expect("dropped count");
                assert!(dropped > 0, "{frame}");
                self.announced += dropped;
                self.dropped_total += dropped;
                self.lagged_frames += 1;
            }
            _ => panic!("stalled client: unexpected {}", summary(frame)),
        }
    }
}

#[tokio::test]
async fn drop_policy_keeps_a_stalled_subscriber_and_tells_it_how_many_it_missed() {
    let mut args = LIMITS.to_vec();
    args.extend(["--slow-consumer", "drop"]);
    let server = TestServer::with_args(&args).await;
    server.create_topic("t").await;

    let mut slow = stalling_client(&server).await;
    slow.subscribe("t").await;
    let mut fast = server.ws().await;
    fast.subscribe("t").await;
    let fast = spawn_fast_reader(fast);
    let mut publisher = server.ws().await;

    let (_fast, total) = publish_while_stalled(&server, &mut publisher, fast, |s| {
        s["messages_dropped"].as_u64().is_some_and(|n| n > 0)
    })
    .await;

    // The stalled client is still connected and subscribed.
    let stats = server.stats().await;
    assert_eq!(stats["slow_consumers_disconnected"], 0, "{stats}");
    assert_eq!(stats["connections"], 3, "{stats}");
    assert_eq!(stats["topics"]["t"]["subscribers"], 2, "{stats}");
    assert_eq!(listed_subscribers(&server, "t").await, 2);

    // It reads again: a ping, answered after everything queued before it, marks the end of
    // the backlog.
    let mut check = LagCheck::default();
    slow.send(json!({"action": "ping", "request_id": "drained"}))
        .await;
    let mut drained = false;
    for _ in 0..MAX_FRAMES {
        let frame = slow.recv().await;
        if frame["action"] == "pong" {
            assert_eq!(frame["request_id"], "drained");
            drained = true;
            break;
        }
        check.take(&frame);
    }
    assert!(drained, "no pong within {MAX_FRAMES} frames");

    // Live messages reach it again, the gap announced before the first of them at the latest.
    const LIVE: u64 = 5;
    for i in 1..=LIVE {
        assert_eq!(publisher.publish("t", json!({"live": i})).await, total + i);
    }
    for _ in 0..MAX_FRAMES {
        if check.last_seq == total + LIVE {
            break;
        }
        check.take(&slow.recv().await);
    }
    assert_eq!(check.last_seq, total + LIVE, "the live messages arrived");
    assert_eq!(check.announced, 0);
    assert!(check.lagged_frames >= 1, "a lagged frame was sent");
    assert!(check.dropped_total > 0);
    assert_eq!(
        check.received + check.dropped_total,
        total + LIVE,
        "every seq was either received or reported dropped"
    );

    let stats = server.stats().await;
    assert_eq!(stats["messages_dropped"], check.dropped_total, "{stats}");
    assert_eq!(stats["slow_consumers_disconnected"], 0, "{stats}");
    assert_eq!(stats["topics"]["t"]["subscribers"], 2, "{stats}");
    assert_eq!(stats["connections"], 3, "{stats}");
    slow.assert_silent(Duration::from_millis(200)).await;
}

/// A replay the client asked for is queued whole and does not count as slowness: a stalled
/// client whose requested replay is far larger than its queue still gets the next live message.
#[tokio::test]
async fn a_requested_replay_larger_than_the_queue_is_not_slowness() {
    const HISTORY: u64 = 800; // about 4.8 MB of replay against a 64 KiB queue
    let mut args = LIMITS.to_vec();
    args.extend(["--history-size", "800"]);
    let server = TestServer::with_args(&args).await;
    server.create_topic("t").await;
    let mut publisher = server.ws().await;
    for n in 1..=HISTORY {
        publisher.publish("t", big_message(n, false)).await;
    }
    let mut stalled = stalling_client(&server).await;
    stalled
        .send(json!({"action": "subscribe", "topic": "t", "replay_last": HISTORY}))
        .await;
    // Wait until the subscription is registered, then publish live while the replay is queued.
    let deadline = Instant::now() + PHASE;
    while listed_subscribers(&server, "t").await == 0 {
        assert!(Instant::now() < deadline, "subscription never registered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let live = publisher.publish("t", big_message(HISTORY + 1, true)).await;
    assert_eq!(
        server.stats().await["slow_consumers_disconnected"],
        0,
        "the replay in flight did not count against the live limit"
    );
    let ack = stalled.recv().await;
    assert_eq!(ack["action"], "subscribed", "{}", summary(&ack));
    assert_eq!(ack["replayed"], HISTORY);
    let mut seqs = Vec::new();
    while seqs.len() < HISTORY as usize + 1 {
        seqs.push(seq_of(&stalled.recv().await));
    }
    assert_consecutive(&seqs, 1, "replay then live");
    assert_eq!(*seqs.last().unwrap(), live);
}

/// A client that stops reading, lets its queue fill part way (far from the slow-consumer
/// limit), then sends its close: the server owes it nothing but the reply to that close, so it
/// discards what is queued and gives the reply a few seconds, not for ever. Its place among the
/// connections is freed although it never reads again.
#[tokio::test]
async fn a_stalled_client_that_closes_gives_its_place_back() {
    const PUBLISHES: u64 = 256; // about 15 MB: far more than the kernel buffers hold
    // A queue far larger than what is published (no slow-consumer close), and no pings (no
    // ping timeout): only the client's close can end this connection.
    let server = TestServer::with_args(&[
        "--subscriber-queue-bytes",
        "67108864",
        "--ping-interval",
        "0",
    ])
    .await;
    server.create_topic("t").await;
    let mut stalled = common::RawWs::connect_with_recv_buffer(server.addr, 4096).await;
    stalled
        .send_text(&json!({"action": "subscribe", "topic": "t"}).to_string())
        .await;
    assert_eq!(stalled.recv().await["action"], "subscribed");

    let mut publisher = server.ws().await;
    let pad = "x".repeat(60_000);
    for n in 1..=PUBLISHES {
        publisher.publish("t", json!({"n": n, "pad": pad})).await;
    }
    let stats = server.stats().await;
    let delivered = stats["messages_delivered"].as_u64().expect("delivered");
    assert!(
        delivered < PUBLISHES,
        "the stalled client's writer is stuck with messages queued: {stats}"
    );
    assert_eq!(stats["slow_consumers_disconnected"], 0, "{stats}");

    stalled.send_close(1000).await;
    let closed = Instant::now();
    let stats = server
        .wait_for_stats("the stalled client's place freed", |s| {
            s["connections"] == 1
        })
        .await;
    eprintln!(
        "place freed {:?} after the client's close ({delivered} of {PUBLISHES} delivered)",
        closed.elapsed()
    );
    assert_eq!(stats["topics"]["t"]["subscribers"], 0, "{stats}");
    // The server and the publisher carry on.
    publisher.publish("t", json!("after")).await;
}

/// How long a slow consumer's close waits for the client to read it (`Close::LINGER`; not
/// configurable, so the tests of it take half a minute).
const LINGER: Duration = Duration::from_secs(30);

/// Publishes until `stalled` clients (subscribed to `t`, reading nothing) are all closed as slow
/// consumers; returns the publisher and an instant after every one of those closes started
/// (the counter goes up as a close starts).
async fn close_stalled_clients(server: &TestServer, stalled: u64) -> (WsClient, Instant) {
    let mut publisher = server.ws().await;
    publish_past_overflow(server, &mut publisher, "t", |s| {
        s["slow_consumers_disconnected"] == stalled
    })
    .await;
    (publisher, Instant::now())
}

/// The close of a slow consumer lingers: the close frame waits up to 30 s for the client to
/// read it. One stalled client starts reading a few seconds after its close and still gets the
/// 1008; another never reads, and stops counting as a connection once the 30 s are up, not
/// before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumers_close_waits_30_s_for_the_client_to_read_it() {
    let server = TestServer::with_args(&LIMITS).await;
    server.create_topic("t").await;
    let mut late_reader = stalling_client(&server).await;
    late_reader.subscribe("t").await;
    let mut never_reads = stalling_client(&server).await;
    never_reads.subscribe("t").await;
    let (_publisher, closed) = close_stalled_clients(&server, 2).await;
    assert_eq!(
        server.stats().await["connections"],
        3,
        "both stalled clients are still connected while their closes wait"
    );

    // A few seconds late, the close frame is still there to be read.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, code, reason) = read_to_close(&mut late_reader).await;
    assert_eq!((code, reason.as_str()), (1008, "slow consumer"));
    drop(late_reader);
    server
        .wait_for_stats("the late reader to be gone", |s| s["connections"] == 2)
        .await;

    // The other one is kept until its close has waited the whole linger...
    tokio::time::sleep_until(closed + LINGER - Duration::from_secs(5)).await;
    assert_eq!(
        server.stats().await["connections"],
        2,
        "the connection that never reads is kept while its close frame waits"
    );
    // ... and given up then (the stats poll gives it another WAIT).
    tokio::time::sleep_until(closed + LINGER).await;
    server
        .wait_for_stats("the unread connection to be given up", |s| {
            s["connections"] == 1
        })
        .await;
    drop(never_reads);
}

/// "then the TCP connection is dropped": a slow consumer that never reads sees its connection
/// end once its close has waited 30 s (it used to take 60: the session went on reading for an
/// answer to a close frame that was never sent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_that_never_reads_is_dropped_30_s_after_its_close() {
    let server = TestServer::with_args(&LIMITS).await;
    server.create_topic("t").await;
    let mut never_reads = stalling_client(&server).await;
    never_reads.subscribe("t").await;
    let (_publisher, closed) = close_stalled_clients(&server, 1).await;
    tokio::time::sleep_until(closed + LINGER).await;
    // Now it reads: what was in flight, then the end of the stream, all within the wait.
    let deadline = Instant::now() + common::WAIT;
    loop {
        let next = tokio::time::timeout_at(deadline, never_reads.ws.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the connection is still open {:?} after the close started",
                    closed.elapsed()
                )
            });
        match next {
            Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => continue,
            // The end: a reset or the end of the stream (or a close frame, had it got through).
            Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            Some(Ok(other)) => panic!("unexpected {other:?}"),
        }
    }
}
