//! The `fedcare` command line: one module a command, each turning its arguments into calls of
//! the library crates and their results into output. The only crate with clap, indicatif,
//! plotters and anyhow.
#![forbid(unsafe_code)]

mod bench_crypto;
mod bench_train;
mod card;
mod certs;
mod devices;
mod evaluate;
mod explore;
mod export;
mod health;
mod html;
mod inspect;
mod join;
mod predict;
mod report;
mod serve;
mod simulate;
mod split;
mod subgroups;
mod synth;
mod top_k_key;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

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
    Simulate(simulate::Args),
    /// Explore the data before training: every column's rows, missing values, histogram or
    /// categories and label rate, pooled across hospitals under the threshold encryption (a
    /// one-machine federation, like simulate), or of one hospital's own file (--local). Writes
    /// explore.json and a self-contained explore.html; no count below --min-cell in either.
    Explore(explore::Args),
    /// Run the aggregator.
    Serve(serve::Args),
    /// Run a hospital node on its data.
    Join(join::Args),
    /// Ask an aggregator's health endpoint (grpc.health.v1) whether it serves: exit 0 if it
    /// does, 1 otherwise (a container's HEALTHCHECK, no shell needed).
    Health(health::Args),
    /// List the GPU adapters wgpu sees (name, backend, type, limits) and which one the GPU
    /// trainer would use (FEDCARE_ADAPTER and WGPU_BACKEND override).
    Devices,
    /// Write a synthetic cohort in the exact schema of the UCI Diabetes-130 file: one CSV per
    /// hospital, non-IID, with repeat patients and about 11 % readmissions within 30 days.
    Synth(synth::Args),
    /// Split one file (the UCI diabetic_data.csv has no hospital column) into site files by
    /// patient, alike or skewed by a column, with an optional file of held-out patients.
    Split(split::Args),
    /// Write the consortium's CA and the aggregator's certificate; with --hospitals also a key and
    /// certificate per hospital and the roster (a development PKI). Private keys mode 0600;
    /// existing keys are never overwritten.
    Certs(certs::Args),
    /// Make this hospital's own key and a certificate request for the consortium's CA; prints
    /// the key's fingerprint for every member's roster.
    Keygen(certs::KeygenArgs),
    /// Sign a hospital's certificate request with the consortium's CA; prints its roster line.
    Sign(certs::SignArgs),
    /// Make the consortium's top_k key: the secret every hospital keys its top_k columns' hash
    /// with (top_k_key in hospital.toml), so that pooled bucket counts cannot be matched to codes
    /// by hashing a dictionary; prints the fingerprint the aggregator is given instead.
    TopKKey(top_k_key::Args),
    /// Score a CSV with a trained model: writes `line,group,probability` rows, where `line` is the
    /// row's line in the file (the header is line 1; LF and CRLF files alike), and prints the
    /// model's AUROC, AUPRC and calibration error on the file's labels.
    Predict(predict::Args),
    /// Plot a federation's metrics.jsonl as PNG files: AUROC and AUPRC per round, loss per round,
    /// the ROC curve and the calibration curve of the last evaluated model; plus summary.md and
    /// report.html (the four plots and the tables in one self-contained page).
    Report(report::Args),
    /// Print a model file's architecture, schema and metrics.
    Inspect(inspect::Args),
    /// Write a model card of a model file (card.html, self-contained, and card.md): intended use,
    /// the schema and inputs, the pooled rows, how it was trained, its figures overall and per
    /// subgroup with plots, the hospitals that endorsed exactly this file, and its limitations.
    Card(card::Args),
    /// Score this hospital's own labelled CSV with a model file, locally (nothing leaves the
    /// machine): the model's figures overall and per subgroup beside the federation's from the
    /// file, in evaluate.json and a self-contained evaluate.html.
    Evaluate(evaluate::Args),
    /// Write a model file as an ONNX graph on its encoded inputs (dense layers and ReLU, or one
    /// tree ensemble; its calibration; sigmoid), with the schema, input names and feature scaling
    /// in its metadata:
    /// `fedcare export model.bin --onnx model.onnx`.
    Export(export::Args),
    /// Run the threshold-encryption protocol once on this machine: check that the decrypted
    /// sum is exact and print the time of every phase and the bytes on the wire.
    BenchCrypto(bench_crypto::Args),
    /// Measure training throughput, the CPU trainer (one thread) against the GPU trainer, on the
    /// problem of the PyTorch peer: one table of samples per second.
    BenchTrain(bench_train::Args),
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub(crate) async fn shutdown_signal() {
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

/// The multi-threaded async runtime the network commands run on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

/// Blocking threads of the aggregator's runtime (decoding uploads, finishing the aggregate and
/// the decryption, writing snapshots). Few: every thread that touches the large buffers gets
/// its own allocator arena, which keeps what it once held. In the 32 × 1M load test the
/// aggregator's peak RSS was 315 MiB with tokio's default (up to 512 threads), 212–260 with 4
/// (nine runs, 2026-12-02).
const AGGREGATOR_BLOCKING_THREADS: usize = 4;

/// The aggregator's runtime: [`runtime`] with [`AGGREGATOR_BLOCKING_THREADS`].
pub(crate) fn aggregator_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(AGGREGATOR_BLOCKING_THREADS)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Simulate(args) => simulate::run(args),
        Command::Explore(args) => explore::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Join(args) => join::run(args),
        Command::Health(args) => health::run(args),
        Command::Devices => devices::run(),
        Command::Synth(args) => synth::run(args),
        Command::Split(args) => split::run(args),
        Command::Certs(args) => certs::run(args),
        Command::Keygen(args) => certs::keygen(args),
        Command::Sign(args) => certs::sign(args),
        Command::TopKKey(args) => top_k_key::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Report(args) => report::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Card(args) => card::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Export(args) => export::run(args),
        Command::BenchCrypto(args) => bench_crypto::run(args),
        Command::BenchTrain(args) => bench_train::run(args),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colours on a terminal only: a container's log (or a file) gets plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", error_text(&error));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each cause once: a cause whose text the message before it
/// already holds (typed errors put their source in their own message) is not repeated.
fn error_text(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[test]
    fn an_error_names_each_cause_once() {
        // A typed error that carries its source in its message, under a context that does not.
        let schema = fedcare_data::Schema::by_name("/nonexistent/schema.toml").unwrap_err();
        let error = anyhow::Error::new(schema).context("loading the schema");
        let text = error_text(&error);
        assert!(text.starts_with("loading the schema: cannot read /nonexistent/schema.toml: "), "{text}");
        // The operating system's reason, the chain's last cause, appears once.
        let os_reason = error.chain().last().unwrap().to_string();
        assert_eq!(text.matches(&os_reason).count(), 1, "{text}");
        assert_eq!(text.matches("/nonexistent/schema.toml").count(), 1, "{text}");
    }
}
