//! Where a deployment's data sits in Redis, and the payloads on its channels.
//!
//! Every key and channel starts with the deployment's prefix, so two deployments can share one
//! Redis. A topic's keys and channel share one hash tag, the topic's name, so on a Redis
//! Cluster they sit in one slot: the publish script may touch them all at once, and the
//! channel is a sharded one served by the same shard.

use crate::protocol::Frame;

/// The names for one deployment.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// A topic's keys and channel.
#[derive(Debug, Clone)]
pub struct TopicKeys {
    /// Hash: `epoch` and the last assigned `seq`.
    pub meta: String,
    /// Stream: history, one entry per message with ID `<seq>-0` and the encoded frame.
    pub history: String,
    /// Channel: every publication and the deletion notice.
    pub channel: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// Set: every topic's name (an index for listing and counting; `meta` decides existence).
    pub fn registry(&self) -> String {
        format!("{}:topics", self.prefix)
    }

    /// Hash: node id to the node's last report.
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    pub fn topic(&self, name: &str) -> TopicKeys {
        let base = format!("{}:{{{name}}}", self.prefix);
        TopicKeys {
            meta: format!("{base}:meta"),
            history: format!("{base}:h"),
            channel: format!("{base}:ch"),
        }
    }

    /// The topic a channel belongs to, if it is one of this deployment's.
    pub fn topic_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":{")?
            .strip_suffix("}:ch")
    }
}

/// What arrives on a topic's channel.
#[derive(Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// `M<epoch>:<seq>:<frame>`: a publication.
    Message {
        epoch: &'a str,
        seq: u64,
        frame: Frame,
    },
    /// `D<epoch>`: the topic's life `epoch` ended.
    Deleted { epoch: &'a str },
}

impl<'a> Payload<'a> {
    /// Reads a payload; `None` for anything this version does not write.
    pub fn parse(text: &'a str) -> Option<Self> {
        if let Some(epoch) = text.strip_prefix('D') {
            return Some(Payload::Deleted { epoch });
        }
        let rest = text.strip_prefix('M')?;
        let (epoch, rest) = rest.split_once(':')?;
        let (seq, frame) = rest.split_once(':')?;
        Some(Payload::Message {
            epoch,
            seq: seq.parse().ok()?,
            frame: Frame::from(frame),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topics_keys_share_its_hash_tag_and_its_channel_maps_back() {
        let keys = Keys::new("pubsub");
        let t = keys.topic("chat.room-1");
        assert_eq!(t.meta, "pubsub:{chat.room-1}:meta");
        assert_eq!(t.history, "pubsub:{chat.room-1}:h");
        assert_eq!(keys.topic_of_channel(&t.channel), Some("chat.room-1"));
        assert_eq!(keys.topic_of_channel("other:{x}:ch"), None);
    }

    #[test]
    fn payloads_parse_and_refuse_what_they_do_not_know() {
        let p = Payload::parse(r#"Mab12:7:{"action":"message","x":"a:b"}"#).unwrap();
        assert_eq!(
            p,
            Payload::Message {
                epoch: "ab12",
                seq: 7,
                frame: Frame::from(r#"{"action":"message","x":"a:b"}"#)
            }
        );
        assert_eq!(
            Payload::parse("Dab12"),
            Some(Payload::Deleted { epoch: "ab12" })
        );
        assert_eq!(Payload::parse("X"), None);
        assert_eq!(Payload::parse("Mab:x:{}"), None);
    }
}
