//! A federation whose hospitals train on the GPU (lavapipe on CI) ends where the same federation
//! on CPU hospitals ends, within float rounding: the GPU trainer is a drop-in for the CPU one.
//! Skipped, visibly, on a machine without a GPU adapter (unless `FEDCARE_REQUIRE_GPU=1`).

use fedcare_federation::config::TrainerChoice;
use fedcare_federation::simulation::{self, SimulateOptions, Transport};

fn options(out: &std::path::Path, trainer: TrainerChoice) -> SimulateOptions {
    SimulateOptions {
        hospitals: 2,
        rounds: 2,
        rows: 500,
        hidden: vec![16],
        out: out.to_path_buf(),
        trainer,
        transport: Transport::InProcess,
        ..SimulateOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gpu_hospitals_reach_the_cpu_hospitals_model() {
    if fedcare_gpu_trainer::testing::gpu_or_skip("gpu_hospitals_reach_the_cpu_hospitals_model").is_none() {
        return;
    }
    let (cpu_out, gpu_out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cpu = simulation::run(&options(cpu_out.path(), TrainerChoice::Cpu), None, None).await.unwrap();
    let gpu = simulation::run(&options(gpu_out.path(), TrainerChoice::Gpu), None, None).await.unwrap();
    // What the hospitals trained: the mean local training loss of every round.
    let losses = |report: &simulation::SimulationReport| -> Vec<f64> {
        report.outcome.records.iter().filter_map(|r| r.train_loss).collect()
    };
    let (cpu_losses, gpu_losses) = (losses(&cpu), losses(&gpu));
    assert_eq!(cpu_losses.len(), 2);
    for (c, g) in cpu_losses.iter().zip(&gpu_losses) {
        assert!((c - g).abs() <= 1e-3 * c.abs(), "training losses: CPU {cpu_losses:?}, GPU {gpu_losses:?}");
    }
    assert_ne!(cpu_losses, gpu_losses, "the GPU really trained (bit-identical losses would mean it did not)");
    // The model handed out (the best evaluated one, which on 2 × 500 rows may be the initial one).
    let (cpu, gpu) = (&cpu.outcome.global, &gpu.outcome.global);
    assert_eq!(cpu.len(), gpu.len());
    // Two rounds of one local epoch: GPU rounding (summation order, exp/log/pow) plus the codec's
    // 2^-21 steps, which may round a difference of one ulp either way.
    let worst = cpu.iter().zip(gpu).map(|(c, g)| (c - g).abs() / (1e-3 + c.abs())).fold(0.0f32, f32::max);
    assert!(worst < 1e-2, "the GPU federation's model differs from the CPU one by {worst} (relative)");
}
