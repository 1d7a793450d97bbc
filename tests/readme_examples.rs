//! The README's examples, run as written against a live server.
//!
//! Every fenced block is read from `README.md`; the only change made to a block before it runs
//! is the server address: `localhost:8000` becomes the test server's `127.0.0.1:PORT`.
//!
//! - ```` ```bash ```` blocks that start with `curl ` run in order against one fresh server, and
//!   the ```` ```http ```` block after each must match what came back: the status line, every
//!   header it lists, and the JSON body (values included, except the ones that differ from run
//!   to run: `epoch`, `published_at`, `uptime_seconds`). Together they must cover every
//!   operation of the OpenAPI document.
//! - ```` ```python ```` and ```` ```javascript ```` blocks whose first line is
//!   `# readme-example: NAME` / `// readme-example: NAME` run with `python3` and `node`, each
//!   against its own fresh server, and what they print must be, line for line, the
//!   ```` ```text ```` block that follows each in the README (only `epoch` and `published_at`
//!   values may differ).
//! - The generated-client example: the ```` ```bash ```` block's `openapi-python-client
//!   generate` command runs as written (its `pip install` is what the test setup does), then
//!   the ```` ```python ```` block that uses the client, and it must print what the
//!   ```` ```text ```` block after it shows.
//! - The ```` ```rust ```` block `// readme-example: rust` must be `examples/client.rs` word for
//!   word; that file is compiled into this test and its `run` called against a fresh server.
//! - The ```` ```bash ```` block `# readme-example: cli` runs with `sh -e`, the `pubsub` binary
//!   first on `PATH`, against a fresh server, and its stdout must be the ```` ```text ```` block
//!   after it, line for line (epochs and timestamps aside).
//! - The section "Run several nodes" runs on its own, in order, against what it starts itself:
//!   its ```` ```bash ```` block of long-running commands starts, line by line, the
//!   `redis-server` and the two nodes (the binary this test built in place of
//!   `cargo run --release --`), each awaited until it serves; then its curl blocks and its
//!   Python example run, compared as above. Its ports 6379, 8001 and 8002 become free ones
//!   (`localhost` becomes `127.0.0.1`); a port written in another form fails the test rather
//!   than reach the machine's own Redis. The other tests leave that section out.
//!
//! `python3` is the machine's if it has the packages, else the test venv under `target/` (see
//! tests/common/tools.rs). A tool that is still missing (`curl`, `node` with `WebSocket`, a
//! Python package that could not be fetched) makes its test report a skip, or fail with
//! `PUBSUB_REQUIRE_TOOLS=1`.

mod common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use common::TestServer;
use common::redis::{free_port, redis_missing};
use common::tools::{missing_tool, python_with, succeeds};
use serde_json::Value;
use warp::Reply;

use pubsub::broker::Close;
use pubsub::config::Config;
use pubsub::http::ApiError;
use pubsub::protocol::ErrorCode;

/// The address the README's examples use.
const README_ADDR: &str = "localhost:8000";

/// How long one example may run.
const EXAMPLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Keys whose values change from run to run: compared by type only.
const VOLATILE_KEYS: &[&str] = &[
    "epoch",
    "published_at",
    "uptime_seconds",
    "node_id",
    "id",
    "last_seen",
];

// ---------------------------------------------------------------------------------------------
// Reading the README

/// One fenced block.
#[derive(Debug, Clone)]
struct Block {
    /// The info string's first word (`bash`, `http`, `python`, ...).
    lang: String,
    body: String,
    /// 1-based line of the opening fence, for messages.
    line: usize,
}

impl Block {
    /// `NAME` from a first line `# readme-example: NAME` or `// readme-example: NAME`.
    fn example_name(&self) -> Option<&str> {
        let first = self.body.lines().next()?.trim();
        let rest = first
            .strip_prefix('#')
            .or_else(|| first.strip_prefix("//"))?
            .trim();
        Some(rest.strip_prefix("readme-example:")?.trim())
    }
}

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The fenced blocks of `text`. A fence indented (inside a list item) indents its block's
/// lines as much: that indentation is removed, as Markdown renders it.
fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(Block, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        match open.as_mut() {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let indent = line.len() - line.trim_start().len();
                    let block = Block {
                        lang: info.split_whitespace().next().unwrap_or("").to_owned(),
                        body: String::new(),
                        line: i + 1,
                    };
                    open = Some((block, indent));
                }
            }
            Some((block, indent)) => {
                if trimmed == "```" {
                    out.extend(open.take().map(|(block, _)| block));
                } else {
                    let strip = line.len() - line.trim_start().len();
                    block.body.push_str(&line[strip.min(*indent)..]);
                    block.body.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "README.md has an unclosed code fence");
    out
}

/// The blocks marked `readme-example: NAME` in language `lang`, as (name, block).
fn examples(lang: &str) -> Vec<(String, Block)> {
    blocks(&readme())
        .into_iter()
        .filter(|b| b.lang == lang)
        .filter_map(|b| Some((b.example_name()?.to_owned(), b.clone())))
        .collect()
}

/// The heading of the section whose commands start Redis and several nodes.
const NODES_SECTION: &str = "## Run several nodes";

/// The 1-based lines of the section under `heading` (a `## ` heading), up to the next `## `
/// heading outside a code fence.
fn section_lines(text: &str, heading: &str) -> std::ops::Range<usize> {
    let mut start = None;
    let mut in_fence = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        }
        if in_fence {
            continue;
        }
        match start {
            None if line.trim_end() == heading => start = Some(i + 1),
            Some(start) if line.starts_with("## ") => return start..i + 1,
            _ => {}
        }
    }
    let start = start.unwrap_or_else(|| panic!("README.md has no section {heading:?}"));
    start..text.lines().count() + 1
}

/// The block with the server address replaced.
fn localize(body: &str, server: &TestServer) -> String {
    body.replace(README_ADDR, &server.addr.to_string())
}

// ---------------------------------------------------------------------------------------------
// Running tools

fn wait_with_timeout(mut child: std::process::Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// A finished run.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "exit status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// A fresh scratch directory for one run.
fn scratch_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "pubsub-readme-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Runs `command` in a fresh scratch directory (with `script` written there as `file_name`
/// and appended to the arguments, when given), on a blocking thread so that the in-process
/// server keeps serving.
async fn run(command: Command, script: Option<(&str, &str)>) -> Run {
    let dir = scratch_dir();
    let run = run_in(&dir, command, script).await;
    let _ = std::fs::remove_dir_all(&dir);
    run
}

/// [`run`] in the directory `dir`, which the caller made and removes.
async fn run_in(dir: &Path, mut command: Command, script: Option<(&str, &str)>) -> Run {
    let dir = dir.to_owned();
    let script = script.map(|(name, text)| (name.to_owned(), text.to_owned()));
    tokio::task::spawn_blocking(move || {
        if let Some((name, text)) = script {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write script");
            command.arg(path);
        }
        let output = tempdir_for_output(&dir);
        let stdout_path = output.join("stdout");
        let stderr_path = output.join("stderr");
        let child = command
            .current_dir(&dir)
            // Loopback only: never through a proxy the environment may name.
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout_path).expect("stdout file"))
            .stderr(File::create(&stderr_path).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        let status = wait_with_timeout(child, EXAMPLE_TIMEOUT);
        let read = |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
        let (stdout, stderr) = (read(&stdout_path), read(&stderr_path));
        let _ = std::fs::remove_dir_all(&output);
        let status = status.unwrap_or_else(|| {
            panic!(
                "{command:?} did not finish within {EXAMPLE_TIMEOUT:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
            )
        });
        Run {
            status,
            stdout,
            stderr,
        }
    })
    .await
    .expect("run thread")
}

/// A folder for a run's captured output, beside its working directory (not in it, so that
/// the example sees only what it would see when run by hand).
fn tempdir_for_output(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().expect("scratch dir name").to_owned();
    name.push(".out");
    let output = dir.with_file_name(name);
    std::fs::create_dir_all(&output).expect("create output dir");
    output
}

// ---------------------------------------------------------------------------------------------
// The opening, the configuration table and the error table

#[test]
fn readme_opens_with_the_two_commands() {
    let text = readme();
    let opening: Vec<&str> = text.lines().take(8).collect();
    assert!(opening[0].starts_with("# "), "a title first: {opening:?}");
    let first_block = &blocks(&text)[0];
    assert!(
        first_block.line <= 5,
        "the commands come right under the title: {opening:?}"
    );
    let commands: Vec<&str> = first_block
        .body
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .collect();
    assert_eq!(
        commands,
        ["cargo run --release", "cargo test --all-features"],
        "{first_block:?}"
    );
    assert!(first_block.body.contains("127.0.0.1:8000"));
    assert!(first_block.body.contains("/docs"));
}

#[test]
fn configuration_table_lists_every_flag_and_variable() {
    let text = readme();
    let command = Config::command();
    let mut checked = 0;
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "help" || long == "version" {
            continue;
        }
        let env = arg
            .get_env()
            .unwrap_or_else(|| panic!("--{long} has no environment variable"))
            .to_string_lossy()
            .into_owned();
        let row = format!("| `--{long}` | `{env}` |");
        assert!(
            text.contains(&row),
            "README's configuration table lacks the row {row}"
        );
        let default: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if let [default] = default.as_slice()
            && default != "false"
        {
            let cell = format!("{row} `{default}` |");
            assert!(
                text.contains(&cell),
                "README gives --{long} a default other than {default}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} flags found");
    assert!(text.contains("`RUST_LOG`"));
}

#[test]
fn error_table_lists_every_code_with_its_status() {
    let text = readme();
    let doc: Value =
        serde_json::from_str(&pubsub::http::docs::openapi_json()).expect("OpenAPI JSON");
    let codes = doc["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .expect("ErrorCode enum in the OpenAPI document");
    assert!(!codes.is_empty());
    for code in codes {
        let name = code.as_str().expect("code is a string");
        let parsed: ErrorCode = serde_json::from_value(code.clone()).expect("known code");
        let status = ApiError::new(parsed, "x").into_response().status().as_u16();
        let row = format!("| `{name}` | {status} |");
        assert!(
            text.contains(&row),
            "README's error table lacks the row {row}"
        );
    }
    for close in [
        Close::SLOW_CONSUMER,
        Close::PING_TIMEOUT,
        Close::INTERNAL_ERROR,
        Close::GOING_AWAY,
    ] {
        let row = format!("| {} | `{}` |", close.code, close.reason);
        assert!(
            text.contains(&row),
            "README's close table lacks the row {row}"
        );
    }
    for code in ["| 1009 |", "| 1007 |"] {
        assert!(text.contains(code), "README's close table lacks {code}");
    }
}

// ---------------------------------------------------------------------------------------------
// curl

/// An HTTP response as `curl -i` prints it, or as the README shows it.
#[derive(Debug)]
struct Shown {
    status_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

fn parse_shown(text: &str) -> Shown {
    let text = text.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((text.as_str(), ""));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("").trim().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Shown {
        status_line,
        headers,
        body: body.trim().to_owned(),
    }
}

/// Compares JSON values; volatile keys only need the same type.
fn json_matches(
    expected: &Value,
    actual: &Value,
    key: Option<&str>,
    path: &str,
) -> Result<(), String> {
    if key.is_some_and(|k| VOLATILE_KEYS.contains(&k)) {
        let same_type = matches!(
            (expected, actual),
            (Value::String(_), Value::String(_)) | (Value::Number(_), Value::Number(_))
        );
        return if same_type {
            Ok(())
        } else {
            Err(format!(
                "{path}: expected a value like {expected}, got {actual}"
            ))
        };
    }
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let (mut ek, mut ak): (Vec<_>, Vec<_>) = (e.keys().collect(), a.keys().collect());
            ek.sort();
            ak.sort();
            if ek != ak {
                return Err(format!("{path}: expected keys {ek:?}, got {ak:?}"));
            }
            for (k, ev) in e {
                json_matches(ev, &a[k], Some(k), &format!("{path}.{k}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!(
                    "{path}: expected {} items, got {}",
                    e.len(),
                    a.len()
                ));
            }
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                json_matches(ev, av, None, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ if expected == actual => Ok(()),
        _ => Err(format!("{path}: expected {expected}, got {actual}")),
    }
}

/// Whether shown headers declare a plain-text body.
fn is_text(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(name, value)| name == "content-type" && value.starts_with("text/plain"))
}

/// (method, path) a curl command requests.
fn curl_operation(command: &str) -> (String, String) {
    let tokens: Vec<&str> = command.split_whitespace().collect();
    let method = tokens
        .iter()
        .position(|t| *t == "-X")
        .and_then(|i| tokens.get(i + 1))
        .map_or("GET", |m| m)
        .to_owned();
    let url = tokens
        .iter()
        .map(|t| t.trim_matches(|c| c == '\'' || c == '"'))
        .find(|t| t.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {command}"));
    let after_scheme = &url["http://".len()..];
    let path = after_scheme.find('/').map_or("/", |i| &after_scheme[i..]);
    let path = path.split('?').next().unwrap_or(path).to_owned();
    (method, path)
}

fn path_matches(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}') && !p.is_empty()))
}

/// Asserts that the run of the curl command `example` printed the response `expected` shows:
/// its status line, every header it lists, and its body (JSON values compared but for
/// [`VOLATILE_KEYS`]; of a text body, the lines shown).
fn assert_answered_as_shown(example: &Block, expected: &Block, run: &Run) {
    let command = example.body.trim();
    let context = format!(
        "README.md line {}: {command}\n{}",
        example.line,
        run.describe()
    );
    assert!(run.status.success(), "curl failed: {context}");
    let (want, got) = (parse_shown(&expected.body), parse_shown(&run.stdout));
    assert_eq!(got.status_line, want.status_line, "status: {context}");
    for (name, value) in &want.headers {
        let actual = got.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        assert_eq!(actual, Some(value), "header {name}: {context}");
    }
    if is_text(&want.headers) {
        // A text body (the Prometheus metrics): each line shown is a line of the response;
        // "..." stands for lines left out.
        for line in want.body.lines().filter(|l| !l.is_empty() && *l != "...") {
            assert!(
                got.body.lines().any(|g| g == line),
                "README.md line {} shows the line {line:?}, not in the response: {context}",
                expected.line
            );
        }
        return;
    }
    let want_body: Value = serde_json::from_str(&want.body).unwrap_or_else(|e| {
        panic!(
            "README.md line {}: shown body is not JSON ({e})",
            expected.line
        )
    });
    let got_body: Value = serde_json::from_str(&got.body)
        .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {context}"));
    if let Err(diff) = json_matches(&want_body, &got_body, None, "body") {
        panic!(
            "README.md line {} shows another body: {diff}\n{context}",
            expected.line
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_examples_answer_as_shown() {
    if !succeeds("curl", &["--version"]) {
        return missing_tool("curl is not installed (apt-get install curl)");
    }
    let text = readme();
    let all = blocks(&text);
    let nodes = section_lines(&text, NODES_SECTION);
    let mut pairs = Vec::new();
    for (i, block) in all.iter().enumerate() {
        // The several-nodes section's examples run against nodes of their own, below.
        if block.lang != "bash"
            || !block.body.trim_start().starts_with("curl ")
            || nodes.contains(&block.line)
        {
            continue;
        }
        let expected = all
            .get(i + 1)
            .filter(|b| b.lang == "http")
            .unwrap_or_else(|| {
                panic!(
                    "the curl example at README.md line {} has no ```http block after it",
                    block.line
                )
            });
        pairs.push((block, expected));
    }
    assert!(
        pairs.len() >= 15,
        "only {} curl examples found",
        pairs.len()
    );

    let server = TestServer::start().await;
    let mut covered = Vec::new();
    for (example, expected) in pairs {
        let command = example.body.trim();
        assert_eq!(
            command.lines().count(),
            1,
            "one curl command per block: {command}"
        );
        covered.push(curl_operation(command));
        let mut sh = Command::new("sh");
        sh.args(["-c", &localize(command, &server)]);
        let run = run(sh, None).await;
        assert_answered_as_shown(example, expected, &run);
    }
    server.shutdown().await;

    // Together the examples show every documented operation, except those that serve a whole
    // document (tag `documents`): tests/openapi.rs and tests/asyncapi.rs compare those exactly.
    let doc: Value =
        serde_json::from_str(&pubsub::http::docs::openapi_json()).expect("OpenAPI JSON");
    for (template, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if operation["tags"]
                .as_array()
                .is_some_and(|t| t.contains(&"documents".into()))
            {
                continue;
            }
            let method = method.to_ascii_uppercase();
            assert!(
                covered
                    .iter()
                    .any(|(m, p)| *m == method && path_matches(template, p)),
                "no curl example in README.md for {method} {template}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Python and JavaScript

/// What each marked example's output must contain (every line of `all` on one output line),
/// whatever the README shows.
fn expected_output(name: &str) -> &'static [&'static [&'static str]] {
    match name {
        "python" => &[
            &["'action': 'message'", "'Hello from Python'"],
            &["'action': 'published'"],
        ],
        "python-resume" => &[
            &["recovered=True replayed=2"],
            &["seq 1: {'text': 'missed 1'}"],
            &["seq 2: {'text': 'missed 2'}"],
        ],
        "nodes" => &[
            &["node 2:", "'action': 'message'", "'message': {'id': 1}"],
            &["node 1:", "'action': 'published'", "'seq': 1"],
        ],
        "javascript" => &[
            &[
                "received",
                r#""action":"message""#,
                r#""Hello from JavaScript""#,
            ],
            &["received", r#""action":"published""#],
            &["closed"],
        ],
        other => {
            panic!("README example '{other}' has no expected output in tests/readme_examples.rs")
        }
    }
}

/// Keys whose values in a printed frame differ from run to run.
const VOLATILE_PRINTED: [&str; 2] = ["epoch", "published_at"];

/// `line` with each volatile value replaced by `<KEY>`, in Python's dict notation
/// (`'epoch': 'x'`) and in JSON (`"epoch":"x"`).
fn normalize_printed(line: &str) -> String {
    let mut line = line.to_owned();
    for key in VOLATILE_PRINTED {
        for (open, quote) in [
            (format!("'{key}': '"), '\''),
            (format!("\"{key}\":\""), '"'),
        ] {
            let mut from = 0;
            while let Some(at) = line[from..].find(&open) {
                let start = from + at + open.len();
                let Some(len) = line[start..].find(quote) else {
                    break;
                };
                line.replace_range(start..start + len, &format!("<{key}>"));
                from = start;
            }
        }
    }
    line
}

/// The ```` ```text ```` block that shows what the example `name` prints: the block right
/// after it.
fn printed_output(name: &str) -> Block {
    let all = blocks(&readme());
    let at = all
        .iter()
        .position(|b| b.example_name() == Some(name))
        .unwrap_or_else(|| panic!("README.md has no example '{name}'"));
    all.get(at + 1)
        .filter(|b| b.lang == "text")
        .cloned()
        .unwrap_or_else(|| {
            panic!("README example '{name}' is not followed by a ```text block of its output")
        })
}

/// Asserts that `printed` is, line for line, what the README shows under `shown`, except for
/// the values of [`VOLATILE_PRINTED`].
fn assert_printed_as_shown(what: &str, shown: &Block, printed: &str) {
    let want: Vec<String> = shown.body.lines().map(normalize_printed).collect();
    let got: Vec<String> = printed.lines().map(normalize_printed).collect();
    assert_eq!(
        got, want,
        "{what} printed something else than README.md shows at line {} \
         (left: printed, right: README; {VOLATILE_PRINTED:?} values aside)",
        shown.line
    );
}

fn assert_output(name: &str, run: &Run) {
    assert!(
        run.status.success(),
        "README example '{name}' failed:\n{}",
        run.describe()
    );
    for needles in expected_output(name) {
        assert!(
            run.stdout
                .lines()
                .any(|l| needles.iter().all(|n| l.contains(n))),
            "README example '{name}': no output line contains all of {needles:?}\n{}",
            run.describe()
        );
    }
    assert_printed_as_shown(
        &format!("README example '{name}'"),
        &printed_output(name),
        &run.stdout,
    );
}

#[test]
fn printed_outputs_are_compared_modulo_volatile_values_only() {
    // The comparison above ignores epochs and timestamps, and nothing else.
    let readme_line =
        "{'action': 'subscribed', 'topic': 'news', 'epoch': 'wNJ3pNf6sA6q', 'replayed': 0}";
    let printed = "{'action': 'subscribed', 'topic': 'news', 'epoch': 'Zz9', 'replayed': 0}";
    assert_eq!(normalize_printed(readme_line), normalize_printed(printed));
    let other_topic = printed.replace("'news'", "'sports'");
    assert_ne!(
        normalize_printed(readme_line),
        normalize_printed(&other_topic)
    );
    let json = r#"received {"seq":1,"published_at":"2026-11-27T10:52:42.108Z","epoch":"a"}"#;
    assert_eq!(
        normalize_printed(json),
        r#"received {"seq":1,"published_at":"<published_at>","epoch":"<epoch>"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_examples_work_as_written() {
    let text = readme();
    let nodes = section_lines(&text, NODES_SECTION);
    // The several-nodes example runs against nodes of its own, below.
    let examples: Vec<(String, Block)> = examples("python")
        .into_iter()
        .filter(|(_, b)| !nodes.contains(&b.line))
        .collect();
    assert!(
        examples.iter().any(|(n, _)| n == "python")
            && examples.iter().any(|(n, _)| n == "python-resume"),
        "README.md lacks the marked Python examples: {:?}",
        examples.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    let python = match python_with(&["websockets"]) {
        Ok(python) => python,
        Err(reason) => return missing_tool(&reason),
    };
    for (name, block) in examples {
        let server = TestServer::start().await;
        let script = localize(&block.body, &server);
        // `python3 example.py`, with the Python that has websockets first on the PATH.
        let run = run(python.command("python3"), Some(("example.py", &script))).await;
        assert_output(&name, &run);
        server.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_example_works_as_written() {
    let examples = examples("javascript");
    assert!(
        examples.iter().any(|(n, _)| n == "javascript"),
        "README.md lacks the marked JavaScript example"
    );
    if !succeeds("node", &["--version"]) {
        return missing_tool("node is not installed");
    }
    let Some(flags) = common::tools::node_websocket_args() else {
        return missing_tool(
            "node has no global WebSocket (Node.js 20 with --experimental-websocket, or 22+)",
        );
    };
    for (name, block) in examples {
        let server = TestServer::start().await;
        let script = localize(&block.body, &server);
        let mut node = Command::new("node");
        node.args(&flags);
        let run = run(node, Some(("example.js", &script))).await;
        assert_output(&name, &run);
        server.shutdown().await;
    }
}

// ---------------------------------------------------------------------------------------------
// The generated Python client

/// The README's generated-client example: the ```` ```bash ```` block that generates the
/// client, the ```` ```python ```` block that uses it, and the ```` ```text ```` block of what
/// that prints.
fn generated_client_blocks() -> (Block, Block, Block) {
    let all = blocks(&readme());
    let at = all
        .iter()
        .position(|b| b.lang == "bash" && b.body.contains("openapi-python-client generate"))
        .expect("README.md shows how to generate the Python client");
    match &all[at..] {
        [generate, usage, printed, ..]
            if usage.lang == "python"
                && usage.body.contains("from pubsub_client import")
                && printed.lang == "text" =>
        {
            (generate.clone(), usage.clone(), printed.clone())
        }
        _ => panic!(
            "README.md line {}: the generate command is not followed by the ```python block \
             that uses the client and the ```text block of what it prints",
            all[at].line
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_client_example_works_as_written() {
    let (generate, usage, printed) = generated_client_blocks();
    let python = match python_with(&["openapi_python_client", "httpx", "attrs", "dateutil"]) {
        Ok(python) => python,
        Err(reason) => return missing_tool(&reason),
    };
    // The example's folder: `openapi/openapi.json` there is this repository's, as in a clone.
    let dir = scratch_dir();
    std::os::unix::fs::symlink(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi"),
        dir.join("openapi"),
    )
    .expect("link openapi/ into the example's folder");
    // Every command of the block but the `pip install`, which is what the test setup did to
    // get this Python.
    for command in generate.body.lines().map(str::trim) {
        if command.is_empty() || command.contains("pip install") {
            continue;
        }
        let mut sh = python.command("sh");
        sh.args(["-c", command]);
        let run = run_in(&dir, sh, None).await;
        assert!(
            run.status.success(),
            "README.md line {}: {command}\n{}",
            generate.line,
            run.describe()
        );
    }
    assert!(
        dir.join("pubsub_client/__init__.py").is_file(),
        "the README's command generated the package pubsub_client"
    );
    let server = TestServer::start().await;
    let script = localize(&usage.body, &server);
    let run = run_in(
        &dir,
        python.command("python3"),
        Some(("example.py", &script)),
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        run.status.success(),
        "README.md line {}: the generated-client example failed\n{}",
        usage.line,
        run.describe()
    );
    assert_printed_as_shown("the generated-client example", &printed, &run.stdout);
    // It did what it says, seen from the server.
    let topic = server.get("/topics/news").await.json();
    assert_eq!(topic["messages_published"], 1, "{topic}");
}

// Rust and the command line

/// `examples/client.rs`, which README.md shows as its Rust example.
#[path = "../examples/client.rs"]
#[allow(dead_code)] // its `main` is for `cargo run --example client`
mod rust_example;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_example_is_examples_client_rs_and_runs() {
    let examples = examples("rust");
    let [(name, block)] = examples.as_slice() else {
        panic!("README.md should have one marked Rust example: {examples:?}");
    };
    assert_eq!(name, "rust");
    assert_eq!(
        block.body,
        include_str!("../examples/client.rs"),
        "README.md line {}: the Rust example must be examples/client.rs, word for word",
        block.line
    );
    let server = TestServer::start().await;
    let url = format!("http://{}", server.addr);
    tokio::time::timeout(EXAMPLE_TIMEOUT, rust_example::run(&url))
        .await
        .expect("the Rust example finishes")
        .expect("the Rust example succeeds");
    // What it did, as the server saw it: created news, subscribed, published one message and
    // received it, then closed.
    let stats = server
        .wait_for_stats("the example's connection closed", |s| s["connections"] == 0)
        .await;
    assert_eq!(stats["topics"]["news"]["messages_published"], 1, "{stats}");
    assert_eq!(stats["messages_delivered"], 1, "{stats}");
    server.shutdown().await;
}

/// A line of output with what changes from run to run (epochs, timestamps) masked.
fn mask(line: &str) -> String {
    let mut line = line.to_owned();
    for key in [
        r#""epoch":""#,
        r#""published_at":""#,
        r#""old_epoch":""#,
        r#""new_epoch":""#,
    ] {
        if let Some(start) = line.find(key).map(|i| i + key.len())
            && let Some(len) = line[start..].find('"')
        {
            line.replace_range(start..start + len, "*");
        }
    }
    if line.starts_with('[')
        && let Some(end) = line.find("] ")
    {
        line.replace_range(1..end, "*");
    }
    if let Some(value) = line.trim_start().strip_prefix("epoch:") {
        line = line.replace(value.trim(), "*");
    }
    line
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_line_example_prints_as_shown() {
    let all = blocks(&readme());
    let at = all
        .iter()
        .position(|b| b.lang == "bash" && b.example_name() == Some("cli"))
        .expect("README.md has a bash block marked readme-example: cli");
    let (example, shown) = (&all[at], &all[at + 1]);
    assert_eq!(
        shown.lang, "text",
        "README.md line {}: the command-line example is followed by its output",
        example.line
    );
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_pubsub"))
        .parent()
        .expect("the binary's directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let server = TestServer::start().await;
    let script = localize(&example.body, &server);
    let mut sh = Command::new("sh");
    sh.arg("-e").env("PATH", &path);
    let run = run(sh, Some(("example.sh", &script))).await;
    assert!(
        run.status.success(),
        "the command-line example failed:\n{}",
        run.describe()
    );
    let got: Vec<String> = run.stdout.lines().map(mask).collect();
    let want: Vec<String> = shown.body.lines().map(mask).collect();
    assert_eq!(
        got,
        want,
        "README.md line {}: the command-line example prints something else\n{}",
        shown.line,
        run.describe()
    );
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Several nodes

/// The ports the several-nodes section uses: Redis, node 1 and node 2. Each is replaced by a
/// free port, so the test never reaches a Redis the machine runs on 6379.
const README_NODE_PORTS: [u16; 3] = [6379, 8001, 8002];

/// How the section runs the broker; the test runs the binary it built instead.
const README_RUN: &str = "cargo run --release --";

/// `body` with the section's ports replaced by `ports` (in the order of [`README_NODE_PORTS`];
/// `localhost` becomes `127.0.0.1`, as in the other examples) and [`README_RUN`] by the test's
/// binary. Fails where a README port appears in a form this does not replace.
fn localize_nodes(body: &str, line: usize, ports: &[u16; 3]) -> String {
    let mut out = body.replace(README_RUN, env!("CARGO_BIN_EXE_pubsub"));
    for (readme, free) in README_NODE_PORTS.iter().zip(ports) {
        let forms = [
            (format!("localhost:{readme}"), format!("127.0.0.1:{free}")),
            (format!("127.0.0.1:{readme}"), format!("127.0.0.1:{free}")),
            (format!("--port {readme}"), format!("--port {free}")),
        ];
        let replaced: usize = forms
            .iter()
            .map(|(f, _)| body.matches(f.as_str()).count())
            .sum();
        assert_eq!(
            body.matches(&readme.to_string()).count(),
            replaced,
            "README.md line {line}: port {readme} appears in a form the test does not replace:\n{body}"
        );
        for (from, to) in &forms {
            out = out.replace(from.as_str(), to);
        }
    }
    out
}

/// The section's long-running commands (Redis, the nodes) and the folder they run in: the
/// processes are killed by pid and the folder removed when dropped, failed or not.
struct Started {
    dir: PathBuf,
    processes: Vec<(String, std::process::Child)>,
}

impl Drop for Started {
    fn drop(&mut self) {
        for (_, child) in self.processes.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `command`, a localized line of the section, as `sh -c 'exec COMMAND'` in `dir`
/// (without the test's `PUBSUB_*` variables, its output in a file there), and waits until it
/// serves on its `--port`: a node until `/health` answers 200, Redis until it accepts.
async fn start_and_wait(started: &mut Started, command: &str, line: usize) {
    let dir = started.dir.clone();
    let port: u16 = command
        .split("--port ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("README.md line {line}: no --port in `{command}`"));
    let log = dir.join(format!("process-{}.log", started.processes.len()));
    let out = File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut sh = Command::new("sh");
    sh.arg("-c").arg(format!("exec {command}"));
    for (name, _) in std::env::vars_os() {
        if name
            .to_str()
            .is_some_and(|n| n.starts_with("PUBSUB_") || n == "RUST_LOG")
        {
            sh.env_remove(name);
        }
    }
    let child = sh
        .current_dir(&dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("start `{command}`: {e}"));
    started.processes.push((command.to_owned(), child));
    let node = command.starts_with(env!("CARGO_BIN_EXE_pubsub"));
    let read_log =
        || String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((_, child)) = started.processes.last_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!(
                "README.md line {line}: `{command}` exited ({status}) before serving:\n{}",
                read_log()
            );
        }
        if serves(port, node).await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "README.md line {line}: `{command}` did not serve on port {port} within 30 s:\n{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether something accepts on `port` (and, for a node, answers `GET /health` with 200).
async fn serves(port: u16, node: bool) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connect = tokio::net::TcpStream::connect(("127.0.0.1", port));
    let Ok(Ok(mut stream)) = tokio::time::timeout(Duration::from_secs(2), connect).await else {
        return false;
    };
    if !node {
        return true;
    }
    if stream
        .write_all(b"GET /health HTTP/1.0\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response));
    matches!(read.await, Ok(Ok(_)))
        && String::from_utf8_lossy(&response)
            .lines()
            .next()
            .is_some_and(|status| status.split_whitespace().nth(1) == Some("200"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_nodes_section_runs_as_written() {
    let text = readme();
    let lines = section_lines(&text, NODES_SECTION);
    let section: Vec<Block> = blocks(&text)
        .into_iter()
        .filter(|b| lines.contains(&b.line))
        .collect();
    assert!(
        section.len() >= 4,
        "the section {NODES_SECTION:?} shows its commands"
    );
    if redis_missing() {
        return;
    }
    if !succeeds("curl", &["--version"]) {
        return missing_tool("curl is not installed (apt-get install curl)");
    }
    let python = match python_with(&["websockets"]) {
        Ok(python) => python,
        Err(reason) => return missing_tool(&reason),
    };
    let ports = README_NODE_PORTS.map(|_| free_port(u16::MAX));
    assert!(
        ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2],
        "{ports:?}"
    );
    let mut started = Started {
        dir: scratch_dir(),
        processes: Vec::new(),
    };
    // What ran, as the README writes it: the long-running commands, and the clients.
    let mut servers: Vec<&str> = Vec::new();
    let mut clients = String::new();
    let mut at = 0;
    while let Some(block) = section.get(at) {
        let body = localize_nodes(&block.body, block.line, &ports);
        let starts_with_curl = block.body.trim_start().starts_with("curl ");
        match block.lang.as_str() {
            "bash" if starts_with_curl => {
                let expected = section
                    .get(at + 1)
                    .filter(|b| b.lang == "http")
                    .unwrap_or_else(|| {
                        panic!(
                            "the curl example at README.md line {} has no ```http block after it",
                            block.line
                        )
                    });
                let command = body.trim();
                assert_eq!(command.lines().count(), 1, "one curl command per block");
                let mut sh = Command::new("sh");
                sh.args(["-c", command]);
                let run = run(sh, None).await;
                assert_answered_as_shown(block, expected, &run);
                clients.push_str(&block.body);
                at += 2;
            }
            "bash" => {
                // One long-running command a line: Redis, then the nodes.
                for readme_line in block.body.lines().map(str::trim).filter(|l| !l.is_empty()) {
                    servers.push(readme_line);
                    let command = localize_nodes(readme_line, block.line, &ports);
                    let command = match std::env::var("PUBSUB_REDIS_SERVER") {
                        Ok(server) if command.starts_with("redis-server ") => {
                            command.replacen("redis-server", &server, 1)
                        }
                        _ => command,
                    };
                    start_and_wait(&mut started, &command, block.line).await;
                }
                at += 1;
            }
            "python" if block.example_name().is_some() => {
                let name = block.example_name().unwrap_or_default();
                let run = run(python.command("python3"), Some(("example.py", &body))).await;
                // Compared with the ```text block right after it.
                assert_output(name, &run);
                clients.push_str(&block.body);
                at += 2;
            }
            other => panic!(
                "README.md line {}: the section {NODES_SECTION:?} has a ```{other} block that \
                 the test does not run",
                block.line
            ),
        }
    }
    let count = |start: &str| servers.iter().filter(|s| s.starts_with(start)).count();
    assert_eq!(
        (servers.len(), count("redis-server "), count(README_RUN)),
        (3, 1, 2),
        "the section starts one Redis and two nodes: {servers:?}"
    );
    for node in ["localhost:8001", "localhost:8002"] {
        assert!(
            clients.contains(node),
            "no client of the section talks to {node}"
        );
    }
    // The two nodes are one deployment: each lists both.
    for port in &ports[1..] {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
        let stats = common::http_request(addr, "GET", "/stats", &[], b"")
            .await
            .json();
        assert_eq!(stats["engine"], "redis", "{stats}");
        assert_eq!(stats["nodes"].as_array().map(Vec::len), Some(2), "{stats}");
    }
    drop(started);
}
