//! Trainers that share one device (clones of one `GpuTrainer`, as a simulation's hospitals on one
//! GPU) train at the same time on their own threads, and each gets the model it gets alone: the
//! queue runs their work in turn and nothing of one reaches the other. Skips visibly without an
//! adapter.

use fedcare_core::rng::init_params;
use fedcare_core::{Dataset, ModelSpec, OptimizerConfig, TrainConfig};
use fedcare_gpu_trainer::GpuTrainer;

fn dataset(rows: usize, width: usize, salt: usize) -> Dataset {
    let features = (0..rows * width).map(|i| (((i + salt) * 7919) % 17) as f32 / 17.0 - 0.5).collect();
    let labels = (0..rows).map(|r| u8::from((r + salt).is_multiple_of(3)) as f32).collect();
    Dataset::new(features, labels, width).unwrap()
}

#[test]
fn trainers_sharing_a_device_train_at_once_and_each_gets_its_own_model() {
    let Some(gpu) = fedcare_gpu_trainer::testing::gpu_or_skip("trainers_sharing_a_device_train_at_once") else {
        return;
    };
    let first = GpuTrainer::new(gpu).unwrap();
    let second = first.clone();
    assert!(first.shares_device_with(&second));
    let spec = ModelSpec::mlp(12, &[20]).unwrap();
    let config =
        TrainConfig { epochs: 3, batch_size: 64, optimizer: OptimizerConfig::adam(1e-2), ..TrainConfig::default() };
    let hospitals = [dataset(700, 12, 1), dataset(500, 12, 2)];
    let train = |trainer: &GpuTrainer, data: &Dataset| {
        let uploaded = trainer.upload(data).unwrap();
        let mut params = init_params(&spec, 5);
        let report = trainer.train(&spec, &mut params, &uploaded, &config).unwrap();
        (params, report.epoch_losses)
    };
    let alone: Vec<_> = hospitals.iter().map(|data| train(&first, data)).collect();
    assert_ne!(alone[0], alone[1]);
    for _ in 0..3 {
        let together = std::thread::scope(|scope| {
            let a = scope.spawn(|| train(&first, &hospitals[0]));
            let b = scope.spawn(|| train(&second, &hospitals[1]));
            [a.join().unwrap(), b.join().unwrap()]
        });
        assert!(together[0] == alone[0] && together[1] == alone[1], "a shared device mixed the trainers' work");
    }
}
