//! The local training loop: epochs of shuffled mini-batches, deterministic for a given seed.
//!
//! Each epoch visits every row once in the order [`BatchOrder`] gives for the seed, in batches
//! of `batch_size` rows (the last one may be smaller). Each step: forward, mean
//! `BCEWithLogits(pos_weight)` loss, backward, L2 and FedProx gradients, optimizer update.
//! The FedProx anchor is the parameter vector training started from (the round's global model).
//!
//! [`train_private`] is DP-SGD ([`crate::privacy`]): each step samples patients with probability
//! `q` instead of taking the next batch, clips each sampled patient's gradient and adds Gaussian
//! noise; the penalties and the optimizer are the same.

use alloc::vec;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::loss::{add_l2, add_proximal, bce_with_logits_batch, bce_with_logits_sum};
use crate::nn::Network;
use crate::optim::{Optimizer, OptimizerConfig};
use crate::privacy::DpSgd;
use crate::privacy::batches::{PatientBatch, PatientBatches};
use crate::privacy::noise::{NoiseKey, add_noise};
use crate::rng::BatchOrder;
use crate::spec::ModelSpec;
use crate::{Error, Result};

/// Hyperparameters of local training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the local data.
    pub epochs: u32,
    /// Rows per mini-batch (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Optimizer and its hyperparameters.
    pub optimizer: OptimizerConfig,
    /// Weight of positive rows in the loss (`n_neg / n_pos` balances the classes).
    pub pos_weight: f32,
    /// L2 penalty `λ` on the weights (not the biases).
    pub l2: f32,
    /// FedProx proximal coefficient `μ` (0 disables it).
    pub prox_mu: f32,
    /// Seed of the batch order.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 256,
            optimizer: OptimizerConfig::adam(1e-3),
            pos_weight: 1.0,
            l2: 0.0,
            prox_mu: 0.0,
            seed: 0,
        }
    }
}

impl TrainConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        self.optimizer.validate()?;
        let check =
            |name, ok: bool, value: f64| if ok { Ok(()) } else { Err(Error::InvalidHyperparameter { name, value }) };
        check("epochs", self.epochs > 0, self.epochs.into())?;
        check("batch_size", self.batch_size > 0, self.batch_size as f64)?;
        check("pos_weight", self.pos_weight.is_finite() && self.pos_weight > 0.0, self.pos_weight.into())?;
        check("l2", self.l2.is_finite() && self.l2 >= 0.0, self.l2.into())?;
        check("prox_mu", self.prox_mu.is_finite() && self.prox_mu >= 0.0, self.prox_mu.into())
    }
}

/// What a training run did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    /// Mean data loss (BCE, penalties excluded) over each epoch's rows, before each step's update.
    pub epoch_losses: Vec<f32>,
    /// Optimizer steps taken.
    pub steps: u64,
}

/// Trains `params` (laid out for `spec`) on `data` in place.
///
/// Refuses a parameter vector or dataset that does not fit `spec`, an empty dataset, bad
/// hyperparameters, and stops with [`Error::Diverged`] as soon as a batch loss is not finite.
pub fn train(spec: &ModelSpec, params: &mut [f32], data: &Dataset, config: &TrainConfig) -> Result<TrainReport> {
    check_inputs(spec, params, data, config)?;
    let width = data.width();
    let anchor = if config.prox_mu > 0.0 { params.to_vec() } else { Vec::new() };
    let mut network = Network::new(spec);
    let mut optimizer = Optimizer::new(config.optimizer, params.len())?;
    let mut order = BatchOrder::new(config.seed, data.rows());
    let mut grad = vec![0.0f32; params.len()];
    let mut batch_x = Vec::with_capacity(config.batch_size * width);
    let mut batch_y = Vec::with_capacity(config.batch_size);
    let mut grad_logits = vec![0.0f32; config.batch_size];
    let mut report = TrainReport { epoch_losses: Vec::with_capacity(config.epochs as usize), steps: 0 };

    for epoch in 0..config.epochs {
        let mut epoch_loss = 0.0f64;
        for (step, rows) in order.next_epoch().chunks(config.batch_size).enumerate() {
            batch_x.clear();
            batch_y.clear();
            for &row in rows {
                batch_x.extend_from_slice(data.row(row as usize));
                batch_y.push(data.labels()[row as usize]);
            }
            let n = rows.len();
            let logits = network.forward(params, &batch_x, n)?;
            let loss = bce_with_logits_batch(logits, &batch_y, config.pos_weight, &mut grad_logits[..n]);
            if !loss.is_finite() {
                return Err(Error::Diverged { epoch, step });
            }
            epoch_loss += f64::from(loss) * n as f64;
            network.backward(params, &batch_x, n, &grad_logits[..n], &mut grad)?;
            add_l2(spec, params, config.l2, &mut grad);
            if config.prox_mu > 0.0 {
                add_proximal(params, &anchor, config.prox_mu, &mut grad);
            }
            optimizer.step(params, &grad);
            report.steps += 1;
        }
        report.epoch_losses.push((epoch_loss / data.rows() as f64) as f32);
    }
    Ok(report)
}

/// Refuses bad hyperparameters, parameters or data that do not fit `spec`, and an empty dataset.
fn check_inputs(spec: &ModelSpec, params: &[f32], data: &Dataset, config: &TrainConfig) -> Result<()> {
    config.validate()?;
    spec.check_params(params)?;
    if data.width() != spec.input_width() {
        return Err(Error::FeatureWidth { expected: spec.input_width(), got: data.width() });
    }
    if data.rows() == 0 {
        return Err(Error::EmptyDataset);
    }
    Ok(())
}

/// Trains `params` on `data` with DP-SGD ([`crate::privacy`]): `epochs × dp.steps_per_epoch()`
/// steps, each over the patients (the dataset's groups) that `key` samples with probability
/// `dp.sampling_rate` ([`PatientBatches`]), each patient's gradient clipped to `dp.clip_norm`,
/// Gaussian noise of standard deviation `dp.noise_multiplier · dp.clip_norm` added to their sum,
/// divided by the expected number of patients. `config.batch_size` and `config.seed` are not
/// used: the key decides the batches, and must be secret. The same key gives the same bits.
///
/// The report's losses are over the rows each epoch's steps sampled.
pub fn train_private(
    spec: &ModelSpec,
    params: &mut [f32],
    data: &Dataset,
    config: &TrainConfig,
    dp: &DpSgd,
    key: NoiseKey,
) -> Result<TrainReport> {
    check_inputs(spec, params, data, config)?;
    dp.validate()?;
    let mut batches = PatientBatches::new(data, dp.sampling_rate, key);
    let expected = dp.expected_patients(batches.patients());
    let noise_scale = dp.noise_multiplier * dp.clip_norm / expected;
    let anchor = if config.prox_mu > 0.0 { params.to_vec() } else { Vec::new() };
    let mut network = Network::new(spec);
    let mut optimizer = Optimizer::new(config.optimizer, params.len())?;
    let mut grad = vec![0.0f32; params.len()];
    let mut batch = PatientBatch::default();
    let mut scratch = ClipScratch::default();
    let mut report = TrainReport { epoch_losses: Vec::with_capacity(config.epochs as usize), steps: 0 };
    let mut counter = 0u32;

    for epoch in 0..config.epochs {
        let (mut epoch_loss, mut epoch_rows) = (0.0f64, 0usize);
        for step in 0..dp.steps_per_epoch() {
            batches.fill(counter, &mut batch);
            if batch.rows.is_empty() {
                grad.fill(0.0);
            } else {
                let loss = clipped_sum(
                    &mut network,
                    params,
                    data,
                    &batch,
                    config.pos_weight,
                    dp.clip_norm,
                    1.0 / expected,
                    &mut scratch,
                    &mut grad,
                )?;
                if !loss.is_finite() {
                    return Err(Error::Diverged { epoch, step: step as usize });
                }
                epoch_loss += f64::from(loss);
                epoch_rows += batch.rows.len();
            }
            add_noise(key, counter, noise_scale, &mut grad);
            add_l2(spec, params, config.l2, &mut grad);
            if config.prox_mu > 0.0 {
                add_proximal(params, &anchor, config.prox_mu, &mut grad);
            }
            optimizer.step(params, &grad);
            report.steps += 1;
            counter = counter.wrapping_add(1);
        }
        report.epoch_losses.push(if epoch_rows == 0 { 0.0 } else { (epoch_loss / epoch_rows as f64) as f32 });
    }
    Ok(report)
}

/// The sum over the patients of `batch` of each one's loss gradient (the sum over their rows,
/// with `pos_weight`) clipped to norm `clip_norm`, penalties excluded, no noise: the CPU
/// reference of the GPU trainer's clipping kernels. Also returns the batch's loss sum. Refuses
/// parameters or data that do not fit `spec` and a batch naming rows `data` does not have.
pub fn clipped_gradient(
    spec: &ModelSpec,
    params: &[f32],
    data: &Dataset,
    batch: &PatientBatch,
    pos_weight: f32,
    clip_norm: f32,
) -> Result<(f32, Vec<f32>)> {
    spec.check_params(params)?;
    if data.width() != spec.input_width() {
        return Err(Error::FeatureWidth { expected: spec.input_width(), got: data.width() });
    }
    if let Some(&row) = batch.rows.iter().find(|&&row| row as usize >= data.rows()) {
        return Err(Error::BatchRow { row: row as usize, rows: data.rows() });
    }
    let mut grad = vec![0.0f32; params.len()];
    let loss = clipped_sum(
        &mut Network::new(spec),
        params,
        data,
        batch,
        pos_weight,
        clip_norm,
        1.0,
        &mut ClipScratch::default(),
        &mut grad,
    )?;
    Ok((loss, grad))
}

/// Buffers of [`clipped_sum`], reused between steps.
#[derive(Debug, Default)]
struct ClipScratch {
    x: Vec<f32>,
    y: Vec<f32>,
    grad_logits: Vec<f32>,
}

/// Writes `scale` times the sum of the clipped patient gradients of `batch` (not empty) into
/// `grad`; returns the batch's loss sum.
#[allow(clippy::too_many_arguments)] // one step's inputs, named at the two call sites
fn clipped_sum(
    network: &mut Network,
    params: &[f32],
    data: &Dataset,
    batch: &PatientBatch,
    pos_weight: f32,
    clip_norm: f32,
    scale: f32,
    scratch: &mut ClipScratch,
    grad: &mut [f32],
) -> Result<f32> {
    let ClipScratch { x, y, grad_logits } = scratch;
    x.clear();
    y.clear();
    for &row in &batch.rows {
        x.extend_from_slice(data.row(row as usize));
        y.push(data.labels()[row as usize]);
    }
    let n = y.len();
    grad_logits.resize(n, 0.0);
    let logits = network.forward(params, x, n)?;
    let loss = bce_with_logits_sum(logits, y, pos_weight, 1.0, grad_logits);
    // Each patient's rows scaled so that their gradient's norm is at most C.
    let norms = network.group_gradient_norms(params, x, n, grad_logits, &batch.patients)?;
    for (rows, norm) in batch.patients.iter().zip(norms) {
        let norm = libm::sqrt(norm) as f32;
        let factor = if norm > clip_norm { clip_norm / norm } else { 1.0 } * scale;
        grad_logits[rows.clone()].iter_mut().for_each(|g| *g *= factor);
    }
    network.backward(params, x, n, grad_logits, grad)?;
    Ok(loss)
}
