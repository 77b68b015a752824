//! Batched forward and backward passes of a [`ModelSpec`] over its flat parameter vector.
//!
//! A [`Network`] owns the scratch buffers (activations and back-propagated gradients) so that
//! training allocates nothing per step. Matrix products go through `ndarray`'s `general_mat_mul`
//! (the `matrixmultiply` kernels), which are deterministic for a given machine.
//!
//! `backward` returns the gradient of the *mean* batch loss, given `∂(mean loss)/∂logit` per row
//! (see [`crate::loss::bce_with_logits_batch`]).

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;
use ndarray::linalg::general_mat_mul;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};

use crate::spec::{LayerShape, ModelSpec};
use crate::{Error, Result};

/// Rows scored per chunk by [`Network::predict`], bounding its scratch memory.
const PREDICT_CHUNK_ROWS: usize = 4096;

/// A model's layers plus reusable scratch space for batches.
#[derive(Debug, Clone)]
pub struct Network {
    spec: ModelSpec,
    layers: Vec<LayerShape>,
    /// `activations[l]`: output of layer `l` (after its ReLU), `rows × fan_out`.
    activations: Vec<Vec<f32>>,
    /// Gradient with respect to the current layer's pre-activation output.
    grad_out: Vec<f32>,
    /// Gradient with respect to the current layer's input.
    grad_in: Vec<f32>,
}

fn view(rows: usize, cols: usize, data: &[f32]) -> ArrayView2<'_, f32> {
    // Invariant: every caller passes a slice of exactly rows * cols values.
    ArrayView2::from_shape((rows, cols), data).expect("slice length is rows * cols")
}

fn view_mut(rows: usize, cols: usize, data: &mut [f32]) -> ArrayViewMut2<'_, f32> {
    // Invariant: every caller passes a slice of exactly rows * cols values.
    ArrayViewMut2::from_shape((rows, cols), data).expect("slice length is rows * cols")
}

impl Network {
    /// A network for `spec` (the spec must be valid; see [`ModelSpec::validate`]).
    pub fn new(spec: &ModelSpec) -> Self {
        let layers = spec.layers();
        Self {
            spec: spec.clone(),
            activations: vec![Vec::new(); layers.len()],
            layers,
            grad_out: Vec::new(),
            grad_in: Vec::new(),
        }
    }

    /// The model's spec.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    fn check_batch(&self, params: &[f32], x: &[f32], rows: usize) -> Result<()> {
        self.spec.check_params(params)?;
        let expected = rows * self.spec.input_width();
        if x.len() != expected {
            return Err(Error::FeatureCount { expected, got: x.len() });
        }
        Ok(())
    }

    /// The logits of a batch of `rows` rows (`x` is row-major, `rows × input_width`).
    pub fn forward(&mut self, params: &[f32], x: &[f32], rows: usize) -> Result<&[f32]> {
        self.check_batch(params, x, rows)?;
        for (index, layer) in self.layers.iter().enumerate() {
            let (done, rest) = self.activations.split_at_mut(index);
            let input = if index == 0 { x } else { &done[index - 1][..] };
            let out = &mut rest[0];
            out.clear();
            let bias = &params[layer.biases()];
            for _ in 0..rows {
                out.extend_from_slice(bias);
            }
            let weights = view(layer.fan_in, layer.fan_out, &params[layer.weights()]);
            let mut out_view = view_mut(rows, layer.fan_out, out);
            general_mat_mul(1.0, &view(rows, layer.fan_in, input), &weights, 1.0, &mut out_view);
            if layer.relu {
                out.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
        Ok(self.activations.last().map_or(&[][..], |a| &a[..]))
    }

    /// Back-propagates `grad_logits` (`∂loss/∂logit` per row) through the batch of the last
    /// [`forward`](Self::forward) call, which must have used the same `params`, `x` and `rows`.
    /// Writes (overwrites) the parameter gradient into `grad`.
    pub fn backward(
        &mut self,
        params: &[f32],
        x: &[f32],
        rows: usize,
        grad_logits: &[f32],
        grad: &mut [f32],
    ) -> Result<()> {
        self.spec.check_params(grad)?;
        self.propagate(params, x, rows, grad_logits, |layer, input, grad_z| {
            let mut grad_w = view_mut(layer.fan_in, layer.fan_out, &mut grad[layer.weights()]);
            general_mat_mul(1.0, &input.t(), &grad_z, 0.0, &mut grad_w);
            let grad_b = &mut grad[layer.biases()];
            grad_b.fill(0.0);
            for row in grad_z.rows() {
                grad_b.iter_mut().zip(row).for_each(|(g, &d)| *g += d);
            }
        })
    }

    /// The squared norm of each group's gradient for the batch of the last
    /// [`forward`](Self::forward) call: the gradient of the sum of the losses of rows `group`
    /// (contiguous ranges of the batch), given `∂loss/∂logit` per row.
    ///
    /// A dense layer's gradient for rows `R` is `Σ_{r∈R} a_r ⊗ δ_r` (weights) and `Σ δ_r` (bias),
    /// `a_r` the layer's input and `δ_r` the gradient at its output, so its squared norm is
    /// `Σ_{r,s∈R} (a_r·a_s + 1)(δ_r·δ_s)`: no row's gradient is formed, and a single row costs
    /// `‖a_r‖² + 1` times `‖δ_r‖²`.
    pub fn group_gradient_norms(
        &mut self,
        params: &[f32],
        x: &[f32],
        rows: usize,
        grad_logits: &[f32],
        groups: &[Range<usize>],
    ) -> Result<Vec<f64>> {
        if let Some(bad) = groups.iter().find(|g| g.start > g.end || g.end > rows) {
            return Err(Error::BatchMismatch { expected: rows, got: bad.end });
        }
        let mut norms = vec![0.0f64; groups.len()];
        let squares = |m: ArrayView2<'_, f32>| -> Vec<f32> {
            m.rows().into_iter().map(|row| row.iter().map(|v| v * v).sum()).collect()
        };
        let dot = |a: ArrayView1<'_, f32>, b: ArrayView1<'_, f32>| -> f64 {
            a.iter().zip(b.iter()).map(|(&u, &v)| f64::from(u) * f64::from(v)).sum()
        };
        self.propagate(params, x, rows, grad_logits, |_, input, grad_z| {
            // A row's own term: (‖a_r‖² + 1)·‖δ_r‖²; the cross terms only within a group of several.
            let (inputs, grads) = (squares(input), squares(grad_z));
            for (norm, group) in norms.iter_mut().zip(groups) {
                for r in group.clone() {
                    *norm += f64::from(inputs[r] + 1.0) * f64::from(grads[r]);
                    for s in group.clone().filter(|&s| s != r) {
                        *norm += (dot(input.row(r), input.row(s)) + 1.0) * dot(grad_z.row(r), grad_z.row(s));
                    }
                }
            }
        })?;
        Ok(norms)
    }

    /// Back-propagates `grad_logits` through the batch of the last forward call, calling
    /// `visit(layer, input, grad_z)` for every layer from the last to the first with the layer's
    /// input (`rows × fan_in`) and the gradient at its pre-activation output (`rows × fan_out`).
    fn propagate(
        &mut self,
        params: &[f32],
        x: &[f32],
        rows: usize,
        grad_logits: &[f32],
        mut visit: impl FnMut(&LayerShape, ArrayView2<'_, f32>, ArrayView2<'_, f32>),
    ) -> Result<()> {
        self.check_batch(params, x, rows)?;
        if grad_logits.len() != rows || self.activations.last().map(Vec::len) != Some(rows) {
            return Err(Error::BatchMismatch { expected: rows, got: grad_logits.len() });
        }
        self.grad_out.clear();
        self.grad_out.extend_from_slice(grad_logits);
        for index in (0..self.layers.len()).rev() {
            let layer = self.layers[index];
            let input = if index == 0 { x } else { &self.activations[index - 1][..] };
            let grad_z = view(rows, layer.fan_out, &self.grad_out);
            visit(&layer, view(rows, layer.fan_in, input), grad_z);
            if index > 0 {
                self.grad_in.clear();
                self.grad_in.resize(rows * layer.fan_in, 0.0);
                let weights = view(layer.fan_in, layer.fan_out, &params[layer.weights()]);
                let mut grad_a = view_mut(rows, layer.fan_in, &mut self.grad_in);
                general_mat_mul(1.0, &grad_z, &weights.t(), 0.0, &mut grad_a);
                // ReLU: the gradient passes where the layer's output was positive.
                for (g, &a) in self.grad_in.iter_mut().zip(&self.activations[index - 1]) {
                    if a <= 0.0 {
                        *g = 0.0;
                    }
                }
                core::mem::swap(&mut self.grad_in, &mut self.grad_out);
            }
        }
        Ok(())
    }

    /// The logits of every row of `features` (row-major), scored in bounded chunks.
    pub fn predict(&mut self, params: &[f32], features: &[f32]) -> Result<Vec<f32>> {
        let width = self.spec.input_width();
        if !features.len().is_multiple_of(width) {
            return Err(Error::FeatureCount { expected: features.len() / width * width, got: features.len() });
        }
        let mut logits = Vec::with_capacity(features.len() / width);
        for chunk in features.chunks(PREDICT_CHUNK_ROWS * width) {
            logits.extend_from_slice(self.forward(params, chunk, chunk.len() / width)?);
        }
        Ok(logits)
    }
}
