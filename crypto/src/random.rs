//! Randomness for keys, encryption and smudging: a cryptographic random source, never the
//! deterministic training PRNG of `fedcare-core`.
//!
//! A party's session takes its randomness from the caller ([`SessionRandomness::draw`], from a
//! `TryCryptoRng` the hospital's shell hands in): 32 bytes, drawn once when the session starts,
//! from which every seed it needs is derived by purpose (BLAKE3 in keyed mode), each purpose its
//! own stream. A source that fails is an error before anything is made. Only the aggregator's
//! CRS ([`crate::Crs::random`]) reads the operating system directly.

use core::fmt;

use rand_core::TryCryptoRng;
use tfhe::core_crypto::commons::math::random::{Seed, Seeder};
use zeroize::Zeroize;

use super::CryptoError;

/// 128 fresh bits from the operating system's CSPRNG.
///
/// # Panics
/// If the operating system cannot provide randomness (no safe way to go on: every CRS would be
/// predictable).
pub(crate) fn os_random_u128() -> u128 {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator failed");
    u128::from_le_bytes(bytes)
}

/// What a seed of a party's session is for: each purpose is its own stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// The secret key share.
    SecretKey,
    /// The noise of the public key share.
    KeyShareNoise,
    /// The encryption's masks and noise.
    Encryption,
    /// The decryption share's smudging noise.
    Smudging,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::SecretKey => b"secret key",
            Self::KeyShareNoise => b"key share noise",
            Self::Encryption => b"encryption",
            Self::Smudging => b"smudging",
        }
    }
}

/// A party session's randomness: 32 bytes from the caller's cryptographic random source.
/// Zeroized on drop; never printed.
pub(crate) struct SessionRandomness([u8; 32]);

impl SessionRandomness {
    /// 32 bytes from `rng`; its failure is an error, never a default.
    pub(crate) fn draw(rng: &mut impl TryCryptoRng) -> Result<Self, CryptoError> {
        let mut bytes = [0u8; 32];
        rng.try_fill_bytes(&mut bytes).map_err(|e| CryptoError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// The `index`-th seed for `purpose`.
    fn seed_at(&self, purpose: Purpose, index: u64) -> Seed {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher.update(purpose.label());
        hasher.update(&index.to_le_bytes());
        let mut seed = [0u8; 16];
        seed.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        Seed(u128::from_le_bytes(seed))
    }

    /// The seed for `purpose` (a purpose used once a session).
    pub(crate) fn seed(&self, purpose: Purpose) -> Seed {
        self.seed_at(purpose, 0)
    }

    /// A tfhe [`Seeder`] handing out the seeds of `purpose`, a fresh one each call.
    pub(crate) fn seeder(&self, purpose: Purpose) -> PurposeSeeder<'_> {
        PurposeSeeder { randomness: self, purpose, next: 0 }
    }
}

impl Drop for SessionRandomness {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SessionRandomness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionRandomness(..)")
    }
}

/// The seeds of one purpose of a session's randomness, in turn.
pub(crate) struct PurposeSeeder<'a> {
    randomness: &'a SessionRandomness,
    purpose: Purpose,
    next: u64,
}

impl Seeder for PurposeSeeder<'_> {
    fn seed(&mut self) -> Seed {
        let seed = self.randomness.seed_at(self.purpose, self.next);
        self.next += 1;
        seed
    }

    fn is_available() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_purpose_and_each_call_has_its_own_seed() {
        let randomness = SessionRandomness([7; 32]);
        let seeds = [Purpose::SecretKey, Purpose::KeyShareNoise, Purpose::Encryption, Purpose::Smudging]
            .map(|purpose| randomness.seed(purpose).0);
        let mut distinct = seeds.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 4);
        let mut seeder = randomness.seeder(Purpose::KeyShareNoise);
        let (first, second) = (seeder.seed().0, seeder.seed().0);
        assert_eq!(first, seeds[1]);
        assert_ne!(first, second);
        assert_ne!(SessionRandomness([8; 32]).seed(Purpose::SecretKey).0, seeds[0]);
    }
}
