//! An in-memory federation (the `testing` feature): one [`Coordinator`], its hospitals'
//! [`Participant`]s and a filter on every task between them, with the heavy actions carried out
//! the way the aggregator's shell does — real threshold encryption, no socket, no clock (time is
//! handed in), no disk (the ledgers are in memory, snapshots acknowledged at once).
//!
//! An attack on the hospitals is a [`TaskFilter`]: it sees every task before its hospital does
//! and may change it, as a lying aggregator would. No production type carries a hook.
//!
//! Keys and randomness are made for tests only: [`TestKey`] signs with ring (which draws its
//! ECDSA nonces from the operating system, as a hospital's shell does), and [`TestRng`] is a
//! seeded stream, the same every run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use core::time::Duration;
use fedcare_core::{Codec, CodecConfig, ModelSpec, ServerOptimizerConfig, TrainConfig};
use fedcare_crypto::{Crs, PARAMS_V2, WireLimits};
use rand_core::{Infallible, TryCryptoRng, TryRng};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};

use crate::checkpoint::{Checkpoint, Snapshot};
use crate::coordinator::{Action, Coordinator, Event, decrypt_sum};
use crate::error::TrustError;
use crate::error::{Error, ProtocolError, Refusal};
use crate::ledger::{Entry, Ledger, MemoryLedger, Release};
use crate::params::params_from_bytes;
use crate::participant::{Agreed, Participant, Reply, Trust};
use crate::roster::Consortium;
use crate::settings::Agreement;
use crate::signing::{PublicKey, Signer};
use crate::{
    ContributionLayout, FederationPlan, FederationSettings, Job, LocalEvaluation, LocalSubgroups, NodeId, SessionId,
    SessionKind, SetupCounts, Task, TaskKind, UploadHeader, UploadKind,
};
use fedcare_core::subgroup::SubgroupHistograms;

/// A test hospital's signing key: ECDSA P-256 made fresh, never written anywhere.
pub struct TestKey {
    pair: EcdsaKeyPair,
    // Tests only: ring's ECDSA needs its own random source for keys and nonces.
    #[allow(clippy::disallowed_types)]
    random: ring::rand::SystemRandom,
}

impl core::fmt::Debug for TestKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "TestKey({})", self.public_key().fingerprint())
    }
}

impl TestKey {
    /// A fresh key.
    ///
    /// # Panics
    /// When the operating system has no random source (a test cannot run without one).
    #[allow(clippy::disallowed_types, clippy::disallowed_methods)]
    pub fn generate() -> Self {
        let random = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &random).expect("a random source");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &random)
            .expect("the key just made");
        Self { pair, random }
    }
}

impl Signer for TestKey {
    fn public_key(&self) -> PublicKey {
        PublicKey::from_point(self.pair.public_key().as_ref().to_vec())
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        self.pair.sign(&self.random, message).map(|s| s.as_ref().to_vec()).map_err(|_| "no random source".to_owned())
    }
}

/// A seeded random stream (BLAKE3's output from a seed): the tests' challenge randomness.
#[derive(Debug, Clone)]
pub struct TestRng(blake3::OutputReader);

impl TestRng {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Self {
        Self(blake3::Hasher::new().update(&seed.to_le_bytes()).finalize_xof())
    }
}

impl TryRng for TestRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut bytes = [0; 4];
        self.0.fill(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut bytes = [0; 8];
        self.0.fill(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.0.fill(dst);
        Ok(())
    }
}

impl TryCryptoRng for TestRng {}

/// A random source that always fails, as an operating system without one would.
#[derive(Debug, Clone, Copy, Default)]
pub struct FailingRng;

/// What [`FailingRng`] fails with.
#[derive(Debug, thiserror::Error)]
#[error("no random source (a test's failing source)")]
pub struct NoRandomness;

impl TryRng for FailingRng {
    type Error = NoRandomness;

    fn try_next_u32(&mut self) -> Result<u32, NoRandomness> {
        Err(NoRandomness)
    }

    fn try_next_u64(&mut self) -> Result<u64, NoRandomness> {
        Err(NoRandomness)
    }

    fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), NoRandomness> {
        Err(NoRandomness)
    }
}

impl TryCryptoRng for FailingRng {}

/// The federation id of every test plan.
pub const FEDERATION: &str = "fed";

/// A node id.
///
/// # Panics
/// When `name` cannot be a node id (a test's mistake).
pub fn node(name: &str) -> NodeId {
    NodeId::new(name).expect("a valid node name")
}

/// The settings of a small federation: logistic regression on 3 inputs, FedAvg, 4 evaluation
/// bins, `rounds` training rounds, at least 2 hospitals.
///
/// # Panics
/// Never: the model and codec are fixed and valid.
pub fn test_settings(rounds: u32) -> FederationSettings {
    let spec = ModelSpec::mlp(3, &[]).expect("a valid model");
    let codec: CodecConfig = PARAMS_V2.codec_config();
    let layout = ContributionLayout {
        params: spec.param_count(),
        bins: 4,
        numeric: 0,
        top_k: Vec::new(),
        explore: Vec::new(),
        subgroups: Vec::new(),
    };
    let max_upload_bytes = layout.max_upload_bytes();
    FederationSettings {
        federation_id: FEDERATION.into(),
        spec,
        codec,
        train: TrainConfig::default(),
        layout,
        min_hospitals: 2,
        max_upload_bytes,
        test_fraction: 0.2,
        schema_id: "test/v1".into(),
        rounds,
        patience: None,
        server: ServerOptimizerConfig::FedAvg { lr: 1.0 },
        job: Job::Train,
        privacy: None,
        subgroup_min_cell: fedcare_core::explore::DEFAULT_MIN_CELL,
        boosting: None,
        digest: crate::SettingsDigest(*blake3::hash(b"fedcare test settings").as_bytes()),
    }
}

/// The plan of a federation of `hospitals` under `settings`: seed 0, a 30 s join timeout and
/// 10 s phases.
pub fn test_plan(hospitals: &[&str], settings: FederationSettings) -> FederationPlan {
    FederationPlan {
        settings,
        hospitals: hospitals.iter().map(|h| node(h)).collect(),
        seed: 0,
        join_timeout: Duration::from_secs(30),
        phase_timeout: Duration::from_secs(10),
    }
}

/// A coordinator of `plan` whose CRS counts up from 1, started at `now`.
///
/// # Panics
/// When the plan cannot run (a test's mistake).
pub fn test_coordinator(plan: FederationPlan, now: Instant) -> Coordinator {
    resumed_coordinator(plan, None, now)
}

/// [`test_coordinator`] resuming from `checkpoint` when given.
///
/// # Panics
/// When the plan cannot run or the checkpoint is not of it (a test's mistake).
fn resumed_coordinator(plan: FederationPlan, checkpoint: Option<Checkpoint>, now: Instant) -> Coordinator {
    let mut next = 0u128;
    let crs = Box::new(move || {
        next += 1;
        Crs(next)
    });
    Coordinator::new(Arc::new(plan), checkpoint, now, crs).expect("a plan that runs")
}

/// One fresh key for each of `names`, and the roster that pins them all.
pub fn test_keys(names: &[&str]) -> (Vec<Arc<TestKey>>, Consortium) {
    let keys: Vec<Arc<TestKey>> = names.iter().map(|_| Arc::new(TestKey::generate())).collect();
    let members: BTreeMap<_, _> =
        names.iter().zip(&keys).map(|(n, k)| (n.to_string(), k.public_key().fingerprint())).collect();
    (keys, Consortium::new(members))
}

/// A ledger in memory that a test can read while the participant holds it.
#[derive(Debug, Clone, Default)]
pub struct SharedLedger(Arc<Mutex<MemoryLedger>>);

impl Ledger for SharedLedger {
    fn entries(&self) -> Vec<Entry> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).entries()
    }

    fn record(&mut self, entry: Entry) -> Result<(), TrustError> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).record(entry)
    }
}

/// One hospital's side: the real participant logic (checks, signatures, crypto, a ledger in
/// memory) and a fixed contribution (10 training rows, 2 held out, an update of 0.25 per
/// parameter, training loss 0.5, two held-out rows scored perfectly).
#[derive(Debug)]
pub struct Hospital {
    /// Its node id's name.
    pub name: String,
    /// What it trusts: its key, its roster, and the federation and job it agreed to (a training
    /// federation [`FEDERATION`]).
    pub trust: Trust,
    participant: Option<Participant>,
    ledger: SharedLedger,
    rng: TestRng,
}

impl Hospital {
    /// Hospital `name` signing with `key`, pinning `consortium`.
    pub fn new(name: &str, key: Arc<TestKey>, consortium: Consortium) -> Self {
        let seed = u64::from_le_bytes(blake3::hash(name.as_bytes()).as_bytes()[..8].try_into().unwrap_or_default());
        Self {
            name: name.into(),
            trust: Trust { key, consortium, agreed: Agreement::train(FEDERATION) },
            participant: None,
            ledger: SharedLedger::default(),
            rng: TestRng::new(seed),
        }
    }

    /// The hospital's participant for `settings`, made at its first task (as at its join).
    ///
    /// # Panics
    /// When the participant refuses the settings or its key (a test's mistake).
    pub fn participant(&mut self, settings: &FederationSettings) -> &mut Participant {
        self.try_participant(settings).expect("a participant of the test federation")
    }

    /// The hospital's participant for `settings`, made at its first task (as at its join), or
    /// why it refuses them.
    pub fn try_participant(&mut self, settings: &FederationSettings) -> Result<&mut Participant, Error> {
        let participant = match self.participant.take() {
            Some(kept) => kept,
            None => Participant::new(node(&self.name), &self.trust, settings.clone(), Box::new(self.ledger.clone()))?,
        };
        Ok(self.participant.insert(participant))
    }

    /// Forgets the participant (a hospital that restarted: what it held in memory is gone, its
    /// ledger stays and its schedule resumes from it).
    pub fn restart(&mut self) {
        self.participant = None;
    }

    /// Forgets the participant and its ledger (a hospital whose state directory was lost, or a
    /// new one in the same name: it holds no state of its own).
    pub fn lose_state(&mut self) {
        self.participant = None;
        self.ledger = SharedLedger::default();
    }

    /// The releases this hospital made decryption shares for, in order.
    pub fn ledger(&self) -> Vec<Release> {
        self.ledger.releases()
    }

    /// The bytes this hospital uploads for `task`.
    ///
    /// # Panics
    /// When the hospital refuses the task.
    pub fn answer(&mut self, settings: &FederationSettings, task: &Task) -> (UploadKind, Vec<u8>) {
        self.try_answer(settings, task).unwrap_or_else(|e| panic!("{} refused a {:?} task: {e}", self.name, task.kind))
    }

    /// What this hospital uploads for `task`, or why it refuses.
    ///
    /// # Panics
    /// On a task that asks for no upload (`Wait`, `Done`, `Failed`).
    pub fn try_answer(&mut self, settings: &FederationSettings, task: &Task) -> Result<(UploadKind, Vec<u8>), Error> {
        let mut rng = self.rng.clone();
        let name = self.name.clone();
        let participant = self.try_participant(settings)?;
        let reply = participant.handle(task, &mut rng)?;
        let upload = match reply {
            Reply::Upload(kind, bytes) => (kind, bytes),
            Reply::Contribute(agreed) => {
                let words = contribution(settings, &agreed)?;
                (UploadKind::Contribution, participant.contribute(agreed.session, &words)?)
            }
            other => panic!("{name} cannot upload for a {:?} task: {other:?}", task.kind),
        };
        self.rng = rng;
        Ok(upload)
    }
}

/// The encoded words of the test hospitals' fixed contribution to a session of `kind`.
fn contribution(settings: &FederationSettings, agreed: &Agreed) -> Result<Vec<u64>, Error> {
    let (kind, model, figures) = (agreed.kind, &agreed.model, &agreed.figures);
    let layout = &settings.layout;
    let evaluation = LocalEvaluation::of_logits(&[-1.0, 2.0], &[0.0, 1.0], layout.bins);
    let values = match kind {
        SessionKind::Train if settings.boosting.is_some() => boosting_contribution(settings, agreed, &evaluation)?,
        SessionKind::Setup => {
            layout.setup_vector(&SetupCounts { train_rows: 10, test_rows: 2, ..SetupCounts::default() })?
        }
        SessionKind::Train => {
            params_from_bytes(model, layout.params)?;
            let delta = vec![0.25; layout.params];
            let weight = 10.0 / figures.train_rows as f64;
            layout.train_vector(&delta, 0.5, weight, &evaluation, settings.tail_scale(figures))?
        }
        SessionKind::Evaluate => {
            let none = LocalSubgroups {
                last: SubgroupHistograms::zeros(&layout.subgroups, layout.subgroup_bins()),
                kept: None,
                noise: Vec::new(),
            };
            layout.evaluate_vector(&evaluation, &none, settings.tail_scale(figures))?
        }
        SessionKind::Explore => {
            let mut counts = fedcare_core::explore::ExploreCounts::zeros(&layout.explore);
            counts.rows = 12;
            layout.explore_vector(&counts)?
        }
    };
    let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Ok(Codec::new(settings.codec)?.encode(&values, 1.0)?.words)
}

/// The test hospitals' fixed contribution to a boosting training session: 10 rows and 3
/// positives in the base session; at each level, every measured node's rows all in the first bin
/// of every input (so no split is possible and each tree is one leaf, grown in one session).
fn boosting_contribution(
    settings: &FederationSettings,
    agreed: &Agreed,
    evaluation: &LocalEvaluation,
) -> Result<Vec<f64>, Error> {
    use crate::boosting::{BoostingContribution, Step, boosting_vector};
    use fedcare_core::gbdt::{Cell, FINE_BINS, NodeHistogram};
    let missing = |field| ProtocolError::Missing { message: "boosting session", field };
    let boosting = settings.boosting.as_ref().ok_or(missing("the boosting settings"))?;
    let state = agreed.boosting.as_ref().ok_or(missing("the boosting state"))?;
    let cuts = boosting.cuts(&agreed.figures.feature_stats, settings.spec.input_width(), state)?;
    let step = state.step(boosting);
    let contribution = match &step {
        Step::Base { quantiled } => BoostingContribution::Base {
            rows: 10,
            positives: 3,
            fine: vec![(0..FINE_BINS as u64).collect(); *quantiled],
        },
        Step::Level(growing) => {
            let node = |_| {
                let mut histogram = NodeHistogram::zeros(cuts.cells());
                histogram.cells[0] = Cell { grad: 5 << 16, hess: 2 << 16, count: 10 };
                histogram
            };
            let histograms = growing.measured().into_iter().map(node).collect();
            BoostingContribution::Level { evaluation: step.evaluates().then(|| evaluation.clone()), histograms }
        }
        Step::Done => return Err(missing("a tree to grow").into()),
    };
    Ok(boosting_vector(&settings.layout, &step, cuts.cells(), &contribution, settings.tail_scale(&agreed.figures))?)
}

/// Uploads `bytes` as `kind` from `name` the way the shell does (admit, verify, accept).
///
/// # Panics
/// When the coordinator admits an upload without asking for its verification.
pub fn upload(
    c: &mut Coordinator,
    name: &str,
    session: Option<SessionId>,
    kind: UploadKind,
    bytes: &[u8],
    now: Instant,
) -> Result<Vec<Action>, Refusal> {
    let federation_id = c.federation_id().to_owned();
    let header = UploadHeader { federation_id, session, node: name.into(), kind: Some(kind) };
    let mut actions = c.handle(Event::UploadStarted { node: node(name), header }, now)?;
    let Some(Action::Verify(ticket)) = actions.pop() else { panic!("no verification asked") };
    let upload = ticket.verify(bytes, &WireLimits::default())?;
    c.handle(Event::UploadVerified { ticket, upload, bytes: bytes.len() as u64 }, now)
}

/// Carries out the heavy actions the way the shell does; returns the snapshots made. Every
/// snapshot but the federation's final one is acknowledged as written at once (the tests
/// acknowledge the final one themselves, [`acknowledge`]).
///
/// # Panics
/// When the coordinator refuses its own shell's report (a bug).
pub fn carry_out(c: &mut Coordinator, actions: Vec<Action>, now: Instant) -> Vec<Snapshot> {
    let mut snapshots = Vec::new();
    let mut queue = actions;
    while let Some(action) = queue.pop() {
        let more = match action {
            Action::FinishAggregate { session, builder } => {
                c.handle(Event::AggregateReady { session, result: builder.finish() }, now).expect("a report")
            }
            Action::DecryptSum { session, aggregate, decryption } => {
                let result = decrypt_sum(&aggregate, &decryption);
                c.handle(Event::SumDecrypted { session, result }, now).expect("a report")
            }
            Action::Persist(snapshot) => {
                let more = if snapshot.checkpoint.next.is_some() {
                    let bytes = snapshot.model.to_bytes().map(Bytes::from).map_err(|e| e.to_string());
                    c.handle(Event::Persisted { result: bytes }, now).expect("a report")
                } else {
                    Vec::new()
                };
                snapshots.push(*snapshot);
                more
            }
            Action::Verify(_) | Action::Finished => Vec::new(),
        };
        queue.extend(more);
    }
    snapshots
}

/// Reports `snapshots` written, in order.
///
/// # Panics
/// When the coordinator refuses the report (a bug).
pub fn acknowledge(c: &mut Coordinator, snapshots: Vec<Snapshot>, now: Instant) {
    for snapshot in snapshots {
        let bytes = snapshot.model.to_bytes().map(Bytes::from).map_err(|e| e.to_string());
        c.handle(Event::Persisted { result: bytes }, now).expect("a report");
    }
}

/// A coordinator of `names` under `settings` at `now`, every hospital joined and the first session
/// started.
///
/// # Panics
/// When the coordinator refuses a join (a test's mistake).
fn joined_coordinator(
    names: &[&str],
    settings: &FederationSettings,
    checkpoint: Option<Checkpoint>,
    now: Instant,
) -> Coordinator {
    let mut coordinator = resumed_coordinator(test_plan(names, settings.clone()), checkpoint, now);
    for name in names {
        let join = Event::Join { node: node(name), federation_id: settings.federation_id.clone() };
        coordinator.handle(join, now).expect("a join of an enrolled hospital");
    }
    coordinator.handle(Event::Tick, now).expect("a tick");
    coordinator
}

/// Changes a task before its hospital sees it (a lying aggregator).
pub type TaskFilter = Box<dyn FnMut(&NodeId, &mut Task)>;

/// How one hospital's part in an in-memory federation ended.
#[derive(Debug)]
pub enum Ending {
    /// It received the final model.
    Done,
    /// It refused a task, with the error that names why (it then left the federation).
    Refused(Error),
    /// The federation stopped, with the aggregator's message.
    Stopped(String),
    /// Still taking part when the driver stopped.
    Running,
}

/// An in-memory federation: a coordinator, its hospitals and the filter between them.
pub struct Driver {
    /// The coordinator.
    pub coordinator: Coordinator,
    /// The hospitals, in the plan's order.
    pub hospitals: Vec<Hospital>,
    /// How each hospital's part ended so far.
    pub endings: Vec<Ending>,
    settings: FederationSettings,
    filter: Option<TaskFilter>,
    now: Instant,
    /// Every snapshot the coordinator asked its shell to write.
    pub snapshots: Vec<Snapshot>,
}

impl Driver {
    /// A federation of `names` under `settings` at time `now`, every hospital joined and the
    /// first session started; `filter` (a lying aggregator) sees every task first.
    pub fn new(names: &[&str], settings: FederationSettings, filter: Option<TaskFilter>, now: Instant) -> Self {
        Self::with_strangers(names, &[], settings, filter, now)
    }

    /// [`Self::new`] with `strangers` enrolled by the aggregator and taking part as hospitals
    /// too (their rosters list everyone), though no roster of `names` lists them.
    ///
    /// # Panics
    /// When the coordinator refuses a join (a test's mistake).
    pub fn with_strangers(
        names: &[&str],
        strangers: &[&str],
        settings: FederationSettings,
        filter: Option<TaskFilter>,
        now: Instant,
    ) -> Self {
        let everyone: Vec<&str> = names.iter().chain(strangers).copied().collect();
        let (keys, everyone_roster) = test_keys(&everyone);
        let mut consortium = everyone_roster.clone();
        consortium.members.retain(|name, _| names.contains(&name.as_str()));
        let coordinator = joined_coordinator(&everyone, &settings, None, now);
        let hospitals: Vec<Hospital> = everyone
            .iter()
            .zip(keys)
            .map(|(name, key)| {
                let roster = if names.contains(name) { consortium.clone() } else { everyone_roster.clone() };
                Hospital::new(name, key, roster)
            })
            .collect();
        let endings = hospitals.iter().map(|_| Ending::Running).collect();
        Self { coordinator, hospitals, endings, settings, filter, now, snapshots: Vec::new() }
    }

    /// The same hospitals (keys, rosters and ledgers) in the next federation, of `settings` (its
    /// own federation id, which each of them agreed to): a new coordinator, every hospital
    /// joined, its participant made afresh; `filter` sees every task first.
    pub fn next_federation(self, settings: FederationSettings, filter: Option<TaskFilter>) -> Self {
        let names: Vec<&str> = self.hospitals.iter().map(|h| h.name.as_str()).collect();
        let coordinator = joined_coordinator(&names, &settings, None, self.now);
        let mut hospitals = self.hospitals;
        for hospital in &mut hospitals {
            hospital.trust.agreed = Agreement::train(&settings.federation_id);
            hospital.restart();
        }
        let endings = hospitals.iter().map(|_| Ending::Running).collect();
        Self { coordinator, hospitals, endings, settings, filter, now: self.now, snapshots: Vec::new() }
    }

    /// The aggregator forks the federation: a second coordinator goes on from `checkpoint` (one
    /// of [`Self::snapshots`]) over `names` alone, every one of them joined, and takes the first
    /// one's place; the other hospitals are not enrolled in it.
    pub fn fork(&mut self, checkpoint: Checkpoint, names: &[&str]) {
        self.coordinator = joined_coordinator(names, &self.settings, Some(checkpoint), self.now);
    }

    /// Hospital `index` is cut off (its network fails): the coordinator takes it as gone; the
    /// hospital keeps its state and ledger, and its tasks are refused until it joins again.
    ///
    /// # Panics
    /// When the coordinator refuses the departure (a test's mistake).
    pub fn cut_off(&mut self, index: usize) {
        let federation_id = self.settings.federation_id.clone();
        let name = node(&self.hospitals[index].name);
        let leave = Event::Leave { node: name, federation_id, reason: "cut off".into() };
        let actions = self.coordinator.handle(leave, self.now).expect("a departure of a joined hospital");
        let snapshots = carry_out(&mut self.coordinator, actions, self.now);
        self.snapshots.extend(snapshots);
    }

    /// Hospital `index` restarts (what it held in memory is gone, its ledger stays) and joins
    /// again, as a hospital's shell does when its process starts.
    ///
    /// # Panics
    /// When the coordinator refuses the join (a test's mistake).
    pub fn restart(&mut self, index: usize) {
        self.hospitals[index].restart();
        let federation_id = self.settings.federation_id.clone();
        let join = Event::Join { node: node(&self.hospitals[index].name), federation_id };
        let actions = self.coordinator.handle(join, self.now).expect("a join of an enrolled hospital");
        let snapshots = carry_out(&mut self.coordinator, actions, self.now);
        self.snapshots.extend(snapshots);
    }

    /// Every hospital still taking part answers its current task once (through the filter).
    /// A hospital that refuses leaves the federation, as a hospital's shell does.
    pub fn phase(&mut self) {
        for index in 0..self.hospitals.len() {
            if !matches!(self.endings[index], Ending::Running) {
                continue;
            }
            let name = self.hospitals[index].name.clone();
            let Ok(mut task) = self.coordinator.task_for(&node(&name)) else { continue };
            if let Some(filter) = &mut self.filter {
                filter(&node(&name), &mut task);
            }
            match task.kind {
                TaskKind::Wait => continue,
                TaskKind::Done => {
                    self.endings[index] =
                        match self.hospitals[index].participant(&self.settings).handle(&task, &mut TestRng::new(0)) {
                            Ok(Reply::Done(_)) => Ending::Done,
                            Ok(other) => Ending::Stopped(format!("{other:?}")),
                            Err(error) => Ending::Refused(error),
                        };
                    let sent = Event::TaskSent { node: node(&name), session: None, bytes: 0, done: true };
                    let _ = self.coordinator.handle(sent, self.now);
                    continue;
                }
                TaskKind::Failed => {
                    self.endings[index] = Ending::Stopped(task.message.clone());
                    continue;
                }
                _ => {}
            }
            match self.hospitals[index].try_answer(&self.settings, &task) {
                Ok((kind, bytes)) => {
                    // A refused upload is the round moving on: the hospital fetches its next task.
                    if let Ok(actions) = upload(&mut self.coordinator, &name, task.session, kind, &bytes, self.now) {
                        let snapshots = carry_out(&mut self.coordinator, actions, self.now);
                        self.snapshots.extend(snapshots);
                    }
                }
                Err(error) => {
                    let federation_id = self.settings.federation_id.clone();
                    let leave = Event::Leave { node: node(&name), federation_id, reason: error.to_string() };
                    let actions = self.coordinator.handle(leave, self.now).unwrap_or_default();
                    let snapshots = carry_out(&mut self.coordinator, actions, self.now);
                    self.snapshots.extend(snapshots);
                    self.endings[index] = Ending::Refused(error);
                }
            }
        }
    }

    /// Runs phases until no hospital is still taking part, or `max_phases` have run; the final
    /// snapshot is acknowledged as soon as it is made.
    pub fn run(&mut self, max_phases: usize) {
        for _ in 0..max_phases {
            if self.endings.iter().all(|e| !matches!(e, Ending::Running)) {
                return;
            }
            let made = self.snapshots.len();
            self.phase();
            // The federation's final snapshot is acknowledged as soon as it is made.
            let finals: Vec<Snapshot> =
                self.snapshots[made..].iter().filter(|s| s.checkpoint.next.is_none()).cloned().collect();
            acknowledge(&mut self.coordinator, finals, self.now);
        }
    }

    /// The federation's settings.
    pub fn settings(&self) -> &FederationSettings {
        &self.settings
    }
}
