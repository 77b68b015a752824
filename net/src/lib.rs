//! # fedcare-net
//!
//! What the federation's two network roles share, and nothing of either role's logic (that is
//! `fedcare-protocol`'s) or data (the aggregator's shell never sees patient data; the hospital's
//! keeps it): the shells' error type and how a refusal travels as a gRPC status ([`error`]),
//! mTLS — certificates, keys, rustls and tonic configurations, the development PKI ([`tls`]) —,
//! the peer-identity interceptor and the in-process transport ([`identity`]), the signing key a
//! hospital reads from its key file ([`signing`]), configuration files ([`config`]) and atomic
//! writes ([`files`]).
//!
//! Guarantees:
//! - A node's identity is its mTLS certificate's name, read in one interceptor; handlers never
//!   parse certificates.
//! - Private keys are written owner-only and never overwritten.
//! - A refusal travels with its stable kind, so a peer acts on the kind, never on the text.
#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod files;
pub mod identity;
pub mod signing;
pub mod tls;

pub use error::{FederationError, Refusal, Result};
