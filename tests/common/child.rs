//! The real `pubsub` binary as a child process, for tests that need its own process: its memory
//! (`VmRSS`), or a tool outside this process talking to it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the server may take to start.
const START_WAIT: Duration = Duration::from_secs(30);

/// A `pubsub` process listening on 127.0.0.1 and a free port; killed when dropped.
pub struct ChildServer {
    child: Child,
    pub addr: SocketAddr,
    /// Every line the process has logged so far.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ChildServer {
    /// Starts `pubsub --port 0 ARGS...` with no inherited `PUBSUB_*` or `RUST_LOG`, and waits for
    /// its "listening on" line. Request logging is off: only warnings and errors are printed.
    pub fn start(args: &[&str]) -> ChildServer {
        Self::start_with_env(args, &[])
    }

    /// [`ChildServer::start`] with `envs` set for the process.
    pub fn start_with_env(args: &[&str], envs: &[(&str, &str)]) -> ChildServer {
        let mut child = super::cli::pubsub(&["--port", "0"])
            .args(args)
            .env("RUST_LOG", "warn,pubsub=info,pubsub::http=warn")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn pubsub");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = log.clone();
        // Reads the log to its end, so the pipe never fills; shows warnings and errors.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("pubsub: {line}");
                }
                if let Ok(mut kept) = kept.lock() {
                    kept.push(line.clone());
                }
                let _ = tx.send(line);
            }
        });
        let mut server = ChildServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        loop {
            let line = rx
                .recv_timeout(START_WAIT)
                .expect("a 'listening on' log line within the wait");
            let rest = line.split("listening on ").nth(1);
            let rest = rest.and_then(|r| r.strip_prefix("http://").or(r.strip_prefix("https://")));
            if let Some(rest) = rest {
                let addr = rest.split(|c: char| c.is_whitespace() || c == '/').next();
                server.addr = addr
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| panic!("no address in {line:?}"));
                return server;
            }
        }
    }

    /// The lines logged so far (with `RUST_LOG` as `envs` set it, else warnings and info).
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's resident memory in KiB (`VmRSS` in /proc/PID/status), if it can be read.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib_of(self.pid())
    }

    /// Kills the process with SIGKILL (no graceful anything) and waits until it is gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A process's resident memory in KiB (`VmRSS` in /proc/PID/status), if it can be read.
pub fn rss_kib_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
