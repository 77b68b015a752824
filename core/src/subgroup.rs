//! A model's performance per subgroup of the held-out rows (race, sex, age band, payer…), from
//! score histograms: one [`ScoreHistogram`] per cell of each subgroup column
//! ([`SubgroupHistograms`]). That is what the secure evaluation decrypts (the sum over the
//! hospitals), and what a hospital computes from its own labelled file; [`subgroup_report`] turns
//! it into figures.
//!
//! Per subgroup: rows, positive rate, AUROC (with its binning bound), AUPRC, the reliability
//! table and ECE after the model's Platt scaling, and the gaps against the whole population: the
//! AUROC gap, and the true-positive-rate gap at the operating threshold that flags the top
//! [`TOP_SHARE`] of the population's rows (equal opportunity). The population of a column is the
//! sum of its cells (every row falls in one cell, the missing values included), so the figures
//! of every column describe the same rows.
//!
//! Guarantees:
//! - A subgroup is shown only when its rows, positives and negatives are each at least
//!   `min_cell`; otherwise it is [`SubgroupFigures::TooSmall`] and no figure of it appears, not
//!   even its row count. A lone small subgroup of a column hides the smallest other one too, so
//!   that no count can be worked out by subtraction from the population; a reliability bin below
//!   `min_cell` rows is left out in the same way.
//! - The threshold lies on a score-bin edge: the rows flagged are those of the highest bins that
//!   hold at least [`TOP_SHARE`] of the population ([`SubgroupColumn::flagged_share`] says how
//!   many more the bin of the threshold adds).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::calibration::Platt;
use crate::explore::{ColumnSpec, hidden};
use crate::histogram::ScoreHistogram;
use crate::metrics::{CalibrationBin, calibration_of_groups, expected_calibration_error};

/// The share of the population the operating threshold flags as high risk.
pub const TOP_SHARE: f64 = 0.10;
/// Equal-width bins of each subgroup's reliability table.
pub const RELIABILITY_BINS: usize = 10;
/// Most points of each subgroup's ROC curve.
pub const ROC_POINTS: usize = 51;

/// Score histograms per subgroup: for each subgroup column, one histogram per cell (the column's
/// cells in order, then one for its missing values), all of the same bins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubgroupHistograms {
    /// Per column, per cell.
    pub columns: Vec<Vec<ScoreHistogram>>,
}

impl SubgroupHistograms {
    /// Empty histograms of `bins` bins for `columns` (each with its cells and a missing cell).
    pub fn zeros(columns: &[ColumnSpec], bins: usize) -> Self {
        Self { columns: columns.iter().map(|c| vec![ScoreHistogram::new(bins); c.cells() + 1]).collect() }
    }

    /// The probabilities of `logits` binned by label in the cell of each row: `cells[c][row]` is
    /// the cell of `row` in column `c` (its cells' count for a missing value). Rows past the
    /// shortest of `logits`, `labels` and a column's cells are ignored, and so is a cell past the
    /// missing one.
    pub fn of_logits(
        columns: &[ColumnSpec],
        cells: &[Vec<usize>],
        logits: &[f32],
        labels: &[f32],
        bins: usize,
    ) -> Self {
        let mut histograms = Self::zeros(columns, bins.max(1));
        for (histograms, cells) in histograms.columns.iter_mut().zip(cells) {
            for ((&cell, &z), &y) in cells.iter().zip(logits).zip(labels) {
                if let Some(histogram) = histograms.get_mut(cell) {
                    histogram.add(z, y);
                }
            }
        }
        histograms
    }

    /// Whether these histograms have the shape `columns` and `bins` give.
    pub fn fits(&self, columns: &[ColumnSpec], bins: usize) -> bool {
        self.columns.len() == columns.len()
            && self.columns.iter().zip(columns).all(|(cells, spec)| {
                cells.len() == spec.cells() + 1 && cells.iter().all(|h| h.bins() == bins && h.negatives.len() == bins)
            })
    }

    /// Histogram cells of `columns` at `bins` bins: positives' and negatives' bins of every cell.
    pub fn values(columns: &[ColumnSpec], bins: usize) -> usize {
        columns.iter().map(|c| (c.cells() + 1) * 2 * bins).sum()
    }
}

/// A subgroup's figures, or why there are none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubgroupFigures {
    /// Figures of a subgroup large enough to show.
    Shown(GroupFigures),
    /// Fewer than `min_cell` rows, positives or negatives (or hidden with a lone such subgroup):
    /// no figure is given.
    TooSmall,
}

impl SubgroupFigures {
    /// The figures, when shown.
    pub fn shown(&self) -> Option<&GroupFigures> {
        match self {
            Self::Shown(figures) => Some(figures),
            Self::TooSmall => None,
        }
    }
}

/// The figures of a group of rows (a subgroup, or a column's whole population).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupFigures {
    /// Held-out rows.
    pub rows: u64,
    /// Positives among them.
    pub positives: u64,
    /// Positives over rows.
    pub positive_rate: f64,
    /// AUROC of the binned scores.
    pub auroc: Option<f64>,
    /// How far the binning can move the AUROC from the exact one
    /// ([`ScoreHistogram::auroc_binning_bound`]).
    pub auroc_bound: f64,
    /// AUPRC (average precision) of the binned scores.
    pub auprc: Option<f64>,
    /// Expected calibration error after the model's Platt scaling.
    pub ece: f64,
    /// The reliability table after the Platt scaling ([`RELIABILITY_BINS`] equal-width bins),
    /// bins below `min_cell` rows left out.
    pub reliability: Vec<CalibrationBin>,
    /// Reliability bins left out (below `min_cell`, or hidden with a lone such bin).
    pub hidden_bins: u32,
    /// The ROC curve, `[FPR, TPR]` thinned to at most [`ROC_POINTS`] points.
    pub roc: Vec<[f64; 2]>,
    /// True-positive rate at the column's operating threshold.
    pub tpr: Option<f64>,
    /// AUROC minus the population's (0 for the population).
    pub auroc_gap: Option<f64>,
    /// True-positive rate minus the population's at the operating threshold (equal opportunity).
    pub tpr_gap: Option<f64>,
}

/// One subgroup: a cell of a subgroup column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subgroup {
    /// The cell's label (`"Caucasian"`, `"[70, 80)"`, `"missing"`).
    pub label: String,
    /// Its figures, or [`SubgroupFigures::TooSmall`].
    pub figures: SubgroupFigures,
}

/// The subgroups of one column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubgroupColumn {
    /// The column's name.
    pub name: String,
    /// The whole population (the sum of the column's cells), or too small to show.
    pub population: SubgroupFigures,
    /// The operating threshold: the calibrated probability at the lower edge of the lowest
    /// flagged score bin (`None` without rows).
    pub threshold: Option<f64>,
    /// The share of the population's rows the threshold flags (at least [`TOP_SHARE`]; more by
    /// the rows of the threshold's bin).
    pub flagged_share: f64,
    /// Every non-empty cell, in the column's order (the missing values last).
    pub subgroups: Vec<Subgroup>,
}

/// Every subgroup column's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubgroupReport {
    /// The smallest subgroup, positives, negatives or reliability bin shown.
    pub min_cell: u64,
    /// The share of the population the operating threshold flags.
    pub top_share: f64,
    /// Per column.
    pub columns: Vec<SubgroupColumn>,
}

/// The report of `histograms` on `columns` (histograms of another shape give an empty report),
/// calibrated by `platt` (the raw scores without one), no figure of fewer than `min_cell` rows.
pub fn subgroup_report(
    columns: &[ColumnSpec],
    histograms: &SubgroupHistograms,
    platt: Option<&Platt>,
    min_cell: u64,
) -> SubgroupReport {
    let min_cell = min_cell.max(1);
    let report = |spec: &ColumnSpec, cells: &Vec<ScoreHistogram>| {
        let mut population = ScoreHistogram::new(cells.first().map_or(1, ScoreHistogram::bins));
        for cell in cells {
            population.merge(cell);
        }
        let threshold_bin = flagged_bins_from(&population, TOP_SHARE);
        let (population_rows, _) = totals(&population);
        let flagged = threshold_bin.map_or(0, |t| rows_from(&population, t));
        let base = group_figures(&population, platt, threshold_bin, None, min_cell);
        let small = |h: &ScoreHistogram| {
            let (rows, positives) = totals(h);
            rows < min_cell || positives < min_cell || rows - positives < min_cell
        };
        // Only the non-empty cells are listed: an empty one discloses no one.
        let listed: Vec<(usize, &ScoreHistogram)> = cells.iter().enumerate().filter(|(_, h)| totals(h).0 > 0).collect();
        let rows: Vec<u64> = listed.iter().map(|(_, h)| totals(h).0).collect();
        let smalls: Vec<bool> = listed.iter().map(|(_, h)| small(h)).collect();
        let hide = hidden(&rows, &smalls, small(&population));
        let subgroups = listed
            .iter()
            .zip(&hide)
            .map(|((cell, histogram), &hide)| Subgroup {
                label: if *cell == spec.cells() { "missing".into() } else { spec.cell_label(*cell) },
                figures: if hide {
                    SubgroupFigures::TooSmall
                } else {
                    SubgroupFigures::Shown(group_figures(histogram, platt, threshold_bin, Some(&base), min_cell))
                },
            })
            .collect();
        let population_figures =
            if small(&population) { SubgroupFigures::TooSmall } else { SubgroupFigures::Shown(base) };
        SubgroupColumn {
            name: spec.name.clone(),
            population: population_figures,
            threshold: threshold_bin.map(|t| calibrated(platt, t as f64 / population.bins() as f64)),
            flagged_share: if population_rows == 0 { 0.0 } else { flagged as f64 / population_rows as f64 },
            subgroups,
        }
    };
    let columns = if histograms.columns.len() == columns.len()
        && histograms.columns.iter().zip(columns).all(|(cells, spec)| cells.len() == spec.cells() + 1)
    {
        columns.iter().zip(&histograms.columns).map(|(spec, cells)| report(spec, cells)).collect()
    } else {
        Vec::new()
    };
    SubgroupReport { min_cell, top_share: TOP_SHARE, columns }
}

/// Rows and positives of a histogram.
fn totals(histogram: &ScoreHistogram) -> (u64, u64) {
    let (positives, negatives) = histogram.class_totals();
    (positives + negatives, positives)
}

/// Rows in bins `first..`.
fn rows_from(histogram: &ScoreHistogram, first: usize) -> u64 {
    histogram.positives[first..].iter().chain(&histogram.negatives[first..]).sum()
}

/// The lowest bin of the highest bins holding at least `share` of the rows (`None` without rows).
pub fn flagged_bins_from(histogram: &ScoreHistogram, share: f64) -> Option<usize> {
    let (rows, _) = totals(histogram);
    if rows == 0 {
        return None;
    }
    let target = libm::ceil(share * rows as f64).max(1.0) as u64;
    let mut above = 0u64;
    for bin in (0..histogram.bins()).rev() {
        above += histogram.positives[bin] + histogram.negatives[bin];
        if above >= target {
            return Some(bin);
        }
    }
    Some(0)
}

/// The calibrated probability of raw probability `p` (`p` itself without a scaling).
fn calibrated(platt: Option<&Platt>, p: f64) -> f64 {
    match platt {
        None => p,
        Some(_) if p <= 0.0 => 0.0,
        Some(_) if p >= 1.0 => 1.0,
        Some(platt) => {
            let z = platt.a * libm::log(p / (1.0 - p)) + platt.b;
            1.0 / (1.0 + libm::exp(-z))
        }
    }
}

/// The reliability table of `histogram` after `platt`: each score bin's rows at the calibrated
/// probability of the bin's centre.
pub fn calibrated_reliability(histogram: &ScoreHistogram, platt: Option<&Platt>, groups: usize) -> Vec<CalibrationBin> {
    let bins = histogram.bins() as f64;
    let rows = histogram
        .positives
        .iter()
        .zip(&histogram.negatives)
        .enumerate()
        .map(|(i, (&p, &n))| (calibrated(platt, (i as f64 + 0.5) / bins), p + n, p));
    calibration_of_groups(rows, groups)
}

fn group_figures(
    histogram: &ScoreHistogram,
    platt: Option<&Platt>,
    threshold_bin: Option<usize>,
    population: Option<&GroupFigures>,
    min_cell: u64,
) -> GroupFigures {
    let (rows, positives) = totals(histogram);
    let table = calibrated_reliability(histogram, platt, RELIABILITY_BINS);
    let ece = expected_calibration_error(&table);
    let counts: Vec<u64> = table.iter().map(|b| b.count).collect();
    let smalls: Vec<bool> = counts.iter().map(|&c| c > 0 && c < min_cell).collect();
    let hide = hidden(&counts, &smalls, false);
    let hidden_bins = hide.iter().filter(|&&h| h).count() as u32;
    let reliability = table.into_iter().zip(hide).filter(|(b, h)| !h && b.count > 0).map(|(b, _)| b).collect();
    let tpr = threshold_bin
        .filter(|_| positives > 0)
        .map(|t| histogram.positives[t..].iter().sum::<u64>() as f64 / positives as f64);
    let auroc = histogram.auroc();
    let gap = |own: Option<f64>, base: Option<f64>| match population {
        None => own.map(|_| 0.0),
        Some(_) => own.zip(base).map(|(own, base)| own - base),
    };
    GroupFigures {
        rows,
        positives,
        positive_rate: if rows == 0 { 0.0 } else { positives as f64 / rows as f64 },
        auroc,
        auroc_bound: histogram.auroc_binning_bound(),
        auprc: histogram.auprc(),
        ece,
        reliability,
        hidden_bins,
        roc: histogram.roc_curve(ROC_POINTS),
        tpr,
        auroc_gap: gap(auroc, population.and_then(|p| p.auroc)),
        tpr_gap: gap(tpr, population.and_then(|p| p.tpr)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explore::ColumnKind;
    use crate::metrics::auroc;

    fn sex() -> ColumnSpec {
        ColumnSpec {
            name: "gender".into(),
            kind: ColumnKind::Categorical {
                categories: 3,
                labels: vec!["Female".into(), "Male".into(), "other".into()],
            },
        }
    }

    /// Rows whose scores depend on the cell: cell 0 well ranked, cell 1 barely.
    fn rows(n: usize) -> (Vec<f32>, Vec<f32>, Vec<usize>) {
        let (mut logits, mut labels, mut cells) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            let cell = i % 2;
            let y = if (i / 2) % 5 == 0 { 1.0 } else { 0.0 };
            let noise = ((i * 7919) % 97) as f32 / 97.0 - 0.5;
            let signal = if cell == 0 { 2.0 } else { 0.3 };
            logits.push(y * signal + noise * 2.0 - 1.5);
            labels.push(y);
            cells.push(cell);
        }
        (logits, labels, cells)
    }

    #[test]
    fn each_subgroup_has_its_own_auroc_and_the_gaps_are_against_the_population() {
        let (logits, labels, cells) = rows(4000);
        let columns = [sex()];
        let histograms = SubgroupHistograms::of_logits(&columns, core::slice::from_ref(&cells), &logits, &labels, 1024);
        assert!(histograms.fits(&columns, 1024));
        let report = subgroup_report(&columns, &histograms, None, 10);
        let column = &report.columns[0];
        assert_eq!(column.subgroups.len(), 2, "empty cells are not listed");
        let exact = |cell: usize| {
            let rows: Vec<usize> = (0..logits.len()).filter(|&r| cells[r] == cell).collect();
            let l: Vec<f32> = rows.iter().map(|&r| logits[r]).collect();
            let y: Vec<f32> = rows.iter().map(|&r| labels[r]).collect();
            auroc(&l, &y).unwrap()
        };
        let population = column.population.shown().unwrap();
        assert_eq!((population.rows, population.positives), (4000, 800));
        for (cell, subgroup) in column.subgroups.iter().enumerate() {
            let figures = subgroup.figures.shown().unwrap();
            let auroc = figures.auroc.unwrap();
            assert!((auroc - exact(cell)).abs() <= figures.auroc_bound + 1e-12, "within the binning bound");
            assert!((figures.auroc_gap.unwrap() - (auroc - population.auroc.unwrap())).abs() < 1e-12);
        }
        let (strong, weak) =
            (column.subgroups[0].figures.shown().unwrap(), column.subgroups[1].figures.shown().unwrap());
        assert!(strong.auroc_gap.unwrap() > 0.05 && weak.auroc_gap.unwrap() < -0.05);
        assert!(strong.tpr_gap.unwrap() > 0.0 && weak.tpr_gap.unwrap() < 0.0);
        assert!(column.flagged_share >= TOP_SHARE && column.flagged_share < TOP_SHARE + 0.01);
        assert_eq!((column.subgroups[0].label.as_str(), column.subgroups[1].label.as_str()), ("Female", "Male"));
    }

    #[test]
    fn small_subgroups_give_no_figure_and_a_lone_one_hides_another() {
        let (logits, labels, mut cells) = rows(2000);
        // Nine rows in "other", and a few missing values: both small.
        for cell in cells.iter_mut().take(9) {
            *cell = 2;
        }
        let columns = [sex()];
        let histograms = SubgroupHistograms::of_logits(&columns, core::slice::from_ref(&cells), &logits, &labels, 64);
        let report = subgroup_report(&columns, &histograms, None, 10);
        let figures: Vec<bool> = report.columns[0].subgroups.iter().map(|s| s.figures.shown().is_some()).collect();
        // "other" is alone small: the smaller of the rest is hidden with it.
        assert_eq!(figures.iter().filter(|&&shown| !shown).count(), 2);
        let json = serde_json::to_string(&report).unwrap();
        assert!(json.contains("too_small"));
        // A reliability bin below min_cell is left out.
        for subgroup in &report.columns[0].subgroups {
            if let Some(figures) = subgroup.figures.shown() {
                assert!(figures.reliability.iter().all(|b| b.count >= 10));
            }
        }
    }

    #[test]
    fn the_platt_scaling_moves_the_threshold_and_the_reliability_but_not_the_ranking() {
        let (logits, labels, cells) = rows(3000);
        let columns = [sex()];
        let histograms = SubgroupHistograms::of_logits(&columns, &[cells], &logits, &labels, 256);
        let mut population = ScoreHistogram::new(256);
        histograms.columns[0].iter().for_each(|h| population.merge(h));
        let platt = Platt::fit(&population).unwrap();
        let raw = subgroup_report(&columns, &histograms, None, 10);
        let scaled = subgroup_report(&columns, &histograms, Some(&platt), 10);
        let (raw, scaled) = (&raw.columns[0], &scaled.columns[0]);
        assert_ne!(raw.threshold, scaled.threshold);
        let (a, b) = (raw.population.shown().unwrap(), scaled.population.shown().unwrap());
        assert_eq!((a.auroc, a.tpr), (b.auroc, b.tpr));
        assert!(b.ece < a.ece, "the scaling calibrates the scores: {} -> {}", a.ece, b.ece);
    }

    #[test]
    fn histograms_of_another_shape_give_no_columns() {
        let histograms = SubgroupHistograms::zeros(&[sex()], 8);
        assert!(!histograms.fits(&[sex()], 16));
        assert!(subgroup_report(&[], &histograms, None, 10).columns.is_empty());
        assert_eq!(SubgroupHistograms::values(&[sex()], 8), 4 * 2 * 8);
    }
}
