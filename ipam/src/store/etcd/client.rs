//! A client of etcd v3 through its JSON gateway (`/v3/kv/range|txn`, `/v3/watch`,
//! `/v3/maintenance/status|alarm`, `/v3/kv/compaction`) over the hyper client the rest of the
//! crate already uses: no gRPC stack, no protoc.
//!
//! Failover between members: a request goes to the member that answered last; one that
//! cannot be reached, or answers "no leader" / "timed out", is left for the next. A read is
//! sent again elsewhere whatever happened. A transaction that may have reached a member and
//! got no clear answer is **indeterminate** ([`EtcdError::Indeterminate`]): etcd may apply it
//! later, so the caller resolves it by reading, never by guessing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::ClientConfig;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::b64;

/// How long one member may take to answer one request before the next is tried. An election
/// takes about 1.2 s here; a partitioned member never answers.
pub const REQUEST_TIMEOUT: Duration = Duration::from_millis(1500);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// What can go wrong talking to etcd.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EtcdError {
    #[error("no etcd member answered ({tried}): {last}")]
    Unavailable { tried: String, last: String },
    /// The request may have been applied: read to find out.
    #[error("etcd may or may not have applied the request: {0}")]
    Indeterminate(String),
    #[error(
        "etcd is out of space (NOSPACE alarm): compact and defragment it, then `etcdctl alarm disarm` ({0})"
    )]
    NoSpace(String),
    #[error("revision {requested} was compacted (etcd keeps changes from {compacted} on)")]
    Compacted { requested: u64, compacted: u64 },
    /// etcd refused the request itself (too large, too many operations, bad request).
    #[error("etcd refused the request: {0}")]
    Refused(String),
    #[error("unexpected answer from etcd at {url}: {reason}")]
    Protocol { url: String, reason: String },
}

/// One key with its value and versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: u64,
    pub mod_revision: u64,
    pub version: u64,
}

/// A condition of a transaction (all are equality, except `ModNotAfter`).
#[derive(Clone, Debug)]
pub enum Compare {
    /// `version(key) == n`; 0 means the key does not exist.
    Version(Vec<u8>, u64),
    /// `mod_revision(key) == n`.
    Mod(Vec<u8>, u64),
    /// `mod_revision(key) < n + 1`: unchanged since revision `n` (true for a missing key).
    ModNotAfter(Vec<u8>, u64),
}

/// An operation of a transaction.
#[derive(Clone, Debug)]
pub enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    Get(Vec<u8>),
}

/// What a transaction did.
#[derive(Clone, Debug, Default)]
pub struct TxnOutcome {
    pub succeeded: bool,
    /// The store's revision after it (the revision of the write when it wrote).
    pub revision: u64,
    /// The key-values of each `Get` of the branch that ran, in order.
    pub ranges: Vec<Vec<Kv>>,
}

/// A page of a range read.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub kvs: Vec<Kv>,
    pub more: bool,
    pub revision: u64,
}

/// One member's status.
#[derive(Clone, Debug)]
pub struct Status {
    pub member_id: String,
    pub leader: String,
    pub db_size: u64,
    pub revision: u64,
}

/// The change stream of one watch, as the gateway writes it (one JSON object per line).
#[derive(Debug)]
pub struct WatchStream {
    body: Incoming,
    buffer: Vec<u8>,
    pub url: String,
}

/// One message of a watch.
#[derive(Debug)]
pub enum WatchMessage {
    Created,
    Events {
        revision: u64,
        events: Vec<WatchEvent>,
    },
    /// The start revision was compacted.
    Compacted(u64),
    Canceled(String),
}

#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub deleted: bool,
    pub kv: Kv,
    pub prev: Option<Kv>,
}

/// A client of one etcd cluster.
#[derive(Debug)]
pub struct EtcdClient {
    endpoints: Vec<String>,
    preferred: AtomicUsize,
    http: HttpClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

fn num(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

fn bytes_of(v: &Value) -> Result<Vec<u8>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => b64::decode(s).ok_or_else(|| format!("{s:?} is not base64")),
        other => Err(format!("{other} is not a base64 string")),
    }
}

fn kv_of(v: &Value) -> Result<Kv, String> {
    Ok(Kv {
        key: bytes_of(&v["key"])?,
        value: bytes_of(&v["value"])?,
        create_revision: num(&v["create_revision"]),
        mod_revision: num(&v["mod_revision"]),
        version: num(&v["version"]),
    })
}

fn kvs_of(v: &Value) -> Result<Vec<Kv>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items.iter().map(kv_of).collect(),
        other => Err(format!("kvs is {other}")),
    }
}

fn compare_json(c: &Compare) -> Value {
    match c {
        Compare::Version(k, n) => json!({"result": "EQUAL", "target": "VERSION",
            "key": b64::encode(k), "version": n.to_string()}),
        Compare::Mod(k, n) => json!({"result": "EQUAL", "target": "MOD",
            "key": b64::encode(k), "mod_revision": n.to_string()}),
        Compare::ModNotAfter(k, n) => json!({"result": "LESS", "target": "MOD",
            "key": b64::encode(k), "mod_revision": (n + 1).to_string()}),
    }
}

fn op_json(o: &Op) -> Value {
    match o {
        Op::Put(k, v) => json!({"request_put": {"key": b64::encode(k), "value": b64::encode(v)}}),
        Op::Delete(k) => json!({"request_delete_range": {"key": b64::encode(k)}}),
        Op::Get(k) => json!({"request_range": {"key": b64::encode(k)}}),
    }
}

/// The key just after every key starting with `prefix` (etcd's `range_end` for a prefix).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// How one try at one member ended.
enum Attempt {
    Answered(Value),
    /// Nothing reached the member, or it said it could not serve (no leader): try another.
    NotSent(String),
    /// It may have reached the member.
    MaybeSent(String),
    /// A definite refusal (no point asking another member).
    Failed(EtcdError),
}

/// Sorts an error answer of the gateway (`{"error", "code", "message"}`).
fn classify(url: &str, status: hyper::StatusCode, body: &[u8]) -> Attempt {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let message = v["message"]
        .as_str()
        .or(v["error"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| format!("{status}: {}", String::from_utf8_lossy(body)));
    let code = v["code"].as_u64().unwrap_or(0);
    if message.contains("database space exceeded") || message.contains("NOSPACE") {
        return Attempt::Failed(EtcdError::NoSpace(message));
    }
    if message.contains("compacted") {
        return Attempt::Failed(EtcdError::Compacted { requested: 0, compacted: 0 });
    }
    match code {
        // Unavailable (no leader, timed out, leader changed, stopped) and DeadlineExceeded.
        14 | 4 | 10 if message.contains("no leader") || message.contains("not capable") => {
            Attempt::NotSent(format!("{url}: {message}"))
        }
        14 | 4 | 10 | 13 => Attempt::MaybeSent(format!("{url}: {message}")),
        3 | 8 | 9 | 11 => Attempt::Failed(EtcdError::Refused(message)),
        _ if status.is_server_error() => Attempt::MaybeSent(format!("{url}: {message}")),
        _ => Attempt::Failed(EtcdError::Refused(message)),
    }
}

impl EtcdClient {
    /// `endpoints`: `https://HOST:PORT` or `http://HOST:PORT` of each member (`HOST:PORT` is
    /// plain HTTP); `tls` for the `https://` ones (the CA, and a client certificate when etcd
    /// asks for one).
    pub fn new(endpoints: &[String], tls: Option<ClientConfig>) -> Result<EtcdClient, String> {
        let mut urls = Vec::new();
        for e in endpoints {
            let e = e.trim().trim_end_matches('/');
            if e.is_empty() {
                continue;
            }
            let (scheme, authority) = match e.split_once("://") {
                Some((scheme @ ("http" | "https"), rest)) => (scheme, rest),
                Some(_) => return Err(format!("{e:?} is not an etcd endpoint")),
                None => ("http", e),
            };
            if !authority.contains(':') || authority.contains('/') {
                return Err(format!("{e:?} is not an etcd endpoint: use https://HOST:PORT"));
            }
            if scheme == "https" && tls.is_none() {
                return Err(format!(
                    "{e}: https:// needs the CA that signs etcd's certificates: --etcd-ca-file FILE"
                ));
            }
            urls.push(format!("{scheme}://{authority}"));
        }
        if urls.is_empty() {
            return Err("no etcd endpoint given: --etcd-endpoints http://HOST:2379[,...]".into());
        }
        let connector = crate::tls::connector(tls, CONNECT_TIMEOUT).map_err(|e| e.to_string())?;
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_max_idle_per_host(64)
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(EtcdClient { endpoints: urls, preferred: AtomicUsize::new(0), http })
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    fn request(url: &str, path: &str, body: &Value) -> Result<Request<Full<Bytes>>, String> {
        Request::post(format!("{url}{path}"))
            .header(CONTENT_TYPE, "application/json")
            // Ask etcd to refuse rather than answer from a member cut off from its leader.
            .header("grpc-metadata-hasleader", "true")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())
    }

    async fn attempt(&self, url: &str, path: &str, body: &Value, timeout: Duration) -> Attempt {
        let req = match Self::request(url, path, body) {
            Ok(r) => r,
            Err(e) => return Attempt::Failed(EtcdError::Refused(e)),
        };
        let work = async {
            let resp = match self.http.request(req).await {
                Ok(r) => r,
                Err(e) if e.is_connect() => return Attempt::NotSent(format!("{url}: {e}")),
                Err(e) => {
                    let why = std::error::Error::source(&e)
                        .map_or_else(|| e.to_string(), |s| format!("{e}: {s}"));
                    return Attempt::MaybeSent(format!("{url}: {why}"));
                }
            };
            let status = resp.status();
            let body = match resp.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return Attempt::MaybeSent(format!("{url}: {e}")),
            };
            if !status.is_success() {
                return classify(url, status, &body);
            }
            match serde_json::from_slice(&body) {
                Ok(v) => Attempt::Answered(v),
                Err(e) => Attempt::Failed(EtcdError::Protocol {
                    url: url.to_string(),
                    reason: e.to_string(),
                }),
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(a) => a,
            Err(_) => Attempt::MaybeSent(format!("{url}: no answer within {timeout:?}")),
        }
    }

    /// One request, failing over between members. `repeatable`: sending it twice is harmless.
    async fn call(&self, path: &str, body: &Value, repeatable: bool) -> Result<Value, EtcdError> {
        let first = self.preferred.load(Ordering::Relaxed);
        let n = self.endpoints.len();
        let mut last = String::new();
        for i in 0..n {
            let index = (first + i) % n;
            let url = &self.endpoints[index];
            match self.attempt(url, path, body, REQUEST_TIMEOUT).await {
                Attempt::Answered(v) => {
                    if index != first {
                        self.preferred.store(index, Ordering::Relaxed);
                        tracing::info!("etcd member {url} answers; using it from now on");
                    }
                    return Ok(v);
                }
                Attempt::NotSent(e) => last = e,
                Attempt::MaybeSent(e) if repeatable => last = e,
                Attempt::MaybeSent(e) => {
                    // The next call starts elsewhere: this member may be cut off.
                    self.preferred.store((index + 1) % n, Ordering::Relaxed);
                    return Err(EtcdError::Indeterminate(e));
                }
                Attempt::Failed(e) => return Err(e),
            }
        }
        Err(EtcdError::Unavailable { tried: self.endpoints.join(","), last })
    }

    /// A linearizable read of `[key, end)` (`end` empty: the one key), at most `limit` keys
    /// (0: no limit), at `revision` (0: the newest).
    pub async fn range(
        &self,
        key: &[u8],
        end: &[u8],
        limit: u64,
        revision: u64,
    ) -> Result<Page, EtcdError> {
        let mut body = json!({"key": b64::encode(key)});
        if !end.is_empty() {
            body["range_end"] = json!(b64::encode(end));
        }
        if limit > 0 {
            body["limit"] = json!(limit.to_string());
        }
        if revision > 0 {
            body["revision"] = json!(revision.to_string());
        }
        let v = self.call("/v3/kv/range", &body, true).await.map_err(|e| match e {
            EtcdError::Compacted { .. } => {
                EtcdError::Compacted { requested: revision, compacted: 0 }
            }
            e => e,
        })?;
        Ok(Page {
            kvs: kvs_of(&v["kvs"]).map_err(|r| self.protocol(r))?,
            more: v["more"].as_bool().unwrap_or(false),
            revision: num(&v["header"]["revision"]),
        })
    }

    /// Every key under `prefix` at one revision, read in pages of `page` keys.
    pub async fn range_all(&self, prefix: &[u8], page: u64) -> Result<Page, EtcdError> {
        let end = prefix_end(prefix);
        let mut from = prefix.to_vec();
        let mut out = Page::default();
        loop {
            let p = self.range(&from, &end, page, out.revision).await?;
            if out.revision == 0 {
                out.revision = p.revision;
            }
            let Some(last) = p.kvs.last() else { break };
            from = last.key.clone();
            from.push(0);
            out.kvs.extend(p.kvs);
            if !p.more {
                break;
            }
        }
        Ok(out)
    }

    /// The cluster's current revision, read linearizably (a barrier: every write acknowledged
    /// before it has a revision at most this).
    /// Writes `key` (empty): a revision taken after this call began that the watch of the
    /// prefix holding `key` will deliver. (The cluster's own revision would not do: with
    /// several prefixes on one cluster, the prefix's watch never sees the others' revisions.)
    pub async fn fence(&self, key: &[u8]) -> Result<u64, EtcdError> {
        let o = self.txn(&[], &[Op::Put(key.to_vec(), Vec::new())], &[]).await?;
        Ok(o.revision)
    }

    /// One transaction: if every compare holds, `success`, else `failure`.
    pub async fn txn(
        &self,
        compare: &[Compare],
        success: &[Op],
        failure: &[Op],
    ) -> Result<TxnOutcome, EtcdError> {
        let body = json!({
            "compare": compare.iter().map(compare_json).collect::<Vec<_>>(),
            "success": success.iter().map(op_json).collect::<Vec<_>>(),
            "failure": failure.iter().map(op_json).collect::<Vec<_>>(),
        });
        let v = self.call("/v3/kv/txn", &body, false).await?;
        let mut ranges = Vec::new();
        if let Value::Array(responses) = &v["responses"] {
            for r in responses {
                if let Some(range) = r.get("response_range") {
                    ranges.push(kvs_of(&range["kvs"]).map_err(|r| self.protocol(r))?);
                }
            }
        }
        Ok(TxnOutcome {
            succeeded: v["succeeded"].as_bool().unwrap_or(false),
            revision: num(&v["header"]["revision"]),
            ranges,
        })
    }

    /// The status of each member that answers (for health and the database size).
    pub async fn statuses(&self) -> Vec<Result<Status, String>> {
        let mut out = Vec::new();
        for url in &self.endpoints {
            let s = match self
                .attempt(url, "/v3/maintenance/status", &json!({}), REQUEST_TIMEOUT)
                .await
            {
                Attempt::Answered(v) => Ok(Status {
                    member_id: v["header"]["member_id"].as_str().unwrap_or("").to_string(),
                    leader: v["leader"].as_str().unwrap_or("").to_string(),
                    db_size: num(&v["dbSize"]),
                    revision: num(&v["header"]["revision"]),
                }),
                Attempt::Failed(e) => Err(format!("{url}: {e}")),
                Attempt::NotSent(e) | Attempt::MaybeSent(e) => Err(e),
            };
            out.push(s);
        }
        out
    }

    /// The alarms raised (`NOSPACE`, `CORRUPT`), by name.
    pub async fn alarms(&self) -> Result<Vec<String>, EtcdError> {
        let v = self.call("/v3/maintenance/alarm", &json!({"action": "GET"}), true).await?;
        let mut out = Vec::new();
        if let Value::Array(alarms) = &v["alarms"] {
            for a in alarms {
                out.push(a["alarm"].as_str().unwrap_or("NOSPACE").to_string());
            }
        }
        Ok(out)
    }

    /// Drops the history before `revision` (superseded values are freed).
    pub async fn compact(&self, revision: u64) -> Result<(), EtcdError> {
        match self.call("/v3/kv/compaction", &json!({"revision": revision.to_string()}), true).await
        {
            Ok(_) | Err(EtcdError::Compacted { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Opens a watch of every key under `prefix` from `start`, at the member that answers
    /// first. `prev_kv`: with each change the value before it (costs etcd a second copy of
    /// every value; the mirror knows them already, a history reader does not).
    pub async fn watch(
        &self,
        prefix: &[u8],
        start: u64,
        prev_kv: bool,
    ) -> Result<WatchStream, EtcdError> {
        let body = json!({"create_request": {
            "key": b64::encode(prefix),
            "range_end": b64::encode(&prefix_end(prefix)),
            "start_revision": start.to_string(),
            "prev_kv": prev_kv,
        }});
        let first = self.preferred.load(Ordering::Relaxed);
        let n = self.endpoints.len();
        let mut last = String::new();
        for i in 0..n {
            let url = &self.endpoints[(first + i) % n];
            let req = Self::request(url, "/v3/watch", &body).map_err(EtcdError::Refused)?;
            match tokio::time::timeout(REQUEST_TIMEOUT, self.http.request(req)).await {
                Ok(Ok(resp)) if resp.status().is_success() => {
                    return Ok(WatchStream {
                        body: resp.into_body(),
                        buffer: Vec::new(),
                        url: url.clone(),
                    });
                }
                Ok(Ok(resp)) => last = format!("{url}: {}", resp.status()),
                Ok(Err(e)) => last = format!("{url}: {e}"),
                Err(_) => last = format!("{url}: no answer within {REQUEST_TIMEOUT:?}"),
            }
        }
        Err(EtcdError::Unavailable { tried: self.endpoints.join(","), last })
    }

    fn protocol(&self, reason: String) -> EtcdError {
        let url =
            self.endpoints[self.preferred.load(Ordering::Relaxed) % self.endpoints.len()].clone();
        EtcdError::Protocol { url, reason }
    }
}

/// The largest watch message accepted (etcd caps a request at 1.5 MiB; a message with many
/// events with their previous values can be a few times that).
const WATCH_LINE_LIMIT: usize = 64 << 20;

impl WatchStream {
    /// The next message; `None` when the stream ended.
    pub async fn next(&mut self) -> Option<Result<WatchMessage, String>> {
        loop {
            if let Some(pos) = self.buffer.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buffer.drain(..=pos).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(parse_watch_line(&line));
            }
            if self.buffer.len() > WATCH_LINE_LIMIT {
                return Some(Err(format!("a watch message from {} is too large", self.url)));
            }
            match self.body.frame().await {
                None => {
                    if self.buffer.iter().all(u8::is_ascii_whitespace) {
                        return None;
                    }
                    let line = std::mem::take(&mut self.buffer);
                    return Some(parse_watch_line(&line));
                }
                Some(Err(e)) => return Some(Err(format!("{}: {e}", self.url))),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error: Value,
}

fn parse_watch_line(line: &[u8]) -> Result<WatchMessage, String> {
    let line: Line = serde_json::from_slice(line).map_err(|e| format!("watch message: {e}"))?;
    if !line.error.is_null() {
        return Ok(WatchMessage::Canceled(line.error["message"].as_str().unwrap_or("").into()));
    }
    let r = &line.result;
    let compacted = num(&r["compact_revision"]);
    if compacted > 0 {
        return Ok(WatchMessage::Compacted(compacted));
    }
    if r["canceled"].as_bool().unwrap_or(false) {
        let why = r["cancel_reason"].as_str().unwrap_or("canceled by etcd").to_string();
        return Ok(WatchMessage::Canceled(why));
    }
    if r["created"].as_bool().unwrap_or(false) {
        return Ok(WatchMessage::Created);
    }
    let mut events = Vec::new();
    if let Value::Array(items) = &r["events"] {
        for e in items {
            let prev = match &e["prev_kv"] {
                Value::Null => None,
                p => Some(kv_of(p)?),
            };
            events.push(WatchEvent {
                deleted: e["type"].as_str() == Some("DELETE"),
                kv: kv_of(&e["kv"])?,
                prev,
            });
        }
    }
    Ok(WatchMessage::Events { revision: num(&r["header"]["revision"]), events })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_after_its_last_key() {
        assert_eq!(prefix_end(b"/tartan/"), b"/tartan0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }

    #[test]
    fn watch_lines_as_etcd_3_4_writes_them() {
        let created = br#"{"result":{"header":{"revision":"2"},"created":true}}"#;
        assert!(matches!(parse_watch_line(created), Ok(WatchMessage::Created)));
        let compacted =
            br#"{"result":{"header":{"raft_term":"2"},"canceled":true,"compact_revision":"7"}}"#;
        assert!(matches!(parse_watch_line(compacted), Ok(WatchMessage::Compacted(7))));
        let put = br#"{"result":{"header":{"revision":"3"},"events":[{"kv":{"key":"L3QvYQ==","create_revision":"2","mod_revision":"3","version":"2","value":"aGVsbG8="},"prev_kv":{"key":"L3QvYQ==","create_revision":"2","mod_revision":"2","version":"1","value":"aGVsbG8="}}]}}"#;
        let Ok(WatchMessage::Events { revision, events }) = parse_watch_line(put) else {
            panic!("events")
        };
        assert_eq!(revision, 3);
        assert_eq!(events[0].kv.key, b"/t/a");
        assert_eq!(events[0].kv.value, b"hello");
        assert!(!events[0].deleted);
        assert_eq!(events[0].prev.as_ref().map(|p| p.mod_revision), Some(2));
        let del = br#"{"result":{"header":{"revision":"4"},"events":[{"type":"DELETE","kv":{"key":"L3QvYQ==","mod_revision":"4"}}]}}"#;
        let Ok(WatchMessage::Events { events, .. }) = parse_watch_line(del) else { panic!("del") };
        assert!(events[0].deleted && events[0].prev.is_none());
        assert!(parse_watch_line(b"{not json").is_err());
        assert!(parse_watch_line(br#"{"result":{"events":[{"kv":{"key":"***"}}]}}"#).is_err());
    }

    #[test]
    fn gateway_errors_are_sorted_by_what_to_do_next() {
        let s = hyper::StatusCode::SERVICE_UNAVAILABLE;
        let body =
            |code: u32, m: &str| format!(r#"{{"error":"{m}","message":"{m}","code":{code}}}"#);
        assert!(matches!(
            classify("u", s, body(14, "etcdserver: no leader").as_bytes()),
            Attempt::NotSent(_)
        ));
        assert!(matches!(
            classify("u", s, body(14, "etcdserver: request timed out").as_bytes()),
            Attempt::MaybeSent(_)
        ));
        assert!(matches!(
            classify("u", s, body(8, "etcdserver: mvcc: database space exceeded").as_bytes()),
            Attempt::Failed(EtcdError::NoSpace(_))
        ));
        let bad = hyper::StatusCode::BAD_REQUEST;
        assert!(matches!(
            classify(
                "u",
                bad,
                body(3, "etcdserver: too many operations in txn request").as_bytes()
            ),
            Attempt::Failed(EtcdError::Refused(_))
        ));
    }
}
