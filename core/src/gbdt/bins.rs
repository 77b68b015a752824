//! Each input's cut points and every row's bin of every input.
//!
//! An input with thresholds `t_0 < t_1 < … < t_{k−1}` has `k + 1` bins: a value `x` is in bin
//! `b`, the number of thresholds `≤ x`; so "bin ≤ b" is exactly `x < t_b`, the test a tree's
//! split makes at prediction. A binary input (one-hot, `0` or `1`) has the one threshold `0.5`.
//! A node's histogram holds, per input, the bins `1..k+1` (bin 0 is the node's total less the
//! others), after one cell for the node's total: [`Cuts::cells`] cells a node.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::{Dataset, Error, Result};

/// The most bins of one input.
pub const MAX_BINS: usize = 256;

/// Every input's thresholds, and where each input's cells sit in a node's histogram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cuts {
    thresholds: Vec<Vec<f32>>,
    /// The first cell of each input's bins `1..` in a node's histogram (after the total).
    offsets: Vec<usize>,
}

impl Cuts {
    /// Cuts from every input's thresholds (finite, strictly ascending, fewer than [`MAX_BINS`]).
    pub fn new(thresholds: Vec<Vec<f32>>) -> Result<Self> {
        let mut offsets = Vec::with_capacity(thresholds.len());
        let mut next = 1;
        for (input, cuts) in thresholds.iter().enumerate() {
            let ascending = cuts.windows(2).all(|w| w[0] < w[1]);
            if !ascending || cuts.len() >= MAX_BINS || cuts.iter().any(|t| !t.is_finite()) {
                return Err(Error::InvalidCuts { input, thresholds: cuts.len() });
            }
            offsets.push(next);
            next += cuts.len();
        }
        Ok(Self { thresholds, offsets })
    }

    /// Cuts for a model's encoded inputs: the numeric inputs first, each with `numeric[i]`'s
    /// thresholds, then `width − numeric.len()` binary inputs cut at `0.5`.
    pub fn for_inputs(numeric: Vec<Vec<f32>>, width: usize) -> Result<Self> {
        if numeric.len() > width {
            return Err(Error::FeatureWidth { expected: width, got: numeric.len() });
        }
        let binary = width - numeric.len();
        Self::new(numeric.into_iter().chain(core::iter::repeat_n(alloc::vec![0.5], binary)).collect())
    }

    /// Inputs.
    pub fn inputs(&self) -> usize {
        self.thresholds.len()
    }

    /// Bins of `input`.
    pub fn bins(&self, input: usize) -> usize {
        self.thresholds[input].len() + 1
    }

    /// The thresholds of `input`.
    pub fn thresholds(&self, input: usize) -> &[f32] {
        &self.thresholds[input]
    }

    /// The bin of `value` in `input`: the number of thresholds `≤ value`.
    pub fn bin(&self, input: usize, value: f32) -> usize {
        self.thresholds[input].partition_point(|&t| t <= value)
    }

    /// The cell of `input`'s bin `bin ≥ 1` in a node's histogram.
    pub fn cell(&self, input: usize, bin: usize) -> usize {
        self.offsets[input] + bin - 1
    }

    /// Cells of a node's histogram: its total, then every input's bins but the first.
    pub fn cells(&self) -> usize {
        self.offsets.last().zip(self.thresholds.last()).map_or(1, |(offset, cuts)| offset + cuts.len())
    }
}

/// Every row's cells: for each input whose value is past its first bin, the histogram cell of
/// its bin (ascending), so that a row adds to `1 + (its inputs past bin 0)` cells.
#[derive(Debug, Clone)]
pub struct BinnedRows {
    cells: Vec<u32>,
    starts: Vec<usize>,
}

impl BinnedRows {
    /// Bins every row of `data` (its width must be the cuts' inputs; features must be finite).
    pub fn new(data: &Dataset, cuts: &Cuts) -> Result<Self> {
        if data.width() != cuts.inputs() {
            return Err(Error::FeatureWidth { expected: cuts.inputs(), got: data.width() });
        }
        let mut cells = Vec::new();
        let mut starts = Vec::with_capacity(data.rows() + 1);
        for row in 0..data.rows() {
            starts.push(cells.len());
            for (input, &value) in data.row(row).iter().enumerate() {
                let bin = cuts.bin(input, value);
                if bin > 0 {
                    cells.push(cuts.cell(input, bin) as u32);
                }
            }
        }
        starts.push(cells.len());
        Ok(Self { cells, starts })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.starts.len() - 1
    }

    /// The cells `row` adds to besides the total.
    pub fn cells_of(&self, row: usize) -> &[u32] {
        &self.cells[self.starts[row]..self.starts[row + 1]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_on_a_threshold_is_in_the_bin_above_it() {
        let cuts = Cuts::for_inputs(alloc::vec![alloc::vec![1.0, 2.0, 3.0]], 3).unwrap();
        assert_eq!([0.5, 1.0, 1.5, 2.0, 3.0, 9.0].map(|x| cuts.bin(0, x)), [0, 1, 1, 2, 3, 3]);
        assert_eq!((cuts.bins(0), cuts.bins(1), cuts.bins(2)), (4, 2, 2));
        // The total, 3 cells of the numeric input, one of each binary input.
        assert_eq!(cuts.cells(), 6);
        assert_eq!((cuts.cell(0, 1), cuts.cell(0, 3), cuts.cell(1, 1), cuts.cell(2, 1)), (1, 3, 4, 5));
    }

    #[test]
    fn unordered_or_non_finite_thresholds_are_refused() {
        assert_eq!(Cuts::new(alloc::vec![alloc::vec![2.0, 1.0]]), Err(Error::InvalidCuts { input: 0, thresholds: 2 }));
        assert!(Cuts::new(alloc::vec![alloc::vec![], alloc::vec![f32::NAN]]).is_err());
        assert!(Cuts::new(alloc::vec![(0..MAX_BINS).map(|i| i as f32).collect()]).is_err());
    }

    #[test]
    fn rows_add_to_the_cells_of_their_bins_past_the_first() {
        let cuts = Cuts::for_inputs(alloc::vec![alloc::vec![1.0, 2.0]], 2).unwrap();
        let data = Dataset::new(alloc::vec![0.0, 1.0, 1.5, 0.0, 7.0, 1.0], alloc::vec![0.0, 1.0, 0.0], 2).unwrap();
        let binned = BinnedRows::new(&data, &cuts).unwrap();
        assert_eq!(binned.cells_of(0), &[3]);
        assert_eq!(binned.cells_of(1), &[1]);
        assert_eq!(binned.cells_of(2), &[2, 3]);
    }
}
