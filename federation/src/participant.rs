//! A hospital's side of the protocol without any I/O: what it checks of every task a possibly
//! lying aggregator sends and what it signs in reply. The hospital client ([`crate::hospital`])
//! moves bytes; every decision is here, so the coordinator tests and the attack tests drive the
//! same code a hospital runs.
//!
//! Per session ([`crate::transcript`] lists the steps) a [`Participant`]:
//! - refuses anyone off its own roster or with another key than the roster pins, fewer
//!   participants than its own minimum, an attempt past its bound, and settings past its bounds;
//! - sums the collective key itself from the signed key shares, its own among them;
//! - signs the round transcript and goes on only when all participants signed the same one;
//! - commits to the aggregate masks' digest with fresh randomness, publishes its own masks'
//!   fingerprint under the joint challenge, and makes its decryption share only for masks equal
//!   to the sum of the signed fingerprints ([`fedcare_crypto::check`]);
//! - records the slot (federation, round, session kind) in its [`Ledger`], durably, before its
//!   decryption share leaves, and never makes a second share for a recorded slot: training is
//!   deterministic, so two decryptions of one round over different hospital sets would give
//!   one hospital's exact update as their difference;
//! - commits to the decrypted sum it is handed with fresh randomness, publishes its fingerprint
//!   of its own bodies minus its own decryption share under the second joint challenge, and
//!   accepts the sum only when it matches the sum of the signed fingerprints; it then applies
//!   the agreed rule itself ([`crate::output`]) and endorses the result's digests;
//! - refuses a next session whose global model, server state or public figures are not the ones
//!   it computed (a hospital that joined later: that its roster's hospitals did not endorse),
//!   and a final model file that is not the one it computed or, when it did not take
//!   part in the last session, one that its roster's hospitals did not endorse for the final
//!   session.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use fedcare_core::{Codec, ModelFile};
use fedcare_crypto::{
    AggregateMasks, Challenge, CollectivePublicKey, Crs, DecryptedSum, MaskCheck, MaskFingerprint, PARAMS_V2, PartyId,
    PartySession, PublicKeyShare, WireLimits, WireMessage,
};
use serde::{Deserialize, Serialize};

use crate::config::Consortium;
use crate::error::{FederationError, ProtocolError, Result, TrustError};
use crate::exploration::Exploration;
use crate::output::{SessionInputs, session_output};
use crate::protocol::{FederationSettings, Job, NodeId, PublicFigures, SessionId, SessionKind, Task};
use crate::selection::{ServerState, training_ends};
use crate::signing::SigningKey;
use crate::transcript::{
    Claim, Endorsed, Statement, Step, challenge_seed, check_endorsements, decode_bundle, file_digest, state_digest,
    transcript_digest,
};
use crate::transfer::params_from_bytes;

/// One decryption slot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Slot {
    federation: String,
    round: u32,
    kind: SessionKind,
}

/// The slots a hospital has made decryption shares for, kept in an append-only file (one JSON
/// line per slot, fsynced before the share leaves).
#[derive(Debug)]
pub struct Ledger {
    path: Option<PathBuf>,
    spent: BTreeSet<Slot>,
}

impl Ledger {
    /// The ledger in `path` (created when absent, with its directory).
    pub fn open(path: &Path) -> core::result::Result<Self, TrustError> {
        let error = |why: String| TrustError::Ledger { path: path.to_path_buf(), why };
        let mut spent = BTreeSet::new();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                    let slot: Slot =
                        serde_json::from_str(line).map_err(|e| error(format!("line {}: {e}", number + 1)))?;
                    spent.insert(slot);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| error(e.to_string()))?;
                }
            }
            Err(e) => return Err(error(e.to_string())),
        }
        Ok(Self { path: Some(path.to_path_buf()), spent })
    }

    /// A ledger kept in memory only (tests of the protocol logic).
    pub fn in_memory() -> Self {
        Self { path: None, spent: BTreeSet::new() }
    }

    fn slot(federation: &str, round: u32, kind: SessionKind) -> Slot {
        Slot { federation: federation.to_owned(), round, kind }
    }

    /// Whether a share was made for this slot.
    pub fn is_spent(&self, federation: &str, round: u32, kind: SessionKind) -> bool {
        self.spent.contains(&Self::slot(federation, round, kind))
    }

    /// Records the slot durably; refuses one already recorded.
    pub fn spend(&mut self, federation: &str, round: u32, kind: SessionKind) -> core::result::Result<(), TrustError> {
        let slot = Self::slot(federation, round, kind);
        if self.spent.contains(&slot) {
            return Err(TrustError::SlotSpent { federation: federation.into(), round, kind });
        }
        if let Some(path) = &self.path {
            let error = |e: std::io::Error| TrustError::Ledger { path: path.clone(), why: e.to_string() };
            let created = !path.exists();
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(error)?;
            // Invariant: a Slot always serializes.
            let mut line = serde_json::to_string(&slot).unwrap_or_default();
            line.push('\n');
            file.write_all(line.as_bytes()).and_then(|()| file.sync_all()).map_err(error)?;
            if created && let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(error)?;
            }
        }
        self.spent.insert(slot);
        Ok(())
    }
}

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
}

/// One session as this hospital has seen it so far.
#[derive(Debug)]
struct Round {
    context: Statement,
    party: PartySession,
    own_share: Vec<u8>,
    members: Vec<NodeId>,
    key: Option<CollectivePublicKey>,
    transcript: Option<[u8; 32]>,
    model: Bytes,
    server: Option<ServerState>,
    figures: PublicFigures,
    /// The aggregate masks to decrypt (dropped once decrypted) and their digest.
    masks: Option<AggregateMasks>,
    aggregate: Option<[u8; 32]>,
    nonce: [u8; 32],
    challenge: Option<[u8; 32]>,
    fingerprint: Option<MaskFingerprint>,
    sum: Option<(DecryptedSum, [u8; 32])>,
    sum_nonce: [u8; 32],
    sum_challenge: Option<[u8; 32]>,
    sum_fingerprint: Option<MaskFingerprint>,
    start: Option<Held>,
}

/// A federation state a hospital holds: the global model's bytes and the server state's,
/// with the [`state_digest`] that also covers the public figures.
#[derive(Debug, Clone)]
struct Held {
    digest: [u8; 32],
    model: Bytes,
    server: Bytes,
}

impl Held {
    fn new(model: Bytes, server: Bytes, figures: &PublicFigures) -> Self {
        Self { digest: state_digest(&model, &server, figures), model, server }
    }
}

/// What this hospital checked of the last session it endorsed: the state it started from and the
/// one it ended with (the aggregator may go on from either: from the first when it gave that
/// session up), and the model files after it and after the one before.
#[derive(Debug, Clone)]
struct Verified {
    session: SessionId,
    states: [Held; 2],
    files: Vec<[u8; 32]>,
}

/// What a hospital trusts, from its own files: its signing key, the consortium it pins and
/// where its decryption ledger lives.
#[derive(Debug, Clone)]
pub struct Trust {
    /// The hospital's signing key (its mTLS key).
    pub key: Arc<SigningKey>,
    /// The consortium it pins.
    pub consortium: Consortium,
    /// The ledger file (`None`: in memory, for tests of the protocol logic only).
    pub ledger: Option<PathBuf>,
}

/// File name of the decryption ledger inside a hospital's state directory.
pub const LEDGER_FILE: &str = "decryptions.jsonl";

/// A hospital's protocol logic (sans I/O).
#[derive(Debug)]
pub struct Participant {
    me: NodeId,
    key: Arc<SigningKey>,
    consortium: Consortium,
    settings: FederationSettings,
    min_hospitals: usize,
    codec: Codec,
    ledger: Ledger,
    round: Option<Round>,
    verified: Option<Verified>,
    /// An exploration's checked pooled counts and the hospitals counted.
    explored: Option<(Exploration, Vec<NodeId>)>,
}

fn fresh_nonce() -> [u8; 32] {
    let mut nonce = [0u8; 32];
    // Invariant: the OS random source does not fail on a working machine; ring's own use of it
    // for signing would fail first.
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).unwrap_or(());
    nonce
}

impl Participant {
    /// `me` in the federation of `settings`, with what it trusts; refuses when its own key is not
    /// the one its roster pins for `me`, or the settings are past its bounds.
    pub fn new(me: NodeId, trust: &Trust, settings: FederationSettings) -> Result<Self> {
        let ledger = match &trust.ledger {
            Some(path) => Ledger::open(path)?,
            None => Ledger::in_memory(),
        };
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
        Ok(Self {
            me,
            key,
            consortium,
            settings,
            min_hospitals,
            codec,
            ledger,
            round: None,
            verified: None,
            explored: None,
        })
    }

    /// This hospital's node id.
    pub fn me(&self) -> &NodeId {
        &self.me
    }

    /// The exploration's pooled counts this hospital checked and endorsed, with the hospitals
    /// counted (after an exploration session).
    pub fn exploration(&self) -> Option<&(Exploration, Vec<NodeId>)> {
        self.explored.as_ref()
    }

    /// The digest of the federation settings it was made for (a node that reconnects keeps its
    /// participant only for the same settings).
    pub fn settings_digest(&self) -> [u8; 32] {
        self.settings.digest
    }

    /// For an aggregator that restarted after the session's decrypted sum went out: the sum this
    /// hospital received of the task's session, in its wire form (empty when it holds none).
    /// Handing it back reveals nothing new and decrypts nothing: every hospital checks the sum
    /// again before it accepts it.
    pub fn held_sum(&self, task: &Task) -> Result<Vec<u8>> {
        let held = self.round.as_ref().filter(|r| Some(r.context.session) == task.session).and_then(|r| r.sum.as_ref());
        match held {
            Some((sum, _)) => Ok(sum.encode()?),
            None => Ok(Vec::new()),
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

    fn sign(&self, context: &Statement, claim: Claim) -> Vec<u8> {
        let statement = Statement { claim, ..context.clone() };
        // Invariant: postcard serializes these plain types into a Vec without failing.
        postcard::to_allocvec(&statement.sign(&self.me, &self.key)).unwrap_or_default()
    }

    /// The running session, checked to be the task's.
    fn round(&mut self, task: &Task, step: &'static str) -> Result<&mut Round> {
        let session = task.session;
        self.round.as_mut().filter(|r| Some(r.context.session) == session).ok_or(TrustError::OutOfOrder { step }.into())
    }

    /// The relayed statements of `step`, each from a roster member with its pinned key and a
    /// valid signature, for this session; sorted by signer, one each.
    fn relayed(&self, bytes: &[u8], context: &Statement, step: Step) -> Result<Vec<(NodeId, Claim)>> {
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

    /// Key generation: a fresh key share for the task's CRS, signed.
    pub fn key_gen(&mut self, task: &Task) -> Result<Vec<u8>> {
        let context = self.context(task)?;
        let attempt = context.session.attempt;
        if attempt >= self.consortium.max_attempts {
            let max = u64::from(self.consortium.max_attempts.saturating_sub(1));
            return Err(TrustError::OutOfBounds { what: "the attempt number", got: attempt.into(), max }.into());
        }
        let federation = &self.settings.federation_id;
        if self.ledger.is_spent(federation, context.session.round, context.kind) {
            let (round, kind) = (context.session.round, context.kind);
            return Err(TrustError::SlotSpent { federation: federation.clone(), round, kind }.into());
        }
        let id = PartyId::new(self.me.as_str())?;
        let (party, share) = PartySession::new(PARAMS_V2, id, Crs(context.crs), self.min_hospitals)?;
        let own_share = share.encode()?;
        let upload = self.sign(&context, Claim::KeyShare(own_share.clone()));
        self.round = Some(Round {
            context,
            party,
            own_share,
            members: Vec::new(),
            key: None,
            transcript: None,
            model: Bytes::new(),
            server: None,
            figures: PublicFigures::default(),
            masks: None,
            aggregate: None,
            nonce: fresh_nonce(),
            challenge: None,
            fingerprint: None,
            sum: None,
            sum_nonce: fresh_nonce(),
            sum_challenge: None,
            sum_fingerprint: None,
            start: None,
        });
        Ok(upload)
    }

    /// Confirmation: checks the relayed key shares, sums the collective key, checks the state
    /// the session starts from is one this hospital computed (when it checked the last session
    /// it took part in) or, for a hospital without one or with an older one (it missed
    /// sessions), that its roster's hospitals endorsed it as the output of a later session
    /// (after the first session), and signs the round transcript. Sections: the signed key
    /// shares, then either the global model, the server state and that state's
    /// endorsements, or (to a hospital that holds it) the state's digest alone.
    pub fn confirm(&mut self, task: &Task) -> Result<Vec<u8>> {
        let (model, server, endorsements) = match task.sections.as_slice() {
            [_, model, server, endorsements] => (model.clone(), server.clone(), Some(endorsements)),
            [_, reference] => {
                let held = self.verified.iter().flat_map(|v| &v.states).find(|h| h.digest[..] == reference[..]);
                let held = held.ok_or(TrustError::UnknownState)?;
                (held.model.clone(), held.server.clone(), None)
            }
            sections => {
                return Err(ProtocolError::Sections { task: "confirmation", got: sections.len(), expected: 4 }.into());
            }
        };
        let shares = &task.sections[0];
        let context = self.round(task, "confirmation")?.context.clone();
        let start = Held::new(model, server, &task.figures);
        match (&self.verified, endorsements) {
            // A hospital that missed sessions (dropped at a deadline, cut off by a partition)
            // takes a later state only as the output its roster's hospitals endorsed, as a
            // hospital that joined late does; an earlier one (a rollback) never.
            (Some(verified), endorsements) if !verified.states.iter().any(|h| h.digest == start.digest) => {
                let later = endorsements.is_some_and(|bundle| {
                    self.endorsed_by_roster(bundle, Endorsed::State(start.digest)).is_ok_and(|statements| {
                        statements.iter().all(|statement| statement.session.round > verified.session.round)
                    })
                });
                if !later {
                    let what = "global model, server state or public figures";
                    return Err(TrustError::OutputMismatch { what, session: verified.session }.into());
                }
            }
            // A hospital with no state of its own (it joined after the first session) takes the
            // state only as the output its roster's hospitals endorsed; only the first session
            // starts from a state nobody computed (the initial model, which the transcript binds).
            (None, Some(endorsements)) if context.kind != SessionKind::Setup => {
                self.endorsed_by_roster(endorsements, Endorsed::State(start.digest))?;
            }
            _ => {}
        }
        let (model, server) = (&start.model, &start.server);
        params_from_bytes(model, self.settings.spec.param_count())?;
        let state: ServerState = postcard::from_bytes(server).map_err(|e| ProtocolError::Invalid {
            field: "server state",
            value: e.to_string(),
            expected: "its postcard encoding".into(),
        })?;
        state.check(self.settings.server, self.settings.spec.param_count()).map_err(|why| ProtocolError::Invalid {
            field: "server state",
            value: why,
            expected: "the agreed server rule's state and a best model of the model's size".into(),
        })?;
        let statements = self.relayed(shares, &context, Step::KeyShare)?;
        if statements.len() < self.min_hospitals {
            return Err(TrustError::TooFewParticipants { got: statements.len(), min: self.min_hospitals }.into());
        }
        let mut shares = Vec::new();
        let mut share_bytes = Vec::new();
        for (signer, claim) in statements {
            let Claim::KeyShare(bytes) = claim else { unreachable_step()? };
            let share = PublicKeyShare::decode(&bytes, &PARAMS_V2, &WireLimits::default())?;
            if share.party().as_str() != signer.as_str() {
                return Err(
                    TrustError::WrongStatement { signer, why: "a key share made for another party".into() }.into()
                );
            }
            shares.push(share);
            share_bytes.push((signer, bytes));
        }
        let settings = self.settings.digest;
        let me = self.me.clone();
        let round = self.round(task, "confirmation")?;
        if !share_bytes.iter().any(|(n, b)| n == &me && b == &round.own_share) {
            return Err(TrustError::OwnStatementMissing { what: "key share" }.into());
        }
        round.key = Some(round.party.collective_key(&shares)?);
        round.members = share_bytes.iter().map(|(n, _)| n.clone()).collect();
        round.model = model.clone();
        round.server = Some(state);
        round.figures = task.figures.clone();
        let digest = transcript_digest(&settings, &context, &share_bytes, &start.digest);
        round.start = Some(start);
        round.transcript = Some(digest);
        Ok(self.sign(&context, Claim::Transcript(digest)))
    }

    /// Before contributing: every participant signed this hospital's transcript. Section: the
    /// signed transcripts. Returns what was agreed.
    pub fn agree(&mut self, task: &Task) -> Result<Agreed> {
        let [transcripts] = sections::<1>(task, "contribution")?;
        let round = self.round(task, "contribution")?;
        let (context, members, own) = (round.context.clone(), round.members.clone(), round.transcript);
        let own = own.ok_or(TrustError::OutOfOrder { step: "contribution" })?;
        let statements = self.relayed(transcripts, &context, Step::Transcript)?;
        Self::same_members(&members, &statements)?;
        for (signer, claim) in statements {
            if claim != Claim::Transcript(own) {
                return Err(TrustError::TranscriptMismatch { signer }.into());
            }
        }
        let round = self.round(task, "contribution")?;
        Ok(Agreed {
            session: context.session,
            kind: context.kind,
            model: round.model.clone(),
            figures: round.figures.clone(),
        })
    }

    /// Encrypts this hospital's encoded contribution under the key it summed.
    pub fn encrypt(&mut self, session: SessionId, words: &[u64]) -> Result<Vec<u8>> {
        let round = self
            .round
            .as_mut()
            .filter(|r| r.context.session == session)
            .ok_or(TrustError::OutOfOrder { step: "encryption" })?;
        let key = round.key.as_ref().ok_or(TrustError::OutOfOrder { step: "encryption" })?;
        Ok(round.party.encrypt(key, words)?.encode()?)
    }

    /// The challenge step: commits to the aggregate masks received, with fresh randomness.
    /// Section: the aggregate masks.
    pub fn challenge(&mut self, task: &Task) -> Result<Vec<u8>> {
        let [masks] = sections::<1>(task, "challenge")?;
        let limits = WireLimits { max_values: (self.settings.max_upload_bytes / 8) as usize };
        let masks = AggregateMasks::decode(masks, &PARAMS_V2, &limits)?;
        let round = self.round(task, "challenge")?;
        let transcript = round.transcript.ok_or(TrustError::OutOfOrder { step: "challenge" })?;
        let contributors: Vec<&str> = masks.contributors().iter().map(|(p, _)| p.as_str()).collect();
        if !contributors.iter().copied().eq(round.members.iter().map(NodeId::as_str)) {
            return Err(TrustError::ParticipantsChanged {
                expected: round.members.iter().map(|n| n.as_str().to_owned()).collect(),
                got: contributors.iter().map(|&c| c.to_owned()).collect(),
            }
            .into());
        }
        let digest = masks.digest();
        let nonce = round.nonce;
        round.masks = Some(masks);
        round.aggregate = Some(digest);
        let context = round.context.clone();
        Ok(self.sign(&context, Claim::Challenge { transcript, aggregate: digest, nonce }))
    }

    /// The proof step: the joint challenge from every participant's randomness, and this
    /// hospital's fingerprint of its own masks under it. Section: the signed challenges.
    pub fn prove(&mut self, task: &Task) -> Result<Vec<u8>> {
        let [challenges] = sections::<1>(task, "proof")?;
        let round = self.round(task, "proof")?;
        let (transcript, aggregate) = match (round.transcript, round.aggregate) {
            (Some(t), Some(a)) => (t, a),
            _ => return Err(TrustError::OutOfOrder { step: "proof" }.into()),
        };
        let own_nonce = round.nonce;
        let seed = self.joint_seed(challenges, task, Step::Challenge, (transcript, aggregate, own_nonce))?;
        let round = self.round(task, "proof")?;
        let fingerprint = round.party.mask_fingerprint(&Challenge::new(seed))?;
        round.challenge = Some(seed);
        round.fingerprint = Some(fingerprint);
        let context = round.context.clone();
        let claim = Claim::Fingerprint { transcript, aggregate, challenge: seed, fingerprint: fingerprint.to_bytes() };
        Ok(self.sign(&context, claim))
    }

    /// Decryption: checks the masks against the sum of the signed fingerprints, records the slot
    /// in the ledger, and only then makes the decryption share. Section: the signed fingerprints.
    pub fn decrypt(&mut self, task: &Task) -> Result<Vec<u8>> {
        let [fingerprints] = sections::<1>(task, "decryption")?;
        let round = self.round(task, "decryption")?;
        let context = round.context.clone();
        let (transcript, aggregate, seed, own) =
            match (round.transcript, round.aggregate, round.challenge, round.fingerprint) {
                (Some(t), Some(a), Some(c), Some(f)) => (t, a, c, f),
                _ => return Err(TrustError::OutOfOrder { step: "decryption" }.into()),
            };
        let total = self.fingerprint_sum(fingerprints, task, Step::Fingerprint, (transcript, aggregate, seed), own)?;
        let check = MaskCheck { challenge: Challenge::new(seed), contributions: total };
        let round = self.round.as_mut().ok_or(TrustError::OutOfOrder { step: "decryption" })?;
        let Some(masks) = round.masks.take() else {
            return Err(TrustError::OutOfOrder { step: "decryption" }.into());
        };
        // The share is made (the masks checked: forged ones are refused before the slot is
        // spent) but leaves this function only once the ledger has recorded the slot durably; if
        // recording fails, the share is dropped unsent.
        let share = round.party.decryption_share(&masks, &check)?;
        self.ledger.spend(&self.settings.federation_id, context.session.round, context.kind)?;
        Ok(share.encode()?)
    }

    /// The result step: commits to the decrypted sum received, with fresh randomness. Section:
    /// the decrypted sum.
    pub fn sum_challenge(&mut self, task: &Task) -> Result<Vec<u8>> {
        let [sum] = sections::<1>(task, "result")?;
        let limits = WireLimits { max_values: (self.settings.max_upload_bytes / 8) as usize };
        let sum = DecryptedSum::decode(sum, &PARAMS_V2, &limits)?;
        let round = self.round(task, "result")?;
        let transcript = round.transcript.ok_or(TrustError::OutOfOrder { step: "result" })?;
        match round.aggregate {
            Some(aggregate) if aggregate == sum.aggregate_digest() => {}
            Some(_) => {
                let why = "a decrypted sum of other aggregate masks".into();
                return Err(TrustError::WrongStatement { signer: self.me.clone(), why }.into());
            }
            None => return Err(TrustError::OutOfOrder { step: "result" }.into()),
        }
        let digest = sum.digest();
        let nonce = round.sum_nonce;
        round.sum = Some((sum, digest));
        let context = round.context.clone();
        Ok(self.sign(&context, Claim::SumChallenge { transcript, sum: digest, nonce }))
    }

    /// The attestation step: the output challenge from every participant's randomness, and this
    /// hospital's fingerprint of its bodies minus its decryption share under it. Section: the
    /// signed sum commitments.
    pub fn sum_fingerprint(&mut self, task: &Task) -> Result<Vec<u8>> {
        let [challenges] = sections::<1>(task, "attestation")?;
        let round = self.round(task, "attestation")?;
        let (transcript, sum) = match (&round.transcript, &round.sum) {
            (Some(t), Some((_, s))) => (*t, *s),
            _ => return Err(TrustError::OutOfOrder { step: "attestation" }.into()),
        };
        let own_nonce = round.sum_nonce;
        let seed = self.joint_seed(challenges, task, Step::SumChallenge, (transcript, sum, own_nonce))?;
        let round = self.round(task, "attestation")?;
        let fingerprint = round.party.output_fingerprint(&Challenge::new(seed))?;
        round.sum_challenge = Some(seed);
        round.sum_fingerprint = Some(fingerprint);
        let context = round.context.clone();
        let claim = Claim::SumFingerprint { transcript, sum, challenge: seed, fingerprint: fingerprint.to_bytes() };
        Ok(self.sign(&context, claim))
    }

    /// The acceptance step: checks the decrypted sum against the sum of the signed output
    /// fingerprints, applies the agreed rule to it and endorses the result. Section: the signed
    /// output fingerprints.
    pub fn endorse(&mut self, task: &Task) -> Result<Vec<u8>> {
        let [fingerprints] = sections::<1>(task, "acceptance")?;
        let round = self.round(task, "acceptance")?;
        let (transcript, sum, seed, own) =
            match (&round.transcript, &round.sum, round.sum_challenge, round.sum_fingerprint) {
                (Some(t), Some((_, s)), Some(c), Some(f)) => (*t, *s, c, f),
                _ => return Err(TrustError::OutOfOrder { step: "acceptance" }.into()),
            };
        let total = self.fingerprint_sum(fingerprints, task, Step::SumFingerprint, (transcript, sum, seed), own)?;
        let check = MaskCheck { challenge: Challenge::new(seed), contributions: total };
        let round = self.round.as_ref().ok_or(TrustError::OutOfOrder { step: "acceptance" })?;
        let (Some((decrypted, _)), Some(server)) = (&round.sum, &round.server) else {
            return Err(TrustError::OutOfOrder { step: "acceptance" }.into());
        };
        let words = round.party.check_sum(decrypted, &check)?;
        let settings = &self.settings;
        let global = params_from_bytes(&round.model, settings.spec.param_count())?;
        let inputs = SessionInputs {
            spec: &settings.spec,
            schema_id: &settings.schema_id,
            layout: &settings.layout,
            codec: &self.codec,
            session: round.context.session,
            kind: round.context.kind,
            contributors: round.members.len(),
            global: &global,
            server,
            figures: &round.figures,
            privacy: settings.privacy.map(|p| (p, settings.train.epochs)),
        };
        let output = session_output(&inputs, &words)
            .map_err(|why| FederationError::Task(format!("the checked sum of session {}: {why}", inputs.session)))?;
        let context = round.context.clone();
        let members = round.members.clone();
        let start = round.start.clone().ok_or(TrustError::OutOfOrder { step: "acceptance" })?;
        let (model, server) = output.state_bytes;
        let end = Held { digest: output.state, model, server };
        // Endorsing a session again (its aggregator resumed) keeps the file of the one before.
        let earlier = self.verified.as_ref().and_then(|v| {
            if v.session == context.session { v.files.get(1).copied() } else { v.files.first().copied() }
        });
        let files: Vec<[u8; 32]> = [output.file_digest].into_iter().chain(earlier).collect();
        self.verified = Some(Verified { session: context.session, states: [start, end], files });
        if let Some(exploration) = output.exploration {
            self.explored = Some((exploration, members));
        }
        Ok(self.sign(&context, Claim::Output { transcript, sum, state: output.state, file: output.file_digest }))
    }

    /// Checks the final model file: one this hospital computed (after the last session it
    /// endorsed, or the one before when the aggregator gave that one up); or one endorsed for
    /// the final session (the evaluation, or the last training round when the evaluation was
    /// given up) by at least its minimum number of hospitals of its roster.
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
        let last_training =
            kind == SessionKind::Train && training_ends(session.round, settings.rounds, settings.patience, best);
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
    /// this hospital's minimum number of them.
    fn endorsed_by_roster(&self, bundle: &[u8], what: Endorsed) -> Result<Vec<Statement>> {
        let statements = check_endorsements(bundle, what)?;
        for (signed, statement) in &statements {
            self.consortium.check(signed)?;
            if statement.federation_id != self.settings.federation_id {
                let why = format!("endorsed for federation {:?}", statement.federation_id);
                return Err(TrustError::NotEndorsed { why }.into());
            }
        }
        if statements.len() < self.min_hospitals {
            let why = format!("{} endorsements, this hospital requires {}", statements.len(), self.min_hospitals);
            return Err(TrustError::NotEndorsed { why }.into());
        }
        Ok(statements.into_iter().map(|(_, statement)| statement).collect())
    }

    /// The joint seed of a challenge step: every participant committed to the same transcript
    /// and `target` digest (this hospital's own commitment among them), and the seed is drawn
    /// from all their randomness. `expected` is (transcript, target, own nonce).
    fn joint_seed(
        &self,
        bytes: &[u8],
        task: &Task,
        step: Step,
        expected: ([u8; 32], [u8; 32], [u8; 32]),
    ) -> Result<[u8; 32]> {
        let (transcript, target, own_nonce) = expected;
        let round = self.round.as_ref().filter(|r| Some(r.context.session) == task.session);
        let round = round.ok_or(TrustError::OutOfOrder { step: step.name() })?;
        let statements = self.relayed(bytes, &round.context, step)?;
        Self::same_members(&round.members, &statements)?;
        let mut nonces = Vec::new();
        for (signer, claim) in statements {
            let (t, a, nonce) = match claim {
                Claim::Challenge { transcript, aggregate, nonce } => (transcript, aggregate, nonce),
                Claim::SumChallenge { transcript, sum, nonce } => (transcript, sum, nonce),
                _ => unreachable_step()?,
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
        task: &Task,
        step: Step,
        expected: ([u8; 32], [u8; 32], [u8; 32]),
        own: MaskFingerprint,
    ) -> Result<MaskFingerprint> {
        let (transcript, target, seed) = expected;
        let round = self.round.as_ref().filter(|r| Some(r.context.session) == task.session);
        let round = round.ok_or(TrustError::OutOfOrder { step: step.name() })?;
        let statements = self.relayed(bytes, &round.context, step)?;
        Self::same_members(&round.members, &statements)?;
        let mut total = MaskFingerprint::default();
        for (signer, claim) in statements {
            let (t, a, challenge, fingerprint) = match claim {
                Claim::Fingerprint { transcript, aggregate, challenge, fingerprint } => {
                    (transcript, aggregate, challenge, fingerprint)
                }
                Claim::SumFingerprint { transcript, sum, challenge, fingerprint } => {
                    (transcript, sum, challenge, fingerprint)
                }
                _ => unreachable_step()?,
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
fn target_name(step: Step) -> &'static str {
    match step {
        Step::SumChallenge | Step::SumFingerprint => "decrypted sum",
        _ => "aggregate masks",
    }
}

/// A statement of the wrong step can only come from a bug: `relayed` checked the step.
fn unreachable_step<T>() -> Result<T> {
    Err(FederationError::Task("a relayed statement changed its step after it was checked".into()))
}

/// The task's sections, exactly `N` of them.
fn sections<'a, const N: usize>(task: &'a Task, what: &'static str) -> Result<&'a [Bytes; N]> {
    task.sections
        .as_slice()
        .try_into()
        .map_err(|_| ProtocolError::Sections { task: what, got: task.sections.len(), expected: N }.into())
}
