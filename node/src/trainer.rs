//! The local trainer a hospital node uses: the `core` CPU trainer today; the GPU trainer
//! implements the same trait when it lands.

use anyhow::Result;
use fedcare_core::{Dataset, ModelSpec, TrainConfig, TrainReport};

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

/// The trainer named in a hospital's configuration.
pub fn by_name(name: &str) -> Result<Box<dyn Trainer>> {
    match name {
        "cpu" | "auto" => Ok(Box::new(CpuTrainer)),
        other => anyhow::bail!("unknown trainer {other:?}: this build has \"cpu\" (\"auto\" picks it)"),
    }
}
