//! # fedcare-node
//!
//! The `fedcare` program: the aggregator and hospital roles, threshold encryption, data loading,
//! and the command line. Today it has the threshold encryption ([`crypto`]), a
//! self-check of it ([`bench_crypto`]) and model-file inspection ([`inspect`]); the federation
//! and data modules arrive with their issues.

pub mod aggregator;
pub mod bench_crypto;
pub mod checkpoint;
pub mod config;
pub mod contribution;
pub mod crypto;
pub mod data;
pub mod hospital;
pub mod ingest;
pub mod inspect;
pub mod predict;
pub mod schema;
pub mod simulate;
pub mod synth;
pub mod tls;
pub mod trainer;
pub mod transfer;
