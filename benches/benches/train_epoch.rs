//! One training epoch (100k rows × 64 features, Adam, `pos_weight`, shuffled mini-batches) for
//! logistic regression and the MLP 64-64-32-1, on the CPU (one thread) and on the GPU, reported
//! as samples/s. A GPU epoch is a whole `train` call: shuffle, every step, parameters read back;
//! the dataset is uploaded once beforehand.
//!
//! `dp-sgd-*` is the same epoch under DP-SGD (`train_private`): each row its own patient, sampled
//! with probability 256/100,000 (so 391 steps of 256 rows on average), clipped and noised: the
//! cost of per-example clipping beside the plain CPU epoch of batch 256; `gpu-dp-sgd-*` the same
//! on the GPU (patients sampled on the CPU, clipping and noise in WGSL).
//!
//! The peer is PyTorch on the same machine and model (`../shared/peers/torch_train_bench.py`).
//! On a machine whose only adapter is lavapipe (software Vulkan), the GPU figures measure Mesa's
//! CPU emulation, not a GPU: `fedcare-train-bench` prints the adapter beside the table.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fedcare_core::privacy::DpSgd;
use fedcare_core::privacy::noise::NoiseKey;
use fedcare_core::rng::init_params;
use fedcare_core::{ModelSpec, OptimizerConfig, TrainConfig, train, train_private};
use fedcare_data::plain::benchmark_problem;
use fedcare_gpu_trainer::{GpuTrainer, Selection};

const ROWS: usize = 100_000;
const FEATURES: usize = 64;

fn train_epoch(c: &mut Criterion) {
    let data = benchmark_problem(ROWS, FEATURES, 0);
    let models = [
        ("logreg", ModelSpec::logistic_regression(FEATURES).unwrap()),
        ("mlp-64-64-32-1", ModelSpec::mlp(FEATURES, &[64, 32]).unwrap()),
    ];
    let gpu = match fedcare_gpu_trainer::device::open(&Selection::from_env()) {
        Ok(gpu) => {
            eprintln!("train_epoch: GPU {} ({}, {:?})", gpu.adapter.name, gpu.adapter.backend, gpu.adapter.device_type);
            Some(GpuTrainer::new(gpu).expect("the GPU trainer builds on this adapter"))
        }
        Err(e) => {
            eprintln!("train_epoch: no GPU benchmarks: {e}");
            None
        }
    };
    let uploaded = gpu.as_ref().map(|g| g.upload(&data).expect("the benchmark data fits the GPU"));
    let mut group = c.benchmark_group("train_epoch");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(10);
    for (name, spec) in &models {
        for batch_size in [256, 1024] {
            let config = TrainConfig {
                epochs: 1,
                batch_size,
                optimizer: OptimizerConfig::adam(1e-3),
                pos_weight: data.balanced_pos_weight(),
                ..TrainConfig::default()
            };
            let initial = init_params(spec, 1);
            if let (Some(gpu), Some(uploaded)) = (&gpu, &uploaded) {
                group.bench_with_input(BenchmarkId::new(format!("gpu-{name}"), batch_size), &config, |b, config| {
                    b.iter_batched_ref(
                        || initial.clone(),
                        |params| gpu.train(spec, params, uploaded, config).unwrap(),
                        criterion::BatchSize::LargeInput,
                    );
                });
            }
            group.bench_with_input(BenchmarkId::new(*name, batch_size), &config, |b, config| {
                b.iter_batched_ref(
                    || initial.clone(),
                    |params| train(spec, params, &data, config).unwrap(),
                    criterion::BatchSize::LargeInput,
                );
            });
            if batch_size == 256 {
                let dp = DpSgd { sampling_rate: 256.0 / ROWS as f64, noise_multiplier: 1.0, clip_norm: 1.0 };
                group.bench_with_input(BenchmarkId::new(format!("dp-sgd-{name}"), batch_size), &config, |b, config| {
                    b.iter_batched_ref(
                        || initial.clone(),
                        |params| train_private(spec, params, &data, config, &dp, NoiseKey::from_u64(7)).unwrap(),
                        criterion::BatchSize::LargeInput,
                    );
                });
                if let (Some(gpu), Some(uploaded)) = (&gpu, &uploaded) {
                    let id = BenchmarkId::new(format!("gpu-dp-sgd-{name}"), batch_size);
                    group.bench_with_input(id, &config, |b, config| {
                        b.iter_batched_ref(
                            || initial.clone(),
                            |params| {
                                let key = NoiseKey::from_u64(7);
                                gpu.train_private(spec, params, uploaded, &data, config, &dp, key).unwrap()
                            },
                            criterion::BatchSize::LargeInput,
                        );
                    });
                }
            }
        }
    }
    group.finish();
}

criterion_group!(benches, train_epoch);
criterion_main!(benches);
