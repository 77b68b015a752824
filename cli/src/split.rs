//! `fedcare split`: one file (the published Diabetes-130 file has no hospital column) into the
//! site files of a consortium, by patient, alike or skewed by a column, with an optional file of
//! held-out patients no site has ([`fedcare_data::split`]).

use std::path::PathBuf;

use anyhow::Result;
use fedcare_data::split::{SplitBy, SplitPlan, split_file};

/// `fedcare split`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The CSV to split (for example the UCI `diabetic_data.csv`).
    #[arg(long)]
    data: PathBuf,
    /// Site files to write (2 to 64): OUT/sites/site-1.csv …
    #[arg(long, default_value_t = 5)]
    sites: usize,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// `patient`: sites alike, each patient to a site at random; a column's name: sites skewed
    /// by it (80 % of the patients of each value at that value's home site).
    #[arg(long, default_value = "patient")]
    by: String,
    /// Share of the patients held out of every site, in OUT/holdout.csv (0: none).
    #[arg(long, default_value_t = 0.0)]
    holdout: f64,
    /// The column of the patient id (every row of a patient goes to one file).
    #[arg(long, default_value = "patient_nbr")]
    group: String,
    /// Seed of the split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let by = if args.by == "patient" { SplitBy::Patient } else { SplitBy::Column(args.by.clone()) };
    let plan = SplitPlan { sites: args.sites, by, holdout: args.holdout, seed: args.seed, group: args.group };
    let report = split_file(&args.data, &args.out, &plan)?;
    println!("{:<28} {:>9} {:>9}", "file", "patients", "rows");
    for file in report.sites.iter().chain(&report.holdout) {
        println!("{:<28} {:>9} {:>9}", file.path.display(), file.patients, file.rows);
    }
    Ok(())
}
