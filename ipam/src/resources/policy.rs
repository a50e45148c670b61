//! The policy kinds in Calico's schema: `GlobalNetworkPolicy`, `Profile` and
//! `GlobalNetworkSet`, with their rules (`action`, `protocol`, `icmp`, `source`/`destination`
//! with nets, selectors and ports). Field names and value spellings are Calico's, so a
//! calicoctl manifest reads unchanged; what each field means is in `docs/policy.md`, and what
//! a packet meets is decided by [`crate::policy`].

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `GlobalNetworkPolicy`: rules for the workloads its `selector` picks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GlobalNetworkPolicySpec {
    /// Lower runs first; none runs after every policy with one (ties go by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<f64>,
    /// Which workloads the policy applies to (`all()` when empty).
    #[serde(default)]
    pub selector: String,
    /// The directions the policy applies to; for a workload it selects, each of these becomes
    /// default-deny. Written out when the policy is stored (Calico's defaults: `Ingress`, plus
    /// `Egress` when there are egress rules, or only `Egress` when there are only those).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<PolicyType>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
}

/// `Profile`: labels every workload of the network gets, and the rules it meets when no
/// policy decides (or a policy passes). Named after its network.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProfileSpec {
    /// Labels a workload inherits; its own labels win.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels_to_apply: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<Rule>,
}

/// `GlobalNetworkSet`: addresses outside the fabric, given labels so rules can select them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GlobalNetworkSetSpec {
    #[serde(default, deserialize_with = "nets")]
    pub nets: Vec<IpNet>,
}

/// A direction a policy applies to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyType {
    Ingress,
    Egress,
}

/// One rule: when a packet matches every field that is set, `action` happens.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Rule {
    pub action: Action,
    /// 4 or 6: the rule matches only that IP version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_version: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<IcmpMatch>,
    #[serde(default, rename = "notICMP", skip_serializing_if = "Option::is_none")]
    pub not_icmp: Option<IcmpMatch>,
    #[serde(default, skip_serializing_if = "EntityRule::is_empty")]
    pub source: EntityRule,
    #[serde(default, skip_serializing_if = "EntityRule::is_empty")]
    pub destination: EntityRule,
    /// Notes kept with the rule (`metadata.annotations`), as in Calico.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<RuleMetadata>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct RuleMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// What a matching rule does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Action {
    /// Accept; no later rule or policy is consulted.
    #[default]
    Allow,
    /// Drop; no later rule or policy is consulted.
    Deny,
    /// Skip the remaining policies: the workload's profiles decide.
    Pass,
    /// Log the packet and go on to the next rule.
    Log,
}

/// ICMP type and (optionally) code.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[serde(deny_unknown_fields)]
pub struct IcmpMatch {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
}

/// The source or destination side of a rule; every field that is set must match.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EntityRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "nets")]
    pub nets: Vec<IpNet>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "nets")]
    pub not_nets: Vec<IpNet>,
    /// Workloads and network sets whose labels match; their addresses match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Any address but those of the workloads and network sets whose labels match (so also
    /// addresses outside the fabric).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<Port>,
}

impl EntityRule {
    pub fn is_empty(&self) -> bool {
        self == &EntityRule::default()
    }
}

/// Nets as Calico writes them: a CIDR, or a bare address for its host route.
fn nets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    texts
        .iter()
        .map(|t| {
            if t.contains('/') {
                t.parse::<IpNet>().map_err(|_| format!("{t:?} is not a CIDR like 10.0.0.0/8"))
            } else {
                t.parse::<std::net::IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| format!("{t:?} is not an IP address or CIDR"))
            }
        })
        .collect::<Result<_, _>>()
        .map_err(serde::de::Error::custom)
}

/// An IP protocol, by Calico's name or by number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    IcmpV6,
    Sctp,
    UdpLite,
    Number(u8),
}

impl Protocol {
    /// Calico's names, in Calico's spelling.
    const NAMES: [(Protocol, &'static str, u8); 6] = [
        (Protocol::Tcp, "TCP", 6),
        (Protocol::Udp, "UDP", 17),
        (Protocol::Icmp, "ICMP", 1),
        (Protocol::IcmpV6, "ICMPv6", 58),
        (Protocol::Sctp, "SCTP", 132),
        (Protocol::UdpLite, "UDPLite", 136),
    ];

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Number(n) => n,
            named => Self::NAMES.iter().find(|(p, _, _)| *p == named).map_or(0, |(_, _, n)| *n),
        }
    }

    /// Whether rules may match ports of it (TCP, UDP and SCTP, by name or number).
    pub fn has_ports(self) -> bool {
        matches!(self.number(), 6 | 17 | 132)
    }

    /// Whether it is ICMP (1) or ICMPv6 (58), by name or number.
    pub fn is_icmp(self) -> bool {
        matches!(self.number(), 1 | 58)
    }
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Protocol, String> {
        // Calico accepts its names in any case (`tcp`, `TCP`) and numbers 1-255.
        if let Some((p, _, _)) =
            Self::NAMES.iter().find(|(_, name, _)| name.eq_ignore_ascii_case(s))
        {
            return Ok(*p);
        }
        match s.parse::<u8>() {
            Ok(n) if n > 0 => Ok(Protocol::Number(n)),
            _ => Err(format!(
                "protocol {s:?} is not valid: use TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number 1-255"
            )),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Number(n) => write!(f, "{n}"),
            named => {
                let name =
                    Self::NAMES.iter().find(|(p, _, _)| p == named).map_or("?", |(_, n, _)| n);
                f.write_str(name)
            }
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Protocol::Number(n) => s.serialize_u8(*n),
            named => s.collect_str(named),
        }
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
        match NumOrText::deserialize(d)? {
            NumOrText::Num(n) => u8::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .map(Protocol::Number)
                .ok_or_else(|| serde::de::Error::custom(format!("protocol {n}: use 1-255"))),
            NumOrText::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText {
    Num(i64),
    Text(String),
}

/// A port or an inclusive range of ports: `80`, `"8080"` or `"8000:8100"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    pub min: u16,
    pub max: u16,
}

impl Port {
    pub fn contains(self, port: u16) -> bool {
        (self.min..=self.max).contains(&port)
    }
}

impl FromStr for Port {
    type Err = String;

    fn from_str(s: &str) -> Result<Port, String> {
        let num = |t: &str| t.trim().parse::<u16>().ok();
        let bad = || {
            if s.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
                format!(
                    "port {s:?}: named ports are not supported yet; use the number or a range \"a:b\""
                )
            } else {
                format!(
                    "port {s:?} is not valid: use a number 1-65535 or a range \"a:b\" with a <= b"
                )
            }
        };
        let (min, max) = match s.split_once(':') {
            Some((a, b)) => (num(a).ok_or_else(bad)?, num(b).ok_or_else(bad)?),
            None => {
                let p = num(s).ok_or_else(bad)?;
                (p, p)
            }
        };
        if min > max || min == 0 {
            return Err(bad());
        }
        Ok(Port { min, max })
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}:{}", self.min, self.max)
        }
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.min == self.max { s.serialize_u16(self.min) } else { s.collect_str(self) }
    }
}

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Port, D::Error> {
        match NumOrText::deserialize(d)? {
            NumOrText::Num(n) => u16::try_from(n)
                .ok()
                .filter(|p| *p > 0)
                .map(|p| Port { min: p, max: p })
                .ok_or_else(|| serde::de::Error::custom(format!("port {n}: use 1-65535"))),
            NumOrText::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_by_name_in_any_case_or_by_number() {
        assert_eq!("tcp".parse(), Ok(Protocol::Tcp));
        assert_eq!("ICMPv6".parse(), Ok(Protocol::IcmpV6));
        assert_eq!("132".parse::<Protocol>().map(Protocol::has_ports), Ok(true));
        assert!("0".parse::<Protocol>().is_err());
        assert!("GRE".parse::<Protocol>().is_err());
        let p: Protocol = serde_json::from_str("17").expect("number");
        assert!(p.has_ports());
        assert_eq!(serde_json::to_string(&Protocol::IcmpV6).ok(), Some("\"ICMPv6\"".into()));
        assert!(serde_json::from_str::<Protocol>("256").is_err());
    }

    #[test]
    fn ports_and_ranges_round_trip() {
        let ports: Vec<Port> =
            serde_json::from_str(r#"[80, "443", "8000:8100", 1]"#).expect("ports");
        assert_eq!(ports[2], Port { min: 8000, max: 8100 });
        assert!(ports[2].contains(8050) && !ports[2].contains(8101));
        assert_eq!(serde_json::to_string(&ports).ok(), Some(r#"[80,443,"8000:8100",1]"#.into()));
        for bad in [r#""9:8""#, "65536", r#""http""#, r#""1:""#, "-1", "0", r#""0:80""#] {
            assert!(serde_json::from_str::<Port>(bad).is_err(), "{bad}");
        }
        let named = serde_json::from_str::<Port>(r#""http""#).expect_err("named");
        assert!(named.to_string().contains("named ports"), "{named}");
    }

    #[test]
    fn a_calico_rule_reads_with_calico_field_names() {
        let rule: Rule = serde_json::from_str(
            r#"{"action": "Allow", "protocol": "ICMP", "notICMP": {"type": 8, "code": 0},
                "source": {"selector": "app == 'web'", "notNets": ["10.0.0.1"]},
                "destination": {"ports": [80, "8000:8080"]}}"#,
        )
        .expect("rule");
        assert_eq!(rule.not_icmp, Some(IcmpMatch { icmp_type: Some(8), code: Some(0) }));
        assert_eq!(rule.source.not_nets, vec!["10.0.0.1/32".parse::<IpNet>().expect("net")]);
        assert!(serde_json::from_str::<Rule>(r#"{"action": "Allow", "sauce": {}}"#).is_err());
        assert!(serde_json::from_str::<Rule>(r#"{"action": "allow"}"#).is_err());
    }
}
