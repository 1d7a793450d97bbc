//! Runs a scenario against one server or two in alternation (A B A B ...), then summarises:
//! medians and ranges per server and, for two, the ratio of the headline figure per run.

use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::cli::Scenario;
use crate::report::{Better, RunReport, median, num, show};
use crate::scenarios::{self, Env};
use crate::target::Target;

/// Runs everything, printing each run as it ends. Returns every report.
pub async fn run_all(
    scenario: &Scenario,
    targets: &[Target],
    env: &Env,
) -> Result<Vec<RunReport>, String> {
    let mut reports = Vec::new();
    let pause = Duration::from_secs_f64(env.common.pause.clamp(0.0, 60.0));
    for run in 1..=env.common.runs {
        for target in targets {
            if !reports.is_empty() {
                tokio::time::sleep(pause).await;
            }
            let report = scenarios::run(scenario, target, run, env).await?;
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
        "summary of {} ({} runs per server): median [min - max]",
        scenario.name(),
        reports.len() / targets.len()
    );
    for target in targets {
        let mine: Vec<&RunReport> = reports.iter().filter(|r| r.server == target.name).collect();
        let Some(first) = mine.first() else { continue };
        let mut medians = Map::new();
        let mut ranges = Map::new();
        println!("  {} ({})", target.name, target.addr);
        for (key, value) in &first.figures {
            if !value.is_number() {
                continue;
            }
            let mut values: Vec<f64> = mine.iter().filter_map(|r| r.number(key)).collect();
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
        let failed = mine.iter().filter(|r| !r.ok).count();
        if failed > 0 {
            println!(
                "    ** {failed} of {} runs FAILED (see their notes) **",
                mine.len()
            );
        }
        let line = json!({
            "summary": scenario.name(), "server": target.name, "addr": target.addr.to_string(),
            "runs": mine.len(), "failed_runs": failed, "medians": medians, "ranges": ranges,
        });
        println!("{line}");
    }
    if let [a, b] = targets {
        compare(a, b, reports);
    }
}

/// Ratio A/B of the headline figure per run, then the median ratio.
fn compare(a: &Target, b: &Target, reports: &[RunReport]) {
    let Some(headline) = reports.first().map(|r| r.headline) else {
        return;
    };
    let of = |t: &Target| -> Vec<Option<f64>> {
        reports
            .iter()
            .filter(|r| r.server == t.name)
            .map(RunReport::headline_value)
            .collect()
    };
    let ratios: Vec<Value> = of(a)
        .into_iter()
        .zip(of(b))
        .map(|pair| match pair {
            (Some(x), Some(y)) if y != 0.0 => num(x / y),
            _ => Value::Null,
        })
        .collect();
    let shown: Vec<String> = ratios.iter().map(show).collect();
    let mut finite: Vec<f64> = ratios.iter().filter_map(Value::as_f64).collect();
    let m = median(&mut finite);
    let better = match headline.better {
        Better::Higher => "higher is better for A",
        Better::Lower => "lower is better for A",
    };
    println!(
        "ratio {}/{} of {} per run: {}\nmedian ratio: {} ({better})",
        a.name,
        b.name,
        headline.key,
        shown.join(" "),
        m.map_or("n/a".to_owned(), |m| format!("{m:.3}"))
    );
    println!(
        "{}",
        json!({"compare": headline.key, "a": a.name, "b": b.name, "ratios": ratios, "median_ratio": m.map(num)})
    );
}
