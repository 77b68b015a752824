//! Packed ciphertexts: one compact ciphertext list holding any number of encrypted values.
//!
//! Layout (tfhe's `LweCompactCiphertextList` container): `bins = ⌈len/n⌉` mask polynomials of
//! `n` coefficients, then `len` bodies. Every mask coefficient is rounded to its top
//! [`ThresholdParams::mask_bits`] and every body to its top [`ThresholdParams::body_bits`] as it
//! is made (modulus switching; the noise budget accounts for it), and the wire carries only those
//! bits: a value costs its body (39 bits) plus its share of a mask (56 bits per value in full
//! bins), under 12 bytes.
//!
//! Encryption uses tfhe's NTT-based re-randomization path under the collective public key:
//! `mask = a ⊛ r + e1`, `body_j = (b ⊛ r)_rev(j) + e2_j + Δ·m_j` with a fresh binary `r` per
//! bin; the bins are encrypted in parallel on the current rayon pool (`crypto_threads`), each
//! from its own seed, so the result does not depend on the number of threads.

use tfhe::core_crypto::commons::generators::NoiseRandomGenerator;
use tfhe::core_crypto::commons::math::random::Seed;
use tfhe::core_crypto::prelude::re_randomization::rerand_encrypt_lwe_compact_ciphertext_list_with_compact_public_key;
use tfhe::core_crypto::prelude::{
    DefaultRandomGenerator, LweCiphertextCount, LweCompactCiphertextList, LweCompactPublicKeyOwned, LweDimension,
    PlaintextList, TUniform,
};

use rayon::prelude::*;

use super::CryptoError;
use super::keys::{Crs, modulus};
use super::params::ThresholdParams;

/// A commitment to one party's ciphertext: BLAKE3 of its parameters, CRS, length and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContributionHash(pub [u8; 32]);

/// An encrypted vector of plaintext words.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext {
    pub(crate) params_id: u16,
    pub(crate) crs: Crs,
    pub(crate) len: usize,
    /// `bins × n` mask coefficients, then `len` bodies.
    pub(crate) data: Vec<u64>,
}

impl core::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ciphertext").field("crs", &self.crs).field("len", &self.len).finish_non_exhaustive()
    }
}

impl Ciphertext {
    /// Number of encrypted values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it encrypts no value (never true for a ciphertext a party made).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The round's CRS it was made under.
    pub fn crs(&self) -> Crs {
        self.crs
    }

    /// The commitment the party keeps and the aggregate lists.
    pub fn hash(&self) -> ContributionHash {
        let mut hasher = hash_prefix(self.params_id, self.crs, self.len);
        hash_words(&mut hasher, &self.data);
        ContributionHash(*hasher.finalize().as_bytes())
    }
}

/// A [`ContributionHash`]'s hasher before the ciphertext's words (which follow as little-endian
/// bytes, masks then bodies).
pub(crate) fn hash_prefix(params_id: u16, crs: Crs, len: usize) -> blake3::Hasher {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"fedcare/ciphertext/v1");
    hasher.update(&params_id.to_le_bytes());
    hasher.update(&crs.0.to_le_bytes());
    hasher.update(&(len as u64).to_le_bytes());
    hasher
}

/// `words` as little-endian bytes: borrowed on little-endian machines, copied elsewhere.
pub(crate) fn le_bytes(words: &[u64]) -> std::borrow::Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        std::borrow::Cow::Borrowed(bytemuck::cast_slice(words))
    } else {
        std::borrow::Cow::Owned(words.iter().flat_map(|w| w.to_le_bytes()).collect())
    }
}

/// Feeds `words` to `hasher` as little-endian bytes, on the crypto threads when there are
/// several (BLAKE3's tree: the same hash however it is split).
pub(crate) fn hash_words(hasher: &mut blake3::Hasher, words: &[u64]) {
    if rayon::current_num_threads() > 1 {
        hasher.update_rayon(&le_bytes(words));
    } else {
        hasher.update(&le_bytes(words));
    }
}

/// [`encrypt`] with its randomness drawn from `seed`: the same seed gives the same ciphertext,
/// bit for bit, whatever the number of threads of the current rayon pool.
///
/// The bins (one mask polynomial and up to `n` bodies each) are independent: each is encrypted
/// on its own by tfhe's re-randomization path, with a noise generator seeded from `seed` and the
/// bin's index ([`bin_seed`]), in parallel over the pool. Each bin draws the same distributions
/// tfhe draws for it in a whole-list encryption (a fresh binary `r`, mask and body noise), so the
/// noise bound is unchanged.
pub(crate) fn encrypt_seeded(
    params: &ThresholdParams,
    crs: Crs,
    key: &LweCompactPublicKeyOwned<u64>,
    words: &[u64],
    seed: Seed,
) -> Result<Ciphertext, CryptoError> {
    if words.is_empty() {
        return Err(CryptoError::EmptyPlaintext);
    }
    let bits = params.plaintext_bits();
    if let Some((index, &word)) = words.iter().enumerate().find(|(_, word)| *word >> bits != 0) {
        return Err(CryptoError::WordOutOfRange { index, word, bits });
    }
    let n = params.n();
    let distribution = TUniform::<u64>::new(params.noise.0);
    let mut data = vec![0u64; params.ciphertext_words(words.len())];
    let (masks, bodies) = data.split_at_mut(params.bins(words.len()) * n);
    masks.par_chunks_mut(n).zip(bodies.par_chunks_mut(n)).zip(words.par_chunks(n)).enumerate().for_each(
        |(bin, ((mask, body), words))| {
            let plaintexts =
                PlaintextList::from_container(words.iter().map(|&w| w << params.delta.0).collect::<Vec<_>>());
            let mut list = LweCompactCiphertextList::new(
                0u64,
                LweDimension(n).to_lwe_size(),
                LweCiphertextCount(words.len()),
                modulus(),
            );
            let mut noise = NoiseRandomGenerator::<DefaultRandomGenerator>::new_from_seed(bin_seed(seed, bin));
            rerand_encrypt_lwe_compact_ciphertext_list_with_compact_public_key(
                key,
                &mut list,
                &plaintexts,
                distribution,
                distribution,
                &mut noise,
            );
            // Modulus switching: what goes on the wire is rounded here, so the party's hash and
            // fingerprints cover exactly the words the aggregator adds.
            let (bin_mask, bin_bodies) = list.as_ref().split_at(n);
            mask.iter_mut().zip(bin_mask).for_each(|(out, &word)| *out = params.mask_bits.round(word));
            body.iter_mut().zip(bin_bodies).for_each(|(out, &word)| *out = params.body_bits.round(word));
        },
    );
    Ok(Ciphertext { params_id: params.id, crs, len: words.len(), data })
}

/// The seed of bin `bin`'s randomness, derived from a whole vector's `seed` (BLAKE3 in
/// key-derivation mode): independent bins, the same on every machine and thread count.
pub(crate) fn bin_seed(seed: Seed, bin: usize) -> Seed {
    let mut hasher = blake3::Hasher::new_derive_key("fedcare 2026 crypto bin seed v1");
    hasher.update(&seed.0.to_le_bytes());
    hasher.update(&(bin as u64).to_le_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    Seed(u128::from_le_bytes(first))
}
