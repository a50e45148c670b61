//! Who may hear a route, and what reflection adds to it: iBGP split horizon (RFC 4271 §9.2),
//! route reflection (RFC 4456), and the loop checks that make both safe.
//!
//! Without reflection a route learned over iBGP goes to no other iBGP peer: every iBGP speaker
//! is expected to hear it directly (a full mesh). A route reflector relaxes that: routes from a
//! client go to every peer, routes from a non-client go to clients only (§6), and each
//! reflected route carries ORIGINATOR_ID and CLUSTER_LIST (§8) so that reflectors and the
//! originator can recognise their own routes coming back.

use std::net::Ipv4Addr;

use crate::types::Asn;
use crate::wire::PathAttributes;

/// Where a route came from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// Originated by this speaker.
    Local,
    Ebgp,
    Ibgp {
        client: bool,
    },
}

/// Whether a route learned from `from` may be advertised to `to` (RFC 4271 §9.2, RFC 4456 §6).
pub fn may_advertise(from: PeerKind, to: PeerKind) -> bool {
    match (from, to) {
        (_, PeerKind::Local) => false,
        (_, PeerKind::Ebgp) => true,
        (PeerKind::Local | PeerKind::Ebgp, PeerKind::Ibgp { .. }) => true,
        // Reflection: client routes to everyone, non-client routes to clients only.
        (PeerKind::Ibgp { client: from }, PeerKind::Ibgp { client: to }) => from || to,
    }
}

/// Whether advertising from `from` to `to` reflects the route (iBGP to iBGP).
pub fn reflects(from: PeerKind, to: PeerKind) -> bool {
    matches!((from, to), (PeerKind::Ibgp { .. }, PeerKind::Ibgp { .. }))
}

/// RFC 4456 §8: a reflected route keeps the originator's identifier (set from the peer it
/// came from if it has none yet) and gains our cluster ID at the front of its CLUSTER_LIST.
pub fn reflect(attrs: &mut PathAttributes, learned_from: Ipv4Addr, cluster_id: Ipv4Addr) {
    if attrs.originator_id.is_none() {
        attrs.originator_id = Some(learned_from);
    }
    attrs.cluster_list.insert(0, cluster_id);
}

/// Why a received route is refused before policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loop {
    /// Our AS is in its AS_PATH (RFC 4271 §9.1.2).
    AsPath,
    /// It carries our router ID as ORIGINATOR_ID: it is our own route (RFC 4456 §8).
    Originator,
    /// Our cluster ID is in its CLUSTER_LIST: it went round the cluster (RFC 4456 §8).
    Cluster,
}

/// Checks a route received from a peer of `kind` for the loops above.
pub fn check_loops(
    attrs: &PathAttributes,
    kind: PeerKind,
    local_as: Asn,
    router_id: Ipv4Addr,
    cluster_id: Ipv4Addr,
) -> Result<(), Loop> {
    if kind == PeerKind::Ebgp && attrs.as_path.as_ref().is_some_and(|p| p.contains(local_as)) {
        return Err(Loop::AsPath);
    }
    if let PeerKind::Ibgp { .. } = kind {
        if attrs.originator_id == Some(router_id) {
            return Err(Loop::Originator);
        }
        if attrs.cluster_list.contains(&cluster_id) {
            return Err(Loop::Cluster);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::AsPath;

    const CLIENT: PeerKind = PeerKind::Ibgp { client: true };
    const NON_CLIENT: PeerKind = PeerKind::Ibgp { client: false };

    #[test]
    fn rfc4271_9_2_ibgp_routes_do_not_go_to_other_ibgp_peers() {
        assert!(!may_advertise(NON_CLIENT, NON_CLIENT));
        assert!(may_advertise(NON_CLIENT, PeerKind::Ebgp));
        assert!(may_advertise(PeerKind::Ebgp, NON_CLIENT));
        assert!(may_advertise(PeerKind::Local, NON_CLIENT));
    }

    #[test]
    fn rfc4456_6_client_routes_go_to_everyone_non_client_routes_to_clients() {
        assert!(may_advertise(CLIENT, CLIENT));
        assert!(may_advertise(CLIENT, NON_CLIENT));
        assert!(may_advertise(NON_CLIENT, CLIENT));
        assert!(reflects(CLIENT, NON_CLIENT));
        assert!(!reflects(PeerKind::Ebgp, CLIENT));
    }

    #[test]
    fn rfc4456_8_reflection_sets_the_originator_once_and_prepends_the_cluster() {
        let mut a = PathAttributes::default();
        let c1 = Ipv4Addr::new(1, 1, 1, 1);
        let c2 = Ipv4Addr::new(2, 2, 2, 2);
        reflect(&mut a, Ipv4Addr::new(10, 0, 0, 5), c1);
        reflect(&mut a, Ipv4Addr::new(10, 0, 0, 6), c2);
        assert_eq!(a.originator_id, Some(Ipv4Addr::new(10, 0, 0, 5)));
        assert_eq!(a.cluster_list, vec![c2, c1]);
    }

    #[test]
    fn routes_that_came_back_are_refused() {
        let me = Ipv4Addr::new(10, 0, 0, 1);
        let cluster = Ipv4Addr::new(10, 0, 0, 100);
        let looped_as = PathAttributes {
            as_path: Some(AsPath::sequence([Asn(65002), Asn(65001)])),
            ..PathAttributes::default()
        };
        assert_eq!(
            check_loops(&looped_as, PeerKind::Ebgp, Asn(65001), me, cluster),
            Err(Loop::AsPath)
        );
        let own = PathAttributes { originator_id: Some(me), ..PathAttributes::default() };
        assert_eq!(check_loops(&own, CLIENT, Asn(65001), me, cluster), Err(Loop::Originator));
        let round = PathAttributes { cluster_list: vec![cluster], ..PathAttributes::default() };
        assert_eq!(check_loops(&round, NON_CLIENT, Asn(65001), me, cluster), Err(Loop::Cluster));
        assert_eq!(check_loops(&round, PeerKind::Ebgp, Asn(65001), me, cluster), Ok(()));
    }
}
