//! # fedcare-gpu-trainer
//!
//! Trains `fedcare-core` models on a GPU through wgpu: adapter choice, pipelines built once, the
//! dataset uploaded once, whole epochs recorded as batched dispatches, then parameters, losses and
//! scores read back. Same model spec, parameter layout, hyperparameters and batch order as the
//! CPU trainer in `fedcare-core`, and checked against it in tests.
//!
//! Empty until the GPU-trainer work lands; the crate exists so the workspace has its final shape.
#![forbid(unsafe_code)]
