//! The package's exceptions, and which Rust error becomes which.
//!
//! `FedcareError` is the base of all of them, so `except fedcare.FedcareError` catches every
//! failure of the package: `SchemaError` (a schema, or data or a model that does not fit one),
//! `ModelFileError` (a file that is not a usable model), `DataError` (a file that cannot be read,
//! bad rows, no rows) and `FederationError` (a simulation that failed). Arguments Python can see
//! are wrong (an unknown rule, a hospital count out of range) raise `ValueError`. The message is
//! always the Rust error's own.

use core::any::Any;
use core::panic::AssertUnwindSafe;

use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(fedcare, FedcareError, PyException, "Every error of the fedcare package.");
pyo3::create_exception!(
    fedcare,
    SchemaError,
    FedcareError,
    "A schema that is not valid, or data or a model that does not fit the schema (a missing column, a model of another schema)."
);
pyo3::create_exception!(fedcare, ModelFileError, FedcareError, "A file that is not a usable fedcare model file.");
pyo3::create_exception!(
    fedcare,
    DataError,
    FedcareError,
    "Data that cannot be used: a file that cannot be read, too many bad rows, no usable rows."
);
pyo3::create_exception!(fedcare, FederationError, FedcareError, "A simulated federation that failed.");

/// Adds the exception classes to `module`.
pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add("FedcareError", py.get_type::<FedcareError>())?;
    module.add("SchemaError", py.get_type::<SchemaError>())?;
    module.add("ModelFileError", py.get_type::<ModelFileError>())?;
    module.add("DataError", py.get_type::<DataError>())?;
    module.add("FederationError", py.get_type::<FederationError>())?;
    Ok(())
}

/// The exception of a `fedcare-data` error.
pub(crate) fn data_error(error: fedcare_data::DataError) -> PyErr {
    let message = error.to_string();
    match error {
        fedcare_data::DataError::SchemaFile { .. }
        | fedcare_data::DataError::Schema(_)
        | fedcare_data::DataError::Header { .. }
        | fedcare_data::DataError::ModelSchema { .. }
        | fedcare_data::DataError::TopKKey { .. }
        | fedcare_data::DataError::ModelEncoding { .. } => SchemaError::new_err(message),
        fedcare_data::DataError::ModelFile { .. } => ModelFileError::new_err(message),
        fedcare_data::DataError::Argument { .. } | fedcare_data::DataError::Fraction { .. } => {
            PyValueError::new_err(message)
        }
        _ => DataError::new_err(message),
    }
}

/// The exception of a `fedcare-federation` error: its data errors as [`data_error`] says,
/// settings that cannot work as `ValueError`.
pub(crate) fn federation_error(error: fedcare_federation::error::FederationError) -> PyErr {
    match error {
        fedcare_federation::error::FederationError::Data(error) => match error.downcast::<fedcare_data::DataError>() {
            Ok(error) => data_error(*error),
            Err(other) => DataError::new_err(other.to_string()),
        },
        fedcare_federation::error::FederationError::Config(error) => PyValueError::new_err(error.to_string()),
        other => FederationError::new_err(other.to_string()),
    }
}

/// Runs `work` with the GIL released, a panic in it turned into a `FedcareError`.
pub(crate) fn without_gil<T: Send>(py: Python<'_>, work: impl FnOnce() -> PyResult<T> + Send) -> PyResult<T> {
    py.detach(|| std::panic::catch_unwind(AssertUnwindSafe(work)).unwrap_or_else(|panic| Err(internal(&*panic))))
}

/// The error of a panic's payload.
fn internal(panic: &(dyn Any + Send)) -> PyErr {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    FedcareError::new_err(format!("internal error in fedcare (please report it): {what}"))
}
