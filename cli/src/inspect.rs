//! `fedcare inspect`: a human-readable summary of a model file, and a check of its endorsements.
//!
//! Reads at most the model file's size limit and refuses anything that is not a valid model
//! file with the decoder's own error. A file the federation wrote carries the hospitals' signed
//! endorsements of exactly its contents: each is shown (hospital, key fingerprint, session) and
//! checked (the signature, the digest of this file); a file whose endorsements do not hold is
//! reported and the command fails. With `--members` the signers must also be the ones a roster
//! pins (a `members.toml`, or a hospital's `[consortium]` members).

use core::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use fedcare_core::ModelFile;
use fedcare_federation::transcript::endorsements;

/// `fedcare inspect`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The model file (written by fedcare).
    model: PathBuf,
    /// A roster to check the endorsing hospitals against: a `members.toml` (name = "sha256:…"
    /// lines, as `fedcare certs` writes), or a hospital's `hospital.toml` (its
    /// `[consortium.members]`).
    #[arg(long)]
    members: Option<PathBuf>,
    /// Only describe the file: do not fail when it carries no endorsements (a file from
    /// `fedcare synth`, or one written before endorsements existed).
    #[arg(long)]
    unendorsed: bool,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let model = fedcare_data::predict::read_model_file(&args.model)?;
    print!("{}", describe(&model));
    if model.endorsements.is_empty() && args.unendorsed {
        println!("endorsed:   no");
        return Ok(());
    }
    let roster = args.members.as_deref().map(fedcare_federation::config::load_roster).transpose()?;
    let statements = endorsements(&model)
        .with_context(|| format!("{} is not what the federation endorsed", args.model.display()))?;
    let first = &statements[0].1;
    println!(
        "endorsed:   by {} hospitals, federation {:?}, session {} ({}): signatures and file digest verified",
        statements.len(),
        first.federation_id,
        first.session,
        first.kind
    );
    for (signed, _) in &statements {
        println!("  {:<24} {}", signed.signer.as_str(), signed.public_key.fingerprint());
        if let Some(roster) = &roster {
            roster.check(signed).with_context(|| format!("{}: an endorsement off the roster", args.model.display()))?;
        }
    }
    if roster.is_some() {
        println!("roster:     every endorsing hospital is on it with its pinned key");
    }
    Ok(())
}

/// A multi-line description of a model file.
fn describe(model: &ModelFile) -> String {
    let spec = &model.spec;
    let mut out = String::new();
    match &model.ensemble {
        Some(ensemble) => {
            let leaves: usize = ensemble.trees.iter().map(|t| t.leaves()).sum();
            let _ = writeln!(
                out,
                "model:      gradient-boosted trees over {} inputs: {} trees, {leaves} leaves, base margin {}",
                spec.input_width(),
                ensemble.trees.len(),
                ensemble.base_margin
            );
            let _ =
                writeln!(out, "trees:      blake3:{} (the same trees give the same digest)", trees_digest(ensemble));
        }
        None => {
            let kind = if spec.hidden().is_empty() { "logistic regression" } else { "MLP (ReLU)" };
            let _ = writeln!(out, "model:      {kind} {}", spec.architecture());
            let _ = writeln!(out, "parameters: {}", model.params.len());
            let _ = writeln!(
                out,
                "weights:    blake3:{} (the same weights give the same digest)",
                weights_digest(&model.params)
            );
        }
    }
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
    match model.calibration {
        Some(platt) => {
            let _ = writeln!(
                out,
                "calibrated: probability = σ({:.4}·z {} {:.4}) of the logit z (Platt, fitted on the held-out rows' \
                 score histogram)",
                platt.a,
                if platt.b < 0.0 { "−" } else { "+" },
                platt.b.abs()
            );
        }
        None => out += "calibrated: no (probabilities are the model's own)\n",
    }
    for (name, value) in &model.metrics {
        let _ = writeln!(out, "{name:<11} {value}", name = format!("{name}:"));
    }
    if !model.settings.is_empty() {
        let settings: Vec<String> = model.settings.iter().map(|(key, value)| format!("{key} = {value}")).collect();
        let _ = writeln!(out, "trained:    {}", settings.join("; "));
    }
    if let Some(subgroups) = &model.subgroups {
        let columns: Vec<String> = subgroups
            .columns
            .iter()
            .map(|column| {
                let shown = column.subgroups.iter().filter(|s| s.figures.shown().is_some()).count();
                format!("{} ({shown} of {} shown)", column.name, column.subgroups.len())
            })
            .collect();
        let _ = writeln!(
            out,
            "subgroups:  {} (none under {} rows, positives or negatives; `fedcare card` shows them)",
            columns.join(", "),
            subgroups.min_cell
        );
    }
    out
}

/// The first 16 bytes, in hex, of the BLAKE3 hash of the parameters' little-endian bytes: two
/// model files whose metrics or endorsements differ but whose weights are the same show the
/// same digest.
/// A short digest of an ensemble's trees: every split's input, threshold and children and every
/// leaf's value, in order.
fn trees_digest(ensemble: &fedcare_core::gbdt::Ensemble) -> String {
    use fedcare_core::gbdt::Node;
    let mut hasher = blake3::Hasher::new();
    hasher.update(&ensemble.base_margin.to_le_bytes());
    for tree in &ensemble.trees {
        hasher.update(&(tree.nodes.len() as u64).to_le_bytes());
        for node in &tree.nodes {
            match *node {
                Node::Split { input, threshold, left, right } => {
                    hasher.update(&[0]);
                    for word in [input, threshold.to_bits(), left, right] {
                        hasher.update(&word.to_le_bytes());
                    }
                }
                Node::Leaf { value } => {
                    hasher.update(&[1]);
                    hasher.update(&value.to_le_bytes());
                }
            }
        }
    }
    hasher.finalize().to_hex()[..32].to_owned()
}

fn weights_digest(params: &[f32]) -> String {
    let mut hasher = blake3::Hasher::new();
    for value in params {
        hasher.update(&value.to_le_bytes());
    }
    hasher.finalize().to_hex()[..32].to_owned()
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
        let mut other = model.clone();
        other.metrics.insert("auroc".into(), 0.5);
        assert_eq!(weights_digest(&other.params), weights_digest(&model.params));
        other.params[3] = 0.25;
        assert_ne!(weights_digest(&other.params), weights_digest(&model.params));
        assert!(text.contains(&format!("weights:    blake3:{}", weights_digest(&model.params))), "{text}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        std::fs::write(&path, model.to_bytes().unwrap()).unwrap();
        assert_eq!(fedcare_data::predict::read_model_file(&path).unwrap(), model);
        std::fs::write(&path, b"not a model").unwrap();
        let error = fedcare_data::predict::read_model_file(&path).unwrap_err().to_string();
        assert!(error.contains("not a usable model file") && error.contains("truncated"), "{error}");
    }
}
