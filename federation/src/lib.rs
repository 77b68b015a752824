//! # fedcare-federation
//!
//! The federation: the protocol's types, each defined once ([`protocol`]) with every conversion
//! to and from the `fedcare.v1` wire forms in one module ([`convert`]); the aggregator's logic as
//! a pure state machine ([`coordinator`]: events in, actions out, time passed in); the tonic
//! service as a thin shell around it ([`server`], node identity from one interceptor in
//! [`identity`], connections and their TLS handshakes under limits in [`listener`]); the
//! hospital client ([`hospital`]); what the aggregator keeps on disk ([`persistence`]); mTLS
//! ([`tls`]); configuration ([`config`]); chunked transfers ([`transfer`]); the aggregator's
//! health endpoint ([`health`]) and Prometheus metrics ([`metrics`]); what a checked sum gives,
//! computed alike on both sides ([`output`]), among it the best model so far by the secure
//! held-out AUROC ([`selection`]); an exploration's pooled counts and the reports
//! that may be written of them ([`exploration`]); a hospital's protocol logic without I/O
//! ([`participant`]), its signed statements ([`transcript`]) and identity keys ([`signing`]);
//! and a whole federation on one machine ([`simulation`]).
//!
//! Guarantees:
//! - The aggregator side never depends on patient data: `fedcare-data` comes with the
//!   `hospital` feature only (the client and the simulation), and CI builds the crate without
//!   it.
//! - The aggregator holds no secret key and is not trusted: a hospital checks everything it
//!   relays ([`participant`]: its own roster and pinned keys, signed key shares it sums itself, a
//!   signed round transcript all participants agree on, masks checked against signed
//!   fingerprints, a durable ledger so that no round is decrypted twice) before it encrypts or
//!   decrypts anything, and checks the decrypted sum against signed fingerprints before it
//!   applies the agreed rule itself ([`output`]) and endorses the result; what it signs is in
//!   [`transcript`], with keys of its own ([`signing`]).
//! - Peer data is never trusted: every message has a size cap and is checked before use; a bad
//!   request gets a typed [`error::Refusal`] and leaves the round intact.
//! - Nothing reported done is lost on a crash: every file is replaced atomically, and a
//!   restarted aggregator resumes from its last checkpoint.
#![forbid(unsafe_code)]

pub mod config;
pub mod convert;
pub mod coordinator;
pub mod error;
pub mod exploration;
pub mod health;
#[cfg(feature = "hospital")]
pub mod hospital;
pub mod identity;
pub mod listener;
pub mod metrics;
pub mod output;
pub mod participant;
pub mod persistence;
pub mod protocol;
pub mod selection;
pub mod server;
pub mod signing;
#[cfg(feature = "hospital")]
pub mod simulation;
pub mod tls;
pub mod transcript;
pub mod transfer;

pub use error::{FederationError, Refusal, Result};
