//! The signed statements of one session and the digests they bind: what a lying aggregator
//! would have to forge, and cannot, since each is signed by a hospital's own key
//! ([`crate::signing`]).
//!
//! One session (one attempt at one round) runs these steps; each hospital signs one
//! [`Statement`] per step and the aggregator relays all of them to every participant:
//!
//! 1. [`Claim::KeyShare`]: its public key share for the session's CRS. Every hospital sums the
//!    relayed shares itself, its own among them, into the collective key.
//! 2. [`Claim::Transcript`]: the [`transcript_digest`] of everything the round depends on — the
//!    federation's settings, the session, the CRS, every key share, the global model, the server
//!    optimizer's state, the public totals, the feature statistics and `top_k` buckets. All N must sign the same digest, so an
//!    aggregator that shows hospitals different inputs (a huge total for all but one, another
//!    model) is caught before anyone encrypts.
//! 3. [`Claim::Challenge`]: after the aggregate masks arrived, their digest and fresh randomness.
//!    The masks are fixed before any hospital's randomness is known, so the challenge
//!    ([`challenge_seed`]) is unpredictable to the aggregator.
//! 4. [`Claim::Fingerprint`]: the hospital's fingerprint of its own ciphertext's masks under the
//!    challenge. Each hospital checks the aggregate against their sum ([`fedcare_crypto::check`])
//!    before making its decryption share.
//! 5. [`Claim::SumChallenge`]: after the decrypted sum arrived (unrounded, [`fedcare_crypto::DecryptedSum`]),
//!    its digest and fresh randomness: the second challenge, drawn after the sum is fixed.
//! 6. [`Claim::SumFingerprint`]: the hospital's fingerprint of its own ciphertext's bodies minus
//!    its decryption share under that challenge. Each hospital checks the sum against their sum.
//! 7. [`Claim::Output`]: the digests of what the checked sum gives by the agreed rule: the next
//!    state (its content — model, server state, public figures — chained to the state the
//!    session started from: [`state_digest`], so one digest names the whole chain of states) and
//!    the model file ([`file_digest`]). The aggregator keeps these statements as the model file's
//!    endorsements; `fedcare inspect` checks them.
//!
//! Every statement names the federation, session, kind and CRS: one from another round,
//! attempt or federation is refused.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::digest::{
    ChallengeSeed, FileDigest, KeyShareDigest, MasksDigest, Nonce, SettingsDigest, StateContent, StateDigest,
    SumDigest, TranscriptDigest,
};
use crate::error::{ProtocolError, TrustError};
use crate::signing::{Signed, Signer};
use crate::{NodeId, PublicFigures, SessionId, SessionKind, TaskKind};

/// What a hospital states at one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Claim {
    /// Its public key share, in its wire form.
    KeyShare(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The round transcript digest it agrees to.
    Transcript(TranscriptDigest),
    /// The digest of the aggregate masks it received, and its fresh randomness.
    Challenge {
        /// The transcript digest.
        transcript: TranscriptDigest,
        /// The aggregate masks' digest.
        aggregate: MasksDigest,
        /// 32 fresh random bytes.
        nonce: Nonce,
    },
    /// Its own masks' fingerprint under the challenge.
    Fingerprint {
        /// The transcript digest.
        transcript: TranscriptDigest,
        /// The aggregate masks' digest.
        aggregate: MasksDigest,
        /// The challenge seed.
        challenge: ChallengeSeed,
        /// The fingerprint's bytes.
        #[serde(with = "serde_bytes")]
        fingerprint: Vec<u8>,
    },
    /// The digest of the decrypted sum it received, and its fresh randomness.
    SumChallenge {
        /// The transcript digest.
        transcript: TranscriptDigest,
        /// The decrypted sum's digest.
        sum: SumDigest,
        /// 32 fresh random bytes.
        nonce: Nonce,
    },
    /// Its fingerprint of its own bodies minus its decryption share under the output challenge.
    SumFingerprint {
        /// The transcript digest.
        transcript: TranscriptDigest,
        /// The decrypted sum's digest.
        sum: SumDigest,
        /// The challenge seed.
        challenge: ChallengeSeed,
        /// The fingerprint's bytes.
        #[serde(with = "serde_bytes")]
        fingerprint: Vec<u8>,
    },
    /// What the checked sum gives: the endorsement of the next state and model file.
    Output {
        /// The transcript digest.
        transcript: TranscriptDigest,
        /// The decrypted sum's digest.
        sum: SumDigest,
        /// [`state_digest`] of the state after the session.
        state: StateDigest,
        /// [`file_digest`] of the model file after the session.
        file: FileDigest,
    },
    /// Its commitment to the public key share it will reveal ([`key_share_digest`]). (Last, so
    /// the other claims keep their wire tags.)
    KeyCommitment(KeyShareDigest),
}

impl Claim {
    /// The step whose upload carries it: the task a hospital answers with it.
    pub fn step(&self) -> TaskKind {
        match self {
            Self::KeyCommitment(_) => TaskKind::KeyGen,
            Self::KeyShare(_) => TaskKind::Reveal,
            Self::Transcript(_) => TaskKind::Confirm,
            Self::Challenge { .. } => TaskKind::Challenge,
            Self::Fingerprint { .. } => TaskKind::Prove,
            Self::SumChallenge { .. } => TaskKind::Result,
            Self::SumFingerprint { .. } => TaskKind::Attest,
            Self::Output { .. } => TaskKind::Accept,
        }
    }
}

/// One signed statement's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// The federation.
    pub federation_id: String,
    /// The session.
    pub session: SessionId,
    /// What it computes.
    pub kind: SessionKind,
    /// The session's CRS.
    pub crs: u128,
    /// The claim.
    pub claim: Claim,
}

impl Statement {
    /// The statement signed by `signer` with `key`.
    pub fn sign(&self, signer: &NodeId, key: &dyn Signer) -> Result<Signed, crate::Error> {
        // Invariant: postcard serializes these plain types into a Vec without failing.
        Signed::new(signer.clone(), key, postcard::to_allocvec(self).unwrap_or_default())
    }

    /// The statement a signed message carries (the signature is checked by the caller).
    pub fn of(signed: &Signed) -> Result<Self, TrustError> {
        postcard::from_bytes(&signed.message).map_err(|e| TrustError::WrongStatement {
            signer: signed.signer.clone(),
            why: format!("it does not decode: {e}"),
        })
    }

    /// Refuses a statement of another federation, session, kind or CRS, or of another step.
    pub fn check_context(&self, signer: &NodeId, expected: &Statement, step: TaskKind) -> Result<(), TrustError> {
        let wrong = |why: String| Err(TrustError::WrongStatement { signer: signer.clone(), why });
        if self.federation_id != expected.federation_id {
            return wrong(format!("federation {:?}, not {:?}", self.federation_id, expected.federation_id));
        }
        if self.session != expected.session || self.kind != expected.kind {
            return wrong(format!(
                "session {} ({}), not {} ({})",
                self.session, self.kind, expected.session, expected.kind
            ));
        }
        if self.crs != expected.crs {
            return wrong("another CRS".into());
        }
        if self.claim.step() != step {
            return wrong(format!("a statement of the {} step where the {step} step's belongs", self.claim.step()));
        }
        Ok(())
    }
}

/// Most statements in a relayed bundle (the crypto's party limit).
pub const MAX_BUNDLE: usize = 64;

/// The wire form of a set of signed statements.
pub fn encode_bundle<'a>(statements: impl IntoIterator<Item = &'a Signed>) -> Bytes {
    let all: Vec<&Signed> = statements.into_iter().collect();
    // Invariant: postcard serializes these plain types into a Vec without failing.
    Bytes::from(postcard::to_allocvec(&all).unwrap_or_default())
}

/// A set of signed statements from its wire form.
pub fn decode_bundle(bytes: &[u8]) -> Result<Vec<Signed>, ProtocolError> {
    let bundle: Vec<Signed> = postcard::from_bytes(bytes).map_err(|e| ProtocolError::Invalid {
        field: "signed statements",
        value: e.to_string(),
        expected: "a relayed set of signed statements".into(),
    })?;
    if bundle.len() > MAX_BUNDLE {
        return Err(ProtocolError::Invalid {
            field: "signed statements",
            value: bundle.len().to_string(),
            expected: format!("at most {MAX_BUNDLE}"),
        });
    }
    Ok(bundle)
}

/// The digest of everything a round depends on, as one hospital sees it: the settings, the
/// session, every key share and the [`state_digest`] of the state it starts from.
pub fn transcript_digest(
    settings: &SettingsDigest,
    context: &Statement,
    shares: &[(NodeId, Vec<u8>)],
    state: &StateDigest,
) -> TranscriptDigest {
    let mut hasher = blake3::Hasher::new_derive_key("fedcare round transcript v2");
    hasher.update(settings.as_bytes());
    hasher.update(&(context.federation_id.len() as u64).to_le_bytes());
    hasher.update(context.federation_id.as_bytes());
    hasher.update(&context.session.round.to_le_bytes());
    hasher.update(&context.session.attempt.to_le_bytes());
    hasher.update(context.kind.name().as_bytes());
    hasher.update(&context.crs.to_le_bytes());
    hasher.update(&(shares.len() as u64).to_le_bytes());
    for (party, share) in shares {
        hasher.update(&(party.as_str().len() as u64).to_le_bytes());
        hasher.update(party.as_str().as_bytes());
        hasher.update(blake3::hash(share).as_bytes());
    }
    hasher.update(state.as_bytes());
    TranscriptDigest(*hasher.finalize().as_bytes())
}

/// A joint challenge's seed: the transcript, `checked` (the digest of what the challenge checks:
/// the aggregate masks' [`MasksDigest`], or the decrypted sum's [`SumDigest`]) and every
/// participant's randomness (sorted by participant), so that it is fixed only after what it
/// checks is.
pub fn challenge_seed(transcript: &TranscriptDigest, checked: &[u8; 32], nonces: &[(NodeId, Nonce)]) -> ChallengeSeed {
    let mut hasher = blake3::Hasher::new_derive_key("fedcare mask challenge v1");
    hasher.update(transcript.as_bytes());
    hasher.update(checked);
    for (party, nonce) in nonces {
        hasher.update(&(party.as_str().len() as u64).to_le_bytes());
        hasher.update(party.as_str().as_bytes());
        hasher.update(nonce.as_bytes());
    }
    ChallengeSeed(*hasher.finalize().as_bytes())
}

/// The commitment to a public key share's wire bytes, made before any share is revealed: a
/// hospital that saw the others' shares first could otherwise choose its own so that the
/// collective secret is one it knows.
pub fn key_share_digest(share: &[u8]) -> KeyShareDigest {
    KeyShareDigest(
        *blake3::Hasher::new_derive_key("fedcare key share commitment v1").update(share).finalize().as_bytes(),
    )
}

/// The digest of what a federation's state holds between sessions: the global model's bytes,
/// the server optimizer's state and the public figures.
pub fn state_content(model: &[u8], server: &[u8], figures: &PublicFigures) -> StateContent {
    let mut hasher = blake3::Hasher::new_derive_key("fedcare federation state v1");
    hasher.update(blake3::hash(model).as_bytes());
    hasher.update(blake3::hash(server).as_bytes());
    // Invariant: postcard serializes these plain types into a Vec without failing.
    hasher.update(&postcard::to_allocvec(figures).unwrap_or_default());
    StateContent(*hasher.finalize().as_bytes())
}

/// The digest of a state in the federation's chain of states: its `content` after the state
/// `previous` (the one the session that made it started from; `None` for the initial state).
/// Two states with the same content and different histories have different digests, and a
/// hospital that holds one state's digest can tell whether another descends from it
/// ([`chain_digests`]).
pub fn state_digest(previous: Option<&StateDigest>, content: &StateContent) -> StateDigest {
    let mut hasher = blake3::Hasher::new_derive_key("fedcare federation state chain v1");
    hasher.update(&[u8::from(previous.is_some())]);
    hasher.update(previous.map_or(&[0; 32], |digest| &digest.0));
    hasher.update(content.as_bytes());
    StateDigest(*hasher.finalize().as_bytes())
}

/// The digests of a chain of states given by their contents, the initial state's first: each
/// [`state_digest`] after the one before.
pub fn chain_digests(contents: &[StateContent]) -> Vec<StateDigest> {
    let mut digests: Vec<StateDigest> = Vec::with_capacity(contents.len());
    for content in contents {
        let digest = state_digest(digests.last(), content);
        digests.push(digest);
    }
    digests
}

/// A chain of state contents in its wire form: their 32 bytes one after another.
pub fn encode_chain(contents: &[StateContent]) -> Bytes {
    contents.iter().flat_map(StateContent::as_bytes).copied().collect::<Vec<u8>>().into()
}

/// A chain of state contents from its wire form; refuses a length that is not a multiple of 32
/// or a chain longer than `max` states.
pub fn decode_chain(bytes: &[u8], max: usize) -> Result<Vec<StateContent>, ProtocolError> {
    let chunks = bytes.chunks_exact(32);
    if !chunks.remainder().is_empty() || bytes.len() / 32 > max {
        return Err(ProtocolError::Invalid {
            field: "chain of states",
            value: format!("{} bytes", bytes.len()),
            expected: format!("32 bytes for each of at most {max} states"),
        });
    }
    Ok(chunks
        .map(|chunk| {
            let mut content = [0; 32];
            content.copy_from_slice(chunk);
            StateContent(content)
        })
        .collect())
}

/// The digest hospitals endorse of a model file: BLAKE3 of its bytes without endorsements.
pub fn file_digest(file: &fedcare_core::ModelFile) -> Result<FileDigest, fedcare_core::Error> {
    Ok(FileDigest(*blake3::hash(&file.endorsed_bytes()?).as_bytes()))
}

/// What an endorsement vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endorsed {
    /// A model file, by its [`file_digest`].
    File(FileDigest),
    /// A federation state, by its [`state_digest`].
    State(StateDigest),
}

/// A bundle of endorsements, each checked: the signature verifies under the key it carries, the
/// statement is an [`Claim::Output`] for exactly `what`, all of one federation and session and
/// from distinct signers. (Whether the signers are the ones a roster pins is the caller's
/// check.) Returns the signed statements with their content; refuses an empty bundle.
pub fn check_endorsements(bundle: &[u8], what: Endorsed) -> Result<Vec<(Signed, Statement)>, TrustError> {
    let refuse = |why: String| TrustError::NotEndorsed { why };
    if bundle.is_empty() {
        return Err(refuse("it carries no endorsements".into()));
    }
    let bundle = decode_bundle(bundle).map_err(|e| refuse(e.to_string()))?;
    let mut out: Vec<(Signed, Statement)> = Vec::new();
    for signed in bundle {
        signed.verify()?;
        let statement = Statement::of(&signed)?;
        let signer = &signed.signer;
        match (statement.claim.clone(), what) {
            (Claim::Output { file, .. }, Endorsed::File(digest)) if file == digest => {}
            (Claim::Output { state, .. }, Endorsed::State(digest)) if state == digest => {}
            (Claim::Output { .. }, Endorsed::File(_)) => {
                return Err(refuse(format!("{signer} endorsed another model file")));
            }
            (Claim::Output { .. }, Endorsed::State(_)) => {
                return Err(refuse(format!("{signer} endorsed another federation state")));
            }
            _ => return Err(refuse(format!("{signer}'s statement is not an endorsement"))),
        }
        if let Some((first, earlier)) = out.first() {
            let same = earlier.federation_id == statement.federation_id && earlier.session == statement.session;
            if !same {
                return Err(refuse(format!("{} and {signer} endorsed different sessions", first.signer)));
            }
        }
        if out.iter().any(|(s, _)| &s.signer == signer) {
            return Err(refuse(format!("{signer} endorsed twice")));
        }
        out.push((signed, statement));
    }
    Ok(out)
}

/// A model file's endorsements, checked ([`check_endorsements`] for exactly this file).
pub fn endorsements(file: &fedcare_core::ModelFile) -> Result<Vec<(Signed, Statement)>, TrustError> {
    let digest = file_digest(file).map_err(|e| TrustError::NotEndorsed { why: e.to_string() })?;
    check_endorsements(&file.endorsements, Endorsed::File(digest))
}
