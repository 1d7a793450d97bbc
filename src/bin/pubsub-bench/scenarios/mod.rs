//! The four scenarios, and what they share: topics, subscriber connections, CPU accounting.

mod conns;
mod load;
mod rated;
mod throughput;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};

use crate::cli::{Common, Scenario};
use crate::client::{self, Created, Ws};
use crate::procfs;
use crate::report::{RunReport, num};
use crate::target::Target;

/// What every run needs besides its scenario and server.
pub struct Env {
    pub common: Common,
    /// Worker threads of the harness's runtime.
    pub threads: usize,
    pub cpus: usize,
}

impl Env {
    pub fn hard_timeout(&self) -> Duration {
        Duration::from_secs(self.common.timeout)
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs(self.common.drain_timeout)
    }
}

pub async fn run(
    scenario: &Scenario,
    target: &Target,
    run: u32,
    env: &Env,
) -> Result<RunReport, String> {
    let report = match scenario {
        Scenario::Fanout { .. } | Scenario::Topics { .. } => {
            throughput::run(scenario, target, run, env).await
        }
        Scenario::Rate { .. } => rated::run(scenario, target, run, env).await,
        Scenario::Conns { .. } => conns::run(scenario, target, run, env).await,
    };
    report.map_err(|e| {
        format!(
            "{} run {run} on {} ({}): {e}",
            scenario.name(),
            target.name,
            target.addr
        )
    })
}

/// Topic names unique to this process and run, so runs never see each other's subscribers.
pub fn topic_names(scenario: &str, count: usize) -> Vec<String> {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    (0..count)
        .map(|i| format!("bench-{scenario}-{pid}-{run}-{i}"))
        .collect()
}

/// Creates the topics with `POST /topics`, unless told not to. Returns a note when the server
/// has no such route (it is then expected to create topics on subscribe).
pub async fn create_topics(
    target: &Target,
    topics: &[String],
    env: &Env,
) -> Result<Option<String>, String> {
    if env.common.no_create {
        return Ok(Some("--no-create: topics not created over REST".to_owned()));
    }
    let Some(first) = topics.first() else {
        return Ok(None);
    };
    if client::create_topic(target.addr, first).await? == Created::NoRoute {
        return Ok(Some(
            "the server has no POST /topics (404/405): topics are left to subscribe to create"
                .to_owned(),
        ));
    }
    let results: Vec<Result<Created, String>> = stream::iter(topics.iter().skip(1))
        .map(|t| client::create_topic(target.addr, t))
        .buffer_unordered(16)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(None)
}

/// Read buffer per harness connection: big enough for a busy subscriber to take a burst in one
/// read, small enough that thousands of connections fit.
pub fn read_buffer(connections: u64) -> usize {
    if connections > 2000 { 4096 } else { 64 * 1024 }
}

/// Opens one subscribed connection per entry of `topic_of`, `concurrency` at a time. Returns the
/// connections that succeeded (in order) and how many failed with the first failure.
pub async fn connect_subscribers(
    target: &Target,
    topics: &[String],
    topic_of: impl Iterator<Item = usize>,
    concurrency: usize,
    read_buffer: usize,
) -> (Vec<(usize, Ws)>, u64, Option<String>) {
    let results: Vec<Result<(usize, Ws), String>> = stream::iter(topic_of)
        .map(|t| async move {
            let topic = topics.get(t).ok_or("no such topic index")?;
            let mut ws = client::connect(target, read_buffer).await?;
            client::subscribe(&mut ws, topic).await?;
            Ok((t, ws))
        })
        .buffered(concurrency)
        .collect()
        .await;
    let mut ok = Vec::with_capacity(results.len());
    let (mut failed, mut first) = (0, None);
    for r in results {
        match r {
            Ok(conn) => ok.push(conn),
            Err(e) => {
                failed += 1;
                first.get_or_insert(e);
            }
        }
    }
    (ok, failed, first)
}

/// CPU time of the harness and of the server over a stretch of wall time.
pub struct CpuProbe {
    wall: Instant,
    harness: Duration,
    server: Option<Duration>,
    pid: Option<u32>,
}

pub struct CpuUse {
    pub wall: Duration,
    pub harness: Duration,
    pub server: Option<Duration>,
}

impl CpuProbe {
    pub fn start(target: &Target) -> Result<Self, String> {
        Ok(CpuProbe {
            wall: Instant::now(),
            harness: procfs::cpu_time("self")?,
            server: target
                .pid
                .map(|p| procfs::cpu_time(&p.to_string()))
                .transpose()?,
            pid: target.pid,
        })
    }

    pub fn stop(&self) -> Result<CpuUse, String> {
        let server = match (self.pid, self.server) {
            (Some(pid), Some(before)) => {
                Some(procfs::cpu_time(&pid.to_string())?.saturating_sub(before))
            }
            _ => None,
        };
        Ok(CpuUse {
            wall: self.wall.elapsed(),
            harness: procfs::cpu_time("self")?.saturating_sub(self.harness),
            server,
        })
    }
}

impl CpuUse {
    /// The harness's and the server's CPU figures, and notes when the harness or the machine was
    /// saturated: then the figures measure the machine, not only the server.
    pub fn figures(
        &self,
        env: &Env,
        figures: &mut Vec<(&'static str, serde_json::Value)>,
        notes: &mut Vec<String>,
    ) {
        let wall = self.wall.as_secs_f64().max(1e-9);
        let harness_cores = self.harness.as_secs_f64() / wall;
        // The runtime's workers plus the publisher's thread, on at most every CPU.
        let capacity = (env.threads + 1).min(env.cpus).max(1);
        let load = harness_cores / capacity as f64;
        figures.push(("harness_cpu_cores", num(harness_cores)));
        figures.push(("harness_load", num(load)));
        if load >= 0.9 {
            notes.push(format!(
                "HARNESS SATURATED: it used {harness_cores:.2} of the {capacity} CPUs its threads \
                 can use ({:.0}%); the figures are bounded by the harness, not only the server",
                load * 100.0
            ));
        }
        if let Some(server) = self.server {
            let server_cores = server.as_secs_f64() / wall;
            figures.push(("server_cpu_s", num(server.as_secs_f64())));
            figures.push(("server_cpu_cores", num(server_cores)));
            let total = harness_cores + server_cores;
            if total >= 0.95 * env.cpus as f64 {
                notes.push(format!(
                    "machine CPU saturated: harness {harness_cores:.2} + server {server_cores:.2} \
                     of {} CPUs",
                    env.cpus
                ));
            }
        }
    }
}

/// Microsecond percentiles of a latency histogram.
pub fn latency_figures(
    h: &hdrhistogram::Histogram<u64>,
    figures: &mut Vec<(&'static str, serde_json::Value)>,
) {
    let empty = h.is_empty();
    let q = |q: f64| {
        if empty {
            serde_json::Value::Null
        } else {
            num(h.value_at_quantile(q) as f64)
        }
    };
    figures.push(("p50_us", q(0.5)));
    figures.push(("p99_us", q(0.99)));
    figures.push(("p999_us", q(0.999)));
    figures.push((
        "max_us",
        if empty {
            serde_json::Value::Null
        } else {
            num(h.max() as f64)
        },
    ));
}
