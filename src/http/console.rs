//! The live console at `/`: a static page that creates topics over REST, subscribes,
//! publishes, shows what arrives, reconnects and gaps, and charts `/stats`. Its files are served
//! from this binary under `/console/`, nothing from another origin: the page's own script and
//! styles (`console/`), and the JavaScript client it runs on, the npm package's committed build
//! (`clients/js/dist/index.js`, so the broker builds without Node).

use warp::http::{HeaderValue, header};
use warp::reply::Response;
use warp::{Filter, filters::BoxedFilter};

use super::error::method_not_allowed;

const PAGE: &str = include_str!("console/index.html");

/// The files under `/console/`: (name, content type, text).
const FILES: [(&str, &str, &str); 3] = [
    (
        "pubsub-client.js",
        "text/javascript; charset=utf-8",
        include_str!("../../clients/js/dist/index.js"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_str!("console/console.js"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("console/console.css"),
    ),
];

/// The page loads nothing from elsewhere and runs no inline script: say so, so a browser
/// refuses anything else.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src data:; \
                   connect-src 'self' ws: wss:";

pub fn routes() -> BoxedFilter<(Response,)> {
    let page = warp::path::end().and(
        warp::get()
            .map(|| reply(PAGE, "text/html; charset=utf-8"))
            .or(warp::any().map(|| method_not_allowed("GET")))
            .unify(),
    );
    // An unknown name is not this route's: it falls through to the JSON 404.
    let file = warp::path!("console" / String)
        .and_then(|name: String| async move {
            FILES
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, content_type, text)| (*content_type, *text))
                .ok_or_else(warp::reject::not_found)
        })
        .and(
            warp::get()
                .map(|| true)
                .or(warp::any().map(|| false))
                .unify(),
        )
        .map(|(content_type, text), get: bool| {
            if get {
                reply(text, content_type)
            } else {
                method_not_allowed("GET")
            }
        });
    page.or(file).unify().boxed()
}

fn reply(body: &'static str, content_type: &'static str) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}
