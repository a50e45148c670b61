//! The agent's BGP speaker: sessions and advertisements made to match the datastore (only what
//! changed is touched), and learned best paths handed to the route programmer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tartan_bgp::config::{PeerAddress, PeerConfig, SpeakerConfig};
use tartan_bgp::io::{PeerStatus, Speaker};
use tartan_bgp::policy::{Action, Conditions, Policy, PrefixMatch, Rule};
use tartan_bgp::rib::{NextHopMode, Origination};
use tartan_bgp::types::{Asn, NextHop, Prefix};
use tartan_ipam::resources::IpPoolSpec;
use tartan_ipam::resources::NextHopMode as SpecNextHop;
use tokio::sync::Mutex;

use super::peerings::{self, Peering};
use super::{AgentError, Shared, Snapshot, advertisements};

/// One session as the status report shows it.
#[derive(Debug, Clone)]
pub(crate) struct PeerReport {
    pub peering: Peering,
    pub bgp: Option<PeerStatus>,
    pub bfd: Option<tartan_bfd::SessionStatus>,
}

/// The speaker and what we last told it.
#[derive(Debug, Clone)]
pub(crate) struct Bgp {
    pub speaker: Speaker,
    inner: Arc<Mutex<Applied>>,
}

#[derive(Debug, Default)]
struct Applied {
    peers: BTreeMap<IpAddr, (Peering, PeerConfig)>,
    originated: BTreeSet<IpNet>,
    /// The natOutgoing rules in the kernel (`None` inside: no table), once set.
    nat: Option<Option<String>>,
}

fn router_id(snap: &Snapshot, node: &str) -> Ipv4Addr {
    if let Some(IpAddr::V4(a)) = snap.me.as_ref().and_then(|m| m.ipv4) {
        return a;
    }
    // No IPv4 address: a stable id from the name, as Calico's `hash` router id.
    let mut h: u32 = 0x811c_9dc5;
    for b in node.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    Ipv4Addr::from(h | 0x0100_0000)
}

fn prefix(net: &IpNet) -> Option<Prefix> {
    net.trunc().to_string().parse().ok()
}

fn net(p: &Prefix) -> Option<IpNet> {
    p.to_string().parse().ok()
}

/// What every peer hears: routes inside the pools that export to BGP, originated here or
/// learned within our AS (an empty AS path: over the mesh, or reflected by a route reflector);
/// never a route learned over eBGP, so a host dual-homed to two leaves is never a path between
/// them, and never anything outside the pools (a leaf's link subnets). Calico exports pool
/// routes only too, though it also passes on pool routes learned over eBGP.
///
/// The BGPConfiguration's service ranges (`serviceClusterIPs` and its kin), which every node
/// originates, are exported as they are.
fn export_policy(pools: &[IpPoolSpec], services: &[IpNet]) -> Policy {
    let mut prefixes: Vec<PrefixMatch> = pools
        .iter()
        .filter(|p| !p.disable_bgp_export)
        .filter_map(|p| {
            let prefix = prefix(&p.cidr)?;
            let max = if p.cidr.addr().is_ipv4() { 32 } else { 128 };
            Some(PrefixMatch { prefix, ge: prefix.prefix_len(), le: max })
        })
        .collect();
    prefixes.extend(services.iter().filter_map(|s| {
        let prefix = prefix(s)?;
        Some(PrefixMatch { prefix, ge: prefix.prefix_len(), le: prefix.prefix_len() })
    }));
    let rules = if prefixes.is_empty() {
        Vec::new()
    } else {
        let conditions = Conditions { prefixes, as_path_max_len: Some(0), ..Default::default() };
        vec![Rule { conditions, action: Action::Accept, set: Default::default() }]
    };
    Policy { rules, default: Action::Reject }
}

/// The longest TCP-MD5 key (RFC 2385 keys are at most 80 bytes in Linux).
const PASSWORD_LIMIT: u64 = 80;

/// A password file: a regular file (not a device or a FIFO) of at most [`PASSWORD_LIMIT`]
/// bytes, one line.
fn read_password_file(path: &std::path::Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut text = String::new();
    file.take(PASSWORD_LIMIT + 3).read_to_string(&mut text).map_err(|e| e.to_string())?;
    let text = text.trim_end_matches(['\n', '\r']);
    if text.is_empty() || text.len() as u64 > PASSWORD_LIMIT {
        return Err(format!("a TCP-MD5 password is 1 to {PASSWORD_LIMIT} bytes"));
    }
    Ok(text.to_string())
}

fn peer_config(p: &Peering, port: u16, export: &Arc<Policy>) -> Result<PeerConfig, String> {
    let mut pc = PeerConfig::new(p.peer, Asn(p.remote_as));
    pc.port = p.port.unwrap_or(port);
    pc.local_as = p.local_as.map(Asn);
    pc.restart_time = p.graceful_restart.as_ref().map(|g| g.restart_time);
    pc.export = export.clone();
    pc.local_address = p.bind_local.then_some(p.local);
    pc.passive = p.passive;
    pc.connect_retry = 2;
    pc.route_reflector_client = p.route_reflector_client;
    if let Some(h) = p.hold_time {
        pc.hold_time = h;
    }
    pc.keepalive = p.keepalive;
    pc.graceful_restart = p.graceful_restart.as_ref().is_none_or(|g| g.enabled);
    pc.next_hop = match p.next_hop {
        Some(SpecNextHop::SelfAddress) => NextHopMode::SelfAddress,
        Some(SpecNextHop::Keep) => NextHopMode::Keep,
        _ => NextHopMode::Auto,
    };
    pc.password = match &p.password {
        None => None,
        Some(pw) => match (&pw.value, &pw.file) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(f)) => Some(
                read_password_file(std::path::Path::new(f))
                    .map_err(|e| format!("reading the password of {} from {f}: {e}", p.peer))?,
            ),
            (None, None) => None,
        },
    };
    pc.description = Some(match &p.node {
        Some(n) => format!("{} {n}", p.kind.name()),
        None => p.kind.name().to_string(),
    });
    pc.bfd = p.bfd.filter(|_| directly_connected(p.peer)).map(|t| tartan_bfd::Intervals {
        min_rx: Duration::from_millis(t.min_rx_ms),
        min_tx: Duration::from_millis(t.min_tx_ms),
        multiplier: t.multiplier,
    });
    Ok(pc)
}

/// `BFDIfDirectlyConnected`: the peer is on the subnet of one of this host's interfaces (and
/// so one hop away, where single-hop BFD's TTL 255 holds).
fn directly_connected(peer: IpAddr) -> bool {
    let on_link = tartan_bgp::io::socket::interface_addresses().iter().any(|a| a.on_link(peer));
    if !on_link {
        tracing::debug!(%peer, "BFDIfDirectlyConnected: not on a subnet of this host, no BFD");
    }
    on_link
}

impl Bgp {
    pub async fn start(shared: &Shared, snap: &Snapshot) -> Result<Bgp, AgentError> {
        let me = snap.me.clone();
        let asn = me.as_ref().and_then(|m| m.asn).unwrap_or(snap.config.as_number);
        let mut cfg = SpeakerConfig::new(Asn(asn), router_id(snap, &shared.cfg.node_name));
        cfg.listen = vec![SocketAddr::new(
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            snap.config.listen_port,
        )];
        cfg.multipath = true;
        cfg.cluster_id = me.and_then(|m| m.cluster_id);
        let speaker = Speaker::start(cfg).await?;
        tracing::info!(asn, port = snap.config.listen_port, "BGP speaker started");
        Ok(Bgp { speaker, inner: Arc::new(Mutex::new(Applied::default())) })
    }

    /// Makes sessions and advertisements match `snap`. Returns whether everything applied.
    pub async fn apply(&self, shared: &Shared, snap: &Snapshot) -> bool {
        let mut ok = true;
        if let Some(hook) = &shared.cfg.set_log_level {
            // BGPConfiguration logSeverityScreen, as Calico's node takes it; else ours.
            let level = snap
                .config
                .log_severity_screen
                .as_deref()
                .and_then(crate::agent::config::calico_level)
                .unwrap_or(shared.cfg.log_level);
            (hook.0)(level);
        }
        let Some(me) = snap.me.clone() else {
            tracing::warn!(
                "Node {} is not in the datastore (deleted?): keeping the current sessions",
                shared.cfg.node_name
            );
            return false;
        };
        let mut applied = self.inner.lock().await;
        // Advertisements before sessions: a session that comes up (or back, after a
        // restart) must get the full table before its End-of-RIB, or a graceful-restart
        // helper purges our stale routes and then learns them again — a flap.
        let workloads: Vec<IpNet> = {
            let state = shared.state.lock().await;
            state.endpoints.all().flat_map(|e| e.ips.clone()).collect()
        };
        let adverts = advertisements(snap, &workloads);
        let withdraw: Vec<IpNet> = applied.originated.difference(&adverts).copied().collect();
        for n in withdraw {
            let Some(p) = prefix(&n) else { continue };
            match self.speaker.withdraw(p).await {
                Ok(()) => {
                    applied.originated.remove(&n);
                }
                Err(e) => {
                    tracing::warn!("withdrawing {n}: {e}");
                    ok = false;
                }
            }
        }
        for n in adverts.difference(&applied.originated.clone()) {
            let Some(p) = prefix(n) else { continue };
            match self.speaker.originate(p, Origination::default()).await {
                Ok(()) => {
                    applied.originated.insert(*n);
                }
                Err(e) => {
                    tracing::warn!("advertising {n}: {e}");
                    ok = false;
                }
            }
        }
        let want = peerings::compute(&me, &snap.nodes, &snap.config, &snap.peers);
        let gone: Vec<IpAddr> =
            applied.peers.keys().filter(|k| !want.contains_key(k)).copied().collect();
        for addr in gone {
            match self.speaker.remove_peer(PeerAddress::Single(addr)).await {
                Ok(()) => {
                    applied.peers.remove(&addr);
                    tracing::info!("peer {addr} removed");
                }
                Err(e) => {
                    tracing::warn!("removing peer {addr}: {e}");
                    ok = false;
                }
            }
        }
        let services: Vec<IpNet> = snap.config.service_ranges().collect();
        let export = Arc::new(export_policy(&snap.pools, &services));
        for (addr, p) in &want {
            let pc = match peer_config(p, snap.config.listen_port, &export) {
                Ok(pc) => pc,
                Err(e) => {
                    tracing::warn!("{e}");
                    ok = false;
                    continue;
                }
            };
            let result = match applied.peers.get(addr) {
                Some((_, old)) if *old == pc => continue,
                Some(_) => self.speaker.update_peer(pc.clone()).await,
                None => self.speaker.add_peer(pc.clone()).await,
            };
            match result {
                Ok(()) => {
                    tracing::info!(
                        "peer {addr} ({}, AS {}{})",
                        p.kind.name(),
                        p.remote_as,
                        if p.passive { ", passive" } else { "" }
                    );
                    applied.peers.insert(*addr, (p.clone(), pc));
                }
                Err(e) => {
                    tracing::warn!("configuring peer {addr}: {e}");
                    ok = false;
                }
            }
        }

        let nat = super::nat::ruleset(&snap.pools);
        if applied.nat.as_ref() != Some(&nat) {
            match super::nat::apply(nat.as_deref()).await {
                Ok(()) => {
                    tracing::info!(
                        "natOutgoing rules {}",
                        if nat.is_some() { "set" } else { "cleared" }
                    );
                    applied.nat = Some(nat);
                }
                Err(e) => {
                    tracing::warn!("natOutgoing: {e}");
                    ok = false;
                }
            }
        }
        drop(applied);

        let mut state = shared.state.lock().await;
        state.programmer.set_blocks(snap.blocks.clone());
        // Routes that fail are logged by `reconcile`, once each.
        match shared.reconcile(&mut state).await {
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("reading the kernel's routes: {e}");
                ok = false;
            }
        }
        ok
    }

    /// Sync passes: on every kick (watch events, CNI changes), on failure after a second, and
    /// every resync interval.
    pub async fn sync_loop(self, shared: Arc<Shared>, first_ok: bool) {
        let mut ok = first_ok;
        // After a failed pass, retry soon, then less and less often (a configuration error does
        // not fix itself every second); any change in the datastore still wakes us at once.
        let mut backoff = Duration::from_secs(1);
        loop {
            let wait = if ok {
                backoff = Duration::from_secs(1);
                shared.cfg.resync
            } else {
                let w = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                w
            };
            let _ = tokio::time::timeout(wait, shared.dirty.notified()).await;
            // Let a burst of changes settle into one pass.
            tokio::time::sleep(Duration::from_millis(50)).await;
            ok = match super::snapshot(&shared.client, &shared.cfg.node_name).await {
                Ok(snap) => self.apply(&shared, &snap).await,
                Err(e) => {
                    tracing::warn!("reading the datastore: {e}");
                    false
                }
            };
        }
    }

    /// Next hops BFD finds dead leave the kernel's ECMP groups at once, one write per group
    /// however many routes use it, ahead of BGP's withdrawals (which then find the kernel as
    /// they want it).
    pub async fn bfd_loop(self, shared: Arc<Shared>) {
        let mut failures = self.speaker.bfd_failures().await;
        while let Some(ev) = failures.recv().await {
            let mut state = shared.state.lock().await;
            match state.programmer.drop_gateway(ev.peer).await {
                Ok(writes) => {
                    let took = ev.at.elapsed();
                    if let Ok(mut h) = shared.metrics.bfd_to_kernel.lock() {
                        h.observe(took);
                    }
                    tracing::info!(
                        peer = %ev.peer,
                        "BFD Down: next hop out of {writes} nexthop group(s) {:.1} ms after detection",
                        took.as_secs_f64() * 1000.0
                    );
                }
                Err(e) => tracing::warn!(peer = %ev.peer, "BFD Down: {e}; the routes follow BGP"),
            }
        }
    }

    /// Learned best paths to the route programmer.
    pub async fn feed_loop(self, shared: Arc<Shared>) {
        let mut feed = match self.speaker.subscribe().await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!("subscribing to the BGP feed: {e}");
                return;
            }
        };
        while let Some(mut batch) = feed.recv().await {
            while let Ok(more) = feed.try_recv() {
                batch.extend(more);
            }
            let mut state = shared.state.lock().await;
            for change in batch {
                let Some(dst) = net(&change.prefix) else { continue };
                let hops = change.best.filter(|b| b.from.is_some()).map(|b| {
                    b.next_hops
                        .iter()
                        .map(|h| match h {
                            NextHop::V4(a) => IpAddr::V4(*a),
                            NextHop::V6 { global, .. } => IpAddr::V6(*global),
                        })
                        .collect::<Vec<_>>()
                });
                state.programmer.set_learned(dst, hops);
            }
            if let Err(e) = shared.reconcile(&mut state).await {
                tracing::warn!("programming learned routes: {e}");
            }
        }
    }

    /// Each session this node should have, with its BGP and BFD state when the speaker has
    /// one.
    pub async fn peers(&self) -> Vec<PeerReport> {
        let (status, bfd) = match self.speaker.status().await {
            Ok(s) => (s.peers, s.bfd),
            Err(e) => {
                tracing::debug!("speaker status: {e}");
                (Vec::new(), Vec::new())
            }
        };
        let applied = self.inner.lock().await;
        applied
            .peers
            .values()
            .map(|(p, pc)| PeerReport {
                peering: p.clone(),
                bgp: status
                    .iter()
                    .find(|s| s.address.parse::<IpAddr>().ok() == Some(p.peer))
                    .cloned(),
                bfd: pc.bfd.and_then(|_| bfd.iter().find(|b| b.peer == p.peer).cloned()),
            })
            .collect()
    }

    pub async fn shutdown(&self) {
        self.speaker.shutdown(true).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::tests::pool;
    use tartan_bgp::wire::{AsPath, PathAttributes};

    #[test]
    fn peers_hear_pool_routes_of_our_own_as_and_nothing_learned_over_ebgp() {
        let policy = export_policy(
            &[pool("10.66.0.0/16", true), pool("fd00:66::/48", true), pool("10.77.0.0/16", false)],
            &["10.96.0.0/12".parse().expect("service range")],
        );
        let ours = PathAttributes::default();
        let ebgp = PathAttributes {
            as_path: Some(AsPath::sequence([Asn(65101), Asn(65203)])),
            ..Default::default()
        };
        let hears = |p: &str, a: &PathAttributes| {
            policy.evaluate(p.parse().expect("prefix"), a).action == Action::Accept
        };
        assert!(hears("10.66.1.0/26", &ours), "our block, or a reflected one");
        assert!(hears("10.66.3.4/32", &ours), "a borrowed address");
        assert!(hears("fd00:66::40/122", &ours));
        assert!(!hears("10.66.2.0/26", &ebgp), "another rack's block, learned from a leaf");
        assert!(!hears("10.0.12.0/31", &ours), "not in a pool");
        assert!(!hears("10.77.1.0/26", &ours), "a pool with disableBGPExport");
        assert!(!hears("10.0.0.0/8", &ours), "wider than the pool");
        assert!(hears("10.96.0.0/12", &ours), "a service range, as originated");
        assert!(!hears("10.96.1.0/24", &ours), "only the range itself");
        assert!(
            export_policy(&[], &[]).evaluate("10.66.1.0/26".parse().expect("p"), &ours).action
                == Action::Reject
        );
    }
}
