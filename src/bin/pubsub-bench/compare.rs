//! Runs a scenario against one server or two in alternation, then summarises: medians and ranges
//! per server over the runs that succeeded and, for two, the ratio of the headline figure (and
//! of server CPU per delivery, when known) per pair of runs.
//!
//! The order within a pair alternates with the run number (A B, B A, A B, ...: `--order abba`),
//! so that neither server always runs first, on a machine that warms up or cools down.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::cli::{Order, Scenario};
use crate::report::{Better, RunReport, median, num, show};
use crate::scenarios::{self, Env, headline};
use crate::target::Target;

/// The secondary ratio printed beside the headline's when both servers report it.
const CPU_KEY: &str = "server_us_per_delivery";

/// Runs everything, printing each run as it ends. A run that cannot be carried out (a server
/// refuses connections, a subscribe is refused...) is reported as a failed run and the others
/// go on. Returns every report.
pub async fn run_all(
    scenario: &Scenario,
    targets: &[Target],
    env: &Env,
) -> Result<Vec<RunReport>, String> {
    let mut reports: Vec<RunReport> = Vec::new();
    let pause = Duration::from_secs_f64(env.common.pause.clamp(0.0, 60.0));
    let first = env.common.first_run;
    for run in first..first.saturating_add(env.common.runs) {
        let mut order: Vec<&Target> = targets.iter().collect();
        if env.common.order == Order::Abba && run % 2 == 0 {
            order.reverse();
        }
        for (position, target) in (1..).zip(order) {
            if !reports.is_empty() {
                tokio::time::sleep(pause).await;
            }
            let mut report = match scenarios::run(scenario, target, run, env).await {
                Ok(report) => report,
                Err(e) => {
                    let mut failed =
                        RunReport::new(scenario, target, run, headline(scenario, target));
                    failed.notes.push(format!("error: {e}"));
                    failed.error = Some(e);
                    failed
                }
            };
            report.position = position;
            println!("{}", report.table());
            println!("{}", report.json());
            reports.push(report);
        }
    }
    summarise(scenario, targets, &reports);
    Ok(reports)
}

fn summarise(scenario: &Scenario, targets: &[Target], reports: &[RunReport]) {
    if reports.len() < 2 {
        return;
    }
    println!(
        "summary of {} ({} runs per server): median [min - max] over the runs that succeeded",
        scenario.name(),
        reports.len() / targets.len()
    );
    for target in targets {
        let mine: Vec<&RunReport> = reports.iter().filter(|r| r.server == target.name).collect();
        let kept: Vec<&RunReport> = mine.iter().copied().filter(|r| r.ok).collect();
        let failed = mine.len() - kept.len();
        let mut medians = Map::new();
        let mut ranges = Map::new();
        println!("  {} ({})", target.name, target.label());
        if let Some(first) = kept.first() {
            for (key, value) in &first.figures {
                if !value.is_number() {
                    continue;
                }
                let mut values: Vec<f64> = kept.iter().filter_map(|r| r.number(key)).collect();
                let Some(m) = median(&mut values) else {
                    continue;
                };
                let (lo, hi) = (values[0], values[values.len() - 1]);
                println!(
                    "    {:>30} {:>12}  [{} - {}]",
                    key,
                    show(&num(m)),
                    show(&num(lo)),
                    show(&num(hi))
                );
                medians.insert((*key).into(), num(m));
                ranges.insert((*key).into(), json!([num(lo), num(hi)]));
            }
        }
        if failed > 0 {
            println!(
                "    ** {failed} of {} runs FAILED and are left out of the medians (see their notes) **",
                mine.len()
            );
        }
        let line = json!({
            "summary": scenario.name(), "server": target.name, "addr": target.label(),
            "runs": mine.len(), "failed_runs": failed, "medians": medians, "ranges": ranges,
        });
        println!("{line}");
    }
    if let [a, b] = targets {
        let Some(headline) = reports.first().map(|r| r.headline) else {
            return;
        };
        compare(a, b, reports, headline.key, headline.better);
        let both_have_cpu =
            reports.iter().any(|r| r.number(CPU_KEY).is_some()) && a.has_pids() && b.has_pids();
        if both_have_cpu && headline.key != CPU_KEY {
            compare(a, b, reports, CPU_KEY, Better::Lower);
        }
    }
}

/// Ratio A/B of `key` for each run number both servers ran successfully, then the median.
/// A pair with a failed run counts as dropped.
fn compare(a: &Target, b: &Target, reports: &[RunReport], key: &str, better: Better) {
    let find = |t: &Target, run: u32| reports.iter().find(|r| r.server == t.name && r.run == run);
    let mut runs: Vec<u32> = reports.iter().map(|r| r.run).collect();
    runs.dedup();
    let mut dropped = 0;
    let ratios: Vec<Value> = runs
        .iter()
        .map(|&run| match (find(a, run), find(b, run)) {
            (Some(x), Some(y)) if x.ok && y.ok => match (x.number(key), y.number(key)) {
                (Some(x), Some(y)) if y != 0.0 => num(x / y),
                _ => Value::Null,
            },
            _ => {
                dropped += 1;
                Value::Null
            }
        })
        .collect();
    let shown: Vec<String> = ratios.iter().map(show).collect();
    let mut finite: Vec<f64> = ratios.iter().filter_map(Value::as_f64).collect();
    let m = median(&mut finite);
    let better = match better {
        Better::Higher => "higher is better for A",
        Better::Lower => "lower is better for A",
    };
    let dropped_note = if dropped > 0 {
        format!("; {dropped} pairs dropped (a run failed)")
    } else {
        String::new()
    };
    println!(
        "ratio {}/{} of {key} per run: {}\nmedian ratio: {} ({better}{dropped_note})",
        a.name,
        b.name,
        shown.join(" "),
        m.map_or("n/a".to_owned(), |m| format!("{m:.3}"))
    );
    println!(
        "{}",
        json!({"compare": key, "a": a.name, "b": b.name, "ratios": ratios,
               "median_ratio": m.map(num), "dropped_pairs": dropped})
    );
}
