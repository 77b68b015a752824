//! Platt scaling of a model's scores: the calibrated probability is `σ(a·z + b)` of the model's
//! logit `z`, with `a` and `b` fitted to a [`ScoreHistogram`] of held-out rows — what the secure
//! evaluation decrypts — so a federation calibrates its model without any patient's score leaving
//! its hospital. A model trained with a class weight (`pos_weight`) over-predicts the positive
//! class by about that weight's odds; the fit takes that shift (and any spread) back out.
//!
//! The fit is Platt's (1999) with his targets `(N₊ + 1)/(N₊ + 2)` and `1/(N₋ + 2)` (a prior that
//! keeps a small or separable set from driving `a` to infinity), minimised by Newton's method with
//! step halving (Lin, Lin and Weng 2007), every bin's rows at the logit of its centre. It is
//! deterministic: every party that fits the same histogram gets the same bits.

use serde::{Deserialize, Serialize};

use crate::histogram::ScoreHistogram;

/// Most Newton steps of a fit.
const MAX_STEPS: usize = 100;

/// A Platt scaling: calibrated logit `a·z + b`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Platt {
    /// The logit's slope.
    pub a: f64,
    /// The offset.
    pub b: f64,
}

impl Platt {
    /// The calibrated logit of `logit`.
    pub fn apply(&self, logit: f32) -> f32 {
        (self.a * f64::from(logit) + self.b) as f32
    }

    /// Whether both figures are finite and the slope positive (a scaling keeps the scores'
    /// order).
    pub fn is_valid(&self) -> bool {
        self.a.is_finite() && self.b.is_finite() && self.a > 0.0
    }

    /// The scaling fitted to `histogram` (`None` without both classes, or when the fit does not
    /// give an order-keeping scaling).
    pub fn fit(histogram: &ScoreHistogram) -> Option<Self> {
        let (positives, negatives) = histogram.class_totals();
        if positives == 0 || negatives == 0 {
            return None;
        }
        let bins = histogram.bins();
        let high = (positives as f64 + 1.0) / (positives as f64 + 2.0);
        let low = 1.0 / (negatives as f64 + 2.0);
        // (logit of the bin's centre, rows, target) of every non-empty group.
        let mut groups = alloc::vec::Vec::with_capacity(2 * bins);
        for (i, (&pos, &neg)) in histogram.positives.iter().zip(&histogram.negatives).enumerate() {
            let centre = (i as f64 + 0.5) / bins as f64;
            let z = libm::log(centre / (1.0 - centre));
            if pos > 0 {
                groups.push((z, pos as f64, high));
            }
            if neg > 0 {
                groups.push((z, neg as f64, low));
            }
        }
        // The loss Σ rows · (softplus(s) − t·s) with s = a·z + b (cross-entropy up to a constant).
        let loss = |a: f64, b: f64| -> f64 {
            groups
                .iter()
                .map(|&(z, n, t)| {
                    let s = a * z + b;
                    n * (softplus(s) - t * s)
                })
                .sum()
        };
        let (mut a, mut b) = (1.0, 0.0);
        let mut current = loss(a, b);
        for _ in 0..MAX_STEPS {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-12, 0.0, 1e-12);
            for &(z, n, t) in &groups {
                let p = sigmoid(a * z + b);
                let d = n * (p - t);
                let w = n * p * (1.0 - p);
                ga += d * z;
                gb += d;
                haa += w * z * z;
                hab += w * z;
                hbb += w;
            }
            let det = haa * hbb - hab * hab;
            if det.is_nan() || det <= 0.0 || (ga.abs() < 1e-9 && gb.abs() < 1e-9) {
                break;
            }
            let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
            let mut step = 1.0;
            let improved = loop {
                let (na, nb) = (a - step * da, b - step * db);
                let next = loss(na, nb);
                if next <= current {
                    break Some((na, nb, next));
                }
                step /= 2.0;
                if step < 1e-10 {
                    break None;
                }
            };
            let Some((na, nb, next)) = improved else { break };
            let converged = current - next < 1e-12 * current.abs().max(1.0);
            (a, b, current) = (na, nb, next);
            if converged {
                break;
            }
        }
        let fitted = Self { a, b };
        fitted.is_valid().then_some(fitted)
    }
}

fn sigmoid(s: f64) -> f64 {
    if s >= 0.0 { 1.0 / (1.0 + libm::exp(-s)) } else { libm::exp(s) / (1.0 + libm::exp(s)) }
}

fn softplus(s: f64) -> f64 {
    if s > 0.0 { s + libm::log1p(libm::exp(-s)) } else { libm::log1p(libm::exp(s)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform numbers in [0, 1) (splitmix64), enough for a test's data.
    struct Uniform(u64);

    impl Uniform {
        fn next_f64(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn over_predicted_scores_are_brought_back_to_the_observed_rate() {
        // True log-odds u, rows positive with probability σ(u); the model reports u + ln 8 (a
        // class weight of 8), so its probabilities are far too high.
        let mut rng = Uniform(5);
        let (mut logits, mut labels) = (alloc::vec::Vec::new(), alloc::vec::Vec::new());
        for _ in 0..20_000 {
            let u = -2.5 + 2.0 * (rng.next_f64() - 0.5);
            labels.push(if rng.next_f64() < sigmoid(u) { 1.0 } else { 0.0 });
            logits.push((u + libm::log(8.0)) as f32);
        }
        let histogram = ScoreHistogram::of_logits(&logits, &labels, 1024);
        let platt = Platt::fit(&histogram).unwrap();
        assert!((platt.a - 1.0).abs() < 0.15 && (platt.b + libm::log(8.0)).abs() < 0.3, "{platt:?}");
        let ece = |f: &dyn Fn(f32) -> f32| {
            let probabilities: alloc::vec::Vec<f32> = logits.iter().map(|&z| crate::loss::sigmoid(f(z))).collect();
            let bins = crate::metrics::calibration_bins(&probabilities, &labels, 10).unwrap();
            crate::metrics::expected_calibration_error(&bins)
        };
        let (before, after) = (ece(&|z| z), ece(&|z| platt.apply(z)));
        assert!(before > 0.2 && after < 0.02, "ECE {before:.4} before, {after:.4} after");
        assert_eq!(Platt::fit(&histogram), Some(platt), "deterministic");
    }

    #[test]
    fn one_class_gives_no_scaling() {
        let histogram = ScoreHistogram::of_logits(&[0.5, 1.0], &[1.0, 1.0], 16);
        assert_eq!(Platt::fit(&histogram), None);
        assert!(!Platt { a: -1.0, b: 0.0 }.is_valid());
    }
}
