//! A Python client generated from openapi/openapi.json by openapi-python-client, used for real:
//! tests/clients/python_client_check.py drives every kind of REST call through it against a live
//! server, while this test watches one of its publishes arrive over WebSocket. Skips with a
//! printed reason when openapi-python-client is not installed, unless PUBSUB_REQUIRE_TOOLS=1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::TestServer;
use common::tools::{missing_tool, run, succeeds};
use serde_json::json;

/// The generator, run as a module of the same `python3` that then runs the generated client.
const GENERATOR: [&str; 2] = ["-m", "openapi_python_client"];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Why the generated client cannot be built and run here, if it cannot.
fn tools_missing() -> Option<String> {
    if !succeeds("python3", &[GENERATOR[0], GENERATOR[1], "--version"]) {
        return Some(
            "openapi-python-client is not installed (python3 -m pip install openapi-python-client)"
                .to_owned(),
        );
    }
    // The generated package imports these; they come with the generator.
    if !succeeds("python3", &["-c", "import httpx, attrs, dateutil"]) {
        return Some("python3 cannot import httpx, attrs and dateutil".to_owned());
    }
    None
}

/// Generates the client package `pubsub_client` into a fresh folder and returns that folder.
async fn generate_client() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pubsub-python-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let mut command = Command::new("python3");
    command
        .args(GENERATOR)
        .arg("generate")
        .arg("--path")
        .arg(manifest_dir().join("openapi/openapi.json"))
        .args(["--meta", "none", "--output-path"])
        .arg(dir.join("pubsub_client"));
    let generated = run(command, Duration::from_secs(120)).await;
    assert!(generated.success(), "generate: {}", generated.describe());
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_python_client_drives_the_rest_api() {
    if let Some(reason) = tools_missing() {
        return missing_tool(&reason);
    }
    let client_dir = generate_client().await;
    let server = TestServer::start().await;
    server.create_topic("watched").await;
    let mut subscriber = server.ws().await;
    subscriber.subscribe("watched").await;

    let mut command = Command::new("python3");
    command
        .arg(manifest_dir().join("tests/clients/python_client_check.py"))
        .arg(format!("http://{}", server.addr))
        .arg("watched")
        .env("PYTHONPATH", &client_dir);
    let checked = run(command, Duration::from_secs(120)).await;
    let _ = std::fs::remove_dir_all(&client_dir);
    assert!(checked.success(), "{}", checked.describe());
    let report = checked.json();

    // The script's own checks passed; these restate the essentials from the server's side.
    assert_eq!(
        report["create_again"],
        json!({"status": 409, "code": "topic_exists"})
    );
    assert_eq!(
        report["bad_name"],
        json!({"status": 400, "code": "invalid_topic"})
    );
    assert_eq!(
        report["after_delete"],
        json!({"status": 404, "code": "topic_not_found"})
    );
    assert_eq!(report["seqs"], json!([1, 2, 3]));
    let frame = subscriber.recv().await;
    assert_eq!(frame["action"], "message", "{frame}");
    assert_eq!(frame["message"], json!({"from": "python client"}));
    assert_eq!(frame["seq"], report["watched_seq"]);
    let r = server.get("/topics/generated-client").await;
    r.assert_error(404, "topic_not_found");
    let stats = server.stats().await;
    assert_eq!(
        stats["topics"]["watched"]["messages_published"], 1,
        "{stats}"
    );
}
