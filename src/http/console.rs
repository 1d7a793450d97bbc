//! The live console at `/`: one static page (HTML and vanilla JavaScript, no build step, nothing
//! from another origin) that connects to `/ws`, creates topics over REST, subscribes, publishes
//! and shows what arrives.

use warp::http::{HeaderValue, header};
use warp::reply::Response;
use warp::{Filter, filters::BoxedFilter};

use super::error::method_not_allowed;

const PAGE: &str = include_str!("console.html");

pub fn routes() -> BoxedFilter<(Response,)> {
    warp::path::end()
        .and(
            warp::get()
                .map(page)
                .or(warp::any().map(|| method_not_allowed("GET")))
                .unify(),
        )
        .boxed()
}

fn page() -> Response {
    let mut response = Response::new(PAGE.into());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The page loads nothing from elsewhere; say so, so a browser refuses it if it ever tries.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             img-src data:; connect-src 'self' ws: wss:",
        ),
    );
    response
}
