//! Liveness over real sockets: WebSocket pings, clients closed for not answering them (and their
//! subscriptions freed), HTTP requests that stall in their headers or their body, and idle
//! HTTP/1 and HTTP/2 connections.
//!
//! Intervals are short here so the tests are quick, but every wait for something to happen is
//! bounded generously ([`common::WAIT`]) and nothing asserts that anything happened quickly.

mod common;

use std::time::Duration;

use common::h2::{self, H2c, Reading};
use common::{RawWs, TestServer, close_payload, opcode, read_response, read_until_closed};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const FAST_PINGS: [&str; 4] = ["--ping-interval", "0.3", "--ping-timeout", "0.5"];

fn subscribe(topic: &str) -> String {
    json!({"action": "subscribe", "topic": topic}).to_string()
}

#[tokio::test]
async fn a_client_that_keeps_reading_is_pinged_and_stays_connected() {
    let server = TestServer::with_args(&FAST_PINGS).await;
    server.create_topic("t").await;
    let mut reader = server.ws().await;
    reader.subscribe("t").await;

    // Several ping intervals and timeouts: tokio-tungstenite answers each ping with a pong
    // while it is being polled.
    let mut pings = 0;
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(frame) = tokio::time::timeout_at(until, reader.ws.next()).await {
        match frame {
            Some(Ok(Message::Ping(payload))) => {
                assert!(payload.is_empty(), "{payload:?}");
                pings += 1;
            }
            other => panic!("expected only pings, got {other:?}"),
        }
    }
    assert!(
        pings >= 2,
        "pings arrive every interval; got {pings} in 3 s"
    );

    // Still connected and subscribed, and nobody was counted dead.
    assert_eq!(
        reader
            .request(json!({"action": "ping", "request_id": "r"}))
            .await,
        json!({"action": "pong", "request_id": "r"})
    );
    let r = server
        .post_json("/topics/t/messages", &json!({"message": "still here"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(reader.recv().await["message"], "still here");
    let stats = server.stats().await;
    assert_eq!(stats["connections"], 1, "{stats}");
    assert_eq!(stats["subscriptions"], 1, "{stats}");
    assert_eq!(stats["dead_connections_closed"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_goes_out_ahead_of_the_frames_already_queued() {
    // docs/limits.md: the server sends its ping "ahead of anything queued". Under `--slow-consumer
    // drop` a live message that does not fit in the queue is dropped and counted, so a count
    // above zero shows the connection's queue is full: its writer is stuck on a batch the
    // client does not read, and more frames wait behind it. The ping that comes due then must
    // reach the client before those frames. (The queue counts the stuck batch too; with
    // messages of 4 KB in a queue of 512 KiB, that batch would have to hold over a hundred of
    // them, taken at once, for nothing to wait behind it.)
    const INTERVAL: Duration = Duration::from_secs(3);
    let server = TestServer::with_args(&[
        "--ping-interval",
        "3",
        "--ping-timeout",
        "60",
        "--slow-consumer",
        "drop",
        "--subscriber-queue-bytes",
        "524288",
    ])
    .await;
    server.create_topic("t").await;
    let opened = tokio::time::Instant::now();
    let mut slow = RawWs::connect_with_recv_buffer(server.addr, 4096).await;
    slow.send_text(&subscribe("t")).await;
    assert_eq!(slow.recv().await["action"], "subscribed");

    // Fill the kernel buffers and then the queue; `slow` reads nothing meanwhile.
    let mut publisher = server.ws().await;
    let pad = "x".repeat(4000);
    let mut published = 0u64;
    loop {
        published += 1;
        publisher
            .publish("t", json!({"n": published, "pad": pad}))
            .await;
        if published.is_multiple_of(32) && server.stats().await["messages_dropped"] != 0 {
            break;
        }
        assert!(published < 20_000, "the queue never filled");
    }
    let full_after = opened.elapsed();
    assert!(
        full_after < INTERVAL,
        "the queue filled only after {full_after:?}, not before the ping was due: nothing shown"
    );
    // The ping is due INTERVAL after the connection opened; leave it ample time to be queued.
    tokio::time::sleep_until(opened + INTERVAL + Duration::from_secs(2)).await;

    // Now read everything, up to the answer to a request sent now (queued behind it all).
    slow.send_text(&json!({"action": "ping", "request_id": "end"}).to_string())
        .await;
    let mut frames = Vec::new();
    loop {
        let frame = slow.next_frame().await.expect("the connection stays open");
        let end = frame.0 == opcode::TEXT
            && serde_json::from_slice::<Value>(&frame.1).expect("JSON")["action"] == "pong";
        frames.push(frame);
        if end {
            break;
        }
    }
    let kinds: Vec<String> = frames
        .iter()
        .map(|(op, payload)| match *op {
            opcode::PING => "ping".to_owned(),
            opcode::TEXT => serde_json::from_slice::<Value>(payload).expect("JSON")["action"]
                .as_str()
                .unwrap_or("?")
                .to_owned(),
            other => format!("opcode {other}"),
        })
        .collect();
    let ping = kinds
        .iter()
        .position(|k| k == "ping")
        .unwrap_or_else(|| panic!("no ping arrived: {kinds:?}"));
    let last_message = kinds
        .iter()
        .rposition(|k| k == "message")
        .expect("messages arrived");
    assert!(
        ping < last_message,
        "the ping came after every message queued before it (frame {ping} of {}, the last \
         message is frame {last_message})",
        kinds.len()
    );
    assert!(frames[ping].1.is_empty(), "the ping is empty");
}

#[tokio::test]
async fn any_frame_from_the_client_counts_as_an_answer_to_a_ping() {
    let server = TestServer::with_args(&FAST_PINGS).await;
    // A raw client never reads, so it never sees a ping nor answers one with a pong; it sends
    // an application ping often instead.
    let mut chatty = RawWs::connect(server.addr).await;
    let frame = json!({"action": "ping"}).to_string();
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < until {
        chatty.send_text(&frame).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = server.stats().await;
    assert_eq!(stats["connections"], 1, "{stats}");
    assert_eq!(stats["dead_connections_closed"], 0, "{stats}");
}

#[tokio::test]
async fn a_client_that_never_answers_is_closed_and_its_subscriptions_freed() {
    let server = TestServer::with_args(&FAST_PINGS).await;
    server.create_topic("t").await;
    server.create_topic("u").await;

    // One by hand: handshake, subscribe, then never read or send again.
    let mut silent = RawWs::connect(server.addr).await;
    silent.send_text(&subscribe("t")).await;
    let ack = silent.recv().await;
    assert_eq!(ack["action"], "subscribed", "{ack}");
    // One with a WebSocket library that is simply never polled again after subscribing.
    let mut unpolled = server.ws().await;
    unpolled.subscribe("t").await;
    unpolled.subscribe("u").await;
    // And one that is well, to show only the silent ones go.
    let mut well = server.ws().await;
    well.subscribe("u").await;
    let keep_reading = tokio::spawn(async move {
        // Answers pings until the test drops it; ends if the server closes it.
        while let Some(Ok(_)) = well.ws.next().await {}
    });

    let stats = server
        .wait_for_stats("both silent clients closed", |s| {
            s["dead_connections_closed"] == 2 && s["connections"] == 1
        })
        .await;
    assert_eq!(stats["subscriptions"], 1, "{stats}");
    assert_eq!(stats["topics"]["t"]["subscribers"], 0, "{stats}");
    assert_eq!(stats["topics"]["u"]["subscribers"], 1, "{stats}");
    assert!(
        !keep_reading.is_finished(),
        "the well client is still connected"
    );

    // The raw client was pinged, then closed with 1008 "ping timeout", then the TCP
    // connection ended.
    let frames = silent.frames_until_closed().await;
    let pings = frames.iter().filter(|(op, _)| *op == opcode::PING).count();
    assert!(pings >= 1, "{frames:?}");
    let (last_op, last_payload) = frames.last().expect("frames");
    assert_eq!(*last_op, opcode::CLOSE, "{frames:?}");
    assert_eq!(
        close_payload(last_payload),
        (1008, "ping timeout".to_owned())
    );
    assert!(
        frames
            .iter()
            .all(|(op, _)| *op == opcode::PING || *op == opcode::CLOSE),
        "{frames:?}"
    );

    // Publishing to their topics now reaches no one but the well client.
    for topic in ["t", "u"] {
        let r = server
            .post_json(&format!("/topics/{topic}/messages"), &json!({"message": 1}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let stats = server
        .wait_for_stats("one delivery", |s| s["messages_delivered"] == 1)
        .await;
    assert_eq!(stats["dead_connections_closed"], 2, "{stats}");
    assert_eq!(stats["slow_consumers_disconnected"], 0, "{stats}");
    keep_reading.abort();
}

#[tokio::test]
async fn ping_interval_zero_sends_no_pings_and_closes_no_one() {
    let server = TestServer::with_args(&["--ping-interval", "0", "--ping-timeout", "0.5"]).await;
    server.create_topic("t").await;
    let mut silent = RawWs::connect(server.addr).await;
    silent.send_text(&subscribe("t")).await;
    assert_eq!(silent.recv().await["action"], "subscribed");
    let mut reader = server.ws().await;

    // Several would-be timeouts: the library client sees no frame at all (a ping included).
    reader.assert_silent(Duration::from_secs(2)).await;

    let stats = server.stats().await;
    assert_eq!(stats["connections"], 2, "{stats}");
    assert_eq!(stats["subscriptions"], 1, "{stats}");
    assert_eq!(stats["dead_connections_closed"], 0, "{stats}");
    // The silent client got nothing either, and is still served.
    silent
        .send_text(&json!({"action": "ping"}).to_string())
        .await;
    let next = silent.next_frame().await.expect("a frame");
    assert_eq!(next.0, opcode::TEXT, "no ping came first: {next:?}");
    assert_eq!(
        serde_json::from_slice::<Value>(&next.1).expect("JSON"),
        json!({"action": "pong"})
    );
}

// --request-timeout

const FAST_TIMEOUT: [&str; 2] = ["--request-timeout", "0.5"];

#[tokio::test]
async fn stalled_request_headers_are_dropped() {
    // Dropped, as docs/configuration.md says of `--request-timeout`: the connection ends with no
    // answer at all (not a 408, not a 400), once the request timeout has passed and not before.
    let server = TestServer::with_args(&FAST_TIMEOUT).await;
    let addr = server.addr;
    let timeout = Duration::from_secs_f64(FAST_TIMEOUT[1].parse().unwrap());
    let partial_requests = [
        "GET /hea".to_owned(),
        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n"),
        format!("POST /topics HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n"),
        // A WebSocket handshake that stops short.
        format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        ),
    ];
    let mut streams = Vec::new();
    for partial in &partial_requests {
        let connected = tokio::time::Instant::now();
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(partial.as_bytes()).await.expect("send");
        streams.push((stream, connected));
    }
    // And a second request that stalls on a kept-alive connection: the timeout counts from the
    // first one's response.
    let mut kept_alive = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    kept_alive
        .write_all(request.as_bytes())
        .await
        .expect("send");
    assert_eq!(read_response(&mut kept_alive).await.status, 200);
    let answered = tokio::time::Instant::now();
    let second = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n");
    kept_alive.write_all(second.as_bytes()).await.expect("send");
    streams.push((kept_alive, answered));
    let mut partials: Vec<&str> = partial_requests.iter().map(String::as_str).collect();
    partials.push(&second);

    // Read all at once, so each drop is timed when it happens.
    let ends =
        futures_util::future::join_all(streams.into_iter().map(|(mut stream, since)| async move {
            let got = read_until_closed(&mut stream).await;
            (got, since.elapsed())
        }))
        .await;
    for ((got, waited), partial) in ends.into_iter().zip(partials) {
        assert!(
            got.is_empty(),
            "{partial:?} was answered {:?} instead of dropped",
            String::from_utf8_lossy(&got)
        );
        assert!(
            waited >= timeout,
            "{partial:?} was dropped after {waited:?}, before the request timeout"
        );
    }
    // Nothing was half-done, and the server still serves complete requests.
    let stats = server.stats().await;
    assert_eq!(stats["connections"], 0, "{stats}");
    assert_eq!(stats["topics"], json!({}), "{stats}");
    assert_eq!(server.get("/health").await.status, 200);
}

#[tokio::test]
async fn idle_connections_are_dropped() {
    let server = TestServer::with_args(&FAST_TIMEOUT).await;
    let addr = server.addr;
    // Nothing at all; the start of an HTTP/2 preface; and a keep-alive connection after its
    // first request was answered.
    let mut silent = TcpStream::connect(addr).await.expect("connect");
    let mut preface = TcpStream::connect(addr).await.expect("connect");
    preface
        .write_all(b"PRI * HTTP/2.0\r\n")
        .await
        .expect("send");
    let mut kept_alive = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    kept_alive
        .write_all(request.as_bytes())
        .await
        .expect("send");
    assert_eq!(read_response(&mut kept_alive).await.status, 200);

    for stream in [&mut silent, &mut preface] {
        let got = read_until_closed(stream).await;
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    }
    let got = read_until_closed(&mut kept_alive).await;
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
}

#[tokio::test]
async fn a_websocket_outlives_the_request_timeout() {
    // The timeout is for requests: an established WebSocket is not one.
    let server = TestServer::with_args(&FAST_TIMEOUT).await;
    let mut c = server.ws().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        c.request(json!({"action": "ping"})).await,
        json!({"action": "pong"})
    );
    assert_eq!(server.stats().await["connections"], 1);
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_request_timeout() {
    let server = TestServer::with_args(&FAST_TIMEOUT).await;
    let addr = server.addr;
    let cases = [
        ("/topics", r#"{"name":"#),
        ("/topics/t/messages", r#"{"message":"#),
    ];
    server.create_topic("t").await;
    for (path, part) in cases {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: 100\r\n\r\n{part}"
        );
        stream.write_all(head.as_bytes()).await.expect("send");
        let r = read_response(&mut stream).await;
        r.assert_error(408, "request_timeout");
    }
    // Nothing was created or published.
    let stats = server.stats().await;
    assert_eq!(stats["errors"]["request_timeout"], 2, "{stats}");
    assert_eq!(stats["messages_published"], 0, "{stats}");
    let topics: Vec<&String> = stats["topics"]
        .as_object()
        .expect("topics")
        .keys()
        .collect();
    assert_eq!(topics, ["t"], "{stats}");

    // A complete request is served as ever.
    let r = server
        .post_json("/topics/t/messages", &json!({"message": "whole"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

// HTTP/2 connections are held to the same request timeout.

/// HTTP/2 clients that ask nothing, asked once and went quiet, or stopped in the middle of their
/// request headers are closed after the request timeout: a GOAWAY, then the end of the
/// connection. One that does not even answer the goodbye is dropped too.
#[tokio::test]
async fn idle_http2_connections_are_closed() {
    let server = TestServer::with_args(&FAST_TIMEOUT).await;
    let addr = server.addr;
    let started = tokio::time::Instant::now();
    let mut asked_once = H2c::connect(addr).await;
    assert_eq!(asked_once.get_json(1, "/health").await["status"], "healthy");
    let mut stalled = H2c::connect(addr).await;
    let block = stalled.get_block("/health");
    // A header block that never ends: no END_HEADERS, and no CONTINUATION follows.
    stalled
        .send_frame(h2::HEADERS, h2::END_STREAM, 1, &block[..4])
        .await;
    let mut silent = H2c::connect(addr).await;
    let mut clients = vec![asked_once, stalled];
    for _ in 0..5 {
        clients.push(H2c::connect(addr).await);
    }

    for client in &mut clients {
        let frames = client.frames_until_closed(Reading::Answering).await;
        assert!(
            frames.iter().any(|f| f.kind == h2::GOAWAY),
            "a GOAWAY before the end: {frames:?}"
        );
    }
    let answering = started.elapsed();
    silent.frames_until_closed(Reading::Silent).await;
    eprintln!(
        "with a {FAST_TIMEOUT:?} request timeout: all answering clients closed within \
         {answering:?}, the silent one within {:?}",
        started.elapsed()
    );
    assert_eq!(server.get("/health").await.status, 200);
}

/// A connection that keeps asking is never idle: back-to-back requests over twice the request
/// timeout are all answered on the one connection.
#[tokio::test]
async fn a_busy_http2_connection_outlives_the_request_timeout() {
    let server = TestServer::with_args(&["--request-timeout", "1"]).await;
    let mut c = H2c::connect(server.addr).await;
    let until = tokio::time::Instant::now() + Duration::from_millis(2500);
    let mut stream = 1;
    while tokio::time::Instant::now() < until {
        assert_eq!(c.get_json(stream, "/health").await["status"], "healthy");
        stream += 2;
    }
    eprintln!("{} requests on one connection", stream / 2);
}

/// An HTTP/2 connection is pinged like a WebSocket, and dropped when the peer stops answering:
/// long before the (default, 30 s) request timeout.
#[tokio::test]
async fn an_http2_peer_that_stops_answering_pings_is_dropped() {
    let server = TestServer::with_args(&FAST_PINGS).await;
    let mut c = H2c::connect(server.addr).await;
    assert_eq!(c.get_json(1, "/health").await["status"], "healthy");
    let frames = c.frames_until_closed(Reading::Silent).await;
    assert!(
        frames.iter().any(|f| f.kind == h2::PING),
        "pinged before being dropped: {frames:?}"
    );
}
