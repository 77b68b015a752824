//! A federation whose hospitals train on the GPU (lavapipe on CI) ends where the same federation
//! on CPU hospitals ends, within float rounding: the GPU trainer is a drop-in for the CPU one.

use fedcare_node::simulate::{self, SimulateOptions};

fn options(out: &std::path::Path, trainer: &str) -> SimulateOptions {
    SimulateOptions {
        hospitals: 2,
        rounds: 2,
        rows: 500,
        hidden: vec![16],
        out: out.to_path_buf(),
        show_progress: false,
        trainer: trainer.to_owned(),
        ..SimulateOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gpu_hospitals_reach_the_cpu_hospitals_model() {
    let (cpu_out, gpu_out) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let cpu = simulate::run(&options(cpu_out.path(), "cpu"), None).await.unwrap();
    let gpu = simulate::run(&options(gpu_out.path(), "gpu"), None).await.unwrap();
    let (cpu, gpu) = (&cpu.outcome.global, &gpu.outcome.global);
    assert_eq!(cpu.len(), gpu.len());
    // Two rounds of one local epoch: GPU rounding (summation order, exp/log/pow) plus the codec's
    // 2^-21 steps, which may round a difference of one ulp either way.
    let worst = cpu.iter().zip(gpu).map(|(c, g)| (c - g).abs() / (1e-3 + c.abs())).fold(0.0f32, f32::max);
    assert!(worst < 1e-2, "the GPU federation's model differs from the CPU one by {worst} (relative)");
    assert_ne!(cpu, gpu, "the GPU really trained (bit-identical results would mean it did not)");
}
