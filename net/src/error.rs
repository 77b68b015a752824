//! The error type of the federation's shells ([`FederationError`]: the aggregator's and the
//! hospital's), and how a refusal travels as a gRPC status.
//!
//! - [`Refusal`], [`ConfigError`], [`ProtocolError`], [`TrustError`], [`TransferError`]: the
//!   protocol's own ([`fedcare_protocol::error`]), re-exported. A refusal travels to the peer as a
//!   gRPC status whose `fedcare-refusal` metadata names the variant ([`refusal_status`]), so the
//!   peer reacts to the kind, never to the message text ([`status_is`]).
//! - [`FederationError`]: everything a role can fail with, each wrapping the above or the error
//!   of the layer below (crypto, data, files, transport).

use std::path::PathBuf;

pub use fedcare_protocol::error::{ConfigError, ProtocolError, Refusal, TransferError, TrustError};

/// The metadata key that names a refusal's kind on the wire.
pub const REFUSAL_METADATA: &str = "fedcare-refusal";

/// The gRPC status code of a refusal.
pub fn refusal_code(refusal: &Refusal) -> tonic::Code {
    use tonic::Code;
    match refusal {
        Refusal::NoCertificate | Refusal::BadCertificate(_) => Code::Unauthenticated,
        Refusal::NotEnrolled(_)
        | Refusal::NotParticipant { .. }
        | Refusal::NodeMismatch { .. }
        | Refusal::ForeignParty { .. } => Code::PermissionDenied,
        Refusal::UnknownFederation(_)
        | Refusal::NotJoined
        | Refusal::NoSession
        | Refusal::WrongSession { .. }
        | Refusal::WrongPhase { .. }
        | Refusal::Ended => Code::FailedPrecondition,
        Refusal::AlreadyUploaded(_) => Code::AlreadyExists,
        Refusal::UploadInFlight(_) => Code::ResourceExhausted,
        Refusal::Stream(_) | Refusal::Invalid { .. } | Refusal::BadStatement(_) => Code::InvalidArgument,
        Refusal::Transfer(error) => transfer_code(error),
        Refusal::ShuttingDown => Code::Unavailable,
        _ => Code::Internal,
    }
}

/// Whether a status from the aggregator is a refusal of one of the [`Refusal::STALE`] kinds.
pub fn status_is_stale(status: &tonic::Status) -> bool {
    Refusal::STALE.iter().any(|kind| status_is(status, kind))
}

/// Whether a status from the aggregator is this kind of refusal.
pub fn status_is(status: &tonic::Status, kind: &str) -> bool {
    status.metadata().get(REFUSAL_METADATA).and_then(|v| v.to_str().ok()) == Some(kind)
}

/// A refusal as the gRPC status the peer receives: its code, its message and its kind in the
/// `fedcare-refusal` metadata.
pub fn refusal_status(refusal: Refusal) -> tonic::Status {
    let mut status = tonic::Status::new(refusal_code(&refusal), refusal.to_string());
    status.metadata_mut().insert(REFUSAL_METADATA, tonic::metadata::MetadataValue::from_static(refusal.kind()));
    status
}

/// A refusal turned into the status the peer receives ([`refusal_status`]), for `?` and
/// `.map_err` in the service's handlers.
pub trait IntoStatus<T> {
    /// The result with its refusal as a status.
    fn into_status(self) -> Result<T, tonic::Status>;
}

impl<T> IntoStatus<T> for Result<T, Refusal> {
    fn into_status(self) -> Result<T, tonic::Status> {
        self.map_err(refusal_status)
    }
}

/// The gRPC status code of a transfer that does not add up.
fn transfer_code(error: &TransferError) -> tonic::Code {
    match error {
        TransferError::TooLarge { .. } | TransferError::Overflow { .. } => tonic::Code::OutOfRange,
        TransferError::Short { .. } | TransferError::Sections { .. } => tonic::Code::DataLoss,
        _ => tonic::Code::InvalidArgument,
    }
}

/// Why a `metrics.jsonl` cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// A line is not a round record.
    #[error("line {line}: not a round record: {message}")]
    NotARecord {
        /// 1-based line.
        line: usize,
        /// The JSON parser's explanation.
        message: String,
    },
    /// A record holds a figure outside its range.
    #[error("line {line}: round {round}: {what} {value} is {expected}")]
    OutOfRange {
        /// 1-based line.
        line: usize,
        /// The record's round.
        round: u32,
        /// Which figure.
        what: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        expected: &'static str,
    },
    /// The file holds no record.
    #[error("no round records")]
    Empty,
    /// The file is larger than a federation ever writes.
    #[error("{size} bytes, more than the {limit} read")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file is not UTF-8 text.
    #[error("not UTF-8 text")]
    NotText,
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
        source: MetricsError,
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
    Ended(fedcare_protocol::coordinator::Failure),
    /// The threshold encryption refused an operation.
    #[error(transparent)]
    Crypto(#[from] fedcare_crypto::CryptoError),
    /// `fedcare-core` refused an operation (training, a model file).
    #[error(transparent)]
    Core(#[from] fedcare_core::Error),
    /// The hospital's data cannot be used: a `fedcare_data::DataError` (this layer knows no
    /// patient data; the hospital's shell puts it here, and a caller takes it back out with
    /// [`FederationError::data_error`]).
    #[error(transparent)]
    Data(Box<dyn core::error::Error + Send + Sync>),
    /// The hospital's trainer failed: a `fedcare_gpu_trainer::GpuError` (likewise,
    /// [`FederationError::trainer_error`]).
    #[error(transparent)]
    Trainer(Box<dyn core::error::Error + Send + Sync>),
    /// A background task died.
    #[error("a background task failed: {0}")]
    Task(String),
    /// The hospital's protocol logic failed for a reason of its own (its random source, its
    /// signing key, an output it cannot compute).
    #[error(transparent)]
    Participant(fedcare_protocol::Error),
}

impl From<fedcare_protocol::InvalidName> for FederationError {
    fn from(error: fedcare_protocol::InvalidName) -> Self {
        Self::Config(error.into())
    }
}

impl From<fedcare_protocol::Error> for FederationError {
    fn from(error: fedcare_protocol::Error) -> Self {
        use fedcare_protocol::Error as E;
        match error {
            E::Config(e) => Self::Config(e),
            E::Protocol(e) => Self::Protocol(e),
            E::Trust(e) => Self::Trust(e),
            E::Crypto(e) => Self::Crypto(e),
            E::Core(e) => Self::Core(e),
            other => Self::Participant(other),
        }
    }
}

impl FederationError {
    /// The data error inside a [`FederationError::Data`], of the type the hospital put there.
    pub fn data_error<E: core::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Self::Data(error) => error.downcast_ref(),
            _ => None,
        }
    }

    /// The trainer's error inside a [`FederationError::Trainer`], of the type the hospital put
    /// there.
    pub fn trainer_error<E: core::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Self::Trainer(error) => error.downcast_ref(),
            _ => None,
        }
    }

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
                transport || reset || status_is(status, Refusal::NotJoined.kind())
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
    use fedcare_protocol::{NodeId, SessionId};

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
            let status = refusal_status(refusal.clone());
            assert!(status_is_stale(&status), "{refusal:?}");
            assert_eq!(status.code(), refusal_code(&refusal));
        }
        // A shutting-down aggregator: the hospital retries, as when the aggregator is gone.
        assert_eq!(refusal_code(&Refusal::ShuttingDown), tonic::Code::Unavailable);
        for refusal in [Refusal::NotJoined, Refusal::AlreadyUploaded(node), Refusal::Ended] {
            assert!(!status_is_stale(&refusal_status(refusal.clone())), "{refusal:?}");
        }
        assert!(status_is(&refusal_status(Refusal::NotJoined), "not-joined"));
        assert!(!status_is(&tonic::Status::failed_precondition("join first"), "not-joined"), "text is not a kind");
    }
}
