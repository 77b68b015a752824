//! What a hospital contributes to each kind of round: one vector of values, encoded by the codec
//! and encrypted, whose decrypted *sum* over the hospitals is all anyone learns.
//!
//! ```text
//! setup:    [train rows, test rows, per numeric feature: present, Σx, Σx²,
//!            per top_k column: rows per hash bucket] -> exact totals
//!           (integers as 20-bit limbs; x and x² in fixed point with 8 fractional bits)
//! train:    [Δθ · n_k/N (params) | train_loss · n_k/N | evaluation tail] -> FedAvg mean update
//! evaluate: [evaluation tail]
//! evaluation tail: [test_loss · t_k/T | positives per score bin / T | negatives per score bin / T]
//! ```
//! `N` and `T` are the total training and test rows (public after setup). The histogram fractions
//! sum to exact global counts while `T · hospitals · 2^−(frac_bits+1) < 1/2` (about 100k test rows
//! for 10 hospitals), and to counts accurate to a fraction of a row beyond. From the decoded
//! histograms [`GlobalEvaluation`] derives the AUROC and AUPRC (each with a binning error bound
//! computable from the histogram itself), a calibration table and a thinned ROC curve; the
//! aggregator writes them to `metrics.jsonl`.

use anyhow::{Result, ensure};
pub use fedcare_core::metrics::CalibrationBin;

use crate::top_k::TopKShape;

/// Bits of one limb: integers travel as limbs of 20 bits, each encoded as `limb / 2^20` (exact
/// in the codec, whose values carry 23-bit integers), so their sums decode exactly.
const LIMB_BITS: u32 = 20;
/// Limbs of a count (up to 2^40).
const COUNT_LIMBS: usize = 2;
/// Limbs of a signed 64-bit sum (two's complement; the limb sums recombine modulo 2^64).
const SUM_LIMBS: usize = 4;

fn push_limbs(values: &mut Vec<f64>, value: u64, limbs: usize) {
    let mask = (1u64 << LIMB_BITS) - 1;
    for i in 0..limbs {
        values.push(((value >> (LIMB_BITS * i as u32)) & mask) as f64 / f64::from(1u32 << LIMB_BITS));
    }
}

fn from_limbs(values: &[f64]) -> u64 {
    values.iter().enumerate().fold(0u64, |total, (i, &v)| {
        let limb_sum = (v * f64::from(1u32 << LIMB_BITS)).round() as i64 as u64;
        total.wrapping_add(limb_sum.wrapping_shl(LIMB_BITS * i as u32))
    })
}

/// Values per numeric feature in the setup vector.
const PER_FEATURE: usize = COUNT_LIMBS + 2 * SUM_LIMBS;

/// Values in the setup vector for `numeric` features and `top_k` columns of these shapes.
pub fn setup_len(numeric: usize, top_k: &[TopKShape]) -> usize {
    2 * COUNT_LIMBS
        + PER_FEATURE * numeric
        + COUNT_LIMBS * top_k.iter().map(|shape| shape.buckets as usize).sum::<usize>()
}

/// The setup vector: row counts, per numeric feature the exact fixed-point moments of the
/// training rows (see [`crate::ingest::Moments`]), and per `top_k` column the training rows in
/// each hash bucket (see [`crate::ingest::Table::bucket_counts`]).
pub fn setup_vector(
    train_rows: usize,
    test_rows: usize,
    moments: &[crate::ingest::Moments],
    bucket_counts: &[Vec<u64>],
) -> Vec<f64> {
    let buckets: usize = bucket_counts.iter().map(Vec::len).sum();
    let mut values = Vec::with_capacity(2 * COUNT_LIMBS + PER_FEATURE * moments.len() + COUNT_LIMBS * buckets);
    push_limbs(&mut values, train_rows as u64, COUNT_LIMBS);
    push_limbs(&mut values, test_rows as u64, COUNT_LIMBS);
    for m in moments {
        push_limbs(&mut values, m.count, COUNT_LIMBS);
        push_limbs(&mut values, m.sum as u64, SUM_LIMBS);
        push_limbs(&mut values, m.squares as u64, SUM_LIMBS);
    }
    for &count in bucket_counts.iter().flatten() {
        push_limbs(&mut values, count, COUNT_LIMBS);
    }
    values
}

/// The federation's totals decoded from the summed setup vectors (exact).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupTotals {
    /// Training rows of all hospitals.
    pub train_rows: u64,
    /// Held-out rows of all hospitals.
    pub test_rows: u64,
    /// Per numeric feature, the pooled moments.
    pub moments: Vec<crate::ingest::Moments>,
    /// Per `top_k` column, the pooled training rows in each hash bucket.
    pub bucket_counts: Vec<Vec<u64>>,
}

/// Decodes a summed setup vector for `numeric` features and `top_k` columns of these shapes.
pub fn decode_setup(values: &[f64], numeric: usize, top_k: &[TopKShape]) -> Result<SetupTotals> {
    ensure!(
        values.len() == setup_len(numeric, top_k),
        "setup vector of {} values, expected {}",
        values.len(),
        setup_len(numeric, top_k)
    );
    let (counts, rest) = values.split_at(2 * COUNT_LIMBS);
    let (features, mut buckets) = rest.split_at(PER_FEATURE * numeric);
    let moments = features
        .chunks_exact(PER_FEATURE)
        .map(|f| crate::ingest::Moments {
            count: from_limbs(&f[..COUNT_LIMBS]),
            sum: from_limbs(&f[COUNT_LIMBS..COUNT_LIMBS + SUM_LIMBS]) as i64,
            squares: from_limbs(&f[COUNT_LIMBS + SUM_LIMBS..]) as i64,
        })
        .collect();
    let mut bucket_counts = Vec::with_capacity(top_k.len());
    for shape in top_k {
        let (column, rest) = buckets.split_at(COUNT_LIMBS * shape.buckets as usize);
        bucket_counts.push(column.chunks_exact(COUNT_LIMBS).map(from_limbs).collect());
        buckets = rest;
    }
    Ok(SetupTotals {
        train_rows: from_limbs(&counts[..COUNT_LIMBS]),
        test_rows: from_limbs(&counts[COUNT_LIMBS..]),
        moments,
        bucket_counts,
    })
}

/// The score bin of a probability.
pub fn bin_of(probability: f32, bins: usize) -> usize {
    ((f64::from(probability) * bins as f64) as usize).min(bins - 1)
}

/// A hospital's evaluation of the global model on its held-out rows.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalEvaluation {
    /// Sum of per-row log losses.
    pub loss_sum: f64,
    /// Positives per score bin.
    pub positives: Vec<u64>,
    /// Negatives per score bin.
    pub negatives: Vec<u64>,
}

impl LocalEvaluation {
    /// Bins the probabilities of `logits` by label.
    pub fn new(logits: &[f32], labels: &[f32], bins: usize) -> Self {
        let mut positives = vec![0; bins];
        let mut negatives = vec![0; bins];
        let mut loss_sum = 0.0;
        for (&z, &y) in logits.iter().zip(labels) {
            let bin = bin_of(fedcare_core::loss::sigmoid(z), bins);
            if y == 1.0 {
                positives[bin] += 1;
            } else {
                negatives[bin] += 1;
            }
            loss_sum += f64::from(fedcare_core::loss::bce_with_logits(z, y, 1.0));
        }
        Self { loss_sum, positives, negatives }
    }

    /// The evaluation tail of the contribution vector.
    pub fn tail(&self, total_test_rows: u64) -> Vec<f64> {
        let t = total_test_rows.max(1) as f64;
        let mut out = vec![self.loss_sum / t];
        out.extend(self.positives.iter().map(|&c| c as f64 / t));
        out.extend(self.negatives.iter().map(|&c| c as f64 / t));
        out
    }
}

/// The global evaluation decoded from the summed tails.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalEvaluation {
    /// Mean log loss over all held-out rows.
    pub log_loss: f64,
    /// Positives per bin (rounded to whole rows).
    pub positives: Vec<u64>,
    /// Negatives per bin.
    pub negatives: Vec<u64>,
}

impl GlobalEvaluation {
    /// Decodes a summed evaluation tail.
    pub fn from_tail(tail: &[f64], bins: usize, total_test_rows: u64) -> Result<Self> {
        ensure!(tail.len() == 1 + 2 * bins, "evaluation tail has {} values, expected {}", tail.len(), 1 + 2 * bins);
        let t = total_test_rows as f64;
        let count = |v: f64| (v * t).round().max(0.0) as u64;
        Ok(Self {
            log_loss: tail[0],
            positives: tail[1..=bins].iter().map(|&v| count(v)).collect(),
            negatives: tail[1 + bins..].iter().map(|&v| count(v)).collect(),
        })
    }

    /// AUROC of the binned scores (rows in one bin count as ties), `None` without both classes.
    pub fn auroc(&self) -> Option<f64> {
        let positives: u64 = self.positives.iter().sum();
        let negatives: u64 = self.negatives.iter().sum();
        if positives == 0 || negatives == 0 {
            return None;
        }
        let mut below = 0u64;
        let mut twice = 0u128;
        for (&p, &n) in self.positives.iter().zip(&self.negatives) {
            twice += u128::from(p) * u128::from(2 * below + n);
            below += n;
        }
        Some(twice as f64 / (2.0 * positives as f64 * negatives as f64))
    }

    /// Total positives and negatives.
    fn class_totals(&self) -> (u64, u64) {
        (self.positives.iter().sum(), self.negatives.iter().sum())
    }

    /// AUPRC as average precision over the bin thresholds, highest first (rows in one bin form
    /// one tie group, as [`fedcare_core::metrics::auprc`] groups equal scores); `None` without
    /// both classes. It differs from the exact average precision of the unbinned scores by at
    /// most [`Self::auprc_binning_bound`].
    pub fn auprc(&self) -> Option<f64> {
        let (positives, negatives) = self.class_totals();
        if positives == 0 || negatives == 0 {
            return None;
        }
        let (mut tp, mut fp, mut area) = (0u64, 0u64, 0.0f64);
        for (&p, &n) in self.positives.iter().zip(&self.negatives).rev() {
            tp += p;
            fp += n;
            if p > 0 {
                area += (p as f64 / positives as f64) * (tp as f64 / (tp + fp) as f64);
            }
        }
        Some(area)
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
        for (&p, &n) in self.positives.iter().zip(&self.negatives).rev() {
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
        let bins = self.positives.len();
        let score_bins = self.positives.iter().zip(&self.negatives).enumerate();
        let merged = score_bins.map(|(i, (&p, &n))| ((i as f64 + 0.5) / bins as f64, p + n, p));
        fedcare_core::metrics::calibration_of_groups(merged, groups)
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
        for (&p, &n) in self.positives.iter().zip(&self.negatives).rev() {
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

    #[test]
    fn summed_setup_vectors_decode_to_the_exact_totals() {
        use crate::ingest::Moments;
        let shapes = [TopKShape { buckets: 3, k: 2 }, TopKShape { buckets: 2, k: 1 }];
        let a = setup_vector(
            10,
            3,
            &[Moments { count: 9, sum: -700, squares: 5 << 40 }],
            &[vec![4, 0, 6], vec![(1 << 33) + 5, 1]],
        );
        let b = setup_vector(
            7,
            2,
            &[Moments { count: 7, sum: 300, squares: 12 }],
            &[vec![1, 2, 0], vec![(1 << 21) - 1, 0]],
        );
        assert_eq!(a.len(), setup_len(1, &shapes));
        let sum: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        let totals = decode_setup(&sum, 1, &shapes).unwrap();
        assert_eq!((totals.train_rows, totals.test_rows), (17, 5));
        assert_eq!(totals.moments, [Moments { count: 16, sum: -400, squares: (5 << 40) + 12 }]);
        assert_eq!(totals.bucket_counts, [vec![5, 2, 6], vec![(1 << 33) + (1 << 21) + 4, 1]]);
        assert!(decode_setup(&sum, 1, &shapes[..1]).is_err());
    }

    #[test]
    fn binned_auroc_matches_the_exact_one_when_scores_fall_in_distinct_bins() {
        let logits = [-3.0f32, -1.0, 0.2, 1.5, 2.5, -2.0];
        let labels = [0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        let local = LocalEvaluation::new(&logits, &labels, 64);
        let tail = local.tail(6);
        let global = GlobalEvaluation::from_tail(&tail, 64, 6).unwrap();
        assert_eq!(global.positives.iter().sum::<u64>(), 4);
        let exact = fedcare_core::metrics::auroc(&logits, &labels).unwrap();
        assert!((global.auroc().unwrap() - exact).abs() < 1e-12);
        let exact = fedcare_core::metrics::auprc(&logits, &labels).unwrap();
        assert!((global.auprc().unwrap() - exact).abs() < 1e-12);
        assert!(global.auprc_binning_bound() < 1e-12, "one row per bin: no binning error");
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
            let y = if uniform() < f64::from(fedcare_core::loss::sigmoid(1.5 * z)) { 1.0 } else { 0.0 };
            logits.push(z);
            labels.push(y);
        }
        (logits, labels)
    }

    fn evaluate(logits: &[f32], labels: &[f32], bins: usize) -> GlobalEvaluation {
        let rows = logits.len() as u64;
        GlobalEvaluation::from_tail(&LocalEvaluation::new(logits, labels, bins).tail(rows), bins, rows).unwrap()
    }

    #[test]
    fn binned_auprc_is_within_its_bound_of_the_exact_one() {
        for (rows, bins, seed) in [(5000, 1024, 1), (20_000, 1024, 2), (3000, 64, 3), (500, 8, 4)] {
            let (logits, labels) = scored_rows(rows, seed);
            let global = evaluate(&logits, &labels, bins);
            let exact = fedcare_core::metrics::auprc(&logits, &labels).unwrap();
            let (binned, bound) = (global.auprc().unwrap(), global.auprc_binning_bound());
            assert!(
                (binned - exact).abs() <= bound + 1e-12,
                "{rows} rows, {bins} bins: {binned} vs {exact}, bound {bound}"
            );
            if bins == 1024 {
                assert!(bound < 0.01, "{rows} rows: a bound of {bound} says little");
            }
        }
        let single_class = evaluate(&[0.5, 1.0], &[0.0, 0.0], 16);
        assert_eq!((single_class.auprc(), single_class.auroc()), (None, None));
        assert!(single_class.roc_curve(101).is_empty());
    }

    #[test]
    fn merged_calibration_keeps_every_count_and_matches_the_exact_table() {
        let (logits, labels) = scored_rows(10_000, 5);
        // 1,000 score bins merge exactly into 10 groups: counts and rates equal the exact table,
        // mean predictions are within half a score bin.
        let global = evaluate(&logits, &labels, 1000);
        let probabilities: Vec<f32> = logits.iter().map(|&z| fedcare_core::loss::sigmoid(z)).collect();
        let exact = fedcare_core::metrics::calibration_bins(&probabilities, &labels, 10).unwrap();
        let merged = global.calibration(10);
        assert_eq!(merged.len(), 10);
        for (m, e) in merged.iter().zip(&exact) {
            assert_eq!((m.lower, m.upper, m.count), (e.lower, e.upper, e.count));
            assert!((m.observed_rate - e.observed_rate).abs() < 1e-12, "{m:?} vs {e:?}");
            assert!((m.mean_predicted - e.mean_predicted).abs() <= 0.5 / 1000.0 + 1e-9, "{m:?} vs {e:?}");
        }
        // 1,024 bins do not align with tenths; the totals still add up exactly.
        let global = evaluate(&logits, &labels, 1024);
        let merged = global.calibration(10);
        let positives = labels.iter().filter(|&&y| y == 1.0).count() as f64;
        assert_eq!(merged.iter().map(|b| b.count).sum::<u64>(), 10_000);
        let merged_positives: f64 = merged.iter().map(|b| b.observed_rate * b.count as f64).sum();
        assert!((merged_positives - positives).abs() < 1e-6, "{merged_positives} vs {positives}");
        assert!(global.calibration(0).is_empty());
    }

    fn trapezoid(curve: &[[f64; 2]]) -> f64 {
        curve.windows(2).map(|w| (w[1][0] - w[0][0]) * (w[1][1] + w[0][1]) / 2.0).sum()
    }

    #[test]
    fn roc_curve_is_monotone_bounded_in_size_and_has_the_binned_auroc_as_area() {
        let (logits, labels) = scored_rows(20_000, 6);
        let global = evaluate(&logits, &labels, 1024);
        let auroc = global.auroc().unwrap();
        let full = global.roc_curve(usize::MAX);
        assert!((trapezoid(&full) - auroc).abs() < 1e-9, "area {} vs AUROC {auroc}", trapezoid(&full));
        for max_points in [3, 11, 101] {
            let curve = global.roc_curve(max_points);
            assert!(curve.len() <= max_points && curve.len() >= 2, "{} points for {max_points}", curve.len());
            assert_eq!((curve[0], curve[curve.len() - 1]), ([0.0, 0.0], [1.0, 1.0]));
            assert!(curve.windows(2).all(|w| w[1][0] >= w[0][0] && w[1][1] >= w[0][1]));
            let step = 2.0 / (max_points - 2) as f64;
            assert!((trapezoid(&curve) - auroc).abs() <= step, "{max_points} points: area {}", trapezoid(&curve));
        }
    }
}
