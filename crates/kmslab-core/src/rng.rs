//! The injected randomness: a one-method trait, and a small deterministic generator.
//!
//! The core never asks the operating system for entropy. Daemons seed a [`SplitMix64`]
//! from the OS; the simulator seeds it from `--seed`, which is what makes a simulation
//! byte-for-byte repeatable. We keep our own generator rather than a `rand` one so that
//! the sequence for a seed never changes when a dependency is upgraded.

use uuid::Uuid;

/// A source of random 64-bit words.
pub trait KmsRng {
    /// The next random word.
    fn next_u64(&mut self) -> u64;

    /// A uniformly distributed number in `0..=max` (inclusive), without modulo bias.
    fn below_or_equal(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            return self.next_u64();
        }
        let range = max + 1;
        // Rejection sampling: discard the top partial bucket.
        let zone = u64::MAX - (u64::MAX % range) - 1;
        loop {
            let v = self.next_u64();
            if v <= zone {
                return v % range;
            }
        }
    }

    /// A random version-4 UUID (used for CMIDs).
    fn uuid_v4(&mut self) -> Uuid {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }
}

impl<R: KmsRng + ?Sized> KmsRng for &mut R {
    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
    }
}

/// SplitMix64 (Steele, Lea and Flood): tiny, fast and good enough for simulation choices.
/// Not for secrets.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose whole sequence is determined by `seed`.
    pub const fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }
}

impl KmsRng for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(SplitMix64::new(8).next_u64(), SplitMix64::new(7).next_u64());
    }

    #[test]
    fn below_or_equal_stays_in_range_and_hits_both_ends() {
        let mut r = SplitMix64::new(1);
        let mut seen = [false; 4];
        for _ in 0..1000 {
            let v = r.below_or_equal(3);
            assert!(v <= 3);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(r.below_or_equal(0), 0);
    }

    #[test]
    fn uuids_are_version_4() {
        let u = SplitMix64::new(3).uuid_v4();
        assert_eq!(u.get_version_num(), 4);
    }
}
