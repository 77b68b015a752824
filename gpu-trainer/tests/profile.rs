//! `GpuTrainer::profile`: a few training steps recorded as `train` records them, every dispatch
//! timed with GPU timestamps (lavapipe has them too). Skips visibly without an adapter.

use fedcare_core::rng::init_params;
use fedcare_core::{Dataset, ModelSpec, OptimizerConfig, TrainConfig};
use fedcare_gpu_trainer::{GpuTrainer, Step, TimestampPlacement};

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

    // The whole epoch: steps of 256, 256 and 88 rows.
    let profile = gpu.profile(&spec, &params, &uploaded, &config, 3).unwrap();
    assert!(matches!(profile.placement, TimestampPlacement::InsidePass | TimestampPlacement::PassPerDispatch));
    assert_eq!(profile.steps, 3);
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
    // The last step's 88 rows are one split of the weight gradient: no split sum.
    assert_eq!(profile.dispatches.len(), 3 * step.len() - 1);
    assert!(profile.dispatches.iter().filter(|d| d.step == 2).all(|d| d.kernel != "split sum"));
    assert!(profile.dispatches.iter().all(|d| d.nanoseconds.is_finite() && d.nanoseconds >= 0.0));
    assert!(profile.median_step_ns() > 0.0, "a step takes time: {profile:?}");
    let kernels = profile.by_kernel();
    assert_eq!(kernels.iter().map(|k| k.dispatches).sum::<usize>(), step.len());

    // Fused, a step is one dispatch.
    let fused = gpu.clone().with_step(Step::Fused).profile(&spec, &params, &uploaded, &config, 3).unwrap();
    assert_eq!(fused.dispatches_per_step(), 1);
    assert!(fused.dispatches.iter().all(|d| d.kernel == "fused step" && d.layer.is_none()));

    // Profiling trains nothing into the caller's parameters, and training afterwards is the same.
    let mut again = params.clone();
    gpu.train(&spec, &mut again, &uploaded, &config).unwrap();
    assert_eq!(again, trained);
    assert!(gpu.profile(&spec, &params, &uploaded, &TrainConfig { batch_size: 0, ..config }, 2).is_err());
}

#[test]
fn fused_and_tiled_steps_train_the_same_model_within_float_rounding() {
    // Tolerance 1e-5 + 1e-4·|x| on the parameters after two epochs: the two paths sum the same
    // products in other orders (the tiled matmul in 16-wide slices, the fused kernel row by row).
    let Some(gpu) = trainer("fused_and_tiled_steps_train_the_same_model_within_float_rounding") else { return };
    let data = dataset(300, 10);
    let uploaded = gpu.upload(&data).unwrap();
    let config = TrainConfig {
        epochs: 2,
        batch_size: 70,
        optimizer: OptimizerConfig::adam(1e-2),
        l2: 1e-3,
        prox_mu: 0.01,
        ..TrainConfig::default()
    };
    for hidden in [&[][..], &[65, 3][..], &[16, 16, 16][..]] {
        let spec = ModelSpec::mlp(10, hidden).unwrap();
        let start = init_params(&spec, 7);
        let run = |step: Step| {
            let mut params = start.clone();
            let report = gpu.clone().with_step(step).train(&spec, &mut params, &uploaded, &config).unwrap();
            (params, report.epoch_losses)
        };
        let ((fused, fused_losses), (tiled, tiled_losses)) = (run(Step::Fused), run(Step::Tiled));
        assert_ne!(fused, start, "{hidden:?}: it trained");
        for (i, (f, t)) in fused.iter().zip(&tiled).enumerate() {
            assert!((f - t).abs() <= 1e-5 + 1e-4 * t.abs(), "{hidden:?} parameter {i}: fused {f}, tiled {t}");
        }
        for (f, t) in fused_losses.iter().zip(&tiled_losses) {
            assert!(
                (f - t).abs() <= 1e-5 * t.abs(),
                "{hidden:?} losses: fused {fused_losses:?}, tiled {tiled_losses:?}"
            );
        }
    }
    // A fused step past 2^31 parameters × rows is refused, not run.
    let wide = ModelSpec::mlp(10, &[1 << 20]).unwrap();
    let error = gpu.with_step(Step::Fused).train(
        &wide,
        &mut init_params(&wide, 1),
        &uploaded,
        &TrainConfig { batch_size: 256, ..config },
    );
    assert!(error.unwrap_err().to_string().contains("at most 2^31"));
}

#[test]
fn a_measured_step_is_the_faster_kind_timed_once_per_model_and_batch() {
    let Some(gpu) = trainer("a_measured_step_is_the_faster_kind_timed_once_per_model_and_batch") else { return };
    let data = dataset(400, 10);
    let uploaded = gpu.upload(&data).unwrap();
    let config = TrainConfig { epochs: 1, batch_size: 50, ..TrainConfig::default() };
    let spec = ModelSpec::mlp(10, &[8]).unwrap();
    let start = init_params(&spec, 2);
    let measured = gpu.clone().with_step(Step::Measured);
    let shared = measured.clone();
    let mut params = start.clone();
    measured.train(&spec, &mut params, &uploaded, &config).unwrap();
    let found = shared.measured_steps();
    assert_eq!(found.len(), 1, "clones share what was measured");
    let (tiled_ns, fused_ns) = found[0].nanoseconds.expect("this adapter has timestamp queries");
    let faster = if fused_ns < tiled_ns { Step::Fused } else { Step::Tiled };
    assert_eq!((found[0].batch, found[0].chosen), (50, faster), "{found:?}");
    // The model is the chosen kind's, bit for bit: measuring trained nothing into it.
    let mut alone = start.clone();
    gpu.clone().with_step(faster).train(&spec, &mut alone, &uploaded, &config).unwrap();
    assert_eq!(params, alone);
    // Measured once: the same model and batch again, or scoring, times nothing new.
    measured.train(&spec, &mut start.clone(), &uploaded, &config).unwrap();
    assert_eq!(shared.measured_steps().len(), 1);
    // Past the candidates' work, tiled without timing.
    let wide = ModelSpec::mlp(10, &[9000]).unwrap();
    assert!(wide.param_count() * 50 > fedcare_gpu_trainer::FUSED_CANDIDATE_WORK);
    let mut wide_params = init_params(&wide, 1);
    measured.train(&wide, &mut wide_params, &uploaded, &config).unwrap();
    assert_eq!(shared.measured_steps().len(), 1);
}
