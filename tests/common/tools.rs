//! Outside tools (node and its npm packages, Chromium, curl, Python packages): finding them,
//! fetching the ones a test run can fetch by itself, skipping visibly or failing when one is
//! still missing, and running them with a deadline on a blocking thread so that the in-process
//! server keeps serving meanwhile.
//!
//! What is fetched, once per `cargo test` run: the npm packages of `tests/browser` (`npm ci`,
//! when `node_modules` lacks one), the JavaScript client's TypeScript compiler (`npm ci` in
//! `clients/js`), and a Python venv under `target/` with the packages the
//! Python-based tests use ([`PYTHON_PACKAGES`]), when no `python3` on the machine has them.
//! `PUBSUB_FETCH_TOOLS=0` turns fetching off. Chromium and curl are not fetched: they are
//! system packages (`.ci/run` installs them).
//!
//! A test that still cannot run calls [`missing_tool`]: with `PUBSUB_REQUIRE_TOOLS=1` (as
//! `.ci/run` sets it) that fails the test; otherwise the test returns early, and since libtest
//! has no way to mark a test skipped at run time, the skip is made visible twice: a
//! `SKIPPED` line written straight to stderr (around libtest's output capture, so a plain
//! `cargo test` shows it), and a record file in [`skip_dir`], from which `.ci/run` lists the
//! skipped tests with their reasons and counts them as skipped rather than passed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The packages the Python-based tests need: the examples of README.md and docs/ (`websockets`), the
/// generated client (`openapi-python-client`, and `python-dateutil`, which the generated code
/// imports), `tests/schemathesis.rs` (the same range `.ci/run` installs), and
/// `tests/compose.rs` (`pyyaml`, to read `compose.yaml`).
pub const PYTHON_PACKAGES: [&str; 5] = [
    "websockets",
    "openapi-python-client",
    "python-dateutil",
    "schemathesis>=4.32,<5",
    "pyyaml",
];

/// The most `npm ci` or the venv's `pip install` may take.
const FETCH_LIMIT: Duration = Duration::from_secs(600);

/// Whether a missing tool fails the test instead of skipping it (as `.ci/run` sets it).
pub fn tools_required() -> bool {
    std::env::var("PUBSUB_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Whether the test setup may fetch missing npm and Python packages (`PUBSUB_FETCH_TOOLS=0`
/// says no).
fn fetch_allowed() -> bool {
    std::env::var("PUBSUB_FETCH_TOOLS").map_or(true, |v| v != "0")
}

/// Where skip records go: `PUBSUB_SKIP_DIR` (`.ci/run` sets it to a folder it empties first),
/// else `target/tmp/skipped-tests`.
pub fn skip_dir() -> PathBuf {
    std::env::var_os("PUBSUB_SKIP_DIR").map_or_else(
        || Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests"),
        PathBuf::from,
    )
}

/// The calling test cannot run because `reason`: fails it when tools are required, else
/// reports the skip (see the module documentation); the caller returns right after.
pub fn missing_tool(reason: &str) {
    if tools_required() {
        panic!("{reason}, and PUBSUB_REQUIRE_TOOLS=1 requires it");
    }
    // Every test target is tests/NAME.rs, and libtest runs each test on a thread named after it.
    let file = format!("tests/{}.rs", env!("CARGO_CRATE_NAME"));
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("unknown test");
    let test = format!("{file}: {name}");
    let dir = skip_dir();
    let file_name = format!("{}.{name}.skip", env!("CARGO_CRATE_NAME")).replace("::", ".");
    let record = format!("{file}\t{name}\t{}\n", reason.replace(['\n', '\t'], " "));
    let written =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(file_name), &record));
    // Straight to the process's stderr: `eprintln!` would be captured and shown only on failure.
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(
        stderr,
        "SKIPPED {test}: {reason} (set PUBSUB_REQUIRE_TOOLS=1 to make this a failure)"
    );
    if let Err(e) = written {
        let _ = writeln!(
            stderr,
            "  (cannot record the skip in {}: {e})",
            dir.display()
        );
    }
}

/// Whether `program args...` runs and exits 0 within 30 s.
pub fn succeeds(program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> bool {
    run_blocking(
        Command::new(program).args(args),
        None,
        Duration::from_secs(30),
    )
    .is_ok_and(|r| r.success())
}

// ---------------------------------------------------------------------------------------------
// Fetching, once per run

/// Outcomes of the setups this process ran (None: done), by name.
static SETUPS: Mutex<BTreeMap<&'static str, Option<String>>> = Mutex::new(BTreeMap::new());

/// Makes `missing` come out None by running `fetch` if needed: at most once per process (the
/// outcome is kept), and under a lock file so that test binaries running at the same time do
/// not fetch side by side. A failed fetch is remembered for the rest of the `cargo test` run
/// (the record names cargo's process), so the next test binary does not try again. Returns why
/// the tool is still missing, if it is.
fn fetch_once(
    name: &'static str,
    missing: impl Fn() -> Option<String>,
    fetch: impl FnOnce() -> Result<(), String>,
) -> Option<String> {
    let why = missing()?;
    if !fetch_allowed() {
        return Some(format!(
            "{why}; PUBSUB_FETCH_TOOLS=0 keeps the tests from fetching it"
        ));
    }
    let mut setups = SETUPS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(outcome) = setups.get(name) {
        return outcome.clone();
    }
    let outcome = fetch_locked(name, &missing, fetch);
    setups.insert(name, outcome.clone());
    outcome
}

fn fetch_locked(
    name: &str,
    missing: &impl Fn() -> Option<String>,
    fetch: impl FnOnce() -> Result<(), String>,
) -> Option<String> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tool-setup");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return Some(format!("cannot create {}: {e}", dir.display()));
    }
    let lock = match std::fs::File::create(dir.join(format!("{name}.lock"))) {
        Ok(lock) => lock,
        Err(e) => return Some(format!("cannot create the {name} lock file: {e}")),
    };
    // Held until `lock` is dropped; another process holding it is bounded by FETCH_LIMIT.
    if let Err(e) = lock.lock() {
        return Some(format!("cannot lock the {name} lock file: {e}"));
    }
    // Another process may have fetched it meanwhile.
    let why = missing()?;
    let failed = dir.join(format!("{name}.failed"));
    let run = std::os::unix::process::parent_id().to_string();
    if let Some((pid, reason)) = std::fs::read_to_string(&failed)
        .ok()
        .as_deref()
        .and_then(|t| t.split_once('\n'))
        && pid == run
    {
        return Some(format!(
            "{why}; fetching it failed earlier in this run: {reason}"
        ));
    }
    let started = Instant::now();
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "FETCHING for the tests ({name}): {why}");
    drop(stderr);
    let result = fetch();
    let _ = writeln!(
        std::io::stderr().lock(),
        "FETCHING {name}: {} after {:.0} s",
        if result.is_ok() { "done" } else { "failed" },
        started.elapsed().as_secs_f64()
    );
    match result {
        Ok(()) => {
            let _ = std::fs::remove_file(&failed);
            missing().map(|why| format!("{why}, even after fetching it"))
        }
        Err(reason) => {
            let _ = std::fs::write(&failed, format!("{run}\n{reason}"));
            Some(format!("{why}; fetching it failed: {reason}"))
        }
    }
}

/// The last lines of a failed run's output, for a reason.
fn tail(run: &Run) -> String {
    let text = format!("{}\n{}", run.stdout, run.stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let status = run
        .status
        .map_or_else(|| "timed out".to_owned(), |s| s.to_string());
    format!(
        "{status}: {}",
        lines[lines.len().saturating_sub(2)..].join(" / ")
    )
}

/// Runs a fetch step, turning anything but success into a reason.
fn fetch_step(what: &str, command: &mut Command) -> Result<(), String> {
    match run_blocking(command, None, FETCH_LIMIT) {
        Ok(run) if run.success() => Ok(()),
        Ok(run) => Err(format!("{what}: {}", tail(&run))),
        Err(e) => Err(format!("{what}: cannot start it: {e}")),
    }
}

// ---------------------------------------------------------------------------------------------
// node and the npm packages

/// The folder of the node scripts (and their `node_modules`).
pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Chromium, as `PUBSUB_CHROMIUM` names it or at Debian's path.
pub fn chromium() -> PathBuf {
    std::env::var_os("PUBSUB_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// The first of `packages` that `tests/browser/node_modules` lacks.
fn npm_package_missing(packages: &[&str]) -> Option<String> {
    let modules = browser_dir().join("node_modules");
    packages
        .iter()
        .find(|p| !modules.join(p).join("package.json").is_file())
        .map(|p| format!("the npm package {p} is not installed in tests/browser"))
}

/// Every package `tests/browser/package.json` depends on.
fn npm_dependencies() -> Vec<String> {
    let text = std::fs::read_to_string(browser_dir().join("package.json")).unwrap_or_default();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    manifest["dependencies"]
        .as_object()
        .map(|deps| deps.keys().cloned().collect())
        .unwrap_or_default()
}

/// Why the node scripts cannot run, if they cannot: node missing, or one of `packages` (the
/// npm packages the caller's script imports) missing after `npm ci` was tried.
pub fn node_missing(packages: &[&str]) -> Option<String> {
    if !succeeds("node", &["--version"]) {
        return Some("node is not installed".to_owned());
    }
    let all = npm_dependencies();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    fetch_once(
        "npm-ci",
        || npm_package_missing(&all),
        || npm_ci(&browser_dir(), "tests/browser"),
    )?;
    npm_package_missing(packages)
}

/// The JavaScript client's npm package (TypeScript source, committed `dist/`).
pub fn js_client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js")
}

/// Why the JavaScript client's TypeScript compiler cannot run, if it cannot: node missing, or
/// `typescript` (its one devDependency, pinned by `clients/js/package-lock.json`) missing
/// after `npm ci` in `clients/js` was tried.
pub fn typescript_missing() -> Option<String> {
    if !succeeds("node", &["--version"]) {
        return Some("node is not installed".to_owned());
    }
    let missing = || {
        let tsc = js_client_dir().join("node_modules/typescript/bin/tsc");
        (!tsc.is_file())
            .then(|| "the npm package typescript is not installed in clients/js".to_owned())
    };
    fetch_once("npm-ci-clients-js", missing, || {
        npm_ci(&js_client_dir(), "clients/js")
    })
}

/// `npm ci` in `dir` (named `what` in messages): installs exactly what its lock file pins.
fn npm_ci(dir: &Path, what: &str) -> Result<(), String> {
    if !succeeds("npm", &["--version"]) {
        return Err("npm is not installed".to_owned());
    }
    fetch_step(
        &format!("npm ci in {what}"),
        Command::new("npm").current_dir(dir).args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--fetch-retries=1",
            "--fetch-timeout=60000",
        ]),
    )
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
        (!succeeds(&chromium, &["--version"])).then(|| {
            format!(
                "Chromium is not at {} (apt-get install chromium, or set PUBSUB_CHROMIUM)",
                chromium.display()
            )
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Python

/// A Python interpreter that has the packages a test asked for.
#[derive(Debug, Clone)]
pub struct Python {
    /// The interpreter.
    pub exe: PathBuf,
    /// Its scripts folder (where `pip install` puts commands such as `openapi-python-client`).
    pub scripts: PathBuf,
}

impl Python {
    /// `program` with the interpreter's scripts folder first on the PATH, so that `python3`
    /// and the installed commands, named as a README would name them, are this Python's.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        let mut path = vec![self.scripts.clone()];
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        command.env("PATH", std::env::join_paths(path).expect("PATH joins"));
        command
    }

    /// The interpreter itself, with [`Python::command`]'s PATH.
    pub fn python(&self) -> Command {
        self.command(&self.exe)
    }

    /// A command from its scripts folder.
    pub fn script(&self, name: &str) -> PathBuf {
        self.scripts.join(name)
    }

    fn imports(&self, modules: &[&str]) -> bool {
        modules.is_empty()
            || succeeds(
                &self.exe,
                &["-c", &format!("import {}", modules.join(", "))],
            )
    }
}

/// The interpreter `program` names, if it runs.
fn python_at(program: &Path) -> Option<Python> {
    let run = run_blocking(
        Command::new(program).args([
            "-c",
            "import sys, sysconfig; print(sys.executable); print(sysconfig.get_path('scripts'))",
        ]),
        None,
        Duration::from_secs(30),
    )
    .ok()
    .filter(Run::success)?;
    let mut lines = run.stdout.lines();
    Some(Python {
        exe: PathBuf::from(lines.next()?),
        scripts: PathBuf::from(lines.next()?),
    })
}

/// The venv the tests create when no `python3` has what they need.
pub fn venv_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-venv")
}

fn venv_python() -> Python {
    let bin = venv_dir().join("bin");
    Python {
        exe: bin.join("python"),
        scripts: bin,
    }
}

/// Why the venv lacks something, if it does: one of the modules of [`PYTHON_PACKAGES`] does
/// not import, or schemathesis does not run.
fn venv_missing() -> Option<String> {
    let venv = venv_python();
    if !venv.imports(&["websockets", "openapi_python_client", "dateutil", "yaml"]) {
        return Some(format!(
            "the test venv {} lacks a package",
            venv_dir().display()
        ));
    }
    (!succeeds(venv.script("schemathesis"), &["--version"]))
        .then(|| format!("the test venv {} lacks schemathesis", venv_dir().display()))
}

/// Creates the venv (afresh, in case an earlier attempt left half of one) and installs
/// [`PYTHON_PACKAGES`] into it.
fn make_venv() -> Result<(), String> {
    let dir = venv_dir();
    let _ = std::fs::remove_dir_all(&dir);
    fetch_step(
        "python3 -m venv (on Debian: apt-get install python3-venv)",
        Command::new("python3").args(["-m", "venv"]).arg(&dir),
    )?;
    fetch_step(
        "pip install into the test venv",
        Command::new(dir.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--timeout", "60", "--retries", "2"])
            .args(PYTHON_PACKAGES),
    )
}

/// Makes sure the test venv has [`PYTHON_PACKAGES`]; why not, if it cannot.
fn ensure_venv() -> Option<String> {
    fetch_once("python-venv", venv_missing, make_venv)
}

/// A Python that imports every one of `modules`: the machine's `python3` if it does, else the
/// test venv under `target/` (made on first use), or why there is none.
pub fn python_with(modules: &[&str]) -> Result<Python, String> {
    let system = python_at(Path::new("python3"));
    if let Some(python) = system.as_ref().filter(|p| p.imports(modules)) {
        return Ok(python.clone());
    }
    let wanted = format!("a python3 that imports {}", modules.join(", "));
    if system.is_none() {
        return Err(format!("{wanted}: python3 is not installed"));
    }
    if let Some(why) = ensure_venv() {
        return Err(format!("{wanted}: {why}"));
    }
    let venv = venv_python();
    if venv.imports(modules) {
        Ok(venv)
    } else {
        Err(format!("{wanted}: not even the test venv does"))
    }
}

/// The `schemathesis` to run and its version: `PUBSUB_SCHEMATHESIS` if set (and then only
/// that one), else where `.ci/run` installs it, else the one on the PATH, else the test venv's
/// (made on first use); or why there is none.
pub fn schemathesis() -> Result<(PathBuf, String), String> {
    let version = |program: &Path| {
        run_blocking(
            Command::new(program).arg("--version"),
            None,
            Duration::from_secs(60),
        )
        .ok()
        .filter(Run::success)
        .map(|r| r.stdout.trim().to_owned())
    };
    if let Some(path) = std::env::var_os("PUBSUB_SCHEMATHESIS") {
        let path = PathBuf::from(path);
        return version(&path)
            .map(|v| (path.clone(), v))
            .ok_or_else(|| format!("PUBSUB_SCHEMATHESIS={} does not run", path.display()));
    }
    let found = ["/opt/schemathesis-venv/bin/schemathesis", "schemathesis"]
        .into_iter()
        .map(PathBuf::from)
        .find_map(|p| version(&p).map(|v| (p, v)));
    if let Some(found) = found {
        return Ok(found);
    }
    let why = "schemathesis is not installed (not in /opt/schemathesis-venv, nor on the PATH)";
    if let Some(reason) = ensure_venv() {
        return Err(format!("{why}: {reason}"));
    }
    let path = venv_python().script("schemathesis");
    version(&path)
        .map(|v| (path.clone(), v))
        .ok_or_else(|| format!("{why}, and the test venv's does not run"))
}

// ---------------------------------------------------------------------------------------------
// Running

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
    use std::os::unix::process::CommandExt;
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    // Its own process group, so that a timeout kills what it started too (npm's and node's
    // children, Chromium), and nothing is left holding the pipes open.
    let mut child = command
        .process_group(0)
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
                // SAFETY: kill(2) with the negated id of the group this child leads.
                unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
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
