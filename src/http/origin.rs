//! Browser origins: which web pages may use the server. A browser names the page's origin in
//! the `Origin` header of every WebSocket handshake and cross-origin request; a request from a
//! page that is neither the server's own origin nor one of `--allowed-origin` is refused with
//! 403 `forbidden_origin` before any route sees it (so before a WebSocket upgrade). A request
//! without `Origin` is not from a browser page and goes through. For allowed origins, REST
//! answers CORS preflights and marks its responses readable by the page.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use warp::Filter;
use warp::http::header::{self, HeaderMap, HeaderValue};
use warp::http::uri::{Authority, Uri};
use warp::http::{Method, StatusCode};
use warp::reply::{Reply, Response};

use super::error::ApiError;
use crate::protocol::ErrorCode;

/// What a preflight may ask for: every method the REST API has, and the headers it reads.
const ALLOW_METHODS: &str = "GET, POST, DELETE";
const ALLOW_HEADERS: &str = "Authorization, Content-Type";
/// Response headers a page may read besides the CORS-safelisted ones.
const EXPOSE_HEADERS: &str = "Allow, Location, Retry-After, WWW-Authenticate";
/// How long a browser may cache a preflight's answer, in seconds.
const MAX_AGE: &str = "600";

/// A web origin, `scheme://host:port`, in a form where equal origins compare equal: scheme and
/// host in lower case, the port always present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `http://host[:port]` or `https://host[:port]` (a trailing `/` is allowed; any
    /// other path, a query, user info or another scheme is not).
    pub fn parse(text: &str) -> Result<Origin, String> {
        let invalid =
            |why: &str| format!("{text:?} is not an origin (scheme://host[:port]): {why}");
        let uri: Uri = text.parse().map_err(|e| invalid(&format!("{e}")))?;
        let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") => "http",
            Some("https") => "https",
            _ => return Err(invalid("the scheme must be http or https")),
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid("an origin has no path or query"));
        }
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("an origin has no user name or password"));
        }
        Origin::at(scheme, authority).ok_or_else(|| invalid("no host"))
    }

    /// The origin of `scheme` at `authority` (a `Host` header's value).
    fn at(scheme: &str, authority: &Authority) -> Option<Origin> {
        let host = authority.host();
        if host.is_empty() {
            return None;
        }
        // A port that is written must be one: `port_u16` would read 99999 as no port at all.
        let after_host = match authority.as_str().rsplit_once(']') {
            Some((_, rest)) => rest,
            None => authority.as_str(),
        };
        let port = match after_host.rsplit_once(':') {
            Some((_, port)) => port.parse().ok()?,
            None if scheme == "https" => 443,
            None => 80,
        };
        Some(Origin {
            scheme: scheme.to_owned(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// The origins allowed besides the server's own, and the server's scheme (its own origin is
/// `https://HOST` with TLS, `http://HOST` without, HOST being the request's `Host`).
#[derive(Debug, Clone, Default)]
pub struct Origins {
    allowed: Arc<[Origin]>,
    tls: bool,
}

/// What to do with a request, by its `Origin`.
enum Verdict {
    /// Serve it; with the allowed origin to name in `Access-Control-Allow-Origin`, if any.
    Serve(Option<HeaderValue>),
    /// Answer it here: a refusal or a preflight.
    Answer(Response),
}

impl Origins {
    pub fn new(allowed: Vec<Origin>) -> Self {
        Origins {
            allowed: allowed.into(),
            tls: false,
        }
    }

    /// The same origins on a server that does (`tls`) or does not serve HTTPS.
    pub fn for_scheme(&self, tls: bool) -> Self {
        Origins {
            allowed: self.allowed.clone(),
            tls,
        }
    }

    fn verdict(&self, method: &Method, host: Option<Authority>, headers: &HeaderMap) -> Verdict {
        let Some(sent) = headers.get(header::ORIGIN) else {
            return Verdict::Serve(None);
        };
        // "null" (a sandboxed page, a file) and anything unparsable are never allowed.
        let origin = sent.to_str().ok().and_then(|s| Origin::parse(s).ok());
        let scheme = if self.tls { "https" } else { "http" };
        let own = host.and_then(|host| Origin::at(scheme, &host));
        let allowed = origin.as_ref().is_some_and(|o| self.allowed.contains(o));
        if !allowed {
            if origin.is_some() && origin == own {
                return Verdict::Serve(None);
            }
            let shown = String::from_utf8_lossy(sent.as_bytes());
            return Verdict::Answer(
                ApiError::new(
                    ErrorCode::ForbiddenOrigin,
                    format!(
                        "pages from {shown:?} may not use this server; its operator can allow \
                         them with --allowed-origin"
                    ),
                )
                .into_response(),
            );
        }
        let preflight = method == Method::OPTIONS
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            return Verdict::Answer(preflight_answer(sent.clone()));
        }
        Verdict::Serve(Some(sent.clone()))
    }

    fn any_allowed(&self) -> bool {
        !self.allowed.is_empty()
    }
}

/// 204 to a preflight from an allowed origin: what the page may send.
fn preflight_answer(origin: HeaderValue) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    for (name, value) in [
        (header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS),
        (header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS),
        (header::ACCESS_CONTROL_MAX_AGE, MAX_AGE),
        (header::VARY, "Origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// `api` behind the origin check: refusals and preflights answered first, and the CORS
/// headers added to what `api` answers an allowed origin.
pub fn guard<F>(
    origins: Origins,
    api: F,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    // A Host that does not parse simply matches no origin.
    let host = warp::host::optional().or(warp::any().map(|| None)).unify();
    // With origins allowed, an answer depends on the Origin sent: caches must keep them apart.
    let vary = origins.any_allowed();
    let verdict = warp::method()
        .and(host)
        .and(warp::header::headers_cloned())
        .map(
            move |method: Method, host: Option<Authority>, headers: HeaderMap| {
                origins.verdict(&method, host, &headers)
            },
        );
    let answered = verdict.clone().and_then(|verdict: Verdict| async move {
        match verdict {
            Verdict::Answer(response) => Ok(response),
            Verdict::Serve(_) => Err(warp::reject()),
        }
    });
    let served = verdict
        .and(api)
        .map(move |verdict: Verdict, mut response: Response| {
            let headers = response.headers_mut();
            if vary {
                headers.append(header::VARY, HeaderValue::from_static("Origin"));
            }
            if let Verdict::Serve(Some(origin)) = verdict {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
                headers.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(EXPOSE_HEADERS),
                );
            }
            response
        });
    answered.or(served).unify()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_origins_compare_equal_whatever_their_spelling() {
        let parsed = |s: &str| Origin::parse(s).map(|o| o.to_string());
        for (text, normal) in [
            ("https://app.example.com", "https://app.example.com:443"),
            (
                "HTTPS://App.Example.com:443/",
                "https://app.example.com:443",
            ),
            ("http://localhost:8000", "http://localhost:8000"),
            ("http://127.0.0.1", "http://127.0.0.1:80"),
            ("http://[::1]:9000", "http://[::1]:9000"),
        ] {
            assert_eq!(parsed(text), Ok(normal.to_owned()), "{text}");
        }
    }

    #[test]
    fn what_is_not_an_origin_is_refused() {
        for text in [
            "",
            "null",
            "app.example.com",
            "ftp://app.example.com",
            "ws://app.example.com",
            "https://app.example.com/path",
            "https://app.example.com?q=1",
            "https://user@app.example.com",
            "https://app.example.com:99999",
            "https://app.example.com:",
        ] {
            assert!(Origin::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn the_servers_own_origin_follows_its_scheme_and_the_host_header() {
        let host: Authority = "localhost:8000".parse().expect("authority");
        assert_eq!(
            Origin::at("http", &host),
            Origin::parse("http://LOCALHOST:8000").ok()
        );
        assert_ne!(
            Origin::at("https", &host),
            Origin::parse("http://localhost:8000").ok()
        );
    }
}
