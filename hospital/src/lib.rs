//! # fedcare-hospital
//!
//! A hospital node: joins the federation over mTLS, and for each task trains locally, encrypts
//! its weighted update, and makes decryption shares — only after checking everything the
//! aggregator relayed against its own roster, transcript and ledger ([`crate::participant`]).
//!
//! Its patient rows never leave it; what leaves is a public key share, one ciphertext and one
//! decryption share per session. At the end it receives the same model file the aggregator
//! wrote (model, federated feature scaling, `top_k` buckets and metrics), so it can score its
//! own patients with it. A hospital that cannot go on for a reason of its own (its data does
//! not fit the federation, its trainer failed) tells the aggregator with `Leave`, so that the
//! round goes on without it at once instead of at the phase deadline.
//!
//! In a federation with differential privacy it trains with DP-SGD under a key it draws from the
//! operating system every round, adds exact discrete Gaussian noise to the pooled statistics it
//! contributes (setup counts and moments, evaluation histograms; [`pooled_noise`]), and leaves
//! before a release that would bring its patients' ε, over all its federations, past its own
//! `max_epsilon` (its participant charges each release to its ledger:
//! [`fedcare_protocol::roster::Consortium::privacy_charge`]).

#![forbid(unsafe_code)]

pub mod auto_trainer;
mod boosting;
pub mod config;
pub mod exploration;
mod local_data;
pub mod participant;
mod pooled_noise;
pub mod trainer;

pub use fedcare_net::{error, identity, signing, tls};
pub use fedcare_protocol as protocol;
pub use fedcare_protocol::{convert, transfer};

use core::time::Duration;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use cpu_time::ThreadTime;
use fedcare_core::explore::ExploreReport;
use fedcare_core::privacy::noise::NoiseKey;
use fedcare_core::{Codec, Dataset, ModelFile, Network};
use fedcare_proto::v1::{self, federation_client::FederationClient};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

pub use local_data::{HospitalData, LocalData};
pub use trainer::{CpuTrainer, GpuNodeTrainer, Trainer};

use crate::error::{FederationError, ProtocolError, Result};
use crate::identity::InProcessLink;
use crate::participant::{Agreed, FinalFile, HospitalTrust, Participant, Reply};
use crate::protocol::params::params_from_bytes;
use crate::protocol::{
    Agreement, ContributionLayout, FederationSettings, Job, LocalEvaluation, LocalSubgroups, NodeId, PublicFigures,
    SessionId, SessionKind, Task, TaskKind, UploadHeader, UploadKind,
};
use crate::transfer::{Assembler, chunks, split_sections};
use fedcare_core::subgroup::SubgroupHistograms;
use fedcare_protocol::exploration::{ReportContext, report};
use pooled_noise::PooledSampler;

/// A data error as the shells' error ([`FederationError::Data`]; [`FederationError::data_error`]
/// takes it back out).
pub fn data_error(error: fedcare_data::DataError) -> FederationError {
    FederationError::Data(Box::new(error))
}

/// A GPU trainer's error as the shells' error ([`FederationError::Trainer`];
/// [`FederationError::trainer_error`] takes it back out).
pub fn trainer_error(error: fedcare_gpu_trainer::GpuError) -> FederationError {
    FederationError::Trainer(Box::new(error))
}

/// What a hospital measured, for progress tables.
#[derive(Debug, Default, Clone)]
pub struct HospitalStats {
    /// CPU time spent training.
    pub train: Duration,
    /// CPU time spent in key generation, encryption and decryption shares.
    pub crypto: Duration,
    /// Bytes uploaded.
    pub bytes_up: u64,
    /// Bytes of task payloads downloaded.
    pub bytes_down: u64,
}

/// How a hospital reaches the aggregator.
#[derive(Debug, Clone)]
pub enum Connection {
    /// Over the network with mTLS.
    Tls {
        /// `https://host:port`.
        url: String,
        /// TLS with the federation's CA and this hospital's identity.
        tls: ClientTlsConfig,
    },
    /// Inside this process (tests, tools), authenticated as `node`.
    InProcess {
        /// The aggregator's in-process link.
        link: InProcessLink,
        /// The name this hospital connects as.
        node: NodeId,
    },
}

/// The final model a hospital receives: the aggregator's `model.bin`, byte for byte; after an
/// exploration, also its report, with this hospital's own figures beside the pooled ones.
#[derive(Debug, Clone, PartialEq)]
pub struct FinalModel {
    /// The model file's bytes.
    pub bytes: Bytes,
    /// The decoded model file.
    pub model: ModelFile,
    /// An exploration's report (what this hospital may write as `explore.json`).
    pub exploration: Option<ExploreReport>,
}

/// A hospital node.
pub struct HospitalNode {
    connection: Connection,
    /// The federation and job this hospital agreed to (its configuration's, never the
    /// aggregator's word).
    agreed: Agreement,
    data: HospitalData,
    trainer: Box<dyn Trainer>,
    trust: HospitalTrust,
    stats: Arc<Mutex<HospitalStats>>,
    /// How long to keep reconnecting to an unreachable aggregator.
    pub reconnect_timeout: Duration,
    /// The protocol state kept across reconnections (an aggregator that restarts resumes a
    /// session's result from what its hospitals hold).
    participant: Option<Participant>,
    /// A boosting federation's binned rows and margins, kept between its sessions.
    boosting: Option<boosting::Cache>,
}

/// How long one `NextTask` call waits for news.
const POLL_MS: u32 = 2000;

type Client = FederationClient<Channel>;

impl HospitalNode {
    /// A node of the federation (and job) it `agreed` to that will train `data` with `trainer`,
    /// trusting what `trust` says.
    pub fn new(
        connection: Connection,
        agreed: Agreement,
        data: HospitalData,
        trainer: Box<dyn Trainer>,
        trust: HospitalTrust,
    ) -> Self {
        Self {
            connection,
            agreed,
            data,
            trainer,
            trust,
            stats: Arc::default(),
            reconnect_timeout: Duration::from_secs(120),
            participant: None,
            boosting: None,
        }
    }

    /// The node's running statistics.
    pub fn stats(&self) -> Arc<Mutex<HospitalStats>> {
        self.stats.clone()
    }

    async fn connect(&self) -> Result<Client> {
        let channel = match &self.connection {
            Connection::Tls { url, tls } => {
                let connect_error = |source| FederationError::Connect { url: url.clone(), source };
                Endpoint::from_shared(url.clone())
                    .map_err(connect_error)?
                    .tls_config(tls.clone())
                    .map_err(connect_error)?
                    .connect_timeout(Duration::from_secs(10))
                    .timeout(Duration::from_secs(300))
                    // A connection cut off by a partition is noticed within about 20 s (a
                    // ping every 10 s, 10 s for its answer), and the node reconnects.
                    .http2_keep_alive_interval(Duration::from_secs(10))
                    .keep_alive_timeout(Duration::from_secs(10))
                    .keep_alive_while_idle(true)
                    .connect()
                    .await
                    .map_err(connect_error)?
            }
            Connection::InProcess { link, node } => link.connect(node).await?,
        };
        Ok(FederationClient::new(channel)
            .max_decoding_message_size(fedcare_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(fedcare_proto::MAX_MESSAGE_BYTES))
    }

    /// Joins and takes part until the federation is done; returns the final model.
    ///
    /// When the aggregator becomes unreachable (it restarted, the network failed) the node
    /// reconnects every second and joins again, for up to `reconnect_timeout`. When it cannot go
    /// on for a reason of its own it tells the aggregator (`Leave`) before returning the error.
    pub async fn run(mut self) -> Result<FinalModel> {
        let mut lost_since: Option<Instant> = None;
        loop {
            match self.take_part(&mut lost_since).await {
                Ok(model) => return Ok(model),
                Err(error) if error.is_connection_loss() => {
                    let since = *lost_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > self.reconnect_timeout {
                        let seconds = self.reconnect_timeout.as_secs();
                        return Err(FederationError::Unreachable { seconds, last: Box::new(error) });
                    }
                    tracing::warn!("lost the aggregator ({error}); reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(error) => {
                    // The aggregator knows when it stopped the federation itself.
                    if !matches!(error, FederationError::Stopped(_)) {
                        self.leave(&error).await;
                    }
                    return Err(error);
                }
            }
        }
    }

    /// Tells the aggregator this node leaves and why (best effort: it may be gone too).
    async fn leave(&self, error: &FederationError) {
        let Ok(mut client) = self.connect().await else { return };
        let request = v1::LeaveRequest { federation_id: self.agreed.federation_id.clone(), reason: error.to_string() };
        if let Err(status) = client.leave(request).await {
            tracing::warn!("could not tell the aggregator this node leaves: {}", status.message());
        }
    }

    async fn take_part(&mut self, lost_since: &mut Option<Instant>) -> Result<FinalModel> {
        let mut client = self.connect().await?;
        let reply = client
            .join(v1::JoinRequest { federation_id: self.agreed.federation_id.clone() })
            .await
            .map_err(|status| FederationError::Rpc { call: "join", status })?
            .into_inner();
        *lost_since = None;
        let node = reply.node_id;
        let config = reply.config.ok_or(ProtocolError::Missing { message: "join reply", field: "configuration" })?;
        let settings = convert::settings_from_proto(&config)?;
        if settings.spec.input_width() != self.data.width() {
            return Err(ProtocolError::Invalid {
                field: "model input width",
                value: settings.spec.input_width().to_string(),
                expected: format!("{} (this hospital's data)", self.data.width()),
            }
            .into());
        }
        let mut local = LocalData::new(&self.data, &settings, &node)?;
        let counts = local.counts();
        tracing::info!(%node, train_rows = counts.train_rows, test_rows = counts.test_rows, trainer = self.trainer.name(), "joined");

        let codec = Codec::new(settings.codec)?;
        let me = NodeId::new(node.as_str())?;
        let mut participant = match self.participant.take() {
            Some(kept) if kept.me() == &me && kept.settings_digest() == settings.digest => kept,
            _ => self.trust.participant(me, &self.agreed, settings.clone())?,
        };
        let result = self.follow_tasks(&mut client, &node, &settings, &codec, &mut local, &mut participant).await;
        self.participant = Some(participant);
        result
    }

    /// Fetches and answers tasks until the federation is done (its final model) or this node
    /// cannot go on.
    async fn follow_tasks(
        &mut self,
        client: &mut Client,
        node: &str,
        settings: &FederationSettings,
        codec: &Codec,
        local: &mut LocalData,
        participant: &mut Participant,
    ) -> Result<FinalModel> {
        let mut after: Option<(SessionId, TaskKind)> = None;
        loop {
            let task = fetch_task(client, &self.agreed.federation_id, after).await?;
            if task.kind == TaskKind::Wait {
                continue;
            }
            let downloaded: u64 = task.sections.iter().map(|s| s.len() as u64).sum();
            self.stats.lock().map(|mut s| s.bytes_down += downloaded).ok();
            let missing = |field| ProtocolError::Missing { message: "task", field };
            let start = ThreadTime::now();
            // The checks and the crypto are CPU-bound: keep them off the async workers' queue.
            // The challenge randomness comes from the operating system; its failure is an error.
            let reply = tokio::task::block_in_place(|| participant.handle(&task, &mut rand::rngs::SysRng))?;
            let upload = match reply {
                Reply::Nothing => None,
                Reply::Upload(kind, bytes) => Some((kind, bytes)),
                Reply::Contribute(agreed) => {
                    self.add_crypto_time(start);
                    let ciphertext = tokio::task::block_in_place(|| {
                        self.contribute(settings, codec, &agreed, local, participant, node)
                    })?;
                    Some((UploadKind::Contribution, ciphertext))
                }
                Reply::Done(file) => {
                    tracing::info!(%node, "federation done");
                    let FinalFile { bytes, model } = *file;
                    let exploration = exploration_report(settings, participant, local, node)?;
                    return Ok(FinalModel { bytes, model, exploration });
                }
                Reply::Stopped(message) => return Err(FederationError::Stopped(message)),
            };
            if task.kind != TaskKind::Contribute {
                self.add_crypto_time(start);
            }
            let session = task.session.ok_or(missing("session"))?;
            if let Some((kind, bytes)) = upload {
                let header = UploadHeader {
                    federation_id: self.agreed.federation_id.clone(),
                    session: Some(session),
                    node: node.to_owned(),
                    kind: Some(kind),
                };
                let sent = bytes.len() as u64;
                match upload_to(client, &header, bytes).await {
                    Ok(()) => {
                        self.stats.lock().map(|mut s| s.bytes_up += sent).ok();
                    }
                    // The round moved on while this node worked (another hospital left or missed
                    // a deadline, and the round restarted): nothing is wrong with this node.
                    Err(FederationError::Rpc { status, .. }) if crate::error::status_is_stale(&status) => {
                        tracing::info!(%node, "the round moved on ({}); fetching the next task", status.message());
                    }
                    Err(error) => return Err(error),
                }
            }
            after = Some((session, task.kind));
        }
    }

    /// Adds the CPU time this thread spent since `start` (CPU time, not wall time: in a simulation
    /// many hospitals share few cores).
    fn add_crypto_time(&self, start: ThreadTime) {
        if let Ok(mut stats) = self.stats.lock() {
            stats.crypto += start.elapsed();
        }
    }

    /// Trains (or evaluates, or counts), encodes and encrypts this hospital's contribution, on
    /// the model and figures every participant agreed to.
    fn contribute(
        &mut self,
        settings: &FederationSettings,
        codec: &Codec,
        agreed: &Agreed,
        local: &mut LocalData,
        participant: &mut Participant,
        node: &str,
    ) -> Result<Vec<u8>> {
        // The participant charged this release to the hospital's privacy budget when it agreed
        // to the session. (An exploration without noise releases exact counts: a hospital with
        // a budget takes no part in one.)
        let (kind, round, figures) = (agreed.kind, agreed.session.round, &agreed.figures);
        let sampler = settings.pooled_noise().map(PooledSampler::new);
        let values = match kind {
            SessionKind::Setup => match &sampler {
                Some(sampler) => {
                    settings.layout.setup_vector(&sampler.setup(local.counts(), &local.moment_bounds())?)?
                }
                None => settings.layout.setup_vector(local.counts())?,
            },
            SessionKind::Explore => {
                let columns = settings.layout.explore_columns(figures);
                let counts = local.explore_counts(&columns, settings.pooled_noise().as_ref())?;
                match &sampler {
                    Some(sampler) => settings.layout.explore_vector(&sampler.explore(&counts)?)?,
                    None => settings.layout.explore_vector(&counts)?,
                }
            }
            SessionKind::Train if settings.boosting.is_some() => {
                let (Some(boosting), Some(state)) = (&settings.boosting, &agreed.boosting) else {
                    return Err(ProtocolError::Missing {
                        message: "boosting session",
                        field: "the trees grown so far",
                    }
                    .into());
                };
                let inputs_per_row = local.inputs_per_row();
                let (train, test, patients) = local.datasets_and_patients(figures)?;
                let start = ThreadTime::now();
                let rows = boosting::Rows { train, test, patients, inputs_per_row };
                let values = boosting::contribution(settings, boosting, state, figures, rows, &mut self.boosting)?;
                if let Ok(mut stats) = self.stats.lock() {
                    stats.train += start.elapsed();
                }
                values
            }
            SessionKind::Train | SessionKind::Evaluate => {
                let global = params_from_bytes(&agreed.model, settings.param_count())?;
                let counted_train_rows = local.counts().train_rows;
                let subgroup_cells = match kind {
                    SessionKind::Evaluate => local.subgroup_cells(&settings.layout.subgroups)?,
                    _ => Vec::new(),
                };
                let (train, test) = local.datasets(figures)?;
                let mut network = Network::new(&settings.spec);
                // Under pooled noise a training round evaluates nothing: its tail is zeros.
                if kind == SessionKind::Train && settings.privacy.is_some_and(|p| !p.evaluates_rounds()) {
                    let evaluation = LocalEvaluation::of_logits(&[], &[], settings.layout.bins);
                    let weight = counted_train_rows as f64 / figures.train_rows as f64;
                    self.train_vector(settings, figures, &global, train, weight, &evaluation, round)?
                } else {
                    let logits = match &agreed.boosting {
                        Some(state) => {
                            boosting::agreed_ensemble(state)?.margins(test.features(), settings.spec.input_width())?
                        }
                        None => network.predict(&global, test.features())?,
                    };
                    let evaluation = local_evaluation(&logits, test, settings.layout.bins, sampler.as_ref())?;
                    if kind == SessionKind::Train {
                        let weight = counted_train_rows as f64 / figures.train_rows as f64;
                        self.train_vector(settings, figures, &global, train, weight, &evaluation, round)?
                    } else {
                        // Under pooled noise there is no kept model before the final evaluation
                        // (the rounds are not evaluated): only the last model's block is released.
                        let kept = match (&agreed.kept, &sampler, &agreed.boosting) {
                            (Some(_), None, Some(state)) => {
                                let kept = boosting::agreed_ensemble(state)?.truncated(state.kept_trees as usize);
                                Some(kept.margins(test.features(), settings.spec.input_width())?)
                            }
                            (Some(kept), None, None) => Some(network.predict(kept, test.features())?),
                            _ => None,
                        };
                        let scores = SubgroupScores { cells: &subgroup_cells, last: &logits, kept: kept.as_deref() };
                        let subgroups = local_subgroups(&settings.layout, &scores, test, sampler.as_ref())?;
                        settings.layout.evaluate_vector(&evaluation, &subgroups, settings.tail_scale(figures))?
                    }
                }
            }
        };
        let values: Vec<f32> = values.into_iter().map(|v| v as f32).collect();
        let encoded = codec.encode(&values, 1.0)?;
        if encoded.clipped > 0 {
            if matches!(kind, SessionKind::Setup | SessionKind::Explore) {
                return Err(ProtocolError::Invalid {
                    field: "setup counts",
                    value: format!("{} values out of range", encoded.clipped),
                    expected: "row counts and feature sums that fit the codec".into(),
                }
                .into());
            }
            tracing::warn!(%node, clipped = encoded.clipped, "update values clipped to the codec's range");
        }
        let start = ThreadTime::now();
        let ciphertext = participant.contribute(agreed.session, &encoded.words)?;
        self.add_crypto_time(start);
        Ok(ciphertext)
    }

    #[allow(clippy::too_many_arguments)]
    fn train_vector(
        &mut self,
        settings: &FederationSettings,
        figures: &PublicFigures,
        global: &[f32],
        train: &Dataset,
        weight: f64,
        evaluation: &LocalEvaluation,
        round: u32,
    ) -> Result<Vec<f64>> {
        if figures.train_rows == 0 {
            return Err(ProtocolError::Missing { message: "training task", field: "total training rows" }.into());
        }
        let mut local = global.to_vec();
        let mut config = settings.train;
        if config.pos_weight == 0.0 {
            config.pos_weight = train.balanced_pos_weight();
        }
        config.seed = settings.train.seed.wrapping_add(u64::from(round));
        let start = ThreadTime::now();
        let report = match settings.privacy.and_then(|privacy| privacy.dp_sgd) {
            // A fresh secret key every round: nobody else can replay the sampling or the noise.
            Some(dp_sgd) => {
                let mut seed = [0u8; 8];
                getrandom::fill(&mut seed).map_err(|e| FederationError::Task(format!("no OS randomness: {e}")))?;
                let key = NoiseKey::from_u64(u64::from_le_bytes(seed));
                self.trainer.train_private(&settings.spec, &mut local, train, &config, &dp_sgd, key)?
            }
            None => self.trainer.train(&settings.spec, &mut local, train, &config)?,
        };
        if let Ok(mut stats) = self.stats.lock() {
            stats.train += start.elapsed();
        }
        let delta: Vec<f32> = local.iter().zip(global).map(|(l, g)| l - g).collect();
        let loss = f64::from(report.epoch_losses.last().copied().unwrap_or(0.0));
        Ok(settings.layout.train_vector(&delta, loss, weight, evaluation, settings.tail_scale(figures))?)
    }
}

/// This hospital's evaluation of `logits` on its `test` rows: with pooled noise, of the rows it
/// counts (at most `rows_per_patient` a patient) with noise on every histogram cell.
fn local_evaluation(
    logits: &[f32],
    test: &Dataset,
    bins: usize,
    sampler: Option<&PooledSampler>,
) -> Result<LocalEvaluation> {
    let Some(sampler) = sampler else { return Ok(LocalEvaluation::of_logits(logits, test.labels(), bins)) };
    let rows = evaluated_rows(test, Some(sampler));
    let logits: Vec<f32> = rows.iter().map(|&row| logits[row]).collect();
    let labels: Vec<f32> = rows.iter().map(|&row| test.labels()[row]).collect();
    let mut evaluation = LocalEvaluation::of_logits(&logits, &labels, bins);
    evaluation.noise = sampler.histogram(2 * bins)?;
    Ok(evaluation)
}

/// The held-out rows an evaluation counts: with pooled noise, the first `rows_per_patient` of
/// each patient (all of them for data without patients); all of them otherwise.
fn evaluated_rows(test: &Dataset, sampler: Option<&PooledSampler>) -> Vec<usize> {
    match (sampler, test.groups()) {
        (Some(sampler), Some(groups)) => sampler.counted_rows(groups),
        _ => (0..test.rows()).collect(),
    }
}

/// The held-out rows' scores and subgroup cells the final evaluation measures.
struct SubgroupScores<'a> {
    /// `cells[c][row]`: the cell of each row in each subgroup column.
    cells: &'a [Vec<usize>],
    /// The last model's logits.
    last: &'a [f32],
    /// The kept model's logits, when there is one.
    kept: Option<&'a [f32]>,
}

/// This hospital's subgroup histograms in the final evaluation: with pooled noise, of the rows it
/// counts (at most `rows_per_patient` a patient) with noise on every cell of the last model's.
fn local_subgroups(
    layout: &ContributionLayout,
    scores: &SubgroupScores<'_>,
    test: &Dataset,
    sampler: Option<&PooledSampler>,
) -> Result<LocalSubgroups> {
    let aligned = |len: usize| len == test.rows();
    if !(scores.cells.iter().all(|c| aligned(c.len()))
        && aligned(scores.last.len())
        && scores.kept.is_none_or(|k| aligned(k.len())))
    {
        return Err(FederationError::Task(format!(
            "the subgroup cells or scores do not cover the {} held-out rows",
            test.rows()
        )));
    }
    let rows = evaluated_rows(test, sampler);
    let pick = |values: &[f32]| -> Vec<f32> { rows.iter().map(|&row| values[row]).collect() };
    let labels = pick(test.labels());
    let cells: Vec<Vec<usize>> = scores.cells.iter().map(|c| rows.iter().map(|&row| c[row]).collect()).collect();
    let bins = layout.subgroup_bins();
    let histograms =
        |logits: &[f32]| SubgroupHistograms::of_logits(&layout.subgroups, &cells, &pick(logits), &labels, bins);
    let noise = match sampler {
        Some(sampler) => sampler.histogram(SubgroupHistograms::values(&layout.subgroups, bins))?,
        None => Vec::new(),
    };
    Ok(LocalSubgroups { last: histograms(scores.last), kept: scores.kept.map(histograms), noise })
}

/// After an exploration, its report: the pooled counts this hospital checked, with its own
/// counts beside them (`None` for training, or when it did not take part in the exploration).
fn exploration_report(
    settings: &FederationSettings,
    participant: &Participant,
    local: &LocalData,
    node: &str,
) -> Result<Option<ExploreReport>> {
    if settings.job == Job::Train {
        return Ok(None);
    }
    let (Some((pooled, hospitals)), Some(own)) = (participant.exploration(), local.explored()) else {
        tracing::warn!(%node, "the exploration ended without this hospital's part in it: no report");
        return Ok(None);
    };
    let Some(context) = ReportContext::of_job(&settings.schema_id, &settings.job, hospitals) else { return Ok(None) };
    Ok(Some(report(&context, pooled, Some((node, own)))?))
}

/// Uploads `bytes` in chunks after its header.
async fn upload_to(client: &mut Client, header: &UploadHeader, bytes: Vec<u8>) -> Result<()> {
    let total = bytes.len() as u64;
    let call = match header.kind {
        Some(UploadKind::KeyShare) => "upload of a key share",
        Some(UploadKind::Contribution) => "upload of a contribution",
        Some(UploadKind::DecryptionShare) => "upload of a decryption share",
        Some(UploadKind::Statement) => "upload of a signed statement",
        Some(UploadKind::Sum) => "upload of a decrypted sum",
        None => "upload",
    };
    let header = convert::upload_header_to_proto(header, total);
    let mut messages = vec![v1::UploadChunk { part: Some(v1::upload_chunk::Part::Header(header)) }];
    messages.extend(
        chunks(&[Bytes::from(bytes)])
            .into_iter()
            .map(|c| v1::UploadChunk { part: Some(v1::upload_chunk::Part::Data(c)) }),
    );
    client.upload(tokio_stream::iter(messages)).await.map_err(|status| FederationError::Rpc { call, status })?;
    Ok(())
}

/// Fetches the next task after `after` (or a `Wait`).
pub async fn fetch_task(
    client: &mut Client,
    federation_id: &str,
    after: Option<(SessionId, TaskKind)>,
) -> Result<Task> {
    let request = v1::TaskRequest {
        federation_id: federation_id.to_owned(),
        after: after.map(|(s, _)| convert::session_to_proto(s)),
        after_kind: after.map_or(0, |(_, k)| convert::task_kind_to_proto(k) as i32),
        wait_ms: POLL_MS,
    };
    let rpc = |status| FederationError::Rpc { call: "next task", status };
    let mut stream = client.next_task(request).await.map_err(rpc)?.into_inner();
    let header = match stream.next().await {
        Some(Ok(v1::TaskChunk { part: Some(v1::task_chunk::Part::Header(header)) })) => header,
        Some(Err(status)) => return Err(rpc(status)),
        _ => return Err(ProtocolError::Missing { message: "task stream", field: "header" }.into()),
    };
    let total = header.section_sizes.iter().try_fold(0u64, |sum, &s| sum.checked_add(s)).unwrap_or(u64::MAX);
    let mut assembler = Assembler::new(total, 1 << 34).map_err(ProtocolError::from)?;
    while let Some(chunk) = stream.next().await {
        match chunk.map_err(rpc)?.part {
            Some(v1::task_chunk::Part::Data(data)) => assembler.push(&data).map_err(ProtocolError::from)?,
            _ => {
                return Err(
                    ProtocolError::Missing { message: "task stream", field: "data after its one header" }.into()
                );
            }
        }
    }
    let payload = assembler.finish().map_err(ProtocolError::from)?;
    let sections = split_sections(&payload, &header.section_sizes).map_err(ProtocolError::from)?;
    Ok(convert::task_from_proto(&header, sections)?)
}
