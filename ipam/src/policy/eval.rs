//! Evaluation: a flow against the model, each direction decided with the rule (or the default)
//! that decided it.

use std::fmt;
use std::net::IpAddr;

use super::model::{CompiledEntity, CompiledRule, Flow, Model};
use crate::resources::policy::{Action, PolicyType, Rule};

/// Which side of a workload a decision is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Leaving the source workload (its policies' `egress` rules).
    Egress,
    /// Reaching the destination workload (its policies' `ingress` rules).
    Ingress,
}

/// A rule by where it lives: a policy's or a profile's, its direction and 1-based index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleRef {
    /// `GlobalNetworkPolicy web` or `Profile net1`.
    pub owner: String,
    pub direction: Direction,
    pub index: usize,
    pub action: Action,
}

/// Why a direction was decided as it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A rule with Allow or Deny matched.
    Rule(RuleRef),
    /// These policies applied and none allowed the packet: default deny.
    PoliciesDidNotAllow(Vec<String>),
    /// No policy decided and no profile allowed.
    ProfilesDidNotAllow(Vec<String>),
    /// No policy decided and the workload's profile was never created: a network's profile
    /// allows everything until an operator writes one (today's behaviour without policy).
    ProfileNotCreated(String),
}

/// One direction's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub endpoint: String,
    pub direction: Direction,
    pub allowed: bool,
    pub reason: Reason,
    /// Policies that applied, in order (empty: the profiles alone decided).
    pub policies: Vec<String>,
    /// A Pass rule that sent the packet to the profiles.
    pub passed_by: Option<RuleRef>,
    /// Log rules the packet matched on the way.
    pub logged: Vec<RuleRef>,
}

/// What happens to a flow: the source workload's egress and the destination workload's
/// ingress; `None` for a side that is not a workload of the fabric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub flow: Flow,
    pub egress: Option<Decision>,
    pub ingress: Option<Decision>,
}

impl Verdict {
    /// Whether the packet gets through both sides.
    pub fn allowed(&self) -> bool {
        self.egress.iter().chain(&self.ingress).all(|d| d.allowed)
    }
}

impl Model {
    /// What happens to `flow`.
    pub fn evaluate(&self, flow: &Flow) -> Verdict {
        Verdict {
            flow: *flow,
            egress: self.endpoint_at(flow.src).map(|i| self.decide(i, Direction::Egress, flow)),
            ingress: self.endpoint_at(flow.dst).map(|i| self.decide(i, Direction::Ingress, flow)),
        }
    }

    fn decide(&self, i: usize, direction: Direction, flow: &Flow) -> Decision {
        let t = match direction {
            Direction::Egress => PolicyType::Egress,
            Direction::Ingress => PolicyType::Ingress,
        };
        let endpoint = self.endpoints.get(i).map(|e| e.name.clone()).unwrap_or_default();
        let applying = self.applying(i, t);
        let mut d = Decision {
            endpoint,
            direction,
            allowed: false,
            reason: Reason::PoliciesDidNotAllow(Vec::new()),
            policies: applying.iter().map(|p| p.name.clone()).collect(),
            passed_by: None,
            logged: Vec::new(),
        };
        for p in &applying {
            let rules = match direction {
                Direction::Egress => &p.egress,
                Direction::Ingress => &p.ingress,
            };
            let owner = format!("GlobalNetworkPolicy {}", p.name);
            match self.first_final(&owner, direction, rules, flow, &mut d.logged) {
                Some(r) if r.action == Action::Pass => {
                    d.passed_by = Some(r);
                    break;
                }
                Some(r) => {
                    d.allowed = r.action == Action::Allow;
                    d.reason = Reason::Rule(r);
                    return d;
                }
                None => {}
            }
        }
        if !applying.is_empty() && d.passed_by.is_none() {
            d.reason = Reason::PoliciesDidNotAllow(d.policies.clone());
            return d;
        }
        let profiles = self.endpoints.get(i).map(|e| e.profiles.clone()).unwrap_or_default();
        for name in &profiles {
            let Some(p) = self.profiles.get(name) else {
                d.allowed = true;
                d.reason = Reason::ProfileNotCreated(name.clone());
                return d;
            };
            let rules = match direction {
                Direction::Egress => &p.egress,
                Direction::Ingress => &p.ingress,
            };
            let owner = format!("Profile {name}");
            // A Pass in a profile moves on to the next profile.
            match self.first_final(&owner, direction, rules, flow, &mut d.logged) {
                Some(r) if r.action == Action::Pass => {}
                Some(r) => {
                    d.allowed = r.action == Action::Allow;
                    d.reason = Reason::Rule(r);
                    return d;
                }
                None => {}
            }
        }
        d.reason = Reason::ProfilesDidNotAllow(profiles);
        d
    }

    /// The first matching rule that is not Log (Log rules matched on the way are noted).
    fn first_final(
        &self,
        owner: &str,
        direction: Direction,
        rules: &[CompiledRule],
        flow: &Flow,
        logged: &mut Vec<RuleRef>,
    ) -> Option<RuleRef> {
        for (k, r) in rules.iter().enumerate() {
            if !self.rule_matches(r, flow) {
                continue;
            }
            let at = RuleRef {
                owner: owner.to_string(),
                direction,
                index: k + 1,
                action: r.rule.action,
            };
            if r.rule.action == Action::Log {
                logged.push(at);
            } else {
                return Some(at);
            }
        }
        None
    }

    fn rule_matches(&self, r: &CompiledRule, flow: &Flow) -> bool {
        let rule: &Rule = &r.rule;
        let version = if flow.src.is_ipv4() { 4 } else { 6 };
        if rule.ip_version.is_some_and(|v| v != version) {
            return false;
        }
        // As felix renders it, a rule with nets belongs to their IP version only (even one
        // with only notNets).
        let family = [&rule.source, &rule.destination]
            .into_iter()
            .flat_map(|e| e.nets.iter().chain(&e.not_nets))
            .next()
            .map(|n| if n.addr().is_ipv4() { 4 } else { 6 });
        if family.is_some_and(|v| v != version) {
            return false;
        }
        if rule.protocol.is_some_and(|p| p.number() != flow.protocol)
            || rule.not_protocol.is_some_and(|p| p.number() == flow.protocol)
        {
            return false;
        }
        let icmp_matches = |m: &crate::resources::policy::IcmpMatch| {
            let is_icmp = matches!(flow.protocol, 1 | 58);
            is_icmp
                && flow.icmp.is_some_and(|(t, c)| {
                    m.icmp_type.is_none_or(|mt| mt == t) && m.code.is_none_or(|mc| mc == c)
                })
        };
        if rule.icmp.as_ref().is_some_and(|m| !icmp_matches(m))
            || rule.not_icmp.as_ref().is_some_and(icmp_matches)
        {
            return false;
        }
        self.entity_matches(&rule.source, &r.source, flow.src, flow.src_port)
            && self.entity_matches(&rule.destination, &r.destination, flow.dst, flow.dst_port)
    }

    fn entity_matches(
        &self,
        e: &crate::resources::policy::EntityRule,
        c: &CompiledEntity,
        address: IpAddr,
        port: Option<u16>,
    ) -> bool {
        if !e.nets.is_empty() && !e.nets.iter().any(|n| n.contains(&address)) {
            return false;
        }
        if e.not_nets.iter().any(|n| n.contains(&address)) {
            return false;
        }
        if c.selector.as_ref().is_some_and(|s| !self.selected(s, address)) {
            return false;
        }
        if c.not_selector.as_ref().is_some_and(|s| self.selected(s, address)) {
            return false;
        }
        if !e.ports.is_empty() && !port.is_some_and(|p| e.ports.iter().any(|r| r.contains(p))) {
            return false;
        }
        !port.is_some_and(|p| e.not_ports.iter().any(|r| r.contains(p)))
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Egress => "egress",
            Direction::Ingress => "ingress",
        })
    }
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} rule {} ({:?})", self.owner, self.direction, self.index, self.action)
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.allowed { "allowed" } else { "denied" };
        write!(f, "{} of {}: {verdict} by ", self.direction, self.endpoint)?;
        match &self.reason {
            Reason::Rule(r) => write!(f, "{r}")?,
            Reason::PoliciesDidNotAllow(ps) => write!(
                f,
                "default deny: selected by {} and no rule allowed it",
                ps.iter()
                    .map(|p| format!("GlobalNetworkPolicy {p}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?,
            Reason::ProfilesDidNotAllow(profiles) if profiles.is_empty() => {
                write!(f, "default deny: no policy decided and the workload has no profile")?
            }
            Reason::ProfilesDidNotAllow(profiles) => write!(
                f,
                "default deny: no policy decided and no rule of profile {} allowed it",
                profiles.join(", ")
            )?,
            Reason::ProfileNotCreated(name) => write!(
                f,
                "Profile {name}, which does not exist: until it is created it allows everything"
            )?,
        }
        if let Some(p) = &self.passed_by {
            write!(f, "; passed to the profiles by {p}")?;
        }
        for l in &self.logged {
            write!(f, "; logged by {l}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = if self.allowed() { "ALLOWED" } else { "DENIED" };
        writeln!(f, "{}: {outcome}", self.flow)?;
        match &self.egress {
            Some(d) => writeln!(f, "  {d}")?,
            None => writeln!(f, "  egress: {} is not a workload; not policed here", self.flow.src)?,
        }
        match &self.ingress {
            Some(d) => writeln!(f, "  {d}"),
            None => writeln!(f, "  ingress: {} is not a workload; not policed here", self.flow.dst),
        }
    }
}
