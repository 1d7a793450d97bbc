//! The real binary as a child process: `--help`, flag validation, environment fallbacks, the
//! listening log line, and graceful shutdown on SIGTERM and SIGINT (Ctrl-C).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;

/// How long a process may take to start, or to exit once it should.
const PROCESS_WAIT: Duration = Duration::from_secs(20);

/// `pubsub ARGS` with a clean environment for its configuration: no inherited `PUBSUB_*`
/// variable or `RUST_LOG` changes what the test means.
fn pubsub(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pubsub"));
    let inherited = std::env::vars_os().map(|(name, _)| name);
    for name in inherited.filter(|n| {
        n.to_str()
            .is_some_and(|n| n.starts_with("PUBSUB_") || n == "RUST_LOG")
    }) {
        cmd.env_remove(name);
    }
    cmd.args(args).envs(envs.iter().copied());
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
        let addr = tokio::time::timeout(PROCESS_WAIT, async {
            while let Some(line) = log.recv().await {
                if let Some(addr) = listening_addr(&line) {
                    return addr;
                }
            }
            panic!("the server's output ended without a 'listening on' line");
        })
        .await
        .expect("a 'listening on' log line within the wait");
        Server { child, addr, log }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.pid())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for a log line containing `text`.
    async fn wait_for_log(&mut self, text: &str) {
        let found = tokio::time::timeout(PROCESS_WAIT, async {
            while let Some(line) = self.log.recv().await {
                if line.contains(text) {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(found, Ok(true), "no log line containing {text:?}");
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
        "max-message-bytes",
        "max-frame-bytes",
        "subscriber-queue-bytes",
        "slow-consumer",
        "auto-create-topics",
        "shutdown-timeout",
    ];
    for flag in flags {
        assert!(help.contains(&format!("--{flag}")), "--{flag} in:\n{help}");
        let env = format!("PUBSUB_{}", flag.to_uppercase().replace('-', "_"));
        assert!(help.contains(&env), "{env} in:\n{help}");
    }
    for value in ["disconnect", "drop"] {
        assert!(help.contains(value), "{value} in:\n{help}");
    }
    assert!(help.contains("RUST_LOG"), "RUST_LOG in:\n{help}");
}

/// Asserts the command fails with a non-zero exit code and each of `mentions` on stderr.
async fn assert_rejected(args: &[&str], envs: &[(&str, &str)], mentions: &[&str]) {
    let output = run_to_exit(pubsub(args, envs)).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && output.status.code().is_some(),
        "{args:?} {envs:?} exits with an error code: {:?}, stderr: {stderr}",
        output.status
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
    let mut server = Server::start(&["--port", "0"], &[]).await;
    let r = common::http_request(
        server.addr,
        "POST",
        "/topics",
        &[("Content-Type", "application/json")],
        br#"{"name":"t"}"#,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let mut client = common::WsClient::connect(server.addr).await;
    client.subscribe("t").await;

    server.signal(signal);
    let (code, reason) = client.recv_close().await;
    assert_eq!(code, 1001, "going away; reason {reason:?}");
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
