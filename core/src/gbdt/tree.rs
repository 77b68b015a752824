//! Decision trees and the boosted ensemble a model file holds, and their scores.
//!
//! A tree is a list of nodes, the root first; a split sends a row left when its input is below
//! the threshold (`x < t`, XGBoost's and ONNX's `BRANCH_LT`) and right otherwise. The
//! ensemble's margin (its logit) is its base margin plus every tree's leaf, added in tree order
//! in `f32`.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A node of a tree.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Node {
    /// A test of one input: below `threshold` to `left`, else to `right` (node indices).
    Split {
        /// The input tested.
        input: u32,
        /// The threshold.
        threshold: f32,
        /// The node of rows below it.
        left: u32,
        /// The node of the others.
        right: u32,
    },
    /// A leaf: the value a row that reaches it adds to the margin.
    Leaf {
        /// The value.
        value: f32,
    },
}

/// One tree, its root at index 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// The nodes, the root first; every child comes after its parent.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The leaf value `row` reaches.
    pub fn margin(&self, row: &[f32]) -> f32 {
        let mut index = 0;
        loop {
            match self.nodes[index] {
                Node::Split { input, threshold, left, right } => {
                    index = if row[input as usize] < threshold { left } else { right } as usize;
                }
                Node::Leaf { value } => return value,
            }
        }
    }

    /// Leaves.
    pub fn leaves(&self) -> usize {
        self.nodes.iter().filter(|node| matches!(node, Node::Leaf { .. })).count()
    }

    /// Checks the tree for `width` inputs: at least one node, finite values, inputs in range,
    /// children after their parent and reached once (so every walk ends at a leaf).
    pub(crate) fn validate(&self, width: usize) -> Result<()> {
        let bad = |index: usize| Error::InvalidTree { node: index };
        if self.nodes.is_empty() {
            return Err(bad(0));
        }
        let mut reached = alloc::vec![false; self.nodes.len()];
        for (index, node) in self.nodes.iter().enumerate() {
            match *node {
                Node::Split { input, threshold, left, right } => {
                    let (left, right) = (left as usize, right as usize);
                    let child_ok = |child: usize| child > index && child < self.nodes.len();
                    if input as usize >= width || !threshold.is_finite() || !child_ok(left) || !child_ok(right) {
                        return Err(bad(index));
                    }
                    for child in [left, right] {
                        if core::mem::replace(&mut reached[child], true) {
                            return Err(bad(child));
                        }
                    }
                }
                Node::Leaf { value } if !value.is_finite() => return Err(bad(index)),
                Node::Leaf { .. } => {}
            }
        }
        Ok(())
    }
}

/// A boosted ensemble: the margin of a row is `base_margin + Σ tree.margin(row)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    /// The margin before any tree (the log-odds of the pooled positive rate).
    pub base_margin: f32,
    /// The trees, in the order they were grown.
    pub trees: Vec<Tree>,
}

impl Ensemble {
    /// An ensemble without trees.
    pub fn new(base_margin: f32) -> Self {
        Self { base_margin, trees: Vec::new() }
    }

    /// The margin (logit) of one row.
    pub fn margin(&self, row: &[f32]) -> f32 {
        self.trees.iter().fold(self.base_margin, |margin, tree| margin + tree.margin(row))
    }

    /// The margins of every row of `features` (`width` values a row).
    pub fn margins(&self, features: &[f32], width: usize) -> Result<Vec<f32>> {
        self.validate(width)?;
        if width == 0 || !features.len().is_multiple_of(width) {
            return Err(Error::FeatureCount { expected: width, got: features.len() });
        }
        Ok(features.chunks_exact(width).map(|row| self.margin(row)).collect())
    }

    /// The first `trees` trees (all of them when there are fewer).
    pub fn truncated(&self, trees: usize) -> Self {
        Self { base_margin: self.base_margin, trees: self.trees.iter().take(trees).cloned().collect() }
    }

    /// Every node of every tree, counted.
    pub fn nodes(&self) -> usize {
        self.trees.iter().map(|tree| tree.nodes.len()).sum()
    }

    /// Checks every tree for `width` inputs and the base margin.
    pub fn validate(&self, width: usize) -> Result<()> {
        if !self.base_margin.is_finite() {
            return Err(Error::NonFiniteValue { index: 0 });
        }
        self.trees.iter().try_for_each(|tree| tree.validate(width))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stump(input: u32, threshold: f32, low: f32, high: f32) -> Tree {
        Tree {
            nodes: alloc::vec![
                Node::Split { input, threshold, left: 1, right: 2 },
                Node::Leaf { value: low },
                Node::Leaf { value: high },
            ],
        }
    }

    #[test]
    fn a_row_below_the_threshold_goes_left_and_the_margins_add() {
        let ensemble =
            Ensemble { base_margin: -1.0, trees: alloc::vec![stump(0, 0.5, 0.25, 1.0), stump(1, 2.0, 0.5, -0.5)] };
        assert_eq!(ensemble.margins(&[0.0, 3.0, 0.5, 1.0], 2).unwrap(), [-1.25, 0.5]);
        assert_eq!(ensemble.truncated(1).margin(&[0.0, 3.0]), -0.75);
    }

    #[test]
    fn malformed_trees_are_refused() {
        let mut cyclic = stump(0, 0.5, 0.0, 0.0);
        cyclic.nodes[0] = Node::Split { input: 0, threshold: 0.5, left: 0, right: 2 };
        let shared = Tree {
            nodes: alloc::vec![Node::Split { input: 0, threshold: 0.5, left: 1, right: 1 }, Node::Leaf { value: 0.0 }],
        };
        for tree in [
            cyclic,
            shared,
            stump(5, 0.5, 0.0, 0.0),
            stump(0, f32::NAN, 0.0, 0.0),
            stump(0, 0.5, f32::INFINITY, 0.0),
            Tree { nodes: Vec::new() },
        ] {
            assert!(Ensemble { base_margin: 0.0, trees: alloc::vec![tree] }.validate(2).is_err());
        }
    }
}
