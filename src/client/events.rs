//! What a subscription delivers to the application, and where it starts.

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::protocol::ErrorBody;

/// Where a new subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// With the next message published.
    Now,
    /// With the newest `n` messages history holds (fewer if it holds fewer), then live ones.
    Last(u64),
    /// With the message after `seq`: resume from a position saved earlier. Give the topic's
    /// `epoch` of that time, so that a topic deleted and created again since is noticed
    /// ([`Event::EpochChanged`]); without it the server takes `seq` to be in the topic's current
    /// life. Whatever history no longer holds is reported as a [`Gap`].
    After { seq: u64, epoch: Option<String> },
}

/// One item of a subscription's stream.
#[derive(Debug, Clone)]
pub enum Event {
    /// The next message, in seq order, each seq once.
    Message(Message),
    /// Messages that will never be delivered: history no longer held them when the client
    /// caught up. The next message has seq [`Gap::next_seq`].
    Gap(Gap),
    /// The topic was deleted and created again under the same name since the last message: seq
    /// starts again from 1 in its new life (a [`Gap`] follows when history no longer holds the
    /// new life's first messages).
    EpochChanged {
        old_epoch: String,
        new_epoch: String,
    },
    /// The topic was deleted. The subscription ends with this event.
    TopicDeleted,
    /// A [`crate::client::Client::refresh`] gave the connection a token whose rights do not
    /// cover this topic. The subscription ends with this event.
    Revoked,
    /// The server refused to resubscribe after a reconnect (for instance `too_many_subscriptions`
    /// after its limits changed). The subscription ends with this event.
    Failed(ErrorBody),
}

/// A delivered message.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: Arc<str>,
    /// The topic's epoch when it was published; with `seq`, the position to resume from.
    pub epoch: Arc<str>,
    pub seq: u64,
    /// The message exactly as it was published.
    pub message: Box<RawValue>,
    /// When the server accepted it, RFC 3339 UTC with milliseconds.
    pub published_at: String,
}

impl Message {
    /// The message read as a `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.message.get())
    }
}

/// Messages the application will not get: every seq after `after_seq` and before `next_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// The last seq delivered before the gap (0 for none in this epoch; the requested position
    /// for [`GapCause::Start`]).
    pub after_seq: u64,
    /// The seq of the next message to be delivered.
    pub next_seq: u64,
    pub cause: GapCause,
}

impl Gap {
    /// How many messages were missed.
    pub fn missed(&self) -> u64 {
        self.next_seq
            .saturating_sub(self.after_seq.saturating_add(1))
    }
}

/// Why the client fell behind by more than history holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapCause {
    /// The position given in [`Start::After`] is older than what history holds (or beyond the
    /// topic's last seq).
    Start,
    /// The connection was lost for longer than history covers.
    Disconnected,
    /// The server dropped messages for this connection (`--slow-consumer drop`, the `lagged`
    /// notice) and history no longer held them when the client asked again.
    Lagged,
    /// The application did not read the subscription fast enough: its buffer filled, and
    /// history no longer held the messages when it had room again.
    Overflow,
    /// A seq was skipped on a live connection without notice (not expected from this server),
    /// and history no longer held the missing messages.
    Skipped,
}

impl GapCause {
    pub fn as_str(self) -> &'static str {
        match self {
            GapCause::Start => "start",
            GapCause::Disconnected => "disconnected",
            GapCause::Lagged => "lagged",
            GapCause::Overflow => "overflow",
            GapCause::Skipped => "skipped",
        }
    }
}

impl fmt::Display for GapCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The server's first `subscribed` ack of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    pub topic: String,
    /// The topic's epoch: keep it with the last seq processed to resume later.
    pub epoch: String,
    /// The topic's newest seq when the subscription started (0 before the first publish).
    pub last_seq: u64,
    /// How many messages of history the subscription starts with.
    pub replayed: u64,
    /// Only for [`Start::After`]: whether every message after the position was still held.
    pub recovered: Option<bool>,
}
