//! DP-SGD's randomness: which patients a step samples, and the Gaussian noise it adds, both
//! functions of a secret key, the step and an index — never of the order they are drawn in.
//!
//! Constraints: the noise and the sampling must be unknown to everyone but the hospital (a party
//! that could replay them would subtract the noise and know who was sampled), the same bits for
//! the same key on the CPU (tests, determinism), and computable by the GPU trainer in WGSL, which
//! has 32-bit integers only, so that both trainers add the same noise to within float rounding.
//!
//! Solution: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", 2011),
//! the counter-based generator of cuRAND, JAX and PyTorch, keyed by 64 bits the hospital draws
//! from the operating system's CSPRNG for every round. The counter of a noise value is `(i / 4,
//! step, 0, 0)` (Box–Muller makes two normals of two words); the counter of a patient's
//! sampling draw is `(draw, step, 1, 0)` ([`sample_patients`]). A normal is `√(−2 ln u₁)·cos(π(2u₂ − 1))` (or `sin`) in
//! `f32`, `uᵢ = (x + ½)/2³²` ∈ (0, 1): its tails end at 6.7 standard deviations.
//!
//! Pros: any value is computed alone, on any device, in any order; the GPU needs no upload of
//! noise. Cons: Philox is not a cryptographic generator — the key is secret, but a party that
//! learned one value's exact bits could in principle search for it (Opacus's default mode has
//! the same exposure; its `secure_mode` draws from a CSPRNG instead); and a floating-point
//! Gaussian is not an exact one (Mironov 2012): the tails past 6.7σ are missing and the values
//! are rounded. Counts, whose noise must be exact, get integer noise elsewhere.

use alloc::vec::Vec;

/// A Philox key: 64 secret bits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NoiseKey(pub [u32; 2]);

impl core::fmt::Debug for NoiseKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("NoiseKey(..)")
    }
}

impl NoiseKey {
    /// The key of 64 bits (from a CSPRNG in production, fixed in tests).
    pub fn from_u64(bits: u64) -> Self {
        Self([bits as u32, (bits >> 32) as u32])
    }
}

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// The high and low halves of `a · b`.
fn mul_hi_lo(a: u32, b: u32) -> (u32, u32) {
    let product = u64::from(a) * u64::from(b);
    ((product >> 32) as u32, product as u32)
}

/// Philox4x32 with 10 rounds: four random words of `counter` under `key`.
pub fn philox(counter: [u32; 4], key: NoiseKey) -> [u32; 4] {
    let [mut k0, mut k1] = key.0;
    let mut c = counter;
    for _ in 0..10 {
        let (hi0, lo0) = mul_hi_lo(M0, c[0]);
        let (hi1, lo1) = mul_hi_lo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0];
        k0 = k0.wrapping_add(W0);
        k1 = k1.wrapping_add(W1);
    }
    c
}

/// A word as a uniform number in (0, 1).
fn open_unit(word: u32) -> f32 {
    (word as f32 + 0.5) * (1.0 / 4_294_967_296.0)
}

/// Two standard normals of two words (Box–Muller: the cosine's and the sine's).
fn box_muller(u1: u32, u2: u32) -> [f32; 2] {
    let radius = libm::sqrtf(-2.0 * libm::logf(open_unit(u1)));
    // In (−π, π): the range where WGSL bounds `cos` and `sin`'s error, for the GPU's copy.
    let angle = core::f32::consts::PI * (2.0 * open_unit(u2) - 1.0);
    [radius * libm::cosf(angle), radius * libm::sinf(angle)]
}

/// The noise stream's standard normal number `index` of `step`: numbers `4k` to `4k + 3` come
/// from the four words of the counter `(k, step, 0, 0)`, two Box–Muller pairs.
pub fn standard_normal(key: NoiseKey, step: u32, index: u32) -> f32 {
    let words = philox([index / 4, step, 0, 0], key);
    let pair = if index % 4 < 2 { box_muller(words[0], words[1]) } else { box_muller(words[2], words[3]) };
    pair[(index % 2) as usize]
}

/// Adds `scale` times the noise stream's normals `0..values.len()` of `step` to `values`
/// (the same numbers as [`standard_normal`], four to a counter).
pub fn add_noise(key: NoiseKey, step: u32, scale: f32, values: &mut [f32]) {
    for (block, chunk) in values.chunks_mut(4).enumerate() {
        let words = philox([block as u32, step, 0, 0], key);
        let [a, b] = box_muller(words[0], words[1]);
        let [c, d] = box_muller(words[2], words[3]);
        for (value, normal) in chunk.iter_mut().zip([a, b, c, d]) {
            *value += scale * normal;
        }
    }
}

/// The patients (of `0..patients`) that `step` samples, each independently with probability
/// `sampling_rate` (in [0, 1]), in increasing order, written to `sampled`.
///
/// Poisson sampling by its gaps: the number of patients skipped before the next sampled one is
/// geometric, `⌊ln u / ln(1 − q)⌋` for `u` uniform in (0, 1] (53 bits from the counter `(draw,
/// step, 1, 0)`), so a step costs about `q·patients` draws rather than one per patient.
pub fn sample_patients(key: NoiseKey, step: u32, patients: u32, sampling_rate: f64, sampled: &mut Vec<u32>) {
    sampled.clear();
    if sampling_rate >= 1.0 {
        sampled.extend(0..patients);
        return;
    }
    if sampling_rate <= 0.0 {
        return;
    }
    let log_keep = libm::log1p(-sampling_rate);
    let mut position = -1.0f64;
    for draw in 0u32.. {
        let words = philox([draw, step, 1, 0], key);
        let bits = (u64::from(words[0]) << 21) ^ u64::from(words[1] >> 11);
        let unit = (bits as f64 + 1.0) * (1.0 / 9_007_199_254_740_992.0);
        position += 1.0 + libm::floor(libm::log(unit) / log_keep);
        if position >= f64::from(patients) {
            break;
        }
        sampled.push(position as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn philox_gives_random123s_known_answers() {
        // Random123's kat_vectors for philox4x32_10.
        assert_eq!(philox([0; 4], NoiseKey([0; 2])), [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8]);
        assert_eq!(
            philox([u32::MAX; 4], NoiseKey([u32::MAX; 2])),
            [0x408f_276d, 0x41c8_3b0e, 0xa20b_c7c6, 0x6d54_51fd]
        );
        assert_eq!(
            philox([0x243f_6a88, 0x85a3_08d3, 0x1319_8a2e, 0x0370_7344], NoiseKey([0xa409_3822, 0x299f_31d0])),
            [0xd16c_fe09, 0x94fd_cceb, 0x5001_e420, 0x2412_6ea1]
        );
    }

    #[test]
    fn the_noise_is_standard_normal_and_fixed_by_its_key() {
        let key = NoiseKey::from_u64(0x5eed);
        let n = 200_000u32;
        let values: alloc::vec::Vec<f64> = (0..n).map(|i| f64::from(standard_normal(key, 3, i))).collect();
        let mean = values.iter().sum::<f64>() / f64::from(n);
        let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / f64::from(n - 1);
        // 5 standard errors: mean ± 5/√n, variance ± 5·√(2/n).
        assert!(mean.abs() < 5.0 / f64::from(n).sqrt(), "mean {mean}");
        assert!((variance - 1.0).abs() < 5.0 * (2.0 / f64::from(n)).sqrt(), "variance {variance}");
        let beyond_two = values.iter().filter(|v| v.abs() > 2.0).count() as f64 / f64::from(n);
        assert!((beyond_two - 0.0455).abs() < 0.003, "P(|z| > 2) = {beyond_two}");
        assert_eq!(standard_normal(key, 3, 17), standard_normal(key, 3, 17));
        assert_ne!(standard_normal(key, 3, 17), standard_normal(NoiseKey::from_u64(0x5eee), 3, 17));
        assert_ne!(standard_normal(key, 3, 17), standard_normal(key, 4, 17));
        // Added in blocks of four, the same numbers.
        let mut added = alloc::vec![1.0f32; 10];
        add_noise(key, 3, 0.5, &mut added);
        for (i, value) in added.iter().enumerate() {
            assert_eq!(*value, 1.0 + 0.5 * standard_normal(key, 3, i as u32), "{i}");
        }
    }

    #[test]
    fn sampling_takes_each_patient_with_the_rate_independently() {
        let key = NoiseKey::from_u64(9);
        let (patients, steps, q) = (5_000u32, 400u32, 0.02);
        let mut taken = alloc::vec![0u32; patients as usize];
        let mut sampled = Vec::new();
        let mut total = 0usize;
        for step in 0..steps {
            sample_patients(key, step, patients, q, &mut sampled);
            assert!(sampled.windows(2).all(|w| w[0] < w[1]), "increasing, no repeats");
            total += sampled.len();
            sampled.iter().for_each(|&p| taken[p as usize] += 1);
        }
        // Binomial(2,000,000, 0.02): mean 40,000, sd 198.
        assert!((total as f64 - 40_000.0).abs() < 5.0 * 198.0, "{total}");
        // The first and the last thousand patients are taken alike (each Binomial(400, 0.02)).
        let first: u32 = taken[..1000].iter().sum();
        let last: u32 = taken[4000..].iter().sum();
        assert!((f64::from(first) - f64::from(last)).abs() < 5.0 * (2.0 * 8000.0f64).sqrt(), "{first} {last}");
        // One step's draws: a patient taken is as likely next to another as anywhere (no gaps of
        // zero forced or forbidden).
        let adjacent = (0..steps)
            .map(|step| {
                sample_patients(key, step, patients, q, &mut sampled);
                sampled.windows(2).filter(|w| w[1] == w[0] + 1).count()
            })
            .sum::<usize>() as f64;
        assert!((adjacent / total as f64 - q).abs() < 0.005, "{}", adjacent / total as f64);
        sample_patients(key, 5, 1000, 1.0, &mut sampled);
        assert_eq!(sampled.len(), 1000);
        sample_patients(key, 5, 1000, 0.0, &mut sampled);
        assert!(sampled.is_empty());
        let mut again = Vec::new();
        sample_patients(key, 7, patients, q, &mut sampled);
        sample_patients(key, 7, patients, q, &mut again);
        assert_eq!(sampled, again);
    }
}
