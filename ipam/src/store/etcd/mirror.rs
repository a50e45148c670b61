//! One API server's copy of the datastore in etcd, fed by the watch (pure: no I/O).
//!
//! The mirror holds every resource, block and affinity as of [`Mirror::revision`], the last
//! `EVENTS_KEPT` watch events (resources and affinities, as the API streams them), and the
//! block and affinity changes the IPAM has not applied to its view yet. It changes only from
//! committed revisions, in order, so what it serves never runs ahead of etcd.

use std::collections::{BTreeMap, VecDeque};

use crate::resources::{Kind, RawResource};
use crate::store::{Change, Event, EventType, StoreError, Versioned};

use super::client::{Kv, WatchEvent};

/// Events kept for watchers of this server.
pub const EVENTS_KEPT: usize = 50_000;

/// Where a key belongs, under the prefix.
#[derive(Debug, PartialEq, Eq)]
pub enum Key<'a> {
    /// `resources/<Kind>/<name>`
    Resource(&'a str),
    /// `ipam/blocks/<cidr>`
    Block(&'a str),
    /// `ipam/affinities/<node>/<cidr>`
    Affinity(&'a str),
    Other,
}

pub const RESOURCES: &str = "resources/";
pub const BLOCKS: &str = "ipam/blocks/";
pub const AFFINITIES: &str = "ipam/affinities/";
/// Bumped by every pool write: a pool validated against the pools at revision R is written
/// only if this did not move after R.
pub const POOLS_GUARD: &str = "meta/pools";
/// Bumped by every block claim: a pool is deleted only if no block was claimed since its
/// blocks were checked.
pub const CLAIMS_GUARD: &str = "meta/claims";
/// Present while `tartanctl datastore migrate` copies into this prefix.
pub const READ_ONLY: &str = "meta/read-only";
/// Written by barriers: its revisions reach this prefix's watch (see `EtcdClient::fence`).
pub const FENCE: &str = "meta/fence";

pub fn classify<'a>(prefix: &str, key: &'a [u8]) -> Key<'a> {
    let Ok(key) = std::str::from_utf8(key) else { return Key::Other };
    let Some(rest) = key.strip_prefix(prefix) else { return Key::Other };
    if let Some(r) = rest.strip_prefix(RESOURCES) {
        Key::Resource(r)
    } else if let Some(b) = rest.strip_prefix(BLOCKS) {
        Key::Block(b)
    } else if let Some(a) = rest.strip_prefix(AFFINITIES) {
        Key::Affinity(a)
    } else {
        Key::Other
    }
}

/// A resource as stored (without `resourceVersion`) read back with its version.
pub fn resource_of(kv: &Kv) -> Result<RawResource, StoreError> {
    let mut r: RawResource = serde_json::from_slice(&kv.value)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", String::from_utf8_lossy(&kv.key))))?;
    r.metadata.resource_version = Some(kv.mod_revision.to_string());
    Ok(r)
}

#[derive(Debug, Default)]
pub struct Mirror {
    /// Every revision up to this one is applied.
    pub revision: u64,
    /// Watchers may resume from any revision at or after this one.
    pub oldest: u64,
    pub resources: BTreeMap<String, RawResource>,
    pub blocks: BTreeMap<String, Versioned>,
    pub affinities: BTreeMap<String, RawResource>,
    pub events: VecDeque<Event>,
    pub changes: Vec<Change>,
    /// Watch event batches and list reloads applied (for metrics).
    pub reloads: u64,
}

impl Mirror {
    /// Replaces everything with a listing at `revision` (start, or after a compaction cut the
    /// watch): watchers from before it get 410 and list again once.
    pub fn load(&mut self, prefix: &str, kvs: &[Kv], revision: u64) -> Result<(), StoreError> {
        let had_state = self.revision > 0;
        self.resources.clear();
        self.blocks.clear();
        self.affinities.clear();
        for kv in kvs {
            match classify(prefix, &kv.key) {
                Key::Resource(k) => {
                    self.resources.insert(k.to_string(), resource_of(kv)?);
                }
                Key::Block(k) => {
                    let v = Versioned { bytes: kv.value.as_slice().into(), rev: kv.mod_revision };
                    self.blocks.insert(k.to_string(), v);
                }
                Key::Affinity(k) => {
                    self.affinities.insert(k.to_string(), resource_of(kv)?);
                }
                Key::Other => {}
            }
        }
        self.revision = revision;
        self.oldest = revision;
        self.events.clear();
        if had_state {
            self.reloads += 1;
            self.changes.clear();
            self.changes.push(Change::Reload);
        }
        Ok(())
    }

    /// Applies a batch of watch events (one or more whole revisions, up to `revision`).
    pub fn apply(
        &mut self,
        prefix: &str,
        revision: u64,
        events: &[WatchEvent],
    ) -> Result<(), StoreError> {
        for e in events {
            let rev = if e.kv.mod_revision > 0 { e.kv.mod_revision } else { revision };
            match classify(prefix, &e.kv.key) {
                Key::Resource(k) => {
                    let event = self.resource_event(k, e, rev, true)?;
                    self.push(event);
                }
                Key::Affinity(k) => {
                    let event = self.resource_event(k, e, rev, false)?;
                    let spec = (!e.deleted).then(|| event.object.spec.clone());
                    self.changes.push(Change::Affinity { key: k.to_string(), spec });
                    self.push(event);
                }
                Key::Block(k) => {
                    let value = (!e.deleted).then(|| Versioned {
                        bytes: e.kv.value.as_slice().into(),
                        rev: e.kv.mod_revision,
                    });
                    match &value {
                        Some(v) => self.blocks.insert(k.to_string(), v.clone()),
                        None => self.blocks.remove(k),
                    };
                    self.changes.push(Change::Block { key: k.to_string(), value });
                }
                Key::Other => {}
            }
        }
        self.revision = self.revision.max(revision);
        Ok(())
    }

    /// Updates a resource map from one event and returns the event as the API streams it.
    fn resource_event(
        &mut self,
        k: &str,
        e: &WatchEvent,
        rev: u64,
        resource: bool,
    ) -> Result<Event, StoreError> {
        let map = if resource { &mut self.resources } else { &mut self.affinities };
        if e.deleted {
            let mut object = match (&e.prev, map.remove(k)) {
                (Some(prev), _) => resource_of(prev)?,
                (None, Some(known)) => known,
                (None, None) => {
                    let (kind, name) = k.split_once('/').unwrap_or(("", k));
                    let kind = Kind::lookup(kind).unwrap_or(Kind::BlockAffinity);
                    RawResource::new(kind, name, serde_json::Value::Null)
                }
            };
            object.metadata.resource_version = Some(rev.to_string());
            return Ok(Event { revision: rev, kind: EventType::Deleted, object });
        }
        let object = resource_of(&e.kv)?;
        let kind = if e.kv.version == 1 { EventType::Added } else { EventType::Modified };
        map.insert(k.to_string(), object.clone());
        Ok(Event { revision: rev, kind, object })
    }

    /// The API event of one historical watch event (resources and affinities only), for a
    /// watcher resuming from before this mirror's start.
    pub fn history_event(prefix: &str, e: &WatchEvent) -> Result<Option<Event>, StoreError> {
        let k = match classify(prefix, &e.kv.key) {
            Key::Resource(k) | Key::Affinity(k) => k,
            Key::Block(_) | Key::Other => return Ok(None),
        };
        let mut scratch = Mirror::default();
        let resource = matches!(classify(prefix, &e.kv.key), Key::Resource(_));
        scratch.resource_event(k, e, e.kv.mod_revision, resource).map(Some)
    }

    fn push(&mut self, event: Event) {
        self.events.push_back(event);
        while self.events.len() > EVENTS_KEPT {
            if let Some(old) = self.events.pop_front() {
                self.oldest = self.oldest.max(old.revision);
            }
        }
    }

    /// Events after `since`, at most about `limit` (0: all), never splitting a revision.
    pub fn events_since(&self, since: u64, limit: usize) -> Result<Vec<Event>, StoreError> {
        if since < self.oldest && since < self.revision {
            return Err(StoreError::Gone { since, oldest: self.oldest });
        }
        let start = self.events.partition_point(|e| e.revision <= since);
        let mut out: Vec<Event> = Vec::new();
        for e in self.events.range(start..) {
            if limit > 0
                && out.len() >= limit
                && out.last().is_some_and(|l| l.revision != e.revision)
            {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kv(key: &str, value: serde_json::Value, rev: u64, version: u64) -> Kv {
        Kv {
            key: key.as_bytes().to_vec(),
            value: serde_json::to_vec(&value).unwrap_or_default(),
            create_revision: rev + 1 - version,
            mod_revision: rev,
            version,
        }
    }

    fn node(name: &str) -> serde_json::Value {
        json!({"apiVersion": "tartan/v1", "kind": "Node", "metadata": {"name": name}, "spec": {}})
    }

    #[test]
    fn watch_events_become_api_events_with_their_revisions() {
        let mut m = Mirror::default();
        m.load("/t/", &[kv("/t/resources/Node/a", node("a"), 5, 1)], 7).expect("load");
        assert_eq!(m.resources["Node/a"].metadata.resource_version.as_deref(), Some("5"));
        let added = WatchEvent {
            deleted: false,
            kv: kv("/t/resources/Node/b", node("b"), 8, 1),
            prev: None,
        };
        let changed = WatchEvent {
            deleted: false,
            kv: kv("/t/resources/Node/b", node("b"), 9, 2),
            prev: Some(kv("/t/resources/Node/b", node("b"), 8, 1)),
        };
        let gone = WatchEvent {
            deleted: true,
            kv: Kv {
                key: b"/t/resources/Node/a".to_vec(),
                value: vec![],
                create_revision: 0,
                mod_revision: 10,
                version: 0,
            },
            prev: Some(kv("/t/resources/Node/a", node("a"), 5, 1)),
        };
        m.apply("/t/", 8, &[added]).expect("8");
        m.apply("/t/", 9, &[changed]).expect("9");
        m.apply("/t/", 10, &[gone]).expect("10");
        let kinds: Vec<_> =
            m.events_since(7, 0).expect("events").iter().map(|e| (e.revision, e.kind)).collect();
        assert_eq!(
            kinds,
            [(8, EventType::Added), (9, EventType::Modified), (10, EventType::Deleted)]
        );
        let deleted = &m.events_since(9, 0).expect("events")[0];
        assert_eq!(deleted.object.metadata.name, "a");
        assert_eq!(deleted.object.metadata.resource_version.as_deref(), Some("10"));
        assert!(matches!(m.events_since(3, 0), Err(StoreError::Gone { .. })));
        assert!(m.events_since(10, 0).expect("none").is_empty());
    }

    #[test]
    fn a_limit_never_splits_one_revision() {
        let mut m = Mirror::default();
        m.load("/t/", &[], 1).expect("load");
        let batch: Vec<WatchEvent> = (0..3)
            .map(|i| WatchEvent {
                deleted: false,
                kv: kv(&format!("/t/resources/Node/n{i}"), node(&format!("n{i}")), 2, 1),
                prev: None,
            })
            .collect();
        m.apply("/t/", 2, &batch).expect("apply");
        m.apply(
            "/t/",
            3,
            &[WatchEvent {
                deleted: false,
                kv: kv("/t/resources/Node/z", node("z"), 3, 1),
                prev: None,
            }],
        )
        .expect("apply");
        assert_eq!(m.events_since(1, 1).expect("events").len(), 3);
    }

    #[test]
    fn block_changes_queue_for_the_ipam_and_a_reload_replaces_them() {
        let mut m = Mirror::default();
        m.load("/t/", &[], 1).expect("load");
        let put = WatchEvent {
            deleted: false,
            kv: kv("/t/ipam/blocks/10.0.0.0/26", json!({}), 2, 1),
            prev: None,
        };
        m.apply("/t/", 2, &[put]).expect("apply");
        assert!(
            matches!(&m.changes[..], [Change::Block { key, value: Some(v) }] if key == "10.0.0.0/26" && v.rev == 2)
        );
        m.load("/t/", &[], 9).expect("reload");
        assert!(matches!(&m.changes[..], [Change::Reload]));
        assert!(matches!(m.events_since(2, 0), Err(StoreError::Gone { .. })));
        assert_eq!(classify("/t/", b"/t/meta/pools"), Key::Other);
        assert_eq!(classify("/t/", b"/u/resources/Node/a"), Key::Other);
    }
}
