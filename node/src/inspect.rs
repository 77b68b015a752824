//! `fedcare inspect`: a human-readable summary of a model file.
//!
//! Reads at most [`fedcare_core::model_file::DEFAULT_SIZE_LIMIT`] bytes and refuses anything
//! that is not a valid model file with the decoder's own error.

use core::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;

use anyhow::{Context, Result};
use fedcare_core::ModelFile;
use fedcare_core::model_file::DEFAULT_SIZE_LIMIT;

/// Reads and decodes the model file at `path`, never reading more than the size limit.
pub fn read_model_file(path: &Path) -> Result<ModelFile> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    // Read one byte past the limit so that an oversized file is refused, not truncated.
    file.take(DEFAULT_SIZE_LIMIT as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    ModelFile::from_bytes(&bytes).with_context(|| format!("{} is not a usable model file", path.display()))
}

/// A multi-line description of a model file.
pub fn describe(model: &ModelFile) -> String {
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

        let dir = std::env::temp_dir().join(format!("fedcare-inspect-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.bin");
        std::fs::write(&path, model.to_bytes().unwrap()).unwrap();
        assert_eq!(read_model_file(&path).unwrap(), model);
        std::fs::write(&path, b"not a model").unwrap();
        let error = format!("{:#}", read_model_file(&path).unwrap_err());
        assert!(error.contains("not a usable model file") && error.contains("truncated"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
