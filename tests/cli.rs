//! The client commands of the `pubsub` binary (`sub`, `pub`, `topics`, `history`) against a
//! real server: output in both forms, exit codes, stdin, the environment, errors. Reconnects are
//! in `client_reconnect.rs`.

mod common;

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use common::TestServer;
use common::cli::{self, Sub};
use common::tools::Run;

const RUN: Duration = Duration::from_secs(30);

fn stdout(o: &Run) -> String {
    o.stdout.clone()
}

fn stderr(o: &Run) -> String {
    o.stderr.clone()
}

fn code(o: &Run) -> Option<i32> {
    o.status.and_then(|s| s.code())
}

/// stdout as JSON lines.
fn json_lines(o: &Run) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Runs `pubsub ARGS --url URL` and asserts its exit code.
async fn ok(url: &str, args: &[&str], stdin: &str) -> Run {
    let mut all = args.to_vec();
    all.extend(["--url", url]);
    let out = cli::run(&all, stdin, RUN).await;
    assert!(out.success(), "pubsub {all:?}: {}", out.describe());
    out
}

async fn fails(url: &str, args: &[&str], expected: i32) -> Run {
    let mut all = args.to_vec();
    all.extend(["--url", url]);
    let out = cli::run(&all, "", RUN).await;
    assert_eq!(
        code(&out),
        Some(expected),
        "pubsub {all:?}: {}",
        out.describe()
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_pub_and_history() {
    let server = TestServer::start().await;
    let url = format!("http://{}", server.addr);
    let url = url.as_str();

    let created = ok(url, &["topics", "create", "news"], "").await;
    assert_eq!(
        json_lines(&created),
        [serde_json::json!({"name": "news", "subscriber_count": 0})]
    );
    let again = fails(url, &["topics", "create", "news"], 1).await;
    assert_eq!(
        stderr(&again).trim(),
        "error: topic_exists: topic 'news' already exists"
    );
    let text = ok(url, &["topics", "create", "sports", "--output", "text"], "").await;
    assert_eq!(stdout(&text), "created sports\n");

    let listed = ok(url, &["topics"], "").await;
    let names: Vec<Value> = json_lines(&listed)
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, ["news", "sports"]);
    let listed = ok(url, &["topics", "list", "--output", "text"], "").await;
    assert_eq!(
        stdout(&listed),
        "news  0 subscribers\nsports  0 subscribers\n"
    );

    let one = ok(url, &["pub", "news", r#"{"text": "Hello"}"#], "").await;
    assert_eq!(
        json_lines(&one),
        [serde_json::json!({"topic": "news", "seq": 1})]
    );
    // One message per line of stdin, in order; empty lines skipped, a bad line reported.
    let many = cli::run(
        &["pub", "news", "--url", url],
        "[1]\n\n  {\"n\": 2}  \nnot json\n\"three\"\n",
        RUN,
    )
    .await;
    assert_eq!(code(&many), Some(1), "{}", many.describe());
    assert_eq!(
        json_lines(&many),
        [
            serde_json::json!({"topic": "news", "seq": 2}),
            serde_json::json!({"topic": "news", "seq": 3}),
            serde_json::json!({"topic": "news", "seq": 4}),
        ]
    );
    assert!(
        stderr(&many).contains("line 4: not valid JSON"),
        "{}",
        stderr(&many)
    );
    assert!(stderr(&many).contains("1 of 5 lines were not published"));
    let text = ok(url, &["pub", "sports", "null", "--output", "text"], "").await;
    assert_eq!(stdout(&text), "published sports #1\n");

    let history = ok(url, &["history", "news"], "").await;
    let lines = json_lines(&history);
    let messages: Vec<String> = lines.iter().map(|l| l["message"].to_string()).collect();
    assert_eq!(
        messages,
        [r#"{"text":"Hello"}"#, "[1]", r#"{"n":2}"#, r#""three""#]
    );
    assert!(
        lines
            .iter()
            .all(|l| l["topic"] == "news" && l["published_at"].is_string())
    );
    let window = ok(
        url,
        &[
            "history", "news", "--since", "1", "--limit", "2", "--output", "text",
        ],
        "",
    )
    .await;
    let text = stdout(&window);
    let shown: Vec<&str> = text
        .lines()
        .map(|l| l.split_once("] ").map_or(l, |(_, rest)| rest))
        .collect();
    assert_eq!(shown, ["news #2 [1]", r#"news #3 {"n": 2}"#]);

    let details = ok(url, &["topics", "show", "news"], "").await;
    let details = &json_lines(&details)[0];
    assert_eq!(
        (&details["last_seq"], &details["messages_published"]),
        (&4.into(), &4.into())
    );
    assert!(details["epoch"].is_string());
    let shown = ok(url, &["topics", "show", "news", "--output", "text"], "").await;
    assert!(
        stdout(&shown).contains("last seq:            4"),
        "{}",
        stdout(&shown)
    );

    let deleted = ok(url, &["topics", "delete", "news"], "").await;
    assert_eq!(
        json_lines(&deleted),
        [serde_json::json!({"name": "news", "deleted": true})]
    );
    let missing = fails(url, &["history", "news"], 1).await;
    assert!(
        stderr(&missing).contains("topic_not_found"),
        "{}",
        stderr(&missing)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_lines_keep_their_order() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    let url = format!("http://{}", server.addr);
    let input: String = (1..=300).map(|n| format!("{{\"n\":{n}}}\n")).collect();
    let out = ok(&url, &["pub", "news"], &input).await;
    let seqs: Vec<u64> = json_lines(&out)
        .iter()
        .filter_map(|l| l["seq"].as_u64())
        .collect();
    assert_eq!(seqs, (1..=300).collect::<Vec<_>>());
    let history = server
        .get("/topics/news/messages?since_seq=200")
        .await
        .json();
    let ns: Vec<u64> = history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["message"]["n"].as_u64())
        .collect();
    assert_eq!(ns, (201..=300).collect::<Vec<_>>(), "message n has seq n");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sub_starts_where_asked_and_stops_after_count() {
    let server = TestServer::start().await;
    server.create_topic("news").await;
    let url = format!("http://{}", server.addr);
    let url = url.as_str();
    for n in 1..=5 {
        ok(url, &["pub", "news", &n.to_string()], "").await;
    }
    let last = ok(url, &["sub", "news", "--last", "2", "--count", "2"], "").await;
    let lines = json_lines(&last);
    assert_eq!(lines[0]["event"], "subscribed");
    assert_eq!(
        (&lines[0]["last_seq"], &lines[0]["replayed"]),
        (&5.into(), &2.into())
    );
    let epoch = lines[0]["epoch"].as_str().expect("epoch").to_owned();
    let seqs: Vec<Value> = lines[1..].iter().map(|l| l["seq"].clone()).collect();
    assert_eq!(seqs, [4, 5]);
    assert!(lines[1..].iter().all(|l| l["event"] == "message"));
    assert!(
        stderr(&last).contains("subscribed to news"),
        "{}",
        stderr(&last)
    );

    // Resume after seq 3 of this epoch: nothing missed.
    let resumed = ok(
        url,
        &[
            "sub", "news", "--since", "3", "--epoch", &epoch, "--count", "1",
        ],
        "",
    )
    .await;
    let lines = json_lines(&resumed);
    assert_eq!(lines[0]["recovered"], true);
    assert_eq!(lines[1]["seq"], 4);
    // With an epoch of another life: reported before the messages.
    let other = ok(
        url,
        &[
            "sub", "news", "--since", "3", "--epoch", "older", "--count", "5",
        ],
        "",
    )
    .await;
    let lines = json_lines(&other);
    let events: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
    assert_eq!(
        events,
        [
            "subscribed",
            "epoch_changed",
            "message",
            "message",
            "message",
            "message",
            "message"
        ]
    );
    assert_eq!(lines[1]["old_epoch"], "older");
    assert!(stderr(&other).contains("deleted and created again"));
    // Text output for people.
    let text = ok(
        url,
        &[
            "sub", "news", "--last", "1", "--count", "1", "--output", "text",
        ],
        "",
    )
    .await;
    let line = stdout(&text);
    assert!(
        line.starts_with('[') && line.ends_with("] news #5 5\n"),
        "{line:?}"
    );

    // Live: two topics in one command; SIGTERM ends it with exit code 0.
    server.create_topic("sports").await;
    let mut sub = Sub::start(&["news", "sports", "--url", url], 2).await;
    ok(url, &["pub", "sports", r#""goal""#], "").await;
    ok(url, &["pub", "news", r#""six""#], "").await;
    sub.wait_for("both messages", common::WAIT, |lines| {
        lines.iter().filter(|l| l["event"] == "message").count() == 2
    })
    .await;
    assert!(sub.stop().await.success());
    let got: Vec<(String, u64)> = sub
        .lines()
        .iter()
        .filter(|l| l["event"] == "message")
        .map(|l| {
            (
                l["topic"].as_str().unwrap_or("").to_owned(),
                l["seq"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(got, [("sports".to_owned(), 1), ("news".to_owned(), 6)]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_connection_errors() {
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let nobody = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    for args in [
        &["sub", "news"][..],
        &["pub", "news", "1"],
        &["topics"],
        &["history", "news"],
    ] {
        let out = fails(&nobody, args, 1).await;
        assert!(
            stderr(&out).starts_with("error: cannot connect"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = fails("ftp://example.com", &["topics"], 1).await;
    assert!(
        stderr(&out).contains("the scheme must be"),
        "{}",
        stderr(&out)
    );
    let out = fails(&nobody, &["pub", "news", "{oops"], 1).await;
    assert!(stderr(&out).contains("not valid JSON"), "{}", stderr(&out));
    let out = fails(&nobody, &["sub"], 2).await;
    assert!(stderr(&out).contains("<TOPICS>"), "{}", stderr(&out));
    let out = fails(&nobody, &["sub", "a", "--last", "1", "--since", "2"], 2).await;
    assert!(
        stderr(&out).contains("cannot be used with"),
        "{}",
        stderr(&out)
    );
    let out = fails(
        &nobody,
        &["sub", "a", "b", "--since", "2", "--epoch", "E"],
        2,
    )
    .await;
    assert!(
        stderr(&out).contains("one topic at a time"),
        "{}",
        stderr(&out)
    );
}

/// `PUBSUB_URL` and `PUBSUB_TOKEN` stand in for the flags; the token goes out as a bearer token
/// on REST calls (checked by an HTTP server of the test's own that records the request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_and_token_come_from_the_environment() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let recorder = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                break;
            }
            head.push(byte[0]);
        }
        let body = r#"{"topics":[{"name":"news","subscriber_count":2}]}"#;
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        String::from_utf8_lossy(&head).into_owned()
    });
    let url = format!("http://{addr}");
    let mut command = cli::pubsub(&["topics"]);
    command
        .env("PUBSUB_URL", &url)
        .env("PUBSUB_TOKEN", "s3cret");
    let out = common::tools::run(command, RUN).await;
    assert!(out.success(), "{}", out.describe());
    assert_eq!(
        json_lines(&out),
        [serde_json::json!({"name": "news", "subscriber_count": 2})]
    );
    let head = tokio::time::timeout(common::WAIT, recorder)
        .await
        .expect("request within the wait")
        .expect("recorder");
    assert!(head.starts_with("GET /topics HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\nauthorization: bearer s3cret\r\n"),
        "{head}"
    );
}

/// `pubsub` without a command is the server: `--help` still lists its flags, and names the
/// client commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_help_lists_its_flags_and_the_commands() {
    let out = cli::run(&["--help"], "", RUN).await;
    assert!(out.success());
    let help = stdout(&out);
    for flag in ["--port", "--history-size", "--slow-consumer", "PUBSUB_PORT"] {
        assert!(help.contains(flag), "{flag} in:\n{help}");
    }
    assert!(
        help.contains("Client commands: pubsub sub | pub | topics | history"),
        "{help}"
    );
    let out = cli::run(&["sub", "--help"], "", RUN).await;
    assert!(out.success());
    let help = stdout(&out);
    for flag in [
        "--last",
        "--since",
        "--epoch",
        "--count",
        "--url",
        "--token",
        "PUBSUB_URL",
        "PUBSUB_TOKEN",
    ] {
        assert!(help.contains(flag), "{flag} in:\n{help}");
    }
}
