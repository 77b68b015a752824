//! The `fedcare` command line.

use std::path::PathBuf;
use std::process::ExitCode;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { model } => {
            fedcare_node::inspect::read_model_file(&model).map(|m| print!("{}", fedcare_node::inspect::describe(&m)))
        }
        Command::BenchCrypto { values, parties, seed } => {
            fedcare_node::bench_crypto::run(values, parties, seed).map(|report| print!("{}", report.table()))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
