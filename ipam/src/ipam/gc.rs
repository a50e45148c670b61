//! Leak collection, built into the server: addresses of nodes that are gone, and addresses a
//! reporting node no longer lists in any workload endpoint, are released after the grace
//! period — all of a handle's addresses or none, each with the sequence number seen, so an
//! address reused meanwhile is never freed. Empty blocks are given back after they have been
//! seen empty for the grace period, never a registered node's last one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use super::{Ipam, Result};
use crate::resources::{Kind, WorkloadEndpointSpec};

/// What the collector remembers between rounds.
#[derive(Debug, Default)]
pub struct GcState {
    /// (address, sequence) → unix time first seen leaked.
    leaks: HashMap<(IpAddr, u64), u64>,
    /// block → unix time first seen empty.
    empty: HashMap<IpNet, u64>,
}

/// One round's outcome.
#[derive(Serialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    pub released: Vec<IpAddr>,
    pub blocks_released: Vec<IpNet>,
    pub candidates: usize,
}

/// Addresses in use according to the workload endpoints, with their endpoint's node.
pub(crate) fn used_addresses(
    ipam: &Ipam,
) -> Result<BTreeMap<IpAddr, (String, WorkloadEndpointSpec)>> {
    let (weps, _) = ipam.store.list(Kind::WorkloadEndpoint)?;
    let mut used = BTreeMap::new();
    for raw in weps {
        let Ok(wep) = raw.typed::<WorkloadEndpointSpec>() else { continue };
        for net in &wep.spec.ip_networks {
            used.insert(net.addr(), (raw.metadata.name.clone(), wep.spec.clone()));
        }
    }
    Ok(used)
}

impl Ipam {
    /// Runs one round of collection at unix time `now`.
    pub fn collect_garbage(&self, state: &mut GcState, now: u64) -> Result<GcReport> {
        self.sync()?;
        let grace = self.config()?.leak_grace_period_seconds;
        let mut report = GcReport::default();
        if grace == 0 {
            state.leaks.clear();
            state.empty.clear();
            return Ok(report);
        }
        let nodes: HashSet<String> = self.nodes()?.into_keys().collect();
        let reporting: HashSet<String> =
            self.store.list(Kind::NodeStatus)?.0.into_iter().map(|r| r.metadata.name).collect();
        let used = used_addresses(self)?;
        let blocks = self.raw_blocks()?;

        // Classify every allocation; a handle is released only if all its addresses are leaks.
        let mut seen = HashSet::new();
        let mut handles: BTreeMap<String, Vec<(IpAddr, u64, bool)>> = BTreeMap::new();
        for b in &blocks {
            for (ord, a) in &b.allocations {
                let ip = b.ip(*ord);
                let gone = !nodes.contains(&a.node);
                let unused = reporting.contains(&a.node) && !used.contains_key(&ip);
                let old_enough = now.saturating_sub(a.allocated_at) >= grace;
                let mut confirmed = false;
                if (gone || unused) && old_enough {
                    let first = *state.leaks.entry((ip, a.sequence)).or_insert(now);
                    seen.insert((ip, a.sequence));
                    confirmed = now.saturating_sub(first) >= grace;
                }
                handles.entry(a.handle.clone()).or_default().push((ip, a.sequence, confirmed));
            }
        }
        state.leaks.retain(|k, _| seen.contains(k));
        report.candidates = state.leaks.len();
        for (handle, ips) in handles {
            if !ips.iter().all(|(_, _, leaked)| *leaked) {
                continue;
            }
            for (ip, seq, _) in ips {
                if let super::block::Release::Released(_) =
                    self.release_one(ip, Some(&handle), Some(seq))?
                {
                    tracing::info!(%ip, %handle, "released leaked address");
                    report.released.push(ip);
                    state.leaks.remove(&(ip, seq));
                }
            }
        }

        // Empty blocks.
        let blocks = self.raw_blocks()?;
        let mut per_node: HashMap<String, usize> = HashMap::new();
        for b in &blocks {
            if let Some(n) = &b.affinity {
                *per_node.entry(n.clone()).or_default() += 1;
            }
        }
        let mut empty_now = BTreeSet::new();
        for b in blocks.iter().filter(|b| b.is_empty()) {
            empty_now.insert(b.cidr);
            let first = *state.empty.entry(b.cidr).or_insert(now);
            if now.saturating_sub(first) < grace {
                continue;
            }
            let keep_last = match &b.affinity {
                Some(n) => nodes.contains(n) && per_node.get(n).copied().unwrap_or(0) <= 1,
                None => false,
            };
            if keep_last {
                continue;
            }
            if self.give_back_block(b.cidr)? {
                report.blocks_released.push(b.cidr);
                if let Some(n) = &b.affinity {
                    if let Some(c) = per_node.get_mut(n) {
                        *c -= 1;
                    }
                }
            }
        }
        state.empty.retain(|c, _| empty_now.contains(c) && !report.blocks_released.contains(c));
        Ok(report)
    }
}
