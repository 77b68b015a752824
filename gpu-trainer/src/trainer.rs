//! Training and scoring on the GPU: the same maths, layout, hyperparameters and batch order as
//! `fedcare_core::train`, recorded as whole epochs of dispatches.
//!
//! Per epoch the CPU writes that epoch's row order (from `fedcare_core`'s [`BatchOrder`], so both
//! trainers see the same batches), records every step's dispatches into one compute pass and
//! submits once; nothing is read back between steps. At the end the parameters and the per-step
//! loss sums come back in one read. Results differ from the CPU trainer only by float rounding
//! (different summation order and `exp`/`log`/`pow` implementations).

use std::sync::{Arc, Mutex};

use fedcare_core::privacy::DpSgd;
use fedcare_core::privacy::batches::{PatientBatch, PatientBatches};
use fedcare_core::privacy::noise::NoiseKey;
use fedcare_core::rng::BatchOrder;
use fedcare_core::{Dataset, Error as CoreError, ModelSpec, OptimizerConfig, TrainConfig, TrainReport};
use fedcare_shaders::{MATMUL_TILE, MAX_LAYERS, NARROW_BELOW, RECORD_HEADER, THREADS};

use crate::device::{AdapterSummary, Gpu};
use crate::error::{GpuError, Result};
use crate::kernels::Kernels;
use crate::plan::{EpochPlan, PlanLayout, check_patient_batch};
use crate::profile::Profile;
use crate::recorder::{PendingTimestamps, Pipeline, Recorder, TimestampPlacement};
use crate::workspace::{
    GpuDataset, MAX_KERNEL_SIZE, Purpose, RunUniform, Workspace, check_spec, check_u32, weight_gradient_splits,
};

/// Rows scored per step by [`GpuTrainer::predict`].
const SCORING_BATCH: usize = 4096;

/// How a training step is recorded.
///
/// Which is faster depends on the device and the model: on lavapipe a fused step of the
/// logistic regression at batch 256 took 0.75 times the tiled one, of the MLP 64-64-32-1 7 times
/// (one workgroup runs on one core). [`Step::Measured`] times both on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Step {
    /// A dispatch per layer and phase: tiled products over the whole device (`matmul.wgsl`).
    #[default]
    Tiled,
    /// One dispatch of one workgroup per step (`fused_step.wgsl`), for small models where a
    /// step of the tiled path is mostly the waits between its dispatches; refused past 2^31
    /// parameters × batch rows. DP-SGD steps stay tiled.
    Fused,
    /// The faster of the two for each model and batch size, timed with GPU timestamps over the
    /// first [`MEASURED_STEPS`] steps of each before the first training of it (the median
    /// step); tiled for models past [`FUSED_CANDIDATE_WORK`] parameters × batch rows and on
    /// adapters without timestamp queries. Clones of a trainer share what was measured.
    Measured,
}

/// Steps each kind is timed over by [`Step::Measured`].
pub const MEASURED_STEPS: usize = 8;

/// The most parameters × batch rows for which [`Step::Measured`] times a fused step: one
/// workgroup does a step's every multiply-add, three times this many.
pub const FUSED_CANDIDATE_WORK: usize = 1 << 22;

/// What [`Step::Measured`] found for one model and batch size.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredStep {
    /// The model.
    pub spec: ModelSpec,
    /// Rows a step.
    pub batch: usize,
    /// The kind chosen: [`Step::Tiled`] or [`Step::Fused`].
    pub chosen: Step,
    /// The median GPU nanoseconds of a tiled and of a fused step, where both were timed.
    pub nanoseconds: Option<(f64, f64)>,
}

/// A GPU trainer: one device, its pipelines built once.
///
/// Clones share the device, its queue and the pipelines: several trainers (the hospitals of one
/// simulation) on one GPU each record and submit their own work, which the queue runs in turn.
/// Each call's buffers are its own, and wgpu's error scopes are per thread, so their work does
/// not mix.
#[derive(Debug, Clone)]
pub struct GpuTrainer {
    device: wgpu::Device,
    queue: wgpu::Queue,
    kernels: Arc<Kernels>,
    adapter: Option<AdapterSummary>,
    step: Step,
    measured: Arc<Mutex<Vec<MeasuredStep>>>,
}

fn groups(count: usize, per_group: u32) -> u32 {
    count.div_ceil(per_group as usize) as u32
}

impl GpuTrainer {
    /// Builds the pipelines on an opened device.
    pub fn new(gpu: Gpu) -> Result<Self> {
        let mut trainer = Self::with_device(gpu.device, gpu.queue)?;
        trainer.adapter = Some(gpu.adapter);
        Ok(trainer)
    }

    /// Builds the pipelines on a device the caller opened; refuses a device whose limits are too
    /// small for the kernels.
    pub fn with_device(device: wgpu::Device, queue: wgpu::Queue) -> Result<Self> {
        let kernels = Arc::new(Kernels::new(&device)?);
        Ok(Self { device, queue, kernels, adapter: None, step: Step::Tiled, measured: Arc::default() })
    }

    /// This trainer with its steps recorded as `step` says (by default [`Step::Tiled`]).
    pub fn with_step(mut self, step: Step) -> Self {
        self.step = step;
        self
    }

    /// How a step of `spec` over batches of `batch` rows (of `data`, trained from `params` under
    /// `config`) is recorded: [`Step::Fused`] or [`Step::Tiled`], measured first where this
    /// trainer's step is [`Step::Measured`]. Refuses a fused step past 2^31 parameters × rows,
    /// where its loops' bounds would no longer fit the kernels' safety argument
    /// ([`crate::kernels`]).
    fn step_kind(
        &self,
        spec: &ModelSpec,
        params: &[f32],
        data: &GpuDataset,
        config: &TrainConfig,
        batch: usize,
    ) -> Result<Step> {
        let work = spec.param_count().saturating_mul(batch);
        match self.step {
            Step::Tiled => Ok(Step::Tiled),
            Step::Fused if work <= MAX_KERNEL_SIZE => Ok(Step::Fused),
            Step::Fused => Err(GpuError::Unsupported(format!(
                "a fused step of {} parameters over batches of {batch} rows; fused steps take at most 2^31 \
                 parameters x rows",
                spec.param_count()
            ))),
            Step::Measured if work > FUSED_CANDIDATE_WORK => Ok(Step::Tiled),
            Step::Measured => {
                // Held while measuring, so trainers sharing the device measure a model once.
                let mut measured = self.measured.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(found) = measured.iter().find(|m| m.spec == *spec && m.batch == batch) {
                    return Ok(found.chosen);
                }
                let timed = |kind| -> Result<f64> {
                    Ok(self.profile_as(kind, spec, params, data, config, MEASURED_STEPS)?.median_step_ns())
                };
                let found = match (timed(Step::Tiled), timed(Step::Fused)) {
                    (Ok(tiled), Ok(fused)) => MeasuredStep {
                        spec: spec.clone(),
                        batch,
                        chosen: if fused < tiled { Step::Fused } else { Step::Tiled },
                        nanoseconds: Some((tiled, fused)),
                    },
                    // No timestamp queries, or a device error the training itself will meet.
                    _ => MeasuredStep { spec: spec.clone(), batch, chosen: Step::Tiled, nanoseconds: None },
                };
                let chosen = found.chosen;
                measured.push(found);
                Ok(chosen)
            }
        }
    }

    /// What [`Step::Measured`] has found so far (shared by this trainer's clones), oldest first.
    pub fn measured_steps(&self) -> Vec<MeasuredStep> {
        self.measured.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Whether `other` works on the same device (a clone of this trainer, or of its clones).
    pub fn shares_device_with(&self, other: &Self) -> bool {
        self.device == other.device
    }

    /// Runs `work` with the device's errors captured: out-of-memory, validation and internal
    /// errors come back as a [`GpuError`] instead of reaching wgpu's default handler (a panic).
    fn guarded<T>(&self, what: &'static str, work: impl FnOnce() -> Result<T>) -> Result<T> {
        let scopes = [wgpu::ErrorFilter::OutOfMemory, wgpu::ErrorFilter::Validation, wgpu::ErrorFilter::Internal]
            .map(|filter| self.device.push_error_scope(filter));
        let result = work();
        // Scopes pop innermost first; an out-of-memory error (popped last) is the root cause
        // of the validation errors that follow it, so it wins.
        let mut captured = None;
        for scope in scopes.into_iter().rev() {
            if let Some(error) = pollster::block_on(scope.pop()) {
                captured = Some(error);
            }
        }
        match captured {
            None => result,
            Some(wgpu::Error::OutOfMemory { source }) => {
                Err(GpuError::OutOfMemory { what, detail: source.to_string() })
            }
            Some(error) => Err(GpuError::Device(format!("{what}: {error}"))),
        }
    }

    /// The adapter, when the trainer opened it.
    pub fn adapter(&self) -> Option<&AdapterSummary> {
        self.adapter.as_ref()
    }

    /// Uploads a dataset once, for any number of [`train`](Self::train) and
    /// [`predict`](Self::predict) calls.
    pub fn upload(&self, data: &Dataset) -> Result<GpuDataset> {
        self.guarded("uploading the dataset", || GpuDataset::upload(&self.device, data))
    }

    fn run_uniform(
        &self,
        spec: &ModelSpec,
        data: &GpuDataset,
        batch: usize,
        config: &TrainConfig,
    ) -> Result<RunUniform> {
        let layers = spec.layers();
        check_spec(spec, &self.device.limits())?;
        let mut bias_ranges = [[0u32; 4]; MAX_LAYERS];
        for (range, layer) in bias_ranges.iter_mut().zip(&layers) {
            *range = [
                check_u32("a parameter index", layer.bias_offset)?,
                check_u32("a parameter index", layer.end())?,
                0,
                0,
            ];
        }
        let (optimizer, lr, beta1, beta2, eps, momentum) = match config.optimizer {
            OptimizerConfig::Sgd { lr, momentum } => (0, lr, 0.0, 0.0, 0.0, momentum),
            OptimizerConfig::Adam { lr, beta1, beta2, eps } => (1, lr, beta1, beta2, eps, 0.0),
        };
        Ok(RunUniform {
            rows: check_u32("rows", data.rows())?,
            batch: check_u32("batch size", batch)?,
            width: check_u32("features", data.width())?,
            param_count: check_u32("parameters", spec.param_count())?,
            pos_weight: config.pos_weight,
            l2: config.l2,
            prox_mu: config.prox_mu,
            lr,
            beta1,
            beta2,
            eps,
            momentum,
            optimizer,
            layer_count: layers.len() as u32,
            private: 0,
            pad: 0,
            patients_offset: 0,
            row_grad_offset: 0,
            row_norm_offset: 0,
            clip_norm: 0.0,
            noise_scale: 0.0,
            inv_expected: 0.0,
            key: [0; 2],
            bias_ranges,
        })
    }

    fn check_inputs(spec: &ModelSpec, params: &[f32], data: &GpuDataset) -> Result<()> {
        spec.check_params(params)?;
        if data.width() != spec.input_width() {
            return Err(CoreError::FeatureWidth { expected: spec.input_width(), got: data.width() }.into());
        }
        if data.rows() == 0 {
            return Err(CoreError::EmptyDataset.into());
        }
        Ok(())
    }

    /// Trains `params` (laid out for `spec`) on `data`, exactly as `fedcare_core::train` does.
    /// On error `params` is left as it was.
    pub fn train(
        &self,
        spec: &ModelSpec,
        params: &mut [f32],
        data: &GpuDataset,
        config: &TrainConfig,
    ) -> Result<TrainReport> {
        let (trained, report) = self.guarded("training", || {
            config.validate()?;
            Self::check_inputs(spec, params, data)?;
            let rows = data.rows();
            let batch = config.batch_size.min(rows);
            let kind = self.step_kind(spec, params, data, config, batch)?;
            let steps_per_epoch = rows.div_ceil(batch);
            let total_steps = steps_per_epoch * config.epochs as usize;
            let run = self.run_uniform(spec, data, batch, config)?;
            let ws = Workspace::new(
                &self.device,
                &self.kernels,
                spec,
                params,
                data,
                run,
                Purpose::Training { steps: total_steps },
            )?;
            self.write_anchor(&ws, config, params);
            let mut order = BatchOrder::new(config.seed, rows);
            for _ in 0..config.epochs {
                self.record_epoch(&ws, order.next_epoch(), None, |recorder| {
                    for step in 0..steps_per_epoch {
                        self.record_step(recorder, &ws, batch.min(rows - step * batch), kind);
                    }
                })?;
            }
            self.trained(&ws, params.len(), steps_per_epoch, |_| rows)
        })?;
        params.copy_from_slice(&trained);
        Ok(report)
    }

    /// Trains `params` with DP-SGD exactly as `fedcare_core::train_private` does: the same
    /// patient batches (from `data`, the dataset `uploaded` came from), per-patient clipping in
    /// WGSL and the same Philox noise, so the two differ by float rounding only. On error
    /// `params` is left as it was.
    #[allow(clippy::too_many_arguments)] // train's arguments plus the CPU dataset and DP's two
    pub fn train_private(
        &self,
        spec: &ModelSpec,
        params: &mut [f32],
        uploaded: &GpuDataset,
        data: &Dataset,
        config: &TrainConfig,
        dp: &DpSgd,
        key: NoiseKey,
    ) -> Result<TrainReport> {
        let (trained, report) = self.guarded("training with DP-SGD", || {
            config.validate()?;
            dp.validate()?;
            Self::check_inputs(spec, params, uploaded)?;
            Self::check_same_rows(uploaded, data)?;
            let mut batches = PatientBatches::new(data, dp.sampling_rate, key);
            let expected = dp.expected_patients(batches.patients());
            let steps_per_epoch = dp.steps_per_epoch() as usize;
            let mut plans = Vec::with_capacity(config.epochs as usize);
            let mut batch = PatientBatch::default();
            for epoch in 0..config.epochs as usize {
                let mut plan = EpochPlan::default();
                for step in 0..steps_per_epoch {
                    batches.fill((epoch * steps_per_epoch + step) as u32, &mut batch);
                    plan.push(&batch);
                }
                plans.push(plan);
            }
            let layout = PlanLayout::of(&plans, steps_per_epoch)?;
            let mut run = self.run_uniform(spec, uploaded, layout.largest_step.max(1), config)?;
            run.set_private(&layout, dp.clip_norm, dp.noise_multiplier * dp.clip_norm / expected, expected, key);
            let total_steps = steps_per_epoch * config.epochs as usize;
            let purpose = Purpose::Private { steps: total_steps, order_words: layout.words };
            let ws = Workspace::new(&self.device, &self.kernels, spec, params, uploaded, run, purpose)?;
            self.write_anchor(&ws, config, params);
            for plan in &plans {
                self.record_epoch(&ws, &plan.words(&layout), None, |recorder| {
                    for &(_, rows) in &plan.steps {
                        let rows = rows as usize;
                        if rows > 0 {
                            self.record_forward(recorder, &ws, rows);
                            self.record_private_gradients(recorder, &ws, rows);
                        }
                        self.dispatch_per_element(recorder, &self.kernels.add_noise, ws.param_count);
                        self.record_update(recorder, &ws);
                        recorder.dispatch(&self.kernels.advance, [1, 1, 1]);
                    }
                })?;
            }
            self.trained(&ws, params.len(), steps_per_epoch, |epoch| plans[epoch].rows.len())
        })?;
        params.copy_from_slice(&trained);
        Ok(report)
    }

    /// Profiles the first `steps` steps (at most one epoch) of training `spec` from `params` on
    /// `data` under `config`: the same dispatches as [`train`](Self::train) records, with a GPU
    /// timestamp beside each. Refuses an adapter without timestamp queries.
    pub fn profile(
        &self,
        spec: &ModelSpec,
        params: &[f32],
        data: &GpuDataset,
        config: &TrainConfig,
        steps: usize,
    ) -> Result<Profile> {
        config.validate()?;
        Self::check_inputs(spec, params, data)?;
        let kind = self.step_kind(spec, params, data, config, config.batch_size.min(data.rows()))?;
        self.profile_as(kind, spec, params, data, config, steps)
    }

    /// [`profile`](Self::profile) with the steps recorded as `kind` ([`Step::Tiled`] or
    /// [`Step::Fused`]) says.
    fn profile_as(
        &self,
        kind: Step,
        spec: &ModelSpec,
        params: &[f32],
        data: &GpuDataset,
        config: &TrainConfig,
        steps: usize,
    ) -> Result<Profile> {
        let placement = TimestampPlacement::of(&self.device).ok_or_else(|| {
            GpuError::Unsupported("this adapter has no timestamp queries, so its kernels cannot be timed".to_owned())
        })?;
        self.guarded("profiling", || {
            config.validate()?;
            Self::check_inputs(spec, params, data)?;
            let rows = data.rows();
            let batch = config.batch_size.min(rows);
            let steps = steps.clamp(1, rows.div_ceil(batch));
            let run = self.run_uniform(spec, data, batch, config)?;
            let purpose = Purpose::Training { steps };
            let ws = Workspace::new(&self.device, &self.kernels, spec, params, data, run, purpose)?;
            self.write_anchor(&ws, config, params);
            let order = BatchOrder::new(config.seed, rows).next_epoch().to_vec();
            let timestamps = self.record_epoch(&ws, &order, Some(placement), |recorder| {
                for step in 0..steps {
                    self.record_step(recorder, &ws, batch.min(rows - step * batch), kind);
                }
            })?;
            let timestamps =
                timestamps.ok_or_else(|| GpuError::Device("the profile wrote no timestamps".to_owned()))?;
            let [words] = self.read_back([(&timestamps.resolved, 2 * timestamps.written as usize)])?;
            let ticks: Vec<u64> =
                words.chunks_exact(2).map(|pair| u64::from(pair[0]) | u64::from(pair[1]) << 32).collect();
            let timed = timestamps.durations(&ticks, self.queue.get_timestamp_period());
            Ok(Profile::new(placement, steps, timed))
        })
    }

    /// The loss sum and the sum of the patients' gradients each clipped to `clip_norm` (no
    /// noise, no penalties) over `batch` (not empty): one DP-SGD step's kernels, for checking
    /// them against `fedcare_core::clipped_gradient`.
    pub fn clipped_gradient(
        &self,
        spec: &ModelSpec,
        params: &[f32],
        uploaded: &GpuDataset,
        batch: &PatientBatch,
        pos_weight: f32,
        clip_norm: f32,
    ) -> Result<(f32, Vec<f32>)> {
        self.guarded("computing a clipped gradient", || {
            Self::check_inputs(spec, params, uploaded)?;
            check_patient_batch(batch, uploaded.rows())?;
            let config = TrainConfig { pos_weight, ..TrainConfig::default() };
            config.validate()?;
            let dp = DpSgd { sampling_rate: 1.0, noise_multiplier: 1.0, clip_norm };
            dp.validate()?;
            let mut plan = EpochPlan::default();
            plan.push(batch);
            let plans = [plan];
            let layout = PlanLayout::of(&plans, 1)?;
            let mut run = self.run_uniform(spec, uploaded, batch.rows.len(), &config)?;
            run.set_private(&layout, clip_norm, 0.0, 1.0, NoiseKey([0; 2]));
            let purpose = Purpose::Private { steps: 1, order_words: layout.words };
            let ws = Workspace::new(&self.device, &self.kernels, spec, params, uploaded, run, purpose)?;
            self.record_epoch(&ws, &plans[0].words(&layout), None, |recorder| {
                self.record_forward(recorder, &ws, batch.rows.len());
                self.record_private_gradients(recorder, &ws, batch.rows.len());
            })?;
            let [grad, record] = self.read_back([(&ws.grad, params.len()), (&ws.record, ws.record_words)])?;
            Ok((f32::from_bits(record[RECORD_HEADER]), bytemuck::cast_slice(&grad).to_vec()))
        })
    }

    fn check_same_rows(uploaded: &GpuDataset, data: &Dataset) -> Result<()> {
        if uploaded.rows() != data.rows() || uploaded.width() != data.width() {
            return Err(GpuError::Unsupported(format!(
                "the uploaded dataset has {} rows of {} features, its CPU copy {} of {}",
                uploaded.rows(),
                uploaded.width(),
                data.rows(),
                data.width()
            )));
        }
        Ok(())
    }

    /// The logit of every row of `data` under `params`.
    pub fn predict(&self, spec: &ModelSpec, params: &[f32], data: &GpuDataset) -> Result<Vec<f32>> {
        self.guarded("scoring", || {
            Self::check_inputs(spec, params, data)?;
            let rows = data.rows();
            let batch = SCORING_BATCH.min(rows);
            let run = self.run_uniform(spec, data, batch, &TrainConfig::default())?;
            let ws = Workspace::new(&self.device, &self.kernels, spec, params, data, run, Purpose::Scoring)?;
            let identity: Vec<u32> = (0..check_u32("rows", rows)?).collect();
            self.record_epoch(&ws, &identity, None, |recorder| {
                for step in 0..rows.div_ceil(batch) {
                    let step_rows = batch.min(rows - step * batch);
                    self.record_forward(recorder, &ws, step_rows);
                    recorder.dispatch(&self.kernels.collect_logits, [groups(step_rows, THREADS), 1, 1]);
                    recorder.dispatch(&self.kernels.advance, [1, 1, 1]);
                }
            })?;
            let [record] = self.read_back([(&ws.record, ws.record_words)])?;
            Ok(bytemuck::cast_slice::<u32, f32>(&record[RECORD_HEADER..]).to_vec())
        })
    }

    /// The mean loss and its gradient (without penalties) over the dataset rows `batch`, in that
    /// order: one step's forward, loss and backward kernels, for checking them against the CPU.
    pub fn gradient(
        &self,
        spec: &ModelSpec,
        params: &[f32],
        data: &GpuDataset,
        batch: &[u32],
        pos_weight: f32,
    ) -> Result<(f32, Vec<f32>)> {
        self.guarded("computing a gradient", || {
            Self::check_inputs(spec, params, data)?;
            if batch.is_empty() || batch.len() > data.rows() || batch.iter().any(|&r| r as usize >= data.rows()) {
                return Err(GpuError::Unsupported(format!(
                    "a batch of {} rows naming rows of a {}-row dataset",
                    batch.len(),
                    data.rows()
                )));
            }
            let config = TrainConfig { pos_weight, batch_size: batch.len(), ..TrainConfig::default() };
            config.validate()?;
            let run = self.run_uniform(spec, data, batch.len(), &config)?;
            let ws =
                Workspace::new(&self.device, &self.kernels, spec, params, data, run, Purpose::Training { steps: 1 })?;
            self.record_epoch(&ws, batch, None, |recorder| {
                self.record_forward(recorder, &ws, batch.len());
                self.record_gradients(recorder, &ws, batch.len());
            })?;
            let [grad, record] = self.read_back([(&ws.grad, params.len()), (&ws.record, ws.record_words)])?;
            let loss_sum = f32::from_bits(record[RECORD_HEADER]);
            Ok((loss_sum / batch.len() as f32, bytemuck::cast_slice(&grad).to_vec()))
        })
    }

    /// Writes the FedProx anchor (the parameters training starts from) when `config` uses it.
    fn write_anchor(&self, ws: &Workspace, config: &TrainConfig, params: &[f32]) {
        if config.prox_mu > 0.0 {
            self.queue.write_buffer(&ws.state, (2 * params.len() * 4) as u64, bytemuck::cast_slice(params));
        }
    }

    /// One submission (a training epoch, a scoring pass, a checking step): writes its `order`
    /// words, resets the step within the epoch, records its steps with `steps` (with a timestamp
    /// beside every dispatch where `placement` asks) and submits them.
    fn record_epoch<'w>(
        &'w self,
        ws: &'w Workspace,
        order: &[u32],
        placement: Option<TimestampPlacement>,
        steps: impl FnOnce(&mut Recorder<'w>),
    ) -> Result<Option<PendingTimestamps>> {
        self.queue.write_buffer(&ws.order, 0, bytemuck::cast_slice(order));
        self.queue.write_buffer(&ws.record, 0, bytemuck::bytes_of(&0u32)); // step within the epoch
        let mut recorder = Recorder::new(&self.device, &ws.buffers_group, placement);
        // Every pipeline expects a layer bound, even in a step without rows.
        if let Some(last) = ws.layer_groups.last() {
            recorder.set_layer(ws.layer_groups.len() - 1, last);
        }
        steps(&mut recorder);
        let (commands, timestamps) = recorder.finish()?;
        self.queue.submit([commands]);
        Ok(timestamps)
    }

    /// The trained parameters and the report, read back after every epoch was submitted: each
    /// epoch's loss is the sum of its steps' over `epoch_rows(epoch)` rows (0 without rows);
    /// a step whose loss is not finite is [`CoreError::Diverged`].
    fn trained(
        &self,
        ws: &Workspace,
        param_count: usize,
        steps_per_epoch: usize,
        epoch_rows: impl Fn(usize) -> usize,
    ) -> Result<(Vec<f32>, TrainReport)> {
        let [trained, record] = self.read_back([(&ws.params, param_count), (&ws.record, ws.record_words)])?;
        let step_losses: &[f32] = bytemuck::cast_slice(&record[RECORD_HEADER..]);
        let epochs = step_losses.len() / steps_per_epoch.max(1);
        let mut report = TrainReport { epoch_losses: Vec::with_capacity(epochs), steps: step_losses.len() as u64 };
        for (epoch, losses) in step_losses.chunks(steps_per_epoch).enumerate() {
            if let Some(step) = losses.iter().position(|l| !l.is_finite()) {
                return Err(CoreError::Diverged { epoch: epoch as u32, step }.into());
            }
            let sum: f64 = losses.iter().map(|&l| f64::from(l)).sum();
            let rows = epoch_rows(epoch);
            report.epoch_losses.push(if rows == 0 { 0.0 } else { (sum / rows as f64) as f32 });
        }
        Ok((bytemuck::cast_slice(&trained).to_vec(), report))
    }

    /// One training step of a batch of `rows` rows: forward, loss, back-propagation, optimizer
    /// update and the step counters, in one fused dispatch or the tiled path's.
    fn record_step<'w>(&self, recorder: &mut Recorder<'w>, ws: &'w Workspace, rows: usize, step: Step) {
        if step == Step::Fused {
            recorder.dispatch(&self.kernels.fused_step, [1, 1, 1]);
        } else {
            self.record_forward(recorder, ws, rows);
            self.record_gradients(recorder, ws, rows);
            self.record_update(recorder, ws);
            recorder.dispatch(&self.kernels.advance, [1, 1, 1]);
        }
        recorder.end_step();
    }

    /// Forward pass of one batch of `rows` rows; leaves the last layer bound.
    fn record_forward<'w>(&self, recorder: &mut Recorder<'w>, ws: &'w Workspace, rows: usize) {
        for (index, (layer, group)) in ws.layers.iter().zip(&ws.layer_groups).enumerate() {
            recorder.set_layer(index, group);
            if layer.fan_out < NARROW_BELOW {
                recorder.dispatch(&self.kernels.forward_narrow, [groups(rows, THREADS), layer.fan_out as u32, 1]);
            } else {
                let tiles = [groups(layer.fan_out, MATMUL_TILE), groups(rows, MATMUL_TILE), 1];
                recorder.dispatch(&self.kernels.forward, tiles);
            }
        }
    }

    /// Loss and back-propagation of one batch of `rows` rows: fills the gradient buffer.
    fn record_gradients<'w>(&self, recorder: &mut Recorder<'w>, ws: &'w Workspace, rows: usize) {
        recorder.dispatch(&self.kernels.loss, [1, 1, 1]);
        self.record_backward(recorder, ws, rows);
    }

    /// DP-SGD's loss and back-propagation of one patient batch of `rows` rows (not empty): the
    /// per-patient norms layer by layer, the clipping of the last layer's deltas, then the
    /// back-propagation of the clipped deltas into the gradient buffer (see `private.wgsl`).
    fn record_private_gradients<'w>(&self, recorder: &mut Recorder<'w>, ws: &'w Workspace, rows: usize) {
        recorder.dispatch(&self.kernels.loss, [1, 1, 1]);
        for (index, (layer, group)) in ws.layers.iter().zip(&ws.layer_groups).enumerate().rev() {
            recorder.set_layer(index, group);
            recorder.dispatch(&self.kernels.patient_norms, [groups(rows, THREADS), 1, 1]);
            if index > 0 {
                let tiles = [groups(layer.fan_in, MATMUL_TILE), groups(rows, MATMUL_TILE), 1];
                recorder.dispatch(&self.kernels.input_gradient, tiles);
            }
        }
        if let Some(last) = ws.layer_groups.last() {
            recorder.set_layer(ws.layer_groups.len() - 1, last);
        }
        recorder.dispatch(&self.kernels.clip_rows, [groups(rows, THREADS), 1, 1]);
        self.record_backward(recorder, ws, rows);
    }

    /// Back-propagation of the last layer's deltas of one batch of `rows` rows: fills the
    /// gradient buffer. Per layer: its weight and bias gradient (a tiled layer's split over the
    /// batch, then the splits summed, past `SPLIT_ROWS` rows), then the input gradient for the
    /// layer below.
    fn record_backward<'w>(&self, recorder: &mut Recorder<'w>, ws: &'w Workspace, rows: usize) {
        for (index, (layer, group)) in ws.layers.iter().zip(&ws.layer_groups).enumerate().rev() {
            recorder.set_layer(index, group);
            if layer.fan_out < NARROW_BELOW {
                let pairs = [layer.fan_in as u32 + 1, layer.fan_out as u32, 1];
                recorder.dispatch(&self.kernels.weight_gradient_narrow, pairs);
            } else {
                let splits = weight_gradient_splits(rows);
                let tiles = [groups(layer.fan_out, MATMUL_TILE), groups(layer.fan_in, MATMUL_TILE), splits];
                recorder.dispatch(&self.kernels.weight_gradient, tiles);
                if splits > 1 {
                    self.dispatch_per_element(recorder, &self.kernels.split_sum, (layer.fan_in + 1) * layer.fan_out);
                }
            }
            if index > 0 {
                let tiles = [groups(layer.fan_in, MATMUL_TILE), groups(rows, MATMUL_TILE), 1];
                recorder.dispatch(&self.kernels.input_gradient, tiles);
            }
        }
    }

    /// Penalties and the optimizer update of one step.
    fn record_update(&self, recorder: &mut Recorder<'_>, ws: &Workspace) {
        self.dispatch_per_element(recorder, &self.kernels.update, ws.param_count);
    }

    /// Dispatches `pipeline` with one thread per element, for a kernel that indexes
    /// `x + y·(groups.x·THREADS)`, folding into a second dimension past the device's
    /// per-dimension limit.
    fn dispatch_per_element(&self, recorder: &mut Recorder<'_>, pipeline: &Pipeline, elements: usize) {
        let total = groups(elements, THREADS);
        let x = total.clamp(1, self.device.limits().max_compute_workgroups_per_dimension);
        recorder.dispatch(pipeline, [x, total.div_ceil(x), 1]);
    }

    /// Copies buffers to the host: `(buffer, words)` each, in one submission.
    fn read_back<const N: usize>(&self, sources: [(&wgpu::Buffer, usize); N]) -> Result<[Vec<u32>; N]> {
        let mut encoder =
            self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("read back") });
        let staging = sources.map(|(buffer, words)| {
            let bytes = (words * 4) as u64;
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read back"),
                size: bytes.max(4),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes);
            (staging, words)
        });
        self.queue.submit([encoder.finish()]);
        let (sender, receiver) = std::sync::mpsc::channel();
        for (buffer, _) in &staging {
            let sender = sender.clone();
            buffer.map_async(wgpu::MapMode::Read, .., move |result| {
                let _ = sender.send(result);
            });
        }
        drop(sender);
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| GpuError::Device(e.to_string()))?;
        for result in receiver {
            result.map_err(|e| GpuError::Device(format!("reading results back: {e}")))?;
        }
        let mut out = Vec::with_capacity(N);
        for (buffer, words) in &staging {
            let view =
                buffer.get_mapped_range(..).map_err(|e| GpuError::Device(format!("reading results back: {e}")))?;
            out.push(bytemuck::cast_slice::<u8, u32>(&view)[..*words].to_vec());
        }
        out.try_into().map_err(|_| GpuError::Device("read back lost a buffer".to_owned()))
    }
}
