//! Unit tests of the engine through its public handle, without any network.

use serde_json::Value;

use super::*;
use crate::protocol::{Frame, Replay};

fn broker(history_size: usize) -> Broker {
    Broker::new(BrokerConfig {
        history_size,
        max_message_bytes: 10,
        ..BrokerConfig::default()
    })
}

/// Everything queued for `client` so far, as JSON.
async fn drain(client: &Client) -> Vec<Value> {
    let mut batch = std::collections::VecDeque::new();
    if client.outbox().next_batch(&mut batch).await.is_err() {
        return Vec::new();
    }
    client.outbox().written(&batch);
    batch
        .iter()
        .map(|f| serde_json::from_str(&f.frame).unwrap())
        .collect()
}

/// A message as JSON text.
fn json(text: &str) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(text.to_owned()).unwrap()
}

fn ack(s: &Subscribed<'_>) -> Frame {
    Frame::from(format!(
        r#"{{"ack":"{}","replayed":{},"last_seq":{},"recovered":{}}}"#,
        s.topic,
        s.replayed,
        s.last_seq,
        s.recovered.map_or("null".to_owned(), |r| r.to_string())
    ))
}

#[tokio::test]
async fn topics_are_created_listed_sorted_and_deleted() {
    let b = broker(10);
    for name in ["b", "a", "c"] {
        b.create_topic(name).await.unwrap();
    }
    assert_eq!(
        b.create_topic("a").await.unwrap_err(),
        BrokerError::TopicExists("a".into())
    );
    assert!(matches!(
        b.create_topic("-x").await,
        Err(BrokerError::InvalidTopic(_))
    ));
    let names: Vec<_> = b
        .topics()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
    b.delete_topic("b").await.unwrap();
    assert_eq!(
        b.delete_topic("b").await,
        Err(BrokerError::TopicNotFound("b".into()))
    );
    assert_eq!(b.topics().await.unwrap().len(), 2);
}

#[tokio::test]
async fn each_creation_gets_a_fresh_epoch() {
    let b = broker(10);
    let first = b.create_topic("t").await.unwrap().epoch;
    b.delete_topic("t").await.unwrap();
    let second = b.create_topic("t").await.unwrap().epoch;
    assert_ne!(first, second);
    assert_eq!(first.len(), 12);
}

#[tokio::test]
async fn publish_numbers_messages_and_history_keeps_the_newest() {
    let b = broker(3);
    b.create_topic("t").await.unwrap();
    for i in 1..=5u64 {
        assert_eq!(
            b.publish("t", &json(&i.to_string())).await.map(|p| p.seq),
            Ok(i)
        );
    }
    let page = b.history("t", 0, 10).await.unwrap();
    let seqs: Vec<u64> = page.messages.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert_eq!(page.last_seq, 5);
    assert_eq!(page.messages[0].message(), "3");
    assert!(page.messages[0].published_at().ends_with('Z'));
    let page = b.history("t", 3, 1).await.unwrap();
    assert_eq!(page.messages.iter().map(|p| p.seq).collect::<Vec<_>>(), [4]);
    let info = b.topic("t").await.unwrap();
    assert_eq!((info.last_seq, info.in_history), (5, 3));
}

#[tokio::test]
async fn message_size_limit_is_inclusive() {
    let b = broker(0);
    b.create_topic("t").await.unwrap();
    assert_eq!(
        b.publish("t", &json("1234567890")).await.map(|p| p.seq),
        Ok(1)
    );
    assert_eq!(
        b.publish("t", &json("12345678901")).await.map(|p| p.seq),
        Err(BrokerError::MessageTooLarge { size: 11, max: 10 })
    );
    assert_eq!(
        b.publish("missing", &json("1")).await.map(|p| p.seq),
        Err(BrokerError::TopicNotFound("missing".into()))
    );
}

#[tokio::test]
async fn subscribe_queues_ack_then_replay_then_live() {
    let b = broker(10);
    b.create_topic("t").await.unwrap();
    for i in 1..=4 {
        b.publish("t", &json(&i.to_string()))
            .await
            .map(|p| p.seq)
            .unwrap();
    }
    let mut c = b.connect().expect("room for a connection");
    c.subscribe("t", &Replay::Last(2), ack).await.unwrap();
    b.publish("t", &json("5")).await.map(|p| p.seq).unwrap();
    let frames = drain(&c).await;
    assert_eq!(frames[0]["ack"], "t");
    assert_eq!(frames[0]["replayed"], 2);
    assert_eq!(frames[0]["last_seq"], 4);
    let seqs: Vec<&Value> = frames[1..].iter().map(|f| &f["seq"]).collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert_eq!(frames[3]["message"], 5);
}

#[tokio::test]
async fn resubscribing_does_not_register_twice() {
    let b = broker(10);
    b.create_topic("t").await.unwrap();
    let mut c = b.connect().expect("room for a connection");
    c.subscribe("t", &Replay::None, ack).await.unwrap();
    c.subscribe("t", &Replay::None, ack).await.unwrap();
    assert_eq!(b.topic("t").await.unwrap().subscribers, 1);
    b.publish("t", &json("1")).await.map(|p| p.seq).unwrap();
    let frames = drain(&c).await;
    assert_eq!(
        frames.iter().filter(|f| f["action"] == "message").count(),
        1
    );
}

#[tokio::test]
async fn resume_positions() {
    let b = broker(3);
    b.create_topic("t").await.unwrap();
    let epoch = b.topic("t").await.unwrap().epoch.to_string();
    for i in 1..=5 {
        b.publish("t", &json(&i.to_string()))
            .await
            .map(|p| p.seq)
            .unwrap();
    }
    // (since, epoch, expected replayed, expected recovered)
    let cases: [(u64, Option<&str>, u64, bool); 6] = [
        (4, Some(&epoch), 1, true),
        (2, Some(&epoch), 3, true),
        (1, Some(&epoch), 3, false),
        (5, None, 0, true),
        (6, Some(&epoch), 3, false),
        (4, Some("other"), 3, false),
    ];
    for (since, e, replayed, recovered) in cases {
        let mut c = b.connect().expect("room for a connection");
        let replay = Replay::After {
            seq: since,
            epoch: e.map(Into::into),
        };
        c.subscribe("t", &replay, ack).await.unwrap();
        let frames = drain(&c).await;
        assert_eq!(frames[0]["replayed"], replayed, "since {since} epoch {e:?}");
        assert_eq!(
            frames[0]["recovered"], recovered,
            "since {since} epoch {e:?}"
        );
        assert_eq!(frames.len() as u64, 1 + replayed);
    }
}

#[tokio::test]
async fn deleting_a_topic_notifies_and_forgets_its_subscribers() {
    let b = broker(10);
    b.create_topic("t").await.unwrap();
    let mut c = b.connect().expect("room for a connection");
    c.subscribe("t", &Replay::None, ack).await.unwrap();
    drain(&c).await;
    b.delete_topic("t").await.unwrap();
    assert_eq!(
        drain(&c).await,
        [serde_json::json!({"action": "topic_deleted", "topic": "t"})]
    );
    assert_eq!(
        c.subscribe("t", &Replay::None, ack).await,
        Err(BrokerError::TopicNotFound("t".into()))
    );
}

#[tokio::test]
async fn dropping_a_client_unsubscribes_it_everywhere() {
    let b = broker(10);
    b.create_topic("a").await.unwrap();
    b.create_topic("b").await.unwrap();
    let mut c = b.connect().expect("room for a connection");
    c.subscribe("a", &Replay::None, ack).await.unwrap();
    c.subscribe("b", &Replay::None, ack).await.unwrap();
    assert_eq!(b.connections(), 1);
    drop(c);
    assert_eq!(b.connections(), 0);
    assert!(b.topics().await.unwrap().iter().all(|t| t.subscribers == 0));
}

#[tokio::test]
async fn auto_creation_applies_to_subscribe_and_publish() {
    let b = Broker::new(BrokerConfig {
        auto_create_topics: true,
        ..BrokerConfig::default()
    });
    assert_eq!(b.publish("p", &json("1")).await.map(|p| p.seq), Ok(1));
    let mut c = b.connect().expect("room for a connection");
    c.subscribe("s", &Replay::None, ack).await.unwrap();
    assert_eq!(b.topics().await.unwrap().len(), 2);
    assert!(matches!(
        b.publish(".bad", &json("1")).await.map(|p| p.seq),
        Err(BrokerError::InvalidTopic(_))
    ));
}

#[tokio::test]
async fn close_all_closes_current_and_later_clients() {
    let b = broker(10);
    let early = b.connect().expect("room for a connection");
    b.close_all(Close::GOING_AWAY);
    let late = b.connect().expect("room for a connection");
    for c in [&early, &late] {
        let mut batch = std::collections::VecDeque::new();
        assert_eq!(
            c.outbox().next_batch(&mut batch).await,
            Err(Close::GOING_AWAY)
        );
    }
}

/// Everything queued for `client` until nothing more comes, as JSON.
async fn drain_all(client: &Client) -> Vec<Value> {
    let mut frames = Vec::new();
    let quiet = std::time::Duration::from_millis(20);
    while let Ok(more) = tokio::time::timeout(quiet, drain(client)).await {
        if more.is_empty() {
            break;
        }
        frames.extend(more);
    }
    frames
}

#[tokio::test]
async fn a_pending_lagged_notice_comes_before_a_later_subscribes_ack_and_replay() {
    let b = Broker::new(BrokerConfig {
        history_size: 10,
        queue_bytes: 200,
        slow_consumer: SlowConsumerPolicy::Drop,
        ..BrokerConfig::default()
    });
    b.create_topic("t").await.unwrap();
    let mut c = b.connect().expect("room for a connection");
    c.subscribe("t", &Replay::None, ack).await.unwrap();
    // Each message frame is about 130 bytes: the first fills the queue, the next 4 are dropped.
    let text = format!("\"{}\"", "x".repeat(40));
    for _ in 0..5 {
        b.publish("t", &json(&text)).await.unwrap();
    }
    c.subscribe("t", &Replay::Last(2), ack).await.unwrap();
    let frames = drain_all(&c).await;
    let shown: Vec<String> = frames
        .iter()
        .map(|f| match f["action"].as_str() {
            Some("message") => format!("m{}", f["seq"]),
            Some(action) => format!("{action} {}", f["dropped"]),
            None => format!("ack {}", f["replayed"]),
        })
        .collect();
    assert_eq!(
        shown,
        ["ack 0", "m1", "lagged 4", "ack 2", "m4", "m5"],
        "the gap is told before the replay that follows it"
    );
}

#[tokio::test]
async fn history_keeps_within_its_byte_budgets_and_a_newcomer_takes_its_share() {
    let b = Broker::new(BrokerConfig {
        history_size: 100,
        max_message_bytes: 1000,
        history_bytes_per_topic: 4000,
        history_bytes_total: 5000,
        ..BrokerConfig::default()
    });
    // Each message's frame is about 650 bytes, so it counts for about 780.
    let text = format!("\"{}\"", "x".repeat(548));
    b.create_topic("a").await.unwrap();
    b.create_topic("b").await.unwrap();
    for _ in 0..5 {
        b.publish("a", &json(&text)).await.unwrap();
    }
    let held = |page: &HistoryPage| -> Vec<u64> { page.messages.iter().map(|m| m.seq).collect() };
    assert_eq!(
        held(&b.history("a", 0, 100).await.unwrap()),
        [1, 2, 3, 4, 5]
    );
    // b is under its fair share (2500) and takes room from a; then trims itself at its share.
    for _ in 0..4 {
        b.publish("b", &json(&text)).await.unwrap();
    }
    let (a, bb) = (
        b.history("a", 0, 100).await.unwrap(),
        b.history("b", 0, 100).await.unwrap(),
    );
    assert_eq!(held(&a), [3, 4, 5], "a gave up its two oldest");
    assert_eq!(held(&bb), [2, 3, 4], "b trimmed itself once at its share");
    let counted: usize = [&a, &bb]
        .iter()
        .flat_map(|page| &page.messages)
        .map(|m| m.frame.len() + 128)
        .sum();
    let stats = b.stats().await.unwrap();
    assert_eq!(stats.history_bytes, Some(counted as u64));
    assert!(counted <= 5000, "{counted}");

    // A resume from before what a holds now is not recovered; from just before it, it is.
    let mut c = b.connect().expect("room for a connection");
    for (since, recovered) in [(1, false), (2, true)] {
        let replay = Replay::After {
            seq: since,
            epoch: None,
        };
        c.subscribe("a", &replay, ack).await.unwrap();
        let frames = drain(&c).await;
        assert_eq!(frames[0]["recovered"], recovered, "since {since}");
        assert_eq!(frames[0]["replayed"], 3, "since {since}");
    }

    b.delete_topic("a").await.unwrap();
    b.delete_topic("b").await.unwrap();
    assert_eq!(b.stats().await.unwrap().history_bytes, Some(0));
}
