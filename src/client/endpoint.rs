//! The server's address: one URL gives both the REST base and the WebSocket endpoint.

use hyper::Uri;

use super::Error;

/// Where the server is. Parsed from its base URL (`http://HOST:PORT` or `https://...`,
/// optionally with a path prefix it is served under) or from its WebSocket URL
/// (`ws://HOST:PORT/ws` or `wss://...`); a bare `HOST:PORT` means `http://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or address, as in the URL (IPv6 in brackets).
    pub host: String,
    pub port: u16,
    /// The path prefix the server is served under: empty, or starting with `/` and not ending
    /// with one.
    pub prefix: String,
    /// Whether the server speaks TLS (`https://`, `wss://`).
    pub tls: bool,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint, Error> {
        let invalid = |why: &str| Error::InvalidUrl(format!("{url:?}: {why}"));
        let full = if url.contains("://") {
            url.to_owned()
        } else {
            format!("http://{url}")
        };
        let uri: Uri = full.parse().map_err(|e| invalid(&format!("{e}")))?;
        let (websocket, tls) = match uri.scheme_str() {
            Some("http") => (false, false),
            Some("ws") => (true, false),
            Some("https") => (false, true),
            Some("wss") => (true, true),
            _ => {
                return Err(invalid(
                    "the scheme must be http://, https://, ws:// or wss://",
                ));
            }
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("no host"))?
            .to_owned();
        if uri.query().is_some() {
            return Err(invalid("a query string has no meaning here"));
        }
        // What follows the host in the authority, if anything, must be a port that fits.
        let authority = uri.authority().map_or("", |a| a.as_str());
        let after_host = authority
            .rsplit_once(host.as_str())
            .map_or("", |(_, rest)| rest);
        let port = match after_host.strip_prefix(':') {
            Some(port) => port
                .parse()
                .map_err(|_| invalid("the port must be a number from 0 to 65535"))?,
            None if tls => 443,
            None => 80,
        };
        let path = uri.path().trim_end_matches('/');
        let prefix = match path.strip_suffix("/ws") {
            Some(prefix) if websocket => prefix,
            _ => path,
        };
        Ok(Endpoint {
            host,
            port,
            prefix: prefix.to_owned(),
            tls,
        })
    }

    /// `HOST:PORT`, for the `Host` header.
    pub fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The host to open a TCP connection to (an IPv6 address without its brackets).
    pub fn connect_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// The WebSocket endpoint, `ws://HOST:PORT[PREFIX]/ws` (`wss://` with TLS).
    pub fn ws_url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{}/ws", self.authority(), self.prefix)
    }

    /// The REST base, `http://HOST:PORT[PREFIX]` (`https://` with TLS).
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority(), self.prefix)
    }

    /// The path of a REST route (`route` starts with `/`).
    pub fn path(&self, route: &str) -> String {
        format!("{}{route}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> (String, String) {
        match Endpoint::parse(url) {
            Ok(e) => (e.ws_url(), e.path("/topics")),
            Err(e) => panic!("{url}: {e}"),
        }
    }

    #[test]
    fn one_url_gives_the_websocket_and_the_rest_routes() {
        let plain = ("ws://127.0.0.1:8000/ws".to_owned(), "/topics".to_owned());
        for url in [
            "http://127.0.0.1:8000",
            "http://127.0.0.1:8000/",
            "ws://127.0.0.1:8000/ws",
            "ws://127.0.0.1:8000/ws/",
            "127.0.0.1:8000",
        ] {
            assert_eq!(parsed(url), plain, "{url}");
        }
        assert_eq!(
            parsed("http://example.com/pubsub"),
            (
                "ws://example.com:80/pubsub/ws".to_owned(),
                "/pubsub/topics".to_owned()
            )
        );
        assert_eq!(
            parsed("ws://[::1]:9000/pubsub/ws"),
            (
                "ws://[::1]:9000/pubsub/ws".to_owned(),
                "/pubsub/topics".to_owned()
            )
        );
        assert_eq!(
            Endpoint::parse("ws://[::1]:9000/ws")
                .map(|e| e.connect_host().to_owned())
                .ok(),
            Some("::1".to_owned())
        );
    }

    #[test]
    fn https_and_wss_mean_tls_on_port_443_unless_given() {
        for (url, ws, base) in [
            (
                "https://example.com",
                "wss://example.com:443/ws",
                "https://example.com:443",
            ),
            (
                "wss://example.com:8443/ws",
                "wss://example.com:8443/ws",
                "https://example.com:8443",
            ),
            (
                "https://example.com/p/",
                "wss://example.com:443/p/ws",
                "https://example.com:443/p",
            ),
        ] {
            let endpoint = Endpoint::parse(url).map_err(|e| e.to_string());
            let urls = endpoint.map(|e| (e.tls, e.ws_url(), e.base_url()));
            assert_eq!(urls, Ok((true, ws.to_owned(), base.to_owned())), "{url}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_reach() {
        for url in [
            "ftp://example.com",
            "http://",
            "http://host:99999",
            "http://host:80/?a=1",
            "not a url",
        ] {
            assert!(
                matches!(Endpoint::parse(url), Err(Error::InvalidUrl(_))),
                "{url}"
            );
        }
    }
}
