//! `GpuTrainer::profile`: a few training steps recorded as `train` records them, every dispatch
//! timed with GPU timestamps (lavapipe has them too). Skips visibly without an adapter.

use fedcare_core::rng::init_params;
use fedcare_core::{Dataset, ModelSpec, OptimizerConfig, TrainConfig};
use fedcare_gpu_trainer::{GpuTrainer, TimestampPlacement};

fn trainer(test: &str) -> Option<GpuTrainer> {
    let gpu = fedcare_gpu_trainer::testing::gpu_or_skip(test)?;
    Some(GpuTrainer::new(gpu).expect("the GPU trainer builds on this adapter"))
}

fn dataset(rows: usize, width: usize) -> Dataset {
    let features = (0..rows * width).map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5).collect();
    let labels = (0..rows).map(|r| u8::from(r.is_multiple_of(3)) as f32).collect();
    Dataset::new(features, labels, width).unwrap()
}

#[test]
fn a_profile_times_every_dispatch_of_the_trainers_own_steps_and_leaves_training_alone() {
    let Some(gpu) = trainer("a_profile_times_every_dispatch_of_the_trainers_own_steps_and_leaves_training_alone")
    else {
        return;
    };
    let data = dataset(600, 20);
    let uploaded = gpu.upload(&data).unwrap();
    let spec = ModelSpec::mlp(20, &[24]).unwrap();
    let params = init_params(&spec, 3);
    let config =
        TrainConfig { epochs: 1, batch_size: 256, optimizer: OptimizerConfig::adam(1e-2), ..TrainConfig::default() };
    let mut trained = params.clone();
    gpu.train(&spec, &mut trained, &uploaded, &config).unwrap();

    let profile = gpu.profile(&spec, &params, &uploaded, &config, 2).unwrap();
    assert!(matches!(profile.placement, TimestampPlacement::InsidePass | TimestampPlacement::PassPerDispatch));
    assert_eq!(profile.steps, 2);
    let step: Vec<String> = profile.dispatches[..profile.dispatches_per_step()]
        .iter()
        .map(|d| match d.layer {
            Some(layer) => format!("{} {}", d.kernel, layer + 1),
            None => d.kernel.to_owned(),
        })
        .collect();
    // Layer 1 (20 -> 24) is tiled, layer 2 (24 -> 1) narrow; each weight gradient sums its
    // bias gradient beside it, and the tiled one's two splits (of 128 rows) are summed.
    assert_eq!(
        step,
        [
            "forward 1",
            "forward (narrow) 2",
            "loss",
            "weight gradient (narrow) 2",
            "input gradient 2",
            "weight gradient 1",
            "split sum 1",
            "optimizer",
            "advance",
        ]
    );
    assert_eq!(profile.dispatches.len(), 2 * step.len());
    assert!(profile.dispatches.iter().all(|d| d.nanoseconds.is_finite() && d.nanoseconds >= 0.0));
    assert!(profile.median_step_ns() > 0.0, "a step takes time: {profile:?}");
    let kernels = profile.by_kernel();
    assert_eq!(kernels.iter().map(|k| k.dispatches).sum::<usize>(), step.len());

    // Profiling trains nothing into the caller's parameters, and training afterwards is the same.
    let mut again = params.clone();
    gpu.train(&spec, &mut again, &uploaded, &config).unwrap();
    assert_eq!(again, trained);
    assert!(gpu.profile(&spec, &params, &uploaded, &TrainConfig { batch_size: 0, ..config }, 2).is_err());
}
