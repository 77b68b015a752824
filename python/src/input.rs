//! What a function is given to read: a CSV file's path, or a pandas DataFrame, which is written
//! as CSV text and read by the very reader that reads files, so both are encoded exactly as
//! `fedcare predict` encodes a file.
//!
//! A DataFrame's empty cells (NaN, None) are written as empty fields, which every schema reads
//! as missing. pandas' `read_csv` makes NaN of texts such as `None` and `NA` that are real values
//! in some columns (Diabetes-130's `A1Cresult` is `None` when no test was made): such a frame
//! raises a warning that says to read the file with `fedcare.read_csv`, which keeps every cell's
//! text.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use fedcare_data::{BadRows, DataError, IngestReport, Schema, Table};
use pyo3::exceptions::{PyTypeError, PyUserWarning};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The name errors give a DataFrame in place of a file's path.
const FRAME_NAME: &str = "DataFrame";

/// A CSV file's path or a DataFrame's rows as CSV text.
pub(crate) enum Input {
    /// A file to read.
    File(PathBuf),
    /// A DataFrame written by its `to_csv`.
    Frame(String),
}

impl Input {
    /// `data` as an input: a `str` or `os.PathLike` is a file's path, an object with `to_csv`
    /// (a pandas DataFrame) is written as CSV.
    pub(crate) fn from_python(data: &Bound<'_, PyAny>) -> PyResult<Self> {
        if let Ok(path) = data.extract::<PathBuf>() {
            return Ok(Self::File(path));
        }
        if !data.hasattr("to_csv")? {
            let kind = data.get_type().name()?;
            return Err(PyTypeError::new_err(format!(
                "data must be a CSV file's path or a pandas DataFrame, not {kind}"
            )));
        }
        let py = data.py();
        let has_empty_cells = data.call_method0("isna")?.call_method0("to_numpy")?.call_method0("any")?.is_truthy()?;
        if has_empty_cells {
            PyErr::warn(
                py,
                &py.get_type::<PyUserWarning>(),
                c"the DataFrame has empty (NaN) cells: they are read as missing values. pandas.read_csv makes NaN of \
                  'None', 'NA' and 'null', which are values in some columns (A1Cresult = None): read a file with \
                  fedcare.read_csv(path), which keeps every cell's text, to score it as fedcare predict does",
                1,
            )?;
        }
        let options = PyDict::new(py);
        options.set_item("index", false)?;
        Ok(Self::Frame(data.call_method("to_csv", (), Some(&options))?.extract()?))
    }

    /// Reads the rows through `schema`: the kept rows and what reading found.
    pub(crate) fn read(&self, schema: &Schema, bad_rows: BadRows) -> Result<Read<'_>, DataError> {
        let (bytes, name) = match self {
            Self::File(path) => {
                let bytes = std::fs::read(path).map_err(|source| DataError::Read { path: path.clone(), source })?;
                (Cow::Owned(bytes), path.as_path())
            }
            Self::Frame(text) => (Cow::Borrowed(text.as_bytes()), Path::new(FRAME_NAME)),
        };
        let (table, report) = fedcare_data::read_csv_bytes(&bytes, name, schema, bad_rows)?;
        Ok(Read { table, report, bytes })
    }

    /// The name of the input in a report: the file's stem, or `DataFrame`.
    pub(crate) fn name(&self) -> String {
        match self {
            Self::File(path) => path.file_stem().map_or(FRAME_NAME.into(), |s| s.to_string_lossy().into_owned()),
            Self::Frame(_) => FRAME_NAME.into(),
        }
    }
}

/// An input read through a schema.
pub(crate) struct Read<'a> {
    /// The rows kept.
    pub(crate) table: Table,
    /// What reading found.
    report: IngestReport,
    /// The CSV read.
    bytes: Cow<'a, [u8]>,
}

impl Read<'_> {
    /// A `UserWarning` when bad rows were skipped: how many, and the first one's line and reason.
    pub(crate) fn warn_if_rows_skipped(&self, py: Python<'_>) -> PyResult<()> {
        if self.report.skipped_count == 0 {
            return Ok(());
        }
        let message = std::ffi::CString::new(format!("read {}", self.report.summary()))?;
        PyErr::warn(py, &py.get_type::<PyUserWarning>(), &message, 1)
    }

    /// The input's records, kept or not, and the position among them of every kept row (`None`
    /// for a row whose line is not a record's, which the reader never gives).
    pub(crate) fn positions(&self) -> (usize, Vec<Option<usize>>) {
        let lines = fedcare_data::record_lines(&self.bytes);
        let positions = self.table.lines().iter().map(|line| lines.binary_search(line).ok()).collect();
        (lines.len(), positions)
    }
}
