//! A fast hasher for the RIB's tables, whose keys (prefixes, attribute sets) come from peers
//! but only decide where an entry sits, never whether it is found.
//!
//! Each word is mixed by a folded 64×64→128-bit multiply (the high and low halves XORed), so
//! every input bit reaches the low bits that pick a bucket: prefixes that differ only in high
//! bits, like a run of /24s, still spread out. SipHash, the std default, costs several times
//! as much per prefix.

use std::hash::{BuildHasherDefault, Hasher};

/// 2^64 / φ, odd.
const K: u64 = 0x9e37_79b9_7f4a_7c15;

#[derive(Debug, Default, Clone, Copy)]
pub struct FoldHasher(u64);

pub type FoldBuildHasher = BuildHasherDefault<FoldHasher>;

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
    use std::hash::BuildHasher;

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
}
