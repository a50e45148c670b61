//! `GET /v1/watch?since=<revision>[&kinds=ippools,nodes]`: every change after `since`, as
//! newline-delimited JSON events (`{"revision", "type": ADDED|MODIFIED|DELETED, "object"}`),
//! then new ones as they happen. A `BOOKMARK` line every 10 s carries the revision the stream
//! has reached, so a client can resume from it and notice a dead connection. A `since` older
//! than the kept history is answered 410: list again and watch from the list's revision.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::watch;

use super::AppState;
use super::error::AppError;
use crate::resources::Kind;
use crate::store::{Event, Store, StoreError};

const HEARTBEAT: Duration = Duration::from_secs(10);

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct WatchQuery {
    since: Option<u64>,
    kinds: Option<String>,
}

struct Watcher {
    store: Arc<Store>,
    rx: watch::Receiver<u64>,
    last: u64,
    kinds: Vec<Kind>,
    pending: VecDeque<Bytes>,
    done: bool,
}

/// An event's line, its secrets hidden.
fn event_line(e: &Event) -> Bytes {
    line(&serde_json::to_value(super::secrets::redact_event(e)).unwrap_or_default())
}

fn line(value: &serde_json::Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

/// Whether an event is of a kind the watcher asked for (all when it named none).
fn wanted(kinds: &[Kind], e: &Event) -> bool {
    kinds.is_empty() || Kind::lookup(&e.object.kind).is_some_and(|k| kinds.contains(&k))
}

impl Watcher {
    async fn next(mut self) -> Option<(Result<Bytes, Infallible>, Watcher)> {
        loop {
            if let Some(l) = self.pending.pop_front() {
                return Some((Ok(l), self));
            }
            if self.done {
                return None;
            }
            self.rx.borrow_and_update();
            let reached = self.store.revision();
            match self.store.events_since(self.last, 256) {
                Ok(events) if !events.is_empty() => {
                    for e in events {
                        self.last = e.revision;
                        if wanted(&self.kinds, &e) {
                            self.pending.push_back(event_line(&e));
                        }
                    }
                    continue;
                }
                Ok(_) => self.last = self.last.max(reached),
                Err(e) => {
                    let err = AppError::from(e);
                    self.pending.push_back(line(
                        &serde_json::json!({"type": "ERROR", "error": err.code, "message": err.message}),
                    ));
                    self.done = true;
                    continue;
                }
            }
            tokio::select! {
                changed = self.rx.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = tokio::time::sleep(HEARTBEAT) => {
                    self.pending.push_back(line(&serde_json::json!({"type": "BOOKMARK", "revision": self.last})));
                }
            }
        }
    }
}

pub async fn watch(
    State(state): State<AppState>,
    caller: super::auth::Caller,
    query: Result<Query<WatchQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, AppError> {
    let Query(query) = query?;
    let store = state.0.store.clone();
    let since = query.since.unwrap_or_else(|| store.revision());
    let mut kinds = Vec::new();
    for name in query.kinds.iter().flat_map(|k| k.split(',')).filter(|k| !k.is_empty()) {
        kinds.push(
            Kind::lookup(name)
                .ok_or_else(|| AppError::invalid(format!("kinds: unknown kind {name:?}")))?,
        );
    }
    // Credentials are the admin's business.
    if caller != super::auth::Caller::Admin {
        if kinds.contains(&Kind::NodeCredential) {
            return Err(super::auth::forbidden("a node credential cannot watch NodeCredentials"));
        }
        if kinds.is_empty() {
            kinds = Kind::all().filter(|k| *k != Kind::NodeCredential).collect();
        }
    }
    if since > store.revision() {
        // On etcd this server may lag the one the watcher came from: catch up first.
        if store.is_shared() {
            let s = store.clone();
            tokio::task::spawn_blocking(move || s.barrier()).await.map_err(|e| {
                AppError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.to_string())
            })??;
        }
        let now = store.revision();
        if since > now {
            return Err(AppError::new(
                StatusCode::GONE,
                "gone",
                format!(
                    "since={since} is ahead of the datastore (revision {now}): it was restored or \
                     replaced; list again and watch from the list's revision"
                ),
            ));
        }
    }
    // The first line says where the stream starts, so a client knows it is connected.
    let mut pending =
        VecDeque::from([line(&serde_json::json!({"type": "BOOKMARK", "revision": since}))]);
    let mut last = since;
    match store.events_since(since, 1) {
        Ok(_) => {}
        // On etcd, a watcher resuming here from before this server started (it was on another
        // server) gets the changes in between from etcd's history, unless it was compacted.
        Err(StoreError::Gone { .. }) if store.etcd().is_some() => {
            if let Some(etcd) = store.etcd() {
                let (history, upto) = etcd.history(since).await?;
                for e in history.iter().filter(|e| wanted(&kinds, e)) {
                    pending.push_back(event_line(e));
                }
                last = upto;
            }
        }
        Err(e) => return Err(e.into()),
    }
    let watcher = Watcher { rx: store.subscribe(), store, last, kinds, pending, done: false };
    let stream = futures_util::stream::unfold(watcher, Watcher::next);
    Ok(([(CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(stream)).into_response())
}
