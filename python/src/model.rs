//! `fedcare.Model`: a model file loaded (what `fedcare inspect` shows), scoring a file or a
//! DataFrame as `fedcare predict` does, its encoded inputs, its metrics on labelled rows, and
//! its ONNX graph.

use std::path::{Path, PathBuf};

use fedcare_core::loss::sigmoid;
use fedcare_core::metrics::expected_calibration_error;
use fedcare_core::{Dataset, ModelFile};
use fedcare_data::predict::{check_model_fits, encode, evaluate, evaluate_table, read_model_file, scores};
use fedcare_data::top_k::BucketKey;
use fedcare_data::{BadRows, Schema};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::errors::{FedcareError, data_error, federation_error, without_gil};
use crate::input::{Input, Read};

/// The schema `predict`, `encode` and the rest read with unless told: `fedcare predict`'s.
pub(crate) const DEFAULT_SCHEMA: &str = "diabetes130";

/// A trained fedcare model (a `model.bin`).
#[pyclass(module = "fedcare", frozen)]
pub(crate) struct Model {
    file: ModelFile,
}

#[pymethods]
impl Model {
    /// Loads a model file (the aggregator's `model.bin`, or the one a hospital received).
    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        without_gil(py, || Ok(Self { file: read_model_file(&path).map_err(data_error)? }))
    }

    /// The id of the feature schema the model was trained on.
    #[getter]
    fn schema_id(&self) -> &str {
        &self.file.schema_id
    }

    /// Encoded inputs per row.
    #[getter]
    fn input_width(&self) -> usize {
        self.file.spec.input_width()
    }

    /// Hidden layer widths (empty: logistic regression).
    #[getter]
    fn hidden(&self) -> Vec<usize> {
        self.file.spec.hidden().to_vec()
    }

    /// Parameters in all (0 for boosted trees).
    #[getter]
    fn parameters(&self) -> usize {
        self.file.params.len()
    }

    /// `"logistic regression"`, `"mlp"` or `"gbdt"` (gradient-boosted trees).
    #[getter]
    fn kind(&self) -> &'static str {
        match (&self.file.ensemble, self.file.spec.hidden().is_empty()) {
            (Some(_), _) => "gbdt",
            (None, true) => "logistic regression",
            (None, false) => "mlp",
        }
    }

    /// The trees of a boosted model (`None` for a network).
    #[getter]
    fn trees(&self) -> Option<usize> {
        self.file.ensemble.as_ref().map(|ensemble| ensemble.trees.len())
    }

    /// The layer widths, input to output, as `fedcare inspect` prints them (`359-32-16-1`); for
    /// boosted trees their count, nodes and inputs.
    #[getter]
    fn architecture(&self) -> String {
        match self.file.ensemble {
            Some(_) => self.file.architecture(),
            None => self.file.spec.architecture(),
        }
    }

    /// The federation's metrics of the model (`auroc`, `round`, ...).
    #[getter]
    fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        self.file.metrics.clone()
    }

    /// The federated mean and standard deviation each numeric input was standardised with, in
    /// input order (the first inputs).
    #[getter]
    fn feature_scaling<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize::pythonize(py, &self.file.feature_scaling)?)
    }

    /// The Platt scaling of the scores (`{"a": .., "b": ..}`: probability `σ(a·z + b)`), or `None`.
    #[getter]
    fn calibration<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(pythonize::pythonize(py, &self.file.calibration)?)
    }

    /// The name of every encoded input, in order, as `schema` names them (it must be the
    /// model's schema).
    #[pyo3(signature = (schema = DEFAULT_SCHEMA, top_k_key = None))]
    fn feature_names(&self, schema: &str, top_k_key: Option<PathBuf>) -> PyResult<Vec<String>> {
        Ok(self.fitting_schema(schema, top_k_key.as_deref())?.feature_names())
    }

    /// The probability of the positive label for every row of `data` (a CSV path or a
    /// DataFrame), in order: NaN for a row the schema drops or a bad row skipped.
    #[pyo3(signature = (data, schema = DEFAULT_SCHEMA, bad_rows_limit = 100, top_k_key = None))]
    fn predict<'py>(
        &self,
        data: &Bound<'py, PyAny>,
        schema: &str,
        bad_rows_limit: usize,
        top_k_key: Option<PathBuf>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let input = Input::from_python(data)?;
        let py = data.py();
        let (read, probabilities) = without_gil(py, || {
            let (read, inputs) = self.read_encoded(&input, schema, top_k_key.as_deref(), bad_rows_limit)?;
            let logits = scores(&self.file, &inputs).map_err(data_error)?;
            let (records, positions) = read.positions();
            let mut probabilities = vec![f64::NAN; records];
            for (position, logit) in positions.into_iter().zip(logits) {
                let position =
                    position.ok_or_else(|| FedcareError::new_err("a scored row is not among the input's records"))?;
                probabilities[position] = f64::from(sigmoid(logit));
            }
            Ok((read, probabilities))
        })?;
        read.warn_if_rows_skipped(py)?;
        Ok(probabilities.into_pyarray(py))
    }

    /// The encoded inputs (`rows × input_width`, float32) of the rows `predict` scores (those
    /// it does not give NaN), in order: what the ONNX graph takes.
    #[pyo3(signature = (data, schema = DEFAULT_SCHEMA, bad_rows_limit = 100, top_k_key = None))]
    fn encode<'py>(
        &self,
        data: &Bound<'py, PyAny>,
        schema: &str,
        bad_rows_limit: usize,
        top_k_key: Option<PathBuf>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let input = Input::from_python(data)?;
        let py = data.py();
        let (read, features) = without_gil(py, || {
            let (read, inputs) = self.read_encoded(&input, schema, top_k_key.as_deref(), bad_rows_limit)?;
            let features = Array2::from_shape_vec((inputs.rows(), inputs.width()), inputs.features().to_vec())
                .map_err(|e| FedcareError::new_err(e.to_string()))?;
            Ok((read, features))
        })?;
        read.warn_if_rows_skipped(py)?;
        Ok(features.into_pyarray(py))
    }

    /// The model's metrics on the labels of `data` (what `fedcare predict` prints): rows,
    /// positives, AUROC, AUPRC, log loss, Brier score, accuracy, expected calibration error and
    /// the ten calibration bins. With `subgroups` (column names, or `True` for the model file's
    /// own subgroup columns, else the schema's), what `fedcare evaluate` measures instead, as a
    /// pandas DataFrame: a row for all rows and one per subgroup of each column, no figure of one
    /// under `min_cell` rows, positives or negatives (`too_small`).
    #[pyo3(signature = (data, schema = DEFAULT_SCHEMA, bad_rows_limit = 100, top_k_key = None, subgroups = None, min_cell = fedcare_core::explore::DEFAULT_MIN_CELL))]
    fn evaluate<'py>(
        &self,
        data: &Bound<'py, PyAny>,
        schema: &str,
        bad_rows_limit: usize,
        top_k_key: Option<PathBuf>,
        subgroups: Option<Bound<'py, PyAny>>,
        min_cell: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let input = Input::from_python(data)?;
        let py = data.py();
        if let Some(subgroups) = subgroups {
            let names = self.subgroup_names(&subgroups, schema, top_k_key.as_deref())?;
            return self.evaluate_subgroups(py, &input, schema, top_k_key.as_deref(), bad_rows_limit, &names, min_cell);
        }
        let (read, evaluation) = without_gil(py, || {
            let (read, inputs) = self.read_encoded(&input, schema, top_k_key.as_deref(), bad_rows_limit)?;
            let logits = scores(&self.file, &inputs).map_err(data_error)?;
            // Invariant: a read never gives a table without rows (it refuses the input).
            let evaluation = evaluate(&logits, &inputs)
                .map_err(data_error)?
                .ok_or_else(|| FedcareError::new_err("no rows to evaluate"))?;
            Ok((read, evaluation))
        })?;
        read.warn_if_rows_skipped(py)?;
        let dict = pythonize::pythonize(py, &evaluation)?.cast_into::<PyDict>()?;
        dict.set_item("expected_calibration_error", expected_calibration_error(&evaluation.calibration))?;
        Ok(dict.into_any())
    }

    /// The model as an ONNX graph on its encoded inputs (see `encode`), with the schema, the
    /// input names, the feature scaling and the calibration in its metadata: written to `path`
    /// (atomically) when given, else returned as bytes.
    #[pyo3(signature = (path = None, schema = DEFAULT_SCHEMA, top_k_key = None))]
    fn to_onnx<'py>(
        &self,
        py: Python<'py>,
        path: Option<PathBuf>,
        schema: &str,
        top_k_key: Option<PathBuf>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let names = self.fitting_schema(schema, top_k_key.as_deref())?.feature_names();
        let bytes = fedcare_onnx::export(&self.file, Some(&names)).map_err(|e| PyValueError::new_err(e.to_string()))?;
        match path {
            Some(path) => {
                without_gil(py, || {
                    fedcare_federation::persistence::write_atomically(&path, &bytes).map_err(federation_error)
                })?;
                Ok(None)
            }
            None => Ok(Some(PyBytes::new(py, &bytes))),
        }
    }

    fn __repr__(&self) -> String {
        let auroc = self.file.metrics.get("auroc").map_or(String::new(), |a| format!(", AUROC {a:.4}"));
        let size = match self.file.ensemble {
            Some(_) => String::new(),
            None => format!(", {} parameters", self.parameters()),
        };
        format!("<fedcare.Model {} on schema {:?}{size}{auroc}>", self.architecture(), self.file.schema_id)
    }
}

impl Model {
    /// The subgroup columns `subgroups` names: a list of column names, or `True` for the model
    /// file's own (else the schema's list).
    fn subgroup_names(
        &self,
        subgroups: &Bound<'_, PyAny>,
        schema: &str,
        top_k_key: Option<&Path>,
    ) -> PyResult<Vec<String>> {
        if let Ok(all) = subgroups.extract::<bool>() {
            if !all {
                return Err(PyValueError::new_err("subgroups: column names, or True for the model's own"));
            }
            return Ok(match &self.file.subgroups {
                Some(report) => report.columns.iter().map(|c| c.name.clone()).collect(),
                None => self.fitting_schema(schema, top_k_key)?.subgroups,
            });
        }
        subgroups
            .extract::<Vec<String>>()
            .map_err(|_| PyValueError::new_err("subgroups: a list of column names, or True for the model's own"))
    }

    /// `fedcare evaluate`'s figures of `input` per subgroup of `names`, as a DataFrame.
    #[allow(clippy::too_many_arguments)]
    fn evaluate_subgroups<'py>(
        &self,
        py: Python<'py>,
        input: &Input,
        schema: &str,
        top_k_key: Option<&Path>,
        bad_rows_limit: usize,
        names: &[String],
        min_cell: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        if min_cell == 0 {
            return Err(PyValueError::new_err("min_cell: at least 1"));
        }
        let schema = self.fitting_schema(schema, top_k_key)?;
        let (read, measured) = without_gil(py, || {
            let columns = schema.subgroup_columns(names).map_err(|e| data_error(e.into()))?;
            let read = input.read(&schema, BadRows::from_limit(bad_rows_limit)).map_err(data_error)?;
            let measured = evaluate_table(&self.file, &schema, &read.table, &columns, min_cell).map_err(data_error)?;
            Ok((read, measured))
        })?;
        read.warn_if_rows_skipped(py)?;
        let rows = pyo3::types::PyList::empty(py);
        for column in &measured.subgroups.columns {
            let groups = core::iter::once(("all rows", &column.population))
                .chain(column.subgroups.iter().map(|s| (s.label.as_str(), &s.figures)));
            for (label, figures) in groups {
                let row = PyDict::new(py);
                row.set_item("column", &column.name)?;
                row.set_item("subgroup", label)?;
                row.set_item("too_small", figures.shown().is_none())?;
                let shown = figures.shown();
                row.set_item("rows", shown.map(|f| f.rows))?;
                row.set_item("positives", shown.map(|f| f.positives))?;
                row.set_item("positive_rate", shown.map(|f| f.positive_rate))?;
                row.set_item("auroc", shown.and_then(|f| f.auroc))?;
                row.set_item("auroc_bound", shown.map(|f| f.auroc_bound))?;
                row.set_item("auprc", shown.and_then(|f| f.auprc))?;
                row.set_item("ece", shown.map(|f| f.ece))?;
                row.set_item("tpr", shown.and_then(|f| f.tpr))?;
                row.set_item("auroc_gap", shown.and_then(|f| f.auroc_gap))?;
                row.set_item("tpr_gap", shown.and_then(|f| f.tpr_gap))?;
                rows.append(row)?;
            }
        }
        let pandas = py.import("pandas").map_err(|_| {
            PyValueError::new_err("Model.evaluate(..., subgroups=...) returns a pandas DataFrame: pip install pandas")
        })?;
        pandas.call_method1("DataFrame", (rows,))
    }

    /// `input` read through the schema `schema` names (under the `top_k` key in the file
    /// `top_k_key`) and encoded as the model's inputs.
    fn read_encoded<'a>(
        &self,
        input: &'a Input,
        schema: &str,
        top_k_key: Option<&Path>,
        bad_rows_limit: usize,
    ) -> PyResult<(Read<'a>, Dataset)> {
        let schema = self.fitting_schema(schema, top_k_key)?;
        let read = input.read(&schema, BadRows::from_limit(bad_rows_limit)).map_err(data_error)?;
        let inputs = encode(&self.file, &schema, &read.table).map_err(data_error)?;
        Ok((read, inputs))
    }

    /// The schema `name` names, keyed by the `top_k` key in the file `top_k_key` when given;
    /// refused when the model does not fit it.
    fn fitting_schema(&self, name: &str, top_k_key: Option<&Path>) -> PyResult<Schema> {
        let schema = keyed_schema(name, top_k_key)?;
        check_model_fits(&self.file, &schema).map_err(data_error)?;
        Ok(schema)
    }
}

/// The schema `name` names, its `top_k` columns hashed under the key in the file `top_k_key`
/// when given.
pub(crate) fn keyed_schema(name: &str, top_k_key: Option<&Path>) -> PyResult<Schema> {
    let schema = Schema::by_name(name).map_err(data_error)?;
    match top_k_key {
        Some(path) => {
            let key = BucketKey::read(path).map_err(|e| PyValueError::new_err(e.to_string()))?;
            Ok(schema.with_bucket_key(key))
        }
        None => Ok(schema),
    }
}
