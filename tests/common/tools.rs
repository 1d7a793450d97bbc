//! Outside tools (node, Chromium, Python packages): finding them, skipping or failing when one is
//! missing, and running them with a deadline on a blocking thread so that the in-process server
//! keeps serving meanwhile.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Whether a missing tool fails the test instead of skipping it (as `.ci/run` sets it).
pub fn tools_required() -> bool {
    std::env::var("PUBSUB_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Prints why the test skips, or fails it when tools are required.
pub fn missing_tool(reason: &str) {
    if tools_required() {
        panic!("{reason}, and PUBSUB_REQUIRE_TOOLS=1 requires it");
    }
    println!("SKIPPED: {reason} (set PUBSUB_REQUIRE_TOOLS=1 to make this a failure)");
}

/// Whether `program args...` runs and exits 0 within 30 s.
pub fn succeeds(program: &str, args: &[&str]) -> bool {
    run_blocking(
        Command::new(program).args(args),
        None,
        Duration::from_secs(30),
    )
    .is_ok_and(|r| r.success())
}

/// The folder of the node scripts (and their `node_modules`).
pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Chromium, as `PUBSUB_CHROMIUM` names it or at Debian's path.
pub fn chromium() -> PathBuf {
    std::env::var_os("PUBSUB_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Why the node scripts cannot run, if they cannot: node missing, or `npm ci` not yet run.
/// `packages` are the npm packages the caller's script imports.
pub fn node_missing(packages: &[&str]) -> Option<String> {
    if !succeeds("node", &["--version"]) {
        return Some("node is not installed".to_owned());
    }
    let modules = browser_dir().join("node_modules");
    packages
        .iter()
        .find(|p| !modules.join(p).join("package.json").is_file())
        .map(|p| format!("{p} is not installed (run `npm ci` in tests/browser)"))
}

/// The node arguments that give it a global `WebSocket` and `fetch` (Node.js 20 needs
/// `--experimental-websocket`, 22 and later nothing), if any do.
pub fn node_websocket_args() -> Option<Vec<&'static str>> {
    let check =
        "process.exit(typeof WebSocket === 'function' && typeof fetch === 'function' ? 0 : 1)";
    [vec!["--experimental-websocket"], vec![]]
        .into_iter()
        .find(|flags| {
            let mut args = flags.clone();
            args.extend(["-e", check]);
            succeeds("node", &args)
        })
}

/// Why a browser test cannot run, if it cannot.
pub fn browser_missing() -> Option<String> {
    node_missing(&["playwright-core"]).or_else(|| {
        let chromium = chromium();
        (!succeeds(&chromium.to_string_lossy(), &["--version"])).then(|| {
            format!(
                "Chromium is not at {} (apt-get install chromium, or set PUBSUB_CHROMIUM)",
                chromium.display()
            )
        })
    })
}

/// A finished (or timed out) run.
#[derive(Debug)]
pub struct Run {
    /// None when the deadline passed and the process was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub fn describe(&self) -> String {
        let status = self
            .status
            .map_or_else(|| "timed out".to_owned(), |s| s.to_string());
        format!(
            "exit status: {status}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }

    /// stdout as JSON (the node scripts print their report there).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("the report is not JSON ({e}):\n{}", self.describe()))
    }
}

/// Runs `command` on a blocking thread, killing it after `timeout`.
pub async fn run(command: Command, timeout: Duration) -> Run {
    run_with_input(command, None, timeout).await
}

/// [`run`] with `input` written to the command's stdin (which is empty otherwise).
pub async fn run_with_input(mut command: Command, input: Option<String>, timeout: Duration) -> Run {
    tokio::task::spawn_blocking(move || run_blocking(&mut command, input, timeout))
        .await
        .expect("the blocking task ran")
        .unwrap_or_else(|e| panic!("cannot start the command: {e}"))
}

/// Runs `node tests/browser/SCRIPT ARGS...`, with up to two minutes for it.
pub async fn node(script: &str, args: &[&str]) -> Run {
    let mut command = Command::new("node");
    command
        .current_dir(browser_dir())
        .arg(script)
        .args(args)
        .env("CHROMIUM", chromium());
    run(command, Duration::from_secs(120)).await
}

fn run_blocking(
    command: &mut Command,
    input: Option<String>,
    timeout: Duration,
) -> std::io::Result<Run> {
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    if let (Some(input), Some(mut pipe)) = (input, child.stdin.take()) {
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    // Drain both pipes on their own threads, so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait()? {
            Some(status) => break Some(status),
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    Ok(Run {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}
