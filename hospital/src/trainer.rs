//! The local trainer a hospital node uses, and how `--trainer cpu|gpu|auto` picks one.
//!
//! `cpu` is `fedcare-core`'s deterministic trainer, each batch's gradient (DP-SGD's too) in parts
//! on its own threads (`train_threads`; the same model whatever their number); `gpu` is `fedcare-gpu-trainer` on the
//! preferred adapter (`FEDCARE_ADAPTER`/`WGPU_BACKEND` override), a software adapter included;
//! `auto` takes the CPU when no hardware adapter exists, and otherwise the faster of the two on
//! the hospital's own model, batch and rows, measured at the first training
//! ([`crate::auto_trainer`]); it says which and why ([`resolve`], once per process). Both train the same model with the same settings and
//! batch order.

use fedcare_core::privacy::DpSgd;
use fedcare_core::privacy::noise::NoiseKey;
use std::sync::Arc;

use fedcare_core::{Dataset, ModelSpec, Parts, TrainConfig, TrainReport};
use fedcare_gpu_trainer::{GpuDataset, GpuTrainer, Selection, Step};

use crate::auto_trainer::AutoTrainer;
pub use crate::auto_trainer::ChoiceReport;
use crate::config::TrainerChoice;
use crate::error::Result;
use crate::trainer_error;

/// Trains a model's parameters in place on local data.
pub trait Trainer: Send + Sync {
    /// A short name for logs and tables.
    fn name(&self) -> &str;

    /// Trains `params` (laid out for `spec`) on `data`.
    fn train(
        &mut self,
        spec: &ModelSpec,
        params: &mut [f32],
        data: &Dataset,
        config: &TrainConfig,
    ) -> Result<TrainReport>;

    /// Trains `params` with DP-SGD under the secret `key` ([`fedcare_core::train_private`]; the
    /// GPU trainer's kernels give the same result up to float rounding).
    fn train_private(
        &mut self,
        spec: &ModelSpec,
        params: &mut [f32],
        data: &Dataset,
        config: &TrainConfig,
        dp: &DpSgd,
        key: NoiseKey,
    ) -> Result<TrainReport> {
        Ok(fedcare_core::train_private(spec, params, data, config, dp, key)?)
    }
}

/// `fedcare-core`'s deterministic CPU trainer, each batch's gradient computed in parts
/// ([`fedcare_core::PART_ROWS`] rows) on its own pool of threads and added in order: the trained
/// model is the same bit for bit whatever the number of threads. [`Default`] is one thread.
#[derive(Debug, Clone, Default)]
pub struct CpuTrainer {
    /// The pool of more than one thread (`None`: the caller's thread alone).
    pool: Option<Arc<rayon::ThreadPool>>,
    name: String,
}

impl CpuTrainer {
    /// A trainer on `threads` threads (at least 1).
    pub fn new(threads: usize) -> Result<Self> {
        if threads <= 1 {
            return Ok(Self::default());
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("fedcare-train-{i}"))
            .build()
            .map_err(|e| crate::error::FederationError::Task(format!("the CPU trainer's {threads} threads: {e}")))?;
        Ok(Self { pool: Some(Arc::new(pool)), name: format!("cpu ({threads} threads)") })
    }

    /// A trainer on one thread per core of this machine.
    pub fn on_every_core() -> Result<Self> {
        Self::new(std::thread::available_parallelism().map_or(1, core::num::NonZeroUsize::get))
    }
}

/// The least work of a batch (parameters × rows) the CPU trainer spreads over its threads.
const MIN_THREADED_WORK: usize = 1 << 20;

/// The parts of a batch's gradient on a pool's threads, their results in part order.
struct OnThreads<'a>(&'a rayon::ThreadPool);

impl Parts for OnThreads<'_> {
    fn run<S, T: Send>(
        &self,
        count: usize,
        init: impl Fn() -> S + Sync + Send,
        job: impl Fn(&mut S, usize) -> T + Sync + Send,
    ) -> Vec<T> {
        use rayon::iter::{IntoParallelIterator, ParallelIterator};
        self.0.install(|| (0..count).into_par_iter().map_init(init, job).collect())
    }
}

impl Trainer for CpuTrainer {
    fn name(&self) -> &str {
        if self.name.is_empty() { "cpu" } else { &self.name }
    }

    fn train(
        &mut self,
        spec: &ModelSpec,
        params: &mut [f32],
        data: &Dataset,
        config: &TrainConfig,
    ) -> Result<TrainReport> {
        // Threads pay off only when a batch is enough work (on 2 cores a logistic regression
        // at batch 256 ran slower on two threads than on one): below it the parts run on this
        // thread, with the same result.
        let work = params.len().saturating_mul(config.batch_size);
        Ok(match &self.pool {
            Some(pool) if work >= MIN_THREADED_WORK => {
                fedcare_core::train_in_parts(spec, params, data, config, &OnThreads(pool))?
            }
            _ => fedcare_core::train(spec, params, data, config)?,
        })
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
        // The work of a batch of the expected size, as for plain training.
        let expected_rows = dp.sampling_rate * data.rows() as f64;
        let work = params.len() as f64 * expected_rows;
        let pool = self.pool.as_ref().filter(|_| work >= MIN_THREADED_WORK as f64);
        Ok(match pool {
            Some(pool) => fedcare_core::train_private_in_parts(spec, params, data, config, dp, key, &OnThreads(pool))?,
            None => fedcare_core::train_private(spec, params, data, config, dp, key)?,
        })
    }
}

/// The GPU trainer, keeping the hospital's dataset on the device between rounds.
#[derive(Debug)]
pub struct GpuNodeTrainer {
    trainer: GpuTrainer,
    name: String,
    /// The uploaded dataset and the BLAKE3 hash of what was uploaded.
    resident: Option<(blake3::Hash, GpuDataset)>,
}

impl GpuNodeTrainer {
    /// A trainer on `trainer`'s device.
    pub fn new(trainer: GpuTrainer) -> Self {
        let name = match trainer.adapter() {
            Some(adapter) => format!("gpu ({}, {})", adapter.name, adapter.backend),
            None => "gpu".to_owned(),
        };
        Self { trainer, name, resident: None }
    }
}

fn fingerprint(data: &Dataset) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(data.width() as u64).to_le_bytes());
    hasher.update(bytemuck::cast_slice(data.features()));
    hasher.update(bytemuck::cast_slice(data.labels()));
    hasher.finalize()
}

impl Trainer for GpuNodeTrainer {
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
        self.with_resident(data, |trainer, uploaded| trainer.train(spec, params, uploaded, config))
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
        self.with_resident(data, |trainer, uploaded| {
            trainer.train_private(spec, params, uploaded, data, config, dp, key)
        })
    }
}

impl GpuNodeTrainer {
    /// Runs `work` on `data` uploaded to the device, reusing the upload while the data is the
    /// same.
    fn with_resident(
        &mut self,
        data: &Dataset,
        work: impl FnOnce(&GpuTrainer, &GpuDataset) -> fedcare_gpu_trainer::Result<TrainReport>,
    ) -> Result<TrainReport> {
        let hash = fingerprint(data);
        let uploaded = match self.resident.take() {
            Some((resident, uploaded)) if resident == hash => uploaded,
            _ => self.trainer.upload(data).map_err(trainer_error)?,
        };
        let report = work(&self.trainer, &uploaded);
        self.resident = Some((hash, uploaded));
        report.map_err(trainer_error)
    }
}

/// The trainer a choice resolves to on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// The CPU trainer.
    Cpu,
    /// The GPU trainer on the preferred adapter.
    Gpu,
    /// The faster of the two on the hospital's own work, measured at the first training
    /// ([`AutoTrainer`]).
    Measured,
}

/// What `choice` means on this machine, and why (one line for the user). `auto` lists the
/// adapters; `gpu` fails here when there is none.
pub fn resolve(choice: TrainerChoice, selection: &Selection) -> Result<(Resolved, String)> {
    if choice == TrainerChoice::Cpu {
        // No adapter is looked at: a CPU hospital never touches a GPU driver.
        return Ok((Resolved::Cpu, "cpu: as configured".to_owned()));
    }
    let adapters = fedcare_gpu_trainer::device::list_adapters(selection);
    let preferred = fedcare_gpu_trainer::device::preferred(&adapters, selection.adapter.as_deref(), selection.backends);
    match choice {
        TrainerChoice::Cpu => Ok((Resolved::Cpu, "cpu: as configured".to_owned())),
        TrainerChoice::Gpu => {
            let index = preferred.map_err(trainer_error)?;
            Ok((Resolved::Gpu, format!("gpu ({}): as configured", adapters[index])))
        }
        TrainerChoice::Auto => match preferred.ok().map(|index| &adapters[index]).filter(|a| a.is_hardware()) {
            Some(adapter) => Ok((
                Resolved::Measured,
                format!(
                    "auto found a hardware GPU ({adapter}): the faster of it and the CPU on the federation's model \
                     and batch trains, measured at the first training"
                ),
            )),
            None => {
                let found = if adapters.is_empty() {
                    "no adapters".to_owned()
                } else {
                    adapters.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                };
                Ok((Resolved::Cpu, format!("cpu: auto found no hardware GPU ({found})")))
            }
        },
    }
}

impl Resolved {
    /// What builds trainers of this kind, the GPU (when it needs one) opened once for all of them.
    pub fn factory(self, selection: &Selection) -> Result<TrainerFactory> {
        let gpu = match self {
            Self::Cpu => None,
            Self::Gpu | Self::Measured => {
                let gpu = fedcare_gpu_trainer::device::open(selection).map_err(trainer_error)?;
                Some(GpuTrainer::new(gpu).map_err(trainer_error)?.with_step(Step::Measured))
            }
        };
        Ok(TrainerFactory { resolved: self, gpu })
    }

    /// One trainer of this kind ([`TrainerFactory::build`]).
    pub fn build(
        self,
        selection: &Selection,
        threads: usize,
        report: Option<ChoiceReport>,
    ) -> Result<Box<dyn Trainer>> {
        self.factory(selection)?.build(threads, report)
    }
}

/// Builds the trainers of one kind: every GPU one on the one device opened, sharing its queue and
/// pipelines (the hospitals of a simulation on one GPU queue their work on it).
#[derive(Debug)]
pub struct TrainerFactory {
    resolved: Resolved,
    gpu: Option<GpuTrainer>,
}

impl TrainerFactory {
    /// A trainer (each hospital has its own: the GPU one keeps its data resident); the CPU one on
    /// `threads` threads; a measured one says what it measured to `report`.
    pub fn build(&self, threads: usize, report: Option<ChoiceReport>) -> Result<Box<dyn Trainer>> {
        let gpu = || match &self.gpu {
            Some(gpu) => Ok(GpuNodeTrainer::new(gpu.clone())),
            // Invariant: `Resolved::factory` opens the GPU for the kinds that use one.
            None => Err(crate::error::FederationError::Task("no GPU was opened for this trainer".to_owned())),
        };
        Ok(match self.resolved {
            Resolved::Cpu => Box::new(CpuTrainer::new(threads)?),
            Resolved::Gpu => Box::new(gpu()?),
            Resolved::Measured => Box::new(AutoTrainer::new(CpuTrainer::new(threads)?, gpu()?, report)),
        })
    }
}

/// The trainer `choice` selects on this machine (the CPU one on `threads` threads), and why; an
/// `auto` that measures says what it found to `report` at the first training.
pub fn choose(
    choice: TrainerChoice,
    selection: &Selection,
    threads: usize,
    report: Option<ChoiceReport>,
) -> Result<(Box<dyn Trainer>, String)> {
    let (resolved, why) = resolve(choice, selection)?;
    Ok((resolved.build(selection, threads, report)?, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing() -> Selection {
        Selection { backends: fedcare_gpu_trainer::wgpu::Backends::empty(), adapter: None }
    }

    #[test]
    fn without_an_adapter_gpu_is_a_clear_error_and_auto_falls_back_to_the_cpu() {
        let error = choose(TrainerChoice::Gpu, &nothing(), 1, None).err().expect("no adapter");
        assert!(error.trainer_error::<fedcare_gpu_trainer::GpuError>().is_some(), "{error}");
        assert!(error.to_string().contains("no GPU adapter found"), "{error}");
        let (trainer, why) = choose(TrainerChoice::Auto, &nothing(), 1, None).unwrap();
        assert_eq!(trainer.name(), "cpu");
        assert!(why.contains("no hardware GPU") && why.contains("no adapters"), "{why}");
        let (trainer, why) = choose(TrainerChoice::Cpu, &nothing(), 3, None).unwrap();
        assert_eq!((trainer.name(), why.as_str()), ("cpu (3 threads)", "cpu: as configured"));
    }

    #[test]
    fn the_cpu_trainer_gives_the_same_model_on_one_thread_and_on_four_with_dp_sgd_too() {
        // Batches of 300 rows: five parts, the last partial; an epoch's last batch is smaller.
        // The model is enough work a batch (about 4,000 parameters × 300 rows) to be threaded.
        let data = fedcare_data::plain::synthetic_hospital(0, 2, 1000, 5);
        let spec = ModelSpec::mlp(data.width(), &[128, 16]).unwrap();
        assert!(spec.param_count() * 300 >= MIN_THREADED_WORK, "{} parameters", spec.param_count());
        let config = TrainConfig { epochs: 2, batch_size: 300, prox_mu: 0.01, l2: 1e-4, ..TrainConfig::default() };
        let start = fedcare_core::rng::init_params(&spec, 2);
        let trained = |train: &dyn Fn(&mut Vec<f32>) -> TrainReport| {
            let mut params = start.clone();
            let report = train(&mut params);
            (params, report.epoch_losses)
        };
        let reference = trained(&|params| fedcare_core::train(&spec, params, &data, &config).unwrap());
        assert_ne!(reference.0, start, "it trained");
        // DP-SGD over about 300 rows a step, in parts of whole patients.
        let dp = DpSgd { sampling_rate: 0.3, noise_multiplier: 1.0, clip_norm: 1.0 };
        let key = NoiseKey::from_u64(5);
        let private_reference =
            trained(&|params| fedcare_core::train_private(&spec, params, &data, &config, &dp, key).unwrap());
        assert_ne!(private_reference.0, start, "it trained");
        for threads in [1, 2, 4] {
            let mut trainer = CpuTrainer::new(threads).unwrap();
            let through_the_trainer = trained(&|params| {
                let mut trainer = trainer.clone();
                trainer.train(&spec, params, &data, &config).unwrap()
            });
            assert!(through_the_trainer == reference, "{threads} threads: not the same model bit for bit");
            let privately = trained(&|params| {
                let mut trainer = trainer.clone();
                trainer.train_private(&spec, params, &data, &config, &dp, key).unwrap()
            });
            assert!(privately == private_reference, "{threads} threads: not the same DP-SGD model bit for bit");
            if let Some(pool) = trainer.pool.take() {
                let on_threads = trained(&|params| {
                    fedcare_core::train_in_parts(&spec, params, &data, &config, &OnThreads(&pool)).unwrap()
                });
                assert!(on_threads == reference, "{threads} threads: not the same model bit for bit");
            }
        }
    }

    #[test]
    fn the_gpu_trainer_keeps_the_dataset_resident_and_matches_the_cpu() {
        // Runs on whatever adapter this machine has (lavapipe on CI); skips visibly without one.
        let Some(gpu) = fedcare_gpu_trainer::testing::gpu_or_skip("the_gpu_trainer_keeps_the_dataset_resident") else {
            return;
        };
        let mut trainer = GpuNodeTrainer::new(GpuTrainer::new(gpu).unwrap());
        let data = fedcare_data::plain::synthetic_hospital(0, 2, 400, 3);
        let spec = ModelSpec::mlp(data.width(), &[6]).unwrap();
        let config = TrainConfig { epochs: 2, batch_size: 32, ..TrainConfig::default() };
        let start = fedcare_core::rng::init_params(&spec, 1);
        let mut on_gpu = start.clone();
        trainer.train(&spec, &mut on_gpu, &data, &config).unwrap();
        let first = trainer.resident.as_ref().map(|(hash, _)| *hash);
        trainer.train(&spec, &mut on_gpu.clone(), &data, &config).unwrap();
        assert_eq!(trainer.resident.as_ref().map(|(hash, _)| *hash), first, "same data: no new upload");
        let mut on_cpu = start.clone();
        CpuTrainer::default().train(&spec, &mut on_cpu, &data, &config).unwrap();
        for (g, c) in on_gpu.iter().zip(&on_cpu) {
            assert!((g - c).abs() <= 1e-4 + 1e-3 * c.abs(), "gpu {g} vs cpu {c}");
        }
        // DP-SGD runs on the GPU too, on the resident data, with the CPU's result.
        let dp = DpSgd { sampling_rate: 0.1, noise_multiplier: 1.0, clip_norm: 1.0 };
        let key = NoiseKey::from_u64(3);
        let (mut on_gpu, mut on_cpu) = (start.clone(), start);
        trainer.train_private(&spec, &mut on_gpu, &data, &config, &dp, key).unwrap();
        assert_eq!(trainer.resident.as_ref().map(|(hash, _)| *hash), first, "same data: no new upload");
        CpuTrainer::default().train_private(&spec, &mut on_cpu, &data, &config, &dp, key).unwrap();
        for (g, c) in on_gpu.iter().zip(&on_cpu) {
            assert!((g - c).abs() <= 1e-4 + 1e-3 * c.abs(), "DP-SGD: gpu {g} vs cpu {c}");
        }
    }
}
