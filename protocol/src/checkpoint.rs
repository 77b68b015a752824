//! What the aggregator's state is on disk: the resumable [`Checkpoint`] of a federation (in
//! `fedcare-core`'s envelope: magic `b"FEDCCKPT"`, version, length, CRC-32, around a postcard
//! payload), the [`OpenedSession`] a restarted aggregator recovers, and the [`Snapshot`] the
//! coordinator hands its shell to write after a session. The shell writes and reads the files;
//! the bytes are made and checked here.

use fedcare_core::ModelFile;
use fedcare_core::envelope::Format;
use serde::{Deserialize, Serialize};

use crate::digest::StateContent;
use crate::selection::ServerState;
use crate::{NodeId, Planned, PublicFigures, RoundRecord, SessionId};

/// The checkpoint's envelope. 4: the common envelope, typed session kinds, the public figures
/// of the setup session in one record; 5: the opened decryption slot; 6: the hospitals'
/// endorsements and the opened session's id, CRS and participants; 7: the server state holds the
/// best model so far; 8: the server state counts the released rounds; 9: the chain of states; 10: the
/// records carry the final evaluation's subgroup figures; 11: the server state holds the boosting
/// state; 12: with the pooled quantiles of the inputs without thresholds.
pub const CHECKPOINT_FORMAT: Format = Format { magic: *b"FEDCCKPT", version: 12, name: "checkpoint" };
/// The largest checkpoint read back (a 200M-parameter model with its optimizer state).
pub const CHECKPOINT_LIMIT: usize = 4 << 30;

/// The resumable state of a federation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The federation it belongs to.
    pub federation_id: String,
    /// Parameters of the model (checked against the configuration on resume).
    pub param_count: u64,
    /// The next session; `None` when the federation has finished.
    pub next: Option<Planned>,
    /// The global parameters.
    pub global: Vec<f32>,
    /// The server state: the optimizer's and the best model so far.
    pub server: ServerState,
    /// What the setup session made public.
    pub figures: PublicFigures,
    /// Completed sessions.
    pub records: Vec<RoundRecord>,
    /// The session whose decryption was opened (written before any hospital may release a
    /// decryption share) and that had not completed: it is never run again.
    pub opened: Option<Planned>,
    /// The hospitals' endorsements of the last completed session's output (a relayed bundle of
    /// signed statements; empty before the first): the model file carries them.
    #[serde(with = "serde_bytes")]
    pub endorsements: Vec<u8>,
    /// What a restarted aggregator needs of the opened session to resume its result from the
    /// hospitals that hold it (set with `opened`).
    pub resumable: Option<OpenedSession>,
    /// The contents of the federation's chain of states, the initial state's first and the
    /// current one's last ([`crate::transcript::state_content`]): what a hospital that does not
    /// hold the current state checks it descends from its own by.
    pub chain: Vec<StateContent>,
}

/// The session whose decryption was opened: its id, CRS and participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenedSession {
    /// The session.
    pub session: SessionId,
    /// Its CRS.
    pub crs: u128,
    /// Its participants.
    pub participants: Vec<NodeId>,
}

/// What the aggregator writes after a session: the checkpoint and the model file.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The checkpoint (its records are `metrics.jsonl`).
    pub checkpoint: Checkpoint,
    /// The model file.
    pub model: ModelFile,
    /// An exploration's report, once its session completed (`explore.json`).
    pub exploration: Option<fedcare_core::explore::ExploreReport>,
}

impl Checkpoint {
    /// The checkpoint's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, fedcare_core::Error> {
        let payload = postcard::to_allocvec(self).map_err(fedcare_core::Error::Malformed)?;
        CHECKPOINT_FORMAT.seal(&payload)
    }

    /// A checkpoint from its bytes, checked in the envelope's order (size, magic, version,
    /// length, CRC, payload).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, fedcare_core::Error> {
        let payload = CHECKPOINT_FORMAT.open(bytes, CHECKPOINT_LIMIT)?;
        postcard::from_bytes(payload).map_err(fedcare_core::Error::Malformed)
    }
}
