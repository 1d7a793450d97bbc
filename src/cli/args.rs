//! The client commands' flags.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The client commands of the `pubsub` binary (the server's flags are in `config.rs`).
#[derive(Debug, Parser)]
#[command(
    name = "pubsub",
    version,
    about = "Client commands for a pubsub server. `pubsub` without a command starts the server.",
    after_help = "Output: one JSON object per line when stdout is not a terminal (or with \
                  --output json), readable lines on a terminal. Notices (reconnects, gaps) also \
                  go to stderr."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// The server: its base URL (http://HOST:PORT) or its WebSocket URL (ws://HOST:PORT/ws).
    #[arg(
        long,
        env = "PUBSUB_URL",
        default_value = "http://127.0.0.1:8000",
        global = true
    )]
    pub url: String,

    /// Sent as `Authorization: Bearer TOKEN` with every request.
    #[arg(long, env = "PUBSUB_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,

    /// A shell command printing a fresh token, run whenever one is needed: before each
    /// connection and ahead of the token's `exp` (instead of --token).
    #[arg(long, value_name = "CMD", global = true, conflicts_with = "token")]
    pub token_command: Option<String>,

    /// `json` for one JSON object per line, `text` for people; `auto` picks JSON unless
    /// stdout is a terminal.
    #[arg(long, value_enum, default_value_t = Output::Auto, global = true)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Auto,
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Subscribe to topics and print their messages until Ctrl-C. Reconnects by itself and
    /// resumes from the last seq printed, so each seq is printed once, in order; what history no
    /// longer holds is reported as a gap.
    Sub(SubArgs),
    /// Publish a JSON message, or each line of stdin as one message.
    Pub(PubArgs),
    /// List the topics, or create, show or delete one.
    Topics(TopicsArgs),
    /// Print the messages a topic's history holds.
    History(HistoryArgs),
}

#[derive(Debug, Args)]
pub struct SubArgs {
    /// Topics to subscribe to.
    #[arg(required = true)]
    pub topics: Vec<String>,

    /// Start with the newest N messages history holds.
    #[arg(long, value_name = "N", conflicts_with = "since")]
    pub last: Option<u64>,

    /// Start after this seq (resume); give --epoch too, from an earlier `subscribed` line.
    #[arg(long, value_name = "SEQ")]
    pub since: Option<u64>,

    /// The topic's epoch when SEQ was seen: a topic deleted and created since is reported.
    #[arg(long, value_name = "EPOCH", requires = "since")]
    pub epoch: Option<String>,

    /// Exit after this many messages (all topics together).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

#[derive(Debug, Args)]
pub struct PubArgs {
    /// The topic to publish to.
    pub topic: String,

    /// The message, as JSON (quote it for the shell). Without it, each non-empty line of stdin
    /// is published as one message, in order.
    pub message: Option<String>,
}

#[derive(Debug, Args)]
pub struct TopicsArgs {
    #[command(subcommand)]
    pub action: Option<TopicsAction>,
}

#[derive(Debug, Subcommand)]
pub enum TopicsAction {
    /// List every topic (the default).
    List,
    /// Create a topic.
    Create { name: String },
    /// Show a topic's counters, last seq and epoch.
    Show { name: String },
    /// Delete a topic; its subscribers are told.
    Delete { name: String },
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub topic: String,

    /// Only messages after this seq.
    #[arg(long, value_name = "SEQ")]
    pub since: Option<u64>,

    /// At most this many messages (the server caps it at its history size).
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
}
