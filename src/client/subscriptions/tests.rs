//! The resume bookkeeping, frame by frame: what it sends, what it hands the application.

use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::client::wire::Reply;
use crate::protocol::ErrorBody;

struct Harness {
    subs: Subscriptions,
    pending: Pending,
    out: Vec<String>,
    next_id: u64,
}

type Opening = oneshot::Receiver<Result<Subscribed, Error>>;

impl Harness {
    fn connected() -> Self {
        let mut h = Harness {
            subs: Subscriptions::default(),
            pending: Pending::default(),
            out: Vec::new(),
            next_id: 0,
        };
        h.subs.connected(&mut h.pending, &mut h.out);
        h
    }

    fn subscribe(
        &mut self,
        topic: &str,
        start: Start,
        buffer: usize,
    ) -> (mpsc::Receiver<Event>, Opening) {
        let (tx, rx) = mpsc::channel(buffer);
        let (opened, opening) = oneshot::channel();
        self.next_id += 1;
        self.subs.add(
            self.next_id,
            topic.to_owned(),
            start,
            tx,
            opened,
            &mut self.pending,
            &mut self.out,
        );
        (rx, opening)
    }

    /// The frames sent since the last call.
    fn sent(&mut self) -> Vec<Value> {
        self.out
            .drain(..)
            .map(|f| serde_json::from_str(&f).unwrap_or_default())
            .collect()
    }

    /// The one subscribe sent since the last call.
    fn sent_subscribe(&mut self) -> Value {
        let sent = self.sent();
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert_eq!(sent[0]["action"], "subscribe", "{sent:?}");
        sent[0].clone()
    }

    fn reply(&mut self, request: &Value, reply: Reply) {
        let id = request["request_id"].as_str().unwrap_or_default();
        if let Some(r) = self.pending.complete(id, reply) {
            self.subs.on_reply(r, &mut self.pending, &mut self.out);
        }
    }

    fn ack(&mut self, request: &Value, epoch: &str, last_seq: u64, replayed: u64) {
        let recovered = request.get("since_seq").map(|_| true);
        self.ack_with(request, epoch, last_seq, replayed, recovered);
    }

    fn ack_with(
        &mut self,
        request: &Value,
        epoch: &str,
        last_seq: u64,
        replayed: u64,
        recovered: Option<bool>,
    ) {
        let ack = Ack {
            topic: request["topic"].as_str().unwrap_or_default().to_owned(),
            epoch: epoch.to_owned(),
            replayed,
            last_seq,
            recovered,
        };
        self.reply(request, Reply::Subscribed(ack));
    }

    fn messages(&mut self, topic: &str, seqs: impl IntoIterator<Item = u64>) {
        for seq in seqs {
            let delivered = Delivered {
                topic: topic.to_owned(),
                seq,
                message: RawValue::from_string(seq.to_string()).unwrap_or_default(),
                published_at: "t".to_owned(),
            };
            self.subs
                .on_message(delivered, &mut self.pending, &mut self.out);
        }
    }

    /// The connection is lost and a new one made: returns the resubscribe sent.
    fn reconnect(&mut self) -> Value {
        self.subs.connection_lost();
        self.pending.connection_lost();
        self.out.clear();
        self.subs.connected(&mut self.pending, &mut self.out);
        self.sent_subscribe()
    }
}

/// The events waiting in `rx`, in words.
fn drain(rx: &mut mpsc::Receiver<Event>) -> Vec<String> {
    let mut seen = Vec::new();
    while let Ok(event) = rx.try_recv() {
        seen.push(describe(&event));
    }
    seen
}

fn describe(event: &Event) -> String {
    match event {
        Event::Message(m) => {
            assert_eq!(m.message.get(), m.seq.to_string(), "the message of its seq");
            format!("{}@{}", m.seq, m.epoch)
        }
        Event::Gap(g) => format!("gap {}..{} {}", g.after_seq, g.next_seq, g.cause),
        Event::EpochChanged {
            old_epoch,
            new_epoch,
        } => format!("epoch {old_epoch}->{new_epoch}"),
        Event::TopicDeleted => "deleted".to_owned(),
        Event::Revoked => "revoked".to_owned(),
        Event::Failed(e) => format!("failed {}", e.code.as_str()),
    }
}

fn seqs(range: std::ops::RangeInclusive<u64>, epoch: &str) -> Vec<String> {
    range.map(|s| format!("{s}@{epoch}")).collect()
}

#[tokio::test]
async fn resumes_after_each_reconnect_from_the_last_seq_delivered_each_seq_once() {
    let mut h = Harness::connected();
    let (mut rx, mut opening) = h.subscribe("news", Start::Now, 64);
    let request = h.sent_subscribe();
    assert_eq!(request.get("since_seq"), None);
    assert_eq!(request.get("replay_last"), None);
    h.ack(&request, "E1", 5, 0);
    let first = opening.try_recv().ok().and_then(Result::ok);
    assert_eq!(first.map(|s| (s.epoch, s.last_seq)), Some(("E1".into(), 5)));

    h.messages("news", [6, 7, 7, 5, 8]);
    assert_eq!(drain(&mut rx), seqs(6..=8, "E1"), "duplicates dropped");

    let request = h.reconnect();
    assert_eq!(request["since_seq"], 8);
    assert_eq!(request["epoch"], "E1");
    // The replay after the ack overlaps what was delivered; live messages follow it.
    h.ack(&request, "E1", 10, 2);
    h.messages("news", [9, 10, 11]);
    assert_eq!(drain(&mut rx), seqs(9..=11, "E1"));

    // Many reconnects in a row, some before the ack of the previous resubscribe arrived.
    for _ in 0..3 {
        h.reconnect();
    }
    let request = h.reconnect();
    assert_eq!(request["since_seq"], 11);
    h.messages("news", [12]); // before the ack: its replay carries it
    h.ack(&request, "E1", 13, 2);
    h.messages("news", [12, 13, 13, 14]);
    assert_eq!(drain(&mut rx), seqs(12..=14, "E1"));
}

#[tokio::test]
async fn a_gap_history_no_longer_covers_is_reported_once_before_the_next_message() {
    let mut h = Harness::connected();
    let (mut rx, _opening) = h.subscribe("news", Start::Now, 64);
    let request = h.sent_subscribe();
    h.ack(&request, "E1", 0, 0);
    h.messages("news", 1..=3);

    let request = h.reconnect();
    h.ack_with(&request, "E1", 20, 5, Some(false));
    h.messages("news", 16..=21);
    let mut expected = seqs(1..=3, "E1");
    expected.push("gap 3..16 disconnected".to_owned());
    expected.extend(seqs(16..=21, "E1"));
    assert_eq!(drain(&mut rx), expected);

    // History empty (or disabled): the gap runs to the next live message.
    let request = h.reconnect();
    h.ack_with(&request, "E1", 30, 0, Some(false));
    h.messages("news", [31]);
    assert_eq!(drain(&mut rx), ["gap 21..31 disconnected", "31@E1"]);
    let gap = Gap {
        after_seq: 21,
        next_seq: 31,
        cause: GapCause::Disconnected,
    };
    assert_eq!(gap.missed(), 9);
}

#[tokio::test]
async fn an_epoch_change_is_announced_and_the_new_life_is_delivered_from_its_start() {
    let mut h = Harness::connected();
    let (mut rx, _opening) = h.subscribe("news", Start::Now, 64);
    let request = h.sent_subscribe();
    h.ack(&request, "E1", 0, 0);
    h.messages("news", 1..=3);

    // Deleted and created again while away: seq 1 and 2 of the new life are still held.
    let request = h.reconnect();
    h.ack_with(&request, "E2", 2, 2, Some(false));
    h.messages("news", 1..=3);
    let mut expected = seqs(1..=3, "E1");
    expected.push("epoch E1->E2".to_owned());
    expected.extend(seqs(1..=3, "E2"));
    assert_eq!(drain(&mut rx), expected);

    // Again, and this time the new life's start is gone from history.
    let request = h.reconnect();
    assert_eq!(request["epoch"], "E2");
    h.ack_with(&request, "E3", 50, 10, Some(false));
    h.messages("news", 41..=50);
    let mut expected = vec![
        "epoch E2->E3".to_owned(),
        "gap 0..41 disconnected".to_owned(),
    ];
    expected.extend(seqs(41..=50, "E3"));
    assert_eq!(drain(&mut rx), expected);
}

#[tokio::test]
async fn each_start_position_sets_where_delivery_begins() {
    let mut h = Harness::connected();

    let (mut last, _o1) = h.subscribe("last", Start::Last(3), 64);
    let request = h.sent_subscribe();
    assert_eq!(request["replay_last"], 3);
    h.ack(&request, "E", 10, 3);
    h.messages("last", 7..=11);
    assert_eq!(drain(&mut last), seqs(8..=11, "E"));

    let after = Start::After {
        seq: 4,
        epoch: Some("E".to_owned()),
    };
    let (mut resumed, _o2) = h.subscribe("resumed", after, 64);
    let request = h.sent_subscribe();
    assert_eq!(
        (&request["since_seq"], &request["epoch"]),
        (&4.into(), &"E".into())
    );
    h.ack(&request, "E", 6, 2);
    h.messages("resumed", 4..=6);
    assert_eq!(drain(&mut resumed), seqs(5..=6, "E"));

    let stale = Start::After {
        seq: 4,
        epoch: Some("E0".to_owned()),
    };
    let (mut relived, _o3) = h.subscribe("relived", stale, 64);
    let request = h.sent_subscribe();
    h.ack_with(&request, "E1", 3, 3, Some(false));
    h.messages("relived", 1..=3);
    let mut expected = vec!["epoch E0->E1".to_owned()];
    expected.extend(seqs(1..=3, "E1"));
    assert_eq!(drain(&mut relived), expected);

    let old = Start::After {
        seq: 2,
        epoch: None,
    };
    let (mut behind, _o4) = h.subscribe("behind", old, 64);
    let request = h.sent_subscribe();
    assert_eq!(request.get("epoch"), None);
    h.ack_with(&request, "E", 100, 10, Some(false));
    h.messages("behind", 91..=100);
    let mut expected = vec!["gap 2..91 start".to_owned()];
    expected.extend(seqs(91..=100, "E"));
    assert_eq!(drain(&mut behind), expected);
}

#[tokio::test]
async fn lagged_and_skipped_messages_are_asked_for_again_from_history() {
    let mut h = Harness::connected();
    let (mut rx, _opening) = h.subscribe("news", Start::Now, 64);
    let request = h.sent_subscribe();
    h.ack(&request, "E1", 0, 0);
    h.messages("news", 1..=5);

    // The server dropped 6..8 for this connection; history still holds them.
    h.subs.on_lagged("news", &mut h.pending, &mut h.out);
    let request = h.sent_subscribe();
    assert_eq!(request["since_seq"], 5);
    h.messages("news", [9]); // before the ack: dropped, the replay carries it
    h.subs.on_lagged("news", &mut h.pending, &mut h.out);
    assert!(h.sent().is_empty(), "one request at a time");
    h.ack(&request, "E1", 9, 4);
    h.messages("news", 6..=10);
    assert_eq!(drain(&mut rx), seqs(1..=10, "E1"));

    // A seq skipped without notice: asked for again, and history has lost it.
    h.messages("news", [12]);
    let request = h.sent_subscribe();
    assert_eq!(request["since_seq"], 10);
    h.ack_with(&request, "E1", 40, 5, Some(false));
    h.messages("news", 36..=40);
    let mut expected = vec!["gap 10..36 skipped".to_owned()];
    expected.extend(seqs(36..=40, "E1"));
    assert_eq!(drain(&mut rx), expected);

    // Lagged beyond what history holds.
    h.subs.on_lagged("news", &mut h.pending, &mut h.out);
    let request = h.sent_subscribe();
    h.ack_with(&request, "E1", 90, 5, Some(false));
    assert_eq!(drain(&mut rx), ["gap 40..86 lagged"]);
}

#[tokio::test]
async fn a_full_buffer_pauses_delivery_and_resumes_from_history_once_read() {
    let mut h = Harness::connected();
    let (mut rx, _opening) = h.subscribe("news", Start::Now, 4);
    let request = h.sent_subscribe();
    h.ack(&request, "E1", 0, 0);
    h.messages("news", 1..=6);
    assert!(h.subs.needs_tick(), "5 found the buffer full");
    h.subs.tick(&mut h.pending, &mut h.out);
    assert!(h.sent().is_empty(), "no room yet");

    let mut got = Vec::new();
    for _ in 0..2 {
        got.extend(rx.try_recv().ok().map(|e| describe(&e)));
    }
    h.messages("news", [7]); // still paused: dropped
    h.subs.tick(&mut h.pending, &mut h.out);
    let request = h.sent_subscribe();
    assert_eq!(request["since_seq"], 4);
    h.ack(&request, "E1", 7, 3);
    h.messages("news", 5..=6); // the replay; the rest of it waits for room
    got.extend(drain(&mut rx));
    assert_eq!(got, seqs(1..=6, "E1"));
    h.messages("news", 7..=8);
    assert!(!h.subs.needs_tick());
    assert_eq!(drain(&mut rx), seqs(7..=8, "E1"));

    // This time history no longer holds what was dropped.
    h.messages("news", 9..=20);
    h.subs.tick(&mut h.pending, &mut h.out);
    let mut got = drain(&mut rx);
    h.subs.tick(&mut h.pending, &mut h.out);
    let request = h.sent_subscribe();
    assert_eq!(request["since_seq"], 12);
    h.ack_with(&request, "E1", 30, 2, Some(false));
    h.messages("news", 29..=30);
    got.extend(drain(&mut rx));
    let mut expected = seqs(9..=12, "E1");
    expected.push("gap 12..29 overflow".to_owned());
    expected.extend(seqs(29..=30, "E1"));
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_notice_that_finds_the_buffer_full_waits_and_keeps_its_place() {
    let mut h = Harness::connected();
    let (mut rx, _opening) = h.subscribe("news", Start::Now, 2);
    let request = h.sent_subscribe();
    h.ack(&request, "E1", 0, 0);
    h.messages("news", 1..=2);
    // Lost while the application is not reading; the resubscribe finds a gap.
    let request = h.reconnect();
    h.ack_with(&request, "E1", 9, 1, Some(false));
    h.messages("news", [9]);
    assert!(h.subs.needs_tick());
    let mut got = drain(&mut rx);
    h.subs.tick(&mut h.pending, &mut h.out);
    got.extend(drain(&mut rx));
    let request = h.sent_subscribe();
    assert_eq!(request["since_seq"], 8, "after the gap");
    h.ack(&request, "E1", 9, 1);
    h.messages("news", [9, 10]);
    got.extend(drain(&mut rx));
    let mut expected = seqs(1..=2, "E1");
    expected.push("gap 2..9 disconnected".to_owned());
    expected.extend(seqs(9..=10, "E1"));
    assert_eq!(got, expected);
}

#[tokio::test]
async fn deletion_and_refused_resubscribes_end_the_stream_with_an_event() {
    let mut h = Harness::connected();
    let (mut deleted, _o1) = h.subscribe("deleted", Start::Now, 64);
    let request = h.sent_subscribe();
    h.ack(&request, "E", 0, 0);
    h.messages("deleted", [1]);
    h.subs.on_deleted("deleted");
    h.messages("deleted", [2]);
    let mut got = Vec::new();
    while let Some(event) = deleted.recv().await {
        got.push(describe(&event));
    }
    assert_eq!(got, ["1@E", "deleted"]);

    let (mut gone, _o2) = h.subscribe("gone", Start::Now, 64);
    let (mut refused, _o3) = h.subscribe("refused", Start::Now, 64);
    let requests = h.sent();
    h.ack(&requests[0], "E", 0, 0);
    h.ack(&requests[1], "E", 0, 0);
    h.subs.connection_lost();
    h.pending.connection_lost();
    h.subs.connected(&mut h.pending, &mut h.out);
    let requests = h.sent();
    let error = |code| {
        Reply::Error(ErrorBody {
            code,
            message: "m".to_owned(),
        })
    };
    for request in &requests {
        let code = match request["topic"].as_str() {
            Some("gone") => ErrorCode::TopicNotFound,
            _ => ErrorCode::TooManySubscriptions,
        };
        h.reply(request, error(code));
    }
    assert_eq!(
        gone.recv().await.map(|e| describe(&e)),
        Some("deleted".into())
    );
    assert!(gone.recv().await.is_none());
    assert_eq!(
        refused.recv().await.map(|e| describe(&e)),
        Some("failed too_many_subscriptions".into())
    );
    assert!(refused.recv().await.is_none());
    assert!(h.subs.is_empty());

    // A first subscribe refused is the caller's error, not an event.
    let (_rx, mut opening) = h.subscribe("missing", Start::Now, 64);
    let request = h.sent_subscribe();
    h.reply(&request, error(ErrorCode::TopicNotFound));
    assert!(matches!(
        opening.try_recv(),
        Ok(Err(Error::Server(ErrorBody {
            code: ErrorCode::TopicNotFound,
            ..
        })))
    ));
    assert!(h.subs.is_empty());
}

#[tokio::test]
async fn one_subscription_per_topic_and_a_dropped_one_unsubscribes() {
    let mut h = Harness::connected();
    let (rx, _opening) = h.subscribe("news", Start::Now, 64);
    let request = h.sent_subscribe();
    h.ack(&request, "E", 0, 0);
    let (_rx2, mut second) = h.subscribe("news", Start::Now, 64);
    assert!(matches!(
        second.try_recv(),
        Ok(Err(Error::AlreadySubscribed(t))) if t == "news"
    ));
    assert!(h.sent().is_empty());

    drop(rx);
    h.messages("news", [1]);
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["action"], "unsubscribe");
    assert!(h.subs.is_empty());

    // A drop names the subscription: an older one's drop leaves a newer one alone.
    let (_rx3, _o3) = h.subscribe("news", Start::Now, 64);
    h.sent();
    h.subs.drop_sub("news", Some(1), &mut h.pending, &mut h.out);
    assert!(!h.subs.is_empty() && h.sent().is_empty());
    h.subs.drop_sub("news", Some(3), &mut h.pending, &mut h.out);
    assert!(h.subs.is_empty());
}

#[tokio::test]
async fn an_answer_to_an_earlier_request_is_ignored() {
    let mut h = Harness::connected();
    let (mut rx, _opening) = h.subscribe("news", Start::Now, 64);
    let request = h.sent_subscribe();
    h.ack(&request, "E1", 0, 0);
    h.messages("news", 1..=2);
    h.subs.on_lagged("news", &mut h.pending, &mut h.out);
    let earlier = h.sent_subscribe();
    h.messages("news", [3]);
    h.subs.on_lagged("news", &mut h.pending, &mut h.out);
    // A reply for the same topic that is not the latest request's.
    let stale = SubscribeReply {
        topic: "news".to_owned(),
        sub: 1,
        request_id: "c999".to_owned(),
        outcome: Ok(Ack {
            topic: "news".to_owned(),
            epoch: "E9".to_owned(),
            replayed: 0,
            last_seq: 99,
            recovered: Some(false),
        }),
    };
    h.subs.on_reply(stale, &mut h.pending, &mut h.out);
    h.ack(&earlier, "E1", 3, 1);
    h.messages("news", [3]);
    assert_eq!(drain(&mut rx), seqs(1..=3, "E1"));
}
