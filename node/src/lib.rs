//! # fedcare-node
//!
//! The `fedcare` program: the aggregator and hospital roles, threshold encryption, data loading,
//! and the command line. Today it offers what `fedcare-core` makes possible on its own
//! ([`inspect`]); the federation, crypto and data modules arrive with their issues.

pub mod inspect;
