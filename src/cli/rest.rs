//! `pubsub topics [list|create|show|delete]` and `pubsub history`, over the REST API.

use serde::Serialize;
use serde_json::value::RawValue;

use super::args::{HistoryArgs, TopicsAction};
use super::output::{Failure, Printer};
use crate::client::Rest;

pub async fn topics(
    action: Option<TopicsAction>,
    rest: &Rest,
    out: Printer,
) -> Result<(), Failure> {
    match action.unwrap_or(TopicsAction::List) {
        TopicsAction::List => {
            for topic in rest.list_topics().await?.topics {
                let text = format!(
                    "{}  {} subscriber{}",
                    topic.name,
                    topic.subscriber_count,
                    if topic.subscriber_count == 1 { "" } else { "s" }
                );
                out.record(&topic, text)?;
            }
            Ok(())
        }
        TopicsAction::Create { name } => {
            let topic = rest.create_topic(&name).await?;
            out.record(&topic, format_args!("created {}", topic.name))
        }
        TopicsAction::Show { name } => {
            let t = rest.topic(&name).await?;
            let text = format!(
                "{}\n  subscribers:         {}\n  messages published:  {}\n  messages in history: {}\n  \
                 last seq:            {}\n  epoch:               {}",
                t.name,
                t.subscriber_count,
                t.messages_published,
                t.messages_in_history,
                t.last_seq,
                t.epoch
            );
            out.record(&t, text)
        }
        TopicsAction::Delete { name } => {
            let deleted = rest.delete_topic(&name).await?;
            out.record(&deleted, format_args!("deleted {}", deleted.name))
        }
    }
}

/// One line of `history`'s JSON output: the same fields as `sub`'s message lines.
#[derive(Serialize)]
struct Line<'a> {
    topic: &'a str,
    seq: u64,
    message: &'a RawValue,
    published_at: &'a str,
}

pub async fn history(args: HistoryArgs, rest: &Rest, out: Printer) -> Result<(), Failure> {
    let history = rest.history(&args.topic, args.since, args.limit).await?;
    for m in &history.messages {
        out.record(
            &Line {
                topic: &history.topic,
                seq: m.seq,
                message: &m.message,
                published_at: &m.published_at,
            },
            format_args!(
                "[{}] {} #{} {}",
                m.published_at,
                history.topic,
                m.seq,
                m.message.get()
            ),
        )?;
    }
    Ok(())
}
