//! `pubsub-bench tables`: the generated section of BENCHMARKS.md, made from the raw JSON lines
//! scripts/bench-all.sh keeps (`bench/raw/ROW.jsonl`: one `{"meta": …}` line describing the row,
//! then one line per run as pubsub-bench printed it).
//!
//! For each row: the runs kept and dropped per server (a failed run, or one that never reported,
//! is dropped), then for each figure the median and range over the kept runs of each server, and
//! the median and range of the ratio between the two servers over the run numbers where both
//! succeeded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use crate::cli::TablesArgs;
use crate::report::median;

const BEGIN: &str = "<!-- bench-tables:begin";
const END: &str = "<!-- bench-tables:end -->";

/// Rows in the order BENCHMARKS.md lists them; others follow alphabetically.
const ROW_ORDER: &[&str] = &[
    "fanout",
    "fanout-full",
    "topics",
    "rate1k",
    "rate10k",
    "conns10k",
    "conns19k",
];

/// The figures shown for each scenario, after its headline, with their labels.
fn figures_of(scenario: &str) -> &'static [(&'static str, &'static str)] {
    const CPU: [(&str, &str); 2] = [
        ("server_us_per_delivery", "server CPU µs per delivery"),
        ("redis_us_per_publish", "Redis CPU µs per publish"),
    ];
    match scenario {
        "fanout" => &[
            ("deliveries_per_s", "deliveries/s"),
            CPU[0],
            CPU[1],
            ("fraction_delivered", "fraction delivered"),
            ("p50_us", "latency p50 µs (queue depth)"),
            ("publishes_per_s", "publishes/s"),
            ("duration_s", "seconds measured"),
            ("harness_load", "harness load"),
        ],
        "topics" => &[
            ("deliveries_per_s", "deliveries/s"),
            CPU[0],
            CPU[1],
            ("fraction_delivered", "fraction delivered"),
            ("duration_s", "seconds measured"),
            ("harness_load", "harness load"),
        ],
        "rate" => &[
            ("p99_us", "latency p99 µs"),
            ("kept_up", "kept up"),
            ("p50_us", "latency p50 µs"),
            ("p999_us", "latency p99.9 µs"),
            ("max_us", "latency max µs"),
            ("deliveries_per_s", "deliveries/s"),
            CPU[0],
            CPU[1],
            ("harness_load", "harness load"),
        ],
        "conns" => &[
            ("server_rss_per_conn_kib", "server RSS KiB per connection"),
            ("connects_per_s", "connects/s"),
            ("fraction_reached", "fraction reached"),
            ("server_us_per_connect", "server CPU µs per connect"),
            CPU[0],
            CPU[1],
            ("harness_load", "harness load"),
        ],
        _ => &[],
    }
}

pub fn run(args: &TablesArgs) -> Result<(), String> {
    let rows = read_rows(&args.raw)?;
    let section = render(&rows, &args.raw.display().to_string());
    if args.stdout {
        print!("{section}");
        return Ok(());
    }
    let doc = std::fs::read_to_string(&args.doc)
        .map_err(|e| format!("cannot read {}: {e}", args.doc.display()))?;
    let updated = replace_section(&doc, &section)
        .ok_or_else(|| format!("{} has no '{BEGIN} …' / '{END}' lines", args.doc.display()))?;
    std::fs::write(&args.doc, updated)
        .map_err(|e| format!("cannot write {}: {e}", args.doc.display()))?;
    println!(
        "{}: generated tables for {} rows from {}",
        args.doc.display(),
        rows.len(),
        args.raw.display()
    );
    Ok(())
}

/// One row's raw results.
struct Row {
    name: String,
    meta: Value,
    runs: Vec<Value>,
}

fn read_rows(dir: &Path) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(rows),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("jsonl") {
            continue;
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut row = Row {
            name,
            meta: Value::Null,
            runs: Vec::new(),
        };
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let value: Value = serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: not JSON: {e}", path.display(), i + 1))?;
            if let Some(meta) = value.get("meta") {
                row.meta = meta.clone();
            } else if value.get("run").is_some() && value.get("server").is_some() {
                row.runs.push(value);
            }
        }
        rows.push(row);
    }
    let rank = |name: &str| {
        ROW_ORDER
            .iter()
            .position(|r| *r == name)
            .unwrap_or(usize::MAX)
    };
    rows.sort_by(|a, b| (rank(&a.name), &a.name).cmp(&(rank(&b.name), &b.name)));
    Ok(rows)
}

fn render(rows: &[Row], raw: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{BEGIN}: generated by `pubsub-bench tables` from {raw}/*.jsonl; edit those, not this -->"
    );
    if rows.is_empty() {
        let _ = writeln!(
            out,
            "_No raw results in `{raw}` yet: `scripts/bench-all.sh` writes them, then this section._"
        );
        out.push_str(END);
        out.push('\n');
        return out;
    }
    out.push_str(
        "Medians over the runs kept, range [min–max] in brackets. A run is dropped when it \
         failed (its notes say why) or never reported. Ratio: per run number, first server / \
         second server, over the pairs where both runs were kept.\n\n",
    );
    out.push_str("| row | command | measured | runs kept | dropped |\n|---|---|---|---|---|\n");
    for row in rows {
        let servers = servers(row);
        let expected = row.meta.get("runs").and_then(Value::as_u64);
        let mut kept_text = Vec::new();
        let mut dropped_text = Vec::new();
        for server in &servers {
            let mine: Vec<&Value> = runs_of(row, server).collect();
            let kept = mine.iter().filter(|r| is_ok(r)).count() as u64;
            let failed = mine.len() as u64 - kept;
            let total = expected.unwrap_or(mine.len() as u64).max(mine.len() as u64);
            let missing = total - mine.len() as u64;
            kept_text.push(format!("{server} {kept}/{total}"));
            let mut why = Vec::new();
            if failed > 0 {
                why.push(format!("{failed} failed"));
            }
            if missing > 0 {
                why.push(format!("{missing} missing"));
            }
            if !why.is_empty() {
                dropped_text.push(format!("{server}: {}", why.join(", ")));
            }
        }
        let text = |key: &str| row.meta.get(key).and_then(Value::as_str).unwrap_or("");
        let mut measured: Vec<String> = [text("date"), text("commit"), text("machine")]
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        // Whatever makes these figures something other than results, said where they are read.
        if row.meta.get("quick").and_then(Value::as_bool) == Some(true) {
            measured.push("**QUICK tooling check, not results**".to_owned());
        }
        if !matches!(text("profile"), "" | "release") {
            measured.push(format!("**{} build**", text("profile")));
        }
        if text("reference").starts_with("outside") {
            measured.push(format!("reference {}", text("reference")));
        }
        let measured = measured.join(", ");
        let command = match text("command") {
            "" => String::new(),
            c => format!("`{}`", c.replace('|', "\\|")),
        };
        let _ = writeln!(
            out,
            "| {} | {command} | {measured} | {} | {} |",
            row.name,
            kept_text.join(", "),
            if dropped_text.is_empty() {
                "0".to_owned()
            } else {
                dropped_text.join("; ")
            }
        );
    }
    for row in rows {
        let servers = servers(row);
        let _ = write!(out, "\n**{}**\n\n| figure |", row.name);
        for server in &servers {
            let _ = write!(out, " {server} |");
        }
        if let [a, b] = servers.as_slice() {
            let _ = write!(out, " ratio {a}/{b} |");
        }
        out.push_str("\n|---|");
        for _ in 0..servers.len() + usize::from(servers.len() == 2) {
            out.push_str("---|");
        }
        out.push('\n');
        for (key, label) in figures(row) {
            let _ = write!(out, "| {label} |");
            for server in &servers {
                let _ = write!(out, " {} |", summary_of(row, server, key));
            }
            if let [a, b] = servers.as_slice() {
                let _ = write!(out, " {} |", ratio_of(row, a, b, key));
            }
            out.push('\n');
        }
    }
    out.push_str(END);
    out.push('\n');
    out
}

/// The servers of a row: as the meta line names them (`a`, `b`), else in order of appearance.
fn servers(row: &Row) -> Vec<String> {
    let mut names: Vec<String> = ["a", "b"]
        .iter()
        .filter_map(|k| row.meta.get(*k).and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    for run in &row.runs {
        if let Some(name) = run.get("server").and_then(Value::as_str)
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_owned());
        }
    }
    names
}

fn runs_of<'a>(row: &'a Row, server: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    row.runs
        .iter()
        .filter(move |r| r.get("server").and_then(Value::as_str) == Some(server))
}

fn is_ok(run: &Value) -> bool {
    run.get("ok").and_then(Value::as_bool) == Some(true)
}

/// The headline (bold) then the scenario's other figures, those some kept run reports.
fn figures(row: &Row) -> Vec<(&'static str, String)> {
    let kept: Vec<&Value> = row.runs.iter().filter(|r| is_ok(r)).collect();
    let scenario = row
        .runs
        .first()
        .and_then(|r| r.get("scenario"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let headline = row
        .runs
        .iter()
        .find_map(|r| r.get("headline").and_then(Value::as_str))
        .unwrap_or("");
    let known = figures_of(scenario);
    let present = |key: &str| {
        kept.iter()
            .any(|r| r.get(key).is_some_and(|v| !v.is_null()))
    };
    let mut out = Vec::new();
    if let Some((key, label)) = known.iter().find(|(k, _)| *k == headline) {
        out.push((*key, format!("**{label}**")));
    }
    for (key, label) in known {
        if *key != headline && present(key) {
            out.push((*key, (*label).to_owned()));
        }
    }
    out
}

/// `median [min–max]` of a figure over a server's kept runs; booleans as `true count/runs`.
fn summary_of(row: &Row, server: &str, key: &str) -> String {
    let kept: Vec<&Value> = runs_of(row, server).filter(|r| is_ok(r)).collect();
    let values: Vec<&Value> = kept.iter().filter_map(|r| r.get(key)).collect();
    if values.iter().any(|v| v.is_boolean()) {
        let yes = values.iter().filter(|v| v.as_bool() == Some(true)).count();
        return format!("{yes}/{}", values.len());
    }
    let mut numbers: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
    spread(&mut numbers)
}

/// `median [min–max]` of the ratio a/b of a figure per run number where both runs were kept.
fn ratio_of(row: &Row, a: &str, b: &str, key: &str) -> String {
    let by_run = |server: &str| -> BTreeMap<u64, f64> {
        runs_of(row, server)
            .filter(|r| is_ok(r))
            .filter_map(|r| Some((r.get("run")?.as_u64()?, r.get(key)?.as_f64()?)))
            .collect()
    };
    let (a, b) = (by_run(a), by_run(b));
    let mut ratios: Vec<f64> = a
        .iter()
        .filter_map(|(run, x)| b.get(run).filter(|y| **y != 0.0).map(|y| x / y))
        .collect();
    spread(&mut ratios)
}

/// `median [min–max]`, all three in the unit of the largest (`3.00 M [2.00–4.00 M]`).
fn spread(values: &mut [f64]) -> String {
    let Some(m) = median(values) else {
        return "–".to_owned();
    };
    let (lo, hi) = (values[0], values[values.len() - 1]);
    let (scale, unit) = unit(lo.abs().max(hi.abs()));
    if values.len() == 1 {
        return format!("{}{unit}", sig3(m / scale));
    }
    format!(
        "{}{unit} [{}–{}{unit}]",
        sig3(m / scale),
        sig3(lo / scale),
        sig3(hi / scale)
    )
}

/// Millions and thousands are written with M and k.
fn unit(largest: f64) -> (f64, &'static str) {
    if largest >= 1e6 {
        (1e6, " M")
    } else if largest >= 1e4 {
        (1e3, " k")
    } else {
        (1.0, "")
    }
}

/// Three significant digits (at most six decimals).
fn sig3(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).clamp(0, 6) as usize;
    format!("{x:.decimals$}")
}

/// `doc` with everything from the begin line to the end line replaced by `section`.
fn replace_section(doc: &str, section: &str) -> Option<String> {
    let begin = doc.find(BEGIN)?;
    let begin = doc[..begin].rfind('\n').map_or(0, |i| i + 1);
    let end = begin + doc[begin..].find(END)?;
    let end = doc[end..].find('\n').map_or(doc.len(), |i| end + i + 1);
    Some(format!("{}{section}{}", &doc[..begin], &doc[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row() -> Row {
        let run = |server: &str, run: u64, ok: bool, d: f64| {
            json!({"scenario": "fanout", "server": server, "run": run, "ok": ok,
                   "headline": "deliveries_per_s", "deliveries_per_s": d,
                   "server_us_per_delivery": 0.2, "fraction_delivered": 1.0})
        };
        Row {
            name: "fanout".into(),
            meta: json!({"runs": 3, "a": "pubsub", "b": "reference", "command": "fanout -s 2",
                         "date": "2026-11-29", "commit": "abc1234", "profile": "release",
                         "quick": false, "reference": "in-repo src/bin/fanout-reference"}),
            runs: vec![
                run("pubsub", 1, true, 2e6),
                run("reference", 1, true, 1e6),
                run("reference", 2, true, 1e6),
                run("pubsub", 2, false, 1.0),
                run("pubsub", 3, true, 4e6),
            ],
        }
    }

    #[test]
    fn failed_and_missing_runs_are_dropped_and_counted() {
        let text = render(&[row()], "bench/raw");
        assert!(
            text.contains("| fanout | `fanout -s 2` | 2026-11-29, abc1234 | pubsub 2/3, reference 2/3 | pubsub: 1 failed; reference: 1 missing |"),
            "{text}"
        );
        // Medians over the kept runs only: 2 M and 4 M; ratios for runs 1 only (run 2 failed
        // for pubsub, run 3 missing for reference).
        assert!(
            text.contains(
                "| **deliveries/s** | 3.00 M [2.00–4.00 M] | 1.00 M [1.00–1.00 M] | 2.00 |"
            ),
            "{text}"
        );
        assert!(text.contains("| server CPU µs per delivery |"), "{text}");
        assert!(!text.contains("Redis"), "{text}");
    }

    #[test]
    fn a_tooling_check_says_so_where_it_is_read() {
        let mut quick = row();
        quick.meta["quick"] = json!(true);
        quick.meta["profile"] = json!("debug");
        quick.meta["reference"] = json!("outside: ../ref/Cargo.toml");
        let text = render(&[quick], "bench/raw");
        assert!(
            text.contains("2026-11-29, abc1234, **QUICK tooling check, not results**, **debug build**, reference outside: ../ref/Cargo.toml |"),
            "{text}"
        );
    }

    #[test]
    fn the_section_is_replaced_in_place() {
        let doc = "# T\n\nintro\n<!-- bench-tables:begin old -->\nold\n<!-- bench-tables:end -->\nafter\n";
        let section = render(&[], "bench/raw");
        let new = replace_section(doc, &section).unwrap();
        assert!(
            new.starts_with("# T\n\nintro\n<!-- bench-tables:begin"),
            "{new}"
        );
        assert!(new.ends_with("<!-- bench-tables:end -->\nafter\n"), "{new}");
        assert!(new.contains("No raw results"), "{new}");
        assert!(!new.contains("old\n"), "{new}");
        assert_eq!(replace_section(&new, &section).unwrap(), new);
        assert!(replace_section("no markers", &section).is_none());
    }

    #[test]
    fn three_significant_digits() {
        assert_eq!(
            spread(&mut [5_270_000.0, 5_190_000.0, 5_940_000.0]),
            "5.27 M [5.19–5.94 M]"
        );
        assert_eq!(spread(&mut [116_400.0]), "116 k");
        assert_eq!(spread(&mut [14_020.0, 9_000.0]), "11.5 k [9.00–14.0 k]");
        assert_eq!(spread(&mut []), "–");
        assert_eq!(sig3(880.4), "880");
        assert_eq!(sig3(7.094), "7.09");
        assert_eq!(sig3(0.1754), "0.175");
        assert_eq!(sig3(0.0), "0");
    }
}
