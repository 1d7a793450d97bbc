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
        let default_port = if scheme == "https" { 443 } else { 80 };
        Some(Origin {
            scheme: scheme.to_owned(),
            host: host.to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(default_port),
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
