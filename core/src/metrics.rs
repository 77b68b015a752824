//! Evaluation metrics for a binary classifier: AUROC, AUPRC, log loss, Brier score, accuracy at
//! a threshold and calibration bins.
//!
//! Ranking metrics take any scores (logits or probabilities) and treat tied scores as one
//! threshold: AUROC counts a tied positive/negative pair as one half (the Mann–Whitney
//! statistic), AUPRC is average precision with ties grouped (as scikit-learn computes it).
//! Probability metrics take probabilities in `[0, 1]`. All sums are in `f64`. The same metrics
//! over binned scores (what the secure evaluation decrypts) are in [`crate::histogram`].

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::loss::{sigmoid, softplus};
use crate::{Error, Result};

/// Smallest probability `log_loss` takes the logarithm of (larger ones are clamped to it).
pub const LOG_LOSS_EPS: f64 = 1e-7;

fn check_inputs(scores: &[f32], labels: &[f32]) -> Result<(usize, usize)> {
    if scores.len() != labels.len() {
        return Err(Error::LabelCount { expected: scores.len(), got: labels.len() });
    }
    if let Some(index) = scores.iter().position(|s| s.is_nan()) {
        return Err(Error::NonFiniteScore { index });
    }
    if let Some(row) = labels.iter().position(|&y| y != 0.0 && y != 1.0) {
        return Err(Error::InvalidLabel { row, value: labels[row] });
    }
    let positives = labels.iter().filter(|&&y| y == 1.0).count();
    Ok((positives, labels.len() - positives))
}

/// Rows sorted by descending score, split into groups of equal score: `(positives, negatives)`
/// per group, highest score first.
fn tie_groups(scores: &[f32], labels: &[f32]) -> Vec<(u64, u64)> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_unstable_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut groups: Vec<(u64, u64)> = Vec::new();
    let mut previous: Option<f32> = None;
    for i in order {
        // -0.0 and 0.0 are the same threshold.
        if previous != Some(scores[i]) {
            groups.push((0, 0));
            previous = Some(scores[i]);
        }
        if let Some(group) = groups.last_mut() {
            if labels[i] == 1.0 { group.0 += 1 } else { group.1 += 1 }
        }
    }
    groups
}

fn require_both_classes(positives: usize, negatives: usize) -> Result<()> {
    if positives == 0 || negatives == 0 {
        return Err(Error::SingleClass { positives, negatives });
    }
    Ok(())
}

/// Area under the ROC curve; ties count one half.
pub fn auroc(scores: &[f32], labels: &[f32]) -> Result<f64> {
    let (positives, negatives) = check_inputs(scores, labels)?;
    require_both_classes(positives, negatives)?;
    Ok(auroc_of_groups(tie_groups(scores, labels).into_iter().rev(), positives as u64, negatives as u64))
}

/// AUROC of tie groups `(positives, negatives)` given from the lowest score up (the Mann–Whitney
/// statistic: a positive beats the negatives below it and ties those in its group by one half).
/// Shared by the exact metric and the histogram form ([`crate::histogram`]).
pub(crate) fn auroc_of_groups(groups: impl Iterator<Item = (u64, u64)>, positives: u64, negatives: u64) -> f64 {
    let mut negatives_below = 0u64;
    let mut twice_wins = 0u128;
    for (p, n) in groups {
        twice_wins += u128::from(p) * u128::from(2 * negatives_below + n);
        negatives_below += n;
    }
    twice_wins as f64 / (2.0 * positives as f64 * negatives as f64)
}

/// Area under the precision–recall curve, as average precision: `Σ (R_k − R_{k−1}) · P_k` over
/// distinct score thresholds, highest first.
pub fn auprc(scores: &[f32], labels: &[f32]) -> Result<f64> {
    let (positives, negatives) = check_inputs(scores, labels)?;
    require_both_classes(positives, negatives)?;
    Ok(average_precision_of_groups(tie_groups(scores, labels).into_iter(), positives as u64))
}

/// Average precision of tie groups `(positives, negatives)` given from the highest score down.
/// Shared by the exact metric and the histogram form ([`crate::histogram`]).
pub(crate) fn average_precision_of_groups(groups: impl Iterator<Item = (u64, u64)>, positives: u64) -> f64 {
    let (mut tp, mut fp, mut area) = (0u64, 0u64, 0.0f64);
    for (p, n) in groups {
        tp += p;
        fp += n;
        if p > 0 {
            area += (p as f64 / positives as f64) * (tp as f64 / (tp + fp) as f64);
        }
    }
    area
}

fn check_probabilities(probabilities: &[f32], labels: &[f32]) -> Result<()> {
    check_inputs(probabilities, labels)?;
    if let Some(index) = probabilities.iter().position(|p| !(0.0..=1.0).contains(p)) {
        return Err(Error::ProbabilityOutOfRange { index, value: probabilities[index] });
    }
    if probabilities.is_empty() {
        return Err(Error::EmptyDataset);
    }
    Ok(())
}

/// Mean negative log-likelihood of the labels, probabilities clamped to
/// `[LOG_LOSS_EPS, 1 − LOG_LOSS_EPS]`.
pub fn log_loss(probabilities: &[f32], labels: &[f32]) -> Result<f64> {
    check_probabilities(probabilities, labels)?;
    let total: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let p = f64::from(p).clamp(LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS);
            -(if y == 1.0 { libm::log(p) } else { libm::log(1.0 - p) })
        })
        .sum();
    Ok(total / probabilities.len() as f64)
}

/// Mean squared error between probabilities and labels.
pub fn brier(probabilities: &[f32], labels: &[f32]) -> Result<f64> {
    check_probabilities(probabilities, labels)?;
    let total: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(&p, &y)| {
            let error = f64::from(p) - f64::from(y);
            error * error
        })
        .sum();
    Ok(total / probabilities.len() as f64)
}

/// Fraction of rows whose prediction `p >= threshold` equals the label.
pub fn accuracy(probabilities: &[f32], labels: &[f32], threshold: f32) -> Result<f64> {
    check_probabilities(probabilities, labels)?;
    let correct = probabilities.iter().zip(labels).filter(|&(&p, &y)| (p >= threshold) == (y == 1.0)).count();
    Ok(correct as f64 / probabilities.len() as f64)
}

/// One bin of a reliability (calibration) diagram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    /// Lower edge of the bin (inclusive).
    pub lower: f64,
    /// Upper edge of the bin (exclusive, except 1.0 for the last bin).
    pub upper: f64,
    /// Rows whose probability falls in the bin.
    pub count: u64,
    /// Mean predicted probability of those rows (0 when empty).
    pub mean_predicted: f64,
    /// Fraction of those rows that are positive (0 when empty).
    pub observed_rate: f64,
}

/// `bins` equal-width bins over `[0, 1]` with each bin's mean prediction and observed rate.
pub fn calibration_bins(probabilities: &[f32], labels: &[f32], bins: usize) -> Result<Vec<CalibrationBin>> {
    check_probabilities(probabilities, labels)?;
    if bins == 0 {
        return Err(Error::InvalidHyperparameter { name: "bins", value: 0.0 });
    }
    let rows = probabilities.iter().zip(labels).map(|(&p, &y)| (f64::from(p), 1, u64::from(y == 1.0)));
    Ok(calibration_of_groups(rows, bins))
}

/// The calibration table of `bins` equal-width bins from groups of rows that share a predicted
/// probability: `(probability, rows, positive rows)` each. A group goes to the bin holding its
/// probability. Empty bins have a mean prediction and observed rate of 0; `bins = 0` gives an
/// empty table. (Used for rows one by one and for the secure evaluation's histogram bins.)
pub fn calibration_of_groups(groups: impl IntoIterator<Item = (f64, u64, u64)>, bins: usize) -> Vec<CalibrationBin> {
    let mut sums = alloc::vec![(0u64, 0.0f64, 0u64); bins];
    for (probability, rows, positives) in groups {
        let Some(bin) = sums.get_mut(((probability * bins as f64) as usize).min(bins.saturating_sub(1))) else {
            continue;
        };
        bin.0 += rows;
        bin.1 += probability * rows as f64;
        bin.2 += positives;
    }
    sums.into_iter()
        .enumerate()
        .map(|(i, (count, predicted, positives))| {
            let per_row = |total: f64| if count == 0 { 0.0 } else { total / count as f64 };
            CalibrationBin {
                lower: i as f64 / bins as f64,
                upper: (i + 1) as f64 / bins as f64,
                count,
                mean_predicted: per_row(predicted),
                observed_rate: per_row(positives as f64),
            }
        })
        .collect()
}

/// Expected calibration error of calibration `bins`: the rows' mean of |predicted − observed|
/// over the bins, each weighted by its rows (0 for no rows).
pub fn expected_calibration_error(bins: &[CalibrationBin]) -> f64 {
    let rows: u64 = bins.iter().map(|b| b.count).sum();
    if rows == 0 {
        return 0.0;
    }
    bins.iter().map(|b| b.count as f64 * (b.mean_predicted - b.observed_rate).abs()).sum::<f64>() / rows as f64
}

/// Every metric of one scored data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Rows scored.
    pub rows: u64,
    /// Positive rows.
    pub positives: u64,
    /// AUROC (`None` when one class is absent).
    pub auroc: Option<f64>,
    /// AUPRC (`None` when one class is absent).
    pub auprc: Option<f64>,
    /// Mean log loss, computed from the logits (no clamping needed).
    pub log_loss: f64,
    /// Brier score.
    pub brier: f64,
    /// Accuracy at probability 0.5.
    pub accuracy: f64,
    /// Ten calibration bins.
    pub calibration: Vec<CalibrationBin>,
}

impl Evaluation {
    /// Number of calibration bins in an evaluation.
    pub const CALIBRATION_BINS: usize = 10;

    /// Evaluates logits against labels.
    pub fn from_logits(logits: &[f32], labels: &[f32]) -> Result<Self> {
        let (positives, negatives) = check_inputs(logits, labels)?;
        if logits.is_empty() {
            return Err(Error::EmptyDataset);
        }
        let probabilities: Vec<f32> = logits.iter().map(|&z| sigmoid(z)).collect();
        let ranked = positives > 0 && negatives > 0;
        let log_loss = logits
            .iter()
            .zip(labels)
            .map(|(&z, &y)| f64::from(if y == 1.0 { softplus(-z) } else { softplus(z) }))
            .sum::<f64>()
            / logits.len() as f64;
        Ok(Self {
            rows: logits.len() as u64,
            positives: positives as u64,
            auroc: if ranked { Some(auroc(logits, labels)?) } else { None },
            auprc: if ranked { Some(auprc(logits, labels)?) } else { None },
            log_loss,
            brier: brier(&probabilities, labels)?,
            accuracy: accuracy(&probabilities, labels, 0.5)?,
            calibration: calibration_bins(&probabilities, labels, Self::CALIBRATION_BINS)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_calibration_error_weighs_each_bin_by_its_rows() {
        let bin = |count, mean_predicted, observed_rate| CalibrationBin {
            lower: 0.0,
            upper: 1.0,
            count,
            mean_predicted,
            observed_rate,
        };
        let ece = expected_calibration_error(&[bin(10, 0.2, 0.1), bin(30, 0.5, 0.5), bin(0, 0.0, 0.0)]);
        assert!((ece - 0.025).abs() < 1e-12, "{ece}");
        assert_eq!(expected_calibration_error(&[]), 0.0);
    }

    #[test]
    fn auroc_of_a_hand_checked_set_with_ties() {
        // Positives score 0.9, 0.5, 0.5; negatives 0.5, 0.2, 0.1.
        // Pairs (3 × 3 = 9): 0.9 beats all 3; each 0.5 positive beats 2 and ties 1 -> 2.5 each.
        // AUROC = (3 + 2.5 + 2.5) / 9 = 8/9.
        let scores = [0.9, 0.5, 0.5, 0.5, 0.2, 0.1];
        let labels = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0];
        assert_eq!(auroc(&scores, &labels).unwrap(), 8.0 / 9.0);
        // All scores equal: every pair ties.
        assert_eq!(auroc(&[0.3; 4], &[1.0, 0.0, 1.0, 0.0]).unwrap(), 0.5);
        // Perfectly wrong ranking.
        assert_eq!(auroc(&[0.1, 0.9], &[1.0, 0.0]).unwrap(), 0.0);
    }

    #[test]
    fn auprc_of_a_hand_checked_set_with_ties() {
        // Thresholds: 0.9 -> tp 1 fp 0 (P=1, ΔR=1/3); 0.5 -> tp 3 fp 1 (P=3/4, ΔR=2/3).
        // AP = 1/3 · 1 + 2/3 · 3/4 = 5/6.
        let scores = [0.9, 0.5, 0.5, 0.5, 0.2, 0.1];
        let labels = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0];
        assert!((auprc(&scores, &labels).unwrap() - 5.0 / 6.0).abs() < 1e-15);
    }

    #[test]
    fn probability_metrics_of_a_hand_checked_set() {
        let p = [0.8, 0.4, 0.1, 0.6];
        let y = [1.0, 1.0, 0.0, 0.0];
        assert!((brier(&p, &y).unwrap() - (0.04 + 0.36 + 0.01 + 0.36) / 4.0).abs() < 1e-7);
        assert_eq!(accuracy(&p, &y, 0.5).unwrap(), 0.5);
        let expected = -(0.8f64.ln() + 0.4f64.ln() + 0.9f64.ln() + 0.4f64.ln()) / 4.0;
        assert!((log_loss(&p, &y).unwrap() - expected).abs() < 1e-7);
        let bins = calibration_bins(&p, &y, 2).unwrap();
        assert_eq!((bins[0].count, bins[1].count), (2, 2));
        assert!((bins[1].mean_predicted - 0.7).abs() < 1e-7 && bins[1].observed_rate == 0.5);
    }

    #[test]
    fn bad_metric_inputs_are_refused() {
        assert_eq!(auroc(&[0.1, 0.2], &[1.0, 1.0]), Err(Error::SingleClass { positives: 2, negatives: 0 }));
        assert_eq!(auroc(&[0.1, f32::NAN], &[1.0, 0.0]), Err(Error::NonFiniteScore { index: 1 }));
        assert_eq!(auroc(&[0.1], &[1.0, 0.0]), Err(Error::LabelCount { expected: 1, got: 2 }));
        assert_eq!(brier(&[1.5], &[1.0]), Err(Error::ProbabilityOutOfRange { index: 0, value: 1.5 }));
    }

    #[test]
    fn evaluation_from_logits_agrees_with_the_parts() {
        let logits = [2.0, -1.0, 0.5, -3.0, 0.0];
        let labels = [1.0, 0.0, 1.0, 0.0, 1.0];
        let eval = Evaluation::from_logits(&logits, &labels).unwrap();
        let p: Vec<f32> = logits.iter().map(|&z| sigmoid(z)).collect();
        assert_eq!(eval.auroc, Some(1.0));
        assert!((eval.log_loss - log_loss(&p, &labels).unwrap()).abs() < 1e-6);
        assert_eq!(eval.calibration.len(), Evaluation::CALIBRATION_BINS);
    }
}
