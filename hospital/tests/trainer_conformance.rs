//! One conformance suite for the hospital's [`Trainer`] trait: the CPU trainer and the GPU
//! trainer (its fused steps and its tiled ones) run the same assertions (the `conformance!`
//! macro), each against `fedcare-core`'s
//! reference (`fedcare_core::train`, `train_private`) on the same inputs. On CI the GPU runs on
//! Mesa's lavapipe (software Vulkan), so sizes stay small; without an adapter the GPU suite is
//! skipped visibly (`FEDCARE_REQUIRE_GPU=1` makes that a failure).
//!
//! Tolerances: |trainer − reference| ≤ abs + rel·|reference| per value. The CPU trainer is the
//! reference, so its tolerance is zero. The GPU's is 1e-5 + 1e-4·|x| for a few steps, ten times
//! that for whole runs and DP-SGD: float rounding only (the GPU sums in another order and has its
//! own exp/log/pow).

use fedcare_core::metrics::auroc;
use fedcare_core::privacy::DpSgd;
use fedcare_core::privacy::noise::NoiseKey;
use fedcare_core::rng::init_params;
use fedcare_core::{Dataset, ModelSpec, Network, OptimizerConfig, TrainConfig};
use fedcare_gpu_trainer::{GpuError, GpuTrainer, Step};
use fedcare_hospital::error::FederationError;
use fedcare_hospital::{CpuTrainer, GpuNodeTrainer, Trainer};
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// How far a trainer may stray from the reference, per value.
#[derive(Debug, Clone, Copy)]
struct Tolerance {
    abs: f32,
    rel: f32,
}

impl Tolerance {
    /// The tolerance of longer runs: ten times this one.
    fn long(self) -> Self {
        Self { abs: self.abs * 10.0, rel: self.rel * 10.0 }
    }

    /// The tolerance of losses: a tenth of this one.
    fn loss(self) -> Self {
        Self { abs: self.abs / 10.0, rel: self.rel / 10.0 }
    }
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
fn assert_close(what: &str, got: &[f32], reference: &[f32], tolerance: Tolerance) {
    assert_eq!(got.len(), reference.len(), "{what}: lengths differ");
    for (i, (&g, &r)) in got.iter().zip(reference).enumerate() {
        let bound = tolerance.abs + tolerance.rel * r.abs();
        assert!(g.is_finite() && (g - r).abs() <= bound, "{what}[{i}]: {g} vs the reference's {r} (±{bound})");
    }
}

/// The `fedcare-core` error inside a trainer's error, whichever trainer made it.
fn core_error(error: &FederationError) -> Option<&fedcare_core::Error> {
    match (error, error.trainer_error::<GpuError>()) {
        (FederationError::Core(error), _) | (_, Some(GpuError::Core(error))) => Some(error),
        _ => None,
    }
}

/// The assertions every trainer passes.
mod checks {
    use super::*;

    /// The same training by `trainer` and by the reference: (trainer's params, reference's,
    /// trainer's epoch losses, reference's).
    fn train_both(
        trainer: &mut dyn Trainer,
        spec: &ModelSpec,
        data: &Dataset,
        config: &TrainConfig,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let start = init_params(spec, 3);
        let mut reference = start.clone();
        let reference_report = fedcare_core::train(spec, &mut reference, data, config).unwrap();
        let mut params = start;
        let report = trainer.train(spec, &mut params, data, config).unwrap();
        assert_eq!(report.steps, reference_report.steps);
        (params, reference, report.epoch_losses, reference_report.epoch_losses)
    }

    pub(super) fn whole_runs_of_lr_and_mlp_match_the_reference(trainer: &mut dyn Trainer, tolerance: Tolerance) {
        let data = dataset(1000, 64, 5);
        let test = dataset(500, 64, 6);
        // Batch 64 over 1000 rows leaves a last batch of 40.
        let config = TrainConfig {
            epochs: 3,
            batch_size: 64,
            optimizer: OptimizerConfig::adam(0.01),
            pos_weight: 1.5,
            seed: 11,
            ..TrainConfig::default()
        };
        for hidden in [&[][..], &[32][..]] {
            let spec = ModelSpec::mlp(64, hidden).unwrap();
            let (params, reference, losses, reference_losses) = train_both(trainer, &spec, &data, &config);
            assert_close(&format!("{hidden:?} params"), &params, &reference, tolerance.long());
            assert_close(&format!("{hidden:?} epoch losses"), &losses, &reference_losses, tolerance);
            let mut network = Network::new(&spec);
            let trained = auroc(&network.predict(&params, test.features()).unwrap(), test.labels()).unwrap();
            let expected = auroc(&network.predict(&reference, test.features()).unwrap(), test.labels()).unwrap();
            assert!(expected > 0.75, "{hidden:?}: the model should learn something (AUROC {expected})");
            assert!((trained - expected).abs() < 1e-3, "{hidden:?}: AUROC {trained}, the reference's {expected}");
        }
    }

    pub(super) fn optimizer_steps_with_penalties_match_the_reference(trainer: &mut dyn Trainer, tolerance: Tolerance) {
        let data = dataset(50, 9, 4);
        let spec = ModelSpec::mlp(9, &[5]).unwrap();
        // Batch 16 over 50 rows: 4 steps per epoch, the last of 2 rows.
        for optimizer in [OptimizerConfig::Sgd { lr: 0.05, momentum: 0.9 }, OptimizerConfig::adam(0.01)] {
            let config =
                TrainConfig { epochs: 2, batch_size: 16, optimizer, pos_weight: 2.0, l2: 0.01, prox_mu: 0.1, seed: 8 };
            let (params, reference, losses, reference_losses) = train_both(trainer, &spec, &data, &config);
            assert_close(&format!("params after {optimizer:?}"), &params, &reference, tolerance);
            assert_close("epoch losses", &losses, &reference_losses, tolerance.loss());
        }
    }

    pub(super) fn dp_sgd_runs_match_the_reference_noise_and_clipping_included(
        trainer: &mut dyn Trainer,
        tolerance: Tolerance,
    ) {
        let data = patients(300, 20, 2);
        // q = 0.05: 20 steps an epoch of 15 patients on average. σ = 3 makes the noise dominate
        // the update, so a noise stream that differed from the reference's would show at once.
        let dp = DpSgd { sampling_rate: 0.05, noise_multiplier: 3.0, clip_norm: 1.0 };
        for (hidden, optimizer) in
            [(&[][..], OptimizerConfig::Sgd { lr: 0.05, momentum: 0.9 }), (&[16][..], OptimizerConfig::adam(0.01))]
        {
            let spec = ModelSpec::mlp(20, hidden).unwrap();
            let config =
                TrainConfig { epochs: 2, optimizer, pos_weight: 1.5, l2: 0.01, prox_mu: 0.1, ..TrainConfig::default() };
            let start = init_params(&spec, 4);
            let key = NoiseKey::from_u64(0xfeed);
            let mut reference = start.clone();
            let reference_report =
                fedcare_core::train_private(&spec, &mut reference, &data, &config, &dp, key).unwrap();
            let mut params = start.clone();
            let report = trainer.train_private(&spec, &mut params, &data, &config, &dp, key).unwrap();
            assert_eq!(report.steps, reference_report.steps);
            assert_close(&format!("{hidden:?} params"), &params, &reference, tolerance.long());
            assert_close(
                &format!("{hidden:?} epoch losses"),
                &report.epoch_losses,
                &reference_report.epoch_losses,
                tolerance,
            );
            let moved = params.iter().zip(&start).filter(|(a, b)| (*a - *b).abs() > 1e-3).count();
            assert!(moved > params.len() / 2, "{hidden:?}: training moved the parameters");
            // Another key: other noise, other parameters.
            let mut other = start.clone();
            trainer.train_private(&spec, &mut other, &data, &config, &dp, NoiseKey::from_u64(1)).unwrap();
            assert!(other.iter().zip(&params).any(|(a, b)| (a - b).abs() > 1e-2), "{hidden:?}: the key matters");
        }
    }

    pub(super) fn bad_inputs_get_the_core_errors(trainer: &mut dyn Trainer) {
        let data = dataset(10, 4, 7);
        let spec = ModelSpec::mlp(5, &[]).unwrap();
        let mut params = init_params(&spec, 1);
        let config = TrainConfig::default();
        let error = trainer.train(&spec, &mut params, &data, &config).unwrap_err();
        assert!(
            matches!(core_error(&error), Some(fedcare_core::Error::FeatureWidth { expected: 5, got: 4 })),
            "{error}"
        );
        let spec = ModelSpec::mlp(4, &[]).unwrap();
        let error = trainer.train(&spec, &mut params, &data, &config).unwrap_err();
        assert!(matches!(core_error(&error), Some(fedcare_core::Error::ParamLength { .. })), "{error}");
        let mut params = init_params(&spec, 1);
        let bad = TrainConfig { batch_size: 0, ..config };
        let error = trainer.train(&spec, &mut params, &data, &bad).unwrap_err();
        assert!(core_error(&error).is_some(), "{error}");
        let empty = Dataset::new(vec![], vec![], 4).unwrap();
        let error = trainer.train(&spec, &mut params, &empty, &config).unwrap_err();
        assert!(matches!(core_error(&error), Some(fedcare_core::Error::EmptyDataset)), "{error}");
    }

    pub(super) fn a_diverging_run_is_reported_like_the_reference(trainer: &mut dyn Trainer) {
        let clean = dataset(40, 3, 8);
        let spec = ModelSpec::mlp(3, &[]).unwrap();
        // A huge (finite) feature blows the weights up within a few steps.
        let mut features = clean.features().to_vec();
        features[5] = 3e37;
        let rows = Dataset::new(features, clean.labels().to_vec(), 3).unwrap();
        let config = TrainConfig {
            epochs: 10,
            batch_size: 8,
            optimizer: OptimizerConfig::Sgd { lr: 1.0, momentum: 0.9 },
            ..TrainConfig::default()
        };
        let mut reference = init_params(&spec, 1);
        let expected = fedcare_core::train(&spec, &mut reference, &rows, &config).expect_err("the reference diverges");
        assert!(matches!(expected, fedcare_core::Error::Diverged { .. }), "{expected}");
        let mut params = init_params(&spec, 1);
        let error = trainer.train(&spec, &mut params, &rows, &config).expect_err("the trainer's run diverges");
        assert!(matches!(core_error(&error), Some(fedcare_core::Error::Diverged { .. })), "{error}");
    }

    pub(super) fn other_data_in_between_changes_nothing(trainer: &mut dyn Trainer, tolerance: Tolerance) {
        // A hospital's trainer keeps its data between rounds (the GPU keeps it on the device):
        // training on other data in between must leave the next run on the first data as it was.
        let (first, other) = (dataset(60, 6, 9), dataset(45, 6, 10));
        let spec = ModelSpec::mlp(6, &[4]).unwrap();
        let config = TrainConfig { epochs: 2, batch_size: 16, seed: 2, ..TrainConfig::default() };
        let run = |trainer: &mut dyn Trainer, data: &Dataset| {
            let mut params = init_params(&spec, 6);
            trainer.train(&spec, &mut params, data, &config).unwrap();
            params
        };
        let before = run(trainer, &first);
        let between = run(trainer, &other);
        let after = run(trainer, &first);
        assert_close("the first data again", &after, &before, tolerance);
        assert!(between.iter().zip(&before).any(|(a, b)| (a - b).abs() > 1e-3), "the other data trained differently");
    }
}

/// The suite's tests for one trainer: `$make(test name)` gives the trainer, or `None` to skip.
macro_rules! conformance {
    ($module:ident, $make:expr, $tolerance:expr) => {
        mod $module {
            use super::*;

            fn trainer(test: &str) -> Option<Box<dyn Trainer>> {
                let make: fn(&str) -> Option<Box<dyn Trainer>> = $make;
                make(test)
            }

            const TOLERANCE: Tolerance = $tolerance;

            #[test]
            fn whole_runs_of_lr_and_mlp_match_the_reference() {
                let Some(mut t) = trainer(concat!(stringify!($module), "::whole_runs")) else { return };
                checks::whole_runs_of_lr_and_mlp_match_the_reference(t.as_mut(), TOLERANCE);
            }

            #[test]
            fn optimizer_steps_with_penalties_match_the_reference() {
                let Some(mut t) = trainer(concat!(stringify!($module), "::optimizer_steps")) else { return };
                checks::optimizer_steps_with_penalties_match_the_reference(t.as_mut(), TOLERANCE);
            }

            #[test]
            fn dp_sgd_runs_match_the_reference_noise_and_clipping_included() {
                let Some(mut t) = trainer(concat!(stringify!($module), "::dp_sgd_runs")) else { return };
                checks::dp_sgd_runs_match_the_reference_noise_and_clipping_included(t.as_mut(), TOLERANCE);
            }

            #[test]
            fn bad_inputs_get_the_core_errors() {
                let Some(mut t) = trainer(concat!(stringify!($module), "::bad_inputs")) else { return };
                checks::bad_inputs_get_the_core_errors(t.as_mut());
            }

            #[test]
            fn a_diverging_run_is_reported_like_the_reference() {
                let Some(mut t) = trainer(concat!(stringify!($module), "::a_diverging_run")) else { return };
                checks::a_diverging_run_is_reported_like_the_reference(t.as_mut());
            }

            #[test]
            fn other_data_in_between_changes_nothing() {
                let Some(mut t) = trainer(concat!(stringify!($module), "::other_data_in_between")) else { return };
                checks::other_data_in_between_changes_nothing(t.as_mut(), TOLERANCE);
            }
        }
    };
}

conformance!(cpu, |_| Some(Box::new(CpuTrainer::default())), Tolerance { abs: 0.0, rel: 0.0 });

// On four threads: the same models as on one, bit for bit.
conformance!(cpu_threads, |_| Some(Box::new(CpuTrainer::new(4).unwrap())), Tolerance { abs: 0.0, rel: 0.0 });

/// The GPU trainer on this machine's adapter with its steps recorded as `step` says.
fn gpu_trainer(test: &str, step: Step) -> Option<Box<dyn Trainer>> {
    let gpu = fedcare_gpu_trainer::testing::gpu_or_skip(test)?;
    let trainer = GpuTrainer::new(gpu).expect("the GPU trainer builds on this adapter");
    Some(Box::new(GpuNodeTrainer::new(trainer.with_step(step))))
}

// The default: a dispatch per layer and phase.
conformance!(gpu, |test| gpu_trainer(test, Step::Tiled), Tolerance { abs: 1e-5, rel: 1e-4 });

// Every step one fused dispatch (DP-SGD's stay tiled).
conformance!(gpu_fused, |test| gpu_trainer(test, Step::Fused), Tolerance { abs: 1e-5, rel: 1e-4 });
