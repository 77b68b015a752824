//! What the aggregator asks of a hospital ([`Task`], [`TaskKind`]) and what a hospital's upload
//! announces ([`UploadHeader`], [`UploadKind`]).

use bytes::Bytes;
use fedcare_crypto::Crs;

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

/// The kind of task a node gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Nothing new yet: ask again.
    Wait,
    /// Draw a fresh key share for the session's CRS and upload its public part, signed.
    KeyGen,
    /// Sections: every participant's signed key share, then the global model, the server
    /// optimizer state and the hospitals' endorsements of that state (to a hospital that holds
    /// the state: its digest alone). Upload the signed round transcript.
    Confirm,
    /// Section: every participant's signed transcript. Upload the encrypted contribution.
    Contribute,
    /// Section: the aggregate's masks. Upload a signed commitment with fresh randomness.
    Challenge,
    /// Section: every participant's signed commitment. Upload the signed mask fingerprint.
    Prove,
    /// Section: every participant's signed fingerprint. Upload a decryption share.
    Decrypt,
    /// Section: the decrypted sum, unrounded. Upload a signed commitment with fresh randomness.
    Result,
    /// Section: every participant's signed commitment. Upload the signed output fingerprint.
    Attest,
    /// Section: every participant's signed output fingerprint. Upload the signed output.
    Accept,
    /// The aggregator restarted after the session's result went out: upload the decrypted sum
    /// this node holds of the session (nothing when it holds none).
    Recover,
    /// The federation is over; section: the final model file.
    Done,
    /// The federation stopped; see the message.
    Failed,
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
