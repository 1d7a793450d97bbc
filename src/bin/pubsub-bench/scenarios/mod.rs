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
use crate::report::{Better, Headline, RunReport, num};
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

    /// How long fanout, topics and rate publish at least.
    pub fn min_duration(&self) -> Duration {
        Duration::from_secs_f64(self.common.min_seconds)
    }

    /// Read buffer per subscriber connection: `--read-buffer`, or big enough for a busy
    /// subscriber to take a burst in one read yet small enough that thousands of connections fit.
    pub fn read_buffer(&self, connections: u64) -> usize {
        match self.common.read_buffer {
            Some(bytes) => bytes as usize,
            None if connections > 2000 => 4096,
            None => 64 * 1024,
        }
    }
}

/// The figure a scenario is judged by (what `--compare` prints the ratio of).
pub fn headline(scenario: &Scenario, target: &Target) -> Headline {
    match scenario {
        Scenario::Fanout { .. } | Scenario::Topics { .. } => Headline {
            key: "deliveries_per_s",
            better: Better::Higher,
        },
        Scenario::Rate { .. } => Headline {
            key: "p99_us",
            better: Better::Lower,
        },
        Scenario::Conns { .. } if target.has_pids() => Headline {
            key: "server_rss_per_conn_kib",
            better: Better::Lower,
        },
        Scenario::Conns { .. } => Headline {
            key: "connects_per_s",
            better: Better::Higher,
        },
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
            target.label()
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

/// Creates the topics with `POST /topics` on every server of the target, unless told not to.
/// Returns a note when a server has no such route (it is then expected to create topics on
/// subscribe).
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
    let mut note = None;
    for &addr in &target.addrs {
        if client::create_topic(addr, first).await? == Created::NoRoute {
            note = Some(format!(
                "{addr} has no POST /topics (404/405): topics are left to subscribe to create"
            ));
            continue;
        }
        let results: Vec<Result<Created, String>> = stream::iter(topics.iter().skip(1))
            .map(|t| client::create_topic(addr, t))
            .buffer_unordered(16)
            .collect()
            .await;
        for r in results {
            r?;
        }
    }
    Ok(note)
}

/// Opens one subscribed connection per entry of `topic_of`, `concurrency` at a time, spread
/// round-robin over the target's servers. Returns the connections that succeeded (in order)
/// and how many failed with the first failure.
pub async fn connect_subscribers(
    target: &Target,
    topics: &[String],
    topic_of: impl Iterator<Item = usize>,
    concurrency: usize,
    read_buffer: usize,
) -> (Vec<(usize, Ws)>, u64, Option<String>) {
    let results: Vec<Result<(usize, Ws), String>> = stream::iter(topic_of.enumerate())
        .map(|(i, t)| async move {
            let topic = topics.get(t).ok_or("no such topic index")?;
            let addr = target.subscriber_addr(i);
            let mut ws = client::connect(addr, &target.ws_path, read_buffer).await?;
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

/// CPU time of the harness, of the server's processes and of Redis's over a stretch of wall
/// time.
pub struct CpuProbe {
    wall: Instant,
    harness: Duration,
    server: Option<Duration>,
    redis: Option<Duration>,
    pids: Vec<u32>,
    redis_pids: Vec<u32>,
}

pub struct CpuUse {
    pub wall: Duration,
    pub harness: Duration,
    /// Summed over the target's PIDs; `None` without any.
    pub server: Option<Duration>,
    /// Summed over the target's Redis PIDs; `None` without any.
    pub redis: Option<Duration>,
}

/// The CPU time of `pids` together, or `None` when there are none.
fn cpu_of(pids: &[u32]) -> Result<Option<Duration>, String> {
    if pids.is_empty() {
        Ok(None)
    } else {
        procfs::cpu_time_of(pids).map(Some)
    }
}

impl CpuProbe {
    pub fn start(target: &Target) -> Result<Self, String> {
        Ok(CpuProbe {
            wall: Instant::now(),
            harness: procfs::cpu_time("self")?,
            server: cpu_of(&target.pids)?,
            redis: cpu_of(&target.redis_pids)?,
            pids: target.pids.clone(),
            redis_pids: target.redis_pids.clone(),
        })
    }

    pub fn stop(&self) -> Result<CpuUse, String> {
        let since = |now: Option<Duration>, before: Option<Duration>| {
            now.zip(before)
                .map(|(now, before)| now.saturating_sub(before))
        };
        Ok(CpuUse {
            wall: self.wall.elapsed(),
            harness: procfs::cpu_time("self")?.saturating_sub(self.harness),
            server: since(cpu_of(&self.pids)?, self.server),
            redis: since(cpu_of(&self.redis_pids)?, self.redis),
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
        let mut total = harness_cores;
        if let Some(server) = self.server {
            let server_cores = server.as_secs_f64() / wall;
            figures.push(("server_cpu_s", num(server.as_secs_f64())));
            figures.push(("server_cpu_cores", num(server_cores)));
            total += server_cores;
        }
        if let Some(redis) = self.redis {
            let redis_cores = redis.as_secs_f64() / wall;
            figures.push(("redis_cpu_s", num(redis.as_secs_f64())));
            figures.push(("redis_cpu_cores", num(redis_cores)));
            total += redis_cores;
        }
        if self.server.is_some() && total >= 0.95 * env.cpus as f64 {
            notes.push(format!(
                "machine CPU saturated: harness, server{} used {total:.2} of {} CPUs",
                if self.redis.is_some() {
                    " and Redis"
                } else {
                    ""
                },
                env.cpus
            ));
        }
    }

    /// Server CPU per delivery and Redis CPU per publish, in microseconds, when known: the
    /// figures to read beside a throughput.
    pub fn per_work(
        &self,
        deliveries: u64,
        publishes: u64,
        figures: &mut Vec<(&'static str, serde_json::Value)>,
    ) {
        if let Some(server) = self.server
            && deliveries > 0
        {
            figures.push((
                "server_us_per_delivery",
                num(server.as_secs_f64() * 1e6 / deliveries as f64),
            ));
        }
        if let Some(redis) = self.redis
            && publishes > 0
        {
            figures.push((
                "redis_us_per_publish",
                num(redis.as_secs_f64() * 1e6 / publishes as f64),
            ));
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
