//! Read-only views of the IPAM for the API and `tartanctl`: blocks with their allocations,
//! affinities, handles, and usage per pool, block and node.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::block::Block;
use super::{Affinity, Ipam, Result, cidr_name};
use crate::resources::{IpamConfigSpec, Kind, RawResource};
use crate::time;

/// One block and who holds its addresses.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BlockView {
    pub cidr: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    pub size: u32,
    pub used: u32,
    pub free: u32,
    pub cooling: u32,
    pub sequence: u64,
    pub claimed_at: String,
    pub allocations: Vec<AllocationView>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AllocationView {
    pub ip: IpAddr,
    pub handle: String,
    pub node: String,
    pub sequence: u64,
    pub allocated_at: String,
    /// Allocated for a node other than the block's owner.
    pub borrowed: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HandleView {
    pub handle: String,
    pub ips: Vec<IpAddr>,
}

/// `GET /v1/ipam/usage`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub pools: Vec<PoolUsage>,
    /// Blocks in no pool (should be none; `ipam check` reports them).
    pub orphan_blocks: Vec<BlockUsage>,
    pub nodes: Vec<NodeUsage>,
    pub config: IpamConfigSpec,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PoolUsage {
    pub name: String,
    pub cidr: IpNet,
    pub disabled: bool,
    pub block_size: u8,
    pub total: u128,
    pub used: u64,
    pub blocks: Vec<BlockUsage>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BlockUsage {
    pub cidr: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<String>,
    pub size: u32,
    pub used: u32,
    pub free: u32,
    pub cooling: u32,
    /// Addresses borrowed from this block by other nodes.
    pub borrowed: Vec<BorrowedIp>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BorrowedIp {
    pub ip: IpAddr,
    pub node: String,
    pub handle: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NodeUsage {
    pub node: String,
    pub blocks: u32,
    pub used: u64,
}

/// An affinity in the resource envelope (for lists and watch events).
pub fn affinity_resource(aff: &Affinity) -> RawResource {
    let mut raw = RawResource::new(
        Kind::BlockAffinity,
        &format!("{}-{}", aff.node, cidr_name(aff.cidr)),
        serde_json::to_value(aff).unwrap_or_default(),
    );
    raw.metadata.labels.insert("node".into(), aff.node.clone());
    raw
}

fn block_view(b: &Block, pool: Option<String>) -> BlockView {
    BlockView {
        cidr: b.cidr,
        affinity: b.affinity.clone(),
        pool,
        size: b.size(),
        used: b.used(),
        free: b.free(),
        cooling: b.cooling.len() as u32,
        sequence: b.sequence,
        claimed_at: time::rfc3339(b.claimed_at),
        allocations: b
            .allocations
            .iter()
            .map(|(ord, a)| AllocationView {
                ip: b.ip(*ord),
                handle: a.handle.clone(),
                node: a.node.clone(),
                sequence: a.sequence,
                allocated_at: time::rfc3339(a.allocated_at),
                borrowed: b.affinity.as_deref() != Some(a.node.as_str()),
                attributes: a.attributes.clone(),
            })
            .collect(),
    }
}

fn block_usage(b: &Block) -> BlockUsage {
    BlockUsage {
        cidr: b.cidr,
        affinity: b.affinity.clone(),
        size: b.size(),
        used: b.used(),
        free: b.free(),
        cooling: b.cooling.len() as u32,
        borrowed: b
            .allocations
            .iter()
            .filter(|(_, a)| b.affinity.as_deref() != Some(a.node.as_str()))
            .map(|(o, a)| BorrowedIp {
                ip: b.ip(*o),
                node: a.node.clone(),
                handle: a.handle.clone(),
            })
            .collect(),
    }
}

impl Ipam {
    /// Every block, in address order.
    pub fn blocks(&self) -> Result<Vec<BlockView>> {
        let pools = self.pools()?;
        let view = self.view()?;
        Ok(view
            .blocks
            .values()
            .map(|c| {
                let pool = pools
                    .iter()
                    .find(|p| p.spec.cidr.contains(&c.block.cidr))
                    .map(|p| p.name.clone());
                block_view(&c.block, pool)
            })
            .collect())
    }

    /// The raw blocks (for checks and tests).
    pub fn raw_blocks(&self) -> Result<Vec<Block>> {
        Ok(self.view()?.blocks.values().map(|c| (*c.block).clone()).collect())
    }

    /// Every affinity.
    pub fn affinities(&self) -> Result<Vec<Affinity>> {
        Ok(self.view()?.affinities.values().cloned().collect())
    }

    /// Every handle and its addresses.
    pub fn handles(&self) -> Result<Vec<HandleView>> {
        let view = self.view()?;
        let mut out: Vec<HandleView> = view
            .handles
            .iter()
            .map(|(h, ips)| HandleView { handle: h.clone(), ips: ips.iter().copied().collect() })
            .collect();
        out.sort_by(|a, b| a.handle.cmp(&b.handle));
        Ok(out)
    }

    /// The addresses a handle holds.
    pub fn handle(&self, handle: &str) -> Result<Vec<IpAddr>> {
        Ok(self.view()?.handles.get(handle).into_iter().flatten().copied().collect())
    }

    /// Who holds one address, if anyone.
    pub fn lookup_ip(&self, ip: IpAddr) -> Result<Option<AllocationView>> {
        let Some(block) = self.block_of(ip)? else { return Ok(None) };
        let Some(ord) = block.ordinal(ip) else { return Ok(None) };
        Ok(block_view(&block, None)
            .allocations
            .into_iter()
            .find(|a| a.ip == ip && block.allocations.contains_key(&ord)))
    }

    /// Usage per pool, block and node.
    pub fn usage(&self) -> Result<Usage> {
        let pools = self.pools()?;
        let config = self.config()?;
        let view = self.view()?;
        let mut nodes: BTreeMap<String, NodeUsage> = BTreeMap::new();
        let mut out = Vec::new();
        for p in &pools {
            let blocks: Vec<BlockUsage> = view
                .blocks
                .values()
                .filter(|c| p.spec.cidr.contains(&c.block.cidr))
                .map(|c| block_usage(&c.block))
                .collect();
            let host_bits = u32::from(p.spec.cidr.max_prefix_len() - p.spec.cidr.prefix_len());
            out.push(PoolUsage {
                name: p.name.clone(),
                cidr: p.spec.cidr,
                disabled: p.spec.disabled,
                block_size: p.spec.block_prefix(),
                total: 1u128.checked_shl(host_bits).unwrap_or(u128::MAX),
                used: blocks.iter().map(|b| u64::from(b.used)).sum(),
                blocks,
            });
        }
        for c in view.blocks.values() {
            if let Some(node) = &c.block.affinity {
                let n = nodes.entry(node.clone()).or_insert(NodeUsage {
                    node: node.clone(),
                    blocks: 0,
                    used: 0,
                });
                n.blocks += 1;
            }
            for a in c.block.allocations.values() {
                nodes
                    .entry(a.node.clone())
                    .or_insert(NodeUsage { node: a.node.clone(), blocks: 0, used: 0 })
                    .used += 1;
            }
        }
        let orphan_blocks = view
            .blocks
            .values()
            .filter(|c| !pools.iter().any(|p| p.spec.cidr.contains(&c.block.cidr)))
            .map(|c| block_usage(&c.block))
            .collect();
        Ok(Usage { pools: out, orphan_blocks, nodes: nodes.into_values().collect(), config })
    }
}
