//! The local trainer a hospital node uses, and how `--trainer cpu|gpu|auto` picks one.
//!
//! `cpu` is `fedcare-core`'s deterministic trainer; `gpu` is `fedcare-gpu-trainer` on the
//! preferred adapter (`FEDCARE_ADAPTER`/`WGPU_BACKEND` override), a software adapter included;
//! `auto` takes the GPU only when a hardware adapter exists, else the CPU, and says which and
//! why ([`resolve`], once per process). Both train the same model with the same settings and
//! batch order.

use fedcare_core::privacy::DpSgd;
use fedcare_core::privacy::noise::NoiseKey;
use fedcare_core::{Dataset, ModelSpec, TrainConfig, TrainReport};
use fedcare_gpu_trainer::{GpuDataset, GpuTrainer, Selection};

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

/// `fedcare-core`'s deterministic CPU trainer.
#[derive(Debug, Default, Clone, Copy)]
pub struct CpuTrainer;

impl Trainer for CpuTrainer {
    fn name(&self) -> &str {
        "cpu"
    }

    fn train(
        &mut self,
        spec: &ModelSpec,
        params: &mut [f32],
        data: &Dataset,
        config: &TrainConfig,
    ) -> Result<TrainReport> {
        Ok(fedcare_core::train(spec, params, data, config)?)
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
            Some(adapter) => Ok((Resolved::Gpu, format!("gpu ({adapter}): auto found a hardware GPU"))),
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
    /// A trainer of this kind (each hospital has its own: the GPU one keeps its data resident).
    pub fn build(self, selection: &Selection) -> Result<Box<dyn Trainer>> {
        match self {
            Self::Cpu => Ok(Box::new(CpuTrainer)),
            Self::Gpu => {
                let gpu = fedcare_gpu_trainer::device::open(selection).map_err(trainer_error)?;
                Ok(Box::new(GpuNodeTrainer::new(GpuTrainer::new(gpu).map_err(trainer_error)?)))
            }
        }
    }
}

/// The trainer `choice` selects on this machine, and why.
pub fn choose(choice: TrainerChoice, selection: &Selection) -> Result<(Box<dyn Trainer>, String)> {
    let (resolved, why) = resolve(choice, selection)?;
    Ok((resolved.build(selection)?, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nothing() -> Selection {
        Selection { backends: fedcare_gpu_trainer::wgpu::Backends::empty(), adapter: None }
    }

    #[test]
    fn without_an_adapter_gpu_is_a_clear_error_and_auto_falls_back_to_the_cpu() {
        let error = choose(TrainerChoice::Gpu, &nothing()).err().expect("no adapter");
        assert!(error.trainer_error::<fedcare_gpu_trainer::GpuError>().is_some(), "{error}");
        assert!(error.to_string().contains("no GPU adapter found"), "{error}");
        let (trainer, why) = choose(TrainerChoice::Auto, &nothing()).unwrap();
        assert_eq!(trainer.name(), "cpu");
        assert!(why.contains("no hardware GPU") && why.contains("no adapters"), "{why}");
        let (trainer, why) = choose(TrainerChoice::Cpu, &nothing()).unwrap();
        assert_eq!((trainer.name(), why.as_str()), ("cpu", "cpu: as configured"));
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
        CpuTrainer.train(&spec, &mut on_cpu, &data, &config).unwrap();
        for (g, c) in on_gpu.iter().zip(&on_cpu) {
            assert!((g - c).abs() <= 1e-4 + 1e-3 * c.abs(), "gpu {g} vs cpu {c}");
        }
        // DP-SGD runs on the GPU too, on the resident data, with the CPU's result.
        let dp = DpSgd { sampling_rate: 0.1, noise_multiplier: 1.0, clip_norm: 1.0 };
        let key = NoiseKey::from_u64(3);
        let (mut on_gpu, mut on_cpu) = (start.clone(), start);
        trainer.train_private(&spec, &mut on_gpu, &data, &config, &dp, key).unwrap();
        assert_eq!(trainer.resident.as_ref().map(|(hash, _)| *hash), first, "same data: no new upload");
        CpuTrainer.train_private(&spec, &mut on_cpu, &data, &config, &dp, key).unwrap();
        for (g, c) in on_gpu.iter().zip(&on_cpu) {
            assert!((g - c).abs() <= 1e-4 + 1e-3 * c.abs(), "DP-SGD: gpu {g} vs cpu {c}");
        }
    }
}
