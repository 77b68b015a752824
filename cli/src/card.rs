//! `fedcare card`: a model card of a model file, as a self-contained HTML page (`card.html`:
//! inline style and SVG plots, no script, nothing fetched) and Markdown (`card.md`), for a
//! hospital's ethics board: intended use and users, the schema and inputs, the hospitals that
//! endorsed exactly this file and the pooled rows, how it was trained (rule, rounds, model, ε and
//! δ when private), its overall figures and calibration, its figures per subgroup with plots, and
//! its limitations.
//!
//! Everything on the card comes from the file: the figures are the secure evaluation's (decrypted
//! sums over every hospital's held-out patients, [`fedcare_core::subgroup`]), small subgroups are
//! "too small" as the file has them, and the endorsements are checked before anything is
//! written: a file whose endorsements do not hold gets no card.

use core::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use fedcare_core::ModelFile;
use fedcare_federation::transcript::endorsements;

use crate::html::escape;

/// `fedcare card`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The model file (written by fedcare).
    model: PathBuf,
    /// Where to write card.html and card.md (default: the model file's folder).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Make a card of a file without endorsements (a file from `fedcare synth`, or written before
    /// endorsements existed); the card says it is not endorsed.
    #[arg(long)]
    unendorsed: bool,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let out = args.out.clone().unwrap_or_else(|| args.model.parent().map_or_else(PathBuf::new, Path::to_path_buf));
    let [html, markdown] = write(&args.model, &out, args.unendorsed)?;
    println!("wrote {} and {}", html.display(), markdown.display());
    Ok(())
}

/// Writes the card of the model file at `model` into `out` (created if missing): `card.html`
/// and `card.md`, their paths in that order.
pub(crate) fn write(model: &Path, out: &Path, unendorsed: bool) -> Result<[PathBuf; 2]> {
    let file = fedcare_data::predict::read_model_file(model)?;
    let card = Card::of(&file, unendorsed)
        .with_context(|| format!("{} is not what the federation endorsed", model.display()))?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let (html, markdown) = (out.join("card.html"), out.join("card.md"));
    std::fs::write(&html, card.html()?).with_context(|| format!("cannot write {}", html.display()))?;
    std::fs::write(&markdown, card.markdown()).with_context(|| format!("cannot write {}", markdown.display()))?;
    Ok([html, markdown])
}

/// What a card says, gathered from a model file and its checked endorsements.
struct Card<'a> {
    model: &'a ModelFile,
    /// The endorsing hospitals (name, key fingerprint) and the session, or `None`: not endorsed.
    endorsed: Option<(Vec<(String, String)>, String)>,
}

impl<'a> Card<'a> {
    /// The card of `model`; refuses endorsements that do not hold, and a file without any unless
    /// `unendorsed`.
    fn of(model: &'a ModelFile, unendorsed: bool) -> Result<Self> {
        if model.endorsements.is_empty() && unendorsed {
            return Ok(Self { model, endorsed: None });
        }
        let statements = endorsements(model)?;
        let first = &statements[0].1;
        let session = format!("federation {:?}, session {} ({})", first.federation_id, first.session, first.kind);
        let signers = statements
            .iter()
            .map(|(signed, _)| (signed.signer.as_str().to_owned(), signed.public_key.fingerprint().to_string()))
            .collect();
        Ok(Self { model, endorsed: Some((signers, session)) })
    }

    fn metric(&self, name: &str) -> Option<f64> {
        self.model.metrics.get(name).copied()
    }

    /// What the model predicts, for whom.
    fn intended_use(&self) -> String {
        let schema = &self.model.schema_id;
        let task = if schema.starts_with("diabetes130") {
            "the risk that an inpatient with diabetes is readmitted within 30 days of discharge \
             (`readmitted = <30` in the UCI Diabetes 130-US hospitals schema)"
                .to_owned()
        } else {
            format!("the positive label of schema {schema}")
        };
        format!(
            "Predicts {task}, from the encounter's record as the schema reads it, to help clinical and care-management \
             teams decide whom to follow up after discharge. It ranks and calibrates risk; it does not diagnose, and it \
             is not meant to withhold care from anyone. Users: the hospitals that trained it, their clinicians, \
             analysts and ethics boards, on patients like the ones it was trained on."
        )
    }

    /// Facts of the model and its training, as (name, value) rows.
    fn facts(&self) -> Vec<(String, String)> {
        let model = self.model;
        let spec = &model.spec;
        let kind = if spec.hidden().is_empty() { "logistic regression" } else { "MLP (ReLU)" };
        let described = match &model.ensemble {
            Some(_) => model.architecture(),
            None => format!("{kind} {} ({} parameters)", spec.architecture(), model.params.len()),
        };
        let mut rows = vec![
            ("model".to_owned(), described),
            ("schema".to_owned(), model.schema_id.clone()),
            (
                "inputs".to_owned(),
                format!(
                    "{} inputs: {} numeric standardised with the federation's statistics, {} top_k categorical \
                     columns over the federation's most frequent hash buckets, the rest one-hot",
                    spec.input_width(),
                    model.feature_scaling.len(),
                    model.category_buckets.len()
                ),
            ),
        ];
        if let (Some(train), Some(test)) = (self.metric("train_rows"), self.metric("test_rows")) {
            rows.push((
                "pooled rows".to_owned(),
                format!("{train:.0} training and {test:.0} held-out (split by patient at every hospital)"),
            ));
        }
        // The model and schema are above already.
        for (key, value) in model.settings.iter().filter(|(key, _)| !matches!(key.as_str(), "model" | "schema")) {
            rows.push((key.replace('_', " "), value.clone()));
        }
        match (self.metric("epsilon"), self.metric("delta")) {
            (Some(epsilon), Some(delta)) => rows.push((
                "differential privacy".to_owned(),
                format!(
                    "ε = {epsilon:.3} at δ = {delta:e} per patient, DP-SGD and the noisy pooled statistics together"
                ),
            )),
            _ => rows.push(("differential privacy".to_owned(), "none (no ε bounds what the model reveals)".to_owned())),
        }
        rows
    }

    /// The overall figures, as (name, value) rows.
    fn figures(&self) -> Vec<(String, String)> {
        let mut rows = Vec::new();
        let mut put = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                rows.push((name.to_owned(), value));
            }
        };
        put("AUROC", self.metric("auroc").map(|v| format!("{v:.4}")));
        put("AUPRC", self.metric("auprc").map(|v| format!("{v:.4}")));
        put("kept after", self.metric("round").map(|v| format!("{v:.0} training rounds (the best secure AUROC)")));
        put(
            "calibration",
            Some(match self.model.calibration {
                Some(platt) => format!(
                    "Platt scaling σ({:.4}·z {} {:.4}) of the logit z, fitted to the held-out score histogram",
                    platt.a,
                    if platt.b < 0.0 { "−" } else { "+" },
                    platt.b.abs()
                ),
                None => "none: the probabilities are the model's own".to_owned(),
            }),
        );
        rows
    }

    fn limitations(&self) -> Vec<String> {
        let mut out = vec![
            "The figures are measured on held-out patients of the same hospitals and years as the training data: they \
             say nothing of other hospitals, later years or other populations. Each hospital should check the model on \
             its own recent patients (`fedcare evaluate`) before use."
                .to_owned(),
            "Figures come from score histograms: every AUROC is within its stated binning bound of the exact one, and \
             the operating threshold lies on a bin edge."
                .to_owned(),
            "A subgroup with few rows has wide uncertainty even when shown; gaps between small subgroups may be noise. \
             Subgroups under the minimum are not shown at all."
                .to_owned(),
            "The label is what the records say: readmissions to other hospitals, deaths after discharge and care that \
             prevented a readmission are not seen, and may differ between groups."
                .to_owned(),
        ];
        if self.metric("epsilon").is_some() {
            out.push(
                "Under differential privacy the pooled figures carry each hospital's noise: small subgroups' figures \
                 are the least exact."
                    .to_owned(),
            );
        }
        if self.model.subgroups.is_none() {
            out.push("This file carries no figures per subgroup: performance across groups is unknown.".to_owned());
        }
        out
    }

    fn html(&self) -> Result<String> {
        let rows = |rows: &[(String, String)]| {
            let mut out = String::from("<table>\n");
            for (name, value) in rows {
                let _ = writeln!(out, "<tr><th>{}</th><td>{}</td></tr>", escape(name), escape(value));
            }
            out + "</table>\n"
        };
        let mut body = format!(
            "<header><h1>Model card</h1><p>{}</p></header>\n",
            escape(&format!("{} model of schema {}", self.model.architecture(), self.model.schema_id))
        );
        let _ = writeln!(
            body,
            "<section id=\"use\"><h2>Intended use and users</h2><p>{}</p></section>",
            escape(&self.intended_use())
        );
        let _ = writeln!(body, "<section id=\"model\"><h2>Model and training</h2>{}</section>", rows(&self.facts()));
        let _ = writeln!(
            body,
            "<section id=\"figures\"><h2>Performance on all held-out patients</h2>{}<p class=\"note\">From the \
             secure evaluation: sums over every hospital's held-out patients, decrypted jointly; no hospital's \
             patients were seen by anyone else.</p></section>",
            rows(&self.figures())
        );
        body += "<section id=\"subgroups\"><h2>Performance per subgroup</h2>\n";
        match &self.model.subgroups {
            Some(report) => body += &crate::subgroups::html(report)?,
            None => body += "<p>This file carries no figures per subgroup.</p>\n",
        }
        body += "</section>\n";
        body += "<section id=\"endorsements\"><h2>Endorsements</h2>\n";
        match &self.endorsed {
            Some((signers, session)) => {
                let _ = writeln!(
                    body,
                    "<p>{} hospitals signed exactly this file ({}); the signatures and the file's digest were \
                     checked when this card was made.</p>\n<table>\n<tr><th>hospital</th><th>key</th></tr>",
                    signers.len(),
                    escape(session)
                );
                for (name, key) in signers {
                    let _ = writeln!(body, "<tr><td>{}</td><td><code>{}</code></td></tr>", escape(name), escape(key));
                }
                body += "</table>\n";
            }
            None => body += "<p><b>Not endorsed</b>: no hospital signed this file.</p>\n",
        }
        body += "</section>\n<section id=\"limitations\"><h2>Limitations</h2>\n<ul>\n";
        for limitation in self.limitations() {
            let _ = writeln!(body, "<li>{}</li>", escape(&limitation));
        }
        body += "</ul>\n</section>";
        Ok(crate::html::page("Model card", &body))
    }

    fn markdown(&self) -> String {
        let rows = |rows: &[(String, String)]| {
            let mut out = String::from("| | |\n| --- | --- |\n");
            for (name, value) in rows {
                let _ = writeln!(out, "| {name} | {value} |");
            }
            out
        };
        let mut out =
            format!("# Model card\n\n{} model of schema {}\n\n", self.model.architecture(), self.model.schema_id);
        let _ = writeln!(out, "## Intended use and users\n\n{}\n", self.intended_use());
        let _ = writeln!(out, "## Model and training\n\n{}", rows(&self.facts()));
        let _ = writeln!(out, "## Performance on all held-out patients\n\n{}", rows(&self.figures()));
        out += "## Performance per subgroup\n\n";
        match &self.model.subgroups {
            Some(report) => out += &crate::subgroups::markdown(report),
            None => out += "This file carries no figures per subgroup.\n\n",
        }
        out += "## Endorsements\n\n";
        match &self.endorsed {
            Some((signers, session)) => {
                let _ = writeln!(out, "{} hospitals signed exactly this file ({session}):\n", signers.len());
                for (name, key) in signers {
                    let _ = writeln!(out, "- {name} `{key}`");
                }
                out.push('\n');
            }
            None => out += "**Not endorsed**: no hospital signed this file.\n\n",
        }
        out += "## Limitations\n\n";
        for limitation in self.limitations() {
            let _ = writeln!(out, "- {limitation}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcare_core::ModelSpec;

    #[test]
    fn an_unendorsed_file_gets_a_card_only_when_asked_and_says_so() {
        let spec = ModelSpec::mlp(4, &[3]).unwrap();
        let mut model = ModelFile::new(spec.clone(), vec![0.5; spec.param_count()], "diabetes130/v2").unwrap();
        model.metrics.insert("auroc".into(), 0.65);
        assert!(Card::of(&model, false).is_err(), "no endorsements: refused unless asked");
        let card = Card::of(&model, true).unwrap();
        let text = card.markdown();
        assert!(text.contains("**Not endorsed**") && text.contains("readmitted within 30 days"), "{text}");
        assert!(text.contains("carries no figures per subgroup"), "{text}");
        let page = card.html().unwrap();
        assert!(page.contains("<h2>Limitations</h2>") && !page.contains("<script"), "{page}");
        // Forged endorsements are refused.
        model.endorsements = b"forged".to_vec();
        assert!(Card::of(&model, true).is_err());
    }
}
