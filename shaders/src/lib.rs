//! # fedcare-shaders
//!
//! The WGSL compute shaders of the GPU trainer, one `.wgsl` file per concern, embedded with
//! `include_str!`. Every kernel source is `common.wgsl` (the shared run settings, layer shape and
//! buffer bindings) followed by the kernel's own file, so all kernels agree on one binding
//! layout. A plain `cargo test` parses and validates each of them with naga.
//!
//! What each kernel computes is documented at the top of its file; together they are the same
//! maths as `fedcare_core`'s CPU trainer (forward, BCE-with-logits with `pos_weight`, backward,
//! L2 and FedProx penalties, SGD/Adam with PyTorch's rules), and DP-SGD's per-patient clipping
//! and Philox noise (`fedcare_core::train_private`).
#![forbid(unsafe_code)]
#![no_std]

/// One compute kernel: its name, WGSL source and entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernel {
    /// The file it comes from, for messages.
    pub name: &'static str,
    /// Complete WGSL source (`common.wgsl` + the kernel's file).
    pub source: &'static str,
    /// The compute entry point.
    pub entry_point: &'static str,
}

macro_rules! kernel {
    ($file:literal, $entry:literal) => {
        Kernel {
            name: $file,
            source: concat!(include_str!("../wgsl/common.wgsl"), include_str!(concat!("../wgsl/", $file))),
            entry_point: $entry,
        }
    };
    // A kernel that also calls the functions of other kernels' files.
    ($file:literal, $entry:literal, uses $($used:literal),+) => {
        Kernel {
            name: $file,
            source: concat!(
                include_str!("../wgsl/common.wgsl"),
                $(include_str!(concat!("../wgsl/", $used)),)+
                include_str!(concat!("../wgsl/", $file))
            ),
            entry_point: $entry,
        }
    };
}

/// Dense-layer matrix products (forward, weight and bias gradient, input gradient; pipeline
/// constant `MODE`).
pub const MATMUL: Kernel = kernel!("matmul.wgsl", "matmul");
/// Adds the split-K partial weight and bias gradients of a tiled layer.
pub const SPLIT_SUM: Kernel = kernel!("split_sum.wgsl", "split_sum");
/// Forward product of a narrow layer (fewer than [`NARROW_BELOW`] outputs).
pub const FORWARD_NARROW: Kernel = kernel!("narrow.wgsl", "forward_narrow");
/// Weight and bias gradient of a narrow layer.
pub const WEIGHT_GRADIENT_NARROW: Kernel = kernel!("narrow.wgsl", "weight_gradient_narrow");
/// Mean BCE-with-logits loss of a batch and its gradient.
pub const LOSS: Kernel = kernel!("loss.wgsl", "loss_gradient");
/// L2 and FedProx penalties and the SGD/Adam update.
pub const OPTIMIZER: Kernel = kernel!("optimizer.wgsl", "update");
/// A whole training step of a small model in one workgroup and one dispatch.
pub const FUSED_STEP: Kernel = kernel!("fused_step.wgsl", "fused_step", uses "loss.wgsl", "optimizer.wgsl");
/// Ends a step: advances the step counters.
pub const ADVANCE: Kernel = kernel!("step.wgsl", "advance");
/// Copies the current batch's logits out for scoring.
pub const COLLECT_LOGITS: Kernel = kernel!("step.wgsl", "collect_logits");

/// DP-SGD: each batch row's share of its patient's squared gradient norm, for the bound layer.
pub const PATIENT_NORMS: Kernel = kernel!("private.wgsl", "patient_norms");
/// DP-SGD: the last layer's deltas scaled so each patient's gradient norm is at most `C`.
pub const CLIP_ROWS: Kernel = kernel!("private.wgsl", "clip_rows");
/// DP-SGD: the Gaussian noise (Philox4x32-10, Box–Muller) added to the gradient.
pub const ADD_NOISE: Kernel = kernel!("private.wgsl", "add_noise");

/// Every kernel, for validation and for building pipelines.
pub const ALL: [Kernel; 12] = [
    MATMUL,
    SPLIT_SUM,
    FORWARD_NARROW,
    WEIGHT_GRADIENT_NARROW,
    LOSS,
    OPTIMIZER,
    FUSED_STEP,
    ADVANCE,
    COLLECT_LOGITS,
    PATIENT_NORMS,
    CLIP_ROWS,
    ADD_NOISE,
];

/// Layers with fewer outputs than this use the narrow kernels for forward and weight gradient.
pub const NARROW_BELOW: usize = 16;

/// Rows and columns of C each matmul workgroup computes (see `matmul.wgsl`).
pub const MATMUL_TILE: u32 = 64;
/// Batch rows per split of a tiled weight-gradient product (`SPLIT_ROWS` in `common.wgsl`).
pub const SPLIT_ROWS: u32 = 128;
/// Threads per workgroup of the one-dimensional kernels (loss, optimizer, logits, split sums).
pub const THREADS: u32 = 256;
/// Most layers a model may have on the GPU (`Run::bias_ranges` in `common.wgsl`).
pub const MAX_LAYERS: usize = 16;
/// Words before the per-step losses or per-row logits in the `record` buffer.
pub const RECORD_HEADER: usize = 2;

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;
    use std::string::String;

    fn validate(kernel: &Kernel) -> Result<naga::Module, String> {
        let module = naga::front::wgsl::parse_str(kernel.source)
            .map_err(|e| format!("{}: {}", kernel.name, e.emit_to_string(kernel.source)))?;
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::default())
            .validate(&module)
            .map_err(|e| format!("{}: {}", kernel.name, e.emit_to_string(kernel.source)))?;
        Ok(module)
    }

    #[test]
    fn every_shader_parses_and_validates_with_naga() {
        for kernel in ALL {
            let module = validate(&kernel).unwrap_or_else(|e| panic!("{e}"));
            let entry = module.entry_points.iter().find(|e| e.name == kernel.entry_point);
            let entry = entry.unwrap_or_else(|| panic!("{}: no entry point {}", kernel.name, kernel.entry_point));
            assert_eq!(entry.stage, naga::ShaderStage::Compute, "{}", kernel.name);
        }
    }

    #[test]
    fn the_rust_constants_match_the_shaders() {
        assert!(MATMUL.source.contains(&format!("const TILE: u32 = {MATMUL_TILE}u;")));
        for kernel in [LOSS, SPLIT_SUM, FORWARD_NARROW] {
            assert!(kernel.source.contains(&format!("const THREADS: u32 = {THREADS}u;")), "{}", kernel.name);
        }
        assert!(OPTIMIZER.source.contains(&format!("@workgroup_size({THREADS})")));
        assert!(COLLECT_LOGITS.source.contains(&format!("@workgroup_size({THREADS})")));
        assert!(MATMUL.source.contains(&format!("bias_ranges: array<vec4<u32>, {MAX_LAYERS}>")));
        assert!(MATMUL.source.contains(&format!("const RECORD_HEADER: u32 = {RECORD_HEADER}u;")));
        assert!(MATMUL.source.contains(&format!("const SPLIT_ROWS: u32 = {SPLIT_ROWS}u;")));
        assert!(SPLIT_SUM.source.contains(&format!("@workgroup_size({THREADS})")));
    }

    #[test]
    fn a_broken_shader_is_reported_with_its_name() {
        let broken = Kernel { name: "broken.wgsl", source: "fn f( {", entry_point: "f" };
        let error = validate(&broken).unwrap_err();
        assert!(error.starts_with("broken.wgsl:"), "{error}");
    }
}
