//! A hospital's part in growing boosted trees: its label counts for the base margin, then for
//! each level of a tree the gradient histograms of its training rows in the level's measured
//! nodes, computed on the ensemble and the tree every participant agreed to
//! ([`fedcare_protocol::boosting`]), and at a tree's first level its evaluation of the ensemble
//! so far. Nothing here leaves the hospital but the vector, which is encrypted.
//!
//! [`Cache`] keeps the binned training rows and every row's margin between sessions: an
//! ensemble only grows by trees appended, so the margins are brought up to date by adding the
//! new trees' leaves in order, which gives the same `f32` sums as scoring the whole ensemble.

use fedcare_core::Dataset;
use fedcare_core::gbdt::{BinnedRows, Cuts, Ensemble, gradient_pairs, node_histograms};
use fedcare_protocol::boosting::{Boosting, BoostingContribution, BoostingState, Step, boosting_vector};

use crate::error::{FederationError, ProtocolError, Result};
use crate::protocol::{FederationSettings, LocalEvaluation, PublicFigures};

/// What a hospital keeps between the sessions of one boosting federation: the binned training
/// rows under the federation's cuts, and the margins of the training and held-out rows under
/// `ensemble`.
pub(crate) struct Cache {
    cuts: Cuts,
    binned: BinnedRows,
    ensemble: Ensemble,
    train: Vec<f32>,
    test: Vec<f32>,
}

impl Cache {
    /// The cache for `cuts` and `ensemble`: `cache` brought up to date when it was made under the
    /// same cuts and an ensemble `ensemble` extends, made anew otherwise.
    fn updated(cache: Option<Self>, cuts: Cuts, ensemble: &Ensemble, train: &Dataset, test: &Dataset) -> Result<Self> {
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
    (train, test): (&Dataset, &Dataset),
    cache: &mut Option<Cache>,
) -> Result<Vec<f64>> {
    let width = settings.spec.input_width();
    let cuts = boosting.cuts(&figures.feature_stats, width)?;
    let cells = cuts.cells();
    let step = state.step(&boosting.config);
    let contribution = match &step {
        Step::Base => BoostingContribution::Base { rows: train.rows() as u64, positives: train.positives() as u64 },
        Step::Level(growing) => {
            let current = Cache::updated(cache.take(), cuts, agreed_ensemble(state)?, train, test)?;
            let pairs = gradient_pairs(&current.train, train.labels(), boosting.config.pos_weight)?;
            let nodes: Vec<Option<u32>> = (0..train.rows()).map(|row| growing.open_node(train.row(row))).collect();
            let histograms = node_histograms(&current.binned, &pairs, &nodes, &growing.measured(), &current.cuts);
            let evaluation = step
                .evaluates()
                .then(|| LocalEvaluation::of_logits(&current.test, test.labels(), settings.layout.bins));
            *cache = Some(current);
            BoostingContribution::Level { evaluation, histograms }
        }
        Step::Done => {
            return Err(FederationError::Task("a training session after every tree was grown".into()));
        }
    };
    Ok(boosting_vector(&settings.layout, &step, cells, &contribution, figures.test_rows)?)
}

/// The ensemble every participant agreed to (after the base session).
pub(crate) fn agreed_ensemble(state: &BoostingState) -> Result<&Ensemble> {
    state.ensemble.as_ref().ok_or(
        ProtocolError::Missing { message: "boosting state", field: "the ensemble (after the base session)" }.into(),
    )
}
