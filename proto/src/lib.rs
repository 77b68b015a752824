//! # fedcare-proto
//!
//! The `fedcare.v1.Federation` gRPC service and its messages (join, key shares, collective key
//! and global model, encrypted updates, aggregate masks, decryption shares, status), generated
//! with tonic at build time without a system `protoc`.
//!
//! Empty until the federation work lands; the crate exists so the workspace has its final shape.
#![forbid(unsafe_code)]
