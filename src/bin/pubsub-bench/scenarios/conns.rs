//! `conns`: many idle subscribed connections. Connects/s, the server's resident memory per
//! connection, and one publish per topic that must reach every connection.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use super::{CpuProbe, Env, connect_subscribers, create_topics, headline, topic_names};
use crate::cli::Scenario;
use crate::procfs;
use crate::publisher::{Dedicated, Plan};
use crate::report::{RunReport, num};
use crate::subscriber::{self, Reading, Share};
use crate::target::Target;

pub async fn run(
    scenario: &Scenario,
    target: &Target,
    run: u32,
    env: &Env,
) -> Result<RunReport, String> {
    let Scenario::Conns {
        connections,
        topics,
        concurrency,
        settle,
    } = scenario
    else {
        return Err("not the conns scenario".to_owned());
    };
    let deadline = tokio::time::Instant::now() + env.hard_timeout();
    let (mut figures, mut notes) = (Vec::new(), Vec::new());
    let names = topic_names("conns", *topics as usize);
    if let Some(note) = create_topics(target, &names, env).await? {
        notes.push(note);
    }
    let rss = || procfs::rss_bytes_of(&target.pids);
    let rss_before = target.has_pids().then(rss).transpose()?;

    let started = Instant::now();
    let probe = CpuProbe::start(target)?;
    let (subs, failed, first) = connect_subscribers(
        target,
        &names,
        (0..*connections as usize).map(|i| i % names.len()),
        *concurrency as usize,
        env.read_buffer(u64::from(*connections)),
    )
    .await;
    let connect_s = started.elapsed().as_secs_f64();
    let connect_cpu = probe.stop()?;
    let connected = subs.len() as u64;
    figures.push(("connections", json!(connections)));
    figures.push(("connected", json!(connected)));
    figures.push((
        "connects_per_s",
        num(connected as f64 / connect_s.max(1e-9)),
    ));
    // CPU over the connect phase: says whether the harness or the server bounds connects/s.
    connect_cpu.figures(env, &mut figures, &mut notes);
    if let Some(server) = connect_cpu.server {
        let per_connect = server.as_secs_f64() * 1e6 / connected.max(1) as f64;
        figures.push(("server_us_per_connect", num(per_connect)));
    }
    let mut ok = failed == 0;
    if let Some(first) = first {
        notes.push(format!("{failed} connections failed; first: {first}"));
    }

    // Let the server finish its per-connection work before reading its memory.
    tokio::time::sleep(Duration::from_secs_f64(settle.clamp(0.0, 60.0))).await;
    if let Some(before) = rss_before {
        let after = rss()?;
        let per_conn = after.saturating_sub(before) as f64 / connected.max(1) as f64;
        figures.push(("server_rss_before_mib", num(before as f64 / 1048576.0)));
        figures.push(("server_rss_after_mib", num(after as f64 / 1048576.0)));
        figures.push(("server_rss_per_conn_kib", num(per_conn / 1024.0)));
        figures.push(("server_rss_per_conn_kb", num(per_conn / 1000.0)));
    }
    let harness_rss = procfs::rss_bytes("self")?;
    figures.push(("harness_rss_mib", num(harness_rss as f64 / 1048576.0)));

    // One publish per topic: every connection must get exactly its topic's message.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (_total_tx, total_rx) = watch::channel(Some(1));
    let reading = Reading {
        record_latency: false,
        parse: env.common.parse,
    };
    let receivers: Vec<_> = subs
        .into_iter()
        .map(|(_, ws)| {
            let one = Share {
                topic: 0,
                topics: 1,
            };
            tokio::spawn(subscriber::receive(
                ws,
                one,
                total_rx.clone(),
                reading,
                stop_rx.clone(),
            ))
        })
        .collect();
    let plan = Plan {
        topics: names,
        messages: u64::from(*topics),
        min_duration: Duration::ZERO,
        window: 64,
        message_bytes: 64,
        rate: None,
    };
    let publisher = Dedicated::connect(target, plan).await?;
    let publish_probe = CpuProbe::start(target)?;
    let published = publisher.run(deadline).await?;
    let drain_end = if published.failure.is_some() || published.errors > 0 {
        tokio::time::Instant::now()
    } else {
        (tokio::time::Instant::now() + env.drain_timeout()).min(deadline)
    };
    let stopper = tokio::spawn(async move {
        tokio::time::sleep_until(drain_end).await;
        let _ = stop_tx.send(true);
    });
    let (mut reached, mut broken, mut first_broken) = (0u64, 0u64, None);
    for receiver in receivers {
        let got = receiver
            .await
            .map_err(|e| format!("a connection task failed: {e}"))?;
        if got.deliveries == 1 {
            reached += 1;
        }
        if let Some(f) = got.failure {
            broken += 1;
            first_broken.get_or_insert(f);
        }
    }
    let publish_cpu = publish_probe.stop()?;
    stopper.abort();
    figures.push(("reached", json!(reached)));
    figures.push((
        "fraction_reached",
        num(reached as f64 / connected.max(1) as f64),
    ));
    // The publish phase: one delivery per idle connection.
    publish_cpu.per_work(reached, published.acked, &mut figures);
    ok &= published.note_problems(&mut notes);
    if broken > 0 {
        notes.push(format!(
            "{broken} connections ended early; first: {}",
            first_broken.unwrap_or_default()
        ));
        ok = false;
    }
    if reached < connected {
        notes.push(format!(
            "{} of {connected} connections did not get their topic's publish",
            connected - reached
        ));
        ok = false;
    }
    let mut report = RunReport::new(scenario, target, run, headline(scenario, target));
    report.figures = figures;
    report.notes = notes;
    report.ok = ok;
    Ok(report)
}
