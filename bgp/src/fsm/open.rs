//! The OPEN exchange: the OPEN we send (capabilities from the session's configuration) and what
//! a received OPEN negotiates — or the NOTIFICATION that refuses it (RFC 4271 §6.2, RFC 5492).

use std::net::Ipv4Addr;

use super::SessionConfig;
use crate::types::{Asn, Family, FamilySet};
use crate::wire::capability::{AddPathFamily, ExtNextHopFamily, GrFamily, code};
use crate::wire::notification::{code as ncode, open as nopen};
use crate::wire::{Capability, Codec, Notification, Open};

/// What an OPEN exchange agreed on; fixed for the life of the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    pub remote_as: Asn,
    pub remote_id: Ipv4Addr,
    /// Hold time in seconds; 0 means no hold timer and no keepalives.
    pub hold_time: u16,
    pub keepalive: u16,
    /// Families both sides announced (IPv4 unicast alone when the peer announced none,
    /// RFC 4760 §8).
    pub families: FamilySet,
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    /// IPv4 routes may carry an IPv6 next hop (RFC 8950), both ways.
    pub extended_next_hop: bool,
    /// The peer's graceful restart capability, if it sent one.
    pub peer_gr: Option<PeerGr>,
    pub sent: Open,
    pub received: Open,
}

/// A peer's graceful restart capability (RFC 4724 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerGr {
    /// The peer has restarted (R bit).
    pub restarting: bool,
    /// Seconds the peer asks us to keep its routes after the session drops.
    pub restart_time: u16,
    /// Families the peer preserves across a restart.
    pub families: FamilySet,
    /// Of those, the families whose forwarding state the peer kept this time (F bit).
    pub forwarding: FamilySet,
}

/// The OPEN a session sends: every capability is one the configuration asked for, nothing more
/// (peers have broken over capabilities they did not expect).
pub fn build(cfg: &SessionConfig, restarting: bool) -> Open {
    let mut caps: Vec<Capability> = cfg.families.iter().map(Capability::multiprotocol).collect();
    caps.push(Capability::RouteRefresh);
    caps.push(Capability::EnhancedRouteRefresh);
    caps.push(Capability::FourOctetAs(cfg.local_as));
    if let Some(gr) = cfg.graceful_restart {
        caps.push(Capability::GracefulRestart {
            restart_state: restarting,
            notification: false,
            restart_time: gr.restart_time.min(0x0fff),
            families: cfg
                .families
                .iter()
                .map(|f| {
                    let (afi, safi) = f.afi_safi();
                    GrFamily { afi, safi, forwarding_preserved: gr.forwarding_preserved }
                })
                .collect(),
        });
    }
    let add_path: Vec<AddPathFamily> = cfg
        .add_path_receive
        .iter()
        .filter(|f| cfg.families.contains(*f))
        .map(|f| {
            let (afi, safi) = f.afi_safi();
            AddPathFamily { afi, safi, receive: true, send: false }
        })
        .collect();
    if !add_path.is_empty() {
        caps.push(Capability::AddPath(add_path));
    }
    if cfg.extended_message {
        caps.push(Capability::ExtendedMessage);
    }
    if cfg.extended_next_hop && cfg.families.contains(Family::Ipv4Unicast) {
        let (afi, safi) = Family::Ipv4Unicast.afi_safi();
        caps.push(Capability::ExtendedNextHop(vec![ExtNextHopFamily {
            afi,
            safi: u16::from(safi),
            next_hop_afi: crate::types::AFI_IPV6,
        }]));
    }
    Open::new(cfg.local_as, cfg.hold_time, cfg.router_id, caps)
}

/// Checks a received OPEN against the configuration and what we sent (RFC 4271 §6.2).
pub fn negotiate(
    cfg: &SessionConfig,
    sent: &Open,
    received: &Open,
) -> Result<Negotiated, Notification> {
    let remote_as = received.asn();
    if let Some(expected) = cfg.remote_as {
        if remote_as != expected {
            return Err(Notification::new(
                ncode::OPEN,
                nopen::BAD_PEER_AS,
                received.my_as.to_be_bytes().to_vec(),
            ));
        }
    }
    // RFC 6286 §2.1: the same identifier on both ends is only an error within one AS.
    if received.bgp_id == cfg.router_id && remote_as == cfg.local_as {
        return Err(Notification::new(ncode::OPEN, nopen::BAD_BGP_IDENTIFIER, vec![]));
    }
    let mut theirs = FamilySet::EMPTY;
    let mut any_mp = false;
    for c in &received.capabilities {
        if let Capability::Multiprotocol { afi, safi } = c {
            any_mp = true;
            if let Some(f) = Family::from_afi_safi(*afi, *safi) {
                theirs.insert(f);
            }
        }
    }
    if !any_mp {
        theirs.insert(Family::Ipv4Unicast);
    }
    let families = cfg.families.intersection(theirs);
    if families.is_empty() {
        // RFC 5492 §3: the data lists the capabilities the peer lacks.
        let mut data = Vec::new();
        for f in cfg.families.iter() {
            crate::wire::capability::encode(&Capability::multiprotocol(f), &mut data);
        }
        return Err(Notification::new(ncode::OPEN, nopen::UNSUPPORTED_CAPABILITY, data));
    }
    // RFC 4271 §4.2: the smaller hold time; 1 and 2 were refused when the OPEN was decoded.
    let hold_time = cfg.hold_time.min(received.hold_time);
    let keepalive = match (hold_time, cfg.keepalive) {
        (0, _) => 0,
        (h, Some(k)) if k > 0 => k.min(h / 3).max(1),
        (h, _) => (h / 3).max(1),
    };
    let peer_gr = received.capabilities.iter().find_map(|c| match c {
        Capability::GracefulRestart { restart_state, restart_time, families: fams, .. } => {
            let mut gr = PeerGr {
                restarting: *restart_state,
                restart_time: *restart_time,
                families: FamilySet::EMPTY,
                forwarding: FamilySet::EMPTY,
            };
            for f in fams {
                if let Some(family) = Family::from_afi_safi(f.afi, f.safi) {
                    gr.families.insert(family);
                    if f.forwarding_preserved {
                        gr.forwarding.insert(family);
                    }
                }
            }
            Some(gr)
        }
        _ => None,
    });
    let extended_next_hop = families.contains(Family::Ipv4Unicast)
        && [sent, received].iter().all(|o| {
            o.capabilities.iter().any(|c| match c {
                Capability::ExtendedNextHop(entries) => entries.iter().any(|e| {
                    e.afi == crate::types::AFI_IPV4 && e.next_hop_afi == crate::types::AFI_IPV6
                }),
                _ => false,
            })
        });
    Ok(Negotiated {
        codec: Codec::negotiated(sent, received),
        remote_as,
        remote_id: received.bgp_id,
        hold_time,
        keepalive,
        families,
        route_refresh: received.has(code::ROUTE_REFRESH),
        enhanced_route_refresh: sent.has(code::ENHANCED_ROUTE_REFRESH)
            && received.has(code::ENHANCED_ROUTE_REFRESH),
        extended_next_hop,
        peer_gr,
        sent: sent.clone(),
        received: received.clone(),
    })
}
