//! The decision process: which of a destination's paths is best (RFC 4271 §9.1.2.2, with the
//! route reflection tie-breakers of RFC 4456 §9), and which paths are as good as the best for
//! multipath (ECMP).
//!
//! Written the way the RFC is: each step removes the candidates that lose it, in order, until
//! one is left. MED is compared only between paths from the same neighbouring AS, which is why
//! this is a sequence of eliminations and not a sort.

use std::net::{IpAddr, Ipv4Addr};

use super::attrs::{AttrStore, DecisionKey};
use super::table::{Path, PeerIdx};
use crate::types::Asn;

/// What the decision process needs to know about the peer a path came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerFacts {
    /// Learned over eBGP.
    pub ebgp: bool,
    /// The peer's BGP identifier.
    pub router_id: Ipv4Addr,
    pub address: IpAddr,
}

/// Puts the best path first and the paths equal to it for multipath right after it; returns
/// how many paths that is (1 without `multipath`).
pub fn select(
    paths: &mut [Path],
    attrs: &AttrStore,
    facts: impl Fn(PeerIdx) -> PeerFacts,
    local_as: Asn,
    multipath: bool,
) -> u8 {
    if paths.len() <= 1 {
        return 1;
    }
    let c: Vec<Candidate> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| Candidate { i, path: *p, key: *attrs.key(p.attrs), peer: facts(p.peer) })
        .collect();
    let mut left: Vec<&Candidate> = c.iter().collect();
    // Tartan: routes we originate win, as a locally configured route does in every router.
    keep_min(&mut left, |x| x.path.peer != PeerIdx::LOCAL);
    // §9.1.2.2 preamble / §9.1.1: the highest degree of preference (LOCAL_PREF).
    keep_min(&mut left, |x| std::cmp::Reverse(x.key.local_pref));
    // §9.1.2.2 a: the shortest AS_PATH.
    keep_min(&mut left, |x| x.key.as_path_len);
    // §9.1.2.2 b: the lowest ORIGIN.
    keep_min(&mut left, |x| x.key.origin);
    // §9.1.2.2 c: the lowest MED, compared among paths from the same neighbouring AS only.
    let neighbor = |x: &Candidate| x.key.neighbor_as.unwrap_or(local_as);
    let snapshot = left.clone();
    left.retain(|x| !snapshot.iter().any(|y| neighbor(y) == neighbor(x) && y.key.med < x.key.med));
    // §9.1.2.2 d: paths learned over eBGP before paths learned over iBGP.
    keep_min(&mut left, |x| !x.peer.ebgp);
    // §9.1.2.2 e (interior cost to the next hop) does not apply: Tartan runs no IGP, every next
    // hop costs the same. What is left is equally good: the multipath set.
    let equal: Vec<usize> = left.iter().map(|x| x.i).collect();
    // §9.1.2.2 f, with RFC 4456 §9: the lowest ORIGINATOR_ID, or BGP identifier without one.
    keep_min(&mut left, |x| x.key.originator_id.unwrap_or(x.peer.router_id));
    // RFC 4456 §9: the shortest CLUSTER_LIST.
    keep_min(&mut left, |x| x.key.cluster_list_len);
    // §9.1.2.2 g: the lowest peer address.
    keep_min(&mut left, |x| x.peer.address);
    // Tartan: only when all else is equal does a fresh path beat one kept stale for a
    // restarting peer. Stale routes keep being used as they were (RFC 4724 §4.2): preferring
    // fresh ones outright would move traffic twice for every restart.
    keep_min(&mut left, |x| x.path.is_stale());
    // Tartan: the lowest ADD-PATH identifier, so the choice never depends on arrival order.
    keep_min(&mut left, |x| x.path.path_id);
    let best = left.first().map_or(0, |x| x.i);

    let mut order = vec![best];
    if multipath {
        order.extend(equal.iter().copied().filter(|&i| i != best));
    }
    let count = order.len();
    let rest: Vec<usize> = (0..paths.len()).filter(|i| !order.contains(i)).collect();
    order.extend(rest);
    let sorted: Vec<Path> = order.iter().map(|&i| c[i].path).collect();
    paths.copy_from_slice(&sorted);
    count.min(u8::MAX as usize) as u8
}

struct Candidate {
    i: usize,
    path: Path,
    key: DecisionKey,
    peer: PeerFacts,
}

/// Keeps the candidates with the smallest `key`.
fn keep_min<K: Ord>(left: &mut Vec<&Candidate>, key: impl Fn(&Candidate) -> K) {
    if left.len() <= 1 {
        return;
    }
    let Some(min) = left.iter().map(|x| key(x)).min() else { return };
    left.retain(|x| key(x) == min);
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::rib::attrs::RouteAttrs;
    use crate::types::{NextHop, Origin};
    use crate::wire::{AsPath, PathAttributes};

    /// Peers 1..=9: peer n has router id 10.0.0.n and address 192.0.2.n; odd peers are eBGP.
    fn facts(p: PeerIdx) -> PeerFacts {
        let n = p.0 as u8;
        PeerFacts {
            ebgp: n % 2 == 1,
            router_id: Ipv4Addr::new(10, 0, 0, n),
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)),
        }
    }

    struct Fixture {
        store: AttrStore,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture { store: AttrStore::default() }
        }

        fn path(&mut self, peer: u16, f: impl FnOnce(&mut PathAttributes)) -> Path {
            let mut a = PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence([Asn(65000 + u32::from(peer))])),
                ..PathAttributes::default()
            };
            f(&mut a);
            let id = self.store.intern(RouteAttrs {
                attrs: a,
                next_hop: Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, peer as u8))),
            });
            Path { peer: PeerIdx(peer), flags: 0, path_id: 0, attrs: id }
        }

        fn best(&self, mut paths: Vec<Path>) -> u16 {
            select(&mut paths, &self.store, facts, Asn(64512), false);
            paths[0].peer.0
        }
    }

    #[test]
    fn rfc4271_9_1_1_the_highest_local_pref_wins_over_a_shorter_path() {
        let mut f = Fixture::new();
        let a = f.path(1, |_| {});
        let b = f.path(3, |a| {
            a.local_pref = Some(200);
            a.as_path = Some(AsPath::sequence([Asn(1), Asn(2), Asn(3)]));
        });
        assert_eq!(f.best(vec![a, b]), 3);
    }

    #[test]
    fn rfc4271_9_1_2_2_a_the_shortest_as_path_wins() {
        let mut f = Fixture::new();
        let a = f.path(1, |a| a.as_path = Some(AsPath::sequence([Asn(1), Asn(2)])));
        let b = f.path(3, |a| a.as_path = Some(AsPath::sequence([Asn(3)])));
        assert_eq!(f.best(vec![a, b]), 3);
    }

    #[test]
    fn rfc4271_9_1_2_2_b_the_lowest_origin_wins() {
        let mut f = Fixture::new();
        let a = f.path(1, |a| a.origin = Some(Origin::Incomplete));
        let b = f.path(3, |a| a.origin = Some(Origin::Egp));
        assert_eq!(f.best(vec![a, b]), 3);
    }

    #[test]
    fn rfc4271_9_1_2_2_c_med_is_compared_only_within_a_neighbouring_as() {
        let mut f = Fixture::new();
        let same_as = |a: &mut PathAttributes, med| {
            a.as_path = Some(AsPath::sequence([Asn(65100)]));
            a.med = Some(med);
        };
        // Same neighbour AS: the lower MED wins even from the higher address.
        let a = f.path(1, |a| same_as(a, 50));
        let b = f.path(3, |a| same_as(a, 10));
        assert_eq!(f.best(vec![a, b]), 3);
        // Different neighbour ASes: MED is ignored and the lower router id decides.
        let c = f.path(1, |a| a.med = Some(50));
        let d = f.path(3, |a| a.med = Some(10));
        assert_eq!(f.best(vec![c, d]), 1);
    }

    #[test]
    fn rfc4271_9_1_2_2_c_a_missing_med_counts_as_zero() {
        let mut f = Fixture::new();
        let with = |a: &mut PathAttributes, med| {
            a.as_path = Some(AsPath::sequence([Asn(65100)]));
            a.med = med;
        };
        let a = f.path(1, |a| with(a, Some(5)));
        let b = f.path(3, |a| with(a, None));
        assert_eq!(f.best(vec![a, b]), 3);
    }

    #[test]
    fn rfc4271_9_1_2_2_d_ebgp_beats_ibgp() {
        let mut f = Fixture::new();
        let ibgp = f.path(2, |a| a.as_path = Some(AsPath::sequence([Asn(65100)])));
        let ebgp = f.path(3, |a| a.as_path = Some(AsPath::sequence([Asn(65100)])));
        assert_eq!(f.best(vec![ibgp, ebgp]), 3);
    }

    #[test]
    fn rfc4271_9_1_2_2_f_the_lowest_router_id_breaks_ties() {
        let mut f = Fixture::new();
        let a = f.path(5, |_| {});
        let b = f.path(3, |_| {});
        assert_eq!(f.best(vec![a, b]), 3);
    }

    #[test]
    fn rfc4456_9_originator_id_stands_in_for_the_router_id() {
        let mut f = Fixture::new();
        let a = f.path(2, |a| {
            a.as_path = None;
            a.originator_id = Some(Ipv4Addr::new(10, 9, 9, 9));
        });
        let b = f.path(4, |a| a.as_path = None);
        assert_eq!(f.best(vec![a, b]), 4);
    }

    #[test]
    fn rfc4456_9_the_shorter_cluster_list_breaks_ties() {
        let mut f = Fixture::new();
        let id = Some(Ipv4Addr::new(10, 9, 9, 9));
        let a = f.path(2, |a| {
            a.as_path = None;
            a.originator_id = id;
            a.cluster_list = vec![Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(2, 2, 2, 2)];
        });
        let b = f.path(4, |a| {
            a.as_path = None;
            a.originator_id = id;
            a.cluster_list = vec![Ipv4Addr::new(3, 3, 3, 3)];
        });
        assert_eq!(f.best(vec![a, b]), 4);
    }

    #[test]
    fn rfc4271_9_1_2_2_g_the_lowest_peer_address_breaks_the_last_tie() {
        let mut f = Fixture::new();
        let id = Some(Ipv4Addr::new(10, 9, 9, 9));
        let a = f.path(4, |a| {
            a.as_path = None;
            a.originator_id = id;
        });
        let b = f.path(2, |a| {
            a.as_path = None;
            a.originator_id = id;
        });
        assert_eq!(f.best(vec![a, b]), 2);
    }

    #[test]
    fn a_stale_path_keeps_its_rank_and_loses_only_a_tie() {
        let mut f = Fixture::new();
        let mut stale = f.path(1, |a| a.local_pref = Some(500));
        stale.flags = super::super::table::flags::STALE;
        let fresh = f.path(3, |_| {});
        assert_eq!(f.best(vec![stale, fresh]), 1, "RFC 4724 §4.2: stale routes are used as before");
        let mut tied = f.path(1, |_| {});
        tied.flags = super::super::table::flags::STALE;
        tied.path_id = 0;
        let mut other = tied;
        other.flags = 0;
        other.path_id = 1;
        let mut paths = vec![tied, other];
        select(&mut paths, &f.store, facts, Asn(64512), false);
        assert!(!paths[0].is_stale());
    }

    #[test]
    fn multipath_keeps_every_path_equal_before_the_router_id_step() {
        let mut f = Fixture::new();
        let a = f.path(5, |_| {});
        let b = f.path(3, |_| {});
        let worse = f.path(1, |a| a.as_path = Some(AsPath::sequence([Asn(1), Asn(2)])));
        let c = f.path(7, |_| {});
        let mut paths = vec![a, worse, b, c];
        let n = select(&mut paths, &f.store, facts, Asn(64512), true);
        assert_eq!(n, 3);
        assert_eq!(paths[0].peer, PeerIdx(3));
        let mut equal: Vec<u16> = paths[..3].iter().map(|p| p.peer.0).collect();
        equal.sort();
        assert_eq!(equal, vec![3, 5, 7]);
        assert_eq!(paths[3].peer, PeerIdx(1));
    }
}
