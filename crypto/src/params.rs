//! The named, versioned parameter set of the threshold scheme, and its worst-case noise budget.
//!
//! `fedcare-rlwe-n8192-v1`: ring dimension `n = 8192`, ciphertext modulus `q = 2^64`, binary secret
//! keys, key and encryption noise `TUniform(3)` (values in `[−8, 8]`) — the GLWE part of tfhe's
//! 128-bit `V1_8_PARAM_MESSAGE_3_CARRY_3_KS_PBS_TUNIFORM_2M128`. Plaintexts are scaled by
//! `Δ = 2^34`, leaving a 30-bit plaintext space (24-bit values and 6 bits of headroom for up to 64
//! parties, see `fedcare_core::codec`).
//!
//! # Worst-case noise (checked at setup, [`ThresholdParams::noise_budget`])
//! With `P` parties, `B = 2^3` and the collective key `s = Σ s_i` (coefficients in `[0, P]`), a
//! ciphertext encrypted with the compact public key `(a, Σ b_i)` decrypts with error
//! `e ⊛ r + e2 − e1 ⊛ s`, bounded by `n·P·B + n·B·P + B`. The aggregate of `P` ciphertexts has at
//! most `P` times that; each decryption share adds smudging noise of at most `2^σ`, with
//! `σ = log2(Δ) − 2 − ⌈log2 P⌉`. Decoding is exact while the total stays below `Δ/2`; the setup
//! refuses any party count for which it might not.

pub use tfhe::core_crypto::prelude::PolynomialSize;

use super::CryptoError;

/// `log2(Δ)`: plaintext words are scaled by `Δ = 2^k` into the top of the torus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DeltaLog2(pub u32);

impl DeltaLog2 {
    /// `Δ / 2`: the largest total noise that still rounds to the right word.
    pub fn half_delta(self) -> u64 {
        1u64 << (self.0 - 1)
    }

    /// `round(phase / Δ)`, the plaintext word of a decrypted phase.
    pub fn round(self, phase: u64) -> u64 {
        phase.wrapping_add(self.half_delta()) >> self.0
    }
}

/// `log2` of the bound of a `TUniform` distribution: values in `[−2^b, 2^b]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NoiseLog2(pub u32);

/// A number of parties (hospitals).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PartyCount(pub usize);

/// A parameter set of the threshold scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThresholdParams {
    /// Identifier written in every wire message.
    pub id: u16,
    /// Human-readable name.
    pub name: &'static str,
    /// Ring dimension `n` (values per packed ciphertext mask).
    pub polynomial_size: PolynomialSize,
    /// Bound of the `TUniform` key and encryption noise.
    pub noise: NoiseLog2,
    /// Plaintext scaling `Δ`.
    pub delta: DeltaLog2,
    /// Largest number of parties.
    pub max_parties: PartyCount,
}

/// The parameter set fedcare uses.
pub const PARAMS_V1: ThresholdParams = ThresholdParams {
    id: 1,
    name: "fedcare-rlwe-n8192-v1",
    polynomial_size: PolynomialSize(8192),
    noise: NoiseLog2(3),
    delta: DeltaLog2(34),
    max_parties: PartyCount(64),
};

/// What the noise analysis of a configuration found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NoiseBudget {
    /// Parties.
    pub parties: PartyCount,
    /// The smudging bound each decryption share uses.
    pub smudging: NoiseLog2,
    /// `log2` of the worst-case total noise of a combined decryption.
    pub worst_case_log2: f64,
    /// `log2` of the largest total noise that decodes correctly (`Δ/2`).
    pub limit_log2: u32,
}

/// `⌈log2 x⌉` for `x >= 1`.
fn ceil_log2(x: usize) -> u32 {
    usize::BITS - (x.max(1) - 1).leading_zeros()
}

impl ThresholdParams {
    /// The parameter set with this id, if this build knows it.
    pub fn by_id(id: u16) -> Option<&'static Self> {
        [&PARAMS_V1].into_iter().find(|p| p.id == id)
    }

    /// The ring dimension as a count of values.
    pub fn n(&self) -> usize {
        self.polynomial_size.0
    }

    /// Bits of the plaintext space, `64 − log2(Δ)`.
    pub fn plaintext_bits(&self) -> u32 {
        64 - self.delta.0
    }

    /// Number of packed masks (of `n` values each) for `len` values.
    pub fn bins(&self, len: usize) -> usize {
        len.div_ceil(self.n())
    }

    /// Words of a packed ciphertext of `len` values: its masks, then one body per value.
    pub fn ciphertext_words(&self, len: usize) -> usize {
        self.bins(len) * self.n() + len
    }

    /// The smudging bound for `parties` parties: half of `Δ/2` shared among them.
    pub fn smudging(&self, parties: usize) -> NoiseLog2 {
        NoiseLog2(self.delta.0 - 2 - ceil_log2(parties))
    }

    /// Checks that `parties` parties decode exactly in the worst case, and says by how much.
    pub fn noise_budget(&self, parties: usize) -> Result<NoiseBudget, CryptoError> {
        if parties == 0 || parties > self.max_parties.0 {
            return Err(CryptoError::PartyCount { parties, max: self.max_parties.0, params: self.name });
        }
        let p = parties as u128;
        let n = self.n() as u128;
        let b = 1u128 << self.noise.0;
        let smudging = self.smudging(parties);
        let per_ciphertext = n * p * b + n * b * p + b;
        let worst_case = p * per_ciphertext + p * (1u128 << smudging.0);
        let limit_log2 = self.delta.0 - 1;
        let worst_case_log2 = (worst_case as f64).log2();
        if worst_case >= 1u128 << limit_log2 {
            return Err(CryptoError::NoiseBudget { parties, worst_case_log2, limit_log2 });
        }
        Ok(NoiseBudget { parties: PartyCount(parties), smudging, worst_case_log2, limit_log2 })
    }

    /// The codec configuration matching this parameter set (24-bit values, 20 fractional bits).
    pub fn codec_config(&self) -> fedcare_core::CodecConfig {
        fedcare_core::CodecConfig {
            value_bits: 24,
            frac_bits: 20,
            max_parties: self.max_parties.0 as u32,
            plaintext_bits: self.plaintext_bits(),
        }
    }

    /// Checks that a codec's sums fit this parameter set's plaintext space and party count.
    pub fn check_codec(&self, codec: &fedcare_core::CodecConfig) -> Result<(), CryptoError> {
        if codec.plaintext_bits != self.plaintext_bits() {
            return Err(CryptoError::CodecMismatch {
                what: "plaintext_bits",
                expected: self.plaintext_bits(),
                got: codec.plaintext_bits,
            });
        }
        if codec.max_parties as usize > self.max_parties.0 {
            return Err(CryptoError::CodecMismatch {
                what: "max_parties",
                expected: self.max_parties.0 as u32,
                got: codec.max_parties,
            });
        }
        fedcare_core::Codec::new(*codec)?;
        self.noise_budget(codec.max_parties as usize).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_holds_for_every_supported_party_count() {
        for parties in 1..=PARAMS_V1.max_parties.0 {
            let budget = PARAMS_V1.noise_budget(parties).unwrap();
            assert!(budget.worst_case_log2 < f64::from(budget.limit_log2));
        }
        let budget = PARAMS_V1.noise_budget(64).unwrap();
        assert_eq!(budget.smudging, NoiseLog2(26));
        assert_eq!(PARAMS_V1.noise_budget(3).unwrap().smudging, NoiseLog2(30));
    }

    #[test]
    fn too_many_parties_or_too_little_room_is_refused() {
        assert!(matches!(PARAMS_V1.noise_budget(65), Err(CryptoError::PartyCount { .. })));
        assert!(matches!(PARAMS_V1.noise_budget(0), Err(CryptoError::PartyCount { .. })));
        // A parameter set with a smaller Δ cannot carry 64 parties' encryption noise.
        let tight = ThresholdParams { delta: DeltaLog2(30), ..PARAMS_V1 };
        assert!(matches!(tight.noise_budget(64), Err(CryptoError::NoiseBudget { .. })));
    }

    #[test]
    fn the_codec_must_fit_the_plaintext_space() {
        PARAMS_V1.check_codec(&PARAMS_V1.codec_config()).unwrap();
        let wide = fedcare_core::CodecConfig { plaintext_bits: 31, ..PARAMS_V1.codec_config() };
        assert!(matches!(PARAMS_V1.check_codec(&wide), Err(CryptoError::CodecMismatch { .. })));
    }
}
