//! `fedcare predict`: scores a CSV with a trained model (the aggregator's `model.bin` or the one
//! a hospital received: they are the same file).

use std::path::PathBuf;

use anyhow::Result;
use fedcare_data::BadRows;
use fedcare_data::predict::{predict_file, read_model_file};

/// `fedcare predict`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The model file.
    #[arg(long)]
    model: PathBuf,
    /// The CSV to score.
    #[arg(long)]
    data: PathBuf,
    /// Where to write the scores (`line,group,probability`; `line` is the row's line in --data,
    /// the header being line 1, for LF and CRLF files alike).
    #[arg(long)]
    out: PathBuf,
    /// The data's schema: diabetes130, diabetes130-all or a schema TOML path.
    #[arg(long, default_value = "diabetes130")]
    schema: String,
    /// The file of the consortium's top_k key, for a model trained under one (its schema id ends
    /// in +top_k-key:FINGERPRINT; `fedcare inspect` shows it).
    #[arg(long)]
    top_k_key: Option<PathBuf>,
    /// Bad rows skipped (and counted) before the file is refused; 0 refuses at the first.
    #[arg(long, default_value_t = 100)]
    bad_rows_limit: usize,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let model = read_model_file(&args.model)?;
    let schema = crate::top_k_key::schema(&args.schema, args.top_k_key.as_deref())?;
    let scored = predict_file(&model, &schema, &args.data, &args.out, BadRows::from_limit(args.bad_rows_limit))?;
    println!("scored {} into {}", scored.ingest.summary(), args.out.display());
    if let Some(e) = &scored.evaluation {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        println!(
            "on its labels ({} rows, {} positive): AUROC {}, AUPRC {}, log loss {:.4}, Brier {:.4}, expected calibration \
             error {:.4}",
            e.rows,
            e.positives,
            opt(e.auroc),
            opt(e.auprc),
            e.log_loss,
            e.brier,
            fedcare_core::metrics::expected_calibration_error(&e.calibration)
        );
    }
    Ok(())
}
