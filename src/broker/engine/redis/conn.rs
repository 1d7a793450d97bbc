//! Connections to Redis: one for commands (scripts, pipelined by the multiplexed connection:
//! concurrent publishes from many clients share the socket without waiting for each other),
//! one for pub/sub, both reconnecting by themselves; on a single Redis or a Cluster.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, ProtocolVersion, PushInfo, RedisFuture,
    Value,
};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// Where the engine's Redis is.
#[derive(Debug, Clone)]
pub enum Target {
    /// One Redis server (`redis://` or `rediss://`).
    Single(String),
    /// Seed URLs of a Redis Cluster.
    Cluster(Vec<String>),
}

/// A command connection to either kind of Redis.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The pub/sub connection: joins and leaves topic channels; what arrives comes out of the
/// receiver returned by [`connect`], with a `Disconnection` push whenever the socket broke.
#[derive(Clone)]
pub enum PubSub {
    /// Plain channels (`SUBSCRIBE`); the manager subscribes again after a reconnect.
    Single(ConnectionManager),
    /// Sharded channels (`SSUBSCRIBE`), each served by the shard that holds its topic.
    Cluster(ClusterConnection),
}

impl PubSub {
    pub async fn join(&mut self, channel: &str) -> redis::RedisResult<()> {
        match self {
            PubSub::Single(c) => c.subscribe(channel).await,
            PubSub::Cluster(c) => c.ssubscribe(channel).await,
        }
    }

    pub async fn leave(&mut self, channel: &str) -> redis::RedisResult<()> {
        match self {
            PubSub::Single(c) => c.unsubscribe(channel).await,
            PubSub::Cluster(c) => c.sunsubscribe(channel).await,
        }
    }

    /// Answers once the connection works (reconnecting it, and so subscribing again, if needed).
    pub async fn ping(&mut self) -> redis::RedisResult<()> {
        match self {
            PubSub::Single(c) => redis::cmd("PING").query_async(c).await,
            PubSub::Cluster(c) => redis::cmd("PING").query_async(c).await,
        }
    }
}

/// The command that publishes to a topic's channel, inside the scripts.
pub fn publish_command(target: &Target) -> &'static str {
    match target {
        Target::Single(_) => "PUBLISH",
        Target::Cluster(_) => "SPUBLISH",
    }
}

/// Both connections and the pushes of the pub/sub one.
pub struct Connected {
    pub commands: Conn,
    pub pubsub: PubSub,
    pub pushes: UnboundedReceiver<PushInfo>,
}

/// Connects both connections; a wrong URL or an unreachable Redis is an error with its reason.
pub async fn connect(target: &Target, timeout: Duration) -> Result<Connected, String> {
    let (tx, pushes) = unbounded_channel();
    let (commands, pubsub) = match target {
        Target::Single(url) => {
            let info = resp3(url)?;
            let url = shown(url);
            let client = redis::Client::open(info).map_err(|e| format!("{url}: {e}"))?;
            let config = || {
                ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500))
            };
            let commands = ConnectionManager::new_with_config(client.clone(), config())
                .await
                .map_err(|e| format!("cannot connect to {url}: {e}"))?;
            let pubsub = ConnectionManager::new_with_config(
                client,
                config().set_push_sender(tx).set_automatic_resubscription(),
            )
            .await
            .map_err(|e| format!("cannot connect to {url}: {e}"))?;
            (Conn::Single(commands), PubSub::Single(pubsub))
        }
        Target::Cluster(urls) => {
            let infos = urls
                .iter()
                .map(|u| resp3(u))
                .collect::<Result<Vec<_>, _>>()?;
            let builder = || {
                ClusterClientBuilder::new(infos.clone())
                    .use_protocol(ProtocolVersion::RESP3)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2)
            };
            let seeds = urls.iter().map(|u| shown(u)).collect::<Vec<_>>().join(", ");
            let commands = builder()
                .build()
                .map_err(|e| format!("{seeds}: {e}"))?
                .get_async_connection()
                .await
                .map_err(|e| format!("cannot connect to the Redis Cluster at {seeds}: {e}"))?;
            let pubsub = builder()
                .push_sender(tx)
                .build()
                .map_err(|e| format!("{seeds}: {e}"))?
                .get_async_connection()
                .await
                .map_err(|e| format!("cannot connect to the Redis Cluster at {seeds}: {e}"))?;
            (Conn::Cluster(commands), PubSub::Cluster(pubsub))
        }
    };
    Ok(Connected {
        commands,
        pubsub,
        pushes,
    })
}

/// The URL's connection settings, speaking RESP3 (pub/sub messages arrive as pushes).
fn resp3(url: &str) -> Result<ConnectionInfo, String> {
    let info = url
        .into_connection_info()
        .map_err(|e| format!("invalid Redis URL '{}': {e}", shown(url)))?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    Ok(info.set_redis_settings(settings))
}

/// A URL as it may be shown in messages and logs: without the password.
pub fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user = &url[scheme + 3..at];
            let user = user.split(':').next().unwrap_or_default();
            let hidden = if user.is_empty() { "***" } else { ":***" };
            let user = if user.is_empty() { "" } else { user };
            format!("{}{user}{hidden}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            shown("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(shown("redis://:s3cret@h:1"), "redis://***@h:1");
        assert_eq!(shown("rediss://app:s3cret@h:1/2"), "rediss://app:***@h:1/2");
    }
}
