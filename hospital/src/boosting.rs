//! A hospital's part in growing boosted trees: its label counts for the base margin, then for
//! each level of a tree the gradient histograms of its training rows in the level's measured
//! nodes, computed on the ensemble and the tree every participant agreed to
//! ([`fedcare_protocol::boosting`]), and at a tree's first level its evaluation of the ensemble
//! so far. Nothing here leaves the hospital but the vector, which is encrypted.
//!
//! [`Cache`] keeps the binned training rows and every row's margin between sessions: an
//! ensemble only grows by trees appended, so the margins are brought up to date by adding the
//! new trees' leaves in order, which gives the same `f32` sums as scoring the whole ensemble.
//!
//! A tree is grown on the rows of the patients [`fedcare_core::gbdt::sampled`] draws for it
//! (all of them unless `subsample` is below 1). Under the federation's pooled noise only each
//! patient's first `rows_per_patient` training rows are counted, and the base counts and every
//! histogram cell get this hospital's own discrete Gaussian noise
//! ([`fedcare_protocol::boosting::Boosting::histogram_noise`]); the trees' first levels then
//! evaluate nothing.
//!
//! The base session also counts, for each numeric input without thresholds, its counted rows'
//! standardised values in fine bins (noised under pooled noise,
//! [`fedcare_protocol::boosting::Boosting::fine_noise`]); their pooled quantiles cut that input.

use fedcare_core::Dataset;
use fedcare_core::gbdt::{BinnedRows, Cuts, Ensemble, FINE_BINS, fine_bin, gradient_pairs, node_histograms, sampled};
use fedcare_core::privacy::PooledNoise;
use fedcare_protocol::boosting::{Boosting, BoostingContribution, BoostingState, Step, boosting_vector};

use crate::error::{FederationError, ProtocolError, Result};
use crate::pooled_noise::PooledSampler;
use crate::protocol::{FederationSettings, LocalEvaluation, PublicFigures};

/// A hospital's rows for boosting: its training and held-out datasets and each training row's
/// patient key (in the training rows' order).
pub(crate) struct Rows<'a> {
    /// The training rows.
    pub train: &'a Dataset,
    /// The held-out rows.
    pub test: &'a Dataset,
    /// Each training row's patient key ([`fedcare_data::patient_key`]).
    pub patients: &'a [u64],
    /// The most inputs one row can move off their lowest value
    /// ([`crate::LocalData::inputs_per_row`]).
    pub inputs_per_row: usize,
}

/// What a hospital keeps between the sessions of one boosting federation: the binned training
/// rows under the federation's cuts, which of them the histograms count, and the margins of the
/// training and held-out rows under `ensemble`.
pub(crate) struct Cache {
    cuts: Cuts,
    binned: BinnedRows,
    counted: Vec<bool>,
    ensemble: Ensemble,
    train: Vec<f32>,
    test: Vec<f32>,
}

impl Cache {
    /// The cache for `cuts` and `ensemble`: `cache` brought up to date when it was made under the
    /// same cuts and an ensemble `ensemble` extends, made anew otherwise.
    fn updated(
        cache: Option<Self>,
        cuts: Cuts,
        ensemble: &Ensemble,
        (train, test): (&Dataset, &Dataset),
        pooled: Option<&PooledNoise>,
    ) -> Result<Self> {
        let width = train.width();
        let reusable = cache.filter(|c| {
            c.cuts == cuts
                && c.ensemble.base_margin.to_bits() == ensemble.base_margin.to_bits()
                && ensemble.trees.starts_with(&c.ensemble.trees)
                && c.train.len() == train.rows()
                && c.test.len() == test.rows()
        });
        let mut cache = match reusable {
            Some(cache) => cache,
            None => Self {
                binned: BinnedRows::new(train, &cuts)?,
                counted: counted_rows(train, pooled),
                cuts,
                ensemble: Ensemble::new(ensemble.base_margin),
                train: vec![ensemble.base_margin; train.rows()],
                test: vec![ensemble.base_margin; test.rows()],
            },
        };
        let new = &ensemble.trees[cache.ensemble.trees.len()..];
        Ensemble { base_margin: ensemble.base_margin, trees: new.to_vec() }.validate(width)?;
        for tree in new {
            cache
                .train
                .iter_mut()
                .zip(train.features().chunks_exact(width))
                .for_each(|(m, row)| *m += tree.margin(row));
            cache.test.iter_mut().zip(test.features().chunks_exact(width)).for_each(|(m, row)| *m += tree.margin(row));
        }
        cache.ensemble.trees.extend_from_slice(new);
        Ok(cache)
    }
}

/// This hospital's vector for the boosting training session that starts from `state`, with
/// `cache` (kept by the caller between sessions) brought up to date.
pub(crate) fn contribution(
    settings: &FederationSettings,
    boosting: &Boosting,
    state: &BoostingState,
    figures: &PublicFigures,
    Rows { train, test, patients, inputs_per_row }: Rows<'_>,
    cache: &mut Option<Cache>,
) -> Result<Vec<f64>> {
    let width = settings.spec.input_width();
    let cuts = boosting.cuts(&figures.feature_stats, width, state)?;
    let cells = cuts.cells();
    let step = state.step(boosting);
    let pooled = settings.pooled_noise();
    let sampler = pooled.map(PooledSampler::new);
    let contribution = match &step {
        Step::Base { .. } => {
            let counted = counted_rows(train, pooled.as_ref());
            let labels = train.labels().iter().zip(&counted).filter(|&(_, &c)| c);
            let (rows, positives) = labels.fold((0u64, 0u64), |(r, p), (&y, _)| (r + 1, p + u64::from(y > 0.5)));
            let mut fine = fine_counts(train, &counted, boosting);
            match &sampler {
                Some(sampler) => {
                    if let Some(pooled) = &pooled {
                        sampler.add_count_noise(fine.iter_mut().flatten(), boosting.fine_noise(pooled))?;
                    }
                    BoostingContribution::Base {
                        rows: sampler.noisy_count(rows)?,
                        positives: sampler.noisy_count(positives)?,
                        fine,
                    }
                }
                None => BoostingContribution::Base { rows, positives, fine },
            }
        }
        Step::Level(growing) => {
            let current = Cache::updated(cache.take(), cuts, agreed_ensemble(state)?, (train, test), pooled.as_ref())?;
            let pairs = gradient_pairs(&current.train, train.labels(), boosting.config.pos_weight)?;
            let tree = current.ensemble.trees.len() as u32;
            if patients.len() != train.rows() {
                return Err(FederationError::Task(format!(
                    "{} patient keys for {} training rows",
                    patients.len(),
                    train.rows()
                )));
            }
            let nodes: Vec<Option<u32>> = (0..train.rows())
                .map(|row| {
                    let grown_on = current.counted[row] && sampled(patients[row], tree, boosting.config.subsample);
                    if grown_on { growing.open_node(train.row(row)) } else { None }
                })
                .collect();
            let mut histograms = node_histograms(&current.binned, &pairs, &nodes, &growing.measured(), &current.cuts);
            let evaluation = step.evaluates().then(|| match &sampler {
                // Under pooled noise a level evaluates nothing: its tail is zeros.
                Some(_) => LocalEvaluation::of_logits(&[], &[], settings.layout.bins),
                None => LocalEvaluation::of_logits(&current.test, test.labels(), settings.layout.bins),
            });
            if let (Some(sampler), Some(pooled)) = (&sampler, &pooled) {
                sampler.add_histogram_noise(&mut histograms, &boosting.histogram_noise(pooled, inputs_per_row))?;
            }
            *cache = Some(current);
            BoostingContribution::Level { evaluation, histograms }
        }
        Step::Done => {
            return Err(FederationError::Task("a training session after every tree was grown".into()));
        }
    };
    Ok(boosting_vector(&settings.layout, &step, cells, &contribution, settings.tail_scale(figures))?)
}

/// Per numeric input without thresholds, the fine counts ([`fine_bin`]) of its counted
/// training rows' standardised values, for the pooled quantiles.
fn fine_counts(train: &Dataset, counted: &[bool], boosting: &Boosting) -> Vec<Vec<u64>> {
    let inputs: Vec<usize> = boosting.quantiled().collect();
    let mut fine = vec![vec![0u64; FINE_BINS]; inputs.len()];
    for row in (0..train.rows()).filter(|&row| counted[row]) {
        let values = train.row(row);
        for (counts, &input) in fine.iter_mut().zip(&inputs) {
            counts[fine_bin(values[input])] += 1;
        }
    }
    fine
}

/// Whether the histograms count each training row: every row, or under pooled noise each
/// patient's first `rows_per_patient` ones.
fn counted_rows(train: &Dataset, pooled: Option<&PooledNoise>) -> Vec<bool> {
    let Some(pooled) = pooled else { return vec![true; train.rows()] };
    let mut counted = vec![false; train.rows()];
    let rows = match train.groups() {
        Some(groups) => pooled.counted_rows(groups),
        None => (0..train.rows()).collect(),
    };
    rows.into_iter().for_each(|row| counted[row] = true);
    counted
}

/// The ensemble every participant agreed to (after the base session).
pub(crate) fn agreed_ensemble(state: &BoostingState) -> Result<&Ensemble> {
    state.ensemble.as_ref().ok_or(
        ProtocolError::Missing { message: "boosting state", field: "the ensemble (after the base session)" }.into(),
    )
}
