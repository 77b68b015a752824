//! # fedcare-gpu-trainer
//!
//! Trains `fedcare-core` models on a GPU through wgpu and the WGSL kernels of
//! `fedcare-shaders`: adapter choice ([`device`]), pipelines built once ([`kernels`]), the
//! dataset uploaded once ([`GpuDataset`]), whole epochs recorded as batched dispatches with one
//! submission each ([`GpuTrainer`]), then parameters, per-epoch losses and scores read back.
//! [`GpuTrainer::profile`] times every dispatch of a few steps with GPU timestamps ([`profile`]).
//! DP-SGD (`GpuTrainer::train_private`) samples the same patients as the CPU, clips each one's
//! gradient and adds the same Philox noise in WGSL.
//!
//! Guarantees: same model spec, flat parameter layout, hyperparameters and batch order as the
//! CPU trainer (`fedcare_core::train`), so results agree up to float rounding — tests check every
//! kernel and whole training runs against the CPU with stated tolerances. Every failure is a
//! [`GpuError`] that names what was found: no adapter, a buffer over the device's limits, an
//! unsupported shape, a lost device.
//!
//! Its one `unsafe` block builds the shader modules without loop bounding, with the argument
//! that every loop of every kernel ends beside it ([`kernels`]).
#![deny(unsafe_code)]

pub mod device;
pub mod error;
pub mod kernels;
mod plan;
pub mod profile;
mod recorder;
pub mod testing;
pub mod trainer;
pub mod workspace;

pub use device::{AdapterSummary, Gpu, Selection};
pub use error::{GpuError, Result};
pub use profile::{KernelTime, Profile, TimestampPlacement};
pub use trainer::{FUSED_CANDIDATE_WORK, GpuTrainer, MEASURED_STEPS, MeasuredStep, Step};
/// The wgpu this crate is built on, for callers that pick backends or hand in a device.
pub use wgpu;
pub use workspace::GpuDataset;
