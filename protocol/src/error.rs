//! The error types of `fedcare-protocol`: each names what happened and carries the values that
//! failed.
//!
//! - [`ConfigError`]: settings that cannot work (caller misuse, found before any network).
//! - [`ProtocolError`]: the other side sent something this side cannot use.
//! - [`TrustError`]: a hospital refuses what a (possibly lying) aggregator asks of it.
//! - [`TransferError`]: a chunked transfer that does not add up.
//! - [`Refusal`]: why the aggregator refused one request of a peer (bad peer data or a request
//!   out of turn), with a stable kind the peer acts on, never the message text.
//! - [`OutOfRange`]: a decoded sum no honest hospitals could have made.
//! - [`InvalidServerState`]: a relayed server state that does not fit the agreed rule and model.
//! - [`OutputError`]: why a checked sum gives no next state.
//! - [`Error`]: everything the participant can fail with.

use crate::ids::{NodeId, SessionId, TaskKind};

/// A chunked transfer that does not add up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// The header announces more bytes than the receiver accepts.
    #[error("payload of {total} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Bytes announced.
        total: u64,
        /// The receiver's limit.
        limit: u64,
    },
    /// The stream carries more bytes than announced.
    #[error("stream carries more than the {expected} bytes its header announced")]
    Overflow {
        /// Bytes announced.
        expected: u64,
    },
    /// The stream ended before the announced total.
    #[error("stream ended after {got} of {expected} bytes")]
    Short {
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// Section sizes that do not add up to the payload.
    #[error("payload of {payload} bytes does not hold sections of {sections} bytes")]
    Sections {
        /// Bytes of the payload.
        payload: u64,
        /// Sum of the section sizes.
        sections: u64,
    },
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting is out of its range.
    #[error("{key} = {value}: {expected}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        expected: String,
    },
    /// A name that cannot be a node id or a certificate name.
    #[error("invalid name {0:?}: use 1 to 64 letters, digits, '-' or '.'")]
    Name(String),
    /// The model or training settings are refused by `fedcare-core`.
    #[error("invalid model or training settings: {0}")]
    Model(#[from] fedcare_core::Error),
    /// The crypto parameters cannot carry the configuration.
    #[error("invalid encryption settings: {0}")]
    Crypto(#[from] fedcare_crypto::CryptoError),
}

impl From<crate::ids::InvalidName> for ConfigError {
    fn from(error: crate::ids::InvalidName) -> Self {
        Self::Name(error.0)
    }
}

/// The other side sent something this side cannot use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A field is missing from a message.
    #[error("the {message} carries no {field}")]
    Missing {
        /// The message.
        message: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A field holds a value this build does not know or cannot use.
    #[error("{field} = {value}: {expected}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        expected: String,
    },
    /// A task's payload has the wrong sections.
    #[error("a {task} task carries {got} sections, expected {expected}")]
    Sections {
        /// The task's kind.
        task: &'static str,
        /// Sections received.
        got: usize,
        /// Sections expected.
        expected: usize,
    },
    /// A chunked transfer that does not add up.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// A crypto message that does not decode.
    #[error(transparent)]
    Crypto(#[from] fedcare_crypto::CryptoError),
    /// A model file or parameter vector that does not decode or fit.
    #[error("unusable model: {0}")]
    Model(#[from] fedcare_core::Error),
}

/// Why a hospital refuses what a (possibly lying) aggregator asks of it. Each names what was
/// wrong; the hospital leaves the federation with it, having released nothing that decrypts.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TrustError {
    /// A participant is not on this hospital's roster.
    #[error("{name} takes part but is not on this hospital's roster")]
    NotOnRoster {
        /// The participant.
        name: String,
    },
    /// A participant's key is not the one the roster pins.
    #[error("{name} signs with key {found}, the roster pins {pinned}")]
    KeyMismatch {
        /// The participant.
        name: String,
        /// The fingerprint of the key it used.
        found: crate::ids::Fingerprint,
        /// The roster's fingerprint.
        pinned: crate::ids::Fingerprint,
    },
    /// A signature does not verify.
    #[error("the signature of {signer}'s statement does not verify")]
    BadSignature {
        /// Who it claims to be from.
        signer: NodeId,
    },
    /// A relayed statement is not what this step of this session needs.
    #[error("{signer}'s statement is not for this step of this session: {why}")]
    WrongStatement {
        /// Who signed it.
        signer: NodeId,
        /// What differs.
        why: String,
    },
    /// Fewer participants than this hospital's own minimum.
    #[error("{got} hospitals take part; this hospital's consortium settings require at least {min}")]
    TooFewParticipants {
        /// Participants.
        got: usize,
        /// This hospital's minimum.
        min: usize,
    },
    /// The participants of a later step are not those of the first.
    #[error("the participants changed within the session: {expected:?} then {got:?}")]
    ParticipantsChanged {
        /// The key holders.
        expected: Vec<String>,
        /// The signers of this step.
        got: Vec<String>,
    },
    /// Another participant signed another transcript: the aggregator showed hospitals different
    /// views of the round.
    #[error(
        "{signer} agreed to another round transcript than this hospital's: the aggregator showed them different inputs"
    )]
    TranscriptMismatch {
        /// The participant whose digest differs.
        signer: NodeId,
    },
    /// This hospital's own statement is missing from a relayed set, or was changed.
    #[error("this hospital's own {what} is missing from what the aggregator relayed")]
    OwnStatementMissing {
        /// What was missing.
        what: &'static str,
    },
    /// This hospital already made a decryption share for this slot.
    #[error(
        "already made a decryption share for round {round} ({kind}) of federation {federation:?}; a second one could reveal one hospital's update"
    )]
    SlotSpent {
        /// The federation.
        federation: String,
        /// The round.
        round: u32,
        /// The session kind.
        kind: crate::ids::SessionKind,
    },
    /// A session from a state this hospital already released a sum from, with other
    /// participants: the difference of the two sums would give one hospital's contribution.
    #[error(
        "round {round} ({kind}) starts from the state this hospital released round {earlier_round} ({earlier_kind}) from, with other participants ({earlier:?} then, {now:?} now): the difference of the two sums would reveal one hospital's data"
    )]
    StartReused {
        /// The round of the refused session.
        round: u32,
        /// Its kind.
        kind: crate::ids::SessionKind,
        /// The round of the earlier release.
        earlier_round: u32,
        /// Its kind.
        earlier_kind: crate::ids::SessionKind,
        /// Its participants.
        earlier: Vec<String>,
        /// The refused session's participants.
        now: Vec<String>,
    },
    /// Settings of another federation or job than this hospital agreed to in its own
    /// configuration.
    #[error("the aggregator offers {what} {offered:?}; this hospital agreed to {agreed:?} (its hospital.toml)")]
    NotAgreed {
        /// What differs (`federation id`, `job`).
        what: &'static str,
        /// What this hospital agreed to.
        agreed: String,
        /// What the aggregator offers.
        offered: String,
    },
    /// A release that would spend more of a patient's privacy than this hospital allows, over
    /// all its federations.
    #[error(
        "this hospital's privacy budget: {} would bring a patient's ε to {epsilon:.3} (δ = {delta:e}{}), above its max_epsilon of {max}; it takes part no more",
        release_name(*kind, *round),
        if *spent > 0.0 { format!("; {spent:.3} of it spent in earlier federations") } else { String::new() }
    )]
    PrivacyBudget {
        /// The session refused.
        kind: crate::ids::SessionKind,
        /// Its round.
        round: u32,
        /// The patients' ε after it, over all federations (infinite without differential
        /// privacy).
        epsilon: f64,
        /// What of it earlier federations spent.
        spent: f64,
        /// δ of the federation's ε.
        delta: f64,
        /// The hospital's `max_epsilon`.
        max: f64,
    },
    /// Privacy settings this hospital's budget cannot be counted under (it sets `max_epsilon`):
    /// a δ above its `max_delta` (ε at a large δ bounds nothing), pooled statistics decrypted
    /// exact, or an exploration's exact counts.
    #[error("this hospital's privacy policy (it sets max_epsilon): {why}; it takes part no more")]
    PrivacyPolicy {
        /// What the federation's privacy settings lack.
        why: String,
    },
    /// Past this hospital's bounds.
    #[error("{what} is {got}, this hospital accepts at most {max}")]
    OutOfBounds {
        /// What.
        what: &'static str,
        /// The value asked.
        got: u64,
        /// This hospital's bound.
        max: u64,
    },
    /// A session the agreed job's schedule does not hold, or from a state the schedule does not
    /// start it from.
    #[error("session {session} ({kind}) is not in this hospital's schedule: {why}")]
    OffSchedule {
        /// The refused session.
        session: SessionId,
        /// Its kind.
        kind: crate::ids::SessionKind,
        /// Which rule it breaks.
        why: String,
    },
    /// A revealed key share is not the one its signer committed to, or its signer committed to
    /// none: it may have been chosen after seeing the others'.
    #[error("{signer}'s key share is not the one it committed to before the shares were revealed")]
    ShareNotCommitted {
        /// Who revealed it.
        signer: NodeId,
    },
    /// Below this hospital's floor.
    #[error("{what} is {got}, this hospital requires at least {min}")]
    BelowFloor {
        /// What.
        what: &'static str,
        /// The value asked.
        got: u64,
        /// This hospital's floor.
        min: u64,
    },
    /// A step came out of order.
    #[error("a {step} task came before its session's earlier steps")]
    OutOfOrder {
        /// The step.
        step: TaskKind,
    },
    /// What the aggregator hands out is not what this hospital computed from the checked sum.
    #[error("the aggregator's {what} is not the one this hospital computed from the checked sum of session {session}")]
    OutputMismatch {
        /// What differs (the global model, the server state, the public figures, the model file).
        what: &'static str,
        /// The session whose output this hospital checked.
        session: SessionId,
    },
    /// The state a session starts from is not along the chain of states from the one this
    /// hospital endorsed last: the aggregator forked the federation or rolled it back.
    #[error(
        "the state session {offered} starts from (its roster's endorsed output of session {endorsed}) does not descend from the one this hospital endorsed after session {own}: a fork or a rollback"
    )]
    NotDescended {
        /// The refused session.
        offered: SessionId,
        /// The session whose output the roster endorsed.
        endorsed: SessionId,
        /// The last session this hospital endorsed.
        own: SessionId,
    },
    /// The aggregator refers to a state instead of sending it, and this hospital holds none
    /// with that digest.
    #[error("the aggregator refers to a federation state this hospital does not hold")]
    UnknownState,
    /// A model file whose endorsements do not show that the federation computed it.
    #[error("the final model is not endorsed by the federation: {why}")]
    NotEndorsed {
        /// What is wrong with its endorsements.
        why: String,
    },
    /// The decryption ledger cannot be read or written.
    #[error("the decryption ledger {ledger}: {why}")]
    Ledger {
        /// Where the ledger is kept (its file, for a file ledger).
        ledger: String,
        /// What failed.
        why: String,
    },
}

/// Why the aggregator refused one request. The round it concerns is left intact.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The caller presented no client certificate.
    #[error("a client certificate is required")]
    NoCertificate,
    /// The client certificate names nobody.
    #[error("unusable client certificate: {0}")]
    BadCertificate(String),
    /// The certificate's node is not on the federation's roster.
    #[error("{0:?} is not enrolled in this federation")]
    NotEnrolled(NodeId),
    /// The request names another federation.
    #[error("unknown federation {0:?}")]
    UnknownFederation(String),
    /// The node must join (again) before anything else: it never joined, or the aggregator
    /// restarted since.
    #[error("join first")]
    NotJoined,
    /// No session is running.
    #[error("no round is running")]
    NoSession,
    /// The request belongs to another session than the running one.
    #[error("upload for session {got:?}, the current one is {current}")]
    WrongSession {
        /// The session the request names.
        got: Option<SessionId>,
        /// The running session.
        current: SessionId,
    },
    /// The node is not a participant of the running session.
    #[error("{node} is not part of round {round}")]
    NotParticipant {
        /// The node.
        node: NodeId,
        /// The running round.
        round: u32,
    },
    /// The node has already uploaded in this phase.
    #[error("{0} already uploaded in this phase")]
    AlreadyUploaded(NodeId),
    /// The upload is of another kind than the phase expects.
    #[error("the round is in its {phase} phase")]
    WrongPhase {
        /// The running phase.
        phase: &'static str,
    },
    /// The upload's header names another node than the certificate.
    #[error("header names node {header:?}, the certificate {certificate:?}")]
    NodeMismatch {
        /// The node the header names.
        header: String,
        /// The certificate's node.
        certificate: NodeId,
    },
    /// The node has an upload in flight already.
    #[error("{0} already has an upload in flight")]
    UploadInFlight(NodeId),
    /// The upload stream is malformed (no header first, two headers).
    #[error("malformed upload stream: {0}")]
    Stream(&'static str),
    /// The upload's size is over the limit or disagrees with its header.
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// The upload's bytes are not a valid message of the expected kind for this session.
    #[error("invalid {what}: {source}")]
    Invalid {
        /// What was expected ("key share", "contribution", "decryption share").
        what: &'static str,
        /// What is wrong with it.
        source: fedcare_crypto::CryptoError,
    },
    /// A signed statement that is not the uploader's, does not verify or is not for this step.
    #[error("invalid signed statement: {0}")]
    BadStatement(String),
    /// A message made by another party than the uploader.
    #[error("{what} made for another party")]
    ForeignParty {
        /// What was uploaded.
        what: &'static str,
    },
    /// The federation has ended.
    #[error("the federation has ended")]
    Ended,
    /// The aggregator is shutting down (a restarted one resumes: reconnect).
    #[error("the aggregator is shutting down")]
    ShuttingDown,
}

impl Refusal {
    /// The stable name of the variant, as it travels to the peer (the shell sends it in the
    /// `fedcare-refusal` metadata of the gRPC status).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoCertificate => "no-certificate",
            Self::BadCertificate(_) => "bad-certificate",
            Self::NotEnrolled(_) => "not-enrolled",
            Self::UnknownFederation(_) => "unknown-federation",
            Self::NotJoined => "not-joined",
            Self::NoSession => "no-session",
            Self::WrongSession { .. } => "wrong-session",
            Self::NotParticipant { .. } => "not-participant",
            Self::AlreadyUploaded(_) => "already-uploaded",
            Self::WrongPhase { .. } => "wrong-phase",
            Self::NodeMismatch { .. } => "node-mismatch",
            Self::UploadInFlight(_) => "upload-in-flight",
            Self::Stream(_) => "stream",
            Self::Transfer(_) => "transfer",
            Self::Invalid { .. } => "invalid",
            Self::BadStatement(_) => "bad-statement",
            Self::ForeignParty { .. } => "foreign-party",
            Self::Ended => "ended",
            Self::ShuttingDown => "shutting-down",
        }
    }

    /// The kinds of refusal that only say the session a request was made for is over (the round
    /// restarted or moved on): the hospital goes on with its next task.
    pub const STALE: [&'static str; 4] = ["no-session", "wrong-session", "wrong-phase", "not-participant"];
}

/// Everything the protocol's state machines can fail with ([`crate::participant::Participant`]
/// and [`crate::coordinator::Coordinator::new`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The federation's settings cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The aggregator sent something unusable.
    #[error("the aggregator sent something unusable: {0}")]
    Protocol(#[from] ProtocolError),
    /// This hospital refuses what the aggregator asked (see [`TrustError`]).
    #[error("refused: {0}")]
    Trust(#[from] TrustError),
    /// The threshold encryption refused an operation.
    #[error(transparent)]
    Crypto(#[from] fedcare_crypto::CryptoError),
    /// `fedcare-core` refused an operation (a model file, the codec).
    #[error(transparent)]
    Core(#[from] fedcare_core::Error),
    /// The random source the shell handed in failed: nothing is drawn in its place.
    #[error("the random source failed: {0}")]
    Random(String),
    /// A signing key could not sign.
    #[error("cannot sign: {0}")]
    Sign(String),
    /// A checkpoint of another federation or model than the plan's.
    #[error("a checkpoint of {found}, the plan is of {expected}")]
    ForeignCheckpoint {
        /// What the plan describes.
        expected: String,
        /// What the checkpoint describes.
        found: String,
    },
    /// The checked sum of a session does not give a usable output.
    #[error("the checked sum of session {session}: {why}")]
    Output {
        /// The session.
        session: SessionId,
        /// What is wrong with it.
        #[source]
        why: OutputError,
    },
}

/// A decoded sum outside what honest hospitals can produce: one hospital's encoding is out of
/// range (the sanity bounds of `SetupCounts::check` and `check_exploration`; a hospital that
/// lies within them is not caught: that needs range proofs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutOfRange {
    /// Row counts no set of hospitals has.
    #[error(
        "the decoded row counts ({train} training, {test} held out) are impossible for {hospitals} hospitals: one hospital's setup encoding is out of range"
    )]
    Rows {
        /// Training rows.
        train: u64,
        /// Held-out rows.
        test: u64,
        /// Hospitals in the sum.
        hospitals: usize,
    },
    /// A numeric feature present in more rows than there are.
    #[error(
        "numeric feature {feature} is present in {count} of {rows} rows: one hospital's setup encoding is out of range"
    )]
    FeatureCount {
        /// The feature's index.
        feature: usize,
        /// Rows it is present in.
        count: u64,
        /// Training rows.
        rows: u64,
    },
    /// A `top_k` column counting more rows than there are.
    #[error("top_k column {column} counts {total} of {rows} rows: one hospital's setup encoding is out of range")]
    Buckets {
        /// The column's index among the `top_k` columns.
        column: usize,
        /// Rows it counts.
        total: u64,
        /// Training rows.
        rows: u64,
    },
    /// Exploration totals no set of hospitals has.
    #[error(
        "{rows} rows with {positives} positives for {hospitals} hospitals: one hospital's exploration encoding is out of range"
    )]
    ExploreRows {
        /// Rows.
        rows: u64,
        /// Positive rows.
        positives: u64,
        /// Hospitals in the sum.
        hospitals: usize,
    },
    /// An explored column whose cells do not add up to the rows.
    #[error("column {column} counts {total:?} of {rows} rows: one hospital's exploration encoding is out of range")]
    ExploreColumn {
        /// The column's index.
        column: usize,
        /// Its cells and missing rows added up (`None`: past 2^64).
        total: Option<u64>,
        /// Rows.
        rows: u64,
    },
}

/// A relayed server state that does not fit the agreed rule and model size.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InvalidServerState {
    /// The optimizer's state is not the agreed rule's for this model.
    #[error("the server optimizer's state: {0}")]
    Optimizer(fedcare_core::Error),
    /// The best model has another number of parameters than the model.
    #[error("the best model has {got} parameters, the model {expected}")]
    BestLength {
        /// The best model's parameters.
        got: usize,
        /// The model's.
        expected: usize,
    },
    /// The best model has a NaN or infinite parameter.
    #[error("the best model has a non-finite parameter")]
    BestNotFinite,
    /// The best model's AUROC is not a probability.
    #[error("the best model's AUROC {0} is outside [0, 1]")]
    BestAuroc(f64),
}

/// Why a checked sum gives no next state (the same on the aggregator and on every hospital).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OutputError {
    /// The plaintext words do not decode as the contributors' fixed-point sum.
    #[error("the decrypted sum does not decode: {0}")]
    Decode(fedcare_core::Error),
    /// The decoded values do not fit the session's layout.
    #[error("the decrypted sum: {0}")]
    Layout(ProtocolError),
    /// The decoded counts are out of range.
    #[error(transparent)]
    OutOfRange(#[from] OutOfRange),
    /// The server rule refused the mean update.
    #[error("the server rule: {0}")]
    ServerRule(fedcare_core::Error),
    /// The model file could not be made.
    #[error("the model file: {0}")]
    ModelFile(fedcare_core::Error),
    /// The pooled histograms do not grow the tree the state asks for, or the pooled label
    /// counts are out of range.
    #[error("boosting: {0}")]
    Boosting(fedcare_core::Error),
}

/// Result type of the participant.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// What a release of a `kind` session of `round` is, in words.
fn release_name(kind: crate::ids::SessionKind, round: u32) -> String {
    use crate::ids::SessionKind;
    match kind {
        SessionKind::Setup => "the setup session's pooled counts".into(),
        SessionKind::Train => format!("training round {round}"),
        SessionKind::Evaluate => "the final evaluation".into(),
        SessionKind::Explore => "the exploration's counts".into(),
    }
}
