//! What the aggregator asks of a hospital ([`Task`], [`TaskKind`]) and what a hospital's upload
//! announces ([`UploadHeader`], [`UploadKind`]).

use bytes::Bytes;
use fedcare_crypto::Crs;

pub use crate::ids::TaskKind;
use crate::ids::{SessionId, SessionKind};
use crate::settings::PublicFigures;

/// The kinds of upload a hospital makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    /// Its public key share, signed.
    KeyShare,
    /// Its encrypted contribution.
    Contribution,
    /// Its decryption share of the aggregate.
    DecryptionShare,
    /// A signed statement: its transcript, challenge commitment or mask fingerprint.
    Statement,
    /// The decrypted sum of a session it holds (empty: none), for an aggregator that resumes.
    Sum,
}

impl UploadKind {
    /// The kind's name, for errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::KeyShare => "key share",
            Self::Contribution => "contribution",
            Self::DecryptionShare => "decryption share",
            Self::Statement => "signed statement",
            Self::Sum => "decrypted sum",
        }
    }
}

/// What an upload's header announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadHeader {
    /// The federation it is for.
    pub federation_id: String,
    /// The session it is for.
    pub session: Option<SessionId>,
    /// The node it claims to come from.
    pub node: String,
    /// What it is (`None`: a kind this build does not know).
    pub kind: Option<UploadKind>,
}

/// A task for one node (what the aggregator sends, and what the node receives).
#[derive(Debug, Clone)]
pub struct Task {
    /// What to do.
    pub kind: TaskKind,
    /// The session it belongs to.
    pub session: Option<SessionId>,
    /// What the session computes.
    pub session_kind: Option<SessionKind>,
    /// The session's CRS.
    pub crs: Option<Crs>,
    /// What the setup session made public.
    pub figures: PublicFigures,
    /// The payload's sections (shared, never copied per node).
    pub sections: Vec<Bytes>,
    /// Why the federation failed (`Failed` tasks).
    pub message: String,
}

impl Task {
    /// What identifies the task, to tell a new one from one a node has handled.
    pub fn key(&self) -> (Option<SessionId>, TaskKind) {
        (self.session, self.kind)
    }
}
