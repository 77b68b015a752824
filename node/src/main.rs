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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect { model } => {
            fedcare_node::inspect::read_model_file(&model).map(|m| print!("{}", fedcare_node::inspect::describe(&m)))
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
