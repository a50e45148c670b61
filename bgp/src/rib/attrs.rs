//! Interned attribute sets: every route that carries the same attributes and next hop points at
//! one shared copy by a 4-octet [`AttrId`], counted so the copy goes when its last route does.
//! A full table from one peer usually needs a few thousand sets, and the benchmark's million
//! routes need ten — so routes cost their prefix and a handle, not their attributes.

use std::hash::BuildHasher;
use std::net::Ipv4Addr;
use std::sync::Arc;

use hashbrown::HashTable;

use crate::hash::FoldBuildHasher;
use crate::types::{Asn, NextHop, Origin};
use crate::wire::PathAttributes;

/// Handle of an interned attribute set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrId(pub(crate) u32);

/// A route's attributes: the path attributes (their NEXT_HOP field unused) and the next hop,
/// from NEXT_HOP or MP_REACH_NLRI. `next_hop` is `None` for routes we originate: each peer gets
/// its own address when they are exported.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteAttrs {
    pub attrs: PathAttributes,
    pub next_hop: Option<NextHop>,
}

/// What the decision process reads from an attribute set, computed once when it is interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionKey {
    /// LOCAL_PREF, or the default of 100.
    pub local_pref: u32,
    pub as_path_len: usize,
    pub origin: Origin,
    /// MED, missing counted as 0 (RFC 4271 §9.1.2.2 c).
    pub med: u32,
    /// The neighbouring AS (first of the path); `None` for an empty path.
    pub neighbor_as: Option<Asn>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list_len: usize,
}

/// LOCAL_PREF when a route has none (RFC 4271 leaves it to configuration; 100 everywhere).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

impl DecisionKey {
    fn of(a: &RouteAttrs) -> DecisionKey {
        let p = &a.attrs;
        DecisionKey {
            local_pref: p.local_pref.unwrap_or(DEFAULT_LOCAL_PREF),
            as_path_len: p.as_path.as_ref().map_or(0, |x| x.len()),
            origin: p.origin.unwrap_or(Origin::Incomplete),
            med: p.med.unwrap_or(0),
            neighbor_as: p.as_path.as_ref().and_then(|x| x.neighbor_as()),
            originator_id: p.originator_id,
            cluster_list_len: p.cluster_list.len(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    attrs: Arc<RouteAttrs>,
    key: DecisionKey,
    hash: u64,
    refs: u32,
}

/// The interning table.
#[derive(Debug, Default)]
pub struct AttrStore {
    entries: Vec<Option<Entry>>,
    /// Per slot, bumped each time the slot is freed: a handle and its generation name one set
    /// for good, which caches keyed by handle need.
    generations: Vec<u32>,
    /// Sets freed so far.
    freed: u64,
    free: Vec<u32>,
    index: HashTable<u32>,
    hasher: FoldBuildHasher,
}

impl AttrStore {
    /// The handle of `attrs`, interning it if new; the caller holds one more reference.
    pub fn intern(&mut self, attrs: RouteAttrs) -> AttrId {
        let hash = self.hash(&attrs);
        let entries = &self.entries;
        let found = self.index.find(hash, |&i| {
            entries[i as usize].as_ref().is_some_and(|e| e.hash == hash && *e.attrs == attrs)
        });
        if let Some(&i) = found {
            if let Some(e) = self.entries[i as usize].as_mut() {
                e.refs += 1;
            }
            return AttrId(i);
        }
        let key = DecisionKey::of(&attrs);
        let entry = Entry { attrs: Arc::new(attrs), key, hash, refs: 1 };
        let i = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = Some(entry);
                i
            }
            None => {
                self.entries.push(Some(entry));
                self.generations.push(0);
                (self.entries.len() - 1) as u32
            }
        };
        let entries = &self.entries;
        self.index.insert_unique(hash, i, |&j| entries[j as usize].as_ref().map_or(0, |e| e.hash));
        AttrId(i)
    }

    /// Adds `n` references.
    pub fn retain(&mut self, id: AttrId, n: u32) {
        if let Some(e) = self.entries.get_mut(id.0 as usize).and_then(Option::as_mut) {
            e.refs += n;
        }
    }

    /// Drops one reference; the set goes with its last.
    pub fn release(&mut self, id: AttrId) {
        let Some(e) = self.entries.get_mut(id.0 as usize).and_then(Option::as_mut) else { return };
        e.refs -= 1;
        if e.refs > 0 {
            return;
        }
        let hash = e.hash;
        if let Ok(found) = self.index.find_entry(hash, |&j| j == id.0) {
            found.remove();
        }
        self.entries[id.0 as usize] = None;
        self.generations[id.0 as usize] = self.generations[id.0 as usize].wrapping_add(1);
        self.freed += 1;
        self.free.push(id.0);
    }

    /// The generation of a handle's slot (see `generations`).
    pub fn generation(&self, id: AttrId) -> u32 {
        self.generations.get(id.0 as usize).copied().unwrap_or(0)
    }

    /// Whether the handle still names the set it named at `generation`.
    pub fn is_live(&self, id: AttrId, generation: u32) -> bool {
        self.generation(id) == generation
            && self.entries.get(id.0 as usize).is_some_and(Option::is_some)
    }

    /// How many sets have been freed so far.
    pub fn freed(&self) -> u64 {
        self.freed
    }

    /// The attributes of a live handle.
    pub fn get(&self, id: AttrId) -> &Arc<RouteAttrs> {
        &self.entry(id).attrs
    }

    pub fn key(&self, id: AttrId) -> &DecisionKey {
        &self.entry(id).key
    }

    /// Number of distinct live sets.
    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    #[cfg(test)]
    pub fn refs(&self, id: AttrId) -> u32 {
        self.entries.get(id.0 as usize).and_then(Option::as_ref).map_or(0, |e| e.refs)
    }

    fn entry(&self, id: AttrId) -> &Entry {
        match self.entries.get(id.0 as usize).and_then(Option::as_ref) {
            Some(e) => e,
            // Handles come only from `intern` and live as long as a reference does.
            None => panic!("attribute set {} used after its last reference", id.0),
        }
    }

    fn hash(&self, a: &RouteAttrs) -> u64 {
        self.hasher.hash_one(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::AsPath;

    fn set(asn: u32) -> RouteAttrs {
        RouteAttrs {
            attrs: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence([Asn(asn)])),
                ..PathAttributes::default()
            },
            next_hop: Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))),
        }
    }

    #[test]
    fn equal_sets_share_one_handle_until_the_last_reference_goes() {
        let mut s = AttrStore::default();
        let a = s.intern(set(1));
        let b = s.intern(set(1));
        let c = s.intern(set(2));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(s.len(), 2);
        assert_eq!(s.refs(a), 2);
        s.release(a);
        assert_eq!(s.len(), 2);
        s.release(a);
        assert_eq!(s.len(), 1);
        // The freed slot is reused, and the old contents are not found any more.
        let d = s.intern(set(3));
        assert_eq!(d, a);
        assert_eq!(s.get(d).attrs.as_path, Some(AsPath::sequence([Asn(3)])));
        let e = s.intern(set(1));
        assert_ne!(e, d);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn the_decision_key_fills_in_defaults() {
        let mut s = AttrStore::default();
        let id = s.intern(set(65001));
        let k = s.key(id);
        assert_eq!(k.local_pref, DEFAULT_LOCAL_PREF);
        assert_eq!(k.med, 0);
        assert_eq!(k.as_path_len, 1);
        assert_eq!(k.neighbor_as, Some(Asn(65001)));
    }
}
