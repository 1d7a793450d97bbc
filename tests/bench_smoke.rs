//! pubsub-bench against a real server in this process: every scenario in a tiny configuration,
//! `--compare` and its order, several addresses, `--cpu`, `--parse full`, `--min-seconds`,
//! `--redis-pid`, the `tables` generator, and the error paths. Checks the harness's counts,
//! never its timings.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

use common::TestServer;
use common::bench::{bench, compare_line, json_lines, one_run, run_lines, runs, strings};

/// `--addr` and `--server-pid` for a server in this process, then `rest`. `--min-seconds 0`
/// unless `rest` sets it: most tests check exact counts.
fn args(server: &TestServer, rest: &[&str]) -> Vec<String> {
    let pid = std::process::id().to_string();
    let mut v = strings(&["--addr", &server.addr.to_string(), "--server-pid", &pid]);
    if !rest.contains(&"--min-seconds") {
        v.extend(strings(&["--min-seconds", "0"]));
    }
    v.extend(strings(rest));
    v
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
    assert_eq!(run["headline"], "deliveries_per_s");
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
    assert!(run.get("redis_us_per_publish").is_none(), "{run}");
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
async fn rate_runs_at_least_min_seconds_at_the_same_rate() {
    // 1 s asked, 2 s at least: twice the messages at 50/s.
    let server = TestServer::start().await;
    let out = bench(args(
        &server,
        &[
            "--min-seconds",
            "2",
            "rate",
            "-s",
            "2",
            "-r",
            "50",
            "-d",
            "1",
        ],
    ))
    .await;
    let run = one_run(&out);
    assert_eq!(run["publish_seconds"], 2.0);
    assert_eq!(run["publishes_acked"], 100);
    assert_eq!(run["deliveries"], 200);
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
async fn min_seconds_sends_more_messages_and_every_one_is_counted() {
    // One message asked for, three seconds at least: the publisher goes on past the first
    // message (one round trip on loopback takes far less than three seconds), and however many
    // it sent, every subscriber must get each of them.
    let server = TestServer::start().await;
    let out = bench(args(
        &server,
        &["--min-seconds", "3", "topics", "-t", "3", "-m", "1"],
    ))
    .await;
    let run = one_run(&out);
    let acked = run["publishes_acked"].as_u64().unwrap();
    assert!(acked > 1, "{run}");
    assert_eq!(run["deliveries"].as_u64(), Some(acked), "{run}");
    assert_eq!(run["expected"].as_u64(), Some(acked), "{run}");
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
    assert_eq!(run["headline"], "server_rss_per_conn_kib");
    assert!(run["server_rss_per_conn_kib"].is_number(), "{run}");
    assert!(run["server_us_per_delivery"].is_number(), "{run}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_alternates_a_b_b_a_and_prints_ratios() {
    let (a, b) = (TestServer::start().await, TestServer::start().await);
    let pid = std::process::id().to_string();
    let b_addr = b.addr.to_string();
    let rest = [
        "--compare",
        &b_addr,
        "--compare-pid",
        &pid,
        "--runs",
        "3",
        "fanout",
        "-s",
        "2",
        "-m",
        "100",
    ];
    let out = bench(args(&a, &rest)).await;
    let order: Vec<(String, u64, u64)> = runs(&out)
        .iter()
        .map(|r| {
            (
                r["server"].as_str().unwrap_or_default().to_owned(),
                r["run"].as_u64().unwrap_or_default(),
                r["position"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    let expected: Vec<(String, u64, u64)> = [
        ("A", 1, 1),
        ("B", 1, 2),
        ("B", 2, 1),
        ("A", 2, 2),
        ("A", 3, 1),
        ("B", 3, 2),
    ]
    .iter()
    .map(|(s, r, p)| (s.to_string(), *r, *p))
    .collect();
    assert_eq!(order, expected);
    let headline = compare_line(&out, "deliveries_per_s");
    assert_eq!(headline["ratios"].as_array().map(Vec::len), Some(3));
    assert!(headline["median_ratio"].is_number(), "{headline}");
    assert_eq!(headline["dropped_pairs"], 0);
    // Both servers have a PID: server CPU per delivery is compared too.
    let cpu = compare_line(&out, "server_us_per_delivery");
    assert_eq!(cpu["ratios"].as_array().map(Vec::len), Some(3));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_abab_and_first_run_choose_who_goes_first() {
    let (a, b) = (TestServer::start().await, TestServer::start().await);
    let b_addr = b.addr.to_string();
    let servers = |out: &std::process::Output| -> Vec<String> {
        runs(out)
            .iter()
            .map(|r| r["server"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let tiny = ["fanout", "-s", "1", "-m", "20"];
    let mut rest = vec!["--compare", &b_addr, "--order", "abab", "--runs", "2"];
    rest.extend(tiny);
    let out = bench(args(&a, &rest)).await;
    assert_eq!(servers(&out), ["A", "B", "A", "B"]);
    // One pair per invocation, as scripts/bench-all.sh runs conns: run 2 starts with B.
    let mut rest = vec!["--compare", &b_addr, "--first-run", "2"];
    rest.extend(tiny);
    let out = bench(args(&a, &rest)).await;
    assert_eq!(servers(&out), ["B", "A"]);
    assert_eq!(runs(&out)[0]["run"], 2);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_are_left_out_of_the_medians_and_the_ratios() {
    // Without REST creation A (no auto-create) refuses every subscribe; B creates topics on
    // subscribe. A's runs fail, B's succeed, the series goes on to the end.
    let a = TestServer::start().await;
    let b = TestServer::with_args(&["--auto-create-topics"]).await;
    let b_addr = b.addr.to_string();
    let out = bench(args(
        &a,
        &[
            "--no-create",
            "--compare",
            &b_addr,
            "--runs",
            "2",
            "fanout",
            "-s",
            "2",
            "-m",
            "30",
        ],
    ))
    .await;
    assert_eq!(out.status.code(), Some(1), "some runs failed, not all");
    let lines = run_lines(&out);
    assert_eq!(lines.len(), 4, "{lines:?}");
    for line in &lines {
        let a_run = line["server"] == "A";
        assert_eq!(line["ok"], !a_run, "{line}");
        if a_run {
            assert!(
                line["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("topic_not_found")),
                "{line}"
            );
        }
    }
    let summary = |server: &str| -> Value {
        json_lines(&out)
            .into_iter()
            .find(|v| v["summary"] == "fanout" && v["server"] == server)
            .expect("a summary line")
    };
    assert_eq!(summary("A")["failed_runs"], 2);
    assert_eq!(summary("A")["medians"], serde_json::json!({}));
    assert_eq!(summary("B")["failed_runs"], 0);
    assert_eq!(summary("B")["medians"]["deliveries"], 60.0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2 of 2 runs FAILED and are left out of the medians"));
    let ratio = compare_line(&out, "deliveries_per_s");
    assert_eq!(ratio["dropped_pairs"], 2);
    assert_eq!(ratio["median_ratio"], Value::Null);
    a.shutdown().await;
    b.shutdown().await;
}

/// A TCP proxy from a fresh port to `to`, counting the WebSocket connections (those whose first
/// byte is the `G` of `GET`) it forwards. Ends with the test's runtime.
async fn proxy(to: SocketAddr) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let websockets = Arc::new(AtomicU64::new(0));
    let counter = websockets.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                if inbound.peek(&mut first).await.is_ok() && first[0] == b'G' {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                if let Ok(mut outbound) = TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, websockets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_addresses_share_the_subscribers_and_the_first_gets_the_publisher() {
    // Two addresses of one broker (directly, and through a proxy), as two nodes of a group
    // would be: subscribers alternate between them, the publisher uses the first.
    let server = TestServer::start().await;
    let (via_proxy, websockets) = proxy(server.addr).await;
    let addrs = format!("{},{via_proxy}", server.addr);
    let out = bench(strings(&[
        "--addr",
        &addrs,
        "--min-seconds",
        "0",
        "fanout",
        "-s",
        "5",
        "-m",
        "40",
    ]))
    .await;
    let run = one_run(&out);
    assert_eq!(run["addr"], addrs.as_str());
    assert_eq!(run["deliveries"], 200);
    // Subscribers 1 and 3 (counting from 0) went through the proxy; the publisher did not.
    assert_eq!(websockets.load(Ordering::Relaxed), 2);
    // The same with the publisher on the proxy: it is first now.
    let addrs = format!("{via_proxy},{}", server.addr);
    let out = bench(strings(&[
        "--addr",
        &via_proxy.to_string(),
        "--addr",
        &server.addr.to_string(),
        "--min-seconds",
        "0",
        "fanout",
        "-s",
        "2",
        "-m",
        "40",
    ]))
    .await;
    let run = one_run(&out);
    assert_eq!(run["addr"], addrs.as_str());
    assert_eq!(run["deliveries"], 80);
    assert_eq!(websockets.load(Ordering::Relaxed), 2 + 1 + 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_finds_the_server_by_its_port_and_reports_cpu_per_delivery() {
    // No --server-pid: the process listening on the port is this test.
    let server = TestServer::start().await;
    let addr = server.addr.to_string();
    let out = bench(strings(&[
        "--addr",
        &addr,
        "--cpu",
        "--min-seconds",
        "0",
        "topics",
        "-t",
        "3",
        "-m",
        "60",
    ]))
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("pid {}", std::process::id())),
        "{stdout}"
    );
    let run = one_run(&out);
    assert!(run["server_us_per_delivery"].is_number(), "{run}");
    server.shutdown().await;

    // Nobody listens on a port that was just freed: a clear error, nothing run.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let out = bench(strings(&[
        "--addr",
        &format!("127.0.0.1:{port}"),
        "--cpu",
        "fanout",
    ]))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("no process found listening on port {port}")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_parsing_with_a_small_read_buffer_counts_the_same() {
    let server = TestServer::start().await;
    let out = bench(args(
        &server,
        &[
            "--parse",
            "full",
            "--read-buffer",
            "4096",
            "fanout",
            "-s",
            "3",
            "-m",
            "200",
            "-b",
            "300",
        ],
    ))
    .await;
    let run = one_run(&out);
    assert_eq!(run["deliveries"], 600);
    assert_eq!(run["fraction_delivered"], 1.0);
    let out = bench(args(&server, &["--parse", "full", "conns", "-c", "10"])).await;
    assert_eq!(one_run(&out)["reached"], 10);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pid_adds_redis_cpu_per_publish() {
    // This process stands in for Redis: the figure is what is checked, not its value.
    let server = TestServer::start().await;
    let pid = std::process::id().to_string();
    let out = bench(args(
        &server,
        &["--redis-pid", &pid, "fanout", "-s", "2", "-m", "100"],
    ))
    .await;
    let run = one_run(&out);
    assert!(run["redis_us_per_publish"].is_number(), "{run}");
    assert!(run["redis_cpu_s"].is_number(), "{run}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("redis pid {pid}")), "{stdout}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_regenerates_the_section_from_raw_runs() {
    // A real pair of runs, kept as scripts/bench-all.sh keeps them, turned into tables.
    let (a, b) = (TestServer::start().await, TestServer::start().await);
    let b_addr = b.addr.to_string();
    let out = bench(args(
        &a,
        &[
            "--name",
            "pubsub",
            "--compare",
            &b_addr,
            "--compare-name",
            "other",
            "--runs",
            "2",
            "fanout",
            "-s",
            "2",
            "-m",
            "50",
        ],
    ))
    .await;
    let lines = runs(&out);
    a.shutdown().await;
    b.shutdown().await;

    let dir = std::env::temp_dir().join(format!("bench-tables-{}", std::process::id()));
    let raw = dir.join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    let meta = serde_json::json!({"meta": {"row": "fanout", "runs": 3, "a": "pubsub",
        "b": "other", "command": "fanout -s 2 -m 50", "commit": "test", "date": "today"}});
    let mut jsonl = format!("{meta}\n");
    for line in &lines {
        jsonl.push_str(&format!("{line}\n"));
    }
    std::fs::write(raw.join("fanout.jsonl"), jsonl).unwrap();
    let doc = dir.join("BENCHMARKS.md");
    std::fs::write(
        &doc,
        "# B\n\n<!-- bench-tables:begin -->\nstale\n<!-- bench-tables:end -->\n\ntail\n",
    )
    .unwrap();
    let out = bench(strings(&[
        "tables",
        "--raw",
        raw.to_str().unwrap(),
        "--doc",
        doc.to_str().unwrap(),
    ]))
    .await;
    let text = std::fs::read_to_string(&doc).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{out:?}");
    assert!(!text.contains("stale"), "{text}");
    assert!(text.starts_with("# B\n\n<!-- bench-tables:begin"), "{text}");
    assert!(
        text.ends_with("<!-- bench-tables:end -->\n\ntail\n"),
        "{text}"
    );
    // Three runs were planned, two reported: one missing per server.
    assert!(
        text.contains(
            "| fanout | `fanout -s 2 -m 50` | today, test | pubsub 2/3, other 2/3 | pubsub: 1 missing; other: 1 missing |"
        ),
        "{text}"
    );
    assert!(text.contains("| **deliveries/s** |"), "{text}");
    assert!(text.contains("ratio pubsub/other"), "{text}");
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
    let out = bench(strings(&["--addr", "10.1.2.3:8000", "fanout"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("refusing non-loopback address 10.1.2.3:8000"),
        "{stderr}"
    );
    for list in [
        ["--addr", "127.0.0.1:8000", "--compare", "192.168.0.1:8000"],
        ["--addr", "127.0.0.1:8000,192.168.0.1:8000", "--name", "A"],
    ] {
        let mut args = strings(&list);
        args.push("fanout".into());
        let out = bench(args).await;
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("refusing non-loopback"));
    }
}

#[tokio::test]
async fn a_bad_flag_is_a_usage_error() {
    for (args, flag) in [
        (&["fanout", "--subscribers", "0"][..], "--subscribers"),
        (&["--parse", "some", "fanout"][..], "--parse"),
        (&["--min-seconds", "5000", "fanout"][..], "--min-seconds"),
        (&["--order", "ba", "fanout"][..], "--order"),
    ] {
        let out = bench(strings(args)).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(flag), "{stderr}");
        assert!(out.stdout.is_empty());
    }
}
