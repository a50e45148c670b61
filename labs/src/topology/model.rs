//! The resolved topology: every inheritance rule applied, every name checked, every address
//! assigned. Deploy works only from these types, never from raw YAML.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::profile::Profile;

/// containerlab's default MTU for data links (`constants.DefaultLinkMTU`).
pub const DEFAULT_LINK_MTU: u32 = 9500;
/// containerlab's default management subnet.
pub const DEFAULT_MGMT_SUBNET: &str = "172.20.20.0/24";

/// A topology file, resolved.
#[derive(Debug, Clone)]
pub struct Topology {
    /// The lab name (`name:`), possibly overridden by the loader.
    pub name: String,
    /// `prefix:` as written; `None` when absent.
    pub prefix: Option<String>,
    /// The topology file, absolute.
    pub file: PathBuf,
    /// The directory relative paths resolve against.
    pub dir: PathBuf,
    pub mgmt: Mgmt,
    /// Nodes sorted by name; `Node::index` is the position here.
    pub nodes: Vec<Node>,
    /// `kind: bridge` nodes: Linux bridges in the lab's private namespace, each link to one a
    /// port of it (one L2 segment); they are not nodes (no namespace, no processes).
    pub bridges: Vec<String>,
    pub links: Vec<Link>,
    /// Keys that were accepted but have no effect here, one line each.
    pub warnings: Vec<String>,
}

impl Topology {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The namespace and container name of a node, by containerlab's `prefix` rules.
    pub fn long_name(&self, node: &str) -> String {
        long_name(&self.name, self.prefix.as_deref(), node)
    }

    /// The private namespace that holds the management bridge.
    pub fn mgmt_netns(&self) -> String {
        mgmt_netns_name(&self.name)
    }

    /// The lab directory: `clab-<lab>` beside the topology file, or under `base` when given.
    pub fn lab_dir(&self, base: Option<&Path>) -> PathBuf {
        base.unwrap_or(&self.dir).join(format!("clab-{}", self.name))
    }

    /// The data interfaces of a node, in link order.
    pub fn interfaces_of<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Endpoint> + 'a {
        self.links.iter().flat_map(|l| l.endpoints.iter()).filter(move |e| e.node == node)
    }
}

/// containerlab's container (and here namespace) name for a node.
pub fn long_name(lab: &str, prefix: Option<&str>, node: &str) -> String {
    match prefix {
        None => format!("clab-{lab}-{node}"),
        Some("") => node.to_string(),
        Some("__lab-name") => format!("{lab}-{node}"),
        Some(p) => format!("{p}-{lab}-{node}"),
    }
}

/// The name of a lab's private management namespace.
pub fn mgmt_netns_name(lab: &str) -> String {
    format!("tartanlab-{lab}")
}

/// The management network: a bridge in the lab's private namespace, `eth0` in every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mgmt {
    pub network: String,
    pub bridge: String,
    pub ipv4_subnet: Ipv4Net,
    pub ipv4_gw: Ipv4Addr,
    pub ipv6_subnet: Option<Ipv6Net>,
    pub ipv6_gw: Option<Ipv6Addr>,
    pub mtu: u32,
}

/// A node's management addresses, with the subnet's prefix length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MgmtAddrs {
    pub ipv4: Ipv4Net,
    pub ipv6: Option<Ipv6Net>,
}

/// `network-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// A management `eth0` on the lab bridge.
    Bridge,
    /// `network-mode: none`: no `eth0`, and links may use that name.
    None,
}

/// One `exec` line: the text as written and its shlex split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecLine {
    pub text: String,
    pub argv: Vec<String>,
}

/// A bind mount `src:dst[:ro]`, with `src` resolved against the topology directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub src: PathBuf,
    pub dst: PathBuf,
    pub read_only: bool,
}

/// A node, with every inherited setting applied.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub index: usize,
    pub long_name: String,
    pub kind: String,
    pub image: String,
    /// The group (`""` when none), after inheritance.
    pub group: String,
    /// `entrypoint` + `cmd`, shlex-split; `None` when neither is set.
    pub cmd: Option<Vec<String>>,
    pub exec: Vec<ExecLine>,
    pub env: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// Sorted by destination, so a directory is mounted before files inside it.
    pub binds: Vec<Bind>,
    pub sysctls: BTreeMap<String, String>,
    pub mgmt: Option<MgmtAddrs>,
    pub network_mode: NetworkMode,
    pub startup_delay_secs: u64,
    pub hostname: String,
    pub profile: Profile,
    /// `certificate: {issue: true}`: the extra names (`sans`) of the certificate the lab's CA
    /// signs for this node at deploy time; `None` when it gets none.
    pub certificate: Option<Vec<String>>,
}

/// One end of a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub node: String,
    pub interface: String,
    pub mac: Option<[u8; 6]>,
    /// Exported to `topology-data.json` only, as containerlab does for `linux` nodes.
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub vars: Option<serde_json::Value>,
}

/// A veth link between two endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub index: usize,
    pub endpoints: [Endpoint; 2],
    pub mtu: u32,
    pub vars: Option<serde_json::Value>,
    pub labels: BTreeMap<String, String>,
}

impl Link {
    /// `a:eth1 <-> b:eth1`, for messages.
    pub fn describe(&self) -> String {
        let [a, z] = &self.endpoints;
        format!("{}:{} <-> {}:{}", a.node, a.interface, z.node, z.interface)
    }
}

/// Formats a MAC address the usual way.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}
