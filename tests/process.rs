//! The real binary as a child process: `--help`, flag validation, environment fallbacks, the
//! listening log line, and graceful shutdown on SIGTERM and SIGINT (Ctrl-C).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// How long a process may take to start, or to exit once it should.
const PROCESS_WAIT: Duration = Duration::from_secs(20);

/// `pubsub ARGS` with a clean environment for its configuration (see [`common::cli::pubsub`])
/// and `envs` added.
fn pubsub(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = common::cli::pubsub(args);
    cmd.envs(envs.iter().copied());
    cmd
}

/// A child process that is killed if the test ends (or fails) before it exits.
struct ChildGuard(Child);

impl ChildGuard {
    fn pid(&self) -> String {
        self.0.id().to_string()
    }

    /// Waits for the process to exit, polling, for at most `within`.
    async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "process {} still running after {within:?}",
                self.0.id()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Reads a pipe to its end on a thread, so the child never blocks on a full pipe.
fn read_to_end(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

/// Runs a command that should exit by itself, and returns its output. A command that keeps
/// running (a server that started when it should not have) is killed and fails the test.
async fn run_to_exit(mut cmd: Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pubsub");
    let mut child = ChildGuard(child);
    let stdout = read_to_end(child.0.stdout.take().expect("stdout"));
    let stderr = read_to_end(child.0.stderr.take().expect("stderr"));
    let status = child.wait_exit(PROCESS_WAIT).await;
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// A server running as a child process, with the address it logged.
struct Server {
    child: ChildGuard,
    addr: SocketAddr,
    /// Its log lines (stdout), read on a thread so the pipe never fills.
    log: mpsc::UnboundedReceiver<String>,
    /// The lines taken from `log` so far.
    seen: Vec<String>,
}

impl Server {
    /// Starts `pubsub ARGS` with `envs` and RUST_LOG=info, and waits for its
    /// "listening on http://ADDR" log line.
    async fn start(args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut envs = envs.to_vec();
        envs.push(("RUST_LOG", "info"));
        let child = pubsub(args, &envs)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn pubsub");
        let mut child = ChildGuard(child);
        let stdout = child.0.stdout.take().expect("stdout");
        let (tx, mut log) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let addr = tokio::time::timeout(PROCESS_WAIT, async {
            while let Some(line) = log.recv().await {
                let addr = listening_addr(&line);
                seen.push(line);
                if let Some(addr) = addr {
                    return addr;
                }
            }
            panic!("the server's output ended without a 'listening on' line");
        })
        .await
        .expect("a 'listening on' log line within the wait");
        Server {
            child,
            addr,
            log,
            seen,
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.pid())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for a log line containing `text`, and returns it.
    async fn wait_for_log(&mut self, text: &str) -> String {
        let found = tokio::time::timeout(PROCESS_WAIT, async {
            while let Some(line) = self.log.recv().await {
                self.seen.push(line.clone());
                if line.contains(text) {
                    return Some(line);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(line)) => line,
            _ => panic!("no log line containing {text:?} in {:#?}", self.seen),
        }
    }

    /// Every log line, once the process has exited (its output has ended).
    async fn whole_log(&mut self) -> &[String] {
        tokio::time::timeout(PROCESS_WAIT, async {
            while let Some(line) = self.log.recv().await {
                self.seen.push(line);
            }
        })
        .await
        .expect("the output ends once the process has exited");
        &self.seen
    }
}

/// The address in "... listening on http://127.0.0.1:PORT (...", if this is that line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on http://").nth(1)?;
    let addr = rest.split(|c: char| c.is_whitespace() || c == '/').next()?;
    Some(
        addr.parse()
            .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}")),
    )
}

#[tokio::test]
async fn help_documents_every_flag_its_environment_variable_and_rust_log() {
    let output = run_to_exit(pubsub(&["--help"], &[])).await;
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    let flags = [
        "host",
        "port",
        "history-size",
        "history-bytes-per-topic",
        "history-bytes-total",
        "max-message-bytes",
        "max-frame-bytes",
        "subscriber-queue-bytes",
        "slow-consumer",
        "auto-create-topics",
        "shutdown-timeout",
        "max-body-bytes",
        "max-request-id-bytes",
        "max-json-depth",
        "max-connections",
        "max-http-connections",
        "max-subscriptions-per-connection",
        "max-topics",
        "publish-rate",
        "publish-burst",
        "rest-publish-rate",
        "rest-publish-burst",
        "ping-interval",
        "ping-timeout",
        "request-timeout",
        "log-format",
    ];
    for flag in flags {
        assert!(help.contains(&format!("--{flag}")), "--{flag} in:\n{help}");
        let env = format!("PUBSUB_{}", flag.to_uppercase().replace('-', "_"));
        assert!(help.contains(&env), "{env} in:\n{help}");
    }
    for value in ["disconnect", "drop", "text", "json"] {
        assert!(help.contains(value), "{value} in:\n{help}");
    }
    assert!(help.contains("RUST_LOG"), "RUST_LOG in:\n{help}");
}

/// Asserts the command fails with exit code 2 (a usage error, as documented) and each of
/// `mentions` on stderr.
async fn assert_rejected(args: &[&str], envs: &[(&str, &str)], mentions: &[&str]) {
    let output = run_to_exit(pubsub(args, envs)).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "{args:?} {envs:?} exits with code 2; stderr: {stderr}"
    );
    for text in mentions {
        assert!(
            stderr.contains(text),
            "{args:?} {envs:?}: stderr mentions {text:?}: {stderr}"
        );
    }
}

#[tokio::test]
async fn invalid_or_inconsistent_flags_exit_with_an_error_before_serving() {
    // `--port 0` everywhere: a server that started by mistake would not collide with anything.
    assert_rejected(
        &["--port", "0", "--subscriber-queue-bytes", "10"],
        &[],
        &["--subscriber-queue-bytes", "69632"],
    )
    .await;
    assert_rejected(
        &["--port", "0", "--max-message-bytes", "1048576"],
        &[],
        &["--subscriber-queue-bytes", "1052672"],
    )
    .await;
    assert_rejected(
        &[
            "--port",
            "0",
            "--max-message-bytes",
            "2000",
            "--max-frame-bytes",
            "1000",
        ],
        &[],
        &["--max-frame-bytes", "--max-message-bytes"],
    )
    .await;
    assert_rejected(
        &["--port", "0", "--slow-consumer", "bogus"],
        &[],
        &["bogus", "--slow-consumer", "disconnect", "drop"],
    )
    .await;
    assert_rejected(
        &["--port", "0", "--max-message-bytes", "0"],
        &[],
        &["--max-message-bytes", "at least 1"],
    )
    .await;
    assert_rejected(
        &["--port", "0", "--history-size=-1"],
        &[],
        &["--history-size"],
    )
    .await;
    assert_rejected(
        &["--port", "0", "--history-size", "lots"],
        &[],
        &["--history-size", "lots"],
    )
    .await;
    assert_rejected(&["--port", "0", "--port", "1"], &[], &["--port"]).await;
    assert_rejected(&["--port", "0", "--no-such-flag"], &[], &["--no-such-flag"]).await;
    // The environment fallbacks are validated the same way.
    assert_rejected(
        &["--port", "0"],
        &[("PUBSUB_SLOW_CONSUMER", "bogus")],
        &["bogus"],
    )
    .await;
    assert_rejected(
        &["--port", "0"],
        &[("PUBSUB_SUBSCRIBER_QUEUE_BYTES", "10")],
        &["--subscriber-queue-bytes"],
    )
    .await;
}

#[tokio::test]
async fn port_zero_logs_the_address_it_listens_on() {
    let server = Server::start(&["--port", "0"], &[]).await;
    assert!(server.addr.ip().is_loopback(), "{}", server.addr);
    assert_ne!(server.addr.port(), 0);
    let r = common::http_request(server.addr, "GET", "/health", &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], "healthy");
}

#[tokio::test]
async fn environment_variables_stand_in_for_flags() {
    let server = Server::start(&[], &[("PUBSUB_PORT", "0"), ("PUBSUB_HISTORY_SIZE", "3")]).await;
    let addr = server.addr;
    let post = |path: &'static str, body: serde_json::Value| async move {
        let body = body.to_string();
        common::http_request(
            addr,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await
    };
    assert_eq!(post("/topics", json!({"name": "t"})).await.status, 201);
    for i in 1..=5 {
        let r = post("/topics/t/messages", json!({"message": i})).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let r = common::http_request(addr, "GET", "/topics/t/messages", &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seqs: Vec<u64> = r.json()["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, [3, 4, 5], "history holds the last 3");
    let r = common::http_request(addr, "GET", "/topics/t", &[], b"").await;
    assert_eq!(r.json()["messages_in_history"], 3, "{}", r.text());
    assert_eq!(r.json()["last_seq"], 5, "{}", r.text());
}

#[tokio::test]
async fn boolean_environment_variables_take_the_usual_spellings() {
    for (value, enabled) in [
        ("1", true),
        ("true", true),
        ("yes", true),
        ("0", false),
        ("off", false),
    ] {
        let envs = [("PUBSUB_PORT", "0"), ("PUBSUB_AUTO_CREATE_TOPICS", value)];
        let server = Server::start(&[], &envs).await;
        let body = json!({"message": 1}).to_string();
        let r = common::http_request(
            server.addr,
            "POST",
            "/topics/fresh/messages",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .await;
        let expected = if enabled { 201 } else { 404 };
        assert_eq!(
            r.status,
            expected,
            "PUBSUB_AUTO_CREATE_TOPICS={value}: {}",
            r.text()
        );
    }
}

/// Starts a server, subscribes a WebSocket client, sends `signal` and checks the graceful
/// shutdown: a 1001 close frame, exit status 0, and the port closed.
async fn shuts_down_gracefully_on(signal: &str) {
    shuts_down_gracefully_with(signal, &[]).await;
}

/// [`shuts_down_gracefully_on`] with `extra` flags.
async fn shuts_down_gracefully_with(signal: &str, extra: &[&str]) {
    let mut args = vec!["--port", "0"];
    args.extend_from_slice(extra);
    let mut server = Server::start(&args, &[]).await;
    common::create_topic_at(server.addr, "t").await;
    let mut client = common::WsClient::connect(server.addr).await;
    client.subscribe("t").await;

    server.signal(signal);
    let (code, reason) = client.recv_close().await;
    assert_eq!((code, reason.as_str()), (1001, "server shutting down"));
    let status = server.child.wait_exit(PROCESS_WAIT).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    server.wait_for_log("shutting down").await;
    assert!(
        std::net::TcpStream::connect_timeout(&server.addr, Duration::from_secs(5)).is_err(),
        "{} still accepts connections",
        server.addr
    );
}

#[tokio::test]
async fn sigterm_closes_websockets_with_1001_and_exits_0() {
    shuts_down_gracefully_on("TERM").await;
}

#[tokio::test]
async fn sigint_closes_websockets_with_1001_and_exits_0() {
    shuts_down_gracefully_on("INT").await;
}

#[tokio::test]
async fn limit_flags_out_of_range_or_inconsistent_exit_2() {
    assert_rejected(
        &[
            "--port",
            "0",
            "--max-message-bytes",
            "2000",
            "--max-body-bytes",
            "1999",
        ],
        &[],
        &["--max-body-bytes (1999)", "--max-message-bytes (2000)"],
    )
    .await;
    for depth in ["1", "129"] {
        assert_rejected(
            &["--port", "0", "--max-json-depth", depth],
            &[],
            &["--max-json-depth", depth],
        )
        .await;
    }
    assert_rejected(
        &["--port", "0", "--publish-burst", "3"],
        &[],
        &["--publish-rate"],
    )
    .await;
    assert_rejected(
        &["--port", "0", "--ping-timeout", "0"],
        &[],
        &["--ping-timeout"],
    )
    .await;
    assert_rejected(
        &["--port", "0"],
        &[("PUBSUB_MAX_JSON_DEPTH", "129")],
        &["--max-json-depth"],
    )
    .await;
    // The boundaries themselves are accepted.
    for args in [
        &["--max-json-depth", "2"][..],
        &["--max-json-depth", "128"],
        &["--max-message-bytes", "2000", "--max-body-bytes", "2000"],
        &["--publish-rate", "2", "--publish-burst", "3"],
    ] {
        let mut args = args.to_vec();
        args.extend(["--port", "0"]);
        let server = Server::start(&args, &[]).await;
        let r = common::http_request(server.addr, "GET", "/health", &[], b"").await;
        assert_eq!(r.status, 200, "{args:?}");
    }
}

/// Reads a response head from `stream` (up to the blank line) and returns it.
async fn read_head(stream: &mut TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    tokio::time::timeout(PROCESS_WAIT, async {
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut byte).await.expect("read");
            assert!(
                n > 0,
                "closed mid-head: {:?}",
                String::from_utf8_lossy(&head)
            );
            head.push(byte[0]);
        }
    })
    .await
    .expect("a response head within the wait");
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_and_closes_websockets() {
    let mut server = Server::start(&["--port", "0", "--shutdown-timeout", "15"], &[]).await;
    let addr = server.addr;
    common::create_topic_at(addr, "t").await;
    let mut subscriber = common::WsClient::connect(addr).await;
    subscriber.subscribe("t").await;

    // A publish whose body is on its way. `Expect: 100-continue` makes the server say when
    // the handler has started reading the body: from then on, the request is in flight.
    let body = br#"{"message":"sent during shutdown"}"#;
    let (first, rest) = body.split_at(10);
    let mut request = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /topics/t/messages HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    request.write_all(head.as_bytes()).await.expect("send head");
    let continued = read_head(&mut request).await;
    assert!(continued.starts_with("HTTP/1.1 100"), "{continued}");
    request
        .write_all(first)
        .await
        .expect("send part of the body");

    server.signal("TERM");
    server.wait_for_log("shutting down").await;
    // WebSocket clients are told at once...
    let (code, reason) = subscriber.recv_close().await;
    assert_eq!((code, reason.as_str()), (1001, "server shutting down"));
    // ...while the request in flight gets to finish.
    request.write_all(rest).await.expect("send the rest");
    let mut response = Vec::new();
    tokio::time::timeout(PROCESS_WAIT, async {
        use tokio::io::AsyncReadExt;
        request.read_to_end(&mut response).await
    })
    .await
    .expect("the response within the wait")
    .expect("read the response");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    assert!(
        response.contains(r#"{"topic":"t","seq":1,"epoch":""#),
        "{response}"
    );

    let status = server.child.wait_exit(PROCESS_WAIT).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    let log = server.whole_log().await;
    assert!(
        !log.iter().any(|l| l.contains("shutdown timeout reached")),
        "everything finished within --shutdown-timeout: {log:#?}"
    );
    assert!(
        log.last().is_some_and(|l| l.contains("stopped")),
        "{log:#?}"
    );
}

#[tokio::test]
async fn sigterm_exits_0_after_the_shutdown_timeout_when_a_request_never_finishes() {
    let mut server = Server::start(&["--port", "0", "--shutdown-timeout", "1"], &[]).await;
    let addr = server.addr;
    common::create_topic_at(addr, "t").await;
    // A request whose body never comes (the request timeout is the default 30 s), and a
    // WebSocket client that never reads its close frame.
    let mut stuck = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /topics/t/messages HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 100\r\n\
         Expect: 100-continue\r\n\r\n"
    );
    stuck.write_all(head.as_bytes()).await.expect("send head");
    assert!(read_head(&mut stuck).await.starts_with("HTTP/1.1 100"));
    let _deaf = common::WsClient::connect(addr).await;

    server.signal("TERM");
    let status = server.child.wait_exit(PROCESS_WAIT).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
    let log = server.whole_log().await;
    assert!(
        log.iter().any(|l| l.contains("shutdown timeout reached")),
        "{log:#?}"
    );
}

#[tokio::test]
async fn log_format_json_writes_one_object_per_line_with_connection_lifetimes() {
    let mut server = Server::start(&["--port", "0", "--log-format", "json"], &[]).await;
    let mut client = common::WsClient::connect(server.addr).await;
    assert_eq!(
        client.request(json!({"action": "ping"})).await,
        json!({"action": "pong"})
    );
    futures_util::SinkExt::close(&mut client.ws)
        .await
        .expect("close");
    server.wait_for_log("connection closed").await;
    let r = common::http_request(server.addr, "GET", "/health", &[], b"").await;
    assert_eq!(r.status, 200);
    server.signal("TERM");
    let status = server.child.wait_exit(PROCESS_WAIT).await;
    assert_eq!(status.code(), Some(0), "{status:?}");

    let lines: Vec<Value> = server
        .whole_log()
        .await
        .iter()
        .map(|line| {
            let value: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(value.is_object(), "{line}");
            assert!(
                value["level"].is_string() && value["timestamp"].is_string(),
                "{line}"
            );
            value
        })
        .collect();
    let with_message = |text: &str| {
        lines
            .iter()
            .find(|l| l["message"] == text)
            .unwrap_or_else(|| panic!("no {text:?} line in {lines:#?}"))
    };
    let opened = with_message("connection opened");
    let closed = with_message("connection closed");
    assert!(opened["client"].is_u64(), "{opened}");
    assert_eq!(closed["client"], opened["client"], "{closed}");
    assert_eq!(closed["reason"], "client closed", "{closed}");
    assert!(
        closed["seconds"].as_f64().is_some_and(|s| s >= 0.0),
        "{closed}"
    );
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("listening on http://"))),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn sigterm_on_a_redis_node_closes_websockets_with_1001_and_exits_0() {
    if common::redis::redis_missing() {
        return;
    }
    let redis = common::redis::RedisServer::start();
    shuts_down_gracefully_with("TERM", &["--engine", "redis", "--redis-url", &redis.url()]).await;
}

/// A Redis engine that cannot start says why in one line on stderr and exits 1, never serving.
async fn assert_engine_fails(args: &[&str], mentions: &str) {
    let mut all = vec!["--port", "0", "--engine", "redis"];
    all.extend_from_slice(args);
    let output = run_to_exit(pubsub(&all, &[])).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{args:?}: stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(
        lines[0].contains(mentions),
        "{args:?} mentions {mentions:?}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !stderr.contains("s3cret"),
        "a password never shows: {stderr}"
    );
}

#[tokio::test]
async fn an_unreachable_or_wrong_redis_exits_1_with_one_line() {
    // Port 1 on loopback: nothing listens there.
    assert_engine_fails(&["--redis-url", "redis://127.0.0.1:1/0"], "127.0.0.1:1").await;
    assert_engine_fails(
        &["--redis-url", "http://127.0.0.1:6379"],
        "invalid Redis URL",
    )
    .await;
    assert_engine_fails(
        &["--redis-url", "redis://app:s3cret@127.0.0.1:1/0"],
        "redis://app:***@127.0.0.1:1/0",
    )
    .await;
    assert_engine_fails(&["--redis-cluster", "redis://127.0.0.1:1"], "127.0.0.1:1").await;
    assert_engine_fails(&["--redis-prefix", "a{b}"], "--redis-prefix").await;
}
