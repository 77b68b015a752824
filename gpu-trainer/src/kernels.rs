//! The compute pipelines, built once per device, and the bind group layouts they share.
//!
//! Every kernel uses the same two bind groups (see `common.wgsl`): group 0 holds the run
//! settings and the eight storage buffers of a [`crate::workspace::Workspace`], group 1 one
//! layer's shape. The layouts are explicit so one bind group serves every pipeline.
//!
//! The modules are built without wgpu's loop bounding (a counter naga puts into every loop so a
//! driver may not assume it ends), which kept drivers from unrolling the matmul's inner loops
//! and holding its 4×4 accumulator block in registers; bounds checks on every buffer access
//! stay. This is the crate's one `unsafe` block ([`trusted_checks`] says why every loop ends).

use fedcare_shaders::{Kernel, MATMUL_TILE, THREADS};

use crate::error::{GpuError, Result};
use crate::recorder::Pipeline;

/// Shared memory one matmul workgroup stages: two 64×16 f32 tiles.
const MATMUL_WORKGROUP_BYTES: u32 = 2 * MATMUL_TILE * 16 * 4;

/// Checks that `limits` allow the kernels' fixed shapes: 256-thread workgroups (16×16 for the
/// matmul), 8 KiB of shared memory per matmul workgroup and eight storage buffers per kernel.
/// WebGPU's defaults allow all of them; downlevel (GLES-class) adapters may not.
pub fn check_limits(limits: &wgpu::Limits) -> Result<()> {
    let needs = [
        ("max_compute_invocations_per_workgroup", THREADS, limits.max_compute_invocations_per_workgroup),
        ("max_compute_workgroup_size_x", THREADS, limits.max_compute_workgroup_size_x),
        ("max_compute_workgroup_size_y", 16, limits.max_compute_workgroup_size_y),
        ("max_compute_workgroup_storage_size", MATMUL_WORKGROUP_BYTES, limits.max_compute_workgroup_storage_size),
        ("max_storage_buffers_per_shader_stage", 8, limits.max_storage_buffers_per_shader_stage),
        ("max_bind_groups", 2, limits.max_bind_groups),
    ];
    match needs.iter().find(|(_, need, have)| have < need) {
        Some((name, need, have)) => {
            Err(GpuError::Unsupported(format!("this adapter's {name} is {have}; the kernels need {need}")))
        }
        None => Ok(()),
    }
}

/// Pipelines and layouts for one device.
#[derive(Debug)]
pub struct Kernels {
    /// Group 0: run settings and buffers.
    pub buffers_layout: wgpu::BindGroupLayout,
    /// Group 1: one layer's shape.
    pub layer_layout: wgpu::BindGroupLayout,
    /// Forward product with fused bias and ReLU.
    pub forward: Pipeline,
    /// Weight and bias gradient product.
    pub weight_gradient: Pipeline,
    /// Sum of split-K partial weight and bias gradients.
    pub split_sum: Pipeline,
    /// Input gradient product with the ReLU mask.
    pub input_gradient: Pipeline,
    /// Forward product of a narrow layer.
    pub forward_narrow: Pipeline,
    /// Weight and bias gradient of a narrow layer.
    pub weight_gradient_narrow: Pipeline,
    /// Loss and its gradient.
    pub loss: Pipeline,
    /// Penalties and optimizer update.
    pub update: Pipeline,
    /// A whole step of a small model in one dispatch.
    pub fused_step: Pipeline,
    /// Step counters.
    pub advance: Pipeline,
    /// Logit copy for scoring.
    pub collect_logits: Pipeline,
    /// DP-SGD: per-patient squared gradient norms, one layer at a time.
    pub patient_norms: Pipeline,
    /// DP-SGD: per-patient clipping of the last layer's deltas.
    pub clip_rows: Pipeline,
    /// DP-SGD: Gaussian noise on the gradient.
    pub add_noise: Pipeline,
}

fn uniform(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

fn storage(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// The runtime checks the kernels are built with: wgpu's defaults (bounds checks on every buffer
/// and array access, integer division guards) without loop bounding.
///
/// Without loop bounding a driver may treat a loop that never ends as unreachable, so every loop
/// of every kernel must end, whatever the buffers hold. Each one does (`shaders/wgsl/`):
/// - loops over a constant range, the counter going up by one: the matmul's tile loads, its
///   `TILE_K` inner products and 4×4 block (`matmul.wgsl`), Philox's 10 rounds (`private.wgsl`);
/// - the workgroup sum's tree, `stride` halving from `THREADS / 2` to 0 (`common.wgsl`);
/// - loops from a start up to a `u32` bound, the counter going up by one: `x < bound` holds
///   before each `x++`, so `x` never wraps and the loop ends after at most `bound` iterations
///   whatever the bound is: a layer's `fan_in` and `fan_out` (`narrow.wgsl`, `private.wgsl`),
///   `layer_count` (`optimizer.wgsl`), a patient's rows (`private.wgsl`), the batch's splits
///   (`split_sum.wgsl`);
/// - loops that stride from a thread's index (below `THREADS`) by `THREADS`, or from a split's
///   start by `TILE_K`, while below a bound that is a batch's rows or a layer's width
///   (`loss.wgsl`, `narrow.wgsl`, `matmul.wgsl`): the counter stays below
///   `bound + 256`, which cannot wrap because the host refuses a dataset of more than 2^31 rows
///   and a layer of more than 2^31 units ([`crate::workspace::MAX_KERNEL_SIZE`], checked in
///   `GpuDataset::upload` and `check_spec`), a batch's rows are at most the dataset's (the
///   trainer takes `batch_size.min(rows)`, `check_patient_batch` a DP batch's), and a matmul
///   split starts below its batch's rows (one workgroup per `SPLIT_ROWS` rows);
/// - the fused step's loops (`fused_step.wgsl`): over the layers before one (`j < l + 1`, `l`
///   below `layer_count` ≤ 16), and strided by `THREADS` from a thread's index below a batch's
///   rows × a layer's width, (inputs + 1) × outputs, or the parameter count: each at most the
///   parameters × batch rows, which the host keeps at or below 2^31 for a fused step
///   (`GpuTrainer::step_kind`), so these too stay below `bound + 256` without wrapping.
fn trusted_checks() -> wgpu::ShaderRuntimeChecks {
    wgpu::ShaderRuntimeChecks { force_loop_bounding: false, ..wgpu::ShaderRuntimeChecks::checked() }
}

impl Kernels {
    /// Compiles every kernel for `device`, after checking its limits.
    pub fn new(device: &wgpu::Device) -> Result<Self> {
        check_limits(&device.limits())?;
        let buffers_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("fedcare buffers"),
            entries: &[
                uniform(0),
                storage(1, true),  // features
                storage(2, true),  // labels
                storage(3, true),  // order
                storage(4, false), // params
                storage(5, false), // grad
                storage(6, false), // scratch
                storage(7, false), // optimizer state
                storage(8, false), // record
            ],
        });
        let layer_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("fedcare layer"),
            entries: &[uniform(0)],
        });
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("fedcare kernels"),
            bind_group_layouts: &[Some(&buffers_layout), Some(&layer_layout)],
            immediate_size: 0,
        });
        let build = |name: &'static str, per_layer: bool, kernel: Kernel, constants: &[(&str, f64)]| {
            let descriptor = wgpu::ShaderModuleDescriptor {
                label: Some(kernel.name),
                source: wgpu::ShaderSource::Wgsl(kernel.source.into()),
            };
            #[allow(unsafe_code)]
            // SAFETY: the kernels are ours, compiled in, and every loop of theirs ends for any
            // buffer contents and any size the host lets through (the argument is on
            // `trusted_checks`); every other runtime check stays on.
            let module = unsafe { device.create_shader_module_trusted(descriptor, trusted_checks()) };
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(name),
                layout: Some(&layout),
                module: &module,
                entry_point: Some(kernel.entry_point),
                compilation_options: wgpu::PipelineCompilationOptions { constants, ..Default::default() },
                cache: None,
            });
            Pipeline { name, per_layer, pipeline }
        };
        Ok(Self {
            forward: build("forward", true, fedcare_shaders::MATMUL, &[("MODE", 0.0)]),
            weight_gradient: build("weight gradient", true, fedcare_shaders::MATMUL, &[("MODE", 1.0)]),
            input_gradient: build("input gradient", true, fedcare_shaders::MATMUL, &[("MODE", 2.0)]),
            split_sum: build("split sum", true, fedcare_shaders::SPLIT_SUM, &[]),
            forward_narrow: build("forward (narrow)", true, fedcare_shaders::FORWARD_NARROW, &[]),
            weight_gradient_narrow: build(
                "weight gradient (narrow)",
                true,
                fedcare_shaders::WEIGHT_GRADIENT_NARROW,
                &[],
            ),
            loss: build("loss", false, fedcare_shaders::LOSS, &[]),
            update: build("optimizer", false, fedcare_shaders::OPTIMIZER, &[]),
            fused_step: build("fused step", false, fedcare_shaders::FUSED_STEP, &[]),
            advance: build("advance", false, fedcare_shaders::ADVANCE, &[]),
            collect_logits: build("collect logits", true, fedcare_shaders::COLLECT_LOGITS, &[]),
            patient_norms: build("patient norms", true, fedcare_shaders::PATIENT_NORMS, &[]),
            clip_rows: build("clip rows", true, fedcare_shaders::CLIP_ROWS, &[]),
            add_noise: build("noise", false, fedcare_shaders::ADD_NOISE, &[]),
            buffers_layout,
            layer_layout,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webgpu_default_limits_suffice_and_a_small_adapter_is_named() {
        check_limits(&wgpu::Limits::default()).unwrap();
        // wgpu's downlevel (GLES 3.1-class) defaults allow only four storage buffers per stage.
        let error = check_limits(&wgpu::Limits::downlevel_defaults()).unwrap_err().to_string();
        assert!(error.contains("max_storage_buffers_per_shader_stage is 4"), "{error}");
        let small = wgpu::Limits { max_compute_workgroup_storage_size: 4096, ..wgpu::Limits::default() };
        let error = check_limits(&small).unwrap_err().to_string();
        assert!(error.contains("max_compute_workgroup_storage_size is 4096") && error.contains("8192"), "{error}");
    }
}
