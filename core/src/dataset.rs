//! An in-memory training set: row-major `f32` features and `0/1` labels.
//!
//! A [`Dataset`] is always valid once built: every feature is finite, every label is 0 or 1 and
//! the sizes agree. Loaders (CSV, synthetic cohorts) build one through [`Dataset::new`], which
//! says which row and column is wrong when it refuses.

use alloc::vec::Vec;

use crate::{Error, Result};

/// The most rows a dataset may hold (row indices of batch orders are `u32`).
pub const MAX_ROWS: usize = u32::MAX as usize;

/// Row-major features (`rows × width`) and one `0.0`/`1.0` label per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    features: Vec<f32>,
    labels: Vec<f32>,
    width: usize,
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
        Ok(Self { features, labels, width })
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
        Self { features, labels, width: self.width }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

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
    fn select_and_pos_weight() {
        let data = Dataset::new(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], vec![0.0, 1.0, 0.0], 2).unwrap();
        assert_eq!(data.balanced_pos_weight(), 2.0);
        let picked = data.select(&[2, 0]);
        assert_eq!(picked.features(), &[5.0, 6.0, 1.0, 2.0]);
        assert_eq!(picked.labels(), &[0.0, 0.0]);
    }
}
