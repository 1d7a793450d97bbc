//! `pubsub sub TOPIC... [--last N | --since SEQ [--epoch E]] [--count N]`.

use futures_util::StreamExt;
use futures_util::stream::select_all;
use serde::Serialize;
use serde_json::value::RawValue;

use super::args::SubArgs;
use super::output::{Failure, Printer, notice};
use crate::client::{Client, Event, Options, Start, Status, Subscribed};
use crate::protocol::ErrorBody;

/// One line of `sub`'s JSON output, tagged by `event`.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Line<'a> {
    Subscribed {
        topic: &'a str,
        epoch: &'a str,
        last_seq: u64,
        replayed: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
    },
    Message {
        topic: &'a str,
        seq: u64,
        message: &'a RawValue,
        published_at: &'a str,
    },
    Gap {
        topic: &'a str,
        after_seq: u64,
        next_seq: u64,
        missed: u64,
        cause: &'a str,
    },
    EpochChanged {
        topic: &'a str,
        old_epoch: &'a str,
        new_epoch: &'a str,
    },
    TopicDeleted {
        topic: &'a str,
    },
    Revoked {
        topic: &'a str,
    },
    Failed {
        topic: &'a str,
        error: &'a ErrorBody,
    },
}

/// Runs until Ctrl-C (or SIGTERM), `--count` messages, or the end of every subscription.
pub async fn run(args: SubArgs, url: &str, options: Options, out: Printer) -> Result<(), Failure> {
    let start = match (args.last, args.since) {
        (Some(n), _) => Start::Last(n),
        (None, Some(seq)) => {
            if args.epoch.is_some() && args.topics.len() > 1 {
                return Err(Failure::Arguments(
                    "--epoch belongs to one topic: resume one topic at a time".to_owned(),
                ));
            }
            Start::After {
                seq,
                epoch: args.epoch.clone(),
            }
        }
        (None, None) => Start::Now,
    };
    let client = Client::connect(url, options).await?;
    let mut streams = Vec::new();
    for topic in &args.topics {
        let sub = client.subscribe(topic, start.clone()).await?;
        print_subscribed(sub.subscribed(), out)?;
        let topic = topic.clone();
        streams.push(sub.map(move |event| (topic.clone(), event)));
    }
    let mut events = select_all(streams);
    let mut status = client.status();
    let mut shown = status.borrow_and_update().clone();
    let mut printed = 0u64;
    let mut failed = false;
    let mut shutdown = std::pin::pin!(crate::server::shutdown_signal());
    let result = loop {
        if args.count.is_some_and(|count| printed >= count) {
            break Ok(());
        }
        tokio::select! {
            event = events.next() => match event {
                Some((topic, event)) => {
                    failed |= matches!(event, Event::Failed(_));
                    printed += u64::from(matches!(event, Event::Message(_)));
                    if let Err(e) = print_event(&topic, &event, out) {
                        break Err(e);
                    }
                }
                None => break Ok(()), // every subscription ended
            },
            changed = status.changed() => {
                if changed.is_err() {
                    break Ok(());
                }
                let now = status.borrow_and_update().clone();
                connection_notice(&shown, &now);
                shown = now;
            }
            _ = &mut shutdown => break Ok(()),
        }
    };
    client.close().await;
    match result {
        Ok(()) if failed => Err(Failure::Other(
            "a subscription was refused by the server".to_owned(),
        )),
        other => other,
    }
}

fn print_subscribed(ack: &Subscribed, out: Printer) -> Result<(), Failure> {
    out.json_only(&Line::Subscribed {
        topic: &ack.topic,
        epoch: &ack.epoch,
        last_seq: ack.last_seq,
        replayed: ack.replayed,
        recovered: ack.recovered,
    })?;
    notice(format_args!(
        "subscribed to {} (epoch {}, last seq {}, {} replayed{})",
        ack.topic,
        ack.epoch,
        ack.last_seq,
        ack.replayed,
        match ack.recovered {
            Some(true) => ", nothing missed",
            Some(false) => ", some messages missed",
            None => "",
        }
    ));
    Ok(())
}

fn print_event(topic: &str, event: &Event, out: Printer) -> Result<(), Failure> {
    match event {
        Event::Message(m) => out.record(
            &Line::Message {
                topic,
                seq: m.seq,
                message: &m.message,
                published_at: &m.published_at,
            },
            format_args!(
                "[{}] {topic} #{} {}",
                m.published_at,
                m.seq,
                m.message.get()
            ),
        ),
        Event::Gap(gap) => {
            notice(format_args!(
                "{topic}: gap: {} messages after seq {} are no longer in history (cause: {}); \
                 next is seq {}",
                gap.missed(),
                gap.after_seq,
                gap.cause,
                gap.next_seq
            ));
            out.json_only(&Line::Gap {
                topic,
                after_seq: gap.after_seq,
                next_seq: gap.next_seq,
                missed: gap.missed(),
                cause: gap.cause.as_str(),
            })
        }
        Event::EpochChanged {
            old_epoch,
            new_epoch,
        } => {
            notice(format_args!(
                "{topic}: the topic was deleted and created again (epoch {old_epoch} -> \
                 {new_epoch}); seq starts again"
            ));
            out.json_only(&Line::EpochChanged {
                topic,
                old_epoch,
                new_epoch,
            })
        }
        Event::TopicDeleted => {
            notice(format_args!("{topic}: the topic was deleted"));
            out.json_only(&Line::TopicDeleted { topic })
        }
        Event::Revoked => {
            notice(format_args!(
                "{topic}: the token no longer allows this subscription"
            ));
            out.json_only(&Line::Revoked { topic })
        }
        Event::Failed(error) => {
            notice(format_args!(
                "{topic}: the server refused to resubscribe: {}: {}",
                error.code.as_str(),
                error.message
            ));
            out.json_only(&Line::Failed { topic, error })
        }
    }
}

/// Tells the person watching when the connection goes and comes back.
pub fn connection_notice(before: &Status, now: &Status) {
    // Both may have happened since the last look.
    if before.connected && (!now.connected || now.connections > before.connections) {
        notice(format_args!(
            "connection lost ({}); reconnecting",
            now.last_error.as_deref().unwrap_or("no reason given")
        ));
    }
    if now.connections > before.connections {
        notice(format_args!(
            "reconnected (reconnect {})",
            now.connections.saturating_sub(1)
        ));
    }
}
