//! The RIB: every peer's accepted routes, the best path per prefix, and what each peer has been
//! told — without I/O, driven by the speaker's RIB task.
//!
//! ```text
//!  UPDATE ─▶ import (loops, policy) ─▶ Table: prefix ▶ paths, best first ─▶ journal
//!                                        │                                     │
//!                                   decision process                 per peer: cursor,
//!                                   (RFC 4271 §9.1)                  advertised bits
//!                                                                          │
//!                                    export(peer, budget) ◀────────────────┘
//!                            (split horizon, reflection, policy, next hop, packing)
//! ```
//!
//! - **Adj-RIB-In** is not a separate copy: a peer's accepted routes are its paths in the
//!   tables (as in BIRD). Routes its import policy refused are not kept; after an import
//!   policy change the speaker asks the peer for its routes again (route refresh).
//! - **Attributes** are interned ([`attrs`]): a path is a peer, a path id and a handle.
//! - **Adj-RIB-Out** is not a copy either: each peer has a position in each table's journal of
//!   changed destinations and one bit per destination saying whether it was told about it.
//!   [`Rib::export`] reads from that position when the peer's socket can take more, groups the
//!   routes by the attributes the peer is to receive, and packs them into UPDATEs, withdrawals
//!   first. A destination that changed many times while the peer was slow is sent once.
//!   A new session, a route refresh and an export policy change all walk the whole table.

mod attrs;
mod decision;
mod export;
mod import;
mod table;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub use attrs::{AttrId, DEFAULT_LOCAL_PREF, RouteAttrs};
pub use decision::PeerFacts;
pub use export::AdjOut;
pub use table::{Path, PeerIdx};

use attrs::AttrStore;
use table::{Key, Table, flags};

use crate::policy::Policy;
use crate::reflector::PeerKind;
use crate::types::{
    Asn, Community, Family, FamilySet, Ipv4Prefix, Ipv6Prefix, LargeCommunity, NextHop, Origin,
    Prefix,
};
use crate::wire::{PathAttributes, UpdateEncodeContext};

/// Settings of the whole RIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibConfig {
    pub local_as: Asn,
    pub router_id: Ipv4Addr,
    /// Cluster ID when reflecting routes (RFC 4456 §7); the router ID when unset.
    pub cluster_id: Option<Ipv4Addr>,
    /// Keep every path as good as the best for the kernel (ECMP).
    pub multipath: bool,
}

/// How a peer's routes get their next hop on export.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NextHopMode {
    /// Our own address towards eBGP peers and for routes we originate; unchanged otherwise.
    #[default]
    Auto,
    /// Always our own address (`next-hop-self`, also towards iBGP peers).
    SelfAddress,
    /// Never changed, also towards eBGP peers (`next-hop-keep`, route servers).
    Keep,
}

/// What the RIB knows of a configured peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSettings {
    /// How the peer is named in logs and status (its address).
    pub name: String,
    pub address: IpAddr,
    /// Our AS towards this peer.
    pub local_as: Asn,
    pub rr_client: bool,
    pub next_hop: NextHopMode,
    pub import: Arc<Policy>,
    pub export: Arc<Policy>,
    /// Accepted routes per family above which the session is stopped (RFC 4486 Cease 1).
    pub max_prefixes: Option<u32>,
}

/// What an Established session tells the RIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub remote_as: Asn,
    pub remote_id: Ipv4Addr,
    pub families: FamilySet,
    pub encode: UpdateEncodeContext,
    /// IPv4 routes may carry IPv6 next hops (RFC 8950).
    pub extended_next_hop: bool,
    /// Our addresses, for `next hop self`: the session's own local address and, where known,
    /// one of the other family and the link-local address of the interface.
    pub local_v4: Option<Ipv4Addr>,
    pub local_v6: Option<Ipv6Addr>,
    pub local_v6_link_local: Option<Ipv6Addr>,
    /// The peer speaks enhanced route refresh (RFC 7313): refreshes we send are bracketed.
    pub enhanced_route_refresh: bool,
}

/// Counters kept per peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerCounters {
    pub updates_received: u64,
    /// Routes announced to us (each announcement counts, also replacements).
    pub routes_received: u64,
    pub withdrawals_received: u64,
    /// Routes refused by import policy or a loop check.
    pub routes_rejected: u64,
    /// UPDATEs that RFC 7606 turned into withdrawals.
    pub treat_as_withdraw: u64,
    /// Routes of this peer in the RIB now, per family (IPv4, IPv6).
    pub accepted: [u64; 2],
    /// Routes we advertise to this peer now, per family.
    pub advertised: [u64; 2],
    pub updates_sent: u64,
    /// Routes that could not be sent (no next hop of the family, attributes too long).
    pub unsendable: u64,
}

/// Something the speaker must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RibEvent {
    /// The peer sent more routes of the family than its limit allows.
    MaxPrefixes { peer: PeerIdx, family: Family, limit: u32 },
}

/// The current best route of a prefix, as the kernel feed reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestRoute {
    /// The next hops of the best path and, with multipath, of the paths as good as it.
    /// Empty for a route we originate.
    pub next_hops: Vec<NextHop>,
    pub from: Option<IpAddr>,
    pub attrs: Arc<RouteAttrs>,
}

/// A change of the best route of a prefix (`None`: no route any more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestChange {
    pub prefix: Prefix,
    pub best: Option<BestRoute>,
}

/// One path of a destination, for display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathView {
    /// The peer's address; `None` for a route we originate.
    pub from: Option<IpAddr>,
    pub best: bool,
    pub multipath: bool,
    pub stale: bool,
    pub path_id: u32,
    pub attrs: Arc<RouteAttrs>,
}

/// A destination and its paths, best first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteView {
    pub prefix: Prefix,
    pub paths: Vec<PathView>,
}

/// Attributes of a route we originate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origination {
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
}

#[derive(Debug)]
struct Peer {
    settings: PeerSettings,
    /// How the peer counts for split horizon and reflection; known once a session is up,
    /// kept after it goes down for the routes that stay (graceful restart).
    kind: PeerKind,
    facts: PeerFacts,
    session: Option<Session>,
    counters: PeerCounters,
}

#[derive(Debug)]
struct Session {
    info: SessionInfo,
    out: [Option<AdjOut>; 2],
    export: export::Memo,
}

#[derive(Debug)]
struct Feed {
    out: [Option<AdjOut>; 2],
}

/// The RIB.
#[derive(Debug)]
pub struct Rib {
    cfg: RibConfig,
    attrs: AttrStore,
    v4: Table<Ipv4Prefix>,
    v6: Table<Ipv6Prefix>,
    /// Indexed by `PeerIdx`; slot 0 (ourselves) is always empty.
    peers: Vec<Option<Peer>>,
    feeds: Vec<Option<Feed>>,
    events: Vec<RibEvent>,
}

fn family_index(f: Family) -> usize {
    match f {
        Family::Ipv4Unicast => 0,
        Family::Ipv6Unicast => 1,
    }
}

impl Rib {
    pub fn new(cfg: RibConfig) -> Rib {
        Rib {
            cfg,
            attrs: AttrStore::default(),
            v4: Table::default(),
            v6: Table::default(),
            peers: vec![None],
            feeds: Vec::new(),
            events: Vec::new(),
        }
    }

    pub fn config(&self) -> &RibConfig {
        &self.cfg
    }

    fn cluster_id(&self) -> Ipv4Addr {
        self.cfg.cluster_id.unwrap_or(self.cfg.router_id)
    }

    /// Registers a peer; its routes flow once [`Rib::peer_up`] is called.
    pub fn add_peer(&mut self, settings: PeerSettings) -> PeerIdx {
        let facts =
            PeerFacts { ebgp: true, router_id: Ipv4Addr::UNSPECIFIED, address: settings.address };
        let peer = Peer {
            settings,
            kind: PeerKind::Ebgp,
            facts,
            session: None,
            counters: PeerCounters::default(),
        };
        match self.peers.iter().skip(1).position(Option::is_none) {
            Some(i) => {
                self.peers[i + 1] = Some(peer);
                PeerIdx((i + 1) as u16)
            }
            None => {
                self.peers.push(Some(peer));
                PeerIdx((self.peers.len() - 1) as u16)
            }
        }
    }

    /// Forgets a peer and every route it sent.
    pub fn remove_peer(&mut self, idx: PeerIdx) {
        self.peer_down(idx, FamilySet::EMPTY);
        self.remove_paths(idx, FamilySet::all(), |_| true);
        if let Some(slot) = self.peers.get_mut(usize::from(idx.0)) {
            *slot = None;
        }
        self.clear_memos();
    }

    /// Changes a peer's settings. Returns whether the peer must be asked for its routes
    /// again (the import policy changed); a new export policy is applied here, by walking
    /// the table for the peer again.
    pub fn set_peer_settings(&mut self, idx: PeerIdx, settings: PeerSettings) -> bool {
        let Some(peer) = self.peer_mut(idx) else { return false };
        let import_changed = peer.settings.import != settings.import;
        let export_changed = peer.settings.export != settings.export
            || peer.settings.next_hop != settings.next_hop
            || peer.settings.rr_client != settings.rr_client
            || peer.settings.local_as != settings.local_as;
        let client_changed = peer.settings.rr_client != settings.rr_client;
        if let PeerKind::Ibgp { .. } = peer.kind {
            peer.kind = PeerKind::Ibgp { client: settings.rr_client };
        }
        peer.settings = settings;
        if client_changed {
            // Who hears this peer's routes depends on it being a client (RFC 4456 §6): every
            // other peer's output is recomputed.
            self.clear_memos();
            let all: Vec<PeerIdx> = (0..self.peers.len() as u16).map(PeerIdx).collect();
            for p in all {
                self.rewalk(p);
            }
        } else if export_changed {
            self.rewalk(idx);
        }
        import_changed && self.peer(idx).is_some_and(|p| p.session.is_some())
    }

    /// The session with the peer is Established.
    pub fn peer_up(&mut self, idx: PeerIdx, info: SessionInfo) {
        let ends = [self.v4.journal_end(), self.v6.journal_end()];
        let Some(peer) = self.peer_mut(idx) else { return };
        let ibgp = info.remote_as == peer.settings.local_as;
        peer.kind =
            if ibgp { PeerKind::Ibgp { client: peer.settings.rr_client } } else { PeerKind::Ebgp };
        peer.facts =
            PeerFacts { ebgp: !ibgp, router_id: info.remote_id, address: peer.settings.address };
        let mut out = [None, None];
        for f in info.families.iter() {
            out[family_index(f)] = Some(AdjOut::new(ends[family_index(f)], true));
        }
        peer.counters.advertised = [0, 0];
        let old = peer.session.replace(Session { info, out, export: export::Memo::default() });
        if let Some(mut old) = old {
            old.export.release(&mut self.attrs);
        }
        // What other peers receive depends on this peer's kind and identifier.
        self.clear_memos();
    }

    /// Drops every peer's cached export results (they name source peers by index).
    fn clear_memos(&mut self) {
        for p in self.peers.iter_mut().flatten() {
            if let Some(s) = p.session.as_mut() {
                s.export.release(&mut self.attrs);
            }
        }
    }

    /// The session went down. Routes of the families in `keep_stale` stay, marked stale
    /// (graceful restart); the others go now.
    pub fn peer_down(&mut self, idx: PeerIdx, keep_stale: FamilySet) {
        let Some(peer) = self.peer_mut(idx) else { return };
        let Some(mut session) = peer.session.take() else { return };
        peer.counters.advertised = [0, 0];
        session.export.release(&mut self.attrs);
        let drop = FamilySet::all().difference(keep_stale);
        self.remove_paths(idx, drop, |_| true);
        self.mark_stale(idx, keep_stale);
    }

    /// Drops the peer's stale routes of `families` (graceful restart or enhanced route refresh
    /// is over for them).
    pub fn purge_stale(&mut self, idx: PeerIdx, families: FamilySet) {
        self.remove_paths(idx, families, |p| p.is_stale());
    }

    /// The peer begins re-sending a family (RFC 7313 BoRR): what it does not re-send by the
    /// EoRR goes.
    pub fn refresh_begins(&mut self, idx: PeerIdx, family: Family) {
        self.mark_stale(idx, FamilySet::single(family));
    }

    /// The peer asked for our routes of `family` again (RFC 2918, RFC 7313).
    pub fn refresh_requested(&mut self, idx: PeerIdx, family: Family) {
        let end = self.table_end(family);
        if let Some(s) = self.peer_mut(idx).and_then(|p| p.session.as_mut()) {
            let enhanced = s.info.enhanced_route_refresh;
            if let Some(out) = s.out[family_index(family)].as_mut() {
                out.restart_walk(end, enhanced);
            }
        }
    }

    /// Walks the whole table again for the peer (after an export policy change): what is no
    /// longer exported is withdrawn, the rest re-announced.
    fn rewalk(&mut self, idx: PeerIdx) {
        let ends = [self.v4.journal_end(), self.v6.journal_end()];
        let peer = self.peers.get_mut(usize::from(idx.0)).and_then(Option::as_mut);
        if let Some(s) = peer.and_then(|p| p.session.as_mut()) {
            s.export.release(&mut self.attrs);
            for (i, out) in s.out.iter_mut().enumerate() {
                if let Some(out) = out {
                    out.restart_walk(ends[i], false);
                }
            }
        }
    }

    fn table_end(&self, f: Family) -> u64 {
        match f {
            Family::Ipv4Unicast => self.v4.journal_end(),
            Family::Ipv6Unicast => self.v6.journal_end(),
        }
    }

    /// Originates `prefix` (replacing an earlier origination of it).
    pub fn originate(&mut self, prefix: Prefix, o: &Origination) {
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(Default::default()),
            med: o.med,
            local_pref: o.local_pref,
            communities: {
                let mut c = o.communities.clone();
                c.sort();
                c.dedup();
                c
            },
            large_communities: {
                let mut c = o.large_communities.clone();
                c.sort();
                c.dedup();
                c
            },
            ..PathAttributes::default()
        };
        let id = self.attrs.intern(RouteAttrs { attrs, next_hop: None });
        let path = Path { peer: PeerIdx::LOCAL, flags: 0, path_id: 0, attrs: id };
        self.upsert(prefix, path);
    }

    /// Stops originating `prefix`.
    pub fn withdraw_origination(&mut self, prefix: Prefix) {
        self.remove_path(prefix, PeerIdx::LOCAL, 0);
    }

    /// Prefixes we originate.
    pub fn originated(&self) -> Vec<Prefix> {
        let mut out = Vec::new();
        for slot in self.v4.occupied() {
            let d = self.v4.dest(slot);
            if d.paths.as_slice().iter().any(|p| p.peer == PeerIdx::LOCAL) {
                out.push(d.prefix.into());
            }
        }
        for slot in self.v6.occupied() {
            let d = self.v6.dest(slot);
            if d.paths.as_slice().iter().any(|p| p.peer == PeerIdx::LOCAL) {
                out.push(d.prefix.into());
            }
        }
        out
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<RibEvent> {
        std::mem::take(&mut self.events)
    }

    pub fn counters(&self, idx: PeerIdx) -> Option<PeerCounters> {
        self.peer(idx).map(|p| p.counters)
    }

    /// Number of prefixes with at least one path, per family.
    pub fn prefix_counts(&self) -> [usize; 2] {
        [self.v4.len(), self.v6.len()]
    }

    /// Number of distinct attribute sets held.
    pub fn attribute_sets(&self) -> usize {
        self.attrs.len()
    }

    /// Every destination of `family` whose prefix `filter` accepts, best path first.
    pub fn routes(&self, family: Family, filter: impl Fn(Prefix) -> bool) -> Vec<RouteView> {
        match family {
            Family::Ipv4Unicast => self.routes_of(&self.v4, filter),
            Family::Ipv6Unicast => self.routes_of(&self.v6, filter),
        }
    }

    fn routes_of<P: Key>(&self, t: &Table<P>, filter: impl Fn(Prefix) -> bool) -> Vec<RouteView> {
        let mut out = Vec::new();
        for slot in t.occupied() {
            let d = t.dest(slot);
            let prefix: Prefix = d.prefix.into();
            if !filter(prefix) {
                continue;
            }
            let mp = d.multipaths().len();
            let paths = d
                .paths
                .as_slice()
                .iter()
                .enumerate()
                .map(|(i, p)| PathView {
                    from: self.peer_address(p.peer),
                    best: i == 0,
                    multipath: i < mp,
                    stale: p.is_stale(),
                    path_id: p.path_id,
                    attrs: self.attrs.get(p.attrs).clone(),
                })
                .collect();
            out.push(RouteView { prefix, paths });
        }
        out.sort_by_key(|r| r.prefix);
        out
    }

    fn peer_address(&self, idx: PeerIdx) -> Option<IpAddr> {
        self.peer(idx).map(|p| p.settings.address)
    }

    fn peer(&self, idx: PeerIdx) -> Option<&Peer> {
        self.peers.get(usize::from(idx.0)).and_then(Option::as_ref)
    }

    fn peer_mut(&mut self, idx: PeerIdx) -> Option<&mut Peer> {
        self.peers.get_mut(usize::from(idx.0)).and_then(Option::as_mut)
    }

    /// Subscribes to best-path changes: the first drains report every current route.
    pub fn subscribe(&mut self) -> usize {
        let (v4, v6) = (self.v4.journal_end(), self.v6.journal_end());
        let feed = Feed { out: [Some(AdjOut::new(v4, false)), Some(AdjOut::new(v6, false))] };
        match self.feeds.iter().position(Option::is_none) {
            Some(i) => {
                self.feeds[i] = Some(feed);
                i
            }
            None => {
                self.feeds.push(Some(feed));
                self.feeds.len() - 1
            }
        }
    }

    pub fn unsubscribe(&mut self, feed: usize) {
        if let Some(f) = self.feeds.get_mut(feed) {
            *f = None;
        }
    }

    /// Frees what every consumer is done with: old journal entries, emptied destinations, and
    /// cached export results of attribute sets that are gone.
    pub fn collect(&mut self) {
        for p in self.peers.iter_mut().flatten() {
            if let Some(s) = p.session.as_mut() {
                s.export.sweep(&mut self.attrs);
            }
        }
        let mut min = [self.v4.journal_end(), self.v6.journal_end()];
        let sessions = self.peers.iter().flatten().filter_map(|p| p.session.as_ref());
        let outs = sessions.map(|s| &s.out).chain(self.feeds.iter().flatten().map(|f| &f.out));
        for out in outs {
            for (i, o) in out.iter().enumerate() {
                if let Some(o) = o {
                    min[i] = min[i].min(o.position());
                }
            }
        }
        self.v4.collect(min[0]);
        self.v6.collect(min[1]);
    }

    // ----- changing paths

    /// Inserts or replaces the path (same peer, same path id) for `prefix`. The path brings one
    /// reference to its attributes. Returns whether the peer had no path there before.
    fn upsert(&mut self, prefix: Prefix, path: Path) -> bool {
        match prefix {
            Prefix::V4(p) => {
                let slot = self.v4.find_or_insert(p);
                upsert_in(&mut self.v4, slot, path, &mut self.attrs, &self.peers, &self.cfg)
            }
            Prefix::V6(p) => {
                let slot = self.v6.find_or_insert(p);
                upsert_in(&mut self.v6, slot, path, &mut self.attrs, &self.peers, &self.cfg)
            }
        }
    }

    /// Removes the peer's path (with that path id) for `prefix`; returns whether there was one.
    fn remove_path(&mut self, prefix: Prefix, peer: PeerIdx, path_id: u32) -> bool {
        match prefix {
            Prefix::V4(p) => match self.v4.find(p) {
                Some(slot) => {
                    remove_in(&mut self.v4, slot, &mut self.attrs, &self.peers, &self.cfg, |x| {
                        x.peer == peer && x.path_id == path_id
                    }) > 0
                }
                None => false,
            },
            Prefix::V6(p) => match self.v6.find(p) {
                Some(slot) => {
                    remove_in(&mut self.v6, slot, &mut self.attrs, &self.peers, &self.cfg, |x| {
                        x.peer == peer && x.path_id == path_id
                    }) > 0
                }
                None => false,
            },
        }
    }

    /// Removes every path of `peer` in `families` that `which` selects (a table walk).
    fn remove_paths(&mut self, peer: PeerIdx, families: FamilySet, which: impl Fn(&Path) -> bool) {
        let mut removed = [0u64; 2];
        if families.contains(Family::Ipv4Unicast) {
            for slot in 0..self.v4.slots() {
                removed[0] +=
                    remove_in(&mut self.v4, slot, &mut self.attrs, &self.peers, &self.cfg, |x| {
                        x.peer == peer && which(x)
                    }) as u64;
            }
        }
        if families.contains(Family::Ipv6Unicast) {
            for slot in 0..self.v6.slots() {
                removed[1] +=
                    remove_in(&mut self.v6, slot, &mut self.attrs, &self.peers, &self.cfg, |x| {
                        x.peer == peer && which(x)
                    }) as u64;
            }
        }
        if let Some(p) = self.peer_mut(peer) {
            for (accepted, removed) in p.counters.accepted.iter_mut().zip(removed) {
                *accepted = accepted.saturating_sub(removed);
            }
        }
    }

    /// Marks every path of `peer` in `families` stale.
    fn mark_stale(&mut self, peer: PeerIdx, families: FamilySet) {
        if families.contains(Family::Ipv4Unicast) {
            mark_stale_in(&mut self.v4, peer, &self.attrs, &self.peers, &self.cfg);
        }
        if families.contains(Family::Ipv6Unicast) {
            mark_stale_in(&mut self.v6, peer, &self.attrs, &self.peers, &self.cfg);
        }
    }
}

/// Facts about the peer of each path, for the decision process.
fn facts_of<'a>(
    peers: &'a [Option<Peer>],
    cfg: &'a RibConfig,
) -> impl Fn(PeerIdx) -> PeerFacts + 'a {
    move |idx| match peers.get(usize::from(idx.0)).and_then(Option::as_ref) {
        Some(p) => p.facts,
        None => PeerFacts {
            ebgp: false,
            router_id: cfg.router_id,
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        },
    }
}

/// What export and the kernel feed see of a destination: its best path and, with multipath,
/// the paths as good as it — without path flags (a path turning stale changes nothing sent).
#[derive(Debug, PartialEq, Eq)]
enum Head {
    Best(Option<(PeerIdx, u32, AttrId)>),
    Multi(Vec<(PeerIdx, u32, AttrId)>),
}

fn head<P: Key>(t: &Table<P>, slot: u32, cfg: &RibConfig) -> Head {
    let d = t.dest(slot);
    let key = |p: &Path| (p.peer, p.path_id, p.attrs);
    if cfg.multipath {
        Head::Multi(d.multipaths().iter().map(key).collect())
    } else {
        Head::Best(d.best().map(key))
    }
}

/// Re-runs the decision process for a destination and journals it if what export sees of it
/// changed.
fn reselect<P: Key>(
    t: &mut Table<P>,
    slot: u32,
    before: &Head,
    attrs: &AttrStore,
    peers: &[Option<Peer>],
    cfg: &RibConfig,
) {
    let d = t.dest_mut(slot);
    d.multipath = decision::select(
        d.paths.as_mut_slice(),
        attrs,
        facts_of(peers, cfg),
        cfg.local_as,
        cfg.multipath,
    );
    if head(t, slot, cfg) != *before || t.dest(slot).paths.is_empty() {
        t.changed(slot);
    }
}

fn upsert_in<P: Key>(
    t: &mut Table<P>,
    slot: u32,
    path: Path,
    attrs: &mut AttrStore,
    peers: &[Option<Peer>],
    cfg: &RibConfig,
) -> bool {
    let before = head(t, slot, cfg);
    let d = t.dest_mut(slot);
    let existing =
        d.paths.as_slice().iter().position(|p| p.peer == path.peer && p.path_id == path.path_id);
    let new = match existing {
        Some(i) => {
            let old = std::mem::replace(&mut d.paths.as_mut_slice()[i], path);
            attrs.release(old.attrs);
            false
        }
        None => {
            t.push_path(slot, path);
            true
        }
    };
    reselect(t, slot, &before, attrs, peers, cfg);
    new
}

/// Removes the paths `which` selects from one destination; returns how many.
fn remove_in<P: Key>(
    t: &mut Table<P>,
    slot: u32,
    attrs: &mut AttrStore,
    peers: &[Option<Peer>],
    cfg: &RibConfig,
    which: impl Fn(&Path) -> bool,
) -> usize {
    if !t.dest(slot).paths.as_slice().iter().any(&which) {
        return 0;
    }
    let before = head(t, slot, cfg);
    let removed = t.remove_paths(slot, which);
    for p in &removed {
        attrs.release(p.attrs);
    }
    reselect(t, slot, &before, attrs, peers, cfg);
    removed.len()
}

fn mark_stale_in<P: Key>(
    t: &mut Table<P>,
    peer: PeerIdx,
    attrs: &AttrStore,
    peers: &[Option<Peer>],
    cfg: &RibConfig,
) {
    for slot in 0..t.slots() {
        if !t.dest(slot).paths.as_slice().iter().any(|p| p.peer == peer) {
            continue;
        }
        let before = head(t, slot, cfg);
        for p in t.dest_mut(slot).paths.as_mut_slice() {
            if p.peer == peer {
                p.flags |= flags::STALE;
            }
        }
        reselect(t, slot, &before, attrs, peers, cfg);
    }
}
