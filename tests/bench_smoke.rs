//! pubsub-bench against a real server in this process: every scenario in a tiny configuration,
//! `--compare`, and the error paths. Checks the harness's counts, never its timings.

mod common;

use std::process::{Command, Output};

use serde_json::Value;

use common::TestServer;

/// Runs pubsub-bench with `args` on a blocking thread (the server runs on this runtime).
async fn bench(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_pubsub-bench"))
            // Short bounds: a hang here is a bug, and the smoke test must end by itself.
            .args(["--timeout", "60", "--drain-timeout", "10", "--pause", "0"])
            .args(&args)
            .output()
            .expect("run pubsub-bench")
    })
    .await
    .expect("join")
}

fn args(server: &TestServer, rest: &[&str]) -> Vec<String> {
    let pid = std::process::id().to_string();
    let mut v: Vec<String> = ["--addr", &server.addr.to_string(), "--server-pid", &pid]
        .iter()
        .map(|s| s.to_string())
        .collect();
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

/// The JSON line of each run, after checking the command succeeded.
fn runs(out: &Output) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pubsub-bench failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .filter(|v| v.get("run").is_some())
        .collect()
}

fn one_run(out: &Output) -> Value {
    let runs = runs(out);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = runs.into_iter().next().unwrap();
    assert_eq!(run["ok"], true, "{run}");
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_every_message_to_every_subscriber() {
    let server = TestServer::start().await;
    let out = bench(args(
        &server,
        &["fanout", "-s", "3", "-m", "300", "-b", "100"],
    ))
    .await;
    let run = one_run(&out);
    assert_eq!(run["scenario"], "fanout");
    assert_eq!(run["deliveries"], 900);
    assert_eq!(run["expected"], 900);
    assert_eq!(run["fraction_delivered"], 1.0);
    assert_eq!(run["publishes_acked"], 300);
    assert_eq!(run["publish_errors"], 0);
    for key in [
        "p50_us",
        "p99_us",
        "p999_us",
        "max_us",
        "server_us_per_delivery",
        "harness_load",
    ] {
        assert!(run[key].is_number(), "{key} in {run}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_publishes_for_the_given_time() {
    let server = TestServer::start().await;
    let out = bench(args(&server, &["rate", "-s", "3", "-r", "200", "-d", "1"])).await;
    let run = one_run(&out);
    assert_eq!(run["deliveries"], 600);
    assert_eq!(run["fraction_delivered"], 1.0);
    assert!(run["kept_up"].is_boolean(), "{run}");
    assert!(run["p99_us"].is_number(), "{run}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_spreads_messages_over_every_topic() {
    let server = TestServer::start().await;
    let out = bench(args(&server, &["topics", "-t", "7", "-m", "200"])).await;
    let run = one_run(&out);
    assert_eq!(run["deliveries"], 200);
    assert_eq!(run["expected"], 200);
    assert_eq!(run["fraction_delivered"], 1.0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conns_reaches_every_connection() {
    let server = TestServer::start().await;
    let out = bench(args(
        &server,
        &["conns", "-c", "50", "-t", "5", "--settle", "0.1"],
    ))
    .await;
    let run = one_run(&out);
    assert_eq!(run["connected"], 50);
    assert_eq!(run["reached"], 50);
    assert_eq!(run["fraction_reached"], 1.0);
    assert!(run["server_rss_per_conn_kib"].is_number(), "{run}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_alternates_and_prints_ratios() {
    let (a, b) = (TestServer::start().await, TestServer::start().await);
    let mut rest = vec![
        "--compare".to_owned(),
        b.addr.to_string(),
        "--runs".into(),
        "2".into(),
    ];
    rest.extend(["fanout", "-s", "2", "-m", "100"].map(String::from));
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let out = bench(args(&a, &rest)).await;
    let servers: Vec<String> = runs(&out)
        .iter()
        .map(|r| r["server"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(servers, ["A", "B", "A", "B"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let compare: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("compare").is_some())
        .expect("a compare line");
    assert_eq!(compare["compare"], "deliveries_per_s");
    assert_eq!(compare["ratios"].as_array().map(Vec::len), Some(2));
    assert!(compare["median_ratio"].is_number(), "{compare}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_create_relies_on_the_server_creating_topics() {
    let server = TestServer::with_args(&["--auto-create-topics"]).await;
    let out = bench(args(
        &server,
        &["--no-create", "fanout", "-s", "2", "-m", "50"],
    ))
    .await;
    assert_eq!(one_run(&out)["deliveries"], 100);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subscribe_is_a_clear_error() {
    // Without REST creation our broker refuses to subscribe to a topic that does not exist.
    let server = TestServer::start().await;
    let out = bench(args(
        &server,
        &["--no-create", "fanout", "-s", "2", "-m", "50"],
    ))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("topic_not_found"), "{stderr}");
    server.shutdown().await;
}

#[tokio::test]
async fn only_loopback_addresses_are_accepted() {
    let out = bench(
        ["--addr", "10.1.2.3:8000", "fanout"]
            .map(String::from)
            .to_vec(),
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refusing non-loopback address 10.1.2.3:8000"),
        "{stderr}"
    );
    let out = bench(
        [
            "--addr",
            "127.0.0.1:8000",
            "--compare",
            "192.168.0.1:8000",
            "fanout",
        ]
        .map(String::from)
        .to_vec(),
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing non-loopback"));
}

#[tokio::test]
async fn a_bad_flag_is_a_usage_error() {
    let out = bench(["fanout", "--subscribers", "0"].map(String::from).to_vec()).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--subscribers"), "{stderr}");
    assert!(out.stdout.is_empty());
}
