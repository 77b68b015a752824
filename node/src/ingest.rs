//! Reading a hospital's CSV through a [`Schema`]: bad rows are reported with their line and
//! column and skipped (counted, up to a limit) or refused, never silently used; then the train/
//! test split by group (patient), and the encoding into model inputs.
//!
//! Numeric inputs are standardised with statistics passed in (the federation's, computed with
//! the secure sum; [`Table::numeric_moments`] gives a hospital's share of them); a missing numeric
//! value becomes the mean (0 after standardising). Categorical inputs are one-hot over the
//! vocabulary plus an "other or missing" slot; values outside the vocabulary are counted. A
//! `top_k` column's rows keep their hash bucket until the federation has chosen the column's
//! most frequent buckets ([`Table::bucket_counts`] gives a hospital's share of the counts,
//! [`Table::to_dataset_with`] maps buckets to slots, everything else to "other or missing").

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use fedcare_core::Dataset;

use crate::schema::{RecordOutcome, Schema};

/// What to do with a row that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRows {
    /// Skip it and count it, but refuse the file when more than this many are bad.
    Skip {
        /// The most bad rows tolerated.
        limit: usize,
    },
    /// Refuse the file at the first bad row.
    Reject,
}

/// A row that was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based line in the file.
    pub line: u64,
    /// What was wrong (column and value).
    pub reason: String,
}

/// What reading a file found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Rows kept.
    pub rows: usize,
    /// Rows dropped by the schema's `drop_if` rules.
    pub dropped: usize,
    /// Bad rows skipped (the first 20 kept here; `skipped_count` counts all).
    pub skipped: Vec<BadRow>,
    /// All bad rows skipped.
    pub skipped_count: usize,
    /// Values outside a categorical column's vocabulary, per column.
    pub unknown_categories: BTreeMap<String, usize>,
}

/// Parsed rows of one hospital, before standardisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    numeric_columns: usize,
    categorical_columns: usize,
    numeric: Vec<Option<f32>>,
    categories: Vec<usize>,
    labels: Vec<f32>,
    groups: Vec<String>,
    /// The file line of each row.
    lines: Vec<u64>,
}

/// Exact moments of one numeric column: values in fixed point (`round(x · 256)`), so that sums
/// over hospitals are exact integers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moments {
    /// Rows where the value is present.
    pub count: u64,
    /// `Σ round(x · 256)`.
    pub sum: i64,
    /// `Σ round(x² · 256)`.
    pub squares: i64,
}

/// Fixed-point scale of [`Moments`].
pub const MOMENT_SCALE: f64 = 256.0;

impl Moments {
    /// Adds another hospital's moments.
    pub fn add(&mut self, other: &Moments) {
        self.count += other.count;
        self.sum = self.sum.wrapping_add(other.sum);
        self.squares = self.squares.wrapping_add(other.squares);
    }

    /// The column's mean and standard deviation.
    pub fn stats(&self) -> ColumnStats {
        ColumnStats::from_moments(self.count as f64, self.sum as f64 / MOMENT_SCALE, self.squares as f64 / MOMENT_SCALE)
    }
}

/// Mean and standard deviation of one numeric column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColumnStats {
    /// Mean.
    pub mean: f64,
    /// Standard deviation (1 when the column is constant or empty).
    pub std: f64,
}

impl ColumnStats {
    /// From a count, a sum and a sum of squares (pooled over hospitals by the secure sum).
    pub fn from_moments(count: f64, sum: f64, sum_squares: f64) -> Self {
        if count < 1.0 {
            return Self { mean: 0.0, std: 1.0 };
        }
        let mean = sum / count;
        let variance = (sum_squares / count - mean * mean).max(0.0);
        let std = variance.sqrt();
        Self { mean, std: if std > 1e-12 { std } else { 1.0 } }
    }
}

/// Reads `path` through `schema`.
pub fn read_csv(path: &Path, schema: &Schema, bad_rows: BadRows) -> Result<(Table, IngestReport)> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let header = reader.headers().with_context(|| format!("{}: unreadable header", path.display()))?.clone();
    let bound = schema.bind(&header).with_context(|| format!("{}", path.display()))?;
    let mut table = Table {
        numeric_columns: schema.numeric.len(),
        categorical_columns: schema.categorical.len(),
        numeric: Vec::new(),
        categories: Vec::new(),
        labels: Vec::new(),
        groups: Vec::new(),
        lines: Vec::new(),
    };
    let mut report = IngestReport::default();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        let outcome = match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => schema.parse_record(&bound, &record),
            Err(error) => Err(anyhow::anyhow!("{error}")),
        };
        match outcome {
            Ok(RecordOutcome::Keep(parsed)) => {
                for (column, unknown) in schema.categorical.iter().zip(&parsed.unknown) {
                    if *unknown {
                        *report.unknown_categories.entry(column.name.clone()).or_default() += 1;
                    }
                }
                table.numeric.extend(parsed.numeric);
                table.categories.extend(parsed.categories);
                table.labels.push(parsed.label);
                table.groups.push(parsed.group.unwrap_or_else(|| format!("row-{line}")));
                table.lines.push(line);
                report.rows += 1;
            }
            Ok(RecordOutcome::Dropped) => report.dropped += 1,
            Err(reason) => match bad_rows {
                BadRows::Reject => bail!("{}:{line}: {reason:#}", path.display()),
                BadRows::Skip { limit } => {
                    report.skipped_count += 1;
                    if report.skipped.len() < 20 {
                        report.skipped.push(BadRow { line, reason: format!("{reason:#}") });
                    }
                    if report.skipped_count > limit {
                        bail!("{}: more than {limit} bad rows; the last, line {line}: {reason:#}", path.display());
                    }
                }
            },
        }
    }
    if report.rows == 0 {
        bail!("{}: no usable rows", path.display());
    }
    Ok((table, report))
}

impl Table {
    /// Rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Per numeric column, this hospital's share of the federation's statistics.
    pub fn numeric_moments(&self) -> Vec<Moments> {
        let mut moments = vec![Moments::default(); self.numeric_columns];
        for row in self.numeric.chunks(self.numeric_columns.max(1)) {
            for (m, value) in moments.iter_mut().zip(row) {
                if let Some(v) = value {
                    let v = f64::from(*v);
                    m.count += 1;
                    m.sum = m.sum.wrapping_add((v * MOMENT_SCALE).round() as i64);
                    m.squares = m.squares.wrapping_add((v * v * MOMENT_SCALE).round() as i64);
                }
            }
        }
        moments
    }

    /// Per `top_k` column (in schema order), this hospital's count of rows in each hash bucket
    /// (missing values are not counted).
    pub fn bucket_counts(&self, schema: &Schema) -> Vec<Vec<u64>> {
        let mut counts = Vec::new();
        for (column, spec) in schema.categorical.iter().enumerate().take(self.categorical_columns) {
            let Some(shape) = spec.top_k_shape() else { continue };
            let mut column_counts = vec![0u64; shape.buckets as usize];
            for row in 0..self.rows() {
                if let Some(count) = column_counts.get_mut(self.categories[row * self.categorical_columns + column]) {
                    *count += 1;
                }
            }
            counts.push(column_counts);
        }
        counts
    }

    /// The model inputs of a schema without `top_k` columns, numeric columns standardised with
    /// `stats`.
    pub fn to_dataset(&self, schema: &Schema, stats: &[ColumnStats]) -> Result<Dataset> {
        self.to_dataset_with(schema, stats, &[])
    }

    /// The model inputs, numeric columns standardised with `stats`, each `top_k` column's
    /// buckets mapped to slots by `top_k` (per `top_k` column, the chosen buckets in slot order).
    pub fn to_dataset_with(&self, schema: &Schema, stats: &[ColumnStats], top_k: &[Vec<u32>]) -> Result<Dataset> {
        anyhow::ensure!(
            stats.len() == self.numeric_columns,
            "{} statistics for {} numeric columns",
            stats.len(),
            self.numeric_columns
        );
        let shapes = schema.top_k_shapes();
        anyhow::ensure!(
            top_k.len() == shapes.len(),
            "chosen buckets for {} top_k columns, the schema has {}",
            top_k.len(),
            shapes.len()
        );
        let mut slot_tables = Vec::with_capacity(shapes.len());
        for ((shape, chosen), column) in
            shapes.iter().zip(top_k).zip(schema.categorical.iter().filter(|c| c.top_k.is_some()))
        {
            slot_tables.push(
                crate::top_k::slot_table(*shape, chosen).with_context(|| format!("top_k column {:?}", column.name))?,
            );
        }
        let width = schema.width();
        let mut features = Vec::with_capacity(self.rows() * width);
        for row in 0..self.rows() {
            let numeric = &self.numeric[row * self.numeric_columns..(row + 1) * self.numeric_columns];
            features.extend(
                numeric.iter().zip(stats).map(|(v, s)| v.map_or(0.0, |v| ((f64::from(v) - s.mean) / s.std) as f32)),
            );
            let categories = &self.categories[row * self.categorical_columns..(row + 1) * self.categorical_columns];
            let mut tables = slot_tables.iter();
            for (column, &index) in schema.categorical.iter().zip(categories) {
                let start = features.len();
                features.resize(start + column.slots() + 1, 0.0);
                let slot = match column.top_k {
                    // A bucket outside the table cannot come from `parse_record`; "other" if it did.
                    Some(k) => tables.next().and_then(|t| t.get(index)).map_or(k as usize, |&s| s as usize),
                    None => index.min(column.vocabulary.len()),
                };
                features[start + slot] = 1.0;
            }
        }
        Ok(Dataset::new(features, self.labels.clone(), width)?)
    }

    /// Splits by group (patient) so that no group is on both sides; deterministic for a seed.
    /// About `test_fraction` of the groups go to the test side.
    pub fn split_by_group(&self, test_fraction: f64, seed: u64) -> (Table, Table) {
        let in_test = |group: &str| {
            // FNV-1a of the seed and the group, finished with SplitMix64's mixer so that every
            // bit depends on every byte: a stable, uniform choice per group.
            let mut hash = seed
                .to_le_bytes()
                .iter()
                .chain(group.as_bytes())
                .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
            hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            hash ^= hash >> 31;
            (hash >> 11) as f64 / (1u64 << 53) as f64 <= test_fraction
        };
        let (mut train, mut test) = (self.empty(), self.empty());
        for row in 0..self.rows() {
            let side = if in_test(&self.groups[row]) { &mut test } else { &mut train };
            side.numeric.extend_from_slice(&self.numeric[row * self.numeric_columns..(row + 1) * self.numeric_columns]);
            side.categories.extend_from_slice(
                &self.categories[row * self.categorical_columns..(row + 1) * self.categorical_columns],
            );
            side.labels.push(self.labels[row]);
            side.groups.push(self.groups[row].clone());
            side.lines.push(self.lines[row]);
        }
        (train, test)
    }

    fn empty(&self) -> Table {
        Table {
            numeric: Vec::new(),
            categories: Vec::new(),
            labels: Vec::new(),
            groups: Vec::new(),
            lines: Vec::new(),
            ..*self
        }
    }

    /// The file line of each row.
    pub fn lines(&self) -> &[u64] {
        &self.lines
    }

    /// The group ids of the rows.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }
}
