//! Randomness for keys, encryption and smudging: the operating system's CSPRNG, never the
//! deterministic training PRNG of `fedcare-core`.
//!
//! tfhe's generators are seeded with 128-bit seeds drawn here.

use tfhe::core_crypto::commons::math::random::{Seed, Seeder};

/// 128 fresh bits from the operating system's CSPRNG.
///
/// # Panics
/// If the operating system cannot provide randomness (no safe way to go on: every key and every
/// ciphertext would be predictable).
pub(crate) fn os_random_u128() -> u128 {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    u128::from_le_bytes(bytes)
}

/// A tfhe [`Seeder`] that draws every seed from the operating system's CSPRNG.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct OsSeeder;

impl Seeder for OsSeeder {
    fn seed(&mut self) -> Seed {
        Seed(os_random_u128())
    }

    fn is_available() -> bool {
        true
    }
}
