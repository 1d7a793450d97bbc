//! Subscription bookkeeping: for each topic, the epoch and the last seq delivered to the
//! application, so that every (re)subscribe resumes right after it and every message is handed
//! over once, in seq order.
//!
//! A subscription is re-requested with `since_seq` (and `epoch`) whenever the client may have
//! missed something: after a reconnect, after a `lagged` notice, after a seq was skipped, and
//! after the application's buffer was full. The server acks, replays what history holds after
//! that seq, then sends live messages, all in order on the connection; messages that arrive
//! before the ack are dropped here, since the replay that follows the ack holds them. When the
//! ack says `recovered: false`, or shows another epoch, the application gets an explicit
//! [`Event::Gap`] or [`Event::EpochChanged`] before the next message.
//!
//! No I/O: frames to send are pushed onto `out`, events go to each subscription's bounded
//! channel with `try_send`, so nothing here ever waits for the application.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use super::events::{Event, Gap, GapCause, Message, Start, Subscribed};
use super::pending::{Pending, SubscribeReply, Waiting};
use super::wire::{Ack, Delivered};
use super::{Error, wire};
use crate::protocol::ErrorCode;

/// The caller of `subscribe`, waiting for the first ack.
pub(super) type Opened = oneshot::Sender<Result<Subscribed, Error>>;

#[derive(Debug)]
enum State {
    /// Not subscribed on the current connection (or there is none): subscribe when connected.
    Detached { cause: GapCause },
    /// A subscribe is on its way. Messages are dropped until its ack: its replay holds them.
    Subscribing { request_id: String, cause: GapCause },
    /// Messages are handed to the application as they come.
    Live,
    /// The application's buffer was full: messages are dropped until it has room again, then
    /// the subscription is requested again from the last seq delivered.
    Paused,
}

/// Where the application is in a topic.
#[derive(Debug)]
struct Position {
    epoch: Arc<str>,
    last_seq: u64,
}

#[derive(Debug)]
struct Sub {
    id: u64,
    topic: Arc<str>,
    /// Where the application asked to start; used until the first ack.
    start: Start,
    /// The caller of `subscribe`, until the first ack.
    opened: Option<Opened>,
    events: mpsc::Sender<Event>,
    /// Set by the first ack.
    position: Option<Position>,
    state: State,
    /// Notices that found the buffer full, delivered before any further message.
    notices: VecDeque<Event>,
}

impl Sub {
    /// Queues a notice for the application. False when the application is gone.
    fn notify(&mut self, event: Event) -> bool {
        if !self.notices.is_empty() {
            self.notices.push_back(event);
            return true;
        }
        match self.events.try_send(event) {
            Ok(()) => true,
            Err(TrySendError::Full(event)) => {
                self.notices.push_back(event);
                true
            }
            Err(TrySendError::Closed(_)) => false,
        }
    }

    /// Delivers held notices while there is room. False when the application is gone.
    fn flush_notices(&mut self) -> bool {
        while let Some(event) = self.notices.pop_front() {
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.notices.push_front(event);
                    return true;
                }
                Err(TrySendError::Closed(_)) => return false,
            }
        }
        true
    }

    fn has_room(&self) -> bool {
        self.events.capacity() * 2 >= self.events.max_capacity()
    }

    /// Ends the subscription with a last event (after any held notices), waiting for room as
    /// long as the application keeps the stream.
    fn finish(self, last: Event) {
        let Sub {
            events, notices, ..
        } = self;
        tokio::spawn(async move {
            for event in notices.into_iter().chain([last]) {
                if events.send(event).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    subs: HashMap<String, Sub>,
    connected: bool,
}

impl Subscriptions {
    /// Adds a subscription and subscribes it, if connected. One subscription per topic: a
    /// second one is refused through `opened`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add(
        &mut self,
        id: u64,
        topic: String,
        start: Start,
        events: mpsc::Sender<Event>,
        opened: Opened,
        pending: &mut Pending,
        out: &mut Vec<String>,
    ) {
        if self.subs.contains_key(&topic) {
            let _ = opened.send(Err(Error::AlreadySubscribed(topic)));
            return;
        }
        let sub = Sub {
            id,
            topic: Arc::from(topic.as_str()),
            start,
            opened: Some(opened),
            events,
            position: None,
            state: State::Detached {
                cause: GapCause::Start,
            },
            notices: VecDeque::new(),
        };
        let sub = self.subs.entry(topic).or_insert(sub);
        if self.connected {
            request(sub, GapCause::Start, pending, out);
        }
    }

    /// Removes the subscription to `topic` (only the one with `id`, when given). Returns whether
    /// there was one; its stream ends.
    pub(super) fn remove(&mut self, topic: &str, id: Option<u64>) -> bool {
        match self.subs.get(topic) {
            Some(sub) if id.is_none_or(|id| id == sub.id) => {
                if let Some(sub) = self.subs.remove(topic)
                    && let Some(opened) = sub.opened
                {
                    let _ = opened.send(Err(Error::Unsubscribed));
                }
                true
            }
            _ => false,
        }
    }

    /// A new connection: subscribe everything again, each from its last seq delivered.
    pub(super) fn connected(&mut self, pending: &mut Pending, out: &mut Vec<String>) {
        self.connected = true;
        for sub in self.subs.values_mut() {
            match sub.state {
                State::Detached { cause } => request(sub, cause, pending, out),
                State::Paused if sub.has_room() && sub.notices.is_empty() => {
                    request(sub, GapCause::Overflow, pending, out)
                }
                State::Paused | State::Subscribing { .. } | State::Live => {}
            }
        }
    }

    /// The connection is gone: nothing is subscribed on the server any more.
    pub(super) fn connection_lost(&mut self) {
        self.connected = false;
        for sub in self.subs.values_mut() {
            let cause = match &sub.state {
                State::Paused => continue,
                _ if sub.position.is_none() => GapCause::Start,
                _ => GapCause::Disconnected,
            };
            sub.state = State::Detached { cause };
        }
    }

    /// The reply to a subscribe this bookkeeping sent.
    pub(super) fn on_reply(
        &mut self,
        reply: SubscribeReply,
        pending: &mut Pending,
        out: &mut Vec<String>,
    ) {
        let Some(sub) = self.subs.get_mut(&reply.topic) else {
            return;
        };
        let cause = match &sub.state {
            State::Subscribing { request_id, cause }
                if sub.id == reply.sub && *request_id == reply.request_id =>
            {
                *cause
            }
            // An answer to a request made before the latest one (or for an earlier
            // subscription to the topic): the latest one decides.
            _ => return,
        };
        let ack = match reply.outcome {
            Ok(ack) => ack,
            Err(error) => {
                let Some(mut sub) = self.subs.remove(&reply.topic) else {
                    return;
                };
                match sub.opened.take() {
                    Some(opened) => {
                        let _ = opened.send(Err(Error::Server(error)));
                    }
                    // Gone while the client was away, or deleted before a resubscribe.
                    None if error.code == ErrorCode::TopicNotFound => {
                        sub.finish(Event::TopicDeleted)
                    }
                    None => sub.finish(Event::Failed(error)),
                }
                return;
            }
        };
        if !on_ack(sub, ack, cause) {
            self.drop_sub(&reply.topic, None, pending, out);
        }
    }

    /// A delivered message.
    pub(super) fn on_message(
        &mut self,
        delivered: Delivered,
        pending: &mut Pending,
        out: &mut Vec<String>,
    ) {
        let Some(sub) = self.subs.get_mut(&delivered.topic) else {
            return;
        };
        let (State::Live, Some(position)) = (&sub.state, &mut sub.position) else {
            // Before the ack of a (re)subscribe its replay holds this message; while paused it
            // is requested again later.
            return;
        };
        if delivered.seq <= position.last_seq {
            return; // delivered already
        }
        if delivered.seq > position.last_seq + 1 {
            tracing::warn!(
                topic = %sub.topic,
                last = position.last_seq,
                seq = delivered.seq,
                "seq skipped without notice; asking for the missing messages again"
            );
            request(sub, GapCause::Skipped, pending, out);
            return;
        }
        if !sub.notices.is_empty() {
            sub.state = State::Paused;
            return;
        }
        let message = Message {
            topic: sub.topic.clone(),
            epoch: position.epoch.clone(),
            seq: delivered.seq,
            message: delivered.message,
            published_at: delivered.published_at,
        };
        match sub.events.try_send(Event::Message(message)) {
            Ok(()) => position.last_seq = delivered.seq,
            Err(TrySendError::Full(_)) => sub.state = State::Paused,
            Err(TrySendError::Closed(_)) => self.drop_sub(&delivered.topic, None, pending, out),
        }
    }

    /// The server dropped messages of `topic` for this connection: ask for them again.
    pub(super) fn on_lagged(&mut self, topic: &str, pending: &mut Pending, out: &mut Vec<String>) {
        if let Some(sub) = self.subs.get_mut(topic)
            && matches!(sub.state, State::Live)
        {
            request(sub, GapCause::Lagged, pending, out);
        }
    }

    /// The topic was deleted; the server has unsubscribed this connection.
    pub(super) fn on_deleted(&mut self, topic: &str) {
        if let Some(sub) = self.subs.remove(topic) {
            sub.finish(Event::TopicDeleted);
        }
    }

    /// After a refresh: the new token does not cover `topic`, so its subscription ends.
    pub(super) fn on_revoked(&mut self, topic: &str) {
        if let Some(sub) = self.subs.remove(topic) {
            sub.finish(Event::Revoked);
        }
    }

    /// Whether [`Subscriptions::tick`] has anything to do: a buffer that was full.
    pub(super) fn needs_tick(&self) -> bool {
        self.subs
            .values()
            .any(|s| matches!(s.state, State::Paused) || !s.notices.is_empty())
    }

    /// Looks at buffers that were full: delivers held notices, and requests a paused
    /// subscription again once the application has read half its buffer.
    pub(super) fn tick(&mut self, pending: &mut Pending, out: &mut Vec<String>) {
        let mut gone = Vec::new();
        for (topic, sub) in self.subs.iter_mut() {
            if !sub.flush_notices() || sub.events.is_closed() {
                gone.push(topic.clone());
                continue;
            }
            if matches!(sub.state, State::Paused) && sub.notices.is_empty() && sub.has_room() {
                if self.connected {
                    request(sub, GapCause::Overflow, pending, out);
                } else {
                    sub.state = State::Detached {
                        cause: GapCause::Overflow,
                    };
                }
            }
        }
        for topic in gone {
            self.drop_sub(&topic, None, pending, out);
        }
    }

    /// The application dropped the subscription (the one with `id`, when given): forget it and
    /// unsubscribe.
    pub(super) fn drop_sub(
        &mut self,
        topic: &str,
        id: Option<u64>,
        pending: &mut Pending,
        out: &mut Vec<String>,
    ) {
        if self.remove(topic, id) && self.connected {
            out.push(wire::unsubscribe(topic, pending.register(Waiting::Nobody)));
        }
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }
}

/// Sends a subscribe for `sub`: from its last seq delivered, or where the application asked to
/// start before the first ack.
fn request(sub: &mut Sub, cause: GapCause, pending: &mut Pending, out: &mut Vec<String>) {
    let start = match &sub.position {
        Some(p) => Start::After {
            seq: p.last_seq,
            epoch: Some(p.epoch.to_string()),
        },
        None => sub.start.clone(),
    };
    let request_id = pending.register(Waiting::Subscribe {
        topic: sub.topic.to_string(),
        sub: sub.id,
    });
    out.push(wire::subscribe(&sub.topic, &start, request_id.clone()));
    sub.state = State::Subscribing { request_id, cause };
}

/// Applies the ack of the latest subscribe: sets the position the replay that follows starts
/// after, and tells the application what it cannot get. False when the application is gone.
fn on_ack(sub: &mut Sub, ack: Ack, cause: GapCause) -> bool {
    // The replay that follows is the `replayed` messages up to `last_seq`: it starts after this.
    let before_replay = ack.last_seq.saturating_sub(ack.replayed);
    let epoch: Arc<str> = Arc::from(ack.epoch.as_str());
    let mut alive = true;
    let last_seq = match (sub.position.take(), &sub.start) {
        (Some(p), _) if *p.epoch != *epoch => {
            alive &= epoch_changed(sub, &p.epoch, &epoch, before_replay, cause);
            before_replay
        }
        (Some(p), _) => {
            if ack.recovered == Some(false) && before_replay > p.last_seq {
                alive &= sub.notify(Event::Gap(Gap {
                    after_seq: p.last_seq,
                    next_seq: before_replay + 1,
                    cause,
                }));
                before_replay
            } else {
                p.last_seq
            }
        }
        (None, Start::Now) => ack.last_seq,
        (None, Start::Last(_)) => before_replay,
        (None, Start::After { seq, epoch: asked }) => match ack.recovered {
            Some(false) => {
                let asked = asked.clone();
                match asked {
                    Some(old) if *old != *epoch => {
                        alive &= epoch_changed(sub, &old, &epoch, before_replay, cause);
                    }
                    _ => {
                        let after_seq = *seq;
                        alive &= sub.notify(Event::Gap(Gap {
                            after_seq,
                            next_seq: before_replay + 1,
                            cause,
                        }));
                    }
                }
                before_replay
            }
            _ => *seq,
        },
    };
    sub.position = Some(Position {
        epoch: epoch.clone(),
        last_seq,
    });
    sub.state = State::Live;
    if let Some(opened) = sub.opened.take() {
        let first = Subscribed {
            topic: ack.topic,
            epoch: ack.epoch,
            last_seq: ack.last_seq,
            replayed: ack.replayed,
            recovered: ack.recovered,
        };
        alive &= opened.send(Ok(first)).is_ok();
    }
    alive
}

/// Tells the application the topic started a new life, and what of it history no longer holds.
fn epoch_changed(sub: &mut Sub, old: &str, new: &str, before_replay: u64, cause: GapCause) -> bool {
    let mut alive = sub.notify(Event::EpochChanged {
        old_epoch: old.to_owned(),
        new_epoch: new.to_owned(),
    });
    if before_replay > 0 {
        alive &= sub.notify(Event::Gap(Gap {
            after_seq: 0,
            next_seq: before_replay + 1,
            cause,
        }));
    }
    alive
}

#[cfg(test)]
mod tests;
