//! The AsyncAPI document of the WebSocket protocol: the committed copy matches the code, the
//! server serves it (and only to GET), and the AsyncAPI parser finds no error in it.

mod common;

use std::path::PathBuf;

use common::TestServer;
use common::tools::{missing_tool, node, node_missing};
use serde_json::Value;

use pubsub::http::docs::ASYNCAPI_PATH;
use pubsub::protocol::{asyncapi, asyncapi_json};

/// The command that rewrites the committed document from the code.
const REGENERATE: &str = "UPDATE_ASYNCAPI=1 cargo test --test asyncapi";

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi/asyncapi.json")
}

#[test]
fn committed_document_matches_the_code() {
    let generated = asyncapi_json();
    let path = committed_path();
    if std::env::var_os("UPDATE_ASYNCAPI").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write openapi/asyncapi.json");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/asyncapi.json differs from the document the code generates; regenerate it with: {REGENERATE}"
    );
}

#[test]
fn document_describes_the_ws_channel() {
    let document = asyncapi();
    assert_eq!(document["asyncapi"], "3.1.0");
    assert_eq!(document["channels"]["ws"]["address"], "/ws");
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    let operations = document["operations"].as_object().expect("operations");
    for name in ["subscribe", "unsubscribe", "publish", "ping", "deliver"] {
        assert!(operations.contains_key(name), "operation {name}");
    }
}

#[tokio::test]
async fn the_server_serves_the_generated_document() {
    let server = TestServer::start().await;
    assert_eq!(ASYNCAPI_PATH, "/api-doc/asyncapi.json");
    let r = server.get(ASYNCAPI_PATH).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json(), asyncapi());

    let r = server
        .request(
            "POST",
            ASYNCAPI_PATH,
            &[("Content-Type", "application/json")],
            b"{}",
        )
        .await;
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_asyncapi_parser_finds_no_error() {
    if let Some(reason) = node_missing(&["@asyncapi/parser", "ajv"]) {
        return missing_tool(&reason);
    }
    // Validate what the server serves, so the route is covered too.
    let server = TestServer::start().await;
    let url = format!("http://{}{ASYNCAPI_PATH}", server.addr);
    let run = node("validate_asyncapi.mjs", &[&url]).await;
    assert!(run.success(), "{}", run.describe());
    let report = run.json();
    assert_eq!(report["parsed"], true, "{report}");
    assert_eq!(report["version"], "3.1.0");
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["exampleErrors"], Value::Array(vec![]), "{report}");
    let messages = report["messages"].as_array().map_or(0, Vec::len);
    let documented = asyncapi()["components"]["messages"]
        .as_object()
        .map_or(0, |m| m.len());
    assert_eq!(
        messages, documented,
        "the parser read every message: {report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_validator_reports_a_broken_document() {
    // The validation above means something only if a broken document fails it.
    if let Some(reason) = node_missing(&["@asyncapi/parser", "ajv"]) {
        return missing_tool(&reason);
    }
    let mut document = asyncapi();
    document["operations"]["ping"]["reply"]["messages"][0]["$ref"] =
        Value::from("#/channels/ws/messages/no_such_message");
    document["components"]["messages"]["published"]["examples"][0]["payload"]["seq"] =
        Value::from("one");
    let dir = std::env::temp_dir().join(format!("pubsub-asyncapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let path = dir.join("broken.json");
    std::fs::write(&path, document.to_string()).expect("write broken document");
    let run = node("validate_asyncapi.mjs", &[&path.to_string_lossy()]).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !run.success(),
        "a broken document fails: {}",
        run.describe()
    );
    let report = run.json();
    assert!(
        report["errors"].as_u64().is_some_and(|n| n >= 1),
        "{report}"
    );
}
