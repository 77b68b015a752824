//! `fedcare synth`: a synthetic cohort in the exact schema of the UCI Diabetes-130 file.

use std::path::PathBuf;

use anyhow::Result;

/// `fedcare synth`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Hospitals (1 to 64).
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
}

pub(crate) fn run(args: Args) -> Result<()> {
    let paths = fedcare_data::synth::write_cohort(&args.out, args.hospitals, args.patients, args.seed)?;
    println!("wrote {} hospital files in the Diabetes-130 schema to {}", paths.len(), args.out.display());
    Ok(())
}
