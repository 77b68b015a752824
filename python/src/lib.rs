//! # fedcare-python
//!
//! The `fedcare` Python package's extension module, `fedcare._native`: the fedcare crates as
//! Python functions and a `Model` class. It wraps, it does not re-implement: a file or a
//! DataFrame is read by `fedcare-data`'s CSV reader and encoder, scored by `fedcare-core`'s
//! network, exported by `fedcare-onnx`, a federation run by `fedcare-federation` — the code the
//! `fedcare` binary runs, so the numbers are the same.
//!
//! Guarantees:
//! - Every error is a Python exception carrying the Rust error's message, of a class that says
//!   what failed ([`errors`]); a panic in Rust becomes a `fedcare.FedcareError`, never a crash of
//!   the interpreter.
//! - Long work (reading and scoring a file, a simulation) runs with the GIL released; a
//!   simulation still stops at Ctrl-C (KeyboardInterrupt), checked every 100 ms.
//!
//! The Python-facing documentation is in `fedcare/_native.pyi` beside this crate.
#![forbid(unsafe_code)]

mod errors;
mod explore;
mod federation;
mod input;
mod model;

use pyo3::prelude::*;

/// The extension module: the `Model` class, the functions and the exceptions.
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(module)?;
    module.add_class::<model::Model>()?;
    module.add_function(wrap_pyfunction!(federation::read_metrics, module)?)?;
    module.add_function(wrap_pyfunction!(federation::simulate, module)?)?;
    module.add_function(wrap_pyfunction!(federation::explore, module)?)?;
    module.add_function(wrap_pyfunction!(explore::synth, module)?)?;
    module.add_function(wrap_pyfunction!(explore::explore_local, module)?)?;
    Ok(())
}
