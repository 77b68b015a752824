//! # fedcare-protocol
//!
//! The federation's sans-IO heart: what both roles agree on and how a hospital decides, with no
//! socket, file, clock or OS random source inside (a `clippy.toml` in this crate makes each of
//! them a lint error; the shells, `fedcare-aggregator` and `fedcare-hospital`, pass time and
//! randomness in).
//!
//! - Who and what: [`ids`] (nodes, sessions), [`task`] (what the aggregator asks, what an upload
//!   announces), [`settings`] (the federation's settings, job and privacy, the public figures),
//!   [`record`] (what a session measured).
//! - What a hospital contributes to each kind of session and how the sum is read back:
//!   [`contribution`]; a model's parameters as bytes: [`params`].
//! - The wire: every conversion to and from the `fedcare.v1` messages, checked field by field
//!   ([`convert`]), and payloads cut into chunks and put together again under a cap
//!   ([`transfer`]). The gRPC streams themselves are the shells'.
//! - Signed statements: keys and signatures ([`signing`]), the statements of every step, the
//!   round transcript and the digests endorsements cover ([`transcript`]), the roster a
//!   hospital pins ([`roster`]); the digests and nonces statements bind, one type each
//!   ([`digest`]).
//! - The session rules, applied alike by the aggregator and every hospital to a checked sum:
//!   [`output`] (the next global model, server state and model file) and [`selection`] (the best
//!   model so far, when training ends); an exploration's pooled counts ([`exploration`]).
//! - The aggregator's side as a state machine: [`coordinator`] (`handle(event, now) -> actions`),
//!   with the state it has its shell write ([`checkpoint`]).
//! - The hospital's side of the protocol as a state machine: [`participant`], with its
//!   decryption ledger behind the [`ledger::Ledger`] trait.
//! - With the `testing` feature: an in-memory federation, coordinator and participants with a
//!   filter on the tasks between them ([`driver`]), and helpers ([`testing`]).
//!
//! Guarantees:
//! - Peer data is never trusted: every decode has a size cap and every relayed statement is
//!   checked against the hospital's own roster before use.
//! - A hospital's participant takes each task only in the state its step needs: a task out of
//!   order finds no state that accepts it, and is refused with [`error::TrustError::OutOfOrder`].
//! - A decryption share leaves the participant only after the ledger has recorded its slot.
//! - A failing random source is an error ([`error::Error::Random`]), never a default value.
#![forbid(unsafe_code)]

pub mod boosting;
pub mod checkpoint;
pub mod contribution;
pub mod convert;
pub mod coordinator;
pub mod digest;
#[cfg(any(test, feature = "testing"))]
pub mod driver;
pub mod error;
pub mod exploration;
pub mod ids;
pub mod ledger;
pub mod output;
pub mod params;
pub mod participant;
pub mod record;
pub mod roster;
pub mod selection;
pub mod settings;
pub mod signing;
pub mod task;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transcript;
pub mod transfer;

pub use contribution::{
    ContributionLayout, DecodedSum, GlobalEvaluation, LocalEvaluation, LocalSubgroups, PooledSubgroups, SetupCounts,
    check_exploration,
};
pub use digest::{
    ChallengeSeed, FileDigest, KeyShareDigest, MasksDigest, Nonce, SettingsDigest, StateContent, StateDigest,
    SumDigest, TranscriptDigest,
};
pub use error::{
    ConfigError, Error, InvalidServerState, OutOfRange, OutputError, ProtocolError, Refusal, Result, TransferError,
    TrustError,
};
pub use ids::{Fingerprint, InvalidName, NodeId, Planned, SessionId, SessionKind, TaskKind};
pub use record::{CALIBRATION_BINS, ROC_POINTS, RoundRecord};
pub use settings::{
    Agreement, BOOSTING_SESSION_STATISTICS, ExploreNoise, FederationPlan, FederationSettings, Job, JobKind,
    MAX_ATTEMPTS, Privacy, PublicFigures,
};
pub use task::{Task, UploadHeader, UploadKind};
