//! The coordinator: the aggregator's protocol logic as a pure state machine. Events go in
//! through [`Coordinator::handle`] with the time passed in, [`Action`]s come out; there is no
//! socket, clock, disk or thread inside, so every transition is tested directly
//! (`coordinator/tests.rs`). The aggregator's tonic server (in `fedcare-aggregator`) is a thin shell that turns
//! requests into events and carries out the actions — the heavy ones (verifying an upload,
//! adding a ciphertext, finishing the aggregate, combining the shares, writing files) off the
//! async executor and outside the lock that guards this state.
//!
//! Each round runs as a session `KeyGen -> Reveal -> Confirm -> Contribute -> Challenge -> Prove
//! -> Decrypt -> Result -> Attest -> Accept` among the active hospitals (the steps of
//! [`crate::transcript`]): it collects signed commitments to the public key shares and relays
//! them, then the signed key shares (each the one committed to) and relays them with the global
//! model and server state, relays the signed round transcripts, sums the encrypted
//! contributions, relays the signed commitments to the aggregate and the signed mask
//! fingerprints, collects decryption shares of the sum, hands every hospital the decrypted sum
//! and relays their commitments to it and their output fingerprints, and takes the new state
//! ([`crate::output`]) only once every hospital endorsed the same one; their endorsements go
//! into the model file. The coordinator is not trusted for any of
//! it: every hospital checks what it relays ([`crate::participant`]). Before training a setup session sums the
//! hospitals' row counts, feature moments and `top_k` bucket counts; after training (every round,
//! or fewer when `patience` ends it, [`crate::selection::training_ends`]) an evaluation session
//! scores the last model, and the model file holds the best model evaluated
//! ([`crate::selection`]). An exploration ([`crate::protocol::Job::Explore`])
//! runs the setup session and then one session of every column's counts, and trains nothing.
//!
//! A hospital that misses a phase deadline, or says it leaves, is dropped and the round
//! restarts as a new attempt with fresh keys among the rest, while at least `min_hospitals`
//! remain; a hospital that joins again takes part from the next session (at once, with a fresh
//! attempt, if it was in the running one: it lost its key share). Hospitals never make two
//! decryption shares for one round, so once a session's decryption is opened (recorded in the
//! checkpoint before the fingerprints go out) a failure moves the federation on to the next
//! round instead of running the same round again; a coordinator resumed from such a checkpoint
//! first asks the session's participants for the decrypted sum they hold (`Recover`), and
//! finishes the session from one copy when every participant still holds the session (every
//! hospital checks the sum again), else gives it up. Every upload is checked
//! against the running session (federation, session, node, phase) and refused with a
//! [`Refusal`] otherwise, leaving the round intact.

#[cfg(test)]
mod tests;

use core::fmt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use fedcare_crypto::{
    Aggregate, AggregateBuilder, Ciphertext, CollectivePublicKey, ContributionHash, ContributionStream, Crs,
    CryptoError, DecryptedSum, Decryption, DecryptionShare, KeyShareCollector, PARAMS_V2, PartyId, PublicKeyShare,
    WireLimits, WireMessage,
};

use fedcare_core::Codec;

use crate::checkpoint::{Checkpoint, OpenedSession, Snapshot};
use crate::digest::{StateContent, StateDigest};
use crate::error::{Error, ProtocolError, Refusal};
use crate::exploration::{Exploration, ReportContext};
use crate::output::{SessionInputs, SessionOutput, model_file, server_bytes, session_output};
use crate::params::params_to_bytes;
use crate::selection::{ServerState, kept_record};
use crate::settings::FederationPlan;
use crate::signing::Signed;
use crate::transcript::{
    Claim, Statement, chain_digests, encode_bundle, encode_chain, key_share_digest, state_content,
};
use crate::{
    Job, KeyShareDigest, MAX_ATTEMPTS, NodeId, Planned, PublicFigures, RoundRecord, SessionId, SessionKind, Task,
    TaskKind, UploadHeader, UploadKind,
};

/// Where the coordinator gets each session's common reference string.
pub type CrsSource = Box<dyn FnMut() -> Crs + Send>;

/// A session's work in progress (its sum, its decryption) shared between the coordinator and
/// the workers that feed it off the state lock; gone once finished, or after a panic midway.
#[derive(Debug)]
pub struct SharedWork<T>(Arc<Mutex<Option<T>>>);

impl<T> Clone for SharedWork<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> SharedWork<T> {
    fn new(work: T) -> Self {
        Self(Arc::new(Mutex::new(Some(work))))
    }

    /// Runs `f` on the work, refusing once it is finished.
    fn with<R>(&self, f: impl FnOnce(&mut T) -> Result<R, CryptoError>) -> Result<R, CryptoError> {
        // A poisoned lock means a pass panicked midway: the work may be inconsistent. Refuse to
        // go on with it (the round restarts).
        let mut guard = self.0.lock().unwrap_or_else(|poisoned| {
            let mut guard = poisoned.into_inner();
            *guard = None;
            guard
        });
        guard.as_mut().map_or(Err(CryptoError::Malformed("the round's sum is already finished")), f)
    }

    /// Takes the work out to finish it.
    fn take(&self) -> Result<T, CryptoError> {
        let mut guard = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.take().ok_or(CryptoError::Malformed("the round's sum is already finished"))
    }
}

/// A session's ciphertext sum, fed whole ciphertexts or streamed ones (CPU work: call its
/// methods off the async executor).
pub type SharedBuilder = SharedWork<AggregateBuilder>;

impl SharedBuilder {
    /// Adds one party's whole ciphertext.
    pub fn add(&self, party: PartyId, ciphertext: &Ciphertext) -> Result<ContributionHash, CryptoError> {
        self.with(|builder| builder.add(party, ciphertext))
    }

    /// Starts receiving `party`'s ciphertext piece by piece ([`AggregateBuilder::begin`]).
    pub fn begin(&self, party: PartyId) -> Result<ContributionStream, CryptoError> {
        self.with(|builder| builder.begin(party))
    }

    /// Reads one piece of a streamed ciphertext and adds the words it completed. A piece
    /// refused here leaves nothing of it in the sum (the stream must then be abandoned).
    pub fn add_piece(&self, stream: &mut ContributionStream, piece: &[u8]) -> Result<(), CryptoError> {
        stream.read(piece)?;
        self.with(|builder| builder.add_run(stream))
    }

    /// Ends a streamed ciphertext ([`AggregateBuilder::commit`]).
    pub fn commit(&self, stream: ContributionStream) -> Result<ContributionHash, CryptoError> {
        self.with(|builder| builder.commit(stream))
    }

    /// Gives up on `party`'s stream; says why the sum is broken if it now is.
    pub fn abandon(&self, party: &PartyId, why: &str) -> Option<String> {
        self.with(|builder| {
            builder.abandon(party, why);
            Ok(builder.broken().map(str::to_owned))
        })
        .unwrap_or(None)
    }

    /// The finished aggregate and its masks' wire bytes.
    pub fn finish(&self) -> Result<(Arc<Aggregate>, Bytes), CryptoError> {
        let aggregate = self.take()?.finish()?;
        let masks = Bytes::from(aggregate.masks().encode()?);
        Ok((Arc::new(aggregate), masks))
    }
}

/// A session's decryption, each share subtracted as it is verified and then dropped (CPU work:
/// call its methods off the async executor).
pub type SharedDecryption = SharedWork<Decryption>;

impl SharedDecryption {
    /// Checks one party's share against `aggregate` and subtracts it.
    pub fn subtract(&self, aggregate: &Aggregate, share: &DecryptionShare) -> Result<(), CryptoError> {
        self.with(|decryption| decryption.subtract(aggregate, share))
    }
}

/// What the shell must check of an upload's bytes before the coordinator takes it.
#[derive(Debug, Clone)]
pub struct UploadTicket {
    /// The session it is for.
    pub session: SessionId,
    /// The uploading node.
    pub node: NodeId,
    /// What it must be.
    pub kind: UploadKind,
    /// For a signed statement, the step it must belong to.
    step: Option<TaskKind>,
    federation_id: String,
    builder: Option<SharedBuilder>,
    decryption: Option<(Arc<Aggregate>, SharedDecryption)>,
}

impl UploadTicket {
    /// Decodes `bytes` as the ticket's kind made by its node, and adds a contribution to the
    /// session's sum. CPU work (decoding and adding up to hundreds of MiB): call it off the async
    /// executor.
    pub fn verify(&self, bytes: &[u8], limits: &WireLimits) -> Result<Verified, Refusal> {
        let what = self.kind.name();
        let invalid = |source| Refusal::Invalid { what, source };
        let party = PartyId::new(self.node.as_str()).map_err(invalid)?;
        match self.kind {
            UploadKind::KeyShare => {
                let (signed, statement) = self.statement(bytes, TaskKind::Reveal)?;
                let Claim::KeyShare(share) = &statement.claim else {
                    return Err(Refusal::BadStatement("not a key share".into()));
                };
                let share = PublicKeyShare::decode(share, &PARAMS_V2, limits).map_err(invalid)?;
                if share.party() != &party {
                    return Err(Refusal::ForeignParty { what });
                }
                Ok(Verified::KeyShare(share, signed))
            }
            UploadKind::Statement => {
                let step = self.step.ok_or(Refusal::WrongPhase { phase: "statement" })?;
                Ok(Verified::Statement(self.statement(bytes, step)?.0))
            }
            UploadKind::Contribution => {
                let ciphertext = Ciphertext::decode(bytes, &PARAMS_V2, limits).map_err(invalid)?;
                let builder = self.builder.as_ref().ok_or(Refusal::WrongPhase { phase: "contribution" })?;
                Ok(Verified::Contribution(builder.add(party, &ciphertext).map_err(invalid)?))
            }
            UploadKind::DecryptionShare => {
                let share = DecryptionShare::decode(bytes, &PARAMS_V2, limits).map_err(invalid)?;
                if share.party() != &party {
                    return Err(Refusal::ForeignParty { what });
                }
                let (aggregate, decryption) =
                    self.decryption.as_ref().ok_or(Refusal::WrongPhase { phase: "decryption share" })?;
                decryption.subtract(aggregate, &share).map_err(invalid)?;
                Ok(Verified::DecryptionShare)
            }
            UploadKind::Sum if bytes.is_empty() => Ok(Verified::Sum(None)),
            UploadKind::Sum => {
                let sum = DecryptedSum::decode(bytes, &PARAMS_V2, limits).map_err(invalid)?;
                Ok(Verified::Sum(Some(Box::new((Bytes::copy_from_slice(bytes), sum)))))
            }
        }
    }
}

impl UploadTicket {
    /// For a contribution: its party and the session's sum, to stream the ciphertext into it
    /// as it arrives ([`SharedBuilder::begin`]) instead of verifying it whole.
    pub fn contribution(&self) -> Option<(PartyId, SharedBuilder)> {
        let builder = self.builder.clone().filter(|_| self.kind == UploadKind::Contribution)?;
        Some((PartyId::new(self.node.as_str()).ok()?, builder))
    }

    /// A signed statement of the ticket's node, federation and session for `step`, with a valid
    /// signature (the roster checks are the hospitals').
    fn statement(&self, bytes: &[u8], step: TaskKind) -> Result<(Signed, Statement), Refusal> {
        let bad = |why: String| Refusal::BadStatement(why);
        let signed: Signed = postcard::from_bytes(bytes).map_err(|e| bad(format!("does not decode: {e}")))?;
        if signed.signer != self.node {
            return Err(bad(format!("signed by {}, uploaded by {}", signed.signer, self.node)));
        }
        signed.verify().map_err(|e| bad(e.to_string()))?;
        let statement = Statement::of(&signed).map_err(|e| bad(e.to_string()))?;
        if statement.federation_id != self.federation_id || statement.session != self.session {
            return Err(bad(format!("made for session {} of {:?}", statement.session, statement.federation_id)));
        }
        if statement.claim.step() != step {
            return Err(bad(format!("a statement of the {} step in the {step} step", statement.claim.step())));
        }
        Ok((signed, statement))
    }
}

/// An upload whose bytes the shell has verified.
#[derive(Debug, Clone)]
pub enum Verified {
    /// A public key share, with the signed statement that carries it.
    KeyShare(PublicKeyShare, Signed),
    /// A signed statement (transcript, challenge commitment, fingerprint).
    Statement(Signed),
    /// A contribution, already added to the session's sum.
    Contribution(ContributionHash),
    /// A decryption share, already subtracted in the session's decryption.
    DecryptionShare,
    /// A decrypted sum a hospital holds (its wire bytes and words), or none.
    Sum(Option<Box<(Bytes, DecryptedSum)>>),
}

/// What happens to the coordinator.
#[derive(Debug)]
pub enum Event {
    /// A peer with a valid certificate asks to join.
    Join {
        /// The certificate's node.
        node: NodeId,
        /// The federation it asks for.
        federation_id: String,
    },
    /// A hospital gives up (its data cannot take part, it is shutting down), with its reason.
    Leave {
        /// The certificate's node.
        node: NodeId,
        /// The federation it names.
        federation_id: String,
        /// Why, in its words (logged, not trusted).
        reason: String,
    },
    /// A hospital that joined asks for its next task (it is alive and connected).
    Asked {
        /// The certificate's node.
        node: NodeId,
    },
    /// A hospital announces an upload.
    UploadStarted {
        /// The certificate's node.
        node: NodeId,
        /// The upload's header.
        header: UploadHeader,
    },
    /// The shell verified an upload as its ticket asked.
    UploadVerified {
        /// The ticket it was verified against.
        ticket: UploadTicket,
        /// What it turned out to be.
        upload: Verified,
        /// Its size on the wire.
        bytes: u64,
    },
    /// A task went out to a node.
    TaskSent {
        /// The node.
        node: NodeId,
        /// The session it belonged to.
        session: Option<SessionId>,
        /// Payload bytes sent.
        bytes: u64,
        /// Whether it was the final `Done` task.
        done: bool,
    },
    /// The shell finished the aggregate a [`Action::FinishAggregate`] asked for.
    AggregateReady {
        /// The session.
        session: SessionId,
        /// The aggregate and its masks' wire bytes, or why it could not be finished.
        result: Result<(Arc<Aggregate>, Bytes), CryptoError>,
    },
    /// A streamed contribution failed after part of it went into the session's sum: the sum is
    /// lost and the round restarts without the hospital whose stream broke (it takes part again
    /// from the next session when it asks), so one hospital cannot stop a federation by breaking
    /// every attempt.
    AggregateBroken {
        /// The session.
        session: SessionId,
        /// The hospital whose contribution broke off.
        node: NodeId,
        /// Why.
        why: String,
    },
    /// The shell decrypted the sum a [`Action::DecryptSum`] asked for.
    SumDecrypted {
        /// The session.
        session: SessionId,
        /// The decrypted sum's wire bytes and its plaintext words, or why it could not be
        /// decrypted.
        result: Result<(Bytes, Vec<u64>), CryptoError>,
    },
    /// The shell wrote a [`Action::Persist`] snapshot (in order).
    Persisted {
        /// The model file's bytes, or why writing failed.
        result: Result<Bytes, String>,
    },
    /// Time passed (deadlines).
    Tick,
    /// The aggregator is shutting down: abandon the running session.
    Shutdown,
}

/// What the shell must do next.
#[derive(Debug)]
pub enum Action {
    /// Verify the upload's bytes with [`UploadTicket::verify`] off the executor, then send
    /// [`Event::UploadVerified`]; if verification fails, refuse the upload (the round is
    /// untouched).
    Verify(UploadTicket),
    /// Finish the session's aggregate with [`SharedBuilder::finish`] off the executor, then send
    /// [`Event::AggregateReady`].
    FinishAggregate {
        /// The session.
        session: SessionId,
        /// Its sum.
        builder: SharedBuilder,
    },
    /// Finish the decryption and encode the sum with [`decrypt_sum`] off the executor, then
    /// send [`Event::SumDecrypted`].
    DecryptSum {
        /// The session.
        session: SessionId,
        /// The aggregate.
        aggregate: Arc<Aggregate>,
        /// Its decryption, every contributor's share subtracted.
        decryption: SharedDecryption,
    },
    /// Write the snapshot durably, after every earlier one, then send [`Event::Persisted`].
    Persist(Box<Snapshot>),
    /// The federation has ended: [`Coordinator::outcome`] says how.
    Finished,
}

/// Finishes the decryption of `aggregate`: the decrypted sum's wire form (what every hospital
/// checks) and its plaintext words (CPU work: call it off the async executor).
pub fn decrypt_sum(aggregate: &Aggregate, decryption: &SharedDecryption) -> Result<(Bytes, Vec<u64>), CryptoError> {
    let sum = decryption.take()?.finish(aggregate)?;
    Ok((Bytes::from(sum.encode()?), sum.words()))
}

/// Why a federation ended early.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Failure {
    /// Too few hospitals joined in time.
    TooFewJoined {
        /// Hospitals that joined.
        joined: usize,
        /// Hospitals needed.
        needed: usize,
        /// Seconds waited.
        waited_secs: u64,
    },
    /// Too few hospitals remain after dropping some.
    TooFewRemain {
        /// The round.
        round: u32,
        /// Hospitals that remain.
        remaining: usize,
        /// Hospitals needed.
        needed: usize,
        /// The hospitals just dropped.
        dropped: Vec<NodeId>,
    },
    /// A round failed [`MAX_ATTEMPTS`] times.
    RoundFailed {
        /// The round.
        round: u32,
        /// Why its last attempt failed.
        last: String,
    },
    /// A session whose decryption had been opened failed and cannot run again.
    DecryptionLost {
        /// The round.
        round: u32,
        /// Why it failed.
        why: String,
    },
    /// The snapshot of a session could not be made or written.
    Persistence(String),
    /// The aggregator was told to shut down.
    Interrupted,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooFewJoined { joined, needed, waited_secs } => {
                write!(f, "only {joined} of the {needed} hospitals needed joined within {waited_secs} s")
            }
            Self::TooFewRemain { round, remaining, needed, dropped } => {
                let dropped: Vec<&str> = dropped.iter().map(NodeId::as_str).collect();
                write!(
                    f,
                    "round {round}: {remaining} hospitals remain after dropping {dropped:?}, at least {needed} are needed"
                )
            }
            Self::RoundFailed { round, last } => {
                write!(f, "round {round} failed {MAX_ATTEMPTS} times; the last attempt: {last}")
            }
            Self::DecryptionLost { round, why } => write!(
                f,
                "round {round}'s decryption was opened and then failed ({why}); hospitals never decrypt a round twice, so the federation cannot go on: start it again under a new federation_id"
            ),
            Self::Persistence(why) => write!(f, "cannot write the federation's state: {why}"),
            Self::Interrupted => f.write_str("interrupted by a shutdown signal"),
        }
    }
}

/// How a federation ended (or where it stands).
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The global parameters: after the final evaluation, those of the kept model (the best by
    /// the secure held-out AUROC, [`crate::selection`]); before it, the last round's.
    pub global: Vec<f32>,
    /// Every completed session, in order.
    pub records: Vec<RoundRecord>,
    /// Why it stopped early, if it did.
    pub failure: Option<Failure>,
    /// What the setup session made public.
    pub figures: PublicFigures,
    /// An exploration's pooled counts (in memory only) and the hospitals counted.
    pub exploration: Option<(Exploration, Vec<NodeId>)>,
}

impl Outcome {
    /// The record of the evaluation whose model the model file holds ([`kept_record`]).
    pub fn kept(&self) -> Option<&RoundRecord> {
        kept_record(&self.records)
    }
}

/// Where the federation stands, for the `Status` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The running session.
    pub session: Option<SessionId>,
    /// Its phase (`Done` when the federation has ended, `Wait` before the first session).
    pub phase: TaskKind,
    /// The hospitals taking part.
    pub active: Vec<NodeId>,
    /// Training rounds completed.
    pub rounds_done: u32,
}

/// What the metrics need to know of the coordinator at one moment (cheap: taken twice per
/// event).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// The running session and its phase.
    pub phase: Option<(SessionId, TaskKind)>,
    /// Hospitals that joined.
    pub joined: usize,
    /// Hospitals taking part.
    pub active: usize,
    /// Hospitals dropped so far.
    pub dropped: u64,
    /// Sessions completed (the coordinator's records).
    pub sessions: usize,
}

/// Signed statements of one step, by signer.
type Statements = BTreeMap<NodeId, Signed>;

enum Phase {
    /// Every participant commits to its key share (its signed digest) before any is revealed.
    KeyGen {
        statements: Statements,
    },
    /// Every participant reveals the key share it committed to.
    Reveal {
        /// The signed commitments, relayed.
        commitments: Bytes,
        /// Each participant's commitment: a share that does not match is refused.
        committed: BTreeMap<NodeId, KeyShareDigest>,
        collector: KeyShareCollector,
        statements: Statements,
    },
    Confirm {
        key: CollectivePublicKey,
        shares: Bytes,
        statements: Statements,
    },
    Contribute {
        transcripts: Bytes,
        builder: SharedBuilder,
    },
    /// Every contribution is in; the shell is finishing the aggregate.
    Aggregating,
    Challenge {
        masks: Bytes,
        aggregate: Arc<Aggregate>,
        statements: Statements,
    },
    Prove {
        challenges: Bytes,
        aggregate: Arc<Aggregate>,
        statements: Statements,
    },
    /// Every fingerprint is in; the snapshot that records the decryption as opened is being
    /// written before any hospital can make a decryption share.
    Sealing {
        fingerprints: Bytes,
        aggregate: Arc<Aggregate>,
    },
    Decrypt {
        fingerprints: Bytes,
        aggregate: Arc<Aggregate>,
        decryption: SharedDecryption,
    },
    /// Every decryption share is in; the shell is decrypting the sum.
    Combining,
    /// A restarted aggregator asks the participants for the decrypted sum they hold: it goes on
    /// only when every one still holds the session (one that moved on to the next session, or
    /// restarted, could not take part in its last steps again) and all hand back the same copy.
    Recover {
        /// The first copy handed back, and who handed it; a later copy never replaces it.
        sum: Option<(NodeId, Box<(Bytes, DecryptedSum)>)>,
        /// Why the session cannot be resumed, once one participant showed it: it holds no copy,
        /// one of another session, or another copy than the first (one of the two is forged).
        lost: Option<String>,
    },
    Result {
        sum: Bytes,
        output: Box<SessionOutput>,
        statements: Statements,
    },
    Attest {
        commitments: Bytes,
        output: Box<SessionOutput>,
        statements: Statements,
    },
    Accept {
        fingerprints: Bytes,
        output: Box<SessionOutput>,
        statements: Statements,
    },
}

impl Phase {
    /// The step's name ([`TaskKind::name`]).
    fn name(&self) -> &'static str {
        self.task_kind().name()
    }

    fn task_kind(&self) -> TaskKind {
        match self {
            Self::KeyGen { .. } => TaskKind::KeyGen,
            Self::Reveal { .. } => TaskKind::Reveal,
            Self::Confirm { .. } => TaskKind::Confirm,
            Self::Contribute { .. } | Self::Aggregating => TaskKind::Contribute,
            Self::Challenge { .. } => TaskKind::Challenge,
            Self::Prove { .. } => TaskKind::Prove,
            Self::Sealing { .. } | Self::Decrypt { .. } | Self::Combining => TaskKind::Decrypt,
            Self::Recover { .. } => TaskKind::Recover,
            Self::Result { .. } => TaskKind::Result,
            Self::Attest { .. } => TaskKind::Attest,
            Self::Accept { .. } => TaskKind::Accept,
        }
    }

    /// Whether the phase waits on the hospitals (and so has a deadline).
    fn waits_on_nodes(&self) -> bool {
        !matches!(self, Self::Aggregating | Self::Sealing { .. } | Self::Combining)
    }

    /// Whether hospitals may have made decryption shares: the session can never run again.
    fn is_opened(&self) -> bool {
        matches!(
            self,
            Self::Decrypt { .. }
                | Self::Combining
                | Self::Recover { .. }
                | Self::Result { .. }
                | Self::Attest { .. }
                | Self::Accept { .. }
        )
    }
}

struct Session {
    id: SessionId,
    kind: SessionKind,
    crs: Crs,
    participants: BTreeSet<NodeId>,
    submitted: BTreeSet<NodeId>,
    phase: Phase,
    /// The global model this session started from.
    model: Bytes,
    /// The server state it started from.
    server: Bytes,
    /// The [`crate::transcript::state_digest`] of the state it started from.
    state: StateDigest,
    /// The contents of the states before that one, the initial state's first (what a hospital
    /// that does not hold the state checks it descends from its own by).
    path: Bytes,
    started: Instant,
    deadline: Instant,
    bytes_up: u64,
    bytes_down: u64,
}

enum Ending {
    Completed,
    Failed(Failure),
}

/// The aggregator's state and protocol logic.
pub struct Coordinator {
    plan: Arc<FederationPlan>,
    /// The codec of every contribution (from the plan's settings).
    codec: Codec,
    crs: CrsSource,
    started_at: Instant,
    joined: BTreeSet<NodeId>,
    /// Hospitals that said they leave, with their reason, until they join again.
    left: BTreeMap<NodeId, String>,
    active: BTreeSet<NodeId>,
    /// Hospitals dropped from `active` so far (missed deadlines, departures), for the metrics.
    dropped: u64,
    session: Option<Session>,
    global: Vec<f32>,
    server: ServerState,
    figures: PublicFigures,
    /// The contents of the federation's chain of states, the initial state's first and the
    /// current one's last.
    chain: Vec<StateContent>,
    records: Vec<RoundRecord>,
    next: Option<Planned>,
    ending: Option<Ending>,
    /// Snapshots handed to the shell and not yet reported written.
    pending_persists: usize,
    /// The model file of the last snapshot written.
    model_file: Option<Bytes>,
    /// Nodes that received the final `Done` task.
    delivered: BTreeSet<NodeId>,
    /// The running session, once its decryption is opened.
    opened: Option<Planned>,
    /// The same session's id, CRS and participants (what a restart needs to resume its result).
    resumable: Option<OpenedSession>,
    /// A session resumed from the checkpoint, to recover its result from the hospitals.
    recovering: Option<OpenedSession>,
    /// The hospitals' signed endorsements of the last session's output (a relayed bundle; empty
    /// before the first): the model file carries them.
    endorsements: Bytes,
    /// The hospitals that endorsed the current state and have not joined again since: they
    /// hold it, so a confirmation task refers to it by digest instead of sending it.
    holders: BTreeSet<NodeId>,
    /// The round in which each participant last joined again mid-session: a second time in one
    /// round drops it for that session instead of restarting the round for it again.
    rejoined: BTreeMap<NodeId, u32>,
    /// An exploration's pooled counts and the hospitals counted, once its session completed.
    exploration: Option<(Exploration, Vec<NodeId>)>,
}

impl Coordinator {
    /// A coordinator for `plan`, resuming from `resume` when given; `now` starts the join
    /// timeout. Refuses a checkpoint of another federation or model.
    pub fn new(
        plan: Arc<FederationPlan>,
        resume: Option<Checkpoint>,
        now: Instant,
        crs: CrsSource,
    ) -> Result<Self, Error> {
        let settings = &plan.settings;
        let params = settings.param_count();
        let global = match settings.boosting {
            Some(_) => Vec::new(),
            None => fedcare_core::rng::init_params(&settings.spec, plan.seed),
        };
        let mut coordinator = Self {
            global,
            server: settings.initial_server_state()?,
            codec: Codec::new(settings.codec)?,
            plan: plan.clone(),
            crs,
            started_at: now,
            joined: BTreeSet::new(),
            left: BTreeMap::new(),
            active: BTreeSet::new(),
            dropped: 0,
            session: None,
            figures: PublicFigures::default(),
            chain: Vec::new(),
            records: Vec::new(),
            next: Some(Planned { round: 0, kind: SessionKind::Setup }),
            ending: None,
            pending_persists: 0,
            model_file: None,
            delivered: BTreeSet::new(),
            opened: None,
            resumable: None,
            recovering: None,
            endorsements: Bytes::new(),
            holders: BTreeSet::new(),
            rejoined: BTreeMap::new(),
            exploration: None,
        };
        if let Some(checkpoint) = resume {
            let describe = |id: &str, params: u64| format!("federation {id:?} with {params} parameters");
            let foreign = |found: String| Error::ForeignCheckpoint {
                expected: describe(&settings.federation_id, params as u64),
                found,
            };
            if checkpoint.federation_id != settings.federation_id
                || checkpoint.param_count != params as u64
                || checkpoint.global.len() != params
            {
                return Err(foreign(describe(&checkpoint.federation_id, checkpoint.param_count)));
            }
            let after_setup = checkpoint.next != Some(Planned { round: 0, kind: SessionKind::Setup });
            if after_setup {
                let figures = &checkpoint.figures;
                let shapes = &settings.layout.top_k;
                let fits = figures.feature_stats.len() == settings.layout.numeric
                    && figures.top_k.len() == shapes.len()
                    && shapes.iter().zip(&figures.top_k).enumerate().all(|(i, (s, c))| s.check_choice(i, c).is_ok());
                if !fits {
                    return Err(foreign(format!(
                        "a schema with {} numeric features and {} top_k columns",
                        figures.feature_stats.len(),
                        figures.top_k.len()
                    )));
                }
            }
            tracing::info!(next = ?checkpoint.next, "resuming from the checkpoint");
            coordinator.global = checkpoint.global;
            coordinator.server = checkpoint.server;
            coordinator.figures = checkpoint.figures;
            coordinator.records = checkpoint.records;
            coordinator.next = checkpoint.next;
            coordinator.endorsements = Bytes::from(checkpoint.endorsements);
            coordinator.chain = checkpoint.chain;
            if coordinator.chain.last() != Some(&coordinator.current_content()) {
                let found = format!("a chain of {} states that does not end in its state", coordinator.chain.len());
                return Err(foreign(found));
            }
            let opened = checkpoint.opened.filter(|o| Some(*o) == checkpoint.next);
            if let (Some(opened), Some(resumable)) = (opened, checkpoint.resumable) {
                tracing::warn!(round = opened.round, kind = %opened.kind, "the checkpoint's session had opened its decryption: its result is asked of the hospitals");
                coordinator.opened = Some(opened);
                coordinator.resumable = Some(resumable.clone());
                coordinator.recovering = Some(resumable);
            } else if let Some(opened) = opened {
                tracing::warn!(round = opened.round, kind = %opened.kind, "the checkpoint's session had opened its decryption: it is not run again");
                coordinator.next = coordinator.after(opened);
                if opened.kind == SessionKind::Setup {
                    coordinator.ending = Some(Ending::Failed(Failure::DecryptionLost {
                        round: 0,
                        why: "the aggregator stopped during the setup session's decryption".into(),
                    }));
                }
            }
            if coordinator.next.is_none() {
                coordinator.ending = Some(Ending::Completed);
            }
        } else {
            coordinator.chain = vec![coordinator.current_content()];
        }
        Ok(coordinator)
    }

    /// The [`crate::transcript::state_content`] of the current state.
    fn current_content(&self) -> StateContent {
        state_content(&params_to_bytes(&self.global), &server_bytes(&self.server), &self.figures)
    }

    /// The session planned after `done` completed (or was given up after its decryption opened).
    fn after(&self, done: Planned) -> Option<Planned> {
        let settings = &self.plan.settings;
        match done.kind {
            SessionKind::Setup => match settings.job {
                Job::Train => Some(Planned { round: 1, kind: SessionKind::Train }),
                Job::Explore { .. } => Some(Planned { round: 1, kind: SessionKind::Explore }),
            },
            SessionKind::Train => {
                let kind = if settings.training_ends(done.round, &self.server) {
                    SessionKind::Evaluate
                } else {
                    SessionKind::Train
                };
                Some(Planned { round: done.round + 1, kind })
            }
            SessionKind::Evaluate | SessionKind::Explore => None,
        }
    }

    /// The actions to take before the first event: a federation resumed at its end writes its
    /// final snapshot again (so that the final model can be handed out).
    pub fn start(&mut self) -> Vec<Action> {
        match self.ending {
            Some(Ending::Completed) => self.persist().into_iter().chain([Action::Finished]).collect(),
            _ => Vec::new(),
        }
    }

    /// Handles one event at time `now`. A refusal concerns a peer's request only; the state is
    /// then unchanged.
    pub fn handle(&mut self, event: Event, now: Instant) -> Result<Vec<Action>, Refusal> {
        match event {
            Event::Join { node, federation_id } => self.join(node, &federation_id, now),
            Event::Leave { node, federation_id, reason } => self.leave(node, &federation_id, reason, now),
            Event::Asked { node } => {
                self.asked(node);
                Ok(Vec::new())
            }
            Event::UploadStarted { node, header } => {
                self.admit(node, header).map(|ticket| vec![Action::Verify(ticket)])
            }
            Event::UploadVerified { ticket, upload, bytes } => self.accept(ticket, upload, bytes, now),
            Event::TaskSent { node, session, bytes, done } => {
                if let Some(running) = self.session.as_mut().filter(|s| Some(s.id) == session) {
                    running.bytes_down += bytes;
                }
                if done {
                    self.delivered.insert(node);
                }
                Ok(Vec::new())
            }
            Event::AggregateReady { session, result } => Ok(self.aggregate_ready(session, result, now)),
            Event::AggregateBroken { session, node, why } => match self.current(session).map(|s| &s.phase) {
                Some(Phase::Contribute { .. }) => {
                    tracing::warn!(%node, %session, %why, "a contribution broke the sum: the round restarts without it");
                    Ok(self.restart(vec![node], why, now))
                }
                _ => Ok(Vec::new()),
            },
            Event::SumDecrypted { session, result } => Ok(self.sum_decrypted(session, result, now)),
            Event::Persisted { result } => Ok(self.persisted(result)),
            Event::Tick => Ok(self.tick(now)),
            Event::Shutdown => {
                if self.ending.is_none() {
                    tracing::warn!("shutting down: the running session is abandoned, the checkpoint stays");
                    self.session = None;
                    self.ending = Some(Ending::Failed(Failure::Interrupted));
                }
                Ok(vec![Action::Finished])
            }
        }
    }

    fn check_federation(&self, federation_id: &str) -> Result<(), Refusal> {
        if federation_id != self.plan.settings.federation_id {
            return Err(Refusal::UnknownFederation(federation_id.to_owned()));
        }
        Ok(())
    }

    fn check_enrolled(&self, node: &NodeId) -> Result<(), Refusal> {
        if !self.plan.is_enrolled(node) {
            return Err(Refusal::NotEnrolled(node.clone()));
        }
        Ok(())
    }

    /// Refuses a node that is not enrolled or has not joined (since the aggregator started).
    fn check_joined(&self, node: &NodeId) -> Result<(), Refusal> {
        self.check_enrolled(node)?;
        if !self.joined.contains(node) {
            return Err(Refusal::NotJoined);
        }
        Ok(())
    }

    fn join(&mut self, node: NodeId, federation_id: &str, now: Instant) -> Result<Vec<Action>, Refusal> {
        self.check_enrolled(&node)?;
        self.check_federation(federation_id)?;
        self.left.remove(&node);
        self.joined.insert(node.clone());
        // A hospital that joins (again) starts with no state of its own.
        self.holders.remove(&node);
        tracing::info!(%node, "joined");
        let Some(session) = &self.session else { return Ok(Vec::new()) };
        if !session.participants.contains(&node) {
            if self.active.insert(node.clone()) {
                tracing::info!(%node, "takes part from the next session");
            }
            return Ok(Vec::new());
        }
        // A participant that joins again has restarted or reconnected: whatever it held for the
        // running session (its key share) is gone, unless it had done nothing yet.
        if matches!(session.phase, Phase::KeyGen { .. }) && !session.submitted.contains(&node) {
            return Ok(Vec::new());
        }
        let round = session.id.round;
        if self.rejoined.insert(node.clone(), round) == Some(round) {
            tracing::warn!(%node, session = %session.id, "a participant joined again a second time this round: the round restarts without it");
            return Ok(self.restart(vec![node], "a participant joined again twice in one round".into(), now));
        }
        tracing::warn!(%node, session = %session.id, "a participant joined again: the round restarts with fresh keys");
        Ok(self.restart(Vec::new(), "a participant joined again".into(), now))
    }

    /// A hospital that was dropped from a session (a missed deadline, a partition) and asks for
    /// work again is back: it takes part from the next session, as if it had joined again (its
    /// state of its own stays: it is checked like any other's).
    fn asked(&mut self, node: NodeId) {
        if self.ending.is_none()
            && self.session.is_some()
            && self.joined.contains(&node)
            && !self.active.contains(&node)
        {
            tracing::info!(%node, "a dropped hospital asks for work again: it takes part from the next session");
            self.active.insert(node);
        }
    }

    fn leave(
        &mut self,
        node: NodeId,
        federation_id: &str,
        reason: String,
        now: Instant,
    ) -> Result<Vec<Action>, Refusal> {
        self.check_enrolled(&node)?;
        self.check_federation(federation_id)?;
        tracing::warn!(%node, %reason, "a hospital leaves");
        self.joined.remove(&node);
        if self.active.remove(&node) {
            self.dropped += 1;
        }
        self.left.insert(node.clone(), reason);
        let in_session = self
            .session
            .as_ref()
            .is_some_and(|s| s.participants.contains(&node) && !matches!(s.phase, Phase::Combining));
        if in_session {
            return Ok(self.restart(vec![node], "a participant left".into(), now));
        }
        Ok(self.tick(now))
    }

    fn admit(&self, node: NodeId, header: UploadHeader) -> Result<UploadTicket, Refusal> {
        self.check_joined(&node)?;
        self.check_federation(&header.federation_id)?;
        if header.node != node.as_str() {
            return Err(Refusal::NodeMismatch { header: header.node, certificate: node });
        }
        match self.ending {
            Some(Ending::Failed(Failure::Interrupted)) => return Err(Refusal::ShuttingDown),
            Some(_) => return Err(Refusal::Ended),
            None => {}
        }
        let session = self.session.as_ref().ok_or(Refusal::NoSession)?;
        if header.session != Some(session.id) {
            return Err(Refusal::WrongSession { got: header.session, current: session.id });
        }
        if !session.participants.contains(&node) {
            return Err(Refusal::NotParticipant { node, round: session.id.round });
        }
        if session.submitted.contains(&node) {
            return Err(Refusal::AlreadyUploaded(node));
        }
        let mut decryption = None;
        let (kind, step, builder) = match (&session.phase, header.kind) {
            (Phase::KeyGen { .. }, Some(kind @ UploadKind::Statement)) => (kind, Some(TaskKind::KeyGen), None),
            (Phase::Reveal { .. }, Some(kind @ UploadKind::KeyShare)) => (kind, Some(TaskKind::Reveal), None),
            (Phase::Confirm { .. }, Some(kind @ UploadKind::Statement)) => (kind, Some(TaskKind::Confirm), None),
            (Phase::Contribute { builder, .. }, Some(kind @ UploadKind::Contribution)) => {
                (kind, None, Some(builder.clone()))
            }
            (Phase::Decrypt { aggregate, decryption: running, .. }, Some(kind @ UploadKind::DecryptionShare)) => {
                decryption = Some((aggregate.clone(), running.clone()));
                (kind, None, None)
            }
            (Phase::Challenge { .. }, Some(kind @ UploadKind::Statement)) => (kind, Some(TaskKind::Challenge), None),
            (Phase::Prove { .. }, Some(kind @ UploadKind::Statement)) => (kind, Some(TaskKind::Prove), None),
            (Phase::Recover { .. }, Some(kind @ UploadKind::Sum)) => (kind, None, None),
            (Phase::Result { .. }, Some(kind @ UploadKind::Statement)) => (kind, Some(TaskKind::Result), None),
            (Phase::Attest { .. }, Some(kind @ UploadKind::Statement)) => (kind, Some(TaskKind::Attest), None),
            (Phase::Accept { .. }, Some(kind @ UploadKind::Statement)) => (kind, Some(TaskKind::Accept), None),
            _ => return Err(Refusal::WrongPhase { phase: session.phase.name() }),
        };
        let federation_id = self.plan.settings.federation_id.clone();
        Ok(UploadTicket { session: session.id, node, kind, step, federation_id, builder, decryption })
    }

    fn accept(
        &mut self,
        ticket: UploadTicket,
        upload: Verified,
        bytes: u64,
        now: Instant,
    ) -> Result<Vec<Action>, Refusal> {
        let node = ticket.node;
        let session = self.session.as_mut().ok_or(Refusal::NoSession)?;
        if session.id != ticket.session {
            return Err(Refusal::WrongSession { got: Some(ticket.session), current: session.id });
        }
        if !session.participants.contains(&node) {
            return Err(Refusal::NotParticipant { node, round: session.id.round });
        }
        if session.submitted.contains(&node) {
            return Err(Refusal::AlreadyUploaded(node));
        }
        let phase = session.phase.name();
        match (&mut session.phase, upload) {
            (Phase::Reveal { committed, collector, statements, .. }, Verified::KeyShare(share, signed)) => {
                let revealed = match Statement::of(&signed).map(|s| s.claim) {
                    Ok(Claim::KeyShare(bytes)) => Some(key_share_digest(&bytes)),
                    _ => None,
                };
                if revealed.is_none() || revealed.as_ref() != committed.get(&node) {
                    return Err(Refusal::BadStatement("a key share that is not the one committed to".into()));
                }
                collector.add(share).map_err(|source| Refusal::Invalid { what: "key share", source })?;
                statements.insert(node.clone(), signed);
            }
            (
                Phase::KeyGen { statements }
                | Phase::Confirm { statements, .. }
                | Phase::Challenge { statements, .. }
                | Phase::Prove { statements, .. }
                | Phase::Result { statements, .. }
                | Phase::Attest { statements, .. }
                | Phase::Accept { statements, .. },
                Verified::Statement(signed),
            ) => {
                statements.insert(node.clone(), signed);
            }
            (Phase::Contribute { .. }, Verified::Contribution(_hash)) => {}
            (Phase::Decrypt { .. }, Verified::DecryptionShare) => {}
            (Phase::Recover { sum, lost }, Verified::Sum(held)) => {
                let fits = |held: &(Bytes, DecryptedSum)| {
                    held.1.crs() == session.crs && held.1.contributors() == session.participants.len()
                };
                let why = match (held, &*sum) {
                    (None, _) => Some(format!("{node} holds no decrypted sum of the session")),
                    (Some(held), _) if !fits(&held) => Some(format!("{node} holds a decrypted sum of another session")),
                    (Some(held), Some((first, kept))) if kept.0 != held.0 => Some(format!(
                        "{node} holds another decrypted sum than {first}: one of the two copies is forged"
                    )),
                    (Some(_), Some(_)) => None,
                    (Some(held), None) => {
                        *sum = Some((node.clone(), held));
                        None
                    }
                };
                if let Some(why) = why {
                    tracing::warn!(session = %session.id, %why, "the session's decrypted sum cannot be recovered");
                    lost.get_or_insert(why);
                }
            }
            _ => return Err(Refusal::WrongPhase { phase }),
        }
        session.submitted.insert(node);
        session.bytes_up += bytes;
        Ok(self.advance(now))
    }

    /// Moves the session on once every participant has submitted in its phase.
    fn advance(&mut self, now: Instant) -> Vec<Action> {
        let phase_timeout = self.plan.phase_timeout;
        let contribution_len = self.session.as_ref().map(|session| self.contribution_len(session.kind));
        let Some(session) = self.session.as_mut() else { return Vec::new() };
        if session.submitted != session.participants {
            return Vec::new();
        }
        session.submitted.clear();
        session.deadline = now + phase_timeout;
        let id = session.id;
        let elapsed_ms = now.saturating_duration_since(session.started).as_millis();
        tracing::debug!(session = %id, phase = session.phase.name(), elapsed_ms, "every participant submitted");
        match core::mem::replace(&mut session.phase, Phase::Aggregating) {
            Phase::KeyGen { statements } => {
                let committed = statements
                    .iter()
                    .filter_map(|(node, signed)| match Statement::of(signed).map(|s| s.claim) {
                        Ok(Claim::KeyCommitment(digest)) => Some((node.clone(), digest)),
                        _ => None,
                    })
                    .collect();
                session.phase = Phase::Reveal {
                    commitments: encode_bundle(statements.values()),
                    committed,
                    collector: KeyShareCollector::new(PARAMS_V2, session.crs),
                    statements: Statements::new(),
                };
                Vec::new()
            }
            Phase::Reveal { collector, statements, .. } => match collector.collective_key() {
                Ok(key) => {
                    let shares = encode_bundle(statements.values());
                    session.phase = Phase::Confirm { key, shares, statements: Statements::new() };
                    Vec::new()
                }
                Err(error) => self.restart(Vec::new(), format!("the collective key: {error}"), now),
            },
            Phase::Confirm { key, statements, .. } => {
                let len = match contribution_len {
                    Some(Ok(len)) => len,
                    Some(Err(error)) => {
                        let last = format!("the session's contribution: {error}");
                        return self.fail(Failure::RoundFailed { round: id.round, last });
                    }
                    None => return Vec::new(),
                };
                let builder = SharedBuilder::new(AggregateBuilder::new(PARAMS_V2, &key, len));
                session.phase = Phase::Contribute { transcripts: encode_bundle(statements.values()), builder };
                Vec::new()
            }
            Phase::Contribute { builder, .. } => vec![Action::FinishAggregate { session: id, builder }],
            Phase::Challenge { aggregate, statements, .. } => {
                let challenges = encode_bundle(statements.values());
                session.phase = Phase::Prove { challenges, aggregate, statements: Statements::new() };
                Vec::new()
            }
            Phase::Prove { aggregate, statements, .. } => {
                session.phase = Phase::Sealing { fingerprints: encode_bundle(statements.values()), aggregate };
                self.opened = Some(Planned { round: id.round, kind: session.kind });
                self.resumable = Some(OpenedSession {
                    session: id,
                    crs: session.crs.0,
                    participants: session.participants.iter().cloned().collect(),
                });
                self.persist()
            }
            Phase::Decrypt { aggregate, decryption, .. } => {
                session.phase = Phase::Combining;
                vec![Action::DecryptSum { session: id, aggregate, decryption }]
            }
            Phase::Recover { sum: Some((_, held)), lost: None } => {
                // Every participant handed back the same copy, and every hospital checks it again.
                let (bytes, sum) = *held;
                tracing::info!(session = %id, "the session's decrypted sum, recovered from its hospitals");
                session.phase = Phase::Combining;
                self.sum_decrypted(id, Ok((bytes, sum.words())), now)
            }
            Phase::Recover { lost, .. } => {
                // Invariant: the session is still there (`session` borrowed it above).
                let Some(session) = self.session.take() else { return Vec::new() };
                let why = lost.unwrap_or_else(|| "no participant holds the session's decrypted sum".into());
                self.give_up_round(&session, why, now)
            }
            Phase::Result { output, statements, .. } => {
                let commitments = encode_bundle(statements.values());
                session.phase = Phase::Attest { commitments, output, statements: Statements::new() };
                Vec::new()
            }
            Phase::Attest { output, statements, .. } => {
                let fingerprints = encode_bundle(statements.values());
                session.phase = Phase::Accept { fingerprints, output, statements: Statements::new() };
                Vec::new()
            }
            Phase::Accept { output, statements, .. } => {
                // Invariant: the session is still there (`session` borrowed it above).
                let Some(session) = self.session.take() else { return Vec::new() };
                self.finish_session(session, *output, &statements, now)
            }
            phase @ (Phase::Aggregating | Phase::Sealing { .. } | Phase::Combining) => {
                session.phase = phase;
                Vec::new()
            }
        }
    }

    fn current(&mut self, id: SessionId) -> Option<&mut Session> {
        self.session.as_mut().filter(|s| s.id == id)
    }

    fn aggregate_ready(
        &mut self,
        id: SessionId,
        result: Result<(Arc<Aggregate>, Bytes), CryptoError>,
        now: Instant,
    ) -> Vec<Action> {
        let Some(session) = self.current(id).filter(|s| matches!(s.phase, Phase::Aggregating)) else {
            return Vec::new();
        };
        match result {
            Ok((aggregate, masks)) => {
                session.phase = Phase::Challenge { masks, aggregate, statements: Statements::new() };
                Vec::new()
            }
            Err(error) => self.restart(Vec::new(), format!("the aggregate: {error}"), now),
        }
    }

    fn sum_decrypted(
        &mut self,
        id: SessionId,
        result: Result<(Bytes, Vec<u64>), CryptoError>,
        now: Instant,
    ) -> Vec<Action> {
        if self.current(id).filter(|s| matches!(s.phase, Phase::Combining)).is_none() {
            return Vec::new();
        }
        let (sum, words) = match result {
            Ok(decrypted) => decrypted,
            Err(error) => return self.restart(Vec::new(), format!("the decrypted sum: {error}"), now),
        };
        // Invariant: `current` just found the session.
        let Some(session) = self.session.as_mut() else { return Vec::new() };
        let inputs = SessionInputs {
            settings: &self.plan.settings,
            codec: &self.codec,
            session: session.id,
            kind: session.kind,
            contributors: session.participants.len(),
            global: &self.global,
            server: &self.server,
            figures: &self.figures,
            start: &session.state,
        };
        match session_output(&inputs, &words) {
            Ok(output) => {
                session.phase = Phase::Result { sum, output: Box::new(output), statements: Statements::new() };
                Vec::new()
            }
            Err(why) => self.restart(Vec::new(), why.to_string(), now),
        }
    }

    /// Takes a session's output once every participant endorsed it: the new state, the round's
    /// record, the endorsements for the model file; then moves on. A participant that endorsed
    /// another output gives the round up (its decryption was opened).
    fn finish_session(
        &mut self,
        session: Session,
        output: SessionOutput,
        statements: &Statements,
        now: Instant,
    ) -> Vec<Action> {
        for (node, signed) in statements {
            let endorsed = Statement::of(signed).ok().map(|s| s.claim);
            if !matches!(endorsed, Some(Claim::Output { state, file, .. }) if state == output.state && file == output.file_digest)
            {
                let why = format!("{node} endorsed another output than the aggregator computed");
                return self.give_up_round(&session, why, now);
            }
        }
        let SessionOutput { global, server, figures, mut record, exploration, content, .. } = output;
        if let Some(exploration) = exploration {
            tracing::info!(rows = exploration.counts.rows, "federated exploration counts");
            self.exploration = Some((exploration, session.participants.iter().cloned().collect()));
        }
        record.seconds = now.saturating_duration_since(session.started).as_secs_f64();
        record.bytes_up = session.bytes_up;
        record.bytes_down = session.bytes_down;
        if session.kind == SessionKind::Setup {
            tracing::info!(
                train_rows = figures.train_rows,
                test_rows = figures.test_rows,
                "federated row counts, feature statistics and top_k buckets"
            );
        }
        self.global = global;
        self.server = server;
        self.figures = figures;
        self.chain.push(content);
        self.endorsements = encode_bundle(statements.values());
        self.holders = statements.keys().cloned().collect();
        tracing::info!(round = record.round, kind = %record.kind, auroc = ?record.auroc, auprc = ?record.auprc, "session done");
        self.records.push(record);
        self.move_on(Planned { round: session.id.round, kind: session.kind }, now)
    }

    /// After `done` (completed, or given up once its decryption opened): plans the next session,
    /// writes the snapshot, and starts that session or ends the federation.
    fn move_on(&mut self, done: Planned, now: Instant) -> Vec<Action> {
        self.next = self.after(done);
        self.opened = None;
        self.resumable = None;
        let mut actions = self.persist();
        match self.next {
            Some(next) if self.ending.is_none() => self.start_session(next, 0, now),
            Some(_) => {}
            None => {
                self.ending.get_or_insert(Ending::Completed);
                actions.push(Action::Finished);
            }
        }
        actions
    }

    /// The snapshot of the state as it is, as an action; a failure to make it ends the
    /// federation.
    fn persist(&mut self) -> Vec<Action> {
        match self.snapshot() {
            Ok(snapshot) => {
                self.pending_persists += 1;
                vec![Action::Persist(Box::new(snapshot))]
            }
            Err(error) => self.fail(Failure::Persistence(format!("the model file: {error}"))),
        }
    }

    fn snapshot(&self) -> Result<Snapshot, fedcare_core::Error> {
        let config = &self.plan.settings;
        // The last session's subgroups, as its output wrote them into the file it endorsed.
        let subgroups = self.records.last().and_then(|record| record.subgroups.as_ref());
        let mut model = model_file(config, &self.global, &self.server, &self.figures, subgroups)?;
        model.endorsements = self.endorsements.to_vec();
        Ok(Snapshot {
            checkpoint: Checkpoint {
                federation_id: config.federation_id.clone(),
                param_count: self.global.len() as u64,
                next: self.next,
                global: self.global.clone(),
                server: self.server.clone(),
                figures: self.figures.clone(),
                records: self.records.clone(),
                opened: self.opened,
                endorsements: self.endorsements.to_vec(),
                resumable: self.resumable.clone(),
                chain: self.chain.clone(),
            },
            model,
            // What `explore.json` may say of the counts (the checkpoint holds none of them).
            exploration: self
                .exploration
                .as_ref()
                .and_then(|(exploration, hospitals)| {
                    let context = ReportContext::of_job(&config.schema_id, &config.job, hospitals)?;
                    Some(crate::exploration::report(&context, exploration, None))
                })
                .transpose()?,
        })
    }

    fn persisted(&mut self, result: Result<Bytes, String>) -> Vec<Action> {
        self.pending_persists = self.pending_persists.saturating_sub(1);
        match result {
            Ok(model) => {
                self.model_file = Some(model);
                // The opened decryption is on disk: the fingerprints may go out.
                if self.pending_persists == 0
                    && let Some(session) = self.session.as_mut()
                    && let Phase::Sealing { .. } = session.phase
                    && let Phase::Sealing { fingerprints, aggregate } =
                        core::mem::replace(&mut session.phase, Phase::Aggregating)
                {
                    let decryption = SharedDecryption::new(aggregate.start_decryption());
                    session.phase = Phase::Decrypt { fingerprints, aggregate, decryption };
                }
                Vec::new()
            }
            Err(why) => self.fail(Failure::Persistence(why)),
        }
    }

    /// Values of a contribution to a session of `kind` from the current state: the layout's,
    /// or for a boosting training session its step's ([`crate::boosting::Step::len`]).
    fn contribution_len(&self, kind: SessionKind) -> Result<usize, ProtocolError> {
        let settings = &self.plan.settings;
        match (&settings.boosting, kind, &self.server.boosting) {
            (Some(boosting), SessionKind::Train, Some(state)) => {
                let cuts = boosting.cuts(&self.figures.feature_stats, settings.spec.input_width(), state)?;
                Ok(state.step(boosting).len(&settings.layout, cuts.cells()))
            }
            _ => Ok(settings.layout.len(kind)),
        }
    }

    fn fail(&mut self, failure: Failure) -> Vec<Action> {
        tracing::error!(%failure, "the federation stops");
        self.session = None;
        if self.ending.is_none() {
            self.ending = Some(Ending::Failed(failure));
        }
        vec![Action::Finished]
    }

    fn start_session(&mut self, planned: Planned, attempt: u32, now: Instant) {
        let crs = (self.crs)();
        let id = SessionId { round: planned.round, attempt };
        tracing::info!(session = %id, kind = %planned.kind, hospitals = self.active.len(), "session starts");
        // The setup session sums row counts and trains nothing, but its output (the model file
        // with the federated statistics) is endorsed like every other: it relays the state too.
        let model = params_to_bytes(&self.global);
        let server = Bytes::from(server_bytes(&self.server));
        // The current state is the chain's last (its content was pushed when it was made).
        let state = chain_digests(&self.chain).last().copied().unwrap_or(StateDigest([0; 32]));
        let path = encode_chain(&self.chain[..self.chain.len().saturating_sub(1)]);
        self.session = Some(Session {
            id,
            kind: planned.kind,
            crs,
            participants: self.active.clone(),
            submitted: BTreeSet::new(),
            phase: Phase::KeyGen { statements: Statements::new() },
            model,
            server,
            state,
            path,
            started: now,
            deadline: now + self.plan.phase_timeout,
            bytes_up: 0,
            bytes_down: 0,
        });
    }

    /// Resumes the checkpoint's opened session (`planned`) to recover its decrypted sum from
    /// its participants; gives it up when one of them has not joined.
    fn recover(&mut self, planned: Planned, opened: OpenedSession, now: Instant) -> Vec<Action> {
        self.start_session(planned, opened.session.attempt, now);
        let Some(mut session) = self.session.take() else { return Vec::new() };
        session.id = opened.session;
        session.crs = Crs(opened.crs);
        session.participants = opened.participants.into_iter().collect();
        if !session.participants.is_subset(&self.joined) {
            return self.give_up_round(&session, "a participant of the opened session did not join again".into(), now);
        }
        tracing::info!(session = %session.id, "asking the participants for the session's decrypted sum");
        session.phase = Phase::Recover { sum: None, lost: None };
        self.session = Some(session);
        Vec::new()
    }

    /// Abandons the running session and starts its next attempt without `dropped`, with fresh
    /// keys; ends the federation when too few hospitals remain or the round failed too often.
    fn restart(&mut self, dropped: Vec<NodeId>, why: String, now: Instant) -> Vec<Action> {
        let Some(session) = self.session.take() else { return Vec::new() };
        for node in &dropped {
            if self.active.remove(node) {
                self.dropped += 1;
            }
        }
        let needed = self.plan.settings.min_hospitals;
        if self.active.len() < needed {
            let remaining = self.active.len();
            return self.fail(Failure::TooFewRemain { round: session.id.round, remaining, needed, dropped });
        }
        if session.phase.is_opened() {
            return self.give_up_round(&session, why, now);
        }
        let attempt = session.id.attempt + 1;
        if attempt >= MAX_ATTEMPTS {
            return self.fail(Failure::RoundFailed { round: session.id.round, last: why });
        }
        tracing::warn!(session = %session.id, ?dropped, %why, "the round restarts with fresh keys");
        self.start_session(Planned { round: session.id.round, kind: session.kind }, attempt, now);
        Vec::new()
    }

    /// A session whose decryption was opened failed: it can never run again (hospitals refuse
    /// a second decryption of one round). Training goes on with the next round (fresh keys, a
    /// fresh training seed) from the same state, and so only with exactly the same hospitals:
    /// each of them refuses to release from one state with two sets (`ledger::Release::check`),
    /// whose sums' difference would be one hospital's contribution. A lost setup ends the
    /// federation, as does a lost round when its hospitals changed; a lost final evaluation ends
    /// it without that evaluation.
    fn give_up_round(&mut self, session: &Session, why: String, now: Instant) -> Vec<Action> {
        let done = Planned { round: session.id.round, kind: session.kind };
        self.opened = None;
        self.resumable = None;
        // Without its setup a federation cannot go on; without its counts an exploration has
        // nothing to report.
        if matches!(session.kind, SessionKind::Setup | SessionKind::Explore) {
            return self.fail(Failure::DecryptionLost { round: session.id.round, why });
        }
        if session.kind == SessionKind::Train && self.active != session.participants {
            let why = format!(
                "{why}; the next session would start from the same state with other hospitals, which would reveal one hospital's contribution"
            );
            return self.fail(Failure::DecryptionLost { round: session.id.round, why });
        }
        tracing::warn!(session = %session.id, %why, "the round's decryption was opened: it is not run again, the federation moves on");
        self.move_on(done, now)
    }

    fn tick(&mut self, now: Instant) -> Vec<Action> {
        if self.ending.is_some() {
            return Vec::new();
        }
        let Some(session) = &self.session else { return self.maybe_start(now) };
        if session.phase.waits_on_nodes() && now >= session.deadline {
            let missing: Vec<NodeId> = session.participants.difference(&session.submitted).cloned().collect();
            tracing::warn!(session = %session.id, ?missing, "phase deadline missed: dropping");
            return self.restart(missing, "a phase deadline was missed".into(), now);
        }
        Vec::new()
    }

    /// Starts the first session once every enrolled hospital has joined (or said it leaves) and
    /// enough joined, or once the join timeout passed with enough; fails after the timeout
    /// without enough.
    fn maybe_start(&mut self, now: Instant) -> Vec<Action> {
        let Some(next) = self.next else { return Vec::new() };
        let needed = self.plan.settings.min_hospitals;
        let enough = self.joined.len() >= needed;
        let accounted = self.plan.hospitals.iter().all(|h| self.joined.contains(h) || self.left.contains_key(h));
        let timed_out = now >= self.started_at + self.plan.join_timeout;
        if enough && (accounted || timed_out) {
            self.active = self.joined.clone();
            if let Some(opened) = self.recovering.take() {
                return self.recover(next, opened, now);
            }
            self.start_session(next, 0, now);
            Vec::new()
        } else if timed_out {
            let joined = self.joined.len();
            self.fail(Failure::TooFewJoined { joined, needed, waited_secs: self.plan.join_timeout.as_secs() })
        } else {
            Vec::new()
        }
    }

    /// The task for `node` now.
    pub fn task_for(&self, node: &NodeId) -> Result<Task, Refusal> {
        self.check_joined(node)?;
        let mut task = Task {
            kind: TaskKind::Wait,
            session: None,
            session_kind: None,
            crs: None,
            figures: self.figures.clone(),
            sections: Vec::new(),
            message: String::new(),
        };
        match &self.ending {
            Some(Ending::Completed) => {
                if self.pending_persists == 0
                    && let Some(model) = &self.model_file
                {
                    task.kind = TaskKind::Done;
                    task.sections = vec![model.clone()];
                }
                return Ok(task);
            }
            // An aggregator that is shutting down has nothing final to say: its hospitals see it
            // go away and reconnect to the next one.
            Some(Ending::Failed(Failure::Interrupted)) => return Ok(task),
            Some(Ending::Failed(failure)) => {
                task.kind = TaskKind::Failed;
                task.message = failure.to_string();
                return Ok(task);
            }
            None => {}
        }
        let Some(session) = &self.session else { return Ok(task) };
        if !session.participants.contains(node) || session.submitted.contains(node) {
            return Ok(task);
        }
        task.sections = match &session.phase {
            Phase::KeyGen { .. } => Vec::new(),
            Phase::Reveal { commitments, .. } => vec![commitments.clone()],
            Phase::Confirm { shares, .. } if self.holders.contains(node) => {
                vec![shares.clone(), Bytes::copy_from_slice(session.state.as_bytes())]
            }
            Phase::Confirm { shares, .. } => vec![
                shares.clone(),
                session.model.clone(),
                session.server.clone(),
                self.endorsements.clone(),
                session.path.clone(),
            ],
            Phase::Contribute { transcripts, .. } => vec![transcripts.clone()],
            Phase::Challenge { masks, .. } => vec![masks.clone()],
            Phase::Prove { challenges, .. } => vec![challenges.clone()],
            Phase::Decrypt { fingerprints, .. } => vec![fingerprints.clone()],
            Phase::Recover { .. } => Vec::new(),
            Phase::Result { sum, .. } => vec![sum.clone()],
            Phase::Attest { commitments, .. } => vec![commitments.clone()],
            Phase::Accept { fingerprints, .. } => vec![fingerprints.clone()],
            Phase::Aggregating | Phase::Sealing { .. } | Phase::Combining => return Ok(task),
        };
        task.kind = session.phase.task_kind();
        task.session = Some(session.id);
        task.session_kind = Some(session.kind);
        task.crs = Some(session.crs);
        Ok(task)
    }

    /// Where the federation stands; refuses a node that is not enrolled.
    pub fn status(&self, node: &NodeId) -> Result<Status, Refusal> {
        self.check_enrolled(node)?;
        let (session, phase) = match (&self.session, &self.ending) {
            (Some(s), _) => (Some(s.id), s.phase.task_kind()),
            (None, Some(_)) => (None, TaskKind::Done),
            (None, None) => (None, TaskKind::Wait),
        };
        Ok(Status { session, phase, active: self.active.iter().cloned().collect(), rounds_done: self.rounds_done() })
    }

    /// What the metrics count of the coordinator now.
    pub fn census(&self) -> Census {
        Census {
            phase: self.session.as_ref().map(|s| (s.id, s.phase.task_kind())),
            joined: self.joined.len(),
            active: self.active.len(),
            dropped: self.dropped,
            sessions: self.records.len(),
        }
    }

    fn rounds_done(&self) -> u32 {
        self.records.iter().filter(|r| r.kind == SessionKind::Train).count() as u32
    }

    /// The federation it coordinates.
    pub fn federation_id(&self) -> &str {
        &self.plan.settings.federation_id
    }

    /// The sessions completed so far.
    pub fn records(&self) -> &[RoundRecord] {
        &self.records
    }

    /// Where the federation stands, in brief: the running session and its phase, and whether it
    /// has ended. It changes whenever a task a node could fetch changes.
    pub fn position(&self) -> (Option<(SessionId, TaskKind)>, bool) {
        (self.session.as_ref().map(|s| (s.id, s.phase.task_kind())), self.ending.is_some())
    }

    /// Whether the federation has ended (completed, failed or interrupted).
    pub fn is_finished(&self) -> bool {
        self.ending.is_some()
    }

    /// Whether every snapshot handed out has been reported written.
    pub fn is_persisted(&self) -> bool {
        self.pending_persists == 0
    }

    /// Whether every hospital that took part has received its final task (trivially so when the
    /// aggregator is shutting down: there is none to receive).
    pub fn all_delivered(&self) -> bool {
        matches!(self.ending, Some(Ending::Failed(Failure::Interrupted)))
            || self.joined.iter().all(|node| self.delivered.contains(node))
    }

    /// When the next deadline falls (a phase deadline or the join timeout), if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.ending.is_some() {
            return None;
        }
        match &self.session {
            Some(session) => session.phase.waits_on_nodes().then_some(session.deadline),
            None => Some(self.started_at + self.plan.join_timeout),
        }
    }

    /// How the federation ended, or where it stands.
    pub fn outcome(&self) -> Outcome {
        Outcome {
            global: self.global.clone(),
            records: self.records.clone(),
            failure: match &self.ending {
                Some(Ending::Failed(failure)) => Some(failure.clone()),
                _ => None,
            },
            figures: self.figures.clone(),
            exploration: self.exploration.clone(),
        }
    }
}

impl fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coordinator")
            .field("joined", &self.joined)
            .field("active", &self.active)
            .field("session", &self.session.as_ref().map(|s| (s.id, s.kind, s.phase.name())))
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}
