//! # fedcare-proto
//!
//! The `fedcare.v1.Federation` gRPC service and its messages (`fedcare/v1/federation.proto`),
//! generated with tonic at build time by protox, without a system `protoc`. Without the `grpc`
//! feature (on by default) the crate is the messages alone, with no network code.
//!
//! Message-size limits are not set here: both ends set them explicitly on the generated
//! client and server wrappers (`max_decoding_message_size`), and large payloads travel in
//! chunks of [`CHUNK_BYTES`].
#![forbid(unsafe_code)]

/// Generated code of package `fedcare.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::std_instead_of_core, clippy::alloc_instead_of_core)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/fedcare.v1.rs"));
}

/// Bytes of payload per chunk message. Each stream in flight holds about one encoded chunk at
/// each end: with 32 hospitals sending or fetching at once, the aggregator's peak memory in the
/// 32 × 1M load test was 214–237 MiB with 256 KiB chunks and 236–254 MiB with 1 MiB ones (two
/// runs each, 2026-12-02, then with mimalloc as the allocator, since dropped).
pub const CHUNK_BYTES: usize = 1 << 18;

/// The largest gRPC message either end decodes: one chunk plus headers.
pub const MAX_MESSAGE_BYTES: usize = CHUNK_BYTES + (64 << 10);
