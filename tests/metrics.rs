//! `GET /metrics` over a real socket: the Prometheus text format, and values that follow the
//! traffic the test made.

mod common;

use std::collections::BTreeMap;

use common::TestServer;
use serde_json::json;

/// The samples of a Prometheus text exposition, by series (name plus labels as written).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample is 'series value'");
            let value: f64 = value.parse().expect("a numeric value");
            (series.to_owned(), value)
        })
        .collect()
}

async fn scrape(server: &TestServer) -> BTreeMap<String, f64> {
    let r = server.get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = r.text();
    for family in [
        "pubsub_connections",
        "pubsub_errors_total",
        "pubsub_publish_latency_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} typed:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} described:\n{text}"
        );
    }
    samples(&text)
}

#[tokio::test]
async fn metrics_follow_real_traffic() {
    let server = TestServer::start().await;
    let before = scrape(&server).await;
    assert_eq!(before["pubsub_connections"], 0.0);
    assert_eq!(before["pubsub_publish_latency_seconds_count"], 0.0);

    server.create_topic("news").await;
    server.create_topic("sports").await;
    let mut a = server.ws().await;
    let mut b = server.ws().await;
    a.subscribe("news").await;
    b.subscribe("news").await;
    b.subscribe("sports").await;
    let mut publisher = server.ws().await;
    for i in 0..3 {
        publisher.publish("news", json!(i)).await;
    }
    let missing = publisher
        .request(json!({"action": "publish", "topic": "nowhere", "message": 1}))
        .await;
    assert_eq!(missing["error"]["code"], "topic_not_found");
    assert_eq!(server.get("/topics/nowhere").await.status, 404);
    for _ in 0..3 {
        assert_eq!(a.recv().await["action"], "message");
        assert_eq!(b.recv().await["action"], "message");
    }
    // Delivery is counted once the write completes, just after the client could read it.
    server
        .wait_for_stats("6 deliveries", |s| s["messages_delivered"] == 6)
        .await;

    let m = scrape(&server).await;
    assert_eq!(m["pubsub_connections"], 3.0);
    assert_eq!(m["pubsub_subscriptions"], 3.0);
    assert_eq!(m["pubsub_topics"], 2.0);
    let held = server.stats().await["history_bytes"].as_f64();
    assert_eq!(Some(m["pubsub_history_bytes"]), held);
    assert!(
        m["pubsub_history_bytes"] > 3.0 * 128.0,
        "three messages held"
    );
    assert_eq!(m["pubsub_messages_published_total"], 3.0);
    assert_eq!(m["pubsub_messages_delivered_total"], 6.0);
    assert_eq!(m["pubsub_messages_dropped_total"], 0.0);
    assert_eq!(m["pubsub_slow_consumers_disconnected_total"], 0.0);
    assert_eq!(m["pubsub_dead_connections_closed_total"], 0.0);
    // The WebSockets and this scrape's own connection at least (the connections of earlier
    // requests may still be closing).
    assert!(m["pubsub_http_connections"] >= 4.0, "{m:?}");
    assert_eq!(m["pubsub_http_connections_refused_total"], 0.0);
    assert_eq!(m[r#"pubsub_errors_total{code="topic_not_found"}"#], 2.0);
    assert_eq!(m[r#"pubsub_errors_total{code="bad_request"}"#], 0.0);
    assert_eq!(m["pubsub_publish_latency_seconds_count"], 3.0);
    assert_eq!(
        m[r#"pubsub_publish_latency_seconds_bucket{le="+Inf"}"#],
        3.0
    );
    assert!(m["pubsub_publish_latency_seconds_sum"] > 0.0);
    // 16 bounds and +Inf, cumulative: none above the count.
    let buckets: Vec<f64> = m
        .iter()
        .filter(|(series, _)| series.starts_with("pubsub_publish_latency_seconds_bucket"))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(buckets.len(), 17);
    assert!(buckets.iter().all(|&v| v <= 3.0));

    // The gauges follow connections going away.
    drop(a);
    drop(b);
    server
        .wait_for_stats("two connections gone", |s| s["connections"] == 1)
        .await;
    let after = scrape(&server).await;
    assert_eq!(after["pubsub_connections"], 1.0);
    assert_eq!(after["pubsub_subscriptions"], 0.0);
}

#[tokio::test]
async fn metrics_answer_only_get() {
    let server = TestServer::start().await;
    let r = server.request("POST", "/metrics", &[], b"").await;
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET"));
    // The refusal itself is counted.
    let m = scrape(&server).await;
    assert_eq!(m[r#"pubsub_errors_total{code="method_not_allowed"}"#], 1.0);
}
