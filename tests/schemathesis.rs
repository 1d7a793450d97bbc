//! schemathesis against the live server's own `/api-doc/openapi.json`, every check on: no server
//! error, no response that breaks the documented schema, status codes, content types and headers
//! as documented, valid requests accepted and invalid ones rejected, and the stateful links
//! (create, then read and delete what was created). The server requires tokens and schemathesis
//! sends one with every right, so its authentication checks see the documented 401 without a
//! token and with a bad one.
//!
//! The tool comes from `PUBSUB_SCHEMATHESIS` (the path of its `schemathesis` executable), else
//! `/opt/schemathesis-venv/bin/schemathesis` (where `.ci/run` installs it), else `schemathesis` on
//! the PATH, else the test venv under `target/`, made on first use (tests/common/tools.rs).
//! Where none can be had, the test is reported skipped, or fails with `PUBSUB_REQUIRE_TOOLS=1`.
//! `PUBSUB_SCHEMATHESIS_EXAMPLES` sets the examples per operation (default 50, a few seconds);
//! schemathesis prints its seed, and `PUBSUB_SCHEMATHESIS_SEED` replays one.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::child::ChildServer;
use common::tools::missing_tool;

/// The most one run may take before it is stopped and fails.
const RUN_LIMIT: Duration = Duration::from_secs(600);

#[test]
fn schemathesis_finds_no_failure_with_every_check() {
    let (program, version) = match common::tools::schemathesis() {
        Ok(found) => found,
        Err(reason) => return missing_tool(&reason),
    };
    eprintln!("{}: {version}", program.display());
    let server = ChildServer::start(&["--auth-hmac-secret", common::auth::SECRET]);
    let bearer = format!(
        "Authorization: Bearer {}",
        common::auth::hs256(&common::auth::all_rights())
    );
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
            "--header",
            &bearer,
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
