//! The Rust client (`pubsub::client`) against a real server: each call, its errors, the bearer
//! token on the handshake, and the REST client. Reconnects are in `client_reconnect.rs`.

mod common;

use futures_util::StreamExt;
use serde_json::json;
use tokio::net::TcpListener;

use common::{TestServer, WAIT};
use pubsub::client::{Client, Error, Event, Options, Rest, Start};
use pubsub::protocol::ErrorCode;

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} within {WAIT:?}"))
}

/// The next event, which must be a message: (seq, message JSON text).
async fn next_message(sub: &mut pubsub::client::Subscription) -> (u64, String) {
    match within("an event", sub.next()).await {
        Some(Event::Message(m)) => (m.seq, m.message.get().to_owned()),
        other => panic!("expected a message, got {other:?}"),
    }
}

fn server_code(result: Result<impl std::fmt::Debug, Error>) -> ErrorCode {
    match result {
        Err(Error::Server(e)) => e.code,
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_publish_unsubscribe_and_ping() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    let url = format!("http://{}", server.addr);
    let client = within("connect", Client::connect(&url, Options::default()))
        .await
        .expect("connect");
    for n in 1..=3 {
        let seq = client
            .publish("news", &json!({ "n": n }))
            .await
            .expect("publish");
        assert_eq!(seq, n);
    }

    let mut last_two = client
        .subscribe("news", Start::Last(2))
        .await
        .expect("subscribe");
    let ack = last_two.subscribed().clone();
    assert_eq!((ack.last_seq, ack.replayed, ack.recovered), (3, 2, None));
    assert_eq!(
        next_message(&mut last_two).await,
        (2, r#"{"n":2}"#.to_owned())
    );
    assert_eq!(
        next_message(&mut last_two).await,
        (3, r#"{"n":3}"#.to_owned())
    );
    // Published as written, byte for byte.
    let seq = client
        .publish_json("news", r#"{ "spaced" : [1, 2] }"#)
        .await
        .expect("publish");
    assert_eq!(
        next_message(&mut last_two).await,
        (seq, r#"{ "spaced" : [1, 2] }"#.to_owned())
    );
    assert!(matches!(
        client.subscribe("news", Start::Now).await,
        Err(Error::AlreadySubscribed(_))
    ));

    // A second client resumes from a position, with the epoch.
    let other = Client::connect(&format!("ws://{}/ws", server.addr), Options::default())
        .await
        .expect("connect by ws:// URL");
    let after = Start::After {
        seq: 2,
        epoch: Some(ack.epoch.clone()),
    };
    let mut resumed = other.subscribe("news", after).await.expect("subscribe");
    assert_eq!(resumed.subscribed().recovered, Some(true));
    assert_eq!(next_message(&mut resumed).await.0, 3);
    assert_eq!(next_message(&mut resumed).await.0, 4);

    let rtt = client.ping().await.expect("ping");
    assert!(rtt < WAIT);

    client.unsubscribe("news").await.expect("unsubscribe");
    assert!(
        within("the stream to end", last_two.next()).await.is_none(),
        "unsubscribing ends the stream"
    );
    client.publish("news", &5).await.expect("publish");
    assert_eq!(next_message(&mut resumed).await.0, 5);
    server
        .wait_for_stats("one subscription left", |s| s["subscriptions"] == 1)
        .await;

    // Dropping a subscription unsubscribes it too; closing ends the connection.
    drop(resumed);
    server
        .wait_for_stats("no subscription left", |s| s["subscriptions"] == 0)
        .await;
    other.close().await;
    client.close().await;
    server
        .wait_for_stats("no connection left", |s| s["connections"] == 0)
        .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_come_back_as_errors() {
    let server = TestServer::with_args(&["--max-message-bytes", "16"]).await;
    server.create_topic("news").await;
    let client = Client::connect(&server.addr.to_string(), Options::default())
        .await
        .expect("connect");
    assert_eq!(
        server_code(client.subscribe("nope", Start::Now).await),
        ErrorCode::TopicNotFound
    );
    assert_eq!(
        server_code(client.subscribe("bad name", Start::Now).await),
        ErrorCode::InvalidTopic
    );
    assert_eq!(
        server_code(client.publish("news", &"x".repeat(100)).await),
        ErrorCode::MessageTooLarge
    );
    assert!(matches!(
        client.publish_json("news", "{not json").await,
        Err(Error::InvalidJson(_))
    ));
    // The connection carries on after errors.
    assert_eq!(client.publish("news", &1).await.expect("publish"), 1);

    // Nothing listening: the first connect fails at once instead of retrying.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    assert!(matches!(
        Client::connect(&format!("http://{addr}"), Options::default()).await,
        Err(Error::Connect(_))
    ));
    assert!(matches!(
        Client::connect("ftp://example.com", Options::default()).await,
        Err(Error::InvalidUrl(_))
    ));
    server.shutdown().await;
}

/// The token goes out as `Authorization: Bearer` on the WebSocket handshake (checked by a
/// WebSocket server of the test's own that records the header).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::result_large_err)] // the handshake callback's error type is tungstenite's
async fn the_token_is_sent_as_a_bearer_token_on_the_handshake() {
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let mut header = None;
        let ws = tokio_tungstenite::accept_hdr_async(stream, |req: &Request, resp: Response| {
            header = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok(resp)
        })
        .await
        .expect("handshake");
        let _ = tx.send(header);
        // Hold the connection until the client goes.
        let _ = ws.into_future().await;
    });
    let options = Options {
        token: Some("s3cret-token".to_owned()),
        ..Options::default()
    };
    let client = Client::connect(&format!("http://{addr}"), options)
        .await
        .expect("connect");
    let header = within("the handshake", rx).await.expect("header recorded");
    assert_eq!(header.as_deref(), Some("Bearer s3cret-token"));
    client.close().await;
    within("the test server to end", server)
        .await
        .expect("server task");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_client_manages_topics_and_reads_history() {
    let server = TestServer::start().await;
    let rest = Rest::new(&format!("http://{}", server.addr), Some("t".to_owned())).expect("url");
    let created = rest.create_topic("news").await.expect("create");
    assert_eq!(created.name, "news");
    assert_eq!(
        server_code(rest.create_topic("news").await),
        ErrorCode::TopicExists
    );
    assert_eq!(
        server_code(rest.create_topic("bad name").await),
        ErrorCode::InvalidTopic
    );
    let raw = serde_json::value::RawValue::from_string(r#"{"a": 1}"#.to_owned()).expect("raw");
    for seq in 1..=3 {
        assert_eq!(rest.publish("news", &raw).await.expect("publish").seq, seq);
    }
    let list = rest.list_topics().await.expect("list");
    assert_eq!(list.topics.len(), 1);
    let details = rest.topic("news").await.expect("details");
    assert_eq!((details.last_seq, details.messages_in_history), (3, 3));
    let history = rest
        .history("news", Some(1), Some(1))
        .await
        .expect("history");
    assert_eq!(history.last_seq, 3);
    assert_eq!(history.messages.len(), 1);
    assert_eq!(history.messages[0].seq, 2);
    assert_eq!(history.messages[0].message.get(), r#"{"a": 1}"#);
    assert_eq!(
        server_code(rest.history("nope", None, None).await),
        ErrorCode::TopicNotFound
    );
    assert!(rest.delete_topic("news").await.expect("delete").deleted);
    assert_eq!(
        server_code(rest.topic("news").await),
        ErrorCode::TopicNotFound
    );
    server.shutdown().await;
}

/// The server's WebSocket pings are answered: an idle client outlives several ping timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_answers_the_servers_pings() {
    let server = TestServer::with_args(&["--ping-interval", "0.2", "--ping-timeout", "0.3"]).await;
    server.create_topic("news").await;
    let client = Client::connect(&server.addr.to_string(), Options::default())
        .await
        .expect("connect");
    let mut news = client
        .subscribe("news", Start::Now)
        .await
        .expect("subscribe");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    client.publish("news", &1).await.expect("publish");
    assert_eq!(next_message(&mut news).await.0, 1);
    assert_eq!(client.status().borrow().connections, 1, "never reconnected");
    assert_eq!(server.stats().await["dead_connections_closed"], 0);
    client.close().await;
    server.shutdown().await;
}

/// An application that stops reading fills its subscription's buffer; the client drops what
/// does not fit and, once the application reads again, asks history for it: nothing is lost
/// while history holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_is_refilled_from_history() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    let options = Options {
        buffer: 8,
        ..Options::default()
    };
    let client = Client::connect(&server.addr.to_string(), options)
        .await
        .expect("connect");
    let mut news = client
        .subscribe("news", Start::Now)
        .await
        .expect("subscribe");
    for n in 1..=60 {
        client.publish("news", &n).await.expect("publish");
    }
    let mut seqs = Vec::new();
    while seqs.len() < 60 {
        seqs.push(next_message(&mut news).await.0);
    }
    assert_eq!(seqs, (1..=60).collect::<Vec<_>>());
    assert_eq!(client.status().borrow().connections, 1);
    client.close().await;
    server.shutdown().await;
}

/// A server that completes every handshake and closes at once is retried with growing waits,
/// not at the first backoff step again and again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_drops_every_connection_is_retried_with_growing_waits() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    let server = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if let Ok(ws) = tokio_tungstenite::accept_async(stream).await {
                counter.fetch_add(1, Ordering::Relaxed);
                drop(ws);
            }
        }
    });
    let options = Options {
        backoff: pubsub::client::Backoff {
            initial: std::time::Duration::from_millis(50),
            max: std::time::Duration::from_millis(400),
            multiplier: 2.0,
        },
        ..Options::default()
    };
    let client = Client::connect(&format!("http://{addr}"), options)
        .await
        .expect("connect");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let handshakes = accepted.load(Ordering::Relaxed);
    // Waits of 25-50, 50-100, 100-200, then 200-400 ms: at most 9 connections in 1.5 s
    // (without growth, 50 ms steps would make about 40).
    assert!(
        (3..=9).contains(&handshakes),
        "{handshakes} handshakes in 1.5 s"
    );
    client.close().await;
    server.abort();
}
