//! Command-line flags. Every scenario's defaults are the ones issue 5 and BENCHMARKS.md name.

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "pubsub-bench",
    about = "Load generator for servers speaking the pubsub WebSocket protocol (loopback only).",
    long_about = "Load generator for servers speaking the pubsub WebSocket protocol over loopback.\n\
        Prints a readable table and one JSON line per run. With --compare it runs the same \
        scenario against a second server in alternation (A B, B A, A B, ...) and prints the ratio \
        of the scenario's headline figure per run and its median.\n\n\
        Topics are created with POST /topics before a run (201 and 409 both count as created). \
        A server without that route (404/405) is assumed to create topics on subscribe; \
        --no-create skips the requests altogether.\n\n\
        `pubsub-bench tables` turns the raw JSON lines of scripts/bench-all.sh into the tables \
        of BENCHMARKS.md."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub common: Common,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    #[command(flatten)]
    Scenario(Scenario),
    /// Regenerates the generated section of BENCHMARKS.md from raw JSON lines (the load flags
    /// do not apply).
    Tables(TablesArgs),
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Server under test, HOST:PORT; only loopback addresses are accepted. Several (repeat the
    /// flag, or a comma list) are the nodes of one group: subscribers are spread over them
    /// round-robin, the publisher connects to the first.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "127.0.0.1:8000"
    )]
    pub addr: Vec<String>,

    /// PID of the server at --addr (repeat, or a comma list, for several processes: their CPU
    /// and RSS are added up): enables server CPU and RSS figures (read from /proc).
    #[arg(long, global = true, value_delimiter = ',')]
    pub server_pid: Vec<u32>,

    /// Label for the server at --addr in the output.
    #[arg(long, global = true, default_value = "A")]
    pub name: String,

    /// A second server (or group, as for --addr): run the scenario against both in alternation
    /// and print ratios.
    #[arg(long, global = true, value_delimiter = ',')]
    pub compare: Vec<String>,

    /// PID of the --compare server (repeatable, as --server-pid).
    #[arg(long, global = true, value_delimiter = ',')]
    pub compare_pid: Vec<u32>,

    /// Label for the --compare server in the output.
    #[arg(long, global = true, default_value = "B")]
    pub compare_name: String,

    /// PID of a Redis behind the server at --addr (repeatable, e.g. a Cluster's nodes): reports
    /// Redis's CPU per publish.
    #[arg(long, global = true, value_delimiter = ',')]
    pub redis_pid: Vec<u32>,

    /// PID of a Redis behind the --compare server.
    #[arg(long, global = true, value_delimiter = ',')]
    pub compare_redis_pid: Vec<u32>,

    /// Report the server's CPU per delivery beside the throughput in every scenario. PIDs not
    /// given with --server-pid / --compare-pid are found by the port each address listens on;
    /// the run stops with an error when a server's PID cannot be found.
    #[arg(long, global = true)]
    pub cpu: bool,

    /// Runs per server (with --compare: this many of each, in pairs).
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,

    /// With --compare, the order within each pair of runs: `abba` starts odd-numbered runs with
    /// A and even-numbered ones with B (so neither server always goes first); `abab` always
    /// starts with A.
    #[arg(long, global = true, value_enum, default_value_t = Order::Abba)]
    pub order: Order,

    /// Number of the first run. With `--order abba` the order follows the run number, so
    /// successive invocations with `--runs 1 --first-run 1`, `2`, ... alternate too.
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub first_run: u32,

    /// WebSocket path on the servers.
    #[arg(long, global = true, default_value = "/ws")]
    pub ws_path: String,

    /// Do not create topics with POST /topics (for servers that create them on subscribe).
    #[arg(long, global = true)]
    pub no_create: bool,

    /// How subscribers read a frame: `cheap` finds the send time in the bytes without parsing;
    /// `full` parses every frame as JSON (serde_json::Value), as a real client would.
    #[arg(long, global = true, value_enum, default_value_t = Parse::Cheap)]
    pub parse: Parse,

    /// Read buffer of each subscriber connection, in bytes (default: 64 KiB, or 4 KiB when a run
    /// opens more than 2000 connections).
    #[arg(long, global = true, value_parser = clap::value_parser!(u32).range(256..=64 << 20))]
    pub read_buffer: Option<u32>,

    /// fanout, topics and rate measure for at least this many seconds: the publisher goes on
    /// past --messages (or --duration) until this much time has passed. Sending more, never
    /// slower. 0: exactly --messages.
    #[arg(long, global = true, default_value_t = 2.0, value_parser = seconds)]
    pub min_seconds: f64,

    /// Worker threads of the harness's runtime (default: the number of CPUs).
    #[arg(long, global = true, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: Option<u32>,

    /// Hard limit on one run, in seconds: a run that has not finished by then is cut short and
    /// reports what it saw.
    #[arg(long, global = true, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,

    /// Seconds to wait for deliveries still in flight after the last publish was acknowledged.
    #[arg(long, global = true, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub drain_timeout: u64,

    /// Seconds to pause between runs, so the servers can close the last run's connections.
    #[arg(long, global = true, default_value_t = 1.0)]
    pub pause: f64,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Abba,
    Abab,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    Cheap,
    Full,
}

fn seconds(text: &str) -> Result<f64, String> {
    let s: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=3600.0).contains(&s) {
        Ok(s)
    } else {
        Err("must be between 0 and 3600".to_owned())
    }
}

#[derive(Args, Debug, Clone)]
pub struct TablesArgs {
    /// Directory of raw results, one `ROW.jsonl` per row (as scripts/bench-all.sh writes them).
    #[arg(long, default_value = "bench/raw")]
    pub raw: std::path::PathBuf,

    /// The document whose generated section is replaced (between the `bench-tables:begin` and
    /// `bench-tables:end` comments).
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub doc: std::path::PathBuf,

    /// Print the generated section instead of writing it into --doc.
    #[arg(long)]
    pub stdout: bool,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Scenario {
    /// S subscribers on one topic, one publisher with at most W unacknowledged publishes:
    /// deliveries/s, fraction delivered, end-to-end latency, server CPU per delivery.
    Fanout {
        /// Subscriber connections.
        #[arg(short = 's', long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=19_000))]
        subscribers: u32,
        /// Messages to publish, at least (see --min-seconds).
        #[arg(short = 'm', long, default_value_t = 20_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
        messages: u32,
        #[command(flatten)]
        payload: Payload,
        /// Most unacknowledged publishes at any time.
        #[arg(short = 'w', long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        window: u32,
    },
    /// S subscribers on one topic, one publisher at a fixed rate R for D seconds: latency
    /// percentiles and whether the server kept up.
    Rate {
        /// Subscriber connections.
        #[arg(short = 's', long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=19_000))]
        subscribers: u32,
        /// Publishes per second.
        #[arg(short = 'r', long, default_value_t = 1000)]
        rate: u32,
        /// Seconds to publish for (at least --min-seconds).
        #[arg(short = 'd', long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=3600))]
        duration: u32,
        #[command(flatten)]
        payload: Payload,
        /// Most unacknowledged publishes at any time; the publisher falls behind schedule when
        /// the server acknowledges too slowly.
        #[arg(short = 'w', long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        window: u32,
    },
    /// T topics with one subscriber connection each, one publisher cycling through them:
    /// deliveries/s.
    Topics {
        /// Topics (and subscriber connections).
        #[arg(short = 't', long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=19_000))]
        topics: u32,
        /// Messages to publish in all, round-robin over the topics; at least (see --min-seconds).
        #[arg(short = 'm', long, default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
        messages: u32,
        #[command(flatten)]
        payload: Payload,
        /// Most unacknowledged publishes at any time.
        #[arg(short = 'w', long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        window: u32,
    },
    /// C idle connections, each subscribed to one of P topics: connects/s, server RSS per
    /// connection (with --server-pid), and one publish per topic must reach every connection
    /// (--min-seconds does not apply).
    Conns {
        /// Connections to open.
        #[arg(short = 'c', long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        connections: u32,
        /// Topics the connections are spread over.
        #[arg(short = 't', long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        topics: u32,
        /// Connection attempts in flight at once. More is slower on loopback here: with 200 the
        /// connects/s fell several-fold against 64, while the kernel counted accept-queue
        /// overflows and SYN retransmits (a dropped SYN is retried after 1 s).
        #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        concurrency: u32,
        /// Seconds to wait after the last connect before reading the server's RSS.
        #[arg(long, default_value_t = 1.0)]
        settle: f64,
    },
}

#[derive(Args, Debug, Clone, Copy)]
pub struct Payload {
    /// Size of each published `message`, in bytes of its JSON text (at least 30: it carries the
    /// send time).
    #[arg(short = 'b', long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=16_000_000))]
    pub bytes: u32,
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Fanout { .. } => "fanout",
            Scenario::Rate { .. } => "rate",
            Scenario::Topics { .. } => "topics",
            Scenario::Conns { .. } => "conns",
        }
    }

    /// Connections one run opens, publisher included: sizes buffers and checks the file limit.
    pub fn connections(&self) -> u64 {
        match self {
            Scenario::Fanout { subscribers, .. } | Scenario::Rate { subscribers, .. } => {
                u64::from(*subscribers) + 1
            }
            Scenario::Topics { topics, .. } => u64::from(*topics) + 1,
            Scenario::Conns { connections, .. } => u64::from(*connections) + 1,
        }
    }
}
