//! The thin warp side of authentication: reading the token from a request, and turning a
//! refusal into its JSON answer. Verifying and rights are in [`crate::auth`].

use std::convert::Infallible;

use warp::Filter;
use warp::http::{HeaderMap, header};

use super::error::ApiError;
use crate::auth::{Auth, Need, Principal, Refusal};
use crate::protocol::ErrorCode;

/// Who made a request: the token's holder (`None` when authentication is off), or the
/// `unauthorized` answer for a request without a valid token.
pub type Caller = Result<Option<Principal>, ApiError>;

/// The caller of a REST request, from its `Authorization: Bearer` header.
pub fn caller(auth: Auth) -> impl Filter<Extract = (Caller,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(move |headers: HeaderMap| verify(&auth, bearer(&headers)))
}

/// The caller of a WebSocket handshake: the `Authorization: Bearer` header or, since a
/// browser's WebSocket cannot set headers, the `token` query parameter.
pub fn ws_caller(auth: Auth) -> impl Filter<Extract = (Caller,), Error = Infallible> + Clone {
    warp::header::headers_cloned()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(move |headers: HeaderMap, query: String| {
            let token = match bearer(&headers) {
                Some(token) => Some(token),
                None => query_token(&query).map(Ok),
            };
            verify(&auth, token)
        })
}

fn verify(auth: &Auth, token: Option<Result<String, Refusal>>) -> Caller {
    let token = match &token {
        None => None,
        Some(Ok(token)) => Some(token.as_str()),
        Some(Err(refusal)) => {
            // A header that is not a bearer token is refused like a bad token, when tokens are
            // required; an open server ignores it.
            return match auth.is_on() {
                true => {
                    auth.refusals().note(refusal);
                    Err(unauthorized(refusal))
                }
                false => Ok(None),
            };
        }
    };
    auth.authenticate(token).map_err(|r| unauthorized(&r))
}

/// The token of an `Authorization: Bearer TOKEN` header; an error for another scheme.
fn bearer(headers: &HeaderMap) -> Option<Result<String, Refusal>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(value) = value.to_str() else {
        return Some(Err(Refusal::Malformed));
    };
    let value = value.trim();
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            Some(Ok(token.trim().to_owned()))
        }
        _ => Some(Err(Refusal::Malformed)),
    }
}

/// The `token` query parameter, percent-decoded.
fn query_token(query: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find_map(|(k, v)| (k == "token").then_some(v))
}

pub fn unauthorized(refusal: &Refusal) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, refusal.message())
}

/// Whether the request may go on: its caller authenticated and allowed what `need` says.
pub fn authorize(auth: &Auth, caller: &Caller, need: Need<'_>) -> Result<(), ApiError> {
    let caller = caller.as_ref().map_err(Clone::clone)?;
    match auth.permits(caller.as_ref(), need) {
        true => Ok(()),
        false => Err(ApiError::new(ErrorCode::Forbidden, need.refused())),
    }
}

/// The caller of a route only admins may use, unless `open` says it is public.
pub fn authorize_admin_unless(auth: &Auth, caller: &Caller, open: bool) -> Result<(), ApiError> {
    match open {
        true => Ok(()),
        false => authorize(auth, caller, Need::Admin),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        h
    }

    #[test]
    fn reads_bearer_tokens_only() {
        assert_eq!(bearer(&HeaderMap::new()), None);
        assert_eq!(bearer(&headers("Bearer abc")), Some(Ok("abc".to_owned())));
        assert_eq!(bearer(&headers("bearer  abc ")), Some(Ok("abc".to_owned())));
        assert_eq!(
            bearer(&headers("Basic dXNlcg==")),
            Some(Err(Refusal::Malformed))
        );
        assert_eq!(bearer(&headers("Bearer")), Some(Err(Refusal::Malformed)));
    }

    #[test]
    fn reads_the_token_query_parameter() {
        assert_eq!(query_token("a=1&token=x%2By"), Some("x+y".to_owned()));
        assert_eq!(query_token("a=1"), None);
        assert_eq!(query_token("%zz"), None);
    }
}
