//! Every GPU kernel, checked against `fedcare-core`'s CPU reference on the same inputs (whole
//! training runs through the `Trainer` trait are the conformance suite's,
//! `federation/tests/trainer_conformance.rs`). On CI this runs on Mesa's lavapipe (software
//! Vulkan); sizes stay small.
//!
//! Tolerances: |gpu − cpu| ≤ ABS + REL·|cpu| per value, stated per test. They cover float
//! rounding only — the GPU sums in a different order and has its own exp/log/pow.

use fedcare_core::loss::bce_with_logits_batch;
use fedcare_core::rng::init_params;
use fedcare_core::{Dataset, ModelSpec, Network};
use fedcare_gpu_trainer::GpuTrainer;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The GPU trainer on this machine's adapter (lavapipe on CI), or `None` when the test is
/// skipped (visibly; `FEDCARE_REQUIRE_GPU=1` makes it a failure instead).
fn trainer(test: &str) -> Option<GpuTrainer> {
    let gpu = fedcare_gpu_trainer::testing::gpu_or_skip(test)?;
    Some(GpuTrainer::new(gpu).expect("the GPU trainer builds on this adapter"))
}

/// Rows with a learnable signal: the label depends on a few features, with noise.
fn dataset(rows: usize, width: usize, seed: u64) -> Dataset {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut features = Vec::with_capacity(rows * width);
    let mut labels = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f32> = (0..width).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let signal = row[0] - 0.5 * row[width / 2] + 0.8 * row[width - 1] * row[0].signum();
        labels.push(if signal + rng.random_range(-1.0f32..1.0) > 0.7 { 1.0 } else { 0.0 });
        features.extend(row);
    }
    Dataset::new(features, labels, width).unwrap()
}

#[track_caller]
fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], abs: f32, rel: f32) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
    let mut worst = (0usize, 0.0f32);
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let excess = (g - c).abs() - (abs + rel * c.abs());
        assert!(g.is_finite(), "{what}[{i}] is {g}");
        if excess > worst.1 {
            worst = (i, excess);
        }
    }
    let (i, excess) = worst;
    assert!(excess <= 0.0, "{what}[{i}]: gpu {} vs cpu {} (tolerance {abs} + {rel}·|cpu|)", gpu[i], cpu[i]);
}

#[test]
fn forward_logits_match_the_cpu_for_shapes_that_do_not_divide_the_tiles() {
    let Some(gpu) = trainer("forward_logits_match_the_cpu_for_shapes_that_do_not_divide_the_tiles") else { return };
    // 4099 rows: more than one scoring step (4096) and a 3-row remainder; widths around 64.
    let data = dataset(4099, 67, 1);
    let uploaded = gpu.upload(&data).unwrap();
    for hidden in [&[][..], &[65, 3][..], &[7][..]] {
        let spec = ModelSpec::mlp(67, hidden).unwrap();
        let params = init_params(&spec, 5);
        let cpu = Network::new(&spec).predict(&params, data.features()).unwrap();
        let logits = gpu.predict(&spec, &params, &uploaded).unwrap();
        assert_close(&format!("logits {hidden:?}"), &logits, &cpu, 1e-5, 1e-5);
    }
}

#[test]
fn the_widest_layers_the_adapter_dispatches_give_the_cpus_gradients() {
    // The kernels are built without loop bounding (`kernels::trusted_checks`): their longest
    // loops run over a layer's width. The widest layer this adapter dispatches (its workgroups
    // per dimension, 65,535 on lavapipe, less the narrow weight gradient's bias workgroup), as
    // 65,534 inputs of a logistic regression (the narrow kernels' loops over the inputs) and as
    // a hidden layer of 65,534 units (the matmul's tiles, and the narrow kernels' loops over its
    // outputs), over a batch of 150 rows (its activations fill half of lavapipe's 128 MiB
    // binding).
    // Tolerance 1e-4·max|cpu| + 1e-3·|cpu|: each logit sums 65,535 products in another order, and
    // its rounding reaches every gradient through the loss's.
    let Some(gpu) = trainer("the_widest_layers_the_adapter_dispatches_give_the_cpus_gradients") else { return };
    let widest = gpu.adapter().map_or(65_535, |a| a.max_compute_workgroups_per_dimension).min(65_535) as usize - 1;
    for (width, hidden) in [(widest, &[][..]), (8, &[widest][..])] {
        let data = dataset(150, width, 4);
        let uploaded = gpu.upload(&data).unwrap();
        let spec = ModelSpec::mlp(width, hidden).unwrap();
        let params = init_params(&spec, 3);
        let batch: Vec<u32> = (0..150u32).collect();
        let mut network = Network::new(&spec);
        let logits = network.forward(&params, data.features(), batch.len()).unwrap().to_vec();
        let mut grad_logits = vec![0.0; batch.len()];
        let cpu_loss = bce_with_logits_batch(&logits, data.labels(), 1.0, &mut grad_logits);
        let mut cpu_grad = vec![0.0; params.len()];
        network.backward(&params, data.features(), batch.len(), &grad_logits, &mut cpu_grad).unwrap();
        let (loss, grad) = gpu.gradient(&spec, &params, &uploaded, &batch, 1.0).unwrap();
        let what = format!("{width} inputs, hidden {hidden:?}");
        assert!((loss - cpu_loss).abs() <= 1e-4 * cpu_loss.abs(), "{what}: loss gpu {loss} vs cpu {cpu_loss}");
        let largest = cpu_grad.iter().fold(0.0f32, |m, g| m.max(g.abs()));
        assert_close(&format!("{what}: gradient"), &grad, &cpu_grad, 1e-4 * largest, 1e-3);
    }
}

#[test]
fn loss_and_every_layer_gradient_match_the_cpu() {
    let Some(gpu) = trainer("loss_and_every_layer_gradient_match_the_cpu") else { return };
    let data = dataset(300, 70, 2);
    let uploaded = gpu.upload(&data).unwrap();
    // An odd batch in shuffled order (one split of the weight-gradient product, straight into
    // the gradient), and one of 300 rows: three splits of it (SPLIT_ROWS = 128), the last one
    // partial, summed by split_sum. Layers straddle the 64-wide
    // tiles, and the bias gradients are summed beside the weights'.
    let batches: [Vec<u32>; 2] = [(0..77u32).map(|i| (i * 37 + 11) % 300).collect(), (0..300u32).rev().collect()];
    for (batch, hidden) in batches.iter().flat_map(|b| [(b, &[][..]), (b, &[65, 3][..]), (b, &[1][..])]) {
        let spec = ModelSpec::mlp(70, hidden).unwrap();
        let params = init_params(&spec, 9);
        let x: Vec<f32> = batch.iter().flat_map(|&r| data.row(r as usize).to_vec()).collect();
        let y: Vec<f32> = batch.iter().map(|&r| data.labels()[r as usize]).collect();
        let mut network = Network::new(&spec);
        let logits = network.forward(&params, &x, batch.len()).unwrap().to_vec();
        let mut grad_logits = vec![0.0; batch.len()];
        let cpu_loss = bce_with_logits_batch(&logits, &y, 3.0, &mut grad_logits);
        let mut cpu_grad = vec![0.0; params.len()];
        network.backward(&params, &x, batch.len(), &grad_logits, &mut cpu_grad).unwrap();

        let (loss, grad) = gpu.gradient(&spec, &params, &uploaded, batch, 3.0).unwrap();
        assert!((loss - cpu_loss).abs() <= 1e-5 * cpu_loss.abs(), "{hidden:?}: loss gpu {loss} vs cpu {cpu_loss}");
        for (index, layer) in spec.layers().iter().enumerate() {
            let name = format!("{hidden:?} layer {index}");
            assert_close(&format!("{name} dW"), &grad[layer.weights()], &cpu_grad[layer.weights()], 1e-6, 1e-4);
            assert_close(&format!("{name} db"), &grad[layer.biases()], &cpu_grad[layer.biases()], 1e-6, 1e-4);
        }
    }
}

#[test]
fn a_gradient_of_a_row_outside_the_dataset_is_refused() {
    let Some(gpu) = trainer("a_gradient_of_a_row_outside_the_dataset_is_refused") else { return };
    let data = gpu.upload(&dataset(10, 4, 7)).unwrap();
    let spec = ModelSpec::mlp(4, &[]).unwrap();
    let params = init_params(&spec, 1);
    assert!(gpu.gradient(&spec, &params, &data, &[10], 1.0).is_err(), "a row outside the dataset");
}
