//! What `tartan node` is told: the node's name, the API, where its addresses come from, its
//! directories and intervals. Plain data, read by every other part of the agent.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::autodetect::Method as Detect;
use crate::routes::DEFAULT_PROTOCOL;

/// Where the node's BGP address comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressSource {
    Explicit(IpNet),
    Detect(Detect),
    /// Keep what the Node resource says (or none).
    None,
}

/// Everything `tartan node` is told.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub node_name: String,
    pub api: String,
    pub token: Option<String>,
    /// Read the token from here (waiting for the file when it is not there yet).
    pub token_file: Option<PathBuf>,
    /// The CA that signs the API servers' certificates (for https:// addresses).
    pub ca_file: Option<PathBuf>,
    pub ipv4: AddressSource,
    pub ipv6: AddressSource,
    pub asn: Option<u32>,
    /// Labels merged into the Node's (BGPPeer and pool node selectors match them).
    pub labels: BTreeMap<String, String>,
    /// Makes this node a route reflector of the cluster (written to its Node).
    pub rr_cluster_id: Option<std::net::Ipv4Addr>,
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    /// Where to install the CNI network configuration (`None`: do not).
    pub cni_conf_dir: Option<PathBuf>,
    /// Where runtimes look for plugins: `tartan` is linked there to this executable.
    pub cni_bin_dir: Option<PathBuf>,
    pub network_name: String,
    pub route_protocol: u8,
    /// Learned routes name shared nexthop objects where the kernel has them.
    pub nexthop_objects: bool,
    /// Workload MTU; 0 = the MTU of the interface with the node's address.
    pub mtu: u32,
    pub resync: Duration,
    pub status_interval: Duration,
    /// Where to serve Prometheus metrics (`None`: nowhere).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Sets the process's log level: BGPConfiguration `logSeverityScreen` when it has one,
    /// else `log_level` (the command line's).
    pub set_log_level: Option<LogLevelHook>,
    pub log_level: tracing::level_filters::LevelFilter,
}

/// What changes the process's log level (installed by the binary's logging).
#[derive(Clone)]
pub struct LogLevelHook(
    pub std::sync::Arc<dyn Fn(tracing::level_filters::LevelFilter) + Send + Sync>,
);

impl std::fmt::Debug for LogLevelHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogLevelHook")
    }
}

/// Calico's `logSeverityScreen` names as levels (`Fatal` logs errors).
pub fn calico_level(name: &str) -> Option<tracing::level_filters::LevelFilter> {
    use tracing::level_filters::LevelFilter;
    Some(match name.to_ascii_lowercase().as_str() {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "info" => LevelFilter::INFO,
        "warning" => LevelFilter::WARN,
        "error" | "fatal" => LevelFilter::ERROR,
        _ => return None,
    })
}

impl AgentConfig {
    pub fn new(node_name: &str, api: &str) -> AgentConfig {
        AgentConfig {
            node_name: node_name.to_string(),
            api: api.to_string(),
            token: None,
            ca_file: None,
            set_log_level: None,
            log_level: tracing::level_filters::LevelFilter::INFO,
            token_file: None,
            ipv4: AddressSource::Detect(Detect::FirstFound),
            ipv6: AddressSource::None,
            asn: None,
            labels: Default::default(),
            rr_cluster_id: None,
            state_dir: PathBuf::from("/var/lib/tartan/node"),
            socket: PathBuf::from(crate::cni::types::DEFAULT_AGENT_SOCKET),
            cni_conf_dir: Some(PathBuf::from("/etc/cni/net.d")),
            cni_bin_dir: Some(PathBuf::from("/opt/cni/bin")),
            network_name: "tartan".into(),
            route_protocol: DEFAULT_PROTOCOL,
            nexthop_objects: true,
            mtu: 0,
            resync: Duration::from_secs(60),
            status_interval: Duration::from_secs(5),
            metrics_listen: None,
        }
    }
}
