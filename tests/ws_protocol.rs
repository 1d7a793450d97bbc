//! The WebSocket protocol frame by frame: every action, every ack, every error code, and the
//! closes the WebSocket protocol itself requires.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use common::{RawWs, TestServer, WAIT, WsClient, close_payload, opcode};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn ping_is_answered_with_pong_echoing_request_id() {
    let server = TestServer::start().await;
    let mut c = server.ws().await;
    assert_eq!(
        c.request(json!({"action": "ping"})).await,
        json!({"action": "pong"})
    );
    assert_eq!(
        c.request(json!({"action": "ping", "request_id": "r-1"}))
            .await,
        json!({"action": "pong", "request_id": "r-1"})
    );
}

#[tokio::test]
async fn subscribe_publish_unsubscribe_round_trip() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    let mut sub = server.ws().await;
    let ack = sub
        .request(json!({"action": "subscribe", "topic": "news", "request_id": "s"}))
        .await;
    assert_eq!(ack["action"], "subscribed");
    assert_eq!(ack["topic"], "news");
    assert_eq!(ack["replayed"], 0);
    assert_eq!(ack["last_seq"], 0);
    assert_eq!(ack["request_id"], "s");
    assert!(ack["epoch"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(
        ack.get("recovered").is_none(),
        "recovered only answers since_seq: {ack}"
    );

    let mut publisher = server.ws().await;
    let ack = publisher
        .request(json!({"action": "publish", "topic": "news", "message": {"data": "Hello"}, "request_id": "p"}))
        .await;
    assert_eq!(
        common::without_epoch(ack),
        json!({"action": "published", "topic": "news", "seq": 1, "request_id": "p"})
    );

    let delivered = sub.recv().await;
    assert_eq!(delivered["action"], "message");
    assert_eq!(delivered["topic"], "news");
    assert_eq!(delivered["seq"], 1);
    assert_eq!(delivered["message"], json!({"data": "Hello"}));
    let at = delivered["published_at"].as_str().expect("published_at");
    assert!(
        at.len() == 24 && at.ends_with('Z') && at.as_bytes()[10] == b'T',
        "{at}"
    );
    assert!(delivered.get("request_id").is_none());

    assert_eq!(
        sub.request(json!({"action": "unsubscribe", "topic": "news", "request_id": "u"}))
            .await,
        json!({"action": "unsubscribed", "topic": "news", "request_id": "u"})
    );
    publisher.publish("news", json!(2)).await;
    sub.assert_silent(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn any_json_value_is_a_message_null_included() {
    let server = TestServer::start().await;
    server.create_topic("t").await;
    let mut sub = server.ws().await;
    sub.subscribe("t").await;
    let mut publisher = server.ws().await;
    let values = [
        json!(null),
        json!(0),
        json!("text"),
        json!([1, {"a": null}]),
        json!({"nested": {"x": [true]}}),
    ];
    for v in &values {
        publisher.publish("t", v.clone()).await;
    }
    for (i, v) in values.iter().enumerate() {
        let m = sub.recv().await;
        assert_eq!(m["seq"], i as u64 + 1);
        assert_eq!(&m["message"], v);
    }
}

#[tokio::test]
async fn unsubscribe_when_not_subscribed_is_acked() {
    let server = TestServer::start().await;
    server.create_topic("t").await;
    let mut c = server.ws().await;
    assert_eq!(
        c.request(json!({"action": "unsubscribe", "topic": "t"}))
            .await,
        json!({"action": "unsubscribed", "topic": "t"})
    );
    // Even for a topic that does not exist: there is nothing to be subscribed to.
    assert_eq!(
        c.request(json!({"action": "unsubscribe", "topic": "missing"}))
            .await,
        json!({"action": "unsubscribed", "topic": "missing"})
    );
}

async fn assert_error(c: &mut common::WsClient, frame: serde_json::Value, code: &str) {
    let reply = c.request(frame.clone()).await;
    assert_eq!(reply["action"], "error", "{frame} -> {reply}");
    assert_eq!(reply["error"]["code"], code, "{frame} -> {reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    match frame.get("request_id") {
        Some(id) if id.is_string() => assert_eq!(&reply["request_id"], id, "echoed: {reply}"),
        _ => assert!(
            reply.get("request_id").is_none(),
            "nothing to echo: {reply}"
        ),
    }
}

#[tokio::test]
async fn bad_frames_get_bad_request_and_the_connection_stays() {
    let server = TestServer::start().await;
    server.create_topic("t").await;
    let mut c = server.ws().await;
    for text in ["not json", "[]", "42", "{\"action\":", ""] {
        c.send_text(text).await;
        let reply = c.recv().await;
        assert_eq!(reply["action"], "error", "{text:?}");
        assert_eq!(reply["error"]["code"], "bad_request", "{text:?}");
    }
    for frame in [
        json!({"request_id": "1"}),
        json!({"action": "dance", "request_id": "2"}),
        json!({"action": 5, "request_id": "3"}),
        json!({"action": "subscribe", "request_id": "4"}),
        json!({"action": "subscribe", "topic": 7, "request_id": "5"}),
        json!({"action": "subscribe", "topic": "t", "replay_last": -1, "request_id": "6"}),
        json!({"action": "subscribe", "topic": "t", "replay_last": "3", "request_id": "7"}),
        json!({"action": "subscribe", "topic": "t", "since_seq": 1.5, "request_id": "8"}),
        json!({"action": "subscribe", "topic": "t", "since_seq": 1, "replay_last": 1, "request_id": "9"}),
        json!({"action": "subscribe", "topic": "t", "since_seq": 0, "epoch": 3, "request_id": "10"}),
        json!({"action": "publish", "topic": "t", "request_id": "11"}),
        json!({"action": "publish", "message": 1, "request_id": "12"}),
        json!({"action": "unsubscribe", "request_id": "13"}),
        json!({"action": "ping", "request_id": 14}),
    ] {
        assert_error(&mut c, frame, "bad_request").await;
    }
    // A binary frame is bad_request too, and the connection stays open.
    c.ws.send(Message::binary(b"{\"action\":\"ping\"}".to_vec()))
        .await
        .unwrap();
    let reply = c.recv().await;
    assert_eq!(reply["error"]["code"], "bad_request");
    assert_eq!(c.request(json!({"action": "ping"})).await["action"], "pong");
}

#[tokio::test]
async fn unknown_fields_are_ignored() {
    let server = TestServer::start().await;
    let mut c = server.ws().await;
    assert_eq!(
        c.request(json!({"action": "ping", "extra": {"deep": [1]}, "v": 2}))
            .await,
        json!({"action": "pong"})
    );
}

#[tokio::test]
async fn topic_errors_name_their_code() {
    let server = TestServer::with_args(&["--max-message-bytes", "100"]).await;
    server.create_topic("t").await;
    let mut c = server.ws().await;
    for action in ["subscribe", "publish"] {
        assert_error(
            &mut c,
            json!({"action": action, "topic": "missing", "message": 1, "request_id": action}),
            "topic_not_found",
        )
        .await;
        for bad in ["", ".dot", "a b", "a/b", &"x".repeat(256)] {
            assert_error(
                &mut c,
                json!({"action": action, "topic": bad, "message": 1, "request_id": "x"}),
                "invalid_topic",
            )
            .await;
        }
    }
    assert_error(
        &mut c,
        json!({"action": "unsubscribe", "topic": "-x"}),
        "invalid_topic",
    )
    .await;
    // The limit is on the message's JSON text: exactly 100 bytes pass, 101 do not.
    let fits = "x".repeat(98); // 98 characters plus two quotes
    assert_eq!(c.publish("t", json!(fits)).await, 1);
    assert_error(
        &mut c,
        json!({"action": "publish", "topic": "t", "message": "x".repeat(99), "request_id": "big"}),
        "message_too_large",
    )
    .await;
    let stats = server.stats().await;
    assert_eq!(
        stats["topics"]["t"]["messages_published"], 1,
        "nothing published by a failed frame"
    );
}

/// A JSON `ping` frame of exactly `len` bytes (padded with an ignored field).
fn ping_of_len(len: usize) -> String {
    let empty = r#"{"action":"ping","pad":""}"#;
    let frame = format!(
        r#"{{"action":"ping","pad":"{}"}}"#,
        "x".repeat(len - empty.len())
    );
    assert_eq!(frame.len(), len);
    frame
}

/// A frame of exactly `limit` bytes is served; one of `limit` + 1 closes the connection with
/// 1009 "frame too large".
async fn assert_frame_limit(args: &[&str], limit: usize) {
    let server = TestServer::with_args(args).await;
    let mut c = server.ws().await;
    c.send_text(&ping_of_len(limit)).await;
    assert_eq!(
        c.recv().await,
        json!({"action": "pong"}),
        "{args:?}: a frame of exactly {limit} bytes passes"
    );
    c.send_text(&ping_of_len(limit + 1)).await;
    assert_eq!(
        c.recv_close().await,
        (1009, "frame too large".to_owned()),
        "{args:?}: a frame of {} bytes",
        limit + 1
    );
    server
        .wait_for_stats("the connection to go", |s| s["connections"] == 0)
        .await;
}

#[tokio::test]
async fn max_frame_bytes_admits_the_limit_and_closes_with_1009_one_byte_over() {
    assert_frame_limit(
        &["--max-message-bytes", "1000", "--max-frame-bytes", "2000"],
        2000,
    )
    .await;
    // Unset, the frame limit is the message limit plus the envelope.
    let envelope = pubsub::config::ENVELOPE_BYTES;
    assert_frame_limit(&["--max-message-bytes", "1000"], 1000 + envelope).await;
    assert_frame_limit(&[], 65536 + envelope).await;
}

/// Sends one masked frame with any opcode and payload, valid or not.
async fn send_raw_frame(ws: &mut RawWs, opcode: u8, payload: &[u8]) {
    use tokio::io::AsyncWriteExt;
    assert!(payload.len() < 126, "short frames only");
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    ws.stream.write_all(&frame).await.expect("send frame");
}

#[tokio::test]
async fn invalid_utf8_in_a_text_frame_closes_with_1007() {
    let server = TestServer::start().await;
    // tungstenite will not send invalid UTF-8 in a text frame, so write the frames by hand.
    let mut ws = RawWs::connect(server.addr).await;
    // Valid UTF-8 beyond ASCII passes (and is echoed as sent).
    send_raw_frame(
        &mut ws,
        opcode::TEXT,
        r#"{"action":"ping","request_id":"é€😀"}"#.as_bytes(),
    )
    .await;
    assert_eq!(
        ws.recv().await,
        json!({"action": "pong", "request_id": "é€😀"})
    );
    // 0xC3 0x28: a lead byte without its continuation.
    send_raw_frame(&mut ws, opcode::TEXT, &[b'"', 0xC3, 0x28, b'"']).await;
    let frames = ws.frames_until_closed().await;
    let close = frames
        .iter()
        .find(|(op, _)| *op == opcode::CLOSE)
        .unwrap_or_else(|| panic!("a close frame arrives: {frames:?}"));
    assert_eq!(
        close_payload(&close.1),
        (1007, "invalid UTF-8 in text frame".to_owned())
    );
    assert!(
        frames.iter().all(|(op, _)| *op != opcode::TEXT),
        "no reply to the invalid frame: {frames:?}"
    );
    server
        .wait_for_stats("the connection to go", |s| s["connections"] == 0)
        .await;
}

/// Publishes to `t` in pipelined bursts until `flowing` is cleared; returns how many.
async fn keep_publishing(addr: SocketAddr, flowing: Arc<AtomicBool>) -> u64 {
    const BURST: u64 = 32;
    let mut publisher = WsClient::connect(addr).await;
    let frame = json!({"action": "publish", "topic": "t", "message": {"pad": "x".repeat(1000)}})
        .to_string();
    let mut published = 0;
    while flowing.load(Relaxed) {
        for _ in 0..BURST {
            publisher
                .ws
                .feed(Message::text(frame.as_str()))
                .await
                .expect("send");
        }
        publisher.ws.flush().await.expect("flush");
        for _ in 0..BURST {
            assert_eq!(publisher.recv().await["action"], "published");
        }
        published += BURST;
    }
    published
}

/// Subscribes to `t`, waits for a live message, closes, and reads until the connection ends.
/// Ok once the server's answer to the close came back; otherwise how the connection ended.
async fn close_under_traffic(addr: SocketAddr) -> Result<(), String> {
    let mut c = WsClient::connect(addr).await;
    c.subscribe("t").await;
    while c.recv().await["action"] != "message" {}
    let bye = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    c.ws.close(Some(bye))
        .await
        .map_err(|e| format!("close: {e}"))?;
    // Messages already on their way may come first, then the answer.
    let answer = tokio::time::timeout(WAIT, async {
        loop {
            match c.ws.next().await {
                Some(Ok(Message::Close(answer))) => return Ok(answer),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("ended with {e}")),
                None => return Err("ended without a close frame".to_owned()),
            }
        }
    })
    .await
    .map_err(|_| "no close frame within the wait".to_owned())??;
    match answer {
        Some(frame) if frame.code == CloseCode::Normal => Ok(()),
        other => Err(format!("answered with {other:?}")),
    }
}

/// A client's close is answered with the server's close frame even while messages are being
/// written to it: tungstenite refuses data after a close, and the answer must still go out.
#[tokio::test]
async fn every_client_close_is_answered_while_messages_flow() {
    const CLOSES: usize = 80;
    const AT_ONCE: usize = 4;
    let server = TestServer::start().await;
    server.create_topic("t").await;
    let flowing = Arc::new(AtomicBool::new(true));
    let publisher = tokio::spawn(keep_publishing(server.addr, flowing.clone()));
    // How each unanswered close ended, and how often.
    let mut unanswered = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..CLOSES / AT_ONCE {
        let closes: Vec<_> = (0..AT_ONCE)
            .map(|_| tokio::spawn(close_under_traffic(server.addr)))
            .collect();
        for close in closes {
            if let Err(ended) = close.await.expect("closing client") {
                *unanswered.entry(ended).or_default() += 1;
            }
        }
    }
    flowing.store(false, Relaxed);
    let published = publisher.await.expect("publisher");
    let failed: usize = unanswered.values().sum();
    eprintln!("{failed} of {CLOSES} closes unanswered while {published} messages were published");
    assert_eq!(
        failed, 0,
        "closes unanswered, by how they ended: {unanswered:?}"
    );
    server
        .wait_for_stats("every closed connection gone", |s| s["connections"] == 0)
        .await;
}
