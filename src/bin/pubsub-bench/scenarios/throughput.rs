//! `fanout` (S subscribers on one topic) and `topics` (T topics, one subscriber each): one
//! publisher as fast as its window of unacknowledged publishes allows.

use serde_json::json;

use super::load::{self, Load, LoadOutcome};
use super::{Env, headline, latency_figures, topic_names};
use crate::cli::Scenario;
use crate::publisher::Plan;
use crate::report::{RunReport, num};
use crate::target::Target;

pub async fn run(
    scenario: &Scenario,
    target: &Target,
    run: u32,
    env: &Env,
) -> Result<RunReport, String> {
    let (topics, subscriber_topics, messages, bytes, window, record_latency) = match scenario {
        Scenario::Fanout {
            subscribers,
            messages,
            payload,
            window,
        } => (
            topic_names("fanout", 1),
            vec![0; *subscribers as usize],
            *messages,
            payload.bytes,
            *window,
            true,
        ),
        Scenario::Topics {
            topics,
            messages,
            payload,
            window,
        } => (
            topic_names("topics", *topics as usize),
            (0..*topics as usize).collect(),
            *messages,
            payload.bytes,
            *window,
            // A histogram per connection would cost the harness ~160 KB each; the scenario is
            // about throughput only.
            false,
        ),
        _ => return Err("not a throughput scenario".to_owned()),
    };
    let load = Load {
        plan: Plan {
            topics,
            messages: u64::from(messages),
            min_duration: env.min_duration(),
            window: u64::from(window),
            message_bytes: bytes as usize,
            rate: None,
        },
        subscriber_topics,
        record_latency,
    };
    let out = load::run(load, target, env).await?;
    Ok(report(scenario, target, run, env, out))
}

/// Figures common to every load scenario; returns whether the run is sound.
pub fn load_figures(
    out: &LoadOutcome,
    env: &Env,
    figures: &mut Vec<(&'static str, serde_json::Value)>,
    notes: &mut Vec<String>,
) -> bool {
    let p = &out.publisher;
    let span_s = out.last_delivery_ns.saturating_sub(p.start_ns) as f64 / 1e9;
    let fraction = if out.expected == 0 {
        1.0
    } else {
        out.deliveries as f64 / out.expected as f64
    };
    figures.push((
        "deliveries_per_s",
        num(if span_s > 0.0 {
            out.deliveries as f64 / span_s
        } else {
            0.0
        }),
    ));
    // CPU per unit of work beside the throughput it bought.
    out.cpu.per_work(out.deliveries, p.acked, figures);
    figures.push(("fraction_delivered", num(fraction)));
    figures.push(("deliveries", json!(out.deliveries)));
    figures.push(("expected", json!(out.expected)));
    let send_s = p.last_send_ns.saturating_sub(p.start_ns) as f64 / 1e9;
    figures.push(("publishes_acked", json!(p.acked)));
    figures.push(("publish_errors", json!(p.errors)));
    figures.push((
        "publishes_per_s",
        num(if send_s > 0.0 {
            p.sent as f64 / send_s
        } else {
            0.0
        }),
    ));
    figures.push(("duration_s", num(span_s)));
    if let Some(h) = &out.latency {
        latency_figures(h, figures);
    }
    out.cpu.figures(env, figures, notes);
    notes.extend(out.notes.iter().cloned());
    let mut ok = p.note_problems(notes);
    if out.failed_subscribers > 0 {
        notes.push(format!(
            "{} subscribers ended early; first: {}",
            out.failed_subscribers,
            out.first_failure.as_deref().unwrap_or("")
        ));
        ok = false;
    }
    if out.deliveries < out.expected {
        notes.push(format!(
            "{} of {} deliveries missing when the drain timeout ({} s) ran out",
            out.expected - out.deliveries,
            out.expected,
            env.common.drain_timeout
        ));
        ok = false;
    }
    ok
}

fn report(
    scenario: &Scenario,
    target: &Target,
    run: u32,
    env: &Env,
    out: LoadOutcome,
) -> RunReport {
    let (mut figures, mut notes) = (Vec::new(), Vec::new());
    let ok = load_figures(&out, env, &mut figures, &mut notes);
    let mut report = RunReport::new(scenario, target, run, headline(scenario, target));
    report.figures = figures;
    report.notes = notes;
    report.ok = ok;
    report
}
