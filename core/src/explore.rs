//! Federated exploration of a schema's columns: what every hospital counts per column
//! ([`ExploreCounts`]: its rows, missing values, rows per category or histogram bin, the label's
//! positives in each, and the exact moments of each numeric column), on bins every party derives
//! the same way ([`ColumnSpec::resolve`]), and the report of such counts with small cells
//! suppressed ([`ExploreReport`]).
//!
//! A numeric column's cells are an underflow bin, its bins, and an overflow bin; its edges come
//! from the schema or, when the schema gives none, from the federated mean and standard deviation
//! (`mean ± 3 std` in round steps). Values on an edge fall in the bin
//! above it; the top edge belongs to the last bin (as numpy's histogram has it).
//!
//! Guarantees:
//! - Counts are integers, so their secure sum over hospitals is exact whatever their order.
//! - A report never holds a count below `min_cell` ([`Cell::Suppressed`]), nor one that a reader
//!   could work out by subtracting the others from a column's total (a second cell is suppressed
//!   with a lone one), nor a label rate whose positives or negatives are below `min_cell`.
//!   Quantiles, mean and standard deviation are figures of a whole column and are shown when the
//!   column has at least `min_cell` values.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::stats::{ColumnStats, MOMENT_SCALE, Moments};

/// Bins of a numeric column whose schema gives no edges.
pub const DEFAULT_BINS: u32 = 20;
/// Most bins of a numeric column, and most categories of a categorical one.
pub const MAX_CELLS: u32 = 65_536;
/// The smallest pooled count a report shows by default.
pub const DEFAULT_MIN_CELL: u64 = 10;
/// The version of [`ExploreReport`]'s JSON form.
pub const REPORT_FORMAT: u32 = 1;
/// The marker of a count that is not small itself but would give a small one away.
pub const HIDDEN: &str = "hidden";
/// The quantiles a report gives of every numeric column.
pub const QUANTILES: [f64; 5] = [0.05, 0.25, 0.5, 0.75, 0.95];

/// What a column is and how its values fall into cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ColumnKind {
    /// A numeric column: bin `edges` (ascending, at least two), or none yet and `bins` bins to
    /// derive from the federated statistics.
    Numeric {
        /// Bin edges; empty until [`ColumnSpec::resolve`] derives them.
        edges: Vec<f64>,
        /// Bins to derive when `edges` is empty.
        bins: u32,
    },
    /// A categorical column with `categories` cells, the first `labels.len()` of them named
    /// (a vocabulary's values and "other"; a `top_k` column's hash buckets have no names).
    Categorical {
        /// Cells.
        categories: u32,
        /// Names of the first cells.
        labels: Vec<String>,
    },
}

/// One column of an exploration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSpec {
    /// The column's header name.
    pub name: String,
    /// Its kind and cells.
    pub kind: ColumnKind,
}

impl ColumnSpec {
    /// Cells of the column (a numeric column's two overflow bins included).
    pub fn cells(&self) -> usize {
        match &self.kind {
            ColumnKind::Numeric { edges, bins } if edges.is_empty() => *bins as usize + 2,
            ColumnKind::Numeric { edges, .. } => edges.len() + 1,
            ColumnKind::Categorical { categories, .. } => *categories as usize,
        }
    }

    /// Refuses edges that are not finite and strictly ascending, a bin count of 0 or past
    /// [`MAX_CELLS`], and a categorical column without cells or with more labels than cells.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |why: String| Error::ExploreColumn { column: self.name.clone(), why };
        match &self.kind {
            ColumnKind::Numeric { edges, bins } => {
                if edges.is_empty() && !(1..=MAX_CELLS).contains(bins) {
                    return Err(invalid(format!("{bins} bins (1 to {MAX_CELLS})")));
                }
                if edges.len() == 1 || edges.len() > MAX_CELLS as usize {
                    return Err(invalid(format!("{} bin edges (2 to {MAX_CELLS}, or none)", edges.len())));
                }
                if edges.iter().any(|e| !e.is_finite()) || edges.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(invalid("bin edges must be finite and strictly ascending".into()));
                }
            }
            ColumnKind::Categorical { categories, labels } => {
                if !(1..=MAX_CELLS).contains(categories) || labels.len() > *categories as usize {
                    return Err(invalid(format!("{categories} categories with {} labels", labels.len())));
                }
            }
        }
        Ok(())
    }

    /// Whether the column is numeric.
    pub fn is_numeric(&self) -> bool {
        matches!(self.kind, ColumnKind::Numeric { .. })
    }

    /// The column with its edges derived from `stats` when it is numeric and has none.
    pub fn resolve(&self, stats: Option<&ColumnStats>) -> ColumnSpec {
        match (&self.kind, stats) {
            (ColumnKind::Numeric { edges, bins }, Some(stats)) if edges.is_empty() => ColumnSpec {
                name: self.name.clone(),
                kind: ColumnKind::Numeric { edges: auto_edges(stats, *bins), bins: *bins },
            },
            _ => self.clone(),
        }
    }

    /// The edges of a resolved numeric column (empty otherwise).
    pub fn edges(&self) -> &[f64] {
        match &self.kind {
            ColumnKind::Numeric { edges, .. } => edges,
            ColumnKind::Categorical { .. } => &[],
        }
    }

    /// The cell of a numeric value: 0 below the first edge, the bin's index + 1 inside, the last
    /// cell above the top edge.
    pub fn bin_of(&self, value: f64) -> usize {
        let edges = self.edges();
        match edges.last() {
            None => 0,
            Some(&top) if value == top => edges.len() - 1,
            Some(_) => edges.partition_point(|&e| e <= value),
        }
    }

    /// The display label of cell `index`.
    pub fn cell_label(&self, index: usize) -> String {
        match &self.kind {
            ColumnKind::Numeric { edges, .. } => match index {
                0 => format!("< {}", number(edges.first().copied().unwrap_or(0.0))),
                i if i >= edges.len() => format!("> {}", number(edges.last().copied().unwrap_or(0.0))),
                i if i + 1 == edges.len() => format!("[{}, {}]", number(edges[i - 1]), number(edges[i])),
                i => format!("[{}, {})", number(edges[i - 1]), number(edges[i])),
            },
            ColumnKind::Categorical { labels, .. } => {
                labels.get(index).cloned().unwrap_or_else(|| format!("bucket {index}"))
            }
        }
    }
}

/// `columns` with every numeric column's edges resolved ([`ColumnSpec::resolve`]) from `stats`,
/// one per numeric column in order.
pub fn resolve_columns(columns: &[ColumnSpec], stats: &[ColumnStats]) -> Vec<ColumnSpec> {
    let mut numeric = stats.iter();
    columns.iter().map(|c| if c.is_numeric() { c.resolve(numeric.next()) } else { c.clone() }).collect()
}

/// A number as a label: at most four decimals, no trailing zeros.
pub fn number(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".into() } else { text.into() }
}

/// `bins` bins over `mean ± 3 std` with a round step ([`round_step`]), starting at a multiple of
/// the step. Each edge is an integer times the step's unit computed in one rounding, so that
/// `10.8` is the nearest double to 10.8, not `10.799999999999999`.
pub fn auto_edges(stats: &ColumnStats, bins: u32) -> Vec<f64> {
    let bins = bins.max(1);
    let (low, high) = (stats.mean - 3.0 * stats.std, stats.mean + 3.0 * stats.std);
    let raw = (high - low) / f64::from(bins.saturating_sub(1).max(1));
    let (tenths, unit) = round_step(if raw.is_finite() && raw > 0.0 { raw } else { 1.0 });
    let step = tenths * unit;
    let first = libm::floor(low / step);
    let first = if first.is_finite() { first } else { 0.0 };
    let edge = |k: f64| {
        let units = k * tenths;
        if unit < 1.0 { units / libm::round(1.0 / unit) } else { units * unit }
    };
    (0..=bins).map(|i| edge(first + f64::from(i))).collect()
}

/// The smallest round step at least `raw`, as (tenths, unit): 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8
/// times a power of ten (fine enough that 20 bins cover ±3 std without leaving most of them
/// empty); the step is `tenths × unit`, `unit` a power of ten.
fn round_step(raw: f64) -> (f64, f64) {
    const TENTHS: [f64; 11] = [10.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0, 80.0, 100.0];
    let unit = libm::pow(10.0, libm::floor(libm::log10(raw)) - 1.0);
    let tenths = raw / unit;
    (TENTHS.iter().find(|&&t| t >= tenths - 1e-9).copied().unwrap_or(100.0), unit)
}

/// What one party counted of one column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnCounts {
    /// Rows per cell.
    pub cells: Vec<u64>,
    /// Positive rows per cell.
    pub positives: Vec<u64>,
    /// Rows where the value is missing.
    pub missing: u64,
    /// Positive rows among them.
    pub missing_positives: u64,
    /// Exact moments of the present values (numeric columns; zero otherwise).
    pub moments: Moments,
}

impl ColumnCounts {
    /// Counts one numeric value (`None`: missing) of a resolved column.
    pub fn push_numeric(&mut self, spec: &ColumnSpec, value: Option<f64>, positive: bool) {
        match value {
            Some(value) => {
                self.moments.push(value);
                self.push_cell(spec.bin_of(value), positive);
            }
            None => self.push_missing(positive),
        }
    }

    /// Counts one row in cell `index` (a cell past the column's is not counted).
    pub fn push_cell(&mut self, index: usize, positive: bool) {
        if let (Some(count), Some(positives)) = (self.cells.get_mut(index), self.positives.get_mut(index)) {
            *count += 1;
            *positives += u64::from(positive);
        }
    }

    /// Counts one row whose value is missing.
    pub fn push_missing(&mut self, positive: bool) {
        self.missing += 1;
        self.missing_positives += u64::from(positive);
    }

    /// Rows of the column with a value.
    pub fn present(&self) -> u64 {
        self.cells.iter().sum()
    }
}

/// What one party (or the federation) counted of every column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExploreCounts {
    /// Rows.
    pub rows: u64,
    /// Rows whose label is positive.
    pub positives: u64,
    /// Per column, in the exploration's order.
    pub columns: Vec<ColumnCounts>,
}

impl ExploreCounts {
    /// Zero counts shaped for `specs`.
    pub fn zeros(specs: &[ColumnSpec]) -> Self {
        let columns = specs
            .iter()
            .map(|s| ColumnCounts {
                cells: vec![0; s.cells()],
                positives: vec![0; s.cells()],
                ..ColumnCounts::default()
            })
            .collect();
        Self { rows: 0, positives: 0, columns }
    }

    /// Whether these counts have `specs`' shape.
    pub fn fits(&self, specs: &[ColumnSpec]) -> bool {
        self.columns.len() == specs.len()
            && self.columns.iter().zip(specs).all(|(c, s)| c.cells.len() == s.cells() && c.positives.len() == s.cells())
    }

    /// Adds another party's counts of the same shape.
    pub fn add(&mut self, other: &ExploreCounts) -> Result<(), Error> {
        let same = self.columns.len() == other.columns.len()
            && self.columns.iter().zip(&other.columns).all(|(a, b)| a.cells.len() == b.cells.len());
        if !same {
            return Err(Error::ExploreShape { columns: self.columns.len() });
        }
        self.rows += other.rows;
        self.positives += other.positives;
        for (a, b) in self.columns.iter_mut().zip(&other.columns) {
            a.cells.iter_mut().zip(&b.cells).for_each(|(x, y)| *x += y);
            a.positives.iter_mut().zip(&b.positives).for_each(|(x, y)| *x += y);
            a.missing += b.missing;
            a.missing_positives += b.missing_positives;
            a.moments.add(&b.moments);
        }
        Ok(())
    }
}

/// A count in a report: the number, or a marker that it is below the report's `min_cell`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Cell {
    /// A count of at least `min_cell`.
    Count(u64),
    /// `"< min_cell"`: the count is not shown.
    Suppressed(String),
}

impl Cell {
    /// The count if shown.
    pub fn count(&self) -> Option<u64> {
        match self {
            Self::Count(count) => Some(*count),
            Self::Suppressed(_) => None,
        }
    }
}

/// One cell of a column in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellFigures {
    /// Its label: a category, a bin such as `[10, 20)`, `< 0`, `> 100` or `missing`.
    pub label: String,
    /// A bin's lower edge (none for a category or the underflow bin).
    pub lower: Option<f64>,
    /// A bin's upper edge (none for a category or the overflow bin).
    pub upper: Option<f64>,
    /// Rows in the cell.
    pub count: Cell,
    /// Positive rows in the cell.
    pub positives: Cell,
    /// Share of positive rows, when both the positives and the negatives are shown.
    pub rate: Option<f64>,
}

/// One quantile of a numeric column, read off its histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    /// The probability (0.5: the median).
    pub p: f64,
    /// The value, interpolated linearly inside its bin; `None` when it lies in an overflow bin.
    pub value: Option<f64>,
    /// `"below 0"` or `"above 100"` when it lies in an overflow bin.
    pub beyond: Option<String>,
}

/// The summary of a numeric column with at least `min_cell` values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericSummary {
    /// Values present.
    pub count: u64,
    /// Their sum (exact to 1/256 per value).
    pub sum: f64,
    /// Their mean.
    pub mean: f64,
    /// Their (population) variance.
    pub variance: f64,
    /// Their standard deviation.
    pub std: f64,
    /// [`QUANTILES`] from the histogram.
    pub quantiles: Vec<Quantile>,
    /// The lower edge of the lowest bin with at least `min_cell` rows: a bound, never a
    /// patient's value (none when only overflow bins have that many).
    pub low: Option<f64>,
    /// The upper edge of the highest such bin.
    pub high: Option<f64>,
}

/// One column's figures in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnFigures {
    /// The column's header name.
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: String,
    /// Rows with a value.
    pub present: Cell,
    /// Share of the rows that miss the value (when both counts are shown).
    pub missing_share: Option<f64>,
    /// Categories (or bins) holding at least one row.
    pub distinct: u64,
    /// A numeric column's summary (none below `min_cell` values, or without moments: a noisy
    /// exploration releases none).
    pub summary: Option<NumericSummary>,
    /// Every named cell and bin, and the unnamed (hash bucket) cells that are shown.
    pub cells: Vec<CellFigures>,
    /// Unnamed cells left out because they are suppressed (empty ones are left out too).
    pub hidden_cells: u64,
    /// The rows that miss the value.
    pub missing: CellFigures,
}

/// The figures of a set of rows (the federation's pooled rows, or one hospital's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Rows.
    pub rows: Cell,
    /// Positive rows.
    pub positives: Cell,
    /// Share of positive rows (when positives and negatives are shown).
    pub rate: Option<f64>,
    /// Per column, in the exploration's order.
    pub columns: Vec<ColumnFigures>,
}

/// One hospital's own figures, beside the pooled ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalFigures {
    /// The hospital.
    pub hospital: String,
    /// Its figures, on the same bins.
    pub figures: Figures,
}

/// An exploration's report (`explore.json`): what may be shown of the counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExploreReport {
    /// [`REPORT_FORMAT`].
    pub format: u32,
    /// The schema's id.
    pub schema: String,
    /// What the label's positives are (for example `readmitted = <30`).
    pub label: String,
    /// The smallest count shown.
    pub min_cell: u64,
    /// The hospitals whose rows are counted (a `--local` report: the file).
    pub hospitals: Vec<String>,
    /// Their figures.
    pub figures: Figures,
    /// A hospital's own figures beside them (its report only).
    pub local: Option<LocalFigures>,
}

/// Whether a count is small: 1 to `min_cell − 1` (a zero discloses no one).
fn is_small(count: u64, min_cell: u64) -> bool {
    count > 0 && count < min_cell
}

/// Which of a group of counts whose total is shown must not be shown: those marked `small`, and
/// with a lone one, the smallest other non-zero one too (else the total minus the rest gives the
/// small one away); every one when the total is hidden.
pub(crate) fn hidden(counts: &[u64], small: &[bool], total_hidden: bool) -> Vec<bool> {
    if total_hidden {
        return vec![true; counts.len()];
    }
    let mut hide = small.to_vec();
    if hide.iter().filter(|&&h| h).count() == 1
        && let Some((index, _)) =
            counts.iter().enumerate().filter(|(i, c)| !hide[*i] && **c > 0).min_by_key(|(_, c)| **c)
    {
        hide[index] = true;
    }
    hide
}

/// Report figures of `counts` on the resolved `specs`: no count from 1 to `min_cell − 1` shown
/// (`"< min_cell"`), nor one that would give such a count away (`"hidden"`).
pub fn figures(specs: &[ColumnSpec], counts: &ExploreCounts, min_cell: u64) -> Result<Figures, Error> {
    if !counts.fits(specs) {
        return Err(Error::ExploreShape { columns: specs.len() });
    }
    let min_cell = min_cell.max(1);
    let small = |count: u64| is_small(count, min_cell);
    let show = |count: u64, hide: bool| match (hide, small(count)) {
        (false, _) => Cell::Count(count),
        (true, true) => Cell::Suppressed(format!("< {min_cell}")),
        (true, false) => Cell::Suppressed(HIDDEN.into()),
    };
    let rows_hidden = counts.rows < min_cell;
    let negatives = counts.rows - counts.positives.min(counts.rows);
    let label_hidden = rows_hidden || small(counts.positives) || small(negatives);
    let mut columns = Vec::with_capacity(specs.len());
    for (spec, column) in specs.iter().zip(&counts.columns) {
        // The group: every cell and the missing rows; together they are all the rows.
        let mut group: Vec<u64> = column.cells.clone();
        group.push(column.missing);
        let mut positives: Vec<u64> = column.positives.clone();
        positives.push(column.missing_positives);
        let hide = hidden(&group, &group.iter().map(|&c| small(c)).collect::<Vec<_>>(), rows_hidden);
        // A rate is hidden with its cell, or when its positives or negatives are small.
        let rate_small: Vec<bool> = group
            .iter()
            .zip(&positives)
            .zip(&hide)
            .map(|((&count, &pos), &h)| h || small(pos) || small(count - pos.min(count)))
            .collect();
        let hide_rate = hidden(&positives, &rate_small, label_hidden);
        let cell = |i: usize, label: String, lower: Option<f64>, upper: Option<f64>| CellFigures {
            label,
            lower,
            upper,
            count: show(group[i], hide[i]),
            positives: show(positives[i], hide_rate[i]),
            rate: (!hide_rate[i] && group[i] > 0).then(|| positives[i] as f64 / group[i] as f64),
        };
        let edges = spec.edges();
        let cells_len = column.cells.len();
        let mut cells = Vec::with_capacity(cells_len);
        let mut hidden_cells = 0;
        let named = match &spec.kind {
            ColumnKind::Categorical { labels, .. } => labels.len(),
            ColumnKind::Numeric { .. } => cells_len,
        };
        for i in 0..cells_len {
            // Unnamed (hash bucket) cells: only the shown non-empty ones.
            if i >= named && (hide[i] || group[i] == 0) {
                hidden_cells += u64::from(hide[i]);
                continue;
            }
            let (lower, upper) = match spec.kind {
                ColumnKind::Numeric { .. } => {
                    (i.checked_sub(1).and_then(|j| edges.get(j).copied()), edges.get(i).copied())
                }
                ColumnKind::Categorical { .. } => (None, None),
            };
            cells.push(cell(i, spec.cell_label(i), lower, upper));
        }
        let present = column.present();
        // `present` is the rows minus the missing ones: hidden with them.
        let present_cell = show(present, rows_hidden || small(present) || hide[cells_len]);
        // A noisy exploration releases no moments: no summary (its cells still show the
        // distribution).
        let released = column.moments.count > 0;
        let summary = (spec.is_numeric() && released && present >= min_cell && !rows_hidden)
            .then(|| summary(edges, &column.cells, &column.moments, min_cell));
        columns.push(ColumnFigures {
            name: spec.name.clone(),
            kind: if spec.is_numeric() { "numeric" } else { "categorical" }.into(),
            missing_share: (!hide[cells_len]).then(|| column.missing as f64 / counts.rows.max(1) as f64),
            present: present_cell,
            distinct: column.cells.iter().filter(|&&c| c > 0).count() as u64,
            summary,
            cells,
            hidden_cells,
            missing: cell(cells_len, "missing".into(), None, None),
        });
    }
    Ok(Figures {
        rows: show(counts.rows, rows_hidden),
        positives: show(counts.positives, label_hidden),
        rate: (!label_hidden).then(|| counts.positives as f64 / counts.rows as f64),
        columns,
    })
}

/// Mean, variance and quantiles of a numeric column with `cells` (underflow, bins, overflow)
/// over `edges`.
fn summary(edges: &[f64], cells: &[u64], moments: &Moments, min_cell: u64) -> NumericSummary {
    let count = moments.count;
    let n = count.max(1) as f64;
    let sum = moments.sum as f64 / MOMENT_SCALE;
    let mean = sum / n;
    let variance = (moments.squares as f64 / MOMENT_SCALE / n - mean * mean).max(0.0);
    let total: u64 = cells.iter().sum();
    let quantiles = QUANTILES
        .iter()
        .map(|&p| {
            let target = p * total as f64;
            let mut below = 0u64;
            for (i, &c) in cells.iter().enumerate() {
                if c > 0 && (below + c) as f64 >= target {
                    if i == 0 {
                        return Quantile { p, value: None, beyond: Some(format!("below {}", number(edges[0]))) };
                    }
                    if i > edges.len() - 1 {
                        let top = edges[edges.len() - 1];
                        return Quantile { p, value: None, beyond: Some(format!("above {}", number(top))) };
                    }
                    let (lower, upper) = (edges[i - 1], edges[i]);
                    let within = ((target - below as f64) / c as f64).clamp(0.0, 1.0);
                    return Quantile { p, value: Some(lower + within * (upper - lower)), beyond: None };
                }
                below += c;
            }
            Quantile { p, value: None, beyond: None }
        })
        .collect();
    let inner = |i: usize| i > 0 && i < edges.len() && cells[i] >= min_cell;
    let low = (0..cells.len()).find(|&i| inner(i)).map(|i| edges[i - 1]);
    let high = (0..cells.len()).rev().find(|&i| inner(i)).map(|i| edges[i]);
    NumericSummary { count, sum, mean, variance, std: libm::sqrt(variance), quantiles, low, high }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn numeric(edges: Vec<f64>) -> ColumnSpec {
        ColumnSpec { name: "age".into(), kind: ColumnKind::Numeric { edges, bins: 0 } }
    }

    #[test]
    fn values_fall_in_their_bins_and_outside_values_in_the_overflow_bins() {
        let spec = numeric(vec![0.0, 10.0, 20.0]);
        assert_eq!(spec.cells(), 4);
        let bins: Vec<usize> = [-1.0, 0.0, 9.99, 10.0, 20.0, 20.5].iter().map(|&v| spec.bin_of(v)).collect();
        assert_eq!(bins, [0, 1, 1, 2, 2, 3]);
        assert_eq!((0..4).map(|i| spec.cell_label(i)).collect::<Vec<_>>(), ["< 0", "[0, 10)", "[10, 20]", "> 20"]);
        assert!(numeric(vec![1.0, 1.0]).validate().is_err());
        assert!(numeric(vec![1.0]).validate().is_err());
        assert!(numeric(vec![0.0, f64::NAN]).validate().is_err());
        numeric(vec![0.0, 1.0]).validate().unwrap();
    }

    #[test]
    fn automatic_edges_are_round_and_cover_three_deviations() {
        let spec = ColumnSpec { name: "x".into(), kind: ColumnKind::Numeric { edges: Vec::new(), bins: 20 } };
        assert_eq!(spec.cells(), 22);
        let resolved = spec.resolve(Some(&ColumnStats { mean: 43.1, std: 19.7 }));
        let edges = resolved.edges();
        assert_eq!(edges.len(), 21);
        assert_eq!((edges[0], edges[1] - edges[0]), (-16.0, 8.0));
        assert!(edges[0] <= 43.1 - 3.0 * 19.7 && edges[20] >= 43.1 + 3.0 * 19.7, "{edges:?}");
        let fine = auto_edges(&ColumnStats { mean: 4.1, std: 3.4 }, 20);
        assert_eq!((fine[0], fine[1], fine[15]), (-7.2, -6.0, 10.8), "{fine:?}");
        assert_eq!(fine[18], 14.4, "edges are the nearest doubles to their decimals");
        assert_eq!(resolved.cells(), 22, "resolving keeps the layout");
    }

    fn counts_of(spec: &ColumnSpec, rows: &[(Option<f64>, bool)]) -> ExploreCounts {
        let mut counts = ExploreCounts::zeros(core::slice::from_ref(spec));
        for &(value, positive) in rows {
            counts.rows += 1;
            counts.positives += u64::from(positive);
            counts.columns[0].push_numeric(spec, value, positive);
        }
        counts
    }

    #[test]
    fn small_cells_and_what_would_give_them_away_are_suppressed() {
        let spec = numeric(vec![0.0, 10.0, 20.0, 30.0]);
        // 40 rows in [0,10) (12 positive), 30 in [10,20) (15 positive), 3 in [20,30], 2 missing.
        let mut rows = Vec::new();
        rows.extend((0..40).map(|i| (Some(5.0), i < 12)));
        rows.extend((0..30).map(|i| (Some(15.0), i < 15)));
        rows.extend((0..3).map(|_| (Some(25.0), true)));
        rows.extend((0..2).map(|_| (None, false)));
        let counts = counts_of(&spec, &rows);
        let figures = figures(core::slice::from_ref(&spec), &counts, 10).unwrap();
        assert_eq!(figures.rows, Cell::Count(75));
        let column = &figures.columns[0];
        let shown: Vec<Option<u64>> = column.cells.iter().map(|c| c.count.count()).collect();
        // [20,30] (3) and missing (2) are small; the empty overflow bins are shown.
        assert_eq!(shown, [Some(0), Some(40), Some(30), None, Some(0)]);
        assert_eq!(column.missing.count, Cell::Suppressed("< 10".into()));
        assert_eq!(column.cells[1].rate, Some(12.0 / 40.0));
        assert_eq!(column.cells[2].rate, Some(0.5));
        assert_eq!(column.present, Cell::Suppressed(HIDDEN.into()), "present = rows − missing would give it away");
        let summary = column.summary.as_ref().unwrap();
        assert_eq!(summary.count, 73);
        assert!((summary.mean - (40.0 * 5.0 + 30.0 * 15.0 + 75.0) / 73.0).abs() < 1e-9);
        assert_eq!((summary.low, summary.high), (Some(0.0), Some(20.0)));
        assert_eq!(summary.quantiles[2].value, Some(10.0 * 36.5 / 40.0));

        // A lone small cell takes the smallest other one with it.
        let lone = numeric(vec![0.0, 10.0]);
        let mut rows: Vec<(Option<f64>, bool)> = (0..50).map(|i| (Some(5.0), i % 2 == 0)).collect();
        rows.extend((0..12).map(|i| (Some(-1.0), i % 2 == 0)));
        rows.extend((0..20).map(|i| (Some(11.0), i % 2 == 0)));
        rows.extend((0..4).map(|i| (None, i % 2 == 0)));
        let counts = counts_of(&lone, &rows);
        let figures = super::figures(core::slice::from_ref(&lone), &counts, 10).unwrap();
        let column = &figures.columns[0];
        let hidden = column.cells.iter().chain([&column.missing]).filter(|c| c.count.count().is_none()).count();
        assert_eq!(hidden, 2, "{column:?}");
        assert_eq!(column.cells[0].count, Cell::Suppressed(HIDDEN.into()), "the smallest other cell (12)");
    }

    #[test]
    fn a_report_round_trips_through_json_shapes_and_counts_add() {
        let spec = ColumnSpec {
            name: "ward".into(),
            kind: ColumnKind::Categorical { categories: 3, labels: vec!["icu".to_string()] },
        };
        let mut a = ExploreCounts::zeros(core::slice::from_ref(&spec));
        a.rows = 30;
        a.columns[0].push_cell(0, true);
        a.columns[0].push_cell(1, false);
        a.columns[0].push_cell(7, true); // past the column: not counted
        a.columns[0].missing = 28;
        let mut b = a.clone();
        b.add(&a).unwrap();
        assert_eq!(b.columns[0].cells, [2, 2, 0]);
        assert!(b.add(&ExploreCounts::zeros(&[])).is_err());
        let figures = figures(core::slice::from_ref(&spec), &b, 1).unwrap();
        assert_eq!(figures.columns[0].cells.len(), 2, "the named cell and the non-empty bucket");
        assert_eq!(figures.columns[0].hidden_cells, 0);
        let strict = super::figures(core::slice::from_ref(&spec), &b, 3).unwrap();
        assert_eq!(strict.columns[0].cells.len(), 1, "only the named cell");
        assert_eq!(strict.columns[0].cells[0].count, Cell::Suppressed("< 3".into()));
        assert_eq!(strict.columns[0].hidden_cells, 1, "the small bucket");
        assert_eq!(figures.columns[0].cells[1].label, "bucket 1".to_string());
    }
}
