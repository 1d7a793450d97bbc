//! The JavaScript client (`clients/js`, an npm package written in TypeScript): the committed
//! `dist/` is what `tsc` makes of `src/` (the broker embeds `dist/` for its console, so it must
//! not drift), and its unit tests (`tests/clients/js_client_unit.mjs`, with node's own test
//! runner and a fake WebSocket) pass against that `dist/`. Its proof against a real server
//! through the proxy is in `client_reconnect.rs`, beside the Rust client and `pubsub sub`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::tools;

/// What rebuilds `dist/` from the source.
const REBUILD: &str = "cd clients/js && npm ci && npm run build";

/// Every file under `dir`, by its path relative to `dir`.
fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
    {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            for (inner, text) in files(&path) {
                all.insert(format!("{name}/{inner}"), text);
            }
        } else {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            all.insert(name, text);
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_dist_is_what_tsc_makes_of_the_source() {
    if let Some(reason) = tools::typescript_missing() {
        return tools::missing_tool(&reason);
    }
    let package = tools::js_client_dir();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("js-client-dist");
    let _ = std::fs::remove_dir_all(&out);
    let mut tsc = Command::new("node");
    tsc.current_dir(&package)
        .arg("node_modules/typescript/bin/tsc")
        .args(["-p", "tsconfig.json", "--outDir"])
        .arg(&out);
    let run = tools::run(tsc, Duration::from_secs(120)).await;
    assert!(
        run.success(),
        "tsc (strict) rejects the source:\n{}",
        run.describe()
    );
    let built = files(&out);
    let committed = files(&package.join("dist"));
    assert!(
        built.contains_key("index.js") && built.contains_key("index.d.ts"),
        "{:?}",
        built.keys()
    );
    assert_eq!(
        built.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>(),
        "clients/js/dist has other files than tsc makes; rebuild it with: {REBUILD}"
    );
    for (name, text) in &built {
        assert!(
            committed[name] == *text,
            "clients/js/dist/{name} differs from what tsc makes of clients/js/src; rebuild it with: {REBUILD}"
        );
    }
}

#[test]
fn the_package_has_no_runtime_dependency_and_pins_its_compiler() {
    let package = tools::js_client_dir();
    let read = |name: &str| -> serde_json::Value {
        let text = std::fs::read_to_string(package.join(name)).expect(name);
        serde_json::from_str(&text).expect(name)
    };
    let manifest = read("package.json");
    assert_eq!(manifest["type"], "module");
    assert_eq!(manifest["types"], "./dist/index.d.ts");
    assert_eq!(manifest["exports"]["."]["import"], "./dist/index.js");
    assert!(manifest.get("dependencies").is_none(), "{manifest}");
    let dev = manifest["devDependencies"]
        .as_object()
        .expect("devDependencies");
    assert_eq!(dev.keys().collect::<Vec<_>>(), ["typescript"]);
    let lock = read("package-lock.json");
    assert_eq!(
        lock["packages"]["node_modules/typescript"]["version"], dev["typescript"],
        "package-lock.json pins the version package.json names"
    );
    let config = read("tsconfig.json");
    assert_eq!(config["compilerOptions"]["strict"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_clients_unit_tests_pass() {
    if !tools::succeeds("node", &["--version"]) {
        return tools::missing_tool("node is not installed");
    }
    let mut node = Command::new("node");
    node.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--test", "tests/clients/js_client_unit.mjs"]);
    let run = tools::run(node, Duration::from_secs(60)).await;
    assert!(run.success(), "{}", run.describe());
    assert!(run.stdout.contains("# fail 0"), "{}", run.describe());
}
