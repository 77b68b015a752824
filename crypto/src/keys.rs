//! Key material: the round's CRS, party ids, a party's secret key share, its public key share,
//! and the collective public key the aggregator assembles from the shares.
//!
//! Each party draws a fresh binary secret `s_i` per round and publishes the body
//! `b_i = a ⊛ s_i + e_i` of a compact public key whose mask `a` is expanded from the round's CRS
//! seed. The sum of the bodies with the same mask is a public key for `s = Σ s_i`, which nobody
//! holds. [`SecretKeyShare`] cannot be cloned, serialized or printed, and is zeroized on drop.

use std::collections::BTreeMap;
use std::fmt;

use tfhe::core_crypto::commons::math::random::{CompressionSeed, Seed};
use tfhe::core_crypto::prelude::DefaultRandomGenerator;
use tfhe::core_crypto::prelude::{
    CiphertextModulus, LweCompactPublicKeyOwned, LweDimension, LweSecretKeyOwned, SecretRandomGenerator,
    SeededLweCompactPublicKey, TUniform, allocate_and_generate_new_binary_lwe_secret_key,
    decompress_seeded_lwe_compact_public_key, generate_seeded_lwe_compact_public_key,
};
use zeroize::Zeroize;

use super::CryptoError;
use super::params::ThresholdParams;
use super::random::{Purpose, SessionRandomness, os_random_u128};

/// The longest party id, in bytes.
pub const MAX_PARTY_ID_LEN: usize = 128;

/// The per-round common reference string: the seed the public mask `a` is expanded from.
/// A fresh one every round binds every message to its round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Crs(pub u128);

impl Crs {
    /// A fresh CRS from the operating system's CSPRNG.
    pub fn random() -> Self {
        Self(os_random_u128())
    }
}

/// A party's identity (for hospitals: the name in their mTLS certificate).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartyId(String);

impl PartyId {
    /// A party id of 1 to [`MAX_PARTY_ID_LEN`] bytes.
    pub fn new(id: impl Into<String>) -> Result<Self, CryptoError> {
        let id = id.into();
        if id.is_empty() || id.len() > MAX_PARTY_ID_LEN {
            return Err(CryptoError::PartyIdLength { len: id.len(), max: MAX_PARTY_ID_LEN });
        }
        Ok(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn modulus() -> CiphertextModulus<u64> {
    CiphertextModulus::new_native()
}

/// A party's secret key share for one round. Not `Clone`, not serializable, redacted in `Debug`,
/// zeroized on drop.
pub(crate) struct SecretKeyShare {
    key: LweSecretKeyOwned<u64>,
}

impl fmt::Debug for SecretKeyShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKeyShare(<redacted>)")
    }
}

impl Drop for SecretKeyShare {
    fn drop(&mut self) {
        self.key.as_mut().zeroize();
    }
}

impl SecretKeyShare {
    /// A fresh binary secret key of Hamming weight at most `n/2` from the session's randomness:
    /// a uniform binary key, complemented when it is heavier (what the noise budget assumes; see
    /// [`crate::params`] for why this costs at most one bit of security).
    pub(crate) fn generate(params: &ThresholdParams, randomness: &SessionRandomness) -> Self {
        let mut generator = SecretRandomGenerator::<DefaultRandomGenerator>::new(randomness.seed(Purpose::SecretKey));
        let mut key = allocate_and_generate_new_binary_lwe_secret_key(LweDimension(params.n()), &mut generator);
        let weight: u64 = key.as_ref().iter().sum();
        if weight > params.n() as u64 / 2 {
            key.as_mut().iter_mut().for_each(|bit| *bit ^= 1);
        }
        Self { key }
    }

    /// The key's coefficients (0 or 1).
    pub(crate) fn coefficients(&self) -> &[u64] {
        self.key.as_ref()
    }

    /// This key's public key share for `crs`.
    pub(crate) fn public_share(
        &self,
        params: &ThresholdParams,
        party: PartyId,
        crs: Crs,
        randomness: &SessionRandomness,
    ) -> PublicKeyShare {
        let mut seeded = SeededLweCompactPublicKey::new(
            0u64,
            LweDimension(params.n()),
            CompressionSeed::from(Seed(crs.0)),
            modulus(),
        );
        let mut seeder = randomness.seeder(Purpose::KeyShareNoise);
        generate_seeded_lwe_compact_public_key(&self.key, &mut seeded, TUniform::new(params.noise.0), &mut seeder);
        PublicKeyShare { params_id: params.id, crs, party, body: seeded.into_container() }
    }
}

/// A party's public key share: the body `b_i = a ⊛ s_i + e_i` for the round's CRS mask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyShare {
    pub(crate) params_id: u16,
    pub(crate) crs: Crs,
    pub(crate) party: PartyId,
    pub(crate) body: Vec<u64>,
}

impl PublicKeyShare {
    /// The party that made it.
    pub fn party(&self) -> &PartyId {
        &self.party
    }

    /// The round's CRS it was made for.
    pub fn crs(&self) -> Crs {
        self.crs
    }
}

/// The collective public key of a round: the CRS mask and the sum of the parties' bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectivePublicKey {
    pub(crate) params_id: u16,
    pub(crate) crs: Crs,
    pub(crate) parties: Vec<PartyId>,
    pub(crate) body: Vec<u64>,
}

impl CollectivePublicKey {
    /// The round's CRS.
    pub fn crs(&self) -> Crs {
        self.crs
    }

    /// The parties whose shares it sums, sorted.
    pub fn parties(&self) -> &[PartyId] {
        &self.parties
    }

    /// The full compact public key `(a, Σ b_i)`, expanding the mask from the CRS.
    pub(crate) fn expand(&self, params: &ThresholdParams) -> LweCompactPublicKeyOwned<u64> {
        let seeded = SeededLweCompactPublicKey::from_container(
            self.body.clone(),
            CompressionSeed::from(Seed(self.crs.0)),
            modulus(),
        );
        let mut key = LweCompactPublicKeyOwned::new(0u64, LweDimension(params.n()), modulus());
        decompress_seeded_lwe_compact_public_key::<_, _, _, DefaultRandomGenerator>(&mut key, &seeded);
        key
    }
}

/// The aggregator's collection of a round's public key shares. Holds no secret.
#[derive(Debug)]
pub struct KeyShareCollector {
    params: ThresholdParams,
    crs: Crs,
    shares: BTreeMap<PartyId, Vec<u64>>,
}

impl KeyShareCollector {
    /// An empty collection for the round with this CRS.
    pub fn new(params: ThresholdParams, crs: Crs) -> Self {
        Self { params, crs, shares: BTreeMap::new() }
    }

    /// Adds one party's share, refusing another round's, another parameter set's, a malformed
    /// one or a second share from the same party.
    pub fn add(&mut self, share: PublicKeyShare) -> Result<(), CryptoError> {
        if share.params_id != self.params.id {
            return Err(CryptoError::WrongParams { expected: self.params.id, got: share.params_id });
        }
        if share.crs != self.crs {
            return Err(CryptoError::WrongCrs);
        }
        if share.body.len() != self.params.n() {
            return Err(CryptoError::LengthMismatch { expected: self.params.n(), got: share.body.len() });
        }
        if self.shares.contains_key(&share.party) {
            return Err(CryptoError::Duplicate(share.party));
        }
        self.shares.insert(share.party, share.body);
        Ok(())
    }

    /// Number of shares collected.
    pub fn len(&self) -> usize {
        self.shares.len()
    }

    /// Whether no share has been collected.
    pub fn is_empty(&self) -> bool {
        self.shares.is_empty()
    }

    /// The collective key of the shares collected, checked against the noise budget.
    pub fn collective_key(&self) -> Result<CollectivePublicKey, CryptoError> {
        self.params.noise_budget(self.shares.len())?;
        let mut body = vec![0u64; self.params.n()];
        for share in self.shares.values() {
            body.iter_mut().zip(share).for_each(|(sum, &b)| *sum = sum.wrapping_add(b));
        }
        Ok(CollectivePublicKey {
            params_id: self.params.id,
            crs: self.crs,
            parties: self.shares.keys().cloned().collect(),
            body,
        })
    }
}
