//! Routes going out: each peer's Adj-RIB-Out, read from the journal when the peer can take
//! more, and the kernel feed.
//!
//! For every destination it reads, export decides what the peer should hear — the best path
//! as this peer is to receive it, or nothing — and compares with its advertised bit: a route
//! to announce joins the group of its exported attribute set, a route no longer exported is
//! withdrawn if the peer had it. The groups are packed into UPDATEs after the withdrawals.
//!
//! What the peer receives is computed once per (attribute set, source peer, policy rule) and
//! cached in [`Memo`], with its encoding: split horizon and reflection (RFC 4271 §9.2, RFC 4456),
//! the eBGP rewrites of RFC 4271 §5.1 (our AS prepended, LOCAL_PREF and MED not passed on),
//! the NO_EXPORT and NO_ADVERTISE communities (RFC 1997), the export policy, the next hop.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hashbrown::HashMap;

use super::attrs::AttrStore;
use super::table::{Key, Table};
use super::{
    AttrId, BestChange, BestRoute, DEFAULT_LOCAL_PREF, NextHopMode, Path, Peer, PeerIdx, Rib,
    RibConfig, RouteAttrs, SessionInfo, family_index,
};
use crate::hash::FoldBuildHasher;
use crate::policy::Action;
use crate::reflector::{self, PeerKind};
use crate::types::{Community, Family, NextHop, Prefix};
use crate::wire::pack::{self, EncodedAttrs};
use crate::wire::route_refresh::subtype;
use crate::wire::{Nlri, RouteRefresh};

/// Destinations read per round: a few KB of UPDATEs.
const BATCH: usize = 512;

/// One consumer's position in one family's table.
#[derive(Debug, Clone)]
pub struct AdjOut {
    /// The next journal position to read.
    cursor: u64,
    /// The next slot of a walk over the whole table, while one is under way.
    walk: Option<u32>,
    /// One bit per slot: the peer has been told about this destination.
    advertised: Vec<u64>,
    /// Send End-of-RIB once the first walk is done (RFC 4724 §2).
    end_of_rib: bool,
    /// Bracket the walk with Beginning and End of Route Refresh (RFC 7313 §4).
    begin_refresh: bool,
    end_refresh: bool,
}

impl AdjOut {
    /// A consumer that first walks the whole table, then follows the journal from `position`.
    pub fn new(position: u64, end_of_rib: bool) -> AdjOut {
        AdjOut {
            cursor: position,
            walk: Some(0),
            advertised: Vec::new(),
            end_of_rib,
            begin_refresh: false,
            end_refresh: false,
        }
    }

    /// The oldest journal position this consumer may still read.
    pub fn position(&self) -> u64 {
        self.cursor
    }

    /// Walks the whole table again (a route refresh, a new export policy).
    pub fn restart_walk(&mut self, _journal_end: u64, enhanced_refresh: bool) {
        self.walk = Some(0);
        if enhanced_refresh {
            self.begin_refresh = true;
            self.end_refresh = true;
        }
    }

    fn has_work(&self, journal_end: u64) -> bool {
        self.walk.is_some() || self.cursor < journal_end || self.end_of_rib || self.end_refresh
    }

    fn advertised(&self, slot: u32) -> bool {
        self.advertised.get(slot as usize / 64).is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }

    fn set_advertised(&mut self, slot: u32, on: bool) {
        let i = slot as usize / 64;
        if i >= self.advertised.len() {
            if !on {
                return;
            }
            self.advertised.resize(i + 1, 0);
        }
        if on {
            self.advertised[i] |= 1 << (slot % 64);
        } else {
            self.advertised[i] &= !(1 << (slot % 64));
        }
    }

    /// The next destinations to look at: from the walk while there is one, else the journal.
    /// Returns whether a walk just ended.
    fn next_batch<P: Key>(&mut self, t: &Table<P>, batch: &mut Vec<u32>) -> bool {
        batch.clear();
        if let Some(from) = self.walk {
            let end = t.slots();
            let to = (from as usize + BATCH).min(end as usize) as u32;
            batch.extend((from..to).filter(|&s| !t.dest(s).paths.is_empty() || self.advertised(s)));
            self.walk = (to < end).then_some(to);
            return self.walk.is_none();
        }
        let end = t.journal_end();
        while batch.len() < BATCH && self.cursor < end {
            if let Some(slot) = t.journal_entry(self.cursor) {
                batch.push(slot);
            }
            self.cursor += 1;
        }
        false
    }
}

/// The cache key of an export result: the source attribute set (with its generation, so a
/// reused handle misses), the peer it came from, the export rule that matched, the family
/// (which decides the next hop).
type MemoKey = (AttrId, u32, PeerIdx, Option<usize>, Family);

/// What a source set becomes for a peer: nothing, or an exported set — held by the memo unless
/// it is the source set itself (a reference of the memo's own key would keep the source alive
/// for ever, and the sweep never notice it gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exported {
    Nothing,
    Set(AttrId),
    Same(AttrId),
}

impl Exported {
    fn id(self) -> Option<AttrId> {
        match self {
            Exported::Nothing => None,
            Exported::Set(id) | Exported::Same(id) => Some(id),
        }
    }

    /// The handle the memo holds a reference to.
    fn held(self) -> Option<AttrId> {
        match self {
            Exported::Set(id) => Some(id),
            _ => None,
        }
    }
}

/// What a peer's export computed, kept while its session lasts: the attribute set each source
/// set becomes, and its encoding. Holds a reference to each exported set other than a source
/// set itself; entries whose source set is gone are swept out now and then.
#[derive(Debug, Default)]
pub struct Memo {
    exported: HashMap<MemoKey, Exported, FoldBuildHasher>,
    encoded: HashMap<(AttrId, Family), Arc<EncodedAttrs>, FoldBuildHasher>,
    /// `AttrStore::freed` at the last sweep.
    swept_at: u64,
}

impl Memo {
    /// Forgets everything, dropping the references.
    pub fn release(&mut self, attrs: &mut AttrStore) {
        for (_, exported) in self.exported.drain() {
            if let Some(e) = exported.held() {
                attrs.release(e);
            }
        }
        self.encoded.clear();
    }

    /// Drops the entries of source sets that are gone, once enough sets have been freed since
    /// the last sweep to make it worth a pass.
    pub fn sweep(&mut self, attrs: &mut AttrStore) {
        let freed = attrs.freed() - self.swept_at;
        if freed < 64.max(self.exported.len() as u64 / 4) {
            return;
        }
        self.swept_at = attrs.freed();
        let mut dropped = Vec::new();
        self.exported.retain(|&(source, generation, _, _, _), exported| {
            let live = attrs.is_live(source, generation);
            if !live {
                dropped.extend(exported.held());
            }
            live
        });
        for id in dropped {
            attrs.release(id);
        }
        let used: hashbrown::HashSet<AttrId, FoldBuildHasher> =
            self.exported.values().filter_map(|e| e.id()).collect();
        self.encoded.retain(|(id, _), _| used.contains(id));
    }
}

/// The destination peer, as export sees it.
struct Dst<'a> {
    idx: PeerIdx,
    kind: PeerKind,
    peer: &'a Peer,
    info: &'a SessionInfo,
}

impl Rib {
    /// Writes UPDATEs for the peer into `out` until it holds `budget` octets or nothing is
    /// left to send. Returns whether more is waiting.
    pub fn export(&mut self, idx: PeerIdx, budget: usize, out: &mut Vec<u8>) -> bool {
        let Some(mut session) = self.peer_mut(idx).and_then(|p| p.session.take()) else {
            return false;
        };
        let mut more = false;
        let mut stats = Stats::default();
        for family in session.info.families.iter() {
            let fi = family_index(family);
            let Some(mut adj) = session.out[fi].take() else { continue };
            let end = self.table_end(family);
            let cluster_id = self.cluster_id();
            if let Some(peer) = self.peers.get(usize::from(idx.0)).and_then(Option::as_ref) {
                let dst = Dst { idx, kind: peer.kind, peer, info: &session.info };
                let cx = Exporter {
                    attrs: &mut self.attrs,
                    memo: &mut session.export,
                    peers: &self.peers,
                    cfg: &self.cfg,
                    cluster_id,
                    dst,
                    stats: &mut stats,
                };
                match family {
                    Family::Ipv4Unicast => cx.run(&self.v4, &mut adj, family, budget, out),
                    Family::Ipv6Unicast => cx.run(&self.v6, &mut adj, family, budget, out),
                }
            }
            more |= adj.has_work(end);
            session.out[fi] = Some(adj);
        }
        if let Some(p) = self.peer_mut(idx) {
            p.counters.updates_sent += stats.messages;
            p.counters.unsendable += stats.unsendable;
            for i in 0..2 {
                p.counters.advertised[i] = (p.counters.advertised[i] + stats.announced[i])
                    .saturating_sub(stats.withdrawn[i]);
            }
            p.session = Some(session);
        }
        more
    }

    /// Whether the peer has routes waiting to be exported.
    pub fn export_pending(&self, idx: PeerIdx) -> bool {
        let Some(s) = self.peer(idx).and_then(|p| p.session.as_ref()) else { return false };
        s.info
            .families
            .iter()
            .any(|f| s.out[family_index(f)].as_ref().is_some_and(|o| o.has_work(self.table_end(f))))
    }

    /// Up to about `max` best-path changes for the feed (its first calls report every route).
    pub fn drain_feed(&mut self, feed: usize, max: usize) -> Vec<BestChange> {
        let mut changes = Vec::new();
        let Some(mut f) = self.feeds.get_mut(feed).and_then(Option::take) else { return changes };
        let mut batch = Vec::new();
        for family in Family::ALL {
            let Some(adj) = f.out[family_index(family)].as_mut() else { continue };
            while changes.len() < max {
                match family {
                    Family::Ipv4Unicast => adj.next_batch(&self.v4, &mut batch),
                    Family::Ipv6Unicast => adj.next_batch(&self.v6, &mut batch),
                };
                if batch.is_empty() && adj.walk.is_none() {
                    break;
                }
                for &slot in &batch {
                    changes.push(match family {
                        Family::Ipv4Unicast => self.best_change(&self.v4, slot),
                        Family::Ipv6Unicast => self.best_change(&self.v6, slot),
                    });
                }
            }
        }
        if let Some(slot) = self.feeds.get_mut(feed) {
            *slot = Some(f);
        }
        changes
    }

    /// Whether the feed has changes waiting.
    pub fn feed_pending(&self, feed: usize) -> bool {
        self.feeds.get(feed).and_then(Option::as_ref).is_some_and(|f| {
            Family::ALL.iter().any(|&fam| {
                f.out[family_index(fam)]
                    .as_ref()
                    .is_some_and(|o| o.walk.is_some() || o.cursor < self.table_end(fam))
            })
        })
    }

    fn best_change<P: Key>(&self, t: &Table<P>, slot: u32) -> BestChange {
        let d = t.dest(slot);
        let best = d.best().map(|b| {
            let attrs = self.attrs.get(b.attrs).clone();
            let next_hops =
                d.multipaths().iter().filter_map(|p| self.attrs.get(p.attrs).next_hop).collect();
            BestRoute { next_hops, from: self.peer_address(b.peer), attrs }
        });
        BestChange { prefix: d.prefix.into(), best }
    }
}

#[derive(Debug, Default)]
struct Stats {
    messages: u64,
    unsendable: u64,
    announced: [u64; 2],
    withdrawn: [u64; 2],
}

/// Export for one peer and family.
struct Exporter<'a> {
    attrs: &'a mut AttrStore,
    memo: &'a mut Memo,
    peers: &'a [Option<Peer>],
    cfg: &'a RibConfig,
    cluster_id: Ipv4Addr,
    dst: Dst<'a>,
    stats: &'a mut Stats,
}

impl Exporter<'_> {
    fn run<P: Key>(
        mut self,
        t: &Table<P>,
        adj: &mut AdjOut,
        family: Family,
        budget: usize,
        out: &mut Vec<u8>,
    ) {
        let fi = family_index(family);
        if adj.begin_refresh {
            adj.begin_refresh = false;
            route_refresh(family, subtype::BEGIN, out);
            self.stats.messages += 1;
        }
        let mut batch = Vec::with_capacity(BATCH);
        let mut withdrawals: Vec<Nlri> = Vec::new();
        let mut groups = Groups::default();
        // Routes arrive in runs that share attributes and source: without a policy rule that
        // looks at prefixes, a run's outcome is computed once.
        let prefix_free = !self.dst.peer.settings.export.depends_on_prefix();
        let mut last: Option<((AttrId, PeerIdx), Option<AttrId>)> = None;
        // Routes gathered (in encoded octets, roughly): gather up to what the budget allows
        // before packing, so UPDATEs go out full.
        let mut gathered = 0;
        loop {
            let walk_ended = adj.next_batch(t, &mut batch);
            for &slot in &batch {
                let d = t.dest(slot);
                let prefix: Prefix = d.prefix.into();
                let exported = match d.best() {
                    None => None,
                    Some(b) => match last {
                        Some((key, result)) if prefix_free && key == (b.attrs, b.peer) => result,
                        _ => {
                            let result = self.export(b, prefix, family);
                            last = Some(((b.attrs, b.peer), result));
                            result
                        }
                    },
                };
                match exported {
                    Some(id) => {
                        if !adj.advertised(slot) {
                            adj.set_advertised(slot, true);
                            self.stats.announced[fi] += 1;
                        }
                        groups.push(id, Nlri::new(prefix));
                    }
                    None if adj.advertised(slot) => {
                        adj.set_advertised(slot, false);
                        self.stats.withdrawn[fi] += 1;
                        withdrawals.push(Nlri::new(prefix));
                    }
                    None => continue,
                }
                gathered += 1 + usize::from(prefix.prefix_len()).div_ceil(8);
            }
            let exhausted = batch.is_empty() && adj.walk.is_none();
            if walk_ended || exhausted || out.len() + gathered >= budget {
                self.flush(family, &mut withdrawals, &mut groups, out);
                gathered = 0;
            }
            if walk_ended {
                if adj.end_of_rib {
                    adj.end_of_rib = false;
                    pack::end_of_rib(family, out);
                    self.stats.messages += 1;
                }
                if adj.end_refresh {
                    adj.end_refresh = false;
                    route_refresh(family, subtype::END, out);
                    self.stats.messages += 1;
                }
            }
            if exhausted || out.len() >= budget {
                break;
            }
        }
        self.flush(family, &mut withdrawals, &mut groups, out);
    }

    /// Packs what was gathered: withdrawals first, then each attribute set's routes.
    fn flush(
        &mut self,
        family: Family,
        withdrawals: &mut Vec<Nlri>,
        groups: &mut Groups,
        out: &mut Vec<u8>,
    ) {
        let cx = self.dst.info.encode;
        if !withdrawals.is_empty() {
            self.stats.messages += pack::withdraw(family, withdrawals, &cx, out) as u64;
            withdrawals.clear();
        }
        for (id, routes) in groups.drain() {
            // Encodings are made, and checked to fit, with the exported set.
            let packed = self
                .memo
                .encoded
                .get(&(id, family))
                .map(|enc| pack::announce(enc, &routes, &cx, out));
            match packed {
                Some(Ok(n)) => self.stats.messages += n as u64,
                _ => self.stats.unsendable += routes.len() as u64,
            }
        }
    }

    /// The attribute set the destination peer receives for `best`, or `None` if it receives
    /// nothing.
    fn export(&mut self, best: &Path, prefix: Prefix, family: Family) -> Option<AttrId> {
        let dst = &self.dst;
        if best.peer == dst.idx {
            return None;
        }
        let source = self.peers.get(usize::from(best.peer.0)).and_then(Option::as_ref);
        let src_kind = if best.peer == PeerIdx::LOCAL {
            PeerKind::Local
        } else {
            source.map_or(PeerKind::Ebgp, |p| p.kind)
        };
        if !reflector::may_advertise(src_kind, dst.kind) {
            return None;
        }
        let route = self.attrs.get(best.attrs);
        let a = &route.attrs;
        // RFC 1997: NO_ADVERTISE goes to nobody, NO_EXPORT(_SUBCONFED) stays inside the AS.
        if a.communities.binary_search(&Community::NO_ADVERTISE).is_ok() {
            return None;
        }
        let no_export = a.communities.binary_search(&Community::NO_EXPORT).is_ok()
            || a.communities.binary_search(&Community::NO_EXPORT_SUBCONFED).is_ok();
        if dst.kind == PeerKind::Ebgp && no_export {
            return None;
        }
        // The peer would drop it as a loop (and count it against us): do not send it.
        if dst.kind == PeerKind::Ebgp
            && a.as_path.as_ref().is_some_and(|p| p.contains(dst.info.remote_as))
        {
            return None;
        }
        let verdict = dst.peer.settings.export.evaluate(prefix, a);
        if verdict.action == Action::Reject {
            return None;
        }
        let key = (best.attrs, self.attrs.generation(best.attrs), best.peer, verdict.rule, family);
        if let Some(cached) = self.memo.exported.get(&key) {
            return cached.id();
        }
        let src_router_id = source.map_or(self.cfg.router_id, |p| p.facts.router_id);
        let exported = match self.rewrite(route.clone(), src_kind, src_router_id, verdict, family) {
            None => Exported::Nothing,
            Some(id) if id == best.attrs => {
                // Unchanged by export: the routes hold it; the memo must not.
                self.attrs.release(id);
                Exported::Same(id)
            }
            Some(id) => Exported::Set(id),
        };
        self.memo.exported.insert(key, exported);
        exported.id()
    }

    /// Builds, interns and encodes what the peer receives; `None` if it cannot be sent.
    fn rewrite(
        &mut self,
        route: Arc<RouteAttrs>,
        src: PeerKind,
        src_router_id: Ipv4Addr,
        verdict: crate::policy::Verdict,
        family: Family,
    ) -> Option<AttrId> {
        let dst = &self.dst;
        let settings = &dst.peer.settings;
        let mut a = route.attrs.clone();
        match dst.kind {
            PeerKind::Ebgp => {
                a.as_path.get_or_insert_with(Default::default).prepend(settings.local_as);
                a.local_pref = None;
                if src != PeerKind::Local {
                    a.med = None;
                }
                a.originator_id = None;
                a.cluster_list.clear();
            }
            _ => {
                a.local_pref = Some(a.local_pref.unwrap_or(DEFAULT_LOCAL_PREF));
                if reflector::reflects(src, dst.kind) {
                    reflector::reflect(&mut a, src_router_id, self.cluster_id);
                }
            }
        }
        if let Some(m) = settings.export.modifications(verdict) {
            let ebgp = dst.kind == PeerKind::Ebgp;
            m.apply(&mut a, ebgp.then_some(settings.local_as));
            if ebgp {
                // RFC 4271 §5.1.5: LOCAL_PREF never goes to an external peer, set by policy or not.
                a.local_pref = None;
            }
        }
        let own = match settings.next_hop {
            NextHopMode::SelfAddress => true,
            NextHopMode::Keep => route.next_hop.is_none(),
            NextHopMode::Auto => dst.kind == PeerKind::Ebgp || route.next_hop.is_none(),
        };
        let kept = if own {
            None
        } else {
            route.next_hop.and_then(|nh| keep_next_hop(nh, family, dst.info))
        };
        let Some(next_hop) = kept.or_else(|| self_next_hop(family, dst.info)) else {
            self.stats.unsendable += 1;
            return None;
        };
        let enc = EncodedAttrs::new(&a, next_hop, family, &dst.info.encode);
        if !enc.fits(&dst.info.encode) {
            self.stats.unsendable += 1;
            return None;
        }
        let id = self.attrs.intern(RouteAttrs { attrs: a, next_hop: Some(next_hop) });
        self.memo.encoded.entry((id, family)).or_insert_with(|| Arc::new(enc));
        Some(id)
    }
}

/// Our own next hop for routes of `family` on this session.
fn self_next_hop(family: Family, s: &SessionInfo) -> Option<NextHop> {
    let v6 = || match (s.local_v6, s.local_v6_link_local) {
        (Some(global), ll) => Some(NextHop::V6 { global, link_local: ll }),
        // Only a link-local address: it goes in the global field (what FRR does unnumbered).
        (None, Some(ll)) => Some(NextHop::V6 { global: ll, link_local: None }),
        (None, None) => None,
    };
    match family {
        Family::Ipv4Unicast => {
            s.local_v4.map(NextHop::V4).or_else(|| if s.extended_next_hop { v6() } else { None })
        }
        Family::Ipv6Unicast => v6(),
    }
}

/// A next hop passed on unchanged, where the session can carry it. The link-local half is
/// dropped: it means something only on the link it was learned on.
fn keep_next_hop(nh: NextHop, family: Family, s: &SessionInfo) -> Option<NextHop> {
    match (family, nh) {
        // `::` with a link-local address (BIRD over a link-local session): nothing global to
        // pass on.
        (_, NextHop::V6 { global, .. }) if global.is_unspecified() => None,
        (Family::Ipv4Unicast, NextHop::V4(_)) => Some(nh),
        (_, NextHop::V6 { global, .. }) if is_link_local(global) => None,
        (Family::Ipv4Unicast, NextHop::V6 { global, .. }) if s.extended_next_hop => {
            Some(NextHop::V6 { global, link_local: None })
        }
        (Family::Ipv6Unicast, NextHop::V6 { global, .. }) => {
            Some(NextHop::V6 { global, link_local: None })
        }
        _ => None,
    }
}

fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

/// Routes gathered for export, grouped by the attribute set they go out with, in the order
/// the sets first appeared. The set of the previous route is checked first: routes come in runs.
#[derive(Default)]
struct Groups {
    groups: Vec<(AttrId, Vec<Nlri>)>,
    index: HashMap<AttrId, usize, FoldBuildHasher>,
    last: usize,
}

impl Groups {
    fn push(&mut self, id: AttrId, n: Nlri) {
        if let Some((gid, routes)) = self.groups.get_mut(self.last) {
            if *gid == id {
                routes.push(n);
                return;
            }
        }
        let i = *self.index.entry(id).or_insert_with(|| {
            self.groups.push((id, Vec::new()));
            self.groups.len() - 1
        });
        self.groups[i].1.push(n);
        self.last = i;
    }

    fn drain(&mut self) -> impl Iterator<Item = (AttrId, Vec<Nlri>)> + '_ {
        self.index.clear();
        self.last = 0;
        self.groups.drain(..)
    }
}

/// Appends a ROUTE-REFRESH of the given subtype.
fn route_refresh(family: Family, st: u8, out: &mut Vec<u8>) {
    let (afi, safi) = family.afi_safi();
    let rr = RouteRefresh { afi, safi, subtype: st };
    let _ = crate::wire::Codec::default().encode(&crate::wire::Message::RouteRefresh(rr), out);
}
