//! A connection whose task panics is contained: it alone ends, its subscriptions and its place
//! are freed, and everyone else is served as before. Built only with the `fault-injection`
//! feature (`cargo test --all-features`), whose `request_id` makes a session panic.

mod common;

use common::TestServer;
use futures_util::StreamExt;
use serde_json::json;

const FAULT_PANIC: &str = "fault-injection:panic";

#[tokio::test]
async fn a_panicking_connection_is_cleaned_up_and_the_others_carry_on() {
    let server = TestServer::start().await;
    server.create_topic("t").await;
    server.create_topic("u").await;
    let mut a = server.ws().await;
    a.subscribe("t").await;
    let mut b = server.ws().await;
    b.subscribe("t").await;
    b.subscribe("u").await;
    let stats = server
        .wait_for_stats("2 connections, 3 subscriptions", |s| {
            s["connections"] == 2 && s["subscriptions"] == 3
        })
        .await;
    assert_eq!(stats["topics"]["t"]["subscribers"], 2, "{stats}");

    b.send(json!({"action": "ping", "request_id": FAULT_PANIC}))
        .await;
    // B's connection ends with 1011 "server error", and nothing answers the request.
    let ended = tokio::time::timeout(common::WAIT, async {
        let mut close = None;
        while let Some(frame) = b.ws.next().await {
            match frame {
                Ok(tokio_tungstenite::tungstenite::Message::Text(text)) => {
                    panic!("the panicking request was answered: {text}")
                }
                Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame))) => {
                    close = Some((u16::from(frame.code), frame.reason.to_string()));
                }
                Ok(_) => continue,
                Err(_) => break,
            }
        }
        close
    })
    .await;
    let close = ended.expect("B's connection ends");
    assert_eq!(close, Some((1011, "server error".to_owned())));

    let stats = server
        .wait_for_stats("B cleaned up", |s| {
            s["connections"] == 1 && s["subscriptions"] == 1
        })
        .await;
    assert_eq!(stats["topics"]["t"]["subscribers"], 1, "{stats}");
    assert_eq!(stats["topics"]["u"]["subscribers"], 0, "{stats}");

    // A still receives what is published, over either route.
    let r = server
        .post_json("/topics/t/messages", &json!({"message": "after"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let delivered = a.recv().await;
    assert_eq!(delivered["message"], "after", "{delivered}");
    let mut publisher = server.ws().await;
    publisher.publish("t", json!("again")).await;
    assert_eq!(a.recv().await["message"], "again");

    // New connections work, and the server is healthy.
    let mut c = server.ws().await;
    assert_eq!(
        c.request(json!({"action": "ping", "request_id": "c"}))
            .await,
        json!({"action": "pong", "request_id": "c"})
    );
    c.subscribe("u").await;
    let r = server.get("/health").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "healthy");
    let stats = server.stats().await;
    assert_eq!(stats["connections"], 3, "{stats}");
    assert_eq!(stats["subscriptions"], 2, "{stats}");
}

#[tokio::test]
async fn panics_in_many_connections_leak_nothing() {
    let server = TestServer::start().await;
    server.create_topic("t").await;
    let mut survivor = server.ws().await;
    survivor.subscribe("t").await;
    for _ in 0..5 {
        let mut doomed = server.ws().await;
        doomed.subscribe("t").await;
        doomed
            .send(
                json!({"action": "publish", "topic": "t", "message": 1, "request_id": FAULT_PANIC}),
            )
            .await;
    }
    let stats = server
        .wait_for_stats("only the survivor left", |s| {
            s["connections"] == 1 && s["subscriptions"] == 1
        })
        .await;
    // The panic comes before the publish.
    assert_eq!(stats["messages_published"], 0, "{stats}");
    let r = server
        .post_json("/topics/t/messages", &json!({"message": "still"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(survivor.recv().await["message"], "still");
}
