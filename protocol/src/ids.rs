//! Who and what a message is about: a node ([`NodeId`]) and its key's pin ([`Fingerprint`]),
//! what a session computes ([`SessionKind`]), which attempt at which round it is ([`SessionId`]),
//! which step of it a task asks for ([`TaskKind`]) and what is planned next ([`Planned`]). One
//! type each, used by both roles. This module imports no other of the crate: every other may
//! import it.

use core::fmt;

use serde::{Deserialize, Serialize};

/// A node's identity: the name in its mTLS certificate (a hospital's node id).
///
/// Decoding checks the name as [`NodeId::new`] does: a peer's message cannot carry a node id
/// that the constructor would refuse.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl NodeId {
    /// A node id of 1 to 64 letters, digits, `-` or `.`, not starting with `-`.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidName> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !name.starts_with('-');
        if valid { Ok(Self(name)) } else { Err(InvalidName(name)) }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = InvalidName;

    fn try_from(name: String) -> Result<Self, InvalidName> {
        Self::new(name)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> Self {
        id.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A name that cannot be a node id or a certificate name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid name {0:?}: use 1 to 64 letters, digits, '-' or '.'")]
pub struct InvalidName(pub String);

/// SHA-256 of a public key's DER `SubjectPublicKeyInfo`, written `sha256:<64 hex digits>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl core::str::FromStr for Fingerprint {
    type Err = String;

    fn from_str(text: &str) -> core::result::Result<Self, String> {
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        let bad = || format!("{text:?} is not a key fingerprint (sha256: and 64 hex digits)");
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(out))
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> core::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> core::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What a session computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// Before training: the secure sum of the hospitals' row counts, feature moments and `top_k`
    /// bucket counts.
    Setup,
    /// One round of local training: the secure sum of the weighted updates and evaluations.
    Train,
    /// After training: the secure evaluation of the final model.
    Evaluate,
    /// An exploration's one session after setup: the secure sum of every column's counts.
    Explore,
}

impl SessionKind {
    /// The kind's name, as in `metrics.jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Train => "train",
            Self::Evaluate => "evaluate",
            Self::Explore => "explore",
        }
    }
}

impl fmt::Display for SessionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that tables can align it (`{:>9}`).
        f.pad(self.name())
    }
}

/// The kind of task a node gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Nothing new yet: ask again.
    Wait,
    /// Draw a fresh key share for the session's CRS and upload a signed commitment to it (its
    /// digest): no key share is seen before every participant committed to its own.
    KeyGen,
    /// Section: every participant's signed key-share commitment. Upload the public key share
    /// committed to, signed.
    Reveal,
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

impl TaskKind {
    /// The step's name, for errors and logs: the one name of each step of a session, used by
    /// the coordinator's phases, the participant's refusals and the statements' steps alike.
    pub fn name(self) -> &'static str {
        match self {
            Self::Wait => "wait",
            Self::KeyGen => "key generation",
            Self::Reveal => "key share reveal",
            Self::Confirm => "confirmation",
            Self::Contribute => "contribution",
            Self::Challenge => "challenge",
            Self::Prove => "proof",
            Self::Decrypt => "decryption",
            Self::Result => "result",
            Self::Attest => "attestation",
            Self::Accept => "acceptance",
            Self::Recover => "recovery",
            Self::Done => "final model",
            Self::Failed => "failure",
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// One attempt at one round. A round that loses a hospital restarts as the next attempt, with
/// fresh keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionId {
    /// 0: setup; 1..=rounds: training; the round after the last training round (rounds + 1, or
    /// earlier when `patience` stopped training): final evaluation.
    pub round: u32,
    /// Restarts of this round before this attempt.
    pub attempt: u32,
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.attempt)
    }
}

/// A session planned next: its round and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    /// The round.
    pub round: u32,
    /// What it computes.
    pub kind: SessionKind,
}
