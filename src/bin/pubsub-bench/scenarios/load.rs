//! One load run shared by fanout, rate and topics: subscribers on their topics, one publisher,
//! then a bounded wait for the deliveries still in flight. How many deliveries each subscriber
//! waits for is known only once the publisher has finished (it may publish more than planned to
//! fill `--min-seconds`).

use hdrhistogram::Histogram;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{CpuProbe, CpuUse, Env, connect_subscribers, create_topics};
use crate::publisher::{self, Dedicated, Plan};
use crate::subscriber::{self, Reading, Share, new_histogram};
use crate::target::Target;

pub struct Load {
    pub plan: Plan,
    /// The topic index of each subscriber connection.
    pub subscriber_topics: Vec<usize>,
    pub record_latency: bool,
}

pub struct LoadOutcome {
    pub publisher: publisher::Outcome,
    pub deliveries: u64,
    pub expected: u64,
    /// Harness clock (ns) of the last delivery.
    pub last_delivery_ns: u64,
    pub latency: Option<Histogram<u64>>,
    /// Subscribers that ended with an error, and the first one's story.
    pub failed_subscribers: u64,
    pub first_failure: Option<String>,
    pub cpu: CpuUse,
    pub notes: Vec<String>,
}

pub async fn run(load: Load, target: &Target, env: &Env) -> Result<LoadOutcome, String> {
    let deadline = Instant::now() + env.hard_timeout();
    let mut notes = Vec::new();
    if let Some(note) = create_topics(target, &load.plan.topics, env).await? {
        notes.push(note);
    }
    let connections = load.subscriber_topics.len() as u64 + 1;
    let (subs, failed, first) = connect_subscribers(
        target,
        &load.plan.topics,
        load.subscriber_topics.iter().copied(),
        64,
        env.read_buffer(connections),
    )
    .await;
    if failed > 0 {
        return Err(format!(
            "{failed} of {} subscribers could not connect and subscribe; first: {}",
            load.subscriber_topics.len(),
            first.unwrap_or_default()
        ));
    }
    let publisher = Dedicated::connect(target, load.plan.clone()).await?;

    let topics = load.plan.topics.len() as u64;
    let share = |t: usize| Share {
        topic: t as u64,
        topics,
    };
    let shares: Vec<Share> = subs.iter().map(|(t, _)| share(*t)).collect();
    let reading = Reading {
        record_latency: load.record_latency,
        parse: env.common.parse,
    };

    let probe = CpuProbe::start(target)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let (total_tx, total_rx) = watch::channel(None);
    let receivers: Vec<_> = subs
        .into_iter()
        .map(|(t, ws)| {
            tokio::spawn(subscriber::receive(
                ws,
                share(t),
                total_rx.clone(),
                reading,
                stop_rx.clone(),
            ))
        })
        .collect();
    let published = publisher.run(deadline).await?;
    // Every publish sent counts, answered or not: a refused one makes the run fail anyway.
    let _ = total_tx.send(Some(published.sent));
    let expected: u64 = shares.iter().map(|s| s.of(published.sent)).sum();

    // Deliveries may still be on their way: wait for them, but not past the drain timeout, and
    // not at all when publishing failed (what was refused will never arrive).
    let drain_end = if published.failure.is_some() || published.errors > 0 {
        Instant::now()
    } else {
        (Instant::now() + env.drain_timeout()).min(deadline)
    };
    let stopper = tokio::spawn(async move {
        tokio::time::sleep_until(drain_end).await;
        let _ = stop_tx.send(true);
    });
    let mut outcome = LoadOutcome {
        publisher: published,
        deliveries: 0,
        expected,
        last_delivery_ns: 0,
        latency: load.record_latency.then(new_histogram),
        failed_subscribers: 0,
        first_failure: None,
        cpu: probe.stop()?, // replaced below, once the receivers are done
        notes,
    };
    for receiver in receivers {
        let got = receiver
            .await
            .map_err(|e| format!("a subscriber task failed: {e}"))?;
        outcome.deliveries += got.deliveries;
        outcome.last_delivery_ns = outcome.last_delivery_ns.max(got.last_ns);
        if let (Some(all), Some(one)) = (outcome.latency.as_mut(), got.latency.as_ref()) {
            all.add(one)
                .map_err(|e| format!("merging latency histograms: {e}"))?;
        }
        if let Some(f) = got.failure {
            outcome.failed_subscribers += 1;
            outcome.first_failure.get_or_insert(f);
        }
    }
    outcome.cpu = probe.stop()?;
    stopper.abort();
    Ok(outcome)
}
