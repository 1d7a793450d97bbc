//! The in-repo `fanout-reference` binary as a child process on a free port; killed (by its PID)
//! when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the server may take to start.
const START_WAIT: Duration = Duration::from_secs(30);

pub struct ReferenceServer {
    child: Child,
    pub addr: SocketAddr,
}

impl ReferenceServer {
    /// Starts `fanout-reference --port 0 ARGS...` and waits for its "listening on" line.
    pub fn start(args: &[&str]) -> ReferenceServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fanout-reference"))
            .args(["--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn fanout-reference");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        // Reads stderr to its end, so the pipe never fills.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut server = ReferenceServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = rx
            .recv_timeout(START_WAIT)
            .expect("a 'listening on' line within the wait");
        server.addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ReferenceServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
