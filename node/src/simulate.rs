//! `fedcare simulate`: a whole federation on this machine — the aggregator and N hospital nodes
//! on 127.0.0.1 over real gRPC with mTLS and threshold encryption, on a synthetic non-IID cohort
//! in the Diabetes-130 schema (or hospital files given with `data`), with certificates made in a
//! temporary directory.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, ensure};
use core::time::Duration;
use indicatif::{ProgressBar, ProgressStyle};

use crate::aggregator::{Aggregator, Outcome, RoundRecord};
use crate::config::{AggregatorConfig, ModelConfig, ServerSettings, TlsFiles, TrainingSettings};
use crate::hospital::{Connection, HospitalData, HospitalNode, HospitalStats, UpdateObserver};
use crate::ingest::{BadRows, read_csv};
use crate::schema::Schema;
use crate::tls;

/// Settings of a simulation.
#[derive(Debug, Clone)]
pub struct SimulateOptions {
    /// Hospitals.
    pub hospitals: usize,
    /// Training rounds.
    pub rounds: u32,
    /// Rows of a mid-sized hospital (sizes vary around it).
    pub rows: usize,
    /// Hidden layer widths.
    pub hidden: Vec<u32>,
    /// Local epochs per round.
    pub epochs: u32,
    /// Learning rate of the hospitals' local optimizer (Adam).
    pub learning_rate: f32,
    /// Local mini-batch size.
    pub batch_size: u32,
    /// Server rule: fedavg, fedprox or fedadam.
    pub rule: String,
    /// Seed of the cohort, the initial model and the batch orders.
    pub seed: u64,
    /// Output directory (metrics.jsonl, model.bin).
    pub out: PathBuf,
    /// Phase deadline in seconds.
    pub phase_timeout_secs: u64,
    /// Draw a progress bar and the table.
    pub show_progress: bool,
    /// Fault injection: hospital `index` stops answering after `tasks` tasks.
    pub vanish: Option<(usize, usize)>,
    /// Hospital CSV files in the Diabetes-130 schema (one per hospital, `*.csv`); `None`: a
    /// synthetic cohort in that schema, `rows` patients per average hospital.
    pub data: Option<PathBuf>,
    /// Local trainer of every hospital (`cpu`, `gpu` or `auto`).
    pub trainer: String,
    /// The schema of the `data` files; `None`: the built-in Diabetes-130 schema (death and
    /// hospice encounters dropped). The synthetic cohort needs the Diabetes-130 schema.
    pub schema: Option<Schema>,
}

impl Default for SimulateOptions {
    fn default() -> Self {
        Self {
            hospitals: 5,
            rounds: 5,
            rows: 3000,
            hidden: vec![32, 16],
            epochs: 1,
            learning_rate: TrainingSettings::default().learning_rate,
            batch_size: TrainingSettings::default().batch_size,
            rule: "fedavg".into(),
            seed: 7,
            out: "fedcare-sim".into(),
            phase_timeout_secs: 60,
            show_progress: true,
            vanish: None,
            data: None,
            trainer: "cpu".into(),
            schema: None,
        }
    }
}

/// What a simulation produced.
#[derive(Debug, Clone)]
pub struct SimulationReport {
    /// The aggregator's outcome.
    pub outcome: Outcome,
    /// Hospital-side crypto seconds attributed to each record (same order).
    pub crypto_seconds: Vec<f64>,
}

/// Runs a whole federation; `observer` sees every hospital's plaintext local update (tests).
pub async fn run(options: &SimulateOptions, observer: Option<UpdateObserver>) -> Result<SimulationReport> {
    tls::install_crypto_provider();
    let pki = tempfile::tempdir().context("cannot create a temporary directory for certificates")?;
    let files = match &options.data {
        Some(dir) => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .with_context(|| format!("cannot read {}", dir.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|e| e == "csv"))
                .collect();
            files.sort();
            files
        }
        None => {
            ensure!((2..=64).contains(&options.hospitals), "--hospitals must be 2 to 64");
            crate::synth::write_cohort(&pki.path().join("cohort"), options.hospitals, options.rows, options.seed)?
        }
    };
    ensure!((2..=64).contains(&files.len()), "{} hospital files: a federation needs 2 to 64", files.len());
    ensure!(
        options.schema.is_none() || options.data.is_some(),
        "the synthetic cohort is in the Diabetes-130 schema: give the files of another schema with data"
    );
    let schema = options.schema.clone().unwrap_or_else(|| Schema::diabetes130(true));
    let mut tables = Vec::with_capacity(files.len());
    let mut names = Vec::with_capacity(files.len());
    for (index, path) in files.iter().enumerate() {
        let (table, report) = read_csv(path, &schema, BadRows::Skip { limit: 1000 })?;
        if report.skipped_count > 0 {
            tracing::warn!(file = %path.display(), skipped = report.skipped_count, first = ?report.skipped.first(), "bad rows skipped");
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let name = if tls::check_name(stem).is_ok() { stem.to_string() } else { format!("hospital-{:02}", index + 1) };
        names.push(name);
        tables.push(table);
    }
    tls::generate_dev_pki(pki.path(), &names, &[])?;
    let ca = pki.path().join(tls::files::CA_CERT);

    let config = AggregatorConfig {
        federation_id: "fedcare-simulation".into(),
        listen: "127.0.0.1:0".into(),
        hospitals: names.clone(),
        min_hospitals: 2,
        rounds: options.rounds,
        phase_timeout_secs: options.phase_timeout_secs,
        join_timeout_secs: 30,
        out_dir: options.out.clone(),
        seed: options.seed,
        eval_bins: 1024,
        schema_id: schema.id.clone(),
        numeric_features: schema.numeric.len() as u32,
        top_k: schema.top_k_shapes(),
        schema: None,
        model: ModelConfig { input_width: schema.width() as u32, hidden: options.hidden.clone() },
        training: TrainingSettings {
            epochs: options.epochs,
            learning_rate: options.learning_rate,
            batch_size: options.batch_size,
            seed: options.seed,
            ..TrainingSettings::default()
        },
        server: ServerSettings { rule: options.rule.clone(), ..ServerSettings::default() },
        tls: TlsFiles {
            ca: ca.clone(),
            cert: pki.path().join(tls::files::SERVER_CERT),
            key: pki.path().join(tls::files::SERVER_KEY),
        },
    };
    std::fs::create_dir_all(&options.out)?;
    let _ = std::fs::remove_file(options.out.join("metrics.jsonl"));
    let aggregator = Aggregator::new(config.clone())?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot listen on 127.0.0.1")?;
    let url = format!("https://localhost:{}", listener.local_addr()?.port());
    let server_tls = tls::server_tls(&config.tls.ca, &config.tls.cert, &config.tls.key)?;
    let serving = {
        let aggregator = aggregator.clone();
        tokio::spawn(async move { aggregator.serve(listener, server_tls).await })
    };

    let mut stats: Vec<Arc<Mutex<HospitalStats>>> = Vec::new();
    let mut nodes = Vec::new();
    for (index, name) in names.iter().enumerate() {
        let (cert, key) = tls::party_files(pki.path(), name);
        let connection = Connection {
            url: url.clone(),
            tls: tls::client_tls(&ca, &cert, &key, "localhost")?,
            federation_id: config.federation_id.clone(),
        };
        let data = HospitalData::Table { table: tables[index].clone(), schema: Box::new(schema.clone()) };
        let mut node = HospitalNode::with_data(connection, data, crate::trainer::by_name(&options.trainer)?);
        if let Some(observer) = &observer {
            node = node.with_observer(observer.clone());
        }
        if let Some((vanishing, tasks)) = options.vanish
            && vanishing == index
        {
            node.vanish_after_tasks = Some(tasks);
        }
        stats.push(node.stats());
        nodes.push(tokio::spawn(node.run()));
    }

    let progress = if options.show_progress {
        let bar = ProgressBar::new(u64::from(options.rounds) + 2);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} sessions {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.println(table_header());
        Some(bar)
    } else {
        None
    };
    let mut changes = aggregator.subscribe();
    let mut shown = 0;
    let mut crypto_seconds = Vec::new();
    let mut crypto_before = 0.0;
    loop {
        let records = aggregator.records();
        for record in &records[shown..] {
            let crypto_now: f64 = stats.iter().filter_map(|s| s.lock().ok()).map(|s| s.crypto.as_secs_f64()).sum();
            crypto_seconds.push(crypto_now - crypto_before);
            crypto_before = crypto_now;
            if let Some(bar) = &progress {
                bar.println(table_row(record, crypto_seconds[crypto_seconds.len() - 1]));
                bar.inc(1);
            }
        }
        shown = records.len();
        if serving.is_finished() {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), changes.changed()).await;
    }
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    let outcome = serving.await.context("aggregator task failed")??;
    for node in nodes {
        match tokio::time::timeout(Duration::from_secs(5), node).await {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(error))) => tracing::warn!("a hospital stopped with an error: {error:#}"),
            Ok(Err(error)) => tracing::warn!("a hospital task failed: {error}"),
            Err(_) => tracing::warn!("a hospital did not finish in time"),
        }
    }
    if let Some(failure) = &outcome.failure {
        anyhow::bail!("the federation stopped early: {failure}");
    }
    Ok(SimulationReport { outcome, crypto_seconds })
}

/// The table's header line.
pub fn table_header() -> String {
    format!(
        "{:>5} {:>9} {:>9} {:>10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}",
        "round", "kind", "hospitals", "train loss", "AUROC", "AUPRC", "time s", "up MB", "down MB", "crypto s"
    )
}

/// One table row; AUROC and AUPRC are those of the model the session started from, on all held-out rows.
pub fn table_row(record: &RoundRecord, crypto_seconds: f64) -> String {
    let opt = |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    format!(
        "{:>5} {:>9} {:>9} {:>10} {:>8} {:>8} {:>8.2} {:>9.2} {:>9.2} {:>9.2}",
        record.round,
        if record.attempt > 0 { format!("{}*{}", record.kind, record.attempt) } else { record.kind.to_string() },
        record.hospitals,
        opt(record.train_loss, 4),
        opt(record.auroc, 4),
        opt(record.auprc, 4),
        record.seconds,
        record.bytes_up as f64 / 1e6,
        record.bytes_down as f64 / 1e6,
        crypto_seconds
    )
}
