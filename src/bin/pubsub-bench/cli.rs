//! Command-line flags. Every scenario's defaults are the ones issue 5 and BENCHMARKS.md name.

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "pubsub-bench",
    about = "Load generator for servers speaking the pubsub WebSocket protocol (loopback only).",
    long_about = "Load generator for servers speaking the pubsub WebSocket protocol over loopback.\n\
        Prints a readable table and one JSON line per run. With --compare it runs the same \
        scenario against a second server in alternation (A B A B ...) and prints the ratio of \
        the scenario's headline figure per run and its median.\n\n\
        Topics are created with POST /topics before a run (201 and 409 both count as created). \
        A server without that route (404/405) is assumed to create topics on subscribe; \
        --no-create skips the requests altogether."
)]
pub struct Cli {
    #[command(subcommand)]
    pub scenario: Scenario,

    #[command(flatten)]
    pub common: Common,
}

#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Server under test, HOST:PORT. Only loopback addresses are accepted.
    #[arg(long, global = true, default_value = "127.0.0.1:8000")]
    pub addr: String,

    /// PID of the server at --addr: enables server CPU and RSS figures (read from /proc).
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,

    /// Label for the server at --addr in the output.
    #[arg(long, global = true, default_value = "A")]
    pub name: String,

    /// A second server, HOST:PORT: run the scenario against both in alternation and print ratios.
    #[arg(long, global = true)]
    pub compare: Option<String>,

    /// PID of the --compare server.
    #[arg(long, global = true)]
    pub compare_pid: Option<u32>,

    /// Label for the --compare server in the output.
    #[arg(long, global = true, default_value = "B")]
    pub compare_name: String,

    /// Runs per server (with --compare: A B A B ..., this many of each).
    #[arg(long, global = true, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,

    /// WebSocket path on the servers.
    #[arg(long, global = true, default_value = "/ws")]
    pub ws_path: String,

    /// Do not create topics with POST /topics (for servers that create them on subscribe).
    #[arg(long, global = true)]
    pub no_create: bool,

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

#[derive(Subcommand, Debug, Clone)]
pub enum Scenario {
    /// S subscribers on one topic, one publisher with at most W unacknowledged publishes:
    /// deliveries/s, fraction delivered, end-to-end latency, server CPU per delivery.
    Fanout {
        /// Subscriber connections.
        #[arg(short = 's', long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=19_000))]
        subscribers: u32,
        /// Messages to publish.
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
        /// Seconds to publish for.
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
        /// Messages to publish in all, round-robin over the topics.
        #[arg(short = 'm', long, default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(1..=100_000_000))]
        messages: u32,
        #[command(flatten)]
        payload: Payload,
        /// Most unacknowledged publishes at any time.
        #[arg(short = 'w', long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        window: u32,
    },
    /// C idle connections, each subscribed to one of P topics: connects/s, server RSS per
    /// connection (with --server-pid), and one publish per topic must reach every connection.
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
