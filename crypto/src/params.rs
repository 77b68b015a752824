//! The named, versioned parameter set of the threshold scheme, and its worst-case noise budget.
//!
//! `fedcare-rlwe-n8192-v2`: ring dimension `n = 8192`, ciphertext modulus `q = 2^64`, binary secret
//! keys, key and encryption noise `TUniform(3)` (values in `[−8, 8]`) — the GLWE part of tfhe's
//! 128-bit `V1_8_PARAM_MESSAGE_3_CARRY_3_KS_PBS_TUNIFORM_2M128`. Plaintexts are scaled by
//! `Δ = 2^34`, leaving a 30-bit plaintext space (24-bit values and 6 bits of headroom for up to 64
//! parties, see `fedcare_core::codec`). A ciphertext is *modulus-switched* before it leaves the
//! party: every mask coefficient is rounded to its top 56 bits and every body to its top 39
//! ([`WireBits`]), so a value costs 7 + 4.875 bytes on the wire instead of 16.
//!
//! # Key shares of bounded weight
//! Each key share is a uniform binary key, complemented (`1 − s_i`) when more than half of its
//! coefficients are ones: a key of Hamming weight at most `n/2`. No key is more than twice as
//! likely as under tfhe's uniform binary distribution, so any attack on these keys succeeds on
//! uniform ones at least half as often: at most one bit of security. In exchange the collective
//! key `s = Σ s_i` has `‖s‖₁ ≤ n·P/2`, which halves the noise the mask's rounding can add.
//!
//! # Worst-case noise (checked at setup, [`ThresholdParams::noise_budget`])
//! With `P` parties, `B = 2^3`, a ciphertext encrypted with the compact public key `(a, Σ b_i)`
//! and rounded on the wire decrypts with error `e ⊛ r + e2 + ε_b − (e1 + ε_m) ⊛ s`, where
//! `ε_m` (per mask coefficient, at most `2^(63−56)`) and `ε_b` (per body, at most `2^(63−39)`)
//! are the rounding errors. With the public key's noise `e` (coefficients in `[−P·B, P·B]`), a
//! binary `r` and `‖s‖₁ ≤ n·P/2`, that is at most `n·P·B + (n·P/2)·(B + ε_m) + B + ε_b`. The
//! aggregate of `P` ciphertexts has at most `P` times that; each decryption share adds smudging
//! noise of at most `2^σ`, with `σ = log2(Δ) − 2 − ⌈log2 P⌉`. Decoding is exact while the total
//! stays below `Δ/2`; the setup refuses any party count for which it might not. At 64 parties the
//! worst case is 2^32.88 against a limit of 2^33, the rounding's part 2^30.6 of it; one bit fewer
//! in either word would not fit, and without the weight bound the masks would need 57 bits
//! (12.05 bytes per value for a million values).

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

/// How many top bits of a ciphertext word go on the wire: the word is rounded to the nearest
/// multiple of `2^(64 − bits)` (modulus switching from `2^64` to `2^bits`, kept in place).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct WireBits(pub u32);

impl WireBits {
    /// The low bits the rounding clears.
    fn dropped(self) -> u32 {
        64 - self.0
    }

    /// `word` rounded to the nearest multiple of `2^(64 − bits)`, modulo `2^64`.
    pub fn round(self, word: u64) -> u64 {
        match self.dropped() {
            0 => word,
            dropped => (word.wrapping_add(1 << (dropped - 1)) >> dropped) << dropped,
        }
    }

    /// The largest error [`Self::round`] makes: `2^(63 − bits)` (none when nothing is dropped).
    pub fn rounding_error(self) -> u64 {
        match self.dropped() {
            0 => 0,
            dropped => 1 << (dropped - 1),
        }
    }

    /// The top `bits` bits of a rounded word (what goes on the wire).
    pub fn top(self, word: u64) -> u64 {
        word.checked_shr(self.dropped()).unwrap_or(0)
    }

    /// The word whose top bits are `top` (the inverse of [`Self::top`]).
    pub fn word(self, top: u64) -> u64 {
        top.checked_shl(self.dropped()).unwrap_or(0)
    }

    /// Whether `word` is already rounded (its dropped bits are zero).
    pub fn holds(self, word: u64) -> bool {
        self.round(word) == word
    }
}

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
    /// Bits of every mask coefficient on the wire.
    pub mask_bits: WireBits,
    /// Bits of every body on the wire.
    pub body_bits: WireBits,
}

/// The parameter set fedcare uses.
pub const PARAMS_V2: ThresholdParams = ThresholdParams {
    id: 2,
    name: "fedcare-rlwe-n8192-v2",
    polynomial_size: PolynomialSize(8192),
    noise: NoiseLog2(3),
    delta: DeltaLog2(34),
    max_parties: PartyCount(64),
    mask_bits: WireBits(56),
    body_bits: WireBits(39),
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

/// Bytes of `count` words packed at `bits` bits each (bit-packed, the last byte zero-padded).
pub fn packed_bytes(count: usize, bits: WireBits) -> usize {
    (count as u128 * u128::from(bits.0)).div_ceil(8) as usize
}

/// `⌈log2 x⌉` for `x >= 1`.
fn ceil_log2(x: usize) -> u32 {
    usize::BITS - (x.max(1) - 1).leading_zeros()
}

impl ThresholdParams {
    /// The parameter set with this id, if this build knows it.
    pub fn by_id(id: u16) -> Option<&'static Self> {
        [&PARAMS_V2].into_iter().find(|p| p.id == id)
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

    /// Bytes of a packed ciphertext's words on the wire: every mask coefficient in
    /// [`Self::mask_bits`], every body in [`Self::body_bits`].
    pub fn ciphertext_wire_bytes(&self, len: usize) -> usize {
        packed_bytes(self.bins(len) * self.n(), self.mask_bits) + packed_bytes(len, self.body_bits)
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
        let mask_error = u128::from(self.mask_bits.rounding_error());
        let body_error = u128::from(self.body_bits.rounding_error());
        // ‖s‖₁ ≤ n·P/2: every key share has weight at most n/2 (see the module's notes).
        let per_ciphertext = n * p * b + (n * p / 2) * (b + mask_error) + b + body_error;
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
        for parties in 1..=PARAMS_V2.max_parties.0 {
            let budget = PARAMS_V2.noise_budget(parties).unwrap();
            assert!(budget.worst_case_log2 < f64::from(budget.limit_log2));
        }
        let budget = PARAMS_V2.noise_budget(64).unwrap();
        assert_eq!(budget.smudging, NoiseLog2(26));
        assert_eq!(PARAMS_V2.noise_budget(3).unwrap().smudging, NoiseLog2(30));
    }

    #[test]
    fn one_bit_fewer_on_the_wire_would_not_decode_safely_at_64_parties() {
        let budget = PARAMS_V2.noise_budget(64).unwrap();
        assert!((budget.worst_case_log2 - 32.88).abs() < 0.01, "{}", budget.worst_case_log2);
        let masks = ThresholdParams { mask_bits: WireBits(55), ..PARAMS_V2 };
        assert!(matches!(masks.noise_budget(64), Err(CryptoError::NoiseBudget { .. })));
        let bodies = ThresholdParams { body_bits: WireBits(38), ..PARAMS_V2 };
        assert!(matches!(bodies.noise_budget(64), Err(CryptoError::NoiseBudget { .. })));
        // Under 12 bytes per value for a million values (the bins' padding included).
        assert!(PARAMS_V2.ciphertext_wire_bytes(1_000_000) < 12_000_000);
    }

    #[test]
    fn wire_bits_round_to_nearest_and_keep_the_top_bits() {
        let bits = WireBits(39);
        let step = 1u64 << 25;
        assert_eq!(bits.rounding_error(), step / 2);
        assert_eq!(bits.round(3 * step + step / 2 - 1), 3 * step);
        assert_eq!(bits.round(3 * step + step / 2), 4 * step);
        // Rounding wraps modulo 2^64 like the torus.
        assert_eq!(bits.round(u64::MAX), 0);
        for word in [0, 1, step - 1, u64::MAX / 3, u64::MAX] {
            let rounded = bits.round(word);
            assert!(bits.holds(rounded));
            assert_eq!(bits.word(bits.top(rounded)), rounded);
            assert!(bits.top(rounded) < 1 << 39);
            assert!(rounded.wrapping_sub(word).wrapping_add(step / 2) <= step, "{word}: off by more than half a step");
        }
        let full = WireBits(64);
        assert_eq!((full.round(u64::MAX), full.rounding_error(), full.top(7)), (u64::MAX, 0, 7));
        assert_eq!(packed_bytes(8, bits), 39);
        assert_eq!(packed_bytes(1, bits), 5);
    }

    #[test]
    fn too_many_parties_or_too_little_room_is_refused() {
        assert!(matches!(PARAMS_V2.noise_budget(65), Err(CryptoError::PartyCount { .. })));
        assert!(matches!(PARAMS_V2.noise_budget(0), Err(CryptoError::PartyCount { .. })));
        // A parameter set with a smaller Δ cannot carry 64 parties' encryption noise.
        let tight = ThresholdParams { delta: DeltaLog2(30), ..PARAMS_V2 };
        assert!(matches!(tight.noise_budget(64), Err(CryptoError::NoiseBudget { .. })));
    }

    #[test]
    fn the_codec_must_fit_the_plaintext_space() {
        PARAMS_V2.check_codec(&PARAMS_V2.codec_config()).unwrap();
        let wide = fedcare_core::CodecConfig { plaintext_bits: 31, ..PARAMS_V2.codec_config() };
        assert!(matches!(PARAMS_V2.check_codec(&wide), Err(CryptoError::CodecMismatch { .. })));
    }
}
