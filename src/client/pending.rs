//! Matching replies to requests: every frame the client sends carries a fresh `request_id`, and
//! the server echoes it in the one reply (ack or error) it gives.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Error;
use super::wire::{Ack, Reply};
use crate::protocol::{ErrorBody, ErrorCode};

/// Who waits for a reply.
#[derive(Debug)]
pub(super) enum Waiting {
    /// A subscription (identified by topic and its id) waits for its ack.
    Subscribe {
        topic: String,
        sub: u64,
    },
    Unsubscribe(oneshot::Sender<Result<(), Error>>),
    Publish(oneshot::Sender<Result<u64, Error>>),
    Ping {
        sent: Instant,
        reply: oneshot::Sender<Result<Duration, Error>>,
    },
    Refresh(oneshot::Sender<Result<u64, Error>>),
    /// Nobody: the unsubscribe of a subscription the application dropped.
    Nobody,
}

/// A reply to a subscribe, for the subscription bookkeeping.
#[derive(Debug)]
pub(super) struct SubscribeReply {
    pub topic: String,
    pub sub: u64,
    pub request_id: String,
    pub outcome: Result<Ack, ErrorBody>,
}

#[derive(Debug, Default)]
pub(super) struct Pending {
    next: u64,
    waiting: HashMap<String, Waiting>,
}

impl Pending {
    /// A fresh request id for a request `waiting` is answered through.
    pub(super) fn register(&mut self, waiting: Waiting) -> String {
        self.next += 1;
        let id = format!("c{}", self.next);
        self.waiting.insert(id.clone(), waiting);
        id
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Hands `reply` to whoever waits for `request_id`. A subscribe's reply is returned for the
    /// subscription bookkeeping; a reply nobody waits for is dropped.
    pub(super) fn complete(&mut self, request_id: &str, reply: Reply) -> Option<SubscribeReply> {
        let waiting = self.waiting.remove(request_id)?;
        let unexpected = |reply: &Reply| {
            Error::Protocol(format!(
                "reply {reply:?} does not answer request {request_id}"
            ))
        };
        match (waiting, reply) {
            (Waiting::Subscribe { topic, sub }, Reply::Subscribed(ack)) => Some(SubscribeReply {
                topic,
                sub,
                request_id: request_id.to_owned(),
                outcome: Ok(ack),
            }),
            (Waiting::Subscribe { topic, sub }, Reply::Error(e)) => Some(SubscribeReply {
                topic,
                sub,
                request_id: request_id.to_owned(),
                outcome: Err(e),
            }),
            (Waiting::Subscribe { topic, sub }, other) => {
                // Keeps the subscription waiting: only a `subscribed` or an `error` settles it.
                tracing::warn!(%topic, sub, "unexpected reply to a subscribe: {other:?}");
                None
            }
            (Waiting::Publish(tx), Reply::Published(seq)) => send(tx, Ok(seq)),
            (Waiting::Unsubscribe(tx), Reply::Unsubscribed) => send(tx, Ok(())),
            (Waiting::Ping { sent, reply }, Reply::Pong) => send(reply, Ok(sent.elapsed())),
            (Waiting::Refresh(tx), Reply::Refreshed(expires_at)) => send(tx, Ok(expires_at)),
            (Waiting::Refresh(tx), Reply::Error(e)) => send(tx, Err(Error::Server(e))),
            (Waiting::Refresh(tx), other) => send(tx, Err(unexpected(&other))),
            (Waiting::Publish(tx), Reply::Error(e)) => send(tx, Err(Error::Server(e))),
            (Waiting::Unsubscribe(tx), Reply::Error(e)) => send(tx, Err(Error::Server(e))),
            (Waiting::Ping { reply, .. }, Reply::Error(e)) => send(reply, Err(Error::Server(e))),
            (Waiting::Publish(tx), other) => send(tx, Err(unexpected(&other))),
            (Waiting::Unsubscribe(tx), other) => send(tx, Err(unexpected(&other))),
            (Waiting::Ping { reply, .. }, other) => send(reply, Err(unexpected(&other))),
            (Waiting::Nobody, _) => None,
        }
    }

    /// Fails the request `request_id`, whose reply could not be read. A subscription waiting for
    /// it is ended (it would otherwise wait for an ack that never comes).
    pub(super) fn fail(&mut self, request_id: &str, reason: String) -> Option<SubscribeReply> {
        let waiting = self.waiting.remove(request_id)?;
        match waiting {
            Waiting::Subscribe { topic, sub } => Some(SubscribeReply {
                topic,
                sub,
                request_id: request_id.to_owned(),
                outcome: Err(ErrorBody {
                    code: ErrorCode::Internal,
                    message: format!("unreadable reply: {reason}"),
                }),
            }),
            Waiting::Publish(tx) => send(tx, Err(Error::Protocol(reason))),
            Waiting::Unsubscribe(tx) => send(tx, Err(Error::Protocol(reason))),
            Waiting::Ping { reply, .. } => send(reply, Err(Error::Protocol(reason))),
            Waiting::Refresh(tx) => send(tx, Err(Error::Protocol(reason))),
            Waiting::Nobody => None,
        }
    }

    /// The connection is gone and no reply will come. A publish or ping in flight fails with
    /// [`Error::ConnectionLost`] (the publish may or may not have been made); an unsubscribe
    /// succeeds, since the next connection will not subscribe again; subscribes are forgotten
    /// here (the subscription bookkeeping sends them again).
    pub(super) fn connection_lost(&mut self) {
        for (_, waiting) in self.waiting.drain() {
            match waiting {
                Waiting::Publish(tx) => {
                    let _ = tx.send(Err(Error::ConnectionLost));
                }
                Waiting::Ping { reply, .. } => {
                    let _ = reply.send(Err(Error::ConnectionLost));
                }
                // The next connection's handshake carries the new token already.
                Waiting::Refresh(tx) => {
                    let _ = tx.send(Err(Error::ConnectionLost));
                }
                Waiting::Unsubscribe(tx) => {
                    let _ = tx.send(Ok(()));
                }
                Waiting::Subscribe { .. } | Waiting::Nobody => {}
            }
        }
    }
}

/// Answers a caller (who may have stopped waiting); nothing for the subscription bookkeeping.
fn send<T>(tx: oneshot::Sender<T>, value: T) -> Option<SubscribeReply> {
    let _ = tx.send(value);
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: ErrorCode) -> ErrorBody {
        ErrorBody {
            code,
            message: "m".to_owned(),
        }
    }

    #[test]
    fn each_reply_goes_to_the_request_with_its_id_in_any_order() {
        let mut p = Pending::default();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let (tx3, mut rx3) = oneshot::channel();
        let id1 = p.register(Waiting::Publish(tx1));
        let id2 = p.register(Waiting::Publish(tx2));
        let id3 = p.register(Waiting::Unsubscribe(tx3));
        assert_eq!(
            [&id1, &id2, &id3].map(String::as_str),
            ["c1", "c2", "c3"],
            "ids are unique"
        );
        assert!(p.complete(&id2, Reply::Published(8)).is_none());
        assert!(rx1.try_recv().is_err(), "the other publish still waits");
        assert!(
            p.complete(&id1, Reply::Error(error(ErrorCode::RateLimited)))
                .is_none()
        );
        assert!(p.complete(&id3, Reply::Unsubscribed).is_none());
        assert_eq!(rx2.try_recv().ok().and_then(Result::ok), Some(8));
        assert!(matches!(
            rx1.try_recv(),
            Ok(Err(Error::Server(ErrorBody {
                code: ErrorCode::RateLimited,
                ..
            })))
        ));
        assert!(matches!(rx3.try_recv(), Ok(Ok(()))));
        assert_eq!(p.len(), 0);
        // A second reply with the same id, or an id never sent, reaches nobody.
        assert!(p.complete(&id2, Reply::Published(9)).is_none());
        assert!(p.complete("c99", Reply::Pong).is_none());
    }

    #[test]
    fn a_subscribe_reply_goes_to_the_bookkeeping() {
        let mut p = Pending::default();
        let id = p.register(Waiting::Subscribe {
            topic: "news".to_owned(),
            sub: 4,
        });
        let ack = Ack {
            topic: "news".to_owned(),
            epoch: "E".to_owned(),
            replayed: 0,
            last_seq: 3,
            recovered: None,
        };
        let r = p.complete(&id, Reply::Subscribed(ack.clone()));
        let r = r.map(|r| (r.topic, r.sub, r.request_id, r.outcome));
        assert_eq!(r, Some(("news".to_owned(), 4, id, Ok(ack))));
        let id = p.register(Waiting::Subscribe {
            topic: "gone".to_owned(),
            sub: 5,
        });
        let r = p.complete(&id, Reply::Error(error(ErrorCode::TopicNotFound)));
        assert!(
            matches!(r, Some(SubscribeReply { sub: 5, outcome: Err(e), .. }) if e.code == ErrorCode::TopicNotFound)
        );
    }

    #[test]
    fn a_reply_of_the_wrong_kind_fails_the_request() {
        let mut p = Pending::default();
        let (tx, mut rx) = oneshot::channel();
        let id = p.register(Waiting::Publish(tx));
        p.complete(&id, Reply::Pong);
        assert!(matches!(rx.try_recv(), Ok(Err(Error::Protocol(_)))));
        let (tx, mut rx) = oneshot::channel();
        let id = p.register(Waiting::Ping {
            sent: Instant::now(),
            reply: tx,
        });
        p.fail(&id, "unreadable".to_owned());
        assert!(matches!(rx.try_recv(), Ok(Err(Error::Protocol(_)))));
        // A subscribe whose ack cannot be read ends its subscription.
        let id = p.register(Waiting::Subscribe {
            topic: "news".to_owned(),
            sub: 2,
        });
        let r = p.fail(&id, "unreadable".to_owned());
        assert!(
            matches!(r, Some(SubscribeReply { sub: 2, outcome: Err(e), .. }) if e.code == ErrorCode::Internal)
        );
    }

    #[test]
    fn a_lost_connection_settles_every_request() {
        let mut p = Pending::default();
        let (publish, mut publish_rx) = oneshot::channel();
        let (unsubscribe, mut unsubscribe_rx) = oneshot::channel();
        let (ping, mut ping_rx) = oneshot::channel();
        p.register(Waiting::Publish(publish));
        p.register(Waiting::Unsubscribe(unsubscribe));
        p.register(Waiting::Ping {
            sent: Instant::now(),
            reply: ping,
        });
        p.register(Waiting::Subscribe {
            topic: "news".to_owned(),
            sub: 1,
        });
        p.register(Waiting::Nobody);
        p.connection_lost();
        assert_eq!(p.len(), 0);
        assert!(matches!(
            publish_rx.try_recv(),
            Ok(Err(Error::ConnectionLost))
        ));
        assert!(matches!(ping_rx.try_recv(), Ok(Err(Error::ConnectionLost))));
        assert!(matches!(unsubscribe_rx.try_recv(), Ok(Ok(()))));
        // Ids keep counting up across connections: a late reply never matches a new request.
        assert_eq!(p.register(Waiting::Nobody), "c6");
    }
}
