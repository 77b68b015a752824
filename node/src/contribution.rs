//! What a hospital contributes to each kind of round: one vector of values, encoded by the codec
//! and encrypted, whose decrypted *sum* over the hospitals is all anyone learns.
//!
//! ```text
//! setup:    [train rows, test rows, per numeric feature: present, Σx, Σx²] -> exact totals
//!           (integers as 20-bit limbs; x and x² in fixed point with 8 fractional bits)
//! train:    [Δθ · n_k/N (params) | train_loss · n_k/N | evaluation tail] -> FedAvg mean update
//! evaluate: [evaluation tail]
//! evaluation tail: [test_loss · t_k/T | positives per score bin / T | negatives per score bin / T]
//! ```
//! `N` and `T` are the total training and test rows (public after setup). The histogram fractions
//! sum to exact global counts while `T · hospitals · 2^−(frac_bits+1) < 1/2` (about 100k test rows
//! for 10 hospitals), and to counts accurate to a fraction of a row beyond.

use anyhow::{Result, ensure};

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

/// Values in the setup vector for `numeric` features.
pub fn setup_len(numeric: usize) -> usize {
    2 * COUNT_LIMBS + PER_FEATURE * numeric
}

/// The setup vector: row counts and, per numeric feature, the exact fixed-point moments of the
/// training rows (see [`crate::ingest::Moments`]).
pub fn setup_vector(train_rows: usize, test_rows: usize, moments: &[crate::ingest::Moments]) -> Vec<f64> {
    let mut values = Vec::with_capacity(setup_len(moments.len()));
    push_limbs(&mut values, train_rows as u64, COUNT_LIMBS);
    push_limbs(&mut values, test_rows as u64, COUNT_LIMBS);
    for m in moments {
        push_limbs(&mut values, m.count, COUNT_LIMBS);
        push_limbs(&mut values, m.sum as u64, SUM_LIMBS);
        push_limbs(&mut values, m.squares as u64, SUM_LIMBS);
    }
    values
}

/// Decodes a summed setup vector: (total train rows, total test rows, per feature the pooled
/// moments) — exact.
pub fn decode_setup(values: &[f64], numeric: usize) -> Result<(u64, u64, Vec<crate::ingest::Moments>)> {
    ensure!(
        values.len() == setup_len(numeric),
        "setup vector of {} values, expected {}",
        values.len(),
        setup_len(numeric)
    );
    let (counts, features) = values.split_at(2 * COUNT_LIMBS);
    let moments = features
        .chunks_exact(PER_FEATURE)
        .map(|f| crate::ingest::Moments {
            count: from_limbs(&f[..COUNT_LIMBS]),
            sum: from_limbs(&f[COUNT_LIMBS..COUNT_LIMBS + SUM_LIMBS]) as i64,
            squares: from_limbs(&f[COUNT_LIMBS + SUM_LIMBS..]) as i64,
        })
        .collect();
    Ok((from_limbs(&counts[..COUNT_LIMBS]), from_limbs(&counts[COUNT_LIMBS..]), moments))
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
