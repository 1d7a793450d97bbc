//! schemathesis against the live server's own `/api-doc/openapi.json`, every check on: no server
//! error, no response that breaks the documented schema, status codes, content types and headers
//! as documented, valid requests accepted and invalid ones rejected, and the stateful links
//! (create, then read and delete what was created).
//!
//! The tool comes from `PUBSUB_SCHEMATHESIS` (the path of its `schemathesis` executable), else
//! `/opt/schemathesis-venv/bin/schemathesis` (where `.ci/run` installs it), else `schemathesis` on
//! the PATH. Missing, the test prints why and skips, unless `PUBSUB_REQUIRE_TOOLS=1`.
//! `PUBSUB_SCHEMATHESIS_EXAMPLES` sets the examples per operation (default 50, a few seconds);
//! schemathesis prints its seed, and `PUBSUB_SCHEMATHESIS_SEED` replays one.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::child::ChildServer;

/// Where `.ci/run` installs schemathesis.
const CI_VENV: &str = "/opt/schemathesis-venv/bin/schemathesis";

/// The most one run may take before it is stopped and fails.
const RUN_LIMIT: Duration = Duration::from_secs(600);

fn tools_required() -> bool {
    std::env::var("PUBSUB_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// `program --version`, if it runs.
fn version(program: &str) -> Option<String> {
    let output = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The schemathesis executable and its version, or why there is none.
fn find_schemathesis() -> Result<(String, String), String> {
    if let Ok(path) = std::env::var("PUBSUB_SCHEMATHESIS") {
        return version(&path)
            .map(|v| (path.clone(), v))
            .ok_or_else(|| format!("PUBSUB_SCHEMATHESIS={path} does not run"));
    }
    [CI_VENV, "schemathesis"]
        .into_iter()
        .find_map(|p| version(p).map(|v| (p.to_owned(), v)))
        .ok_or_else(|| {
            format!(
                "schemathesis is not installed (not at {CI_VENV}, nor on the PATH; \
                 `python3 -m venv /opt/schemathesis-venv && \
                 /opt/schemathesis-venv/bin/pip install schemathesis`, or set PUBSUB_SCHEMATHESIS)"
            )
        })
}

#[test]
fn schemathesis_finds_no_failure_with_every_check() {
    let (program, version) = match find_schemathesis() {
        Ok(found) => found,
        Err(reason) if tools_required() => {
            panic!("{reason}, and PUBSUB_REQUIRE_TOOLS=1 requires it")
        }
        Err(reason) => {
            eprintln!("SKIPPED: {reason} (set PUBSUB_REQUIRE_TOOLS=1 to make this a failure)");
            return;
        }
    };
    eprintln!("{program}: {version}");
    let server = ChildServer::start(&[]);
    let url = format!("http://{}/api-doc/openapi.json", server.addr);
    let examples = std::env::var("PUBSUB_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "50".into());
    // Its working files (none expected with the database off) stay out of the source tree.
    let workdir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis");
    std::fs::create_dir_all(&workdir).expect("create the working directory");
    let mut cmd = Command::new(&program);
    cmd.args(["run", "--checks", "all", "--max-examples", &examples])
        .args([
            "--generation-database",
            "none",
            "--no-color",
            "--request-timeout",
            "30",
        ])
        .arg(&url)
        .current_dir(&workdir)
        .env("PYTHONIOENCODING", "utf-8")
        .stdin(Stdio::null());
    if let Ok(seed) = std::env::var("PUBSUB_SCHEMATHESIS_SEED") {
        cmd.args(["--seed", &seed]);
    }
    let out_path = workdir.join("output.txt");
    let out = std::fs::File::create(&out_path).expect("create the output file");
    let mut child = cmd
        .stdout(out.try_clone().expect("clone the output file"))
        .stderr(out)
        .spawn()
        .expect("start schemathesis");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for schemathesis") {
            break Some(status);
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    println!("{output}");
    let status = status.unwrap_or_else(|| panic!("schemathesis ran over {RUN_LIMIT:?}"));
    assert!(
        status.success(),
        "schemathesis found failures against {url} ({status}); its report is above"
    );
    assert!(
        output.contains("No issues found"),
        "schemathesis exited 0 without saying it found no issues"
    );
    drop(server);
}
