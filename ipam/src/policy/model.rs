//! The inputs of the evaluator: workloads with their effective labels, network sets, the
//! policies in the order they run, the profiles, and a flow. Selectors are parsed once here.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::resources::policy::{
    EntityRule, GlobalNetworkPolicySpec, PolicyType, ProfileSpec, Protocol, Rule,
};
use crate::resources::selector::{Selector, SelectorError};

/// A workload as the model sees it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Endpoint {
    pub name: String,
    /// The workload's own labels (its profiles' `labelsToApply` go under them).
    pub labels: BTreeMap<String, String>,
    pub addresses: Vec<IpAddr>,
    /// Profiles in the order they are consulted (a workload's network's, by default).
    pub profiles: Vec<String>,
}

/// A `GlobalNetworkSet`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NetworkSet {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub nets: Vec<IpNet>,
}

/// One packet's header fields that rules match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The IP protocol number.
    pub protocol: u8,
    pub src_port: Option<u16>,
    pub dst_port: Option<u16>,
    /// ICMP type and code.
    pub icmp: Option<(u8, u8)>,
}

impl Flow {
    /// A TCP (or UDP, SCTP) packet to `dst_port`, from an ephemeral port.
    pub fn to_port(src: IpAddr, dst: IpAddr, protocol: Protocol, dst_port: u16) -> Flow {
        Flow {
            src,
            dst,
            protocol: protocol.number(),
            src_port: Some(40000),
            dst_port: Some(dst_port),
            icmp: None,
        }
    }

    /// An ICMP (or ICMPv6, by the addresses) echo request.
    pub fn ping(src: IpAddr, dst: IpAddr) -> Flow {
        let (protocol, echo) = if src.is_ipv4() { (1, 8) } else { (58, 128) };
        Flow { src, dst, protocol, src_port: None, dst_port: None, icmp: Some((echo, 0)) }
    }
}

/// Why a model could not be built: a stored selector that does not parse (validation keeps
/// these out; a model built from unchecked input says which one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{owner}: {error}")]
pub struct ModelError {
    pub owner: String,
    pub error: SelectorError,
}

/// A rule with its selectors parsed.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub rule: Rule,
    pub source: CompiledEntity,
    pub destination: CompiledEntity,
}

/// A source or destination side with its selectors parsed.
#[derive(Debug, Clone)]
pub struct CompiledEntity {
    pub selector: Option<Selector>,
    pub not_selector: Option<Selector>,
}

/// A GlobalNetworkPolicy with its selectors parsed and its types written out.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub name: String,
    pub order: Option<f64>,
    pub selector: Selector,
    pub types: Vec<PolicyType>,
    pub ingress: Vec<CompiledRule>,
    pub egress: Vec<CompiledRule>,
}

/// A Profile with its selectors parsed.
#[derive(Debug, Clone)]
pub struct CompiledProfile {
    pub labels_to_apply: BTreeMap<String, String>,
    pub ingress: Vec<CompiledRule>,
    pub egress: Vec<CompiledRule>,
}

/// Everything the evaluator needs, checked and ordered.
#[derive(Debug, Clone)]
pub struct Model {
    pub(crate) endpoints: Vec<Endpoint>,
    /// Each endpoint's labels with its profiles' `labelsToApply` under them.
    pub(crate) effective: Vec<BTreeMap<String, String>>,
    pub(crate) sets: Vec<NetworkSet>,
    /// In the order they run: `order` ascending (none last), then name.
    pub(crate) policies: Vec<CompiledPolicy>,
    pub(crate) profiles: BTreeMap<String, CompiledProfile>,
}

fn compile_entity(owner: &str, e: &EntityRule) -> Result<CompiledEntity, ModelError> {
    let parse = |text: &Option<String>| {
        text.as_deref()
            .map(Selector::parse)
            .transpose()
            .map_err(|error| ModelError { owner: owner.to_string(), error })
    };
    Ok(CompiledEntity { selector: parse(&e.selector)?, not_selector: parse(&e.not_selector)? })
}

fn compile_rules(owner: &str, rules: &[Rule]) -> Result<Vec<CompiledRule>, ModelError> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let owner = format!("{owner} rule {}", i + 1);
            Ok(CompiledRule {
                rule: r.clone(),
                source: compile_entity(&owner, &r.source)?,
                destination: compile_entity(&owner, &r.destination)?,
            })
        })
        .collect()
}

/// Calico's order of policies: by `order` (none after every number), then by name as felix
/// compares `<name>/...`, byte by byte (so `a-b` runs before `a`).
pub fn policy_order(a: (Option<f64>, &str), b: (Option<f64>, &str)) -> Ordering {
    let by_order = match (a.0, b.0) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    };
    let key = |name: &str| name.bytes().chain([b'/']).collect::<Vec<u8>>();
    by_order.then_with(|| key(a.1).cmp(&key(b.1)))
}

impl Model {
    /// Builds the model; `policies` and `profiles` are `(name, spec)` pairs.
    pub fn new(
        endpoints: Vec<Endpoint>,
        sets: Vec<NetworkSet>,
        policies: &[(String, GlobalNetworkPolicySpec)],
        profiles: &[(String, ProfileSpec)],
    ) -> Result<Model, ModelError> {
        let mut compiled = Vec::with_capacity(policies.len());
        for (name, spec) in policies {
            let owner = format!("GlobalNetworkPolicy {name}");
            let selector = Selector::parse(&spec.selector)
                .map_err(|error| ModelError { owner: owner.clone(), error })?;
            compiled.push(CompiledPolicy {
                name: name.clone(),
                order: spec.order,
                selector,
                types: effective_types(spec),
                ingress: compile_rules(&format!("{owner} ingress"), &spec.ingress)?,
                egress: compile_rules(&format!("{owner} egress"), &spec.egress)?,
            });
        }
        compiled.sort_by(|a, b| policy_order((a.order, &a.name), (b.order, &b.name)));
        let mut profile_map = BTreeMap::new();
        for (name, spec) in profiles {
            let owner = format!("Profile {name}");
            profile_map.insert(
                name.clone(),
                CompiledProfile {
                    labels_to_apply: spec.labels_to_apply.clone(),
                    ingress: compile_rules(&format!("{owner} ingress"), &spec.ingress)?,
                    egress: compile_rules(&format!("{owner} egress"), &spec.egress)?,
                },
            );
        }
        let effective = endpoints
            .iter()
            .map(|e| {
                let mut labels = BTreeMap::new();
                for p in e.profiles.iter().filter_map(|p| profile_map.get(p)) {
                    labels.extend(p.labels_to_apply.clone());
                }
                labels.extend(e.labels.clone());
                labels
            })
            .collect();
        Ok(Model { endpoints, effective, sets, policies: compiled, profiles: profile_map })
    }

    /// The workload that holds `address`, with its index.
    pub(crate) fn endpoint_at(&self, address: IpAddr) -> Option<usize> {
        self.endpoints.iter().position(|e| e.addresses.contains(&address))
    }

    /// Every workload, as given.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// An endpoint by name.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// The labels selectors see for endpoint `i`.
    pub fn effective_labels(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.endpoints.iter().position(|e| e.name == name).and_then(|i| self.effective.get(i))
    }

    /// The names of the policies that apply to endpoint `i` in `types` direction `t`, in order.
    /// The policies that apply to the endpoint named `name` in direction `t`, in order.
    pub fn applying_to(&self, name: &str, t: PolicyType) -> Vec<&CompiledPolicy> {
        match self.endpoints.iter().position(|e| e.name == name) {
            Some(i) => self.applying(i, t),
            None => Vec::new(),
        }
    }

    /// A profile by name (`None`: never created, which allows everything).
    pub fn profile(&self, name: &str) -> Option<&CompiledProfile> {
        self.profiles.get(name)
    }

    /// The addresses `s` selects, of one IP version: its workloads' addresses and its network
    /// sets' nets, sorted and without duplicates.
    pub fn members(&self, s: &Selector, v4: bool) -> Vec<IpNet> {
        let mut out: Vec<IpNet> = self
            .endpoints
            .iter()
            .zip(&self.effective)
            .filter(|(_, labels)| s.matches(labels))
            .flat_map(|(e, _)| e.addresses.iter().map(|a| IpNet::from(*a)))
            .chain(
                self.sets
                    .iter()
                    .filter(|n| s.matches(&n.labels))
                    .flat_map(|n| n.nets.iter().copied()),
            )
            .filter(|n| n.addr().is_ipv4() == v4)
            .collect();
        out.sort();
        out.dedup();
        out
    }

    pub(crate) fn applying(&self, i: usize, t: PolicyType) -> Vec<&CompiledPolicy> {
        let Some(labels) = self.effective.get(i) else { return Vec::new() };
        self.policies
            .iter()
            .filter(|p| p.types.contains(&t) && p.selector.matches(labels))
            .collect()
    }

    /// Whether any workload or network set holding `address` has labels `s` matches.
    pub(crate) fn selected(&self, s: &Selector, address: IpAddr) -> bool {
        let workload = self
            .endpoints
            .iter()
            .zip(&self.effective)
            .any(|(e, labels)| e.addresses.contains(&address) && s.matches(labels));
        workload
            || self
                .sets
                .iter()
                .any(|n| n.nets.iter().any(|net| net.contains(&address)) && s.matches(&n.labels))
    }
}

/// The directions a policy applies to: its `types`, or Calico's default when it has none
/// (Ingress, plus Egress if it has egress rules; only Egress if it has only egress rules).
pub fn effective_types(spec: &GlobalNetworkPolicySpec) -> Vec<PolicyType> {
    if !spec.types.is_empty() {
        return spec.types.clone();
    }
    match (spec.ingress.is_empty(), spec.egress.is_empty()) {
        (_, true) => vec![PolicyType::Ingress],
        (true, false) => vec![PolicyType::Egress],
        (false, false) => vec![PolicyType::Ingress, PolicyType::Egress],
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            6 => "tcp".to_string(),
            17 => "udp".to_string(),
            132 => "sctp".to_string(),
            1 => "icmp".to_string(),
            58 => "icmpv6".to_string(),
            n => format!("protocol {n}"),
        };
        match (self.dst_port, self.icmp) {
            (Some(p), _) => write!(f, "{proto} {} -> {} port {p}", self.src, self.dst),
            (None, Some((t, c))) => {
                write!(f, "{proto} {} -> {} type {t} code {c}", self.src, self.dst)
            }
            _ => write!(f, "{proto} {} -> {}", self.src, self.dst),
        }
    }
}
