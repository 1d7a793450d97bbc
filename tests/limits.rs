//! Every protection limit at its boundary, over real sockets: the limit itself passes, one more
//! fails with the documented error, nothing is half-done, and the error is counted in
//! `GET /stats` under `errors`.

mod common;

use common::h2::{H2c, Reading};
use common::{HttpResponse, TestServer, UPGRADE_HEADERS, read_response, read_until_closed};
use pubsub::config::Config;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use clap::Parser;

/// `errors.<code>` from a `/stats` body.
fn errors(stats: &Value, code: &str) -> u64 {
    stats["errors"][code]
        .as_u64()
        .unwrap_or_else(|| panic!("errors.{code} in {stats}"))
}

/// Asserts the errors counted so far: `expected` (code, count) and no other.
fn assert_errors(stats: &Value, expected: &[(&str, u64)]) {
    for (name, count) in stats["errors"].as_object().expect("errors object") {
        let want = expected
            .iter()
            .find(|(code, _)| code == name)
            .map_or(0, |&(_, n)| n);
        assert_eq!(count, want, "errors.{name} in {stats}");
    }
}

/// Asserts that `code` is the only error counted so far, `n` times.
fn assert_only_errors(stats: &Value, code: &str, n: u64) {
    assert_errors(stats, &[(code, n)]);
}

/// A raw `GET /ws` upgrade request, so a refusal's status and body can be read.
async fn raw_upgrade(server: &TestServer) -> HttpResponse {
    server.request("GET", "/ws", &UPGRADE_HEADERS, b"").await
}

/// `GET /topics/{name}`: its details, or None when it does not exist.
async fn topic(server: &TestServer, name: &str) -> Option<Value> {
    let r = server.get(&format!("/topics/{name}")).await;
    match r.status {
        200 => Some(r.json()),
        404 => None,
        other => panic!("GET /topics/{name}: {other} {}", r.text()),
    }
}

async fn last_seq(server: &TestServer, name: &str) -> u64 {
    topic(server, name).await.expect("topic exists")["last_seq"]
        .as_u64()
        .expect("last_seq")
}

/// Asserts an `error` frame with `code`, echoing `request_id` (or carrying none).
fn assert_error_frame(frame: &Value, code: &str, request_id: Option<&str>) {
    assert_eq!(frame["action"], "error", "{frame}");
    assert_eq!(frame["error"]["code"], code, "{frame}");
    assert!(
        frame["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "an error has a message: {frame}"
    );
    match request_id {
        Some(id) => assert_eq!(frame["request_id"], id, "{frame}"),
        None => assert!(frame.get("request_id").is_none(), "no request_id: {frame}"),
    }
}

/// Parses flags as the binary does, then checks them against each other.
fn config(args: &[&str]) -> Result<Config, String> {
    let config = Config::try_parse_from(std::iter::once("pubsub").chain(args.iter().copied()))
        .map_err(|e| e.to_string())?;
    config.validate()?;
    Ok(config)
}

// --max-connections

#[tokio::test]
async fn max_connections_admits_n_then_refuses_the_upgrade_with_503_json() {
    let server = TestServer::with_args(&["--max-connections", "2"]).await;
    let mut first = server.ws().await;
    let mut second = server.ws().await;
    server
        .wait_for_stats("2 connections", |s| s["connections"] == 2)
        .await;

    let refused = raw_upgrade(&server).await;
    refused.assert_error(503, "too_many_connections");
    assert!(
        refused.header("sec-websocket-accept").is_none(),
        "a refusal is not an upgrade"
    );
    // A WebSocket library sees the refusal as an HTTP error, not a connection that drops.
    match tokio_tungstenite::connect_async(format!("ws://{}/ws", server.addr)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
        }
        Err(other) => panic!("expected an HTTP 503, got {other}"),
        Ok(_) => panic!("a third connection was accepted over --max-connections 2"),
    }

    // The connections that got in are untouched, and REST is not limited by it.
    assert_eq!(
        first.request(json!({"action": "ping"})).await,
        json!({"action": "pong"})
    );
    assert_eq!(
        second.request(json!({"action": "ping"})).await,
        json!({"action": "pong"})
    );
    assert_eq!(server.get("/health").await.status, 200);
    let stats = server.stats().await;
    assert_eq!(stats["connections"], 2, "{stats}");
    assert_only_errors(&stats, "too_many_connections", 2);

    // One leaves: its place is free again.
    drop(first);
    server
        .wait_for_stats("1 connection", |s| s["connections"] == 1)
        .await;
    let mut third = server.ws().await;
    assert_eq!(
        third.request(json!({"action": "ping"})).await,
        json!({"action": "pong"})
    );
    server
        .wait_for_stats("2 connections", |s| s["connections"] == 2)
        .await;
    raw_upgrade(&server)
        .await
        .assert_error(503, "too_many_connections");
    assert_eq!(errors(&server.stats().await, "too_many_connections"), 3);
}

// --max-http-connections

/// Connects over HTTP/1.1 and sends `GET path` (ignoring a refusal: the server may already have
/// closed the connection).
async fn http1_get(addr: std::net::SocketAddr, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let _ = stream.write_all(request.as_bytes()).await;
    stream
}

/// TCP connections of every kind count: HTTP/2, WebSocket, HTTP/1.1. Over the limit a
/// connection is closed at once, unanswered (well before the 30 s request timeout), and
/// counted; the ones that got in are served as before, and a place that is freed is taken again.
#[tokio::test]
async fn max_http_connections_closes_connections_over_it_at_once_and_counts_them() {
    let server =
        TestServer::with_args(&["--max-http-connections", "3", "--max-connections", "2"]).await;
    let addr = server.addr;
    let mut h2 = H2c::connect(addr).await;
    assert_eq!(h2.get_json(1, "/health").await["status"], "healthy");
    let mut ws = server.ws().await;
    let mut h1 = http1_get(addr, "/health").await;
    assert_eq!(read_response(&mut h1).await.status, 200);

    for _ in 0..2 {
        let mut over = http1_get(addr, "/health").await;
        let got = read_until_closed(&mut over).await;
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    }
    let mut over = H2c::connect(addr).await;
    let frames = over.frames_until_closed(Reading::Answering).await;
    assert!(frames.is_empty(), "{frames:?}");

    let stats = h2.get_json(3, "/stats").await;
    assert_eq!(stats["http_connections"], 3, "{stats}");
    assert_eq!(stats["http_connections_refused"], 3, "{stats}");
    assert_eq!(stats["connections"], 1, "{stats}");
    assert_eq!(
        ws.request(json!({"action": "ping"})).await,
        json!({"action": "pong"})
    );
    let again = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    h1.write_all(again.as_bytes()).await.expect("send");
    assert_eq!(read_response(&mut h1).await.status, 200);

    drop(ws);
    let mut stream = 5;
    while h2.get_json(stream, "/stats").await["http_connections"] != 2 {
        assert!(stream < 2001, "the WebSocket's place was not freed");
        stream += 2;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(server.get("/health").await.status, 200);
    let stats = h2.get_json(stream + 2, "/stats").await;
    assert_eq!(stats["http_connections_refused"], 3, "{stats}");
}

#[test]
fn max_http_connections_defaults_to_max_connections_plus_1024_and_must_exceed_it() {
    let max = |args: &[&str]| config(args).map(|c| c.limits().max_http_connections);
    assert_eq!(max(&[]), Ok(10_000 + 1024));
    assert_eq!(max(&["--max-connections", "10"]), Ok(1034));
    let args = ["--max-connections", "10", "--max-http-connections", "11"];
    assert_eq!(max(&args), Ok(11));
    // Every WebSocket is one of these connections: at most --max-connections would leave no
    // room to refuse one more with the JSON 503, or to serve REST at all.
    let too_few: [&[&str]; 2] = [
        &["--max-connections", "10", "--max-http-connections", "10"],
        &["--max-http-connections", "500"],
    ];
    for args in too_few {
        let e = max(args).expect_err("not above --max-connections");
        assert!(
            e.contains("--max-http-connections") && e.contains("--max-connections"),
            "{e}"
        );
    }
    assert!(max(&["--max-http-connections", "0"]).is_err());
}

// --max-subscriptions-per-connection

fn subscribe(topic: &str, request_id: &str) -> Value {
    json!({"action": "subscribe", "topic": topic, "request_id": request_id})
}

#[tokio::test]
async fn max_subscriptions_per_connection_admits_n_then_answers_too_many_subscriptions() {
    let server = TestServer::with_args(&["--max-subscriptions-per-connection", "3"]).await;
    for name in ["a", "b", "c", "d", "e"] {
        server.create_topic(name).await;
    }
    let mut c = server.ws().await;
    for name in ["a", "b", "c"] {
        let ack = c.request(subscribe(name, name)).await;
        assert_eq!(ack["action"], "subscribed", "{ack}");
        assert_eq!(ack["request_id"], name, "{ack}");
    }
    let refused = c.request(subscribe("d", "over")).await;
    assert_error_frame(&refused, "too_many_subscriptions", Some("over"));
    let stats = server.stats().await;
    assert_eq!(stats["subscriptions"], 3, "{stats}");
    assert_eq!(stats["topics"]["d"]["subscribers"], 0, "{stats}");
    assert_only_errors(&stats, "too_many_subscriptions", 1);

    // The refusal did not subscribe it: a publish to d is not delivered.
    let mut publisher = server.ws().await;
    publisher.publish("d", json!("not for c")).await;

    // Subscribing again to a topic already held is always allowed, and does not double it.
    let again = c.request(subscribe("a", "again")).await;
    assert_eq!(again["action"], "subscribed", "{again}");
    assert_eq!(again["request_id"], "again", "{again}");
    assert_eq!(server.stats().await["subscriptions"], 3);

    // The limit is per connection: another client has its own.
    let mut other = server.ws().await;
    for name in ["c", "d", "e"] {
        other.subscribe(name).await;
    }

    // Unsubscribing frees a place.
    let unsubscribed = c
        .request(json!({"action": "unsubscribe", "topic": "b", "request_id": "u"}))
        .await;
    assert_eq!(unsubscribed["action"], "unsubscribed", "{unsubscribed}");
    let ack = c.request(subscribe("d", "d")).await;
    assert_eq!(ack["action"], "subscribed", "{ack}");
    assert_error_frame(
        &c.request(subscribe("e", "full")).await,
        "too_many_subscriptions",
        Some("full"),
    );

    // A subscribed topic that is deleted frees its place too.
    let r = server.delete("/topics/c").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let deleted = c.recv().await;
    assert_eq!(deleted["action"], "topic_deleted", "{deleted}");
    assert_eq!(deleted["topic"], "c", "{deleted}");
    let ack = c.request(subscribe("e", "e")).await;
    assert_eq!(ack["action"], "subscribed", "{ack}");

    // c now holds a, d and e: full again, and each delivers.
    assert_error_frame(
        &c.request(subscribe("b", "full-again")).await,
        "too_many_subscriptions",
        Some("full-again"),
    );
    for name in ["a", "d", "e"] {
        publisher.publish(name, json!(name)).await;
        let delivered = c.recv().await;
        assert_eq!(delivered["action"], "message", "{delivered}");
        assert_eq!(delivered["topic"], name, "{delivered}");
        assert_eq!(delivered["message"], name, "{delivered}");
    }
    let stats = server.stats().await;
    assert_eq!(
        stats["subscriptions"],
        3 + 2,
        "c holds 3, other holds d and e"
    );
    assert_only_errors(&stats, "too_many_subscriptions", 3);
}

// --max-topics

#[tokio::test]
async fn max_topics_admits_n_then_answers_507_and_creates_nothing() {
    let server = TestServer::with_args(&["--max-topics", "3"]).await;
    for name in ["a", "b", "c"] {
        server.create_topic(name).await;
    }
    server
        .post_json("/topics", &json!({"name": "d"}))
        .await
        .assert_error(507, "too_many_topics");
    assert!(topic(&server, "d").await.is_none(), "d was not created");
    let listed = server.get("/topics").await.json();
    assert_eq!(
        listed["topics"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    // A name that exists is still a conflict, not a full server.
    server
        .post_json("/topics", &json!({"name": "a"}))
        .await
        .assert_error(409, "topic_exists");
    assert_errors(
        &server.stats().await,
        &[
            ("too_many_topics", 1),
            ("topic_exists", 1),
            ("topic_not_found", 1),
        ],
    );

    let r = server.delete("/topics/b").await;
    assert_eq!(r.status, 200, "{}", r.text());
    server.create_topic("d").await;
    server
        .post_json("/topics", &json!({"name": "e"}))
        .await
        .assert_error(507, "too_many_topics");
}

#[tokio::test]
async fn max_topics_holds_for_auto_created_topics_over_websocket_and_rest() {
    let server = TestServer::with_args(&["--max-topics", "2", "--auto-create-topics"]).await;
    let mut c = server.ws().await;
    // Two topics come into being on first use, one by each route.
    let ack = c
        .request(json!({"action": "publish", "topic": "a", "message": 1, "request_id": "p-a"}))
        .await;
    assert_eq!(ack["action"], "published", "{ack}");
    let r = server
        .post_json("/topics/b/messages", &json!({"message": 1}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());

    // The third does not, by any route.
    let refused = c
        .request(json!({"action": "publish", "topic": "x", "message": 1, "request_id": "p-x"}))
        .await;
    assert_error_frame(&refused, "too_many_topics", Some("p-x"));
    let refused = c.request(subscribe("y", "s-y")).await;
    assert_error_frame(&refused, "too_many_topics", Some("s-y"));
    server
        .post_json("/topics/z/messages", &json!({"message": 1}))
        .await
        .assert_error(507, "too_many_topics");
    server
        .post_json("/topics", &json!({"name": "w"}))
        .await
        .assert_error(507, "too_many_topics");
    for name in ["x", "y", "z", "w"] {
        assert!(topic(&server, name).await.is_none(), "{name} was created");
    }
    let stats = server.stats().await;
    assert_eq!(stats["messages_published"], 2, "{stats}");
    assert_eq!(stats["subscriptions"], 0, "{stats}");
    // (and the four lookups that found no topic)
    assert_errors(&stats, &[("too_many_topics", 4), ("topic_not_found", 4)]);

    // Existing topics still work when the server is full.
    c.subscribe("a").await;
    // Deleting one frees a place for the next auto-created one.
    let r = server.delete("/topics/b").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let ack = c.request(subscribe("y", "s-y2")).await;
    assert_eq!(ack["action"], "subscribed", "{ack}");
    assert!(topic(&server, "y").await.is_some());
}

// --max-body-bytes

const BODY_LIMIT: usize = 300;

/// `{"name":"news"}` padded with whitespace to exactly `len` bytes.
fn padded(json: &str, len: usize) -> Vec<u8> {
    let mut body = json.as_bytes().to_vec();
    assert!(len >= body.len());
    body.resize(len, b' ');
    body
}

#[tokio::test]
async fn max_body_bytes_admits_a_body_of_exactly_the_limit_and_refuses_one_byte_more() {
    let server = TestServer::with_args(&[
        "--max-message-bytes",
        "100",
        "--max-body-bytes",
        &BODY_LIMIT.to_string(),
    ])
    .await;
    let json_type = [("Content-Type", "application/json")];
    let chunked = [
        ("Content-Type", "application/json"),
        ("Transfer-Encoding", "chunked"),
    ];
    for headers in [&json_type[..], &chunked[..]] {
        let over = padded(r#"{"name":"over"}"#, BODY_LIMIT + 1);
        server
            .request("POST", "/topics", headers, &over)
            .await
            .assert_error(413, "payload_too_large");
        assert!(topic(&server, "over").await.is_none(), "{headers:?}");
    }
    let r = server
        .request(
            "POST",
            "/topics",
            &json_type,
            &padded(r#"{"name":"t"}"#, BODY_LIMIT),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = server
        .request(
            "POST",
            "/topics/t/messages",
            &chunked,
            &padded(r#"{"message":"at the limit"}"#, BODY_LIMIT),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    for headers in [&json_type[..], &chunked[..]] {
        server
            .request(
                "POST",
                "/topics/t/messages",
                headers,
                &padded(r#"{"message":"over"}"#, BODY_LIMIT + 1),
            )
            .await
            .assert_error(413, "payload_too_large");
    }
    assert_eq!(
        last_seq(&server, "t").await,
        1,
        "nothing over the limit published"
    );
    let stats = server.stats().await;
    assert_eq!(stats["messages_published"], 1, "{stats}");
    // (and the two lookups that found no topic "over")
    assert_errors(&stats, &[("payload_too_large", 4), ("topic_not_found", 2)]);
}

#[test]
fn max_body_bytes_must_hold_a_largest_message() {
    let too_small = config(&["--max-message-bytes", "100", "--max-body-bytes", "99"])
        .expect_err("a body limit below the message limit is refused");
    assert!(
        too_small.contains("--max-body-bytes") && too_small.contains("--max-message-bytes"),
        "{too_small}"
    );
    let exact = config(&["--max-message-bytes", "100", "--max-body-bytes", "100"])
        .expect("a body limit equal to the message limit is fine");
    assert_eq!(exact.limits().max_body_bytes, 100);
    let default = config(&["--max-message-bytes", "100"]).expect("default body limit");
    assert_eq!(default.limits().max_body_bytes, 100 + 4096);
}

// --max-request-id-bytes

#[tokio::test]
async fn max_request_id_bytes_echoes_the_limit_and_refuses_one_byte_more_unechoed() {
    let server = TestServer::with_args(&["--max-request-id-bytes", "8"]).await;
    server.create_topic("t").await;
    let mut c = server.ws().await;
    let publish =
        |id: &str| json!({"action": "publish", "topic": "t", "message": id, "request_id": id});
    // Bytes, not characters: 'é' is two.
    for id in ["12345678", "éééé"] {
        let ack = c.request(publish(id)).await;
        assert_eq!(ack["action"], "published", "{ack}");
        assert_eq!(ack["request_id"], id, "{ack}");
    }
    for id in ["123456789", "ééééx"] {
        let refused = c.request(publish(id)).await;
        assert_error_frame(&refused, "bad_request", None);
        let message = refused["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains("request_id"), "{refused}");
    }
    // Every action is held to it, and it is not echoed from an otherwise bad frame either.
    assert_error_frame(
        &c.request(json!({"action": "ping", "request_id": "123456789"}))
            .await,
        "bad_request",
        None,
    );
    assert_error_frame(
        &c.request(json!({"action": "subscribe", "topic": "t", "request_id": "123456789"}))
            .await,
        "bad_request",
        None,
    );
    assert_error_frame(
        &c.request(json!({"action": "dance", "request_id": "123456789"}))
            .await,
        "bad_request",
        None,
    );
    assert_error_frame(
        &c.request(json!({"action": "dance", "request_id": "12345678"}))
            .await,
        "bad_request",
        Some("12345678"),
    );

    assert_eq!(
        last_seq(&server, "t").await,
        2,
        "refused publishes published nothing"
    );
    let stats = server.stats().await;
    assert_eq!(stats["messages_published"], 2, "{stats}");
    assert_eq!(
        stats["subscriptions"], 0,
        "the refused subscribe did nothing"
    );
    assert_only_errors(&stats, "bad_request", 6);
}

// --max-json-depth

/// `1` wrapped in `levels` arrays: `[[1]]` for 2.
fn nested(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

#[tokio::test]
async fn max_json_depth_admits_the_limit_and_refuses_one_level_more() {
    const DEPTH: usize = 5;
    let server = TestServer::with_args(&["--max-json-depth", &DEPTH.to_string()]).await;
    server.create_topic("t").await;
    let mut sub = server.ws().await;
    sub.subscribe("t").await;
    let mut c = server.ws().await;

    // The envelope is one level, so the message may nest DEPTH - 1.
    let at_limit = nested(DEPTH - 1);
    let frame =
        format!(r#"{{"action":"publish","topic":"t","message":{at_limit},"request_id":"ok"}}"#);
    c.send_text(&frame).await;
    let ack = c.recv().await;
    assert_eq!(ack["action"], "published", "{ack}");
    let delivered = sub.recv().await;
    assert_eq!(
        delivered["message"],
        serde_json::from_str::<Value>(&at_limit).expect("JSON")
    );
    // Brackets inside strings are not nesting.
    c.send_text(
        r#"{"action":"publish","topic":"t","message":{"s":"[[[[[[[[[["},"request_id":"str"}"#,
    )
    .await;
    assert_eq!(c.recv().await["action"], "published");
    assert_eq!(sub.recv().await["message"], json!({"s": "[[[[[[[[[["}));

    let too_deep = format!(
        r#"{{"action":"publish","topic":"t","message":{},"request_id":"deep"}}"#,
        nested(DEPTH)
    );
    c.send_text(&too_deep).await;
    let refused = c.recv().await;
    // Refused before parsing: the request_id is not read, so not echoed.
    assert_error_frame(&refused, "bad_request", None);
    assert!(
        refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("deeper than") && m.contains(&DEPTH.to_string())),
        "{refused}"
    );
    sub.assert_silent(std::time::Duration::from_millis(200))
        .await;
    assert_eq!(last_seq(&server, "t").await, 2);

    // The same over REST.
    let body = |levels: usize| format!(r#"{{"message":{}}}"#, nested(levels)).into_bytes();
    let json_type = [("Content-Type", "application/json")];
    let r = server
        .request("POST", "/topics/t/messages", &json_type, &body(DEPTH - 1))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let refused = server
        .request("POST", "/topics/t/messages", &json_type, &body(DEPTH))
        .await;
    refused.assert_error(400, "bad_request");
    assert!(
        refused.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("deeper than")),
        "{}",
        refused.text()
    );
    assert_eq!(last_seq(&server, "t").await, 3);
    let stats = server.stats().await;
    assert_eq!(stats["messages_published"], 3, "{stats}");
    assert_only_errors(&stats, "bad_request", 2);
}

#[tokio::test]
async fn max_json_depth_two_leaves_one_level_for_the_message() {
    let server = TestServer::with_args(&["--max-json-depth", "2"]).await;
    server.create_topic("t").await;
    let mut c = server.ws().await;
    assert_eq!(c.publish("t", json!([1])).await, 1);
    assert_eq!(c.publish("t", json!({"a": 1})).await, 2);
    let refused = c
        .request(json!({"action": "publish", "topic": "t", "message": [[1]]}))
        .await;
    assert_error_frame(&refused, "bad_request", None);
    assert_eq!(last_seq(&server, "t").await, 2);
}

#[test]
fn max_json_depth_accepts_2_to_128_only() {
    for ok in ["2", "128"] {
        let config = config(&["--max-json-depth", ok]).expect(ok);
        assert_eq!(config.limits().max_json_depth.to_string(), ok);
    }
    for bad in ["1", "129", "0"] {
        let error = config(&["--max-json-depth", bad]).expect_err(bad);
        assert!(error.contains("--max-json-depth"), "{bad}: {error}");
    }
}

// --history-bytes-per-topic and --history-bytes-total

#[tokio::test]
async fn history_stays_within_its_byte_budgets_under_a_flood() {
    // The total and its figure are the memory engine's (Redis has its own maxmemory).
    let server = TestServer::with_args(&[
        "--engine",
        "memory",
        "--max-message-bytes",
        "1000",
        "--history-bytes-per-topic",
        "5200",
        "--history-bytes-total",
        "12000",
    ])
    .await;
    // Each message's frame is about 1090 bytes and counts for about 1220: four fit in a
    // topic's 5200, nine or so in the 12000 of all topics.
    let message = json!({"message": "x".repeat(998)});
    let topics = ["a", "b", "c", "d"];
    for name in topics {
        server.create_topic(name).await;
        for _ in 0..8 {
            let r = server
                .post_json(&format!("/topics/{name}/messages"), &message)
                .await;
            assert_eq!(r.status, 201, "history is a cache: publishing never fails");
        }
    }
    let stats = server.stats().await;
    let held = stats["history_bytes"]
        .as_u64()
        .expect("a history_bytes figure");
    assert!((9000..=12000).contains(&held), "{stats}");
    for name in topics {
        let page = server.get(&format!("/topics/{name}/messages")).await.json();
        let seqs: Vec<u64> = page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .filter_map(|m| m["seq"].as_u64())
            .collect();
        // Every topic keeps at least its share (12000 / 4, two messages), newest last.
        assert!(seqs.len() >= 2, "{name}: {seqs:?}");
        let newest: Vec<u64> = (9 - seqs.len() as u64..=8).collect();
        assert_eq!(seqs, newest, "{name}: consecutive, ending at the last seq");
    }
    let mut c = server.ws().await;
    let ack = c
        .request(json!({"action": "subscribe", "topic": "a", "since_seq": 1}))
        .await;
    assert_eq!(ack["recovered"], false, "seq 2 is no longer held: {ack}");
    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains(&format!("\npubsub_history_bytes {held}\n")),
        "{metrics}"
    );
}

#[test]
fn history_bytes_per_topic_must_hold_a_largest_message_and_fit_in_the_total() {
    let small = config(&["--history-bytes-per-topic", "69631"]).expect_err("too small");
    assert!(small.contains("--history-bytes-per-topic"), "{small}");
    config(&["--history-bytes-per-topic", "69632"]).expect("65536 + 4096 fits");
    let over = config(&["--history-bytes-total", "4000000"]).expect_err("below per topic");
    assert!(over.contains("--history-bytes-total"), "{over}");
}

// --publish-rate and --publish-burst

fn publish_frame(topic: &str, n: u64) -> String {
    json!({"action": "publish", "topic": topic, "message": n, "request_id": format!("p{n}")})
        .to_string()
}

#[tokio::test]
async fn publish_rate_allows_the_burst_then_rate_limits_and_publishes_nothing() {
    let server = TestServer::with_args(&["--publish-rate", "2", "--publish-burst", "3"]).await;
    server.create_topic("t").await;
    let mut sub = server.ws().await;
    sub.subscribe("t").await;
    let mut c = server.ws().await;

    // Four publishes sent at once, so the bucket has no time to refill between them.
    for n in 1..=4 {
        c.send_text(&publish_frame("t", n)).await;
    }
    for n in 1..=3 {
        let ack = common::without_epoch(c.recv().await);
        assert_eq!(
            ack,
            json!({"action": "published", "topic": "t", "seq": n, "request_id": format!("p{n}")})
        );
    }
    let limited = c.recv().await;
    assert_error_frame(&limited, "rate_limited", Some("p4"));
    assert_eq!(
        last_seq(&server, "t").await,
        3,
        "the limited publish was not published"
    );
    for n in 1..=3 {
        assert_eq!(sub.recv().await["message"], n);
    }
    sub.assert_silent(std::time::Duration::from_millis(300))
        .await;
    let stats = server.stats().await;
    assert_eq!(stats["messages_published"], 3, "{stats}");
    assert_only_errors(&stats, "rate_limited", 1);

    // The budget is per connection: another one has its own burst.
    let mut other = server.ws().await;
    for n in 0..3 {
        other.publish("t", json!(format!("other {n}"))).await;
    }

    // A token comes back every 1/R seconds: wait for one, with room to spare.
    tokio::time::sleep(std::time::Duration::from_millis(500 + 400)).await;
    c.send_text(&publish_frame("t", 5)).await;
    let ack = c.recv().await;
    assert_eq!(ack["action"], "published", "{ack}");
    assert_eq!(ack["request_id"], "p5", "{ack}");
    assert_eq!(last_seq(&server, "t").await, 3 + 3 + 1);
}

#[tokio::test]
async fn rest_publishes_are_not_rate_limited_by_the_websocket_rate() {
    // --publish-rate is each WebSocket connection's; REST has --rest-publish-rate.
    let server = TestServer::with_args(&["--publish-rate", "1", "--publish-burst", "1"]).await;
    server.create_topic("t").await;
    for _ in 0..5 {
        let r = server
            .post_json("/topics/t/messages", &json!({"message": 1}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let stats = server.stats().await;
    assert_eq!(stats["messages_published"], 5, "{stats}");
    assert_eq!(errors(&stats, "rate_limited"), 0);
}

/// A REST publish sent from `source` (any 127.x.y.z reaches the server on Linux loopback).
async fn publish_from(server: &TestServer, source: [u8; 4]) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind((std::net::Ipv4Addr::from(source), 0).into())
        .expect("bind the source address");
    let mut stream = socket.connect(server.addr).await.expect("connect");
    let body = r#"{"message":1}"#;
    let request = format!(
        "POST /topics/t/messages HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    common::parse_response(&response)
}

#[tokio::test]
async fn rest_publish_rate_allows_each_address_its_burst_then_answers_429_with_retry_after() {
    let server =
        TestServer::with_args(&["--rest-publish-rate", "2", "--rest-publish-burst", "3"]).await;
    server.create_topic("t").await;
    for _ in 0..3 {
        assert_eq!(publish_from(&server, [127, 0, 0, 1]).await.status, 201);
    }
    let limited = publish_from(&server, [127, 0, 0, 1]).await;
    limited.assert_error(429, "rate_limited");
    assert_eq!(limited.header("retry-after"), Some("1"), "a token in 0.5 s");
    assert_eq!(last_seq(&server, "t").await, 3, "nothing was published");
    // Another address has a bucket of its own.
    for _ in 0..3 {
        assert_eq!(publish_from(&server, [127, 0, 0, 2]).await.status, 201);
    }
    assert_eq!(publish_from(&server, [127, 0, 0, 2]).await.status, 429);
    // WebSocket publishes are not REST's to limit.
    let mut c = server.ws().await;
    assert_eq!(c.publish("t", json!(1)).await, 7);
    // After the Retry-After, the first address publishes again.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(publish_from(&server, [127, 0, 0, 1]).await.status, 201);
    let stats = server.stats().await;
    assert_only_errors(&stats, "rate_limited", 2);
}

#[test]
fn publish_burst_needs_publish_rate_and_defaults_to_one_seconds_worth() {
    let error = config(&["--publish-burst", "3"]).expect_err("burst without rate");
    assert!(error.contains("--publish-rate"), "{error}");
    let rate = config(&["--publish-rate", "2.5"]).expect("rate alone");
    let rate = rate.limits().publish_rate.expect("a rate");
    assert_eq!((rate.per_second, rate.burst), (2.5, 3));
    let slow = config(&["--publish-rate", "0.5"]).expect("a slow rate");
    assert_eq!(slow.limits().publish_rate.map(|r| r.burst), Some(1));
    for bad in ["0", "-1", "nan", "inf"] {
        assert!(config(&["--publish-rate", bad]).is_err(), "{bad}");
    }
    let error = config(&["--rest-publish-burst", "3"]).expect_err("burst without rate");
    assert!(error.contains("--rest-publish-rate"), "{error}");
    let rest = config(&["--rest-publish-rate", "0.5"]).expect("a slow REST rate");
    assert_eq!(rest.limits().rest_publish_rate.map(|r| r.burst), Some(1));
    assert!(
        rest.limits().publish_rate.is_none(),
        "the WebSocket rate is its own"
    );
}
