//! The fixed-point codec between model updates (`f32`) and the integers that are encrypted.
//!
//! A value `v` with weight `w` (a hospital's share `n_k/N` of the samples) becomes the integer
//! `round(v·w·2^frac_bits)`, clipped to the `value_bits`-bit two's-complement range
//! `±(2^(value_bits−1) − 1)` and stored modulo `2^plaintext_bits` (the encryption layer's plaintext
//! space: with `q = 2^64` and `Δ = 2^34`, 30 bits). Sums of encodings are taken modulo
//! `2^plaintext_bits` too, as the homomorphic addition does.
//!
//! Guarantees:
//! - Decoding the sum of up to `max_parties` encodings is *exact*: it returns the integer sum of
//!   the parties' clipped, rounded values. [`Codec::new`] refuses any configuration whose sums
//!   could overflow the plaintext space (`max_parties · (2^(value_bits−1) − 1) < 2^(plaintext_bits−1)`).
//! - Clipping is never silent: [`Encoded::clipped`] counts the clipped values.
//! - Non-finite values are refused, not encoded; a word or sum that no valid encoding could
//!   produce is refused on decode.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Shape of the fixed-point encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodecConfig {
    /// Bits of one party's encoded value, two's complement, sign included.
    pub value_bits: u32,
    /// Fractional bits: `v` is encoded as `round(v · 2^frac_bits)`.
    pub frac_bits: u32,
    /// The largest number of parties whose encodings may be summed.
    pub max_parties: u32,
    /// Bits of the plaintext space the sums live in (`log2(q/Δ)` of the encryption).
    pub plaintext_bits: u32,
}

impl Default for CodecConfig {
    /// 24-bit values with 20 fractional bits (range ±8, resolution 2^−20 ≈ 9.5e−7) for up to 64
    /// parties in a 30-bit plaintext space (docs/design.md §5, §6).
    fn default() -> Self {
        Self { value_bits: 24, frac_bits: 20, max_parties: 64, plaintext_bits: 30 }
    }
}

/// One party's encoded vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The encoded values, each in `[0, 2^plaintext_bits)`.
    pub words: Vec<u64>,
    /// How many values lay outside the representable range and were clipped to its edge.
    pub clipped: usize,
}

/// A validated [`CodecConfig`], ready to encode and decode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Codec {
    config: CodecConfig,
    /// Largest magnitude of one party's integer, `2^(value_bits−1) − 1`.
    max_integer: i64,
    /// `2^frac_bits`.
    scale: f64,
    /// `2^plaintext_bits − 1`.
    mask: u64,
}

impl Codec {
    /// Checks `config` and refuses it when a sum of `max_parties` encodings could overflow.
    pub fn new(config: CodecConfig) -> Result<Self> {
        let CodecConfig { value_bits, frac_bits, max_parties, plaintext_bits } = config;
        let invalid = |name, value: u32| Err(Error::InvalidCodec { name, value });
        if !(2..=48).contains(&value_bits) {
            return invalid("value_bits", value_bits);
        }
        if frac_bits > 60 {
            return invalid("frac_bits", frac_bits);
        }
        if max_parties == 0 {
            return invalid("max_parties", max_parties);
        }
        if !(value_bits..=63).contains(&plaintext_bits) {
            return invalid("plaintext_bits", plaintext_bits);
        }
        let max_integer = (1i64 << (value_bits - 1)) - 1;
        let worst_sum = i128::from(max_parties) * i128::from(max_integer);
        if worst_sum > (1i128 << (plaintext_bits - 1)) - 1 {
            return Err(Error::CodecOverflow { value_bits, max_parties, plaintext_bits });
        }
        Ok(Self { config, max_integer, scale: libm::ldexp(1.0, frac_bits as i32), mask: (1u64 << plaintext_bits) - 1 })
    }

    /// The configuration.
    pub fn config(&self) -> CodecConfig {
        self.config
    }

    /// The largest magnitude one party can encode (after weighting); larger ones are clipped.
    pub fn max_value(&self) -> f64 {
        self.max_integer as f64 / self.scale
    }

    /// The step between representable values, `2^−frac_bits`.
    pub fn resolution(&self) -> f64 {
        1.0 / self.scale
    }

    /// Encodes `values · weight`, clipping (and counting) what is out of range.
    ///
    /// Refuses a non-finite value ([`Error::NonFiniteValue`]) or a weight that is not a finite
    /// positive number.
    pub fn encode(&self, values: &[f32], weight: f64) -> Result<Encoded> {
        if !(weight.is_finite() && weight > 0.0) {
            return Err(Error::InvalidHyperparameter { name: "weight", value: weight });
        }
        let factor = weight * self.scale;
        let limit = self.max_integer as f64;
        let mut clipped = 0;
        let mut words = Vec::with_capacity(values.len());
        for (index, &v) in values.iter().enumerate() {
            if !v.is_finite() {
                return Err(Error::NonFiniteValue { index });
            }
            let scaled = libm::round(f64::from(v) * factor);
            let integer = if scaled.abs() > limit {
                clipped += 1;
                limit.copysign(scaled)
            } else {
                scaled
            };
            words.push((integer as i64 as u64) & self.mask);
        }
        Ok(Encoded { words, clipped })
    }

    /// Adds `words` into `sum` modulo `2^plaintext_bits`, as homomorphic addition does.
    pub fn add_assign(&self, sum: &mut [u64], words: &[u64]) -> Result<()> {
        if sum.len() != words.len() {
            return Err(Error::ParamLength { expected: sum.len(), got: words.len() });
        }
        sum.iter_mut().zip(words).for_each(|(s, &w)| *s = s.wrapping_add(w) & self.mask);
        Ok(())
    }

    /// The exact integer sums carried by `words`, the sum of `parties` encodings.
    ///
    /// Refuses more parties than configured, a word outside the plaintext space and a sum that no
    /// `parties` valid encodings could add up to (a corrupted or forged aggregate).
    pub fn decode_sum_integers(&self, words: &[u64], parties: u32) -> Result<Vec<i64>> {
        if parties == 0 || parties > self.config.max_parties {
            return Err(Error::TooManyParties { parties, max: self.config.max_parties });
        }
        let bound = i64::from(parties) * self.max_integer;
        let shift = 64 - self.config.plaintext_bits;
        words
            .iter()
            .enumerate()
            .map(|(index, &word)| {
                if word > self.mask {
                    return Err(Error::WordOutOfRange { index, word, plaintext_bits: self.config.plaintext_bits });
                }
                // Sign-extend from plaintext_bits to 64 bits.
                let integer = ((word << shift) as i64) >> shift;
                if integer.abs() > bound {
                    return Err(Error::SumOutOfRange { index, sum: integer, bound });
                }
                Ok(integer)
            })
            .collect()
    }

    /// Decodes the sum of `parties` encodings into values (the weighted sum of their inputs).
    pub fn decode_sum(&self, words: &[u64], parties: u32) -> Result<Vec<f32>> {
        let integers = self.decode_sum_integers(words, parties)?;
        Ok(integers.into_iter().map(|i| (i as f64 / self.scale) as f32).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn default_config_is_the_designs() {
        let codec = Codec::new(CodecConfig::default()).unwrap();
        assert!((codec.max_value() - 8.0).abs() < 1e-5);
        assert_eq!(codec.resolution(), 1.0 / 1048576.0);
    }

    #[test]
    fn negative_values_round_trip_through_twos_complement() {
        let codec = Codec::new(CodecConfig::default()).unwrap();
        let encoded = codec.encode(&[-1.5, 0.25, -0.0], 1.0).unwrap();
        assert_eq!(encoded.words[0], (1 << 30) - (3 << 19));
        assert_eq!(codec.decode_sum(&encoded.words, 1).unwrap(), vec![-1.5, 0.25, 0.0]);
    }

    #[test]
    fn bad_values_and_sums_are_refused() {
        let codec = Codec::new(CodecConfig::default()).unwrap();
        assert_eq!(codec.encode(&[1.0, f32::INFINITY], 1.0), Err(Error::NonFiniteValue { index: 1 }));
        assert!(codec.encode(&[1.0], f64::NAN).is_err());
        assert_eq!(
            codec.decode_sum_integers(&[1 << 30], 1),
            Err(Error::WordOutOfRange { index: 0, word: 1 << 30, plaintext_bits: 30 })
        );
        assert_eq!(codec.decode_sum_integers(&[0], 65), Err(Error::TooManyParties { parties: 65, max: 64 }));
        // 2^24 cannot be the sum of one 24-bit value.
        assert!(matches!(codec.decode_sum_integers(&[1 << 24], 1), Err(Error::SumOutOfRange { .. })));
    }
}
