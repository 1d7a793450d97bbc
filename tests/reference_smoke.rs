//! The in-repo fanout-reference (`src/bin/fanout-reference/`), run as its own process: the
//! protocol subset pubsub-bench relies on, then pubsub-bench's scenarios against it, briefly,
//! and side by side with the broker. Checks counts and frames, never timings.

mod common;

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use common::TestServer;
use common::bench::{bench, compare_line, one_run, runs, strings};
use common::reference::ReferenceServer;
use common::{WsClient, http_request};

async fn create(reference: &ReferenceServer, name: &str) -> (u16, Value) {
    let body = json!({ "name": name }).to_string();
    let r = http_request(
        reference.addr,
        "POST",
        "/topics",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .await;
    (r.status, r.json())
}

#[tokio::test]
async fn speaks_the_frames_the_harness_needs() {
    let reference = ReferenceServer::start(&[]);
    assert_eq!(
        create(&reference, "news").await,
        (201, json!({"status": "created", "topic": "news"}))
    );
    assert_eq!(create(&reference, "news").await.0, 409);
    let other = http_request(reference.addr, "POST", "/elsewhere", &[], b"{}").await;
    assert_eq!(other.status, 404);

    let mut sub = WsClient::connect(reference.addr).await;
    let mut publisher = WsClient::connect(reference.addr).await;
    // Every frame gets exactly one reply, in order, carrying the request id as sent.
    assert_eq!(
        sub.request(json!({"action": "subscribe", "topic": "news", "request_id": "s1"}))
            .await,
        json!({"type": "ack", "request_id": "s1"})
    );
    assert_eq!(
        sub.request(json!({"action": "ping", "request_id": 7}))
            .await,
        json!({"type": "pong", "request_id": 7})
    );
    assert_eq!(
        sub.request(json!({"action": "subscribe", "topic": "news"}))
            .await,
        json!({"type": "ack", "status": "ok"})
    );
    sub.send_text("not json").await;
    assert_eq!(
        sub.recv().await,
        json!({"type": "error", "request_id": null, "error": {"code": "BAD_REQUEST"}})
    );
    assert_eq!(
        sub.request(json!({"action": "dance", "request_id": "d"}))
            .await,
        json!({"type": "error", "request_id": "d", "error": {"code": "BAD_REQUEST"}})
    );

    // The published message is delivered byte for byte, once (the second subscribe was a
    // no-op), under "message".
    publisher
        .send_text(r#"{"action":"publish","topic":"news","message":{"bt":"1",  "p":[1,2]},"request_id":"p1"}"#)
        .await;
    assert_eq!(
        publisher.recv().await,
        json!({"type": "ack", "request_id": "p1"})
    );
    match sub.next_raw().await {
        Some(Message::Text(text)) => assert_eq!(
            text.as_str(),
            r#"{"type":"message","topic":"news","message":{"bt":"1",  "p":[1,2]}}"#
        ),
        other => panic!("expected the delivery, got {other:?}"),
    }
    // After unsubscribing nothing more arrives: the next frame is the ping's reply.
    assert_eq!(
        sub.request(json!({"action": "unsubscribe", "topic": "news", "request_id": "u"}))
            .await,
        json!({"type": "ack", "request_id": "u"})
    );
    assert_eq!(
        publisher
            .request(json!({"action": "publish", "topic": "news", "message": 2}))
            .await,
        json!({"type": "ack", "status": "ok"})
    );
    assert_eq!(
        sub.request(json!({"action": "ping", "request_id": "last"}))
            .await,
        json!({"type": "pong", "request_id": "last"})
    );
    // A publish to a topic nobody created is acknowledged and goes nowhere.
    assert_eq!(
        publisher
            .request(
                json!({"action": "publish", "topic": "nowhere", "message": 1, "request_id": 1})
            )
            .await,
        json!({"type": "ack", "request_id": 1})
    );
}

#[tokio::test]
async fn refuses_an_unknown_overflow_policy() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fanout-reference"))
        .args(["--overflow", "spill"])
        .output()
        .expect("run fanout-reference");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--overflow"));
}

fn args(reference: &ReferenceServer, rest: &[&str]) -> Vec<String> {
    let mut v = strings(&[
        "--addr",
        &reference.addr.to_string(),
        "--server-pid",
        &reference.pid().to_string(),
        "--min-seconds",
        "0",
    ]);
    v.extend(strings(rest));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_against_it() {
    let reference = ReferenceServer::start(&[]);
    let run = one_run(&bench(args(&reference, &["fanout", "-s", "3", "-m", "300"])).await);
    assert_eq!(run["deliveries"], 900);
    assert!(run["server_us_per_delivery"].is_number(), "{run}");

    let run = one_run(&bench(args(&reference, &["topics", "-t", "5", "-m", "100"])).await);
    assert_eq!(run["deliveries"], 100);

    let run = one_run(
        &bench(args(
            &reference,
            &["rate", "-s", "2", "-r", "100", "-d", "1"],
        ))
        .await,
    );
    assert_eq!(run["deliveries"], 200);

    let run = one_run(
        &bench(args(
            &reference,
            &["conns", "-c", "40", "-t", "4", "--settle", "0.1"],
        ))
        .await,
    );
    assert_eq!(run["reached"], 40);
    assert!(run["server_rss_per_conn_kib"].is_number(), "{run}");

    // Topics created on subscribe only: the reference needs no POST.
    let run = one_run(
        &bench(args(
            &reference,
            &["--no-create", "fanout", "-s", "2", "-m", "50"],
        ))
        .await,
    );
    assert_eq!(run["deliveries"], 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drop_policy_still_delivers_to_subscribers_that_keep_up() {
    let reference = ReferenceServer::start(&["--overflow", "drop", "--queue", "100000"]);
    let run = one_run(&bench(args(&reference, &["fanout", "-s", "2", "-m", "200"])).await);
    assert_eq!(run["deliveries"], 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_and_the_reference_side_by_side() {
    let broker = TestServer::start().await;
    let reference = ReferenceServer::start(&[]);
    let out = bench(strings(&[
        "--addr",
        &broker.addr.to_string(),
        "--server-pid",
        &std::process::id().to_string(),
        "--name",
        "pubsub",
        "--compare",
        &reference.addr.to_string(),
        "--compare-pid",
        &reference.pid().to_string(),
        "--compare-name",
        "reference",
        "--runs",
        "2",
        "--min-seconds",
        "0",
        "--parse",
        "full",
        "fanout",
        "-s",
        "3",
        "-m",
        "200",
    ]))
    .await;
    let servers: Vec<Value> = runs(&out).iter().map(|r| r["server"].clone()).collect();
    assert_eq!(servers, ["pubsub", "reference", "reference", "pubsub"]);
    for run in runs(&out) {
        assert_eq!(run["deliveries"], 600, "{run}");
    }
    assert!(compare_line(&out, "deliveries_per_s")["median_ratio"].is_number());
    broker.shutdown().await;
}
