//! Binary cross-entropy with logits, class-weighted by `pos_weight`, and the penalty terms.
//!
//! For a logit `z` and label `y ∈ {0, 1}` (PyTorch's `BCEWithLogitsLoss(pos_weight = w)`):
//!
//! ```text
//! loss(z, y)   = w·y·softplus(−z) + (1 − y)·softplus(z)
//! ∂loss/∂z     = w·y·(σ(z) − 1) + (1 − y)·σ(z)
//! ```
//!
//! computed in the overflow-free form `softplus(x) = max(x, 0) + ln(1 + e^−|x|)`. Batch losses
//! are means over the rows. The penalties are L2 on the weights (`λ/2·‖W‖²`, biases excluded)
//! and FedProx's proximal term on every parameter (`μ/2·‖θ − θ_global‖²`).

use crate::spec::ModelSpec;

/// `ln(1 + e^x)` without overflow.
pub fn softplus(x: f32) -> f32 {
    x.max(0.0) + libm::log1pf(libm::expf(-x.abs()))
}

/// The logistic function `1 / (1 + e^−x)` without overflow.
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + libm::expf(-x))
    } else {
        let e = libm::expf(x);
        e / (1.0 + e)
    }
}

/// Loss of one row.
pub fn bce_with_logits(logit: f32, label: f32, pos_weight: f32) -> f32 {
    pos_weight * label * softplus(-logit) + (1.0 - label) * softplus(logit)
}

/// Mean loss of a batch, and `∂(mean loss)/∂logit` for each row written to `grad`.
///
/// # Panics
/// If the three slices differ in length (caller bug).
pub fn bce_with_logits_batch(logits: &[f32], labels: &[f32], pos_weight: f32, grad: &mut [f32]) -> f32 {
    let scale = 1.0 / logits.len() as f32;
    bce_with_logits_sum(logits, labels, pos_weight, scale, grad) * scale
}

/// Summed loss of a batch, and `scale · ∂loss/∂logit` of each row written to `grad`.
///
/// # Panics
/// If the three slices differ in length (caller bug).
pub fn bce_with_logits_sum(logits: &[f32], labels: &[f32], pos_weight: f32, scale: f32, grad: &mut [f32]) -> f32 {
    assert!(logits.len() == labels.len() && grad.len() == logits.len(), "batch slices differ in length");
    let mut total = 0.0f32;
    for ((&z, &y), g) in logits.iter().zip(labels).zip(grad.iter_mut()) {
        let (loss, gradient) = bce_row(z, y, pos_weight, scale);
        total += loss;
        *g = gradient;
    }
    total
}

/// Each row's loss pushed onto `losses`, and `scale · ∂loss/∂logit` of each row written to
/// `grad` (the same values as [`bce_with_logits_sum`]'s, for a caller that sums the losses
/// itself).
///
/// # Panics
/// If `logits`, `labels` and `grad` differ in length (caller bug).
pub fn bce_with_logits_rows(
    logits: &[f32],
    labels: &[f32],
    pos_weight: f32,
    scale: f32,
    losses: &mut alloc::vec::Vec<f32>,
    grad: &mut [f32],
) {
    assert!(logits.len() == labels.len() && grad.len() == logits.len(), "batch slices differ in length");
    for ((&z, &y), g) in logits.iter().zip(labels).zip(grad.iter_mut()) {
        let (loss, gradient) = bce_row(z, y, pos_weight, scale);
        losses.push(loss);
        *g = gradient;
    }
}

/// One row's loss and `scale · ∂loss/∂logit`.
fn bce_row(z: f32, y: f32, pos_weight: f32, scale: f32) -> (f32, f32) {
    let s = sigmoid(z);
    (bce_with_logits(z, y, pos_weight), (pos_weight * y * (s - 1.0) + (1.0 - y) * s) * scale)
}

/// Adds the L2 gradient `λ·W` (weights only) to `grad`; returns the penalty `λ/2·‖W‖²`.
pub fn add_l2(spec: &ModelSpec, params: &[f32], lambda: f32, grad: &mut [f32]) -> f32 {
    if lambda == 0.0 {
        return 0.0;
    }
    let mut penalty = 0.0f32;
    for layer in spec.layers() {
        let range = layer.weights();
        for (g, &w) in grad[range.clone()].iter_mut().zip(&params[range]) {
            *g += lambda * w;
            penalty += w * w;
        }
    }
    0.5 * lambda * penalty
}

/// Adds FedProx's gradient `μ·(θ − θ_global)` to `grad`; returns the penalty `μ/2·‖θ − θ_global‖²`.
pub fn add_proximal(params: &[f32], global: &[f32], mu: f32, grad: &mut [f32]) -> f32 {
    if mu == 0.0 {
        return 0.0;
    }
    let mut penalty = 0.0f32;
    for ((g, &w), &w0) in grad.iter_mut().zip(params).zip(global) {
        let d = w - w0;
        *g += mu * d;
        penalty += d * d;
    }
    0.5 * mu * penalty
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softplus_and_sigmoid_are_stable_at_extremes() {
        assert_eq!(softplus(1000.0), 1000.0);
        assert_eq!(softplus(-1000.0), 0.0);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert!((softplus(0.0) - core::f32::consts::LN_2).abs() < 1e-7);
    }

    #[test]
    fn loss_gradient_matches_central_differences() {
        for &(z, y, w) in &[(0.3f32, 1.0f32, 8.0f32), (-1.7, 0.0, 8.0), (2.5, 1.0, 1.0), (0.0, 0.0, 3.0)] {
            let mut g = [0.0f32];
            bce_with_logits_batch(&[z], &[y], w, &mut g);
            // f64 reference of the same formula, differentiated numerically
            let f = |z: f64| {
                let sp = |x: f64| x.max(0.0) + (1.0 + (-x.abs()).exp()).ln();
                f64::from(w) * f64::from(y) * sp(-z) + (1.0 - f64::from(y)) * sp(z)
            };
            let h = 1e-6;
            let numeric = (f(f64::from(z) + h) - f(f64::from(z) - h)) / (2.0 * h);
            assert!((f64::from(g[0]) - numeric).abs() < 1e-5, "z={z} y={y}: {} vs {numeric}", g[0]);
        }
    }
}
