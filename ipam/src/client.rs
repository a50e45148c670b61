//! The API client used by `tartanctl`, the node agent and the benchmarks: HTTP/1.1 over one
//! kept-alive connection (re-made when the server closed it), bearer token, typed errors that
//! say what to do.

use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
pub use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use crate::api::error::ErrorBody;

/// The address the server listens on unless told otherwise.
pub const DEFAULT_API: &str = "http://127.0.0.1:7180";
const TIMEOUT: Duration = Duration::from_secs(60);

/// What can go wrong talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0:?} is not an API address: use http://HOST:PORT")]
    BadAddress(String),
    #[error("cannot reach {url}: is `tartan apiserver` running? ({reason})")]
    Unreachable { url: String, reason: String },
    #[error("{message}")]
    Api { status: StatusCode, error: String, message: String },
    #[error("{url} did not answer within {} s", TIMEOUT.as_secs())]
    Timeout { url: String },
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
}

impl ClientError {
    /// The API's error code (`not_found`, `conflict`, ...), if the server answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { error, .. } => Some(error),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A client of one API server.
#[derive(Debug)]
pub struct Client {
    url: String,
    authority: String,
    token: Option<String>,
    conn: Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl Client {
    /// `api` is `http://HOST:PORT` (or `HOST:PORT`).
    pub fn new(api: &str, token: Option<String>) -> Result<Client, ClientError> {
        let trimmed = api.trim_end_matches('/');
        let authority = match trimmed.strip_prefix("http://") {
            Some(rest) => rest,
            None if trimmed.contains("://") => {
                return Err(ClientError::BadAddress(api.to_string()));
            }
            None => trimmed,
        };
        if authority.is_empty() || authority.contains('/') || !authority.contains(':') {
            return Err(ClientError::BadAddress(api.to_string()));
        }
        Ok(Client {
            url: format!("http://{authority}"),
            authority: authority.to_string(),
            token,
            conn: Mutex::new(None),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let unreachable =
            |reason: String| ClientError::Unreachable { url: self.url.clone(), reason };
        let stream =
            tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&self.authority))
                .await
                .map_err(|_| unreachable("connection timed out".into()))?
                .map_err(|e| unreachable(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    fn build(
        &self,
        method: &Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let mut req =
            Request::builder().method(method.clone()).uri(path).header(HOST, &self.authority);
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Protocol { url: self.url.clone(), reason: e.to_string() })
    }

    /// Sends one request and returns the status and the whole body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let work = async {
            let mut guard = self.conn.lock().await;
            for attempt in 0..2 {
                let mut sender = match guard.take() {
                    Some(s) if !s.is_closed() => s,
                    _ => self.connect().await?,
                };
                if sender.ready().await.is_err() {
                    continue;
                }
                let req = self.build(&method, path, body.clone(), headers)?;
                match sender.send_request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let bytes = resp
                            .into_body()
                            .collect()
                            .await
                            .map_err(|e| ClientError::Protocol {
                                url: self.url.clone(),
                                reason: e.to_string(),
                            })?
                            .to_bytes();
                        *guard = Some(sender);
                        return Ok((status, bytes));
                    }
                    // A kept-alive connection the server closed: try once on a new one.
                    Err(e)
                        if attempt == 0
                            && (e.is_canceled() || e.is_closed() || e.is_incomplete_message()) => {}
                    Err(e) => {
                        return Err(ClientError::Unreachable {
                            url: self.url.clone(),
                            reason: e.to_string(),
                        });
                    }
                }
            }
            Err(ClientError::Unreachable {
                url: self.url.clone(),
                reason: "connection closed".into(),
            })
        };
        tokio::time::timeout(TIMEOUT, work)
            .await
            .map_err(|_| ClientError::Timeout { url: self.url.clone() })?
    }

    /// A JSON request with a JSON answer; API errors become [`ClientError::Api`].
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T, ClientError> {
        self.call_with(method, path, body, &[]).await
    }

    /// [`Client::call`] with extra headers.
    pub async fn call_with<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        headers: &[(&str, &str)],
    ) -> Result<T, ClientError> {
        let body = match body {
            Some(b) => Some(serde_json::to_vec(b).map_err(|e| ClientError::Protocol {
                url: self.url.clone(),
                reason: e.to_string(),
            })?),
            None => None,
        };
        let (status, bytes) = self.send(method, path, body, headers).await?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(e) => ClientError::Api { status, error: e.error, message: e.message },
                Err(_) => ClientError::Api {
                    status,
                    error: "http".into(),
                    message: format!("{status}: {}", String::from_utf8_lossy(&bytes)),
                },
            });
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Protocol { url: self.url.clone(), reason: e.to_string() })
    }

    /// GET returning JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    /// Opens a watch stream from `since` (on its own connection).
    pub async fn watch(&self, since: u64, kinds: &str) -> Result<Watch, ClientError> {
        let mut sender = self.connect().await?;
        let path = if kinds.is_empty() {
            format!("/v1/watch?since={since}")
        } else {
            format!("/v1/watch?since={since}&kinds={kinds}")
        };
        let req = self.build(&Method::GET, &path, None, &[])?;
        let resp = sender.send_request(req).await.map_err(|e| ClientError::Unreachable {
            url: self.url.clone(),
            reason: e.to_string(),
        })?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let e: ErrorBody = serde_json::from_slice(&bytes)
                .unwrap_or(ErrorBody { error: "http".into(), message: status.to_string() });
            return Err(ClientError::Api { status, error: e.error, message: e.message });
        }
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        tokio::spawn(async move {
            let _keep = sender;
            let mut buf: Vec<u8> = Vec::new();
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { break };
                let Ok(data) = frame.into_data() else { continue };
                buf.extend_from_slice(&data);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&line) {
                        if tx.send(v).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Watch { rx })
    }
}

/// An open watch: each item is one event line (`type`, `revision`, `object`).
#[derive(Debug)]
pub struct Watch {
    rx: tokio::sync::mpsc::Receiver<serde_json::Value>,
}

impl Watch {
    /// The next event; `None` when the stream ended.
    pub async fn next(&mut self) -> Option<serde_json::Value> {
        self.rx.recv().await
    }
}
