//! The `fedcare` command line.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use fedcare_node::{aggregator, config, hospital, inspect, simulate, tls, trainer};

/// fedcare: federated training of readmission-risk models across hospitals, with encrypted
/// model updates that only the hospitals together can decrypt.
#[derive(Debug, Parser)]
#[command(name = "fedcare", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole federation on this machine: an aggregator and N hospitals on 127.0.0.1, over
    /// gRPC with mTLS and threshold encryption, on a synthetic non-IID cohort in the Diabetes-130
    /// schema (or on --data).
    Simulate {
        /// Hospitals (2 to 64).
        #[arg(long, default_value_t = 5)]
        hospitals: usize,
        /// Training rounds.
        #[arg(long, default_value_t = 5)]
        rounds: u32,
        /// Patients of an average hospital in the synthetic cohort (sizes vary around it).
        #[arg(long, default_value_t = 3000)]
        rows: usize,
        /// Use these hospital files (Diabetes-130 schema, one `*.csv` per hospital) instead of
        /// the built-in synthetic cohort; --hospitals is then the number of files.
        #[arg(long)]
        data: Option<PathBuf>,
        /// The schema of the --data files: diabetes130 (the default), diabetes130-all or a schema
        /// TOML path.
        #[arg(long)]
        schema: Option<String>,
        /// Hidden layer widths, comma-separated (empty: logistic regression).
        #[arg(long, default_value = "32,16", value_delimiter = ',')]
        hidden: Vec<u32>,
        /// Local epochs per round.
        #[arg(long, default_value_t = 1)]
        epochs: u32,
        /// Server rule: fedavg, fedprox or fedadam.
        #[arg(long, default_value = "fedavg")]
        rule: String,
        /// Seed of the cohort, the initial model and the batch orders.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Output directory (metrics.jsonl, model.bin).
        #[arg(long, default_value = "fedcare-sim")]
        out: PathBuf,
        /// Local trainer of every hospital: cpu, gpu, or auto (GPU when a hardware adapter exists).
        #[arg(long, default_value = "cpu")]
        trainer: String,
    },
    /// Run the aggregator.
    Serve {
        /// aggregator.toml.
        #[arg(long)]
        config: PathBuf,
    },
    /// Run a hospital node on its data.
    Join {
        /// hospital.toml.
        #[arg(long)]
        config: PathBuf,
        /// The hospital's CSV (numeric feature columns and a 0/1 `label` column).
        #[arg(long)]
        data: PathBuf,
        /// Where to write the final global model.
        #[arg(long, default_value = "fedcare-model.bin")]
        out: PathBuf,
        /// Local trainer: cpu, gpu, or auto (GPU when a hardware adapter exists); overrides
        /// `trainer` in hospital.toml.
        #[arg(long)]
        trainer: Option<String>,
    },
    /// List the GPU adapters wgpu sees (name, backend, type, limits) and which one the GPU
    /// trainer would use (FEDCARE_ADAPTER and WGPU_BACKEND override).
    Devices,
    /// Write a synthetic cohort in the exact schema of the UCI Diabetes-130 file: one CSV per
    /// hospital, non-IID, with repeat patients and about 11 % readmissions within 30 days.
    Synth {
        /// Hospitals.
        #[arg(long, default_value_t = 5)]
        hospitals: usize,
        /// Patients of an average hospital (sizes vary from half to one and a half times).
        #[arg(long, default_value_t = 2000)]
        patients: usize,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Write a development PKI: a CA, the aggregator's certificate, one per hospital.
    Certs {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Hospital names, comma-separated (they become the node ids).
        #[arg(long, value_delimiter = ',', required = true)]
        hospitals: Vec<String>,
        /// Extra host names for the aggregator's certificate (localhost and 127.0.0.1 are always in).
        #[arg(long, value_delimiter = ',')]
        server_names: Vec<String>,
    },
    /// Score a CSV with a trained model: writes `line,group,probability` rows.
    Predict {
        /// The model file.
        #[arg(long)]
        model: PathBuf,
        /// The CSV to score.
        #[arg(long)]
        data: PathBuf,
        /// Where to write the scores.
        #[arg(long)]
        out: PathBuf,
        /// The data's schema: diabetes130, diabetes130-all or a schema TOML path.
        #[arg(long, default_value = "diabetes130")]
        schema: String,
        /// Bad rows skipped (and counted) before the file is refused; 0 refuses at the first.
        #[arg(long, default_value_t = 100)]
        bad_rows_limit: usize,
    },
    /// Plot a federation's metrics.jsonl as PNG files: AUROC and AUPRC per round, loss per round,
    /// the ROC curve and the calibration curve of the last evaluated model; plus summary.md.
    Report {
        /// The metrics.jsonl that `serve` or `simulate` wrote.
        #[arg(long)]
        metrics: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a model file's architecture, schema and metrics.
    Inspect {
        /// The model file (written by fedcare).
        model: PathBuf,
    },
    /// Run the threshold-encryption protocol once on this machine: check that the decrypted
    /// sum is exact and print the time of every phase and the bytes on the wire.
    BenchCrypto {
        /// Values per party (model parameters).
        #[arg(long, default_value_t = 1_000_000)]
        values: usize,
        /// Parties (hospitals), 1 to 64.
        #[arg(long, default_value_t = 10)]
        parties: usize,
        /// Seed of the random plaintexts (keys and noise always come from the OS).
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Simulate { hospitals, rounds, rows, hidden, epochs, rule, seed, out, data, schema, trainer } => {
            let options = simulate::SimulateOptions {
                trainer,
                hospitals,
                rounds,
                rows,
                hidden,
                epochs,
                rule,
                seed,
                out: out.clone(),
                data,
                schema: schema.as_deref().map(config::load_schema).transpose()?,
                ..simulate::SimulateOptions::default()
            };
            println!(
                "fedcare simulate: {hospitals} hospitals, {rounds} rounds, mTLS + threshold encryption on 127.0.0.1"
            );
            let report = runtime()?.block_on(simulate::run(&options, None))?;
            // On a terminal the progress display already printed each row as its round ended.
            if !std::io::stderr().is_terminal() {
                println!("{}", simulate::table_header());
                for (record, crypto) in report.outcome.records.iter().zip(&report.crypto_seconds) {
                    println!("{}", simulate::table_row(record, *crypto));
                }
            }
            println!(
                "AUROC is that of the model each session started from (the last row: the final model), on every \
                 hospital's held-out rows, from encrypted score histograms."
            );
            println!("wrote {} and {}", out.join("metrics.jsonl").display(), out.join("model.bin").display());
            Ok(())
        }
        Command::Serve { config } => {
            tls::install_crypto_provider();
            let mut config: config::AggregatorConfig = config::load(&config)?;
            config.apply_schema()?;
            let server_tls = tls::server_tls(&config.tls.ca, &config.tls.cert, &config.tls.key)?;
            let listen = config.listen.clone();
            let aggregator = aggregator::Aggregator::new(config)?;
            let outcome = runtime()?.block_on(async {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                tracing::info!(%listen, "aggregator listening");
                aggregator.serve_until(listener, server_tls, shutdown_signal()).await
            })?;
            match outcome.failure {
                Some(failure) if failure.contains("shutdown signal") => {
                    println!("stopped by a signal after {} sessions; start again to resume", outcome.records.len());
                    Ok(())
                }
                Some(failure) => anyhow::bail!("the federation stopped early: {failure}"),
                None => {
                    println!("federation done: {} sessions", outcome.records.len());
                    Ok(())
                }
            }
        }
        Command::Devices => devices(),
        Command::Join { config, data, out, trainer: trainer_name } => {
            tls::install_crypto_provider();
            let config: config::HospitalConfig = config::load(&config)?;
            let data = match &config.schema {
                Some(name) => {
                    let schema = config::load_schema(name)?;
                    let policy = match config.bad_rows_limit {
                        0 => fedcare_node::ingest::BadRows::Reject,
                        limit => fedcare_node::ingest::BadRows::Skip { limit },
                    };
                    let (table, report) = fedcare_node::ingest::read_csv(&data, &schema, policy)?;
                    eprintln!(
                        "read {} rows ({} dropped by the schema, {} bad rows skipped{})",
                        report.rows,
                        report.dropped,
                        report.skipped_count,
                        report
                            .skipped
                            .first()
                            .map_or(String::new(), |b| format!(", first at line {}: {}", b.line, b.reason))
                    );
                    hospital::HospitalData::Table { table, schema: Box::new(schema) }
                }
                None => hospital::HospitalData::Ready(fedcare_node::data::load_csv(&data)?),
            };
            let connection = hospital::Connection {
                url: config.aggregator.clone(),
                tls: tls::client_tls(&config.tls.ca, &config.tls.cert, &config.tls.key, &config.server_name)?,
                federation_id: config.federation_id.clone(),
            };
            let node = hospital::HospitalNode::with_data(
                connection,
                data,
                trainer::by_name(trainer_name.as_deref().unwrap_or(&config.trainer))?,
            );
            let model = runtime()?.block_on(async {
                tokio::select! {
                    model = node.run() => model.map(Some),
                    () = shutdown_signal() => Ok(None),
                }
            })?;
            match model {
                Some(model) => {
                    std::fs::write(&out, model.to_bytes()?)
                        .with_context(|| format!("cannot write {}", out.display()))?;
                    println!("federation done: final model written to {}", out.display());
                }
                None => println!("stopped by a signal; start again to rejoin at the next round"),
            }
            Ok(())
        }
        Command::Synth { hospitals, patients, out, seed } => {
            let paths = fedcare_node::synth::write_cohort(&out, hospitals, patients, seed)?;
            println!("wrote {} hospital files in the Diabetes-130 schema to {}", paths.len(), out.display());
            Ok(())
        }
        Command::Certs { out, hospitals, server_names } => {
            tls::generate_dev_pki(&out, &hospitals, &server_names)?;
            println!("wrote a development PKI for {} hospitals to {}", hospitals.len(), out.display());
            Ok(())
        }
        Command::Predict { model, data, out, schema, bad_rows_limit } => {
            let model = inspect::read_model_file(&model)?;
            let schema = config::load_schema(&schema)?;
            let policy = match bad_rows_limit {
                0 => fedcare_node::ingest::BadRows::Reject,
                limit => fedcare_node::ingest::BadRows::Skip { limit },
            };
            let report = fedcare_node::predict::predict_file(&model, &schema, &data, &out, policy)?;
            println!(
                "scored {} rows ({} dropped by the schema, {} bad rows skipped) into {}",
                report.rows,
                report.dropped,
                report.skipped_count,
                out.display()
            );
            Ok(())
        }
        Command::Report { metrics, out } => {
            let records = fedcare_node::report::read_metrics(&metrics)?;
            let written = fedcare_node::report::write_report(&records, &out)?;
            let names: Vec<String> =
                written.iter().filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).collect();
            println!("wrote {} to {}", names.join(", "), out.display());
            Ok(())
        }
        Command::Inspect { model } => inspect::read_model_file(&model).map(|m| print!("{}", inspect::describe(&m))),
        Command::BenchCrypto { values, parties, seed } => {
            fedcare_node::bench_crypto::run(values, parties, seed).map(|report| print!("{}", report.table()))
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `fedcare devices`: the adapters and the choice `gpu` and `auto` would make.
fn devices() -> Result<()> {
    use fedcare_gpu_trainer::device;
    let selection = device::Selection::from_env();
    let adapters = device::list_adapters(&selection);
    println!("backends searched: {:?} (WGPU_BACKEND to change)", selection.backends);
    if adapters.is_empty() {
        println!("no GPU adapters found; --trainer auto trains on the CPU");
        return Ok(());
    }
    println!(
        "{:>3}  {:<40} {:<8} {:<14} {:>12} {:>12} {:>10}  driver",
        "#", "name", "backend", "type", "max binding", "max buffer", "wg/dim"
    );
    for a in &adapters {
        println!(
            "{:>3}  {:<40} {:<8} {:<14} {:>9} MiB {:>9} MiB {:>10}  {}",
            a.index,
            a.name,
            a.backend,
            format!("{:?}", a.device_type),
            a.max_storage_buffer_binding_size >> 20,
            a.max_buffer_size >> 20,
            a.max_compute_workgroups_per_dimension,
            a.driver
        );
    }
    match device::preferred(&adapters, selection.adapter.as_deref(), selection.backends) {
        Ok(index) => {
            let chosen = &adapters[index];
            println!("--trainer gpu uses [{index}] {}", chosen.name);
            if chosen.is_hardware() {
                println!("--trainer auto uses [{index}] {}", chosen.name);
            } else {
                println!("--trainer auto uses the CPU ([{index}] is a software adapter)");
            }
        }
        Err(e) => println!("--trainer gpu: {e}"),
    }
    Ok(())
}
