//! Which BGP sessions this node should have, computed from the datastore alone (pure):
//! the node-to-node mesh, route reflection, and global and per-node `BGPPeer`s.
//!
//! Sessions are per address family, like Calico's: IPv4 sessions between IPv4 addresses carry
//! IPv4 routes, IPv6 sessions between IPv6 addresses carry IPv6 routes. Of two nodes, the one
//! with the higher address waits passively, so each pair makes one connection.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use tartan_ipam::resources::{
    BfdSpec, BfdTimers, BgpConfigurationSpec, BgpPeerSpec, FailureDetectionMode, GracefulRestart,
    NextHopMode, NodeSpec, Password, Selector, SourceAddress,
};
use tracing::warn;

/// One node as the peering computation needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    pub asn: Option<u32>,
    pub cluster_id: Option<Ipv4Addr>,
}

impl NodeInfo {
    pub fn from_spec(name: &str, labels: BTreeMap<String, String>, spec: &NodeSpec) -> NodeInfo {
        let bgp = spec.bgp.clone().unwrap_or_default();
        NodeInfo {
            name: name.to_string(),
            labels,
            ipv4: bgp.ipv4_address.map(|n| n.addr()),
            ipv6: bgp.ipv6_address.map(|n| n.addr()),
            asn: bgp.as_number,
            cluster_id: bgp.route_reflector_cluster_id,
        }
    }

    fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.ipv4.iter().chain(self.ipv6.iter()).copied()
    }

    fn address_like(&self, other: IpAddr) -> Option<IpAddr> {
        if other.is_ipv4() { self.ipv4 } else { self.ipv6 }
    }
}

/// What kind of peering a session is (`tartanctl node status` shows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PeerType {
    Mesh,
    RouteReflector,
    RouteReflectorClient,
    Global,
    NodeSpecific,
}

impl PeerType {
    pub fn name(self) -> &'static str {
        match self {
            PeerType::Mesh => "node-to-node mesh",
            PeerType::RouteReflector => "route reflector",
            PeerType::RouteReflectorClient => "route reflector client",
            PeerType::Global => "global",
            PeerType::NodeSpecific => "node specific",
        }
    }
}

/// One session this node should have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peering {
    pub peer: IpAddr,
    /// The node's address of the peer's family.
    pub local: IpAddr,
    /// Connections we open go from `local` (else from what the kernel picks).
    pub bind_local: bool,
    pub remote_as: u32,
    pub kind: PeerType,
    pub passive: bool,
    pub route_reflector_client: bool,
    pub password: Option<Password>,
    pub hold_time: Option<u16>,
    pub keepalive: Option<u16>,
    pub graceful_restart: Option<GracefulRestart>,
    pub next_hop: Option<NextHopMode>,
    /// The node at the other end, when it is one of ours.
    pub node: Option<String>,
    /// The peer's port, if not the fabric's `listenPort`.
    pub port: Option<u16>,
    /// Our AS on this session, if not the node's.
    pub local_as: Option<u32>,
    /// BFD timers when the session runs BFD (`BFDIfDirectlyConnected`: the agent starts it
    /// only for a peer on one of the host's subnets).
    pub bfd: Option<BfdTimers>,
}

impl Peering {
    /// A session to `node` of the fabric, with none of a BGPPeer's settings; of the two ends,
    /// the higher address waits.
    fn to_node(
        peer: IpAddr,
        local: IpAddr,
        remote_as: u32,
        kind: PeerType,
        route_reflector_client: bool,
        node: &str,
    ) -> Peering {
        Peering {
            peer,
            local,
            bind_local: true,
            remote_as,
            kind,
            passive: peer < local,
            route_reflector_client,
            password: None,
            hold_time: None,
            keepalive: None,
            graceful_restart: None,
            next_hop: None,
            node: Some(node.to_string()),
            port: None,
            local_as: None,
            bfd: None,
        }
    }

    /// With a BGPPeer's settings (password, timers, next hop, port, local AS, source, BFD).
    fn with_peer(self, p: &BgpPeerSpec, config: &BgpConfigurationSpec) -> Peering {
        Peering {
            bfd: bfd_timers(p.failure_detection_mode, p.bfd.as_ref(), config),
            bind_local: p.source_address != Some(SourceAddress::None),
            password: p.password.clone(),
            hold_time: p.hold_time,
            keepalive: p.keepalive_time,
            graceful_restart: p.graceful_restart.clone(),
            next_hop: p.next_hop_mode,
            port: p.port,
            local_as: p.local_as_number,
            ..self
        }
    }
}

/// The BFD timers of a session in `mode`: its own, else the BGPConfiguration's, else
/// 300ms x 3. Both were validated when written; should one still not resolve, BFD runs at
/// the defaults (it was asked for) and the log says why.
fn bfd_timers(
    mode: FailureDetectionMode,
    own: Option<&BfdSpec>,
    config: &BgpConfigurationSpec,
) -> Option<BfdTimers> {
    if mode == FailureDetectionMode::None {
        return None;
    }
    let spec = own.cloned().unwrap_or_default();
    Some(spec.resolve(config.bfd.as_ref()).unwrap_or_else(|e| {
        warn!("BFD timers: {e}; using 300ms x 3");
        BfdTimers { min_rx_ms: 300, min_tx_ms: 300, multiplier: 3 }
    }))
}

/// A session to each address of `other` that this node has an address of the same family
/// for, unless an earlier rule took that address.
fn sessions_to(
    out: &mut BTreeMap<IpAddr, Peering>,
    me: &NodeInfo,
    other: &NodeInfo,
    make: impl Fn(IpAddr, IpAddr) -> Peering,
) {
    for peer in other.addresses() {
        let Some(local) = me.address_like(peer) else { continue };
        if out.contains_key(&peer) || peer == local {
            continue;
        }
        out.insert(peer, make(peer, local));
    }
}

/// Whether a BGPPeer's `node` / `nodeSelector` picks `n` (neither: every node).
fn selects(p: &BgpPeerSpec, n: &NodeInfo) -> bool {
    match (&p.node, &p.node_selector) {
        (Some(name), _) => *name == n.name,
        (None, Some(sel)) => Selector::parse(sel).is_ok_and(|s| s.matches(&n.labels)),
        (None, None) => true,
    }
}

/// Whether `me` has a session under this BGPPeer: it picks `me`, or (with `peerSelector`)
/// `me` is one of the nodes it peers with. The agent reads a peer's password only then.
pub fn involves(p: &BgpPeerSpec, me: &NodeInfo) -> bool {
    let target = p
        .peer_selector
        .as_deref()
        .is_some_and(|t| Selector::parse(t).is_ok_and(|s| s.matches(&me.labels)));
    selects(p, me) || target
}

/// The sessions of `me`, keyed by peer address. A peer address reached by several rules
/// keeps the first: explicit `BGPPeer`s over the mesh, per-node over global.
pub fn compute(
    me: &NodeInfo,
    nodes: &[NodeInfo],
    config: &BgpConfigurationSpec,
    peers: &[BgpPeerSpec],
) -> BTreeMap<IpAddr, Peering> {
    let my_as = me.asn.unwrap_or(config.as_number);
    let mut out = BTreeMap::new();
    let mine: Vec<IpAddr> = me.addresses().collect();

    // Explicit peers: node-specific first, then global.
    let mut explicit: Vec<(&BgpPeerSpec, PeerType)> = Vec::new();
    for p in peers.iter().filter(|p| p.peer_ip.is_some() && selects(p, me)) {
        let global = p.node.is_none() && p.node_selector.is_none();
        explicit.push((p, if global { PeerType::Global } else { PeerType::NodeSpecific }));
    }
    explicit.sort_by_key(|(_, kind)| *kind == PeerType::Global);
    for (p, kind) in explicit {
        let Some(peer_ip) = p.peer_ip else { continue };
        let Some(local) = me.address_like(peer_ip) else { continue };
        if mine.contains(&peer_ip) || out.contains_key(&peer_ip) {
            continue;
        }
        let node = nodes.iter().find(|n| n.addresses().any(|a| a == peer_ip));
        let remote_as = p.as_number.unwrap_or(my_as);
        let session = Peering {
            // Only a peer that is one of our nodes makes the same session from its end.
            passive: node.is_some() && peer_ip < local,
            node: node.map(|n| n.name.clone()),
            ..Peering::to_node(peer_ip, local, remote_as, kind, false, "")
        };
        out.insert(peer_ip, session.with_peer(p, config));
    }

    // Peers picked by `peerSelector`: the nodes `node`/`nodeSelector` pick peer with the
    // nodes `peerSelector` picks, and those with them (Calico's route-reflector fabrics).
    for p in peers {
        let Some(targets) = p.peer_selector.as_deref().and_then(|t| Selector::parse(t).ok()) else {
            continue;
        };
        let (i_source, i_target) = (selects(p, me), targets.matches(&me.labels));
        for other in nodes.iter().filter(|n| n.name != me.name) {
            if !((i_source && targets.matches(&other.labels)) || (i_target && selects(p, other))) {
                continue;
            }
            let other_as = other.asn.unwrap_or(config.as_number);
            let kind = match (me.cluster_id, other.cluster_id) {
                (Some(_), None) => PeerType::RouteReflectorClient,
                (_, Some(_)) => PeerType::RouteReflector,
                (None, None) if p.node.is_none() && p.node_selector.is_none() => PeerType::Global,
                (None, None) => PeerType::NodeSpecific,
            };
            let rr_client = kind == PeerType::RouteReflectorClient && other_as == my_as;
            sessions_to(&mut out, me, other, |peer, local| {
                Peering::to_node(peer, local, other_as, kind, rr_client, &other.name)
                    .with_peer(p, config)
            });
        }
    }

    // The mesh, or route reflection between nodes.
    for other in nodes.iter().filter(|n| n.name != me.name) {
        let other_as = other.asn.unwrap_or(config.as_number);
        let kind = match (me.cluster_id, other.cluster_id) {
            // Reflectors peer with everyone; another cluster's reflector is an ordinary iBGP
            // peer, a node without a cluster is our client.
            (Some(a), Some(b)) if a == b => PeerType::RouteReflector,
            (Some(_), Some(_)) => PeerType::RouteReflector,
            (Some(_), None) => PeerType::RouteReflectorClient,
            (None, Some(_)) => PeerType::RouteReflector,
            (None, None) if config.node_to_node_mesh_enabled => PeerType::Mesh,
            (None, None) => continue,
        };
        let rr_client = kind == PeerType::RouteReflectorClient && other_as == my_as;
        let restart = config
            .node_mesh_max_restart_time
            .map(|restart_time| GracefulRestart { enabled: true, restart_time });
        let bfd = bfd_timers(config.node_mesh_failure_detection_mode, None, config);
        sessions_to(&mut out, me, other, |peer, local| Peering {
            graceful_restart: restart.clone(),
            bfd,
            ..Peering::to_node(peer, local, other_as, kind, rr_client, &other.name)
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, v4: &str, v6: Option<&str>) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            labels: BTreeMap::new(),
            ipv4: Some(v4.parse().expect("v4")),
            ipv6: v6.map(|a| a.parse().expect("v6")),
            asn: None,
            cluster_id: None,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn the_mesh_peers_every_node_per_family_and_the_higher_address_waits() {
        let nodes = vec![
            node("h1", "10.0.0.9", Some("fd00::9")),
            node("h2", "10.0.0.10", Some("fd00::10")),
            node("h3", "10.0.0.2", None),
        ];
        let got = compute(&nodes[0], &nodes, &BgpConfigurationSpec::default(), &[]);
        let keys: Vec<IpAddr> = got.keys().copied().collect();
        assert_eq!(keys, vec![ip("10.0.0.2"), ip("10.0.0.10"), ip("fd00::10")]);
        // Compared as numbers: 10.0.0.10 is higher than 10.0.0.9, so it waits; we connect.
        assert!(!got[&ip("10.0.0.10")].passive);
        assert!(got[&ip("10.0.0.2")].passive);
        assert!(got.values().all(|p| p.kind == PeerType::Mesh && p.remote_as == 64512));
        assert_eq!(got[&ip("fd00::10")].local, ip("fd00::9"));
    }

    #[test]
    fn reflectors_replace_the_mesh_and_explicit_peers_come_first() {
        let mut rr = node("rr1", "10.0.0.1", None);
        rr.cluster_id = Some("10.255.0.1".parse().expect("id"));
        let nodes = vec![rr.clone(), node("h1", "10.0.0.11", None), node("h2", "10.0.0.12", None)];
        let config =
            BgpConfigurationSpec { node_to_node_mesh_enabled: false, ..Default::default() };
        let client = compute(&nodes[1], &nodes, &config, &[]);
        assert_eq!(client.len(), 1, "a client peers with the reflector only: {client:?}");
        assert_eq!(client[&ip("10.0.0.1")].kind, PeerType::RouteReflector);
        let reflector = compute(&rr, &nodes, &config, &[]);
        assert_eq!(reflector.len(), 2);
        assert!(reflector.values().all(|p| p.route_reflector_client));

        let tor = BgpPeerSpec {
            peer_ip: Some(ip("10.0.0.254")),
            port: None,
            as_number: Some(65001),
            peer_selector: None,
            local_as_number: None,
            node: None,
            node_selector: Some("rack == 'a'".into()),
            password: None,
            hold_time: Some(9),
            keepalive_time: None,
            graceful_restart: None,
            next_hop_mode: None,
            source_address: None,
            failure_detection_mode: FailureDetectionMode::None,
            bfd: None,
        };
        let mut h1 = nodes[1].clone();
        h1.labels.insert("rack".into(), "a".into());
        let got = compute(&h1, &nodes, &config, std::slice::from_ref(&tor));
        assert_eq!(got[&ip("10.0.0.254")].kind, PeerType::NodeSpecific);
        assert!(!got[&ip("10.0.0.254")].passive, "we always connect to routers");
        assert!(got[&ip("10.0.0.254")].bind_local, "from the node's address by default");
        assert!(
            !compute(&nodes[2], &nodes, &config, std::slice::from_ref(&tor))
                .contains_key(&ip("10.0.0.254"))
        );
        let unbound = BgpPeerSpec { source_address: Some(SourceAddress::None), ..tor };
        let got = compute(&h1, &nodes, &config, &[unbound]);
        assert!(!got[&ip("10.0.0.254")].bind_local, "sourceAddress: None");
    }

    #[test]
    fn a_peer_selector_peers_both_ends_as_route_reflector_fabrics_are_written() {
        // Calico's pattern: every node peers with the nodes labelled route-reflector; the
        // reflectors (with a cluster id) get every other node as a client.
        let mut rr = node("rr1", "10.0.0.1", None);
        rr.cluster_id = Some("10.255.0.1".parse().expect("id"));
        rr.labels.insert("route-reflector".into(), "true".into());
        let nodes = vec![rr.clone(), node("h1", "10.0.0.11", None), node("h2", "10.0.0.12", None)];
        let config = BgpConfigurationSpec {
            node_to_node_mesh_enabled: false,
            node_mesh_max_restart_time: Some(300),
            ..Default::default()
        };
        let to_rr = BgpPeerSpec {
            peer_ip: None,
            port: Some(1179),
            as_number: None,
            peer_selector: Some("route-reflector == 'true'".into()),
            local_as_number: Some(65010),
            node: None,
            node_selector: Some("all()".into()),
            password: None,
            hold_time: None,
            keepalive_time: None,
            graceful_restart: None,
            next_hop_mode: None,
            source_address: None,
            failure_detection_mode: FailureDetectionMode::None,
            bfd: None,
        };
        let client = compute(&nodes[1], &nodes, &config, std::slice::from_ref(&to_rr));
        assert_eq!(client.keys().copied().collect::<Vec<_>>(), vec![ip("10.0.0.1")]);
        let up = &client[&ip("10.0.0.1")];
        assert_eq!(
            (up.kind, up.port, up.local_as),
            (PeerType::RouteReflector, Some(1179), Some(65010))
        );
        // The reflector has sessions under the peer (so its agent reads the password) even
        // when the nodeSelector does not pick it.
        let racked = BgpPeerSpec { node_selector: Some("rack == 'a'".into()), ..to_rr.clone() };
        assert!(involves(&racked, &rr) && !involves(&racked, &nodes[1]));
        let reflector = compute(&rr, &nodes, &config, std::slice::from_ref(&to_rr));
        assert_eq!(reflector.len(), 2, "{reflector:?}");
        assert!(
            reflector
                .values()
                .all(|p| p.route_reflector_client && p.kind == PeerType::RouteReflectorClient)
        );
        // Without the BGPPeer and with the mesh on, mesh sessions take the mesh restart time.
        let mesh = BgpConfigurationSpec { node_to_node_mesh_enabled: true, ..config };
        let got = compute(&nodes[1], &nodes[1..], &mesh, &[]);
        assert_eq!(
            got[&ip("10.0.0.12")].graceful_restart.as_ref().map(|g| g.restart_time),
            Some(300)
        );
    }

    #[test]
    fn bfd_timers_come_from_the_peer_then_the_bgp_configuration_then_the_defaults() {
        let nodes = vec![node("n1", "10.0.0.1", None), node("n2", "10.0.0.2", None)];
        let config = BgpConfigurationSpec {
            bfd: Some(BfdSpec {
                minimum_recv_interval: Some("200ms".into()),
                multiplier: Some(5),
                ..Default::default()
            }),
            ..Default::default()
        };
        let tor = BgpPeerSpec {
            peer_ip: Some(ip("10.0.0.254")),
            as_number: Some(65001),
            failure_detection_mode: FailureDetectionMode::BfdIfDirectlyConnected,
            bfd: Some(BfdSpec {
                minimum_send_interval: Some("100ms".into()),
                ..Default::default()
            }),
            ..serde_json::from_value(serde_json::json!({})).expect("an empty peer")
        };
        let got = compute(&nodes[0], &nodes, &config, std::slice::from_ref(&tor));
        assert_eq!(
            got[&ip("10.0.0.254")].bfd,
            Some(BfdTimers { min_rx_ms: 200, min_tx_ms: 100, multiplier: 5 })
        );
        assert_eq!(got[&ip("10.0.0.2")].bfd, None, "the mesh runs BFD only when asked");
        let mesh = BgpConfigurationSpec {
            node_mesh_failure_detection_mode: FailureDetectionMode::BfdIfDirectlyConnected,
            bfd: None,
            ..config
        };
        let got = compute(&nodes[0], &nodes, &mesh, &[]);
        assert_eq!(
            got[&ip("10.0.0.2")].bfd,
            Some(BfdTimers { min_rx_ms: 300, min_tx_ms: 300, multiplier: 3 })
        );
        let off = BgpPeerSpec { failure_detection_mode: FailureDetectionMode::None, ..tor };
        let got = compute(&nodes[0], &nodes, &mesh, &[off]);
        assert_eq!(got[&ip("10.0.0.254")].bfd, None, "timers alone do not turn BFD on");
    }
}
