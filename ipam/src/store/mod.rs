//! The datastore behind the API: resources with revisions, the watch log, IPAM blocks and
//! affinities — on one of two backends with one behaviour.
//!
//! - [`embedded`]: sled on the API server's disk (the default; one server).
//! - [`etcd`]: etcd v3, for several stateless API servers over a replicated cluster. Every
//!   write is one conditional transaction; reads and the watch log come from each server's
//!   own mirror of the prefix, fed by one etcd watch.
//!
//! [`Store`] is what the API and the IPAM hold. Its calls block (sled I/O, or a round trip to
//! etcd): async code calls them through `spawn_blocking`, except the memory-only reads
//! (`get`, `list`, `revision`, `events_since`) which never wait on I/O in either backend.

pub mod embedded;
pub mod etcd;

use std::path::Path;

use serde::{Deserialize, Serialize};
use sled::IVec;
use tokio::sync::watch;

use crate::resources::{Kind, RawResource};
use embedded::SledStore;
use etcd::{EtcdConfig, EtcdStore};

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
    #[error("etcd: {0}")]
    Etcd(#[from] etcd::EtcdError),
    /// Something else changed what this write was checked against; the caller retries.
    #[error("{0}; retry")]
    Raced(String),
    #[error("the datastore is read-only: {0}")]
    ReadOnly(String),
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

/// Whether a write may go ahead against what is stored (`existing`: the stored
/// `resourceVersion`, `None` when absent; `expected`: the one the caller sent), and the event
/// it makes. Both backends decide by this, before their own conditional write.
pub(crate) fn check_put(
    kind: Kind,
    name: &str,
    existing: Option<&str>,
    expected: Option<&str>,
    mode: WriteMode,
) -> Result<EventType, StoreError> {
    let name = || name.to_string();
    let event = match (existing, mode) {
        (Some(_), WriteMode::Create) => {
            return Err(StoreError::AlreadyExists { kind, name: name() });
        }
        (None, WriteMode::Replace) => return Err(StoreError::NotFound { kind, name: name() }),
        (Some(_), _) => EventType::Modified,
        (None, _) => EventType::Added,
    };
    match (expected, existing) {
        (Some(expected), Some(current)) => check_delete(kind, &name(), current, Some(expected))?,
        // Writing with a version to something that is gone: it was deleted meanwhile.
        (Some(_), None) if mode != WriteMode::Create => {
            return Err(StoreError::NotFound { kind, name: name() });
        }
        _ => {}
    }
    Ok(event)
}

/// Whether a delete (or a versioned write) may go ahead: `expected`, when given, must be the
/// stored `current` version.
pub(crate) fn check_delete(
    kind: Kind,
    name: &str,
    current: &str,
    expected: Option<&str>,
) -> Result<(), StoreError> {
    match expected {
        Some(expected) if expected != current => Err(StoreError::Conflict {
            kind,
            name: name.to_string(),
            expected: expected.to_string(),
            current: current.to_string(),
        }),
        _ => Ok(()),
    }
}

/// A stored block value and its version: sled compares the bytes, etcd the `mod_revision`
/// (`rev`, 0 on sled).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned {
    pub bytes: IVec,
    pub rev: u64,
}

/// A compare-and-swap someone else won: the value now (`None`: absent), and the store
/// revision it was read at (0 on sled).
#[derive(Clone, Debug)]
pub struct Lost {
    pub current: Option<Versioned>,
    pub at: u64,
}

/// A change to a block or an affinity made by another API server (etcd only), for the IPAM
/// to apply to its view in order.
#[derive(Clone, Debug)]
pub enum Change {
    Block {
        key: String,
        value: Option<Versioned>,
    },
    Affinity {
        key: String,
        spec: Option<serde_json::Value>,
    },
    /// The mirror was listed again (after a compaction cut the watch): reload everything.
    Reload,
}

#[derive(Debug)]
enum Backend {
    Sled(SledStore),
    Etcd(EtcdStore),
}

/// The open datastore.
#[derive(Debug)]
pub struct Store {
    backend: Backend,
}

impl Store {
    /// Opens (or creates) the sled database in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Ok(Store { backend: Backend::Sled(SledStore::open(dir)?) })
    }

    /// Connects to etcd, lists the prefix and starts the watch that keeps the mirror.
    pub async fn open_etcd(config: EtcdConfig) -> Result<Store, StoreError> {
        Ok(Store { backend: Backend::Etcd(EtcdStore::open(config).await?) })
    }

    /// `true` on etcd: other servers write too, the view follows the watch
    /// ([`Store::catch_up`]), and a claim is one transaction.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Etcd(_))
    }

    /// The etcd backend, for health and metrics.
    pub fn etcd(&self) -> Option<&EtcdStore> {
        match &self.backend {
            Backend::Etcd(e) => Some(e),
            Backend::Sled(_) => None,
        }
    }

    /// The revision of the last write this server knows of.
    pub fn revision(&self) -> u64 {
        match &self.backend {
            Backend::Sled(s) => s.revision(),
            Backend::Etcd(e) => e.revision(),
        }
    }

    /// A receiver that sees every new revision (for watchers).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        match &self.backend {
            Backend::Sled(s) => s.subscribe(),
            Backend::Etcd(e) => e.subscribe(),
        }
    }

    /// Makes every write finished before the call durable (etcd: already is).
    pub async fn flush(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.flush().await,
            Backend::Etcd(_) => Ok(()),
        }
    }

    /// Blocking flush, for tests and shutdown.
    pub fn flush_now(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.flush_now(),
            Backend::Etcd(_) => Ok(()),
        }
    }

    pub fn get(&self, kind: Kind, name: &str) -> Result<Option<RawResource>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.get(kind, name),
            Backend::Etcd(e) => Ok(e.get(kind, name)),
        }
    }

    /// Every resource of a kind, with the revision they were read at.
    pub fn list(&self, kind: Kind) -> Result<(Vec<RawResource>, u64), StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.list(kind),
            Backend::Etcd(e) => Ok(e.list(kind)),
        }
    }

    /// Writes a validated resource (`metadata.resourceVersion`, when set, must still be the
    /// stored one).
    pub fn put(
        &self,
        kind: Kind,
        res: RawResource,
        mode: WriteMode,
    ) -> Result<(RawResource, EventType), StoreError> {
        self.put_checked(kind, res, mode, None)
    }

    /// [`Store::put`] of a resource validated against the pools as listed at
    /// `pools_revision`: on etcd the write fails (`Raced`) if any pool changed since.
    pub fn put_checked(
        &self,
        kind: Kind,
        res: RawResource,
        mode: WriteMode,
        pools_revision: Option<u64>,
    ) -> Result<(RawResource, EventType), StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.put(kind, res, mode),
            Backend::Etcd(e) => e.put(kind, res, mode, pools_revision),
        }
    }

    /// Deletes a resource; `expected` guards against deleting a newer version.
    pub fn delete(
        &self,
        kind: Kind,
        name: &str,
        expected: Option<&str>,
    ) -> Result<RawResource, StoreError> {
        self.delete_checked(kind, name, expected, None)
    }

    /// [`Store::delete`] that fails (`Raced`) on etcd if any block was claimed after
    /// `claims_revision` (a pool deleted while a block of it was claimed elsewhere).
    pub fn delete_checked(
        &self,
        kind: Kind,
        name: &str,
        expected: Option<&str>,
        claims_revision: Option<u64>,
    ) -> Result<RawResource, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.delete(kind, name, expected),
            Backend::Etcd(e) => e.delete(kind, name, expected, claims_revision),
        }
    }

    /// Events after `since`, at most `limit` of them (0: all kept); never splits one
    /// revision's events.
    pub fn events_since(&self, since: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.events_since(since, if limit == 0 { usize::MAX } else { limit }),
            Backend::Etcd(e) => e.events_since(since, limit),
        }
    }

    /// Replaces a block's value if it still is `old` (`None`: create only if absent; new
    /// `None`: delete). `Ok(Err(lost))`: someone else changed it first.
    pub fn cas_block(
        &self,
        cidr_key: &str,
        old: Option<&Versioned>,
        new: Option<Vec<u8>>,
    ) -> Result<Result<Versioned, Lost>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.cas_block(cidr_key, old, new),
            Backend::Etcd(e) => e.cas_block(cidr_key, old, new),
        }
    }

    /// Writes an affinity (`value`: its JSON; `None` removes it) with its watch event.
    pub fn write_affinity(
        &self,
        key: &str,
        value: Option<Vec<u8>>,
        kind: EventType,
        object: RawResource,
    ) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sled(s) => {
                s.write_affinity(key.as_bytes(), value, kind, object)?;
                Ok(0)
            }
            Backend::Etcd(e) => e.write_affinity(key, value.is_some(), object),
        }
    }

    /// Claims a block in one transaction (etcd only): the block created only if absent,
    /// with its confirmed affinity. `Ok(Err(lost))`: someone else created it first.
    pub fn claim_block(
        &self,
        cidr_key: &str,
        block: Vec<u8>,
        affinity_key: &str,
        affinity: RawResource,
    ) -> Result<Result<Versioned, Lost>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => Err(StoreError::Corrupt("claim_block is for etcd".into())),
            Backend::Etcd(e) => e.claim_block(cidr_key, block, affinity_key, affinity),
        }
    }

    /// Deletes an empty block and its affinity in one transaction (etcd only).
    pub fn give_back_block(
        &self,
        cidr_key: &str,
        old: &Versioned,
        affinity_key: Option<&str>,
    ) -> Result<Result<Versioned, Lost>, StoreError> {
        match &self.backend {
            Backend::Sled(_) => Err(StoreError::Corrupt("give_back_block is for etcd".into())),
            Backend::Etcd(e) => e.give_back_block(cidr_key, old, affinity_key),
        }
    }

    /// Every block as stored, by CIDR.
    pub fn scan_blocks(&self) -> Result<Vec<(String, Versioned)>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s.scan_blocks(),
            Backend::Etcd(e) => Ok(e.scan_blocks()),
        }
    }

    /// Every affinity's JSON (the `Affinity` spec).
    pub fn scan_affinities(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        match &self.backend {
            Backend::Sled(s) => s
                .scan_affinities()?
                .iter()
                .map(|v| serde_json::from_slice(v).map_err(|e| StoreError::Corrupt(e.to_string())))
                .collect(),
            Backend::Etcd(e) => Ok(e.scan_affinities()),
        }
    }

    /// etcd: waits until this server's mirror holds every write acknowledged anywhere before
    /// the call (a linearizable barrier). sled: nothing to wait for.
    pub fn barrier(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(()),
            Backend::Etcd(e) => e.barrier(),
        }
    }

    /// etcd: waits until the mirror reached `revision` (a write of ours, seen by the watch).
    pub fn settle(&self, revision: u64) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sled(_) => Ok(()),
            Backend::Etcd(e) => e.wait_for(revision),
        }
    }

    /// The block and affinity changes the mirror saw since the last call, in order.
    pub fn take_changes(&self) -> Vec<Change> {
        match &self.backend {
            Backend::Sled(_) => Vec::new(),
            Backend::Etcd(e) => e.take_changes(),
        }
    }

    /// etcd: the revision at which the mirror last saw a block claimed (for pool deletion).
    pub fn claims_revision(&self) -> Option<u64> {
        match &self.backend {
            Backend::Sled(_) => None,
            Backend::Etcd(e) => Some(e.revision()),
        }
    }
}
