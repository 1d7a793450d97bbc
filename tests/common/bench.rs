//! Running the `pubsub-bench` binary from a test and reading its JSON lines.

use std::process::{Command, Output};

use serde_json::Value;

/// Runs pubsub-bench with `args` on a blocking thread (a server may run on the test's runtime),
/// with short bounds: a hang is a bug, and a smoke test must end by itself.
pub async fn bench(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_pubsub-bench"))
            .args(["--timeout", "60", "--drain-timeout", "10", "--pause", "0"])
            .args(&args)
            .output()
            .expect("run pubsub-bench")
    })
    .await
    .expect("join")
}

/// Every JSON line of the output.
pub fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
        .collect()
}

/// The JSON line of each run, whatever the exit status.
pub fn run_lines(out: &Output) -> Vec<Value> {
    json_lines(out)
        .into_iter()
        .filter(|v| v.get("run").is_some())
        .collect()
}

/// The JSON line of each run, after checking the command succeeded.
pub fn runs(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "pubsub-bench failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    run_lines(out)
}

/// The only run's JSON line, which must be ok.
pub fn one_run(out: &Output) -> Value {
    let runs = runs(out);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = runs.into_iter().next().unwrap();
    assert_eq!(run["ok"], true, "{run}");
    run
}

/// `--compare`'s line for `key`.
pub fn compare_line(out: &Output, key: &str) -> Value {
    json_lines(out)
        .into_iter()
        .find(|v| v["compare"] == key)
        .unwrap_or_else(|| panic!("no compare line for {key}"))
}

/// Owned strings from string slices.
pub fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}
