//! Logistic-loss gradients in fixed point, and their histograms per tree node.
//!
//! A row's gradient and hessian are rounded to integers in units of `1/`[`GRADIENT_SCALE`] once,
//! where the row is; every sum after that is an exact integer sum, so the histograms of a union
//! of row sets (a federation's hospitals) are exactly the sums of theirs, in any order.

use alloc::vec::Vec;
use core::ops::{Add, AddAssign, Sub};
use serde::{Deserialize, Serialize};

use super::bins::{BinnedRows, Cuts};
use crate::{Error, Result};

/// Units of a gradient or hessian per integer step: `2^16` (a row's logistic gradient is
/// resolved to 1.5e−5).
pub const GRADIENT_SCALE: f64 = 65_536.0;

/// One row's gradient and hessian of the logistic loss at its margin, in fixed point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GradientPair {
    /// `w·(p − y)`, times [`GRADIENT_SCALE`], rounded.
    pub grad: i32,
    /// `w·p·(1 − p)`, times [`GRADIENT_SCALE`], rounded.
    pub hess: i32,
}

/// Every row's [`GradientPair`] at `margins`, `w` being `pos_weight` for a positive row and 1
/// otherwise. Refuses a non-finite margin or a label other than 0 or 1.
pub fn gradient_pairs(margins: &[f32], labels: &[f32], pos_weight: f64) -> Result<Vec<GradientPair>> {
    if margins.len() != labels.len() {
        return Err(Error::LabelCount { expected: margins.len(), got: labels.len() });
    }
    margins
        .iter()
        .zip(labels)
        .enumerate()
        .map(|(row, (&margin, &label))| {
            if !margin.is_finite() {
                return Err(Error::NonFiniteScore { index: row });
            }
            if label != 0.0 && label != 1.0 {
                return Err(Error::InvalidLabel { row, value: label });
            }
            let p = f64::from(crate::loss::sigmoid(margin));
            let y = f64::from(label);
            let w = if label == 1.0 { pos_weight } else { 1.0 };
            let fixed = |v: f64| libm::round(v * GRADIENT_SCALE) as i32;
            Ok(GradientPair { grad: fixed(w * (p - y)), hess: fixed(w * p * (1.0 - p)) })
        })
        .collect()
}

/// Sums of a set of rows' gradients, hessians (in units of `1/`[`GRADIENT_SCALE`]) and rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cell {
    /// Σ gradient.
    pub grad: i64,
    /// Σ hessian.
    pub hess: i64,
    /// Rows.
    pub count: i64,
}

impl Cell {
    /// Σ gradient in real units.
    pub fn gradient(&self) -> f64 {
        self.grad as f64 / GRADIENT_SCALE
    }

    /// Σ hessian in real units.
    pub fn hessian(&self) -> f64 {
        self.hess as f64 / GRADIENT_SCALE
    }

    fn add_pair(&mut self, pair: GradientPair) {
        self.grad += i64::from(pair.grad);
        self.hess += i64::from(pair.hess);
        self.count += 1;
    }
}

impl Add for Cell {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            grad: self.grad.wrapping_add(other.grad),
            hess: self.hess.wrapping_add(other.hess),
            count: self.count.wrapping_add(other.count),
        }
    }
}

impl AddAssign for Cell {
    fn add_assign(&mut self, other: Self) {
        *self = *self + other;
    }
}

impl Sub for Cell {
    type Output = Self;
    fn sub(self, other: Self) -> Self {
        Self {
            grad: self.grad.wrapping_sub(other.grad),
            hess: self.hess.wrapping_sub(other.hess),
            count: self.count.wrapping_sub(other.count),
        }
    }
}

/// One node's histogram: its total, then per input its bins past the first ([`Cuts::cells`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHistogram {
    /// The cells: `[0]` the node's total, then [`Cuts::cell`]'s order.
    pub cells: Vec<Cell>,
}

impl NodeHistogram {
    /// An empty histogram of `cells` cells.
    pub fn zeros(cells: usize) -> Self {
        Self { cells: alloc::vec![Cell::default(); cells] }
    }

    /// The node's total.
    pub fn total(&self) -> Cell {
        self.cells.first().copied().unwrap_or_default()
    }

    /// Every bin of `input`, the first one included (the total less the others).
    pub fn bins(&self, cuts: &Cuts, input: usize) -> Vec<Cell> {
        let rest = &self.cells[cuts.cell(input, 1)..cuts.cell(input, 1) + cuts.bins(input) - 1];
        let first = rest.iter().fold(self.total(), |left, &cell| left - cell);
        core::iter::once(first).chain(rest.iter().copied()).collect()
    }

    /// Adds `other` cell by cell (both of the same cuts).
    pub fn add(&mut self, other: &Self) {
        self.cells.iter_mut().zip(&other.cells).for_each(|(a, &b)| *a += b);
    }

    /// `self − other` cell by cell: a node's sibling from their parent's histogram.
    pub fn minus(&self, other: &Self) -> Self {
        Self { cells: self.cells.iter().zip(&other.cells).map(|(&a, &b)| a - b).collect() }
    }
}

/// The histograms of the `measured` nodes over the rows whose open node (`nodes[row]`) is one
/// of them, in `measured`'s order.
pub fn node_histograms(
    binned: &BinnedRows,
    pairs: &[GradientPair],
    nodes: &[Option<u32>],
    measured: &[u32],
    cuts: &Cuts,
) -> Vec<NodeHistogram> {
    let mut histograms: Vec<NodeHistogram> = measured.iter().map(|_| NodeHistogram::zeros(cuts.cells())).collect();
    for (row, (&pair, node)) in pairs.iter().zip(nodes).enumerate().take(binned.rows()) {
        let Some(index) = node.and_then(|node| measured.iter().position(|&m| m == node)) else { continue };
        let cells = &mut histograms[index].cells;
        cells[0].add_pair(pair);
        for &cell in binned.cells_of(row) {
            cells[cell as usize].add_pair(pair);
        }
    }
    histograms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradients_are_the_weighted_logistic_ones_in_fixed_point() {
        let pairs = gradient_pairs(&[0.0, 0.0, 2.0], &[1.0, 0.0, 1.0], 3.0).unwrap();
        assert_eq!(pairs[0], GradientPair { grad: -98_304, hess: 49_152 });
        assert_eq!(pairs[1], GradientPair { grad: 32_768, hess: 16_384 });
        let p = 1.0 / (1.0 + (-2.0f64).exp());
        assert!((f64::from(pairs[2].grad) / GRADIENT_SCALE - 3.0 * (p - 1.0)).abs() < 1e-4);
        assert!(gradient_pairs(&[f32::NAN], &[1.0], 1.0).is_err());
        assert!(gradient_pairs(&[0.0], &[0.5], 1.0).is_err());
    }

    #[test]
    fn a_histogram_gives_every_bin_and_a_sibling_by_subtraction() {
        let cuts = Cuts::for_inputs(alloc::vec![alloc::vec![1.0]], 2).unwrap();
        let data =
            crate::Dataset::new(alloc::vec![0.0, 0.0, 2.0, 1.0, 2.0, 0.0], alloc::vec![1.0, 0.0, 0.0], 2).unwrap();
        let binned = BinnedRows::new(&data, &cuts).unwrap();
        let pairs = [
            GradientPair { grad: 1, hess: 10 },
            GradientPair { grad: 2, hess: 20 },
            GradientPair { grad: 4, hess: 40 },
        ];
        let all = node_histograms(&binned, &pairs, &[Some(0); 3], &[0], &cuts).remove(0);
        assert_eq!(all.total(), Cell { grad: 7, hess: 70, count: 3 });
        assert_eq!(all.bins(&cuts, 0), [Cell { grad: 1, hess: 10, count: 1 }, Cell { grad: 6, hess: 60, count: 2 }]);
        assert_eq!(all.bins(&cuts, 1), [Cell { grad: 5, hess: 50, count: 2 }, Cell { grad: 2, hess: 20, count: 1 }]);
        let nodes = [Some(1), Some(2), Some(2)];
        let parts = node_histograms(&binned, &pairs, &nodes, &[2, 1], &cuts);
        assert_eq!(parts[1].total().count, 1);
        assert_eq!(all.minus(&parts[0]), parts[1]);
    }
}
