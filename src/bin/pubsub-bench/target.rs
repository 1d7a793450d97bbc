//! Which server a run talks to, and the loopback-only rule.
//!
//! A target may be several servers (the nodes of a scale-out group): subscribers are spread over
//! them round-robin, the publisher always talks to the first. Its CPU and memory figures are the
//! sums over its PIDs.

use std::net::{SocketAddr, ToSocketAddrs};

/// A server (or group of servers) under load: addresses, a label for the output, and the PIDs
/// whose CPU counts as the server's, and Redis's when it sits behind them.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    /// Never empty.
    pub addrs: Vec<SocketAddr>,
    pub pids: Vec<u32>,
    pub redis_pids: Vec<u32>,
    pub ws_path: String,
}

impl Target {
    /// Where the publisher connects: the first address.
    pub fn publisher_addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Where subscriber connection number `i` connects: round-robin over the addresses.
    pub fn subscriber_addr(&self, i: usize) -> SocketAddr {
        self.addrs[i % self.addrs.len()]
    }

    /// The addresses as the output shows them: `HOST:PORT[,HOST:PORT...]`.
    pub fn label(&self) -> String {
        self.addrs
            .iter()
            .map(SocketAddr::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn has_pids(&self) -> bool {
        !self.pids.is_empty()
    }
}

/// Resolves `HOST:PORT` and refuses anything that is not loopback: the harness opens thousands
/// of connections at full speed, which is only harmless on the local machine.
pub fn loopback_addr(text: &str) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{text}' (expected HOST:PORT): {e}"))?
        .collect();
    let Some(first) = addrs.first().copied() else {
        return Err(format!("'{text}' resolves to no address"));
    };
    if let Some(bad) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        return Err(format!(
            "refusing non-loopback address {text} ({}): pubsub-bench only generates load over \
             loopback (127.0.0.0/8 or ::1)",
            bad.ip()
        ));
    }
    Ok(first)
}

/// Every address of a list (flags may be repeated and hold comma lists), each checked.
pub fn loopback_addrs(texts: &[String]) -> Result<Vec<SocketAddr>, String> {
    let addrs = texts
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(loopback_addr)
        .collect::<Result<Vec<_>, _>>()?;
    if addrs.is_empty() {
        return Err("no server address given".to_owned());
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_and_refuses_the_rest() {
        assert!(loopback_addr("127.0.0.1:8000").is_ok());
        assert!(loopback_addr("127.1.2.3:1").is_ok());
        assert!(loopback_addr("[::1]:8000").is_ok());
        let err = loopback_addr("10.0.0.1:8000").unwrap_err();
        assert!(err.contains("refusing non-loopback"), "{err}");
        assert!(loopback_addr("127.0.0.1").is_err());
    }

    #[test]
    fn subscribers_go_round_robin_and_the_publisher_to_the_first() {
        let texts = ["127.0.0.1:1".to_owned(), "127.0.0.1:2".to_owned()];
        let target = Target {
            name: "A".into(),
            addrs: loopback_addrs(&texts).unwrap(),
            pids: vec![],
            redis_pids: vec![],
            ws_path: "/ws".into(),
        };
        let ports: Vec<u16> = (0..5).map(|i| target.subscriber_addr(i).port()).collect();
        assert_eq!(ports, [1, 2, 1, 2, 1]);
        assert_eq!(target.publisher_addr().port(), 1);
        assert_eq!(target.label(), "127.0.0.1:1,127.0.0.1:2");
        assert!(loopback_addrs(&["127.0.0.1:1".into(), "10.0.0.1:2".into()]).is_err());
        assert!(loopback_addrs(&[]).is_err());
    }
}
