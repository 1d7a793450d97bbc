//! The REST API from Rust: topics, history and publishing, over HTTP/1.1 (hyper's client
//! connection, one TCP connection per call).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

use super::{Endpoint, Error, TlsConfig};
use crate::protocol::{
    CreateTopicRequest, ErrorResponse, History, Published, Topic, TopicDeleted, TopicDetails,
    TopicList,
};

/// Characters a topic name keeps in a path; anything else is percent-encoded (a valid name
/// never has any, and the server answers `invalid_topic` for the rest).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'.')
    .remove(b'_')
    .remove(b'-')
    .remove(b':');

/// Largest response body read.
const MAX_BODY: usize = 64 << 20;

/// A REST client for one server.
#[derive(Debug, Clone)]
pub struct Rest {
    endpoint: Endpoint,
    token: Option<String>,
    /// How long one call may take, from connecting to the last byte of the body.
    pub timeout: Duration,
    /// For an `https://` URL: the certificates to trust (default: the system's).
    tls: Option<TlsConfig>,
}

impl Rest {
    /// For the server at `url` (see [`Endpoint::parse`]), sending `token` as a bearer token.
    pub fn new(url: &str, token: Option<String>) -> Result<Rest, Error> {
        Ok(Rest {
            endpoint: Endpoint::parse(url)?,
            token,
            timeout: Duration::from_secs(30),
            tls: None,
        })
    }

    /// Trusts the certificates of `tls` for an `https://` URL instead of the system's.
    pub fn with_tls(mut self, tls: TlsConfig) -> Rest {
        self.tls = Some(tls);
        self
    }

    /// `GET /topics`.
    pub async fn list_topics(&self) -> Result<TopicList, Error> {
        self.call(Method::GET, "/topics".to_owned(), None).await
    }

    /// `POST /topics`.
    pub async fn create_topic(&self, name: &str) -> Result<Topic, Error> {
        let body = serde_json::to_vec(&CreateTopicRequest {
            name: name.to_owned(),
        })
        .map_err(|e| Error::InvalidJson(e.to_string()))?;
        self.call(Method::POST, "/topics".to_owned(), Some(body))
            .await
    }

    /// `GET /topics/{name}`.
    pub async fn topic(&self, name: &str) -> Result<TopicDetails, Error> {
        self.call(Method::GET, topic_path(name, ""), None).await
    }

    /// `DELETE /topics/{name}`.
    pub async fn delete_topic(&self, name: &str) -> Result<TopicDeleted, Error> {
        self.call(Method::DELETE, topic_path(name, ""), None).await
    }

    /// `GET /topics/{name}/messages?since_seq=&limit=`.
    pub async fn history(
        &self,
        name: &str,
        since_seq: Option<u64>,
        limit: Option<u64>,
    ) -> Result<History, Error> {
        let mut query = Vec::new();
        if let Some(since) = since_seq {
            query.push(format!("since_seq={since}"));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        let mut path = topic_path(name, "/messages");
        if !query.is_empty() {
            path = format!("{path}?{}", query.join("&"));
        }
        self.call(Method::GET, path, None).await
    }

    /// `POST /topics/{name}/messages`: publishes `message` as written.
    pub async fn publish(&self, name: &str, message: &RawValue) -> Result<Published, Error> {
        let body = format!(r#"{{"message":{}}}"#, message.get()).into_bytes();
        self.call(Method::POST, topic_path(name, "/messages"), Some(body))
            .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        route: String,
        body: Option<Vec<u8>>,
    ) -> Result<T, Error> {
        let (status, body) = tokio::time::timeout(self.timeout, self.exchange(method, route, body))
            .await
            .map_err(|_| Error::Connect(format!("no answer within {:?}", self.timeout)))??;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body).map_err(|e| {
                Error::Protocol(format!(
                    "unexpected response body ({e}): {}",
                    String::from_utf8_lossy(&body)
                ))
            });
        }
        match serde_json::from_slice::<ErrorResponse>(&body) {
            Ok(response) => Err(Error::Server(response.error)),
            Err(_) => Err(Error::Http {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            }),
        }
    }

    /// One request on a connection of its own: the status and the whole body.
    async fn exchange(
        &self,
        method: Method,
        route: String,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Bytes), Error> {
        let endpoint = &self.endpoint;
        let connect_error =
            |e: &dyn std::fmt::Display| Error::Connect(format!("{}: {e}", endpoint.base_url()));
        let stream = TcpStream::connect((endpoint.connect_host(), endpoint.port))
            .await
            .map_err(|e| connect_error(&e))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = if endpoint.tls {
            let tls = match &self.tls {
                Some(tls) => tls.clone(),
                None => super::tls::system()?,
            };
            let name = ServerName::try_from(endpoint.connect_host().to_owned())
                .map_err(|e| connect_error(&e))?;
            let stream = TlsConnector::from(tls)
                .connect(name, stream)
                .await
                .map_err(|e| connect_error(&e))?;
            http1(stream).await
        } else {
            http1(stream).await
        }
        .map_err(|e| connect_error(&e))?;
        let mut request = Request::builder()
            .method(method)
            .uri(endpoint.path(&route))
            .header(HOST, endpoint.authority());
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Error::InvalidUrl(e.to_string()))?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| connect_error(&e))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| connect_error(&e))?
                .to_bytes();
            Ok((status, body))
        }
        .await;
        drop(sender);
        connection.abort();
        result
    }
}

/// The HTTP/1.1 handshake on `io`, its connection driven by a task of its own.
async fn http1<IO>(io: IO) -> hyper::Result<(SendRequest<Full<Bytes>>, JoinHandle<()>)>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((sender, connection))
}

fn topic_path(name: &str, rest: &str) -> String {
    format!("/topics/{}{rest}", utf8_percent_encode(name, PATH_SEGMENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_stay_as_they_are_in_paths_and_anything_else_is_escaped() {
        assert_eq!(topic_path("a.b_c-d:e9", ""), "/topics/a.b_c-d:e9");
        assert_eq!(
            topic_path("no such/topic?", "/messages"),
            "/topics/no%20such%2Ftopic%3F/messages"
        );
    }
}
