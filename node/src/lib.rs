//! # fedcare-node
//!
//! The `fedcare` program: the aggregator ([`aggregator`], [`checkpoint`]) and hospital
//! ([`hospital`], [`trainer`]) roles, threshold encryption ([`crypto`], self-checked by
//! [`bench_crypto`]), mTLS ([`tls`]), configuration ([`config`]), data ([`schema`], [`ingest`],
//! [`synth`], [`data`], [`top_k`]), what a hospital contributes each round ([`contribution`]), chunked
//! transfers ([`transfer`]), [`simulate`], [`predict`], [`report`], [`inspect`] and the command line.

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
pub mod report;
pub mod schema;
pub mod simulate;
pub mod synth;
pub mod tls;
pub mod top_k;
pub mod trainer;
pub mod transfer;
