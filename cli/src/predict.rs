//! `fedcare predict`: scores a CSV with a trained model (the aggregator's `model.bin` or the one
//! a hospital received: they are the same file).

use std::path::PathBuf;

use anyhow::Result;
use fedcare_data::BadRows;
use fedcare_data::predict::{predict_file, read_model_file};

/// A model file and a CSV to score with it: what `predict` and `evaluate` read.
#[derive(Debug, clap::Args)]
pub(crate) struct ModelAndData {
    /// The model file.
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// The CSV to score, in --schema.
    #[arg(long)]
    pub(crate) data: PathBuf,
    /// The data's schema: diabetes130, diabetes130-all or a schema TOML path.
    #[arg(long, default_value = "diabetes130")]
    pub(crate) schema: String,
    /// The file of the consortium's top_k key, for a model trained under one (its schema id ends
    /// in +top_k-key:FINGERPRINT; `fedcare inspect` shows it).
    #[arg(long)]
    pub(crate) top_k_key: Option<PathBuf>,
    /// Bad rows skipped (and counted) before the file is refused; 0 refuses at the first.
    #[arg(long, default_value_t = 100)]
    pub(crate) bad_rows_limit: usize,
}

impl ModelAndData {
    /// The model file and the schema (keyed by the top_k key when given).
    pub(crate) fn model_and_schema(&self) -> Result<(fedcare_core::ModelFile, fedcare_data::Schema)> {
        Ok((read_model_file(&self.model)?, crate::top_k_key::schema(&self.schema, self.top_k_key.as_deref())?))
    }
}

/// `fedcare predict`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    input: ModelAndData,
    /// Where to write the scores (`line,group,probability`; `line` is the row's line in --data,
    /// the header being line 1, for LF and CRLF files alike).
    #[arg(long)]
    out: PathBuf,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let (model, schema) = args.input.model_and_schema()?;
    let input = &args.input;
    let scored = predict_file(&model, &schema, &input.data, &args.out, BadRows::from_limit(input.bad_rows_limit))?;
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
