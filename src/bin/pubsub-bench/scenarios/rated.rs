//! `rate`: S subscribers on one topic, one publisher at a fixed rate for a fixed time (at least
//! `--min-seconds`: more messages at the same rate). Judged by latency, and by whether the server
//! kept up.

use serde_json::json;

use super::load::{self, Load};
use super::throughput::load_figures;
use super::{Env, headline, topic_names};
use crate::cli::Scenario;
use crate::publisher::Plan;
use crate::report::{RunReport, num};
use crate::target::Target;

/// The publisher may fall this far behind its schedule, and the last delivery may come this long
/// after the last publish, for the server to count as keeping up.
const KEPT_UP_LAG_MS: f64 = 100.0;

pub async fn run(
    scenario: &Scenario,
    target: &Target,
    run: u32,
    env: &Env,
) -> Result<RunReport, String> {
    let Scenario::Rate {
        subscribers,
        rate,
        duration,
        payload,
        window,
    } = scenario
    else {
        return Err("not the rate scenario".to_owned());
    };
    let seconds = f64::from(*duration).max(env.common.min_seconds);
    let messages = (f64::from(*rate) * seconds).ceil() as u64;
    if *rate == 0 || messages == 0 {
        return Err("--rate must be at least 1".to_owned());
    }
    let load = Load {
        plan: Plan {
            topics: topic_names("rate", 1),
            messages,
            // The schedule sets the time already: `messages` covers the longer of the two.
            min_duration: std::time::Duration::ZERO,
            window: u64::from(*window),
            message_bytes: payload.bytes as usize,
            rate: Some(*rate),
        },
        subscriber_topics: vec![0; *subscribers as usize],
        record_latency: true,
    };
    let out = load::run(load, target, env).await?;
    let (mut figures, mut notes) = (Vec::new(), Vec::new());
    figures.push(("rate", json!(rate)));
    figures.push(("publish_seconds", num(seconds)));
    let ok = load_figures(&out, env, &mut figures, &mut notes);
    let p = &out.publisher;
    let lag_ms = p.max_lag_ns as f64 / 1e6;
    let behind_ms = out.last_delivery_ns.saturating_sub(p.last_send_ns) as f64 / 1e6;
    let kept_up = ok && lag_ms <= KEPT_UP_LAG_MS && behind_ms <= KEPT_UP_LAG_MS;
    figures.insert(1, ("kept_up", json!(kept_up)));
    figures.push(("publisher_max_lag_ms", num(lag_ms)));
    figures.push(("last_delivery_after_last_send_ms", num(behind_ms)));
    if !kept_up {
        notes.push(format!(
            "did not keep up: publisher fell {lag_ms:.1} ms behind schedule at worst, the last \
             delivery came {behind_ms:.1} ms after the last publish (limit {KEPT_UP_LAG_MS} ms each)"
        ));
    }
    let mut report = RunReport::new(scenario, target, run, headline(scenario, target));
    report.figures = figures;
    report.notes = notes;
    report.ok = ok;
    Ok(report)
}
