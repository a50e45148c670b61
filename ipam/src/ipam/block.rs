//! A block: a power-of-two slice of a pool, the unit of allocation and of atomic change.
//!
//! Everything here is pure: the caller reads a block, changes a copy with these methods, and
//! writes it back with compare-and-swap (`ipam::Ipam`). Each ordinal (address offset in the
//! block) is in exactly one of three places — `allocations`, `unallocated` (a FIFO: allocation
//! pops the head, release pushes the tail, so the longest-free address is reused first) or
//! `cooling` (released, waiting out `ipCooldownSeconds`).

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// One block as stored (one sled value).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Block {
    pub cidr: IpNet,
    /// The node the block is affine to; `None` once a claim was given back.
    pub affinity: Option<String>,
    /// Unix seconds of the claim.
    pub claimed_at: u64,
    /// Bumped on every write; starts at the creation time in microseconds so a block deleted
    /// and claimed again never repeats a sequence number.
    pub sequence: u64,
    pub allocations: BTreeMap<u32, Allocation>,
    pub unallocated: VecDeque<u32>,
    /// Released ordinals with their release time (unix ms), oldest first.
    pub cooling: VecDeque<(u32, u64)>,
}

/// Who holds one address. Stored with one-letter keys: a block is rewritten whole on every
/// change, so its size is the IPAM's cost per allocation (the API shows `views::BlockView`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    #[serde(rename = "h")]
    pub handle: String,
    /// The block's sequence number when this address was allocated: a release that names
    /// another sequence is about an earlier holder and must not free it.
    #[serde(rename = "s")]
    pub sequence: u64,
    /// The node the address was allocated for (differs from the affinity when borrowed).
    #[serde(rename = "n")]
    pub node: String,
    /// Unix seconds.
    #[serde(rename = "t")]
    pub allocated_at: u64,
    #[serde(rename = "a", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// The result of releasing one ordinal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Release {
    Released(Allocation),
    /// Nothing was allocated there: releasing is idempotent.
    NotAllocated,
    /// The address was handed out again since the caller looked (ABA guard).
    SequenceMismatch {
        current: u64,
    },
    /// The address belongs to another handle.
    HandleMismatch {
        holder: String,
    },
}

impl Block {
    /// A new, empty block affine to `node`.
    pub fn new(cidr: IpNet, node: &str, now_unix: u64, now_micros: u64) -> Block {
        let size = block_size(cidr);
        Block {
            cidr,
            affinity: Some(node.to_string()),
            claimed_at: now_unix,
            sequence: now_micros,
            allocations: BTreeMap::new(),
            unallocated: (0..size).collect(),
            cooling: VecDeque::new(),
        }
    }

    pub fn size(&self) -> u32 {
        block_size(self.cidr)
    }

    pub fn used(&self) -> u32 {
        self.allocations.len() as u32
    }

    /// Addresses that can be handed out now (not counting cooling ones).
    pub fn free(&self) -> u32 {
        self.unallocated.len() as u32
    }

    /// Whether an allocation could find an address here: a free one, or a cooling one whose
    /// cooldown may have passed.
    pub fn may_allocate(&self) -> bool {
        !self.unallocated.is_empty() || !self.cooling.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.allocations.is_empty()
    }

    /// The ordinal of `ip` in this block.
    pub fn ordinal(&self, ip: IpAddr) -> Option<u32> {
        if !self.cidr.contains(&ip) {
            return None;
        }
        let offset = match (ip, self.cidr.network()) {
            (IpAddr::V4(a), IpAddr::V4(n)) => u128::from(u32::from(a) - u32::from(n)),
            (IpAddr::V6(a), IpAddr::V6(n)) => u128::from(a) - u128::from(n),
            _ => return None,
        };
        u32::try_from(offset).ok()
    }

    /// The address of an ordinal.
    pub fn ip(&self, ordinal: u32) -> IpAddr {
        match self.cidr.network() {
            IpAddr::V4(n) => IpAddr::V4((u32::from(n).wrapping_add(ordinal)).into()),
            IpAddr::V6(n) => IpAddr::V6((u128::from(n).wrapping_add(u128::from(ordinal))).into()),
        }
    }

    /// Moves ordinals whose cooldown has passed to the tail of the free list.
    pub fn expire_cooling(&mut self, now_ms: u64, cooldown_ms: u64) {
        while let Some(&(ord, at)) = self.cooling.front() {
            if at.saturating_add(cooldown_ms) > now_ms {
                break;
            }
            self.cooling.pop_front();
            self.unallocated.push_back(ord);
        }
    }

    /// Takes up to `n` ordinals from the head of the free list for `template`'s holder.
    pub fn allocate(&mut self, n: u32, template: &Allocation) -> Vec<u32> {
        let take = n.min(self.free());
        if take == 0 {
            return Vec::new();
        }
        self.sequence += 1;
        let mut taken = Vec::with_capacity(take as usize);
        for _ in 0..take {
            let Some(ord) = self.unallocated.pop_front() else { break };
            self.allocations
                .insert(ord, Allocation { sequence: self.sequence, ..template.clone() });
            taken.push(ord);
        }
        taken
    }

    /// Allocates one given ordinal (a specific-address request); a cooling address may be
    /// asked for explicitly. `Err` names the current holder.
    pub fn allocate_ordinal(&mut self, ord: u32, template: &Allocation) -> Result<(), Allocation> {
        if let Some(holder) = self.allocations.get(&ord) {
            return Err(holder.clone());
        }
        if let Some(i) = self.unallocated.iter().position(|o| *o == ord) {
            self.unallocated.remove(i);
        } else if let Some(i) = self.cooling.iter().position(|(o, _)| *o == ord) {
            self.cooling.remove(i);
        } else {
            return Err(template.clone());
        }
        self.sequence += 1;
        self.allocations.insert(ord, Allocation { sequence: self.sequence, ..template.clone() });
        Ok(())
    }

    /// Releases one ordinal, if it is still what the caller thinks it is.
    pub fn release(
        &mut self,
        ord: u32,
        handle: Option<&str>,
        sequence: Option<u64>,
        now_ms: u64,
        cooldown_ms: u64,
    ) -> Release {
        let Some(current) = self.allocations.get(&ord) else {
            return Release::NotAllocated;
        };
        if let Some(h) = handle {
            if current.handle != h {
                return Release::HandleMismatch { holder: current.handle.clone() };
            }
        }
        if let Some(seq) = sequence {
            if current.sequence != seq {
                return Release::SequenceMismatch { current: current.sequence };
            }
        }
        let Some(released) = self.allocations.remove(&ord) else {
            return Release::NotAllocated;
        };
        self.sequence += 1;
        if cooldown_ms == 0 {
            self.unallocated.push_back(ord);
        } else {
            self.cooling.push_back((ord, now_ms));
        }
        Release::Released(released)
    }

    /// Every ordinal in exactly one place, and `free + cooling + used == size`.
    pub fn check_invariants(&self) -> Result<(), String> {
        let size = self.size() as usize;
        let mut seen = vec![false; size];
        let all = self
            .allocations
            .keys()
            .copied()
            .chain(self.unallocated.iter().copied())
            .chain(self.cooling.iter().map(|(o, _)| *o));
        for ord in all {
            let slot = seen
                .get_mut(ord as usize)
                .ok_or(format!("{}: ordinal {ord} out of range", self.cidr))?;
            if *slot {
                return Err(format!("{}: ordinal {ord} is in two places", self.cidr));
            }
            *slot = true;
        }
        let counted = self.allocations.len() + self.unallocated.len() + self.cooling.len();
        if counted != size {
            return Err(format!("{}: free + cooling + used = {counted}, size {size}", self.cidr));
        }
        Ok(())
    }
}

/// Addresses in a block of this prefix (blocks are at most 2^12 addresses by validation).
pub fn block_size(cidr: IpNet) -> u32 {
    let host_bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len());
    1u32.checked_shl(host_bits).unwrap_or(u32::MAX)
}

/// The address as a host network: `/32` or `/128`.
pub fn host(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(handle: &str) -> Allocation {
        Allocation {
            handle: handle.into(),
            sequence: 0,
            node: "n1".into(),
            allocated_at: 0,
            attributes: BTreeMap::new(),
        }
    }

    fn block() -> Block {
        Block::new("10.65.0.0/29".parse().expect("cidr"), "n1", 0, 1000)
    }

    #[test]
    fn the_free_list_is_fifo_so_the_longest_free_address_is_reused_first() {
        let mut b = block();
        assert_eq!(b.allocate(3, &holder("a")), vec![0, 1, 2]);
        assert!(matches!(b.release(1, Some("a"), None, 0, 0), Release::Released(_)));
        assert_eq!(b.allocate(5, &holder("b")), vec![3, 4, 5, 6, 7]);
        assert_eq!(b.allocate(1, &holder("c")), vec![1], "released ordinal comes back last");
        assert_eq!(b.allocate(1, &holder("d")), Vec::<u32>::new(), "full");
        b.check_invariants().expect("invariants");
    }

    #[test]
    fn a_stale_release_cannot_free_an_address_handed_out_again() {
        let mut b = block();
        let ord = b.allocate(1, &holder("old"))[0];
        let old_seq = b.allocations[&ord].sequence;
        assert!(matches!(b.release(ord, None, Some(old_seq), 0, 0), Release::Released(_)));
        // Fill the block so the same ordinal comes back to a new holder.
        b.allocate(8, &holder("new"));
        let now = b.allocations[&ord].sequence;
        assert_ne!(now, old_seq);
        assert_eq!(
            b.release(ord, None, Some(old_seq), 0, 0),
            Release::SequenceMismatch { current: now }
        );
        assert_eq!(
            b.release(ord, Some("old"), None, 0, 0),
            Release::HandleMismatch { holder: "new".into() }
        );
        assert!(b.allocations.contains_key(&ord));
        assert_eq!(
            b.release(7, Some("nobody"), None, 0, 0),
            Release::HandleMismatch { holder: "new".into() }
        );
    }

    #[test]
    fn released_addresses_cool_down_before_reuse() {
        let mut b = block();
        b.allocate(8, &holder("a"));
        assert!(matches!(b.release(4, None, None, 10_000, 60_000), Release::Released(_)));
        assert_eq!(b.free(), 0);
        b.check_invariants().expect("cooling counts");
        b.expire_cooling(69_999, 60_000);
        assert_eq!(b.free(), 0);
        b.expire_cooling(70_000, 60_000);
        assert_eq!(b.unallocated, VecDeque::from([4]));
    }

    #[test]
    fn releasing_twice_is_harmless_and_specific_ordinals_can_be_taken() {
        let mut b = block();
        assert_eq!(b.release(3, None, None, 0, 0), Release::NotAllocated);
        b.allocate_ordinal(5, &holder("x")).expect("free");
        assert_eq!(b.allocate_ordinal(5, &holder("y")).map_err(|h| h.handle), Err("x".to_string()));
        assert!(!b.unallocated.contains(&5));
        assert_eq!(b.ip(5), "10.65.0.5".parse::<IpAddr>().expect("ip"));
        assert_eq!(b.ordinal("10.65.0.5".parse().expect("ip")), Some(5));
        assert_eq!(b.ordinal("10.65.0.8".parse().expect("ip")), None);
        b.check_invariants().expect("invariants");
    }

    #[test]
    fn ipv6_blocks_map_ordinals_to_addresses() {
        let b = Block::new("fd00:65::40/122".parse().expect("cidr"), "n1", 0, 1);
        assert_eq!(b.size(), 64);
        assert_eq!(b.ip(1), "fd00:65::41".parse::<IpAddr>().expect("ip"));
        assert_eq!(b.ordinal("fd00:65::7f".parse().expect("ip")), Some(63));
    }
}
