//! DP-SGD on the GPU (`private.wgsl`) checked against `fedcare_core`'s CPU reference on the same
//! inputs: per-patient clipping, the Philox noise and whole private training runs. On CI this
//! runs on Mesa's lavapipe; sizes stay small.
//!
//! Tolerances: |gpu − cpu| ≤ ABS + REL·|cpu| per value, stated per test; they cover float
//! rounding (the GPU sums norms in f32 where the CPU uses f64, and has its own log/cos/sin).

use fedcare_core::privacy::DpSgd;
use fedcare_core::privacy::batches::{PatientBatch, PatientBatches};
use fedcare_core::privacy::noise::NoiseKey;
use fedcare_core::rng::init_params;
use fedcare_core::{Dataset, ModelSpec, OptimizerConfig, TrainConfig, clipped_gradient, train_private};
use fedcare_gpu_trainer::GpuTrainer;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

fn trainer(test: &str) -> Option<GpuTrainer> {
    let gpu = fedcare_gpu_trainer::testing::gpu_or_skip(test)?;
    Some(GpuTrainer::new(gpu).expect("the GPU trainer builds on this adapter"))
}

/// `patients` patients of 1 to 5 rows each, with a learnable label.
fn patients(patients: usize, width: usize, seed: u64) -> Dataset {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let (mut features, mut labels, mut ids) = (Vec::new(), Vec::new(), Vec::new());
    for patient in 0..patients {
        for _ in 0..rng.random_range(1..=5) {
            let row: Vec<f32> = (0..width).map(|_| rng.random_range(-2.0f32..2.0)).collect();
            labels.push(if row[0] + rng.random_range(-1.0f32..1.0) > 0.3 { 1.0 } else { 0.0 });
            features.extend(row);
            ids.push(patient);
        }
    }
    Dataset::new(features, labels, width).unwrap().with_groups(&ids).unwrap()
}

#[track_caller]
fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], abs: f32, rel: f32) {
    assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        assert!(g.is_finite() && (g - c).abs() <= abs + rel * c.abs(), "{what}[{i}]: gpu {g} vs cpu {c}");
    }
}

fn norm(values: &[f32]) -> f32 {
    values.iter().map(|v| v * v).sum::<f32>().sqrt()
}

#[test]
fn each_patients_clipped_gradient_is_within_the_clip_norm_and_matches_the_cpu() {
    let Some(gpu) = trainer("each_patients_clipped_gradient_is_within_the_clip_norm_and_matches_the_cpu") else {
        return;
    };
    let data = patients(60, 70, 1);
    let uploaded = gpu.upload(&data).unwrap();
    let mut all = PatientBatch::default();
    PatientBatches::new(&data, 1.0, NoiseKey::from_u64(1)).fill(0, &mut all);
    // Layers on both sides of the narrow kernels and the 64-wide tiles; a clip norm that clips
    // most patients, and one that clips none.
    for hidden in [&[][..], &[65, 3][..], &[7][..]] {
        let spec = ModelSpec::mlp(70, hidden).unwrap();
        let params = init_params(&spec, 9);
        for clip_norm in [0.5f32, 1e4] {
            let mut clipped = 0;
            for patient in &all.patients {
                let one = PatientBatch {
                    rows: all.rows[patient.clone()].to_vec(),
                    patients: core::iter::once(0..patient.len()).collect(),
                };
                let (_, cpu) = clipped_gradient(&spec, &params, &data, &one, 2.0, clip_norm).unwrap();
                let (_, on_gpu) = gpu.clipped_gradient(&spec, &params, &uploaded, &one, 2.0, clip_norm).unwrap();
                assert!(norm(&on_gpu) <= clip_norm * (1.0 + 1e-5), "{hidden:?}: norm {} > C", norm(&on_gpu));
                clipped += usize::from(norm(&cpu) >= clip_norm * (1.0 - 1e-5));
                assert_close(&format!("{hidden:?} C={clip_norm} one patient"), &on_gpu, &cpu, 1e-6, 1e-4);
            }
            if clip_norm < 1.0 {
                assert!(clipped > all.patients.len() / 2, "{hidden:?}: C = {clip_norm} clips most patients");
            } else {
                assert_eq!(clipped, 0, "{hidden:?}: C = {clip_norm} clips none");
            }
            // All patients in one batch: the sum of their clipped gradients.
            let (cpu_loss, cpu) = clipped_gradient(&spec, &params, &data, &all, 2.0, clip_norm).unwrap();
            let (loss, on_gpu) = gpu.clipped_gradient(&spec, &params, &uploaded, &all, 2.0, clip_norm).unwrap();
            assert!((loss - cpu_loss).abs() <= 1e-5 * cpu_loss.abs(), "loss sum gpu {loss} vs cpu {cpu_loss}");
            assert_close(&format!("{hidden:?} C={clip_norm} all patients"), &on_gpu, &cpu, 1e-5, 1e-4);
        }
    }
}

#[test]
fn steps_that_sample_no_patient_take_the_noise_alone() {
    let Some(gpu) = trainer("steps_that_sample_no_patient_take_the_noise_alone") else { return };
    // Four patients at q = 0.1: most of an epoch's ten steps sample nobody.
    let data = patients(4, 6, 3);
    let spec = ModelSpec::mlp(6, &[3]).unwrap();
    let dp = DpSgd { sampling_rate: 0.1, noise_multiplier: 1.0, clip_norm: 1.0 };
    let config =
        TrainConfig { epochs: 3, optimizer: OptimizerConfig::Sgd { lr: 0.1, momentum: 0.0 }, ..Default::default() };
    let key = NoiseKey::from_u64(5);
    let mut batches = PatientBatches::new(&data, dp.sampling_rate, key);
    let mut batch = PatientBatch::default();
    let empty = (0..30).filter(|&step| {
        batches.fill(step, &mut batch);
        batch.rows.is_empty()
    });
    assert!(empty.count() > 10, "the key gives empty steps");
    let start = init_params(&spec, 1);
    let (mut cpu, mut on_gpu) = (start.clone(), start);
    let cpu_report = train_private(&spec, &mut cpu, &data, &config, &dp, key).unwrap();
    let report = gpu.train_private(&spec, &mut on_gpu, &gpu.upload(&data).unwrap(), &data, &config, &dp, key).unwrap();
    assert_close("params", &on_gpu, &cpu, 1e-5, 1e-4);
    assert_close("epoch losses", &report.epoch_losses, &cpu_report.epoch_losses, 1e-6, 1e-5);
}

#[test]
fn a_cpu_copy_that_is_not_the_uploaded_dataset_is_refused() {
    let Some(gpu) = trainer("a_cpu_copy_that_is_not_the_uploaded_dataset_is_refused") else { return };
    let data = patients(10, 4, 4);
    let other = patients(12, 4, 4);
    let spec = ModelSpec::mlp(4, &[]).unwrap();
    let mut params = init_params(&spec, 1);
    let dp = DpSgd { sampling_rate: 0.5, noise_multiplier: 1.0, clip_norm: 1.0 };
    let error = gpu
        .train_private(
            &spec,
            &mut params,
            &gpu.upload(&data).unwrap(),
            &other,
            &TrainConfig::default(),
            &dp,
            NoiseKey::from_u64(1),
        )
        .unwrap_err();
    assert!(error.to_string().contains("CPU copy"), "{error}");
    let bad = DpSgd { clip_norm: -1.0, ..dp };
    assert!(
        gpu.train_private(
            &spec,
            &mut params,
            &gpu.upload(&data).unwrap(),
            &data,
            &TrainConfig::default(),
            &bad,
            NoiseKey::from_u64(1)
        )
        .is_err()
    );
}
