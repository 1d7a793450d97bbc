//! pubsub-bench: load over loopback against any server speaking the pubsub WebSocket protocol
//! (this broker, or fanout-reference). See `--help` and BENCHMARKS.md.
//!
//! Modules: `cli` flags; `target` addresses and the loopback rule; `client` connections and
//! topic creation; `wire` frames sent and the cheap reading of frames received; `publisher` and
//! `subscriber` the two ends of the load; `scenarios` fanout, rate, topics, conns; `procfs` CPU,
//! RSS and the file limit; `report` the table and JSON line; `compare` alternation and ratios.

mod cli;
mod client;
mod compare;
mod procfs;
mod publisher;
mod report;
mod scenarios;
mod subscriber;
mod target;
mod wire;

use std::process::ExitCode;

use clap::Parser;

use cli::Cli;
use scenarios::Env;
use target::{Target, loopback_addr};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("pubsub-bench: error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Ok(false) when some run failed (its notes say why).
fn run(cli: Cli) -> Result<bool, String> {
    let common = cli.common.clone();
    let mut targets = vec![Target {
        name: common.name.clone(),
        addr: loopback_addr(&common.addr)?,
        pid: common.server_pid,
        ws_path: common.ws_path.clone(),
    }];
    if let Some(other) = &common.compare {
        if common.compare_name == common.name {
            return Err("--name and --compare-name must differ".to_owned());
        }
        targets.push(Target {
            name: common.compare_name.clone(),
            addr: loopback_addr(other)?,
            pid: common.compare_pid,
            ws_path: common.ws_path.clone(),
        });
    }

    let limit = procfs::raise_nofile_limit()?;
    let needed = cli.scenario.connections() + 64;
    if needed > limit {
        return Err(format!(
            "this run needs about {needed} open files but the limit is {limit} (hard limit \
             reached); use fewer connections"
        ));
    }

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = common.threads.map_or(cpus, |t| t as usize);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let env = Env {
        common,
        threads,
        cpus,
    };
    println!(
        "pubsub-bench {}: {} on {}; harness: {threads} threads on {cpus} CPUs, open-file limit {limit}",
        env!("CARGO_PKG_VERSION"),
        cli.scenario.name(),
        targets
            .iter()
            .map(|t| format!("{} ({})", t.name, t.addr))
            .collect::<Vec<_>>()
            .join(" vs "),
    );
    let reports = runtime.block_on(compare::run_all(&cli.scenario, &targets, &env))?;
    Ok(reports.iter().all(|r| r.ok))
}
