//! `ipam check`: every inconsistency between the blocks, the pools, the nodes and the
//! workload endpoints the agents report, as a report that `ipam release --from-report` can act
//! on (each leaked address with the sequence number it had, so acting on an old report never
//! frees an address handed out since).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::gc::used_addresses;
use super::{AffinityState, Ipam, Result};
use crate::time;

/// Claims still pending after this long were interrupted.
const STUCK_CLAIM_SECONDS: u64 = 60;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub generated_at: String,
    pub revision: u64,
    pub pools: usize,
    pub blocks: usize,
    pub allocations: usize,
    pub workload_ips: usize,
    pub problems: Vec<Problem>,
}

/// One inconsistency.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Problem {
    /// Allocated in a block, but no workload endpoint uses it: a leak.
    AllocatedNotInUse {
        ip: IpAddr,
        handle: String,
        node: String,
        block: IpNet,
        sequence: u64,
        allocated_at: String,
    },
    /// A workload endpoint uses an address the IPAM has not allocated.
    InUseNotAllocated { ip: IpAddr, workload: String, node: String },
    /// A workload endpoint uses an address in no pool.
    InUseOutsidePools { ip: IpAddr, workload: String, node: String },
    /// A workload endpoint names a handle that holds no address.
    HandleWithoutAddresses { handle: String, workload: String },
    /// The address is allocated, but to another handle than the workload's.
    HandleMismatch {
        ip: IpAddr,
        workload: String,
        workload_handle: String,
        allocated_handle: String,
    },
    /// A block with no owner, or owned by a node that is not registered.
    BlockWithoutOwner { block: IpNet, affinity: Option<String>, used: u32 },
    /// A block in no pool.
    BlockOutsidePools { block: IpNet, used: u32 },
    /// A block whose free list, cooling list and allocations disagree.
    InvalidBlock { block: IpNet, reason: String },
    /// A claim that never finished.
    StuckAffinity { node: String, block: IpNet, state: AffinityState },
}

impl Problem {
    /// A one-line description for people.
    pub fn describe(&self) -> String {
        match self {
            Problem::AllocatedNotInUse { ip, handle, node, .. } => {
                format!(
                    "{ip} is allocated to handle {handle} on node {node} but no workload uses it"
                )
            }
            Problem::InUseNotAllocated { ip, workload, node } => {
                format!("{ip} is used by workload {workload} on node {node} but is not allocated")
            }
            Problem::InUseOutsidePools { ip, workload, .. } => {
                format!("{ip} is used by workload {workload} but is in no pool")
            }
            Problem::HandleWithoutAddresses { handle, workload } => {
                format!("handle {handle} of workload {workload} holds no address")
            }
            Problem::HandleMismatch { ip, workload, workload_handle, allocated_handle } => format!(
                "{ip} of workload {workload} (handle {workload_handle}) is allocated to handle {allocated_handle}"
            ),
            Problem::BlockWithoutOwner { block, affinity, used } => format!(
                "block {block} ({used} used) has {}",
                match affinity {
                    Some(n) => format!("owner {n}, which is not a registered node"),
                    None => "no owner".to_string(),
                }
            ),
            Problem::BlockOutsidePools { block, used } => {
                format!("block {block} ({used} used) is in no pool")
            }
            Problem::InvalidBlock { block, reason } => {
                format!("block {block} is invalid: {reason}")
            }
            Problem::StuckAffinity { node, block, state } => {
                format!("claim of block {block} by {node} is stuck in state {state:?}")
            }
        }
    }
}

impl Ipam {
    /// Cross-checks the IPAM against pools, nodes and workload endpoints.
    pub fn check(&self) -> Result<CheckReport> {
        self.sync()?;
        let revision = self.store.revision();
        let now = time::now_unix();
        let pools = self.pools()?;
        let nodes = self.nodes()?;
        let used = used_addresses(self)?;
        let blocks = self.raw_blocks()?;
        let mut problems = Vec::new();
        let mut allocated: BTreeMap<IpAddr, String> = BTreeMap::new();
        let mut allocations = 0;
        for b in &blocks {
            if let Err(reason) = b.check_invariants() {
                problems.push(Problem::InvalidBlock { block: b.cidr, reason });
            }
            if !pools.iter().any(|p| p.spec.cidr.contains(&b.cidr)) {
                problems.push(Problem::BlockOutsidePools { block: b.cidr, used: b.used() });
            }
            if b.affinity.as_ref().is_none_or(|n| !nodes.contains_key(n)) {
                problems.push(Problem::BlockWithoutOwner {
                    block: b.cidr,
                    affinity: b.affinity.clone(),
                    used: b.used(),
                });
            }
            for (ord, a) in &b.allocations {
                allocations += 1;
                let ip = b.ip(*ord);
                allocated.insert(ip, a.handle.clone());
                if !used.contains_key(&ip) {
                    problems.push(Problem::AllocatedNotInUse {
                        ip,
                        handle: a.handle.clone(),
                        node: a.node.clone(),
                        block: b.cidr,
                        sequence: a.sequence,
                        allocated_at: time::rfc3339(a.allocated_at),
                    });
                }
            }
        }
        let mut workload_handles: BTreeSet<(String, String)> = BTreeSet::new();
        for (ip, (workload, wep)) in &used {
            workload_handles.insert((wep.handle.clone(), workload.clone()));
            match allocated.get(ip) {
                Some(h) if *h != wep.handle => problems.push(Problem::HandleMismatch {
                    ip: *ip,
                    workload: workload.clone(),
                    workload_handle: wep.handle.clone(),
                    allocated_handle: h.clone(),
                }),
                Some(_) => {}
                None if pools.iter().any(|p| p.spec.cidr.contains(ip)) => {
                    problems.push(Problem::InUseNotAllocated {
                        ip: *ip,
                        workload: workload.clone(),
                        node: wep.node.clone(),
                    })
                }
                None => problems.push(Problem::InUseOutsidePools {
                    ip: *ip,
                    workload: workload.clone(),
                    node: wep.node.clone(),
                }),
            }
        }
        let held: BTreeSet<String> = allocated.values().cloned().collect();
        for (handle, workload) in workload_handles {
            if !held.contains(&handle) {
                problems.push(Problem::HandleWithoutAddresses { handle, workload });
            }
        }
        for aff in self.affinities()? {
            if aff.state != AffinityState::Confirmed
                && now.saturating_sub(aff.updated_at) > STUCK_CLAIM_SECONDS
            {
                problems.push(Problem::StuckAffinity {
                    node: aff.node,
                    block: aff.cidr,
                    state: aff.state,
                });
            }
        }
        Ok(CheckReport {
            generated_at: time::rfc3339(now),
            revision,
            pools: pools.len(),
            blocks: blocks.len(),
            allocations,
            workload_ips: used.len(),
            problems,
        })
    }
}
