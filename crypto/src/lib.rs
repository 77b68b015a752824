//! # fedcare-crypto
//!
//! Threshold additive homomorphic encryption of model updates (N-of-N multiparty RLWE on tfhe's
//! `core_crypto`, after Mouchet et al., "Multiparty Homomorphic Encryption from Ring-Learning-
//! With-Errors").
//!
//! # Threat model
//! - The aggregator may deviate arbitrarily; the parties (hospitals) follow the protocol; the
//!   network is hostile (the transport adds mTLS). The aggregator never holds a key: it only
//!   adds ciphertexts and combines decryption shares. What a party checks itself here: the
//!   collective key it encrypts under is the sum of the relayed shares with its own among them
//!   ([`PartySession::collective_key`]), and the masks it decrypts are exactly the sum of the
//!   contributions' masks ([`check`]), and so is the decrypted sum it accepts. Binding those messages to one signed round transcript
//!   is `fedcare-federation`'s part.
//! - N-of-N: the collective secret key is the sum of every party's share, so any coalition short
//!   of *all* contributors — the aggregator included — cannot decrypt one party's ciphertext.
//! - Keys are fresh every round ([`PartySession`]): a key share makes exactly one decryption share
//!   and is then destroyed, because two decryptions under one share leak it.
//!
//! # What leaks
//! Only the sum: everyone learns the decrypted aggregate (the weighted mean update) and nothing
//! else about any one party's update. A party refuses to help decrypt an aggregate that lacks its
//! own contribution or has fewer than `min_parties` contributors, so the aggregator cannot have a
//! single party's ciphertext decrypted by relabelling it as an aggregate.
//!
//! # Why the smudging is as wide as it is
//! A decryption share `⟨mask, s_i⟩` would expose the key share through the aggregate's noise; each
//! party adds `TUniform(σ)` smudging noise with `σ = log2(Δ) − 2 − ⌈log2 N⌉` (32 − ⌈log2 N⌉ for
//! `Δ = 2^34`), the widest that keeps the worst-case total below `Δ/2` so that decoding stays
//! exact (see [`params`]). With `q = 2^64` that is only 9–19 bits wider than the aggregate's own
//! noise (3 to 64 parties), not the textbook 40 bits of statistical distance. This is acceptable
//! here because every key share makes exactly one decryption share of one aggregate (fresh keys
//! every round), so an observer never sees two smudged shares of the same secret; a `u128` torus
//! would buy 45–50 bits at about twice the size and 25–45 times the time.
//!
//! # Flow of one round
//! 1. The aggregator announces a fresh [`Crs`]; each party starts a [`PartySession`] and publishes
//!    its [`PublicKeyShare`].
//! 2. The aggregator sums them in a [`KeyShareCollector`] into the [`CollectivePublicKey`].
//! 3. Each party encrypts its encoded update ([`PartySession::encrypt`]).
//! 4. The aggregator adds the ciphertexts in an [`AggregateBuilder`].
//! 5. Each party checks the [`AggregateMasks`] against the contributors' fingerprints
//!    ([`check`]), then makes a [`DecryptionShare`]; the aggregator
//!    [`combines`](Aggregate::combine) them into the exact sum of the plaintext words.
//!
//! Every message has a versioned wire encoding inside `fedcare-core`'s checksummed envelope, with
//! size limits checked before anything is allocated ([`wire`]). Sizes and scales are newtypes
//! ([`params`]). This crate knows `fedcare-core`'s codec and nothing of the network.
#![forbid(unsafe_code)]

mod aggregate;
pub mod check;
mod ciphertext;
mod error;
mod keys;
mod packing;
pub mod params;
mod party;
mod random;
mod streaming;
pub mod threads;
pub mod wire;

#[cfg(test)]
mod tests;

pub use aggregate::{Aggregate, AggregateBuilder, AggregateMasks, DecryptedSum, Decryption, DecryptionShare};
pub use check::{Challenge, MaskCheck, MaskFingerprint};
pub use ciphertext::{Ciphertext, ContributionHash};
pub use error::CryptoError;
pub use keys::{CollectivePublicKey, Crs, KeyShareCollector, MAX_PARTY_ID_LEN, PartyId, PublicKeyShare};
pub use params::{DeltaLog2, NoiseBudget, NoiseLog2, PARAMS_V2, PartyCount, PolynomialSize, ThresholdParams, WireBits};
pub use party::PartySession;
pub use streaming::{ContributionStream, WordRun};
pub use wire::{WireLimits, WireMessage};
