//! A Python client generated from openapi/openapi.json by openapi-python-client, used for real:
//! tests/clients/python_client_check.py drives every kind of REST call through its
//! `AuthenticatedClient` against a live server that requires tokens (and sees 401 without one,
//! 403 with too few rights), while this test watches one of its publishes arrive over WebSocket. The generator comes
//! from the machine's `python3`, or else from the test venv (see tests/common/tools.rs); where
//! neither can be had, the test is reported skipped, or fails with PUBSUB_REQUIRE_TOOLS=1.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::tools::{Python, missing_tool, python_with, run};
use common::{TestServer, auth};
use serde_json::json;

/// The modules the generator and the generated package need (httpx, attrs and dateutil come
/// with the generator or beside it).
const MODULES: [&str; 4] = ["openapi_python_client", "httpx", "attrs", "dateutil"];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Generates the client package `pubsub_client` into a fresh folder and returns that folder.
async fn generate_client(python: &Python) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pubsub-python-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let mut command = python.python();
    command
        .args(["-m", "openapi_python_client", "generate", "--path"])
        .arg(manifest_dir().join("openapi/openapi.json"))
        .args(["--meta", "none", "--output-path"])
        .arg(dir.join("pubsub_client"));
    let generated = run(command, Duration::from_secs(120)).await;
    assert!(generated.success(), "generate: {}", generated.describe());
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_python_client_drives_the_rest_api() {
    let python = match python_with(&MODULES) {
        Ok(python) => python,
        Err(reason) => return missing_tool(&reason),
    };
    let client_dir = generate_client(&python).await;
    let server = TestServer::with_args(&["--auth-hmac-secret", auth::SECRET]).await;
    let token = auth::hs256(&auth::all_rights());
    let reader = auth::hs256(&auth::claims("reader", &[], &["*"], false));
    let bearer = format!("Bearer {token}");
    let as_admin = [("Authorization", bearer.as_str())];
    let body = br#"{"name":"watched"}"#;
    let created = server
        .request(
            "POST",
            "/topics",
            &[as_admin[0], ("Content-Type", "application/json")],
            body,
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let mut subscriber =
        common::WsClient::connect_with_token(server.ws_addr(), Some(&reader), false)
            .await
            .expect("the reader's token is accepted");
    subscriber.subscribe("watched").await;

    let mut command = python.python();
    command
        .arg(manifest_dir().join("tests/clients/python_client_check.py"))
        .arg(format!("http://{}", server.addr))
        .arg("watched")
        .arg(&token)
        .arg(&reader)
        .env("PYTHONPATH", &client_dir);
    let checked = run(command, Duration::from_secs(120)).await;
    let _ = std::fs::remove_dir_all(&client_dir);
    assert!(checked.success(), "{}", checked.describe());
    let report = checked.json();

    // The script's own checks passed; these restate the essentials from the server's side.
    assert_eq!(
        report["without_token"],
        json!({"status": 401, "code": "unauthorized"})
    );
    assert_eq!(
        report["reader_lists"],
        json!({"status": 403, "code": "forbidden"})
    );
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
    let r = server
        .request("GET", "/topics/generated-client", &as_admin, b"")
        .await;
    r.assert_error(404, "topic_not_found");
    let stats = server.request("GET", "/stats", &as_admin, b"").await.json();
    assert_eq!(
        stats["topics"]["watched"]["messages_published"], 1,
        "{stats}"
    );
}
