//! The error types of `fedcare-federation`.
//!
//! - [`Refusal`]: why the aggregator refused one request of a peer (bad peer data or a request
//!   out of turn). It travels to the peer as a gRPC status whose `fedcare-refusal` metadata names
//!   the variant, so the peer reacts to the kind, never to the message text.
//! - [`ConfigError`]: a configuration that cannot work (caller misuse, found before any network).
//! - [`ProtocolError`]: the other side sent something this side cannot use.
//! - [`FederationError`]: everything a role can fail with, each wrapping the above or the error
//!   of the layer below (crypto, data, files, transport).

use std::path::PathBuf;

use crate::protocol::{NodeId, SessionId};

/// The metadata key that names a refusal's kind on the wire.
pub const REFUSAL_METADATA: &str = "fedcare-refusal";

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
    /// The stable name of the variant, as sent in the `fedcare-refusal` metadata.
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

    /// The gRPC status code of the refusal.
    pub fn code(&self) -> tonic::Code {
        use tonic::Code;
        match self {
            Self::NoCertificate | Self::BadCertificate(_) => Code::Unauthenticated,
            Self::NotEnrolled(_)
            | Self::NotParticipant { .. }
            | Self::NodeMismatch { .. }
            | Self::ForeignParty { .. } => Code::PermissionDenied,
            Self::UnknownFederation(_)
            | Self::NotJoined
            | Self::NoSession
            | Self::WrongSession { .. }
            | Self::WrongPhase { .. }
            | Self::Ended => Code::FailedPrecondition,
            Self::AlreadyUploaded(_) => Code::AlreadyExists,
            Self::UploadInFlight(_) => Code::ResourceExhausted,
            Self::Stream(_) | Self::Invalid { .. } | Self::BadStatement(_) => Code::InvalidArgument,
            Self::Transfer(error) => error.code(),
            Self::ShuttingDown => Code::Unavailable,
        }
    }

    /// The kinds of refusal that only say the session a request was made for is over (the round
    /// restarted or moved on): the hospital goes on with its next task.
    pub const STALE: [&'static str; 4] = ["no-session", "wrong-session", "wrong-phase", "not-participant"];

    /// Whether a status from the aggregator is a refusal of one of the [`Self::STALE`] kinds.
    pub fn status_is_stale(status: &tonic::Status) -> bool {
        Self::STALE.iter().any(|kind| Self::status_is(status, kind))
    }

    /// Whether a status from the aggregator is this kind of refusal.
    pub fn status_is(status: &tonic::Status, kind: &str) -> bool {
        status.metadata().get(REFUSAL_METADATA).and_then(|v| v.to_str().ok()) == Some(kind)
    }
}

impl From<Refusal> for tonic::Status {
    fn from(refusal: Refusal) -> Self {
        let mut status = tonic::Status::new(refusal.code(), refusal.to_string());
        status.metadata_mut().insert(REFUSAL_METADATA, tonic::metadata::MetadataValue::from_static(refusal.kind()));
        status
    }
}

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

impl TransferError {
    /// The gRPC status code of the error.
    pub fn code(&self) -> tonic::Code {
        match self {
            Self::TooLarge { .. } | Self::Overflow { .. } => tonic::Code::OutOfRange,
            Self::Short { .. } | Self::Sections { .. } => tonic::Code::DataLoss,
        }
    }
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
        found: crate::signing::Fingerprint,
        /// The roster's fingerprint.
        pinned: crate::signing::Fingerprint,
    },
    /// A signature does not verify.
    #[error("the signature of {signer}'s statement does not verify")]
    BadSignature {
        /// Who it claims to be from.
        signer: crate::protocol::NodeId,
    },
    /// A relayed statement is not what this step of this session needs.
    #[error("{signer}'s statement is not for this step of this session: {why}")]
    WrongStatement {
        /// Who signed it.
        signer: crate::protocol::NodeId,
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
        signer: crate::protocol::NodeId,
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
        kind: crate::protocol::SessionKind,
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
    /// A step came out of order.
    #[error("a {step} task came before its session's earlier steps")]
    OutOfOrder {
        /// The step.
        step: &'static str,
    },
    /// What the aggregator hands out is not what this hospital computed from the checked sum.
    #[error("the aggregator's {what} is not the one this hospital computed from the checked sum of session {session}")]
    OutputMismatch {
        /// What differs (the global model, the server state, the public figures, the model file).
        what: &'static str,
        /// The session whose output this hospital checked.
        session: crate::protocol::SessionId,
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
    #[error("the decryption ledger {}: {why}", path.display())]
    Ledger {
        /// The ledger file.
        path: std::path::PathBuf,
        /// What failed.
        why: String,
    },
}

/// Everything a role of the federation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FederationError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A configuration file cannot be parsed.
    #[error("invalid configuration in {}: {message}", path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The parser's explanation (line, key).
        message: String,
    },
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A file or directory cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A private key file exists already (keys are never overwritten).
    #[error("{} exists already: move it away to make new keys (keys are never overwritten)", path.display())]
    KeyExists {
        /// The file.
        path: PathBuf,
    },
    /// The checkpoint in the output directory is damaged.
    #[error("{} is damaged ({source}); move it away to start afresh", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        source: fedcare_core::Error,
    },
    /// The checkpoint in the output directory belongs to another federation or model.
    #[error("{} holds a checkpoint of {found}, this configuration is {expected}; use another out_dir", path.display())]
    ForeignCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What the configuration describes.
        expected: String,
        /// What the checkpoint describes.
        found: String,
    },
    /// A file is not an exploration report this build reads.
    #[error("{} is not a fedcare exploration report: {message}", path.display())]
    NotAReport {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A `metrics.jsonl` that is not a federation's metrics.
    #[error("{} is not a fedcare metrics file: {source}", path.display())]
    Metrics {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: crate::persistence::MetricsError,
    },
    /// A certificate or key cannot be made or used.
    #[error("TLS: {0}")]
    Tls(String),
    /// The aggregator cannot listen on its address.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("the gRPC server failed: {0}")]
    Server(#[source] tonic::transport::Error),
    /// The aggregator cannot be reached.
    #[error("cannot reach {url}: {source}")]
    Connect {
        /// The aggregator's URL.
        url: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// An RPC failed (the aggregator refused it, or the connection broke).
    #[error("{call} failed: {}", status.message())]
    Rpc {
        /// The call ("join", "upload of a key share", …).
        call: &'static str,
        /// The status the aggregator (or the transport) gave.
        status: tonic::Status,
    },
    /// The aggregator stayed unreachable.
    #[error("the aggregator stayed unreachable for {seconds} s; last error: {last}")]
    Unreachable {
        /// How long this node kept trying.
        seconds: u64,
        /// The last error.
        last: Box<FederationError>,
    },
    /// The aggregator sent something unusable.
    #[error("the aggregator sent something unusable: {0}")]
    Protocol(#[from] ProtocolError),
    /// This hospital refuses what the aggregator asked (see [`TrustError`]).
    #[error("refused: {0}")]
    Trust(#[from] TrustError),
    /// The aggregator reports that the federation stopped.
    #[error("the federation stopped: {0}")]
    Stopped(String),
    /// A federation that ended early (the simulation's verdict).
    #[error("the federation stopped early: {0}")]
    Ended(crate::coordinator::Failure),
    /// The threshold encryption refused an operation.
    #[error(transparent)]
    Crypto(#[from] fedcare_crypto::CryptoError),
    /// `fedcare-core` refused an operation (training, a model file).
    #[error(transparent)]
    Core(#[from] fedcare_core::Error),
    /// The hospital's data cannot be used.
    #[cfg(feature = "hospital")]
    #[error(transparent)]
    Data(#[from] fedcare_data::DataError),
    /// The GPU trainer failed.
    #[cfg(feature = "hospital")]
    #[error(transparent)]
    Gpu(#[from] fedcare_gpu_trainer::GpuError),
    /// A background task died.
    #[error("a background task failed: {0}")]
    Task(String),
    /// Training on would spend more of a patient's privacy than this hospital allows.
    #[error(
        "this hospital's privacy budget: {session} would bring a patient's ε to {epsilon:.3} (δ = {delta:e}), above \
         its max_epsilon of {max}; it takes part no more",
        session = if *round == 0 { "the setup session's pooled counts".to_owned() } else { format!("training round {round}") }
    )]
    PrivacyBudget {
        /// The training round refused (0: the setup session).
        round: u32,
        /// ε after that round (infinite without differential privacy).
        epsilon: f64,
        /// δ of that ε.
        delta: f64,
        /// The hospital's `max_epsilon`.
        max: f64,
    },
}

impl FederationError {
    /// Whether the error means the aggregator went away (retry) rather than refused something
    /// (stop): the transport failed, the connection broke, or the aggregator restarted and
    /// forgot this node.
    pub fn is_connection_loss(&self) -> bool {
        match self {
            Self::Connect { .. } => true,
            Self::Rpc { status, .. } => {
                let transport = matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Aborted
                );
                // An HTTP/2 stream reset by an aggregator going away arrives as `Internal` with the
                // h2 error as its source; the aggregator's own errors carry no source.
                let reset = status.code() == tonic::Code::Internal && core::error::Error::source(status).is_some();
                transport || reset || Refusal::status_is(status, Refusal::NotJoined.kind())
            }
            _ => false,
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = FederationError> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_travels_with_its_kind_and_stale_ones_are_known() {
        let session = SessionId { round: 1, attempt: 0 };
        let node = NodeId::new("a").unwrap();
        let stale = [
            Refusal::NoSession,
            Refusal::WrongSession { got: None, current: session },
            Refusal::WrongPhase { phase: "decryption" },
            Refusal::NotParticipant { node: node.clone(), round: 1 },
        ];
        for refusal in stale {
            let status = tonic::Status::from(refusal.clone());
            assert!(Refusal::status_is_stale(&status), "{refusal:?}");
            assert_eq!(status.code(), refusal.code());
        }
        for refusal in [Refusal::NotJoined, Refusal::AlreadyUploaded(node), Refusal::Ended] {
            assert!(!Refusal::status_is_stale(&tonic::Status::from(refusal.clone())), "{refusal:?}");
        }
        assert!(Refusal::status_is(&Refusal::NotJoined.into(), "not-joined"));
        assert!(
            !Refusal::status_is(&tonic::Status::failed_precondition("join first"), "not-joined"),
            "text is not a kind"
        );
    }
}
