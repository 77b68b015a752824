//! The compute pipelines, built once per device, and the bind group layouts they share.
//!
//! Every kernel uses the same two bind groups (see `common.wgsl`): group 0 holds the run
//! settings and the eight storage buffers of a [`crate::workspace::Workspace`], group 1 one
//! layer's shape. The layouts are explicit so one bind group serves every pipeline.

use fedcare_shaders::Kernel;

/// Pipelines and layouts for one device.
#[derive(Debug)]
pub struct Kernels {
    /// Group 0: run settings and buffers.
    pub buffers_layout: wgpu::BindGroupLayout,
    /// Group 1: one layer's shape.
    pub layer_layout: wgpu::BindGroupLayout,
    /// Forward product with fused bias and ReLU.
    pub forward: wgpu::ComputePipeline,
    /// Weight gradient product.
    pub weight_gradient: wgpu::ComputePipeline,
    /// Sum of split-K partial weight gradients.
    pub split_sum: wgpu::ComputePipeline,
    /// Input gradient product with the ReLU mask.
    pub input_gradient: wgpu::ComputePipeline,
    /// Forward product of a narrow layer.
    pub forward_narrow: wgpu::ComputePipeline,
    /// Weight gradient of a narrow layer.
    pub weight_gradient_narrow: wgpu::ComputePipeline,
    /// Loss and its gradient.
    pub loss: wgpu::ComputePipeline,
    /// Bias gradient reduction.
    pub bias_gradient: wgpu::ComputePipeline,
    /// Penalties and optimizer update.
    pub update: wgpu::ComputePipeline,
    /// Step counters.
    pub advance: wgpu::ComputePipeline,
    /// Logit copy for scoring.
    pub collect_logits: wgpu::ComputePipeline,
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

impl Kernels {
    /// Compiles every kernel for `device`.
    pub fn new(device: &wgpu::Device) -> Self {
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
        let build = |kernel: Kernel, constants: &[(&str, f64)]| {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel.name),
                source: wgpu::ShaderSource::Wgsl(kernel.source.into()),
            });
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry_point),
                layout: Some(&layout),
                module: &module,
                entry_point: Some(kernel.entry_point),
                compilation_options: wgpu::PipelineCompilationOptions { constants, ..Default::default() },
                cache: None,
            })
        };
        Self {
            forward: build(fedcare_shaders::MATMUL, &[("MODE", 0.0)]),
            weight_gradient: build(fedcare_shaders::MATMUL, &[("MODE", 1.0)]),
            input_gradient: build(fedcare_shaders::MATMUL, &[("MODE", 2.0)]),
            split_sum: build(fedcare_shaders::SPLIT_SUM, &[]),
            forward_narrow: build(fedcare_shaders::FORWARD_NARROW, &[]),
            weight_gradient_narrow: build(fedcare_shaders::WEIGHT_GRADIENT_NARROW, &[]),
            loss: build(fedcare_shaders::LOSS, &[]),
            bias_gradient: build(fedcare_shaders::BIAS_GRADIENT, &[]),
            update: build(fedcare_shaders::OPTIMIZER, &[]),
            advance: build(fedcare_shaders::ADVANCE, &[]),
            collect_logits: build(fedcare_shaders::COLLECT_LOGITS, &[]),
            buffers_layout,
            layer_layout,
        }
    }
}
