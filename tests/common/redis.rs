//! Redis for the tests: a `redis-server` of the test's own (never the machine's default port),
//! on a free port, in a temporary folder, stopped by its pid when dropped; a Redis Cluster of
//! three such servers; and a proxy between a node and Redis that can stall, close every connection,
//! or stop listening (connections refused).

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::tools::missing_tool;

/// `redis-server`, as `PUBSUB_REDIS_SERVER` names it or on the PATH.
fn redis_server() -> String {
    std::env::var("PUBSUB_REDIS_SERVER").unwrap_or_else(|_| "redis-server".to_owned())
}

/// Why Redis tests cannot run here, if they cannot (and fails them when tools are required).
pub fn redis_missing() -> bool {
    let found = Command::new(redis_server())
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        missing_tool("redis-server is not installed (apt-get install redis-server)");
    }
    !found
}

/// A port that was free a moment ago, at most `max` (a Cluster node also needs port + 10000).
pub fn free_port(max: u16) -> u16 {
    for _ in 0..200 {
        let port = StdListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(0);
        let port = if port > max {
            // Pick in 20000..max and check it (and its bus port) is free.
            20_000 + (rand_u16() % (max - 20_000))
        } else {
            port
        };
        let free = |p: u16| StdListener::bind(("127.0.0.1", p)).is_ok();
        if port != 0 && free(port) && (max == u16::MAX || free(port + 10_000)) {
            return port;
        }
    }
    panic!("no free port found");
}

fn rand_u16() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ (std::process::id() << 7)) as u16
}

/// One `redis-server` process of the test's own.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    /// A Redis that keeps nothing on disk.
    pub fn start() -> RedisServer {
        Self::start_with(&["--appendonly", "no"])
    }

    /// A Redis that writes every command to its append-only file before answering.
    pub fn start_persistent() -> RedisServer {
        Self::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
    }

    pub fn start_with(extra: &[&str]) -> RedisServer {
        let dir = std::env::temp_dir().join(format!(
            "pubsub-test-redis-{}-{}",
            std::process::id(),
            rand_u16()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir for redis");
        let mut server = RedisServer {
            child: None,
            port: free_port(u16::MAX),
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(redis_server())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--daemonize", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and folder (its append-only file, if any, is
    /// read back).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Runs `redis-cli` against this server.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until something listens on `port` (at most 10 s).
fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Redis Cluster of three masters, each a [`RedisServer`].
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|i| {
                let conf = format!("nodes-{i}-{}.conf", rand_u16());
                RedisServer::start_with(&[
                    "--appendonly",
                    "no",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf,
                    "--cluster-node-timeout",
                    "5000",
                ])
            })
            .collect();
        // Bus ports are port + 10000: make sure the ports chosen allow that.
        assert!(
            nodes.iter().all(|n| n.port <= 55_535),
            "cluster ports too high"
        );
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster
            .nodes
            .iter()
            .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "cluster did not become ok");
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// The seed URLs, comma-separated as `--redis-cluster` takes them.
    pub fn seeds(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProxyMode {
    /// Forwards both ways.
    Pass = 0,
    /// Accepts and holds connections, forwarding nothing (a Redis that does not answer).
    Stall = 1,
    /// Closes every connection, open or new (a Redis that is gone).
    Refuse = 2,
    /// Closes every open connection and stops listening, so a new one is refused
    /// (`ECONNREFUSED`: a Redis whose process is gone); listens again on the same port after.
    Down = 3,
}

/// A TCP proxy on loopback in front of `target`, whose behaviour the test switches.
pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    changed: watch::Sender<u8>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let mode = Arc::new(AtomicU8::new(ProxyMode::Pass as u8));
        let (changed, _) = watch::channel(0u8);
        let (m, c) = (mode.clone(), changed.clone());
        let task = tokio::spawn(async move {
            let mut listener = Some(listener);
            let mut changes = c.subscribe();
            loop {
                let down = mode_of(&m) == ProxyMode::Down;
                match &listener {
                    Some(_) if down => listener = None,
                    Some(l) => tokio::select! {
                        accepted = l.accept() => {
                            let Ok((client, _)) = accepted else { return };
                            let (m, rx) = (m.clone(), c.subscribe());
                            tokio::spawn(relay(client, target, m, rx));
                        }
                        _ = changes.changed() => {}
                    },
                    None if down => {
                        if changes.changed().await.is_err() {
                            return;
                        }
                    }
                    None => listener = Some(rebind(addr).await),
                }
            }
        });
        Proxy {
            addr,
            mode,
            changed,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    pub fn set(&self, mode: ProxyMode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
        self.changed.send_replace(mode as u8);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn mode_of(mode: &AtomicU8) -> ProxyMode {
    match mode.load(Ordering::SeqCst) {
        1 => ProxyMode::Stall,
        2 => ProxyMode::Refuse,
        3 => ProxyMode::Down,
        _ => ProxyMode::Pass,
    }
}

/// Listens on `addr` again (the port was ours a moment ago; retried for a while).
async fn rebind(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return listener,
            Err(e) if Instant::now() >= deadline => panic!("proxy cannot listen on {addr}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Relays one connection until it ends or the mode says to drop it; while stalled, reads
/// nothing and writes nothing.
async fn relay(
    mut client: TcpStream,
    target: SocketAddr,
    mode: Arc<AtomicU8>,
    mut changed: watch::Receiver<u8>,
) {
    if matches!(mode_of(&mode), ProxyMode::Refuse | ProxyMode::Down) {
        return;
    }
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let (mut a, mut b) = ([0u8; 16 * 1024], [0u8; 16 * 1024]);
    loop {
        match mode_of(&mode) {
            ProxyMode::Refuse | ProxyMode::Down => return,
            ProxyMode::Stall => {
                if changed.changed().await.is_err() {
                    return;
                }
                continue;
            }
            ProxyMode::Pass => {}
        }
        tokio::select! {
            _ = changed.changed() => continue,
            n = client.read(&mut a) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if server.write_all(&a[..n]).await.is_err() { return },
            },
            n = server.read(&mut b) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if client.write_all(&b[..n]).await.is_err() { return },
            },
        }
    }
}
