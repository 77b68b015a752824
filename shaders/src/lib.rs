//! # fedcare-shaders
//!
//! The WGSL compute shaders of the GPU trainer, one `.wgsl` file per concern (matmul with fused
//! bias and activation, backward matmuls, loss gradient with `pos_weight`, reductions, optimizer
//! updates, scoring), embedded with `include_str!` and each parsed and validated by naga in a
//! plain `cargo test`.
//!
//! Empty until the GPU-trainer work lands; the crate exists so the workspace has its final shape.
#![forbid(unsafe_code)]
