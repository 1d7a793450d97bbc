//! Clients following the token lifecycle against a real server that requires tokens: with a
//! token source they keep their subscriptions across many expiries of short-lived tokens (each
//! seq once), a refresh to fewer rights ends a subscription as revoked, and without a source
//! the expiry is reported and not retried. The Rust client, `pubsub sub --token-command`, and
//! the JavaScript client in Node (`tests/clients/js_token_lifecycle.mjs`).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::auth::{SECRET, claims, hs256, now};
use common::cli::Sub;
use common::{TestServer, tools};
use pubsub::client::{Client, Error, Event, Options, Rest, Start, Status, TokenProvider};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// A token for `sub` that may subscribe to `topics`, expiring in `ttl` seconds.
fn token(sub: &str, topics: &[&str], ttl: u64) -> String {
    let mut c = claims(sub, &[], topics, false);
    c["exp"] = json!(now() + ttl);
    hs256(&c)
}

fn admin() -> String {
    hs256(&claims("ops", &["*"], &["*"], true))
}

async fn secured_server() -> (TestServer, String) {
    let server = TestServer::with_args(&["--auth-hmac-secret", SECRET]).await;
    let url = format!("http://{}", server.addr);
    let rest = Rest::new(&url, Some(admin())).expect("rest");
    for name in ["news", "other"] {
        rest.create_topic(name).await.expect("create the topic");
    }
    (server, url)
}

/// Publishes to `news` ten times a second for `seconds`; returns the last seq.
async fn publish_for(url: &str, seconds: u64) -> u64 {
    let rest = Rest::new(url, Some(admin())).expect("rest");
    let mut last = 0;
    for n in 0..seconds * 10 {
        let message = RawValue::from_string(n.to_string()).expect("raw");
        last = rest.publish("news", &message).await.expect("publish").seq;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

/// Reads a subscription into a list of seqs (and other events) until it is aborted.
fn collect(
    mut sub: pubsub::client::Subscription,
) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let into = seen.clone();
    let task = tokio::spawn(async move {
        while let Some(event) = sub.recv().await {
            let line = match event {
                Event::Message(m) => m.seq.to_string(),
                other => format!("{other:?}"),
            };
            into.lock().await.push(line);
        }
    });
    (seen, task)
}

fn seq_lines(last: u64) -> Vec<String> {
    (1..=last).map(|n| n.to_string()).collect()
}

async fn wait_status(client: &Client, what: &str, check: impl Fn(&Status) -> bool) -> Status {
    let mut status = client.status();
    tokio::time::timeout(Duration::from_secs(10), status.wait_for(|s| check(s)))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "timed out waiting for {what}: {:?}",
                client.status().borrow()
            )
        })
        .expect("the client lives")
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_with_a_token_provider_keeps_its_subscriptions_across_expiries() {
    let (server, url) = secured_server().await;
    // Refreshing: a new 3-second token at each call, refreshed ahead of each exp.
    let calls = Arc::new(AtomicU64::new(0));
    let counted = calls.clone();
    let refreshing = Client::connect(
        &url,
        Options {
            token_provider: Some(TokenProvider::new(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async { Ok(token("alice", &["news"], 3)) }
            })),
            ..Options::default()
        },
    )
    .await
    .expect("connect with the provider's token");
    // Caching: the same token until it has expired, so the server closes with 4001 at each
    // exp and the client reconnects with the next one.
    let cache: Arc<std::sync::Mutex<Option<(u64, String)>>> = Default::default();
    let caching = Client::connect(
        &url,
        Options {
            token_provider: Some(TokenProvider::new(move || {
                let mut cached = cache.lock().expect("cache");
                let fresh = match &*cached {
                    Some((exp, t)) if *exp > now() => t.clone(),
                    _ => {
                        let t = token("carol", &["news"], 3);
                        *cached = Some((now() + 3, t.clone()));
                        t
                    }
                };
                async move { Ok(fresh) }
            })),
            ..Options::default()
        },
    )
    .await
    .expect("connect");
    let (a, a_task) = collect(
        refreshing
            .subscribe("news", Start::Now)
            .await
            .expect("subscribe"),
    );
    let (b, b_task) = collect(
        caching
            .subscribe("news", Start::Now)
            .await
            .expect("subscribe"),
    );
    let last = publish_for(&url, 8).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(*a.lock().await, seq_lines(last), "refreshing");
    assert_eq!(*b.lock().await, seq_lines(last), "caching");
    let a_status = refreshing.status().borrow().clone();
    assert_eq!(a_status.connections, 1, "{a_status:?}");
    assert!(calls.load(Ordering::SeqCst) >= 4, "{calls:?}");
    let b_status = caching.status().borrow().clone();
    assert!(b_status.connections >= 3, "{b_status:?}");
    assert!(!b_status.token_expired, "{b_status:?}");
    a_task.abort();
    b_task.abort();
    refreshing.close().await;
    caching.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_provider_the_expiry_is_an_event_and_nothing_is_retried_until_refresh() {
    let (server, url) = secured_server().await;
    match Client::connect(
        &url,
        Options {
            token: Some(token("dave", &["news"], 0)),
            ..Options::default()
        },
    )
    .await
    {
        Err(Error::TokenExpired) => {}
        other => panic!(
            "expected TokenExpired before connecting, got {:?}",
            other.err()
        ),
    }
    let failing = Options {
        token_provider: Some(TokenProvider::new(|| async {
            Err("identity provider down".to_owned())
        })),
        ..Options::default()
    };
    match Client::connect(&url, failing).await {
        Err(Error::Connect(why)) => assert!(
            why.contains("token provider failed: identity provider down"),
            "{why}"
        ),
        other => panic!("expected a failed connect, got {:?}", other.err()),
    }

    let client = Client::connect(
        &url,
        Options {
            token: Some(token("dave", &["news"], 2)),
            ..Options::default()
        },
    )
    .await
    .expect("connect");
    let mut news = client
        .subscribe("news", Start::Now)
        .await
        .expect("subscribe");
    let rest = Rest::new(&url, Some(admin())).expect("rest");
    let one = RawValue::from_string("1".to_owned()).expect("raw");
    rest.publish("news", &one).await.expect("publish");
    match tokio::time::timeout(Duration::from_secs(5), news.recv()).await {
        Ok(Some(Event::Message(m))) => assert_eq!(m.seq, 1),
        other => panic!("expected seq 1, got {other:?}"),
    }
    match tokio::time::timeout(Duration::from_secs(5), news.recv()).await {
        Ok(Some(Event::TokenExpired)) => {}
        other => panic!("expected TokenExpired, got {other:?}"),
    }
    let status = wait_status(&client, "token_expired", |s| s.token_expired).await;
    assert!(!status.connected, "{status:?}");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("4001")),
        "{status:?}"
    );
    // Published meanwhile; no reconnect is tried with the expired token.
    rest.publish("news", &RawValue::from_string("2".to_owned()).expect("raw"))
        .await
        .expect("publish");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = client.status().borrow().clone();
    assert_eq!(
        (status.connections, status.connected, status.token_expired),
        (1, false, true),
        "{status:?}"
    );
    // A new token: reconnected, and the subscription resumes after seq 1.
    let expires = client
        .refresh(&token("dave", &["news"], 60))
        .await
        .expect("refresh");
    assert!(expires >= now() + 50, "{expires}");
    let status = wait_status(&client, "reconnected", |s| s.connected).await;
    assert_eq!(
        (status.connections, status.token_expired),
        (2, false),
        "{status:?}"
    );
    match tokio::time::timeout(Duration::from_secs(5), news.recv()).await {
        Ok(Some(Event::Message(m))) => assert_eq!(m.seq, 2),
        other => panic!("expected seq 2, got {other:?}"),
    }
    client.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_sub_with_a_token_command_outlives_its_tokens() {
    let (server, url) = secured_server().await;
    let command = "\"$PUBSUB_BIN\" token --sub erin --subscribe news --ttl 3s";
    let mut sub = common::cli::pubsub(&[
        "sub",
        "news",
        "--url",
        &url,
        "--output",
        "json",
        "--token-command",
        command,
    ]);
    sub.env("PUBSUB_BIN", env!("CARGO_BIN_EXE_pubsub"))
        .env("PUBSUB_AUTH_HMAC_SECRET", SECRET);
    let mut sub = Sub::spawn(sub, 1).await;
    let last = publish_for(&url, 7).await;
    sub.wait_for("every seq", common::WAIT, |lines| {
        lines.iter().filter(|l| l["event"] == "message").count() as u64 >= last
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seqs: Vec<u64> = sub
        .lines()
        .iter()
        .filter(|l| l["event"] == "message")
        .map(|l| l["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>());
    sub.stop().await;

    // A command that fails is a clear error.
    let run = common::cli::run(
        &[
            "topics",
            "--url",
            &url,
            "--token-command",
            "echo no >&2; exit 3",
        ],
        "",
        Duration::from_secs(20),
    )
    .await;
    assert!(!run.success(), "{}", run.describe());
    assert!(
        run.stderr.contains("--token-command failed") && run.stderr.contains("no"),
        "{}",
        run.describe()
    );
    // And a working one serves a REST command.
    let run = common::cli::run(
        &[
            "topics",
            "--url",
            &url,
            "--output",
            "json",
            "--token-command",
            &format!(
                "'{}' token --sub ops --admin --auth-hmac-secret {SECRET}",
                env!("CARGO_BIN_EXE_pubsub")
            ),
        ],
        "",
        Duration::from_secs(20),
    )
    .await;
    assert!(run.success(), "{}", run.describe());
    assert!(run.stdout.contains("news"), "{}", run.describe());
    server.shutdown().await;
}

fn seqs(report: &Value) -> Vec<u64> {
    report["seqs"]
        .as_array()
        .unwrap_or_else(|| panic!("no seqs in {report}"))
        .iter()
        .map(|s| s.as_u64().expect("seq"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_client_follows_tokens_through_expiry_refresh_and_revocation() {
    let Some(flags) = tools::node_websocket_args() else {
        return tools::missing_tool(
            "node with a global WebSocket (Node.js 22, or 20 with --experimental-websocket) is not installed",
        );
    };
    let server = TestServer::with_args(&["--auth-hmac-secret", SECRET]).await;
    let url = format!("http://{}", server.addr);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/js_token_lifecycle.mjs");
    let mut node = Command::new("node");
    node.args(flags).arg(script).arg(&url).arg(SECRET);
    let run = tools::run(node, Duration::from_secs(60)).await;
    assert!(run.success(), "{}", run.describe());
    let report = run.json();
    let published = report["published"].as_u64().expect("published");
    assert!(published >= 40, "{report}");
    let all: Vec<u64> = (1..=published).collect();

    // Refreshed ahead of each exp: one connection, every seq once.
    let refreshing = &report["refreshing"];
    assert_eq!(seqs(refreshing), all, "{refreshing}");
    assert_eq!(refreshing["connections"], 1, "{refreshing}");
    assert!(refreshing["getToken"].as_u64() >= Some(4), "{refreshing}");
    assert_eq!(refreshing["other"], json!([]), "{refreshing}");

    // A token source that gives the same token until it expires: closed with 4001 at each
    // exp, reconnected with the next token, and still every seq once.
    let caching = &report["caching"];
    assert_eq!(seqs(caching), all, "{caching}");
    assert!(caching["connections"].as_u64() >= Some(3), "{caching}");
    assert_eq!(caching["other"], json!([]), "{caching}");

    // The refresh to a token without 'other' revoked it; 'news' went on.
    let revoke = &report["revoke"];
    assert_eq!(
        revoke["other"],
        json!([{"type": "revoked", "topic": "other"}]),
        "{revoke}"
    );
    assert_eq!(revoke["news"], json!(all), "{revoke}");

    // No token source: the expiry (2 s token) is reported, no reconnect is tried with it, and
    // refresh(token) brings the subscription back where it stopped.
    let plain = &report["plain"];
    let expired_at = plain["expiredAt"]
        .as_u64()
        .expect("the expiry was reported");
    assert!(expired_at <= 4000, "{plain}");
    assert_eq!(plain["connectionsAtExpiry"], 1, "{plain}");
    assert_eq!(plain["connectionsAtEnd"], 1, "{plain}");
    assert_eq!(plain["connectionsAfterRefresh"], 2, "{plain}");
    assert_eq!(seqs(plain), all, "{plain}");
    assert!(
        plain["lastErrors"][0]
            .as_str()
            .is_some_and(|e| e.contains("token_expired") && e.contains("4001")),
        "{plain}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_client_in_chromium_refreshes_and_sees_a_revocation() {
    if let Some(reason) = tools::browser_missing() {
        return tools::missing_tool(&reason);
    }
    let server = TestServer::with_args(&["--auth-hmac-secret", SECRET]).await;
    let run = tools::node(
        "js_token_chromium.mjs",
        &[&format!("http://{}", server.addr), SECRET],
    )
    .await;
    assert!(run.success(), "{}", run.describe());
    let report = run.json();
    let published = report["published"].as_u64().expect("published");
    assert!(published >= 40, "{report}");
    let seen: Vec<String> = report["seen"]
        .as_array()
        .expect("seen")
        .iter()
        .map(|s| s.as_str().expect("line").to_owned())
        .collect();
    let news: Vec<String> = seen
        .iter()
        .filter(|s| s.starts_with("news "))
        .cloned()
        .collect();
    let expected: Vec<String> = (1..=published).map(|n| format!("news {n}")).collect();
    assert_eq!(news, expected, "{report}");
    assert_eq!(
        seen.iter()
            .filter(|s| s.starts_with("other "))
            .collect::<Vec<_>>(),
        ["other revoked"],
        "{report}"
    );
    assert_eq!(report["status"]["connections"], 1, "{report}");
    assert!(report["getToken"].as_u64() >= Some(4), "{report}");
    server.shutdown().await;
}
