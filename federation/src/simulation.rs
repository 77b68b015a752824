//! A whole federation on one machine (what `fedcare simulate` runs): the aggregator and N
//! hospital nodes, over real gRPC with mTLS on 127.0.0.1 (certificates made in a temporary
//! directory) or over in-process connections, with threshold encryption either way, on a
//! synthetic non-IID cohort in the Diabetes-130 schema or on hospital files given with `data`.
//! It trains, or explores the data ([`SimulateOptions::explore`]): the setup session and one
//! session of every column's counts.
//!
//! A hospital whose file cannot be read (a missing column, too many bad rows) refuses to take
//! part, as its `fedcare join` would: it is left out, with the reason in
//! [`SimulationReport::left_out`], and the federation runs without it while two remain.
//!
//! A simulation starts afresh: it removes the checkpoint, metrics and model a previous
//! simulation left in its output directory before it starts.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use core::time::Duration;
use fedcare_data::{BadRows, Schema, read_csv};
use fedcare_gpu_trainer::Selection;

use crate::config::{
    AggregatorConfig, BoostingConfig, EvaluationSettings, ExploreSettings, JobKind, ModelConfig, ModelKind,
    PrivacyConfig, ServerRule, TlsFiles, TrackingSettings, TrainerChoice, TrainingSettings,
};
use crate::coordinator::Outcome;
use crate::error::{FederationError, Result};
use crate::exploration::EXPLORE_FILE;
use crate::hospital::trainer::Trainer;
use crate::hospital::{Connection, HospitalData, HospitalNode, HospitalStats, trainer};
use crate::persistence::{CHECKPOINT_FILE, METRICS_FILE, MODEL_FILE};
use crate::protocol::Agreement;
use crate::protocol::{NodeId, RoundRecord};
use crate::server::AggregatorServer;
use crate::tls;
use crate::tracking::{Delivery, Trackers};

/// How the simulated hospitals reach the aggregator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// gRPC over TCP on 127.0.0.1 with mTLS, as a deployment runs.
    Tls,
    /// gRPC over in-process connections (no sockets, no TLS; the same service and clients).
    InProcess,
}

/// Settings of a simulation.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Hospitals of the synthetic cohort.
    pub hospitals: usize,
    /// Training rounds.
    pub rounds: u32,
    /// Stop after this many evaluations without a better AUROC (`None`: every round).
    pub patience: Option<u32>,
    /// Patients of an average hospital in the synthetic cohort (sizes vary around it).
    pub rows: usize,
    /// Hidden layer widths (empty: logistic regression).
    pub hidden: Vec<u32>,
    /// Local epochs per round.
    pub epochs: u32,
    /// Learning rate of the hospitals' local optimizer (Adam).
    pub learning_rate: f32,
    /// Local mini-batch size.
    pub batch_size: u32,
    /// The share of each hospital's patients held out for the federation's evaluation
    /// (`[training] test_fraction`).
    pub test_fraction: f32,
    /// Server rule and its settings.
    pub rule: ServerRule,
    /// Seed of the cohort, the initial model and the batch orders.
    pub seed: u64,
    /// Output directory (metrics.jsonl, model.bin, the checkpoint).
    pub out: PathBuf,
    /// Phase deadline in seconds.
    pub phase_timeout_secs: u64,
    /// Hospital CSV files (one per hospital, `*.csv`); `None`: a synthetic cohort in the
    /// Diabetes-130 schema, `rows` patients per average hospital.
    pub data: Option<PathBuf>,
    /// Local trainer of every hospital.
    pub trainer: TrainerChoice,
    /// The schema of the `data` files; `None`: the built-in Diabetes-130 schema (death and
    /// hospice encounters dropped). The synthetic cohort needs the Diabetes-130 schema.
    pub schema: Option<Schema>,
    /// How the hospitals reach the aggregator.
    pub transport: Transport,
    /// Explore the data instead of training, showing no count below this (`min_cell`).
    pub explore: Option<u64>,
    /// Each hospital's discrete Gaussian noise on an exploration's pooled statistics, `σ` (0:
    /// exact; `[explore] noise`), counting one row of each patient.
    pub explore_noise: f64,
    /// DP-SGD at every hospital (`None`: off).
    pub privacy: Option<PrivacyConfig>,
    /// Hospital `index`'s `max_epsilon` (tests of a hospital's privacy budget).
    pub budget: Option<(usize, f64)>,
    /// The final evaluation's subgroup columns (`None`: the schema's own list, or none under
    /// pooled noise; `[evaluation] subgroups`).
    pub subgroups: Option<Vec<String>>,
    /// An MLflow tracking server to log the federation to (`[tracking] mlflow`).
    pub mlflow: Option<String>,
    /// A folder for TensorBoard event files (`[tracking] tensorboard`).
    pub tensorboard: Option<PathBuf>,
    /// Gradient-boosted trees instead of the network (`[model] kind = "gbdt"`, `[boosting]`;
    /// `rounds` and `hidden` then do not apply).
    pub boosting: Option<BoostingConfig>,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        Self {
            hospitals: 5,
            rounds: 5,
            patience: None,
            rows: 3000,
            hidden: vec![32, 16],
            epochs: 1,
            learning_rate: TrainingSettings::default().learning_rate,
            batch_size: TrainingSettings::default().batch_size,
            test_fraction: TrainingSettings::default().test_fraction,
            rule: ServerRule::default(),
            seed: 7,
            out: "fedcare-sim".into(),
            phase_timeout_secs: 60,
            data: None,
            trainer: TrainerChoice::Cpu,
            schema: None,
            transport: Transport::Tls,
            explore: None,
            explore_noise: 0.0,
            privacy: None,
            budget: None,
            subgroups: None,
            mlflow: None,
            tensorboard: None,
            boosting: None,
        }
    }
}

/// What a simulation reports while it runs.
#[derive(Debug)]
pub enum Progress<'a> {
    /// The trainer every hospital uses, and why.
    Trainer(&'a str),
    /// A session completed; `crypto_seconds` is the hospitals' CPU time in encryption since the
    /// previous one.
    Session {
        /// The session's record.
        record: &'a RoundRecord,
        /// Hospital CPU seconds in key generation, encryption and decryption shares.
        crypto_seconds: f64,
    },
}

/// What a simulation produced.
#[derive(Debug, Clone)]
pub struct SimulationReport {
    /// The aggregator's outcome.
    pub outcome: Outcome,
    /// Hospital-side crypto seconds attributed to each record (same order).
    pub crypto_seconds: Vec<f64>,
    /// The hospitals that took part, in order.
    pub hospitals: Vec<NodeId>,
    /// The final model file each hospital received (same order; `None` for a hospital that
    /// stopped early).
    pub received: Vec<Option<bytes::Bytes>>,
    /// After an exploration, each hospital's report, its own figures beside the pooled ones
    /// (same order).
    pub explorations: Vec<Option<fedcare_core::explore::ExploreReport>>,
    /// The files whose hospitals refused to take part, and why.
    pub left_out: Vec<(PathBuf, String)>,
    /// With `mlflow`, what reached the tracking server.
    pub tracking: Option<Delivery>,
}

/// Makes each hospital's trainer into the one it uses, given the hospital's node id: injected by
/// tests that record what hospitals train on, or make one stall.
pub type TrainerWrapper = dyn Fn(&NodeId, Box<dyn Trainer>) -> Box<dyn Trainer> + Sync;

/// Makes pages of a finished federation from its output folder (the model file and
/// `metrics.jsonl` there): their names and bytes, sent to the MLflow run as artifacts.
pub type PageMaker = dyn Fn(&Path) -> Vec<(String, Vec<u8>)> + Sync;

/// Runs a whole federation; `wrap` (when given) makes each hospital's trainer into the one it
/// uses (tests), `progress` sees every completed session.
pub async fn run(
    options: &SimulateOptions,
    wrap: Option<&TrainerWrapper>,
    progress: Option<&(dyn Fn(Progress<'_>) + Sync)>,
) -> Result<SimulationReport> {
    run_with_pages(options, wrap, progress, None).await
}

/// [`run`], with `pages` making the pages of the finished federation that its MLflow run gets
/// beside the model file and `metrics.jsonl` (`fedcare simulate`: `report.html` and the card).
pub async fn run_with_pages(
    options: &SimulateOptions,
    wrap: Option<&TrainerWrapper>,
    progress: Option<&(dyn Fn(Progress<'_>) + Sync)>,
    pages: Option<&PageMaker>,
) -> Result<SimulationReport> {
    tls::install_crypto_provider();
    let work = tempfile::tempdir().map_err(|source| FederationError::Write { path: std::env::temp_dir(), source })?;
    let files = match &options.data {
        Some(dir) => {
            let read_error = |source| FederationError::Read { path: dir.clone(), source };
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(read_error)?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|e| e == "csv"))
                .collect();
            files.sort();
            files
        }
        None => {
            if options.schema.is_some() {
                return Err(invalid(
                    "schema",
                    "a custom schema",
                    "the Diabetes-130 schema for the synthetic cohort; give files with data",
                ));
            }
            if !(2..=64).contains(&options.hospitals) {
                return Err(invalid("hospitals", options.hospitals, "2 to 64"));
            }
            fedcare_data::synth::write_cohort(
                &work.path().join("cohort"),
                options.hospitals,
                options.rows,
                options.seed,
            )
            .map_err(fedcare_hospital::data_error)?
        }
    };
    if !(2..=64).contains(&files.len()) {
        return Err(invalid(
            "hospital files",
            files.len(),
            "2 to 64 *.csv files: a federation needs 2 to 64 hospitals",
        ));
    }
    let schema = options.schema.clone().unwrap_or_else(|| Schema::diabetes130(true));
    let mut hospitals = Vec::with_capacity(files.len());
    let mut left_out = Vec::new();
    for (index, path) in files.iter().enumerate() {
        let (table, report) = match read_csv(path, &schema, BadRows::Skip { limit: 1000 }) {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(file = %path.display(), "this hospital refuses to take part: {error}");
                left_out.push((path.clone(), error.to_string()));
                continue;
            }
        };
        if report.skipped_count > 0 {
            tracing::warn!(file = %path.display(), "{}", report.summary());
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let name = NodeId::new(stem).or_else(|_| NodeId::new(format!("hospital-{:02}", index + 1)))?;
        hospitals.push((name, table));
    }
    if hospitals.len() < 2 {
        let reasons: Vec<String> = left_out.iter().map(|(path, why)| format!("{}: {why}", path.display())).collect();
        return Err(invalid(
            "hospital files",
            format!("{} readable of {}", hospitals.len(), files.len()),
            &format!("at least 2 readable files ({})", reasons.join("; ")),
        ));
    }
    let names: Vec<String> = hospitals.iter().map(|(name, _)| name.as_str().to_owned()).collect();
    let pki = work.path().join("pki");
    tls::generate_dev_pki(&pki, &names, &[])?;

    let config = AggregatorConfig {
        privacy: options.privacy,
        federation_id: "fedcare-simulation".into(),
        listen: "127.0.0.1:0".into(),
        hospitals: names.clone(),
        min_hospitals: 2,
        rounds: options.rounds,
        patience: options.patience,
        phase_timeout_secs: options.phase_timeout_secs,
        join_timeout_secs: 30,
        out_dir: options.out.clone(),
        seed: options.seed,
        crypto_threads: None,
        eval_bins: 1024,
        schema_id: schema.id.clone(),
        numeric_features: schema.numeric.len() as u32,
        top_k: schema.top_k_shapes(),
        schema: None,
        top_k_key_fingerprint: None,
        model: ModelConfig {
            input_width: schema.width() as u32,
            hidden: options.hidden.clone(),
            kind: if options.boosting.is_some() { ModelKind::Gbdt } else { ModelKind::Mlp },
        },
        boosting: options.boosting.unwrap_or_default(),
        numeric_edges: crate::config::schema_shape(&schema).numeric_edges,
        training: TrainingSettings {
            epochs: options.epochs,
            learning_rate: options.learning_rate,
            batch_size: options.batch_size,
            test_fraction: options.test_fraction,
            seed: options.seed,
            ..TrainingSettings::default()
        },
        server: options.rule,
        tls: TlsFiles {
            ca: pki.join(tls::files::CA_CERT),
            cert: pki.join(tls::files::SERVER_CERT),
            key: pki.join(tls::files::SERVER_KEY),
        },
        operations: Default::default(),
        job: if options.explore.is_some() { JobKind::Explore } else { JobKind::Train },
        explore: ExploreSettings {
            min_cell: options.explore.unwrap_or_default(),
            columns: schema.explore_columns(),
            label: schema.label_description(),
            noise: options.explore_noise,
            ..ExploreSettings::default()
        },
        evaluation: EvaluationSettings {
            columns: {
                let names = options.subgroups.as_ref().unwrap_or(&schema.subgroups);
                schema.subgroup_columns(names).map_err(|e| invalid("subgroups", names.join(","), &e.to_string()))?
            },
            subgroups: options.subgroups.clone(),
            ..EvaluationSettings::default()
        },
        tracking: TrackingSettings {
            mlflow: options.mlflow.clone(),
            experiment: None,
            ca: None,
            tensorboard: options.tensorboard.clone(),
        },
    };
    let plan = config.plan()?;
    std::fs::create_dir_all(&options.out)
        .map_err(|source| FederationError::Write { path: options.out.clone(), source })?;
    for stale in [CHECKPOINT_FILE, METRICS_FILE, MODEL_FILE, EXPLORE_FILE] {
        let path = options.out.join(stale);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(FederationError::Write { path, source }),
        }
    }
    // Tracking starts with the federation; a server that is down never holds it up.
    let run_name = options.out.file_name().map_or("fedcare".into(), |n| n.to_string_lossy().into_owned());
    let mut trackers = Trackers::start(&config.tracking, &plan, &run_name)
        .map_err(|why| invalid("tracking", "--mlflow, --tensorboard", why.as_str()))?;
    let aggregator = AggregatorServer::new(plan, &options.out)?;

    // One trainer choice for the federation, said once; one trainer per hospital.
    let selection = Selection::from_env();
    let (resolved, why) = trainer::resolve(options.trainer, &selection)?;
    tracing::info!("trainer: {why}");

    if let Some(progress) = progress {
        progress(Progress::Trainer(&why));
    }

    let (serving, connections): (tokio::task::JoinHandle<Result<Outcome>>, Vec<Connection>) = match options.transport {
        Transport::Tls => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|source| FederationError::Listen { address: "127.0.0.1:0".into(), source })?;
            let port = listener
                .local_addr()
                .map_err(|source| FederationError::Listen { address: "127.0.0.1:0".into(), source })?
                .port();
            let url = format!("https://localhost:{port}");
            let server_tls = tls::server_tls(&config.tls.ca, &config.tls.cert, &config.tls.key)?;
            let serving = {
                let aggregator = aggregator.clone();
                tokio::spawn(async move { aggregator.serve(listener, server_tls).await })
            };
            let connections = hospitals
                .iter()
                .map(|(name, _)| {
                    let (cert, key) = tls::party_files(&pki, name.as_str());
                    let tls = tls::client_tls(&config.tls.ca, &cert, &key, "localhost")?;
                    Ok(Connection::Tls { url: url.clone(), tls })
                })
                .collect::<Result<Vec<_>>>()?;
            (serving, connections)
        }
        Transport::InProcess => {
            let (link, listener) = crate::identity::in_process();
            let serving = {
                let aggregator = aggregator.clone();
                tokio::spawn(async move { aggregator.serve_in_process(listener, core::future::pending()).await })
            };
            let connections = hospitals
                .iter()
                .map(|(name, _)| Connection::InProcess { link: link.clone(), node: name.clone() })
                .collect();
            (serving, connections)
        }
    };

    // The hospitals agree to what the one running the simulation set up.
    let agreed = Agreement { federation_id: config.federation_id.clone(), job: config.job };
    let mut stats: Vec<Arc<Mutex<HospitalStats>>> = Vec::new();
    let mut nodes = Vec::new();
    let (node_ids, tables): (Vec<NodeId>, Vec<_>) = hospitals.into_iter().unzip();
    // The hospitals train at the same time on this one machine: the cores shared among them (the
    // trained models are the same whatever the threads).
    let cores = std::thread::available_parallelism().map_or(1, core::num::NonZeroUsize::get);
    let train_threads = (cores / node_ids.len().max(1)).max(1);
    // Hospitals on the GPU share one device, its queue and its pipelines.
    let trainers = resolved.factory(&selection)?;
    for (index, ((table, connection), name)) in tables.into_iter().zip(connections).zip(&node_ids).enumerate() {
        let data = HospitalData::Table { table, schema: Box::new(schema.clone()) };
        let state = work.path().join("state").join(name.as_str());
        let mut trust = tls::dev_trust(&pki, name.as_str(), &names, &state)?;
        // Whoever runs a simulation chooses every role's settings, the exploration's floor too.
        if let Some(min_cell) = options.explore {
            trust.consortium.min_cell = min_cell;
        }
        if let Some((_, max)) = options.budget.filter(|&(budgeted, _)| budgeted == index) {
            trust.consortium.max_epsilon = Some(max);
        }
        let hospital = name.clone();
        let report: trainer::ChoiceReport = Arc::new(move |line: &str| eprintln!("trainer ({hospital}): {line}"));
        let mut trainer = trainers.build(train_threads, Some(report))?;
        if let Some(wrap) = wrap {
            trainer = wrap(name, trainer);
        }
        let node = HospitalNode::new(connection, agreed.clone(), data, trainer, trust);
        stats.push(node.stats());
        nodes.push(tokio::spawn(node.run()));
    }

    let mut changes = aggregator.subscribe();
    let mut shown = 0;
    let mut crypto_seconds = Vec::new();
    let mut crypto_before = 0.0;
    loop {
        let records = aggregator.records();
        for record in &records[shown..] {
            let crypto_now: f64 = stats.iter().filter_map(|s| s.lock().ok()).map(|s| s.crypto.as_secs_f64()).sum();
            let delta = crypto_now - crypto_before;
            crypto_before = crypto_now;
            crypto_seconds.push(delta);
            if let Some(progress) = progress {
                progress(Progress::Session { record, crypto_seconds: delta });
            }
            trackers.record(record);
        }
        shown = records.len();
        if serving.is_finished() {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), changes.changed()).await;
    }
    let outcome = serving.await.map_err(|e| FederationError::Task(e.to_string()))??;
    let mut finals = Vec::with_capacity(nodes.len());
    for node in nodes {
        finals.push(match tokio::time::timeout(Duration::from_secs(5), node).await {
            Ok(Ok(Ok(model))) => Some(model),
            Ok(Ok(Err(error))) => {
                tracing::warn!("a hospital stopped with an error: {error}");
                None
            }
            Ok(Err(error)) => {
                tracing::warn!("a hospital task failed: {error}");
                None
            }
            Err(_) => {
                tracing::warn!("a hospital did not finish in time");
                None
            }
        });
    }
    if let Some(failure) = &outcome.failure {
        return Err(FederationError::Ended(failure.clone()));
    }
    let tracking = trackers.finish(&options.out, || pages.map(|make| make(&options.out)).unwrap_or_default());
    let explorations = finals.iter().map(|f| f.as_ref().and_then(|f| f.exploration.clone())).collect();
    let received = finals.into_iter().map(|f| f.map(|f| f.bytes)).collect();
    Ok(SimulationReport { outcome, crypto_seconds, hospitals: node_ids, received, explorations, left_out, tracking })
}

fn invalid(key: &'static str, value: impl ToString, expected: &str) -> FederationError {
    crate::error::ConfigError::Invalid { key, value: value.to_string(), expected: expected.into() }.into()
}
