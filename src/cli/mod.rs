//! The client commands of the `pubsub` binary, on [`crate::client`]:
//!
//! ```text
//! pubsub sub TOPIC... [--last N | --since SEQ [--epoch E]] [--count N]
//! pubsub pub TOPIC [JSON]                 (without JSON: one message per line of stdin)
//! pubsub topics [list | create NAME | show NAME | delete NAME]
//! pubsub history TOPIC [--since SEQ] [--limit N]
//! pubsub token --sub NAME [--publish PATTERN]... [--subscribe PATTERN]... [--admin] [--ttl 1h]
//! ```
//!
//! Each takes `--url` (`PUBSUB_URL`, default `http://127.0.0.1:8000`), `--token`
//! (`PUBSUB_TOKEN`) and `--output auto|json|text`. `main` calls [`run_if_command`] first: with
//! no command among its arguments, `pubsub` starts the server as before.

mod args;
mod output;
mod publish;
mod rest;
mod sub;
mod token;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

pub use args::Cli;
use args::Command;
use output::{Failure, Printer, notice};

use crate::client::{Options, Rest};

/// The commands, as the first argument names them.
pub const COMMANDS: [&str; 4] = ["sub", "pub", "topics", "history"];

/// A line for the server's `--help`, pointing at the client commands.
pub const SERVER_HELP_NOTE: &str = "Client commands: pubsub sub | pub | topics | history \
                                    (`pubsub sub --help` and so on); `pubsub token` prints a \
                                    token signed with --auth-hmac-secret.";

/// Runs the client command the process's first argument names, and returns its exit code; None
/// when the first argument is not a command (then the arguments are the server's).
pub fn run_if_command() -> Option<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().collect();
    let first = args.get(1)?.to_str()?;
    if first == "token" {
        return Some(token::run(args));
    }
    COMMANDS.contains(&first).then(|| run(args))
}

/// Parses `args` (the program name first) as a client command and runs it.
pub fn run(args: Vec<OsString>) -> ExitCode {
    let cli = Cli::try_parse_from(args).unwrap_or_else(|e| e.exit());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            notice(format_args!("error: cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`pubsub sub news | head`): nothing more to say.
        Err(Failure::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            notice(format_args!("error: {e}"));
            match e {
                Failure::Arguments(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

async fn execute(cli: Cli) -> Result<(), Failure> {
    let out = Printer::new(cli.output);
    let options = Options {
        token: cli.token.clone(),
        ..Options::default()
    };
    match cli.command {
        Command::Sub(args) => sub::run(args, &cli.url, options, out).await,
        Command::Pub(args) => publish::run(args, &cli.url, options, out).await,
        Command::Topics(args) => {
            let rest = Rest::new(&cli.url, cli.token)?;
            rest::topics(args.action, &rest, out).await
        }
        Command::History(args) => {
            let rest = Rest::new(&cli.url, cli.token)?;
            rest::history(args, &rest, out).await
        }
    }
}
