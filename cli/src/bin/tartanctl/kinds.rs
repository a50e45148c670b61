//! The kinds as tartanctl shows them: one row per kind with its table columns (and the extra
//! ones of `-o wide`). Names, plurals and aliases come from the ipam crate's registry
//! ([`Kind::lookup`]); a new kind is a new row here.

use serde_json::Value;
use tartan_ipam::resources::{DEFAULT_AS, Kind, RawResource};

use crate::context::{Error, Result};

/// What a column may need beyond the resource itself.
#[derive(Debug, Clone)]
pub struct Extra {
    /// The fabric's AS (BGPConfiguration `default`), for nodes that inherit it.
    pub default_as: u32,
}

impl Default for Extra {
    fn default() -> Extra {
        Extra { default_as: DEFAULT_AS }
    }
}

/// One column of a table.
#[derive(Debug)]
pub struct Column {
    pub header: &'static str,
    pub value: fn(&RawResource, &Extra) -> String,
}

/// A kind's columns.
#[derive(Debug)]
pub struct View {
    pub kind: Kind,
    pub columns: &'static [Column],
    /// Added by `-o wide`.
    pub wide: &'static [Column],
    /// The columns need [`Extra::default_as`].
    pub needs_default_as: bool,
}

const fn col(header: &'static str, value: fn(&RawResource, &Extra) -> String) -> Column {
    Column { header, value }
}

/// The field at a JSON pointer into the spec, as text (`""` when absent).
fn spec(r: &RawResource, pointer: &str) -> String {
    text(r.spec.pointer(pointer))
}

fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => {
            items.iter().map(|i| text(Some(i))).collect::<Vec<_>>().join(",")
        }
        Some(other) => other.to_string(),
    }
}

/// A boolean field, `false` when absent (as the specs default it).
fn flag(r: &RawResource, pointer: &str) -> String {
    r.spec.pointer(pointer).and_then(Value::as_bool).unwrap_or(false).to_string()
}

fn name(r: &RawResource, _: &Extra) -> String {
    r.metadata.name.clone()
}

fn labels(r: &RawResource, _: &Extra) -> String {
    r.metadata.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

fn block_size(r: &RawResource, _: &Extra) -> String {
    match r.spec.pointer("/blockSize").and_then(Value::as_u64) {
        Some(n) => n.to_string(),
        None if spec(r, "/cidr").contains(':') => "122".into(),
        None => "26".into(),
    }
}

fn peer_node(r: &RawResource, _: &Extra) -> String {
    let node = spec(r, "/node");
    let selector = spec(r, "/nodeSelector");
    match (node.is_empty(), selector.is_empty()) {
        (false, _) => node,
        (true, false) => selector,
        (true, true) => "(global)".into(),
    }
}

fn node_as(r: &RawResource, extra: &Extra) -> String {
    match r.spec.pointer("/bgp/asNumber").and_then(Value::as_u64) {
        Some(n) => n.to_string(),
        None => format!("({})", extra.default_as),
    }
}

fn reported(r: &RawResource, _: &Extra) -> String {
    let at = spec(r, "/reportedAt");
    match crate::output::age_of(&at) {
        Some(secs) => format!("{} ago", crate::output::age(secs)),
        None => at,
    }
}

fn peers_up(r: &RawResource, _: &Extra) -> String {
    let peers = r.spec.pointer("/peers").and_then(Value::as_array).cloned().unwrap_or_default();
    let up = peers
        .iter()
        .filter(|p| p.get("state").and_then(Value::as_str) == Some("Established"))
        .count();
    format!("{up}/{} established", peers.len())
}

/// Every kind's columns, in the registry's order.
pub const VIEWS: &[View] = &[
    View {
        kind: Kind::IpPool,
        columns: &[
            col("NAME", name),
            col("CIDR", |r, _| spec(r, "/cidr")),
            col("SELECTOR", |r, _| match spec(r, "/nodeSelector") {
                s if s.is_empty() => "all()".into(),
                s => s,
            }),
        ],
        wide: &[
            col("BLOCKSIZE", block_size),
            col("NAT", |r, _| flag(r, "/natOutgoing")),
            col("DISABLED", |r, _| flag(r, "/disabled")),
            col("DISABLEBGPEXPORT", |r, _| flag(r, "/disableBGPExport")),
        ],
        needs_default_as: false,
    },
    View {
        kind: Kind::IpamConfig,
        columns: &[
            col("NAME", name),
            col("STRICTAFFINITY", |r, _| flag(r, "/strictAffinity")),
            col("MAXBLOCKSPERHOST", |r, _| spec(r, "/maxBlocksPerHost")),
            col("IPCOOLDOWNSECONDS", |r, _| spec(r, "/ipCooldownSeconds")),
            col("LEAKGRACEPERIODSECONDS", |r, _| spec(r, "/leakGracePeriodSeconds")),
        ],
        wide: &[],
        needs_default_as: false,
    },
    View {
        kind: Kind::BgpConfiguration,
        columns: &[
            col("NAME", name),
            col("ASNUMBER", |r, _| spec(r, "/asNumber")),
            col("MESHENABLED", |r, _| spec(r, "/nodeToNodeMeshEnabled")),
            col("LISTENPORT", |r, _| spec(r, "/listenPort")),
        ],
        wide: &[col("COMMUNITIES", |r, _| {
            let list = r.spec.pointer("/communities").and_then(Value::as_array);
            list.map(|l| {
                l.iter()
                    .map(|c| format!("{}={}", text(c.get("name")), text(c.get("value"))))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
        })],
        needs_default_as: false,
    },
    View {
        kind: Kind::BgpPeer,
        columns: &[
            col("NAME", name),
            col("PEERIP", |r, _| spec(r, "/peerIP")),
            col("NODE", peer_node),
            col("ASN", |r, _| spec(r, "/asNumber")),
        ],
        wide: &[
            col("HOLDTIME", |r, _| spec(r, "/holdTime")),
            col("NEXTHOPMODE", |r, _| spec(r, "/nextHopMode")),
            col("PASSWORD", |r, _| match r.spec.pointer("/password") {
                Some(p) if p.get("file").is_some() => "file".into(),
                Some(p) if p.get("value").is_some() => "set".into(),
                _ => String::new(),
            }),
        ],
        needs_default_as: false,
    },
    View {
        kind: Kind::Node,
        columns: &[
            col("NAME", name),
            col("ASN", node_as),
            col("IPV4", |r, _| spec(r, "/bgp/ipv4Address")),
            col("IPV6", |r, _| spec(r, "/bgp/ipv6Address")),
        ],
        wide: &[
            col("RRCLUSTERID", |r, _| spec(r, "/bgp/routeReflectorClusterID")),
            col("LABELS", labels),
        ],
        needs_default_as: true,
    },
    View {
        kind: Kind::WorkloadEndpoint,
        columns: &[
            col("NAME", name),
            col("NODE", |r, _| spec(r, "/node")),
            col("CONTAINER", |r, _| spec(r, "/containerID")),
            col("INTERFACE", |r, _| spec(r, "/interfaceName")),
            col("IPS", |r, _| spec(r, "/ipNetworks")),
        ],
        wide: &[col("HANDLE", |r, _| spec(r, "/handle")), col("MAC", |r, _| spec(r, "/mac"))],
        needs_default_as: false,
    },
    View {
        kind: Kind::NodeStatus,
        columns: &[
            col("NAME", name),
            col("AGENT", |r, _| spec(r, "/agentVersion")),
            col("REPORTED", reported),
            col("PEERS", peers_up),
        ],
        wide: &[col("REPORTEDAT", |r, _| spec(r, "/reportedAt"))],
        needs_default_as: false,
    },
    View {
        kind: Kind::NodeCredential,
        columns: &[
            col("NAME", name),
            col("ISSUED", |r, _| r.metadata.creation_timestamp.clone().unwrap_or_default()),
        ],
        wide: &[col("TOKENSHA256", |r, _| spec(r, "/tokenSha256"))],
        needs_default_as: false,
    },
    View {
        kind: Kind::IpamBlock,
        columns: &[
            col("CIDR", |r, _| spec(r, "/cidr")),
            col("AFFINITY", |r, _| match spec(r, "/affinity") {
                a if a.is_empty() => "(none)".into(),
                a => format!("host:{a}"),
            }),
            col("USED", |r, _| spec(r, "/used")),
            col("FREE", |r, _| spec(r, "/free")),
        ],
        wide: &[
            col("NAME", name),
            col("POOL", |r, _| spec(r, "/pool")),
            col("SIZE", |r, _| spec(r, "/size")),
            col("COOLING", |r, _| spec(r, "/cooling")),
        ],
        needs_default_as: false,
    },
    View {
        kind: Kind::BlockAffinity,
        columns: &[
            col("NAME", name),
            col("NODE", |r, _| spec(r, "/node")),
            col("CIDR", |r, _| spec(r, "/cidr")),
            col("STATE", |r, _| spec(r, "/state")),
        ],
        wide: &[],
        needs_default_as: false,
    },
    View {
        kind: Kind::IpamHandle,
        columns: &[col("NAME", name), col("IPS", |r, _| spec(r, "/ips"))],
        wide: &[],
        needs_default_as: false,
    },
    View {
        kind: Kind::GlobalNetworkPolicy,
        columns: &[col("NAME", name)],
        wide: &[
            col("ORDER", |r, _| spec(r, "/order")),
            col("SELECTOR", |r, _| match spec(r, "/selector") {
                s if s.is_empty() => "all()".into(),
                s => s,
            }),
            col("TYPES", |r, _| spec(r, "/types")),
        ],
        needs_default_as: false,
    },
    View {
        kind: Kind::Profile,
        columns: &[col("NAME", name)],
        wide: &[col("LABELSTOAPPLY", |r, _| {
            let labels = r.spec.pointer("/labelsToApply").and_then(Value::as_object);
            labels
                .map(|l| {
                    l.iter().map(|(k, v)| format!("{k}={}", text(Some(v)))).collect::<Vec<_>>()
                })
                .unwrap_or_default()
                .join(",")
        })],
        needs_default_as: false,
    },
    View {
        kind: Kind::GlobalNetworkSet,
        columns: &[col("NAME", name)],
        wide: &[col("NETS", |r, _| spec(r, "/nets")), col("LABELS", labels)],
        needs_default_as: false,
    },
];

/// The row of a kind (every kind has one: the `every_kind_has_a_view` test holds this).
pub fn view(kind: Kind) -> Result<&'static View> {
    VIEWS
        .iter()
        .find(|v| v.kind == kind)
        .ok_or_else(|| Error::new(format!("tartanctl cannot show {kind} yet")))
}

/// A kind by name, plural or alias, or an error listing the kinds.
pub fn resolve(text: &str) -> Result<Kind> {
    Kind::lookup(text).ok_or_else(|| {
        let names: Vec<String> = Kind::all().map(|k| k.info().kind.to_ascii_lowercase()).collect();
        Error::new(format!(
            "unknown resource type {text:?}: use one of {} (or a plural or alias; `tartanctl get --help` lists them)",
            names.join(", ")
        ))
    })
}

/// The table rows of `items`.
pub fn table(kind: Kind, items: &[RawResource], wide: bool, extra: &Extra) -> Result<String> {
    let view = view(kind)?;
    let columns: Vec<&Column> =
        view.columns.iter().chain(if wide { view.wide } else { &[] }).collect();
    let headers: Vec<&str> = columns.iter().map(|c| c.header).collect();
    let rows: Vec<Vec<String>> =
        items.iter().map(|r| columns.iter().map(|c| (c.value)(r, extra)).collect()).collect();
    Ok(crate::output::plain(&headers, &rows))
}

/// `get --help`'s list of kinds and aliases, from the registry.
pub fn kinds_help() -> String {
    let mut out = String::from("Kinds (and the names tartanctl accepts for them):\n");
    for kind in Kind::all() {
        let info = kind.info();
        out.push_str(&format!(
            "  {:<18} {}\n  {:<18}   {}\n",
            info.kind,
            info.summary,
            "",
            info.aliases.join(", ")
        ));
    }
    out.push_str(
        "\nExamples:\n  \
         tartanctl get pools                      every IP pool\n  \
         tartanctl get ippool pool-v4 -o yaml     one pool as YAML\n  \
         tartanctl get nodes -l \"rack == 'a'\"     nodes by label\n  \
         tartanctl get bgppeers -o wide\n  \
         tartanctl get blocks                     the IPAM's blocks (read-only)",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_view() {
        for kind in Kind::all() {
            assert!(view(kind).is_ok(), "{kind} has no columns");
        }
        assert_eq!(VIEWS.len(), Kind::all().count());
    }

    #[test]
    fn node_asn_shows_inheritance() {
        let mut node = RawResource::new(Kind::Node, "n1", serde_json::json!({"bgp": {}}));
        let extra = Extra { default_as: 64512 };
        assert_eq!(node_as(&node, &extra), "(64512)");
        node.spec = serde_json::json!({"bgp": {"asNumber": 65001}});
        assert_eq!(node_as(&node, &extra), "65001");
    }
}
