//! Links: containerlab's brief form (`endpoints: ["a:eth1", "b:eth1"]`) and the extended
//! `type: veth` form, with the interface checks the kernel and containerlab apply. Link types
//! that would touch the machine's own network (`host`, `macvlan`, `host:` endpoints) are
//! refused; the others that need drivers or features tartanlab lacks are refused by name.

use std::collections::BTreeMap;

use serde_yaml::{Mapping, Value};

use super::error::{ProblemKind, Where};
use super::fields::{Ctx, Rule, scalar, to_json};
use super::model::{DEFAULT_LINK_MTU, Endpoint, Link, NetworkMode};

const BRIEF_KEYS: &[(&str, Rule)] = &[
    ("endpoints", Rule::Use),
    ("mtu", Rule::Use),
    ("ipv4", Rule::Use),
    ("ipv6", Rule::Use),
    ("vars", Rule::Use),
    ("labels", Rule::Use),
];

const VETH_KEYS: &[(&str, Rule)] = &[
    ("type", Rule::Use),
    ("endpoints", Rule::Use),
    ("mtu", Rule::Use),
    ("vars", Rule::Use),
    ("labels", Rule::Use),
];

const ENDPOINT_KEYS: &[(&str, Rule)] = &[
    ("node", Rule::Use),
    ("interface", Rule::Use),
    ("mac", Rule::Use),
    ("ipv4", Rule::Use),
    ("ipv6", Rule::Use),
    ("vars", Rule::Use),
];

/// Parses and checks every link. `nodes` maps each defined node to its network mode.
pub(super) fn parse_links(
    ctx: &mut Ctx,
    links: Option<&Value>,
    nodes: &BTreeMap<String, NetworkMode>,
) -> Vec<Link> {
    let items = match links {
        None | Some(Value::Null) => return vec![],
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            ctx.problem(
                &Where::Topology,
                ProblemKind::WrongType { key: "links".into(), expected: "a list" },
            );
            return vec![];
        }
    };
    let mut used: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Value::Mapping(map) = item else {
            let at = Where::Link { index, endpoints: String::new() };
            ctx.problem(
                &at,
                ProblemKind::WrongType { key: "(link)".into(), expected: "a mapping" },
            );
            continue;
        };
        let problems_before = ctx.problems.len();
        let link = match map.get("type") {
            None => parse_brief(ctx, index, map, nodes),
            Some(t) => parse_extended(ctx, index, map, scalar(t).unwrap_or_default(), nodes),
        };
        let Some(link) = link else { continue };
        let at = Where::Link { index, endpoints: link.describe() };
        for ep in &link.endpoints {
            check_interface(ctx, &at, ep, nodes);
            let key = (ep.node.clone(), ep.interface.clone());
            if let Some(&first_link) = used.get(&key) {
                ctx.problem(
                    &at,
                    ProblemKind::DuplicateInterface {
                        node: ep.node.clone(),
                        interface: ep.interface.clone(),
                        first_link,
                    },
                );
            } else {
                used.insert(key, index);
            }
        }
        if ctx.problems.len() == problems_before {
            out.push(link);
        }
    }
    out
}

fn parse_brief(
    ctx: &mut Ctx,
    index: usize,
    map: &Mapping,
    nodes: &BTreeMap<String, NetworkMode>,
) -> Option<Link> {
    let mut at = Where::Link { index, endpoints: String::new() };
    let texts = ctx.string_list(&at, map, "endpoints");
    if let Where::Link { endpoints, .. } = &mut at {
        *endpoints = texts.join(" <-> ");
    }
    ctx.check_keys(&at, map, BRIEF_KEYS);
    if texts.len() != 2 {
        ctx.bad(&at, "endpoints", "must list exactly two `node:interface` endpoints");
        return None;
    }
    let ipv4 = ctx.string_list(&at, map, "ipv4");
    let ipv6 = ctx.string_list(&at, map, "ipv6");
    for (key, list) in [("ipv4", &ipv4), ("ipv6", &ipv6)] {
        if !list.is_empty() && list.len() != 2 {
            ctx.bad(&at, key, "must have one entry per endpoint (\"\" to skip one)");
        }
    }
    let mut eps = Vec::with_capacity(2);
    for (i, text) in texts.iter().enumerate() {
        let Some((node, interface)) = text.split_once(':') else {
            ctx.bad(&at, "endpoints", format!("`{text}` is not `node:interface`"));
            return None;
        };
        check_node_ref(ctx, &at, node, nodes)?;
        let pick = |l: &Vec<String>| l.get(i).filter(|s| !s.is_empty()).cloned();
        eps.push(Endpoint {
            node: node.to_string(),
            interface: interface.to_string(),
            mac: None,
            ipv4: pick(&ipv4),
            ipv6: pick(&ipv6),
            vars: None,
        });
    }
    finish(ctx, &at, index, map, eps)
}

fn parse_extended(
    ctx: &mut Ctx,
    index: usize,
    map: &Mapping,
    kind: String,
    nodes: &BTreeMap<String, NetworkMode>,
) -> Option<Link> {
    let at = Where::Link { index, endpoints: String::new() };
    match kind.as_str() {
        "veth" => {}
        "host" | "macvlan" | "macvtap" => {
            ctx.problem(&at, ProblemKind::HostTouching { what: format!("a `type: {kind}` link") });
            return None;
        }
        "mgmt-net" | "vxlan" | "vxlan-stitch" | "dummy" | "veth-stitch" => {
            let reason = match kind.as_str() {
                "dummy" => "this kernel has no dummy driver; put addresses on `lo` instead",
                "mgmt-net" => "attach nodes to the management network through their eth0",
                _ => "only veth links are implemented",
            };
            ctx.problem(&at, ProblemKind::UnsupportedKey { key: format!("type: {kind}"), reason });
            return None;
        }
        other => {
            ctx.bad(&at, "type", format!("`{other}` is not a containerlab link type"));
            return None;
        }
    }
    let items = match map.get("endpoints") {
        Some(Value::Sequence(items)) if items.len() == 2 => items,
        _ => {
            ctx.bad(&at, "endpoints", "must list exactly two endpoints `{node, interface}`");
            return None;
        }
    };
    let described: Vec<String> = items
        .iter()
        .map(|e| {
            let get = |k: &str| e.get(k).and_then(scalar).unwrap_or_default();
            format!("{}:{}", get("node"), get("interface"))
        })
        .collect();
    let at = Where::Link { index, endpoints: described.join(" <-> ") };
    ctx.check_keys(&at, map, VETH_KEYS);
    let mut eps = Vec::with_capacity(2);
    for item in items {
        let Value::Mapping(m) = item else {
            ctx.bad(&at, "endpoints", "each endpoint must be a mapping `{node, interface}`");
            return None;
        };
        ctx.check_keys(&at, m, ENDPOINT_KEYS);
        let (Some(node), Some(interface)) =
            (ctx.string(&at, m, "node"), ctx.string(&at, m, "interface"))
        else {
            ctx.problem(
                &at,
                ProblemKind::Missing { key: "endpoints[].node and endpoints[].interface" },
            );
            return None;
        };
        check_node_ref(ctx, &at, &node, nodes)?;
        let mac = ctx.string(&at, m, "mac").and_then(|t| match parse_mac(&t) {
            Ok(mac) => Some(mac),
            Err(why) => {
                ctx.bad(&at, "mac", format!("`{t}` {why}"));
                None
            }
        });
        eps.push(Endpoint {
            node,
            interface,
            mac,
            ipv4: ctx.string(&at, m, "ipv4"),
            ipv6: ctx.string(&at, m, "ipv6"),
            vars: m.get("vars").and_then(to_json),
        });
    }
    finish(ctx, &at, index, map, eps)
}

fn finish(
    ctx: &mut Ctx,
    at: &Where,
    index: usize,
    map: &Mapping,
    eps: Vec<Endpoint>,
) -> Option<Link> {
    let mtu = match ctx.u64(at, map, "mtu") {
        None => DEFAULT_LINK_MTU,
        Some(m) if (68..=65535).contains(&m) => m as u32,
        Some(m) => {
            ctx.bad(at, "mtu", format!("{m} is outside 68..65535"));
            DEFAULT_LINK_MTU
        }
    };
    let labels = ctx.string_map(at, map, "labels");
    let endpoints: [Endpoint; 2] = eps.try_into().ok()?;
    Some(Link { index, endpoints, mtu, vars: map.get("vars").and_then(to_json), labels })
}

/// Refuses special endpoint names and undefined nodes.
fn check_node_ref(
    ctx: &mut Ctx,
    at: &Where,
    node: &str,
    nodes: &BTreeMap<String, NetworkMode>,
) -> Option<()> {
    match node {
        "host" | "macvlan" => {
            ctx.problem(at, ProblemKind::HostTouching { what: format!("endpoint `{node}:...`") });
            None
        }
        "mgmt-net" => {
            ctx.problem(
                at,
                ProblemKind::UnsupportedKey {
                    key: "mgmt-net:".into(),
                    reason: "attach nodes to the management network through their eth0",
                },
            );
            None
        }
        _ if !nodes.contains_key(node) => {
            ctx.problem(at, ProblemKind::UnknownNode { node: node.to_string() });
            None
        }
        _ => Some(()),
    }
}

/// Linux interface-name rules (`dev_valid_name`) plus containerlab's reserved names.
fn check_interface(
    ctx: &mut Ctx,
    at: &Where,
    ep: &Endpoint,
    nodes: &BTreeMap<String, NetworkMode>,
) {
    let name = ep.interface.as_str();
    let reason = if name.is_empty() {
        Some("has an empty name".to_string())
    } else if name.len() > 15 {
        Some(format!("is {} characters long; Linux allows at most 15", name.len()))
    } else if name == "."
        || name == ".."
        || name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("is not a valid Linux interface name (no `/`, `:` or white space)".to_string())
    } else if name == "lo" {
        Some("is the loopback interface".to_string())
    } else if name == "eth0" && nodes.get(&ep.node) != Some(&NetworkMode::None) {
        Some(
            "is the management interface; use another name, or set `network-mode: none` on the node"
                .to_string(),
        )
    } else {
        None
    };
    if let Some(reason) = reason {
        ctx.problem(
            at,
            ProblemKind::BadInterface {
                node: ep.node.clone(),
                interface: ep.interface.clone(),
                reason,
            },
        );
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`; the address must be unicast.
pub(crate) fn parse_mac(text: &str) -> Result<[u8; 6], &'static str> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err("is not a MAC address (six hex pairs)");
    }
    for (byte, part) in mac.iter_mut().zip(parts) {
        *byte = u8::from_str_radix(part, 16).map_err(|_| "is not a MAC address (six hex pairs)")?;
    }
    if mac[0] & 1 == 1 {
        return Err("is a multicast address; an interface needs a unicast one");
    }
    Ok(mac)
}

/// Bridge ports live in one namespace (the lab's): their names must differ across bridges.
pub(super) fn check_bridge_ports(ctx: &mut Ctx, links: &[Link], bridges: &[String]) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (index, link) in links.iter().enumerate() {
        for ep in link.endpoints.iter().filter(|e| bridges.contains(&e.node)) {
            match seen.get(ep.interface.as_str()) {
                Some(other) if *other != ep.node => ctx.problem(
                    &Where::Link { index, endpoints: link.describe() },
                    ProblemKind::BadInterface {
                        node: ep.node.clone(),
                        interface: ep.interface.clone(),
                        reason: format!(
                            "is also a port of bridge `{other}`: ports of every bridge share the lab's namespace, so name them apart"
                        ),
                    },
                ),
                _ => {
                    seen.insert(ep.interface.as_str(), ep.node.as_str());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_and_must_be_unicast() {
        assert_eq!(parse_mac("aa:c1:ab:00:00:01"), Ok([0xaa, 0xc1, 0xab, 0, 0, 1]));
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
        assert!(parse_mac("aa:c1:ab:00:00").is_err());
        assert!(parse_mac("zz:c1:ab:00:00:01").is_err());
    }
}
