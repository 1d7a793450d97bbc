//! The delivery guarantees, each shown over real sockets: ack then replay then live with no gap
//! and no duplicate while publishers are busy, per-topic seq order, no double delivery, cleanup
//! on close, self-delivery before the ack, auto-creation, resume with since_seq and epoch, topic deletion.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{TestServer, WsClient};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Publishes `count` messages on its own connection as fast as the server acks them, pipelined
/// (up to 64 unacknowledged), and returns once all are acked.
fn spawn_publisher(
    server: &TestServer,
    topic: &'static str,
    count: u64,
) -> tokio::task::JoinHandle<()> {
    let addr = server.addr;
    tokio::spawn(async move {
        let c = WsClient::connect(addr).await;
        let (mut tx, mut rx) = c.ws.split();
        let reader = tokio::spawn(async move {
            let mut acked = 0;
            while acked < count {
                let t = match rx.next().await {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => panic!("publisher lost: {other:?}"),
                };
                let v: Value = serde_json::from_str(&t).unwrap();
                assert_eq!(v["action"], "published", "{v}");
                acked += 1;
            }
        });
        for i in 0..count {
            let frame = json!({"action": "publish", "topic": topic, "message": {"i": i}});
            tx.send(Message::text(frame.to_string())).await.unwrap();
        }
        tokio::time::timeout(common::WAIT * 3, reader)
            .await
            .expect("all acked")
            .unwrap();
    })
}

/// Reads `count` message frames and returns their seqs.
async fn recv_seqs(c: &mut WsClient, count: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(count);
    while seqs.len() < count {
        let m = c.recv().await;
        assert_eq!(m["action"], "message", "{m}");
        seqs.push(m["seq"].as_u64().unwrap());
    }
    seqs
}

fn assert_consecutive(seqs: &[u64], first: u64) {
    for (i, seq) in seqs.iter().enumerate() {
        assert_eq!(
            *seq,
            first + i as u64,
            "gap or duplicate at index {i}: {seqs:?}"
        );
    }
}

/// Publishes the publisher may have unacknowledged.
const IN_FLIGHT: u64 = 256;

/// Publishes on its own connection, pipelined (at most [`IN_FLIGHT`] unacknowledged), until it
/// has published `stop_at` messages (a limit the caller may lower or set later: it starts at
/// `u64::MAX`); returns how many it published, once all are acked.
fn spawn_publisher_until(
    server: &TestServer,
    topic: &'static str,
    stop_at: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<u64> {
    let addr = server.addr;
    tokio::spawn(async move {
        let c = WsClient::connect(addr).await;
        let (mut tx, mut rx) = c.ws.split();
        let acks = Arc::new(AtomicU64::new(0));
        let seen = acks.clone();
        // Reads the acks until the pong that follows the last publish.
        let reader = tokio::spawn(async move {
            let mut acked = 0u64;
            loop {
                let t = match rx.next().await {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => panic!("publisher lost: {other:?}"),
                };
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["action"] == "pong" {
                    return acked;
                }
                assert_eq!(v["action"], "published", "{v}");
                acked += 1;
                assert_eq!(v["seq"], acked, "acks come in order");
                seen.store(acked, Ordering::Relaxed);
            }
        });
        let mut sent = 0;
        while sent < stop_at.load(Ordering::Relaxed) {
            // Stay close to the acks, so stopping takes effect soon after it is asked for.
            while sent - acks.load(Ordering::Relaxed) >= IN_FLIGHT {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            let frame = json!({"action": "publish", "topic": topic, "message": {"i": sent}});
            tx.send(Message::text(frame.to_string())).await.unwrap();
            sent += 1;
        }
        tx.send(Message::text(json!({"action": "ping"}).to_string()))
            .await
            .unwrap();
        let acked = tokio::time::timeout(common::WAIT * 3, reader)
            .await
            .expect("all acked")
            .unwrap();
        assert_eq!(acked, sent);
        sent
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_then_replay_then_live_without_gap_or_duplicate_while_publishing() {
    // Across nodes every publish is a round trip to Redis: a tenth of the messages keeps the
    // run well inside the ping timeout of subscribers that read nothing until the end.
    let scale = if common::across_nodes() { 10 } else { 1 };
    // Messages the publisher goes on publishing after the last subscriber's ack.
    let after_last_join: u64 = 2000 / scale;
    // Subscribers are read only after publishing ends: give their queues and history room.
    let server = TestServer::with_args(&[
        "--history-size",
        "100000",
        "--subscriber-queue-bytes",
        "67108864",
    ])
    .await;
    server.create_topic("busy").await;
    let stop_at = Arc::new(AtomicU64::new(u64::MAX));
    let publisher = spawn_publisher_until(&server, "busy", stop_at.clone());
    // Join at several points of the stream while the publisher is running, each taking its ack
    // at once; the publisher stops only well after the last ack, so every join lands mid-stream.
    let mut joins = Vec::new();
    for (replay_last, after) in [
        (0u64, 1u64),
        (1, 1000 / scale),
        (10, 3000 / scale),
        (200, 6000 / scale),
        (100_000, 9000 / scale),
    ] {
        let deadline = tokio::time::Instant::now() + common::WAIT;
        while server.get("/topics/busy").await.json()["last_seq"]
            .as_u64()
            .unwrap()
            < after
        {
            assert!(tokio::time::Instant::now() < deadline, "publisher stalled");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut c = server.ws().await;
        c.send(json!({"action": "subscribe", "topic": "busy", "replay_last": replay_last}))
            .await;
        let ack = c.recv().await;
        assert_eq!(ack["action"], "subscribed", "the ack comes first: {ack}");
        joins.push((c, replay_last, ack));
    }
    let last_join = joins
        .iter()
        .map(|(_, _, ack)| ack["last_seq"].as_u64().unwrap())
        .max()
        .unwrap();
    stop_at.store(last_join + after_last_join, Ordering::Relaxed);
    let total = publisher.await.unwrap();

    // Every subscriber joined while messages were being published: after the first publish
    // and before the last one.
    let joined: Vec<u64> = joins
        .iter()
        .map(|(_, _, ack)| ack["last_seq"].as_u64().unwrap())
        .collect();
    assert!(
        joined.iter().all(|&seq| 0 < seq && seq < total),
        "every subscriber joined mid-stream: acks at {joined:?}, {total} published"
    );
    assert!(total >= last_join + after_last_join, "{total} published");
    for (mut c, replay_last, ack) in joins {
        let last_seq = ack["last_seq"].as_u64().unwrap();
        let replayed = ack["replayed"].as_u64().unwrap();
        assert_eq!(
            replayed,
            replay_last.min(last_seq),
            "clamped to what history holds: {ack}"
        );
        let first = last_seq - replayed + 1;
        let seqs = recv_seqs(&mut c, (total - first + 1) as usize).await;
        assert_consecutive(&seqs, first);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_sees_one_order_with_concurrent_publishers() {
    let server = TestServer::start().await;
    server.create_topic("t").await;
    let mut subs = Vec::new();
    for _ in 0..3 {
        let mut c = server.ws().await;
        c.subscribe("t").await;
        subs.push(c);
    }
    let publishers: Vec<_> = (0..3).map(|_| spawn_publisher(&server, "t", 300)).collect();
    let mut orders = Vec::new();
    for c in &mut subs {
        let mut frames = Vec::new();
        while frames.len() < 900 {
            let m = c.recv().await;
            frames.push((m["seq"].as_u64().unwrap(), m["message"].clone()));
        }
        let seqs: Vec<u64> = frames.iter().map(|(s, _)| *s).collect();
        assert_consecutive(&seqs, 1);
        orders.push(frames);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "every subscriber sees the same messages under the same seqs"
    );
    for p in publishers {
        p.await.unwrap();
    }
}

#[tokio::test]
async fn subscribing_twice_replays_again_but_never_doubles_live_delivery() {
    let server = TestServer::start().await;
    server.create_topic("t").await;
    let mut publisher = server.ws().await;
    for i in 1..=3 {
        publisher.publish("t", json!(i)).await;
    }
    let mut c = server.ws().await;
    c.subscribe("t").await;
    let ack = c
        .request(
            json!({"action": "subscribe", "topic": "t", "replay_last": 2, "request_id": "again"}),
        )
        .await;
    assert_eq!(ack["action"], "subscribed");
    assert_eq!(ack["replayed"], 2);
    assert_eq!(ack["request_id"], "again");
    assert_eq!(recv_seqs(&mut c, 2).await, vec![2, 3]);
    publisher.publish("t", json!(4)).await;
    assert_eq!(recv_seqs(&mut c, 1).await, vec![4]);
    c.assert_silent(Duration::from_millis(200)).await;
    assert_eq!(server.get("/topics/t").await.json()["subscriber_count"], 1);
}

#[tokio::test]
async fn closing_a_connection_removes_all_its_subscriptions_at_once() {
    let server = TestServer::start().await;
    for t in ["a", "b", "c"] {
        server.create_topic(t).await;
    }
    let mut stays = server.ws().await;
    stays.subscribe("a").await;
    let mut leaves = server.ws().await;
    for t in ["a", "b", "c"] {
        leaves.subscribe(t).await;
    }
    let stats = server.stats().await;
    assert_eq!(stats["connections"], 2);
    assert_eq!(stats["topics"]["a"]["subscribers"], 2);
    assert_eq!(stats["topics"]["c"]["subscribers"], 1);

    leaves.ws.close(None).await.unwrap();
    drop(leaves);
    let stats = server
        .wait_for_stats("the closed connection to go", |s| s["connections"] == 1)
        .await;
    assert_eq!(stats["topics"]["a"]["subscribers"], 1);
    assert_eq!(stats["topics"]["b"]["subscribers"], 0);
    assert_eq!(stats["topics"]["c"]["subscribers"], 0);
    let topics = server.get("/topics").await.json();
    assert_eq!(
        topics,
        json!({"topics": [
            {"name": "a", "subscriber_count": 1},
            {"name": "b", "subscriber_count": 0},
            {"name": "c", "subscriber_count": 0},
        ]})
    );
}

#[tokio::test]
async fn a_connection_dropped_without_a_close_frame_is_cleaned_up_too() {
    let server = TestServer::start().await;
    server.create_topic("a").await;
    let mut c = server.ws().await;
    c.subscribe("a").await;
    drop(c); // TCP goes away without a WebSocket close
    let stats = server
        .wait_for_stats("the dropped connection to go", |s| s["connections"] == 0)
        .await;
    assert_eq!(stats["topics"]["a"]["subscribers"], 0);
}

#[tokio::test]
async fn a_subscribed_publisher_gets_each_of_its_messages_before_the_ack() {
    // The delivery to every subscriber, the publisher included, is queued before the publish
    // is answered: each `message` frame comes before the `published` ack of its publish (on
    // one node, right before it; across nodes, publishes in flight may interleave, but never
    // an ack before its message), and the acks come in the order of the publishes.
    const PUBLISHES: u64 = 50;
    let server = TestServer::start().await;
    server.create_topic("t").await;
    let mut other = server.ws().await;
    other.subscribe("t").await;
    let mut c = server.ws().await;
    c.subscribe("t").await;
    // Pipelined: all sent before any reply is read.
    for i in 1..=PUBLISHES {
        c.send(json!({"action": "publish", "topic": "t", "message": {"mine": i}, "request_id": format!("p{i}")}))
            .await;
    }
    let (mut messages, mut acks) = (0u64, 0u64);
    while acks < PUBLISHES {
        let frame = c.recv().await;
        if frame["action"] == "message" {
            messages += 1;
            assert_eq!(frame["seq"], messages, "{frame}");
            assert_eq!(frame["message"], json!({"mine": messages}), "{frame}");
            continue;
        }
        acks += 1;
        let ack = common::without_epoch(frame);
        assert_eq!(
            ack,
            json!({"action": "published", "topic": "t", "seq": acks, "request_id": format!("p{acks}")}),
            "acks in order"
        );
        assert!(messages >= acks, "the ack of seq {acks} after its message");
        if !common::across_nodes() {
            assert_eq!(
                messages, acks,
                "on one node, each ack right after its message"
            );
        }
    }
    // Like every other subscriber.
    for seq in 1..=PUBLISHES {
        let message = other.recv().await;
        assert_eq!(
            (&message["action"], &message["seq"]),
            (&json!("message"), &json!(seq))
        );
    }
}

#[tokio::test]
async fn missing_topics_are_created_on_use_only_when_configured() {
    let strict = TestServer::start().await;
    let mut c = strict.ws().await;
    for action in ["subscribe", "publish"] {
        let reply = c
            .request(json!({"action": action, "topic": "fresh", "message": 1}))
            .await;
        assert_eq!(reply["error"]["code"], "topic_not_found", "{reply}");
    }
    assert_eq!(strict.get("/topics").await.json()["topics"], json!([]));

    let auto = TestServer::with_args(&["--auto-create-topics"]).await;
    let mut c = auto.ws().await;
    let ack = c.subscribe("fresh").await;
    assert_eq!(ack["last_seq"], 0);
    let mut publisher = auto.ws().await;
    assert_eq!(publisher.publish("other", json!(1)).await, 1);
    assert_eq!(publisher.publish("fresh", json!(2)).await, 1);
    assert_eq!(recv_seqs(&mut c, 1).await, vec![1]);
    let names: Vec<Value> = auto.get("/topics").await.json()["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("fresh"), json!("other")]);
}

/// A topic with messages 1..=`count` published, history holding the last `history` of them.
async fn server_with_history(history: &str, count: u64) -> (TestServer, String) {
    let server = TestServer::with_args(&["--history-size", history]).await;
    server.create_topic("r").await;
    let mut publisher = server.ws().await;
    for i in 1..=count {
        publisher.publish("r", json!(i)).await;
    }
    let epoch = server.get("/topics/r").await.json()["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    (server, epoch)
}

async fn resume(server: &TestServer, frame: Value) -> (Value, Vec<u64>) {
    let mut c = server.ws().await;
    let ack = c.request(frame).await;
    assert_eq!(ack["action"], "subscribed", "{ack}");
    let seqs = recv_seqs(&mut c, ack["replayed"].as_u64().unwrap() as usize).await;
    c.assert_silent(Duration::from_millis(100)).await;
    (ack, seqs)
}

#[tokio::test]
async fn resume_within_history_recovers_everything_after_since_seq() {
    let (server, epoch) = server_with_history("10", 25).await;
    let (ack, seqs) = resume(
        &server,
        json!({"action": "subscribe", "topic": "r", "since_seq": 20, "epoch": epoch}),
    )
    .await;
    assert_eq!(ack["recovered"], true);
    assert_eq!(ack["epoch"], epoch.as_str());
    assert_eq!(ack["last_seq"], 25);
    assert_eq!(seqs, vec![21, 22, 23, 24, 25]);
    // The oldest position history can still serve: everything after 15 is held (16..=25).
    let (ack, seqs) = resume(
        &server,
        json!({"action": "subscribe", "topic": "r", "since_seq": 15, "epoch": epoch}),
    )
    .await;
    assert_eq!(ack["recovered"], true);
    assert_eq!(seqs, (16..=25).collect::<Vec<_>>());
    // Up to date: nothing to replay, nothing missed.
    let (ack, seqs) = resume(
        &server,
        json!({"action": "subscribe", "topic": "r", "since_seq": 25, "epoch": epoch}),
    )
    .await;
    assert_eq!(ack["recovered"], true);
    assert!(seqs.is_empty());
    // Without an epoch the position is taken to be in the topic's current life.
    let (ack, seqs) = resume(
        &server,
        json!({"action": "subscribe", "topic": "r", "since_seq": 23}),
    )
    .await;
    assert_eq!(ack["recovered"], true);
    assert_eq!(seqs, vec![24, 25]);
}

#[tokio::test]
async fn resume_reports_a_gap_and_sends_what_history_holds() {
    let (server, epoch) = server_with_history("10", 25).await;
    // 15 and earlier fell out of history: seq 15 is lost for a client that saw up to 14.
    let (ack, seqs) = resume(
        &server,
        json!({"action": "subscribe", "topic": "r", "since_seq": 14, "epoch": epoch}),
    )
    .await;
    assert_eq!(ack["recovered"], false);
    assert_eq!(seqs, (16..=25).collect::<Vec<_>>());
    // Another life of the topic.
    let (ack, seqs) = resume(
        &server,
        json!({"action": "subscribe", "topic": "r", "since_seq": 20, "epoch": "other"}),
    )
    .await;
    assert_eq!(ack["recovered"], false);
    assert_eq!(seqs, (16..=25).collect::<Vec<_>>());
    // A position the topic never reached.
    let (ack, seqs) = resume(
        &server,
        json!({"action": "subscribe", "topic": "r", "since_seq": 99, "epoch": epoch}),
    )
    .await;
    assert_eq!(ack["recovered"], false);
    assert_eq!(seqs, (16..=25).collect::<Vec<_>>());
}

#[tokio::test]
async fn without_history_only_an_up_to_date_client_is_recovered() {
    let (server, epoch) = server_with_history("0", 3).await;
    let (ack, seqs) = resume(
        &server,
        json!({"action": "subscribe", "topic": "r", "since_seq": 3, "epoch": epoch}),
    )
    .await;
    assert_eq!(ack["recovered"], true);
    assert!(seqs.is_empty());
    let (ack, seqs) = resume(
        &server,
        json!({"action": "subscribe", "topic": "r", "since_seq": 2, "epoch": epoch}),
    )
    .await;
    assert_eq!(ack["recovered"], false);
    assert!(seqs.is_empty());
    let (ack, _) = resume(
        &server,
        json!({"action": "subscribe", "topic": "r", "replay_last": 5}),
    )
    .await;
    assert_eq!(ack["replayed"], 0);
}

#[tokio::test]
async fn replay_last_is_clamped_to_history() {
    let (server, _) = server_with_history("10", 25).await;
    let (ack, seqs) = resume(
        &server,
        json!({"action": "subscribe", "topic": "r", "replay_last": 3}),
    )
    .await;
    assert_eq!(ack["replayed"], 3);
    assert_eq!(seqs, vec![23, 24, 25]);
    let (ack, seqs) = resume(
        &server,
        json!({"action": "subscribe", "topic": "r", "replay_last": 1000}),
    )
    .await;
    assert_eq!(ack["replayed"], 10);
    assert_eq!(seqs, (16..=25).collect::<Vec<_>>());
    let (ack, seqs) = resume(
        &server,
        json!({"action": "subscribe", "topic": "r", "replay_last": 0}),
    )
    .await;
    assert_eq!(ack["replayed"], 0);
    assert!(seqs.is_empty());
}

#[tokio::test]
async fn deleting_a_topic_tells_subscribers_and_a_new_topic_of_that_name_is_a_new_life() {
    let server = TestServer::start().await;
    server.create_topic("t").await;
    let mut sub = server.ws().await;
    let old_epoch = sub.subscribe("t").await["epoch"].clone();
    let mut publisher = server.ws().await;
    publisher.publish("t", json!(1)).await;
    assert_eq!(recv_seqs(&mut sub, 1).await, vec![1]);

    assert_eq!(server.delete("/topics/t").await.status, 200);
    assert_eq!(
        sub.recv().await,
        json!({"action": "topic_deleted", "topic": "t"})
    );
    let reply = publisher
        .request(json!({"action": "publish", "topic": "t", "message": 2}))
        .await;
    assert_eq!(reply["error"]["code"], "topic_not_found");

    server.create_topic("t").await;
    let details = server.get("/topics/t").await.json();
    assert_ne!(details["epoch"], old_epoch, "a fresh epoch for a new life");
    assert_eq!(
        details["subscriber_count"], 0,
        "old subscribers do not carry over"
    );
    assert_eq!(
        publisher.publish("t", json!(3)).await,
        1,
        "seq starts again at 1"
    );
    sub.assert_silent(Duration::from_millis(200)).await;
    // Unsubscribing from the deleted topic is still acked.
    assert_eq!(
        sub.request(json!({"action": "unsubscribe", "topic": "t"}))
            .await["action"],
        "unsubscribed"
    );
}

#[tokio::test]
async fn rest_and_websocket_publishes_share_one_sequence() {
    let server = TestServer::start().await;
    server.create_topic("mix").await;
    let mut sub = server.ws().await;
    let epoch = sub.subscribe("mix").await["epoch"].clone();
    let mut publisher = server.ws().await;
    assert_eq!(publisher.publish("mix", json!("ws")).await, 1);
    let r = server
        .post_json("/topics/mix/messages", &json!({"message": "rest"}))
        .await;
    assert_eq!(r.json(), json!({"topic": "mix", "seq": 2, "epoch": epoch}));
    let a = sub.recv().await;
    let b = sub.recv().await;
    assert_eq!(
        (a["seq"].clone(), a["message"].clone()),
        (json!(1), json!("ws"))
    );
    assert_eq!(
        (b["seq"].clone(), b["message"].clone()),
        (json!(2), json!("rest"))
    );
    assert_eq!(
        b.as_object().unwrap().len(),
        5,
        "same frame shape either way: {b}"
    );
}

#[tokio::test]
async fn messages_delivered_counts_replays_and_live_frames() {
    let (server, _) = server_with_history("10", 4).await;
    let (_, seqs) = resume(
        &server,
        json!({"action": "subscribe", "topic": "r", "replay_last": 4}),
    )
    .await;
    assert_eq!(seqs.len(), 4);
    server
        .wait_for_stats("4 replayed deliveries", |s| s["messages_delivered"] == 4)
        .await;
}
