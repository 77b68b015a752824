//! Metrics of a binary classifier from a histogram of its scores: positives and negatives per
//! equal-width probability bin. This is what the secure evaluation decrypts (the sum of every
//! hospital's histogram), so every figure here comes with a bound on how far the binning can move
//! it from the exact metric of [`crate::metrics`].
//!
//! Rows in one bin are one tie group: AUROC counts a positive and a negative sharing a bin as one
//! half (exactly [`crate::metrics::auroc`] when every row has its own bin), AUPRC groups them as
//! [`crate::metrics::auprc`] groups equal scores.

use alloc::vec;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::loss::sigmoid;
use crate::metrics::{CalibrationBin, auroc_of_groups, average_precision_of_groups, calibration_of_groups};

/// The bin of a probability among `bins` equal-width bins over `[0, 1]` (`bins` ≥ 1).
pub fn score_bin(probability: f32, bins: usize) -> usize {
    ((f64::from(probability) * bins as f64) as usize).min(bins.saturating_sub(1))
}

/// Positives and negatives per equal-width probability bin, lowest bin first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreHistogram {
    /// Positive rows per bin.
    pub positives: Vec<u64>,
    /// Negative rows per bin (as many bins as `positives`).
    pub negatives: Vec<u64>,
}

impl ScoreHistogram {
    /// An empty histogram of `bins` bins.
    pub fn new(bins: usize) -> Self {
        Self { positives: vec![0; bins], negatives: vec![0; bins] }
    }

    /// The probabilities of `logits` binned by label (`bins` ≥ 1; labels are 0 or 1, extra
    /// logits or labels are ignored).
    pub fn of_logits(logits: &[f32], labels: &[f32], bins: usize) -> Self {
        let mut histogram = Self::new(bins.max(1));
        for (&z, &y) in logits.iter().zip(labels) {
            histogram.add(z, y);
        }
        histogram
    }

    /// Counts one row of logit `z` and label `y` (1: positive) in its bin.
    pub fn add(&mut self, z: f32, y: f32) {
        let bin = score_bin(sigmoid(z), self.bins().max(1));
        let counts = if y == 1.0 { &mut self.positives } else { &mut self.negatives };
        if let Some(count) = counts.get_mut(bin) {
            *count += 1;
        }
    }

    /// Adds `other`'s counts bin by bin (bins past the shorter histogram's are ignored).
    pub fn merge(&mut self, other: &ScoreHistogram) {
        for (mine, theirs) in self.positives.iter_mut().zip(&other.positives) {
            *mine += theirs;
        }
        for (mine, theirs) in self.negatives.iter_mut().zip(&other.negatives) {
            *mine += theirs;
        }
    }

    /// Number of bins.
    pub fn bins(&self) -> usize {
        self.positives.len()
    }

    /// Total positives and negatives.
    pub fn class_totals(&self) -> (u64, u64) {
        (self.positives.iter().sum(), self.negatives.iter().sum())
    }

    fn groups(&self) -> impl DoubleEndedIterator<Item = (u64, u64)> + '_ {
        self.positives.iter().copied().zip(self.negatives.iter().copied())
    }

    /// AUROC of the binned scores (rows in one bin count as ties), `None` without both classes.
    pub fn auroc(&self) -> Option<f64> {
        let (positives, negatives) = self.class_totals();
        (positives > 0 && negatives > 0).then(|| auroc_of_groups(self.groups(), positives, negatives))
    }

    /// How far [`Self::auroc`] can be from the exact AUROC of the unbinned scores: the pairs
    /// sharing a bin, each of which the binned AUROC counts one half, are at most one half off.
    pub fn auroc_binning_bound(&self) -> f64 {
        let (positives, negatives) = self.class_totals();
        if positives == 0 || negatives == 0 {
            return 0.0;
        }
        let ties: f64 = self.groups().map(|(p, n)| p as f64 * n as f64).sum();
        0.5 * ties / (positives as f64 * negatives as f64)
    }

    /// AUPRC as average precision over the bin thresholds, highest first; `None` without both
    /// classes. It differs from the exact average precision of the unbinned scores by at most
    /// [`Self::auprc_binning_bound`].
    pub fn auprc(&self) -> Option<f64> {
        let (positives, negatives) = self.class_totals();
        (positives > 0 && negatives > 0).then(|| average_precision_of_groups(self.groups().rev(), positives))
    }

    /// How far [`Self::auprc`] can be from the exact average precision of the unbinned scores.
    ///
    /// A positive in bin `b`, with `tp`/`fp` rows in the bins above, is credited the precision
    /// `(tp + p_b) / (tp + p_b + fp + n_b)`; unbinned, its precision is
    /// `(tp + i) / (tp + i + fp + j)` for some `1 ≤ i ≤ p_b`, `0 ≤ j ≤ n_b`, which lies between
    /// `(tp + 1) / (tp + 1 + fp + n_b)` and `(tp + p_b) / (tp + p_b + fp)`. The bound sums that
    /// spread over the positives, each weighted `1 / P`.
    pub fn auprc_binning_bound(&self) -> f64 {
        let (positives, _) = self.class_totals();
        if positives == 0 {
            return 0.0;
        }
        let (mut tp, mut fp, mut bound) = (0u64, 0u64, 0.0f64);
        for (p, n) in self.groups().rev() {
            if p > 0 {
                let high = (tp + p) as f64 / (tp + p + fp) as f64;
                let low = (tp + 1) as f64 / (tp + 1 + fp + n) as f64;
                bound += (p as f64 / positives as f64) * (high - low);
            }
            tp += p;
            fp += n;
        }
        bound
    }

    /// A reliability table of `groups` equal-width probability bins, made by merging the score
    /// bins: each score bin goes to the group holding its midpoint, and its rows count as
    /// predicting that midpoint. So every count is exact for the merged bins, each row's
    /// predicted probability is off by at most half a score bin (`1 / (2 · bins)`), and a group's
    /// edges are those of its score bins (within one score bin of `k / groups`). Empty groups
    /// have a mean prediction and observed rate of 0. An empty table if `groups` is 0.
    pub fn calibration(&self, groups: usize) -> Vec<CalibrationBin> {
        let bins = self.bins();
        let merged = self.groups().enumerate().map(|(i, (p, n))| ((i as f64 + 0.5) / bins as f64, p + n, p));
        calibration_of_groups(merged, groups)
    }

    /// The ROC curve, `[false positive rate, true positive rate]` from `[0, 0]` to `[1, 1]`, with
    /// one point per bin threshold thinned to at most `max_points` (at least 3): a point is kept
    /// once the curve has moved at least `2 / (max_points − 2)` (in FPR + TPR) since the last
    /// kept one, so the thinned curve stays within that distance of the full one. Empty without
    /// both classes.
    pub fn roc_curve(&self, max_points: usize) -> Vec<[f64; 2]> {
        let (positives, negatives) = self.class_totals();
        if positives == 0 || negatives == 0 {
            return Vec::new();
        }
        let step = 2.0 / (max_points.max(3) - 2) as f64;
        let mut curve = vec![[0.0, 0.0]];
        let (mut tp, mut fp) = (0u64, 0u64);
        for (p, n) in self.groups().rev() {
            tp += p;
            fp += n;
            let point = [fp as f64 / negatives as f64, tp as f64 / positives as f64];
            let last = curve[curve.len() - 1];
            if (point[0] - last[0]) + (point[1] - last[1]) >= step {
                curve.push(point);
            }
        }
        if curve[curve.len() - 1] != [1.0, 1.0] {
            curve.push([1.0, 1.0]);
        }
        curve
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{auprc, auroc, calibration_bins};

    #[test]
    fn binned_metrics_match_the_exact_ones_when_scores_fall_in_distinct_bins() {
        let logits = [-3.0f32, -1.0, 0.2, 1.5, 2.5, -2.0];
        let labels = [0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let histogram = ScoreHistogram::of_logits(&logits, &labels, 64);
        assert_eq!(histogram.class_totals(), (4, 2));
        assert!((histogram.auroc().unwrap() - auroc(&logits, &labels).unwrap()).abs() < 1e-12);
        assert!((histogram.auprc().unwrap() - auprc(&logits, &labels).unwrap()).abs() < 1e-12);
        assert!(histogram.auprc_binning_bound() < 1e-12, "one row per bin: no binning error");
        assert_eq!(histogram.auroc_binning_bound(), 0.0);
    }

    /// Logits spread like a real model's and labels drawn from them (splitmix64, fixed seed).
    fn scored_rows(rows: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
        let mut state = seed;
        let mut uniform = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut logits, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..rows {
            let z = (uniform() * 6.0 - 4.0) as f32;
            let y = if uniform() < f64::from(sigmoid(1.5 * z)) { 1.0 } else { 0.0 };
            logits.push(z);
            labels.push(y);
        }
        (logits, labels)
    }

    #[test]
    fn binned_auroc_and_auprc_are_within_their_bounds_of_the_exact_ones() {
        for (rows, bins, seed) in [(5000, 1024, 1), (20_000, 1024, 2), (3000, 64, 3), (500, 8, 4)] {
            let (logits, labels) = scored_rows(rows, seed);
            let histogram = ScoreHistogram::of_logits(&logits, &labels, bins);
            let exact = auprc(&logits, &labels).unwrap();
            let (binned, bound) = (histogram.auprc().unwrap(), histogram.auprc_binning_bound());
            assert!(
                (binned - exact).abs() <= bound + 1e-12,
                "{rows} rows, {bins} bins: AUPRC {binned} vs {exact}, bound {bound}"
            );
            let exact = auroc(&logits, &labels).unwrap();
            let (binned, bound) = (histogram.auroc().unwrap(), histogram.auroc_binning_bound());
            assert!(
                (binned - exact).abs() <= bound + 1e-12,
                "{rows} rows, {bins} bins: AUROC {binned} vs {exact}, bound {bound}"
            );
            if bins == 1024 {
                assert!(histogram.auprc_binning_bound() < 0.01, "{rows} rows: a bound of {bound} says little");
            }
        }
        let single_class = ScoreHistogram::of_logits(&[0.5, 1.0], &[0.0, 0.0], 16);
        assert_eq!((single_class.auprc(), single_class.auroc()), (None, None));
        assert!(single_class.roc_curve(101).is_empty());
    }

    #[test]
    fn merged_calibration_keeps_every_count_and_matches_the_exact_table() {
        let (logits, labels) = scored_rows(10_000, 5);
        // 1,000 score bins merge exactly into 10 groups: counts and rates equal the exact table,
        // mean predictions are within half a score bin.
        let histogram = ScoreHistogram::of_logits(&logits, &labels, 1000);
        let probabilities: Vec<f32> = logits.iter().map(|&z| sigmoid(z)).collect();
        let exact = calibration_bins(&probabilities, &labels, 10).unwrap();
        let merged = histogram.calibration(10);
        assert_eq!(merged.len(), 10);
        for (m, e) in merged.iter().zip(&exact) {
            assert_eq!((m.lower, m.upper, m.count), (e.lower, e.upper, e.count));
            assert!((m.observed_rate - e.observed_rate).abs() < 1e-12, "{m:?} vs {e:?}");
            assert!((m.mean_predicted - e.mean_predicted).abs() <= 0.5 / 1000.0 + 1e-9, "{m:?} vs {e:?}");
        }
        // 1,024 bins do not align with tenths; the totals still add up exactly.
        let histogram = ScoreHistogram::of_logits(&logits, &labels, 1024);
        let merged = histogram.calibration(10);
        let positives = labels.iter().filter(|&&y| y == 1.0).count() as f64;
        assert_eq!(merged.iter().map(|b| b.count).sum::<u64>(), 10_000);
        let merged_positives: f64 = merged.iter().map(|b| b.observed_rate * b.count as f64).sum();
        assert!((merged_positives - positives).abs() < 1e-6, "{merged_positives} vs {positives}");
        assert!(histogram.calibration(0).is_empty());
    }

    fn trapezoid(curve: &[[f64; 2]]) -> f64 {
        curve.windows(2).map(|w| (w[1][0] - w[0][0]) * (w[1][1] + w[0][1]) / 2.0).sum()
    }

    #[test]
    fn roc_curve_is_monotone_bounded_in_size_and_has_the_binned_auroc_as_area() {
        let (logits, labels) = scored_rows(20_000, 6);
        let histogram = ScoreHistogram::of_logits(&logits, &labels, 1024);
        let auroc = histogram.auroc().unwrap();
        let full = histogram.roc_curve(usize::MAX);
        assert!((trapezoid(&full) - auroc).abs() < 1e-9, "area {} vs AUROC {auroc}", trapezoid(&full));
        for max_points in [3, 11, 101] {
            let curve = histogram.roc_curve(max_points);
            assert!(curve.len() <= max_points && curve.len() >= 2, "{} points for {max_points}", curve.len());
            assert_eq!((curve[0], curve[curve.len() - 1]), ([0.0, 0.0], [1.0, 1.0]));
            assert!(curve.windows(2).all(|w| w[1][0] >= w[0][0] && w[1][1] >= w[0][1]));
            let step = 2.0 / (max_points - 2) as f64;
            assert!((trapezoid(&curve) - auroc).abs() <= step, "{max_points} points: area {}", trapezoid(&curve));
        }
    }
}
