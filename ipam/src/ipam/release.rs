//! Release: by handle or by address, idempotent, guarded by handle or sequence number so a
//! stale release cannot free an address that was handed out again. Also giving back empty
//! blocks and deleting pools, which may never orphan an allocation.

use std::net::IpAddr;
use std::sync::PoisonError;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::block::Release;
use super::{AffinityState, Ipam, IpamError, Result, block_key};
use crate::resources::{IpPoolSpec, Kind, RawResource};
use crate::store::StoreError;
use crate::time;

/// `POST /v1/ipam/release`: `{"handle": H}` or `{"ips": [...]}` (each an address, or
/// `{"ip", "handle"?, "sequence"?}` to release only if it is still that allocation).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReleaseRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<ReleaseItem>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(untagged)]
pub enum ReleaseItem {
    Address(String),
    Guarded {
        ip: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handle: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sequence: Option<u64>,
    },
}

/// What a release did, address by address.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Released {
    pub released: Vec<ReleasedIp>,
    /// Addresses that were not allocated (already free: success).
    pub not_allocated: Vec<IpAddr>,
    /// Addresses left alone, with the reason.
    pub skipped: Vec<Skipped>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReleasedIp {
    pub ip: IpAddr,
    pub handle: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub ip: IpAddr,
    pub reason: String,
}

/// An address, with or without `/32` / `/128`.
pub fn parse_host(text: &str) -> Option<IpAddr> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let ip: IpAddr = addr.trim().parse().ok()?;
    match len {
        None => Some(ip),
        Some("32") if ip.is_ipv4() => Some(ip),
        Some("128") if ip.is_ipv6() => Some(ip),
        Some(_) => None,
    }
}

impl Ipam {
    /// The first address `req` names that is allocated to a node other than `node` (a node
    /// credential may release only its own).
    pub fn held_by_others(
        &self,
        req: &ReleaseRequest,
        node: &str,
    ) -> Result<Option<(IpAddr, String)>> {
        let mut ips: Vec<IpAddr> = req
            .ips
            .iter()
            .filter_map(|item| match item {
                ReleaseItem::Address(t) | ReleaseItem::Guarded { ip: t, .. } => parse_host(t),
            })
            .collect();
        if let Some(h) = &req.handle {
            ips.extend(self.handle(h)?);
        }
        for ip in ips {
            if let Some(a) = self.lookup_ip(ip)? {
                if a.node != node {
                    return Ok(Some((ip, a.node)));
                }
            }
        }
        Ok(None)
    }

    /// Releases by handle or by address.
    pub fn release(&self, req: &ReleaseRequest) -> Result<Released> {
        self.sync()?;
        let mut items: Vec<(IpAddr, Option<String>, Option<u64>)> = Vec::new();
        for item in &req.ips {
            let (text, handle, sequence) = match item {
                ReleaseItem::Address(t) => (t, None, None),
                ReleaseItem::Guarded { ip, handle, sequence } => (ip, handle.clone(), *sequence),
            };
            let ip = parse_host(text)
                .ok_or_else(|| IpamError::Invalid(format!("{text:?} is not an IP address")))?;
            items.push((ip, handle, sequence));
        }
        match &req.handle {
            Some(h) if items.is_empty() => {
                let held: Vec<IpAddr> =
                    self.view()?.handles.get(h).into_iter().flatten().copied().collect();
                items = held.into_iter().map(|ip| (ip, Some(h.clone()), None)).collect();
            }
            Some(_) => {
                return Err(IpamError::Invalid("give either `handle` or `ips`, not both".into()));
            }
            None if items.is_empty() => {
                return Err(IpamError::Invalid(
                    "nothing to release: give `handle` or `ips`".into(),
                ));
            }
            None => {}
        }
        let mut out = Released::default();
        for (ip, handle, sequence) in items {
            match self.release_one(ip, handle.as_deref(), sequence)? {
                Release::Released(a) => out.released.push(ReleasedIp { ip, handle: a.handle }),
                Release::NotAllocated => out.not_allocated.push(ip),
                Release::SequenceMismatch { current } => out.skipped.push(Skipped {
                    ip,
                    reason: format!(
                        "allocated again since (sequence {} asked, now {current}); it is in use by its new holder",
                        sequence.unwrap_or_default()
                    ),
                }),
                Release::HandleMismatch { holder } => out.skipped.push(Skipped {
                    ip,
                    reason: format!("held by handle {holder:?}, not {:?}", handle.unwrap_or_default()),
                }),
            }
        }
        Ok(out)
    }

    /// Releases one address if it matches the guards.
    pub(crate) fn release_one(
        &self,
        ip: IpAddr,
        handle: Option<&str>,
        sequence: Option<u64>,
    ) -> Result<Release> {
        let Some(block) = self.block_of(ip)? else {
            return Ok(Release::NotAllocated);
        };
        let Some(ord) = block.ordinal(ip) else {
            return Ok(Release::NotAllocated);
        };
        let cooldown = u64::from(self.config()?.ip_cooldown_seconds) * 1000;
        let now = time::now_millis();
        let mut outcome = Release::NotAllocated;
        self.update_block(block.cidr, |b| {
            outcome = b.release(ord, handle, sequence, now, cooldown);
            matches!(outcome, Release::Released(_)).then_some(())
        })?;
        Ok(outcome)
    }

    /// Gives an empty block back: affinity to pending deletion, the block deleted only if it is
    /// still exactly the empty block we saw, then the affinity removed. `false` if it was no
    /// longer empty (the claim is restored).
    pub(crate) fn give_back_block(&self, cidr: IpNet) -> Result<bool> {
        for _ in 0..super::CAS_RETRIES {
            let Some(cached) = self.view()?.blocks.get(&cidr).cloned() else {
                return Ok(true);
            };
            if !cached.block.is_empty() {
                return Ok(false);
            }
            let owner = cached.block.affinity.clone();
            if self.store.is_shared() {
                let aff = owner.as_deref().map(|n| super::affinity_key(n, cidr));
                let outcome =
                    self.store.give_back_block(&block_key(cidr), &cached.raw, aff.as_deref())?;
                let done = outcome.is_ok();
                // The view follows the watch: wait for it to bring the outcome back.
                self.store.settle(match &outcome {
                    Ok(v) => v.rev,
                    Err(lost) => lost.at,
                })?;
                if done {
                    tracing::info!(block = %cidr, node = owner.as_deref().unwrap_or("-"), "gave back empty block");
                    return Ok(true);
                }
                continue;
            }
            if let Some(node) = &owner {
                self.write_affinity(node, cidr, Some(AffinityState::PendingDeletion))?;
            }
            match self.store.cas_block(&block_key(cidr), Some(&cached.raw), None)? {
                Ok(_) => {
                    self.view()?.blocks.remove(&cidr);
                    if let Some(node) = &owner {
                        self.write_affinity(node, cidr, None)?;
                    }
                    tracing::info!(block = %cidr, node = owner.as_deref().unwrap_or("-"), "gave back empty block");
                    return Ok(true);
                }
                Err(lost) => {
                    if let Some(node) = &owner {
                        self.write_affinity(node, cidr, Some(AffinityState::Confirmed))?;
                    }
                    self.landed(cidr, Err(lost))?;
                }
            }
        }
        Err(IpamError::Contended(cidr))
    }

    /// Deletes a pool, refusing while any of its blocks holds an address; its empty blocks go
    /// with it, so a new pool can never meet an old pool's blocks.
    pub fn delete_pool(&self, name: &str, expected: Option<&str>) -> Result<RawResource> {
        let _pools = self.pools_lock.write().unwrap_or_else(PoisonError::into_inner);
        self.sync()?;
        // On etcd: the pool goes only if no block was claimed after its blocks were seen here.
        let claims_seen = self.store.claims_revision();
        let Some(raw) = self.store.get(Kind::IpPool, name)? else {
            return Err(StoreError::NotFound { kind: Kind::IpPool, name: name.to_string() }.into());
        };
        let spec = raw.typed::<IpPoolSpec>().map_err(super::corrupt)?.spec;
        let blocks: Vec<(IpNet, u32)> = self
            .view()?
            .blocks
            .values()
            .filter(|c| spec.cidr.contains(&c.block.cidr))
            .map(|c| (c.block.cidr, c.block.used()))
            .collect();
        let used: u32 = blocks.iter().map(|(_, u)| u).sum();
        if used > 0 {
            let busy = blocks.iter().filter(|(_, u)| *u > 0).count();
            return Err(IpamError::Refused(format!(
                "pool {name:?} ({}) still holds {used} allocated address(es) in {busy} block(s). Set \
                 `disabled: true` so it hands out no more, remove those workloads or release their \
                 addresses (`tartanctl ipam show --show-blocks`), then delete the pool",
                spec.cidr
            )));
        }
        for (cidr, _) in blocks {
            if !self.give_back_block(cidr)? {
                return Err(IpamError::Refused(format!(
                    "block {cidr} of pool {name:?} is in use again; retry"
                )));
            }
        }
        Ok(self.store.delete_checked(Kind::IpPool, name, expected, claims_seen)?)
    }

    /// Blocks overlapping `cidr` whose size differs from `block_prefix` (left behind by an
    /// older pool): a new pool must not be created over them.
    pub fn foreign_blocks(&self, cidr: IpNet, block_prefix: u8) -> Result<Vec<IpNet>> {
        Ok(self
            .view()?
            .blocks
            .keys()
            .filter(|c| {
                crate::resources::validate::overlaps(**c, cidr) && c.prefix_len() != block_prefix
            })
            .copied()
            .collect())
    }
}
