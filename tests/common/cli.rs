//! The `pubsub` binary's client commands as child processes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::tools::Run;

/// `pubsub ARGS` with no inherited `PUBSUB_*` or `RUST_LOG`: nothing from the environment
/// changes what a test means.
pub fn pubsub(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pubsub"));
    for (name, _) in std::env::vars_os() {
        if name
            .to_str()
            .is_some_and(|n| n.starts_with("PUBSUB_") || n == "RUST_LOG")
        {
            cmd.env_remove(name);
        }
    }
    cmd.args(args);
    cmd
}

/// Runs `pubsub ARGS`, which ends by itself, with `stdin` as its input, within `within`.
pub async fn run(args: &[&str], stdin: &str, within: Duration) -> Run {
    let run = super::tools::run_with_input(pubsub(args), Some(stdin.to_owned()), within).await;
    assert!(
        run.status.is_some(),
        "pubsub {args:?} did not exit within {within:?}"
    );
    run
}

/// Kills the child if it is still running when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A subscriber running in the background, printing what `pubsub sub --output json` prints
/// (`pubsub sub` itself, or the JavaScript client's test script), its output read as it comes.
pub struct Sub {
    child: Guard,
    /// The threads reading stdout and stderr: joined once it has exited.
    readers: Vec<std::thread::JoinHandle<()>>,
    /// Its stdout, one JSON value per line.
    lines: Arc<Mutex<Vec<Value>>>,
    /// Its stderr, line by line.
    notices: Arc<Mutex<Vec<String>>>,
}

impl Sub {
    /// Starts `pubsub sub ARGS --output json` and waits for a `subscribed` line per topic.
    pub async fn start(args: &[&str], topics: usize) -> Sub {
        let mut all = vec!["sub"];
        all.extend_from_slice(args);
        all.extend(["--output", "json"]);
        Sub::spawn(pubsub(&all), topics).await
    }

    /// Starts `command`, which subscribes to `topics` topics and prints like `pubsub sub`.
    pub async fn spawn(mut command: Command, topics: usize) -> Sub {
        let mut child = Guard(
            command
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn the subscriber"),
        );
        let lines = Arc::new(Mutex::new(Vec::new()));
        let notices = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(stdout) = child.0.stdout.take() {
            let lines = lines.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                    lines.lock().expect("lines").push(value);
                }
            }));
        }
        if let Some(stderr) = child.0.stderr.take() {
            let notices = notices.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    notices.lock().expect("notices").push(line);
                }
            }));
        }
        let sub = Sub {
            child,
            readers,
            lines,
            notices,
        };
        sub.wait_for("the subscribed lines", super::WAIT, |lines| {
            lines.iter().filter(|l| l["event"] == "subscribed").count() >= topics
        })
        .await;
        sub
    }

    /// Every stdout line so far.
    pub fn lines(&self) -> Vec<Value> {
        self.lines.lock().expect("lines").clone()
    }

    /// Every stderr line so far.
    pub fn notices(&self) -> Vec<String> {
        self.notices.lock().expect("notices").clone()
    }

    /// Waits until `check` holds for the lines so far, or fails after `within`.
    pub async fn wait_for(&self, what: &str, within: Duration, check: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + within;
        loop {
            if check(&self.lines()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "pubsub sub: timed out waiting for {what}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.lines()
                    .iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
                self.notices().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends SIGTERM and waits for it to exit; then every line it printed has been read.
    pub async fn stop(&mut self) -> ExitStatus {
        let pid = self.child.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.exit(super::WAIT).await
    }

    /// Waits for it to exit by itself; then every line it printed has been read.
    pub async fn exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.0.try_wait() {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "pubsub sub did not exit within {within:?}; stderr:\n{}",
                self.notices().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
