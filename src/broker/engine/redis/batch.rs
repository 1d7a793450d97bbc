//! A node's publishes, pipelined to Redis in batches.
//!
//! Every publish of the node goes through one queue. A task takes everything queued, groups it
//! by topic (a topic's keys share one hash slot, and a Cluster pipeline must stay in one slot)
//! and sends each group as one pipeline of publish scripts, the groups side by side; the next
//! batch goes once this one is answered. So a busy node pays one round trip per batch, not per
//! publish, and the publishes of a topic reach Redis in the order they were made: a connection's
//! pipelined publishes get their seqs in the order it sent them.

use std::collections::HashMap;
use std::time::Duration;

use redis::{Pipeline, RedisResult, ServerErrorKind};
use tokio::sync::{mpsc, oneshot};

use super::conn::Conn;
use super::keys::Keys;
use super::scripts::{PUBLISH, PUBLISH_LUA};
use super::timed;
use crate::broker::BrokerError;

/// Publishes sent in one batch at most.
const MAX_BATCH: usize = 1024;

/// What the publish script returns: the topic's epoch and the seq, or nothing when the topic
/// does not exist.
pub type Outcome = Option<(String, u64)>;

/// The arguments of the publish script that are the same for every publish of a node.
#[derive(Debug, Clone)]
pub struct Fixed {
    pub history_size: usize,
    pub publish_command: &'static str,
    pub history_bytes_per_topic: usize,
    pub entry_overhead: usize,
}

/// One publish waiting for its batch.
struct Publication {
    topic: String,
    /// The frame up to its seq, and after it.
    head: String,
    tail: String,
    done: oneshot::Sender<Result<Outcome, BrokerError>>,
}

/// The queue's sending end; the task ends when it is dropped.
pub struct Batcher {
    queue: mpsc::UnboundedSender<Publication>,
    timeout: Duration,
}

impl Batcher {
    pub fn spawn(commands: Conn, keys: Keys, fixed: Fixed, timeout: Duration) -> Self {
        let (queue, queued) = mpsc::unbounded_channel();
        let sender = Sender {
            commands,
            keys,
            fixed,
            timeout,
        };
        tokio::spawn(sender.run(queued));
        Batcher { queue, timeout }
    }

    /// Publishes the frame `head` SEQ `tail` to `topic`. Queued at once (in call order); the
    /// answer comes with its batch's.
    pub async fn publish(
        &self,
        topic: &str,
        head: String,
        tail: String,
    ) -> Result<Outcome, BrokerError> {
        let (done, answer) = oneshot::channel();
        let publication = Publication {
            topic: topic.to_owned(),
            head,
            tail,
            done,
        };
        if self.queue.send(publication).is_err() {
            return Err(BrokerError::EngineUnavailable(
                "the node is stopping; nothing was done".to_owned(),
            ));
        }
        // The batch's own calls are bounded by the timeout; this bounds a queue that stalls.
        match tokio::time::timeout(self.timeout * 3, answer).await {
            Ok(Ok(result)) => result,
            _ => Err(BrokerError::EngineUnavailable(format!(
                "no answer from Redis within {:?}; the outcome is unknown",
                self.timeout * 3
            ))),
        }
    }
}

struct Sender {
    commands: Conn,
    keys: Keys,
    fixed: Fixed,
    timeout: Duration,
}

impl Sender {
    async fn run(self, mut queued: mpsc::UnboundedReceiver<Publication>) {
        let mut batch = Vec::new();
        while let Some(first) = queued.recv().await {
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match queued.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let groups = by_topic(batch.drain(..));
            futures_util::future::join_all(groups.into_iter().map(|g| self.send(g))).await;
        }
    }

    /// Sends one topic's publications as one pipeline and answers each.
    async fn send(&self, publications: Vec<Publication>) {
        let mut results = match self.query(&publications, Script::Cached).await {
            Ok(results) => results,
            Err(e) => return answer_all(publications, &e),
        };
        // Redis lost its script cache (it restarted): those publishes did nothing. Send them
        // again with the script whole, which also caches it.
        let lost: Vec<usize> = (0..results.len())
            .filter(|&i| matches!(&results[i], Err(e) if is_noscript(e)))
            .collect();
        if !lost.is_empty() {
            let again: Vec<&Publication> = lost.iter().map(|&i| &publications[i]).collect();
            match self.query(&again, Script::Whole).await {
                Ok(retried) => {
                    for (i, result) in lost.into_iter().zip(retried) {
                        results[i] = result;
                    }
                }
                Err(e) => {
                    for i in lost {
                        results[i] = Err(redis::RedisError::from((
                            redis::ErrorKind::Extension,
                            "batch",
                            e.to_string(),
                        )));
                    }
                }
            }
        }
        for (publication, result) in publications.into_iter().zip(results) {
            // An error reply from Redis (the script did not run) did nothing.
            let result = result.map_err(|e| match e.detail() {
                Some(why) if e.code() == Some("batch") => {
                    BrokerError::EngineUnavailable(why.to_owned())
                }
                _ => BrokerError::EngineUnavailable(format!("Redis: {e}; nothing was done")),
            });
            let _ = publication.done.send(result);
        }
    }

    /// Runs the publish script for each publication in one pipeline: each gets its own result,
    /// or the error that stopped the whole pipeline.
    async fn query<P: std::borrow::Borrow<Publication>>(
        &self,
        publications: &[P],
        script: Script,
    ) -> Result<Vec<RedisResult<Outcome>>, BrokerError> {
        let Some(first) = publications.first() else {
            return Ok(Vec::new());
        };
        let keys = self.keys.topic(&first.borrow().topic);
        let mut pipeline = Pipeline::with_capacity(publications.len());
        pipeline.ignore_errors();
        for publication in publications {
            let p = publication.borrow();
            let mut cmd = match script {
                Script::Cached => redis::cmd("EVALSHA").arg(PUBLISH.get_hash()).to_owned(),
                Script::Whole => redis::cmd("EVAL").arg(PUBLISH_LUA).to_owned(),
            };
            let f = &self.fixed;
            pipeline.add_command(
                cmd.arg(3)
                    .arg(&keys.meta)
                    .arg(&keys.history)
                    .arg(&keys.channel)
                    .arg(&p.head)
                    .arg(&p.tail)
                    .arg(f.history_size)
                    .arg(f.publish_command)
                    .arg(f.history_bytes_per_topic)
                    .arg(f.entry_overhead)
                    .to_owned(),
            );
        }
        let mut conn = self.commands.clone();
        let results: Vec<RedisResult<Outcome>> =
            timed(self.timeout, pipeline.query_async(&mut conn)).await?;
        if results.len() != publications.len() {
            return Err(BrokerError::EngineUnavailable(
                "Redis answered a batch short; the outcome is unknown".to_owned(),
            ));
        }
        Ok(results)
    }
}

/// How a batch names the publish script.
#[derive(Debug, Clone, Copy)]
enum Script {
    /// By its hash (`EVALSHA`): what Redis normally has cached.
    Cached,
    /// Whole (`EVAL`): after Redis lost its cache.
    Whole,
}

/// The batch's publications grouped by topic, each group in the order they were made.
fn by_topic(batch: impl Iterator<Item = Publication>) -> Vec<Vec<Publication>> {
    let mut groups: Vec<Vec<Publication>> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for publication in batch {
        match index.get(&publication.topic) {
            Some(&i) => groups[i].push(publication),
            None => {
                index.insert(publication.topic.clone(), groups.len());
                groups.push(vec![publication]);
            }
        }
    }
    groups
}

fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(ServerErrorKind::NoScript)
}

/// Answers every publication of a batch that failed as a whole with its error.
fn answer_all(publications: Vec<Publication>, e: &BrokerError) {
    for publication in publications {
        let _ = publication.done.send(Err(e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(topic: &str, n: u8) -> Publication {
        let (done, _) = oneshot::channel();
        Publication {
            topic: topic.to_owned(),
            head: n.to_string(),
            tail: String::new(),
            done,
        }
    }

    #[test]
    fn groups_keep_each_topics_order() {
        let batch = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]
            .into_iter()
            .map(|(t, n)| publication(t, n));
        let groups: Vec<Vec<(String, String)>> = by_topic(batch)
            .into_iter()
            .map(|g| g.into_iter().map(|p| (p.topic, p.head)).collect())
            .collect();
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            groups,
            [
                pairs(&[("a", "1"), ("a", "3")]),
                pairs(&[("b", "2"), ("b", "5")]),
                pairs(&[("c", "4")])
            ]
        );
    }
}
