//! Several nodes on one Redis (and on a Redis Cluster): one API across them. Each test starts its
//! own `redis-server` on a free port and its nodes in this process.

mod common;

use std::time::Duration;

use serde_json::{Value, json};

use common::redis::{RedisCluster, RedisServer, redis_missing};
use common::{TestServer, WAIT, WsClient};

/// `n` nodes on the Redis at `url` (or the Cluster seeds), each with `extra` flags.
async fn nodes(redis: &str, cluster: bool, n: usize, extra: &[&str]) -> Vec<TestServer> {
    let flag = if cluster {
        "--redis-cluster"
    } else {
        "--redis-url"
    };
    let mut args = vec!["--engine", "redis", flag, redis];
    args.extend_from_slice(extra);
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(TestServer::with_args(&args).await);
    }
    nodes
}

/// Runs `scenario` on 3 nodes over one Redis, then over a 3-master Redis Cluster.
macro_rules! on_both {
    ($single:ident, $cluster:ident, $scenario:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $single() {
            if redis_missing() {
                return;
            }
            let redis = RedisServer::start();
            $scenario(&nodes(&redis.url(), false, 3, &[]).await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $cluster() {
            if redis_missing() {
                return;
            }
            let cluster = RedisCluster::start();
            $scenario(&nodes(&cluster.seeds(), true, 3, &[]).await).await;
        }
    };
}

on_both!(
    create_subscribe_publish_and_read_on_different_nodes,
    create_subscribe_publish_and_read_on_different_nodes_cluster,
    one_api_across_nodes
);
async fn one_api_across_nodes(n: &[TestServer]) {
    n[0].create_topic("news").await;
    let mut sub = n[1].ws().await;
    let ack = sub.subscribe("news").await;
    assert_eq!(ack["last_seq"], 0);
    let mut publisher = n[2].ws().await;
    for i in 1..=5u64 {
        let seq = publisher.publish("news", json!({"n": i})).await;
        assert_eq!(seq, i);
    }
    for i in 1..=5u64 {
        let m = sub.recv().await;
        assert_eq!(
            (m["action"].as_str(), m["seq"].as_u64()),
            (Some("message"), Some(i))
        );
        assert_eq!(m["message"]["n"], i);
    }
    // REST publish on the first node reaches the subscriber on the second, with the epoch.
    let r = n[0]
        .post_json("/topics/news/messages", &json!({"message": "rest"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["seq"], 6);
    assert_eq!(r.json()["epoch"], ack["epoch"]);
    assert_eq!(sub.recv().await["message"], "rest");
    // History is the same on every node.
    for node in n {
        let h = node.get("/topics/news/messages?since_seq=3").await.json();
        let seqs: Vec<u64> = h["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [4, 5, 6]);
        assert_eq!(h["last_seq"], 6);
        assert!(
            h["messages"][0]["published_at"]
                .as_str()
                .unwrap()
                .ends_with('Z')
        );
    }
    // Figures are totals over the nodes.
    wait_for(&n[2], "/topics/news", |t| t["subscriber_count"] == 1).await;
    let topic = n[2].get("/topics/news").await.json();
    assert_eq!(topic["messages_published"], 6);
    assert_eq!(topic["epoch"], ack["epoch"]);
    let stats = wait_for(&n[0], "/stats", |s| {
        s["nodes"].as_array().is_some_and(|a| a.len() == 3)
    })
    .await;
    assert_eq!(stats["engine"], "redis");
    assert_eq!(stats["subscriptions"], 1);
    assert_eq!(stats["topics"]["news"]["subscribers"], 1);
    let listed = n[1].get("/topics").await.json();
    assert_eq!(
        listed["topics"],
        json!([{"name": "news", "subscriber_count": 1}])
    );
}

on_both!(
    racing_creates_give_exactly_one_201,
    racing_creates_give_exactly_one_201_cluster,
    racing_creates
);
async fn racing_creates(n: &[TestServer]) {
    for round in 0..20 {
        let name = format!("race-{round}");
        let body = json!({"name": name});
        let (a, b) = tokio::join!(
            n[0].post_json("/topics", &body),
            n[1].post_json("/topics", &body)
        );
        let mut statuses = [a.status, b.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [201, 409], "round {round}");
    }
    let listed = n[2].get("/topics").await.json();
    assert_eq!(listed["topics"].as_array().unwrap().len(), 20);
}

on_both!(
    deleting_on_one_node_tells_subscribers_on_every_node,
    deleting_on_one_node_tells_subscribers_on_every_node_cluster,
    delete_reaches_every_node
);
async fn delete_reaches_every_node(n: &[TestServer]) {
    n[0].create_topic("gone").await;
    let mut subs = Vec::new();
    for node in n {
        let mut ws = node.ws().await;
        ws.subscribe("gone").await;
        subs.push(ws);
    }
    let r = n[2].delete("/topics/gone").await;
    assert_eq!(r.status, 200, "{}", r.text());
    for ws in &mut subs {
        assert_eq!(
            ws.recv().await,
            json!({"action": "topic_deleted", "topic": "gone"})
        );
    }
    n[1].get("/topics/gone")
        .await
        .assert_error(404, "topic_not_found");
    // A new life gets a new epoch, and the old subscribers are not in it.
    n[1].create_topic("gone").await;
    let mut publisher = n[0].ws().await;
    publisher.publish("gone", json!(1)).await;
    for ws in &mut subs {
        ws.assert_silent(Duration::from_millis(300)).await;
    }
}

on_both!(
    ack_replay_live_without_gap_or_duplicate_on_every_node,
    ack_replay_live_without_gap_or_duplicate_on_every_node_cluster,
    joins_while_publishing
);
/// Subscribers join on every node, with every kind of replay, while a publisher publishes
/// without pause on one node: each sees its ack, then consecutive seqs, no gap, no duplicate.
async fn joins_while_publishing(n: &[TestServer]) {
    n[0].create_topic("busy").await;
    const TOTAL: u64 = 400;
    let publisher_addr = n[0].addr;
    let publishing = tokio::spawn(async move {
        let mut p = WsClient::connect(publisher_addr).await;
        for i in 1..=TOTAL {
            p.publish("busy", json!(i)).await;
        }
    });
    let mut joined = Vec::new();
    for round in 0..9 {
        tokio::time::sleep(Duration::from_millis(15)).await;
        let node = &n[round % n.len()];
        let mut ws = node.ws().await;
        let request = match round % 3 {
            0 => json!({"action": "subscribe", "topic": "busy"}),
            1 => json!({"action": "subscribe", "topic": "busy", "replay_last": 5}),
            _ => json!({"action": "subscribe", "topic": "busy", "since_seq": 0}),
        };
        let ack = ws.request(request).await;
        assert_eq!(ack["action"], "subscribed", "{ack}");
        joined.push((ws, ack));
    }
    publishing.await.expect("publisher");
    for (ws, ack) in &mut joined {
        let last = ack["last_seq"].as_u64().unwrap();
        let replayed = ack["replayed"].as_u64().unwrap();
        let mut expected = last + 1 - replayed;
        while expected <= TOTAL {
            let m = ws.recv().await;
            assert_eq!(m["action"], "message", "{m}");
            assert_eq!(m["seq"].as_u64(), Some(expected), "ack {ack}");
            expected += 1;
        }
        ws.assert_silent(Duration::from_millis(100)).await;
    }
}

on_both!(
    a_client_resumes_on_another_node,
    a_client_resumes_on_another_node_cluster,
    resume_elsewhere
);
async fn resume_elsewhere(n: &[TestServer]) {
    n[0].create_topic("r").await;
    let mut sub = n[0].ws().await;
    let ack = sub.subscribe("r").await;
    let epoch = ack["epoch"].as_str().unwrap().to_owned();
    let mut publisher = n[2].ws().await;
    for i in 1..=3 {
        publisher.publish("r", json!(i)).await;
    }
    for _ in 1..=3 {
        sub.recv().await;
    }
    drop(sub);
    for i in 4..=6 {
        publisher.publish("r", json!(i)).await;
    }
    let mut resumed = n[1].ws().await;
    let ack = resumed
        .request(json!({"action": "subscribe", "topic": "r", "since_seq": 3, "epoch": epoch}))
        .await;
    assert_eq!(ack["recovered"], true, "{ack}");
    assert_eq!(ack["replayed"], 3);
    for seq in 4..=6 {
        assert_eq!(resumed.recv().await["seq"], seq);
    }
    publisher.publish("r", json!(7)).await;
    assert_eq!(resumed.recv().await["seq"], 7);
    // From another life: not recovered, everything held is handed over.
    let mut other = n[2].ws().await;
    let ack = other
        .request(json!({"action": "subscribe", "topic": "r", "since_seq": 3, "epoch": "nope"}))
        .await;
    assert_eq!(ack["recovered"], false, "{ack}");
    assert_eq!(ack["replayed"], 7);
}

on_both!(
    a_publisher_sees_its_own_message_before_its_ack,
    a_publisher_sees_its_own_message_before_its_ack_cluster,
    own_message_first
);
async fn own_message_first(n: &[TestServer]) {
    n[0].create_topic("echo").await;
    let mut ws = n[1].ws().await;
    ws.subscribe("echo").await;
    for i in 1..=20u64 {
        ws.send(json!({"action": "publish", "topic": "echo", "message": i}))
            .await;
        let first = ws.recv().await;
        assert_eq!(
            (first["action"].as_str(), first["seq"].as_u64()),
            (Some("message"), Some(i))
        );
        let second = ws.recv().await;
        assert_eq!(second["action"], "published", "{second}");
        assert_eq!(second["seq"], i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_auto_creation_hold_across_nodes() {
    if redis_missing() {
        return;
    }
    let redis = RedisServer::start();
    let n = nodes(
        &redis.url(),
        false,
        2,
        &["--max-topics", "3", "--auto-create-topics"],
    )
    .await;
    n[0].create_topic("a").await;
    let mut ws = n[1].ws().await;
    // Auto-created by a publish on one node, by a subscribe on the other.
    assert_eq!(ws.publish("b", json!(1)).await, 1);
    let ack = n[0].ws().await.subscribe("c").await;
    assert_eq!(ack["last_seq"], 0);
    n[1].post_json("/topics", &json!({"name": "d"}))
        .await
        .assert_error(507, "too_many_topics");
    let e = ws
        .request(json!({"action": "publish", "topic": "e", "message": 1}))
        .await;
    assert_eq!(e["error"]["code"], "too_many_topics", "{e}");
    assert_eq!(n[0].delete("/topics/a").await.status, 200);
    n[1].create_topic("d").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deployments_share_one_redis_through_prefixes() {
    if redis_missing() {
        return;
    }
    let redis = RedisServer::start();
    let blue = nodes(&redis.url(), false, 1, &["--redis-prefix", "blue"]).await;
    let green = nodes(&redis.url(), false, 1, &["--redis-prefix", "green"]).await;
    blue[0].create_topic("t").await;
    green[0].create_topic("t").await;
    let mut sub = green[0].ws().await;
    sub.subscribe("t").await;
    blue[0].ws().await.publish("t", json!("blue")).await;
    sub.assert_silent(Duration::from_millis(300)).await;
    assert_eq!(green[0].get("/topics/t").await.json()["last_seq"], 0);
    assert!(redis.cli(&["exists", "blue:{t}:meta"]).contains('1'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_in_redis_is_capped_in_bytes_per_topic() {
    if redis_missing() {
        return;
    }
    let redis = RedisServer::start();
    let flags = [
        "--max-message-bytes",
        "1000",
        "--history-bytes-per-topic",
        "5200",
    ];
    let n = nodes(&redis.url(), false, 1, &flags).await;
    n[0].create_topic("t").await;
    // Each message's frame is about 1090 bytes and counts for about 1220: four fit in 5200.
    let message = json!({"message": "x".repeat(998)});
    let publish = || n[0].post_json("/topics/t/messages", &message);
    for _ in 0..10 {
        assert_eq!(publish().await.status, 201);
    }
    let held = |page: &Value| -> Vec<u64> {
        page["messages"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["seq"].as_u64()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        held(&n[0].get("/topics/t/messages").await.json()),
        [7, 8, 9, 10]
    );

    // A topic kept by an older version has no byte count yet: its first publish counts what
    // the stream holds, and the cap holds from then on.
    redis.cli(&["hdel", "pubsub:{t}:meta", "bytes"]);
    assert_eq!(publish().await.status, 201);
    assert_eq!(
        held(&n[0].get("/topics/t/messages").await.json()),
        [8, 9, 10, 11]
    );
    let resumed = n[0]
        .ws()
        .await
        .request(json!({"action": "subscribe", "topic": "t", "since_seq": 2}))
        .await;
    assert_eq!(resumed["recovered"], false, "{resumed}");
    assert_eq!(resumed["replayed"], 4, "{resumed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_with_noeviction_refuses_publishes_and_keeps_its_topics() {
    if redis_missing() {
        return;
    }
    let redis = RedisServer::start();
    let n = nodes(&redis.url(), false, 1, &[]).await;
    n[0].create_topic("t").await;
    let message = json!({"message": 1});
    let publish = || n[0].post_json("/topics/t/messages", &message);
    assert_eq!(publish().await.status, 201);
    assert!(
        redis
            .cli(&["config", "get", "maxmemory-policy"])
            .contains("noeviction")
    );
    redis.cli(&["config", "set", "maxmemory", "1"]);
    publish().await.assert_error(503, "engine_unavailable");
    redis.cli(&["config", "set", "maxmemory", "0"]);
    let again = publish().await;
    assert_eq!(again.status, 201, "{}", again.text());
    assert_eq!(again.json()["seq"], 2, "the refused publish took no seq");
}

/// Polls `path` on `node` until `check` holds.
async fn wait_for(node: &TestServer, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = node.get(path).await;
        let body = r.json();
        if check(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out on {path}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_or_an_acl_user_in_the_url_is_used() {
    if redis_missing() {
        return;
    }
    let redis = RedisServer::start_with(&[
        "--appendonly",
        "no",
        "--requirepass",
        "s3cret",
        "--user",
        "app",
        "on",
        ">apppass",
        "~*",
        "&*",
        "+@all",
    ]);
    for url in [
        format!("redis://:s3cret@127.0.0.1:{}/0", redis.port),
        format!("redis://app:apppass@127.0.0.1:{}/0", redis.port),
    ] {
        let node = nodes(&url, false, 1, &[]).await;
        node[0].create_topic("t").await;
        let mut ws = node[0].ws().await;
        ws.subscribe("t").await;
        node[0]
            .post_json("/topics/t/messages", &json!({"message": 1}))
            .await;
        assert_eq!(ws.recv().await["seq"], 1);
        node[0].delete("/topics/t").await;
    }
    // A wrong password is refused at start-up, with a reason and without the password.
    let config = <pubsub::config::Config as clap::Parser>::try_parse_from([
        "pubsub",
        "--engine",
        "redis",
        "--redis-url",
        &format!("redis://app:wrong@127.0.0.1:{}/0", redis.port),
    ])
    .expect("flags parse");
    let error = config.broker().await.err().expect("a wrong password fails");
    assert!(!error.contains("wrong"), "{error}");
    assert!(error.contains("app:***"), "{error}");
}
