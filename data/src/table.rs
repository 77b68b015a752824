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

use fedcare_core::explore::{ColumnSpec, ExploreCounts};
use fedcare_core::{ColumnStats, Dataset, Moments};

use crate::error::{DataError, Result};
use crate::schema::{ParsedRecord, Schema};
use crate::top_k::slot_table;

/// The key-derivation context of the split; changing it changes every hospital's split.
const SPLIT_CONTEXT: &str = "fedcare 2026 patient split v1";
/// The key-derivation context of [`split_seed`].
const SEED_CONTEXT: &str = "fedcare 2026 hospital split seed v1";
const PATIENT_CONTEXT: &str = "fedcare 2026 patient key v1";

/// The seed of a hospital's train/test split: the federation's training seed mixed with the
/// hospital's node id, so that hospitals split independently and each the same way every time.
pub fn split_seed(training_seed: u64, node: &str) -> u64 {
    let mut hasher = blake3::Hasher::new_derive_key(SEED_CONTEXT);
    hasher.update(&training_seed.to_le_bytes());
    hasher.update(node.as_bytes());
    first_u64(&hasher.finalize())
}

/// A patient's key for boosting's row subsampling ([`fedcare_core::gbdt::sampled`]): a keyed
/// hash of their id under the federation's training seed, the same at every hospital.
pub fn patient_key(training_seed: u64, patient: &str) -> u64 {
    let mut hasher = blake3::Hasher::new_derive_key(PATIENT_CONTEXT);
    hasher.update(&training_seed.to_le_bytes());
    hasher.update(patient.as_bytes());
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

    /// Sets numeric column `column` of every row to `ln(1 + n)`, n the rows of the same group
    /// with a smaller key (`keys`: one per row); rows with equal keys do not count each other.
    pub(crate) fn set_earlier_in_group(&mut self, column: usize, keys: &[f64]) {
        let mut order: Vec<usize> = (0..self.rows()).collect();
        order.sort_by(|&a, &b| self.groups[a].cmp(&self.groups[b]).then(keys[a].total_cmp(&keys[b])));
        // The place in `order` of the group's first row, and of the first row with this key.
        let (mut group_start, mut key_start) = (0, 0);
        for (place, &row) in order.iter().enumerate() {
            let previous = place.checked_sub(1).map(|p| order[p]);
            match previous {
                Some(p) if self.groups[p] == self.groups[row] => {
                    if keys[p] < keys[row] {
                        key_start = place;
                    }
                }
                _ => (group_start, key_start) = (place, place),
            }
            let earlier = (key_start - group_start) as f64;
            self.numeric[row * self.numeric_columns + column] = Some(earlier.ln_1p() as f32);
        }
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Per numeric column, this hospital's share of the federation's statistics.
    pub fn numeric_moments(&self) -> Vec<Moments> {
        self.numeric_moments_within(&vec![(f64::NEG_INFINITY, f64::INFINITY); self.numeric_columns])
    }

    /// [`Self::numeric_moments`] of the values clamped to each column's `(low, high)` range, so
    /// that one row changes a column's sums by a known bound (the pooled statistics' noise).
    pub fn numeric_moments_within(&self, ranges: &[(f64, f64)]) -> Vec<Moments> {
        let mut moments = vec![Moments::default(); self.numeric_columns];
        for row in self.numeric.chunks(self.numeric_columns.max(1)) {
            for ((m, value), &(low, high)) in moments.iter_mut().zip(row).zip(ranges) {
                if let Some(v) = value {
                    m.push(f64::from(*v).clamp(low, high));
                }
            }
        }
        moments
    }

    /// The table of the given rows, in that order.
    pub fn select(&self, rows: &[usize]) -> Table {
        let mut selected = self.empty();
        for &row in rows {
            selected.push_row_of(self, row);
        }
        selected
    }

    fn push_row_of(&mut self, other: &Table, row: usize) {
        self.numeric.extend_from_slice(&other.numeric[row * other.numeric_columns..(row + 1) * other.numeric_columns]);
        self.categories.extend_from_slice(
            &other.categories[row * other.categorical_columns..(row + 1) * other.categorical_columns],
        );
        self.labels.push(other.labels[row]);
        self.groups.push(other.groups[row].clone());
        self.lines.push(other.lines[row]);
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

    /// This table's counts for `fedcare explore`, on `columns`: `schema`'s
    /// ([`Schema::explore_columns`]) with their edges resolved. Refuses columns of another shape.
    pub fn explore_counts(&self, schema: &Schema, columns: &[ColumnSpec]) -> Result<ExploreCounts> {
        let expected = schema.explore_columns();
        let same = expected.len() == columns.len()
            && expected.iter().zip(columns).all(|(a, b)| a.name == b.name && a.cells() == b.cells());
        if !same || self.numeric_columns != schema.numeric.len() {
            return Err(DataError::ExploreColumns {
                expected: expected.iter().map(|c| c.name.clone()).collect(),
                got: columns.iter().map(|c| c.name.clone()).collect(),
            });
        }
        // A vocabulary column's other values have the cell after its vocabulary; a missing value
        // is the index after that (a `top_k` column's: its bucket count).
        let missing_index: Vec<usize> = schema
            .categorical
            .iter()
            .map(|spec| spec.top_k_shape().map_or(spec.vocabulary.len() + 1, |shape| shape.buckets as usize))
            .collect();
        let mut counts = ExploreCounts::zeros(columns);
        let numeric_specs = &columns[..self.numeric_columns];
        let (numeric_counts, categorical_counts) = counts.columns.split_at_mut(self.numeric_columns);
        for row in 0..self.rows() {
            let positive = self.labels[row] > 0.5;
            let numeric = &self.numeric[row * self.numeric_columns..(row + 1) * self.numeric_columns];
            for ((spec, column), value) in numeric_specs.iter().zip(numeric_counts.iter_mut()).zip(numeric) {
                column.push_numeric(spec, value.map(f64::from), positive);
            }
            let categories = &self.categories[row * self.categorical_columns..(row + 1) * self.categorical_columns];
            for ((&missing, column), &index) in missing_index.iter().zip(categorical_counts.iter_mut()).zip(categories)
            {
                if index >= missing { column.push_missing(positive) } else { column.push_cell(index, positive) }
            }
        }
        counts.rows = self.rows() as u64;
        counts.positives = self.labels.iter().filter(|&&y| y > 0.5).count() as u64;
        Ok(counts)
    }

    /// The cell of every row in each of `columns` (subgroup columns, each one of `schema`'s
    /// [`Schema::explore_columns`] as it is there): `cells[c][row]`, the column's cell count for a
    /// missing value. Refuses a column this schema lacks or counts on other cells, by its name.
    pub fn subgroup_cells(&self, schema: &Schema, columns: &[ColumnSpec]) -> Result<Vec<Vec<usize>>> {
        let own = schema.explore_columns();
        columns
            .iter()
            .map(|column| {
                let refuse = |why: String| DataError::SubgroupColumn { column: column.name.clone(), why };
                let index = own.iter().position(|c| c.name == column.name).ok_or_else(|| {
                    let names: Vec<&str> = own.iter().map(|c| c.name.as_str()).collect();
                    refuse(format!("this hospital's schema has no such column (it has {names:?})"))
                })?;
                if own[index] != *column {
                    return Err(refuse(format!(
                        "this hospital's schema counts it on {} cells ({:?}), the federation on {} ({:?})",
                        own[index].cells(),
                        own[index].kind,
                        column.cells(),
                        column.kind
                    )));
                }
                let missing = column.cells();
                let cells = if index < self.numeric_columns {
                    (0..self.rows())
                        .map(|row| {
                            self.numeric[row * self.numeric_columns + index]
                                .map_or(missing, |value| column.bin_of(f64::from(value)))
                        })
                        .collect()
                } else {
                    let categorical = index - self.numeric_columns;
                    (0..self.rows())
                        .map(|row| {
                            let cell = self.categories[row * self.categorical_columns + categorical];
                            if cell >= missing { missing } else { cell }
                        })
                        .collect()
                };
                Ok(cells)
            })
            .collect()
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
        // Each row's group (patient): DP-SGD samples and clips a patient's rows as one.
        Ok(Dataset::new(features, self.labels.clone(), width)?.with_groups(&self.groups)?)
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
            side.push_row_of(self, row);
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

    /// Every row's [`patient_key`] under `training_seed`.
    pub fn patient_keys(&self, training_seed: u64) -> Vec<u64> {
        self.groups.iter().map(|group| patient_key(training_seed, group)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BadRows, read_csv};
    use fedcare_core::explore::{ColumnKind, resolve_columns};

    const SCHEMA: &str = r#"
        id = "wards/v1"
        label = { column = "died", positive = ["yes"] }
        [[numeric]]
        name = "age"
        edges = [20, 40, 60]
        [[numeric]]
        name = "stay"
        [[categorical]]
        name = "sex"
        vocabulary = ["F", "M"]
        [[categorical]]
        name = "ward"
        top_k = 2
        buckets = 16
    "#;

    #[test]
    fn a_row_sets_one_one_hot_input_per_categorical_column() {
        // The bound a boosted tree's histogram noise rests on (`Schema::inputs_per_row`).
        let schema = Schema::diabetes130(true);
        let dir = tempfile::tempdir().unwrap();
        let files = crate::synth::write_cohort(dir.path(), 1, 300, 5).unwrap();
        let (table, _) = read_csv(&files[0], &schema, BadRows::Reject).unwrap();
        let stats: Vec<_> = table.numeric_moments().iter().map(|m| m.stats()).collect();
        let top_k: Vec<Vec<u32>> = schema.top_k_shapes().iter().map(|shape| (0..shape.k).collect()).collect();
        let data = table.to_dataset_with(&schema, &stats, &top_k).unwrap();
        assert!(schema.inputs_per_row() < schema.width() / 4, "{} of {}", schema.inputs_per_row(), schema.width());
        for row in 0..data.rows() {
            let one_hot = &data.row(row)[schema.numeric.len()..];
            assert!(one_hot.iter().all(|&x| x == 0.0 || x == 1.0));
            let set = one_hot.iter().filter(|&&x| x == 1.0).count();
            assert_eq!(schema.numeric.len() + set, schema.inputs_per_row(), "row {row}");
        }
    }

    #[test]
    fn explore_counts_put_every_value_in_its_cell_and_missing_values_apart() {
        let schema = Schema::from_toml(SCHEMA).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(
            &path,
            "age,stay,sex,ward,died\n25,3,F,icu,yes\n61,?,X,icu,no\n?,10,,er,no\n10,4,M,,yes\n40,2,M,er,no\n",
        )
        .unwrap();
        let (table, _) = read_csv(&path, &schema, BadRows::Reject).unwrap();
        let stats: Vec<_> = table.numeric_moments().iter().map(|m| m.stats()).collect();
        let columns = resolve_columns(&schema.explore_columns(), &stats);
        let counts = table.explore_counts(&schema, &columns).unwrap();
        assert_eq!((counts.rows, counts.positives), (5, 2));
        let age = &counts.columns[0];
        // < 20: 10; [20, 40): 25; [40, 60]: 40; > 60: 61; one missing.
        assert_eq!((age.cells.as_slice(), age.missing), ([1, 1, 1, 1].as_slice(), 1));
        assert_eq!(age.positives, [1, 1, 0, 0]);
        assert_eq!(age.moments.count, 4);
        let ColumnKind::Numeric { edges, .. } = &columns[1].kind else { panic!("stay is numeric") };
        assert_eq!(edges.len(), 21, "automatic bins over the column's own statistics");
        assert_eq!(counts.columns[1].missing, 1);
        // sex: F, M, other (X) and missing ("") apart.
        assert_eq!((counts.columns[2].cells.as_slice(), counts.columns[2].missing), ([1, 2, 1].as_slice(), 1));
        let ward = &counts.columns[3];
        assert_eq!((ward.cells.iter().sum::<u64>(), ward.missing), (4, 1));
        assert_eq!(ward.cells[crate::top_k::bucket_of("ward", "icu", 16, None) as usize], 2);
        // Columns of another schema are refused.
        assert!(table.explore_counts(&schema, &columns[1..]).is_err());
        // Edges that are not edges are refused with the column's name.
        let bad = SCHEMA.replace("edges = [20, 40, 60]", "edges = [20, 20]");
        let error = Schema::from_toml(&bad).unwrap_err().to_string();
        assert!(error.contains("\"age\"") && error.contains("ascending"), "{error}");
    }

    #[test]
    fn subgroup_cells_put_every_row_in_its_band_or_category_and_missing_values_last() {
        let schema = Schema::from_toml(&format!("subgroups = [\"sex\", \"age\"]\n{SCHEMA}")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        std::fs::write(&path, "age,stay,sex,ward,died\n25,3,F,icu,yes\n61,?,X,icu,no\n?,10,,er,no\n40,2,M,er,no\n")
            .unwrap();
        let (table, _) = read_csv(&path, &schema, BadRows::Reject).unwrap();
        let columns = schema.subgroup_columns(&schema.subgroups).unwrap();
        let cells = table.subgroup_cells(&schema, &columns).unwrap();
        // sex: F, other (X), missing (cell 3: after F, M and other), M.
        assert_eq!(cells[0], [0, 2, 3, 1]);
        // age over edges 20, 40, 60: [20, 40), > 60, missing (cell 4), [40, 60].
        assert_eq!(cells[1], [1, 3, 4, 2]);
        // A column the schema lacks is refused by its name, and so is one counted otherwise.
        let error = schema.subgroup_columns(&["race".into()]).unwrap_err().to_string();
        assert!(error.contains("\"race\"") && error.contains("sex"), "{error}");
        let mut other = columns.clone();
        other[1].kind = ColumnKind::Numeric { edges: vec![0.0, 50.0, 100.0], bins: 20 };
        let error = table.subgroup_cells(&schema, &other).unwrap_err().to_string();
        assert!(error.contains("\"age\"") && error.contains("counts it on"), "{error}");
        // A schema naming a subgroup column it lacks is refused when read.
        let bad = format!("subgroups = [\"race\"]\n{SCHEMA}");
        assert!(Schema::from_toml(&bad).unwrap_err().to_string().contains("\"race\""));
    }

    #[test]
    fn earlier_in_group_counts_a_groups_rows_with_smaller_keys_in_any_file_order() {
        let schema = Schema::from_toml(
            r#"
            id = "visits/v1"
            label = { column = "back", positive = ["yes"] }
            group = "patient"
            [[numeric]]
            name = "visit"
            transform = "earlier_in_group"
            [[categorical]]
            name = "sex"
            vocabulary = ["F", "M"]
        "#,
        )
        .unwrap();
        assert_eq!(schema.feature_names()[0], "earlier_in_group(visit)");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.csv");
        // Patient a: visits 30, 10, 20, 20 (file order); b: one visit; c: 5 and 7.
        std::fs::write(
            &path,
            "visit,patient,sex,back\n30,a,F,no\n10,a,F,no\n99,b,M,yes\n20,a,F,no\n7,c,M,no\n20,a,F,yes\n5,c,M,no\n",
        )
        .unwrap();
        let (table, _) = read_csv(&path, &schema, BadRows::Reject).unwrap();
        let earlier: Vec<f32> = table.numeric.iter().map(|v| v.unwrap().exp_m1().round()).collect();
        assert_eq!(earlier, [3.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]);
        assert!((table.numeric[0].unwrap() - 4f32.ln()).abs() < 1e-6, "ln(1 + 3)");
        // A row without its place is a bad row; the transform needs a group and a numeric column.
        std::fs::write(&path, "visit,patient,sex,back\n?,a,F,no\n").unwrap();
        let error = read_csv(&path, &schema, BadRows::Reject).unwrap_err().to_string();
        assert!(error.contains("\"visit\"") && error.contains("a.csv:2:"), "{error}");
        let text = r#"
            id = "visits/v1"
            label = { column = "back", positive = ["yes"] }
            [[numeric]]
            name = "visit"
            transform = "earlier_in_group"
        "#;
        let error = Schema::from_toml(text).unwrap_err().to_string();
        assert!(error.contains("no group"), "{error}");
        let categorical = text
            .replace("[[numeric]]", "group = \"patient\"\n[[categorical]]")
            .replace("transform", "top_k = 3\ntransform");
        let error = Schema::from_toml(&categorical).unwrap_err().to_string();
        assert!(error.contains("only on a numeric column"), "{error}");
    }
}
