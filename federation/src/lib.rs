//! # fedcare-federation
//!
//! The federation's shells around the pure protocol ([`fedcare_protocol`], re-exported as
//! [`protocol`], with its [`transcript`], [`output`] and [`selection`] modules under the paths
//! this crate has always offered): every conversion to and from the `fedcare.v1` wire forms
//! ([`convert`]); the aggregator's logic as a state machine ([`coordinator`]: events in, actions
//! out, time passed in); the tonic service as a thin shell around it ([`server`], node identity
//! from one interceptor in [`identity`], connections and their TLS handshakes under limits in
//! [`listener`]); the hospital client ([`hospital`]) around the protocol's participant, with its
//! signing key ([`signing`]) and its decryption ledger in a file ([`participant`]); what the
//! aggregator keeps on disk ([`persistence`]); mTLS ([`tls`]); configuration ([`config`]);
//! chunked transfers ([`transfer`]); the aggregator's health endpoint ([`health`]) and
//! Prometheus metrics ([`metrics`]); exploration reports on disk ([`exploration`]); and a whole
//! federation on one machine ([`simulation`]).
//!
//! Guarantees:
//! - The aggregator side never depends on patient data: `fedcare-data` comes with the
//!   `hospital` feature only (the client and the simulation), and CI builds the crate without
//!   it.
//! - The aggregator holds no secret key and is not trusted: a hospital checks everything it
//!   relays ([`fedcare_protocol::participant`]: its own roster and pinned keys, signed key shares
//!   it sums itself, a signed round transcript all participants agree on, masks checked against
//!   signed fingerprints, a durable ledger so that no round is decrypted twice) before it
//!   encrypts or decrypts anything, and checks the decrypted sum against signed fingerprints
//!   before it applies the agreed rule itself ([`output`]) and endorses the result.
//! - Peer data is never trusted: every message has a size cap and is checked before use; a bad
//!   request gets a typed [`error::Refusal`] and leaves the round intact.
//! - Nothing reported done is lost on a crash: every file is replaced atomically, and a
//!   restarted aggregator resumes from its last checkpoint.
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod exploration;
pub mod health;
#[cfg(feature = "hospital")]
pub mod hospital;
pub mod identity;
pub mod listener;
pub mod metrics;
pub mod participant;
pub mod persistence;
pub mod server;
pub mod signing;
#[cfg(feature = "hospital")]
pub mod simulation;
pub mod tls;

/// The protocol's types and rules, pure ([`fedcare_protocol`]), under the paths this crate has
/// always offered them.
pub use fedcare_protocol as protocol;
pub use fedcare_protocol::{convert, coordinator, output, selection, transcript, transfer};

pub use error::{FederationError, Refusal, Result};
