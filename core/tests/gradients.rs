//! Gradients of every layer, the loss and the penalties against central finite differences of an
//! independent `f64` reference implementation of the same objective.

mod common;

use fedcare_core::loss::{add_l2, add_proximal, bce_with_logits_batch};
use fedcare_core::{ModelSpec, Network};

/// The terms of the objective besides the data.
struct Penalties<'a> {
    pos_weight: f64,
    lambda: f64,
    mu: f64,
    anchor: &'a [f64],
}

/// The objective in f64, written from the maths (not from the crate's code):
/// mean BCE-with-logits(pos_weight) + λ/2‖W‖² + μ/2‖θ − θ0‖².
fn reference_objective(spec: &ModelSpec, params: &[f64], x: &[f64], y: &[f64], terms: &Penalties<'_>) -> f64 {
    let Penalties { pos_weight, lambda, mu, anchor } = *terms;
    let rows = y.len();
    let mut loss = 0.0;
    for r in 0..rows {
        let mut input: Vec<f64> = x[r * spec.input_width()..(r + 1) * spec.input_width()].to_vec();
        for layer in spec.layers() {
            let mut out = vec![0.0; layer.fan_out];
            for (j, o) in out.iter_mut().enumerate() {
                *o = params[layer.bias_offset + j];
                for (i, v) in input.iter().enumerate() {
                    *o += v * params[layer.weight_offset + i * layer.fan_out + j];
                }
                if layer.relu {
                    *o = o.max(0.0);
                }
            }
            input = out;
        }
        let z = input[0];
        let softplus = |t: f64| t.max(0.0) + (-t.abs()).exp().ln_1p();
        loss += pos_weight * y[r] * softplus(-z) + (1.0 - y[r]) * softplus(z);
    }
    let mut penalty = 0.0;
    for layer in spec.layers() {
        penalty += 0.5 * lambda * params[layer.weights()].iter().map(|w| w * w).sum::<f64>();
    }
    penalty += 0.5 * mu * params.iter().zip(anchor).map(|(p, a)| (p - a) * (p - a)).sum::<f64>();
    loss / rows as f64 + penalty
}

fn check_gradients(spec: &ModelSpec, seed: u64) {
    let rows = 7;
    let params = common::uniform(spec.param_count(), 0.6, seed);
    let anchor = common::uniform(spec.param_count(), 0.6, seed + 1);
    let x = common::uniform(rows * spec.input_width(), 1.5, seed + 2);
    let y: Vec<f32> = (0..rows).map(|r| (r % 3 == 0) as u8 as f32).collect();
    let (pos_weight, lambda, mu) = (2.5f32, 0.03f32, 0.2f32);

    let mut network = Network::new(spec);
    let logits = network.forward(&params, &x, rows).unwrap().to_vec();
    let mut grad_logits = vec![0.0; rows];
    bce_with_logits_batch(&logits, &y, pos_weight, &mut grad_logits);
    let mut grad = vec![0.0; params.len()];
    network.backward(&params, &x, rows, &grad_logits, &mut grad).unwrap();
    add_l2(spec, &params, lambda, &mut grad);
    add_proximal(&params, &anchor, mu, &mut grad);

    let as_f64 = |v: &[f32]| v.iter().map(|&t| f64::from(t)).collect::<Vec<f64>>();
    let (p64, x64, y64, a64) = (as_f64(&params), as_f64(&x), as_f64(&y), as_f64(&anchor));
    let terms = Penalties { pos_weight: pos_weight.into(), lambda: lambda.into(), mu: mu.into(), anchor: &a64 };
    let objective = |p: &[f64]| reference_objective(spec, p, &x64, &y64, &terms);
    let h = 1e-6;
    for (index, &analytic) in grad.iter().enumerate() {
        let mut plus = p64.clone();
        plus[index] += h;
        let mut minus = p64.clone();
        minus[index] -= h;
        let numeric = (objective(&plus) - objective(&minus)) / (2.0 * h);
        // Tolerance: the analytic gradient is computed in f32 (relative error ~1e-6 per
        // operation over a few dozen terms), the numeric one in f64 with h = 1e-6.
        let tolerance = 1e-4 + 1e-3 * numeric.abs();
        assert!(
            (f64::from(analytic) - numeric).abs() <= tolerance,
            "{spec:?}: parameter {index}: analytic {analytic}, numeric {numeric}"
        );
    }
}

#[test]
fn logistic_regression_gradients_match_finite_differences() {
    check_gradients(&ModelSpec::logistic_regression(5).unwrap(), 11);
}

#[test]
fn two_hidden_layer_mlp_gradients_match_finite_differences() {
    check_gradients(&ModelSpec::mlp(5, &[6, 4]).unwrap(), 23);
    check_gradients(&ModelSpec::mlp(3, &[9, 2]).unwrap(), 37);
}

#[test]
fn the_forward_pass_matches_the_reference_logits() {
    let spec = ModelSpec::mlp(4, &[5, 3]).unwrap();
    let params = common::uniform(spec.param_count(), 0.8, 5);
    let x = common::uniform(3 * 4, 1.0, 6);
    let mut network = Network::new(&spec);
    let logits = network.forward(&params, &x, 3).unwrap().to_vec();
    for (r, &logit) in logits.iter().enumerate() {
        let p64: Vec<f64> = params.iter().map(|&p| p.into()).collect();
        let x64: Vec<f64> = x[r * 4..(r + 1) * 4].iter().map(|&v| v.into()).collect();
        // With y = 0 and pos_weight 1 the objective is softplus(z): invert it to get z.
        let terms = Penalties { pos_weight: 1.0, lambda: 0.0, mu: 0.0, anchor: &p64 };
        let loss = reference_objective(&spec, &p64, &x64, &[0.0], &terms);
        let z = loss.exp_m1().ln();
        assert!((f64::from(logit) - z).abs() < 1e-5, "row {r}: {logit} vs {z}");
    }
}
