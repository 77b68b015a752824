//! # fedcare-core
//!
//! The deterministic maths every fedcare participant shares: the model (logistic regression and
//! ReLU MLPs with one logit out) over ONE flat `f32` parameter vector, its forward and backward
//! passes, the loss (binary cross-entropy with logits, `pos_weight`, L2, FedProx), the local
//! optimizers (SGD with momentum, Adam), the training loop, the evaluation metrics, the
//! server-side update rules (FedAvg, FedAdam), the fixed-point codec that turns model updates into
//! integers for homomorphic encryption, the feature statistics and `top_k` column shapes every
//! party agrees on, the metrics of binned scores the secure evaluation decrypts (overall and per
//! subgroup: [`subgroup`]) and the Platt
//! scaling fitted to them ([`calibration`]), the one versioned, size-capped, checksummed
//! [`envelope`] of every file and binary message, and the model file.
//!
//! Guarantees:
//! - `#![no_std]` + `alloc`: it runs on edge devices; `std` (on by default) only adds runtime
//!   CPU-feature detection for the matrix kernels and nothing that changes an API.
//! - Deterministic: the same seed and data give the same parameter bits on every run on the
//!   same machine (all randomness comes from [`rng`], seeded explicitly).
//! - No `unsafe`, no panics on bad input: data, configuration and files are checked and refused
//!   with an [`Error`] that carries the values that failed.
//!
//! The flat parameter layout is documented in [`spec`]; the GPU trainer and the codec use it too.
#![no_std]
#![forbid(unsafe_code)]
#![warn(clippy::std_instead_of_alloc)]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

pub mod calibration;
pub mod codec;
pub mod dataset;
pub mod envelope;
pub mod error;
pub mod explore;
pub mod fedopt;
pub mod gbdt;
pub mod histogram;
pub mod loss;
pub mod metrics;
pub mod model_file;
pub mod nn;
pub mod optim;
pub mod privacy;
pub mod rng;
pub mod spec;
pub mod stats;
pub mod subgroup;
pub mod top_k;
pub mod train;

pub use calibration::Platt;
pub use codec::{Codec, CodecConfig, Encoded};
pub use dataset::Dataset;
pub use error::Error;
pub use fedopt::{ServerOptimizer, ServerOptimizerConfig, weighted_mean};
pub use histogram::ScoreHistogram;
pub use metrics::Evaluation;
pub use model_file::ModelFile;
pub use nn::Network;
pub use optim::{Optimizer, OptimizerConfig};
pub use spec::{LayerShape, ModelSpec};
pub use stats::{ColumnStats, Moments};
pub use top_k::TopKShape;
pub use train::{
    InOrder, PART_ROWS, Parts, TrainConfig, TrainReport, clipped_gradient, train, train_in_parts, train_private,
    train_private_in_parts,
};

/// Result type of this crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;
