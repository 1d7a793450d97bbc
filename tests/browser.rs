//! Pages in a real browser: node scripts in tests/browser drive Debian's Chromium with
//! playwright-core against the server. The npm packages are fetched (`npm ci` in tests/browser)
//! when missing; where node or Chromium is missing, each test is reported skipped with the reason
//! (tests/common/tools.rs), or fails with PUBSUB_REQUIRE_TOOLS=1.

mod common;

use std::collections::BTreeSet;

use common::TestServer;
use common::tools::{browser_missing, missing_tool, node};
use serde_json::{Value, json};
use utoipa::OpenApi;

use pubsub::http::docs::ApiDoc;

/// Every operation id in the OpenAPI document.
fn operation_ids() -> BTreeSet<String> {
    ApiDoc::openapi()
        .paths
        .paths
        .values()
        .flat_map(|item| {
            [&item.get, &item.put, &item.post, &item.delete, &item.patch]
                .into_iter()
                .flatten()
                .filter_map(|op| op.operation_id.clone())
        })
        .collect()
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_lists_every_operation_and_executes_requests() {
    if let Some(reason) = browser_missing() {
        return missing_tool(&reason);
    }
    let server = TestServer::start().await;
    let run = node("swagger_ui.mjs", &[&format!("http://{}", server.addr)]).await;
    assert!(run.success(), "{}", run.describe());
    let report = run.json();

    assert!(
        report["url"]
            .as_str()
            .is_some_and(|u| u.ends_with("/docs/")),
        "{report}"
    );
    assert_eq!(strings(&report["operations"]), operation_ids(), "{report}");
    assert!(
        strings(&report["landing_links"]).contains("/api-doc/asyncapi.json"),
        "the landing text links the AsyncAPI document: {report}"
    );

    // What Swagger UI showed is what the server did, seen from here too.
    assert_eq!(report["list_topics"]["status"], 200);
    assert_eq!(
        report["list_topics"]["body"],
        json!({"topics": [{"name": "listed-before", "subscriber_count": 0}]})
    );
    assert_eq!(report["create_topic"]["status"], 201);
    assert_eq!(
        report["create_topic"]["body"],
        json!({"name": "from-swagger-ui", "subscriber_count": 0})
    );
    let topic = server.get("/topics/from-swagger-ui").await;
    assert_eq!(topic.status, 200, "{}", topic.text());
    assert_eq!(report["create_again"]["status"], 409);
    assert_eq!(
        report["create_again"]["body"]["error"]["code"],
        "topic_exists"
    );
    let listed = server.get("/topics").await.json();
    assert_eq!(
        listed["topics"].as_array().map(Vec::len),
        Some(2),
        "exactly the two topics created: {listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_authorize_turns_401_into_201() {
    if let Some(reason) = browser_missing() {
        return missing_tool(&reason);
    }
    let secret = common::auth::SECRET;
    let server = TestServer::with_args(&["--auth-hmac-secret", secret]).await;
    let token = common::auth::hs256(&common::auth::all_rights());
    let run = node(
        "swagger_ui_auth.mjs",
        &[&format!("http://{}", server.addr), &token],
    )
    .await;
    assert!(run.success(), "{}", run.describe());
    let report = run.json();
    assert_eq!(report["without_token"]["status"], 401, "{report}");
    assert_eq!(report["with_token"]["status"], 201, "{report}");
    // Seen from here too: the topic exists, created with the token the browser was given.
    let auth = format!("Bearer {token}");
    let r = server
        .request(
            "GET",
            "/topics/authorized-in-swagger-ui",
            &[("Authorization", &auth)],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_uses_its_token_field_on_a_secured_server() {
    if let Some(reason) = browser_missing() {
        return missing_tool(&reason);
    }
    use common::auth::{SECRET, claims, hs256};
    let server = TestServer::with_args(&["--auth-hmac-secret", SECRET]).await;
    let token = hs256(&claims("console", &["console.*"], &["console.*"], true));
    let run = node(
        "console_auth.mjs",
        &[&format!("http://{}", server.addr), &token],
    )
    .await;
    assert!(run.success(), "{}", run.describe());
    let report = run.json();
    assert_eq!(report["without_token"], "disconnected", "{report}");
    assert!(
        report["received"]
            .as_str()
            .is_some_and(|r| r.contains(r#"{"secured":true}"#)),
        "{report}"
    );
    // Seen from here: the topic the page created holds the one message it published.
    let auth = format!("Bearer {token}");
    let topic = server
        .request(
            "GET",
            "/topics/console.secured",
            &[("Authorization", &auth)],
            b"",
        )
        .await
        .json();
    assert_eq!(topic["messages_published"], 1, "{topic}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_page_delivers_from_one_page_to_another() {
    if let Some(reason) = browser_missing() {
        return missing_tool(&reason);
    }
    let server = TestServer::start().await;
    let run = node("console.mjs", &[&format!("http://{}", server.addr)]).await;
    assert!(run.success(), "{}", run.describe());
    let report = run.json();

    assert_eq!(
        strings(&report["links"]),
        ["/docs/", "/api-doc/asyncapi.json", "/metrics"]
            .map(str::to_owned)
            .into(),
        "{report}"
    );
    assert!(
        report["received"]
            .as_str()
            .is_some_and(|r| r.contains(r#"{"text":"hello from page A","n":[1,2]}"#)),
        "{report}"
    );
    assert_eq!(report["b_messages"], 6);
    assert_eq!(report["a_messages"], 0);
    // The server saw it happen: one topic, six messages, each delivered once (to page B).
    let topic = server.get("/topics/console-demo").await.json();
    assert_eq!(topic["messages_published"], 6, "{topic}");
    let stats = server.stats().await;
    assert_eq!(stats["messages_delivered"], 6, "{stats}");
    // The chart's numbers are the server's: its counter, the two pages' connections, and rates
    // that add up to what was published while it sampled.
    let chart = report["chart"].as_array().expect("chart samples");
    let last = chart.last().expect("a sample");
    assert_eq!(last["published"], 6, "{report}");
    assert_eq!(
        last["connections"], 2,
        "two pages, two connections: {report}"
    );
    assert!(
        chart
            .iter()
            .all(|s| s["connections"] == 1 || s["connections"] == 2),
        "{report}"
    );
    // A rate is above 0 exactly where the counter moved since the sample before.
    for pair in chart.windows(2) {
        let moved = pair[1]["published"].as_u64() > pair[0]["published"].as_u64();
        let rate = pair[1]["rate"].as_f64().expect("a rate");
        assert_eq!(moved, rate > 0.0, "{pair:?}");
    }
    assert!(
        chart.iter().any(|s| s["rate"].as_f64() > Some(0.0)),
        "{report}"
    );
    assert!(
        report["chart_legend"]
            .as_str()
            .is_some_and(|l| l.ends_with("2 WebSocket connections")),
        "{report}"
    );
    assert_eq!(report["token_field"], "console-t0ken");
    server
        .get("/topics/no-such-topic")
        .await
        .assert_error(404, "topic_not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_page_shows_its_reconnects_and_the_gaps_history_did_not_cover() {
    if let Some(reason) = browser_missing() {
        return missing_tool(&reason);
    }
    let server = TestServer::with_args(&["--history-size", "3"]).await;
    let run = node(
        "console_reconnect.mjs",
        &[&format!("http://{}", server.addr)],
    )
    .await;
    assert!(run.success(), "{}", run.describe());
    let report = run.json();
    assert_eq!(report["while_away"], "reconnecting", "{report}");
    assert_eq!(report["reconnects_after_first"], "1", "{report}");
    assert_eq!(report["reconnects"], "2", "{report}");
    assert_eq!(report["gaps"], "1", "{report}");
    // What the page listed, oldest first: 1 and 2, the gap (3..9 gone from a history of 3),
    // 10..12, then 13 and 14 after an outage history covered: each seq once.
    let gap = "reconnect-demo: gap: 7 messages after seq 2 are no longer in history (cause: \
               disconnected); next is seq 10";
    assert_eq!(
        report["shown"],
        json!([1, 2, gap, 10, 11, 12, 13, 14]),
        "{report}"
    );
    let log: Vec<&str> = report["log"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for line in [
        "connection lost",
        "reconnected (connection 2)",
        "reconnected (connection 3)",
    ] {
        assert!(log.iter().any(|l| l.contains(line)), "{line:?} in {log:?}");
    }
    let topic = server.get("/topics/reconnect-demo").await.json();
    assert_eq!(topic["messages_published"], 14, "{topic}");
}
