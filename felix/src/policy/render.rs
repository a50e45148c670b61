//! The policy model rendered as the agent's own nftables table, `inet tartan_policy`, for the
//! workloads of this host. Pure: the model and the local interfaces in, an `nft -f` script
//! out, so it is tested without a kernel and applied as one transaction.
//!
//! Layout (Calico's, in nftables; see `docs/policy.md`):
//! - base chains on `forward`, `input` and `output` send a packet from a workload's interface
//!   through its egress chain `fw-<if>` (verdict map `from_wl`) and a packet to one through its
//!   ingress chain `tw-<if>` (`to_wl`); other traffic is not touched;
//! - an endpoint chain accepts established flows, drops invalid ones, lets IPv6 neighbour
//!   discovery through, then jumps to each applying policy's chain in order, then to its
//!   profiles' chains, and drops what none accepted;
//! - policy chains `pi-`/`po-` and profile chains `ri-`/`ro-` hold the rules: Allow sets the
//!   accept mark and returns, Pass the pass mark, Deny drops, Log logs and goes on. Marks let
//!   an egress Allow go on to the destination's ingress check on the same host;
//! - every list (selector members, nets, ports, ICMP type and code) is a named set, never an
//!   inline `{ }` (nft 1.0.6 pays per anonymous set on every element update).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ipnet::IpNet;
use tartan_ipam::policy::{CompiledEntity, CompiledRule, Model};
use tartan_ipam::resources::policy::{Action, EntityRule, IcmpMatch, PolicyType, Port};

/// The table's name.
pub const TABLE: &str = "tartan_policy";
/// Set by an Allow: the packet passes this endpoint's check.
pub const ACCEPT_MARK: u32 = 0x0100_0000;
/// Set by a Pass: skip the remaining policies, go to the profiles.
pub const PASS_MARK: u32 = 0x0200_0000;

/// A workload of this host: its name in the model and its host-side interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoint {
    pub name: String,
    pub host_if: String,
}

/// Short, stable names for chains and sets (policy names may be 253 characters).
fn tag(text: &str) -> String {
    // FNV-1a, 64 bits: stable across builds and processes.
    let h = text
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    format!("{h:016x}")
}

/// The named sets a script declares, by name: their type line and elements.
#[derive(Default)]
struct Sets {
    decls: BTreeMap<String, (String, Vec<String>)>,
}

impl Sets {
    /// A set of `kind` (`ipv4_addr`, ...) holding `elements`, declared once; its name.
    fn named(&mut self, prefix: &str, kind: &str, interval: bool, elements: Vec<String>) -> String {
        let name = format!("{prefix}-{}", tag(&format!("{kind}|{}", elements.join(","))));
        let flags = if interval { "\n    flags interval\n    auto-merge" } else { "" };
        self.decls.entry(name.clone()).or_insert((format!("type {kind}{flags}"), elements));
        name
    }

    fn addresses(&mut self, nets: &[IpNet], v4: bool) -> String {
        let kind = if v4 { "ipv4_addr" } else { "ipv6_addr" };
        let elements =
            nets.iter().filter(|n| n.addr().is_ipv4() == v4).map(|n| n.to_string()).collect();
        self.named(if v4 { "a4" } else { "a6" }, kind, true, elements)
    }

    fn ports(&mut self, ports: &[Port]) -> String {
        let elements = ports
            .iter()
            .map(
                |p| if p.min == p.max { p.min.to_string() } else { format!("{}-{}", p.min, p.max) },
            )
            .collect();
        self.named("p", "inet_service", true, elements)
    }

    fn icmp(&mut self, m: &IcmpMatch, v4: bool) -> String {
        let (t, c) = if v4 { ("icmp_type", "icmp_code") } else { ("icmpv6_type", "icmpv6_code") };
        let element = format!("{} . {}", m.icmp_type.unwrap_or(0), m.code.unwrap_or(0));
        self.named("i", &format!("{t} . {c}"), false, vec![element])
    }

    fn write(&self, out: &mut String) {
        for (name, (kind, elements)) in &self.decls {
            let _ = write!(out, "  set {name} {{\n    {kind}\n");
            if !elements.is_empty() {
                let _ = writeln!(out, "    elements = {{ {} }}", elements.join(", "));
            }
            out.push_str("  }\n");
        }
    }
}

/// Which IP versions a rule applies to: its ipVersion, its protocol's (ICMP, ICMPv6), its
/// nets' (a rule with nets is of their version only).
fn families(rule: &tartan_ipam::resources::policy::Rule) -> Vec<bool> {
    let nets = [&rule.source, &rule.destination]
        .into_iter()
        .flat_map(|e| e.nets.iter().chain(&e.not_nets))
        .next()
        .map(|n| n.addr().is_ipv4());
    let by_protocol = match rule.protocol.map(|p| p.number()) {
        Some(1) => Some(true),
        Some(58) => Some(false),
        _ => None,
    };
    let by_version = rule.ip_version.map(|v| v == 4);
    let only = nets.or(by_protocol).or(by_version);
    [true, false].into_iter().filter(|v4| only.is_none_or(|o| o == *v4)).collect()
}

/// The matches of one side of a rule, for one IP version.
fn side(
    model: &Model,
    sets: &mut Sets,
    e: &EntityRule,
    c: &CompiledEntity,
    source: bool,
    v4: bool,
) -> Vec<String> {
    let (ip, dir, th) = match (v4, source) {
        (true, true) => ("ip", "saddr", "sport"),
        (true, false) => ("ip", "daddr", "dport"),
        (false, true) => ("ip6", "saddr", "sport"),
        (false, false) => ("ip6", "daddr", "dport"),
    };
    let mut m = Vec::new();
    if !e.nets.is_empty() {
        m.push(format!("{ip} {dir} @{}", sets.addresses(&e.nets, v4)));
    }
    if !e.not_nets.is_empty() {
        m.push(format!("{ip} {dir} != @{}", sets.addresses(&e.not_nets, v4)));
    }
    if let Some(s) = &c.selector {
        m.push(format!("{ip} {dir} @{}", sets.addresses(&model.members(s, v4), v4)));
    }
    if let Some(s) = &c.not_selector {
        m.push(format!("{ip} {dir} != @{}", sets.addresses(&model.members(s, v4), v4)));
    }
    if !e.ports.is_empty() {
        m.push(format!("th {th} @{}", sets.ports(&e.ports)));
    }
    if !e.not_ports.is_empty() {
        m.push(format!("th {th} != @{}", sets.ports(&e.not_ports)));
    }
    m
}

/// The nft rules of one policy rule: one per IP version it applies to.
fn rule_lines(
    model: &Model,
    sets: &mut Sets,
    r: &CompiledRule,
    owner: &str,
    index: usize,
) -> Vec<String> {
    let rule = &r.rule;
    let mut lines = Vec::new();
    for v4 in families(rule) {
        let mut m = vec![format!("meta nfproto {}", if v4 { "ipv4" } else { "ipv6" })];
        if let Some(p) = rule.protocol {
            m.push(format!("meta l4proto {}", p.number()));
        }
        if let Some(p) = rule.not_protocol {
            m.push(format!("meta l4proto != {}", p.number()));
        }
        let icmp = if v4 { "icmp" } else { "icmpv6" };
        if let Some(i) = &rule.icmp {
            if let Some(t) = i.icmp_type {
                m.push(format!("{icmp} type {t}"));
            }
            if let Some(c) = i.code {
                m.push(format!("{icmp} code {c}"));
            }
        }
        if let Some(i) = &rule.not_icmp {
            match (i.icmp_type, i.code) {
                (Some(t), None) => m.push(format!("{icmp} type != {t}")),
                (Some(_), Some(_)) => {
                    m.push(format!("{icmp} type . {icmp} code != @{}", sets.icmp(i, v4)))
                }
                _ => {}
            }
        }
        m.extend(side(model, sets, &rule.source, &r.source, true, v4));
        m.extend(side(model, sets, &rule.destination, &r.destination, false, v4));
        let verdict = match rule.action {
            Action::Allow => format!("meta mark set meta mark | {ACCEPT_MARK:#x} return"),
            Action::Pass => format!("meta mark set meta mark | {PASS_MARK:#x} return"),
            Action::Deny => "drop".to_string(),
            Action::Log => format!(
                "log prefix \"tartan {} {index}: \" level info",
                tag(owner).get(..8).unwrap_or("")
            ),
        };
        lines.push(format!("{} {verdict}", m.join(" ")));
    }
    lines
}

fn chain(out: &mut String, name: &str, comment: &str, lines: &[String]) {
    let _ = writeln!(out, "  chain {name} {{");
    // nft keeps at most 128 bytes of a comment.
    let mut text = comment.replace('"', "'");
    if text.len() > 120 {
        let mut cut = 117;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text = format!("{}...", &text[..cut]);
    }
    let _ = writeln!(out, "    comment \"{text}\"");
    for l in lines {
        let _ = writeln!(out, "    {l}");
    }
    out.push_str("  }\n");
}

/// What a script is built from: its sets, its chains, the rule chains already written.
#[derive(Default)]
struct Script {
    sets: Sets,
    chains: String,
    rendered: std::collections::BTreeSet<String>,
}

impl Script {
    /// The chain `name` holding `rules` (a policy's or a profile's, one direction), once.
    fn rules_chain(&mut self, model: &Model, name: &str, owner: &str, rules: &[CompiledRule]) {
        if !self.rendered.insert(name.to_string()) {
            return;
        }
        let body: Vec<String> = rules
            .iter()
            .enumerate()
            .flat_map(|(i, r)| rule_lines(model, &mut self.sets, r, owner, i + 1))
            .collect();
        chain(&mut self.chains, name, owner, &body);
    }
}

/// `egress` or `ingress`, for comments.
trait DirectionName {
    fn direction(self) -> &'static str;
}

impl DirectionName for PolicyType {
    fn direction(self) -> &'static str {
        match self {
            PolicyType::Egress => "egress",
            PolicyType::Ingress => "ingress",
        }
    }
}

/// The whole script: the table replaced in one transaction.
pub fn render(model: &Model, local: &[LocalEndpoint]) -> String {
    let mut out = Script::default();
    let mut from_wl = Vec::new();
    let mut to_wl = Vec::new();
    let clear = format!("meta mark set meta mark & {:#x}", !(ACCEPT_MARK | PASS_MARK));
    for ep in local {
        // A workload whose record the model does not have yet is left out of the verdict
        // maps (not policed) rather than given a chain with no profile, which drops all.
        let Some(known) = model.endpoint(&ep.name) else { continue };
        for (t, prefix, map) in
            [(PolicyType::Egress, "fw", &mut from_wl), (PolicyType::Ingress, "tw", &mut to_wl)]
        {
            let egress = t == PolicyType::Egress;
            let mut lines = vec![
                "ct state established,related accept".to_string(),
                "ct state invalid drop".to_string(),
                // Neighbour discovery with the host (the veth's proxy NDP).
                "icmpv6 type @nd accept".to_string(),
                clear.clone(),
            ];
            let policies = model.applying_to(&ep.name, t);
            for p in &policies {
                let (pfx, rules) = if egress { ("po", &p.egress) } else { ("pi", &p.ingress) };
                let name = format!("{pfx}-{}", tag(&p.name));
                let owner = format!("GlobalNetworkPolicy {} {}", p.name, t.direction());
                out.rules_chain(model, &name, &owner, rules);
                lines.push(format!("meta mark & {PASS_MARK:#x} == 0 jump {name}"));
                lines.push(format!("meta mark & {ACCEPT_MARK:#x} != 0 return"));
            }
            if !policies.is_empty() {
                lines.push(format!("meta mark & {PASS_MARK:#x} == 0 drop"));
            }
            for prof in &known.profiles {
                match model.profile(prof) {
                    None => {
                        // Never created: allows everything (as before policy).
                        lines.push(format!("meta mark set meta mark | {ACCEPT_MARK:#x} return"));
                        break;
                    }
                    Some(p) => {
                        let (pfx, rules) =
                            if egress { ("ro", &p.egress) } else { ("ri", &p.ingress) };
                        let name = format!("{pfx}-{}", tag(prof));
                        let owner = format!("Profile {prof} {}", t.direction());
                        out.rules_chain(model, &name, &owner, rules);
                        lines.push(clear.clone());
                        lines.push(format!("jump {name}"));
                        lines.push(format!("meta mark & {ACCEPT_MARK:#x} != 0 return"));
                    }
                }
            }
            lines.push("drop".to_string());
            let name = format!("{prefix}-{}", ep.host_if);
            let what = if egress { "from" } else { "to" };
            chain(&mut out.chains, &name, &format!("{what} workload {}", ep.name), &lines);
            map.push(format!("\"{}\" : jump {name}", ep.host_if));
        }
    }
    let Script { sets, chains, .. } = out;
    let mut out =
        format!("table inet {TABLE} {{}}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
    out.push_str("  set nd {\n    type icmpv6_type\n    elements = { nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert }\n  }\n");
    sets.write(&mut out);
    for (name, elements) in [("from_wl", &from_wl), ("to_wl", &to_wl)] {
        let _ = write!(out, "  map {name} {{\n    type ifname : verdict\n");
        if !elements.is_empty() {
            let _ = writeln!(out, "    elements = {{ {} }}", elements.join(", "));
        }
        out.push_str("  }\n");
    }
    out.push_str(&chains);
    for (hook, dispatch) in [
        ("forward", "iifname vmap @from_wl\n    oifname vmap @to_wl"),
        ("input", "iifname vmap @from_wl"),
        ("output", "oifname vmap @to_wl"),
    ] {
        let _ = writeln!(
            out,
            "  chain {hook} {{\n    type filter hook {hook} priority filter; policy accept;\n    {dispatch}\n  }}"
        );
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tartan_ipam::policy::Endpoint;

    fn model() -> Model {
        let policy = json!({"selector": "all()", "ingress": [
            {"action": "Allow", "protocol": "TCP", "source": {"selector": "app == 'web'", "notNets": ["10.1.0.0/16"]},
             "destination": {"ports": [80, "8000:8100"]}},
            {"action": "Deny", "protocol": "ICMPv6", "notICMP": {"type": 128, "code": 0}}]});
        let name = "a-very-long-policy-name-".repeat(10);
        Model::new(
            vec![Endpoint {
                name: "node1.tv1".into(),
                labels: [("app".to_string(), "web".to_string())].into(),
                addresses: vec!["10.65.0.1".parse().expect("ip"), "fd00::1".parse().expect("ip")],
                profiles: vec!["net".into()],
            }],
            vec![],
            &[(name, serde_json::from_value(policy).expect("policy"))],
            &[],
        )
        .expect("model")
    }

    #[test]
    fn lists_are_named_sets_and_names_stay_short() {
        let local = [LocalEndpoint { name: "node1.tv1".into(), host_if: "tv1".into() }];
        let script = render(&model(), &local);
        for line in script.lines().map(str::trim) {
            let declaration = line.starts_with("elements = ") || line.starts_with("set ");
            let block = line.ends_with('{') || line.ends_with("{}");
            assert!(declaration || block || !line.contains('{'), "inline list: {line}");
        }
        for line in script.lines().filter(|l| l.trim_start().starts_with("chain ")) {
            assert!(line.len() < 40, "{line}");
        }
        // The TCP rule has IPv4 nets, so it is IPv4's only; the ICMPv6 one is IPv6's.
        assert_eq!(script.matches("meta nfproto ipv4 meta l4proto 6 ").count(), 1, "{script}");
        assert_eq!(script.matches("meta nfproto ipv6 meta l4proto 6 ").count(), 0, "{script}");
        assert_eq!(script.matches("meta nfproto ipv6 meta l4proto 58 ").count(), 1, "{script}");
        assert!(script.lines().all(|l| !l.contains("comment") || l.len() < 140), "{script}");
        assert!(script.contains("icmpv6 type . icmpv6 code != @i-"), "{script}");
        // The same input renders the same script (set and chain names are stable).
        assert_eq!(script, render(&model(), &local));
        // A local workload the model does not know yet is not policed (not dropped).
        let unknown = [LocalEndpoint { name: "node1.tv9".into(), host_if: "tv9".into() }];
        let script = render(&model(), &unknown);
        assert!(!script.contains("tv9"), "{script}");
    }
}
