//! A hospital node: joins the federation over mTLS, and for each task trains locally, encrypts
//! its weighted update, and makes decryption shares — only of aggregates that contain its own
//! contribution (enforced by [`PartySession`]).
//!
//! Its patient rows never leave it; what leaves is a public key share, one ciphertext and one
//! decryption share per session.

use core::time::Duration;
use cpu_time::ThreadTime;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail, ensure};
use fedcare_core::{Codec, CodecConfig, Dataset, ModelSpec, Network, OptimizerConfig, TrainConfig};
use fedcare_proto::v1::{self, federation_client::FederationClient};
use tokio_stream::StreamExt;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::contribution::LocalEvaluation;
use crate::crypto::{
    AggregateMasks, CollectivePublicKey, Crs, PARAMS_V1, PartyId, PartySession, WireLimits, WireMessage,
};
use crate::ingest::{ColumnStats, Table};
use crate::schema::Schema;
use crate::top_k::TopKShape;
use crate::trainer::Trainer;
use crate::transfer::{Assembler, chunks, params_from_bytes, split_sections};

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

/// One local training result, for tests that recompute FedAvg in plaintext.
#[derive(Debug, Clone)]
pub struct LocalUpdate {
    /// Training round.
    pub round: u32,
    /// The global model it started from.
    pub global: Vec<f32>,
    /// `local − global`, unweighted.
    pub delta: Vec<f32>,
    /// Training rows.
    pub rows: usize,
    /// Per `top_k` column, the buckets this hospital's inputs were one-hot over (from the task).
    pub top_k: Vec<Vec<u32>>,
}

/// Observes a hospital's local updates.
pub type UpdateObserver = Arc<dyn Fn(&str, &LocalUpdate) + Send + Sync>;

/// A hospital's connection settings.
#[derive(Debug, Clone)]
pub struct Connection {
    /// `https://host:port`.
    pub url: String,
    /// TLS with the federation's CA and this hospital's identity.
    pub tls: ClientTlsConfig,
    /// Federation to join.
    pub federation_id: String,
}

/// A hospital node.
pub struct HospitalNode {
    connection: Connection,
    data: HospitalData,
    trainer: Box<dyn Trainer>,
    stats: Arc<Mutex<HospitalStats>>,
    observer: Option<UpdateObserver>,
    /// Stop answering after this many tasks (to test a node that vanishes).
    pub vanish_after_tasks: Option<usize>,
    /// How long to keep reconnecting to an unreachable aggregator.
    pub reconnect_timeout: Duration,
}

/// How long one `NextTask` call waits for news.
const POLL_MS: u32 = 2000;

impl HospitalNode {
    /// A node that will train `data` with `trainer`.
    pub fn new(connection: Connection, data: Dataset, trainer: Box<dyn Trainer>) -> Self {
        Self::with_data(connection, HospitalData::Ready(data), trainer)
    }

    /// A node over rows read through a schema: its numeric features are standardised with the
    /// federated statistics once the setup session has computed them.
    pub fn with_data(connection: Connection, data: HospitalData, trainer: Box<dyn Trainer>) -> Self {
        Self {
            connection,
            data,
            trainer,
            stats: Arc::default(),
            observer: None,
            vanish_after_tasks: None,
            reconnect_timeout: Duration::from_secs(120),
        }
    }

    /// Calls `observer` with every local update (tests).
    pub fn with_observer(mut self, observer: UpdateObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The node's running statistics.
    pub fn stats(&self) -> Arc<Mutex<HospitalStats>> {
        self.stats.clone()
    }

    async fn connect(&self) -> Result<FederationClient<Channel>> {
        let endpoint = Endpoint::from_shared(self.connection.url.clone())
            .context("invalid aggregator URL")?
            .tls_config(self.connection.tls.clone())
            .context("invalid TLS configuration")?
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(300))
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        let channel = endpoint.connect().await.with_context(|| format!("cannot reach {}", self.connection.url))?;
        Ok(FederationClient::new(channel)
            .max_decoding_message_size(fedcare_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(fedcare_proto::MAX_MESSAGE_BYTES))
    }

    /// Joins and takes part until the federation is done; returns the final global model.
    ///
    /// When the aggregator becomes unreachable (it restarted, the network failed) the node
    /// reconnects every second and joins again, for up to `reconnect_timeout`.
    pub async fn run(mut self) -> Result<fedcare_core::ModelFile> {
        let mut lost_since: Option<std::time::Instant> = None;
        loop {
            match self.take_part(&mut lost_since).await {
                Ok(model) => return Ok(model),
                Err(error) if is_connection_loss(&error) => {
                    let since = *lost_since.get_or_insert_with(std::time::Instant::now);
                    if since.elapsed() > self.reconnect_timeout {
                        return Err(error.context(format!(
                            "the aggregator stayed unreachable for {} s",
                            self.reconnect_timeout.as_secs()
                        )));
                    }
                    tracing::warn!("lost the aggregator ({error:#}); reconnecting");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }

    async fn take_part(&mut self, lost_since: &mut Option<std::time::Instant>) -> Result<fedcare_core::ModelFile> {
        let mut client = self.connect().await?;
        let federation_id = self.connection.federation_id.clone();
        let reply = client
            .join(v1::JoinRequest { federation_id: federation_id.clone() })
            .await
            .context("the aggregator refused to enroll this node")?
            .into_inner();
        *lost_since = None;
        let node = reply.node_id;
        let config = reply.config.context("the aggregator sent no configuration")?;
        let plan = Plan::from_config(&config, self.data.width(), &node)?;
        let mut local = LocalData::new(&self.data, &config, plan.split_seed)?;
        tracing::info!(%node, train_rows = local.train_rows, test_rows = local.test_rows, trainer = self.trainer.name(), "joined");

        let mut after: Option<(v1::Session, i32)> = None;
        let mut party: Option<PartySession> = None;
        let mut tasks = 0usize;
        loop {
            let (header, sections) = fetch_task(&mut client, &federation_id, after.as_ref()).await?;
            let kind = v1::TaskKind::try_from(header.kind).unwrap_or(v1::TaskKind::Unspecified);
            if kind == v1::TaskKind::Wait {
                continue;
            }
            self.stats.lock().map(|mut s| s.bytes_down += sections.iter().map(|s| s.len() as u64).sum::<u64>()).ok();
            tasks += 1;
            if self.vanish_after_tasks.is_some_and(|n| tasks > n) {
                tracing::warn!(%node, "vanishing (test)");
                futures_pending().await;
            }
            let session = header.session.unwrap_or_default();
            let upload = match kind {
                v1::TaskKind::KeyGen => {
                    let crs =
                        Crs(u128::from_le_bytes(header.crs.as_slice().try_into().context("CRS is not 16 bytes")?));
                    let start = ThreadTime::now();
                    let (new_party, share) =
                        PartySession::new(PARAMS_V1, PartyId::new(node.clone())?, crs, plan.min_hospitals)?;
                    self.add_crypto_time(start);
                    party = Some(new_party);
                    Some((v1::UploadKind::KeyShare, share.encode()))
                }
                v1::TaskKind::Contribute => {
                    ensure!(sections.len() == 2, "a contribution task carries a key and a model");
                    let key = CollectivePublicKey::decode(&sections[0], &PARAMS_V1, &WireLimits::default())?;
                    let round_kind = v1::RoundKind::try_from(header.round_kind).unwrap_or(v1::RoundKind::Unspecified);
                    let global = if round_kind == v1::RoundKind::Setup {
                        Vec::new()
                    } else {
                        params_from_bytes(&sections[1], plan.spec.param_count())?
                    };
                    let party = party.as_mut().context("a contribution task before key generation")?;
                    // Training and encryption are CPU-bound: keep them off the async workers' queue.
                    let ciphertext = tokio::task::block_in_place(|| -> Result<Vec<u8>> {
                        let values =
                            self.contribution(&plan, round_kind, session.round, &global, &mut local, &header, &node)?;
                        let encoded = plan.codec.encode(&values, 1.0)?;
                        if encoded.clipped > 0 {
                            ensure!(
                                round_kind != v1::RoundKind::Setup,
                                "this hospital's row counts or feature sums do not fit the codec"
                            );
                            tracing::warn!(%node, clipped = encoded.clipped, "update values clipped to the codec's range");
                        }
                        let start = ThreadTime::now();
                        let ciphertext = party.encrypt(&key, &encoded.words)?;
                        self.add_crypto_time(start);
                        Ok(ciphertext.encode())
                    })?;
                    Some((v1::UploadKind::Contribution, ciphertext))
                }
                v1::TaskKind::Decrypt => {
                    ensure!(sections.len() == 1, "a decryption task carries the aggregate's masks");
                    let limits = WireLimits { max_values: plan.max_values };
                    let masks = AggregateMasks::decode(&sections[0], &PARAMS_V1, &limits)?;
                    let party = party.as_mut().context("a decryption task before key generation")?;
                    let start = ThreadTime::now();
                    let share = tokio::task::block_in_place(|| party.decryption_share(&masks))
                        .context("refusing to make a decryption share")?;
                    self.add_crypto_time(start);
                    Some((v1::UploadKind::DecryptionShare, share.encode()))
                }
                v1::TaskKind::Done => {
                    tracing::info!(%node, "federation done");
                    ensure!(sections.len() == 1, "the final task carries the final model");
                    let params = params_from_bytes(&sections[0], plan.spec.param_count())?;
                    return Ok(fedcare_core::ModelFile::new(plan.spec.clone(), params, config.schema_id.clone())?);
                }
                v1::TaskKind::Failed => bail!("the federation stopped: {}", header.message),
                _ => bail!("unknown task kind {}", header.kind),
            };
            if let Some((upload_kind, bytes)) = upload {
                self.upload(&mut client, &federation_id, &node, &session, upload_kind, &bytes).await?;
            }
            after = Some((session, header.kind));
        }
    }

    /// Adds the CPU time this thread spent since `start` (CPU time, not wall time: in a simulation
    /// many hospitals share few cores).
    fn add_crypto_time(&self, start: ThreadTime) {
        if let Ok(mut stats) = self.stats.lock() {
            stats.crypto += start.elapsed();
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn contribution(
        &mut self,
        plan: &Plan,
        kind: v1::RoundKind,
        round: u32,
        global: &[f32],
        local: &mut LocalData,
        header: &v1::TaskHeader,
        node: &str,
    ) -> Result<Vec<f32>> {
        if kind == v1::RoundKind::Setup {
            let values = crate::contribution::setup_vector(
                local.train_rows,
                local.test_rows,
                &local.moments,
                &local.bucket_counts,
            );
            return Ok(values.into_iter().map(|v| v as f32).collect());
        }
        let (train, test) = local.datasets(header)?;
        let evaluation = |params: &[f32]| -> Result<Vec<f64>> {
            let logits = Network::new(&plan.spec).predict(params, test.features())?;
            Ok(LocalEvaluation::new(&logits, test.labels(), plan.bins).tail(header.total_test_rows))
        };
        let values: Vec<f64> = match kind {
            v1::RoundKind::Train => {
                ensure!(header.total_train_rows > 0, "training before the setup round's totals");
                let weight = train.rows() as f64 / header.total_train_rows as f64;
                let mut local = global.to_vec();
                let mut config = plan.train;
                if config.pos_weight == 0.0 {
                    config.pos_weight = train.balanced_pos_weight();
                }
                config.seed = plan.train.seed.wrapping_add(u64::from(round));
                let start = ThreadTime::now();
                let report = self.trainer.train(&plan.spec, &mut local, train, &config)?;
                if let Ok(mut stats) = self.stats.lock() {
                    stats.train += start.elapsed();
                }
                let delta: Vec<f32> = local.iter().zip(global).map(|(l, g)| l - g).collect();
                if let Some(observer) = &self.observer {
                    observer(
                        node,
                        &LocalUpdate {
                            round,
                            global: global.to_vec(),
                            delta: delta.clone(),
                            rows: train.rows(),
                            top_k: header.top_k.iter().map(|c| c.buckets.clone()).collect(),
                        },
                    );
                }
                let loss = f64::from(report.epoch_losses.last().copied().unwrap_or(0.0));
                let mut values: Vec<f64> = delta.iter().map(|&d| f64::from(d) * weight).collect();
                values.push(loss * weight);
                values.extend(evaluation(global)?);
                values
            }
            v1::RoundKind::Evaluate => evaluation(global)?,
            v1::RoundKind::Setup | v1::RoundKind::Unspecified => bail!("task of unknown round kind"),
        };
        Ok(values.into_iter().map(|v| v as f32).collect())
    }

    async fn upload(
        &self,
        client: &mut FederationClient<Channel>,
        federation_id: &str,
        node: &str,
        session: &v1::Session,
        kind: v1::UploadKind,
        bytes: &[u8],
    ) -> Result<()> {
        let header = v1::UploadHeader {
            federation_id: federation_id.to_string(),
            session: Some(*session),
            node_id: node.to_string(),
            kind: kind as i32,
            total_bytes: bytes.len() as u64,
        };
        let mut messages = vec![v1::UploadChunk { part: Some(v1::upload_chunk::Part::Header(header)) }];
        messages.extend(
            chunks(&[bytes]).into_iter().map(|c| v1::UploadChunk { part: Some(v1::upload_chunk::Part::Data(c)) }),
        );
        client.upload(tokio_stream::iter(messages)).await.with_context(|| format!("upload of {kind:?} refused"))?;
        if let Ok(mut stats) = self.stats.lock() {
            stats.bytes_up += bytes.len() as u64;
        }
        Ok(())
    }
}

/// Whether `error` means the aggregator went away (retry) rather than refused something (stop).
fn is_connection_loss(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        if cause.downcast_ref::<tonic::transport::Error>().is_some() {
            return true;
        }
        cause.downcast_ref::<tonic::Status>().is_some_and(|status| {
            matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Aborted
            ) || (status.code() == tonic::Code::FailedPrecondition && status.message() == "join first")
        })
    })
}

/// Never completes: a node that has vanished.
async fn futures_pending() {
    core::future::pending::<()>().await;
}

/// Fetches the next task after `after` (or a `Wait`).
pub async fn fetch_task(
    client: &mut FederationClient<Channel>,
    federation_id: &str,
    after: Option<&(v1::Session, i32)>,
) -> Result<(v1::TaskHeader, Vec<Vec<u8>>)> {
    let request = v1::TaskRequest {
        federation_id: federation_id.to_string(),
        after: after.map(|(s, _)| *s),
        after_kind: after.map_or(0, |(_, k)| *k),
        wait_ms: POLL_MS,
    };
    let mut stream = client.next_task(request).await.context("cannot fetch the next task")?.into_inner();
    let header = match stream.next().await {
        Some(Ok(v1::TaskChunk { part: Some(v1::task_chunk::Part::Header(header)) })) => header,
        Some(Err(status)) => return Err(status).context("task stream failed"),
        _ => bail!("task stream without a header"),
    };
    let total: u64 = header.section_sizes.iter().sum();
    let mut assembler = Assembler::new(total, 1 << 34)?;
    while let Some(chunk) = stream.next().await {
        match chunk?.part {
            Some(v1::task_chunk::Part::Data(data)) => assembler.push(&data)?,
            _ => bail!("a second header in one task"),
        }
    }
    let payload = assembler.finish()?;
    let sections = split_sections(&payload, &header.section_sizes)?;
    Ok((header, sections))
}

/// A hospital's rows.
#[derive(Debug, Clone)]
pub enum HospitalData {
    /// Model inputs ready as they are (the federation standardises nothing).
    Ready(Dataset),
    /// Rows read through a schema; numeric features are standardised with federated statistics,
    /// `top_k` columns one-hot over the federation's chosen buckets.
    Table {
        /// The rows.
        table: Table,
        /// Their schema.
        schema: Box<Schema>,
    },
}

impl HospitalData {
    /// Model inputs per row.
    pub fn width(&self) -> usize {
        match self {
            Self::Ready(data) => data.width(),
            Self::Table { schema, .. } => schema.width(),
        }
    }
}

/// A hospital's train/test split and, for schema data, the datasets once statistics are known.
struct LocalData {
    train_rows: usize,
    test_rows: usize,
    /// This hospital's moments of each numeric feature of its training rows.
    moments: Vec<crate::ingest::Moments>,
    /// This hospital's training rows per hash bucket of each `top_k` column.
    bucket_counts: Vec<Vec<u64>>,
    split: Split,
}

enum Split {
    Ready(Dataset, Dataset),
    Table(Box<TableSplit>),
}

struct TableSplit {
    train: Table,
    test: Table,
    schema: Schema,
    /// The standardised datasets, once the federated statistics are known.
    built: Option<(Dataset, Dataset)>,
}

impl LocalData {
    fn new(data: &HospitalData, config: &v1::FederationConfig, seed: u64) -> Result<Self> {
        let numeric = config.numeric_features as usize;
        match data {
            HospitalData::Ready(data) => {
                ensure!(numeric == 0, "the federation standardises {numeric} features: this node needs schema data");
                ensure!(
                    config.top_k_columns.is_empty(),
                    "the federation has {} top_k columns: this node needs schema data",
                    config.top_k_columns.len()
                );
                let (train, test) = crate::data::split(data, config.test_fraction, seed)?;
                Ok(Self {
                    train_rows: train.rows(),
                    test_rows: test.rows(),
                    moments: Vec::new(),
                    bucket_counts: Vec::new(),
                    split: Split::Ready(train, test),
                })
            }
            HospitalData::Table { table, schema } => {
                // A federation configured with a schema names it; the same shapes under another
                // schema would mean other columns, other categories and other buckets.
                ensure!(
                    config.schema_id.is_empty() || config.schema_id == schema.id,
                    "the federation trains on schema {:?}, this hospital reads its data with {:?}",
                    config.schema_id,
                    schema.id
                );
                ensure!(
                    schema.numeric.len() == numeric,
                    "the federation standardises {numeric} features, this hospital's schema has {}",
                    schema.numeric.len()
                );
                let federation: Vec<TopKShape> =
                    config.top_k_columns.iter().map(|c| TopKShape { buckets: c.buckets, k: c.k }).collect();
                ensure!(
                    schema.top_k_shapes() == federation,
                    "the federation's top_k columns (buckets, k) are {:?}, this hospital's schema has {:?}",
                    federation.iter().map(|s| (s.buckets, s.k)).collect::<Vec<_>>(),
                    schema.top_k_shapes().iter().map(|s| (s.buckets, s.k)).collect::<Vec<_>>()
                );
                let (train, test) = table.split_by_group(f64::from(config.test_fraction), seed);
                ensure!(train.rows() > 0 && test.rows() > 0, "too few patients to hold some out");
                Ok(Self {
                    train_rows: train.rows(),
                    test_rows: test.rows(),
                    moments: train.numeric_moments(),
                    bucket_counts: train.bucket_counts(schema),
                    split: Split::Table(Box::new(TableSplit { train, test, schema: (**schema).clone(), built: None })),
                })
            }
        }
    }

    /// The training and test datasets, standardised with the header's federated statistics.
    fn datasets(&mut self, header: &v1::TaskHeader) -> Result<(&Dataset, &Dataset)> {
        match &mut self.split {
            Split::Ready(train, test) => Ok((train, test)),
            Split::Table(split) => {
                let TableSplit { train, test, schema, built } = split.as_mut();
                if built.is_none() {
                    ensure!(
                        header.feature_means.len() == schema.numeric.len()
                            && header.feature_stds.len() == schema.numeric.len(),
                        "the task carries no feature statistics"
                    );
                    let stats: Vec<ColumnStats> = header
                        .feature_means
                        .iter()
                        .zip(&header.feature_stds)
                        .map(|(&mean, &std)| ColumnStats { mean, std: if std > 0.0 { std } else { 1.0 } })
                        .collect();
                    // Checked against the schema's shapes (count, range, no repeats) in the encoding.
                    let top_k: Vec<Vec<u32>> = header.top_k.iter().map(|c| c.buckets.clone()).collect();
                    *built = Some((
                        train.to_dataset_with(schema, &stats, &top_k).context("the task's top_k buckets")?,
                        test.to_dataset_with(schema, &stats, &top_k).context("the task's top_k buckets")?,
                    ));
                }
                let (train, test) = built.as_ref().context("datasets were just built")?;
                Ok((train, test))
            }
        }
    }
}

/// The seed of a node's train/test split: the federation's training seed mixed with the node id.
pub fn split_seed(training_seed: u64, node: &str) -> u64 {
    training_seed ^ node.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// What a hospital derives from the federation's configuration.
struct Plan {
    spec: ModelSpec,
    codec: Codec,
    train: TrainConfig,
    bins: usize,
    min_hospitals: usize,
    max_values: usize,
    split_seed: u64,
}

impl Plan {
    fn from_config(config: &v1::FederationConfig, data_width: usize, node: &str) -> Result<Self> {
        let model = config.model.as_ref().context("configuration without a model")?;
        let hidden: Vec<usize> = model.hidden.iter().map(|&h| h as usize).collect();
        let spec = ModelSpec::mlp(model.input_width as usize, &hidden)?;
        ensure!(
            spec.input_width() == data_width,
            "the federation's model takes {} features, this hospital's data has {data_width}",
            spec.input_width()
        );
        ensure!(u32::from(PARAMS_V1.id) == config.crypto_params_id, "unsupported crypto parameter set");
        let c = config.codec.as_ref().context("configuration without a codec")?;
        let codec_config = CodecConfig {
            value_bits: c.value_bits,
            frac_bits: c.frac_bits,
            max_parties: c.max_parties,
            plaintext_bits: c.plaintext_bits,
        };
        PARAMS_V1.check_codec(&codec_config)?;
        let t = config.training.as_ref().context("configuration without training settings")?;
        let optimizer = match v1::Optimizer::try_from(t.optimizer) {
            Ok(v1::Optimizer::Sgd) => OptimizerConfig::Sgd { lr: t.learning_rate, momentum: t.momentum },
            _ => OptimizerConfig::adam(t.learning_rate),
        };
        let train = TrainConfig {
            epochs: t.epochs,
            batch_size: t.batch_size as usize,
            optimizer,
            pos_weight: t.pos_weight,
            l2: t.l2,
            prox_mu: t.prox_mu,
            seed: t.seed,
        };
        let bins = config.eval_bins as usize;
        ensure!((2..=4096).contains(&bins), "evaluation bins out of range");
        Ok(Self {
            spec,
            codec: Codec::new(codec_config)?,
            train,
            bins,
            min_hospitals: config.min_hospitals.max(2) as usize,
            max_values: (config.max_upload_bytes / 8) as usize,
            split_seed: split_seed(t.seed, node),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::{BadRows, read_csv};

    #[test]
    fn a_hospital_refuses_a_federation_on_another_schema() {
        let dir = tempfile::tempdir().unwrap();
        let files = crate::synth::write_cohort(dir.path(), 1, 200, 3).unwrap();
        let schema = Schema::diabetes130(true);
        let (table, _) = read_csv(&files[0], &schema, BadRows::Reject).unwrap();
        let data = HospitalData::Table { table, schema: Box::new(schema.clone()) };
        let config = |schema_id: &str| v1::FederationConfig {
            schema_id: schema_id.to_owned(),
            numeric_features: schema.numeric.len() as u32,
            test_fraction: 0.2,
            ..v1::FederationConfig::default()
        };
        let error = LocalData::new(&data, &config("other-registry/v1"), 1).err().expect("foreign schema").to_string();
        assert!(error.contains("trains on schema \"other-registry/v1\"") && error.contains(&schema.id), "{error}");
        LocalData::new(&data, &config(&schema.id), 1).unwrap();
        LocalData::new(&data, &config(""), 1).unwrap();
    }
}
