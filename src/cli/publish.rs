//! `pubsub pub TOPIC [JSON]`: one message, or one per line of stdin.

use std::collections::VecDeque;

use serde_json::value::RawValue;
use tokio::sync::mpsc;

use super::args::PubArgs;
use super::output::{Failure, Printer, notice};
use crate::client::{Client, Error, Options, PublishReply};

/// Publishes from stdin with up to this many replies outstanding.
const IN_FLIGHT: usize = 64;

pub async fn run(args: PubArgs, url: &str, options: Options, out: Printer) -> Result<(), Failure> {
    if let Some(message) = &args.message {
        let raw = parse(message)?;
        let client = Client::connect(url, options).await?;
        let result = client.publish_raw(&args.topic, raw).await;
        client.close().await;
        return print(&args.topic, result?, out);
    }
    let client = Client::connect(url, options).await?;
    let mut lines = stdin_lines();
    let mut in_flight: VecDeque<(usize, PublishReply)> = VecDeque::new();
    let (mut line_no, mut failures) = (0usize, 0usize);
    while let Some(line) = lines.recv().await {
        let line = line
            .map_err(|e| Failure::Other(format!("cannot read stdin after line {line_no}: {e}")))?;
        line_no += 1;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let raw = match parse(text) {
            Ok(raw) => raw,
            Err(e) => {
                notice(format_args!("line {line_no}: {e}; not published"));
                failures += 1;
                continue;
            }
        };
        if in_flight.len() >= IN_FLIGHT
            && let Some((n, reply)) = in_flight.pop_front()
        {
            failures += settle(&args.topic, n, reply.await, out)?;
        }
        in_flight.push_back((line_no, client.send_publish(&args.topic, raw).await?));
    }
    while let Some((n, reply)) = in_flight.pop_front() {
        failures += settle(&args.topic, n, reply.await, out)?;
    }
    client.close().await;
    match failures {
        0 => Ok(()),
        n => Err(Failure::Other(format!(
            "{n} of {line_no} lines were not published"
        ))),
    }
}

/// The lines of stdin, read on a thread of their own (stdin blocks).
fn stdin_lines() -> mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let failed = line.is_err();
            if tx.blocking_send(line).is_err() || failed {
                return;
            }
        }
    });
    rx
}

/// The message as JSON text, checked before it is sent.
fn parse(text: &str) -> Result<Box<RawValue>, Failure> {
    RawValue::from_string(text.to_owned())
        .map_err(|e| Failure::Client(Error::InvalidJson(e.to_string())))
}

/// Prints one line's outcome; 1 when it failed (reported on stderr).
fn settle(
    topic: &str,
    line_no: usize,
    result: Result<u64, Error>,
    out: Printer,
) -> Result<usize, Failure> {
    match result {
        Ok(seq) => print(topic, seq, out).map(|()| 0),
        Err(e) => {
            notice(format_args!("line {line_no}: {e}"));
            Ok(1)
        }
    }
}

fn print(topic: &str, seq: u64, out: Printer) -> Result<(), Failure> {
    /// What `pub` prints for each message: where it landed.
    #[derive(serde::Serialize)]
    struct Landed<'a> {
        topic: &'a str,
        seq: u64,
    }
    let landed = Landed { topic, seq };
    out.record(&landed, format_args!("published {topic} #{seq}"))
}
