//! The local training loop: epochs of shuffled mini-batches, deterministic for a given seed.
//!
//! Each epoch visits every row once in the order [`BatchOrder`] gives for the seed, in batches
//! of `batch_size` rows (the last one may be smaller). Each step: forward, mean
//! `BCEWithLogits(pos_weight)` loss, backward, L2 and FedProx gradients, optimizer update.
//! The FedProx anchor is the parameter vector training started from (the round's global model).
//!
//! A batch's gradient is computed in parts of [`PART_ROWS`] rows, added in order: the parts may
//! run on threads ([`Parts`]; [`train_in_parts`]), and the result is the same bit for bit
//! whatever their number, since neither the parts nor the order of the sum depend on it. The
//! loss is the rows' losses summed in row order, as in one piece.
//!
//! [`train_private`] is DP-SGD ([`crate::privacy`]): each step samples patients with probability
//! `q` instead of taking the next batch, clips each sampled patient's gradient and adds Gaussian
//! noise; the penalties and the optimizer are the same.

use alloc::vec;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::dataset::Dataset;
use crate::loss::{add_l2, add_proximal, bce_with_logits_rows};
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

/// Rows of one part of a batch's gradient (the last part of a batch may have fewer).
pub const PART_ROWS: usize = 64;

/// How the parts of a batch's gradient run: one after another ([`InOrder`]), or on threads in a
/// crate with `std` (the hospital's CPU trainer). Either way the parts and the order their
/// results are added in are the same, so the trained model is too.
pub trait Parts: Sync {
    /// The results of `job(scratch, i)` for every `i < count`, in index order; each job gets
    /// a scratch `init` made (one per thread, or per run of jobs on one thread).
    fn run<S, T: Send>(
        &self,
        count: usize,
        init: impl Fn() -> S + Sync + Send,
        job: impl Fn(&mut S, usize) -> T + Sync + Send,
    ) -> Vec<T>;
}

/// The parts one after another, on the caller's thread.
#[derive(Debug, Default, Clone, Copy)]
pub struct InOrder;

impl Parts for InOrder {
    fn run<S, T: Send>(
        &self,
        count: usize,
        init: impl Fn() -> S + Sync + Send,
        job: impl Fn(&mut S, usize) -> T + Sync + Send,
    ) -> Vec<T> {
        let mut scratch = init();
        (0..count).map(|i| job(&mut scratch, i)).collect()
    }
}

/// What a piece of a batch (a part, or a DP-SGD step's patients) needs besides the parameters:
/// a network and its rows' features, labels and loss gradients, reused between pieces.
struct RowsScratch {
    network: Network,
    x: Vec<f32>,
    y: Vec<f32>,
    grad_logits: Vec<f32>,
}

impl RowsScratch {
    /// Room for pieces of about [`PART_ROWS`] rows of `spec`'s inputs.
    fn new(spec: &ModelSpec) -> Self {
        Self {
            network: Network::new(spec),
            x: Vec::with_capacity(PART_ROWS * spec.input_width()),
            y: Vec::with_capacity(PART_ROWS),
            grad_logits: Vec::with_capacity(PART_ROWS),
        }
    }

    /// Gathers the dataset `rows`, runs them forward and returns each one's loss, leaving
    /// `scale · ∂loss/∂logit` of each in `grad_logits`.
    fn losses(
        &mut self,
        params: &[f32],
        data: &Dataset,
        rows: &[u32],
        pos_weight: f32,
        scale: f32,
    ) -> Result<Vec<f32>> {
        let Self { network, x, y, grad_logits } = self;
        x.clear();
        y.clear();
        for &row in rows {
            x.extend_from_slice(data.row(row as usize));
            y.push(data.labels()[row as usize]);
        }
        let n = rows.len();
        grad_logits.resize(n, 0.0);
        let logits = network.forward(params, x, n)?;
        let mut losses = Vec::with_capacity(n);
        bce_with_logits_rows(logits, y, pos_weight, scale, &mut losses, grad_logits);
        Ok(losses)
    }
}

/// One part's rows' losses and its gradient of the batch's mean loss (`scale` = 1 / the batch's
/// rows: each row's loss gradient is the one the whole batch gives it).
fn part_gradient(
    scratch: &mut RowsScratch,
    params: &[f32],
    data: &Dataset,
    rows: &[u32],
    pos_weight: f32,
    scale: f32,
) -> Result<(Vec<f32>, Vec<f32>)> {
    let losses = scratch.losses(params, data, rows, pos_weight, scale)?;
    let mut grad = vec![0.0f32; params.len()];
    scratch.network.backward(params, &scratch.x, rows.len(), &scratch.grad_logits, &mut grad)?;
    Ok((losses, grad))
}

/// Trains `params` (laid out for `spec`) on `data` in place, each batch's gradient in parts one
/// after another ([`train_in_parts`] with [`InOrder`]).
///
/// Refuses a parameter vector or dataset that does not fit `spec`, an empty dataset, bad
/// hyperparameters, and stops with [`Error::Diverged`] as soon as a batch loss is not finite.
pub fn train(spec: &ModelSpec, params: &mut [f32], data: &Dataset, config: &TrainConfig) -> Result<TrainReport> {
    train_in_parts(spec, params, data, config, &InOrder)
}

/// [`train`] with each batch's gradient computed in parts of [`PART_ROWS`] rows by `parts`: the
/// same result whatever `parts` is.
pub fn train_in_parts(
    spec: &ModelSpec,
    params: &mut [f32],
    data: &Dataset,
    config: &TrainConfig,
    parts: &impl Parts,
) -> Result<TrainReport> {
    check_inputs(spec, params, data, config)?;
    let anchor = if config.prox_mu > 0.0 { params.to_vec() } else { Vec::new() };
    let mut optimizer = Optimizer::new(config.optimizer, params.len())?;
    let mut order = BatchOrder::new(config.seed, data.rows());
    let mut report = TrainReport { epoch_losses: Vec::with_capacity(config.epochs as usize), steps: 0 };
    let init = || RowsScratch::new(spec);

    for epoch in 0..config.epochs {
        let mut epoch_loss = 0.0f64;
        for (step, rows) in order.next_epoch().chunks(config.batch_size).enumerate() {
            let n = rows.len();
            let scale = 1.0 / n as f32;
            let frozen: &[f32] = params;
            let results = parts.run(n.div_ceil(PART_ROWS), init, |scratch, part| {
                let part_rows = &rows[part * PART_ROWS..((part + 1) * PART_ROWS).min(n)];
                part_gradient(scratch, frozen, data, part_rows, config.pos_weight, scale)
            });
            // The rows' losses in row order, as one piece sums them; the parts' gradients in
            // part order.
            let mut total = 0.0f32;
            let mut grad: Vec<f32> = Vec::new();
            for result in results {
                let (losses, part_grad) = result?;
                losses.iter().for_each(|&loss| total += loss);
                if grad.is_empty() {
                    grad = part_grad;
                } else {
                    grad.iter_mut().zip(&part_grad).for_each(|(g, &p)| *g += p);
                }
            }
            let loss = total * scale;
            if !loss.is_finite() {
                return Err(Error::Diverged { epoch, step });
            }
            epoch_loss += f64::from(loss) * n as f64;
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
    train_private_in_parts(spec, params, data, config, dp, key, &InOrder)
}

/// The parts of a DP-SGD batch: runs of whole patients, a new part started where the next
/// patient would take the part past [`PART_ROWS`] rows (a patient with more rows is a part of its
/// own). Each is the range of the batch's patients it holds.
fn patient_parts(batch: &PatientBatch) -> Vec<core::ops::Range<usize>> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (index, patient) in batch.patients.iter().enumerate() {
        let first_row = batch.patients[start].start;
        if index > start && patient.end - first_row > PART_ROWS {
            parts.push(start..index);
            start = index;
        }
    }
    if start < batch.patients.len() {
        parts.push(start..batch.patients.len());
    }
    parts
}

/// [`train_private`] with each batch's clipped sum computed in parts of whole patients
/// ([`PART_ROWS`] rows or fewer, or one patient) by `parts`: the same result whatever `parts` is.
#[allow(clippy::too_many_arguments)] // train_private's arguments and the parts
pub fn train_private_in_parts(
    spec: &ModelSpec,
    params: &mut [f32],
    data: &Dataset,
    config: &TrainConfig,
    dp: &DpSgd,
    key: NoiseKey,
    parts: &impl Parts,
) -> Result<TrainReport> {
    check_inputs(spec, params, data, config)?;
    dp.validate()?;
    let mut batches = PatientBatches::new(data, dp.sampling_rate, key);
    let expected = dp.expected_patients(batches.patients());
    let noise_scale = dp.noise_multiplier * dp.clip_norm / expected;
    let anchor = if config.prox_mu > 0.0 { params.to_vec() } else { Vec::new() };
    let mut optimizer = Optimizer::new(config.optimizer, params.len())?;
    let mut grad = vec![0.0f32; params.len()];
    let mut batch = PatientBatch::default();
    let mut report = TrainReport { epoch_losses: Vec::with_capacity(config.epochs as usize), steps: 0 };
    let mut counter = 0u32;
    let init = || RowsScratch::new(spec);

    for epoch in 0..config.epochs {
        let (mut epoch_loss, mut epoch_rows) = (0.0f64, 0usize);
        for step in 0..dp.steps_per_epoch() {
            batches.fill(counter, &mut batch);
            grad.fill(0.0);
            if !batch.rows.is_empty() {
                let frozen: &[f32] = params;
                let part_patients = patient_parts(&batch);
                let results = parts.run(part_patients.len(), init, |scratch, part| {
                    let patients = &batch.patients[part_patients[part].clone()];
                    let first = patients[0].start;
                    let piece = PatientBatch {
                        rows: batch.rows[first..patients[patients.len() - 1].end].to_vec(),
                        patients: patients.iter().map(|p| p.start - first..p.end - first).collect(),
                    };
                    let mut part_grad = vec![0.0f32; frozen.len()];
                    let losses = clipped_sum(
                        scratch,
                        frozen,
                        data,
                        &piece,
                        config.pos_weight,
                        dp.clip_norm,
                        1.0 / expected,
                        &mut part_grad,
                    )?;
                    Ok::<_, Error>((losses, part_grad))
                });
                // The rows' losses in row order, as one piece sums them; the parts' gradients
                // in part order.
                let mut loss = 0.0f32;
                for result in results {
                    let (losses, part_grad) = result?;
                    losses.iter().for_each(|&l| loss += l);
                    grad.iter_mut().zip(&part_grad).for_each(|(g, &p)| *g += p);
                }
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
    let losses = clipped_sum(&mut RowsScratch::new(spec), params, data, batch, pos_weight, clip_norm, 1.0, &mut grad)?;
    let mut loss = 0.0f32;
    losses.iter().for_each(|&l| loss += l);
    Ok((loss, grad))
}

/// Writes `scale` times the sum of the clipped patient gradients of `batch` (not empty) into
/// `grad`; returns each row's loss, in the batch's order.
#[allow(clippy::too_many_arguments)] // one step's inputs, named at the two call sites
fn clipped_sum(
    scratch: &mut RowsScratch,
    params: &[f32],
    data: &Dataset,
    batch: &PatientBatch,
    pos_weight: f32,
    clip_norm: f32,
    scale: f32,
    grad: &mut [f32],
) -> Result<Vec<f32>> {
    let losses = scratch.losses(params, data, &batch.rows, pos_weight, 1.0)?;
    let RowsScratch { network, x, grad_logits, .. } = scratch;
    let n = batch.rows.len();
    // Each patient's rows scaled so that their gradient's norm is at most C.
    let norms = network.group_gradient_norms(params, x, n, grad_logits, &batch.patients)?;
    for (rows, norm) in batch.patients.iter().zip(norms) {
        let norm = libm::sqrt(norm) as f32;
        let factor = if norm > clip_norm { clip_norm / norm } else { 1.0 } * scale;
        grad_logits[rows.clone()].iter_mut().for_each(|g| *g *= factor);
    }
    network.backward(params, x, n, grad_logits, grad)?;
    Ok(losses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dp_batch_is_cut_into_parts_of_whole_patients() {
        let batch = |sizes: &[usize]| {
            let mut patients = Vec::new();
            let mut start = 0;
            for &size in sizes {
                patients.push(start..start + size);
                start += size;
            }
            PatientBatch { rows: (0..start as u32).collect(), patients }
        };
        // 40 + 20 rows fit one part of 64; 10 more do not.
        assert_eq!(patient_parts(&batch(&[40, 20, 10, 3])), [0..2, 2..4]);
        // A patient of more rows than a part is a part of its own.
        assert_eq!(patient_parts(&batch(&[100, 1, 70])), [0..1, 1..2, 2..3]);
        assert_eq!(patient_parts(&batch(&[1; 130])), [0..64, 64..128, 128..130]);
        assert!(patient_parts(&PatientBatch::default()).is_empty());
    }
}
