//! The policy model, evaluated: given the workloads, network sets, policies and profiles of a
//! fabric, what happens to one packet, and why. It is the oracle the lab's probe matrix is
//! checked against and what `tartanctl policy explain` prints; the node agent's nftables
//! rules must agree with it.
//!
//! Semantics (Calico's, without tiers): a direction of a workload is decided by the policies
//! that select the workload and list that direction in `types`, in `order` then name. The
//! first rule that matches and says Allow or Deny decides; Log goes on; Pass skips the
//! remaining policies. If policies applied and none decided (and none passed), the packet is
//! denied. Otherwise the workload's profiles decide, in turn; if none allows, it is denied. A
//! profile that was never created allows everything (a network without a Profile behaves as
//! it did before policy existed).
//! A packet between two workloads must be allowed by the source's egress and the
//! destination's ingress; a side that is not a workload of the fabric is not policed here.

mod eval;
mod model;

pub use eval::{Decision, Direction, Reason, RuleRef, Verdict};
pub use model::{
    CompiledEntity, CompiledPolicy, CompiledProfile, CompiledRule, Endpoint, Flow, Model,
    ModelError, NetworkSet, effective_types, policy_order,
};

#[cfg(test)]
mod tests;
