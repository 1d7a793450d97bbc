//! Faults between nodes and Redis, each with its defined answer: a Redis that stalls or refuses
//! (through a proxy in the test), a persistent Redis killed with SIGKILL, a node killed with
//! SIGKILL. Everything on loopback, bounded in time, stopped by pid.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::child::ChildServer;
use common::proxy::{Proxy, ProxyMode};
use common::redis::{RedisServer, redis_missing};
use common::{TestServer, WAIT, WsClient};

/// A node whose Redis connections go through `proxy`, with a 1 s Redis timeout.
async fn node_behind(proxy: &Proxy) -> TestServer {
    TestServer::with_args(&[
        "--engine",
        "redis",
        "--redis-url",
        &proxy.redis_url(),
        "--redis-timeout",
        "1",
    ])
    .await
}

async fn node_on(redis: &RedisServer) -> TestServer {
    TestServer::with_args(&["--engine", "redis", "--redis-url", &redis.url()]).await
}

/// Polls `/health` until its status is `status`.
async fn wait_health(node: &TestServer, status: u16) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = node.get("/health").await;
        if r.status == status {
            return r.json();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "health stayed {}: {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Reads messages until `up_to` has arrived, checking order and uniqueness; returns how many
/// were announced lost with `lagged` (0 when every seq arrived).
async fn receive_through(ws: &mut WsClient, mut next: u64, up_to: u64) -> u64 {
    let mut lost = 0;
    while next <= up_to {
        let frame = ws.recv().await;
        match frame["action"].as_str() {
            Some("message") => {
                assert_eq!(frame["seq"].as_u64(), Some(next), "no gap, no duplicate");
                next += 1;
            }
            Some("lagged") => {
                let dropped = frame["dropped"].as_u64().unwrap_or(0);
                lost += dropped;
                next += dropped;
            }
            _ => panic!("unexpected frame {frame}"),
        }
    }
    lost
}

/// Runs the outage `mode` against one node and checks the defined answers during and after it.
async fn outage(mode: ProxyMode) {
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.addr()).await;
    let faulty = node_behind(&proxy).await;
    let healthy = node_on(&redis).await;
    healthy.create_topic("t").await;
    let mut sub = faulty.ws().await;
    sub.subscribe("t").await;
    let mut publisher = faulty.ws().await;
    assert_eq!(publisher.publish("t", json!(1)).await, 1);
    assert_eq!(sub.recv().await["seq"], 1);

    proxy.set(mode);
    // Every write answers engine_unavailable within the timeout, over REST and WebSocket.
    let started = Instant::now();
    faulty
        .post_json("/topics/t/messages", &json!({"message": 2}))
        .await
        .assert_error(503, "engine_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    faulty
        .post_json("/topics", &json!({"name": "new"}))
        .await
        .assert_error(503, "engine_unavailable");
    faulty
        .delete("/topics/t")
        .await
        .assert_error(503, "engine_unavailable");
    let started = Instant::now();
    let e = publisher
        .request(json!({"action": "publish", "topic": "t", "message": 3, "request_id": "p"}))
        .await;
    assert_eq!(e["action"], "error", "{e}");
    assert_eq!(
        (e["error"]["code"].as_str(), e["request_id"].as_str()),
        (Some("engine_unavailable"), Some("p"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // The node says why it is out, so a load balancer routes around it.
    let health = wait_health(&faulty, 503).await;
    assert_eq!(health["status"], "unavailable");
    assert!(
        health["reason"]
            .as_str()
            .is_some_and(|r| r.contains("Redis")),
        "{health}"
    );
    // Open WebSocket connections stay open.
    let pong = publisher.request(json!({"action": "ping"})).await;
    assert_eq!(pong["action"], "pong");
    // Meanwhile the other node publishes.
    let mut other = healthy.ws().await;
    for i in 2..=6 {
        other.publish("t", json!(i)).await;
    }

    proxy.set(ProxyMode::Pass);
    wait_health(&faulty, 200).await;
    // A publish that timed out may still have happened (its outcome was unknown); whatever
    // happened, every seq arrives once, in order: history covered the outage.
    let last = other.publish("t", json!("after")).await;
    // 1 before, up to 2 that timed out, 5 from the other node, then this one.
    assert!((7..=9).contains(&last), "seq {last}");
    let lost = receive_through(&mut sub, 2, last).await;
    assert_eq!(lost, 0, "history held everything");
    // And the node carries on.
    assert_eq!(publisher.publish("t", json!("mine")).await, last + 1);
    assert_eq!(sub.recv().await["seq"], last + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_gets_bounded_errors_then_nothing_is_missed() {
    if redis_missing() {
        return;
    }
    outage(ProxyMode::Stall).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_redis_gets_bounded_errors_then_nothing_is_missed() {
    if redis_missing() {
        return;
    }
    outage(ProxyMode::Refuse).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_history_is_announced_not_hidden() {
    if redis_missing() {
        return;
    }
    let redis = RedisServer::start();
    let proxy = Proxy::start(redis.addr()).await;
    let args = |url: &str| {
        vec![
            "--engine".to_owned(),
            "redis".into(),
            "--redis-url".into(),
            url.into(),
            "--history-size".into(),
            "3".into(),
            "--redis-timeout".into(),
            "1".into(),
        ]
    };
    let faulty_args = args(&proxy.redis_url());
    let faulty_args: Vec<&str> = faulty_args.iter().map(String::as_str).collect();
    let faulty = TestServer::with_args(&faulty_args).await;
    let healthy_args = args(&redis.url());
    let healthy_args: Vec<&str> = healthy_args.iter().map(String::as_str).collect();
    let healthy = TestServer::with_args(&healthy_args).await;
    healthy.create_topic("t").await;
    let mut sub = faulty.ws().await;
    sub.subscribe("t").await;
    proxy.set(ProxyMode::Refuse);
    wait_health(&faulty, 503).await;
    let mut other = healthy.ws().await;
    for i in 1..=10 {
        other.publish("t", json!(i)).await;
    }
    proxy.set(ProxyMode::Pass);
    wait_health(&faulty, 200).await;
    // History holds 8..10 only: 1..7 are announced as lost, then 8, 9, 10 arrive in order.
    let lost = receive_through(&mut sub, 1, 10).await;
    assert_eq!(lost, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_redis_killed_keeps_every_acknowledged_message() {
    if redis_missing() {
        return;
    }
    let mut redis = RedisServer::start_persistent();
    let node = node_on(&redis).await;
    node.create_topic("kept").await;
    let epoch = node.get("/topics/kept").await.json()["epoch"].clone();
    let mut publisher = node.ws().await;
    let mut acked = BTreeSet::new();
    for i in 1..=50 {
        acked.insert(publisher.publish("kept", json!(i)).await);
    }
    redis.kill();
    wait_health(&node, 503).await;
    redis.restart();
    wait_health(&node, 200).await;
    let h = node.get("/topics/kept/messages").await.json();
    let held: BTreeSet<u64> = h["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(held, acked, "every acknowledged message survived");
    assert_eq!(node.get("/topics/kept").await.json()["epoch"], epoch);
    // Publishing goes on from where it was, in the same life (retrying while the connection
    // is re-established).
    let deadline = Instant::now() + WAIT;
    loop {
        let r = node
            .post_json("/topics/kept/messages", &json!({"message": 51}))
            .await;
        if r.status == 201 {
            assert_eq!(
                (r.json()["seq"].as_u64(), &r.json()["epoch"]),
                (Some(51), &epoch)
            );
            break;
        }
        assert!(Instant::now() < deadline, "{}", r.text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_leaves_the_others_serving_and_its_clients_resume_elsewhere() {
    if redis_missing() {
        return;
    }
    let redis = RedisServer::start();
    let url = redis.url();
    let mut doomed = ChildServer::start(&["--engine", "redis", "--redis-url", &url]);
    let survivor = ChildServer::start(&["--engine", "redis", "--redis-url", &url]);
    common::create_topic_at(survivor.addr, "t").await;
    let mut sub = WsClient::connect(doomed.addr).await;
    let epoch = sub.subscribe("t").await["epoch"].clone();
    let mut publisher = WsClient::connect(survivor.addr).await;
    publisher.publish("t", json!(1)).await;
    assert_eq!(sub.recv().await["seq"], 1);

    doomed.kill();
    for i in 2..=4 {
        publisher.publish("t", json!(i)).await;
    }
    let mut resumed = WsClient::connect(survivor.addr).await;
    let ack = resumed
        .request(json!({"action": "subscribe", "topic": "t", "since_seq": 1, "epoch": epoch}))
        .await;
    assert_eq!(ack["recovered"], true, "{ack}");
    assert_eq!(receive_through(&mut resumed, 2, 4).await, 0);
    // The dead node drops out of the totals within 15 s.
    let deadline = Instant::now() + Duration::from_secs(25);
    loop {
        let stats = common::http_request(survivor.addr, "GET", "/stats", &[], b"")
            .await
            .json();
        if stats["nodes"].as_array().is_some_and(|n| n.len() == 1) {
            assert_eq!(stats["subscriptions"], 1);
            break;
        }
        assert!(Instant::now() < deadline, "dead node still listed: {stats}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `rediss://`: a Redis that speaks only TLS, its certificate made now by a CA of the test's
/// own, which the node trusts through `SSL_CERT_FILE` (read by rustls-native-certs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reaches_redis_over_tls_with_rediss() {
    if redis_missing() {
        return;
    }
    if !common::tools::succeeds("openssl", &["version"]) {
        return common::tools::missing_tool("openssl is not installed");
    }
    let dir = std::env::temp_dir().join(format!("pubsub-test-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let run = |args: &[&str]| {
        let ok = std::process::Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("openssl");
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "redis.key",
        "-out",
        "redis.csr",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("san");
    run(&[
        "x509",
        "-req",
        "-in",
        "redis.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "redis.pem",
    ]);
    let tls_port = common::redis::free_port(u16::MAX).to_string();
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let (cert, key, ca) = (file("redis.pem"), file("redis.key"), file("ca.pem"));
    let redis = RedisServer::start_with(&[
        "--appendonly",
        "no",
        "--tls-port",
        &tls_port,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ]);
    let url = format!("rediss://127.0.0.1:{tls_port}/0");
    let node = ChildServer::start_with_env(
        &["--engine", "redis", "--redis-url", &url],
        &[("SSL_CERT_FILE", &ca)],
    );
    common::create_topic_at(node.addr, "tls").await;
    let mut ws = WsClient::connect(node.addr).await;
    ws.subscribe("tls").await;
    let mut publisher = WsClient::connect(node.addr).await;
    assert_eq!(publisher.publish("tls", json!("over TLS")).await, 1);
    assert_eq!(ws.recv().await["message"], "over TLS");
    // And the plain port of the same Redis sees the topic the node wrote over TLS.
    assert!(redis.cli(&["exists", "pubsub:{tls}:meta"]).contains('1'));
    drop(node);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}
