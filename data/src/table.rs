//! A hospital's parsed rows before standardisation ([`Table`]): its share of the federation's
//! statistics, the train/test split by group (patient), and the encoding into model inputs.
//!
//! Numeric inputs are standardised with statistics passed in (the federation's, computed with
//! the secure sum; [`Table::numeric_moments`] gives a hospital's share of them); a missing numeric
//! value becomes the mean (0 after standardising). Categorical inputs are one-hot over the
//! vocabulary plus an "other or missing" slot. A `top_k` column's rows keep their hash bucket
//! until the federation has chosen the column's most frequent buckets ([`Table::bucket_counts`]
//! gives a hospital's share of the counts, [`Table::to_dataset_with`] maps buckets to slots,
//! everything else to "other or missing").
//!
//! The split is a keyed BLAKE3 hash of each group id, so it is the same on every machine, keeps
//! every encounter of a patient on one side, and depends on nothing but the seed and the id.

use fedcare_core::{ColumnStats, Dataset, Moments};

use crate::error::{DataError, Result};
use crate::schema::{ParsedRecord, Schema};
use crate::top_k::slot_table;

/// The key-derivation context of the split; changing it changes every hospital's split.
const SPLIT_CONTEXT: &str = "fedcare 2026 patient split v1";
/// The key-derivation context of [`split_seed`].
const SEED_CONTEXT: &str = "fedcare 2026 hospital split seed v1";

/// The seed of a hospital's train/test split: the federation's training seed mixed with the
/// hospital's node id, so that hospitals split independently and each the same way every time.
pub fn split_seed(training_seed: u64, node: &str) -> u64 {
    let mut hasher = blake3::Hasher::new_derive_key(SEED_CONTEXT);
    hasher.update(&training_seed.to_le_bytes());
    hasher.update(node.as_bytes());
    first_u64(&hasher.finalize())
}

fn first_u64(hash: &blake3::Hash) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    u64::from_le_bytes(first)
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

impl Table {
    /// An empty table for `schema`'s columns.
    pub fn empty_for(schema: &Schema) -> Self {
        Self {
            numeric_columns: schema.numeric.len(),
            categorical_columns: schema.categorical.len(),
            numeric: Vec::new(),
            categories: Vec::new(),
            labels: Vec::new(),
            groups: Vec::new(),
            lines: Vec::new(),
        }
    }

    /// Appends one parsed record read from file line `line`; a record without a group is its
    /// own group.
    pub fn push(&mut self, record: ParsedRecord, line: u64) {
        self.numeric.extend(record.numeric);
        self.categories.extend(record.categories);
        self.labels.push(record.label);
        self.groups.push(record.group.unwrap_or_else(|| format!("row-{line}")));
        self.lines.push(line);
    }

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
                    m.push(f64::from(*v));
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
        if stats.len() != self.numeric_columns {
            return Err(DataError::StatisticsCount { expected: self.numeric_columns, got: stats.len() });
        }
        let shapes = schema.top_k_shapes();
        if top_k.len() != shapes.len() {
            return Err(DataError::TopKColumns { expected: shapes.len(), got: top_k.len() });
        }
        let top_k_columns = schema.categorical.iter().filter(|c| c.top_k.is_some());
        let slot_tables = shapes
            .iter()
            .zip(top_k)
            .zip(top_k_columns)
            .enumerate()
            .map(|(index, ((shape, chosen), column))| {
                slot_table(*shape, index, chosen)
                    .map_err(|source| DataError::TopKChoice { column: column.name.clone(), source })
            })
            .collect::<Result<Vec<_>>>()?;
        let width = schema.width();
        let mut features = Vec::with_capacity(self.rows() * width);
        for row in 0..self.rows() {
            let numeric = &self.numeric[row * self.numeric_columns..(row + 1) * self.numeric_columns];
            features.extend(numeric.iter().zip(stats).map(|(v, s)| v.map_or(0.0, |v| s.standardize(v))));
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
            let mut hasher = blake3::Hasher::new_derive_key(SPLIT_CONTEXT);
            hasher.update(&seed.to_le_bytes());
            hasher.update(group.as_bytes());
            (first_u64(&hasher.finalize()) >> 11) as f64 / (1u64 << 53) as f64 <= test_fraction
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

    /// [`Self::split_by_group`], refusing a split that leaves either side empty.
    pub fn split_for_evaluation(&self, test_fraction: f64, seed: u64) -> Result<(Table, Table)> {
        let (train, test) = self.split_by_group(test_fraction, seed);
        if train.rows() == 0 || test.rows() == 0 {
            return Err(DataError::TooFewToSplit { rows: self.rows(), train: train.rows(), test: test.rows() });
        }
        Ok((train, test))
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
