//! `fedcare inspect`: a human-readable summary of a model file.
//!
//! Reads at most the model file's size limit and refuses anything that is not a valid model
//! file with the decoder's own error.

use core::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use fedcare_core::ModelFile;

/// `fedcare inspect`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The model file (written by fedcare).
    model: PathBuf,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let model = fedcare_data::predict::read_model_file(&args.model)?;
    print!("{}", describe(&model));
    Ok(())
}

/// A multi-line description of a model file.
fn describe(model: &ModelFile) -> String {
    let spec = &model.spec;
    let mut widths = vec![spec.input_width().to_string()];
    widths.extend(spec.hidden().iter().map(ToString::to_string));
    widths.push("1".into());
    let kind = if spec.hidden().is_empty() { "logistic regression" } else { "MLP (ReLU)" };
    let mut out = String::new();
    let _ = writeln!(out, "model:      {kind} {}", widths.join("-"));
    let _ = writeln!(out, "parameters: {}", model.params.len());
    let _ = writeln!(out, "schema:     {}", model.schema_id);
    if !model.feature_scaling.is_empty() {
        let _ = writeln!(
            out,
            "scaling:    {} numeric inputs standardised with federated statistics",
            model.feature_scaling.len()
        );
    }
    if !model.category_buckets.is_empty() {
        let _ = writeln!(
            out,
            "top_k:      {} categorical columns one-hot over the federation's most frequent buckets",
            model.category_buckets.len()
        );
    }
    for (name, value) in &model.metrics {
        let _ = writeln!(out, "{name:<11} {value}", name = format!("{name}:"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcare_core::ModelSpec;

    #[test]
    fn describes_and_reads_back_a_model_file() {
        let spec = ModelSpec::mlp(4, &[3]).unwrap();
        let params = vec![0.5; spec.param_count()];
        let mut model = ModelFile::new(spec, params, "test/v1").unwrap();
        model.metrics.insert("auroc".into(), 0.75);
        let text = describe(&model);
        assert!(
            text.contains("MLP (ReLU) 4-3-1") && text.contains("parameters: 19") && text.contains("auroc:"),
            "{text}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        std::fs::write(&path, model.to_bytes().unwrap()).unwrap();
        assert_eq!(fedcare_data::predict::read_model_file(&path).unwrap(), model);
        std::fs::write(&path, b"not a model").unwrap();
        let error = fedcare_data::predict::read_model_file(&path).unwrap_err().to_string();
        assert!(error.contains("not a usable model file") && error.contains("truncated"), "{error}");
    }
}
