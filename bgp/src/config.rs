//! What the speaker is told: its own identity and each neighbour's settings, as the embedding
//! API takes them. The daemon's TOML file ([`crate::daemon`]) and the node agent both build
//! these; the state machine and the RIB each get their part.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::fsm::{GracefulRestart, SessionConfig};
use crate::policy::Policy;
use crate::rib::{NextHopMode, PeerSettings, RibConfig};
use crate::types::{Asn, Family, FamilySet, Prefix};

/// Defaults, chosen for a fabric (and said in `--help` and the docs).
pub mod defaults {
    /// RFC 4271 §10 suggests 90 s; fabrics usually configure 9 (with keepalive 3).
    pub const HOLD_TIME: u16 = 90;
    /// Seconds between connection attempts. RFC 4271 suggests 120; inside a data centre a
    /// peer that is down comes back in seconds.
    pub const CONNECT_RETRY: u16 = 5;
    /// Seconds peers keep our routes while we restart (RFC 4724 suggests at most the hold time;
    /// a node agent restart takes longer than 90 s only when something is wrong).
    pub const RESTART_TIME: u16 = 120;
    /// Seconds before a session stopped for too many prefixes is tried again.
    pub const MAX_PREFIX_RESTART: u64 = 60;
    pub const PORT: u16 = 179;
}

/// The speaker as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeakerConfig {
    pub asn: Asn,
    pub router_id: Ipv4Addr,
    /// Addresses to accept connections on; empty: never listen (every peer must be active).
    pub listen: Vec<SocketAddr>,
    /// Cluster ID for route reflection; the router ID when unset.
    pub cluster_id: Option<Ipv4Addr>,
    /// Keep equal-cost paths for the kernel feed (ECMP).
    pub multipath: bool,
    /// Graceful restart (RFC 4724) with every peer that has it enabled; `None` disables it.
    pub graceful_restart: Option<GracefulRestart>,
}

impl SpeakerConfig {
    pub fn new(asn: Asn, router_id: Ipv4Addr) -> SpeakerConfig {
        SpeakerConfig {
            asn,
            router_id,
            listen: vec![SocketAddr::new(
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                defaults::PORT,
            )],
            cluster_id: None,
            multipath: false,
            graceful_restart: Some(GracefulRestart {
                restart_time: defaults::RESTART_TIME,
                forwarding_preserved: true,
            }),
        }
    }

    pub fn rib(&self) -> RibConfig {
        RibConfig {
            local_as: self.asn,
            router_id: self.router_id,
            cluster_id: self.cluster_id,
            multipath: self.multipath,
        }
    }
}

/// Who a neighbour is: one address, or a range any address of which may connect (dynamic
/// peers, always passive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerAddress {
    Single(IpAddr),
    Range(Prefix),
}

impl PeerAddress {
    pub fn matches(&self, a: IpAddr) -> bool {
        match (self, a) {
            (PeerAddress::Single(x), a) => *x == a,
            (PeerAddress::Range(p), IpAddr::V4(v4)) => {
                crate::types::Ipv4Prefix::new(v4, 32).is_some_and(|h| p.contains(Prefix::V4(h)))
            }
            (PeerAddress::Range(p), IpAddr::V6(v6)) => {
                crate::types::Ipv6Prefix::new(v6, 128).is_some_and(|h| p.contains(Prefix::V6(h)))
            }
        }
    }
}

impl std::fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddress::Single(a) => write!(f, "{a}"),
            PeerAddress::Range(p) => write!(f, "{p}"),
        }
    }
}

/// One neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub address: PeerAddress,
    /// Interface of a link-local neighbour (`fe80::1%eth0`), for the connection's scope.
    pub interface: Option<String>,
    /// The neighbour's AS; `None` accepts any (dynamic peers only).
    pub remote_as: Option<Asn>,
    /// Our AS towards this neighbour, if not the speaker's.
    pub local_as: Option<Asn>,
    /// Source address for connections we open.
    pub local_address: Option<IpAddr>,
    /// The neighbour's TCP port (179).
    pub port: u16,
    pub passive: bool,
    pub hold_time: u16,
    pub keepalive: Option<u16>,
    pub connect_retry: u16,
    pub families: FamilySet,
    pub route_reflector_client: bool,
    pub next_hop: NextHopMode,
    /// TCP-MD5 key (RFC 2385), at most 80 octets.
    pub password: Option<String>,
    /// Announce graceful restart to this neighbour (when the speaker has it enabled).
    pub graceful_restart: bool,
    /// The restart time announced to this neighbour, if not the speaker's.
    pub restart_time: Option<u16>,
    /// Accept ADD-PATH (RFC 7911) from the neighbour.
    pub add_path_receive: bool,
    pub extended_message: bool,
    /// IPv4 routes with IPv6 next hops (RFC 8950).
    pub extended_next_hop: bool,
    pub max_prefixes: Option<u32>,
    /// How long a session stopped for too many prefixes stays down before it is tried again.
    pub max_prefixes_restart: Duration,
    pub import: Arc<Policy>,
    pub export: Arc<Policy>,
    pub description: Option<String>,
    /// Run BFD (RFC 5880/5881) with this neighbour at these timers: its failure takes the
    /// session down at once. Single neighbours only.
    pub bfd: Option<tartan_bfd::Intervals>,
}

impl PeerConfig {
    /// A neighbour with every default: active, both families of its address... IPv4 unicast
    /// for an IPv4 neighbour, IPv6 unicast for an IPv6 one; accept and send everything.
    pub fn new(address: IpAddr, remote_as: Asn) -> PeerConfig {
        let family = match address {
            IpAddr::V4(_) => Family::Ipv4Unicast,
            IpAddr::V6(_) => Family::Ipv6Unicast,
        };
        PeerConfig {
            address: PeerAddress::Single(address),
            interface: None,
            remote_as: Some(remote_as),
            local_as: None,
            local_address: None,
            port: defaults::PORT,
            passive: false,
            hold_time: defaults::HOLD_TIME,
            keepalive: None,
            connect_retry: defaults::CONNECT_RETRY,
            families: FamilySet::single(family),
            route_reflector_client: false,
            next_hop: NextHopMode::Auto,
            password: None,
            graceful_restart: true,
            restart_time: None,
            add_path_receive: false,
            extended_message: false,
            extended_next_hop: false,
            max_prefixes: None,
            max_prefixes_restart: Duration::from_secs(defaults::MAX_PREFIX_RESTART),
            import: Arc::new(Policy::accept_all()),
            export: Arc::new(Policy::accept_all()),
            description: None,
            bfd: None,
        }
    }

    /// A dynamic neighbour: any address in `range` may connect; passive.
    pub fn range(range: Prefix, remote_as: Option<Asn>) -> PeerConfig {
        let base = match range {
            Prefix::V4(p) => PeerConfig::new(IpAddr::V4(p.addr()), Asn(0)),
            Prefix::V6(p) => PeerConfig::new(IpAddr::V6(p.addr()), Asn(0)),
        };
        PeerConfig { address: PeerAddress::Range(range), remote_as, passive: true, ..base }
    }

    /// The state machine's part, for a session with the neighbour at `address`.
    pub fn session(&self, speaker: &SpeakerConfig) -> SessionConfig {
        SessionConfig {
            local_as: self.local_as.unwrap_or(speaker.asn),
            remote_as: self.remote_as,
            router_id: speaker.router_id,
            passive: self.passive || matches!(self.address, PeerAddress::Range(_)),
            hold_time: self.hold_time,
            keepalive: self.keepalive,
            connect_retry: Duration::from_secs(u64::from(self.connect_retry.max(1))),
            families: self.families,
            add_path_receive: if self.add_path_receive { self.families } else { FamilySet::EMPTY },
            extended_message: self.extended_message,
            extended_next_hop: self.extended_next_hop,
            graceful_restart: speaker.graceful_restart.filter(|_| self.graceful_restart).map(|g| {
                GracefulRestart { restart_time: self.restart_time.unwrap_or(g.restart_time), ..g }
            }),
        }
    }

    /// The RIB's part, for the neighbour at `address`.
    pub fn rib(&self, speaker: &SpeakerConfig, address: IpAddr) -> PeerSettings {
        PeerSettings {
            name: address.to_string(),
            address,
            local_as: self.local_as.unwrap_or(speaker.asn),
            rr_client: self.route_reflector_client,
            next_hop: self.next_hop,
            import: self.import.clone(),
            export: self.export.clone(),
            max_prefixes: self.max_prefixes,
        }
    }

    /// Whether changing from `self` to `new` needs the session reset (anything the OPEN or the
    /// connection carries); policy and next-hop changes do not.
    pub fn needs_reset(&self, new: &PeerConfig) -> bool {
        let strip = |c: &PeerConfig| PeerConfig {
            import: Arc::new(Policy::default()),
            export: Arc::new(Policy::default()),
            next_hop: NextHopMode::Auto,
            route_reflector_client: false,
            max_prefixes: None,
            max_prefixes_restart: Duration::ZERO,
            description: None,
            // BFD runs beside the session.
            bfd: None,
            // How we connect matters only while there is no session.
            connect_retry: 0,
            passive: false,
            ..c.clone()
        };
        strip(self) != strip(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_the_addresses_inside_them() {
        let r = PeerAddress::Range("10.0.0.0/24".parse().expect("prefix"));
        assert!(r.matches("10.0.0.77".parse().expect("addr")));
        assert!(!r.matches("10.0.1.1".parse().expect("addr")));
        assert!(!r.matches("::1".parse().expect("addr")));
    }

    #[test]
    fn policy_changes_do_not_reset_the_session_but_timers_do() {
        let a = PeerConfig::new("10.0.0.2".parse().expect("addr"), Asn(65002));
        let b = PeerConfig { export: Arc::new(Policy::reject_all()), ..a.clone() };
        assert!(!a.needs_reset(&b));
        let c = PeerConfig { hold_time: 9, ..a.clone() };
        assert!(a.needs_reset(&c));
    }

    #[test]
    fn a_neighbour_speaks_the_family_of_its_address_by_default() {
        let v6 = PeerConfig::new("2001:db8::2".parse().expect("addr"), Asn(65002));
        assert_eq!(v6.families, FamilySet::single(Family::Ipv6Unicast));
        let s = v6.session(&SpeakerConfig::new(Asn(65001), Ipv4Addr::new(10, 0, 0, 1)));
        assert!(s.graceful_restart.is_some());
        assert!(!s.passive);
        let dynamic = PeerConfig::range("10.0.0.0/8".parse().expect("prefix"), None);
        assert!(dynamic.session(&SpeakerConfig::new(Asn(1), Ipv4Addr::LOCALHOST)).passive);
    }
}
