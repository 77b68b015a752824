//! Scoring a CSV with a trained model (`fedcare predict`): the numeric inputs standardised with
//! the federated statistics stored in the model file, `top_k` columns' values mapped to slots
//! through the buckets stored there (the same hash as in training, so the same slots).
//!
//! Output CSV: `line,group,probability` — the input file's line (the header is line 1, for LF
//! and CRLF files alike), the row's group (patient) id and the predicted probability of the
//! positive label (calibrated by the model file's Platt scaling when it has one). Bad rows are
//! reported like training data's. The file's labels give the
//! model's metrics on it ([`Scored::evaluation`]: AUROC, AUPRC, calibration and its expected
//! error), so scoring patients no site has seen measures the model; [`evaluate_table`] adds its
//! figures per subgroup (`fedcare evaluate`, Python's `Model.evaluate`).

use std::io::Read as _;
use std::path::Path;

use fedcare_core::explore::ColumnSpec;
use fedcare_core::model_file::DEFAULT_SIZE_LIMIT;
use fedcare_core::subgroup::{SubgroupHistograms, SubgroupReport, subgroup_report};
use fedcare_core::{Dataset, Evaluation, ModelFile, loss::sigmoid};

use crate::error::{DataError, Result};
use crate::ingest::{BadRows, IngestReport, read_csv};
use crate::schema::{Schema, key_fingerprint_of};
use crate::table::Table;

/// Reads and decodes the model file at `path`, never reading more than the model file's size
/// limit: an oversized file is refused, not truncated.
pub fn read_model_file(path: &Path) -> Result<ModelFile> {
    let read_error = |source| DataError::Read { path: path.to_path_buf(), source };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(DEFAULT_SIZE_LIMIT as u64 + 1).read_to_end(&mut bytes).map_err(read_error)?;
    ModelFile::from_bytes(&bytes).map_err(|source| DataError::ModelFile { path: path.to_path_buf(), source })
}

/// Refuses a model whose schema, input width, scaling or buckets do not fit `schema`.
pub fn check_model_fits(model: &ModelFile, schema: &Schema) -> Result<()> {
    if model.schema_id != schema.id {
        let (model_key, data_key) = (key_fingerprint_of(&model.schema_id), key_fingerprint_of(&schema.id));
        if model_key.is_some() || data_key.is_some() {
            return Err(DataError::TopKKey { model: model_key.map(str::to_owned), data: data_key.map(str::to_owned) });
        }
        return Err(DataError::ModelSchema { model: model.schema_id.clone(), data: schema.id.clone() });
    }
    let fits = |what, model: usize, schema: usize| {
        if model == schema { Ok(()) } else { Err(DataError::ModelEncoding { what, model, schema }) }
    };
    fits("inputs", model.spec.input_width(), schema.width())?;
    fits("scaling of numeric features", model.feature_scaling.len(), schema.numeric.len())?;
    fits("buckets of top_k columns", model.category_buckets.len(), schema.top_k_shapes().len())
}

/// What scoring a file gave: the rows read, and the model's metrics on their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// What reading the file found.
    pub ingest: IngestReport,
    /// The metrics of the scores against the file's labels (`None` for a file without rows).
    pub evaluation: Option<Evaluation>,
}

/// `table`'s rows as `model`'s inputs: numeric columns standardised with the model's feature
/// scaling, `top_k` columns one-hot over its buckets (refuses a model that does not fit `schema`).
pub fn encode(model: &ModelFile, schema: &Schema, table: &Table) -> Result<Dataset> {
    check_model_fits(model, schema)?;
    table.to_dataset_with(schema, &model.feature_scaling, &model.category_buckets)
}

/// `model`'s score of every row of `inputs`: its logit, calibrated by the model file's Platt
/// scaling when it has one. The probability of the positive label is its sigmoid.
pub fn scores(model: &ModelFile, inputs: &Dataset) -> Result<Vec<f32>> {
    let raw = model.margins(inputs.features())?;
    Ok(match model.calibration {
        Some(platt) => raw.iter().map(|&z| platt.apply(z)).collect(),
        None => raw,
    })
}

/// The metrics of `scores` (logits, as [`scores`] gives them) against `inputs`' labels (`None`
/// without rows).
pub fn evaluate(scores: &[f32], inputs: &Dataset) -> Result<Option<Evaluation>> {
    if scores.is_empty() {
        return Ok(None);
    }
    Ok(Some(Evaluation::from_logits(scores, inputs.labels())?))
}

/// Score bins of a hospital's own subgroup histograms ([`evaluate_table`]): nothing leaves the
/// machine, so as many as the federation's overall histogram.
pub const LOCAL_SUBGROUP_BINS: usize = 1024;

/// What a labelled table says of a model ([`evaluate_table`]).
#[derive(Debug, Clone, PartialEq)]
pub struct TableEvaluation {
    /// The metrics of the calibrated scores on every row (`None` for a table without rows).
    pub evaluation: Option<Evaluation>,
    /// The figures per subgroup.
    pub subgroups: SubgroupReport,
}

/// `model` on `table`'s labelled rows: its metrics, and its figures per subgroup of `columns`
/// (subgroup columns of `schema`, [`Schema::subgroup_columns`]) from histograms of the
/// calibrated scores in [`LOCAL_SUBGROUP_BINS`] bins, no subgroup under `min_cell` rows,
/// positives or negatives shown. Refuses a model that does not fit `schema` and columns it
/// counts otherwise.
pub fn evaluate_table(
    model: &ModelFile,
    schema: &Schema,
    table: &Table,
    columns: &[ColumnSpec],
    min_cell: u64,
) -> Result<TableEvaluation> {
    let dataset = encode(model, schema, table)?;
    let logits = scores(model, &dataset)?;
    let cells = table.subgroup_cells(schema, columns)?;
    // The scores are calibrated already: the report applies no second scaling.
    let histograms = SubgroupHistograms::of_logits(columns, &cells, &logits, dataset.labels(), LOCAL_SUBGROUP_BINS);
    Ok(TableEvaluation {
        evaluation: evaluate(&logits, &dataset)?,
        subgroups: subgroup_report(columns, &histograms, None, min_cell),
    })
}

/// Scores `data` with `model` and writes the scores to `out`.
pub fn predict_file(model: &ModelFile, schema: &Schema, data: &Path, out: &Path, bad_rows: BadRows) -> Result<Scored> {
    check_model_fits(model, schema)?;
    let (table, report) = read_csv(data, schema, bad_rows)?;
    let dataset = encode(model, schema, &table)?;
    let logits = scores(model, &dataset)?;
    // Written to a temporary file beside `out` and renamed over it: a crash leaves the old
    // scores or the new ones, never half of them.
    let write_error = |source| DataError::Write { path: out.to_path_buf(), source };
    let csv_error = |error: csv::Error| write_error(std::io::Error::other(error));
    let directory = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file = tempfile::NamedTempFile::new_in(directory).map_err(write_error)?;
    let mut writer = csv::Writer::from_writer(file);
    writer.write_record(["line", "group", "probability"]).map_err(csv_error)?;
    for ((line, group), logit) in table.lines().iter().zip(table.groups()).zip(&logits) {
        writer.write_record([line.to_string(), group.clone(), format!("{:.6}", sigmoid(*logit))]).map_err(csv_error)?;
    }
    let file = writer.into_inner().map_err(|e| write_error(e.into_error()))?;
    file.persist(out).map_err(|e| write_error(e.error))?;
    Ok(Scored { ingest: report, evaluation: evaluate(&logits, &dataset)? })
}
