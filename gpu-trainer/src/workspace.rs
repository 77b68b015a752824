//! GPU memory for one model on one dataset: the buffers, their layout and the bind groups.
//!
//! A [`GpuDataset`] (features and labels) is uploaded once and reused by every training and
//! scoring call. A [`Workspace`] holds what one call needs besides: parameters, gradient,
//! activations and deltas for one batch, optimizer state, the row order and the `record`
//! buffer (step counters, then per-step losses or per-row logits). Every size is checked
//! against the device's limits before anything is allocated.

use bytemuck::{Pod, Zeroable};
use fedcare_core::privacy::noise::NoiseKey;
use fedcare_core::{Dataset, LayerShape, ModelSpec};
use fedcare_shaders::{MAX_LAYERS, NARROW_BELOW, RECORD_HEADER, SPLIT_ROWS};
use wgpu::util::DeviceExt;

use crate::error::{GpuError, Result};
use crate::kernels::Kernels;
use crate::plan::PlanLayout;

/// The `Run` uniform of `common.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub(crate) struct RunUniform {
    pub(crate) rows: u32,
    pub(crate) batch: u32,
    pub(crate) width: u32,
    pub(crate) param_count: u32,
    pub(crate) pos_weight: f32,
    pub(crate) l2: f32,
    pub(crate) prox_mu: f32,
    pub(crate) lr: f32,
    pub(crate) beta1: f32,
    pub(crate) beta2: f32,
    pub(crate) eps: f32,
    pub(crate) momentum: f32,
    pub(crate) optimizer: u32,
    pub(crate) layer_count: u32,
    pub(crate) private: u32,
    pub(crate) pad: u32,
    pub(crate) patients_offset: u32,
    pub(crate) row_grad_offset: u32,
    pub(crate) row_norm_offset: u32,
    pub(crate) clip_norm: f32,
    pub(crate) noise_scale: f32,
    pub(crate) inv_expected: f32,
    pub(crate) key: [u32; 2],
    pub(crate) bias_ranges: [[u32; 4]; MAX_LAYERS],
}

impl RunUniform {
    /// Makes the run DP-SGD's (`private.wgsl`): steps from the plan of `layout`, each patient's
    /// gradient clipped to `clip_norm`, noise of standard deviation `noise_scale` under `key`,
    /// the clipped sum divided by `expected` patients.
    pub(crate) fn set_private(
        &mut self,
        layout: &PlanLayout,
        clip_norm: f32,
        noise_scale: f32,
        expected: f32,
        key: NoiseKey,
    ) {
        self.private = 1;
        self.patients_offset = layout.patients_offset;
        self.clip_norm = clip_norm;
        self.noise_scale = noise_scale;
        self.inv_expected = 1.0 / expected;
        self.key = key.0;
    }
}

/// The `Layer` uniform of `common.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct LayerUniform {
    fan_in: u32,
    fan_out: u32,
    weight_offset: u32,
    bias_offset: u32,
    input_offset: u32,
    output_offset: u32,
    delta_out_offset: u32,
    delta_in_offset: u32,
    relu: u32,
    first: u32,
    partial_offset: u32,
    pad: u32,
}

/// Features and labels of a dataset, resident on the GPU.
#[derive(Debug)]
pub struct GpuDataset {
    pub(crate) features: wgpu::Buffer,
    pub(crate) labels: wgpu::Buffer,
    rows: usize,
    width: usize,
}

impl GpuDataset {
    /// Uploads `data` once.
    pub fn upload(device: &wgpu::Device, data: &Dataset) -> Result<Self> {
        let limits = device.limits();
        check_size("the feature matrix", byte_len(data.features().len()), &limits)?;
        check_u32("rows × features", data.features().len())?;
        check_kernel_size("rows", data.rows())?;
        let features = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("features"),
            contents: bytemuck::cast_slice(non_empty(data.features())),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let labels = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("labels"),
            contents: bytemuck::cast_slice(non_empty(data.labels())),
            usage: wgpu::BufferUsages::STORAGE,
        });
        Ok(Self { features, labels, rows: data.rows(), width: data.width() })
    }

    /// Rows uploaded.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Features per row.
    pub fn width(&self) -> usize {
        self.width
    }
}

/// A zero-length binding is not allowed; such buffers get one unused element.
fn non_empty(values: &[f32]) -> &[f32] {
    if values.is_empty() { &[0.0] } else { values }
}

fn byte_len(elements: usize) -> u64 {
    (elements.max(1) as u64).saturating_mul(4)
}

fn check_size(what: &'static str, bytes: u64, limits: &wgpu::Limits) -> Result<()> {
    let limit = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
    if bytes > limit {
        return Err(GpuError::TooLarge { what, bytes, limit });
    }
    Ok(())
}

/// The most rows a dataset, and units a layer, may have for the kernels: every loop of theirs
/// that strides (`r += THREADS`, `k0 += TILE_K`) then stays below 2^32 without wrapping, which
/// the shader modules' safety argument relies on ([`crate::kernels`]).
pub(crate) const MAX_KERNEL_SIZE: usize = 1 << 31;

/// Refuses a dataset of more rows, or a layer of more units, than the kernels take.
pub(crate) fn check_kernel_size(what: &str, value: usize) -> Result<()> {
    if value > MAX_KERNEL_SIZE {
        return Err(GpuError::Unsupported(format!("{what} = {value}; the GPU kernels take at most 2^31")));
    }
    Ok(())
}

pub(crate) fn check_u32(what: &str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| GpuError::Unsupported(format!("{what} = {value} exceeds 2^32 - 1")))
}

/// Checks the shape of `spec` against what the kernels and the device support.
pub(crate) fn check_spec(spec: &ModelSpec, limits: &wgpu::Limits) -> Result<()> {
    let layers = spec.layers();
    if layers.len() > MAX_LAYERS {
        return Err(GpuError::Unsupported(format!(
            "{} layers; the GPU kernels take at most {MAX_LAYERS}",
            layers.len()
        )));
    }
    // Narrow weight gradients dispatch one workgroup per input (and one for the bias).
    let widest = layers.iter().map(|l| l.fan_out.max(l.fan_in + 1)).max().unwrap_or(1);
    check_kernel_size("a layer's units", widest)?;
    if widest > limits.max_compute_workgroups_per_dimension as usize {
        return Err(GpuError::Unsupported(format!(
            "a layer of {widest} units; this device dispatches at most {} workgroups per dimension",
            limits.max_compute_workgroups_per_dimension
        )));
    }
    Ok(())
}

/// Workgroups along the batch of a tiled weight gradient over `rows` rows: one per
/// [`SPLIT_ROWS`] rows (`matmul.wgsl`, MODE 1), so that a small layer over a long batch still
/// spreads over the device; a batch of one split needs no partials and no split sum.
pub(crate) fn weight_gradient_splits(rows: usize) -> u32 {
    rows.div_ceil(SPLIT_ROWS as usize) as u32
}

/// What a workspace is for: training records per-step losses, scoring per-row logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Training, recording `steps` loss sums.
    Training {
        /// Steps over all epochs.
        steps: usize,
    },
    /// DP-SGD training (`private.wgsl`): per-row gradients and norms in `scratch`, and an
    /// `order` of `order_words` holding an epoch's plan.
    Private {
        /// Steps over all epochs.
        steps: usize,
        /// Words of the largest epoch plan.
        order_words: usize,
    },
    /// Scoring every row once.
    Scoring,
}

/// Buffers and bind groups for one call.
#[derive(Debug)]
pub(crate) struct Workspace {
    pub(crate) layers: Vec<LayerShape>,
    pub(crate) param_count: usize,
    pub(crate) params: wgpu::Buffer,
    pub(crate) grad: wgpu::Buffer,
    pub(crate) order: wgpu::Buffer,
    pub(crate) record: wgpu::Buffer,
    pub(crate) state: wgpu::Buffer,
    pub(crate) record_words: usize,
    pub(crate) buffers_group: wgpu::BindGroup,
    pub(crate) layer_groups: Vec<wgpu::BindGroup>,
}

impl Workspace {
    /// Allocates and binds everything for `spec` on `data` with `batch` rows per step.
    pub(crate) fn new(
        device: &wgpu::Device,
        kernels: &Kernels,
        spec: &ModelSpec,
        params: &[f32],
        data: &GpuDataset,
        mut run: RunUniform,
        purpose: Purpose,
    ) -> Result<Self> {
        let limits = device.limits();
        check_spec(spec, &limits)?;
        let layers = spec.layers();
        let batch = run.batch as usize;
        let param_count = params.len();

        // scratch = activations of every layer for one batch, then two delta regions.
        let mut scratch_len = 0usize;
        let mut output_offsets = Vec::with_capacity(layers.len());
        for layer in &layers {
            output_offsets.push(scratch_len);
            scratch_len += batch * layer.fan_out;
        }
        let region = batch * spec.max_width();
        let deltas = [scratch_len, scratch_len + region];
        scratch_len += 2 * region;
        // Split-K partial weight and bias gradients of the tiled (wide) layers, one region
        // shared by all; none where a batch is not split.
        let partial_offset = scratch_len;
        let splits = weight_gradient_splits(batch) as usize;
        if splits > 1 {
            scratch_len += layers
                .iter()
                .filter(|l| l.fan_out >= NARROW_BELOW)
                .map(|l| splits * (l.fan_in + 1) * l.fan_out)
                .max()
                .unwrap_or(0);
        }
        if let Purpose::Private { .. } = purpose {
            run.row_grad_offset = check_u32("the per-row gradients", scratch_len)?;
            run.row_norm_offset = check_u32("the per-row norms", scratch_len + batch)?;
            scratch_len += 2 * batch;
        }
        let (record_words, state_len, order_len) = match purpose {
            Purpose::Training { steps } => (RECORD_HEADER + steps, 3 * param_count, data.rows()),
            Purpose::Private { steps, order_words } => (RECORD_HEADER + steps, 3 * param_count, order_words),
            Purpose::Scoring => (RECORD_HEADER + data.rows(), 1, data.rows()),
        };
        for (what, len) in [
            ("the activations and deltas of one batch", scratch_len),
            ("the parameters", param_count),
            ("the optimizer state", state_len),
            ("the training record", record_words),
            ("the batch plan", order_len),
        ] {
            check_size(what, byte_len(len), &limits)?;
            check_u32(what, len)?;
        }

        let storage = wgpu::BufferUsages::STORAGE;
        let zeroed = |label, len: usize, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: byte_len(len),
                usage,
                mapped_at_creation: false,
            })
        };
        let params_buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytemuck::cast_slice(params),
            usage: storage | wgpu::BufferUsages::COPY_SRC,
        });
        let grad = zeroed("grad", param_count, storage | wgpu::BufferUsages::COPY_SRC);
        let scratch = zeroed("scratch", scratch_len, storage);
        let state = zeroed("optimizer state", state_len, storage | wgpu::BufferUsages::COPY_DST);
        let order = zeroed("order", order_len, storage | wgpu::BufferUsages::COPY_DST);
        let record =
            zeroed("record", record_words, storage | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST);
        let run_buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("run"),
            contents: bytemuck::bytes_of(&run),
            usage: wgpu::BufferUsages::UNIFORM,
        });

        let buffers_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("fedcare buffers"),
            layout: &kernels.buffers_layout,
            entries: &[
                run_buffer.as_entire_binding(),
                data.features.as_entire_binding(),
                data.labels.as_entire_binding(),
                order.as_entire_binding(),
                params_buffer.as_entire_binding(),
                grad.as_entire_binding(),
                scratch.as_entire_binding(),
                state.as_entire_binding(),
                record.as_entire_binding(),
            ]
            .into_iter()
            .enumerate()
            .map(|(binding, resource)| wgpu::BindGroupEntry { binding: binding as u32, resource })
            .collect::<Vec<_>>(),
        });

        let layer_groups = layers
            .iter()
            .enumerate()
            .map(|(index, layer)| {
                let uniform = LayerUniform {
                    fan_in: layer.fan_in as u32,
                    fan_out: layer.fan_out as u32,
                    weight_offset: layer.weight_offset as u32,
                    bias_offset: layer.bias_offset as u32,
                    input_offset: if index == 0 { 0 } else { output_offsets[index - 1] as u32 },
                    output_offset: output_offsets[index] as u32,
                    delta_out_offset: deltas[index % 2] as u32,
                    delta_in_offset: deltas[(index + 1) % 2] as u32,
                    relu: layer.relu.into(),
                    first: (index == 0).into(),
                    partial_offset: partial_offset as u32,
                    pad: 0,
                };
                let buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some("layer"),
                    contents: bytemuck::bytes_of(&uniform),
                    usage: wgpu::BufferUsages::UNIFORM,
                });
                device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("fedcare layer"),
                    layout: &kernels.layer_layout,
                    entries: &[wgpu::BindGroupEntry { binding: 0, resource: buffer.as_entire_binding() }],
                })
            })
            .collect();

        Ok(Self {
            layers,
            param_count,
            params: params_buffer,
            grad,
            order,
            record,
            record_words,
            buffers_group,
            layer_groups,
            state,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_over_the_device_limits_are_refused_by_name() {
        let limits = wgpu::Limits { max_storage_buffer_binding_size: 1 << 20, ..wgpu::Limits::default() };
        check_size("the feature matrix", 1 << 20, &limits).unwrap();
        let error = check_size("the feature matrix", (1 << 20) + 4, &limits).unwrap_err();
        assert!(matches!(error, GpuError::TooLarge { what: "the feature matrix", limit: 1048576, .. }), "{error}");
        assert!(error.to_string().contains("the feature matrix needs 1048580 bytes"), "{error}");
        assert!(check_u32("rows", 1 << 40).is_err());
        check_kernel_size("rows", MAX_KERNEL_SIZE).unwrap();
        let error = check_kernel_size("rows", MAX_KERNEL_SIZE + 1).unwrap_err().to_string();
        assert!(error.contains("rows = 2147483649") && error.contains("at most 2^31"), "{error}");
    }

    #[test]
    fn models_deeper_than_the_kernels_take_are_refused() {
        let spec = ModelSpec::mlp(4, &[2; MAX_LAYERS]).unwrap();
        let error = check_spec(&spec, &wgpu::Limits::default()).unwrap_err().to_string();
        assert!(error.contains("17 layers"), "{error}");
        check_spec(&ModelSpec::mlp(4, &[2; MAX_LAYERS - 1]).unwrap(), &wgpu::Limits::default()).unwrap();
        let wide = ModelSpec::mlp(70_000, &[]).unwrap();
        assert!(check_spec(&wide, &wgpu::Limits::default()).is_err(), "70,000 inputs exceed 65,535 workgroups");
    }
}
