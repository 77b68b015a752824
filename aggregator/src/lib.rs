//! # fedcare-aggregator
//!
//! The aggregator's shell around the protocol's coordinator ([`fedcare_protocol::coordinator`]):
//! the tonic service that turns requests into events and carries out the actions ([`server`]),
//! connections and their TLS handshakes under limits ([`listener`]), the health endpoint
//! ([`health`]) and Prometheus metrics ([`metrics`]), what it keeps on disk ([`persistence`],
//! and an exploration's report, [`exploration`]), its configuration ([`config`]), and a
//! federation's record in an MLflow tracking server ([`tracking`]) or TensorBoard event files
//! ([`tensorboard`]).
//!
//! Guarantees:
//! - It never depends on patient data: `fedcare-data` is not in this crate's graph (CI checks
//!   `cargo tree -p fedcare-aggregator`).
//! - It holds no secret key; every hospital checks what it relays.
//! - Peer data is never trusted: every message has a size cap and is checked before use; a bad
//!   request gets a typed refusal and leaves the round intact.
//! - Nothing reported done is lost on a crash: every file is replaced atomically, and a
//!   restarted aggregator resumes from its last checkpoint.
#![forbid(unsafe_code)]

pub mod config;
pub mod exploration;
pub mod health;
pub mod listener;
pub mod metrics;
pub mod persistence;
pub mod server;
pub mod tensorboard;
pub mod tracking;

pub use fedcare_net::{error, identity, tls};
pub use fedcare_protocol as protocol;
pub use fedcare_protocol::{convert, coordinator, transfer};
