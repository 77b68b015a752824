//! What a hospital contributes to each kind of session: one vector of values, encoded by the
//! codec and encrypted, whose decrypted *sum* over the hospitals is all anyone learns. The
//! layout is defined here once; the hospital builds its vector with [`ContributionLayout`] and the
//! aggregator decodes the sum with the same type.
//!
//! ```text
//! setup:    [train rows, test rows, per numeric feature: present, Σx, Σx²,
//!            per top_k column: rows per hash bucket] -> exact totals
//!           (integers as 20-bit limbs; x and x² in fixed point with 8 fractional bits; counts
//!           are 40-bit two's complement, so that a hospital's noisy count may be negative)
//! train:    [Δθ · n_k/N (params) | train_loss · n_k/N | evaluation tail (zeros under pooled
//!            noise: the rounds are not evaluated)] -> FedAvg mean update
//! evaluate: [evaluation tail | subgroup histograms of the last model | subgroup histograms of
//!            the model kept so far (zeros when there is none)]
//! explore:  [rows, positives, per column: missing, missing positives, rows per cell,
//!            positives per cell, and for a numeric column its present count, Σx, Σx²]
//!           -> exact totals (integers as 20-bit limbs, like setup)
//! evaluation tail: [test_loss · t_k/T | positives per score bin / T | negatives per score bin / T]
//!            (T: [`crate::FederationSettings::tail_scale`], the pooled held-out rows, with a
//!            margin under pooled noise)
//! subgroup histograms: per subgroup column, per cell (its cells, then its missing values):
//!            [positives per score bin / T | negatives per score bin / T], in
//!            min(bins, SUBGROUP_BINS) bins
//! ```
//! The final evaluation measures the subgroups of both models that may be handed out: the last
//! one, and the best one before it ([`crate::selection`] keeps whichever has the higher AUROC);
//! every party then reports the kept one's.
//! `N` and `T` are the total training and test rows (public after setup). The histogram fractions
//! sum to exact global counts while `T · hospitals · 2^−(frac_bits+1) < 1/2` (about 100k test rows
//! for 10 hospitals), and to counts accurate to a fraction of a row beyond. From the decoded
//! histograms [`fedcare_core::ScoreHistogram`] derives the AUROC and AUPRC (each with a binning
//! error bound), a calibration table and a thinned ROC curve.
//!
//! Under differential privacy each hospital adds integer noise to its counts and histogram cells
//! before they are encoded ([`fedcare_core::privacy::PooledNoise`]): the totals decode exactly
//! to the true totals plus the hospitals' noise while `|total| < 2^39` (any 64 hospitals' counts),
//! and counts below zero are read as zero.

use fedcare_core::explore::{ColumnSpec, ExploreCounts};
use fedcare_core::loss::bce_with_logits;
use fedcare_core::subgroup::SubgroupHistograms;
use fedcare_core::{Moments, ScoreHistogram, TopKShape};

use super::{PublicFigures, SessionKind};
use crate::error::{OutOfRange, ProtocolError};

/// Most score bins of a subgroup's histograms: on the default synthetic cohort 512 bins bound
/// every subgroup's AUROC within 0.006 of the exact one (each report states its bound; 128 bins
/// gave 0.012) at half the bytes of the overall histogram's 1,024.
pub const SUBGROUP_BINS: usize = 512;

/// Bits of one limb: integers travel as limbs of 20 bits, each encoded as `limb / 2^20` (exact
/// in the codec, whose values carry 23-bit integers), so their sums decode exactly.
pub(crate) const LIMB_BITS: u32 = 20;
/// Limbs of a count: 40-bit two's complement (totals up to ±2^39).
pub(crate) const COUNT_LIMBS: usize = 2;
/// Bits of a count.
const COUNT_BITS: u32 = LIMB_BITS * COUNT_LIMBS as u32;
/// Limbs of a signed 64-bit sum (two's complement; the limb sums recombine modulo 2^64).
const SUM_LIMBS: usize = 4;
/// Values per numeric feature in the setup vector.
const PER_FEATURE: usize = COUNT_LIMBS + 2 * SUM_LIMBS;

pub(crate) fn push_limbs(values: &mut Vec<f64>, value: u64, limbs: usize) {
    let mask = (1u64 << LIMB_BITS) - 1;
    for i in 0..limbs {
        values.push(((value >> (LIMB_BITS * i as u32)) & mask) as f64 / f64::from(1u32 << LIMB_BITS));
    }
}

pub(crate) fn from_limbs(values: &[f64]) -> u64 {
    values.iter().enumerate().fold(0u64, |total, (i, &v)| {
        let limb_sum = (v * f64::from(1u32 << LIMB_BITS)).round() as i64 as u64;
        total.wrapping_add(limb_sum.wrapping_shl(LIMB_BITS * i as u32))
    })
}

/// A summed count: its 40-bit two's complement total, read as zero below zero (a noisy total of
/// a rare cell; clamping is post-processing and costs no privacy).
pub(crate) fn count_from_limbs(values: &[f64]) -> u64 {
    let shift = 64 - COUNT_BITS;
    let signed = (from_limbs(values) << shift) as i64 >> shift;
    signed.max(0) as u64
}

/// The counts of the setup session: one hospital's (what it contributes) or the federation's
/// (their decrypted sum, exact).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetupCounts {
    /// Training rows.
    pub train_rows: u64,
    /// Held-out rows.
    pub test_rows: u64,
    /// Per numeric feature, the moments of the training rows.
    pub moments: Vec<Moments>,
    /// Per `top_k` column, the training rows in each hash bucket.
    pub bucket_counts: Vec<Vec<u64>>,
}

impl SetupCounts {
    /// Cheap sanity bounds on the federation's decoded counts, so that one hospital's
    /// out-of-range encoding is refused with a clear message instead of silently scaling every
    /// update: every hospital trains on at least one row, no total reaches 2^39 (the limbs'
    /// range), no feature is present in more rows than there are, and no `top_k` column counts
    /// more rows than there are. With `noise` (each hospital's noise's standard deviation on a
    /// count, 0 without) one row in all is enough, each comparison allows eight standard
    /// deviations of the difference of two noisy totals, and a `top_k` column's buckets are
    /// bounded one by one. (A hospital that lies within these bounds is not caught: that needs
    /// range proofs.)
    pub fn check(&self, hospitals: usize, noise: f64) -> Result<(), OutOfRange> {
        let limit = 1u64 << (COUNT_BITS - 1);
        // Eight standard deviations of the difference of two noisy totals.
        let slack = (8.0 * noise * ((2 * hospitals) as f64).sqrt()).ceil() as u64;
        let fewest = if noise > 0.0 { 1 } else { hospitals as u64 };
        if self.train_rows < fewest || self.train_rows >= limit || self.test_rows >= limit {
            return Err(OutOfRange::Rows { train: self.train_rows, test: self.test_rows, hospitals });
        }
        if let Some((feature, m)) = self.moments.iter().enumerate().find(|(_, m)| m.count > self.train_rows + slack) {
            return Err(OutOfRange::FeatureCount { feature, count: m.count, rows: self.train_rows });
        }
        for (column, counts) in self.bucket_counts.iter().enumerate() {
            // Noisy counts are read as zero below zero, which biases a column's total upwards:
            // under noise each bucket is bounded instead.
            let total = if noise > 0.0 {
                counts.iter().copied().max().unwrap_or(0)
            } else {
                counts.iter().try_fold(0u64, |sum, &c| sum.checked_add(c)).unwrap_or(u64::MAX)
            };
            if total > self.train_rows.saturating_add(slack) {
                return Err(OutOfRange::Buckets { column, total, rows: self.train_rows });
            }
        }
        Ok(())
    }
}

/// Cheap sanity bounds on the federation's decoded exploration counts, like
/// [`SetupCounts::check`]: at least one row per hospital, no total at 2^39, and in every column
/// the cells and the missing rows add up to the rows, no cell has more positives than rows, and a
/// numeric column's moments count its present values. With `noise` (each hospital's noise's
/// standard deviation on a count, 0 without) one row in all is enough, each comparison allows
/// eight standard deviations of the noise it involves (and the upward bias of noisy counts read
/// as zero below zero), and there are no moments.
pub fn check_exploration(counts: &ExploreCounts, hospitals: usize, noise: f64) -> Result<(), OutOfRange> {
    let limit = 1u64 << (COUNT_BITS - 1);
    // Eight standard deviations of the sum of `terms` noisy counts of every hospital.
    let slack = |terms: usize| (8.0 * noise * ((terms * hospitals) as f64).sqrt()).ceil() as u64;
    let fewest = if noise > 0.0 { 1 } else { hospitals as u64 };
    if counts.rows < fewest || counts.rows >= limit || counts.positives > counts.rows + slack(2) {
        return Err(OutOfRange::ExploreRows { rows: counts.rows, positives: counts.positives, hospitals });
    }
    for (index, column) in counts.columns.iter().enumerate() {
        let total = column.cells.iter().try_fold(column.missing, |sum, &c| sum.checked_add(c));
        // A noisy count read as zero below zero is biased upwards by at most its noise's
        // standard deviation (over every hospital's): one more per term.
        let terms = column.cells.len() + 2;
        let bias = (noise * (hospitals as f64).sqrt() * terms as f64).ceil() as u64;
        let adds_up = total.is_some_and(|total| total.abs_diff(counts.rows) <= slack(terms) + bias);
        let cell_slack = slack(2);
        let positives_fit = column.missing_positives <= column.missing + cell_slack
            && column.cells.iter().zip(&column.positives).all(|(count, positives)| *positives <= count + cell_slack);
        let moments_fit = if noise > 0.0 {
            column.moments == Moments::default()
        } else {
            column.moments.count == 0 || column.moments.count == column.present()
        };
        if !adds_up || !positives_fit || !moments_fit {
            return Err(OutOfRange::ExploreColumn { column: index, total, rows: counts.rows });
        }
    }
    Ok(())
}

/// A hospital's evaluation of a model on its held-out rows.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalEvaluation {
    /// Sum of per-row log losses.
    pub loss_sum: f64,
    /// Positives and negatives per score bin.
    pub histogram: ScoreHistogram,
    /// Integer noise added to each cell when it is contributed, positives' bins then negatives'
    /// (empty: none).
    pub noise: Vec<i64>,
}

impl LocalEvaluation {
    /// Bins the probabilities of `logits` by label and sums their log losses.
    pub fn of_logits(logits: &[f32], labels: &[f32], bins: usize) -> Self {
        let loss_sum = logits.iter().zip(labels).map(|(&z, &y)| f64::from(bce_with_logits(z, y, 1.0))).sum();
        Self { loss_sum, histogram: ScoreHistogram::of_logits(logits, labels, bins), noise: Vec::new() }
    }
}

/// A hospital's subgroup histograms in the final evaluation: of the last model and of the model
/// kept so far (`None`: there is none yet, its block is zeros).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalSubgroups {
    /// Of the last model.
    pub last: SubgroupHistograms,
    /// Of the model kept so far.
    pub kept: Option<SubgroupHistograms>,
    /// Integer noise added to each cell of `last` when it is contributed, in the vector's order
    /// (empty: none). The kept model's block carries none: under pooled noise the rounds are not
    /// evaluated, so there is no kept model before the final evaluation.
    pub noise: Vec<i64>,
}

/// The federation's subgroup histograms decoded from the final evaluation (rounded to whole rows).
#[derive(Debug, Clone, PartialEq)]
pub struct PooledSubgroups {
    /// Of the last model.
    pub last: SubgroupHistograms,
    /// Of the model kept before it (all zeros when there was none).
    pub kept: SubgroupHistograms,
}

/// The federation's evaluation decoded from the summed tails.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalEvaluation {
    /// Mean log loss over all held-out rows.
    pub log_loss: f64,
    /// Positives and negatives per score bin (rounded to whole rows).
    pub histogram: ScoreHistogram,
}

/// A decoded sum, by session kind.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodedSum {
    /// The federation's setup counts.
    Setup(SetupCounts),
    /// The weighted mean update, the weighted mean training loss and the evaluation of the
    /// model the round started from.
    Train {
        /// `Σ Δθ_k · n_k/N`.
        mean_update: Vec<f32>,
        /// `Σ loss_k · n_k/N`.
        train_loss: f64,
        /// The evaluation.
        evaluation: GlobalEvaluation,
    },
    /// The evaluation of the final model, and the subgroups' histograms.
    Evaluate(GlobalEvaluation, PooledSubgroups),
    /// The federation's counts of every column.
    Explore(ExploreCounts),
}

/// The layout of every contribution vector of one federation.
#[derive(Debug, Clone, PartialEq)]
pub struct ContributionLayout {
    /// Model parameters.
    pub params: usize,
    /// Bins of the evaluation histograms.
    pub bins: usize,
    /// Numeric features with federated statistics.
    pub numeric: usize,
    /// The `top_k` columns' shapes, in schema order.
    pub top_k: Vec<TopKShape>,
    /// The columns an exploration counts (empty for training).
    pub explore: Vec<ColumnSpec>,
    /// The subgroup columns the final evaluation measures (empty: none).
    pub subgroups: Vec<ColumnSpec>,
}

impl ContributionLayout {
    /// Values of the evaluation tail.
    pub(crate) fn tail_len(&self) -> usize {
        1 + 2 * self.bins
    }

    /// The statistics the setup session releases, each changed by one patient by at most its
    /// noise's sensitivity: the row counts (training and held out: a patient is on one side),
    /// each numeric feature's present count, sum and sum of squares, and each `top_k` column's
    /// bucket counts.
    pub fn setup_statistics(&self) -> u32 {
        (1 + 3 * self.numeric + self.top_k.len()) as u32
    }

    /// The statistics the final evaluation releases, each changed by one patient by at most its
    /// noise's sensitivity: the score histogram, and each subgroup column's histograms (a row
    /// falls in one cell of each column).
    pub fn evaluation_statistics(&self) -> u32 {
        (1 + self.subgroups.len()) as u32
    }

    /// Score bins of the subgroup histograms: the evaluation's, at most [`SUBGROUP_BINS`].
    pub fn subgroup_bins(&self) -> usize {
        self.bins.min(SUBGROUP_BINS)
    }

    /// Values of one model's subgroup histograms.
    fn subgroups_len(&self) -> usize {
        SubgroupHistograms::values(&self.subgroups, self.subgroup_bins())
    }

    /// The statistics an exploration's session releases, each of one patient's most change
    /// under its noise ([`crate::ExploreNoise::count_scale`]): the rows and positives, and each
    /// column's counts (cells, their positives, the missing rows and theirs). (Under noise it
    /// releases no moments.)
    pub fn explore_statistics(&self) -> u32 {
        (1 + self.explore.len()) as u32
    }

    /// Values of the setup vector.
    fn setup_len(&self) -> usize {
        2 * COUNT_LIMBS
            + PER_FEATURE * self.numeric
            + COUNT_LIMBS * self.top_k.iter().map(|shape| shape.buckets as usize).sum::<usize>()
    }

    /// Values of the exploration vector.
    fn explore_len(&self) -> usize {
        let per_column =
            |c: &ColumnSpec| COUNT_LIMBS * (2 + 2 * c.cells()) + if c.is_numeric() { PER_FEATURE } else { 0 };
        2 * COUNT_LIMBS + self.explore.iter().map(per_column).sum::<usize>()
    }

    /// Values of a contribution of `kind`.
    pub fn len(&self, kind: SessionKind) -> usize {
        match kind {
            SessionKind::Setup => self.setup_len(),
            SessionKind::Train => self.params + 1 + self.tail_len(),
            SessionKind::Evaluate => self.tail_len() + 2 * self.subgroups_len(),
            SessionKind::Explore => self.explore_len(),
        }
    }

    /// The exploration's columns with their edges resolved from the setup session's `figures`
    /// (a numeric column without edges gets round bins over the federated mean ± 3 std).
    pub fn explore_columns(&self, figures: &PublicFigures) -> Vec<ColumnSpec> {
        fedcare_core::explore::resolve_columns(&self.explore, &figures.feature_stats)
    }

    /// A hospital's exploration vector; refuses counts of another shape than the columns.
    pub fn explore_vector(&self, counts: &ExploreCounts) -> Result<Vec<f64>, ProtocolError> {
        if !counts.fits(&self.explore) {
            return Err(ProtocolError::Invalid {
                field: "exploration counts",
                value: format!("{} columns", counts.columns.len()),
                expected: format!("the {} columns of the exploration", self.explore.len()),
            });
        }
        let mut values = Vec::with_capacity(self.explore_len());
        push_limbs(&mut values, counts.rows, COUNT_LIMBS);
        push_limbs(&mut values, counts.positives, COUNT_LIMBS);
        for (spec, column) in self.explore.iter().zip(&counts.columns) {
            push_limbs(&mut values, column.missing, COUNT_LIMBS);
            push_limbs(&mut values, column.missing_positives, COUNT_LIMBS);
            for &count in column.cells.iter().chain(&column.positives) {
                push_limbs(&mut values, count, COUNT_LIMBS);
            }
            if spec.is_numeric() {
                push_limbs(&mut values, column.moments.count, COUNT_LIMBS);
                push_limbs(&mut values, column.moments.sum as u64, SUM_LIMBS);
                push_limbs(&mut values, column.moments.squares as u64, SUM_LIMBS);
            }
        }
        Ok(values)
    }

    fn decode_explore(&self, values: &[f64]) -> ExploreCounts {
        let mut rest = values;
        let mut take = |limbs: usize| {
            let (value, tail) = rest.split_at(limbs);
            rest = tail;
            value
        };
        let mut counts = ExploreCounts::zeros(&self.explore);
        counts.rows = count_from_limbs(take(COUNT_LIMBS));
        counts.positives = count_from_limbs(take(COUNT_LIMBS));
        for (spec, column) in self.explore.iter().zip(&mut counts.columns) {
            column.missing = count_from_limbs(take(COUNT_LIMBS));
            column.missing_positives = count_from_limbs(take(COUNT_LIMBS));
            for count in column.cells.iter_mut().chain(column.positives.iter_mut()) {
                *count = count_from_limbs(take(COUNT_LIMBS));
            }
            if spec.is_numeric() {
                column.moments.count = count_from_limbs(take(COUNT_LIMBS));
                column.moments.sum = from_limbs(take(SUM_LIMBS)) as i64;
                column.moments.squares = from_limbs(take(SUM_LIMBS)) as i64;
            }
        }
        counts
    }

    /// Values of the longest contribution (what sizes the upload limit).
    pub fn longest(&self) -> usize {
        [SessionKind::Setup, SessionKind::Train, SessionKind::Evaluate, SessionKind::Explore]
            .map(|kind| self.len(kind))
            .into_iter()
            .max()
            .unwrap_or(0)
    }

    /// The largest upload the aggregator accepts for this layout, in bytes: a ciphertext of the
    /// longest contribution (its packed words), a decrypted sum (9 bytes a value) or a signed key
    /// share (n words), whichever is largest, with 4 KiB for the headers and signatures. Every
    /// limit on uploads and relayed messages derives from it ([`crate::FederationSettings::wire_limits`]).
    pub fn max_upload_bytes(&self) -> u64 {
        Self::upload_bytes(self.longest())
    }

    /// The largest upload of a contribution of `longest` values ([`Self::max_upload_bytes`]).
    pub fn upload_bytes(longest: usize) -> u64 {
        let params = fedcare_crypto::PARAMS_V2;
        let largest = params.ciphertext_wire_bytes(longest).max(9 * longest).max(8 * params.n());
        largest as u64 + 4096
    }

    /// A hospital's setup vector; refuses counts of another shape than the layout's.
    pub fn setup_vector(&self, counts: &SetupCounts) -> Result<Vec<f64>, ProtocolError> {
        let shape_ok = counts.moments.len() == self.numeric
            && counts.bucket_counts.len() == self.top_k.len()
            && counts.bucket_counts.iter().zip(&self.top_k).all(|(c, s)| c.len() == s.buckets as usize);
        if !shape_ok {
            return Err(ProtocolError::Invalid {
                field: "setup counts",
                value: format!("{} moments, {} top_k columns", counts.moments.len(), counts.bucket_counts.len()),
                expected: format!("{} moments and top_k columns of {:?}", self.numeric, self.top_k),
            });
        }
        let mut values = Vec::with_capacity(self.setup_len());
        push_limbs(&mut values, counts.train_rows, COUNT_LIMBS);
        push_limbs(&mut values, counts.test_rows, COUNT_LIMBS);
        for m in &counts.moments {
            push_limbs(&mut values, m.count, COUNT_LIMBS);
            push_limbs(&mut values, m.sum as u64, SUM_LIMBS);
            push_limbs(&mut values, m.squares as u64, SUM_LIMBS);
        }
        for &count in counts.bucket_counts.iter().flatten() {
            push_limbs(&mut values, count, COUNT_LIMBS);
        }
        Ok(values)
    }

    /// The evaluation tail of a hospital's evaluation, weighted by `1 / total_test_rows`.
    pub(crate) fn push_tail(&self, values: &mut Vec<f64>, evaluation: &LocalEvaluation, total_test_rows: u64) {
        let t = total_test_rows.max(1) as f64;
        values.push(evaluation.loss_sum / t);
        let cells = evaluation.histogram.positives.iter().chain(&evaluation.histogram.negatives);
        let noise = evaluation.noise.iter().copied().chain(core::iter::repeat(0));
        values.extend(cells.zip(noise).map(|(&c, z)| (c as f64 + z as f64) / t));
    }

    pub(crate) fn check_evaluation(&self, evaluation: &LocalEvaluation) -> Result<(), ProtocolError> {
        if evaluation.histogram.bins() != self.bins
            || evaluation.histogram.negatives.len() != self.bins
            || !(evaluation.noise.is_empty() || evaluation.noise.len() == 2 * self.bins)
        {
            return Err(ProtocolError::Invalid {
                field: "evaluation bins",
                value: evaluation.histogram.bins().to_string(),
                expected: format!("{} bins", self.bins),
            });
        }
        Ok(())
    }

    /// A hospital's training vector: its update `Δθ` and last epoch's loss weighted by
    /// `weight = n_k / N`, then its evaluation of the model the round started from.
    pub fn train_vector(
        &self,
        delta: &[f32],
        loss: f64,
        weight: f64,
        evaluation: &LocalEvaluation,
        total_test_rows: u64,
    ) -> Result<Vec<f64>, ProtocolError> {
        if delta.len() != self.params {
            return Err(ProtocolError::Invalid {
                field: "update length",
                value: delta.len().to_string(),
                expected: format!("{} parameters", self.params),
            });
        }
        self.check_evaluation(evaluation)?;
        let mut values = Vec::with_capacity(self.len(SessionKind::Train));
        values.extend(delta.iter().map(|&d| f64::from(d) * weight));
        values.push(loss * weight);
        self.push_tail(&mut values, evaluation, total_test_rows);
        Ok(values)
    }

    /// A hospital's final evaluation vector: its evaluation of the last model and its subgroup
    /// histograms (of the shape of the layout's subgroups, in [`Self::subgroup_bins`] bins).
    pub fn evaluate_vector(
        &self,
        evaluation: &LocalEvaluation,
        subgroups: &LocalSubgroups,
        total_test_rows: u64,
    ) -> Result<Vec<f64>, ProtocolError> {
        self.check_evaluation(evaluation)?;
        let bins = self.subgroup_bins();
        let shapes_fit = subgroups.last.fits(&self.subgroups, bins)
            && subgroups.kept.as_ref().is_none_or(|kept| kept.fits(&self.subgroups, bins))
            && (subgroups.noise.is_empty() || subgroups.noise.len() == self.subgroups_len());
        if !shapes_fit {
            return Err(ProtocolError::Invalid {
                field: "subgroup histograms",
                value: format!("{} columns", subgroups.last.columns.len()),
                expected: format!("the {} subgroup columns at {bins} bins", self.subgroups.len()),
            });
        }
        let t = total_test_rows.max(1) as f64;
        let mut values = Vec::with_capacity(self.len(SessionKind::Evaluate));
        self.push_tail(&mut values, evaluation, total_test_rows);
        let cells = |histograms: &SubgroupHistograms| -> Vec<u64> {
            histograms.columns.iter().flatten().flat_map(|h| h.positives.iter().chain(&h.negatives).copied()).collect()
        };
        let noise = subgroups.noise.iter().copied().chain(core::iter::repeat(0));
        values.extend(cells(&subgroups.last).into_iter().zip(noise).map(|(c, z)| (c as f64 + z as f64) / t));
        match &subgroups.kept {
            Some(kept) => values.extend(cells(kept).into_iter().map(|c| c as f64 / t)),
            None => values.resize(values.len() + self.subgroups_len(), 0.0),
        }
        Ok(values)
    }

    /// Decodes the decrypted sum of a session of `kind`; `total_test_rows` is the public total
    /// (unused for setup, which computes it).
    pub fn decode(&self, kind: SessionKind, values: &[f64], total_test_rows: u64) -> Result<DecodedSum, ProtocolError> {
        if values.len() != self.len(kind) {
            return Err(ProtocolError::Invalid {
                field: "decrypted sum",
                value: format!("{} values", values.len()),
                expected: format!("{} values for a {kind} session", self.len(kind)),
            });
        }
        Ok(match kind {
            SessionKind::Setup => DecodedSum::Setup(self.decode_setup(values)),
            SessionKind::Train => DecodedSum::Train {
                mean_update: values[..self.params].iter().map(|&v| v as f32).collect(),
                train_loss: values[self.params],
                evaluation: self.decode_tail(&values[self.params + 1..], total_test_rows),
            },
            SessionKind::Evaluate => {
                let (tail, subgroups) = values.split_at(self.tail_len());
                let (last, kept) = subgroups.split_at(self.subgroups_len());
                DecodedSum::Evaluate(
                    self.decode_tail(tail, total_test_rows),
                    PooledSubgroups {
                        last: self.decode_subgroups(last, total_test_rows),
                        kept: self.decode_subgroups(kept, total_test_rows),
                    },
                )
            }
            SessionKind::Explore => DecodedSum::Explore(self.decode_explore(values)),
        })
    }

    fn decode_setup(&self, values: &[f64]) -> SetupCounts {
        let (counts, rest) = values.split_at(2 * COUNT_LIMBS);
        let (features, mut buckets) = rest.split_at(PER_FEATURE * self.numeric);
        let moments = features
            .chunks_exact(PER_FEATURE)
            .map(|f| Moments {
                count: count_from_limbs(&f[..COUNT_LIMBS]),
                sum: from_limbs(&f[COUNT_LIMBS..COUNT_LIMBS + SUM_LIMBS]) as i64,
                squares: from_limbs(&f[COUNT_LIMBS + SUM_LIMBS..]) as i64,
            })
            .collect();
        let mut bucket_counts = Vec::with_capacity(self.top_k.len());
        for shape in &self.top_k {
            let (column, rest) = buckets.split_at(COUNT_LIMBS * shape.buckets as usize);
            bucket_counts.push(column.chunks_exact(COUNT_LIMBS).map(count_from_limbs).collect());
            buckets = rest;
        }
        SetupCounts {
            train_rows: count_from_limbs(&counts[..COUNT_LIMBS]),
            test_rows: count_from_limbs(&counts[COUNT_LIMBS..]),
            moments,
            bucket_counts,
        }
    }

    fn decode_subgroups(&self, values: &[f64], total_test_rows: u64) -> SubgroupHistograms {
        let t = total_test_rows as f64;
        let bins = self.subgroup_bins();
        let mut histograms = SubgroupHistograms::zeros(&self.subgroups, bins);
        let mut cells = values.chunks_exact(bins).map(|bins| bins.iter().map(|v| (v * t).round().max(0.0) as u64));
        for histogram in histograms.columns.iter_mut().flatten() {
            for counts in [&mut histogram.positives, &mut histogram.negatives] {
                if let Some(decoded) = cells.next() {
                    counts.iter_mut().zip(decoded).for_each(|(count, value)| *count = value);
                }
            }
        }
        histograms
    }

    pub(crate) fn decode_tail(&self, tail: &[f64], total_test_rows: u64) -> GlobalEvaluation {
        let t = total_test_rows as f64;
        let count = |v: &f64| (v * t).round().max(0.0) as u64;
        GlobalEvaluation {
            log_loss: tail[0],
            histogram: ScoreHistogram {
                positives: tail[1..=self.bins].iter().map(count).collect(),
                negatives: tail[1 + self.bins..].iter().map(count).collect(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(params: usize, bins: usize, numeric: usize, top_k: Vec<TopKShape>) -> ContributionLayout {
        ContributionLayout { params, bins, numeric, top_k, explore: Vec::new(), subgroups: Vec::new() }
    }

    #[test]
    fn summed_setup_vectors_decode_to_the_exact_totals() {
        let shapes = vec![TopKShape { buckets: 3, k: 2 }, TopKShape { buckets: 2, k: 1 }];
        let layout = layout(0, 4, 1, shapes);
        let a = layout
            .setup_vector(&SetupCounts {
                train_rows: 10,
                test_rows: 3,
                moments: vec![Moments { count: 9, sum: -700, squares: 5 << 40 }],
                bucket_counts: vec![vec![4, 0, 6], vec![(1 << 33) + 5, 1]],
            })
            .unwrap();
        let b = layout
            .setup_vector(&SetupCounts {
                train_rows: 7,
                test_rows: 2,
                moments: vec![Moments { count: 7, sum: 300, squares: 12 }],
                bucket_counts: vec![vec![1, 2, 0], vec![(1 << 21) - 1, 0]],
            })
            .unwrap();
        assert_eq!(a.len(), layout.len(SessionKind::Setup));
        let sum: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        let DecodedSum::Setup(totals) = layout.decode(SessionKind::Setup, &sum, 0).unwrap() else { panic!() };
        assert_eq!((totals.train_rows, totals.test_rows), (17, 5));
        assert_eq!(totals.moments, [Moments { count: 16, sum: -400, squares: (5 << 40) + 12 }]);
        assert_eq!(totals.bucket_counts, [vec![5, 2, 6], vec![(1 << 33) + (1 << 21) + 4, 1]]);
        // A sum of another length, or counts of another shape, are refused.
        assert!(matches!(layout.decode(SessionKind::Setup, &sum[1..], 0), Err(ProtocolError::Invalid { .. })));
        let short = SetupCounts { moments: Vec::new(), ..SetupCounts::default() };
        assert!(layout.setup_vector(&short).is_err());
    }

    #[test]
    fn summed_exploration_vectors_decode_to_the_exact_counts() {
        use fedcare_core::explore::ColumnKind;
        let mut layout = layout(0, 4, 0, Vec::new());
        layout.explore = vec![
            ColumnSpec { name: "age".into(), kind: ColumnKind::Numeric { edges: vec![0.0, 50.0, 100.0], bins: 0 } },
            ColumnSpec { name: "ward".into(), kind: ColumnKind::Categorical { categories: 1024, labels: Vec::new() } },
        ];
        let hospital = |ages: &[(Option<f64>, bool)], wards: &[(usize, bool)]| {
            let mut counts = ExploreCounts::zeros(&layout.explore);
            for &(age, positive) in ages {
                counts.rows += 1;
                counts.positives += u64::from(positive);
                counts.columns[0].push_numeric(&layout.explore[0], age, positive);
            }
            for &(ward, positive) in wards {
                counts.columns[1].push_cell(ward, positive);
            }
            counts.columns[1].missing = counts.rows - wards.len() as u64;
            counts
        };
        let a = hospital(&[(Some(71.5), true), (Some(-3.0), false), (None, true)], &[(1023, true), (7, false)]);
        let b = hospital(&[(Some(100.0), false), (Some(12.25), true)], &[(7, true), (7, false)]);
        let (va, vb) = (layout.explore_vector(&a).unwrap(), layout.explore_vector(&b).unwrap());
        assert_eq!(va.len(), layout.len(SessionKind::Explore));
        let sum: Vec<f64> = va.iter().zip(&vb).map(|(x, y)| x + y).collect();
        let DecodedSum::Explore(total) = layout.decode(SessionKind::Explore, &sum, 0).unwrap() else { panic!() };
        let mut expected = a.clone();
        expected.add(&b).unwrap();
        assert_eq!(total, expected);
        assert_eq!(total.columns[0].cells, [1, 1, 2, 0]);
        assert_eq!(total.columns[1].cells[7], 3);
        check_exploration(&total, 2, 0.0).unwrap();
        let mut broken = total.clone();
        broken.columns[1].cells[0] += 1;
        assert!(matches!(check_exploration(&broken, 2, 0.0), Err(OutOfRange::ExploreColumn { column: 1, .. })));
        // Under noise (a standard deviation of 1.5 a count) the same cell is within the noise,
        // a column a hundred thousand rows off is not, and moments are never released.
        let mut noisy = broken.clone();
        noisy.columns.iter_mut().for_each(|c| c.moments = Moments::default());
        check_exploration(&noisy, 2, 1.5).unwrap();
        noisy.columns[1].cells[0] += 100_000;
        assert!(matches!(check_exploration(&noisy, 2, 1.5), Err(OutOfRange::ExploreColumn { column: 1, .. })));
        assert!(matches!(check_exploration(&broken, 2, 1.5), Err(OutOfRange::ExploreColumn { column: 0, .. })));
        assert!(layout.explore_vector(&ExploreCounts::default()).is_err(), "counts of another shape");
    }

    #[test]
    fn noisy_counts_of_64_hospitals_decode_without_overflow() {
        use crate::testing::sum_through_codec;

        let layout = layout(0, 4, 1, vec![TopKShape { buckets: 3, k: 1 }]);
        // What a hospital's noise does to its counts: wrapping addition, a negative result
        // carried as its two's complement.
        let hospital = |h: i64, rows: u64, noise: i64| SetupCounts {
            train_rows: rows.wrapping_add_signed(noise),
            test_rows: (rows / 4).wrapping_add_signed(-noise),
            moments: vec![Moments {
                count: rows.wrapping_add_signed(noise - 3),
                sum: -(1 << 40) + noise * 1_000_000,
                squares: (1 << 50) + noise,
            }],
            // One bucket far below zero for every hospital, one near the limit, one mixed.
            bucket_counts: vec![vec![
                0u64.wrapping_add_signed(-5_000 - h),
                (rows / 2).wrapping_add_signed(noise),
                3u64.wrapping_add_signed(if h % 2 == 0 { -40 } else { 40 }),
            ]],
        };
        // 64 hospitals of 2^33 rows each: totals up to 2^39 − 1, the largest the limbs carry.
        let (rows, hospitals) = ((1u64 << 33) - 1, 64i64);
        let noise = |h: i64| (h - 32) * 997;
        let vectors: Vec<Vec<f64>> =
            (0..hospitals).map(|h| layout.setup_vector(&hospital(h, rows, noise(h))).unwrap()).collect();
        let DecodedSum::Setup(total) = layout.decode(SessionKind::Setup, &sum_through_codec(&vectors), 0).unwrap()
        else {
            panic!("not a setup sum")
        };
        let noise_sum: i64 = (0..hospitals).map(noise).sum();
        let exact = |per_hospital: u64, noise: i64| (per_hospital as i64 * hospitals + noise) as u64;
        assert_eq!(total.train_rows, exact(rows, noise_sum));
        assert!(total.train_rows < 1 << 39);
        assert_eq!(total.test_rows, exact(rows / 4, -noise_sum));
        assert_eq!(total.moments[0].count, exact(rows, noise_sum - 3 * hospitals));
        assert_eq!(total.moments[0].sum, -(1 << 40) * hospitals + noise_sum * 1_000_000);
        assert_eq!(total.moments[0].squares, (1 << 50) * hospitals + noise_sum);
        // A total below zero reads as zero; the others are exact.
        assert_eq!(total.bucket_counts, [vec![0, exact(rows / 2, noise_sum), 3 * 64]]);
        total.check(64, 100.0).unwrap();
    }

    #[test]
    fn impossible_setup_totals_are_refused_with_the_reason() {
        let sane = SetupCounts {
            train_rows: 10,
            test_rows: 2,
            moments: vec![Moments { count: 10, sum: 0, squares: 0 }],
            bucket_counts: vec![vec![4, 6]],
        };
        sane.check(3, 0.0).unwrap();
        assert_eq!(sane.check(11, 0.0), Err(OutOfRange::Rows { train: 10, test: 2, hospitals: 11 }));
        // With noise, eight standard deviations of it are allowed, and one row in all is enough.
        sane.check(11, 1.0).unwrap();
        let noisy = SetupCounts { moments: vec![Moments { count: 10 + 37, sum: 0, squares: 0 }], ..sane.clone() };
        noisy.check(3, 2.0).unwrap();
        assert!(matches!(noisy.check(3, 1.0), Err(OutOfRange::FeatureCount { feature: 0, count: 47, rows: 10 })));
        // Under noise a top_k column's buckets are bounded one by one (zeroed negatives add up).
        let spread = SetupCounts { bucket_counts: vec![vec![9; 1000]], ..sane.clone() };
        spread.check(3, 5.0).unwrap();
        assert!(spread.check(3, 0.0).is_err());
        let one_wrapped = SetupCounts { bucket_counts: vec![vec![(1 << 39) - 1, 0]], ..sane.clone() };
        assert!(matches!(one_wrapped.check(3, 5.0), Err(OutOfRange::Buckets { column: 0, .. })));
        let present = SetupCounts { moments: vec![Moments { count: 11, sum: 0, squares: 0 }], ..sane.clone() };
        assert!(matches!(present.check(3, 0.0), Err(OutOfRange::FeatureCount { feature: 0, .. })));
        let buckets = SetupCounts { bucket_counts: vec![vec![u64::MAX, 1]], ..sane.clone() };
        assert!(matches!(buckets.check(3, 0.0), Err(OutOfRange::Buckets { column: 0, total: u64::MAX, rows: 10 })));
        let huge = SetupCounts { train_rows: 1 << 40, ..sane };
        assert!(huge.check(3, 0.0).is_err());
    }

    #[test]
    fn a_training_vector_decodes_to_the_weighted_update_loss_and_histogram() {
        let layout = layout(3, 4, 0, Vec::new());
        let evaluation = LocalEvaluation::of_logits(&[-3.0, 2.0, 0.1], &[0.0, 1.0, 1.0], 4);
        let values = layout.train_vector(&[0.5, -1.0, 2.0], 0.8, 0.25, &evaluation, 3).unwrap();
        assert_eq!(values.len(), layout.len(SessionKind::Train));
        let DecodedSum::Train { mean_update, train_loss, evaluation: global } =
            layout.decode(SessionKind::Train, &values, 3).unwrap()
        else {
            panic!("not a training sum")
        };
        assert_eq!(mean_update, [0.125, -0.25, 0.5]);
        assert!((train_loss - 0.2).abs() < 1e-12);
        assert_eq!(global.histogram, evaluation.histogram);
        assert!((global.log_loss - evaluation.loss_sum / 3.0).abs() < 1e-12);
        assert!(layout.train_vector(&[0.5], 0.8, 0.25, &evaluation, 3).is_err(), "wrong update length");
        let none = LocalSubgroups { last: SubgroupHistograms::zeros(&[], 4), kept: None, noise: Vec::new() };
        let other_bins = LocalEvaluation::of_logits(&[0.0], &[1.0], 8);
        assert!(layout.evaluate_vector(&other_bins, &none, 1).is_err(), "wrong bins");
        assert_eq!(layout.evaluate_vector(&evaluation, &none, 3).unwrap().len(), layout.len(SessionKind::Evaluate));
        assert_eq!(layout.longest(), layout.len(SessionKind::Train));
    }

    #[test]
    fn summed_subgroup_histograms_decode_to_the_exact_counts_of_both_models() {
        use fedcare_core::explore::ColumnKind;
        let mut layout = layout(0, 4, 0, Vec::new());
        layout.subgroups = vec![
            ColumnSpec { name: "sex".into(), kind: ColumnKind::Categorical { categories: 2, labels: Vec::new() } },
            ColumnSpec { name: "age".into(), kind: ColumnKind::Numeric { edges: vec![0.0, 50.0, 100.0], bins: 0 } },
        ];
        assert_eq!(layout.evaluation_statistics(), 3);
        let hospital = |logits: &[f32], labels: &[f32], sex: Vec<usize>, age: Vec<usize>, kept: bool| {
            let histograms = SubgroupHistograms::of_logits(&layout.subgroups, &[sex, age], logits, labels, 4);
            let evaluation = LocalEvaluation::of_logits(logits, labels, 4);
            let kept = kept.then(|| {
                let shifted: Vec<f32> = logits.iter().map(|z| -z).collect();
                SubgroupHistograms::of_logits(&layout.subgroups, &[vec![0; 3], vec![3; 3]], &shifted, labels, 4)
            });
            let subgroups = LocalSubgroups { last: histograms.clone(), kept: kept.clone(), noise: Vec::new() };
            (layout.evaluate_vector(&evaluation, &subgroups, 5).unwrap(), histograms, kept)
        };
        let (a, last_a, kept_a) = hospital(&[-2.0, 0.5, 3.0], &[0.0, 1.0, 1.0], vec![0, 1, 2], vec![0, 1, 3], true);
        let (b, last_b, _) = hospital(&[1.0, -1.0], &[1.0, 0.0], vec![1, 1], vec![2, 2], false);
        assert_eq!(a.len(), layout.len(SessionKind::Evaluate));
        let sum: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        let DecodedSum::Evaluate(_, pooled) = layout.decode(SessionKind::Evaluate, &sum, 5).unwrap() else { panic!() };
        let mut expected = last_a;
        for (mine, theirs) in expected.columns.iter_mut().flatten().zip(last_b.columns.iter().flatten()) {
            mine.merge(theirs);
        }
        assert_eq!(pooled.last, expected);
        assert_eq!(Some(pooled.kept), kept_a, "the other hospital had no kept model: its block is zeros");
        // Histograms of another shape are refused.
        let wrong = LocalSubgroups {
            last: SubgroupHistograms::zeros(&layout.subgroups[..1], 4),
            kept: None,
            noise: Vec::new(),
        };
        let evaluation = LocalEvaluation::of_logits(&[], &[], 4);
        assert!(layout.evaluate_vector(&evaluation, &wrong, 5).is_err());
    }

    #[test]
    fn a_noisy_held_out_count_far_below_the_true_one_still_decodes_every_hospitals_tail() {
        use fedcare_core::privacy::PooledNoise;
        let mut settings = crate::driver::test_settings(3);
        settings.privacy = Some(crate::Privacy {
            dp_sgd: None,
            delta: 1e-6,
            pooled: Some(PooledNoise { multiplier: 50.0, evaluation_multiplier: 12.0, rows_per_patient: 1 }),
            setup_statistics: 1,
            evaluation_statistics: 1,
        });
        // Noise made the pooled count of held-out rows 3, where 3 hospitals hold 200 each.
        let figures = crate::PublicFigures { test_rows: 3, ..crate::PublicFigures::default() };
        let scale = settings.tail_scale(&figures);
        assert_eq!(scale, 3 + 2400, "six σ_p of the noise of the most parties (64)");
        let layout = &settings.layout;
        let logits: Vec<f32> = (0..200).map(|i| i as f32 / 50.0 - 2.0).collect();
        let labels: Vec<f32> = (0..200).map(|i| f32::from(i % 3 == 0)).collect();
        let evaluation = LocalEvaluation::of_logits(&logits, &labels, layout.bins);
        let none = LocalSubgroups {
            last: SubgroupHistograms::zeros(&layout.subgroups, layout.subgroup_bins()),
            kept: None,
            noise: Vec::new(),
        };
        // Divided by the count itself, one hospital's tail leaves the codec's ±8.
        let raw = layout.evaluate_vector(&evaluation, &none, figures.test_rows).unwrap();
        assert!(raw.iter().any(|v| v.abs() > 8.0));
        let vectors: Vec<Vec<f64>> =
            (0..3).map(|_| layout.evaluate_vector(&evaluation, &none, scale).unwrap()).collect();
        let sum = crate::testing::sum_through_codec(&vectors);
        let DecodedSum::Evaluate(pooled, _) = layout.decode(SessionKind::Evaluate, &sum, scale).unwrap() else {
            panic!("an evaluation decodes as one")
        };
        let expected: Vec<u64> = evaluation.histogram.positives.iter().map(|c| 3 * c).collect();
        assert_eq!(pooled.histogram.positives, expected);
        assert_eq!(pooled.histogram.class_totals(), (3 * 67, 3 * 133));
        // The loss comes back summed over the scale: times scale / count, the mean per counted row.
        let mean = pooled.log_loss * scale as f64 / figures.test_rows as f64;
        assert!((mean - 3.0 * evaluation.loss_sum / 3.0).abs() < 1e-3 * mean, "{mean}");
    }
}
