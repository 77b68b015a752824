//! Verified masks: before a party makes a decryption share it checks that the aggregate masks it
//! is asked to decrypt are *exactly* the sum of the contributors' masks, without downloading them.
//!
//! # Why a check at all
//! A decryption share is `⟨A, s_i⟩ + smudging` for the masks `A` the aggregator sends. If `A` is
//! not the sum of the contributions' masks the decrypted "sum" is something else: one party's
//! own mask decrypts that party's update, and adding `Δ·2^k·X^t` to one coefficient of the
//! honest sum puts the collective secret key in the high bits of every decoded value. A spot
//! check of a few coefficients cannot see a one-coefficient change; this check sees any change.
//!
//! # The check: a random linear form on the integer lift, modulo 2^128
//! Masks live in `Z/2^64`. Over `Z/2^64` a random linear check is weak: a difference `2^63·e_t`
//! passes `⟨δ, ρ⟩ ≡ 0` whenever `ρ_t` is even (probability 1/2). So the check runs on the
//! *integers*: the aggregator sends, with `A = Σ_j mask_j mod 2^64`, the carry `c_t` of every
//! coefficient (`Σ_j mask_j[t] = A[t] + c_t·2^64` over the integers, `c_t < 64` for at most 64
//! parties), and every party checks, for a challenge vector `ρ` of uniform 64-bit integers fixed
//! *after* the aggregator committed to `(A, c)`:
//!
//! ```text
//! Σ_t (A[t] + c_t·2^64) · ρ[t]  ≡  Σ_j ⟨mask_j, ρ⟩   (mod 2^128)
//! ```
//!
//! where each contributor `j` computes and signs its own fingerprint `⟨mask_j, ρ⟩` (its mask as
//! integers in `[0, 2^64)`). Let `δ` be the integer difference between the claimed lift and the
//! true sum, and suppose the masks differ from the true sum modulo `2^64` somewhere (the only
//! part decryption uses). Then `δ ≠ 0`, and its smallest 2-adic valuation `v` among the nonzero
//! coefficients is below 64 (a coefficient whose mask differs modulo `2^64` has `v < 64`; a
//! coefficient with only a false carry has `v ≥ 64`). Take a coefficient `t` where it is
//! attained, `δ_t = 2^v·u` with `u` odd, and fix every other `ρ` coefficient: the check passes
//! only if `δ_t·ρ_t` hits one value modulo `2^128`, and `ρ ↦ δ_t·ρ mod 2^128` is injective on
//! `[0, 2^64)` (two values collide only when they agree modulo `2^(128-v)`, and `128 - v > 64`).
//! So the check passes with probability at most `2^-64` for any change of any mask coefficient:
//! one challenge meets the bound we require, at one pass over the masks and 8 stream bytes per
//! coefficient. (A false carry alone changes nothing that decryption uses; an honest
//! aggregator's carries are exact, so its check always passes.) [`CHALLENGES`] challenges give
//! `2^(-64·CHALLENGES)`.
//!
//! # The same check on the output
//! After decryption the aggregator sends every party the unrounded decrypted sum
//! ([`crate::DecryptedSum`]): per value the phase `P = Σ_j body_j − Σ_j share_j mod 2^64` and
//! its signed lift `κ` (`Σ_j (body_j − share_j) = P + κ·2^64` over the integers, `|κ| ≤ 64`).
//! Each party `j` signs `⟨body_j − share_j, ρ'⟩` (over the integers: it knows both) for a second
//! challenge `ρ'` fixed after the aggregator committed to `(P, κ)`, and every party checks
//! `⟨P + κ·2^64, ρ'⟩ ≡ Σ_j ⟨body_j − share_j, ρ'⟩ (mod 2^128)`. The argument above applies
//! word for word: a sum that differs from the true one modulo `2^64` anywhere (the only part
//! rounding uses) passes with probability at most `2^-64`, so the aggregator cannot hand out
//! another model or other metrics than the shares decrypt. The challenge must come *after* the
//! commitment: with `ρ'` known, a short vector `δ` with `⟨δ, ρ'⟩ ≡ 0` in three coordinates is a
//! small lattice reduction away.
//!
//! The challenge must be unpredictable to the aggregator when it chooses `(A, c)`: the caller
//! derives its seed from the aggregate's digest and fresh randomness of every party, revealed
//! only after the digest is fixed (`fedcare-federation` does). One pass over the masks with a
//! BLAKE3 stream costs about 1 ms per 100k values.

/// Independent challenge vectors per check (each misses a change of the masks with probability
/// at most 2^-64).
pub const CHALLENGES: usize = 1;

/// Coefficients generated per block of the challenge stream.
const BLOCK: usize = 4096;

/// A seed from which the challenge vectors are expanded (BLAKE3 in keyed XOF mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    seed: [u8; 32],
}

/// `Σ_t w_t·ρ_t mod 2^128` for each challenge vector `ρ`: a party's fingerprint of its own masks,
/// or the sum of every contributor's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaskFingerprint(pub [u128; CHALLENGES]);

impl MaskFingerprint {
    /// The sum of two fingerprints (of two vectors: the fingerprint of their integer sum).
    pub fn wrapping_add(self, other: Self) -> Self {
        let mut sum = self.0;
        sum.iter_mut().zip(other.0).for_each(|(a, b)| *a = a.wrapping_add(b));
        Self(sum)
    }

    /// The fingerprint as 16 little-endian bytes per challenge.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// A fingerprint from [`Self::to_bytes`]; `None` for the wrong length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != 16 * CHALLENGES {
            return None;
        }
        let mut out = [0u128; CHALLENGES];
        for (value, chunk) in out.iter_mut().zip(bytes.chunks_exact(16)) {
            *value = u128::from_le_bytes(chunk.try_into().ok()?);
        }
        Some(Self(out))
    }
}

impl Challenge {
    /// The challenge expanded from `seed`.
    pub fn new(seed: [u8; 32]) -> Self {
        Self { seed }
    }

    /// Calls `visit(t, ρ_k[t])` for every coefficient of challenge `k`, in order: uniform 64-bit
    /// integers, used in `Z/2^128` arithmetic.
    fn for_each_coefficient(&self, k: usize, len: usize, mut visit: impl FnMut(usize, u128)) {
        let mut hasher = blake3::Hasher::new_keyed(&self.seed);
        hasher.update(b"fedcare/mask-check/v1");
        hasher.update(&(k as u64).to_le_bytes());
        let mut stream = hasher.finalize_xof();
        let mut block = vec![0u8; BLOCK * 8];
        let mut t = 0;
        while t < len {
            let count = BLOCK.min(len - t);
            let bytes = &mut block[..count * 8];
            stream.fill(bytes);
            for chunk in bytes.chunks_exact(8) {
                // Invariant: `chunks_exact(8)` yields 8-byte slices.
                visit(t, u128::from(u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]))));
                t += 1;
            }
        }
    }

    /// `⟨words, ρ⟩ mod 2^128`, the words read as integers in `[0, 2^64)`.
    pub fn fingerprint(&self, words: &[u64]) -> MaskFingerprint {
        let mut out = [0u128; CHALLENGES];
        for (k, sum) in out.iter_mut().enumerate() {
            self.for_each_coefficient(k, words.len(), |t, rho| {
                *sum = sum.wrapping_add(u128::from(words[t]).wrapping_mul(rho));
            });
        }
        MaskFingerprint(out)
    }

    /// `⟨words + carries·2^64, ρ⟩ mod 2^128`: the fingerprint of the integer lift of a sum.
    /// `carries` must be as long as `words`.
    pub fn lifted_fingerprint(&self, words: &[u64], carries: &[u8]) -> MaskFingerprint {
        let mut out = [0u128; CHALLENGES];
        for (k, sum) in out.iter_mut().enumerate() {
            self.for_each_coefficient(k, words.len(), |t, rho| {
                let lifted = u128::from(words[t]) | (u128::from(carries[t]) << 64);
                *sum = sum.wrapping_add(lifted.wrapping_mul(rho));
            });
        }
        MaskFingerprint(out)
    }

    /// `⟨words + lifts·2^64, ρ⟩ mod 2^128` with signed lifts: the fingerprint of a decrypted
    /// sum's integer lift ([`crate::DecryptedSum`]).
    pub fn signed_lifted_fingerprint(&self, words: &[u64], lifts: &[i8]) -> MaskFingerprint {
        let mut out = [0u128; CHALLENGES];
        for (k, sum) in out.iter_mut().enumerate() {
            self.for_each_coefficient(k, words.len(), |t, rho| {
                let lifted = u128::from(words[t]).wrapping_add((i128::from(lifts[t]) as u128) << 64);
                *sum = sum.wrapping_add(lifted.wrapping_mul(rho));
            });
        }
        MaskFingerprint(out)
    }

    /// `⟨a − b, ρ⟩ mod 2^128`, the words read as integers in `[0, 2^64)` and the difference
    /// taken over the integers: a party's fingerprint of its body minus its decryption share.
    /// `b` must be as long as `a`.
    pub fn difference_fingerprint(&self, a: &[u64], b: &[u64]) -> MaskFingerprint {
        let mut out = [0u128; CHALLENGES];
        for (k, sum) in out.iter_mut().enumerate() {
            self.for_each_coefficient(k, a.len(), |t, rho| {
                let difference = u128::from(a[t]).wrapping_sub(u128::from(b[t]));
                *sum = sum.wrapping_add(difference.wrapping_mul(rho));
            });
        }
        MaskFingerprint(out)
    }
}

/// What a party checks the aggregate masks against: the challenge and the sum of every
/// contributor's signed fingerprint of its own masks under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaskCheck {
    /// The challenge, fixed after the aggregate was committed to.
    pub challenge: Challenge,
    /// `Σ_j ⟨mask_j, ρ⟩` over the contributors.
    pub contributions: MaskFingerprint,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lift_of_a_sum_has_the_sum_of_the_fingerprints_and_any_change_is_caught() {
        let challenge = Challenge::new([3; 32]);
        let a: Vec<u64> = (0..10_000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).collect();
        let b: Vec<u64> = (0..10_000u64).map(|i| u64::MAX - i * 3).collect();
        let mut sum = vec![0u64; a.len()];
        let mut carries = vec![0u8; a.len()];
        for t in 0..a.len() {
            let (s, overflow) = a[t].overflowing_add(b[t]);
            sum[t] = s;
            carries[t] = u8::from(overflow);
        }
        let total = challenge.fingerprint(&a).wrapping_add(challenge.fingerprint(&b));
        assert_eq!(challenge.lifted_fingerprint(&sum, &carries), total);
        // The attacks of the module doc: the top bit of one coefficient, 2^34·2^k on another, a
        // wrong carry, and one party's mask sent as the sum.
        for (t, delta) in [(17usize, 1u64 << 63), (9_999, 1 << 40), (0, 1)] {
            let mut forged = sum.clone();
            forged[t] = forged[t].wrapping_add(delta);
            assert_ne!(challenge.lifted_fingerprint(&forged, &carries), total, "a change at {t} passed");
        }
        let mut wrong_carry = carries.clone();
        wrong_carry[5] ^= 1;
        assert_ne!(challenge.lifted_fingerprint(&sum, &wrong_carry), total);
        assert_ne!(challenge.lifted_fingerprint(&a, &vec![0; a.len()]), total);
        assert_ne!(Challenge::new([4; 32]).fingerprint(&a), challenge.fingerprint(&a));
        let bytes = total.to_bytes();
        assert_eq!(MaskFingerprint::from_bytes(&bytes), Some(total));
        assert_eq!(MaskFingerprint::from_bytes(&bytes[1..]), None);
    }
}
