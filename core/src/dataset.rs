//! An in-memory training set: row-major `f32` features, `0/1` labels and, optionally, the group
//! (patient) of each row, which DP-SGD samples and clips as one ([`crate::privacy`]).
//!
//! A [`Dataset`] is always valid once built: every feature is finite, every label is 0 or 1 and
//! the sizes agree. Loaders (CSV, synthetic cohorts) build one through [`Dataset::new`], which
//! says which row and column is wrong when it refuses.

use alloc::vec;
use alloc::vec::Vec;

use crate::{Error, Result};

/// The most rows a dataset may hold (row indices of batch orders are `u32`).
pub const MAX_ROWS: usize = u32::MAX as usize;

/// Row-major features (`rows × width`), one `0.0`/`1.0` label per row and, optionally, each
/// row's group.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    features: Vec<f32>,
    labels: Vec<f32>,
    width: usize,
    /// Each row's group, numbered `0..` in order of first appearance (`None`: every row is a
    /// group of its own).
    groups: Option<Vec<u32>>,
}

/// The rows of every group: group `g`'s rows are `rows[offsets[g]..offsets[g + 1]]`, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRows {
    offsets: Vec<u32>,
    rows: Vec<u32>,
}

impl GroupRows {
    /// Number of groups.
    pub fn groups(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The rows of group `group`.
    ///
    /// # Panics
    /// If `group >= self.groups()` (caller bug).
    pub fn rows_of(&self, group: usize) -> &[u32] {
        &self.rows[self.offsets[group] as usize..self.offsets[group + 1] as usize]
    }

    /// The most rows any group has.
    pub fn largest(&self) -> usize {
        self.offsets.windows(2).map(|w| (w[1] - w[0]) as usize).max().unwrap_or(0)
    }
}

impl Dataset {
    /// Builds a dataset, checking sizes, finiteness and labels.
    pub fn new(features: Vec<f32>, labels: Vec<f32>, width: usize) -> Result<Self> {
        if width == 0 {
            return Err(Error::EmptyLayer { layer: 0 });
        }
        if labels.len() > MAX_ROWS {
            return Err(Error::TooManyRows { rows: labels.len(), max: MAX_ROWS });
        }
        let expected =
            labels.len().checked_mul(width).ok_or(Error::FeatureCount { expected: usize::MAX, got: features.len() })?;
        if features.len() != expected {
            return Err(Error::FeatureCount { expected, got: features.len() });
        }
        if let Some(i) = features.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteFeature { row: i / width, column: i % width });
        }
        if let Some(row) = labels.iter().position(|&y| y != 0.0 && y != 1.0) {
            return Err(Error::InvalidLabel { row, value: labels[row] });
        }
        Ok(Self { features, labels, width, groups: None })
    }

    /// The same rows, `ids` naming each row's group (any ids, such as patient numbers; rows with
    /// the same id are one group).
    pub fn with_groups<T: Ord>(mut self, ids: &[T]) -> Result<Self> {
        if ids.len() != self.rows() {
            return Err(Error::GroupCount { expected: self.rows(), got: ids.len() });
        }
        let mut numbers = alloc::collections::BTreeMap::new();
        let groups = ids
            .iter()
            .map(|id| {
                let next = numbers.len() as u32;
                *numbers.entry(id).or_insert(next)
            })
            .collect();
        self.groups = Some(groups);
        Ok(self)
    }

    /// Each row's group, numbered from 0 in order of first appearance (`None`: every row is its
    /// own group).
    pub fn groups(&self) -> Option<&[u32]> {
        self.groups.as_deref()
    }

    /// The rows of every group (every row its own group without groups).
    pub fn group_rows(&self) -> GroupRows {
        let Some(groups) = &self.groups else {
            return GroupRows { offsets: (0..=self.rows() as u32).collect(), rows: (0..self.rows() as u32).collect() };
        };
        let count = groups.iter().max().map_or(0, |&g| g as usize + 1);
        let mut offsets = vec![0u32; count + 1];
        for &g in groups {
            offsets[g as usize + 1] += 1;
        }
        for g in 0..count {
            offsets[g + 1] += offsets[g];
        }
        let mut next = offsets.clone();
        let mut rows = vec![0u32; groups.len()];
        for (row, &g) in groups.iter().enumerate() {
            rows[next[g as usize] as usize] = row as u32;
            next[g as usize] += 1;
        }
        GroupRows { offsets, rows }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Number of features per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// All features, row-major.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// All labels.
    pub fn labels(&self) -> &[f32] {
        &self.labels
    }

    /// The features of one row.
    ///
    /// # Panics
    /// If `row >= self.rows()` (caller bug).
    pub fn row(&self, row: usize) -> &[f32] {
        &self.features[row * self.width..(row + 1) * self.width]
    }

    /// Number of positive labels.
    pub fn positives(&self) -> usize {
        self.labels.iter().filter(|&&y| y == 1.0).count()
    }

    /// `negatives / positives`, the usual `pos_weight` for an imbalanced label
    /// (1.0 when either class is absent).
    pub fn balanced_pos_weight(&self) -> f32 {
        let positives = self.positives();
        let negatives = self.rows() - positives;
        if positives == 0 || negatives == 0 { 1.0 } else { negatives as f32 / positives as f32 }
    }

    /// A new dataset of the given rows, in the given order.
    ///
    /// # Panics
    /// If an index is out of range (caller bug).
    pub fn select(&self, rows: &[usize]) -> Self {
        let mut features = Vec::with_capacity(rows.len() * self.width);
        let mut labels = Vec::with_capacity(rows.len());
        for &r in rows {
            features.extend_from_slice(self.row(r));
            labels.push(self.labels[r]);
        }
        let selected = Self { features, labels, width: self.width, groups: None };
        match &self.groups {
            Some(groups) => {
                let ids: Vec<u32> = rows.iter().map(|&r| groups[r]).collect();
                // Invariant: one id per selected row.
                selected.with_groups(&ids).expect("one group id per row")
            }
            None => selected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_datasets_name_the_failing_cell() {
        assert_eq!(Dataset::new(vec![0.0; 5], vec![0.0, 1.0], 3), Err(Error::FeatureCount { expected: 6, got: 5 }));
        assert_eq!(
            Dataset::new(vec![0.0, 1.0, 2.0, 3.0, f32::NAN, 5.0], vec![0.0, 1.0], 3),
            Err(Error::NonFiniteFeature { row: 1, column: 1 })
        );
        assert_eq!(Dataset::new(vec![0.0; 6], vec![0.0, 0.5], 3), Err(Error::InvalidLabel { row: 1, value: 0.5 }));
    }

    #[test]
    fn groups_are_numbered_by_first_appearance_and_list_their_rows() {
        let data = Dataset::new(vec![0.0; 5], vec![0.0; 5], 1).unwrap();
        assert_eq!(data.group_rows().groups(), 5, "without groups every row is its own");
        let data = data.with_groups(&[70, 3, 70, 9, 3]).unwrap();
        assert_eq!(data.groups(), Some(&[0, 1, 0, 2, 1][..]));
        let rows = data.group_rows();
        assert_eq!(
            (rows.groups(), rows.rows_of(0), rows.rows_of(1), rows.rows_of(2)),
            (3, &[0, 2][..], &[1, 4][..], &[3][..])
        );
        assert_eq!(rows.largest(), 2);
        assert_eq!(data.select(&[3, 4, 1]).groups(), Some(&[0, 1, 1][..]));
        assert_eq!(
            Dataset::new(vec![0.0; 2], vec![0.0; 2], 1).unwrap().with_groups(&[1]),
            Err(Error::GroupCount { expected: 2, got: 1 })
        );
    }

    #[test]
    fn select_and_pos_weight() {
        let data = Dataset::new(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![0.0, 1.0, 0.0], 2).unwrap();
        assert_eq!(data.balanced_pos_weight(), 2.0);
        let picked = data.select(&[2, 0]);
        assert_eq!(picked.features(), &[5.0, 6.0, 1.0, 2.0]);
        assert_eq!(picked.labels(), &[0.0, 0.0]);
    }
}
