//! Proof of the client's resume guarantee, with a TCP proxy between the clients and a real
//! server that cuts every connection, refuses new ones and listens again, or stalls them.
//!
//! The subscribers go through the proxy: the Rust client (`pubsub::client`), the command line
//! (`pubsub sub`, the real binary as a child process), the JavaScript client in Node
//! (`clients/js/dist`, run by `tests/clients/js_subscriber.mjs`) and in Chromium through
//! Playwright (the same build as the broker serves it, run by
//! `tests/browser/js_subscriber_chromium.mjs`); both print what `pubsub sub` prints. A publisher connects to the server directly. Whatever
//! the proxy does, each subscriber must show every seq exactly once, in order, while history
//! covers the time it was away, and report the gap (an event; a JSON line, and for `pubsub sub`
//! a line on stderr) when it does not.
//!
//! Outages are made deterministic where it matters: the proxy refuses and cuts, the test waits
//! until the server shows every subscriber gone, publishes, and only then lets them back.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::cli::Sub;
use common::proxy::Proxy;
use common::{TestServer, WAIT, tools};
use pubsub::client::{Backoff, Client, Event, GapCause, Options, Start, Subscription};

/// What a subscriber showed, from either client.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Message(u64),
    Gap { after: u64, next: u64 },
    EpochChanged,
    Deleted,
}

/// Options for the Rust client: quick reconnects, so the test stays short.
fn quick() -> Options {
    Options {
        backoff: Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(250),
            multiplier: 2.0,
        },
        ..Options::default()
    }
}

/// Collects a subscription's events as they come.
fn collect(mut sub: Subscription) -> Arc<Mutex<Vec<Seen>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    tokio::spawn(async move {
        while let Some(event) = sub.recv().await {
            let item = match event {
                Event::Message(m) => Seen::Message(m.seq),
                Event::Gap(g) => {
                    assert_eq!(g.cause, GapCause::Disconnected, "{g:?}");
                    Seen::Gap {
                        after: g.after_seq,
                        next: g.next_seq,
                    }
                }
                Event::EpochChanged { .. } => Seen::EpochChanged,
                Event::TopicDeleted => Seen::Deleted,
                Event::Revoked => panic!("no tokens here: nothing to revoke"),
                Event::Failed(e) => panic!("subscription failed: {e:?}"),
            };
            out.lock().expect("seen").push(item);
        }
    });
    seen
}

/// What `pubsub sub` printed for `topic`, as the same items.
fn cli_seen(sub: &Sub, topic: &str) -> Vec<Seen> {
    sub.lines()
        .iter()
        .filter(|l| l["topic"] == topic)
        .filter_map(|l| match l["event"].as_str() {
            Some("message") => l["seq"].as_u64().map(Seen::Message),
            Some("gap") => {
                assert_eq!(l["cause"], "disconnected", "{l}");
                let (after, next) = (l["after_seq"].as_u64()?, l["next_seq"].as_u64()?);
                assert_eq!(l["missed"].as_u64(), Some(next - after - 1), "{l}");
                Some(Seen::Gap { after, next })
            }
            Some("epoch_changed") => Some(Seen::EpochChanged),
            Some("topic_deleted") => Some(Seen::Deleted),
            _ => None,
        })
        .collect()
}

/// The subscribers that print JSON lines, by name: `pubsub sub`, and the JavaScript client in
/// Node and in Chromium where they can run (otherwise the test says it leaves one out, or fails
/// under `PUBSUB_REQUIRE_TOOLS=1`).
async fn line_subscribers(url: &str, topics: &[&str]) -> Vec<(&'static str, Sub)> {
    let mut args = topics.to_vec();
    args.extend(["--url", url]);
    let mut subs = vec![("pubsub sub", Sub::start(&args, topics.len()).await)];
    match tools::node_websocket_args() {
        Some(flags) => {
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/js_subscriber.mjs");
            let mut node = Command::new("node");
            node.args(flags).arg(script).arg(url).args(topics);
            subs.push((
                "the JavaScript client",
                Sub::spawn(node, topics.len()).await,
            ));
        }
        None => tools::missing_tool(
            "node with a global WebSocket (Node.js 22, or 20 with --experimental-websocket) is \
             not installed: the JavaScript client is left out",
        ),
    }
    match tools::browser_missing() {
        None => {
            let mut node = Command::new("node");
            node.current_dir(tools::browser_dir())
                .env("CHROMIUM", tools::chromium())
                .arg("js_subscriber_chromium.mjs")
                .arg(url)
                .args(topics);
            subs.push((
                "the JavaScript client in Chromium",
                Sub::spawn(node, topics.len()).await,
            ));
        }
        Some(reason) => tools::missing_tool(&format!(
            "{reason}: the JavaScript client in Chromium is left out"
        )),
    }
    subs
}

/// Waits until every line subscriber has printed a message with `seq` (of any topic).
async fn all_printed(subs: &[(&str, Sub)], seq: u64) {
    for (name, sub) in subs {
        sub.wait_for(&format!("seq {seq} from {name}"), WAIT, |lines| {
            lines
                .iter()
                .any(|l| l["event"] == "message" && l["seq"] == seq)
        })
        .await;
    }
}

/// The reconnects a line subscriber reported on stderr.
fn cli_reconnects(sub: &Sub) -> usize {
    sub.notices()
        .iter()
        .filter(|l| l.starts_with("reconnected"))
        .count()
}

fn messages(range: std::ops::RangeInclusive<u64>) -> Vec<Seen> {
    range.map(Seen::Message).collect()
}

async fn wait_until(what: &str, within: Duration, check: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until what a Rust subscriber has seen passes `check`; shows it if it never does.
async fn wait_seen(seen: &Mutex<Vec<Seen>>, what: &str, check: impl Fn(&[Seen]) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        {
            let seen = seen.lock().expect("seen");
            if check(&seen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the Rust client saw {seen:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until the server holds `n` subscriptions (the subscribers are all away, or all back).
async fn wait_subscriptions(server: &TestServer, n: u64) {
    server
        .wait_for_stats(&format!("{n} subscriptions"), |s| s["subscriptions"] == n)
        .await;
}

/// An outage both subscribers live through: refuse and cut, wait until both are gone, run
/// `meanwhile`, listen again, and wait until both have subscribed again.
async fn outage<F: std::future::Future<Output = ()>>(
    server: &TestServer,
    proxy: &Proxy,
    subscribers: u64,
    meanwhile: impl FnOnce() -> F,
) {
    proxy.refuse().await;
    proxy.cut();
    wait_subscriptions(server, 0).await;
    meanwhile().await;
    proxy.restore().await;
    wait_subscriptions(server, subscribers).await;
}

async fn publish_n(publisher: &Client, topic: &str, n: u64) -> u64 {
    let mut seq = 0;
    for i in 0..n {
        seq = publisher
            .publish(topic, &serde_json::json!({ "i": i }))
            .await
            .expect("publish");
    }
    seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seq_once_in_order_across_cuts_while_history_covers_them() {
    const MESSAGES: u64 = 1500;
    const ROUNDS: usize = 8;
    let started = Instant::now();
    let server = TestServer::with_args(&["--history-size", "5000"]).await;
    server.create_topic("news").await;
    let proxy = Proxy::start(server.addr).await;
    let via_proxy = format!("http://{}", proxy.addr);

    let client = Client::connect(&via_proxy, quick()).await.expect("connect");
    let rust = collect(
        client
            .subscribe("news", Start::Now)
            .await
            .expect("subscribe"),
    );
    let mut subs = line_subscribers(&via_proxy, &["news"]).await;
    let subscribers = 1 + subs.len() as u64;

    // The publisher, straight to the server, at a steady pace.
    let publisher = Client::connect(&server.addr.to_string(), Options::default())
        .await
        .expect("publisher");
    let last_published = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let publishing = {
        let (publisher, last) = (publisher.clone(), last_published.clone());
        tokio::spawn(async move {
            for i in 0..MESSAGES {
                let seq = publisher
                    .publish("news", &serde_json::json!({ "i": i }))
                    .await
                    .expect("publish");
                last.store(seq, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    // Cut while it publishes: every other round a plain cut (the clients reconnect at once),
    // the others an outage with messages published while every subscriber is away.
    let mut published_while_away = 0;
    for round in 0..ROUNDS {
        tokio::time::sleep(Duration::from_millis(150)).await;
        if round % 2 == 0 {
            let connections = client.status().borrow().connections;
            let reconnects: Vec<usize> = subs.iter().map(|(_, s)| cli_reconnects(s)).collect();
            proxy.cut();
            wait_until("every subscriber to reconnect", WAIT, || {
                client.status().borrow().connections > connections
                    && subs
                        .iter()
                        .zip(&reconnects)
                        .all(|((_, s), before)| cli_reconnects(s) > *before)
            })
            .await;
            wait_subscriptions(&server, subscribers).await;
        } else {
            let seq = || last_published.load(std::sync::atomic::Ordering::Relaxed);
            let mut before = 0;
            outage(&server, &proxy, subscribers, || async {
                before = seq();
                tokio::time::sleep(Duration::from_millis(200)).await;
            })
            .await;
            published_while_away += seq() - before;
        }
    }
    tokio::time::timeout(Duration::from_secs(60), publishing)
        .await
        .expect("publishing within a minute")
        .expect("publisher task");

    wait_seen(&rust, "the last message", |seen| {
        seen.last() == Some(&Seen::Message(MESSAGES))
    })
    .await;
    all_printed(&subs, MESSAGES).await;
    let status = client.status().borrow().clone();
    let expected = messages(1..=MESSAGES);
    assert_eq!(*rust.lock().expect("seen"), expected, "the Rust client");
    assert!(status.connections > ROUNDS as u64, "{status:?}");
    let mut reconnects = format!("the Rust client {}", status.connections - 1);
    for (name, sub) in &mut subs {
        assert!(sub.stop().await.success(), "{name}");
        assert_eq!(cli_seen(sub, "news"), expected, "{name}");
        let n = cli_reconnects(sub);
        assert!(n >= ROUNDS, "{name}: {:?}", sub.notices());
        reconnects.push_str(&format!(", {name} {n}"));
    }
    assert!(
        published_while_away > 0,
        "messages were published while every subscriber was away"
    );
    eprintln!(
        "history covered: {MESSAGES} messages, {ROUNDS} cuts ({} with refused reconnects); \
         {published_while_away} published while every subscriber was away; reconnects: \
         {reconnects}; proxy accepted {} connections; every seq once, in order, no gap, \
         for each of the {subscribers}; {:.1} s",
        ROUNDS / 2,
        proxy.accepted(),
        started.elapsed().as_secs_f64()
    );
    client.close().await;
    // Every subscriber is gone, and with it every connection through the proxy.
    wait_until("no connection left through the proxy", WAIT, || {
        proxy.open() == 0
    })
    .await;
    publisher.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_history_did_not_cover_is_reported_with_what_was_missed() {
    let started = Instant::now();
    let server = TestServer::with_args(&["--history-size", "5"]).await;
    server.create_topic("news").await;
    let proxy = Proxy::start(server.addr).await;
    let via_proxy = format!("http://{}", proxy.addr);
    let client = Client::connect(&via_proxy, quick()).await.expect("connect");
    let rust = collect(
        client
            .subscribe("news", Start::Now)
            .await
            .expect("subscribe"),
    );
    let mut subs = line_subscribers(&via_proxy, &["news"]).await;
    let subscribers = 1 + subs.len() as u64;
    let publisher = Client::connect(&server.addr.to_string(), Options::default())
        .await
        .expect("publisher");

    let all_at = |seq: u64| {
        let rust = rust.clone();
        let subs = &subs;
        async move {
            wait_seen(&rust, &format!("seq {seq}"), |seen| {
                seen.contains(&Seen::Message(seq))
            })
            .await;
            all_printed(subs, seq).await;
        }
    };

    publish_n(&publisher, "news", 10).await;
    all_at(10).await;
    // Away while 20 are published: history (5) holds 26..30 only.
    outage(&server, &proxy, subscribers, || async {
        publish_n(&publisher, "news", 20).await;
    })
    .await;
    publish_n(&publisher, "news", 3).await;
    all_at(33).await;
    // Away while 3 are published: history covers it, no gap.
    outage(&server, &proxy, subscribers, || async {
        publish_n(&publisher, "news", 3).await;
    })
    .await;
    publish_n(&publisher, "news", 2).await;
    all_at(38).await;
    // Away while 12 are published: 39..45 are lost.
    outage(&server, &proxy, subscribers, || async {
        publish_n(&publisher, "news", 12).await;
    })
    .await;
    publish_n(&publisher, "news", 2).await;
    all_at(52).await;

    let mut expected = messages(1..=10);
    expected.push(Seen::Gap {
        after: 10,
        next: 26,
    });
    expected.extend(messages(26..=38));
    expected.push(Seen::Gap {
        after: 38,
        next: 46,
    });
    expected.extend(messages(46..=52));
    assert_eq!(*rust.lock().expect("seen"), expected, "the Rust client");
    for (name, sub) in &mut subs {
        assert!(sub.stop().await.success(), "{name}");
        assert_eq!(cli_seen(sub, "news"), expected, "{name}");
    }
    let notices = subs[0].1.notices();
    for gap in [
        "news: gap: 15 messages after seq 10 are no longer in history (cause: disconnected); next is seq 26",
        "news: gap: 7 messages after seq 38 are no longer in history (cause: disconnected); next is seq 46",
    ] {
        assert!(notices.iter().any(|l| l == gap), "{gap:?} in {notices:?}");
    }
    let status = client.status().borrow().clone();
    assert_eq!(status.connections, 4, "three outages: {status:?}");
    eprintln!(
        "history short (5): 3 outages, 52 messages; each of the {subscribers} subscribers got \
         1..10, gap (15 missed), 26..38 (the 3-message outage covered), gap (7 missed), \
         46..52; the Rust client reconnected {} times; {:.1} s",
        status.connections - 1,
        started.elapsed().as_secs_f64()
    );
    client.close().await;
    publisher.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_found_by_ping_and_replaced() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    let proxy = Proxy::start(server.addr).await;
    let options = Options {
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(300),
        ..quick()
    };
    let client = Client::connect(&format!("http://{}", proxy.addr), options)
        .await
        .expect("connect");
    let rust = collect(
        client
            .subscribe("news", Start::Now)
            .await
            .expect("subscribe"),
    );
    let publisher = Client::connect(&server.addr.to_string(), Options::default())
        .await
        .expect("publisher");
    publish_n(&publisher, "news", 1).await;
    wait_seen(&rust, "seq 1", |seen| seen.contains(&Seen::Message(1))).await;

    // The connection stays open but carries nothing: no FIN, no reset, just silence.
    proxy.stall();
    let stalled = Instant::now();
    publish_n(&publisher, "news", 4).await;
    wait_seen(&rust, "seq 5 over a new connection", |seen| {
        seen.contains(&Seen::Message(5))
    })
    .await;
    let replaced_after = stalled.elapsed();
    let status = client.status().borrow().clone();
    assert_eq!(*rust.lock().expect("seen"), messages(1..=5));
    assert_eq!(status.connections, 2, "{status:?}");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("ping")),
        "{status:?}"
    );
    assert!(
        replaced_after < Duration::from_secs(5),
        "{replaced_after:?}"
    );
    eprintln!(
        "a stalled connection was given up and replaced after {:.2} s (ping after 0.2 s of \
         silence, 0.3 s to answer): {:?}",
        replaced_after.as_secs_f64(),
        status.last_error
    );
    client.close().await;
    publisher.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_recreated_or_deleted_while_away_is_reported() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    server.create_topic("gone").await;
    let proxy = Proxy::start(server.addr).await;
    let via_proxy = format!("http://{}", proxy.addr);
    let client = Client::connect(&via_proxy, quick()).await.expect("connect");
    let news = collect(
        client
            .subscribe("news", Start::Now)
            .await
            .expect("subscribe"),
    );
    let gone = collect(
        client
            .subscribe("gone", Start::Now)
            .await
            .expect("subscribe"),
    );
    let mut subs = line_subscribers(&via_proxy, &["news", "gone"]).await;
    let subscribers = 1 + subs.len() as u64;
    let publisher = Client::connect(&server.addr.to_string(), Options::default())
        .await
        .expect("publisher");
    publish_n(&publisher, "news", 3).await;
    publish_n(&publisher, "gone", 1).await;
    // Everything arrived before the outage (what is in flight when the topic is replaced is
    // lost with its old life).
    wait_seen(&news, "news seq 3", |seen| seen.len() == 3).await;
    wait_seen(&gone, "gone seq 1", |seen| seen.len() == 1).await;
    for (name, sub) in &subs {
        sub.wait_for(
            &format!("both topics' messages from {name}"),
            WAIT,
            |lines| lines.iter().filter(|l| l["event"] == "message").count() == 4,
        )
        .await;
    }

    // While both are away: news is deleted and created again (a new epoch, seq from 1), and
    // gone is deleted for good.
    outage(&server, &proxy, subscribers, || async {
        server.delete("/topics/news").await;
        server.delete("/topics/gone").await;
        server.create_topic("news").await;
        publish_n(&publisher, "news", 2).await;
    })
    .await;
    publish_n(&publisher, "news", 1).await;
    let mut expected_news = messages(1..=3);
    expected_news.push(Seen::EpochChanged);
    expected_news.extend(messages(1..=3));
    let expected_gone = vec![Seen::Message(1), Seen::Deleted];
    wait_seen(&news, "news in its new life", |seen| seen == expected_news).await;
    wait_seen(&gone, "gone deleted", |seen| seen == expected_gone).await;
    for (name, sub) in &subs {
        sub.wait_for(
            &format!("the new life's seq 3 from {name}"),
            WAIT,
            |lines| {
                lines
                    .iter()
                    .filter(|l| l["topic"] == "news" && l["seq"] == 3)
                    .count()
                    == 2
            },
        )
        .await;
    }

    // Deleted while connected: the last subscription ends, and `pubsub sub` with it.
    server.delete("/topics/news").await;
    expected_news.push(Seen::Deleted);
    wait_seen(&news, "news deleted", |seen| seen == expected_news).await;
    for (name, sub) in &mut subs {
        let status = sub.exit(WAIT).await;
        assert!(status.success(), "{name}: {status:?}");
        assert_eq!(cli_seen(sub, "news"), expected_news, "{name}");
        assert_eq!(cli_seen(sub, "gone"), expected_gone, "{name}");
        let epochs: Vec<Value> = sub
            .lines()
            .into_iter()
            .filter(|l| l["event"] == "epoch_changed")
            .collect();
        assert_eq!(epochs.len(), 1, "{name}");
        assert_ne!(epochs[0]["old_epoch"], epochs[0]["new_epoch"], "{name}");
    }
    client.close().await;
    publisher.close().await;
    server.shutdown().await;
}
