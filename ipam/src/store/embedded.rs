//! The embedded backend: resources with revisions, the watch log, blocks and affinities in one
//! sled database on the API server's disk (one server; the default for a lab or a rack).
//!
//! Trees: `resources` (`<Kind>/<name>` → JSON), `events` (revision, big-endian → JSON event),
//! `blocks` (CIDR → JSON block), `affinities` (`<node>/<cidr>` → JSON).
//!
//! The event log is also the redo log: a resource or affinity write first appends its event
//! (which carries the whole new object), then writes the value. sled recovers a prefix of the
//! writes it was given, so after a crash only the last event can be missing its value, and
//! [`SledStore::open`] re-applies it. The revision is the last event's. sled transactions are
//! deliberately not used: in sled 0.34 they switch every operation to a global lock that
//! deadlocks against a concurrent `flush` (seen here under the IPAM benchmark).
//!
//! Blocks are changed only by compare-and-swap of the whole value ([`SledStore::cas_block`]).
//! Acknowledged writes are made durable with [`SledStore::flush`] before the API answers.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sled::IVec;
use tokio::sync::watch;

use super::{Event, EventType, Lost, StoreError, Versioned, WriteMode};
use crate::resources::{Kind, RawResource};
use crate::time;

/// Events kept for watchers; older ones are trimmed and a watch from before them gets 410.
const EVENTS_KEPT: u64 = 50_000;

/// The open database.
#[derive(Debug)]
pub struct SledStore {
    db: sled::Db,
    resources: sled::Tree,
    events: sled::Tree,
    blocks: sled::Tree,
    affinities: sled::Tree,
    /// Serialises revision assignment so events are written in revision order.
    writer: Mutex<()>,
    revision_tx: watch::Sender<u64>,
    /// Group commit: tickets handed to callers of `flush`, and the highest ticket on disk.
    tickets: AtomicU64,
    flushed: AtomicU64,
    flusher: tokio::sync::Mutex<()>,
}

fn key_of(kind: Kind, name: &str) -> String {
    format!("{}/{name}", kind.info().kind)
}

/// Whether opening failed because another holder has the database's lock.
fn is_locked(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

impl SledStore {
    /// Opens (or creates) the database in `dir`.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        // The lock on the database is let go only when its last user is gone: sled's flusher
        // thread outlives a dropped `Db` for a moment, so a store reopened at once in the same
        // process (or just after its previous owner exited) waits a little for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let db = loop {
            let opened = sled::Config::new()
                .path(dir.join("db"))
                .cache_capacity(64 << 20)
                .mode(sled::Mode::HighThroughput)
                .open();
            match opened {
                Ok(db) => break db,
                Err(e) if is_locked(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(source) => {
                    return Err(StoreError::Open { path: dir.display().to_string(), source });
                }
            }
        };
        let store = SledStore {
            resources: db.open_tree("resources")?,
            events: db.open_tree("events")?,
            blocks: db.open_tree("blocks")?,
            affinities: db.open_tree("affinities")?,
            writer: Mutex::new(()),
            revision_tx: watch::channel(0).0,
            tickets: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            flusher: tokio::sync::Mutex::new(()),
            db,
        };
        let rev = store.redo_last_event()?;
        store.revision_tx.send_replace(rev);
        Ok(store)
    }

    /// Re-applies the last event to its tree (a crash may have come between the two writes)
    /// and returns its revision.
    fn redo_last_event(&self) -> Result<u64, StoreError> {
        let Some((key, value)) = self.events.last()? else {
            return Ok(0);
        };
        let rev = u64::from_be_bytes(key.as_ref().try_into().map_err(corrupt)?);
        let event: Event = serde_json::from_slice(&value).map_err(corrupt)?;
        let (tree, tree_key, stored) = if event.object.kind == Kind::BlockAffinity.info().kind {
            let node = event.object.spec["node"].as_str().unwrap_or_default();
            let cidr = event.object.spec["cidr"].as_str().unwrap_or_default();
            let spec = serde_json::to_vec(&event.object.spec).map_err(corrupt)?;
            (&self.affinities, format!("{node}/{cidr}"), spec)
        } else {
            let kind =
                Kind::lookup(&event.object.kind).ok_or_else(|| corrupt("event of unknown kind"))?;
            let object = serde_json::to_vec(&event.object).map_err(corrupt)?;
            (&self.resources, key_of(kind, &event.object.metadata.name), object)
        };
        match event.kind {
            EventType::Deleted => {
                tree.remove(tree_key)?;
            }
            EventType::Added | EventType::Modified => {
                tree.insert(tree_key, stored)?;
            }
        }
        Ok(rev)
    }

    /// The revision of the last write.
    pub fn revision(&self) -> u64 {
        *self.revision_tx.borrow()
    }

    /// A receiver that sees every new revision (for watchers).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision_tx.subscribe()
    }

    /// Makes every write finished before the call durable. Group commit: callers queue, and
    /// one fsync covers every caller that arrived before it started. Runs on tokio's blocking
    /// pool, not sled's `flush_async`, whose small pool deadlocks when every thread of it
    /// waits in a flush for an IO job queued behind them (seen under the IPAM benchmark).
    pub async fn flush(&self) -> Result<(), StoreError> {
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        let _flusher = self.flusher.lock().await;
        if self.flushed.load(Ordering::SeqCst) >= ticket {
            return Ok(());
        }
        let target = self.tickets.load(Ordering::SeqCst);
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| StoreError::Corrupt(format!("flush task failed: {e}")))??;
        self.flushed.fetch_max(target, Ordering::SeqCst);
        Ok(())
    }

    /// Blocking flush, for tests and shutdown.
    pub fn flush_now(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    pub fn get(&self, kind: Kind, name: &str) -> Result<Option<RawResource>, StoreError> {
        match self.resources.get(key_of(kind, name))? {
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
        let stored =
            existing.as_ref().map(|e| e.metadata.resource_version.clone().unwrap_or_default());
        let kind_of_event = super::check_put(
            kind,
            &name,
            stored.as_deref(),
            res.metadata.resource_version.as_deref(),
            mode,
        )?;
        res.metadata.creation_timestamp = existing
            .as_ref()
            .and_then(|e| e.metadata.creation_timestamp.clone())
            .or_else(|| Some(time::rfc3339(time::now_unix())));
        let rev = self.revision() + 1;
        res.metadata.resource_version = Some(rev.to_string());
        let value = serde_json::to_vec(&res).map_err(corrupt)?;
        self.commit(
            rev,
            &self.resources,
            key_of(kind, &name).as_bytes(),
            Some(value),
            kind_of_event,
            res.clone(),
        )?;
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
        super::check_delete(kind, name, &current, expected)?;
        let rev = self.revision() + 1;
        existing.metadata.resource_version = Some(rev.to_string());
        self.commit(
            rev,
            &self.resources,
            key_of(kind, name).as_bytes(),
            None,
            EventType::Deleted,
            existing.clone(),
        )?;
        Ok(existing)
    }

    /// Writes an affinity (or removes it, `value == None`) with its event.
    pub fn write_affinity(
        &self,
        tree_key: &[u8],
        value: Option<Vec<u8>>,
        kind: EventType,
        object: RawResource,
    ) -> Result<(), StoreError> {
        let _w = self.writer.lock().map_err(|_| corrupt("writer lock poisoned"))?;
        let rev = self.revision() + 1;
        let mut object = object;
        object.metadata.resource_version = Some(rev.to_string());
        self.commit(rev, &self.affinities, tree_key, value, kind, object)
    }

    /// The event first (the redo record), then the value. Callers hold `writer`.
    fn commit(
        &self,
        rev: u64,
        tree: &sled::Tree,
        tree_key: &[u8],
        value: Option<Vec<u8>>,
        kind: EventType,
        object: RawResource,
    ) -> Result<(), StoreError> {
        let event = serde_json::to_vec(&Event { revision: rev, kind, object }).map_err(corrupt)?;
        self.events.insert(rev.to_be_bytes(), event)?;
        match value {
            Some(v) => tree.insert(tree_key, v)?,
            None => tree.remove(tree_key)?,
        };
        self.after_commit(rev)
    }

    fn after_commit(&self, rev: u64) -> Result<(), StoreError> {
        self.revision_tx.send_replace(rev);
        if rev % 1000 == 0 && rev > EVENTS_KEPT {
            let cutoff = (rev - EVENTS_KEPT).to_be_bytes();
            let old: Vec<IVec> = self.events.range(..cutoff).keys().collect::<Result<_, _>>()?;
            for k in old {
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
    /// new `None`: delete). `Ok(Err(lost))` means someone else changed it first.
    pub fn cas_block(
        &self,
        cidr_key: &str,
        old: Option<&Versioned>,
        new: Option<Vec<u8>>,
    ) -> Result<Result<Versioned, Lost>, StoreError> {
        let new: Option<IVec> = new.map(IVec::from);
        let written = new.clone().unwrap_or_default();
        let result = self.blocks.compare_and_swap(cidr_key, old.map(|o| &o.bytes), new)?;
        Ok(result.map(|()| Versioned { bytes: written, rev: 0 }).map_err(|e| Lost {
            current: e.current.map(|bytes| Versioned { bytes, rev: 0 }),
            at: 0,
        }))
    }

    /// Every block as stored, by CIDR.
    pub fn scan_blocks(&self) -> Result<Vec<(String, Versioned)>, StoreError> {
        let mut out = Vec::new();
        for item in self.blocks.iter() {
            let (k, bytes) = item?;
            out.push((String::from_utf8_lossy(&k).into_owned(), Versioned { bytes, rev: 0 }));
        }
        Ok(out)
    }

    /// Every affinity's JSON.
    pub fn scan_affinities(&self) -> Result<Vec<IVec>, StoreError> {
        self.affinities.iter().values().collect::<Result<_, _>>().map_err(StoreError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Dir(std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_crash_between_an_event_and_its_value_is_redone_at_open() {
        let dir =
            Dir(std::env::temp_dir().join(format!("tartan-store-redo-{}", std::process::id())));
        let node = |labels: serde_json::Value| {
            let mut r = RawResource::new(Kind::Node, "n1", json!({}));
            r.metadata.labels = serde_json::from_value(labels).unwrap_or_default();
            r
        };
        {
            let store = SledStore::open(&dir.0).expect("open");
            store.put(Kind::Node, node(json!({"a": "1"})), WriteMode::Apply).expect("put");
            // The event of a second write lands; the crash takes its value.
            let mut next = node(json!({"a": "2"}));
            next.metadata.resource_version = Some("2".into());
            let event = Event { revision: 2, kind: EventType::Modified, object: next };
            store
                .events
                .insert(2u64.to_be_bytes(), serde_json::to_vec(&event).expect("json"))
                .expect("insert");
            store.flush_now().expect("flush");
        }
        let store = SledStore::open(&dir.0).expect("reopen");
        assert_eq!(store.revision(), 2);
        let n1 = store.get(Kind::Node, "n1").expect("get").expect("present");
        assert_eq!(n1.metadata.labels.get("a").map(String::as_str), Some("2"));
        assert_eq!(n1.metadata.resource_version.as_deref(), Some("2"));
        assert_eq!(store.events_since(0, 10).expect("events").len(), 2);
    }

    #[test]
    fn a_store_reopened_while_its_last_owner_lets_go_waits_for_the_lock() {
        let dir =
            Dir(std::env::temp_dir().join(format!("tartan-store-lock-{}", std::process::id())));
        let held = SledStore::open(&dir.0).expect("open");
        // Another holder keeps the lock for a moment, as sled's flusher does after a drop.
        let owner = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(held);
        });
        let started = std::time::Instant::now();
        let reopened = SledStore::open(&dir.0);
        owner.join().expect("owner");
        assert!(reopened.is_ok(), "{:?}", reopened.err());
        assert!(started.elapsed() >= std::time::Duration::from_millis(250), "it did wait");
    }
}
