//! The registry of kinds: each kind's name, plural (its URL segment), the aliases the CLI
//! accepts and who writes it. A new kind is a new row here plus its spec type.

use std::fmt;

/// Every kind the API serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    IpPool,
    IpamConfig,
    BgpConfiguration,
    BgpPeer,
    Node,
    WorkloadEndpoint,
    NodeStatus,
    NodeCredential,
    IpamBlock,
    BlockAffinity,
    IpamHandle,
    GlobalNetworkPolicy,
    Profile,
    GlobalNetworkSet,
}

/// Who may write a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// Operators apply it with `tartanctl`.
    Operator,
    /// The node agents report it; operators read it (and may delete stale ones).
    Agent,
    /// A read-only view computed by the IPAM; changed only through `/v1/ipam/...`.
    Ipam,
    /// Issued by the server (`POST /v1/credentials/<node>`), read and revoked by the admin.
    Server,
}

/// Static facts about a kind.
#[derive(Debug)]
pub struct KindInfo {
    pub kind: &'static str,
    /// Calico's kind name (`IPAMConfiguration`), where it differs from `kind`.
    pub calico_kind: Option<&'static str>,
    pub plural: &'static str,
    pub aliases: &'static [&'static str],
    pub writer: Writer,
    /// The one allowed name of a singleton kind.
    pub singleton: Option<&'static str>,
    pub summary: &'static str,
}

const KINDS: &[(Kind, KindInfo)] = &[
    (
        Kind::IpPool,
        KindInfo {
            kind: "IPPool",
            calico_kind: None,
            plural: "ippools",
            aliases: &["ippool", "ippools", "pool", "pools", "ipp", "ipps"],
            writer: Writer::Operator,
            singleton: None,
            summary: "a range of container addresses, cut into blocks",
        },
    ),
    (
        Kind::IpamConfig,
        KindInfo {
            kind: "IPAMConfig",
            calico_kind: Some("IPAMConfiguration"),
            plural: "ipamconfigs",
            aliases: &["ipamconfig", "ipamconfigs", "ipamconfiguration", "ipamconfigurations"],
            writer: Writer::Operator,
            singleton: Some("default"),
            summary: "global IPAM settings (strict affinity, block cap, cooldown, leak grace)",
        },
    ),
    (
        Kind::BgpConfiguration,
        KindInfo {
            kind: "BGPConfiguration",
            calico_kind: None,
            plural: "bgpconfigurations",
            aliases: &["bgpconfiguration", "bgpconfigurations", "bgpconfig", "bgpconfigs"],
            writer: Writer::Operator,
            singleton: Some("default"),
            summary: "global BGP settings (AS number, node-to-node mesh, port, communities)",
        },
    ),
    (
        Kind::BgpPeer,
        KindInfo {
            kind: "BGPPeer",
            calico_kind: None,
            plural: "bgppeers",
            aliases: &["bgppeer", "bgppeers", "peer", "peers", "bgpp", "bgpps", "bp", "bps"],
            writer: Writer::Operator,
            singleton: None,
            summary: "a BGP peering of all nodes, one node, or selected nodes (e.g. a ToR router)",
        },
    ),
    (
        Kind::Node,
        KindInfo {
            kind: "Node",
            calico_kind: None,
            plural: "nodes",
            aliases: &["node", "nodes", "no", "nos"],
            writer: Writer::Operator,
            singleton: None,
            summary: "a host of the fabric: its BGP addresses, AS and labels",
        },
    ),
    (
        Kind::WorkloadEndpoint,
        KindInfo {
            kind: "WorkloadEndpoint",
            calico_kind: None,
            plural: "workloadendpoints",
            aliases: &["workloadendpoint", "workloadendpoints", "wep", "weps"],
            writer: Writer::Agent,
            singleton: None,
            summary: "a container's interface and addresses, as its node reports it",
        },
    ),
    (
        Kind::NodeStatus,
        KindInfo {
            kind: "NodeStatus",
            calico_kind: None,
            plural: "nodestatuses",
            aliases: &["nodestatus", "nodestatuses"],
            writer: Writer::Agent,
            singleton: None,
            summary: "a node's BGP sessions and agent state, as the node reports it",
        },
    ),
    (
        Kind::NodeCredential,
        KindInfo {
            kind: "NodeCredential",
            calico_kind: None,
            plural: "nodecredentials",
            aliases: &["nodecredential", "nodecredentials", "credential", "credentials"],
            writer: Writer::Server,
            singleton: None,
            summary: "a node agent's credential (its token's hash; issue and revoke with `tartanctl node credential`)",
        },
    ),
    (
        Kind::IpamBlock,
        KindInfo {
            kind: "IPAMBlock",
            calico_kind: None,
            plural: "blocks",
            aliases: &["ipamblock", "ipamblocks", "block", "blocks"],
            writer: Writer::Ipam,
            singleton: None,
            summary: "a block of a pool and its allocations (read-only)",
        },
    ),
    (
        Kind::BlockAffinity,
        KindInfo {
            kind: "BlockAffinity",
            calico_kind: None,
            plural: "blockaffinities",
            aliases: &["blockaffinity", "blockaffinities", "affinity", "affinities"],
            writer: Writer::Ipam,
            singleton: None,
            summary: "a host's claim on a block (read-only)",
        },
    ),
    (
        Kind::IpamHandle,
        KindInfo {
            kind: "IPAMHandle",
            calico_kind: None,
            plural: "ipamhandles",
            aliases: &["ipamhandle", "ipamhandles", "handle", "handles"],
            writer: Writer::Ipam,
            singleton: None,
            summary: "the addresses held under one handle (read-only)",
        },
    ),
    (
        Kind::GlobalNetworkPolicy,
        KindInfo {
            kind: "GlobalNetworkPolicy",
            calico_kind: None,
            plural: "globalnetworkpolicies",
            aliases: &[
                "globalnetworkpolicy",
                "globalnetworkpolicies",
                "gnp",
                "gnps",
                "policy",
                "policies",
            ],
            writer: Writer::Operator,
            singleton: None,
            summary: "rules for the workloads a selector picks (ingress, egress; Allow, Deny, Pass, Log)",
        },
    ),
    (
        Kind::Profile,
        KindInfo {
            kind: "Profile",
            calico_kind: None,
            plural: "profiles",
            aliases: &["profile", "profiles", "pro", "pros"],
            writer: Writer::Operator,
            singleton: None,
            summary: "a network's labels for its workloads and the rules when no policy decides",
        },
    ),
    (
        Kind::GlobalNetworkSet,
        KindInfo {
            kind: "GlobalNetworkSet",
            calico_kind: None,
            plural: "globalnetworksets",
            aliases: &["globalnetworkset", "globalnetworksets", "gns", "netset", "netsets"],
            writer: Writer::Operator,
            singleton: None,
            summary: "labelled addresses outside the fabric, for rules to select",
        },
    ),
];

impl Kind {
    /// Every kind, in registry order.
    pub fn all() -> impl Iterator<Item = Kind> {
        KINDS.iter().map(|(k, _)| *k)
    }

    /// The kind's static facts.
    pub fn info(self) -> &'static KindInfo {
        // Every variant has a row: the `every_kind_has_a_row` test holds this.
        KINDS.iter().find(|(k, _)| *k == self).map(|(_, i)| i).unwrap_or(&KINDS[0].1)
    }

    /// By kind name (`IPPool`), plural (`ippools`) or alias (`pool`), case-insensitively.
    pub fn lookup(name: &str) -> Option<Kind> {
        let lower = name.to_ascii_lowercase();
        KINDS
            .iter()
            .find(|(_, i)| {
                i.kind.eq_ignore_ascii_case(&lower)
                    || i.plural == lower
                    || i.aliases.contains(&lower.as_str())
            })
            .map(|(k, _)| *k)
    }

    /// By the kind a document names (`IPPool`, or Calico's `IPAMConfiguration`), any case.
    pub fn from_document_kind(name: &str) -> Option<Kind> {
        KINDS
            .iter()
            .find(|(_, i)| {
                i.kind.eq_ignore_ascii_case(name)
                    || i.calico_kind.is_some_and(|c| c.eq_ignore_ascii_case(name))
            })
            .map(|(k, _)| *k)
    }

    /// By URL segment only (`ippools`).
    pub fn from_plural(plural: &str) -> Option<Kind> {
        KINDS.iter().find(|(_, i)| i.plural == plural).map(|(k, _)| *k)
    }

    /// The kinds stored as resources (not IPAM views).
    pub fn is_stored(self) -> bool {
        self.info().writer != Writer::Ipam
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.info().kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_row_and_every_alias_is_unique() {
        let mut seen = std::collections::HashSet::new();
        for kind in Kind::all() {
            assert_eq!(
                kind.info().kind,
                KINDS.iter().find(|(k, _)| *k == kind).map(|(_, i)| i.kind).unwrap_or("")
            );
            for alias in kind.info().aliases.iter().chain([&kind.info().plural]) {
                assert!(seen.insert(*alias) || *alias == kind.info().plural, "alias {alias} twice");
                assert_eq!(Kind::lookup(alias), Some(kind));
            }
        }
        assert_eq!(KINDS.len(), 14);
        assert_eq!(Kind::lookup("gnp"), Some(Kind::GlobalNetworkPolicy));
        assert_eq!(Kind::lookup("IPPool"), Some(Kind::IpPool));
        assert_eq!(Kind::lookup("bgpPeer"), Some(Kind::BgpPeer));
        assert_eq!(Kind::lookup("nonsense"), None);
    }
}
