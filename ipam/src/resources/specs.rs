//! The typed specs of every stored kind, with their defaults. Field names follow calicoctl's
//! (`cidr`, `blockSize`, `natOutgoing`, `peerIP`, `asNumber`, ...). Defaults are applied by
//! `validate`, so a stored resource says explicitly what it means.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

/// The default AS number of the fabric (Calico's).
pub const DEFAULT_AS: u32 = 64512;
/// Default leak grace period: an allocation nobody uses is released after this long.
pub const DEFAULT_LEAK_GRACE_SECONDS: u64 = 900;

/// `IPPool`: a range of container addresses.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IpPoolSpec {
    pub cidr: IpNet,
    /// Prefix length of the pool's blocks: default 26 (IPv4) / 122 (IPv6). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u8>,
    /// No new addresses come from a disabled pool; existing ones stay.
    #[serde(default)]
    pub disabled: bool,
    /// Masquerade traffic from the pool to destinations outside every pool.
    #[serde(default)]
    pub nat_outgoing: bool,
    /// Which nodes may take addresses from the pool; default `all()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    /// Never advertise this pool's blocks over BGP.
    #[serde(default, rename = "disableBGPExport")]
    pub disable_bgp_export: bool,
}

impl IpPoolSpec {
    /// The block prefix length, defaulted by family.
    pub fn block_prefix(&self) -> u8 {
        self.block_size.unwrap_or(match self.cidr {
            IpNet::V4(_) => 26,
            IpNet::V6(_) => 122,
        })
    }

    /// The node selector text, defaulted to `all()`.
    pub fn selector_text(&self) -> &str {
        self.node_selector.as_deref().unwrap_or("all()")
    }
}

/// `IPAMConfig` (singleton `default`): global IPAM behaviour.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IpamConfigSpec {
    /// Never borrow addresses from blocks affine to other hosts.
    #[serde(default)]
    pub strict_affinity: bool,
    /// At most this many blocks per host; 0 means unlimited (really).
    #[serde(default)]
    pub max_blocks_per_host: u32,
    /// A released address is not handed out again for this long.
    #[serde(default)]
    pub ip_cooldown_seconds: u32,
    /// Leaked addresses and empty blocks are given back after this long; 0 turns collection off.
    #[serde(default = "default_leak_grace")]
    pub leak_grace_period_seconds: u64,
}

fn default_leak_grace() -> u64 {
    DEFAULT_LEAK_GRACE_SECONDS
}

impl Default for IpamConfigSpec {
    fn default() -> Self {
        IpamConfigSpec {
            strict_affinity: false,
            max_blocks_per_host: 0,
            ip_cooldown_seconds: 0,
            leak_grace_period_seconds: DEFAULT_LEAK_GRACE_SECONDS,
        }
    }
}

/// `BGPConfiguration` (singleton `default`): fabric-wide BGP settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BgpConfigurationSpec {
    #[serde(default = "default_as")]
    pub as_number: u32,
    /// The node agents' log level: `Trace`, `Debug`, `Info`, `Warning`, `Error`, `Fatal`
    /// (Calico's names; default the agent's `--log-level`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_severity_screen: Option<String>,
    /// Graceful-restart time of node-to-node mesh sessions, in seconds (default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_mesh_max_restart_time: Option<u16>,
    /// Advertised by every node, as Calico advertises its service ranges (`{cidr}` each):
    /// anycast ranges that every host serves.
    #[serde(default, rename = "serviceClusterIPs", skip_serializing_if = "Vec::is_empty")]
    pub service_cluster_ips: Vec<ServiceCidr>,
    #[serde(default, rename = "serviceExternalIPs", skip_serializing_if = "Vec::is_empty")]
    pub service_external_ips: Vec<ServiceCidr>,
    #[serde(default, rename = "serviceLoadBalancerIPs", skip_serializing_if = "Vec::is_empty")]
    pub service_load_balancer_ips: Vec<ServiceCidr>,
    /// Interfaces BIRD would not take routes from; Tartan takes none from any interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_interfaces: Vec<String>,
    #[serde(default = "yes")]
    pub node_to_node_mesh_enabled: bool,
    #[serde(default = "default_bgp_port")]
    pub listen_port: u16,
    /// Named communities that `prefixAdvertisements` may refer to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<NamedCommunity>,
    /// Communities attached to the advertisements of addresses within a CIDR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefix_advertisements: Vec<PrefixAdvertisement>,
    /// BFD timers for every session that runs BFD without timers of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdSpec>,
    /// Whether sessions of the node-to-node mesh (and to route reflectors found by label)
    /// run BFD.
    #[serde(default, skip_serializing_if = "FailureDetectionMode::is_none")]
    pub node_mesh_failure_detection_mode: FailureDetectionMode,
}

/// Calico's `failureDetectionMode`: whether a session runs BFD.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FailureDetectionMode {
    /// The BGP hold timer alone (the default).
    #[default]
    None,
    /// BFD (RFC 5880/5881, single hop) when the peer is on a subnet of one of the host's
    /// interfaces; the hold timer alone otherwise.
    #[serde(rename = "BFDIfDirectlyConnected")]
    BfdIfDirectlyConnected,
}

impl FailureDetectionMode {
    pub fn is_none(&self) -> bool {
        *self == FailureDetectionMode::None
    }
}

/// BFD timers, with Calico's names and duration strings (`100ms`, `1s`). Unset fields take
/// the BGPConfiguration's `bfd`, then 300ms x 3.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BfdSpec {
    /// The fastest this host accepts packets (10ms to 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_recv_interval: Option<String>,
    /// The fastest this host would like to send (10ms to 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum_send_interval: Option<String>,
    /// Missed packets that declare the path dead (2 to 255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<u8>,
}

/// BFD timers resolved to numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdTimers {
    pub min_rx_ms: u64,
    pub min_tx_ms: u64,
    pub multiplier: u8,
}

impl BfdSpec {
    /// This spec's timers, each unset one from `defaults`, then 300ms x 3; an error names
    /// the field (`bfd.minimumSendInterval`) and the range.
    pub fn resolve(&self, defaults: Option<&BfdSpec>) -> Result<BfdTimers, String> {
        let pick = |f: fn(&BfdSpec) -> Option<&String>| f(self).or(defaults.and_then(f)).cloned();
        let interval = |field: &str, v: Option<String>| -> Result<u64, String> {
            let Some(v) = v else { return Ok(300) };
            let ms = super::duration::millis(&v).ok_or_else(|| {
                format!("bfd.{field}: {v:?} is not a duration: write 100ms, 1s or 1m")
            })?;
            if !(10..=60_000).contains(&ms) {
                return Err(format!("bfd.{field}: {v} is out of range: 10ms to 60s"));
            }
            Ok(ms)
        };
        let multiplier = self.multiplier.or(defaults.and_then(|d| d.multiplier)).unwrap_or(3);
        if multiplier < 2 {
            return Err(format!("bfd.multiplier: {multiplier} is out of range: 2 to 255"));
        }
        Ok(BfdTimers {
            min_rx_ms: interval("minimumRecvInterval", pick(|b| b.minimum_recv_interval.as_ref()))?,
            min_tx_ms: interval("minimumSendInterval", pick(|b| b.minimum_send_interval.as_ref()))?,
            multiplier,
        })
    }
}

/// One range of `serviceClusterIPs` and its kin.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ServiceCidr {
    pub cidr: IpNet,
}

impl BgpConfigurationSpec {
    /// Every range advertised by every node (the service ranges).
    pub fn service_ranges(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.service_cluster_ips
            .iter()
            .chain(&self.service_external_ips)
            .chain(&self.service_load_balancer_ips)
            .map(|s| s.cidr)
    }
}

impl Default for BgpConfigurationSpec {
    fn default() -> Self {
        BgpConfigurationSpec {
            as_number: DEFAULT_AS,
            log_severity_screen: None,
            node_mesh_max_restart_time: None,
            service_cluster_ips: Vec::new(),
            service_external_ips: Vec::new(),
            service_load_balancer_ips: Vec::new(),
            ignored_interfaces: Vec::new(),
            node_to_node_mesh_enabled: true,
            listen_port: 179,
            communities: Vec::new(),
            prefix_advertisements: Vec::new(),
            bfd: None,
            node_mesh_failure_detection_mode: FailureDetectionMode::None,
        }
    }
}

fn default_as() -> u32 {
    DEFAULT_AS
}
fn yes() -> bool {
    true
}
fn default_bgp_port() -> u16 {
    179
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NamedCommunity {
    pub name: String,
    /// `AS:N` (standard) or `A:B:C` (large).
    pub value: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PrefixAdvertisement {
    pub cidr: IpNet,
    /// Community values or names from `communities`.
    pub communities: Vec<String>,
}

/// `BGPPeer`: a peering of every node (no `node` / `nodeSelector`), of one node, or of the
/// nodes a selector picks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BgpPeerSpec {
    /// The peer's address; absent when `peerSelector` picks nodes of the fabric instead.
    #[serde(default, rename = "peerIP", skip_serializing_if = "Option::is_none")]
    pub peer_ip: Option<IpAddr>,
    /// The peer's TCP port (default the BGPConfiguration's `listenPort`); Calico writes it in
    /// `peerIP` (`10.0.0.1:1179`, `[fd00::1]:1179`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The peer's AS; with `peerSelector` each selected node's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<u32>,
    /// Peer with the nodes this selects (and they with the nodes `node`/`nodeSelector` pick):
    /// how route-reflector fabrics are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_selector: Option<String>,
    /// The AS this node speaks as on these sessions (default its own).
    #[serde(default, rename = "localASNumber", skip_serializing_if = "Option::is_none")]
    pub local_as_number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Password>,
    /// Hold time in seconds (0 or 3–65535); default 90.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<u16>,
    /// Keepalive interval in seconds; default a third of the hold time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<GracefulRestart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_hop_mode: Option<NextHopMode>,
    /// The source of the connections we open: the node's address (default), or whatever the
    /// kernel picks for the route to the peer (`None`: a host dual-homed to two leaves
    /// reaches each from the address on its link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<SourceAddress>,
    /// `BFDIfDirectlyConnected` runs BFD on these sessions (default `None`).
    #[serde(default, skip_serializing_if = "FailureDetectionMode::is_none")]
    pub failure_detection_mode: FailureDetectionMode,
    /// BFD timers for these sessions; unset ones come from the BGPConfiguration's `bfd`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdSpec>,
}

/// Calico's `sourceAddress` of a BGPPeer.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceAddress {
    #[serde(rename = "UseNodeIP")]
    UseNodeIp,
    None,
}

/// A TCP-MD5 password: inline, or read by the agent from a file on its host (which keeps the
/// secret out of the datastore).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Password {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GracefulRestart {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Seconds a peer keeps our routes while we restart (RFC 4724); default 120.
    #[serde(default = "default_restart_time")]
    pub restart_time: u16,
}

fn default_restart_time() -> u16 {
    120
}

/// How the next hop of routes sent to the peer is chosen.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHopMode {
    /// Ourselves towards eBGP peers, unchanged towards iBGP peers (RFC 4271 §5.1.3).
    Auto,
    /// Always ourselves.
    #[serde(rename = "Self")]
    SelfAddress,
    /// Never changed.
    Keep,
}

/// `Node`: one host of the fabric. Labels live in `metadata.labels`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<NodeBgpSpec>,
    /// What Calico's node records about the host (`addresses`, `interfaces`, `orchRefs`):
    /// kept as written, for the operator; Tartan's agent does not read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addresses: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interfaces: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orch_refs: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeBgpSpec {
    /// The node's IPv4 address with its subnet (`10.0.0.1/24`); a bare address means /32.
    #[serde(default, deserialize_with = "host_net", skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<IpNet>,
    #[serde(default, deserialize_with = "host_net", skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<IpNet>,
    /// The node's own AS; default the BGPConfiguration's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<u32>,
    /// Makes the node a route reflector of this cluster.
    #[serde(default, rename = "routeReflectorClusterID", skip_serializing_if = "Option::is_none")]
    pub route_reflector_cluster_id: Option<Ipv4Addr>,
}

/// An address with an optional prefix length: `10.0.0.1/24` or `10.0.0.1` (= /32).
fn host_net<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpNet>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    if text.contains('/') {
        text.parse().map(Some).map_err(serde::de::Error::custom)
    } else {
        text.parse::<IpAddr>()
            .map(|a| Some(IpNet::from(a)))
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not an IP address")))
    }
}

/// `WorkloadEndpoint`: a container's interface, reported by its node's agent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadEndpointSpec {
    pub node: String,
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The IPAM handle holding the addresses (`<network>.<containerID>`).
    pub handle: String,
    /// The host side of the veth.
    pub interface_name: String,
    pub ip_networks: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// The profiles consulted when no policy decides, in order (its network's by default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
}

impl WorkloadEndpointSpec {
    /// `profiles`, or the workload's network (the handle's `<network>.` prefix) when none are
    /// recorded.
    pub fn profile_names(&self) -> Vec<String> {
        if !self.profiles.is_empty() {
            return self.profiles.clone();
        }
        match self.handle.rsplit_once('.') {
            Some((network, _)) if !network.is_empty() => vec![network.to_string()],
            _ => Vec::new(),
        }
    }
}

/// `NodeCredential` (named after its node): the SHA-256 of the secret part of a node agent's
/// token. The token itself is shown once, when issued.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeCredentialSpec {
    pub node: String,
    /// Lower-case hex.
    pub token_sha256: String,
}

/// `NodeStatus`: what a node's agent last reported about itself.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeStatusSpec {
    /// When the agent sent this (RFC 3339).
    pub reported_at: String,
    #[serde(default)]
    pub agent_version: String,
    #[serde(default)]
    pub peers: Vec<BgpPeerStatus>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BgpPeerStatus {
    #[serde(rename = "peerIP")]
    pub peer_ip: IpAddr,
    /// `node-to-node mesh`, `global`, `node specific` or `route reflector`.
    pub peer_type: String,
    /// The RFC 4271 state: `Idle`, `Connect`, `Active`, `OpenSent`, `OpenConfirm`, `Established`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<String>,
    #[serde(default)]
    pub routes_received: u64,
    #[serde(default)]
    pub routes_advertised: u64,
    /// The session's BFD, when it runs BFD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdPeerStatus>,
}

/// A BFD session as the agent reports it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BfdPeerStatus {
    /// `up`, `down`, `init` or `shutdown` (FRR's words).
    pub state: String,
    /// The interval we send at, after negotiation, in milliseconds.
    pub transmit_interval_ms: u64,
    /// Silence that declares the path dead, in milliseconds, once the peer is heard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_time_ms: Option<u64>,
    /// Why the session last went down (`control detection time expired`, ...).
    pub diagnostic: String,
    pub flaps: u64,
}
