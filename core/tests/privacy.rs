//! DP-SGD: per-patient gradient norms against gradients formed row by row, clipping, the noise's
//! statistics, determinism by key, learning under noise, and the accountant against
//! `dp-accounting`'s golden values.

mod common;

use fedcare_core::metrics::auroc;
use fedcare_core::privacy::DpSgd;
use fedcare_core::privacy::accountant::SampledGaussian;
use fedcare_core::privacy::batches::PatientBatch;
use fedcare_core::privacy::noise::NoiseKey;
use fedcare_core::rng::init_params;
use fedcare_core::{Dataset, Error, ModelSpec, Network, OptimizerConfig, TrainConfig, clipped_gradient, train_private};

/// `rows` rows in patients of 1 to 4 rows each.
fn patients(data: Dataset, seed: u64) -> Dataset {
    let mut ids = Vec::with_capacity(data.rows());
    let (mut patient, mut left) = (0u64, 0u64);
    for row in 0..data.rows() as u64 {
        if left == 0 {
            patient += 1;
            left = (row * 7 + seed) % 4 + 1;
        }
        ids.push(patient);
        left -= 1;
    }
    data.with_groups(&ids).unwrap()
}

/// The gradient of the summed loss of `rows`, formed by `backward` on those rows alone.
fn gradient_of(network: &mut Network, params: &[f32], data: &Dataset, rows: &[u32], pos_weight: f32) -> Vec<f32> {
    let x: Vec<f32> = rows.iter().flat_map(|&r| data.row(r as usize).to_vec()).collect();
    let y: Vec<f32> = rows.iter().map(|&r| data.labels()[r as usize]).collect();
    let logits = network.forward(params, &x, rows.len()).unwrap().to_vec();
    let mut grad_logits = vec![0.0; rows.len()];
    fedcare_core::loss::bce_with_logits_sum(&logits, &y, pos_weight, 1.0, &mut grad_logits);
    let mut grad = vec![0.0; params.len()];
    network.backward(params, &x, rows.len(), &grad_logits, &mut grad).unwrap();
    grad
}

#[test]
fn patient_gradient_norms_equal_those_of_gradients_formed_patient_by_patient() {
    let data = patients(common::linear_problem(60, 5, 0.5, 3), 1);
    let spec = ModelSpec::mlp(5, &[6, 4]).unwrap();
    let params = init_params(&spec, 2);
    let groups = data.group_rows();
    let mut network = Network::new(&spec);
    // The whole batch, patient after patient.
    let order: Vec<u32> = (0..groups.groups()).flat_map(|g| groups.rows_of(g).to_vec()).collect();
    let mut ranges = Vec::new();
    let mut start = 0;
    for g in 0..groups.groups() {
        ranges.push(start..start + groups.rows_of(g).len());
        start += groups.rows_of(g).len();
    }
    let x: Vec<f32> = order.iter().flat_map(|&r| data.row(r as usize).to_vec()).collect();
    let y: Vec<f32> = order.iter().map(|&r| data.labels()[r as usize]).collect();
    let logits = network.forward(&params, &x, order.len()).unwrap().to_vec();
    let mut grad_logits = vec![0.0; order.len()];
    fedcare_core::loss::bce_with_logits_sum(&logits, &y, 3.0, 1.0, &mut grad_logits);
    let norms = network.group_gradient_norms(&params, &x, order.len(), &grad_logits, &ranges).unwrap();
    assert!(groups.largest() > 1, "some patients have several rows");
    for (g, norm) in norms.iter().enumerate() {
        let formed = gradient_of(&mut network, &params, &data, groups.rows_of(g), 3.0);
        let expected: f64 = formed.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        // f32 products summed in another order: relative 1e-4.
        assert!((norm - expected).abs() <= 1e-4 * expected.max(1e-12), "patient {g}: {norm} vs {expected}");
    }
}

#[test]
fn after_clipping_no_patient_gradient_is_above_the_clip_norm() {
    // What `train_private` steps with (`clipped_gradient`), one patient at a time: within C, and
    // the patient's own gradient scaled by min(1, C/‖g‖).
    let data = patients(common::linear_problem(80, 4, 0.2, 5), 2);
    let spec = ModelSpec::mlp(4, &[8]).unwrap();
    let params = init_params(&spec, 1);
    let groups = data.group_rows();
    let mut network = Network::new(&spec);
    let clip = 0.05f32;
    let mut clipped = 0;
    for g in 0..groups.groups() {
        let rows = groups.rows_of(g);
        let batch = PatientBatch { rows: rows.to_vec(), patients: core::iter::once(0..rows.len()).collect() };
        let (_, after) = clipped_gradient(&spec, &params, &data, &batch, 1.0, clip).unwrap();
        let norm_after = after.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!(norm_after <= clip * (1.0 + 1e-5), "patient {g}: {norm_after}");
        let before = gradient_of(&mut network, &params, &data, rows, 1.0);
        let norm = before.iter().map(|v| v * v).sum::<f32>().sqrt();
        let factor = if norm > clip { clip / norm } else { 1.0 };
        clipped += usize::from(norm > clip);
        for (a, b) in after.iter().zip(&before) {
            assert!((a - b * factor).abs() <= 1e-6 + 1e-4 * (b * factor).abs(), "patient {g}: {a} vs {}", b * factor);
        }
    }
    assert!(clipped > groups.groups() / 2, "the clip norm bites: {clipped} of {}", groups.groups());
    let beyond = PatientBatch { rows: vec![0, 80], patients: vec![0..1, 1..2] };
    let error = clipped_gradient(&spec, &params, &data, &beyond, 1.0, clip).unwrap_err();
    assert!(matches!(error, Error::BatchRow { row: 80, rows: 80 }), "{error}");
}

#[test]
fn the_same_key_gives_the_same_bits_and_another_key_others() {
    let data = patients(common::linear_problem(400, 6, 0.5, 1), 3);
    let spec = ModelSpec::mlp(6, &[8]).unwrap();
    let config = TrainConfig { epochs: 2, optimizer: OptimizerConfig::adam(0.01), ..TrainConfig::default() };
    let dp = DpSgd { sampling_rate: 0.1, noise_multiplier: 1.0, clip_norm: 1.0 };
    let run = |key: u64| {
        let mut params = init_params(&spec, 4);
        let report = train_private(&spec, &mut params, &data, &config, &dp, NoiseKey::from_u64(key)).unwrap();
        assert_eq!(report.steps, 20);
        params.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
}

#[test]
fn the_noise_has_the_standard_deviation_sigma_c_over_the_expected_patients() {
    // One step of plain SGD at rate 1 moves each parameter by minus its noisy gradient. With a
    // huge multiplier the clipped data (at most C per patient) is negligible beside the noise.
    let data = patients(common::linear_problem(500, 10, 0.5, 7), 4);
    let spec = ModelSpec::mlp(10, &[64, 32]).unwrap();
    let config =
        TrainConfig { epochs: 1, optimizer: OptimizerConfig::Sgd { lr: 1.0, momentum: 0.0 }, ..TrainConfig::default() };
    let dp = DpSgd { sampling_rate: 1.0, noise_multiplier: 1000.0, clip_norm: 0.5 };
    let start = init_params(&spec, 5);
    let mut params = start.clone();
    train_private(&spec, &mut params, &data, &config, &dp, NoiseKey::from_u64(77)).unwrap();
    let patients = data.group_rows().groups() as f64;
    let scale = 1000.0 * 0.5 / patients;
    let z: Vec<f64> = params.iter().zip(&start).map(|(p, s)| f64::from(s - p) / scale).collect();
    let n = z.len() as f64;
    let mean = z.iter().sum::<f64>() / n;
    let variance = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    // n = 2,817 values: mean within 5/√n, variance within 5·√(2/n) of 1.
    assert!(mean.abs() < 5.0 / n.sqrt(), "mean {mean}");
    assert!((variance - 1.0).abs() < 5.0 * (2.0 / n).sqrt(), "variance {variance}");
}

#[test]
fn dp_sgd_still_learns_a_separable_problem() {
    let data = patients(common::linear_problem(4000, 10, 0.0, 2), 5);
    let (train_rows, test_rows): (Vec<usize>, Vec<usize>) = (0..data.rows()).partition(|r| r % 5 != 0);
    let (train_set, test_set) = (data.select(&train_rows), data.select(&test_rows));
    let spec = ModelSpec::logistic_regression(10).unwrap();
    let config = TrainConfig { epochs: 5, optimizer: OptimizerConfig::adam(0.05), ..TrainConfig::default() };
    let dp = DpSgd { sampling_rate: 0.05, noise_multiplier: 1.0, clip_norm: 1.0 };
    let mut params = init_params(&spec, 1);
    let report = train_private(&spec, &mut params, &train_set, &config, &dp, NoiseKey::from_u64(3)).unwrap();
    assert!(report.epoch_losses[4] < report.epoch_losses[0], "{:?}", report.epoch_losses);
    let logits = Network::new(&spec).predict(&params, test_set.features()).unwrap();
    let score = auroc(&logits, test_set.labels()).unwrap();
    assert!(score > 0.9, "AUROC {score}");
    let epsilon = dp.epsilon_after_epochs(5, 1e-6);
    assert!(epsilon > 0.5 && epsilon < 5.0, "ε {epsilon}");
}

#[test]
fn bad_settings_are_refused() {
    let data = common::linear_problem(10, 2, 0.0, 1);
    let spec = ModelSpec::logistic_regression(2).unwrap();
    let mut params = init_params(&spec, 1);
    let config = TrainConfig::default();
    for (dp, name) in [
        (DpSgd { sampling_rate: 0.0, noise_multiplier: 1.0, clip_norm: 1.0 }, "sampling_rate"),
        (DpSgd { sampling_rate: 1.5, noise_multiplier: 1.0, clip_norm: 1.0 }, "sampling_rate"),
        (DpSgd { sampling_rate: 0.1, noise_multiplier: 0.0, clip_norm: 1.0 }, "noise_multiplier"),
        (DpSgd { sampling_rate: 0.1, noise_multiplier: 1.0, clip_norm: f32::NAN }, "clip_norm"),
    ] {
        match train_private(&spec, &mut params, &data, &config, &dp, NoiseKey::from_u64(1)) {
            Err(Error::InvalidHyperparameter { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{dp:?}: {other:?}"),
        }
    }
}

/// `q,sigma,steps,delta,epsilon` rows computed by `dp-accounting` (golden/make_rdp_golden.py).
const GOLDEN: &str = include_str!("golden/rdp_epsilon.csv");

#[test]
fn the_accountant_agrees_with_dp_accounting_within_one_percent() {
    let mut checked = 0;
    let mut worst = 0.0f64;
    for line in GOLDEN.lines().filter(|l| !l.starts_with('#') && !l.starts_with('q')) {
        let v: Vec<f64> = line.split(',').map(|f| f.parse().unwrap()).collect();
        let (q, sigma, steps, delta, expected) = (v[0], v[1], v[2] as u64, v[3], v[4]);
        let ours = SampledGaussian { sampling_rate: q, noise_multiplier: sigma }.epsilon(steps, delta);
        let relative = if expected == 0.0 { ours.abs() } else { (ours - expected).abs() / expected };
        assert!(relative <= 0.01, "q {q}, σ {sigma}, {steps} steps, δ {delta}: {ours} against {expected}");
        worst = worst.max(relative);
        checked += 1;
    }
    assert!(checked >= 200, "{checked} golden values");
    println!("{checked} golden values, largest relative difference {worst:.2e}");
}
