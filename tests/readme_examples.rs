//! The examples of the README and the manual, run as written against a live server.
//!
//! Every fenced block is read from `README.md` and each `docs/*.md`; the only change made to a
//! block before it runs is the server address: `localhost:8000` becomes the test server's
//! `127.0.0.1:PORT`. A block whose first line is `# readme-example: KIND` (or `// ...`) must
//! name a kind this test knows ([`MARKERS`]), in the language that kind runs.
//!
//! - ```` ```bash ```` blocks that start with `curl ` run in order, one fresh server for each
//!   file, and
//!   the ```` ```http ```` block after each must match what came back: the status line, every
//!   header it lists, and the JSON body (values included, except the ones that differ from run
//!   to run: `epoch`, `published_at`, `uptime_seconds`). Together they must cover every
//!   operation of the OpenAPI document.
//! - The configuration table of `docs/configuration.md` has a row for every flag `pubsub --help`
//!   shows, and no other.
//! - ```` ```python ```` and ```` ```javascript ```` blocks whose first line is
//!   `# readme-example: NAME` / `// readme-example: NAME` run with `python3` and `node`, each
//!   against its own fresh server, and what they print must be, line for line, the
//!   ```` ```text ```` block that follows each in its file (only `epoch` and `published_at`
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
//! - The section "Run several nodes" of `docs/scale-out.md` (up to its next heading) runs on its own, in order, against what it starts itself:
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

/// The address the examples use.
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
// Reading the README and the manual

/// One fenced block.
#[derive(Debug, Clone)]
struct Block {
    /// The file it is in, relative to the repository (`README.md`, `docs/rest-api.md`).
    file: String,
    /// The info string's first word (`bash`, `http`, `python`, ...).
    lang: String,
    body: String,
    /// 1-based line of the opening fence, for messages.
    line: usize,
}

impl Block {
    /// Where it is, for messages: `docs/clients.md line 12`.
    fn at(&self) -> String {
        format!("{} line {}", self.file, self.line)
    }

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

/// The example kinds a marker may name, and the language of the block each runs.
const MARKERS: &[(&str, &str)] = &[
    ("python", "python"),
    ("python-resume", "python"),
    ("nodes", "python"),
    ("javascript", "javascript"),
    ("rust", "rust"),
    ("cli", "bash"),
    ("security", "bash"),
    ("security-python", "python"),
];

/// The text of `file`, relative to the repository.
fn read_doc(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn readme() -> String {
    read_doc("README.md")
}

/// The files whose examples run: `README.md`, then each `docs/*.md` by name.
fn documents() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let mut docs: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    docs.sort();
    assert!(docs.len() >= 10, "docs/ holds the manual: {docs:?}");
    std::iter::once("README.md".to_owned())
        .chain(docs)
        .collect()
}

/// The fenced blocks of every document, file after file.
fn all_blocks() -> Vec<Block> {
    documents()
        .iter()
        .flat_map(|file| blocks(file, &read_doc(file)))
        .collect()
}

/// The block after `all[at]`, if it is in the same file.
fn next_block(all: &[Block], at: usize) -> Option<&Block> {
    all.get(at + 1).filter(|b| b.file == all[at].file)
}

/// The fenced blocks of `text`, the file `file`. A fence indented (inside a list item) indents
/// its block's lines as much: that indentation is removed, as Markdown renders it.
fn blocks(file: &str, text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(Block, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        match open.as_mut() {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let indent = line.len() - line.trim_start().len();
                    let block = Block {
                        file: file.to_owned(),
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
    assert!(open.is_none(), "{file} has an unclosed code fence");
    out
}

/// The blocks marked `readme-example: NAME` in language `lang`, as (name, block).
fn examples(lang: &str) -> Vec<(String, Block)> {
    all_blocks()
        .into_iter()
        .filter(|b| b.lang == lang)
        .filter_map(|b| Some((b.example_name()?.to_owned(), b.clone())))
        .collect()
}

/// The file and the heading of the section whose commands start Redis and several nodes.
const NODES_DOC: &str = "docs/scale-out.md";
const NODES_SECTION: &str = "# Run several nodes";

/// The 1-based lines of the section under `heading`, up to the next heading (of any level)
/// outside a code fence.
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
            Some(start) if line.starts_with('#') => return start..i + 1,
            _ => {}
        }
    }
    let start = start.unwrap_or_else(|| panic!("{NODES_DOC} has no section {heading:?}"));
    start..text.lines().count() + 1
}

/// Whether `block` is in the several-nodes section, whose examples run against nodes of their
/// own.
fn in_nodes_section(block: &Block) -> bool {
    block.file == NODES_DOC
        && section_lines(&read_doc(NODES_DOC), NODES_SECTION).contains(&block.line)
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
    let first_block = &blocks("README.md", &text)[0];
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

/// The long flags `pubsub --help` shows, as `--name` (but `--help` and `--version`).
fn help_flags() -> Vec<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_pubsub"))
        .arg("--help")
        .output()
        .expect("run pubsub --help");
    assert!(output.status.success(), "pubsub --help: {output:?}");
    let help = String::from_utf8_lossy(&output.stdout);
    let mut flags: Vec<String> = help
        .lines()
        .filter_map(|line| {
            // `  -p, --port <PORT>` or `      --history-size <N>`: the option's own line (its
            // description is indented further, and may mention other flags).
            let indent = line.len() - line.trim_start().len();
            if indent > 6 {
                return None;
            }
            let line = line.trim_start();
            let line = line.split_once(", ").map_or(line, |(short, rest)| {
                if short.starts_with('-') && short.len() == 2 {
                    rest
                } else {
                    line
                }
            });
            let flag = line.strip_prefix("--")?.split([' ', '=']).next()?;
            Some(format!("--{flag}"))
        })
        .filter(|f| f != "--help" && f != "--version")
        .collect();
    flags.dedup();
    flags
}

/// The flags the configuration table has a row for, in its order.
fn table_flags(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("| `--"))
        .filter_map(|rest| Some(format!("--{}", rest.split('`').next()?)))
        .collect()
}

#[test]
fn configuration_table_lists_every_flag_and_variable() {
    let file = "docs/configuration.md";
    let text = read_doc(file);
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
            "{file}'s configuration table lacks the row {row}"
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
                "{file} gives --{long} a default other than {default}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} flags found");
    assert!(text.contains("`RUST_LOG`"));
}

#[test]
fn configuration_table_has_exactly_the_flags_of_pubsub_help() {
    let file = "docs/configuration.md";
    let mut documented = table_flags(&read_doc(file));
    let mut shown = help_flags();
    assert!(shown.len() >= 9, "pubsub --help shows only {shown:?}");
    assert!(shown.contains(&"--port".to_owned()), "{shown:?}");
    documented.sort();
    shown.sort();
    assert_eq!(
        documented, shown,
        "{file}'s configuration table (left) and pubsub --help (right) list different flags"
    );
}

#[test]
fn flag_lists_are_read_as_written() {
    // The two readers above, on text of each kind: a documented flag that --help lacks would
    // show up on the left.
    assert_eq!(
        table_flags("| flag |\n|---|\n| `--port` | `PUBSUB_PORT` | `8000` | x |\n| | `RUST_LOG` |"),
        ["--port"]
    );
    assert_eq!(table_flags("| `--gone` | `PUBSUB_GONE` |"), ["--gone"]);
}

#[test]
fn error_table_lists_every_code_with_its_status() {
    let (errors, closes) = ("docs/rest-api.md", "docs/websocket.md");
    let text = read_doc(errors);
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
            "{errors}'s error table lacks the row {row}"
        );
    }
    let text = read_doc(closes);
    let token_expired = format!(
        "| {} | `token expired` |",
        pubsub::protocol::close::TOKEN_EXPIRED
    );
    assert!(
        text.contains(&token_expired),
        "{closes}'s close table lacks {token_expired}"
    );
    for close in [
        Close::SLOW_CONSUMER,
        Close::PING_TIMEOUT,
        Close::INTERNAL_ERROR,
        Close::GOING_AWAY,
    ] {
        let row = format!("| {} | `{}` |", close.code, close.reason);
        assert!(
            text.contains(&row),
            "{closes}'s close table lacks the row {row}"
        );
    }
    for code in ["| 1009 |", "| 1007 |"] {
        assert!(text.contains(code), "{closes}'s close table lacks {code}");
    }
}

#[test]
fn every_marker_names_a_known_kind() {
    let all = all_blocks();
    let mut seen = Vec::new();
    for block in &all {
        let Some(name) = block.example_name() else {
            continue;
        };
        let Some((_, lang)) = MARKERS.iter().find(|(kind, _)| *kind == name) else {
            panic!(
                "{}: the marker names the unknown kind {name:?}; known: {:?}",
                block.at(),
                MARKERS.iter().map(|(kind, _)| kind).collect::<Vec<_>>()
            );
        };
        assert_eq!(
            block.lang,
            *lang,
            "{}: an example of kind {name:?} is a ```{lang} block",
            block.at()
        );
        seen.push(name);
    }
    // Each kind runs once: a second block of one kind would not be run.
    for (kind, _) in MARKERS {
        let count = seen.iter().filter(|name| *name == kind).count();
        assert_eq!(count, 1, "examples marked {kind:?}: {count}");
    }
}

#[test]
fn a_marker_is_read_from_the_first_line_only() {
    let text = "```python\n# readme-example: pythn\nprint(1)\n```\n```bash\necho\n# readme-example: cli\n```\n";
    let found = blocks("x.md", text);
    assert_eq!(found[0].example_name(), Some("pythn"));
    assert!(!MARKERS.iter().any(|(kind, _)| *kind == "pythn"));
    assert_eq!(found[1].example_name(), None);
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
    let context = format!("{}: {command}\n{}", example.at(), run.describe());
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
                "{} shows the line {line:?}, not in the response: {context}",
                expected.at()
            );
        }
        return;
    }
    let want_body: Value = serde_json::from_str(&want.body)
        .unwrap_or_else(|e| panic!("{}: shown body is not JSON ({e})", expected.at()));
    let got_body: Value = serde_json::from_str(&got.body)
        .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {context}"));
    if let Err(diff) = json_matches(&want_body, &got_body, None, "body") {
        panic!("{} shows another body: {diff}\n{context}", expected.at());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_examples_answer_as_shown() {
    if !succeeds("curl", &["--version"]) {
        return missing_tool("curl is not installed (apt-get install curl)");
    }
    let all = all_blocks();
    let mut pairs = Vec::new();
    for (i, block) in all.iter().enumerate() {
        // The several-nodes section's examples run against nodes of their own, below.
        if block.lang != "bash"
            || !block.body.trim_start().starts_with("curl ")
            || in_nodes_section(block)
        {
            continue;
        }
        let expected = next_block(&all, i)
            .filter(|b| b.lang == "http")
            .unwrap_or_else(|| {
                panic!(
                    "the curl example at {} has no ```http block after it",
                    block.at()
                )
            });
        pairs.push((block, expected));
    }
    assert!(
        pairs.len() >= 15,
        "only {} curl examples found",
        pairs.len()
    );
    for file in ["README.md", "docs/rest-api.md"] {
        assert!(
            pairs.iter().any(|(b, _)| b.file == file),
            "{file} has no curl example"
        );
    }

    // Each file's examples in order, against a fresh server of their own: each file reads
    // from the top, whatever the others did.
    let mut covered = Vec::new();
    let mut server: Option<(String, TestServer)> = None;
    for (example, expected) in pairs {
        if server
            .as_ref()
            .is_none_or(|(file, _)| *file != example.file)
        {
            if let Some((_, old)) = server.take() {
                old.shutdown().await;
            }
            server = Some((example.file.clone(), TestServer::start().await));
        }
        let Some((_, server)) = server.as_ref() else {
            unreachable!("a server was started above")
        };
        let command = example.body.trim();
        assert_eq!(
            command.lines().count(),
            1,
            "{}: one curl command per block: {command}",
            example.at()
        );
        covered.push(curl_operation(command));
        let mut sh = Command::new("sh");
        sh.args(["-c", &localize(command, server)]);
        let run = run(sh, None).await;
        assert_answered_as_shown(example, expected, &run);
    }
    if let Some((_, server)) = server {
        server.shutdown().await;
    }

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
                "no curl example in README.md or docs/ for {method} {template}"
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
        "security-python" => &[
            &["without a token: 401"],
            &[r#""action":"subscribed""#, r#""topic":"chat.general""#],
            &[r#""action":"message""#, r#""message":"hi""#],
            &[r#""code":"forbidden""#, "'news'"],
        ],
        "javascript" => &[
            &["subscribed", r#""lastSeq":0"#],
            &["#1", r#""Hello from JavaScript""#],
            &["published seq 1"],
        ],
        other => {
            panic!("example '{other}' has no expected output in tests/readme_examples.rs")
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
    let all = all_blocks();
    let at = all
        .iter()
        .position(|b| b.example_name() == Some(name))
        .unwrap_or_else(|| panic!("README.md and docs/ have no example '{name}'"));
    next_block(&all, at)
        .filter(|b| b.lang == "text")
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{}: example '{name}' is not followed by a ```text block of its output",
                all[at].at()
            )
        })
}

/// Asserts that `printed` is, line for line, what the README shows under `shown`, except for
/// the values of [`VOLATILE_PRINTED`].
fn assert_printed_as_shown(what: &str, shown: &Block, printed: &str) {
    let want: Vec<String> = shown.body.lines().map(normalize_printed).collect();
    let got: Vec<String> = printed.lines().map(normalize_printed).collect();
    assert_eq!(
        got,
        want,
        "{what} printed something else than {} shows \
         (left: printed, right: shown; {VOLATILE_PRINTED:?} values aside)",
        shown.at()
    );
}

fn assert_output(name: &str, run: &Run) {
    assert!(
        run.status.success(),
        "example '{name}' failed:\n{}",
        run.describe()
    );
    for needles in expected_output(name) {
        assert!(
            run.stdout
                .lines()
                .any(|l| needles.iter().all(|n| l.contains(n))),
            "example '{name}': no output line contains all of {needles:?}\n{}",
            run.describe()
        );
    }
    assert_printed_as_shown(
        &format!("example '{name}'"),
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
    // The several-nodes example runs against nodes of its own, below.
    // The security example runs against a server that requires tokens, below.
    let examples: Vec<(String, Block)> = examples("python")
        .into_iter()
        .filter(|(n, b)| !in_nodes_section(b) && n != "security-python")
        .collect();
    assert!(
        examples.iter().any(|(n, _)| n == "python")
            && examples.iter().any(|(n, _)| n == "python-resume"),
        "README.md and docs/ lack the marked Python examples: {:?}",
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
        "README.md and docs/ lack the marked JavaScript example"
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
        // As a project that installed the package: `@pubsub/client` in its node_modules (a
        // link to clients/js, as `npm install PATH/TO/clients/js` makes), the example an ES
        // module.
        let dir = scratch_dir();
        let scope = dir.join("node_modules/@pubsub");
        std::fs::create_dir_all(&scope).expect("node_modules/@pubsub");
        std::os::unix::fs::symlink(common::tools::js_client_dir(), scope.join("client"))
            .expect("link the package");
        let mut node = Command::new("node");
        node.args(&flags);
        let run = run_in(&dir, node, Some(("example.mjs", &script))).await;
        let _ = std::fs::remove_dir_all(&dir);
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
    let all = all_blocks();
    let at = all
        .iter()
        .position(|b| b.lang == "bash" && b.body.contains("openapi-python-client generate"))
        .expect("README.md or docs/ shows how to generate the Python client");
    match &all[at..] {
        [generate, usage, printed, ..]
            if usage.file == generate.file
                && printed.file == generate.file
                && usage.lang == "python"
                && usage.body.contains("from pubsub_client import")
                && printed.lang == "text" =>
        {
            (generate.clone(), usage.clone(), printed.clone())
        }
        _ => panic!(
            "{}: the generate command is not followed by the ```python block \
             that uses the client and the ```text block of what it prints",
            all[at].at()
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
            "{}: {command}\n{}",
            generate.at(),
            run.describe()
        );
    }
    assert!(
        dir.join("pubsub_client/__init__.py").is_file(),
        "the example's command generated the package pubsub_client"
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
        "{}: the generated-client example failed\n{}",
        usage.at(),
        run.describe()
    );
    assert_printed_as_shown("the generated-client example", &printed, &run.stdout);
    // It did what it says, seen from the server.
    let topic = server.get("/topics/news").await.json();
    assert_eq!(topic["messages_published"], 1, "{topic}");
}

// Rust and the command line

/// `examples/client.rs`, which docs/clients.md shows as its Rust example.
#[path = "../examples/client.rs"]
#[allow(dead_code)] // its `main` is for `cargo run --example client`
mod rust_example;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_example_is_examples_client_rs_and_runs() {
    let examples = examples("rust");
    let [(name, block)] = examples.as_slice() else {
        panic!("README.md and docs/ should have one marked Rust example: {examples:?}");
    };
    assert_eq!(name, "rust");
    assert_eq!(
        block.body,
        include_str!("../examples/client.rs"),
        "{}: the Rust example must be examples/client.rs, word for word",
        block.at()
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
    let all = all_blocks();
    let at = all
        .iter()
        .position(|b| b.lang == "bash" && b.example_name() == Some("cli"))
        .expect("README.md or docs/ has a bash block marked readme-example: cli");
    let example = &all[at];
    let shown = next_block(&all, at)
        .filter(|b| b.lang == "text")
        .unwrap_or_else(|| {
            panic!(
                "{}: the command-line example is followed by its output",
                example.at()
            )
        });
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
        "{}: the command-line example prints something else\n{}",
        shown.at(),
        run.describe()
    );
    server.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Security

/// The secret the security walkthrough's server verifies with, exported to the example as it
/// tells the reader to.
const WALKTHROUGH_SECRET: &str = "readme-walkthrough-secret-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_walkthrough_runs_as_written() {
    let all = all_blocks();
    let find = |name: &str| {
        let at = all
            .iter()
            .position(|b| b.example_name() == Some(name))
            .unwrap_or_else(|| panic!("docs/ has no example marked readme-example: {name}"));
        (&all[at], printed_output(name))
    };
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_pubsub"))
        .parent()
        .expect("the binary's directory");
    let server = TestServer::with_args(&["--auth-hmac-secret", WALKTHROUGH_SECRET]).await;

    // The shell walkthrough: pubsub token, curl and the command line.
    let (example, shown) = find("security");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut sh = Command::new("sh");
    sh.arg("-e")
        .env("PATH", &path)
        .env("PUBSUB_AUTH_HMAC_SECRET", WALKTHROUGH_SECRET);
    let run_sh = run(sh, Some(("example.sh", &localize(&example.body, &server)))).await;
    assert!(
        run_sh.status.success(),
        "the security walkthrough failed:\n{}",
        run_sh.describe()
    );
    let got: Vec<String> = run_sh.stdout.lines().map(mask).collect();
    let want: Vec<String> = shown.body.lines().map(mask).collect();
    assert_eq!(
        got,
        want,
        "{}: the walkthrough prints something else\n{}",
        shown.at(),
        run_sh.describe()
    );

    // The Python example, on the same server (it reads what the walkthrough published).
    let python = match python_with(&["websockets"]) {
        Ok(python) => python,
        Err(reason) => return missing_tool(&reason),
    };
    let (example, _) = find("security-python");
    let mut command = python.command("python3");
    let mut path = vec![bin_dir.to_owned()];
    path.extend(std::env::split_paths(
        &command
            .get_envs()
            .find(|(k, _)| *k == "PATH")
            .and_then(|(_, v)| v.map(|v| v.to_owned()))
            .unwrap_or_default(),
    ));
    command
        .env("PATH", std::env::join_paths(path).expect("PATH joins"))
        .env("PUBSUB_AUTH_HMAC_SECRET", WALKTHROUGH_SECRET);
    let script = localize(&example.body, &server);
    let run_py = run(command, Some(("example.py", &script))).await;
    assert_output("security-python", &run_py);
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
fn localize_nodes(body: &str, at: &str, ports: &[u16; 3]) -> String {
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
            "{at}: port {readme} appears in a form the test does not replace:\n{body}"
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
async fn start_and_wait(started: &mut Started, command: &str, at: &str) {
    let dir = started.dir.clone();
    let port: u16 = command
        .split("--port ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{at}: no --port in `{command}`"));
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
                "{at}: `{command}` exited ({status}) before serving:\n{}",
                read_log()
            );
        }
        if serves(port, node).await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{at}: `{command}` did not serve on port {port} within 30 s:\n{}",
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
    let section: Vec<Block> = blocks(NODES_DOC, &read_doc(NODES_DOC))
        .into_iter()
        .filter(in_nodes_section)
        .collect();
    assert!(
        section.len() >= 4,
        "the section {NODES_SECTION:?} of {NODES_DOC} shows its commands"
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
        let body = localize_nodes(&block.body, &block.at(), &ports);
        let starts_with_curl = block.body.trim_start().starts_with("curl ");
        match block.lang.as_str() {
            "bash" if starts_with_curl => {
                let expected = section
                    .get(at + 1)
                    .filter(|b| b.lang == "http")
                    .unwrap_or_else(|| {
                        panic!(
                            "the curl example at {} has no ```http block after it",
                            block.at()
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
                    let command = localize_nodes(readme_line, &block.at(), &ports);
                    let command = match std::env::var("PUBSUB_REDIS_SERVER") {
                        Ok(server) if command.starts_with("redis-server ") => {
                            command.replacen("redis-server", &server, 1)
                        }
                        _ => command,
                    };
                    start_and_wait(&mut started, &command, &block.at()).await;
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
                "{}: the section {NODES_SECTION:?} has a ```{other} block that \
                 the test does not run",
                block.at()
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
