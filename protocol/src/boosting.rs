//! Gradient-boosted trees in a federation: what the hospitals agreed to grow ([`Boosting`]),
//! how far the ensemble has grown ([`BoostingState`], part of the server state every state
//! digest covers), what the next training session measures ([`Step`]) and its contribution.
//!
//! ```text
//! round 1 (base):        [training rows, positives,                      (counts, 2 limbs each)
//!                         per numeric input without thresholds, its FINE_BINS fine counts]
//! a tree's level ℓ:      [evaluation tail of the ensemble so far, ℓ = 0 only |
//!                         per measured node, per histogram cell: Σ gradient, Σ hessian
//!                         (60-bit two's complement, 3 limbs each), rows (2 limbs)]
//! ```
//! A tree takes at most `depth` sessions, one per level, every open node of the level in one
//! vector; of two siblings only the one with fewer rows is measured, the other is its parent's
//! histogram less it ([`fedcare_core::gbdt::grow`]). Every party applies the decrypted sums by
//! the same rule (`output::boosting_round`), so they hold the same trees; training ends when the
//! ensemble has its trees, and the final evaluation scores it as any model. A numeric input
//! without thresholds (no edges in the schema) is cut at the pooled quantiles of its values
//! ([`fedcare_core::gbdt::quantiles`]), from the fine counts the base session sums.
//!
//! What the sums reveal: per node and per (input, bin), the pooled sums of gradients, hessians
//! and rows of the rows in it — the pooled label counts of the base session, and, since the
//! gradients are functions of the labels and the ensemble's scores, roughly the pooled positive
//! rate per bin of every input within every node (`docs/threat-model.md`). No hospital's own
//! histograms are ever decrypted.
//!
//! Under a federation's pooled noise (`[privacy]`) each hospital counts at most
//! `rows_per_patient` rows of a patient, adds its own discrete Gaussian noise to its base counts
//! and to every cell of its histograms ([`Boosting::histogram_noise`]: `σ_p` times one patient's
//! most change of the gradient, hessian or row histogram, which grows with the inputs one row can
//! set, not with the histogram's cells), and the trees' first levels evaluate
//! nothing (their tail is zeros; every tree is kept). A session is then
//! [`crate::BOOSTING_SESSION_STATISTICS`] pooled statistics of `1/(2σ_p²)`-zCDP each, charged to
//! ε like the setup's.

use fedcare_core::ColumnStats;
use fedcare_core::gbdt::{
    BoostingConfig, Cell, Cuts, Ensemble, FINE_BINS, GRADIENT_SCALE, Growing, NodeHistogram, QUANTILE_BINS,
    quantile_thresholds,
};
use fedcare_core::privacy::PooledNoise;
use serde::{Deserialize, Serialize};

use crate::contribution::{
    COUNT_LIMBS, ContributionLayout, GlobalEvaluation, LIMB_BITS, LocalEvaluation, count_from_limbs, from_limbs,
    push_limbs,
};
use crate::error::ProtocolError;

/// Limbs of a gradient or hessian sum: 60-bit two's complement.
const SUM_LIMBS: usize = 3;
/// Values of one histogram cell.
pub const CELL_VALUES: usize = 2 * SUM_LIMBS + COUNT_LIMBS;

/// What a boosting federation grows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Boosting {
    /// The trees' settings.
    pub config: BoostingConfig,
    /// Per numeric input (in input order), its bin thresholds in the column's own units (the
    /// schema's edges inside its range); an empty list: the pooled quantiles of its standardised
    /// values, which the base session measures ([`BoostingState::quantiles`]).
    pub numeric_thresholds: Vec<Vec<f64>>,
}

impl Boosting {
    /// Training sessions at most: the base session and `depth` levels a tree.
    pub fn rounds(&self) -> u32 {
        1 + self.config.trees.saturating_mul(self.config.depth)
    }

    /// The numeric inputs without thresholds, whose pooled quantiles the base session measures,
    /// in input order.
    pub fn quantiled(&self) -> impl Iterator<Item = usize> + '_ {
        self.numeric_thresholds.iter().enumerate().filter_map(|(input, t)| t.is_empty().then_some(input))
    }

    /// How many numeric inputs have no thresholds ([`Self::quantiled`]).
    pub fn quantiled_inputs(&self) -> usize {
        self.quantiled().count()
    }

    /// Every input's cuts under `state`: the numeric inputs' thresholds standardised with the
    /// setup's federated statistics `feature_stats` (as the hospitals' rows are), or for those
    /// without, the pooled quantiles of the base session (none before it); then `width − numeric`
    /// binary inputs cut at 0.5. Refuses a state whose quantiles are not one list per such input.
    pub fn cuts(
        &self,
        feature_stats: &[ColumnStats],
        width: usize,
        state: &BoostingState,
    ) -> Result<Cuts, ProtocolError> {
        let measured = state.ensemble.is_some();
        if measured && state.quantiles.len() != self.quantiled_inputs() {
            return Err(ProtocolError::Invalid {
                field: "boosting quantiles",
                value: format!("{} lists", state.quantiles.len()),
                expected: format!("one per numeric input without thresholds ({})", self.quantiled_inputs()),
            });
        }
        let mut quantiles = state.quantiles.iter();
        let numeric = self
            .numeric_thresholds
            .iter()
            .enumerate()
            .map(|(input, thresholds)| {
                if thresholds.is_empty() {
                    return quantiles.next().cloned().unwrap_or_default();
                }
                let mut cuts: Vec<f32> = thresholds.iter().map(|&t| t as f32).collect();
                if let Some(stats) = feature_stats.get(input) {
                    cuts.iter_mut().for_each(|t| *t = stats.standardize(*t));
                }
                cuts.dedup();
                cuts
            })
            .collect();
        Cuts::for_inputs(numeric, width).map_err(|e| ProtocolError::Invalid {
            field: "boosting thresholds",
            value: e.to_string(),
            expected: "finite, strictly ascending thresholds for each numeric input".into(),
        })
    }

    /// The most cells a node's histogram may have over `width` inputs (before thresholds that
    /// standardise to the same value are merged).
    pub fn most_cells(&self, width: usize) -> usize {
        let numeric: usize =
            self.numeric_thresholds.iter().map(|t| if t.is_empty() { QUANTILE_BINS - 1 } else { t.len() }).sum();
        1 + numeric + width.saturating_sub(self.numeric_thresholds.len())
    }

    /// The values of the longest contribution a tree's level may take over `width` inputs: the
    /// evaluation tail and the most nodes a level measures (one, or one of each pair of
    /// siblings of the level before: `2^(depth − 2)`).
    pub fn longest(&self, width: usize, layout: &ContributionLayout) -> usize {
        let nodes = 1usize << self.config.depth.saturating_sub(2);
        let level = layout.tail_len() + nodes * self.most_cells(width) * CELL_VALUES;
        level.max(Step::Base { quantiled: self.quantiled_inputs() }.len(layout, 0))
    }
}

/// The scales of a hospital's discrete Gaussian noise on a level's histogram cells, in the
/// cells' units (gradients and hessians in units of `1/GRADIENT_SCALE`, rows).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HistogramNoise {
    /// On each cell's Σ gradient.
    pub grad: f64,
    /// On each cell's Σ hessian.
    pub hess: f64,
    /// On each cell's rows.
    pub count: f64,
}

impl Boosting {
    /// The noise `pooled` puts on a level's histograms when one row can fall past the first bin
    /// of at most `inputs_per_row` inputs (every input of plain data; a schema's numeric inputs
    /// and one per categorical column, whose one-hot inputs hold a single 1:
    /// `fedcare_data::Schema::inputs_per_row`). A row adds to one measured node's total and to
    /// at most one cell per such input, each time at most its gradient `max(w, 1)`, its hessian
    /// `max(w, 1)/4` and one row (`w` = `pos_weight`): one row changes each of the three
    /// histograms by at most `√(1 + inputs_per_row)` times that in L2 norm, and one patient, of
    /// whom `rows_per_patient` rows are counted, by that many times more.
    pub fn histogram_noise(&self, pooled: &PooledNoise, inputs_per_row: usize) -> HistogramNoise {
        let touched = ((1 + inputs_per_row) as f64).sqrt();
        let weight = self.config.pos_weight.max(1.0);
        HistogramNoise {
            grad: pooled.scale(touched * (weight * GRADIENT_SCALE).ceil()),
            hess: pooled.scale(touched * (weight / 4.0 * GRADIENT_SCALE).ceil()),
            count: pooled.scale(touched),
        }
    }

    /// The noise `pooled` puts on each fine count of the base session: a row adds one to one
    /// fine bin of each numeric input without thresholds, so one patient changes the fine counts
    /// by at most `rows_per_patient · √(those inputs)` in L2 norm. With the rows and positives,
    /// the base session's three statistics.
    pub fn fine_noise(&self, pooled: &PooledNoise) -> f64 {
        pooled.scale((self.quantiled_inputs() as f64).sqrt())
    }
}

/// How far a federation's ensemble has grown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BoostingState {
    /// The ensemble (`None` before the base session).
    pub ensemble: Option<Ensemble>,
    /// The tree being grown (`None` between trees).
    pub growing: Option<Growing>,
    /// Trees of the best ensemble evaluated so far (the server state's best model).
    pub kept_trees: u32,
    /// Per numeric input without thresholds, in input order, the standardised thresholds at
    /// its pooled quantiles (from the base session; empty before it).
    pub quantiles: Vec<Vec<f32>>,
}

/// What a boosting federation's next training session measures.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The pooled rows and positives, for the base margin, and the fine counts of the
    /// `quantiled` numeric inputs without thresholds.
    Base {
        /// Numeric inputs without thresholds.
        quantiled: usize,
    },
    /// A level of a tree: the tree as grown so far (a new one at level 0, which also
    /// evaluates the ensemble so far).
    Level(Growing),
    /// Every tree is grown.
    Done,
}

impl Step {
    /// Whether the session evaluates the ensemble so far (a tree's first level).
    pub fn evaluates(&self) -> bool {
        matches!(self, Self::Level(growing) if growing.level() == 0)
    }

    /// Values of this step's contribution, each node having `cells` cells.
    pub fn len(&self, layout: &ContributionLayout, cells: usize) -> usize {
        match self {
            Self::Base { quantiled } => (2 + quantiled * FINE_BINS) * COUNT_LIMBS,
            Self::Level(growing) => {
                let tail = if self.evaluates() { layout.tail_len() } else { 0 };
                tail + growing.measured().len() * cells * CELL_VALUES
            }
            Self::Done => 0,
        }
    }
}

impl BoostingState {
    /// The next training session's step.
    pub fn step(&self, boosting: &Boosting) -> Step {
        let config = &boosting.config;
        match (&self.ensemble, &self.growing) {
            (None, _) => Step::Base { quantiled: boosting.quantiled_inputs() },
            (Some(_), Some(growing)) => Step::Level(growing.clone()),
            (Some(ensemble), None) if (ensemble.trees.len() as u64) < u64::from(config.trees) => {
                Step::Level(Growing::new())
            }
            (Some(_), None) => Step::Done,
        }
    }

    /// Whether every tree is grown.
    pub fn finished(&self, boosting: &Boosting) -> bool {
        self.step(boosting) == Step::Done
    }

    /// Sets the thresholds at the pooled quantiles of the base session's `fine` counts.
    pub fn set_quantiles(&mut self, fine: &[Vec<i64>]) {
        self.quantiles = fine.iter().map(|counts| quantile_thresholds(counts)).collect();
    }

    /// The ensemble the server state's best model stands for: its first `kept_trees` trees.
    pub fn kept(&self) -> Option<Ensemble> {
        self.ensemble.as_ref().map(|ensemble| ensemble.truncated(self.kept_trees as usize))
    }
}

/// What a hospital contributes to a boosting training session.
#[derive(Debug, Clone, PartialEq)]
pub enum BoostingContribution {
    /// Its training rows and positives, and per numeric input without thresholds its
    /// [`FINE_BINS`] fine counts ([`fedcare_core::gbdt::fine_bin`]; noisy counts wrap).
    Base {
        /// Rows.
        rows: u64,
        /// Positives.
        positives: u64,
        /// Fine counts.
        fine: Vec<Vec<u64>>,
    },
    /// A level's histograms, of the measured nodes in order, and at a tree's first level its
    /// evaluation of the ensemble so far.
    Level {
        /// The evaluation (a tree's first level only).
        evaluation: Option<LocalEvaluation>,
        /// The histograms.
        histograms: Vec<NodeHistogram>,
    },
}

/// The decrypted sum of a boosting training session.
#[derive(Debug, Clone, PartialEq)]
pub enum BoostingSum {
    /// The pooled rows and positives, and the pooled fine counts (signed: noise may make one
    /// negative).
    Base {
        /// Rows.
        rows: u64,
        /// Positives.
        positives: u64,
        /// Fine counts.
        fine: Vec<Vec<i64>>,
    },
    /// The pooled histograms, and at a tree's first level the evaluation of the ensemble so far.
    Level {
        /// The evaluation.
        evaluation: Option<GlobalEvaluation>,
        /// The histograms.
        histograms: Vec<NodeHistogram>,
    },
}

fn push_signed(values: &mut Vec<f64>, value: i64) {
    push_limbs(values, value as u64, SUM_LIMBS);
}

/// The two's complement integer `values` (limbs) hold: a sum, or a count under noise.
fn signed_from_limbs(values: &[f64]) -> i64 {
    let shift = 64 - LIMB_BITS * values.len() as u32;
    ((from_limbs(values) << shift) as i64) >> shift
}

/// A hospital's vector for `step`; refuses a contribution of another shape.
pub fn boosting_vector(
    layout: &ContributionLayout,
    step: &Step,
    cells: usize,
    contribution: &BoostingContribution,
    total_test_rows: u64,
) -> Result<Vec<f64>, ProtocolError> {
    let mismatch = |what: String| ProtocolError::Invalid {
        field: "boosting contribution",
        value: what,
        expected: format!("the {} values of the session's step", step.len(layout, cells)),
    };
    let mut values = Vec::with_capacity(step.len(layout, cells));
    match (step, contribution) {
        (Step::Base { quantiled }, BoostingContribution::Base { rows, positives, fine }) => {
            if fine.len() != *quantiled || fine.iter().any(|counts| counts.len() != FINE_BINS) {
                return Err(mismatch(format!("{} inputs' fine counts", fine.len())));
            }
            push_limbs(&mut values, *rows, COUNT_LIMBS);
            push_limbs(&mut values, *positives, COUNT_LIMBS);
            fine.iter().flatten().for_each(|&count| push_limbs(&mut values, count, COUNT_LIMBS));
        }
        (Step::Level(growing), BoostingContribution::Level { evaluation, histograms }) => {
            match (step.evaluates(), evaluation) {
                (true, Some(evaluation)) => {
                    layout.check_evaluation(evaluation)?;
                    layout.push_tail(&mut values, evaluation, total_test_rows);
                }
                (false, None) => {}
                _ => {
                    return Err(mismatch(
                        "an evaluation where the level takes none, or none where it takes one".into(),
                    ));
                }
            }
            if histograms.len() != growing.measured().len() || histograms.iter().any(|h| h.cells.len() != cells) {
                return Err(mismatch(format!("{} histograms", histograms.len())));
            }
            for cell in histograms.iter().flat_map(|h| &h.cells) {
                push_signed(&mut values, cell.grad);
                push_signed(&mut values, cell.hess);
                push_limbs(&mut values, cell.count as u64, COUNT_LIMBS);
            }
        }
        _ => return Err(mismatch("a contribution of another step".into())),
    }
    Ok(values)
}

/// Decodes the decrypted sum of a boosting training session of `step`.
pub fn decode_boosting(
    layout: &ContributionLayout,
    step: &Step,
    cells: usize,
    values: &[f64],
    total_test_rows: u64,
) -> Result<BoostingSum, ProtocolError> {
    if values.len() != step.len(layout, cells) || *step == Step::Done {
        return Err(ProtocolError::Invalid {
            field: "decrypted sum",
            value: format!("{} values", values.len()),
            expected: format!("{} values for the boosting step", step.len(layout, cells)),
        });
    }
    if let Step::Base { .. } = step {
        let (rows, rest) = values.split_at(COUNT_LIMBS);
        let (positives, fine) = rest.split_at(COUNT_LIMBS);
        let fine = fine
            .chunks_exact(FINE_BINS * COUNT_LIMBS)
            .map(|counts| counts.chunks_exact(COUNT_LIMBS).map(signed_from_limbs).collect())
            .collect();
        return Ok(BoostingSum::Base { rows: count_from_limbs(rows), positives: count_from_limbs(positives), fine });
    }
    let (evaluation, rest) = if step.evaluates() {
        let (tail, rest) = values.split_at(layout.tail_len());
        (Some(layout.decode_tail(tail, total_test_rows)), rest)
    } else {
        (None, values)
    };
    let histograms = rest
        .chunks_exact(cells * CELL_VALUES)
        .map(|node| NodeHistogram {
            cells: node
                .chunks_exact(CELL_VALUES)
                .map(|cell| Cell {
                    grad: signed_from_limbs(&cell[..SUM_LIMBS]),
                    hess: signed_from_limbs(&cell[SUM_LIMBS..2 * SUM_LIMBS]),
                    count: signed_from_limbs(&cell[2 * SUM_LIMBS..]),
                })
                .collect(),
        })
        .collect();
    Ok(BoostingSum::Level { evaluation, histograms })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> ContributionLayout {
        crate::driver::test_settings(3).layout
    }

    fn boosting() -> Boosting {
        Boosting {
            config: BoostingConfig { depth: 3, ..BoostingConfig::default() },
            numeric_thresholds: vec![vec![2.0, 4.0], vec![]],
        }
    }

    #[test]
    fn numeric_thresholds_are_standardised_as_the_rows_are_and_the_others_cut_at_pooled_quantiles() {
        let feature_stats = [ColumnStats { mean: 3.0, std: 2.0 }, ColumnStats { mean: 10.0, std: 4.0 }];
        let mut state = BoostingState::default();
        // Before the base session the input without thresholds has none.
        let cuts = boosting().cuts(&feature_stats, 5, &state).unwrap();
        assert_eq!(cuts.thresholds(0), [-0.5, 0.5]);
        assert!(cuts.thresholds(1).is_empty());
        assert_eq!(cuts.thresholds(4), [0.5]);
        // The base session's pooled fine counts: rows spread evenly over 64 fine bins.
        let mut counts = vec![0i64; FINE_BINS];
        counts[32..96].iter_mut().for_each(|c| *c = 3);
        state.ensemble = Some(Ensemble::new(-2.0));
        state.set_quantiles(&[counts]);
        let cuts = boosting().cuts(&feature_stats, 5, &state).unwrap();
        assert_eq!(cuts.thresholds(1).len(), QUANTILE_BINS - 1);
        assert_eq!((cuts.thresholds(1)[0], cuts.thresholds(1)[30]), (-1.875, 1.875));
        assert_eq!(cuts.cells(), boosting().most_cells(5));
        // A state with another number of quantile lists is refused.
        state.quantiles.push(Vec::new());
        assert!(boosting().cuts(&feature_stats, 5, &state).is_err());
    }

    #[test]
    fn summed_vectors_decode_to_the_summed_histograms_negative_gradients_included() {
        let layout = layout();
        let mut growing = Growing::new();
        let cuts = Cuts::for_inputs(vec![vec![1.0]], 2).unwrap();
        let histogram = |g: i64| NodeHistogram {
            cells: vec![Cell { grad: g, hess: 7, count: 3 }, Cell { grad: -1, hess: 1, count: 1 }, Cell::default()],
        };
        let step = Step::Level(growing.clone());
        let evaluation = LocalEvaluation::of_logits(&[0.5, -1.0], &[1.0, 0.0], layout.bins);
        let contribution =
            |g| BoostingContribution::Level { evaluation: Some(evaluation.clone()), histograms: vec![histogram(g)] };
        let a = boosting_vector(&layout, &step, cuts.cells(), &contribution(-(1 << 40)), 4).unwrap();
        let b = boosting_vector(&layout, &step, cuts.cells(), &contribution(5), 4).unwrap();
        assert_eq!(a.len(), step.len(&layout, cuts.cells()));
        let sum: Vec<f64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        let BoostingSum::Level { evaluation, histograms } =
            decode_boosting(&layout, &step, cuts.cells(), &sum, 4).unwrap()
        else {
            panic!("a level decodes as a level")
        };
        assert_eq!(evaluation.unwrap().histogram.positives.iter().sum::<u64>(), 2);
        let mut expected = histogram(-(1 << 40));
        expected.add(&histogram(5));
        assert_eq!(histograms, vec![expected]);
        // A level after the root evaluates nothing and measures what its tree asks for.
        growing
            .apply(histograms, &cuts, &BoostingConfig { min_child_weight: 0.0, ..BoostingConfig::default() })
            .unwrap();
        assert!(!Step::Level(growing).evaluates());
        let base = BoostingContribution::Base { rows: 1, positives: 0, fine: Vec::new() };
        assert!(boosting_vector(&layout, &step, cuts.cells(), &base, 4).is_err());
    }

    #[test]
    fn the_state_steps_from_the_base_through_every_tree() {
        let boosting = Boosting { config: BoostingConfig { trees: 2, ..BoostingConfig::default() }, ..boosting() };
        let mut state = BoostingState::default();
        let base = Step::Base { quantiled: 1 };
        assert_eq!(state.step(&boosting), base);
        state.ensemble = Some(Ensemble::new(-2.0));
        assert!(state.step(&boosting).evaluates());
        state.ensemble.as_mut().unwrap().trees =
            vec![fedcare_core::gbdt::Tree { nodes: vec![fedcare_core::gbdt::Node::Leaf { value: 0.5 }] }; 2];
        assert!(state.finished(&boosting));
        // Rows 10, positives 3, and one input's fine counts: 2 rows in bin 0 and, under noise, -1 in bin 5.
        let mut fine = vec![0u64; FINE_BINS];
        (fine[0], fine[5]) = (2, u64::MAX);
        let contribution = BoostingContribution::Base { rows: 10, positives: 3, fine: vec![fine] };
        let values = boosting_vector(&layout(), &base, 1, &contribution, 0).unwrap();
        assert_eq!(values.len(), base.len(&layout(), 1));
        assert_eq!(&values[..4], [10.0 / 1048576.0, 0.0, 3.0 / 1048576.0, 0.0]);
        let BoostingSum::Base { rows, positives, fine } = decode_boosting(&layout(), &base, 1, &values, 0).unwrap()
        else {
            panic!("a base session decodes as one")
        };
        assert_eq!((rows, positives, fine[0][0], fine[0][5], fine[0][6]), (10, 3, 2, -1, 0));
    }
}
