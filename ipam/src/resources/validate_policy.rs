//! Validation of the policy kinds with Calico's limits: at most 1,024 rules per direction,
//! 256 nets and 50 ports per list, selectors of at most 1,024 characters; ports only with a
//! protocol that has them, ICMP fields only with ICMP of the rule's IP version, an ICMP code
//! only with a type. Errors name the field as `spec.ingress[2].destination.ports`.

use std::collections::BTreeMap;

use ipnet::IpNet;

use super::policy::{
    EntityRule, GlobalNetworkPolicySpec, GlobalNetworkSetSpec, IcmpMatch, ProfileSpec, Protocol,
    Rule,
};
use super::selector::Selector;

/// Calico's limits.
pub const MAX_RULES: usize = 1024;
pub const MAX_NETS: usize = 256;
pub const MAX_PORTS: usize = 50;
/// A GlobalNetworkSet may hold many more nets than a rule.
pub const MAX_SET_NETS: usize = 100_000;

/// Checks a policy and writes out its `types` (Calico's defaults when it has none).
pub fn global_network_policy(spec: &mut GlobalNetworkPolicySpec) -> Result<(), String> {
    if let Some(order) = spec.order {
        if !order.is_finite() {
            return Err(format!("spec.order {order} is not a finite number"));
        }
    }
    selector("spec.selector", &spec.selector)?;
    rules("spec.ingress", &spec.ingress)?;
    rules("spec.egress", &spec.egress)?;
    let mut seen = Vec::new();
    for t in &spec.types {
        if seen.contains(t) {
            return Err(format!("spec.types lists {t:?} twice"));
        }
        seen.push(*t);
    }
    // As in Calico, explicit types win: rules of a direction not listed are kept but never run.
    spec.types = crate::policy::effective_types(spec);
    Ok(())
}

pub fn profile(spec: &ProfileSpec) -> Result<(), String> {
    labels("spec.labelsToApply", &spec.labels_to_apply)?;
    rules("spec.ingress", &spec.ingress)?;
    rules("spec.egress", &spec.egress)
}

/// Checks a network set and masks its nets (Calico takes `10.0.0.1/24` here and means the
/// /24).
pub fn network_set(spec: &mut GlobalNetworkSetSpec) -> Result<(), String> {
    if spec.nets.len() > MAX_SET_NETS {
        return Err(format!("spec.nets has {} entries: at most {MAX_SET_NETS}", spec.nets.len()));
    }
    for n in &mut spec.nets {
        *n = n.trunc();
    }
    Ok(())
}

fn labels(field: &str, labels: &BTreeMap<String, String>) -> Result<(), String> {
    super::validate::check_labels(labels).map_err(|e| format!("{field}: {e}"))
}

fn selector(field: &str, text: &str) -> Result<(), String> {
    Selector::parse(text).map(|_| ()).map_err(|e| format!("{field}: {e}"))
}

fn masked(field: &str, net: IpNet) -> Result<(), String> {
    if net.trunc() != net {
        return Err(format!("{field} {net} is not masked: did you mean {}?", net.trunc()));
    }
    Ok(())
}

fn rules(field: &str, rules: &[Rule]) -> Result<(), String> {
    if rules.len() > MAX_RULES {
        return Err(format!("{field} has {} rules: at most {MAX_RULES}", rules.len()));
    }
    for (i, r) in rules.iter().enumerate() {
        rule(&format!("{field}[{i}]"), r)?;
    }
    Ok(())
}

fn rule(field: &str, r: &Rule) -> Result<(), String> {
    if let Some(v) = r.ip_version {
        if v != 4 && v != 6 {
            return Err(format!("{field}.ipVersion {v}: use 4 or 6"));
        }
    }
    for (name, p) in [("protocol", r.protocol), ("notProtocol", r.not_protocol)] {
        match (p.map(Protocol::number), r.ip_version) {
            (Some(1), Some(6)) => {
                return Err(format!(
                    "{field}.{name}: ICMP is IPv4's; use ICMPv6 with ipVersion: 6"
                ));
            }
            (Some(58), Some(4)) => {
                return Err(format!(
                    "{field}.{name}: ICMPv6 is IPv6's; use ICMP with ipVersion: 4"
                ));
            }
            _ => {}
        }
    }
    let families: Vec<bool> = [&r.source, &r.destination]
        .iter()
        .flat_map(|e| e.nets.iter().chain(&e.not_nets))
        .map(|n| n.addr().is_ipv4())
        .collect();
    if families.contains(&true) && families.contains(&false) {
        return Err(format!(
            "{field} has both IPv4 and IPv6 nets: a rule matches one IP version; split it in two"
        ));
    }
    if let Some(m) = &r.icmp {
        icmp_fields(&format!("{field}.icmp"), m, r.protocol)?;
    }
    if let Some(m) = &r.not_icmp {
        // Calico ties notICMP to no protocol; its type and code are still checked.
        icmp_fields(&format!("{field}.notICMP"), m, Some(Protocol::Icmp))?;
    }
    entity(&format!("{field}.source"), &r.source, r)?;
    entity(&format!("{field}.destination"), &r.destination, r)
}

fn icmp_fields(field: &str, m: &IcmpMatch, protocol: Option<Protocol>) -> Result<(), String> {
    if !protocol.is_some_and(Protocol::is_icmp) {
        return Err(format!("{field} needs protocol: ICMP (or ICMPv6 for IPv6)"));
    }
    if m.icmp_type == Some(255) {
        return Err(format!("{field}.type 255 is not valid: use 0-254"));
    }
    if m.code.is_some() && m.icmp_type.is_none() {
        return Err(format!("{field}.code needs a type"));
    }
    Ok(())
}

fn entity(field: &str, e: &EntityRule, r: &Rule) -> Result<(), String> {
    for (name, nets) in [("nets", &e.nets), ("notNets", &e.not_nets)] {
        if nets.len() > MAX_NETS {
            return Err(format!("{field}.{name} has {} entries: at most {MAX_NETS}", nets.len()));
        }
        for (i, n) in nets.iter().enumerate() {
            let at = format!("{field}.{name}[{i}]");
            masked(&at, *n)?;
            if name == "notNets" && n.prefix_len() == 0 {
                return Err(format!("{at} {n} matches every address, so the rule matches nothing"));
            }
            let version = if n.addr().is_ipv4() { 4 } else { 6 };
            if r.ip_version.is_some_and(|v| v != version) {
                return Err(format!(
                    "{at} {n} is IPv{version} but the rule has ipVersion {}",
                    version ^ 2
                ));
            }
        }
    }
    for (name, text) in [("selector", &e.selector), ("notSelector", &e.not_selector)] {
        if let Some(t) = text {
            selector(&format!("{field}.{name}"), t)?;
        }
    }
    for (name, ports) in [("ports", &e.ports), ("notPorts", &e.not_ports)] {
        if ports.is_empty() {
            continue;
        }
        if ports.len() > MAX_PORTS {
            return Err(format!("{field}.{name} has {} entries: at most {MAX_PORTS}", ports.len()));
        }
        if !r.protocol.is_some_and(Protocol::has_ports) {
            return Err(format!("{field}.{name} needs protocol: TCP, UDP or SCTP in the rule"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gnp(spec: serde_json::Value) -> Result<GlobalNetworkPolicySpec, String> {
        let mut s: GlobalNetworkPolicySpec =
            serde_json::from_value(spec).map_err(|e| e.to_string())?;
        global_network_policy(&mut s)?;
        Ok(s)
    }

    #[test]
    fn types_are_written_out_as_calico_defaults_them() {
        use super::super::policy::PolicyType::{Egress, Ingress};
        let t = |spec| gnp(spec).map(|s| s.types);
        assert_eq!(t(json!({})), Ok(vec![Ingress]));
        assert_eq!(t(json!({"egress": [{"action": "Allow"}]})), Ok(vec![Egress]));
        assert_eq!(
            t(json!({"ingress": [{"action": "Deny"}], "egress": [{"action": "Allow"}]})),
            Ok(vec![Ingress, Egress])
        );
        assert_eq!(t(json!({"types": ["Egress"]})), Ok(vec![Egress]));
        // Explicit types win, as in Calico: the ingress rules are kept and never run.
        assert_eq!(
            t(json!({"types": ["Egress"], "ingress": [{"action": "Allow"}]})),
            Ok(vec![Egress])
        );
    }

    #[test]
    fn errors_name_the_field_and_the_fix() {
        let cases = [
            (
                json!({"ingress": [{"action": "Allow", "destination": {"ports": [80]}}]}),
                "spec.ingress[0].destination.ports needs protocol",
            ),
            (
                json!({"egress": [{"action": "Allow", "icmp": {"type": 8}}]}),
                "spec.egress[0].icmp needs protocol",
            ),
            (
                json!({"ingress": [{"action": "Allow", "protocol": "ICMP", "icmp": {"code": 1}}]}),
                "icmp.code needs a type",
            ),
            (
                json!({"ingress": [{"action": "Allow", "protocol": "ICMP", "icmp": {"type": 255}}]}),
                "use 0-254",
            ),
            (
                json!({"ingress": [{"action": "Allow", "ipVersion": 6, "protocol": "ICMP", "icmp": {"type": 8}}]}),
                "use ICMPv6",
            ),
            (
                json!({"ingress": [{"action": "Allow", "source": {"nets": ["10.0.0.0/8"]}, "destination": {"notNets": ["fd00::/8"]}}]}),
                "both IPv4 and IPv6",
            ),
            (
                json!({"ingress": [{"action": "Allow", "source": {"notNets": ["0.0.0.0/0"]}}]}),
                "matches nothing",
            ),
            (
                json!({"ingress": [{"action": "Allow", "notICMP": {"code": 3}}]}),
                "notICMP.code needs a type",
            ),
            (
                json!({"ingress": [{"action": "Allow", "ipVersion": 4, "source": {"nets": ["fd00::/8"]}}]}),
                "is IPv6 but the rule has ipVersion 4",
            ),
            (
                json!({"ingress": [{"action": "Allow", "source": {"nets": ["10.0.0.1/8"]}}]}),
                "did you mean 10.0.0.0/8",
            ),
            (json!({"ingress": [{"action": "Allow", "ipVersion": 5}]}), "use 4 or 6"),
            (json!({"selector": "app = 'x'"}), "spec.selector"),
            (
                json!({"ingress": [{"action": "Allow", "source": {"notSelector": "has("}}]}),
                "source.notSelector",
            ),
            (json!({"order": 1, "types": ["Ingress", "Ingress"]}), "twice"),
        ];
        for (spec, want) in cases {
            let e = gnp(spec.clone()).expect_err("invalid");
            assert!(e.contains(want), "{spec}: {e}");
        }
        let many: Vec<u16> = (1..=51).collect();
        let e = gnp(json!({"ingress": [{"action": "Allow", "protocol": "TCP", "destination": {"ports": many}}]}))
            .expect_err("51 ports");
        assert!(e.contains("at most 50"), "{e}");
        assert!(gnp(json!({"ingress": [{"action": "Allow", "protocol": 6, "destination": {"notPorts": ["1:1024"]}}]})).is_ok());
    }

    #[test]
    fn sets_and_profiles() {
        let mut set: GlobalNetworkSetSpec =
            serde_json::from_value(json!({"nets": ["198.51.100.1/24", "2001:db8::1"]}))
                .expect("set");
        assert!(network_set(&mut set).is_ok());
        assert_eq!(set.nets[0].to_string(), "198.51.100.0/24");
        let p: ProfileSpec =
            serde_json::from_value(json!({"labelsToApply": {"bad key!": "x"}})).expect("profile");
        assert!(profile(&p).expect_err("label").contains("spec.labelsToApply"));
    }
}
