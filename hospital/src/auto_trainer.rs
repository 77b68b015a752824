//! `trainer = "auto"` on a machine with a hardware GPU: the CPU trainer on every core against the
//! GPU trainer, timed on the hospital's own model, batch and rows at the first training, the
//! faster kept.
//!
//! The measurement trains a copy of the parameters for one epoch over the first
//! [`MEASURED_BATCHES`] batches of the hospital's rows on each trainer: once to warm up
//! (pipelines, the upload), then [`MEASURED_RUNS`] timed runs, the fastest counting. It is
//! repeated when the model, the batch size or DP-SGD changes. What it found is said in one line
//! (the `trainer:` line of `fedcare join`). Both trainers give the same model up to float rounding
//! (the conformance suite), so the choice changes the speed only.

use std::sync::Arc;
use std::time::Instant;

use fedcare_core::privacy::DpSgd;
use fedcare_core::privacy::noise::NoiseKey;
use fedcare_core::{Dataset, ModelSpec, TrainConfig, TrainReport};

use crate::error::Result;
use crate::trainer::{CpuTrainer, GpuNodeTrainer, Trainer};

/// Batches of the hospital's rows each timed run trains.
pub const MEASURED_BATCHES: usize = 8;
/// Timed runs per trainer, after one to warm up.
pub const MEASURED_RUNS: usize = 2;

/// Where the measurement's line goes (`fedcare join` prints it as its `trainer:` line).
pub type ChoiceReport = Arc<dyn Fn(&str) + Send + Sync>;

/// What a measurement decided, for one model, batch size and kind of training.
#[derive(Debug, Clone, PartialEq)]
struct Choice {
    spec: ModelSpec,
    batch_size: usize,
    private: bool,
    gpu: bool,
}

/// The faster of the CPU and the GPU trainer on the hospital's own work.
pub struct AutoTrainer {
    cpu: CpuTrainer,
    gpu: GpuNodeTrainer,
    choice: Option<Choice>,
    report: Option<ChoiceReport>,
    name: String,
}

impl core::fmt::Debug for AutoTrainer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AutoTrainer").field("name", &self.name).field("choice", &self.choice).finish_non_exhaustive()
    }
}

/// Samples a second `trainer` trains: `run` (one epoch of `rows` rows) once untimed, then the
/// fastest of [`MEASURED_RUNS`].
fn samples_per_second(rows: usize, mut run: impl FnMut() -> Result<TrainReport>) -> Result<f64> {
    run()?;
    let mut fastest = f64::INFINITY;
    for _ in 0..MEASURED_RUNS {
        let start = Instant::now();
        run()?;
        fastest = fastest.min(start.elapsed().as_secs_f64());
    }
    Ok(rows as f64 / fastest.max(1e-9))
}

impl AutoTrainer {
    /// Chooses between `cpu` and `gpu` at the first training; `report` gets the line saying what
    /// was measured and chosen.
    pub fn new(cpu: CpuTrainer, gpu: GpuNodeTrainer, report: Option<ChoiceReport>) -> Self {
        let name = format!("auto ({} or {}, measured at the first training)", gpu.name(), cpu.name());
        Self { cpu, gpu, choice: None, report, name }
    }

    /// The trainer to use for `spec` at `config`'s batch (DP-SGD's when `dp` is given), measuring
    /// both when this is new.
    fn chosen(
        &mut self,
        spec: &ModelSpec,
        params: &[f32],
        data: &Dataset,
        config: &TrainConfig,
        dp: Option<(&DpSgd, NoiseKey)>,
    ) -> &mut dyn Trainer {
        let wanted = |c: &Choice| c.spec == *spec && c.batch_size == config.batch_size && c.private == dp.is_some();
        if !self.choice.as_ref().is_some_and(wanted) {
            let rows: Vec<usize> = (0..data.rows().min(MEASURED_BATCHES * config.batch_size.max(1))).collect();
            let sample = data.select(&rows);
            let once = TrainConfig { epochs: 1, ..*config };
            let measure = |trainer: &mut dyn Trainer| {
                samples_per_second(sample.rows(), || {
                    let mut copy = params.to_vec();
                    match dp {
                        Some((dp, key)) => trainer.train_private(spec, &mut copy, &sample, &once, dp, key),
                        None => trainer.train(spec, &mut copy, &sample, &once),
                    }
                })
            };
            let cpu = measure(&mut self.cpu);
            let gpu = measure(&mut self.gpu);
            let what = format!(
                "{} at batch {}{}",
                spec.architecture(),
                config.batch_size,
                if dp.is_some() { " with DP-SGD" } else { "" }
            );
            let (use_gpu, line) = match (cpu, gpu) {
                (Ok(cpu_rate), Ok(gpu_rate)) => {
                    let use_gpu = gpu_rate > cpu_rate;
                    let winner = if use_gpu { self.gpu.name() } else { self.cpu.name() };
                    let line = format!(
                        "{winner} (auto measured {what}: gpu {} samples/s, cpu {} samples/s)",
                        rate(gpu_rate),
                        rate(cpu_rate)
                    );
                    (use_gpu, line)
                }
                (Ok(cpu_rate), Err(error)) => (
                    false,
                    format!(
                        "{} (auto measured {what}: the GPU failed ({error}), cpu {} samples/s)",
                        self.cpu.name(),
                        rate(cpu_rate)
                    ),
                ),
                // The CPU failing is the data's or the model's fault: the training says so.
                (Err(error), _) => (false, format!("{} (auto: the measurement failed: {error})", self.cpu.name())),
            };
            tracing::info!(trainer = %line, "auto chose the trainer");
            if let Some(report) = &self.report {
                report(&line);
            }
            self.name = line;
            self.choice =
                Some(Choice { spec: spec.clone(), batch_size: config.batch_size, private: dp.is_some(), gpu: use_gpu });
        }
        match self.choice.as_ref().is_some_and(|c| c.gpu) {
            true => &mut self.gpu,
            false => &mut self.cpu,
        }
    }
}

/// A rate with a unit, as `bench-train` prints them.
fn rate(samples_per_second: f64) -> String {
    if samples_per_second >= 1e6 {
        format!("{:.2}M", samples_per_second / 1e6)
    } else if samples_per_second >= 1e4 {
        format!("{:.0}k", samples_per_second / 1e3)
    } else {
        format!("{samples_per_second:.0}")
    }
}

impl Trainer for AutoTrainer {
    fn name(&self) -> &str {
        &self.name
    }

    fn train(
        &mut self,
        spec: &ModelSpec,
        params: &mut [f32],
        data: &Dataset,
        config: &TrainConfig,
    ) -> Result<TrainReport> {
        self.chosen(spec, params, data, config, None).train(spec, params, data, config)
    }

    fn train_private(
        &mut self,
        spec: &ModelSpec,
        params: &mut [f32],
        data: &Dataset,
        config: &TrainConfig,
        dp: &DpSgd,
        key: NoiseKey,
    ) -> Result<TrainReport> {
        self.chosen(spec, params, data, config, Some((dp, key))).train_private(spec, params, data, config, dp, key)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    #[test]
    fn rates_are_written_with_their_unit() {
        assert_eq!([super::rate(2_345_678.0), super::rate(412_300.0), super::rate(2_188.4)], ["2.35M", "412k", "2188"]);
    }

    use fedcare_gpu_trainer::GpuTrainer;

    use super::*;

    #[test]
    fn auto_measures_both_trainers_on_the_hospitals_work_and_trains_with_the_faster() {
        // Runs on whatever adapter this machine has (lavapipe on CI); skips visibly without one.
        let Some(gpu) = fedcare_gpu_trainer::testing::gpu_or_skip("auto_measures_both_trainers") else { return };
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let said = Arc::clone(&lines);
        let report: ChoiceReport = Arc::new(move |line: &str| said.lock().unwrap().push(line.to_owned()));
        let gpu = GpuNodeTrainer::new(GpuTrainer::new(gpu).unwrap());
        let mut auto = AutoTrainer::new(CpuTrainer::new(2).unwrap(), gpu, Some(report));
        assert!(auto.name().starts_with("auto ("), "{}", auto.name());

        let data = fedcare_data::plain::synthetic_hospital(0, 2, 600, 4);
        let spec = ModelSpec::mlp(data.width(), &[16]).unwrap();
        let config = TrainConfig { epochs: 2, batch_size: 32, ..TrainConfig::default() };
        let start = fedcare_core::rng::init_params(&spec, 1);
        let mut params = start.clone();
        auto.train(&spec, &mut params, &data, &config).unwrap();
        let line = lines.lock().unwrap().last().cloned().expect("the choice is said");
        let measured = format!("auto measured {} at batch 32: gpu ", spec.architecture());
        assert!(
            line.contains(&measured) && line.contains(" samples/s, cpu ") && line.ends_with(" samples/s)"),
            "{line}"
        );
        assert_eq!(auto.name(), line);

        // The measurement trained copies: the model is the chosen trainer's own.
        let mut alone = start.clone();
        if line.starts_with("cpu") {
            CpuTrainer::new(2).unwrap().train(&spec, &mut alone, &data, &config).unwrap();
            assert!(params == alone, "the CPU trainer's model bit for bit");
        } else {
            assert!(line.starts_with("gpu"), "{line}");
            CpuTrainer::default().train(&spec, &mut alone, &data, &config).unwrap();
            for (g, c) in params.iter().zip(&alone) {
                assert!((g - c).abs() <= 1e-4 + 1e-3 * c.abs(), "gpu {g} vs cpu {c}");
            }
        }

        // The same work again is not measured again; another batch size or DP-SGD is.
        auto.train(&spec, &mut params.clone(), &data, &config).unwrap();
        assert_eq!(lines.lock().unwrap().len(), 1);
        auto.train(&spec, &mut params.clone(), &data, &TrainConfig { batch_size: 64, ..config }).unwrap();
        let dp = DpSgd { sampling_rate: 0.1, noise_multiplier: 1.0, clip_norm: 1.0 };
        auto.train_private(&spec, &mut params.clone(), &data, &config, &dp, NoiseKey::from_u64(1)).unwrap();
        let lines = lines.lock().unwrap();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[1].contains("at batch 64:") && lines[2].contains("at batch 32 with DP-SGD:"), "{lines:?}");
    }
}
