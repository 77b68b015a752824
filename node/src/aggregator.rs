//! The aggregator: the gRPC service and the round state machine. It holds no secret key.
//!
//! Each round runs as a session `KeyGen -> Contribute -> Decrypt` among the active hospitals:
//! it collects public key shares, publishes the collective key and the global model, sums the
//! encrypted contributions, collects decryption shares of the sum, and decodes the sum into the
//! FedAvg mean update (and the aggregate evaluation). Before training a setup session sums the
//! hospitals' row counts, feature moments (the federated feature scaling) and the rows per hash
//! bucket of every `top_k` column (from which it chooses each column's slots, see
//! [`crate::top_k`]); every later task carries both. After training an evaluation session
//! scores the final model.
//!
//! A hospital that misses a phase deadline is dropped and the round restarts as a new attempt
//! with fresh keys among the rest, while at least `min_hospitals` remain; a hospital that joins
//! again (same certificate) takes part from the next session. Every upload is checked against
//! the current session (federation, round, attempt, node, phase) and refused with a clear
//! status otherwise, leaving the round intact.

use core::pin::Pin;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use core::time::Duration;
use fedcare_core::{Codec, ModelFile, ModelSpec, ServerOptimizer};
use fedcare_proto::v1::{self, federation_server::Federation};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::checkpoint::{Checkpoint, write_atomically};
use crate::config::AggregatorConfig;
use crate::contribution::{CalibrationBin, GlobalEvaluation, decode_setup};
use crate::crypto::{
    Aggregate, AggregateBuilder, Ciphertext, Crs, DecryptionShare, KeyShareCollector, PARAMS_V1, PartyId,
    PublicKeyShare, WireLimits, WireMessage,
};
use crate::ingest::{ColumnStats, Moments};
use crate::top_k::{TopKShape, choose_top_k};
use crate::transfer::{Assembler, chunks, params_to_bytes};

/// Calibration bins in each evaluated [`RoundRecord`].
pub const CALIBRATION_BINS: usize = 10;
/// Most points of the ROC curve in each evaluated [`RoundRecord`].
pub const ROC_POINTS: usize = 101;

/// What one completed session measured; one line of `metrics.jsonl`. Fields added after the
/// first release default when a line lacks them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// 0: setup; 1..=rounds: training; rounds + 1: final evaluation.
    pub round: u32,
    /// `setup`, `train` or `evaluate`.
    pub kind: String,
    /// Restarts this round needed.
    pub attempt: u32,
    /// Hospitals in the session.
    pub hospitals: usize,
    /// Weighted mean local training loss (training rounds).
    pub train_loss: Option<f64>,
    /// Mean log loss of the model the session started from, on all held-out rows.
    pub test_loss: Option<f64>,
    /// AUROC of that model on all held-out rows (binned scores).
    pub auroc: Option<f64>,
    /// AUPRC (average precision) of that model on all held-out rows (binned scores).
    #[serde(default)]
    pub auprc: Option<f64>,
    /// Held-out rows.
    #[serde(default)]
    pub test_rows: Option<u64>,
    /// Positives among the held-out rows.
    #[serde(default)]
    pub test_positives: Option<u64>,
    /// Ten equal-width calibration bins of that model's probabilities, merged from the score
    /// histogram (see [`GlobalEvaluation::calibration`]); empty without an evaluation.
    #[serde(default)]
    pub calibration: Vec<CalibrationBin>,
    /// That model's ROC curve, `[FPR, TPR]` points thinned to at most [`ROC_POINTS`]; empty
    /// without an evaluation or without both classes.
    #[serde(default)]
    pub roc: Vec<[f64; 2]>,
    /// Seconds from the session's start to its decoded result.
    pub seconds: f64,
    /// Bytes the hospitals uploaded in the session.
    pub bytes_up: u64,
    /// Bytes of task payloads sent to the hospitals in the session.
    pub bytes_down: u64,
}

/// How a federation ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The final global parameters.
    pub global: Vec<f32>,
    /// Every completed session, in order.
    pub records: Vec<RoundRecord>,
    /// Why it stopped early, if it did.
    pub failure: Option<String>,
    /// The federated mean and standard deviation of each numeric feature.
    pub feature_stats: Vec<ColumnStats>,
    /// Per `top_k` column, the buckets chosen in the setup session, in slot order.
    pub top_k: Vec<Vec<u32>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoundKind {
    Setup,
    Train,
    Evaluate,
}

impl RoundKind {
    fn proto(self) -> v1::RoundKind {
        match self {
            Self::Setup => v1::RoundKind::Setup,
            Self::Train => v1::RoundKind::Train,
            Self::Evaluate => v1::RoundKind::Evaluate,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Train => "train",
            Self::Evaluate => "evaluate",
        }
    }
    fn code(next: Option<(u32, Self)>) -> u8 {
        match next {
            Some((_, Self::Setup)) => 0,
            Some((_, Self::Train)) => 1,
            Some((_, Self::Evaluate)) => 2,
            None => 3,
        }
    }
    fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::Setup),
            1 => Some(Self::Train),
            2 => Some(Self::Evaluate),
            _ => None,
        }
    }
}

enum Phase {
    KeyGen { collector: KeyShareCollector },
    Contribute { payload: [Arc<Vec<u8>>; 2], builder: AggregateBuilder },
    Decrypt { aggregate: Aggregate, payload: Arc<Vec<u8>>, shares: BTreeMap<String, DecryptionShare> },
}

impl Phase {
    fn task_kind(&self) -> v1::TaskKind {
        match self {
            Self::KeyGen { .. } => v1::TaskKind::KeyGen,
            Self::Contribute { .. } => v1::TaskKind::Contribute,
            Self::Decrypt { .. } => v1::TaskKind::Decrypt,
        }
    }
}

struct Session {
    round: u32,
    attempt: u32,
    kind: RoundKind,
    crs: Crs,
    participants: BTreeSet<String>,
    submitted: BTreeSet<String>,
    phase: Phase,
    started: Instant,
    deadline: Instant,
    bytes_up: u64,
    bytes_down: u64,
}

struct State {
    joined: BTreeSet<String>,
    active: BTreeSet<String>,
    started_at: Instant,
    session: Option<Session>,
    global: Vec<f32>,
    server: ServerOptimizer,
    totals: (u64, u64),
    /// Federated mean and standard deviation of each numeric feature (from setup).
    feature_stats: Vec<ColumnStats>,
    /// Per `top_k` column, the chosen buckets in slot order (from setup).
    top_k: Vec<Vec<u32>>,
    records: Vec<RoundRecord>,
    /// Nodes with an upload in flight (one at a time each).
    uploading: BTreeSet<String>,
    /// The session to run next (from the checkpoint after a restart); `None` when all are done.
    next: Option<(u32, RoundKind)>,
    finished: Option<Result<(), String>>,
}

struct Shared {
    config: AggregatorConfig,
    federation: v1::FederationConfig,
    spec: ModelSpec,
    codec: Codec,
    bins: usize,
    max_upload: u64,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

/// The aggregator role.
#[derive(Clone)]
pub struct Aggregator {
    shared: Arc<Shared>,
}

/// Values in the vector of each round kind.
fn vector_len(kind: RoundKind, params: usize, bins: usize, numeric: usize, top_k: &[TopKShape]) -> usize {
    let tail = 1 + 2 * bins;
    match kind {
        RoundKind::Setup => crate::contribution::setup_len(numeric, top_k),
        RoundKind::Train => params + 1 + tail,
        RoundKind::Evaluate => tail,
    }
}

impl Aggregator {
    /// An aggregator for `config` (validated here).
    pub fn new(config: AggregatorConfig) -> Result<Self> {
        config.validate()?;
        let spec = config.spec()?;
        let codec = Codec::new(PARAMS_V1.codec_config())?;
        let bins = config.eval_bins as usize;
        let numeric = config.numeric_features as usize;
        let longest = vector_len(RoundKind::Train, spec.param_count(), bins, numeric, &config.top_k).max(vector_len(
            RoundKind::Setup,
            0,
            bins,
            numeric,
            &config.top_k,
        ));
        let max_upload = (PARAMS_V1.bins(longest) * PARAMS_V1.polynomial_size + longest) as u64 * 8 + 4096;
        let federation = config.federation_config(max_upload);
        std::fs::create_dir_all(&config.out_dir)
            .with_context(|| format!("cannot create {}", config.out_dir.display()))?;
        let mut state = State {
            joined: BTreeSet::new(),
            active: BTreeSet::new(),
            started_at: Instant::now(),
            session: None,
            global: fedcare_core::rng::init_params(&spec, config.seed),
            server: ServerOptimizer::new(config.server_optimizer()?, spec.param_count())?,
            totals: (0, 0),
            feature_stats: Vec::new(),
            top_k: Vec::new(),
            records: Vec::new(),
            uploading: BTreeSet::new(),
            next: Some((0, RoundKind::Setup)),
            finished: None,
        };
        if let Some(checkpoint) = Checkpoint::load(&config.out_dir)? {
            ensure!(
                checkpoint.federation_id == config.federation_id && checkpoint.param_count == spec.param_count() as u64,
                "{} holds a checkpoint of another federation or model; use another out_dir",
                config.out_dir.display()
            );
            tracing::info!(round = checkpoint.next_round, "resuming from the checkpoint");
            state.global = checkpoint.global;
            state.server = checkpoint.server;
            state.totals = checkpoint.totals;
            state.feature_stats =
                checkpoint.feature_stats.iter().map(|&(mean, std)| ColumnStats { mean, std }).collect();
            if checkpoint.next_kind != RoundKind::code(Some((0, RoundKind::Setup))) {
                ensure!(
                    checkpoint.top_k.len() == config.top_k.len(),
                    "the checkpoint chose buckets for {} top_k columns, the configuration has {}",
                    checkpoint.top_k.len(),
                    config.top_k.len()
                );
                for (shape, chosen) in config.top_k.iter().zip(&checkpoint.top_k) {
                    shape.check_choice(chosen).context("the checkpoint's top_k buckets")?;
                }
            }
            state.top_k = checkpoint.top_k;
            state.records = checkpoint.records;
            state.next = RoundKind::from_code(checkpoint.next_kind).map(|kind| (checkpoint.next_round, kind));
            if state.next.is_none() {
                state.finished = Some(Ok(()));
            }
        }
        let (changed, _) = watch::channel(0);
        Ok(Self {
            shared: Arc::new(Shared {
                config,
                federation,
                spec,
                codec,
                bins,
                max_upload,
                state: Mutex::new(state),
                changed,
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a handler panicked mid-update: the state may be inconsistent,
        // and going on could decrypt something it should not. Stop loudly.
        self.shared.state.lock().expect("aggregator state lock poisoned")
    }

    fn notify(&self) {
        self.shared.changed.send_modify(|v| *v += 1);
    }

    /// A receiver that changes whenever the federation moves on (for progress displays).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changed.subscribe()
    }

    /// The sessions completed so far.
    pub fn records(&self) -> Vec<RoundRecord> {
        self.state().records.clone()
    }

    /// The gRPC service, with explicit message-size limits.
    pub fn service(&self) -> v1::federation_server::FederationServer<Self> {
        v1::federation_server::FederationServer::new(self.clone())
            .max_decoding_message_size(fedcare_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(fedcare_proto::MAX_MESSAGE_BYTES)
    }

    /// Serves on `listener` with mTLS until the federation ends; returns the outcome.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        tls: tonic::transport::ServerTlsConfig,
    ) -> Result<Outcome> {
        self.serve_until(listener, tls, core::future::pending()).await
    }

    /// Serves until the federation ends or `shutdown` completes (then the running session is
    /// abandoned: the checkpoint of the last completed one stays, and a restart reruns the round
    /// with fresh keys).
    pub async fn serve_until(
        &self,
        listener: tokio::net::TcpListener,
        tls: tonic::transport::ServerTlsConfig,
        shutdown: impl core::future::Future<Output = ()>,
    ) -> Result<Outcome> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        // Limits so that one slow or malicious client cannot stall or exhaust the aggregator:
        // every request ends within 60 s, few streams per connection, dead peers are noticed.
        let server = tonic::transport::Server::builder()
            .tls_config(tls)
            .context("invalid server TLS configuration")?
            .timeout(Duration::from_secs(60))
            .concurrency_limit_per_connection(8)
            .max_concurrent_streams(16)
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(20)))
            .tcp_keepalive(Some(Duration::from_secs(60)))
            .add_service(self.service())
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stopped.await;
            });
        let server = tokio::spawn(server);
        let outcome = tokio::select! {
            outcome = self.drive() => outcome,
            () = shutdown => {
                tracing::warn!("shutting down: the running session is abandoned, the checkpoint stays");
                let state = self.state();
                Outcome {
                    global: state.global.clone(),
                    records: state.records.clone(),
                    failure: Some("interrupted by a shutdown signal".into()),
                    feature_stats: state.feature_stats.clone(),
                    top_k: state.top_k.clone(),
                }
            }
        };
        // Give the hospitals a moment to fetch their final task before closing.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = stop.send(());
        server.await.context("server task failed")?.context("server failed")?;
        Ok(outcome)
    }

    /// Drives the federation (start, deadlines) until it ends; returns the outcome.
    pub async fn drive(&self) -> Outcome {
        let join_timeout = Duration::from_secs(self.shared.config.join_timeout_secs);
        let mut changed = self.subscribe();
        loop {
            {
                let mut state = self.state();
                if state.finished.is_some() {
                    break;
                }
                let now = Instant::now();
                if state.session.is_none() {
                    let all = state.joined.len() == self.shared.config.hospitals.len();
                    let enough = state.joined.len() >= self.shared.config.min_hospitals as usize;
                    if all || (enough && now >= state.started_at + join_timeout) {
                        state.active = state.joined.clone();
                        if let Some((round, kind)) = state.next {
                            self.start_session(&mut state, round, kind, 0);
                        }
                    } else if now >= state.started_at + join_timeout {
                        state.finished = Some(Err(format!(
                            "only {} of the {} hospitals needed joined within {} s",
                            state.joined.len(),
                            self.shared.config.min_hospitals,
                            join_timeout.as_secs()
                        )));
                    }
                } else if state.session.as_ref().is_some_and(|s| now >= s.deadline) {
                    self.abort_session(&mut state);
                }
            }
            self.notify();
            let _ = tokio::time::timeout(Duration::from_millis(100), changed.changed()).await;
        }
        self.notify();
        let state = self.state();
        Outcome {
            global: state.global.clone(),
            records: state.records.clone(),
            failure: state.finished.clone().and_then(Result::err),
            feature_stats: state.feature_stats.clone(),
            top_k: state.top_k.clone(),
        }
    }

    fn start_session(&self, state: &mut State, round: u32, kind: RoundKind, attempt: u32) {
        let crs = Crs::random();
        let now = Instant::now();
        tracing::info!(round, attempt, kind = kind.name(), hospitals = state.active.len(), "session starts");
        state.session = Some(Session {
            round,
            attempt,
            kind,
            crs,
            participants: state.active.clone(),
            submitted: BTreeSet::new(),
            phase: Phase::KeyGen { collector: KeyShareCollector::new(PARAMS_V1, crs) },
            started: now,
            deadline: now + Duration::from_secs(self.shared.config.phase_timeout_secs),
            bytes_up: 0,
            bytes_down: 0,
        });
    }

    fn abort_session(&self, state: &mut State) {
        let Some(session) = state.session.take() else { return };
        let missing: Vec<String> = session.participants.difference(&session.submitted).cloned().collect();
        tracing::warn!(round = session.round, attempt = session.attempt, ?missing, "phase deadline missed: dropping");
        for node in &missing {
            state.active.remove(node);
        }
        let min = self.shared.config.min_hospitals as usize;
        if state.active.len() < min {
            state.finished = Some(Err(format!(
                "round {}: {} hospitals remain after dropping {missing:?}, at least {min} are needed",
                session.round,
                state.active.len()
            )));
            return;
        }
        self.start_session(state, session.round, session.kind, session.attempt + 1);
    }

    /// Moves the session to its next phase once every participant has submitted.
    fn advance(&self, state: &mut State) -> Result<(), Status> {
        let internal = |e: crate::crypto::CryptoError| Status::internal(e.to_string());
        let Some(session) = state.session.as_mut() else { return Ok(()) };
        if session.submitted != session.participants {
            return Ok(());
        }
        session.submitted.clear();
        session.deadline = Instant::now() + Duration::from_secs(self.shared.config.phase_timeout_secs);
        let numeric = self.shared.config.numeric_features as usize;
        let len = vector_len(
            session.kind,
            self.shared.spec.param_count(),
            self.shared.bins,
            numeric,
            &self.shared.config.top_k,
        );
        // Take the finished phase out (an empty key-generation phase stands in meanwhile).
        let finished = core::mem::replace(
            &mut session.phase,
            Phase::KeyGen { collector: KeyShareCollector::new(PARAMS_V1, session.crs) },
        );
        match finished {
            Phase::KeyGen { collector } => {
                let key = collector.collective_key().map_err(internal)?;
                let key_bytes = Arc::new(key.encode());
                // The setup session sums row counts: it needs no model.
                let model = Arc::new(if session.kind == RoundKind::Setup {
                    Vec::new()
                } else {
                    params_to_bytes(&state.global)
                });
                let builder = AggregateBuilder::new(PARAMS_V1, &key, len);
                session.phase = Phase::Contribute { payload: [key_bytes, model], builder };
            }
            Phase::Contribute { builder, .. } => {
                let aggregate = builder.finish().map_err(internal)?;
                let payload = Arc::new(aggregate.masks().encode());
                session.phase = Phase::Decrypt { aggregate, payload, shares: BTreeMap::new() };
            }
            Phase::Decrypt { aggregate, shares, .. } => {
                let shares: Vec<DecryptionShare> = shares.values().cloned().collect();
                let words = aggregate.combine(&shares).map_err(internal)?;
                let parties = session.participants.len() as u32;
                let integers = self
                    .shared
                    .codec
                    .decode_sum_integers(&words, parties)
                    .map_err(|e| Status::internal(format!("the decrypted sum does not decode: {e}")))?;
                let scale = self.shared.codec.resolution();
                let values: Vec<f64> = integers.iter().map(|&i| i as f64 * scale).collect();
                let session = state.session.take().ok_or_else(|| Status::internal("session vanished"))?;
                self.finish_session(state, session, &values).map_err(|e| Status::internal(format!("{e:#}")))?;
            }
        }
        Ok(())
    }

    fn finish_session(&self, state: &mut State, session: Session, values: &[f64]) -> Result<()> {
        let params = self.shared.spec.param_count();
        let bins = self.shared.bins;
        let mut record = RoundRecord {
            round: session.round,
            kind: session.kind.name().to_string(),
            attempt: session.attempt,
            hospitals: session.participants.len(),
            train_loss: None,
            test_loss: None,
            auroc: None,
            auprc: None,
            test_rows: None,
            test_positives: None,
            calibration: Vec::new(),
            roc: Vec::new(),
            seconds: session.started.elapsed().as_secs_f64(),
            bytes_up: session.bytes_up,
            bytes_down: session.bytes_down,
        };
        let evaluation_tail = match session.kind {
            RoundKind::Setup => {
                let shapes = &self.shared.config.top_k;
                let totals = decode_setup(values, self.shared.config.numeric_features as usize, shapes)?;
                state.totals = (totals.train_rows, totals.test_rows);
                state.feature_stats = totals.moments.iter().map(Moments::stats).collect();
                state.top_k = totals
                    .bucket_counts
                    .iter()
                    .zip(shapes)
                    .map(|(counts, shape)| choose_top_k(counts, shape.k as usize))
                    .collect();
                tracing::info!(
                    train_rows = totals.train_rows,
                    test_rows = totals.test_rows,
                    "federated row counts, feature statistics and top_k buckets"
                );
                None
            }
            RoundKind::Train => {
                let mean: Vec<f32> = values[..params].iter().map(|&v| v as f32).collect();
                state.server.apply(&mut state.global, &mean)?;
                record.train_loss = Some(values[params]);
                Some(&values[params + 1..])
            }
            RoundKind::Evaluate => Some(values),
        };
        if let Some(tail) = evaluation_tail {
            let evaluation = GlobalEvaluation::from_tail(tail, bins, state.totals.1)?;
            record.test_loss = Some(evaluation.log_loss);
            record.auroc = evaluation.auroc();
            record.auprc = evaluation.auprc();
            let positives: u64 = evaluation.positives.iter().sum();
            record.test_rows = Some(positives + evaluation.negatives.iter().sum::<u64>());
            record.test_positives = Some(positives);
            record.calibration = evaluation.calibration(CALIBRATION_BINS);
            record.roc = evaluation.roc_curve(ROC_POINTS);
        }
        let out = &self.shared.config.out_dir;
        tracing::info!(round = record.round, kind = record.kind, auroc = ?record.auroc, auprc = ?record.auprc, "session done");
        state.records.push(record);
        let rounds = self.shared.config.rounds;
        state.next = match session.kind {
            RoundKind::Setup => Some((1, RoundKind::Train)),
            RoundKind::Train if session.round < rounds => Some((session.round + 1, RoundKind::Train)),
            RoundKind::Train => Some((rounds + 1, RoundKind::Evaluate)),
            RoundKind::Evaluate => None,
        };
        // metrics.jsonl is rewritten whole from the records, so a crash never leaves a line twice.
        let mut lines = String::new();
        for record in &state.records {
            lines += &(serde_json::to_string(record)? + "\n");
        }
        write_atomically(&out.join("metrics.jsonl"), lines.as_bytes())?;
        let mut model = ModelFile::new(self.shared.spec.clone(), state.global.clone(), &self.shared.config.schema_id)?;
        model.metrics.insert("round".into(), f64::from(session.round));
        model.feature_scaling = state.feature_stats.iter().map(|s| (s.mean, s.std)).collect();
        model.category_buckets = state.top_k.clone();
        if let Some(auroc) = state.records.last().and_then(|r| r.auroc) {
            model.metrics.insert("auroc".into(), auroc);
        }
        if let Some(auprc) = state.records.last().and_then(|r| r.auprc) {
            model.metrics.insert("auprc".into(), auprc);
        }
        write_atomically(&out.join("model.bin"), &model.to_bytes()?)?;
        Checkpoint {
            federation_id: self.shared.config.federation_id.clone(),
            param_count: state.global.len() as u64,
            next_round: state.next.map_or(0, |(round, _)| round),
            next_kind: RoundKind::code(state.next),
            global: state.global.clone(),
            server: state.server.clone(),
            totals: state.totals,
            feature_stats: state.feature_stats.iter().map(|s| (s.mean, s.std)).collect(),
            top_k: state.top_k.clone(),
            records: state.records.clone(),
        }
        .save(out)?;
        match state.next {
            Some((round, kind)) => self.start_session(state, round, kind, 0),
            None => state.finished = Some(Ok(())),
        }
        Ok(())
    }

    fn check_federation(&self, id: &str) -> Result<(), Status> {
        if id != self.shared.config.federation_id {
            return Err(Status::failed_precondition(format!("unknown federation {id:?}")));
        }
        Ok(())
    }

    /// The enrolled peer of a request that must come after its `Join` (a restarted aggregator
    /// makes every node join again, which also resets what the node believes it has done).
    fn joined_peer<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let node = self.enrolled_peer(request)?;
        if !self.state().joined.contains(&node) {
            return Err(Status::failed_precondition("join first"));
        }
        Ok(node)
    }

    fn enrolled_peer<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let certs = request.peer_certs().ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        let leaf = certs.first().ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        let id = crate::tls::node_id_from_der(leaf.as_ref()).map_err(|e| Status::unauthenticated(e.to_string()))?;
        if !self.shared.config.hospitals.contains(&id) {
            return Err(Status::permission_denied(format!("{id:?} is not enrolled in this federation")));
        }
        Ok(id)
    }

    /// The task for `node` and its payload sections, or `None` if there is nothing for it.
    fn task_for(&self, state: &State, node: &str) -> (v1::TaskHeader, Vec<Arc<Vec<u8>>>) {
        let mut header = v1::TaskHeader {
            kind: v1::TaskKind::Wait as i32,
            total_train_rows: state.totals.0,
            total_test_rows: state.totals.1,
            feature_means: state.feature_stats.iter().map(|s| s.mean).collect(),
            feature_stds: state.feature_stats.iter().map(|s| s.std).collect(),
            top_k: state.top_k.iter().map(|chosen| v1::TopKChoice { buckets: chosen.clone() }).collect(),
            ..Default::default()
        };
        if let Some(result) = &state.finished {
            header.kind = if result.is_ok() { v1::TaskKind::Done } else { v1::TaskKind::Failed } as i32;
            header.message = result.clone().err().unwrap_or_default();
            let model = Arc::new(params_to_bytes(&state.global));
            header.section_sizes = vec![model.len() as u64];
            return (header, vec![model]);
        }
        let Some(session) = &state.session else { return (header, Vec::new()) };
        if !session.participants.contains(node) || session.submitted.contains(node) {
            return (header, Vec::new());
        }
        header.kind = session.phase.task_kind() as i32;
        header.session = Some(v1::Session { round: session.round, attempt: session.attempt });
        header.round_kind = session.kind.proto() as i32;
        header.crs = session.crs.0.to_le_bytes().to_vec();
        let sections: Vec<Arc<Vec<u8>>> = match &session.phase {
            Phase::KeyGen { .. } => Vec::new(),
            Phase::Contribute { payload, .. } => payload.to_vec(),
            Phase::Decrypt { payload, .. } => vec![payload.clone()],
        };
        header.section_sizes = sections.iter().map(|s| s.len() as u64).collect();
        (header, sections)
    }

    fn accept_upload(&self, node: &str, header: &v1::UploadHeader, bytes: &[u8]) -> Result<(), Status> {
        let mut state = self.state();
        let limits = WireLimits { max_values: self.shared.max_upload as usize / 8 };
        let session = state.session.as_mut().ok_or_else(|| Status::failed_precondition("no round is running"))?;
        let expected = v1::Session { round: session.round, attempt: session.attempt };
        if header.session.as_ref() != Some(&expected) {
            return Err(Status::failed_precondition(format!(
                "upload for round {:?}, the current round is {}.{}",
                header.session.as_ref().map(|s| (s.round, s.attempt)),
                expected.round,
                expected.attempt
            )));
        }
        if !session.participants.contains(node) {
            return Err(Status::permission_denied(format!("{node} is not part of round {}", session.round)));
        }
        if session.submitted.contains(node) {
            return Err(Status::already_exists(format!("{node} already uploaded in this phase")));
        }
        let party = PartyId::new(node).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let wrong_kind = |phase: &str| Status::failed_precondition(format!("the round is in its {phase} phase"));
        let invalid = |e: crate::crypto::CryptoError| Status::invalid_argument(e.to_string());
        let kind = v1::UploadKind::try_from(header.kind).unwrap_or(v1::UploadKind::Unspecified);
        match &mut session.phase {
            Phase::KeyGen { collector } => {
                if kind != v1::UploadKind::KeyShare {
                    return Err(wrong_kind("key generation"));
                }
                let share = PublicKeyShare::decode(bytes, &PARAMS_V1, &limits).map_err(invalid)?;
                if share.party() != &party {
                    return Err(Status::permission_denied("key share made for another party"));
                }
                collector.add(share).map_err(invalid)?;
            }
            Phase::Contribute { builder, .. } => {
                if kind != v1::UploadKind::Contribution {
                    return Err(wrong_kind("contribution"));
                }
                let ciphertext = Ciphertext::decode(bytes, &PARAMS_V1, &limits).map_err(invalid)?;
                builder.add(party, &ciphertext).map_err(invalid)?;
            }
            Phase::Decrypt { shares, .. } => {
                if kind != v1::UploadKind::DecryptionShare {
                    return Err(wrong_kind("decryption"));
                }
                let share = DecryptionShare::decode(bytes, &PARAMS_V1, &limits).map_err(invalid)?;
                if share.party() != &party {
                    return Err(Status::permission_denied("decryption share made for another party"));
                }
                shares.insert(node.to_string(), share);
            }
        }
        session.submitted.insert(node.to_string());
        session.bytes_up += bytes.len() as u64;
        let result = self.advance(&mut state);
        if let Err(status) = &result {
            tracing::error!(%status, "the round cannot go on: restarting it with fresh keys");
            if let Some(session) = state.session.take() {
                let (round, kind, attempt) = (session.round, session.kind, session.attempt + 1);
                self.start_session(&mut state, round, kind, attempt);
            }
        }
        drop(state);
        self.notify();
        Ok(())
    }
}

/// A node's one upload in flight; released when dropped.
struct UploadSlot<'a> {
    aggregator: &'a Aggregator,
    node: String,
}

impl<'a> UploadSlot<'a> {
    fn take(aggregator: &'a Aggregator, node: &str) -> Result<Self, Status> {
        if !aggregator.state().uploading.insert(node.to_string()) {
            return Err(Status::resource_exhausted(format!("{node} already has an upload in flight")));
        }
        Ok(Self { aggregator, node: node.to_string() })
    }
}

impl Drop for UploadSlot<'_> {
    fn drop(&mut self) {
        self.aggregator.state().uploading.remove(&self.node);
    }
}

type TaskStream = Pin<Box<dyn Stream<Item = Result<v1::TaskChunk, Status>> + Send>>;

#[tonic::async_trait]
impl Federation for Aggregator {
    async fn join(&self, request: Request<v1::JoinRequest>) -> Result<Response<v1::JoinReply>, Status> {
        let node = self.enrolled_peer(&request)?;
        self.check_federation(&request.get_ref().federation_id)?;
        {
            let mut state = self.state();
            state.joined.insert(node.clone());
            if state.session.is_some() && state.active.insert(node.clone()) {
                tracing::info!(%node, "rejoined: takes part from the next session");
            }
        }
        tracing::info!(%node, "joined");
        self.notify();
        Ok(Response::new(v1::JoinReply { node_id: node, config: Some(self.shared.federation.clone()) }))
    }

    type NextTaskStream = TaskStream;

    async fn next_task(&self, request: Request<v1::TaskRequest>) -> Result<Response<Self::NextTaskStream>, Status> {
        let node = self.joined_peer(&request)?;
        let request = request.into_inner();
        self.check_federation(&request.federation_id)?;
        let after = request.after.map(|s| (s.round, s.attempt, request.after_kind));
        let wait = Duration::from_millis(u64::from(request.wait_ms.min(30_000)));
        let mut changed = self.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        let (header, sections) = loop {
            let (header, sections) = self.task_for(&self.state(), &node);
            let key = header.session.as_ref().map(|s| (s.round, s.attempt, header.kind));
            let fresh = header.kind != v1::TaskKind::Wait as i32 && (key.is_none() || key != after);
            if fresh || tokio::time::Instant::now() >= deadline {
                break if fresh {
                    (header, sections)
                } else {
                    (v1::TaskHeader { kind: v1::TaskKind::Wait as i32, ..header }, Vec::new())
                };
            }
            let _ = tokio::time::timeout_at(deadline, changed.changed()).await;
        };
        let bytes: u64 = sections.iter().map(|s| s.len() as u64).sum();
        if bytes > 0
            && let Some(session) = self.state().session.as_mut()
        {
            session.bytes_down += bytes;
        }
        let slices: Vec<&[u8]> = sections.iter().map(|s| s.as_slice()).collect();
        let mut messages = vec![Ok(v1::TaskChunk { part: Some(v1::task_chunk::Part::Header(header)) })];
        messages.extend(
            chunks(&slices).into_iter().map(|c| Ok(v1::TaskChunk { part: Some(v1::task_chunk::Part::Data(c)) })),
        );
        Ok(Response::new(Box::pin(tokio_stream::iter(messages))))
    }

    async fn upload(&self, request: Request<Streaming<v1::UploadChunk>>) -> Result<Response<v1::UploadReply>, Status> {
        let node = self.joined_peer(&request)?;
        let mut stream = request.into_inner();
        let header = match stream.next().await {
            Some(Ok(v1::UploadChunk { part: Some(v1::upload_chunk::Part::Header(header)) })) => header,
            Some(Err(status)) => return Err(status),
            _ => return Err(Status::invalid_argument("an upload starts with its header")),
        };
        self.check_federation(&header.federation_id)?;
        if header.node_id != node {
            return Err(Status::permission_denied(format!(
                "header names node {:?}, the certificate {node:?}",
                header.node_id
            )));
        }
        let _in_flight = UploadSlot::take(self, &node)?;
        let mut assembler = Assembler::new(header.total_bytes, self.shared.max_upload)?;
        while let Some(chunk) = stream.next().await {
            match chunk?.part {
                Some(v1::upload_chunk::Part::Data(data)) => assembler.push(&data)?,
                _ => return Err(Status::invalid_argument("a second header in one upload")),
            }
        }
        let bytes = assembler.finish()?;
        self.accept_upload(&node, &header, &bytes)?;
        Ok(Response::new(v1::UploadReply {}))
    }

    async fn status(&self, request: Request<v1::StatusRequest>) -> Result<Response<v1::StatusReply>, Status> {
        self.enrolled_peer(&request)?;
        let state = self.state();
        let (session, phase) = match &state.session {
            Some(s) => (Some(v1::Session { round: s.round, attempt: s.attempt }), s.phase.task_kind()),
            None if state.finished.is_some() => (None, v1::TaskKind::Done),
            None => (None, v1::TaskKind::Wait),
        };
        Ok(Response::new(v1::StatusReply {
            session,
            phase: phase as i32,
            active_hospitals: state.active.iter().cloned().collect(),
            rounds_done: state.records.iter().filter(|r| r.kind == "train").count() as u32,
        }))
    }
}
