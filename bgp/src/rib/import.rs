//! Routes coming in: an UPDATE from a peer applied to the tables.
//!
//! Withdrawals first, then announcements: each replaces the peer's earlier path for the prefix
//! (an implicit withdrawal, RFC 4271 §3.1), or removes it when the route is refused — by
//! RFC 7606 treat-as-withdraw, a loop check, or the import policy. The attributes are prepared
//! and interned once per UPDATE (and once per policy rule that changes them), not per route.

use super::{AttrId, Path, PeerIdx, Rib, RibEvent, RouteAttrs, family_index};
use crate::policy::Action;
use crate::reflector::{self, PeerKind};
use crate::types::{Family, NextHop};
use crate::wire::{Nlri, PathAttributes, Update};

impl Rib {
    /// Applies an UPDATE received from an Established peer. Returns `false` if the peer has no
    /// session (the UPDATE is ignored).
    pub fn apply_update(&mut self, idx: PeerIdx, u: &Update) -> bool {
        let Some(peer) = self.peer_mut(idx) else { return false };
        // Routes of a family the session did not negotiate are ignored (RFC 4760 §6).
        let Some(families) = peer.session.as_ref().map(|s| s.info.families) else { return false };
        peer.counters.updates_received += 1;
        if u.treat_as_withdraw.is_some() {
            peer.counters.treat_as_withdraw += 1;
        }
        let mut t = Tally::default();
        for n in u.withdrawals().filter(|n| families.contains(n.prefix.family())) {
            t.withdrawals += 1;
            if self.remove_path(n.prefix, idx, n.path_id.unwrap_or(0)) {
                t.removed[family_index(n.prefix.family())] += 1;
            }
        }
        if u.treat_as_withdraw.is_none() {
            if let Some(attrs) = &u.attrs {
                if !u.nlri.is_empty() && families.contains(Family::Ipv4Unicast) {
                    let nh = attrs.next_hop.map(NextHop::V4);
                    self.announce(idx, attrs, nh, &u.nlri, &mut t);
                }
                if let Some(reach) = u.mp_reach.as_ref().filter(|r| families.contains(r.family)) {
                    self.announce(idx, attrs, Some(reach.next_hop), &reach.nlri, &mut t);
                }
            }
        }
        let Some(peer) = self.peer_mut(idx) else { return true };
        let c = &mut peer.counters;
        c.withdrawals_received += t.withdrawals;
        c.routes_received += t.received;
        c.routes_rejected += t.rejected;
        let mut exceeded = None;
        for f in Family::ALL {
            let i = family_index(f);
            c.accepted[i] = (c.accepted[i] + t.added[i]).saturating_sub(t.removed[i]);
            if let Some(limit) = peer.settings.max_prefixes {
                if c.accepted[i] > u64::from(limit) && exceeded.is_none() {
                    exceeded = Some(RibEvent::MaxPrefixes { peer: idx, family: f, limit });
                }
            }
        }
        if let Some(e) = exceeded {
            if !self.events.contains(&e) {
                self.events.push(e);
            }
        }
        true
    }

    /// Announces `routes` from the peer with `attrs` and next hop `nh`, counting into `t`.
    fn announce(
        &mut self,
        idx: PeerIdx,
        attrs: &PathAttributes,
        nh: Option<NextHop>,
        routes: &[Nlri],
        t: &mut Tally,
    ) {
        t.received += routes.len() as u64;
        let Some((kind, import)) = self.peer(idx).map(|p| (p.kind, p.settings.import.clone()))
        else {
            return;
        };
        let base = prepare(attrs, kind);
        // A confederation segment from any peer is malformed here: Tartan is in no
        // confederation (RFC 5065 §5.3; RFC 7606 §7.2 makes it treat-as-withdraw).
        let confed = base.as_path.as_ref().is_some_and(|p| p.has_confed());
        let refused = nh.is_none()
            || confed
            || reflector::check_loops(
                &base,
                kind,
                self.cfg.local_as,
                self.cfg.router_id,
                self.cluster_id(),
            )
            .is_err();
        if refused {
            t.rejected += routes.len() as u64;
            for n in routes {
                self.withdraw_refused(idx, n, t);
            }
            return;
        }
        // One verdict for the whole UPDATE unless a rule looks at prefixes.
        let per_prefix = import.depends_on_prefix();
        let first = routes.first().map(|n| n.prefix);
        let shared = first.map(|p| import.evaluate(p, &base));
        // Interned attribute sets by the rule that produced them (at most a few per UPDATE).
        let mut sets: Vec<(Option<usize>, AttrId)> = Vec::new();
        for n in routes {
            let verdict = match (per_prefix, shared) {
                (false, Some(v)) => v,
                _ => import.evaluate(n.prefix, &base),
            };
            if verdict.action == Action::Reject {
                t.rejected += 1;
                self.withdraw_refused(idx, n, t);
                continue;
            }
            // Each path holds one reference: `intern` gives the first, `retain` the others.
            let id = match sets.iter().find(|(rule, _)| *rule == verdict.rule) {
                Some(&(_, id)) => {
                    self.attrs.retain(id, 1);
                    id
                }
                None => {
                    let mut a = base.clone();
                    if let Some(m) = import.modifications(verdict) {
                        m.apply(&mut a, None);
                    }
                    let id = self.attrs.intern(RouteAttrs { attrs: a, next_hop: nh });
                    sets.push((verdict.rule, id));
                    id
                }
            };
            let path = Path { peer: idx, flags: 0, path_id: n.path_id.unwrap_or(0), attrs: id };
            if self.upsert(n.prefix, path) {
                t.added[family_index(n.prefix.family())] += 1;
            }
        }
    }

    /// A refused announcement still replaces the peer's earlier route for the prefix: that one
    /// goes (an implicit withdrawal).
    fn withdraw_refused(&mut self, idx: PeerIdx, n: &Nlri, t: &mut Tally) {
        if self.remove_path(n.prefix, idx, n.path_id.unwrap_or(0)) {
            t.removed[family_index(n.prefix.family())] += 1;
        }
    }
}

/// What one UPDATE did, for the peer's counters.
#[derive(Debug, Default)]
struct Tally {
    /// Paths new in the RIB, per family.
    added: [u64; 2],
    /// Paths gone from the RIB (withdrawn, or replaced by a refused route), per family.
    removed: [u64; 2],
    withdrawals: u64,
    received: u64,
    rejected: u64,
}

/// The attributes as stored: NEXT_HOP moves to the route's next hop; from eBGP, LOCAL_PREF is
/// ignored (RFC 4271 §5.1.5) and the iBGP-only reflection attributes are dropped.
fn prepare(a: &PathAttributes, kind: PeerKind) -> PathAttributes {
    let mut a = a.clone();
    a.next_hop = None;
    if kind == PeerKind::Ebgp {
        a.local_pref = None;
        a.originator_id = None;
        a.cluster_list.clear();
    }
    a
}
