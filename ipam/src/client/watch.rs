//! The change stream: `/v1/watch?since=REV`, one JSON event per line, read as it arrives in
//! whatever pieces the connection delivers. A watch opens on the first server that answers
//! (a revision means the same on every server of one datastore); it ends when the server goes,
//! falls silent past three heartbeats, or sends a line that is not an event, and the caller
//! resumes from the last revision it saw.

use std::time::Duration;

use http_body_util::BodyExt;

use super::{Client, ClientError, Method, TIMEOUT, api_error};

/// A watch stream with nothing for this long (three missed BOOKMARKs) is taken for dead.
const WATCH_SILENCE: Duration = Duration::from_secs(30);
/// The longest event line accepted (a resource is at most 1 MiB).
const MAX_WATCH_LINE: usize = 4 << 20;

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

impl Client {
    /// Opens a watch stream from `since`, of the kinds listed (comma-separated; all if empty).
    /// A revision the server no longer has is [`ClientError::Api`] with status 410: list again.
    pub async fn watch(&self, since: u64, kinds: &str) -> Result<Watch, ClientError> {
        let path = if kinds.is_empty() {
            format!("/v1/watch?since={since}")
        } else {
            format!("/v1/watch?since={since}&kinds={}", super::encode(kinds))
        };
        let first = self.preferred.load(std::sync::atomic::Ordering::Relaxed);
        let mut last = None;
        for i in 0..self.servers.len() {
            let server = &self.servers[(first + i) % self.servers.len()];
            let req = self.build(server, &Method::GET, &path, None, &[])?;
            let resp = match tokio::time::timeout(TIMEOUT, self.http.request(req)).await {
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) => {
                    let reason = e.to_string();
                    last = Some(ClientError::Unreachable { url: server.url.clone(), reason });
                    continue;
                }
                Err(_) => {
                    last = Some(ClientError::Timeout { url: server.url.clone() });
                    continue;
                }
            };
            let status = resp.status();
            let mut body = resp.into_body();
            if !status.is_success() {
                let bytes = match body.collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(_) => Default::default(),
                };
                let e = api_error(status, &bytes);
                if status == hyper::StatusCode::SERVICE_UNAVAILABLE {
                    last = Some(e);
                    continue;
                }
                return Err(e);
            }
            let (tx, rx) = tokio::sync::mpsc::channel(1024);
            let url = server.url.clone();
            tokio::spawn(async move {
                let mut buf: Vec<u8> = Vec::new();
                while let Ok(Some(frame)) = tokio::time::timeout(WATCH_SILENCE, body.frame()).await
                {
                    let Ok(frame) = frame else { break };
                    let Ok(data) = frame.into_data() else { continue };
                    buf.extend_from_slice(&data);
                    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        match serde_json::from_slice::<serde_json::Value>(&line) {
                            Ok(v) => {
                                if tx.send(v).await.is_err() {
                                    return;
                                }
                            }
                            // An event we cannot read would be a change missed: end the
                            // stream so that the caller resumes from its last revision.
                            Err(e) => {
                                tracing::warn!("watch on {url}: an event that is not JSON ({e})");
                                return;
                            }
                        }
                    }
                    if buf.len() > MAX_WATCH_LINE {
                        tracing::warn!(
                            "watch on {url}: an event longer than {MAX_WATCH_LINE} bytes"
                        );
                        return;
                    }
                }
            });
            return Ok(Watch { rx });
        }
        Err(last.unwrap_or_else(|| ClientError::BadAddress(String::new())))
    }
}
