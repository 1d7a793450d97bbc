//! The JavaScript client's unit tests (`tests/clients/js_client_unit.mjs`, with node's own test
//! runner and a fake WebSocket). Its proof against a real server through the proxy is in
//! `client_reconnect.rs`, beside the Rust client and `pubsub sub`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::tools;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_clients_unit_tests_pass() {
    if !tools::succeeds("node", &["--version"]) {
        return tools::missing_tool("node is not installed");
    }
    let mut node = Command::new("node");
    node.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--test", "tests/clients/js_client_unit.mjs"]);
    let run = tools::run(node, Duration::from_secs(60)).await;
    assert!(run.success(), "{}", run.describe());
    assert!(run.stdout.contains("# fail 0"), "{}", run.describe());
}
