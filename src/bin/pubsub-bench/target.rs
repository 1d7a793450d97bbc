//! Which server a run talks to, and the loopback-only rule.

use std::net::{SocketAddr, ToSocketAddrs};

/// A server under load: its address, a label for the output, and its PID when known.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub addr: SocketAddr,
    pub pid: Option<u32>,
    pub ws_path: String,
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

#[cfg(test)]
mod tests {
    use super::loopback_addr;

    #[test]
    fn accepts_loopback_and_refuses_the_rest() {
        assert!(loopback_addr("127.0.0.1:8000").is_ok());
        assert!(loopback_addr("127.1.2.3:1").is_ok());
        assert!(loopback_addr("[::1]:8000").is_ok());
        let err = loopback_addr("10.0.0.1:8000").unwrap_err();
        assert!(err.contains("refusing non-loopback"), "{err}");
        assert!(loopback_addr("127.0.0.1").is_err());
    }
}
