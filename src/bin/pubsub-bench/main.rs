//! pubsub-bench: load over loopback against any server speaking the pubsub WebSocket protocol
//! (this broker, or fanout-reference). See `--help` and BENCHMARKS.md.
//!
//! Modules: `cli` flags; `target` addresses and the loopback rule; `client` connections and
//! topic creation; `wire` frames sent and the cheap reading of frames received; `publisher` and
//! `subscriber` the two ends of the load; `scenarios` fanout, rate, topics, conns; `procfs` CPU,
//! RSS, the file limit and PIDs by port; `report` the table and JSON line; `compare` alternation
//! and ratios; `tables` BENCHMARKS.md's generated tables from the raw JSON lines.

mod cli;
mod client;
mod compare;
mod procfs;
mod publisher;
mod report;
mod scenarios;
mod subscriber;
mod tables;
mod target;
mod wire;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, Common, Scenario};
use scenarios::Env;
use target::{Target, loopback_addrs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Tables(args) => tables::run(&args).map(|()| true),
        Command::Scenario(scenario) => run(scenario, cli.common),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("pubsub-bench: error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Ok(false) when some run failed (its notes say why).
fn run(scenario: Scenario, common: Common) -> Result<bool, String> {
    let mut targets = vec![Target {
        name: common.name.clone(),
        addrs: loopback_addrs(&common.addr)?,
        pids: common.server_pid.clone(),
        redis_pids: common.redis_pid.clone(),
        ws_path: common.ws_path.clone(),
    }];
    if !common.compare.is_empty() {
        if common.compare_name == common.name {
            return Err("--name and --compare-name must differ".to_owned());
        }
        targets.push(Target {
            name: common.compare_name.clone(),
            addrs: loopback_addrs(&common.compare)?,
            pids: common.compare_pid.clone(),
            redis_pids: common.compare_redis_pid.clone(),
            ws_path: common.ws_path.clone(),
        });
    }
    if common.cpu {
        for target in targets.iter_mut().filter(|t| t.pids.is_empty()) {
            target.pids = find_pids(target)?;
        }
    }

    let limit = procfs::raise_nofile_limit()?;
    let needed = scenario.connections() + 64;
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
        scenario.name(),
        targets
            .iter()
            .map(describe)
            .collect::<Vec<_>>()
            .join(" vs "),
    );
    let reports = runtime.block_on(compare::run_all(&scenario, &targets, &env))?;
    // Not a single run could be carried out: a setup problem, reported as an error.
    if let Some(error) = reports
        .iter()
        .map(|r| r.error.as_ref())
        .collect::<Option<Vec<_>>>()
    {
        return Err(error.first().map_or_else(String::new, |e| (*e).clone()));
    }
    Ok(reports.iter().all(|r| r.ok))
}

/// The processes listening on the ports of a target's addresses (--cpu without PIDs).
fn find_pids(target: &Target) -> Result<Vec<u32>, String> {
    let mut pids = Vec::new();
    for addr in &target.addrs {
        let found = procfs::pids_listening_on(addr.port())?;
        if found.is_empty() {
            return Err(format!(
                "--cpu: no process found listening on port {} (of {}); give its PID with \
                 --server-pid or --compare-pid",
                addr.port(),
                target.name
            ));
        }
        for pid in found {
            if !pids.contains(&pid) {
                pids.push(pid);
            }
        }
    }
    Ok(pids)
}

/// `NAME (ADDRS, pid P[,Q])` for the first line of the output.
fn describe(target: &Target) -> String {
    let list = |pids: &[u32]| {
        pids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut out = format!("{} ({}", target.name, target.label());
    if target.has_pids() {
        out.push_str(&format!(", pid {}", list(&target.pids)));
    }
    if !target.redis_pids.is_empty() {
        out.push_str(&format!(", redis pid {}", list(&target.redis_pids)));
    }
    out.push(')');
    out
}
