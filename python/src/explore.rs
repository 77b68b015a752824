//! Data before training: a synthetic cohort in the Diabetes-130 schema (`synth`, as `fedcare
//! synth`) and one hospital's own file explored (`explore_local`, as `fedcare explore --local`:
//! nothing leaves the machine, no count below `min_cell` in the report).

use std::path::PathBuf;

use fedcare_data::{BadRows, Schema};
use fedcare_federation::exploration;
use pyo3::prelude::*;

use crate::errors::{data_error, federation_error, without_gil};
use crate::input::Input;

/// Writes a synthetic cohort (one CSV per hospital, non-IID, in the exact Diabetes-130 schema)
/// into `out`; returns the files' paths.
#[pyfunction]
#[pyo3(signature = (out, hospitals = 5, patients = 2000, seed = 0))]
pub(crate) fn synth(
    py: Python<'_>,
    out: PathBuf,
    hospitals: usize,
    patients: usize,
    seed: u64,
) -> PyResult<Vec<PathBuf>> {
    without_gil(py, || fedcare_data::synth::write_cohort(&out, hospitals, patients, seed).map_err(data_error))
}

/// The exploration report of one file or DataFrame (what `explore.json` holds): every column's
/// rows, missing values, histogram or categories and the label's rate per cell, no count below
/// `min_cell`; also written as `out/explore.json` when `out` is given.
#[pyfunction]
#[pyo3(signature = (data, schema = "diabetes130", min_cell = 10, bad_rows_limit = 100, out = None))]
pub(crate) fn explore_local<'py>(
    data: &Bound<'py, PyAny>,
    schema: &str,
    min_cell: u64,
    bad_rows_limit: usize,
    out: Option<PathBuf>,
) -> PyResult<Bound<'py, PyAny>> {
    if min_cell == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err("min_cell must be at least 1"));
    }
    let input = Input::from_python(data)?;
    let py = data.py();
    let report = without_gil(py, || {
        let schema = Schema::by_name(schema).map_err(data_error)?;
        let read = input.read(&schema, BadRows::from_limit(bad_rows_limit)).map_err(data_error)?;
        let report =
            exploration::local_report(&read.table, &schema, &input.name(), min_cell).map_err(federation_error)?;
        if let Some(dir) = &out {
            exploration::write_report(dir, &report).map_err(federation_error)?;
        }
        Ok(report)
    })?;
    Ok(pythonize::pythonize(py, &report)?)
}
