//! Clients following the token lifecycle against a real server that requires tokens: with a
//! token source they keep their subscriptions across many expiries of short-lived tokens (each
//! seq once), a refresh to fewer rights ends a subscription as revoked, and without a source
//! the expiry is reported and not retried. The JavaScript client runs in Node
//! (`tests/clients/js_token_lifecycle.mjs`).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::auth::SECRET;
use common::{TestServer, tools};
use serde_json::{Value, json};

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
