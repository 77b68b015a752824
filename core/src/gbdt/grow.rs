//! One tree grown level by level from its nodes' histograms, by one deterministic rule.
//!
//! A level measures the histograms of some of the open nodes ([`Growing::measured`]): the root
//! alone at first; afterwards, of the two children of a split, only the one with fewer rows (the
//! left on a tie), the other being its parent's histogram less it (XGBoost's subtraction
//! trick); a child that could not be split (hessian under twice `min_child_weight`, or one row)
//! becomes a leaf without being measured. From the histograms, every open node takes the split
//! of highest gain
//! ```text
//! gain = ½ · (G_L²/(H_L + λ) + G_R²/(H_R + λ) − G²/(H + λ)) − γ
//! ```
//! over every (input, bin) in order, the first on a tie, with `H_L, H_R ≥ min_child_weight` and
//! a row on each side, when it is positive and the node is above the last level; otherwise it
//! becomes a leaf of value `−η·G/(H + λ)`. The children of a split at the last level are leaves.
//! Everything is computed from the exact integer sums in `f64`, in a fixed order: every party
//! applying the same histograms grows the same tree.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::BoostingConfig;
use super::bins::Cuts;
use super::histogram::{Cell, NodeHistogram};
use super::tree::{Node, Tree};
use crate::{Error, Result};

/// A node of a tree being grown.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum GrowNode {
    /// Decided.
    Done(Node),
    /// Waiting for its histogram.
    Open,
}

/// What the next level measures, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Pending {
    /// One node measured on its own: the root (its total unknown) or a lone splittable child.
    Single {
        /// The node.
        node: u32,
        /// Its total, when known from its parent.
        total: Option<Cell>,
    },
    /// Two siblings: the `measure_left` one measured, the other its parent's histogram less it.
    Pair {
        /// The parent's histogram.
        parent: NodeHistogram,
        /// The left child.
        left: u32,
        /// The right child.
        right: u32,
        /// Whether the left child is the one measured.
        measure_left: bool,
    },
}

/// A tree being grown: its nodes so far and what its next level measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Growing {
    nodes: Vec<GrowNode>,
    frontier: Vec<Pending>,
    level: u32,
}

impl Default for Growing {
    fn default() -> Self {
        Self::new()
    }
}

impl Growing {
    /// A tree whose root is yet to be measured.
    pub fn new() -> Self {
        Self {
            nodes: alloc::vec![GrowNode::Open],
            frontier: alloc::vec![Pending::Single { node: 0, total: None }],
            level: 0,
        }
    }

    /// The level the next histograms are of (0: the root).
    pub fn level(&self) -> u32 {
        self.level
    }

    /// Whether every node is decided.
    pub fn finished(&self) -> bool {
        self.frontier.is_empty()
    }

    /// The nodes whose histograms the next level sums, in order.
    pub fn measured(&self) -> Vec<u32> {
        self.frontier
            .iter()
            .map(|pending| match *pending {
                Pending::Single { node, .. } => node,
                Pending::Pair { left, right, measure_left, .. } => {
                    if measure_left {
                        left
                    } else {
                        right
                    }
                }
            })
            .collect()
    }

    /// The open node `row` falls in, or `None` when it reaches a leaf.
    pub fn open_node(&self, row: &[f32]) -> Option<u32> {
        let mut index = 0usize;
        loop {
            match self.nodes[index] {
                GrowNode::Open => return Some(index as u32),
                GrowNode::Done(Node::Leaf { .. }) => return None,
                GrowNode::Done(Node::Split { input, threshold, left, right }) => {
                    index = if row[input as usize] < threshold { left } else { right } as usize;
                }
            }
        }
    }

    /// Applies the level's summed histograms (of [`Self::measured`], in order): decides every
    /// open node of the level and sets what the next one measures. Refuses histograms of
    /// another count or shape, or a total that differs from what the parent's histogram says.
    pub fn apply(&mut self, measured: Vec<NodeHistogram>, cuts: &Cuts, config: &BoostingConfig) -> Result<()> {
        self.apply_sums(measured, cuts, config, true)
    }

    /// [`Self::apply`] for histograms under differential privacy's noise: a node's measured
    /// total need not equal what its parent's noisy histogram said, and a sibling by
    /// subtraction may have fewer than no rows (it becomes a leaf); the shapes are still checked.
    pub fn apply_noisy(&mut self, measured: Vec<NodeHistogram>, cuts: &Cuts, config: &BoostingConfig) -> Result<()> {
        self.apply_sums(measured, cuts, config, false)
    }

    fn apply_sums(
        &mut self,
        measured: Vec<NodeHistogram>,
        cuts: &Cuts,
        config: &BoostingConfig,
        exact: bool,
    ) -> Result<()> {
        if measured.len() != self.frontier.len() || measured.iter().any(|h| h.cells.len() != cuts.cells()) {
            return Err(Error::HistogramShape {
                expected: self.frontier.len() * cuts.cells(),
                got: measured.iter().map(|h| h.cells.len()).sum(),
            });
        }
        let mut level = Vec::with_capacity(2 * measured.len());
        for (pending, histogram) in core::mem::take(&mut self.frontier).into_iter().zip(measured) {
            match pending {
                Pending::Single { node, total } => {
                    if exact && total.is_some_and(|total| total != histogram.total()) {
                        return Err(Error::HistogramTotal { node });
                    }
                    level.push((node, histogram));
                }
                Pending::Pair { parent, left, right, measure_left } => {
                    if parent.cells.len() != cuts.cells() {
                        return Err(Error::HistogramShape { expected: cuts.cells(), got: parent.cells.len() });
                    }
                    let sibling = parent.minus(&histogram);
                    let (l, r) = if measure_left { (histogram, sibling) } else { (sibling, histogram) };
                    if exact && (l.total().count < 0 || r.total().count < 0) {
                        return Err(Error::HistogramTotal { node: left.min(right) });
                    }
                    level.push((left, l));
                    level.push((right, r));
                }
            }
        }
        let last = self.level + 1 >= config.depth;
        for (node, histogram) in level {
            let total = histogram.total();
            let Some(split) = best_split(&histogram, cuts, config) else {
                self.nodes[node as usize] = GrowNode::Done(leaf(total, config));
                continue;
            };
            let (left, right) = (self.nodes.len() as u32, self.nodes.len() as u32 + 1);
            self.nodes[node as usize] =
                GrowNode::Done(Node::Split { input: split.input as u32, threshold: split.threshold, left, right });
            let splittable = |cell: &Cell| !last && cell.count >= 2 && cell.hessian() >= 2.0 * config.min_child_weight;
            let child =
                |cell: &Cell| if splittable(cell) { GrowNode::Open } else { GrowNode::Done(leaf(*cell, config)) };
            self.nodes.push(child(&split.left));
            self.nodes.push(child(&split.right));
            match (splittable(&split.left), splittable(&split.right)) {
                (true, true) => self.frontier.push(Pending::Pair {
                    parent: histogram,
                    left,
                    right,
                    measure_left: split.left.count <= split.right.count,
                }),
                (true, false) => self.frontier.push(Pending::Single { node: left, total: Some(split.left) }),
                (false, true) => self.frontier.push(Pending::Single { node: right, total: Some(split.right) }),
                (false, false) => {}
            }
        }
        self.level += 1;
        Ok(())
    }

    /// Checks a tree being grown that came from elsewhere, over `width` inputs: every split's
    /// input in range, finite values, children after their parent and reached once, every open
    /// node in the frontier and every frontier entry on an open node (so that routing a row ends
    /// and every histogram applied has a place).
    pub fn validate(&self, width: usize) -> Result<()> {
        let bad = |node: usize| Error::InvalidTree { node };
        let decided = Tree {
            nodes: self
                .nodes
                .iter()
                .map(|node| match node {
                    GrowNode::Done(node) => *node,
                    GrowNode::Open => Node::Leaf { value: 0.0 },
                })
                .collect(),
        };
        decided.validate(width)?;
        let mut pending: Vec<u32> = Vec::new();
        for entry in &self.frontier {
            match entry {
                Pending::Single { node, .. } => pending.push(*node),
                Pending::Pair { left, right, .. } => pending.extend([*left, *right]),
            }
        }
        let open: Vec<u32> =
            (0..self.nodes.len() as u32).filter(|&i| self.nodes[i as usize] == GrowNode::Open).collect();
        let mut sorted = pending.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.len() != pending.len() || sorted != open {
            return Err(bad(pending.first().copied().unwrap_or(0) as usize));
        }
        Ok(())
    }

    /// The grown tree; refuses one still growing.
    pub fn into_tree(self) -> Result<Tree> {
        let nodes = self
            .nodes
            .into_iter()
            .enumerate()
            .map(|(index, node)| match node {
                GrowNode::Done(node) => Ok(node),
                GrowNode::Open => Err(Error::InvalidTree { node: index }),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Tree { nodes })
    }
}

/// The leaf of a node of this total: `−η·G/(H + λ)` (0 for an empty node).
fn leaf(total: Cell, config: &BoostingConfig) -> Node {
    let denominator = total.hessian() + config.lambda;
    let value = if denominator > 0.0 { -config.learning_rate * total.gradient() / denominator } else { 0.0 };
    Node::Leaf { value: value as f32 }
}

/// The split a node takes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Split {
    input: usize,
    threshold: f32,
    gain: f64,
    left: Cell,
    right: Cell,
}

/// The split of highest positive gain (the first on a tie), or `None`.
fn best_split(histogram: &NodeHistogram, cuts: &Cuts, config: &BoostingConfig) -> Option<Split> {
    let total = histogram.total();
    let score = |cell: &Cell| {
        let g = cell.gradient();
        g * g / (cell.hessian() + config.lambda)
    };
    let parent = score(&total);
    let mut best: Option<Split> = None;
    for input in 0..cuts.inputs() {
        let bins = histogram.bins(cuts, input);
        let mut left = Cell::default();
        for (bin, &cell) in bins.iter().enumerate().take(bins.len() - 1) {
            left += cell;
            let right = total - left;
            let heavy = |c: &Cell| c.count >= 1 && c.hessian() >= config.min_child_weight;
            if !heavy(&left) || !heavy(&right) {
                continue;
            }
            let gain = 0.5 * (score(&left) + score(&right) - parent) - config.gamma;
            if gain > best.map_or(0.0, |b| b.gain) {
                best = Some(Split { input, threshold: cuts.thresholds(input)[bin], gain, left, right });
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::super::{BinnedRows, Ensemble, gradient_pairs, node_histograms, train_centralized};
    use super::*;
    use crate::Dataset;
    use rand::{RngExt as _, SeedableRng};

    /// A table where the label depends on two inputs and noise.
    fn table(rows: usize, seed: u64) -> Dataset {
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(seed);
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..rows {
            let (a, b) = (rng.random::<f32>() * 10.0, if rng.random::<f32>() < 0.3 { 1.0 } else { 0.0 });
            let c = rng.random::<f32>();
            features.extend([a, b, c]);
            let risk = 0.05 + 0.4 * f32::from(a > 6.0) + 0.3 * b;
            labels.push(if rng.random::<f32>() < risk { 1.0 } else { 0.0 });
        }
        Dataset::new(features, labels, 3).unwrap()
    }

    fn cuts() -> Cuts {
        Cuts::for_inputs(alloc::vec![(1..10).map(|t| t as f32).collect(), alloc::vec![0.2, 0.4, 0.6, 0.8]], 3).unwrap()
    }

    /// The same rule written directly: every node's sums by scanning its rows, no histograms,
    /// no subtraction.
    fn grow_directly(
        data: &Dataset,
        pairs: &[super::super::GradientPair],
        cuts: &Cuts,
        config: &BoostingConfig,
    ) -> Tree {
        fn node(
            rows: Vec<usize>,
            depth: u32,
            data: &Dataset,
            pairs: &[super::super::GradientPair],
            cuts: &Cuts,
            config: &BoostingConfig,
            nodes: &mut Vec<Node>,
        ) -> u32 {
            let index = nodes.len();
            nodes.push(Node::Leaf { value: 0.0 });
            let sum = |rows: &[usize]| {
                rows.iter().fold(Cell::default(), |mut c, &r| {
                    c.grad += i64::from(pairs[r].grad);
                    c.hess += i64::from(pairs[r].hess);
                    c.count += 1;
                    c
                })
            };
            let total = sum(&rows);
            let splittable = depth < config.depth
                && (depth == 0 || (total.count >= 2 && total.hessian() >= 2.0 * config.min_child_weight));
            let mut histogram = NodeHistogram::zeros(cuts.cells());
            histogram.cells[0] = total;
            for input in 0..cuts.inputs() {
                for bin in 1..cuts.bins(input) {
                    let inside: Vec<usize> =
                        rows.iter().copied().filter(|&r| cuts.bin(input, data.row(r)[input]) == bin).collect();
                    histogram.cells[cuts.cell(input, bin)] = sum(&inside);
                }
            }
            match best_split(&histogram, cuts, config).filter(|_| splittable) {
                None => nodes[index] = leaf(total, config),
                Some(split) => {
                    let (l, r): (Vec<usize>, Vec<usize>) =
                        rows.iter().partition(|&&r| data.row(r)[split.input] < split.threshold);
                    nodes[index] =
                        Node::Split { input: split.input as u32, threshold: split.threshold, left: 0, right: 0 };
                    let left = node(l, depth + 1, data, pairs, cuts, config, nodes);
                    let right = node(r, depth + 1, data, pairs, cuts, config, nodes);
                    nodes[index] = Node::Split { input: split.input as u32, threshold: split.threshold, left, right };
                }
            }
            index as u32
        }
        let mut nodes = Vec::new();
        node((0..data.rows()).collect(), 0, data, pairs, cuts, config, &mut nodes);
        Tree { nodes }
    }

    /// The same tree with its nodes in breadth-first order (the order [`Growing`] numbers them).
    fn breadth_first(tree: &Tree) -> Tree {
        let mut order = alloc::vec![0u32];
        let mut i = 0;
        while i < order.len() {
            if let Node::Split { left, right, .. } = tree.nodes[order[i] as usize] {
                order.extend([left, right]);
            }
            i += 1;
        }
        let new_index = |old: u32| order.iter().position(|&o| o == old).unwrap() as u32;
        let nodes = order
            .iter()
            .map(|&old| match tree.nodes[old as usize] {
                Node::Split { input, threshold, left, right } => {
                    Node::Split { input, threshold, left: new_index(left), right: new_index(right) }
                }
                leaf => leaf,
            })
            .collect();
        Tree { nodes }
    }

    #[test]
    fn a_tree_from_histograms_equals_the_rule_applied_row_by_row() {
        let data = table(3000, 7);
        let cuts = cuts();
        let config = BoostingConfig { depth: 4, min_child_weight: 2.0, ..BoostingConfig::default() };
        let margins = alloc::vec![-1.0f32; data.rows()];
        let pairs = gradient_pairs(&margins, data.labels(), config.pos_weight).unwrap();
        let binned = BinnedRows::new(&data, &cuts).unwrap();
        let mut growing = Growing::new();
        while !growing.finished() {
            let nodes: Vec<Option<u32>> = (0..data.rows()).map(|r| growing.open_node(data.row(r))).collect();
            growing
                .apply(node_histograms(&binned, &pairs, &nodes, &growing.measured(), &cuts), &cuts, &config)
                .unwrap();
        }
        let tree = growing.into_tree().unwrap();
        assert!(tree.leaves() >= 6, "{tree:?}");
        assert_eq!(tree, breadth_first(&grow_directly(&data, &pairs, &cuts, &config)));
        assert!(matches!(tree.nodes[0], Node::Split { input: 0, threshold: 6.0, .. }), "{:?}", tree.nodes[0]);
    }

    #[test]
    fn summed_histograms_of_row_sets_grow_the_union_s_tree() {
        let data = table(2000, 11);
        let cuts = cuts();
        let config = BoostingConfig { depth: 3, min_child_weight: 1.0, ..BoostingConfig::default() };
        let pairs = gradient_pairs(&alloc::vec![0.0; data.rows()], data.labels(), 2.0).unwrap();
        let parts: Vec<Vec<usize>> = (0..3).map(|k| (0..data.rows()).filter(|r| r % 3 == k).collect()).collect();
        let mut union = Growing::new();
        let mut federated = Growing::new();
        let binned = BinnedRows::new(&data, &cuts).unwrap();
        while !union.finished() {
            let nodes: Vec<Option<u32>> = (0..data.rows()).map(|r| union.open_node(data.row(r))).collect();
            let measured = union.measured();
            let whole = node_histograms(&binned, &pairs, &nodes, &measured, &cuts);
            let mut summed: Vec<NodeHistogram> = measured.iter().map(|_| NodeHistogram::zeros(cuts.cells())).collect();
            for part in &parts {
                let subset = data.select(part);
                let sub_pairs: Vec<_> = part.iter().map(|&r| pairs[r]).collect();
                let sub_nodes: Vec<_> = part.iter().map(|&r| federated.open_node(data.row(r))).collect();
                let local = node_histograms(
                    &BinnedRows::new(&subset, &cuts).unwrap(),
                    &sub_pairs,
                    &sub_nodes,
                    &federated.measured(),
                    &cuts,
                );
                summed.iter_mut().zip(&local).for_each(|(s, l)| s.add(l));
            }
            assert_eq!(summed, whole);
            union.apply(whole, &cuts, &config).unwrap();
            federated.apply(summed, &cuts, &config).unwrap();
        }
        assert_eq!(federated.into_tree().unwrap(), union.into_tree().unwrap());
    }

    #[test]
    fn histograms_of_another_shape_or_total_are_refused() {
        let cuts = cuts();
        let config = BoostingConfig::default();
        let mut growing = Growing::new();
        assert!(growing.apply(alloc::vec![], &cuts, &config).is_err());
        assert!(growing.apply(alloc::vec![NodeHistogram::zeros(3)], &cuts, &config).is_err());
        assert_eq!(growing.level(), 0);
    }

    #[test]
    fn boosting_learns_the_pattern_and_its_margins_are_the_ensemble_s() {
        let (train, test) = (table(4000, 1), table(2000, 2));
        let config = BoostingConfig { trees: 20, depth: 3, min_child_weight: 1.0, ..BoostingConfig::default() };
        let patients: alloc::vec::Vec<u64> = (0..train.rows() as u64).collect();
        let ensemble: Ensemble = train_centralized(&train, &patients, &cuts(), &config).unwrap();
        assert_eq!(ensemble.trees.len(), 20);
        let margins = ensemble.margins(test.features(), 3).unwrap();
        let auroc = crate::metrics::auroc(&margins, test.labels()).unwrap();
        assert!(auroc > 0.75, "AUROC {auroc}");
        let base = ensemble.base_margin;
        let rate = train.labels().iter().sum::<f32>() / train.rows() as f32;
        assert!((base - (rate / (1.0 - rate)).ln()).abs() < 1e-5);
        // Each tree on its own 60 % of the patients: other trees, as good.
        let config = BoostingConfig { subsample: 0.6, ..config };
        let subsampled = train_centralized(&train, &patients, &cuts(), &config).unwrap();
        assert_ne!(subsampled.trees, ensemble.trees);
        let auroc = crate::metrics::auroc(&subsampled.margins(test.features(), 3).unwrap(), test.labels()).unwrap();
        assert!(auroc > 0.75, "AUROC {auroc} of subsampled trees");
    }
}
