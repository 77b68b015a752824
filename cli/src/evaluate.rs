//! `fedcare evaluate`: a hospital scores its own labelled file with a model file, locally
//! (nothing leaves the machine), and gets the model's figures on it, overall and per subgroup,
//! beside the federation's pooled figures from the model file: `evaluate.json` and a
//! self-contained `evaluate.html` (inline style and SVG plots, no script, nothing fetched), so
//! it sees whether the model holds on its own patients.
//!
//! The scores are the model file's calibrated ones (what `fedcare predict` writes); the overall
//! metrics are exact, the subgroups' come from 1,024-bin histograms of the scores, each AUROC
//! with its binning bound, no subgroup under `--min-cell` rows, positives or negatives shown.

use core::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use fedcare_core::metrics::{Evaluation, expected_calibration_error};
use fedcare_core::subgroup::SubgroupReport;
use fedcare_data::BadRows;
use fedcare_data::predict::{check_model_fits, evaluate_table};
use serde::Serialize;

use crate::html::escape;

/// The version of `evaluate.json`'s form.
const FORMAT: u32 = 1;

/// `fedcare evaluate`'s arguments.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    input: crate::predict::ModelAndData,
    /// Where to write evaluate.json and evaluate.html.
    #[arg(long, default_value = "fedcare-evaluate")]
    out: PathBuf,
    /// Subgroup columns, comma-separated ('none': none; default: the model file's subgroups, or
    /// the schema's own list).
    #[arg(long)]
    subgroups: Option<crate::simulate::SubgroupColumns>,
    /// The smallest subgroup (rows, positives and negatives) whose figures are shown.
    #[arg(long, default_value_t = fedcare_core::explore::DEFAULT_MIN_CELL, value_parser = clap::value_parser!(u64).range(1..))]
    min_cell: u64,
}

/// `evaluate.json`.
#[derive(Debug, Serialize)]
struct Report<'a> {
    format: u32,
    /// The model: schema id and architecture.
    schema: &'a str,
    model: String,
    /// The file scored, and what reading it found.
    data: String,
    rows_read: String,
    /// The metrics on every row of the file (`None`: no rows).
    overall: Option<Overall>,
    /// Per subgroup, on the file.
    subgroups: &'a SubgroupReport,
    /// The federation's figures on its held-out patients, from the model file.
    federation: Federation<'a>,
}

/// The metrics of the file's rows.
#[derive(Debug, Serialize)]
struct Overall {
    rows: u64,
    positives: u64,
    auroc: Option<f64>,
    auprc: Option<f64>,
    log_loss: f64,
    brier: f64,
    ece: f64,
}

impl From<&Evaluation> for Overall {
    fn from(e: &Evaluation) -> Self {
        Self {
            rows: e.rows,
            positives: e.positives,
            auroc: e.auroc,
            auprc: e.auprc,
            log_loss: e.log_loss,
            brier: e.brier,
            ece: expected_calibration_error(&e.calibration),
        }
    }
}

/// What the model file says of the federation's held-out patients.
#[derive(Debug, Serialize)]
struct Federation<'a> {
    auroc: Option<f64>,
    auprc: Option<f64>,
    test_rows: Option<f64>,
    subgroups: Option<&'a SubgroupReport>,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let (model, schema) = args.input.model_and_schema()?;
    check_model_fits(&model, &schema)?;
    let input = &args.input;
    let names = match &args.subgroups {
        Some(columns) => columns.0.clone(),
        None => match &model.subgroups {
            Some(report) => report.columns.iter().map(|c| c.name.clone()).collect(),
            None => schema.subgroups.clone(),
        },
    };
    let columns = schema.subgroup_columns(&names)?;
    let (table, ingest) = fedcare_data::read_csv(&input.data, &schema, BadRows::from_limit(input.bad_rows_limit))?;
    let measured = evaluate_table(&model, &schema, &table, &columns, args.min_cell)?;
    let report = Report {
        format: FORMAT,
        schema: &model.schema_id,
        model: model.architecture(),
        data: input.data.display().to_string(),
        rows_read: ingest.summary(),
        overall: measured.evaluation.as_ref().map(Overall::from),
        subgroups: &measured.subgroups,
        federation: Federation {
            auroc: model.metrics.get("auroc").copied(),
            auprc: model.metrics.get("auprc").copied(),
            test_rows: model.metrics.get("test_rows").copied(),
            subgroups: model.subgroups.as_ref(),
        },
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let (json, html) = (args.out.join("evaluate.json"), args.out.join("evaluate.html"));
    let mut text = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
    text.push('\n');
    std::fs::write(&json, text).with_context(|| format!("cannot write {}", json.display()))?;
    std::fs::write(&html, page(&report)?).with_context(|| format!("cannot write {}", html.display()))?;
    if let Some(overall) = &report.overall {
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
        println!(
            "on {} ({} rows, {} positive): AUROC {} (the federation's held-out patients: {}), AUPRC {}, expected \
             calibration error {:.4}",
            input.data.display(),
            overall.rows,
            overall.positives,
            opt(overall.auroc),
            opt(report.federation.auroc),
            opt(overall.auprc),
            overall.ece
        );
    }
    println!("wrote {} and {}", json.display(), html.display());
    Ok(())
}

/// `evaluate.html`: the file's figures beside the federation's, then the subgroups of each.
fn page(report: &Report<'_>) -> Result<String> {
    let opt = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.4}"));
    let mut body = format!(
        "<header><h1>fedcare evaluate</h1><p>Model {} of schema {} on <code>{}</code>: {}. Scored on this machine; \
         nothing left it.</p></header>\n",
        escape(&report.model),
        escape(report.schema),
        escape(&report.data),
        escape(&report.rows_read)
    );
    body += "<section id=\"overall\"><h2>Overall</h2>\n<table>\n<tr><th></th><th>this file</th><th>the federation's \
             held-out patients</th></tr>\n";
    let own = report.overall.as_ref();
    let federation = &report.federation;
    let rows: [(&str, String, String); 5] = [
        (
            "rows",
            own.map_or("0".into(), |o| o.rows.to_string()),
            federation.test_rows.map_or("–".into(), |r| format!("{r:.0}")),
        ),
        (
            "positive rate",
            own.map_or("–".into(), |o| format!("{:.4}", o.positives as f64 / o.rows.max(1) as f64)),
            "–".into(),
        ),
        ("AUROC", opt(own.and_then(|o| o.auroc)), opt(federation.auroc)),
        ("AUPRC", opt(own.and_then(|o| o.auprc)), opt(federation.auprc)),
        ("expected calibration error", opt(own.map(|o| o.ece)), "–".into()),
    ];
    for (name, mine, theirs) in rows {
        let _ = writeln!(body, "<tr><th>{name}</th><td class=\"p\">{mine}</td><td class=\"p\">{theirs}</td></tr>");
    }
    body += "</table>\n</section>\n";
    body += "<section id=\"own\"><h2>Per subgroup, on this file</h2>\n";
    body += &crate::subgroups::html(report.subgroups)?;
    body += "</section>\n<section id=\"federation\"><h2>Per subgroup, on the federation's held-out patients</h2>\n";
    match federation.subgroups {
        Some(subgroups) => body += &crate::subgroups::html(subgroups)?,
        None => body += "<p>The model file carries no figures per subgroup.</p>\n",
    }
    body += "</section>";
    Ok(crate::html::page("fedcare evaluate", &body))
}
