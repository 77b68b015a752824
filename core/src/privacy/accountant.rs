//! The privacy accountant of DP-SGD: the Rényi differential privacy (RDP) of the
//! Poisson-subsampled Gaussian mechanism, composed over every step of every round, converted to
//! (ε, δ).
//!
//! One step of DP-SGD samples each patient with probability `q`, clips each sampled patient's
//! gradient to norm `C` and adds Gaussian noise of standard deviation `σ·C`: the sampled Gaussian
//! mechanism of Mironov, Talwar and Zhang (2019, arXiv:1908.10530). Its RDP at order `α` is
//! `ln(A_α)/(α − 1)`, with `A_α` summed exactly for integer `α` (their eq. for the binomial
//! expansion) and by the series of their §3.3 for fractional `α`. RDP adds up over steps; the
//! conversion to (ε, δ) is Proposition 12 of Canonne, Kamath and Steinke (2020,
//! arXiv:2004.00010), minimised over the orders.
//!
//! The orders and the conversion are those of Google's `dp-accounting` (`RdpAccountant` with its
//! default orders, add-or-remove-one neighbours), so the two agree: `core/tests/privacy.rs`
//! checks this module against golden values that `dp-accounting` computed
//! (`core/tests/golden/make_rdp_golden.py` made them), within 1 %.
//!
//! Everything here is `f64` arithmetic through `libm`, deterministic on every machine.

/// The RDP orders of `dp-accounting`'s default: 1.1 to 10.9 by tenths, 11 to 63, and 128, 256,
/// 512 and 1024.
pub fn orders() -> impl Iterator<Item = f64> {
    (1..100).map(|x| 1.0 + f64::from(x) / 10.0).chain((11..64).map(f64::from)).chain([128.0, 256.0, 512.0, 1024.0])
}

/// Most terms of the fractional-order series before it is given up (that order is then left
/// out, as `dp-accounting` does).
const MAX_SERIES_TERMS: u32 = 1000;

/// `ln(e^x + e^y)` without overflow.
fn log_add(x: f64, y: f64) -> f64 {
    let (low, high) = if x < y { (x, y) } else { (y, x) };
    if low == f64::NEG_INFINITY {
        return high;
    }
    libm::log1p(libm::exp(low - high)) + high
}

/// `ln C(n, k)` through `ln Γ` (for fractional `n` too, as a magnitude).
fn log_comb(n: f64, k: f64) -> f64 {
    libm::lgamma(n + 1.0) - libm::lgamma(k + 1.0) - libm::lgamma(n - k + 1.0)
}

/// `ln(erfc(x))`, accurate where `erfc` underflows (an asymptotic series beyond x = 20).
fn log_erfc(x: f64) -> f64 {
    if x <= 20.0 {
        return libm::log(libm::erfc(x));
    }
    let x2 = x * x;
    -libm::log(core::f64::consts::PI) / 2.0 - libm::log(x) - x2 - 0.5 / x2 + 0.625 / (x2 * x2)
        - 37.0 / 24.0 / (x2 * x2 * x2)
        + 353.0 / 64.0 / (x2 * x2 * x2 * x2)
}

/// `ln(A_α)` for an integer order.
fn log_a_integer(q: f64, sigma: f64, alpha: u32) -> f64 {
    let log1mq = libm::log1p(-q);
    let alpha_f = f64::from(alpha);
    (0..=alpha).fold(f64::NEG_INFINITY, |log_a, i| {
        let i = f64::from(i);
        let log_coef = log_comb(alpha_f, i) + i * libm::log(q) + (alpha_f - i) * log1mq;
        log_add(log_a, log_coef + (i * i - i) / (2.0 * sigma * sigma))
    })
}

/// `ln(A_α)` for a fractional order (`+∞` when the series does not converge).
fn log_a_fractional(q: f64, sigma: f64, alpha: f64) -> f64 {
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let z0 = sigma * sigma * libm::log(1.0 / q - 1.0) + 0.5;
    let log1mq = libm::log1p(-q);
    let (mut last_s0, mut last_s1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let root2_sigma = core::f64::consts::SQRT_2 * sigma;
    for i in 0..MAX_SERIES_TERMS {
        let i = f64::from(i);
        let log_coef = log_comb(alpha, i);
        let j = alpha - i;
        let log_t0 = log_coef + i * libm::log(q) + j * log1mq;
        let log_t1 = log_coef + j * libm::log(q) + i * log1mq;
        let log_e0 = libm::log(0.5) + log_erfc((i - z0) / root2_sigma);
        let log_e1 = libm::log(0.5) + log_erfc((z0 - j) / root2_sigma);
        let log_s0 = log_t0 + (i * i - i) / (2.0 * sigma * sigma) + log_e0;
        let log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
        log_a0 = log_add(log_a0, log_s0);
        log_a1 = log_add(log_a1, log_s1);
        let total = log_add(log_a0, log_a1);
        if log_s0 < last_s0 && log_s1 < last_s1 && log_s0.max(log_s1) < total - 30.0 {
            return total;
        }
        last_s0 = log_s0;
        last_s1 = log_s1;
    }
    f64::INFINITY
}

/// The RDP of one step of the Poisson-subsampled Gaussian mechanism at order `alpha`
/// (`sampling_rate` q in [0, 1], `noise_multiplier` σ ≥ 0).
pub fn step_rdp(sampling_rate: f64, noise_multiplier: f64, alpha: f64) -> f64 {
    if sampling_rate == 0.0 {
        0.0
    } else if noise_multiplier == 0.0 || alpha.is_infinite() {
        f64::INFINITY
    } else if sampling_rate >= 1.0 {
        alpha / (2.0 * noise_multiplier * noise_multiplier)
    } else if libm::trunc(alpha) == alpha {
        // Orders are at most 1024: an exact u32.
        log_a_integer(sampling_rate, noise_multiplier, alpha as u32) / (alpha - 1.0)
    } else {
        log_a_fractional(sampling_rate, noise_multiplier, alpha) / (alpha - 1.0)
    }
}

/// The smallest ε of an RDP curve (`(order, rdp)` pairs) at `delta`, and its order.
pub fn epsilon_of_rdp(curve: impl IntoIterator<Item = (f64, f64)>, delta: f64) -> (f64, f64) {
    let mut best = (f64::INFINITY, 0.0);
    for (alpha, rdp) in curve {
        let epsilon = if rdp < 0.0 || delta * delta + libm::expm1(-rdp) > 0.0 {
            0.0
        } else if alpha > 1.01 {
            rdp + libm::log1p(-1.0 / alpha) - libm::log(delta * alpha) / (alpha - 1.0)
        } else {
            f64::INFINITY
        };
        if epsilon < best.0 {
            best = (epsilon, alpha);
        }
    }
    (best.0.max(0.0), best.1)
}

/// ε at `delta` of mechanisms of `rho`-zCDP in all (RDP `ρ·α` at every order `α`).
pub fn epsilon_of_zcdp(rho: f64, delta: f64) -> f64 {
    if rho == 0.0 {
        return 0.0;
    }
    epsilon_of_rdp(orders().map(|alpha| (alpha, rho * alpha)), delta).0
}

/// DP-SGD's settings as the accountant sees them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampledGaussian {
    /// The probability that a step samples a given patient.
    pub sampling_rate: f64,
    /// The noise's standard deviation over the clip norm.
    pub noise_multiplier: f64,
}

impl SampledGaussian {
    /// ε after `steps` steps, at `delta`.
    pub fn epsilon(&self, steps: u64, delta: f64) -> f64 {
        self.epsilon_with(steps, 0.0, delta)
    }

    /// ε after `steps` steps composed with mechanisms of `rho`-zCDP in all (the pooled
    /// statistics' discrete Gaussians: RDP `ρ·α` at every order `α`), at `delta`.
    pub fn epsilon_with(&self, steps: u64, rho: f64, delta: f64) -> f64 {
        if steps == 0 && rho == 0.0 {
            return 0.0;
        }
        let steps = steps as f64;
        let step =
            |alpha| if steps == 0.0 { 0.0 } else { steps * step_rdp(self.sampling_rate, self.noise_multiplier, alpha) };
        let curve = orders().map(|alpha| (alpha, step(alpha) + rho * alpha));
        epsilon_of_rdp(curve, delta).0
    }

    /// The smallest noise multiplier (to 0.1 %) with which `steps` steps at `sampling_rate`,
    /// composed with `rho`-zCDP of other mechanisms, stay within `target_epsilon` at `delta`;
    /// `None` when even a multiplier of 1000 does not (or the target is not above 0).
    pub fn noise_for(target_epsilon: f64, sampling_rate: f64, steps: u64, rho: f64, delta: f64) -> Option<f64> {
        let within = |sigma: f64| {
            Self { sampling_rate, noise_multiplier: sigma }.epsilon_with(steps, rho, delta) <= target_epsilon
        };
        let (mut low, mut high) = (0.01, 1000.0);
        if target_epsilon.is_nan() || target_epsilon <= 0.0 || !within(high) {
            return None;
        }
        if within(low) {
            return Some(low);
        }
        // ε falls as σ grows: bisect on a log scale.
        while high / low > 1.001 {
            let middle = libm::sqrt(low * high);
            if within(middle) { high = middle } else { low = middle }
        }
        Some(high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_dp_accountings() {
        let all: alloc::vec::Vec<f64> = orders().collect();
        assert_eq!(all.len(), 99 + 53 + 4);
        assert_eq!((all[0], all[8], all[98], all[99], all[151], all[155]), (1.1, 1.9, 10.9, 11.0, 63.0, 1024.0));
        assert_eq!(all.iter().filter(|a| a.fract() == 0.0).count(), 9 + 53 + 4);
    }

    #[test]
    fn without_sampling_the_gaussian_rdp_is_alpha_over_two_sigma_squared() {
        assert_eq!(step_rdp(1.0, 2.0, 3.0), 3.0 / 8.0);
        assert_eq!(step_rdp(0.0, 2.0, 3.0), 0.0);
        assert_eq!(step_rdp(0.5, 0.0, 3.0), f64::INFINITY);
        // The integer sum at q → 1 approaches the unsampled value.
        assert!((step_rdp(1.0 - 1e-9, 2.0, 3.0) - 3.0 / 8.0).abs() < 1e-6);
    }

    #[test]
    fn epsilon_grows_with_steps_and_falls_with_noise() {
        let at = |sigma, steps| SampledGaussian { sampling_rate: 0.01, noise_multiplier: sigma }.epsilon(steps, 1e-6);
        assert!(at(1.0, 100) < at(1.0, 1000) && at(1.0, 1000) < at(1.0, 10_000));
        assert!(at(0.8, 1000) > at(1.0, 1000) && at(1.0, 1000) > at(2.0, 1000));
        assert_eq!(at(1.0, 0), 0.0);
    }

    #[test]
    fn the_noise_for_a_target_meets_it_and_a_little_less_does_not() {
        let sigma = SampledGaussian::noise_for(3.0, 0.01, 2000, 0.0, 1e-6).unwrap();
        let at = |sigma| SampledGaussian { sampling_rate: 0.01, noise_multiplier: sigma }.epsilon(2000, 1e-6);
        assert!(at(sigma) <= 3.0);
        assert!(at(sigma / 1.01) > 3.0, "{sigma}");
        assert_eq!(SampledGaussian::noise_for(0.0, 0.01, 10, 0.0, 1e-6), None);
        assert_eq!(SampledGaussian::noise_for(1e-9, 1.0, 1_000_000, 0.0, 1e-12), None);
        // Other mechanisms' ρ leave less for DP-SGD: more noise for the same target.
        let composed = SampledGaussian::noise_for(3.0, 0.01, 2000, 0.01, 1e-6).unwrap();
        assert!(composed > sigma * 1.01, "{composed} against {sigma}");
        let with =
            |sigma| SampledGaussian { sampling_rate: 0.01, noise_multiplier: sigma }.epsilon_with(2000, 0.01, 1e-6);
        assert!(with(composed) <= 3.0 && with(composed / 1.01) > 3.0);
    }

    #[test]
    fn zcdp_alone_converts_like_a_gaussian_and_adds_to_the_steps() {
        let mechanism = SampledGaussian { sampling_rate: 0.01, noise_multiplier: 1.0 };
        // ρ-zCDP alone: the conversion of the curve ρ·α, about ρ + 2·sqrt(ρ·ln(1/δ)) and below it.
        let alone = mechanism.epsilon_with(0, 0.01, 1e-6);
        let classic = 0.01 + 2.0 * libm::sqrt(0.01 * libm::log(1e6));
        assert!(alone < classic && alone > 0.8 * classic, "{alone} against {classic}");
        // Composition costs more than either part and less than their sum.
        let steps = mechanism.epsilon(1000, 1e-6);
        let both = mechanism.epsilon_with(1000, 0.01, 1e-6);
        assert!(both > steps && both > alone && both < steps + alone, "{steps} + {alone} -> {both}");
        assert_eq!(mechanism.epsilon_with(0, 0.0, 1e-6), 0.0);
    }
}
