//! The training loop: determinism, learning, and refusals.

mod common;

use fedcare_core::metrics::auroc;
use fedcare_core::rng::init_params;
use fedcare_core::{Error, ModelSpec, Network, OptimizerConfig, TrainConfig, train};

fn trained(spec: &ModelSpec, data: &fedcare_core::Dataset, config: &TrainConfig, init_seed: u64) -> Vec<f32> {
    let mut params = init_params(spec, init_seed);
    train(spec, &mut params, data, config).unwrap();
    params
}

#[test]
fn same_seed_same_data_gives_identical_bits_and_another_seed_does_not() {
    let data = common::linear_problem(1000, 12, 0.5, 1);
    let spec = ModelSpec::mlp(12, &[16, 8]).unwrap();
    let config = TrainConfig { epochs: 4, batch_size: 64, seed: 9, l2: 1e-4, prox_mu: 0.01, ..TrainConfig::default() };
    let bits = |p: &[f32]| p.iter().map(|v| v.to_bits()).collect::<Vec<u32>>();
    let first = trained(&spec, &data, &config, 3);
    let second = trained(&spec, &data, &config, 3);
    assert_eq!(bits(&first), bits(&second));
    let other_order = trained(&spec, &data, &TrainConfig { seed: 10, ..config }, 3);
    assert_ne!(bits(&first), bits(&other_order));
    let other_init = trained(&spec, &data, &config, 4);
    assert_ne!(bits(&first), bits(&other_init));
}

#[test]
fn a_separable_problem_trains_to_high_auroc() {
    let data = common::linear_problem(3000, 10, 0.0, 2);
    // Every fifth row is held out.
    let (train_rows, test_rows): (Vec<usize>, Vec<usize>) = (0..data.rows()).partition(|r| r % 5 != 0);
    let (train_set, test_set) = (data.select(&train_rows), data.select(&test_rows));
    for spec in [ModelSpec::logistic_regression(10).unwrap(), ModelSpec::mlp(10, &[16, 8]).unwrap()] {
        let config = TrainConfig {
            epochs: 10,
            batch_size: 32,
            optimizer: OptimizerConfig::adam(0.01),
            pos_weight: train_set.balanced_pos_weight(),
            ..TrainConfig::default()
        };
        let mut params = init_params(&spec, 5);
        let report = train(&spec, &mut params, &train_set, &config).unwrap();
        assert!(report.epoch_losses.last() < report.epoch_losses.first(), "{:?}", report.epoch_losses);
        let logits = Network::new(&spec).predict(&params, test_set.features()).unwrap();
        let area = auroc(&logits, test_set.labels()).unwrap();
        assert!(area > 0.95, "{spec:?}: AUROC {area}");
    }
}

#[test]
fn sgd_with_momentum_learns_too() {
    let data = common::linear_problem(2000, 6, 0.0, 4);
    let spec = ModelSpec::logistic_regression(6).unwrap();
    let config = TrainConfig {
        epochs: 5,
        batch_size: 50,
        optimizer: OptimizerConfig::Sgd { lr: 0.1, momentum: 0.9 },
        ..TrainConfig::default()
    };
    let mut params = init_params(&spec, 1);
    train(&spec, &mut params, &data, &config).unwrap();
    let logits = Network::new(&spec).predict(&params, data.features()).unwrap();
    assert!(auroc(&logits, data.labels()).unwrap() > 0.97);
}

#[test]
fn training_refuses_mismatched_inputs() {
    let data = common::linear_problem(10, 4, 0.0, 1);
    let spec = ModelSpec::logistic_regression(5).unwrap();
    let mut params = init_params(&spec, 1);
    assert_eq!(
        train(&spec, &mut params, &data, &TrainConfig::default()),
        Err(Error::FeatureWidth { expected: 5, got: 4 })
    );
    let spec = ModelSpec::logistic_regression(4).unwrap();
    assert_eq!(
        train(&spec, &mut params, &data, &TrainConfig::default()),
        Err(Error::ParamLength { expected: 5, got: 6 })
    );
    let mut params = init_params(&spec, 1);
    let zero_batch = TrainConfig { batch_size: 0, ..TrainConfig::default() };
    assert!(matches!(
        train(&spec, &mut params, &data, &zero_batch),
        Err(Error::InvalidHyperparameter { name: "batch_size", .. })
    ));
}

#[test]
fn a_diverging_run_stops_with_an_error() {
    let data = common::linear_problem(200, 4, 0.0, 1);
    let spec = ModelSpec::mlp(4, &[8]).unwrap();
    let mut params = init_params(&spec, 1);
    let config = TrainConfig {
        epochs: 50,
        optimizer: OptimizerConfig::Sgd { lr: 1e30, momentum: 0.0 },
        ..TrainConfig::default()
    };
    assert!(matches!(train(&spec, &mut params, &data, &config), Err(Error::Diverged { .. })));
}
