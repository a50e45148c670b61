//! sled storage: resources with revisions, the watch log, blocks and affinities.
//!
//! Trees: `resources` (`<Kind>/<name>` → JSON), `events` (revision, big-endian → JSON event),
//! `meta` (`revision`), `blocks` (CIDR → JSON block), `affinities` (`<node>/<cidr>` → JSON).
//! A resource write, its event and the revision counter change in one sled transaction, so the
//! watch log never misses or invents a change. Blocks are changed only by compare-and-swap of
//! the whole value ([`Store::cas_block`]). Acknowledged writes are made durable with
//! [`Store::flush`] before the API answers.

use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{IVec, Transactional};
use tokio::sync::watch;

use crate::resources::{Kind, RawResource};
use crate::time;

/// Events kept for watchers; older ones are trimmed and a watch from before them gets 410.
const EVENTS_KEPT: u64 = 50_000;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {name:?} not found")]
    NotFound { kind: Kind, name: String },
    #[error("{kind} {name:?} already exists")]
    AlreadyExists { kind: Kind, name: String },
    #[error(
        "{kind} {name:?} was changed by someone else (resourceVersion {expected}, now {current}); read it again and retry"
    )]
    Conflict { kind: Kind, name: String, expected: String, current: String },
    #[error(
        "revision {since} is too old: changes up to {oldest} are no longer kept; list again and watch from the list's revision"
    )]
    Gone { since: u64, oldest: u64 },
    #[error("the database at {path} is in use or unreadable: {source}")]
    Open { path: String, source: sled::Error },
    #[error("storage: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// One change, as the watch streams it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Event {
    pub revision: u64,
    #[serde(rename = "type")]
    pub kind: EventType,
    pub object: RawResource,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

/// How a write treats an existing resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteMode {
    /// Fail if it exists.
    Create,
    /// Fail if it does not exist.
    Replace,
    /// Create or replace.
    Apply,
}

/// The open database.
#[derive(Debug)]
pub struct Store {
    db: sled::Db,
    resources: sled::Tree,
    events: sled::Tree,
    meta: sled::Tree,
    pub(crate) blocks: sled::Tree,
    pub(crate) affinities: sled::Tree,
    /// Serialises revision assignment so events are written in revision order.
    writer: Mutex<()>,
    revision_tx: watch::Sender<u64>,
}

fn key(kind: Kind, name: &str) -> String {
    format!("{}/{name}", kind.info().kind)
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

impl Store {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(64 << 20)
            .open()
            .map_err(|source| StoreError::Open { path: dir.display().to_string(), source })?;
        let store = Store {
            resources: db.open_tree("resources")?,
            events: db.open_tree("events")?,
            meta: db.open_tree("meta")?,
            blocks: db.open_tree("blocks")?,
            affinities: db.open_tree("affinities")?,
            writer: Mutex::new(()),
            revision_tx: watch::channel(0).0,
            db,
        };
        let rev = store.read_revision()?;
        store.revision_tx.send_replace(rev);
        Ok(store)
    }

    fn read_revision(&self) -> Result<u64, StoreError> {
        match self.meta.get("revision")? {
            Some(v) => Ok(u64::from_be_bytes(v.as_ref().try_into().map_err(corrupt)?)),
            None => Ok(0),
        }
    }

    /// The revision of the last write.
    pub fn revision(&self) -> u64 {
        *self.revision_tx.borrow()
    }

    /// A receiver that sees every new revision (for watchers).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision_tx.subscribe()
    }

    /// Makes every write so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// Blocking flush, for tests and shutdown.
    pub fn flush_now(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    pub fn get(&self, kind: Kind, name: &str) -> Result<Option<RawResource>, StoreError> {
        match self.resources.get(key(kind, name))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(corrupt)?)),
            None => Ok(None),
        }
    }

    /// Every resource of a kind, with the revision they were read at.
    pub fn list(&self, kind: Kind) -> Result<(Vec<RawResource>, u64), StoreError> {
        let _w = self.writer.lock().map_err(|_| corrupt("writer lock poisoned"))?;
        let rev = self.revision();
        let prefix = format!("{}/", kind.info().kind);
        let mut out = Vec::new();
        for item in self.resources.scan_prefix(prefix) {
            let (_, v) = item?;
            out.push(serde_json::from_slice(&v).map_err(corrupt)?);
        }
        Ok((out, rev))
    }

    /// Writes a validated resource. `expected` is the `resourceVersion` the caller read, if any.
    pub fn put(
        &self,
        kind: Kind,
        mut res: RawResource,
        mode: WriteMode,
    ) -> Result<(RawResource, EventType), StoreError> {
        let _w = self.writer.lock().map_err(|_| corrupt("writer lock poisoned"))?;
        let name = res.metadata.name.clone();
        let existing = self.get(kind, &name)?;
        let kind_of_event = match (&existing, mode) {
            (Some(_), WriteMode::Create) => return Err(StoreError::AlreadyExists { kind, name }),
            (None, WriteMode::Replace) => return Err(StoreError::NotFound { kind, name }),
            (Some(_), _) => EventType::Modified,
            (None, _) => EventType::Added,
        };
        if let (Some(expected), Some(current)) = (&res.metadata.resource_version, &existing) {
            let now = current.metadata.resource_version.clone().unwrap_or_default();
            if *expected != now {
                return Err(StoreError::Conflict {
                    kind,
                    name,
                    expected: expected.clone(),
                    current: now,
                });
            }
        }
        if existing.is_none()
            && mode != WriteMode::Create
            && res.metadata.resource_version.is_some()
        {
            // Writing with a version to something that is gone: it was deleted meanwhile.
            return Err(StoreError::NotFound { kind, name });
        }
        res.metadata.creation_timestamp = existing
            .as_ref()
            .and_then(|e| e.metadata.creation_timestamp.clone())
            .or_else(|| Some(time::rfc3339(time::now_unix())));
        let rev = self.revision() + 1;
        res.metadata.resource_version = Some(rev.to_string());
        let value = serde_json::to_vec(&res).map_err(corrupt)?;
        self.commit(rev, Some((key(kind, &name), value)), None, kind_of_event, &res)?;
        Ok((res, kind_of_event))
    }

    /// Deletes a resource; `expected` guards against deleting a newer version.
    pub fn delete(
        &self,
        kind: Kind,
        name: &str,
        expected: Option<&str>,
    ) -> Result<RawResource, StoreError> {
        let _w = self.writer.lock().map_err(|_| corrupt("writer lock poisoned"))?;
        let Some(mut existing) = self.get(kind, name)? else {
            return Err(StoreError::NotFound { kind, name: name.to_string() });
        };
        let current = existing.metadata.resource_version.clone().unwrap_or_default();
        if let Some(expected) = expected {
            if expected != current {
                return Err(StoreError::Conflict {
                    kind,
                    name: name.to_string(),
                    expected: expected.to_string(),
                    current,
                });
            }
        }
        let rev = self.revision() + 1;
        existing.metadata.resource_version = Some(rev.to_string());
        self.commit(rev, None, Some(key(kind, name)), EventType::Deleted, &existing)?;
        Ok(existing)
    }

    /// Records an event for something stored elsewhere (affinities), together with its write
    /// in `tree`, atomically.
    pub(crate) fn put_with_event(
        &self,
        tree: &sled::Tree,
        tree_key: &[u8],
        value: Option<Vec<u8>>,
        kind: EventType,
        object: RawResource,
    ) -> Result<(), StoreError> {
        let _w = self.writer.lock().map_err(|_| corrupt("writer lock poisoned"))?;
        let rev = self.revision() + 1;
        let mut object = object;
        object.metadata.resource_version = Some(rev.to_string());
        let event = serde_json::to_vec(&Event { revision: rev, kind, object }).map_err(corrupt)?;
        let result: Result<(), TransactionError<()>> = (tree, &self.events, &self.meta)
            .transaction(|(t, events, meta)| {
                match &value {
                    Some(v) => t.insert(tree_key, v.as_slice())?,
                    None => t.remove(tree_key)?,
                };
                events.insert(&rev.to_be_bytes(), event.as_slice())?;
                meta.insert("revision", &rev.to_be_bytes())?;
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        result.map_err(|e| match e {
            TransactionError::Storage(s) => StoreError::Sled(s),
            TransactionError::Abort(()) => corrupt("transaction aborted"),
        })?;
        self.after_commit(rev)
    }

    fn commit(
        &self,
        rev: u64,
        insert: Option<(String, Vec<u8>)>,
        remove: Option<String>,
        kind: EventType,
        object: &RawResource,
    ) -> Result<(), StoreError> {
        let event = serde_json::to_vec(&Event { revision: rev, kind, object: object.clone() })
            .map_err(corrupt)?;
        let result: Result<(), TransactionError<()>> = (&self.resources, &self.events, &self.meta)
            .transaction(|(resources, events, meta)| {
                if let Some((k, v)) = &insert {
                    resources.insert(k.as_bytes(), v.as_slice())?;
                }
                if let Some(k) = &remove {
                    resources.remove(k.as_bytes())?;
                }
                events.insert(&rev.to_be_bytes(), event.as_slice())?;
                meta.insert("revision", &rev.to_be_bytes())?;
                Ok::<(), ConflictableTransactionError<()>>(())
            });
        result.map_err(|e| match e {
            TransactionError::Storage(s) => StoreError::Sled(s),
            TransactionError::Abort(()) => corrupt("transaction aborted"),
        })?;
        self.after_commit(rev)
    }

    fn after_commit(&self, rev: u64) -> Result<(), StoreError> {
        self.revision_tx.send_replace(rev);
        if rev % 1000 == 0 && rev > EVENTS_KEPT {
            let cutoff = (rev - EVENTS_KEPT).to_be_bytes();
            for item in self.events.range(..cutoff) {
                let (k, _) = item?;
                self.events.remove(k)?;
            }
        }
        Ok(())
    }

    /// Events after `since`, at most `limit` of them.
    pub fn events_since(&self, since: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        let oldest = match self.events.first()? {
            Some((k, _)) => u64::from_be_bytes(k.as_ref().try_into().map_err(corrupt)?),
            None => self.revision() + 1,
        };
        if since + 1 < oldest && since < self.revision() {
            return Err(StoreError::Gone { since, oldest: oldest - 1 });
        }
        let mut out = Vec::new();
        for item in self.events.range((since + 1).to_be_bytes()..).take(limit) {
            let (_, v) = item?;
            out.push(serde_json::from_slice(&v).map_err(corrupt)?);
        }
        Ok(out)
    }

    /// Replaces a block's value if it still is `old` (`None`: create only if absent;
    /// new `None`: delete). `Ok(Err(current))` means someone else changed it first.
    pub fn cas_block(
        &self,
        cidr_key: &str,
        old: Option<&IVec>,
        new: Option<Vec<u8>>,
    ) -> Result<Result<(), Option<IVec>>, StoreError> {
        let result = self.blocks.compare_and_swap(cidr_key, old, new)?;
        Ok(result.map_err(|e| e.current))
    }

    /// Every block as stored.
    pub fn scan_blocks(&self) -> impl Iterator<Item = Result<(IVec, IVec), sled::Error>> + '_ {
        self.blocks.iter()
    }
}
