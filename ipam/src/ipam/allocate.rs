//! Allocation: own blocks first, then a new claim, then (unless `strictAffinity`) borrowing
//! from other hosts' blocks. Dual-stack requests are all-or-nothing; a handle that already
//! holds addresses gets them back (topped up to what was asked), so a retried ADD leaks nothing.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::PoisonError;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::block::{Allocation, Block};
use super::{AffinityState, Ipam, IpamError, Pool, Result, block_key};
use crate::resources::IpamConfigSpec;
use crate::resources::validate::{check_name, overlaps};
use crate::time;

/// At most this many addresses of one family per request.
const MAX_PER_REQUEST: u32 = 256;
/// Candidate blocks examined per pool before calling it full.
const MAX_CANDIDATES: u128 = 1 << 20;

/// `POST /v1/ipam/allocate`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AllocateRequest {
    pub node: String,
    pub handle: String,
    #[serde(default)]
    pub ipv4: u32,
    #[serde(default)]
    pub ipv6: u32,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Only these pools (names or CIDRs); empty means every pool that selects the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<String>,
    /// This exact address (counts as one of its family's addresses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// An earlier try of this request may have been applied by another API server (the
    /// client's `Tartan-Retry` header): the view is brought up to date with every server's
    /// writes before the handle is looked up (etcd), so the retry finds what that try took.
    #[serde(skip)]
    pub retried: bool,
}

/// The addresses a handle holds after an allocation, as host networks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Allocated {
    pub handle: String,
    pub ips: Vec<IpNet>,
}

struct Request<'a> {
    node: &'a str,
    template: Allocation,
    pools: Vec<Pool>,
    config: IpamConfigSpec,
}

fn fnv(text: &str) -> u64 {
    text.bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// Attributes are stored in the block with the address, and every write of the block carries
/// them: bounded, so one caller cannot make every allocation of a block slow (or, on etcd,
/// push the block past etcd's request limit).
pub const MAX_ATTRIBUTES: usize = 16;
pub const MAX_ATTRIBUTE_BYTES: usize = 2048;

fn check_attributes(attributes: &BTreeMap<String, String>) -> Result<()> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(IpamError::Invalid(format!(
            "at most {MAX_ATTRIBUTES} attributes per allocation ({} given)",
            attributes.len()
        )));
    }
    let bytes: usize = attributes.iter().map(|(k, v)| k.len() + v.len()).sum();
    if bytes > MAX_ATTRIBUTE_BYTES {
        return Err(IpamError::Invalid(format!(
            "attributes take {bytes} bytes; at most {MAX_ATTRIBUTE_BYTES} per allocation"
        )));
    }
    if let Some(k) = attributes.keys().find(|k| k.is_empty() || k.chars().any(char::is_control)) {
        return Err(IpamError::Invalid(format!(
            "attribute name {k:?} must be printable and not empty"
        )));
    }
    Ok(())
}

impl Ipam {
    /// Allocates addresses for `req.handle` on `req.node`.
    pub fn allocate(&self, req: &AllocateRequest) -> Result<Allocated> {
        check_name(&req.node).map_err(|e| IpamError::Invalid(format!("node: {e}")))?;
        if req.handle.is_empty() || req.handle.len() > 256 {
            return Err(IpamError::Invalid("handle must be 1 to 256 characters".into()));
        }
        if req.handle.chars().any(|c| c.is_control()) {
            return Err(IpamError::Invalid(
                "handle must be printable (no control characters)".into(),
            ));
        }
        check_attributes(&req.attributes)?;
        if req.ipv4 > MAX_PER_REQUEST || req.ipv6 > MAX_PER_REQUEST {
            return Err(IpamError::Invalid(format!(
                "at most {MAX_PER_REQUEST} addresses per family per request"
            )));
        }
        if req.ipv4 == 0 && req.ipv6 == 0 && req.ip.is_none() {
            return Err(IpamError::Invalid(
                "ask for at least one address: set ipv4, ipv6 or ip".into(),
            ));
        }
        let lock = self.node_lock(&req.node)?;
        let _node = lock.lock().unwrap_or_else(PoisonError::into_inner);
        let _pools = self.pools_lock.read().unwrap_or_else(PoisonError::into_inner);
        // A retried request must find what an earlier try took on another server: every write
        // acknowledged anywhere is brought into the view first (a linearizable read of etcd's
        // revision, then the watch caught up to it). A first try needs no such wait: no
        // address can be given twice whatever the view (every block write is compare-and-swap),
        // and the watch keeps the view milliseconds behind at most.
        if req.retried {
            self.sync()?;
        }

        let held: Vec<IpAddr> =
            self.view()?.handles.get(&req.handle).into_iter().flatten().copied().collect();
        let mut have4 = held.iter().filter(|ip| ip.is_ipv4()).count() as u32;
        let mut have6 = held.len() as u32 - have4;
        let (mut want4, mut want6) = (req.ipv4, req.ipv6);
        let labels = self.node_labels(&req.node)?.unwrap_or_default();
        let settings = self.settings()?;
        let pools = settings
            .pools
            .iter()
            .filter(|p| {
                req.pools.is_empty()
                    || req.pools.iter().any(|w| *w == p.name || *w == p.spec.cidr.to_string())
            })
            .filter(|p| p.selector.matches(&labels))
            .cloned()
            .collect::<Vec<_>>();
        let ctx = Request {
            node: &req.node,
            template: Allocation {
                handle: req.handle.clone(),
                sequence: 0,
                node: req.node.clone(),
                allocated_at: time::now_unix(),
                attributes: req.attributes.clone(),
            },
            pools,
            config: settings.config.clone(),
        };
        let mut new = Vec::new();
        if let Some(ip) = req.ip {
            if ip.is_ipv4() {
                want4 = want4.max(1)
            } else {
                want6 = want6.max(1)
            }
            if !held.contains(&ip) {
                self.allocate_specific(&ctx, ip)?;
                new.push(ip);
                if ip.is_ipv4() { have4 += 1 } else { have6 += 1 }
            }
        }
        for (v4, want, have) in [(true, want4, have4), (false, want6, have6)] {
            if want > have {
                match self.allocate_family(&ctx, v4, want - have) {
                    Ok(ips) => new.extend(ips),
                    Err(e) => {
                        self.rollback(&req.handle, &new);
                        return Err(e);
                    }
                }
            }
        }
        let mut ips: Vec<IpAddr> = held.into_iter().chain(new).collect();
        ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
        Ok(Allocated {
            handle: req.handle.clone(),
            ips: ips.into_iter().map(IpNet::from).collect(),
        })
    }

    /// Gives back what a failed request took (all-or-nothing).
    fn rollback(&self, handle: &str, ips: &[IpAddr]) {
        for ip in ips {
            if let Err(e) = self.release_one(*ip, Some(handle), None) {
                tracing::warn!(%ip, %handle, error = %e, "could not roll back a partial allocation");
            }
        }
    }

    fn allocate_family(&self, ctx: &Request<'_>, v4: bool, need: u32) -> Result<Vec<IpAddr>> {
        let family = if v4 { "IPv4" } else { "IPv6" };
        let pools: Vec<&Pool> = ctx
            .pools
            .iter()
            .filter(|p| p.spec.cidr.addr().is_ipv4() == v4 && !p.spec.disabled)
            .collect();
        if pools.is_empty() {
            return Err(IpamError::NoPool(format!(
                "no enabled {family} pool selects node {:?}: create one (`tartanctl apply -f pool.yaml`) \
                 or check the pools' nodeSelector and `disabled`",
                ctx.node
            )));
        }
        let in_pools = |cidr: &IpNet| pools.iter().any(|p| p.spec.cidr.contains(cidr));
        let mut got: Vec<IpAddr> = Vec::new();

        // 1. The node's own confirmed blocks that have (or may soon have) a free address: a
        // full block is skipped here rather than copied and found full.
        let own: Vec<IpNet> = {
            let view = self.view()?;
            view.node_affinities(ctx.node)
                .filter(|a| a.state == AffinityState::Confirmed && in_pools(&a.cidr))
                .filter(|a| view.blocks.get(&a.cidr).is_some_and(|c| c.block.may_allocate()))
                .map(|a| a.cidr)
                .collect()
        };
        for cidr in own {
            if got.len() as u32 >= need {
                break;
            }
            got.extend(self.assign(cidr, need - got.len() as u32, ctx, true)?);
        }

        // 2. New blocks, up to the node's cap.
        let mut limit_hit = false;
        let mut attempts = 0;
        while (got.len() as u32) < need && attempts < super::CAS_RETRIES {
            attempts += 1;
            let cap = ctx.config.max_blocks_per_host;
            if cap > 0 && self.own_blocks(ctx.node)? >= cap as usize {
                limit_hit = true;
                break;
            }
            let Some(cidr) = self.free_block(&pools, ctx.node)? else { break };
            if self.claim(ctx.node, cidr)? {
                got.extend(self.assign(cidr, need - got.len() as u32, ctx, true)?);
            }
        }

        // 3. Borrow single addresses from other hosts' blocks.
        if (got.len() as u32) < need && !ctx.config.strict_affinity {
            let others: Vec<IpNet> = self
                .view()?
                .blocks
                .values()
                .filter(|c| {
                    c.block.affinity.as_deref() != Some(ctx.node) && in_pools(&c.block.cidr)
                })
                .filter(|c| c.block.may_allocate())
                .map(|c| c.block.cidr)
                .collect();
            for cidr in others {
                if got.len() as u32 >= need {
                    break;
                }
                got.extend(self.assign(cidr, need - got.len() as u32, ctx, false)?);
            }
        }

        if (got.len() as u32) < need {
            self.rollback(&ctx.template.handle, &got);
            let names: Vec<String> =
                pools.iter().map(|p| format!("{} ({})", p.name, p.spec.cidr)).collect();
            let why = if limit_hit {
                format!(
                    "node {:?} has reached maxBlocksPerHost ({}) and {}",
                    ctx.node,
                    ctx.config.max_blocks_per_host,
                    if ctx.config.strict_affinity {
                        "strictAffinity forbids borrowing"
                    } else {
                        "no other block has a free address"
                    }
                )
            } else if ctx.config.strict_affinity {
                "every block is claimed and full, and strictAffinity forbids borrowing".to_string()
            } else {
                "every block is claimed and full".to_string()
            };
            return Err(IpamError::Exhausted(format!(
                "no free {family} address for node {:?} in {}: {why}. Add a pool, release leaked addresses \
                 (`tartanctl ipam check`), or raise the limits (`tartanctl ipam configure`)",
                ctx.node,
                names.join(", ")
            )));
        }
        Ok(got)
    }

    /// Takes up to `n` addresses from one block (only if it is still the node's, when `own`).
    fn assign(&self, cidr: IpNet, n: u32, ctx: &Request<'_>, own: bool) -> Result<Vec<IpAddr>> {
        let cooldown = u64::from(ctx.config.ip_cooldown_seconds) * 1000;
        let now = time::now_millis();
        let ips = self.update_block(cidr, |b: &mut Block| {
            if own && b.affinity.as_deref() != Some(ctx.node) {
                return None;
            }
            b.expire_cooling(now, cooldown);
            let ords = b.allocate(n, &ctx.template);
            (!ords.is_empty()).then(|| ords.iter().map(|o| b.ip(*o)).collect::<Vec<_>>())
        })?;
        Ok(ips.unwrap_or_default())
    }

    /// Confirmed blocks of a node.
    pub(crate) fn own_blocks(&self, node: &str) -> Result<usize> {
        Ok(self
            .view()?
            .node_affinities(node)
            .filter(|a| a.state == AffinityState::Confirmed)
            .count())
    }

    /// A block CIDR of one of the pools that overlaps no existing block. Each node starts its
    /// search at its own offset so nodes do not all race for the same first block.
    fn free_block(&self, pools: &[&Pool], node: &str) -> Result<Option<IpNet>> {
        let view = self.view()?;
        for pool in pools {
            let bits = pool.spec.block_prefix();
            let host_bits = u32::from(pool.spec.cidr.max_prefix_len() - bits);
            let count = 1u128
                .checked_shl(u32::from(bits - pool.spec.cidr.prefix_len()))
                .unwrap_or(u128::MAX);
            let start = u128::from(fnv(node)) % count;
            let base = match pool.spec.cidr.network() {
                IpAddr::V4(a) => u128::from(u32::from(a)),
                IpAddr::V6(a) => u128::from(a),
            };
            for i in 0..count.min(MAX_CANDIDATES) {
                let index = (start + i) % count;
                let addr = base + (index << host_bits);
                let ip = match pool.spec.cidr {
                    IpNet::V4(_) => IpAddr::V4((addr as u32).into()),
                    IpNet::V6(_) => IpAddr::V6(addr.into()),
                };
                let Ok(candidate) = IpNet::new(ip, bits) else { continue };
                let before = view
                    .blocks
                    .range(..=candidate)
                    .next_back()
                    .is_some_and(|(c, _)| overlaps(*c, candidate));
                let after = view
                    .blocks
                    .range(candidate..)
                    .next()
                    .is_some_and(|(c, _)| overlaps(*c, candidate));
                if !before && !after {
                    return Ok(Some(candidate));
                }
            }
        }
        Ok(None)
    }

    /// Claims a block. sled: in two phases, a pending affinity, then the block created only if
    /// absent (the linearisation point), then the affinity confirmed. etcd: one transaction
    /// creates block and confirmed affinity only if the block is absent. `false`: someone
    /// else created it first.
    pub(crate) fn claim(&self, node: &str, cidr: IpNet) -> Result<bool> {
        let block =
            Block::new(cidr, node, time::now_unix(), time::now_millis().saturating_mul(1000));
        let raw = serde_json::to_vec(&block).map_err(super::corrupt)?;
        if self.store.is_shared() {
            let aff = super::Affinity {
                node: node.to_string(),
                cidr,
                state: AffinityState::Confirmed,
                updated_at: time::now_unix(),
            };
            let outcome = self.store.claim_block(
                &block_key(cidr),
                raw,
                &super::affinity_key(node, cidr),
                super::views::affinity_resource(&aff),
            )?;
            let won = outcome.is_ok();
            self.landed(cidr, outcome.map(|v| (block, v)))?;
            if won {
                tracing::info!(%node, block = %cidr, "claimed block");
            }
            return Ok(won);
        }
        self.write_affinity(node, cidr, Some(AffinityState::Pending))?;
        match self.store.cas_block(&block_key(cidr), None, Some(raw))? {
            Ok(written) => {
                self.landed(cidr, Ok((block, written)))?;
                self.write_affinity(node, cidr, Some(AffinityState::Confirmed))?;
                tracing::info!(%node, block = %cidr, "claimed block");
                Ok(true)
            }
            Err(lost) => {
                self.landed(cidr, Err(lost))?;
                self.write_affinity(node, cidr, None)?;
                Ok(false)
            }
        }
    }

    /// A specific address: claims its block if nobody has, refuses another host's block under
    /// strict affinity, and names the holder if it is taken.
    fn allocate_specific(&self, ctx: &Request<'_>, ip: IpAddr) -> Result<()> {
        let Some(pool) = ctx.pools.iter().find(|p| p.spec.cidr.contains(&ip)) else {
            return Err(IpamError::Invalid(format!(
                "{ip} is in no pool that selects node {:?}",
                ctx.node
            )));
        };
        if pool.spec.disabled {
            return Err(IpamError::Refused(format!(
                "{ip} is in pool {:?}, which is disabled",
                pool.name
            )));
        }
        let cidr = IpNet::new(ip, pool.spec.block_prefix())
            .map_err(|e| IpamError::Invalid(e.to_string()))?
            .trunc();
        if self.block_of(ip)?.is_none() {
            let overlapping = self.view()?.blocks.keys().any(|c| overlaps(*c, cidr));
            if overlapping {
                return Err(IpamError::Refused(format!(
                    "block {cidr} would overlap an existing block"
                )));
            }
            let cap = ctx.config.max_blocks_per_host;
            if cap > 0 && self.own_blocks(ctx.node)? >= cap as usize {
                return Err(IpamError::Exhausted(format!(
                    "node {:?} has reached maxBlocksPerHost ({cap}); {ip} needs a new block",
                    ctx.node
                )));
            }
            self.claim(ctx.node, cidr)?;
        }
        let Some(block) = self.block_of(ip)? else {
            return Err(IpamError::Contended(cidr));
        };
        if ctx.config.strict_affinity && block.affinity.as_deref() != Some(ctx.node) {
            return Err(IpamError::Refused(format!(
                "{ip} is in block {} of node {:?} and strictAffinity forbids borrowing",
                block.cidr,
                block.affinity.as_deref().unwrap_or("(none)")
            )));
        }
        let Some(ord) = block.ordinal(ip) else {
            return Err(IpamError::Invalid(format!("{ip} is not in block {}", block.cidr)));
        };
        let taken =
            self.update_block(block.cidr, |b| b.allocate_ordinal(ord, &ctx.template).ok())?;
        if taken.is_none() {
            let holder = self
                .block_of(ip)?
                .and_then(|b| b.allocations.get(&ord).map(|a| a.handle.clone()))
                .unwrap_or_default();
            return Err(IpamError::AddressInUse { ip, handle: holder });
        }
        Ok(())
    }
}
