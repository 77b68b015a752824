//! A hospital's side of the protocol as a state machine: what it checks of every task a possibly
//! lying aggregator sends and what it signs in reply. The hospital's shell moves bytes; every
//! decision is here, so the coordinator tests and the attack tests drive the same code a
//! hospital runs.
//!
//! [`Participant::handle`] takes one task and the randomness the shell hands in, and answers
//! with a [`Reply`]. Each step of a session is accepted only in the state that step needs, and
//! each state holds exactly what its step needs: a task out of order finds no state that
//! accepts it and is refused with [`TrustError::OutOfOrder`], leaving the state as it was.
//!
//! ```text
//! Idle ─KeyGen→ KeyCommitted ─Reveal→ KeyShared ─Confirm→ Confirmed ─Contribute→ Agreed
//!   ─contribute()→ Contributed
//!   ─Challenge→ Committed ─Prove→ Proved ─Decrypt→ Decrypted ─Result→ SumCommitted
//!   ─Attest→ Attested ─Accept→ Endorsed
//! ```
//! A `KeyGen` starts the next session from any state (the aggregator restarted the round or
//! moved on); once a session's sum has come back (`Decrypted` and later), a `Result` of the same
//! session is taken again (an aggregator that restarted recovers the sum and asks for its
//! checks anew), and `Recover` hands back the sum held.
//!
//! Per session a participant:
//! - refuses anyone off its own roster or with another key than the roster pins, fewer
//!   participants than its own minimum, an attempt past its bound, and settings past its bounds;
//! - commits to its key share (a signed digest) before any share is revealed, reveals it only
//!   once every participant committed, and takes only shares that match their signer's
//!   commitment: no hospital can choose its share after seeing the others' (and with it a
//!   collective secret it knows);
//! - sums the collective key itself from the signed key shares, its own among them;
//! - signs the round transcript and goes on only when all participants signed the same one;
//! - commits to the aggregate masks' digest with fresh randomness, publishes its own masks'
//!   fingerprint under the joint challenge, and makes its decryption share only for masks equal
//!   to the sum of the signed fingerprints ([`fedcare_crypto::check`]);
//! - records the slot (federation, round, session kind) in its [`Ledger`], durably, before its
//!   decryption share leaves, and never makes a second share for a recorded slot;
//! - commits to the decrypted sum it is handed with fresh randomness, publishes its fingerprint
//!   of its own bodies minus its own decryption share under the second joint challenge, and
//!   accepts the sum only when it matches the sum of the signed fingerprints; it then applies
//!   the agreed rule itself ([`crate::output`]) and endorses the result's digests;
//! - keeps to the agreed job's schedule ([`TrustError::OffSchedule`]): one setup, in round 0,
//!   from the initial state; every later session from where the chain of states ends, the output
//!   of the last session it endorsed (a hospital that joined later or missed sessions: one its
//!   roster's majority endorsed whose chain of state digests passes through its own last state:
//!   [`TrustError::NotDescended`] otherwise, a fork or a rollback), rounds going forward within
//!   the agreed rounds, nothing after the final session, and no session of another job (an
//!   exploration in a training job);
//! - when it sets a `max_epsilon`, charges every release to its privacy ledger (the ε of the
//!   federation once the sum is out, by its own accounting) and refuses one that would bring its
//!   patients' ε over all its federations past it ([`Consortium::privacy_charge`]);
//! - records each endorsement in its ledger before the signature leaves, and resumes its
//!   schedule from the ledger when it restarts: it refuses after a restart what it refused
//!   before;
//! - refuses a next session whose global model, server state or public figures are not the ones
//!   it computed or its roster's majority endorsed, and a final model file that is not the one
//!   it computed or, when it did not take part in the last session, one that its roster's
//!   majority did not endorse for the final session.

use core::mem;
use std::sync::Arc;

use bytes::Bytes;
use fedcare_core::{Codec, ModelFile};
use fedcare_crypto::{
    AggregateMasks, Challenge, CollectivePublicKey, Crs, DecryptedSum, MaskCheck, MaskFingerprint, PARAMS_V2, PartyId,
    PartySession, PublicKeyShare, WireLimits, WireMessage,
};
use rand_core::TryCryptoRng;

use crate::boosting::BoostingState;
use crate::digest::{
    ChallengeSeed, FileDigest, KeyShareDigest, MasksDigest, Nonce, SettingsDigest, StateDigest, SumDigest,
    TranscriptDigest,
};
use crate::error::{Error, ProtocolError, Result, TrustError};
use crate::exploration::Exploration;
use crate::ledger::{Endorsement, Entry, Ledger, Release, Slot, epsilon_spent_elsewhere};
use crate::output::{SessionInputs, session_output};
use crate::params::params_from_bytes;
use crate::roster::Consortium;
use crate::selection::{ServerState, training_ends};
use crate::signing::Signer;
use crate::transcript::{
    Claim, Endorsed, Statement, chain_digests, challenge_seed, check_endorsements, decode_bundle, decode_chain,
    file_digest, key_share_digest, state_content, state_digest, transcript_digest,
};
use crate::{
    Agreement, FederationSettings, Job, NodeId, PublicFigures, SessionId, SessionKind, Task, TaskKind, UploadKind,
};

/// What a hospital agreed to for a session: what it trains on and encrypts.
#[derive(Debug, Clone)]
pub struct Agreed {
    /// The session.
    pub session: SessionId,
    /// What it computes.
    pub kind: SessionKind,
    /// The global model's bytes (empty for setup).
    pub model: Bytes,
    /// The public figures every participant signed.
    pub figures: PublicFigures,
    /// In a final evaluation, the parameters of the model kept so far (the best before the last,
    /// whose subgroups are measured beside the last's); `None` otherwise, or when there is none.
    pub kept: Option<Vec<f32>>,
    /// A boosting federation's trees as the session started (`None` for a network).
    pub boosting: Option<Box<BoostingState>>,
}

/// The federation's final model file, checked ([`Participant::handle`] on a `Done` task).
#[derive(Debug, Clone, PartialEq)]
pub struct FinalFile {
    /// The file's bytes, as the aggregator wrote them.
    pub bytes: Bytes,
    /// The decoded file.
    pub model: ModelFile,
}

/// What the shell does after a task.
#[derive(Debug)]
#[must_use]
pub enum Reply {
    /// Upload these bytes, as this kind of upload, for the task's session.
    Upload(UploadKind, Vec<u8>),
    /// Every participant agreed to the session: compute this hospital's contribution on what was
    /// agreed and hand its encoded words to [`Participant::contribute`], which encrypts them.
    Contribute(Agreed),
    /// Nothing to do (a `Wait` task).
    Nothing,
    /// The federation is over: its final model file, checked.
    Done(Box<FinalFile>),
    /// The aggregator says the federation stopped, and why.
    Stopped(String),
}

/// What a hospital trusts: its signing key, the consortium it pins and what it agreed to take
/// part in. (Its decryption ledger is handed to [`Participant::new`] beside it.)
#[derive(Debug, Clone)]
pub struct Trust {
    /// The hospital's signing key (its mTLS key).
    pub key: Arc<dyn Signer>,
    /// The consortium it pins.
    pub consortium: Consortium,
    /// The federation and job it agreed to.
    pub agreed: Agreement,
}

/// A federation state a hospital holds: the global model's bytes and the server state's, with
/// the [`crate::transcript::state_digest`] that also covers the public figures and the chain of
/// states before it.
#[derive(Debug, Clone)]
struct Held {
    digest: StateDigest,
    /// The digest of the state before it (`None`: the initial state).
    before: Option<StateDigest>,
    model: Bytes,
    server: Bytes,
}

impl Held {
    /// The state of `model`, `server` and `figures` after the state `before`.
    fn new(before: Option<StateDigest>, model: Bytes, server: Bytes, figures: &PublicFigures) -> Self {
        let digest = state_digest(before.as_ref(), &state_content(&model, &server, figures));
        Self { digest, before, model, server }
    }
}

/// What this hospital checked of the last session it endorsed: the state it started from and the
/// one it ended with (the aggregator may go on from either: from the first when it gave that
/// session up), and the model files after it and after the one before. Its ledger keeps it
/// ([`Endorsement`]); the states' bytes are held only in memory (after a restart the aggregator
/// sends them whole, and they are checked against the digests).
#[derive(Debug, Clone)]
struct Verified {
    session: SessionId,
    kind: SessionKind,
    states: [StateDigest; 2],
    files: Vec<FileDigest>,
    held: Vec<Held>,
}

impl Verified {
    fn of(endorsement: Endorsement) -> Self {
        let Endorsement { session, kind, start, end, files, .. } = endorsement;
        Self { session, kind, states: [start, end], files, held: Vec::new() }
    }
}

/// A session after key generation: the statement context, the crypto party, the key share this
/// hospital committed to (and later revealed), and every participant's commitment once they
/// were relayed.
#[derive(Debug)]
struct KeyShared {
    context: Statement,
    party: PartySession,
    own_share: Vec<u8>,
    commitments: Vec<(NodeId, KeyShareDigest)>,
}

/// A session once this hospital signed its transcript: everything the later steps check
/// against.
#[derive(Debug)]
struct Session {
    context: Statement,
    party: PartySession,
    /// The key holders, sorted: the participants of every later step.
    members: Vec<NodeId>,
    transcript: TranscriptDigest,
    model: Bytes,
    server: ServerState,
    figures: PublicFigures,
    start: Held,
    /// The federation's ε once this session's sum is out, when the hospital counts its privacy.
    epsilon: Option<f64>,
}

/// The aggregate masks this hospital committed to, and its randomness for the challenge.
#[derive(Debug)]
struct MaskCommitment {
    masks: AggregateMasks,
    aggregate: MasksDigest,
    nonce: Nonce,
}

/// The aggregate masks under the joint challenge, and this hospital's fingerprint of its own.
#[derive(Debug)]
struct MaskProof {
    masks: AggregateMasks,
    aggregate: MasksDigest,
    seed: ChallengeSeed,
    fingerprint: MaskFingerprint,
}

/// The decrypted sum this hospital was handed and committed to, and its randomness.
#[derive(Debug)]
struct SumCommitment {
    aggregate: MasksDigest,
    sum: DecryptedSum,
    digest: SumDigest,
    nonce: Nonce,
}

/// The decrypted sum of a session whose output this hospital endorsed (kept for an aggregator
/// that restarts and asks for it back).
#[derive(Debug)]
struct HeldSum {
    aggregate: MasksDigest,
    sum: DecryptedSum,
}

/// The decrypted sum under the joint output challenge, and this hospital's fingerprint.
#[derive(Debug)]
struct SumProof {
    aggregate: MasksDigest,
    sum: DecryptedSum,
    digest: SumDigest,
    seed: ChallengeSeed,
    fingerprint: MaskFingerprint,
}

/// Where this hospital stands in the running session; each variant holds what its next step
/// needs and nothing else.
#[derive(Debug, Default)]
enum State {
    /// No session under way.
    #[default]
    Idle,
    /// Committed to its key share; waits for every participant's commitment (`Reveal`).
    KeyCommitted(Box<KeyShared>),
    /// Key share revealed; waits for the relayed shares (`Confirm`).
    KeyShared(Box<KeyShared>),
    /// Transcript signed; waits for every participant's (`Contribute`).
    Confirmed(Box<Session>, Box<CollectivePublicKey>),
    /// Every participant signed the same transcript; waits for the shell's contribution
    /// ([`Participant::contribute`]).
    Agreed(Box<Session>, Box<CollectivePublicKey>),
    /// Contribution encrypted; waits for the aggregate masks (`Challenge`).
    Contributed(Box<Session>),
    /// Committed to the aggregate masks; waits for every participant's randomness (`Prove`).
    Committed(Box<Session>, Box<MaskCommitment>),
    /// Mask fingerprint published; waits for every participant's (`Decrypt`).
    Proved(Box<Session>, Box<MaskProof>),
    /// Decryption share made (the slot recorded); waits for the decrypted sum (`Result`).
    Decrypted(Box<Session>, MasksDigest),
    /// Committed to the decrypted sum; waits for every participant's randomness (`Attest`).
    SumCommitted(Box<Session>, Box<SumCommitment>),
    /// Output fingerprint published; waits for every participant's (`Accept`).
    Attested(Box<Session>, Box<SumProof>),
    /// The session's output endorsed; its sum is kept for an aggregator that restarts.
    Endorsed(Box<Session>, Box<HeldSum>),
}

impl State {
    /// The running session, once its transcript is signed.
    fn session(&self) -> Option<&Session> {
        match self {
            Self::Idle | Self::KeyCommitted(_) | Self::KeyShared(_) => None,
            Self::Confirmed(s, _)
            | Self::Agreed(s, _)
            | Self::Contributed(s)
            | Self::Committed(s, _)
            | Self::Proved(s, _)
            | Self::Decrypted(s, _)
            | Self::SumCommitted(s, _)
            | Self::Attested(s, _)
            | Self::Endorsed(s, _) => Some(s),
        }
    }

    /// The running session's id.
    fn session_id(&self) -> Option<SessionId> {
        match self {
            Self::KeyCommitted(keyed) | Self::KeyShared(keyed) => Some(keyed.context.session),
            other => other.session().map(|s| s.context.session),
        }
    }

    /// The decrypted sum this hospital holds, once it was handed one.
    fn held_sum(&self) -> Option<&DecryptedSum> {
        match self {
            Self::SumCommitted(_, c) => Some(&c.sum),
            Self::Attested(_, p) => Some(&p.sum),
            Self::Endorsed(_, h) => Some(&h.sum),
            _ => None,
        }
    }

    /// Takes the session and the aggregate digest out of a state whose decryption share is made
    /// (a `Result` is taken again in these), leaving `Idle`.
    fn take_decrypted(&mut self) -> Option<(Box<Session>, MasksDigest)> {
        match mem::take(self) {
            Self::Decrypted(s, aggregate) => Some((s, aggregate)),
            Self::SumCommitted(s, c) => Some((s, c.aggregate)),
            Self::Attested(s, p) => Some((s, p.aggregate)),
            Self::Endorsed(s, h) => Some((s, h.aggregate)),
            other => {
                *self = other;
                None
            }
        }
    }
}

/// A hospital's protocol logic (sans I/O).
#[derive(Debug)]
pub struct Participant {
    me: NodeId,
    key: Arc<dyn Signer>,
    consortium: Consortium,
    settings: FederationSettings,
    min_hospitals: usize,
    codec: Codec,
    ledger: Box<dyn Ledger>,
    state: State,
    verified: Option<Verified>,
    /// An exploration's checked pooled counts and the hospitals counted.
    explored: Option<(Exploration, Vec<NodeId>)>,
}

/// 32 bytes from the shell's random source; its failure is an error, never zeros.
fn fresh_nonce(rng: &mut impl TryCryptoRng) -> Result<Nonce> {
    let mut nonce = [0u8; 32];
    rng.try_fill_bytes(&mut nonce).map_err(|e| Error::Random(e.to_string()))?;
    Ok(Nonce(nonce))
}

fn out_of_order(step: TaskKind) -> Error {
    TrustError::OutOfOrder { step }.into()
}

impl Participant {
    /// `me` in the federation of `settings`, with what it trusts and its ledger; refuses settings
    /// of another federation or job than it agreed to, a key that is not the one its roster pins
    /// for `me`, and settings past its bounds.
    pub fn new(me: NodeId, trust: &Trust, settings: FederationSettings, ledger: Box<dyn Ledger>) -> Result<Self> {
        trust.agreed.check(&settings)?;
        let (key, consortium) = (trust.key.clone(), trust.consortium.clone());
        let fingerprint = key.public_key().fingerprint();
        match consortium.members.get(me.as_str()) {
            Some(pinned) if *pinned == fingerprint => {}
            Some(&pinned) => {
                return Err(TrustError::KeyMismatch { name: me.as_str().into(), found: fingerprint, pinned }.into());
            }
            None => return Err(TrustError::NotOnRoster { name: me.as_str().into() }.into()),
        }
        consortium.check_settings(&settings)?;
        let min_hospitals = consortium.min_participants(settings.min_hospitals);
        let codec = Codec::new(settings.codec)?;
        // Where its schedule stands, from its ledger: a hospital that restarted resumes it.
        let verified = ledger.last_endorsed(&settings.federation_id).map(Verified::of);
        Ok(Self {
            me,
            key,
            consortium,
            settings,
            min_hospitals,
            codec,
            ledger,
            state: State::Idle,
            verified,
            explored: None,
        })
    }

    /// This hospital's node id.
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// The settings it takes part under.
    pub fn settings(&self) -> &FederationSettings {
        &self.settings
    }

    /// The exploration's pooled counts this hospital checked and endorsed, with the hospitals
    /// counted (after an exploration session).
    pub fn exploration(&self) -> Option<&(Exploration, Vec<NodeId>)> {
        self.explored.as_ref()
    }

    /// The digest of the federation settings it was made for (a node that reconnects keeps its
    /// participant only for the same settings).
    pub fn settings_digest(&self) -> SettingsDigest {
        self.settings.digest
    }

    /// Takes one task: checks it against this hospital's own state, roster and ledger, and says
    /// what to do. `rng` is the shell's cryptographic random source (the challenge randomness
    /// is drawn from it). A refused task leaves the state as it was.
    pub fn handle(&mut self, task: &Task, rng: &mut impl TryCryptoRng) -> Result<Reply> {
        let upload = match task.kind {
            TaskKind::Wait => return Ok(Reply::Nothing),
            TaskKind::Failed => return Ok(Reply::Stopped(task.message.clone())),
            TaskKind::Done => return Ok(Reply::Done(Box::new(self.final_file(task)?))),
            TaskKind::Contribute => return Ok(Reply::Contribute(self.agree(task)?)),
            TaskKind::KeyGen => (UploadKind::Statement, self.key_gen(task, rng)?),
            TaskKind::Reveal => (UploadKind::KeyShare, self.reveal(task)?),
            TaskKind::Confirm => (UploadKind::Statement, self.confirm(task)?),
            TaskKind::Challenge => (UploadKind::Statement, self.challenge(task, rng)?),
            TaskKind::Prove => (UploadKind::Statement, self.prove(task)?),
            TaskKind::Decrypt => (UploadKind::DecryptionShare, self.decrypt(task)?),
            TaskKind::Result => (UploadKind::Statement, self.sum_challenge(task, rng)?),
            TaskKind::Attest => (UploadKind::Statement, self.sum_fingerprint(task)?),
            TaskKind::Accept => (UploadKind::Statement, self.endorse(task)?),
            TaskKind::Recover => (UploadKind::Sum, self.held_sum(task)?),
        };
        Ok(Reply::Upload(upload.0, upload.1))
    }

    /// Encrypts this hospital's encoded contribution to `session` under the key it summed: only
    /// after every participant agreed to the session ([`Reply::Contribute`]), once.
    pub fn contribute(&mut self, session: SessionId, words: &[u64]) -> Result<Vec<u8>> {
        let State::Agreed(running, key) = &mut self.state else { return Err(out_of_order(TaskKind::Contribute)) };
        if running.context.session != session {
            return Err(out_of_order(TaskKind::Contribute));
        }
        let ciphertext = running.party.encrypt(key, words)?.encode()?;
        let State::Agreed(running, _) = mem::take(&mut self.state) else { unreachable!("matched above") };
        self.state = State::Contributed(running);
        Ok(ciphertext)
    }

    /// For an aggregator that restarted after the session's decrypted sum went out: the sum this
    /// hospital received of the task's session, in its wire form (empty when it holds none).
    /// Handing it back reveals nothing new and decrypts nothing: every hospital checks the sum
    /// again before it accepts it.
    fn held_sum(&self, task: &Task) -> Result<Vec<u8>> {
        match self.state.held_sum() {
            Some(sum) if self.state.session_id() == task.session => Ok(sum.encode()?),
            _ => Ok(Vec::new()),
        }
    }

    fn context(&self, task: &Task) -> Result<Statement> {
        let missing = |field| ProtocolError::Missing { message: "task", field };
        Ok(Statement {
            federation_id: self.settings.federation_id.clone(),
            session: task.session.ok_or(missing("session"))?,
            kind: task.session_kind.ok_or(missing("session kind"))?,
            crs: task.crs.ok_or(missing("CRS"))?.0,
            claim: Claim::KeyShare(Vec::new()),
        })
    }

    fn sign(&self, context: &Statement, claim: Claim) -> Result<Vec<u8>> {
        let statement = Statement { claim, ..context.clone() };
        // Invariant: postcard serializes these plain types into a Vec without failing.
        Ok(postcard::to_allocvec(&statement.sign(&self.me, self.key.as_ref())?).unwrap_or_default())
    }

    /// The running session after its transcript, checked to be the task's.
    fn running(&self, task: &Task, step: TaskKind) -> Result<&Session> {
        self.state.session().filter(|s| Some(s.context.session) == task.session).ok_or_else(|| out_of_order(step))
    }

    /// The relayed statements of `step`, each from a roster member with its pinned key and a
    /// valid signature, for this session; sorted by signer, one each.
    fn relayed(&self, bytes: &[u8], context: &Statement, step: TaskKind) -> Result<Vec<(NodeId, Claim)>> {
        let mut out: Vec<(NodeId, Claim)> = Vec::new();
        for signed in decode_bundle(bytes)? {
            self.consortium.check(&signed)?;
            let statement = Statement::of(&signed)?;
            statement.check_context(&signed.signer, context, step)?;
            out.push((signed.signer, statement.claim));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(pair) = out.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(TrustError::WrongStatement { signer: pair[0].0.clone(), why: "signed twice".into() }.into());
        }
        Ok(out)
    }

    /// Refuses a step whose signers are not the session's key holders.
    fn same_members(members: &[NodeId], statements: &[(NodeId, Claim)]) -> Result<()> {
        if !statements.iter().map(|(n, _)| n).eq(members.iter()) {
            return Err(TrustError::ParticipantsChanged {
                expected: members.iter().map(|n| n.as_str().to_owned()).collect(),
                got: statements.iter().map(|(n, _)| n.as_str().to_owned()).collect(),
            }
            .into());
        }
        Ok(())
    }

    /// Key generation, from any state (a new session replaces the running one): a fresh key
    /// share for the task's CRS, and a signed commitment to it (the share itself is revealed
    /// only after every participant committed).
    fn key_gen(&mut self, task: &Task, rng: &mut impl TryCryptoRng) -> Result<Vec<u8>> {
        let context = self.context(task)?;
        let attempt = context.session.attempt;
        if attempt >= self.consortium.max_attempts {
            let max = u64::from(self.consortium.max_attempts.saturating_sub(1));
            return Err(TrustError::OutOfBounds { what: "the attempt number", got: attempt.into(), max }.into());
        }
        self.slot(&context).check(&self.ledger.releases())?;
        let id = PartyId::new(self.me.as_str())?;
        let (party, share) = PartySession::new(PARAMS_V2, id, Crs(context.crs), self.min_hospitals, rng)?;
        let own_share = share.encode()?;
        let upload = self.sign(&context, Claim::KeyCommitment(key_share_digest(&own_share)))?;
        let commitments = Vec::new();
        self.state = State::KeyCommitted(Box::new(KeyShared { context, party, own_share, commitments }));
        Ok(upload)
    }

    /// The reveal: every participant committed to its key share (this hospital's own commitment
    /// among them, at least its minimum of them), so its own share goes out, signed. Section: the
    /// signed commitments.
    fn reveal(&mut self, task: &Task) -> Result<Vec<u8>> {
        let State::KeyCommitted(keyed) = &self.state else { return Err(out_of_order(TaskKind::Reveal)) };
        if Some(keyed.context.session) != task.session {
            return Err(out_of_order(TaskKind::Reveal));
        }
        let [bundle] = sections::<1>(task)?;
        let statements = self.relayed(bundle, &keyed.context, TaskKind::KeyGen)?;
        if statements.len() < self.min_hospitals {
            return Err(TrustError::TooFewParticipants { got: statements.len(), min: self.min_hospitals }.into());
        }
        let mut commitments = Vec::new();
        for (signer, claim) in statements {
            let Claim::KeyCommitment(digest) = claim else { return Err(relayed_step_changed()) };
            commitments.push((signer, digest));
        }
        let own = key_share_digest(&keyed.own_share);
        if !commitments.iter().any(|(n, d)| n == &self.me && *d == own) {
            return Err(TrustError::OwnStatementMissing { what: "key share commitment" }.into());
        }
        let upload = self.sign(&keyed.context, Claim::KeyShare(keyed.own_share.clone()))?;
        let State::KeyCommitted(mut keyed) = mem::take(&mut self.state) else { unreachable!("matched above") };
        keyed.commitments = commitments;
        self.state = State::KeyShared(keyed);
        Ok(upload)
    }

    /// The most states a chain of this federation holds before a session's start: the initial
    /// state, the setup's output and one per training round.
    fn max_chain(&self) -> usize {
        self.settings.rounds as usize + 2
    }

    fn slot(&self, context: &Statement) -> Slot {
        Slot { federation: self.settings.federation_id.clone(), round: context.session.round, kind: context.kind }
    }

    /// What a decryption share of `running` would release.
    fn release(&self, running: &Session) -> Release {
        Release {
            slot: self.slot(&running.context),
            start: Some(running.start.digest),
            members: running.members.clone(),
            epsilon: running.epsilon,
        }
    }

    /// Confirmation: checks the relayed key shares, sums the collective key, checks the state
    /// the session starts from is one this hospital computed (when it checked the last session
    /// it took part in) or, for a hospital without one or with an older one (it missed
    /// sessions), that its roster's hospitals endorsed it as the output of a session after the
    /// first and that it descends from this hospital's own along the chain of states, and signs
    /// the round transcript. Sections: the signed key shares, then either the global model, the
    /// server state, that state's endorsements and the contents of the states before it (the
    /// initial state's first), or (to a hospital that holds it) the state's digest alone.
    fn confirm(&mut self, task: &Task) -> Result<Vec<u8>> {
        let State::KeyShared(keyed) = &self.state else { return Err(out_of_order(TaskKind::Confirm)) };
        if Some(keyed.context.session) != task.session {
            return Err(out_of_order(TaskKind::Confirm));
        }
        let context = keyed.context.clone();
        let (start, endorsements, before) = match task.sections.as_slice() {
            [_, model, server, endorsements, path] => {
                // The state's place in the chain: after the states before it.
                let before = chain_digests(&decode_chain(path, self.max_chain())?);
                let start = Held::new(before.last().copied(), model.clone(), server.clone(), &task.figures);
                (start, Some(endorsements), before)
            }
            [_, reference] => {
                let held = self.verified.iter().flat_map(|v| &v.held).find(|h| h.digest.0[..] == reference[..]);
                let held = held.ok_or(TrustError::UnknownState)?;
                // The figures travel beside the reference: other ones make another state.
                (Held::new(held.before, held.model.clone(), held.server.clone(), &task.figures), None, Vec::new())
            }
            sections => {
                return Err(ProtocolError::Sections {
                    task: TaskKind::Confirm.name(),
                    got: sections.len(),
                    expected: 5,
                }
                .into());
            }
        };
        let shares = &task.sections[0];
        params_from_bytes(&start.model, self.settings.param_count())?;
        let state: ServerState = postcard::from_bytes(&start.server).map_err(|e| ProtocolError::Invalid {
            field: "server state",
            value: e.to_string(),
            expected: "its postcard encoding".into(),
        })?;
        state.check(self.settings.server, self.settings.param_count()).map_err(|why| ProtocolError::Invalid {
            field: "server state",
            value: why.to_string(),
            expected: "the agreed server rule's state and a best model of the model's size".into(),
        })?;
        check_boosting_state(&self.settings, &state)?;
        self.check_start(&context, &start, &state, &task.figures, endorsements, &before)?;
        let statements = self.relayed(shares, &context, TaskKind::Reveal)?;
        // Exactly the committed participants, each revealing the share it committed to.
        let committed = &keyed.commitments;
        if !statements.iter().map(|(n, _)| n).eq(committed.iter().map(|(n, _)| n)) {
            return Err(TrustError::ParticipantsChanged {
                expected: committed.iter().map(|(n, _)| n.as_str().to_owned()).collect(),
                got: statements.iter().map(|(n, _)| n.as_str().to_owned()).collect(),
            }
            .into());
        }
        for ((signer, claim), (_, commitment)) in statements.iter().zip(committed) {
            if !matches!(claim, Claim::KeyShare(bytes) if key_share_digest(bytes) == *commitment) {
                return Err(TrustError::ShareNotCommitted { signer: signer.clone() }.into());
            }
        }
        let mut shares = Vec::new();
        let mut share_bytes = Vec::new();
        for (signer, claim) in statements {
            let Claim::KeyShare(bytes) = claim else { return Err(relayed_step_changed()) };
            let share = PublicKeyShare::decode(&bytes, &PARAMS_V2, &WireLimits::default())?;
            if share.party().as_str() != signer.as_str() {
                return Err(
                    TrustError::WrongStatement { signer, why: "a key share made for another party".into() }.into()
                );
            }
            shares.push(share);
            share_bytes.push((signer, bytes));
        }
        if !share_bytes.iter().any(|(n, b)| n == &self.me && b == &keyed.own_share) {
            return Err(TrustError::OwnStatementMissing { what: "key share" }.into());
        }
        // The ledger's rules before anything of this session leaves (the decryption checks them
        // again): no second share for the slot, no other participants from a start state
        // released before.
        let members: Vec<NodeId> = share_bytes.iter().map(|(n, _)| n.clone()).collect();
        let releases = self.ledger.releases();
        // The privacy ledger: this session's charge, over this hospital's other federations too.
        let spent = epsilon_spent_elsewhere(&releases, &self.settings.federation_id);
        let (kind, round) = (context.kind, context.session.round);
        let epsilon = self.consortium.privacy_charge(&self.settings, kind, round, spent)?;
        let release = Release { slot: self.slot(&context), start: Some(start.digest), members, epsilon };
        release.check(&releases)?;
        if context.kind == SessionKind::Explore {
            let explored = releases.iter().filter(|r| r.slot.kind == SessionKind::Explore).count();
            let max = self.consortium.max_explorations;
            if explored >= max as usize {
                let got = explored as u64 + 1;
                return Err(TrustError::OutOfBounds {
                    what: "explorations this hospital took part in",
                    got,
                    max: max.into(),
                }
                .into());
            }
        }
        let digest = transcript_digest(&self.settings.digest, &context, &share_bytes, &start.digest);
        let upload = self.sign(&context, Claim::Transcript(digest))?;
        // Every check passed: the collective key is the last fallible step.
        let State::KeyShared(mut keyed) = mem::take(&mut self.state) else { unreachable!("matched above") };
        let key = match keyed.party.collective_key(&shares) {
            Ok(key) => key,
            Err(error) => {
                self.state = State::KeyShared(keyed);
                return Err(error.into());
            }
        };
        let running = Session {
            context,
            party: keyed.party,
            members: share_bytes.into_iter().map(|(n, _)| n).collect(),
            transcript: digest,
            model: start.model.clone(),
            server: state,
            figures: task.figures.clone(),
            start,
            epsilon,
        };
        self.state = State::Confirmed(Box::new(running), Box::new(key));
        Ok(upload)
    }

    /// The schedule of the agreed job, from this hospital's own state: which sessions it holds
    /// and the state each starts from. A setup, in round 0, starts from the initial state (the
    /// model the transcript binds, the rule's fresh server state, no figures, no state before
    /// it); its ledger slot is spent once, so it runs once. Every later session starts where the
    /// chain of states ends: from the output of the last session this hospital endorsed, or of
    /// a later one its roster's quorum endorsed whose chain (`before`: the digests of the states
    /// before it) passes through that output; from the start of the last one only when that was
    /// a training round (the aggregator gave it up and moved on). Nothing follows the final
    /// session, and round numbers go forward along the chain within the agreed rounds.
    fn check_start(
        &self,
        context: &Statement,
        start: &Held,
        server: &ServerState,
        figures: &PublicFigures,
        endorsements: Option<&Bytes>,
        before: &[StateDigest],
    ) -> Result<()> {
        let (session, kind) = (context.session, context.kind);
        let off = |why: String| -> Result<()> { Err(TrustError::OffSchedule { session, kind, why }.into()) };
        let mismatch = |session| -> Error {
            TrustError::OutputMismatch { what: "global model, server state or public figures", session }.into()
        };
        let settings = &self.settings;
        let round = session.round;
        let in_job = match (kind, &settings.job) {
            (SessionKind::Setup, _) => round == 0,
            (SessionKind::Train, Job::Train) => (1..=settings.rounds).contains(&round),
            (SessionKind::Evaluate, Job::Train) => (1..=settings.rounds.saturating_add(1)).contains(&round),
            (SessionKind::Explore, Job::Explore { .. }) => round == 1,
            _ => false,
        };
        if !in_job {
            let job = settings.job.kind().name();
            return off(format!("a {job} job of {} rounds has no {kind} session in round {round}", settings.rounds));
        }
        if kind == SessionKind::Setup {
            let initial = settings.initial_server_state().map_err(|e| ProtocolError::Invalid {
                field: "server rule",
                value: e.to_string(),
                expected: "a rule with an initial state".into(),
            })?;
            if *server != initial || *figures != PublicFigures::default() || !before.is_empty() {
                return off(
                    "a setup starts from the initial state: the rule's fresh server state, no figures and no state before it"
                        .into(),
                );
            }
            return Ok(());
        }
        // The session that ended in the start state (or started from it, given up).
        let (previous, previous_kind) = match &self.verified {
            Some(v) if v.states[1] == start.digest => (v.session, v.kind),
            Some(v) if v.states[0] == start.digest && v.kind == SessionKind::Train => (v.session, v.kind),
            Some(v) if v.states[0] == start.digest => {
                return off(format!("it starts from the state session {} ({}) started from", v.session, v.kind));
            }
            // A hospital that missed sessions (dropped at a deadline, cut off by a partition) or
            // joined after the first takes a later state only as the output its roster's quorum
            // endorsed, and only along its own chain: never an earlier one (a rollback) or one
            // of another branch (a fork).
            verified => {
                let endorsed =
                    endorsements.map(|bundle| self.endorsed_by_roster(bundle, Endorsed::State(start.digest)));
                let statements = match (verified, endorsed) {
                    (None, None) => return Err(TrustError::UnknownState.into()),
                    (None, Some(endorsed)) => endorsed?,
                    (Some(_), Some(Ok(statements))) => statements,
                    (Some(v), _) => return Err(mismatch(v.session)),
                };
                let (ended, ended_kind) = (statements[0].session, statements[0].kind);
                let one_session = statements.iter().all(|s| (s.session, s.kind) == (ended, ended_kind));
                match verified {
                    Some(v) if !one_session => return Err(mismatch(v.session)),
                    Some(v) if !before.contains(&v.states[1]) => {
                        return Err(
                            TrustError::NotDescended { offered: session, endorsed: ended, own: v.session }.into()
                        );
                    }
                    None if !one_session => return Err(mismatch(ended)),
                    _ => (ended, ended_kind),
                }
            }
        };
        if !matches!(previous_kind, SessionKind::Setup | SessionKind::Train) {
            return off(format!("nothing follows the final session {previous} ({previous_kind})"));
        }
        if round <= previous.round {
            return off(format!("it starts from the state of round {}: rounds go forward", previous.round));
        }
        Ok(())
    }

    /// Before contributing: every participant signed this hospital's transcript. Section: the
    /// signed transcripts. Returns what was agreed.
    fn agree(&mut self, task: &Task) -> Result<Agreed> {
        let State::Confirmed(running, _) = &self.state else { return Err(out_of_order(TaskKind::Contribute)) };
        if Some(running.context.session) != task.session {
            return Err(out_of_order(TaskKind::Contribute));
        }
        let [transcripts] = sections::<1>(task)?;
        let statements = self.relayed(transcripts, &running.context, TaskKind::Confirm)?;
        Self::same_members(&running.members, &statements)?;
        for (signer, claim) in statements {
            if claim != Claim::Transcript(running.transcript) {
                return Err(TrustError::TranscriptMismatch { signer }.into());
            }
        }
        let agreed = Agreed {
            session: running.context.session,
            kind: running.context.kind,
            model: running.model.clone(),
            figures: running.figures.clone(),
            kept: match running.context.kind {
                SessionKind::Evaluate => running.server.best.as_ref().map(|best| best.params.clone()),
                _ => None,
            },
            boosting: running.server.boosting.clone().map(Box::new),
        };
        let State::Confirmed(running, key) = mem::take(&mut self.state) else { unreachable!("matched above") };
        self.state = State::Agreed(running, key);
        Ok(agreed)
    }

    /// The challenge step: commits to the aggregate masks received, with fresh randomness.
    /// Section: the aggregate masks.
    fn challenge(&mut self, task: &Task, rng: &mut impl TryCryptoRng) -> Result<Vec<u8>> {
        let State::Contributed(running) = &self.state else { return Err(out_of_order(TaskKind::Challenge)) };
        if Some(running.context.session) != task.session {
            return Err(out_of_order(TaskKind::Challenge));
        }
        let [masks] = sections::<1>(task)?;
        let masks = AggregateMasks::decode(masks, &PARAMS_V2, &self.settings.wire_limits())?;
        let contributors: Vec<&str> = masks.contributors().iter().map(|(p, _)| p.as_str()).collect();
        if !contributors.iter().copied().eq(running.members.iter().map(NodeId::as_str)) {
            return Err(TrustError::ParticipantsChanged {
                expected: running.members.iter().map(|n| n.as_str().to_owned()).collect(),
                got: contributors.iter().map(|&c| c.to_owned()).collect(),
            }
            .into());
        }
        let aggregate = MasksDigest(masks.digest());
        let nonce = fresh_nonce(rng)?;
        let upload =
            self.sign(&running.context, Claim::Challenge { transcript: running.transcript, aggregate, nonce })?;
        let State::Contributed(running) = mem::take(&mut self.state) else { unreachable!("matched above") };
        self.state = State::Committed(running, Box::new(MaskCommitment { masks, aggregate, nonce }));
        Ok(upload)
    }

    /// The proof step: the joint challenge from every participant's randomness, and this
    /// hospital's fingerprint of its own masks under it. Section: the signed challenges.
    fn prove(&mut self, task: &Task) -> Result<Vec<u8>> {
        let State::Committed(running, committed) = &self.state else { return Err(out_of_order(TaskKind::Prove)) };
        if Some(running.context.session) != task.session {
            return Err(out_of_order(TaskKind::Prove));
        }
        let [challenges] = sections::<1>(task)?;
        let own = (running.transcript, committed.aggregate.0, committed.nonce);
        let seed = self.joint_seed(challenges, running, TaskKind::Challenge, own)?;
        let fingerprint = running.party.mask_fingerprint(&Challenge::new(seed.0))?;
        let claim = Claim::Fingerprint {
            transcript: running.transcript,
            aggregate: committed.aggregate,
            challenge: seed,
            fingerprint: fingerprint.to_bytes(),
        };
        let upload = self.sign(&running.context, claim)?;
        let State::Committed(running, committed) = mem::take(&mut self.state) else { unreachable!("matched above") };
        let MaskCommitment { masks, aggregate, .. } = *committed;
        self.state = State::Proved(running, Box::new(MaskProof { masks, aggregate, seed, fingerprint }));
        Ok(upload)
    }

    /// Decryption: checks the masks against the sum of the signed fingerprints, records the slot
    /// in the ledger, and only then hands the decryption share out. Section: the signed
    /// fingerprints.
    fn decrypt(&mut self, task: &Task) -> Result<Vec<u8>> {
        let State::Proved(running, proof) = &self.state else { return Err(out_of_order(TaskKind::Decrypt)) };
        if Some(running.context.session) != task.session {
            return Err(out_of_order(TaskKind::Decrypt));
        }
        let [fingerprints] = sections::<1>(task)?;
        let expected = (running.transcript, proof.aggregate.0, proof.seed);
        let total = self.fingerprint_sum(fingerprints, running, TaskKind::Prove, expected, proof.fingerprint)?;
        let check = MaskCheck { challenge: Challenge::new(proof.seed.0), contributions: total };
        let release = self.release(running);
        release.check(&self.ledger.releases())?;
        let State::Proved(mut running, proof) = mem::take(&mut self.state) else { unreachable!("matched above") };
        // The share is made (the masks checked: forged ones are refused before the key share is
        // spent) but leaves this function only once the ledger has recorded the release durably;
        // if recording fails, the share is dropped unsent and, its key share gone, the session
        // with it.
        let share = match running.party.decryption_share(&proof.masks, &check) {
            Ok(share) => share,
            Err(error) => {
                // Refused before the key share is spent: the state stays as it was.
                self.state = State::Proved(running, proof);
                return Err(error.into());
            }
        };
        self.ledger.record(Entry::Released(release))?;
        let bytes = share.encode()?;
        self.state = State::Decrypted(running, proof.aggregate);
        Ok(bytes)
    }

    /// The result step: commits to the decrypted sum received, with fresh randomness. Taken in
    /// every state after the decryption share, of the same session: an aggregator that restarted
    /// hands the sum out again. Section: the decrypted sum.
    fn sum_challenge(&mut self, task: &Task, rng: &mut impl TryCryptoRng) -> Result<Vec<u8>> {
        let running = self.running(task, TaskKind::Result)?;
        let aggregate = match &self.state {
            State::Decrypted(_, aggregate) => *aggregate,
            State::SumCommitted(_, c) => c.aggregate,
            State::Attested(_, p) => p.aggregate,
            State::Endorsed(_, h) => h.aggregate,
            _ => return Err(out_of_order(TaskKind::Result)),
        };
        let [sum] = sections::<1>(task)?;
        let sum = DecryptedSum::decode(sum, &PARAMS_V2, &self.settings.wire_limits())?;
        if aggregate != MasksDigest(sum.aggregate_digest()) {
            let why = "a decrypted sum of other aggregate masks".into();
            return Err(TrustError::WrongStatement { signer: self.me.clone(), why }.into());
        }
        let digest = SumDigest(sum.digest());
        let nonce = fresh_nonce(rng)?;
        let upload =
            self.sign(&running.context, Claim::SumChallenge { transcript: running.transcript, sum: digest, nonce })?;
        let Some((running, aggregate)) = self.state.take_decrypted() else { unreachable!("matched above") };
        self.state = State::SumCommitted(running, Box::new(SumCommitment { aggregate, sum, digest, nonce }));
        Ok(upload)
    }

    /// The attestation step: the output challenge from every participant's randomness, and this
    /// hospital's fingerprint of its bodies minus its decryption share under it. Section: the
    /// signed sum commitments.
    fn sum_fingerprint(&mut self, task: &Task) -> Result<Vec<u8>> {
        let State::SumCommitted(running, committed) = &self.state else { return Err(out_of_order(TaskKind::Attest)) };
        if Some(running.context.session) != task.session {
            return Err(out_of_order(TaskKind::Attest));
        }
        let [challenges] = sections::<1>(task)?;
        let own = (running.transcript, committed.digest.0, committed.nonce);
        let seed = self.joint_seed(challenges, running, TaskKind::Result, own)?;
        let fingerprint = running.party.output_fingerprint(&Challenge::new(seed.0))?;
        let claim = Claim::SumFingerprint {
            transcript: running.transcript,
            sum: committed.digest,
            challenge: seed,
            fingerprint: fingerprint.to_bytes(),
        };
        let upload = self.sign(&running.context, claim)?;
        let State::SumCommitted(running, committed) = mem::take(&mut self.state) else { unreachable!("matched above") };
        let SumCommitment { aggregate, sum, digest, .. } = *committed;
        self.state = State::Attested(running, Box::new(SumProof { aggregate, sum, digest, seed, fingerprint }));
        Ok(upload)
    }

    /// The acceptance step: checks the decrypted sum against the sum of the signed output
    /// fingerprints, applies the agreed rule to it and endorses the result. Section: the signed
    /// output fingerprints.
    fn endorse(&mut self, task: &Task) -> Result<Vec<u8>> {
        let State::Attested(running, proof) = &self.state else { return Err(out_of_order(TaskKind::Accept)) };
        if Some(running.context.session) != task.session {
            return Err(out_of_order(TaskKind::Accept));
        }
        let [fingerprints] = sections::<1>(task)?;
        let expected = (running.transcript, proof.digest.0, proof.seed);
        let total = self.fingerprint_sum(fingerprints, running, TaskKind::Attest, expected, proof.fingerprint)?;
        let check = MaskCheck { challenge: Challenge::new(proof.seed.0), contributions: total };
        let words = running.party.check_sum(&proof.sum, &check)?;
        let settings = &self.settings;
        let global = params_from_bytes(&running.model, settings.param_count())?;
        let inputs = SessionInputs {
            settings,
            codec: &self.codec,
            session: running.context.session,
            kind: running.context.kind,
            contributors: running.members.len(),
            global: &global,
            server: &running.server,
            figures: &running.figures,
            start: &running.start.digest,
        };
        let output = session_output(&inputs, &words).map_err(|why| Error::Output { session: inputs.session, why })?;
        let claim = Claim::Output {
            transcript: running.transcript,
            sum: proof.digest,
            state: output.state,
            file: output.file_digest,
        };
        let upload = self.sign(&running.context, claim)?;
        let session = running.context.session;
        let (model, server) = output.state_bytes;
        let end = Held { digest: output.state, before: Some(running.start.digest), model, server };
        // Endorsing a session again (its aggregator resumed) keeps the file of the one before.
        let earlier = self
            .verified
            .as_ref()
            .and_then(|v| if v.session == session { v.files.get(1).copied() } else { v.files.first().copied() });
        let files: Vec<FileDigest> = [output.file_digest].into_iter().chain(earlier).collect();
        let kind = running.context.kind;
        // The endorsement is recorded before its signature leaves: a hospital that restarts
        // resumes its schedule from here.
        self.ledger.record(Entry::Endorsed(Endorsement {
            federation: self.settings.federation_id.clone(),
            session,
            kind,
            start: running.start.digest,
            end: end.digest,
            files: files.clone(),
        }))?;
        let states = [running.start.digest, end.digest];
        let held = vec![running.start.clone(), end];
        self.verified = Some(Verified { session, kind, states, files, held });
        if let Some(exploration) = output.exploration {
            self.explored = Some((exploration, running.members.clone()));
        }
        let State::Attested(running, proof) = mem::take(&mut self.state) else { unreachable!("matched above") };
        let SumProof { aggregate, sum, .. } = *proof;
        self.state = State::Endorsed(running, Box::new(HeldSum { aggregate, sum }));
        Ok(upload)
    }

    /// The final model file of a `Done` task, checked: of the federation's model, and the output
    /// this hospital checked and endorsed (or endorsed by its roster's hospitals,
    /// [`Self::check_final`]). Section: the model file.
    fn final_file(&self, task: &Task) -> Result<FinalFile> {
        let [bytes] = sections::<1>(task)?;
        let model = ModelFile::from_bytes(bytes).map_err(ProtocolError::Model)?;
        if model.spec != self.settings.spec || model.ensemble.is_some() != self.settings.boosting.is_some() {
            return Err(ProtocolError::Invalid {
                field: "final model",
                value: format!("{} parameters", model.params.len()),
                expected: format!("the federation's model of {} parameters", self.settings.spec.param_count()),
            }
            .into());
        }
        self.check_final(&model)?;
        Ok(FinalFile { bytes: bytes.clone(), model })
    }

    /// Checks the final model file: one this hospital computed (after the last session it
    /// endorsed, or the one before when the aggregator gave that one up); or one endorsed for
    /// the final session (the evaluation, or the last training round when the evaluation was
    /// given up) by its roster's quorum ([`Consortium::endorsement_quorum`]).
    pub fn check_final(&self, file: &ModelFile) -> Result<()> {
        let digest = file_digest(file)?;
        if self.verified.as_ref().is_some_and(|v| v.files.contains(&digest)) {
            return Ok(());
        }
        let statements = self.endorsed_by_roster(&file.endorsements, Endorsed::File(digest))?;
        let (session, kind) = (statements[0].session, statements[0].kind);
        // A training round was the last when it was the last of `rounds`, or when the file's
        // best model (its round: the file's digest covers it) had waited `patience` rounds.
        let best = file.metrics.get("round").map(|&round| round as u32);
        let settings = &self.settings;
        // Boosted trees end once every tree is grown (the file counts them).
        let trees_grown = settings
            .boosting
            .as_ref()
            .is_some_and(|b| file.metrics.get("trees_grown").copied() == Some(f64::from(b.config.trees)));
        let last_training = kind == SessionKind::Train
            && (training_ends(session.round, settings.rounds, settings.patience, best) || trees_grown);
        let last = match self.settings.job {
            Job::Train => kind == SessionKind::Evaluate || last_training,
            Job::Explore { .. } => kind == SessionKind::Explore,
        };
        if !last {
            let why = format!("endorsed for session {session} ({kind}), not the final one");
            return Err(TrustError::NotEndorsed { why }.into());
        }
        Ok(())
    }

    /// The statements of a bundle of endorsements of `what` ([`check_endorsements`]), each by a
    /// member of this hospital's roster with its pinned key, of this federation, and at least
    /// its quorum of them ([`Consortium::endorsement_quorum`]).
    fn endorsed_by_roster(&self, bundle: &[u8], what: Endorsed) -> Result<Vec<Statement>> {
        let statements = check_endorsements(bundle, what)?;
        for (signed, statement) in &statements {
            self.consortium.check(signed)?;
            if statement.federation_id != self.settings.federation_id {
                let why = format!("endorsed for federation {:?}", statement.federation_id);
                return Err(TrustError::NotEndorsed { why }.into());
            }
        }
        let quorum = self.consortium.endorsement_quorum(self.min_hospitals);
        if statements.len() < quorum {
            let roster = self.consortium.members.len();
            let why = format!(
                "{} endorsements, this hospital requires {quorum} (a majority of its roster of {roster}, at least its minimum)",
                statements.len()
            );
            return Err(TrustError::NotEndorsed { why }.into());
        }
        Ok(statements.into_iter().map(|(_, statement)| statement).collect())
    }

    /// The joint seed of a challenge step: every participant committed to the same transcript
    /// and `target` digest (this hospital's own commitment among them), and the seed is drawn
    /// from all their randomness. `own` is (transcript, target, own nonce).
    fn joint_seed(
        &self,
        bytes: &[u8],
        running: &Session,
        step: TaskKind,
        own: (TranscriptDigest, [u8; 32], Nonce),
    ) -> Result<ChallengeSeed> {
        let (transcript, target, own_nonce) = own;
        let statements = self.relayed(bytes, &running.context, step)?;
        Self::same_members(&running.members, &statements)?;
        let mut nonces = Vec::new();
        for (signer, claim) in statements {
            let (t, a, nonce) = match claim {
                Claim::Challenge { transcript, aggregate, nonce } => (transcript, aggregate.0, nonce),
                Claim::SumChallenge { transcript, sum, nonce } => (transcript, sum.0, nonce),
                _ => return Err(relayed_step_changed()),
            };
            if t != transcript {
                return Err(TrustError::TranscriptMismatch { signer }.into());
            }
            if a != target {
                let why = format!("it received another {} than this hospital", target_name(step));
                return Err(TrustError::WrongStatement { signer, why }.into());
            }
            if signer == self.me && nonce != own_nonce {
                return Err(TrustError::OwnStatementMissing { what: "challenge randomness" }.into());
            }
            nonces.push((signer, nonce));
        }
        Ok(challenge_seed(&transcript, &target, &nonces))
    }

    /// The sum of every participant's signed fingerprint of a fingerprint step, each for this
    /// transcript, `target` digest and challenge seed, this hospital's own (`own`) among them.
    /// `expected` is (transcript, target, seed).
    fn fingerprint_sum(
        &self,
        bytes: &[u8],
        running: &Session,
        step: TaskKind,
        expected: (TranscriptDigest, [u8; 32], ChallengeSeed),
        own: MaskFingerprint,
    ) -> Result<MaskFingerprint> {
        let (transcript, target, seed) = expected;
        let statements = self.relayed(bytes, &running.context, step)?;
        Self::same_members(&running.members, &statements)?;
        let mut total = MaskFingerprint::default();
        for (signer, claim) in statements {
            let (t, a, challenge, fingerprint) = match claim {
                Claim::Fingerprint { transcript, aggregate, challenge, fingerprint } => {
                    (transcript, aggregate.0, challenge, fingerprint)
                }
                Claim::SumFingerprint { transcript, sum, challenge, fingerprint } => {
                    (transcript, sum.0, challenge, fingerprint)
                }
                _ => return Err(relayed_step_changed()),
            };
            if t != transcript {
                return Err(TrustError::TranscriptMismatch { signer }.into());
            }
            if a != target || challenge != seed {
                let why = format!("a fingerprint for another {} or another challenge", target_name(step));
                return Err(TrustError::WrongStatement { signer, why }.into());
            }
            let fingerprint = MaskFingerprint::from_bytes(&fingerprint).ok_or_else(|| TrustError::WrongStatement {
                signer: signer.clone(),
                why: "a malformed fingerprint".into(),
            })?;
            if signer == self.me && fingerprint != own {
                return Err(TrustError::OwnStatementMissing { what: "fingerprint" }.into());
            }
            total = total.wrapping_add(fingerprint);
        }
        Ok(total)
    }
}

/// What a challenge or fingerprint step is about.
fn target_name(step: TaskKind) -> &'static str {
    match step {
        TaskKind::Result | TaskKind::Attest => "decrypted sum",
        _ => "aggregate masks",
    }
}

/// A relayed statement of another step than the one [`Participant::relayed`] checked: only a
/// bug can bring one here.
fn relayed_step_changed() -> Error {
    ProtocolError::Invalid {
        field: "relayed statement",
        value: "a claim of another step".into(),
        expected: "the step its context was checked for".into(),
    }
    .into()
}

/// The task's sections, exactly `N` of them.
fn sections<const N: usize>(task: &Task) -> Result<&[Bytes; N]> {
    task.sections
        .as_slice()
        .try_into()
        .map_err(|_| ProtocolError::Sections { task: task.kind.name(), got: task.sections.len(), expected: N }.into())
}
/// Checks a relayed boosting state before anything reads it: present exactly for a boosting
/// federation, its trees and the tree being grown well formed over the model's inputs (a forged
/// tree could otherwise send a walk out of range or round in circles).
fn check_boosting_state(settings: &FederationSettings, state: &ServerState) -> Result<()> {
    let width = settings.spec.input_width();
    let invalid = |why: String| ProtocolError::Invalid {
        field: "boosting state",
        value: why,
        expected: "well-formed trees over the model's inputs, for a boosting federation only".into(),
    };
    match (&settings.boosting, &state.boosting) {
        (None, None) => Ok(()),
        (Some(_), Some(boosting)) => {
            if let Some(ensemble) = &boosting.ensemble {
                ensemble.validate(width).map_err(|e| invalid(e.to_string()))?;
            }
            if let Some(growing) = &boosting.growing {
                growing.validate(width).map_err(|e| invalid(e.to_string()))?;
            }
            Ok(())
        }
        _ => Err(invalid("a boosting state where the model is a network, or none where it is trees".into()).into()),
    }
}
