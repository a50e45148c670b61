//! Local discriminators (RFC 5880 §6.3, §6.8.1): non-zero, unique among our sessions, and
//! unpredictable, so a packet guessed by an off-path sender is unlikely to name a session.
//! A session restarted by a new process gets a new discriminator, which is how the peer learns
//! it is talking to a new session.

use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// Hands out discriminators and takes them back.
#[derive(Debug)]
pub struct Discriminators {
    used: HashSet<u32>,
    state: u64,
}

impl Default for Discriminators {
    fn default() -> Discriminators {
        // std's RandomState is seeded from the OS's randomness.
        Discriminators::with_seed(RandomState::new().hash_one(0x5eed_u64))
    }
}

impl Discriminators {
    pub fn with_seed(seed: u64) -> Discriminators {
        Discriminators { used: HashSet::new(), state: seed | 1 }
    }

    /// A discriminator no live session has.
    pub fn allocate(&mut self) -> u32 {
        loop {
            // xorshift64*: cheap, full period, good enough for unpredictability on the wire.
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let d = (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32;
            if d != 0 && self.used.insert(d) {
                return d;
            }
        }
    }

    pub fn release(&mut self, d: u32) {
        self.used.remove(&d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discriminators_are_non_zero_and_unique() {
        let mut d = Discriminators::with_seed(7);
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let x = d.allocate();
            assert_ne!(x, 0);
            assert!(seen.insert(x), "{x} handed out twice");
        }
    }

    #[test]
    fn a_released_discriminator_may_come_back_but_not_while_in_use() {
        let mut d = Discriminators::with_seed(1);
        let a = d.allocate();
        d.release(a);
        let b = d.allocate();
        assert!(!d.used.contains(&a) || a == b);
    }
}
