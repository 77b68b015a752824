//! `fedcare predict`: scores a CSV with a trained model, standardising the numeric inputs with
//! the federated statistics stored in the model file and mapping `top_k` columns' values to
//! slots through the buckets stored there (the same hash as in training, so the same slots).
//!
//! Output CSV: `line,group,probability` — the input file's line, the row's group (patient) id and
//! the predicted probability of the positive label. Bad rows are reported like training data's.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use fedcare_core::{ModelFile, Network, loss::sigmoid};

use crate::ingest::{BadRows, ColumnStats, IngestReport, read_csv};
use crate::schema::Schema;

/// Scores `data` with `model` and writes the scores to `out`.
pub fn predict_file(
    model: &ModelFile,
    schema: &Schema,
    data: &Path,
    out: &Path,
    bad_rows: BadRows,
) -> Result<IngestReport> {
    ensure!(
        model.schema_id == schema.id,
        "the model was trained on schema {:?}, the data is read with {:?}",
        model.schema_id,
        schema.id
    );
    ensure!(
        model.spec.input_width() == schema.width(),
        "the model takes {} inputs, the schema gives {}",
        model.spec.input_width(),
        schema.width()
    );
    ensure!(
        model.feature_scaling.len() == schema.numeric.len(),
        "the model stores scaling for {} numeric features, the schema has {}",
        model.feature_scaling.len(),
        schema.numeric.len()
    );
    let shapes = schema.top_k_shapes();
    ensure!(
        model.category_buckets.len() == shapes.len(),
        "the model stores buckets for {} top_k columns, the schema has {}",
        model.category_buckets.len(),
        shapes.len()
    );
    let (table, report) = read_csv(data, schema, bad_rows)?;
    let stats: Vec<ColumnStats> = model.feature_scaling.iter().map(|&(mean, std)| ColumnStats { mean, std }).collect();
    let dataset =
        table.to_dataset_with(schema, &stats, &model.category_buckets).context("the model's top_k buckets")?;
    let logits = Network::new(&model.spec).predict(&model.params, dataset.features())?;
    let mut writer = csv::Writer::from_path(out).with_context(|| format!("cannot write {}", out.display()))?;
    writer.write_record(["line", "group", "probability"])?;
    for ((line, group), logit) in table.lines().iter().zip(table.groups()).zip(&logits) {
        writer.write_record([line.to_string(), group.clone(), format!("{:.6}", sigmoid(*logit))])?;
    }
    writer.flush().with_context(|| format!("cannot write {}", out.display()))?;
    Ok(report)
}
