//! One family's routing table: destinations (a prefix and its paths, best first), an index from
//! prefix to destination, and the change journal the Adj-RIB-Outs read.
//!
//! Destinations live in fixed-size chunks addressed by a dense `u32`, so the table never copies
//! itself while growing and a slot costs its contents and nothing more. The index is a hash
//! table of slot numbers that hashes the prefix stored in the slot, so prefixes are not stored
//! twice.
//!
//! The journal is the list of slots whose best path changed, in order. Each consumer (a peer's
//! Adj-RIB-Out, the kernel feed) keeps a position in it; a slot changed twice before a slow
//! consumer got to it is sent once, with its latest state (the slot remembers its last
//! position). Entries every consumer has passed are dropped, and so are emptied slots, which
//! are reused only once every consumer has seen them empty.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

use super::attrs::AttrId;
use crate::hash::FoldBuildHasher;
use crate::types::{Ipv4Prefix, Ipv6Prefix, Prefix};

/// Index of a peer in the RIB; 0 is ourselves (originated routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerIdx(pub u16);

impl PeerIdx {
    pub const LOCAL: PeerIdx = PeerIdx(0);
}

/// Path flags.
pub mod flags {
    /// Kept from a peer that is restarting (RFC 4724).
    pub const STALE: u8 = 1;
}

/// One path to a destination: who sent it, its ADD-PATH identifier, its attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    pub peer: PeerIdx,
    pub flags: u8,
    pub path_id: u32,
    pub attrs: AttrId,
}

impl Path {
    pub fn is_stale(&self) -> bool {
        self.flags & flags::STALE != 0
    }
}

/// The paths of a destination, best first; one path (by far the common case) stays inline.
#[derive(Debug, Clone, Default)]
pub enum Paths {
    #[default]
    Empty,
    One(Path),
    // Boxed so that the enum stays 16 octets: one pointer, not a Vec's three words, in every
    // destination; the second allocation is paid only by prefixes with several paths.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Path>>),
}

impl Paths {
    pub fn as_slice(&self) -> &[Path] {
        match self {
            Paths::Empty => &[],
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(v) => v,
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [Path] {
        match self {
            Paths::Empty => &mut [],
            Paths::One(p) => std::slice::from_mut(p),
            Paths::Many(v) => v,
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Paths::Empty)
    }

    pub fn push(&mut self, p: Path) {
        *self = match std::mem::take(self) {
            Paths::Empty => Paths::One(p),
            Paths::One(q) => Paths::Many(Box::new(vec![q, p])),
            Paths::Many(mut v) => {
                v.push(p);
                Paths::Many(v)
            }
        };
    }

    pub fn remove(&mut self, i: usize) -> Path {
        let (removed, rest) = match std::mem::take(self) {
            Paths::Empty => unreachable!("remove from no paths"),
            Paths::One(p) => (p, Paths::Empty),
            Paths::Many(mut v) => {
                let p = v.remove(i);
                if v.len() == 1 { (p, Paths::One(v[0])) } else { (p, Paths::Many(v)) }
            }
        };
        *self = rest;
        removed
    }

    /// Keeps the paths `keep` accepts; returns the ones removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&Path) -> bool) -> Vec<Path> {
        let mut removed = Vec::new();
        let mut i = 0;
        while i < self.as_slice().len() {
            if keep(&self.as_slice()[i]) {
                i += 1;
            } else {
                removed.push(self.remove(i));
            }
        }
        removed
    }
}

/// A prefix type a table is keyed by.
pub trait Key: Copy + Eq + Hash + Into<Prefix> + std::fmt::Debug {}
impl Key for Ipv4Prefix {}
impl Key for Ipv6Prefix {}

impl From<Ipv4Prefix> for Prefix {
    fn from(p: Ipv4Prefix) -> Prefix {
        Prefix::V4(p)
    }
}

impl From<Ipv6Prefix> for Prefix {
    fn from(p: Ipv6Prefix) -> Prefix {
        Prefix::V6(p)
    }
}

#[derive(Debug, Clone)]
pub struct Dest<P> {
    pub prefix: P,
    pub paths: Paths,
    /// Low 32 bits of this slot's last journal position.
    seq: u32,
    /// How many paths, from the first, are equally good (ECMP); 1 without multipath.
    pub multipath: u8,
}

impl<P> Dest<P> {
    pub fn best(&self) -> Option<&Path> {
        self.paths.as_slice().first()
    }

    /// The paths that share the best path's rank (the best alone without multipath).
    pub fn multipaths(&self) -> &[Path] {
        let paths = self.paths.as_slice();
        &paths[..usize::from(self.multipath).max(1).min(paths.len())]
    }
}

const CHUNK_BITS: u32 = 12;
const CHUNK: usize = 1 << CHUNK_BITS;

/// The change journal: slot numbers, each at a position that only grows.
#[derive(Debug, Default)]
struct Journal {
    /// Position of `entries[start]`.
    base: u64,
    start: usize,
    entries: Vec<u32>,
}

impl Journal {
    fn end(&self) -> u64 {
        self.base + (self.entries.len() - self.start) as u64
    }

    fn push(&mut self, slot: u32) -> u64 {
        let seq = self.end();
        self.entries.push(slot);
        seq
    }

    fn get(&self, seq: u64) -> Option<u32> {
        let i = seq.checked_sub(self.base)? as usize + self.start;
        self.entries.get(i).copied()
    }

    /// Forgets entries before `upto`.
    fn trim(&mut self, upto: u64) {
        let n = upto.saturating_sub(self.base).min((self.entries.len() - self.start) as u64);
        self.start += n as usize;
        self.base += n;
        if self.start == self.entries.len() {
            self.entries.clear();
            self.start = 0;
        } else if self.start >= 4096 && self.start * 2 >= self.entries.len() {
            self.entries.drain(..self.start);
            self.start = 0;
        }
    }
}

/// One family's destinations.
#[derive(Debug)]
pub struct Table<P> {
    chunks: Vec<Vec<Dest<P>>>,
    index: HashTable<u32>,
    hasher: FoldBuildHasher,
    free: Vec<u32>,
    journal: Journal,
    /// Emptied slots and their last journal position, freed once every consumer passed it.
    emptied: Vec<(u32, u64)>,
    /// Slots in the index.
    live: usize,
    /// Slots with at least one path.
    routed: usize,
}

impl<P: Key> Default for Table<P> {
    fn default() -> Self {
        Table {
            chunks: Vec::new(),
            index: HashTable::new(),
            hasher: FoldBuildHasher::default(),
            free: Vec::new(),
            journal: Journal::default(),
            emptied: Vec::new(),
            live: 0,
            routed: 0,
        }
    }
}

impl<P: Key> Table<P> {
    /// The slot of `prefix`, if it has one.
    pub fn find(&self, prefix: P) -> Option<u32> {
        let hash = self.hasher.hash_one(prefix);
        self.index.find(hash, |&s| self.dest(s).prefix == prefix).copied()
    }

    /// The slot of `prefix`, made (with no paths) if needed.
    pub fn find_or_insert(&mut self, prefix: P) -> u32 {
        if let Some(s) = self.find(prefix) {
            return s;
        }
        let dest = Dest { prefix, paths: Paths::Empty, seq: 0, multipath: 1 };
        let slot = match self.free.pop() {
            Some(s) => {
                *self.dest_mut(s) = dest;
                s
            }
            None => {
                if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                let n = self.chunks.len() - 1;
                let last = &mut self.chunks[n];
                last.push(dest);
                ((n << CHUNK_BITS) + last.len() - 1) as u32
            }
        };
        let hash = self.hasher.hash_one(prefix);
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.index.insert_unique(hash, slot, |&s| {
            hasher.hash_one(chunks[(s >> CHUNK_BITS) as usize][s as usize & (CHUNK - 1)].prefix)
        });
        self.live += 1;
        slot
    }

    pub fn dest(&self, slot: u32) -> &Dest<P> {
        &self.chunks[(slot >> CHUNK_BITS) as usize][slot as usize & (CHUNK - 1)]
    }

    pub fn dest_mut(&mut self, slot: u32) -> &mut Dest<P> {
        &mut self.chunks[(slot >> CHUNK_BITS) as usize][slot as usize & (CHUNK - 1)]
    }

    /// Number of slots ever made (what a full-table walk covers).
    pub fn slots(&self) -> u32 {
        self.chunks.iter().map(Vec::len).sum::<usize>() as u32
    }

    /// Destinations with at least one path.
    pub fn len(&self) -> usize {
        self.routed
    }

    /// Destinations in the index (an emptied one stays until every consumer has seen it).
    #[cfg(test)]
    pub fn indexed(&self) -> usize {
        self.live
    }

    /// Adds a path to a slot, keeping the count of routed destinations.
    pub fn push_path(&mut self, slot: u32, p: Path) {
        let d = self.dest_mut(slot);
        let was_empty = d.paths.is_empty();
        d.paths.push(p);
        if was_empty {
            self.routed += 1;
        }
    }

    /// Removes the paths `which` selects from a slot; returns them.
    pub fn remove_paths(&mut self, slot: u32, which: impl Fn(&Path) -> bool) -> Vec<Path> {
        let d = self.dest_mut(slot);
        let was_empty = d.paths.is_empty();
        let removed = d.paths.retain(|p| !which(p));
        if !was_empty && d.paths.is_empty() {
            self.routed -= 1;
        }
        removed
    }

    /// Records that the slot's best path changed.
    pub fn changed(&mut self, slot: u32) {
        let seq = self.journal.push(slot);
        let d = self.dest_mut(slot);
        d.seq = seq as u32;
        if d.paths.is_empty() {
            self.emptied.push((slot, seq));
        }
    }

    /// The journal position after the last change.
    pub fn journal_end(&self) -> u64 {
        self.journal.end()
    }

    /// The slot changed at `seq`, unless a later change of the same slot supersedes it (the
    /// consumer will see that one) or the entry was trimmed.
    pub fn journal_entry(&self, seq: u64) -> Option<u32> {
        let slot = self.journal.get(seq)?;
        (self.dest(slot).seq == seq as u32).then_some(slot)
    }

    /// Every consumer is at `min_position` or later: forget older entries and free the slots
    /// emptied before it.
    pub fn collect(&mut self, min_position: u64) {
        self.journal.trim(min_position);
        let mut i = 0;
        while i < self.emptied.len() {
            let (slot, seq) = self.emptied[i];
            if seq >= min_position {
                i += 1;
                continue;
            }
            self.emptied.swap_remove(i);
            let d = self.dest(slot);
            // Still empty and not changed since (else a later entry covers it).
            if d.paths.is_empty() && d.seq == seq as u32 {
                let prefix = d.prefix;
                let hash = self.hasher.hash_one(prefix);
                if let Ok(e) = self.index.find_entry(hash, |&s| s == slot) {
                    e.remove();
                    self.live -= 1;
                    self.free.push(slot);
                }
            }
        }
    }

    /// Slots of every destination with a path, for walks that must see them all.
    pub fn occupied(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.slots()).filter(|&s| !self.dest(s).paths.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn p(i: u32) -> Ipv4Prefix {
        Ipv4Prefix::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).expect("prefix")
    }

    fn path(peer: u16) -> Path {
        Path { peer: PeerIdx(peer), flags: 0, path_id: 0, attrs: AttrId(0) }
    }

    #[test]
    fn prefixes_get_stable_slots_across_chunks() {
        let mut t = Table::<Ipv4Prefix>::default();
        let slots: Vec<u32> = (0..10_000).map(|i| t.find_or_insert(p(i))).collect();
        assert_eq!(slots, (0..10_000).collect::<Vec<u32>>());
        for i in (0..10_000).step_by(997) {
            assert_eq!(t.find(p(i)), Some(i));
            assert_eq!(t.dest(i).prefix, p(i));
        }
        assert_eq!(t.find(p(20_000)), None);
    }

    #[test]
    fn a_slot_changed_twice_is_read_once_at_its_last_position() {
        let mut t = Table::<Ipv4Prefix>::default();
        let a = t.find_or_insert(p(1));
        let b = t.find_or_insert(p(2));
        t.dest_mut(a).paths.push(path(1));
        t.changed(a);
        t.dest_mut(b).paths.push(path(1));
        t.changed(b);
        t.changed(a);
        let seen: Vec<u32> = (0..t.journal_end()).filter_map(|s| t.journal_entry(s)).collect();
        assert_eq!(seen, vec![b, a]);
    }

    #[test]
    fn emptied_slots_are_reused_only_after_every_consumer_passed() {
        let mut t = Table::<Ipv4Prefix>::default();
        let a = t.find_or_insert(p(1));
        t.push_path(a, path(1));
        t.changed(a);
        t.remove_paths(a, |_| true);
        t.changed(a);
        assert_eq!(t.len(), 0);
        let lagging = 1;
        t.collect(lagging);
        assert_eq!(t.find(p(1)), Some(a), "a consumer has not seen it emptied yet");
        t.collect(t.journal_end());
        assert_eq!(t.find(p(1)), None);
        assert_eq!(t.indexed(), 0);
        assert_eq!(t.find_or_insert(p(2)), a);
    }

    #[test]
    fn a_slot_refilled_before_collection_is_kept() {
        let mut t = Table::<Ipv4Prefix>::default();
        let a = t.find_or_insert(p(1));
        t.dest_mut(a).paths.push(path(1));
        t.changed(a);
        t.dest_mut(a).paths.remove(0);
        t.changed(a);
        t.dest_mut(a).paths.push(path(2));
        t.changed(a);
        t.collect(t.journal_end());
        assert_eq!(t.find(p(1)), Some(a));
        assert_eq!(t.indexed(), 1);
    }

    #[test]
    fn paths_stay_inline_until_there_are_two() {
        let mut ps = Paths::Empty;
        ps.push(path(1));
        assert!(matches!(ps, Paths::One(_)));
        ps.push(path(2));
        ps.push(path(3));
        assert_eq!(ps.as_slice().len(), 3);
        let removed = ps.retain(|x| x.peer != PeerIdx(2));
        assert_eq!(removed.len(), 1);
        ps.remove(0);
        assert!(matches!(ps, Paths::One(q) if q.peer == PeerIdx(3)));
        assert!(size_of::<Dest<Ipv4Prefix>>() <= 32);
    }
}
