//! The workspace's one fast hasher, for tables whose keys come from outside (the RIB's
//! prefixes and attribute sets from peers, the agent's routes): they decide where an entry
//! sits, never whether it is found.
//!
//! Each word is mixed by a folded 64×64→128-bit multiply (the high and low halves XORed), so
//! every input bit reaches the low bits that pick a bucket: prefixes that differ only in high
//! bits, like a run of /24s, still spread out. SipHash, the std default, costs several times
//! as much per prefix. Every table starts from a random seed, so a peer cannot choose keys that
//! collide in our buckets (a hash flood that would turn each lookup into a scan).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

/// 2^64 / φ, odd.
const K: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Debug, Clone, Copy)]
pub struct FoldHasher(u64);

/// Builds [`FoldHasher`]s from a seed drawn when the table is made.
#[derive(Debug, Clone, Copy)]
pub struct FoldBuildHasher {
    seed: u64,
}

impl Default for FoldBuildHasher {
    fn default() -> FoldBuildHasher {
        // std's RandomState holds keys from the OS's randomness, different for each instance.
        FoldBuildHasher { seed: RandomState::new().hash_one(K) | 1 }
    }
}

impl BuildHasher for FoldBuildHasher {
    type Hasher = FoldHasher;

    #[inline]
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher(self.seed)
    }
}

/// A `HashMap` with the workspace's hasher.
pub type FoldHashMap<K, V> = std::collections::HashMap<K, V, FoldBuildHasher>;

impl FoldHasher {
    #[inline]
    fn mix(&mut self, v: u64) {
        let m = u128::from(self.0 ^ v) * u128::from(K);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.mix(u64::from_le_bytes(b));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.mix(i as u64);
        self.mix((i >> 64) as u64);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_differing_only_in_high_bits_spread_over_buckets() {
        let b = FoldBuildHasher::default();
        let mut buckets = [0u32; 256];
        for i in 0u32..65536 {
            let h = b.hash_one(0x0a00_0000u32 + (i << 8));
            buckets[(h & 255) as usize] += 1;
        }
        let (min, max) = (buckets.iter().min(), buckets.iter().max());
        assert!(min.is_some_and(|m| *m > 150) && max.is_some_and(|m| *m < 370), "{min:?} {max:?}");
    }

    #[test]
    fn each_table_has_its_own_seed() {
        let (a, b) = (FoldBuildHasher::default(), FoldBuildHasher::default());
        assert_ne!(a.hash_one(1u32), b.hash_one(1u32));
        assert_eq!(a.hash_one(1u32), a.hash_one(1u32));
    }
}
