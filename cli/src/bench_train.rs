//! `fedcare bench-train`: one table of training throughput, CPU (one thread, and every core)
//! against the GPU,
//! on the problem and models of `../shared/peers/torch_train_bench.py` (100k × 64, logistic
//! regression and MLP 64-64-32-1, Adam, `pos_weight`, shuffled batches of 256 and 1024).
//!
//! Each cell: one untimed warm-up epoch, then the median of `--repeats` timed epochs. A timed
//! epoch is a whole `train` call for one epoch: the shuffle, every step, and reading the
//! parameters back; the dataset is already on the device, as in the PyTorch peer.
//!
//! Build here, copy the release `fedcare` binary and run it on a GPU machine (only the Vulkan
//! loader and driver are needed there): `fedcare bench-train` (`FEDCARE_ADAPTER`, `WGPU_BACKEND`
//! pick the adapter). `benches/gpu-device.sh` does that and runs the PyTorch peers beside it.
//! `--dp-sgd` times DP-SGD epochs instead (`train_private` on every trainer, the CPU's on one
//! thread and on every core). `--profile` times every dispatch of a few steps of each
//! GPU cell with GPU timestamps (any adapter with timestamp queries, lavapipe included).

use std::time::Instant;

use anyhow::Result;
use fedcare_core::privacy::DpSgd;
use fedcare_core::privacy::noise::NoiseKey;
use fedcare_core::rng::init_params;
use fedcare_core::{Dataset, ModelSpec, OptimizerConfig, TrainConfig};
use fedcare_data::plain::benchmark_problem;
use fedcare_federation::hospital::trainer::{CpuTrainer, Trainer};
use fedcare_gpu_trainer::{GpuTrainer, Profile, Selection, Step, TimestampPlacement};

/// Which trainer a column of the table measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Bench {
    /// `fedcare-core`'s CPU trainer on one thread.
    Cpu,
    /// The hospital's CPU trainer on every core (the same model as on one thread).
    CpuAll,
    /// The GPU trainer on the preferred adapter.
    Gpu,
}

/// How the GPU trainer records a step (`GpuTrainer::with_step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum GpuStep {
    /// The faster of the two for each model and batch, timed on the device (as hospitals do).
    Measured,
    /// A dispatch per layer and phase.
    Tiled,
    /// One fused dispatch of one workgroup a step (up to 2^31 parameters × rows).
    Fused,
}

/// `fedcare bench-train`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Rows of the synthetic problem.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Features per row.
    #[arg(long, default_value_t = 64)]
    features: usize,
    /// Timed epochs per cell (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Hidden widths of the MLP (the peer's is 64,32; `--features 359 --mlp 256,128,64` is the
    /// Diabetes-130 model).
    #[arg(long, value_delimiter = ',', default_value = "64,32")]
    mlp: Vec<usize>,
    /// Batch sizes.
    #[arg(long, value_delimiter = ',', default_value = "256,1024")]
    batch_sizes: Vec<usize>,
    /// Trainers to run.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cpu,cpu-all,gpu")]
    trainers: Vec<Bench>,
    /// Time DP-SGD epochs instead (each row its own patient, sampled at batch/rows, clipped to
    /// norm 1, noise multiplier 1): the cost of per-patient clipping and noise on each trainer.
    #[arg(long, conflicts_with = "profile")]
    dp_sgd: bool,
    /// After each GPU cell, time every dispatch of its first `--profile-steps` steps with GPU
    /// timestamps and print the dispatches per step and each kernel's median time per step.
    #[arg(long)]
    profile: bool,
    /// How the GPU trainer records a step.
    #[arg(long, value_enum, default_value = "measured")]
    gpu_step: GpuStep,
    /// Steps each profile times.
    #[arg(long, default_value_t = 20, requires = "profile")]
    profile_steps: usize,
}

fn median_seconds(repeats: usize, mut epoch: impl FnMut() -> Result<()>) -> Result<f64> {
    epoch()?; // warm-up: pipelines, caches, first-use allocations
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let start = Instant::now();
        epoch()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn config(data: &Dataset, batch_size: usize) -> TrainConfig {
    TrainConfig {
        epochs: 1,
        batch_size,
        optimizer: OptimizerConfig::adam(1e-3),
        pos_weight: data.balanced_pos_weight(),
        ..TrainConfig::default()
    }
}

/// Prints a profile: the dispatches and time of a step, then each kernel's share.
fn print_profile(profile: &Profile) {
    let step = profile.median_step_ns();
    let placement = match profile.placement {
        TimestampPlacement::InsidePass => "timestamps between dispatches",
        TimestampPlacement::PassPerDispatch => "timestamps around a pass per dispatch",
    };
    let dispatches = profile.dispatches_per_step();
    println!(
        "  profile: {dispatches} dispatch{} a step, {:.1} us a step on the GPU (median of {} steps; {placement})",
        if dispatches == 1 { "" } else { "es" },
        step / 1e3,
        profile.steps
    );
    println!("  {:<34} {:>10} {:>12} {:>7}", "kernel", "dispatches", "us a step", "share");
    for kernel in profile.by_kernel() {
        let share = if step > 0.0 { 100.0 * kernel.median_ns / step } else { 0.0 };
        println!(
            "  {:<34} {:>10} {:>12.1} {:>6.1}%",
            kernel.to_string(),
            kernel.dispatches,
            kernel.median_ns / 1e3,
            share
        );
    }
}

pub(crate) fn run(args: Args) -> Result<()> {
    let data = benchmark_problem(args.rows, args.features, 0);
    let widths: Vec<String> = args.mlp.iter().map(ToString::to_string).collect();
    let models = [
        ("logreg".to_owned(), ModelSpec::logistic_regression(args.features)?),
        (format!("mlp-{}-{}-1", args.features, widths.join("-")), ModelSpec::mlp(args.features, &args.mlp)?),
    ];
    let gpu = if args.trainers.contains(&Bench::Gpu) {
        let gpu = fedcare_gpu_trainer::device::open(&Selection::from_env())?;
        println!(
            "GPU: {} ({}, {:?}, driver {})",
            gpu.adapter.name, gpu.adapter.backend, gpu.adapter.device_type, gpu.adapter.driver
        );
        let step = match args.gpu_step {
            GpuStep::Measured => Step::Measured,
            GpuStep::Tiled => Step::Tiled,
            GpuStep::Fused => Step::Fused,
        };
        Some(GpuTrainer::new(gpu)?.with_step(step))
    } else {
        None
    };
    let uploaded = gpu.as_ref().map(|g| g.upload(&data)).transpose()?;
    let cores = std::thread::available_parallelism().map_or(1, core::num::NonZeroUsize::get);
    let mut every_core = CpuTrainer::new(cores)?;
    let every_core_name = format!("cpu-{cores}t");
    println!(
        "problem: {} rows x {} features, Adam, pos_weight, one epoch per timing, median of {} after one warm-up{}",
        args.rows,
        args.features,
        args.repeats,
        if args.dp_sgd { "; DP-SGD (each row a patient, q = batch/rows, C = 1, sigma = 1)" } else { "" }
    );
    println!("{:<20} {:>6} {:>8} {:>12} {:>14} {:>10}", "model", "batch", "trainer", "epoch ms", "samples/s", "vs cpu");
    for (name, spec) in &models {
        let initial = init_params(spec, 1);
        for &batch_size in &args.batch_sizes {
            let config = config(&data, batch_size);
            let mut cpu_rate = None;
            for trainer in &args.trainers {
                let dp = DpSgd {
                    sampling_rate: batch_size as f64 / args.rows as f64,
                    noise_multiplier: 1.0,
                    clip_norm: 1.0,
                };
                let key = NoiseKey::from_u64(7);
                let seconds = match (trainer, &gpu, &uploaded) {
                    (Bench::Cpu, _, _) => median_seconds(args.repeats, || {
                        let mut params = initial.clone();
                        if args.dp_sgd {
                            fedcare_core::train_private(spec, &mut params, &data, &config, &dp, key)?;
                        } else {
                            fedcare_core::train(spec, &mut params, &data, &config)?;
                        }
                        Ok(())
                    })?,
                    (Bench::CpuAll, _, _) => median_seconds(args.repeats, || {
                        let mut params = initial.clone();
                        if args.dp_sgd {
                            every_core.train_private(spec, &mut params, &data, &config, &dp, key)?;
                        } else {
                            every_core.train(spec, &mut params, &data, &config)?;
                        }
                        Ok(())
                    })?,
                    (Bench::Gpu, Some(gpu), Some(uploaded)) => median_seconds(args.repeats, || {
                        let mut params = initial.clone();
                        if args.dp_sgd {
                            gpu.train_private(spec, &mut params, uploaded, &data, &config, &dp, key)?;
                        } else {
                            gpu.train(spec, &mut params, uploaded, &config)?;
                        }
                        Ok(())
                    })?,
                    // Invariant: the GPU was opened above whenever it is asked for.
                    (Bench::Gpu, _, _) => anyhow::bail!("the GPU trainer is not open"),
                };
                let name_of = |trainer: &Bench| match trainer {
                    Bench::Cpu => "cpu",
                    Bench::CpuAll => every_core_name.as_str(),
                    Bench::Gpu => "gpu",
                };
                let rate = args.rows as f64 / seconds;
                let ratio = match (trainer, cpu_rate) {
                    (Bench::Cpu, _) => {
                        cpu_rate = Some(rate);
                        String::from("1.00x")
                    }
                    (_, Some(cpu)) => format!("{:.2}x", rate / cpu),
                    _ => String::from("-"),
                };
                println!(
                    "{name:<20} {batch_size:>6} {:>8} {:>12.2} {:>14.0} {ratio:>10}",
                    name_of(trainer),
                    seconds * 1e3,
                    rate
                );
                let measured = gpu
                    .as_ref()
                    .and_then(|g| g.measured_steps().into_iter().find(|m| m.spec == *spec && m.batch == batch_size));
                if let (Bench::Gpu, GpuStep::Measured, false) = (trainer, args.gpu_step, args.dp_sgd) {
                    match measured.and_then(|m| m.nanoseconds.map(|ns| (m.chosen, ns))) {
                        Some((chosen, (tiled, fused))) => println!(
                            "  step: {chosen:?} (a tiled step {:.1} us, a fused one {:.1} us on the GPU)",
                            tiled / 1e3,
                            fused / 1e3
                        ),
                        None => {
                            println!("  step: Tiled (not timed: past the fused candidates' size, or no timestamps)")
                        }
                    }
                }
                if let (true, Bench::Gpu, Some(gpu), Some(uploaded)) = (args.profile, trainer, &gpu, &uploaded) {
                    print_profile(&gpu.profile(spec, &initial, uploaded, &config, args.profile_steps)?);
                }
            }
        }
    }
    Ok(())
}
