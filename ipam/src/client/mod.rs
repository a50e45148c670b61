//! The one client of the Tartan API, used by `tartanctl`, the node agent, the CNI path and the
//! labs: the only place that knows URLs, addresses, retries and the token.
//!
//! - **Pooled**: hyper-util's connection pool, so concurrent calls (CNI ADDs on a busy host)
//!   run side by side on kept-alive connections instead of queueing behind one.
//! - **Several API servers**: `--api URL,URL,...`. A call goes to the server that last answered;
//!   one that cannot be reached (or answers 503) is left for the next. A request that may
//!   have reached a server is sent again elsewhere only when doing it twice is harmless
//!   (GET, PUT, DELETE; POSTs to the IPAM are idempotent by handle and say so).
//! - **Typed** ([`typed`]): `get::<NodeSpec>(name)`, `list::<IpPoolSpec>(selector)`, names and
//!   selectors percent-encoded; raw JSON calls stay for the IPAM endpoints.
//! - **Watch** ([`watch`]): the change stream, line by line, ended on silence.

mod typed;
mod watch;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
pub use hyper::{Method, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use watch::Watch;

use crate::api::error::ErrorBody;

/// The address the server listens on unless told otherwise.
pub const DEFAULT_API: &str = "http://127.0.0.1:7180";
/// How long one server may take to answer one request.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Kept-alive connections per server, for the calls running side by side.
const IDLE_PER_SERVER: usize = 32;

/// What can go wrong talking to the API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "{0:?} is not an API address: use https://HOST:PORT or http://HOST:PORT (several: \
         https://A:PORT,https://B:PORT)"
    )]
    BadAddress(String),
    #[error(
        "TLS with {url} failed: {reason}. Give the CA that signed the server's certificate with \
         --ca-file FILE (or TARTAN_CA_FILE), and use a host name or address the certificate names"
    )]
    Tls { url: String, reason: String },
    #[error("TLS setup: {0}")]
    TlsSetup(String),
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

/// One API server.
#[derive(Debug, Clone)]
struct Server {
    /// `https://HOST:PORT` or `http://HOST:PORT`, for messages and URIs.
    url: String,
}

/// A client of one or more API servers sharing a datastore.
#[derive(Debug)]
pub struct Client {
    servers: Vec<Server>,
    /// The server that answered last: calls start there.
    preferred: AtomicUsize,
    token: Option<String>,
    http: HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// How one try at one server ended.
enum Attempt {
    /// Answered (any status but 503).
    Answered(StatusCode, Bytes),
    /// Nothing was sent (no connection): any request may go to the next server.
    NotSent(ClientError),
    /// The request may have reached the server: only a repeatable one may go elsewhere.
    MaybeSent(ClientError),
}

/// Parses one `https://HOST:PORT`, `http://HOST:PORT` or `HOST:PORT` (plain HTTP).
fn parse_server(api: &str, whole: &str) -> Result<Server, ClientError> {
    let trimmed = api.trim().trim_end_matches('/');
    let (scheme, authority) = match trimmed.split_once("://") {
        Some((scheme @ ("http" | "https"), rest)) => (scheme, rest),
        Some(_) => return Err(ClientError::BadAddress(whole.to_string())),
        None => ("http", trimmed),
    };
    if authority.is_empty() || authority.contains('/') || !authority.contains(':') {
        return Err(ClientError::BadAddress(whole.to_string()));
    }
    Ok(Server { url: format!("{scheme}://{authority}") })
}

impl Client {
    /// `api` is `https://HOST:PORT` or `http://HOST:PORT`, or several separated by commas:
    /// API servers on one datastore, tried in turn. `https://` trusts the system's CAs.
    pub fn new(api: &str, token: Option<String>) -> Result<Client, ClientError> {
        Client::with_ca(api, token, None)
    }

    /// [`Client::new`] trusting the CA certificates in `ca_file` for `https://` servers
    /// (the server's name is checked against its certificate either way).
    pub fn with_ca(
        api: &str,
        token: Option<String>,
        ca_file: Option<&Path>,
    ) -> Result<Client, ClientError> {
        let servers =
            api.split(',').map(|one| parse_server(one, api)).collect::<Result<Vec<_>, _>>()?;
        let tls = if ca_file.is_some() || servers.iter().any(|s| s.url.starts_with("https://")) {
            Some(
                crate::tls::client_config(ca_file, None)
                    .map_err(|e| ClientError::TlsSetup(e.to_string()))?,
            )
        } else {
            None
        };
        let connector = crate::tls::connector(tls, CONNECT_TIMEOUT)
            .map_err(|e| ClientError::TlsSetup(e.to_string()))?;
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(IDLE_PER_SERVER)
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Client { servers, preferred: AtomicUsize::new(0), token, http })
    }

    /// The server calls go to first.
    pub fn url(&self) -> &str {
        &self.servers[self.preferred.load(Ordering::Relaxed) % self.servers.len()].url
    }

    /// Every server, in the order given.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.servers.iter().map(|s| s.url.as_str())
    }

    fn build(
        &self,
        server: &Server,
        method: &Method,
        path: &str,
        body: Option<&Bytes>,
        headers: &[(&str, &str)],
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let mut req =
            Request::builder().method(method.clone()).uri(format!("{}{path}", server.url));
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(Full::new(body.cloned().unwrap_or_default()))
            .map_err(|e| ClientError::Protocol { url: server.url.clone(), reason: e.to_string() })
    }

    /// One try at one server.
    async fn attempt(&self, server: &Server, req: Request<Full<Bytes>>) -> Attempt {
        let url = server.url.clone();
        let work = async {
            let resp = match self.http.request(req).await {
                Ok(resp) => resp,
                Err(e) => {
                    let reason = error_chain(&e);
                    let err = if is_tls_failure(&e) {
                        ClientError::Tls { url: url.clone(), reason }
                    } else if url.starts_with("http://")
                        && (reason.contains("closed before") || reason.contains("invalid HTTP"))
                    {
                        ClientError::Unreachable {
                            url: url.clone(),
                            reason: format!("{reason}; if it serves HTTPS, use https://"),
                        }
                    } else {
                        ClientError::Unreachable { url: url.clone(), reason }
                    };
                    return if e.is_connect() {
                        Attempt::NotSent(err)
                    } else {
                        Attempt::MaybeSent(err)
                    };
                }
            };
            let status = resp.status();
            match resp.into_body().collect().await {
                Ok(body) if status == StatusCode::SERVICE_UNAVAILABLE => {
                    Attempt::MaybeSent(api_error(status, &body.to_bytes()))
                }
                Ok(body) => Attempt::Answered(status, body.to_bytes()),
                Err(e) => Attempt::MaybeSent(ClientError::Protocol {
                    url: url.clone(),
                    reason: e.to_string(),
                }),
            }
        };
        match tokio::time::timeout(TIMEOUT, work).await {
            Ok(a) => a,
            Err(_) => Attempt::MaybeSent(ClientError::Timeout { url }),
        }
    }

    /// Sends one request, failing over between servers, and returns the status and the whole
    /// body. `repeatable`: the request may be applied twice without harm.
    async fn send_body(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, &str)],
        repeatable: bool,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..self.servers.len() {
            let index = (first + i) % self.servers.len();
            let server = &self.servers[index];
            // A request sent again says so: the server then makes sure it sees what an earlier
            // try may have done elsewhere.
            let retry = [(crate::api::ipam::RETRY_HEADER, "1")];
            let extra: Vec<(&str, &str)> =
                headers.iter().copied().chain(retry.iter().copied().filter(|_| i > 0)).collect();
            let req = self.build(server, &method, path, body.as_ref(), &extra)?;
            match self.attempt(server, req).await {
                Attempt::Answered(status, bytes) => {
                    if index != first {
                        self.preferred.store(index, Ordering::Relaxed);
                        tracing::info!("API server {} answers; using it from now on", server.url);
                    }
                    return Ok((status, bytes));
                }
                Attempt::NotSent(e) => last = Some(e),
                Attempt::MaybeSent(e) if repeatable => last = Some(e),
                Attempt::MaybeSent(e) => return Err(e),
            }
            if i + 1 < self.servers.len() {
                if let Some(e) = &last {
                    tracing::warn!("{e}; trying the next API server");
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::BadAddress(String::new())))
    }

    /// Sends one request and returns the status and the whole body. GET, PUT and DELETE fail
    /// over to another server whatever happened; other methods only when nothing was sent.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let repeatable = matches!(method, Method::GET | Method::PUT | Method::DELETE);
        self.send_body(method, path, body.map(Bytes::from), headers, repeatable).await
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
        let body = self.encode(body)?;
        let (status, bytes) = self.send(method, path, body, headers).await?;
        self.decode(status, &bytes)
    }

    /// A POST that the server applies once however often it is sent (the IPAM's allocate and
    /// release, keyed by handle): it fails over like a GET.
    pub async fn post_idempotent<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> Result<T, ClientError> {
        let body = self.encode(Some(body))?.map(Bytes::from);
        let (status, bytes) = self.send_body(Method::POST, path, body, &[], true).await?;
        self.decode(status, &bytes)
    }

    /// GET of any path, returning JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    fn encode(
        &self,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<Option<Vec<u8>>, ClientError> {
        body.map(serde_json::to_vec).transpose().map_err(|e| ClientError::Protocol {
            url: self.url().to_string(),
            reason: format!("encoding the request: {e}"),
        })
    }

    fn decode<T: DeserializeOwned>(
        &self,
        status: StatusCode,
        bytes: &Bytes,
    ) -> Result<T, ClientError> {
        if !status.is_success() {
            return Err(api_error(status, bytes));
        }
        serde_json::from_slice(bytes).map_err(|e| ClientError::Protocol {
            url: self.url().to_string(),
            reason: e.to_string(),
        })
    }
}

/// Whether TLS (rustls) refused the connection: an untrusted or misnamed certificate, a
/// failed handshake. rustls' error travels inside `io::Error`s (nested: tokio-rustls wraps it,
/// hyper-util wraps that), which `source()` does not step into.
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        let mut inner: &(dyn std::error::Error + 'static) = c;
        while let Some(wrapped) = inner.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref())
        {
            inner = wrapped;
        }
        if inner.is::<rustls::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// An error and its causes, as one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

/// An error answer as [`ClientError::Api`]; a body that is not the API's error shape is shown
/// as text, cut to a line.
fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(e) => ClientError::Api { status, error: e.error, message: e.message },
        Err(_) => {
            let text = String::from_utf8_lossy(bytes);
            let text: String = text.chars().take(200).collect();
            ClientError::Api { status, error: "http".into(), message: format!("{status}: {text}") }
        }
    }
}

/// Percent-encodes one path segment or query value (everything but RFC 3986's unreserved).
pub fn encode(text: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const SEGMENT: &AsciiSet =
        &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
    utf8_percent_encode(text, SEGMENT).to_string()
}

#[cfg(test)]
mod tests;
