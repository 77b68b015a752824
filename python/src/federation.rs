//! A federation's metrics (`read_metrics`) and a whole federation on this machine: `simulate`
//! (what `fedcare simulate` runs: an aggregator and N hospitals over gRPC with mTLS and the
//! threshold encryption) and `explore` (what `fedcare explore` runs: the pooled counts of every
//! column under the same encryption).

use core::time::Duration;
use std::path::PathBuf;
use std::sync::Mutex;

use fedcare_core::explore::DEFAULT_MIN_CELL;
use fedcare_federation::config::{
    BoostingConfig, DEFAULT_EVALUATION_BINS, DEFAULT_EVALUATION_NOISE, DEFAULT_POOLED_ROWS_PER_PATIENT, PrivacyConfig,
    ServerRule, TrainerChoice,
};
use fedcare_federation::exploration;
use fedcare_federation::persistence;
use fedcare_federation::protocol::RoundRecord;
use fedcare_federation::simulation::{self, Progress, SimulateOptions, SimulationReport};
use pyo3::exceptions::{PyImportError, PyUserWarning, PyValueError};
use pyo3::prelude::*;

use crate::errors::{FedcareError, data_error, federation_error, without_gil};

/// How often a running simulation looks for Ctrl-C.
const SIGNAL_CHECK: Duration = Duration::from_millis(100);

/// The records of a `metrics.jsonl`, one dict per session; a DataFrame when `as_frame` is true,
/// or when it is not given and pandas can be imported.
#[pyfunction]
#[pyo3(signature = (path, as_frame = None))]
pub(crate) fn read_metrics(py: Python<'_>, path: PathBuf, as_frame: Option<bool>) -> PyResult<Bound<'_, PyAny>> {
    let records = without_gil(py, || persistence::read_metrics(&path).map_err(federation_error))?;
    records_to_python(py, &records, as_frame)
}

/// Runs a whole federation on this machine and returns its metrics (as `read_metrics` reads
/// them from `out/metrics.jsonl`); with `explore`, explores the data instead (see [`explore`]).
#[pyfunction]
#[pyo3(signature = (
    *,
    hospitals = 5,
    rounds = 5,
    patience = None,
    rows = 3000,
    data = None,
    schema = None,
    top_k_key = None,
    model = "mlp",
    hidden = vec![32, 16],
    trees = None,
    depth = None,
    eta = None,
    min_child_weight = None,
    subsample = None,
    epochs = 1,
    lr = 0.01,
    batch_size = 256,
    test_fraction = 0.2,
    rule = "fedavg",
    server_lr = None,
    seed = 7,
    out = PathBuf::from("fedcare-sim"),
    trainer = "cpu",
    explore = false,
    epsilon = None,
    noise_multiplier = None,
    clip_norm = 5.0,
    sampling_rate = 0.02,
    delta = 1e-6,
    pooled_noise = 50.0,
    subgroups = None,
    mlflow = None,
    tensorboard = None,
    progress = None,
    as_frame = None,
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn simulate<'py>(
    py: Python<'py>,
    hospitals: usize,
    rounds: u32,
    patience: Option<u32>,
    rows: usize,
    data: Option<PathBuf>,
    schema: Option<String>,
    top_k_key: Option<PathBuf>,
    model: &str,
    hidden: Vec<u32>,
    trees: Option<u32>,
    depth: Option<u32>,
    eta: Option<f64>,
    min_child_weight: Option<f64>,
    subsample: Option<f64>,
    epochs: u32,
    lr: f32,
    batch_size: u32,
    test_fraction: f32,
    rule: &str,
    server_lr: Option<f32>,
    seed: u64,
    out: PathBuf,
    trainer: &str,
    explore: bool,
    epsilon: Option<f64>,
    noise_multiplier: Option<f32>,
    clip_norm: f32,
    sampling_rate: f64,
    delta: f64,
    pooled_noise: f64,
    subgroups: Option<Vec<String>>,
    mlflow: Option<String>,
    tensorboard: Option<PathBuf>,
    progress: Option<Bound<'py, PyAny>>,
    as_frame: Option<bool>,
) -> PyResult<Bound<'py, PyAny>> {
    if !(lr.is_finite() && lr > 0.0) {
        return Err(PyValueError::new_err(format!("lr must be a finite number above 0, got {lr}")));
    }
    if batch_size == 0 || patience == Some(0) || hidden.contains(&0) {
        return Err(PyValueError::new_err("batch_size, patience and every hidden width must be at least 1"));
    }
    if !(test_fraction > 0.0 && test_fraction < 1.0) {
        return Err(PyValueError::new_err(format!(
            "test_fraction must be between 0 and 1 (exclusive), got {test_fraction}"
        )));
    }
    let rule = ServerRule::named(rule).map_err(|e| PyValueError::new_err(e.to_string()))?;
    let defaults = BoostingConfig::default();
    let boosting = match model {
        "mlp" => None,
        "gbdt" => Some(BoostingConfig {
            trees: trees.unwrap_or(defaults.trees),
            depth: depth.unwrap_or(defaults.depth),
            learning_rate: eta.unwrap_or(defaults.learning_rate),
            min_child_weight: min_child_weight.unwrap_or(defaults.min_child_weight),
            subsample: subsample.unwrap_or(defaults.subsample),
            ..defaults
        }),
        other => return Err(PyValueError::new_err(format!("model must be \"mlp\" or \"gbdt\", got {other:?}"))),
    };
    if let Some(boosting) = &boosting {
        boosting.validate().map_err(|e| PyValueError::new_err(e.to_string()))?;
    }
    let trainer = match trainer {
        "cpu" => TrainerChoice::Cpu,
        "gpu" => TrainerChoice::Gpu,
        "auto" => TrainerChoice::Auto,
        other => {
            return Err(PyValueError::new_err(format!("trainer must be \"cpu\", \"gpu\" or \"auto\", got {other:?}")));
        }
    };
    let options = SimulateOptions {
        hospitals,
        rounds,
        patience,
        rows,
        hidden,
        epochs,
        learning_rate: lr,
        batch_size,
        test_fraction,
        rule: server_lr.map_or(rule, |lr| rule.with_learning_rate(lr)),
        seed,
        out,
        data,
        schema: match (schema, top_k_key) {
            (None, None) => None,
            (name, key) => Some(crate::model::keyed_schema(
                name.as_deref().unwrap_or(crate::model::DEFAULT_SCHEMA),
                key.as_deref(),
            )?),
        },
        trainer,
        explore: explore.then_some(DEFAULT_MIN_CELL),
        privacy: (epsilon.is_some() || noise_multiplier.is_some()).then_some(PrivacyConfig {
            sampling_rate,
            noise_multiplier,
            target_epsilon: epsilon,
            clip_norm,
            delta,
            pooled_noise,
            evaluation_noise: DEFAULT_EVALUATION_NOISE,
            evaluation_bins: DEFAULT_EVALUATION_BINS,
            pooled_rows_per_patient: DEFAULT_POOLED_ROWS_PER_PATIENT,
        }),
        subgroups,
        mlflow,
        tensorboard,
        boosting,
        ..SimulateOptions::default()
    };
    if explore {
        return pooled_report(py, &options, progress.as_ref());
    }
    let report = run(py, &options, progress.as_ref())?;
    records_to_python(py, &report.outcome.records, as_frame)
}

/// Explores the data across hospitals on this machine (what `fedcare explore` runs): the setup
/// session, then one session of every column's counts, all under the threshold encryption.
/// Returns the pooled report (no count below `min_cell`), written as `out/explore.json`; each
/// hospital's own report, its figures beside the pooled ones, goes to
/// `out/hospitals/NAME/explore.json`.
#[pyfunction]
#[pyo3(signature = (
    *,
    hospitals = 5,
    rows = 3000,
    data = None,
    schema = None,
    seed = 7,
    min_cell = DEFAULT_MIN_CELL,
    out = PathBuf::from("fedcare-explore"),
    progress = None,
))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn explore<'py>(
    py: Python<'py>,
    hospitals: usize,
    rows: usize,
    data: Option<PathBuf>,
    schema: Option<String>,
    seed: u64,
    min_cell: u64,
    out: PathBuf,
    progress: Option<Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    if min_cell == 0 {
        return Err(PyValueError::new_err("min_cell must be at least 1"));
    }
    let options = SimulateOptions {
        hospitals,
        rows,
        data,
        schema: schema.as_deref().map(fedcare_data::Schema::by_name).transpose().map_err(data_error)?,
        seed,
        out,
        explore: Some(min_cell),
        ..SimulateOptions::default()
    };
    pooled_report(py, &options, progress.as_ref())
}

/// Runs the exploration federation `options` describe; returns the pooled report and writes
/// every hospital's own beside it.
fn pooled_report<'py>(
    py: Python<'py>,
    options: &SimulateOptions,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let simulated = run(py, options, progress)?;
    let report = without_gil(py, || {
        for (hospital, own) in simulated.hospitals.iter().zip(&simulated.explorations) {
            if let Some(own) = own {
                exploration::write_report(&options.out.join("hospitals").join(hospital.as_str()), own)
                    .map_err(federation_error)?;
            }
        }
        exploration::read_report(&options.out.join(exploration::EXPLORE_FILE)).map_err(federation_error)
    })?;
    Ok(pythonize::pythonize(py, &report)?)
}

/// Runs the federation `options` describe with the GIL released: `progress` is shown a line per
/// session (None or True), is called with each session's record (a callable), or nothing
/// (False). Ctrl-C stops it (KeyboardInterrupt), as does an exception in the callable.
fn run(py: Python<'_>, options: &SimulateOptions, progress: Option<&Bound<'_, PyAny>>) -> PyResult<SimulationReport> {
    let printing = !progress.is_some_and(|p| p.is_callable());
    let reporter = match progress {
        Some(p) if p.is_callable() => Some(p.clone().unbind()),
        Some(p) if !p.is_truthy()? => None,
        _ => Some(py.import("builtins")?.getattr("print")?.unbind()),
    };
    let failed_callback: Mutex<Option<PyErr>> = Mutex::new(None);
    let report_progress = |event: Progress<'_>| {
        let Some(reporter) = &reporter else { return };
        Python::attach(|py| {
            let outcome = match event {
                Progress::Trainer(why) if printing => reporter.call1(py, (format!("trainer: {why}"),)).map(drop),
                Progress::Trainer(_) => Ok(()),
                Progress::Session { record, .. } if printing => reporter.call1(py, (session_line(record),)).map(drop),
                Progress::Session { record, .. } => pythonize::pythonize(py, record)
                    .map_err(PyErr::from)
                    .and_then(|record| reporter.call1(py, (record,)).map(drop)),
            };
            if let Err(error) = outcome
                && let Ok(mut failed) = failed_callback.lock()
            {
                failed.get_or_insert(error);
            }
        });
    };
    let report = without_gil(py, || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| FedcareError::new_err(format!("cannot start the async runtime: {e}")))?;
        let outcome = runtime.block_on(async {
            let simulation = simulation::run(options, None, Some(&report_progress));
            tokio::pin!(simulation);
            let mut ticks = tokio::time::interval(SIGNAL_CHECK);
            loop {
                tokio::select! {
                    result = &mut simulation => return result.map_err(federation_error),
                    _ = ticks.tick() => {
                        Python::attach(|py| py.check_signals())?;
                        if let Some(error) = failed_callback.lock().ok().and_then(|mut f| f.take()) {
                            return Err(error);
                        }
                    }
                }
            }
        });
        // Interrupted or failed: the aggregator and hospital tasks are dropped, not awaited.
        runtime.shutdown_background();
        outcome
    })?;
    for (file, why) in &report.left_out {
        let message = format!("{} did not take part: {why}", file.display());
        PyErr::warn(py, &py.get_type::<PyUserWarning>(), &std::ffi::CString::new(message)?, 1)?;
    }
    if let Some(delivery) = report.tracking.as_ref().filter(|d| !d.lost.is_empty()) {
        let message = format!("MLflow: never sent ({}): {}", delivery.lost.len(), delivery.lost.join("; "));
        PyErr::warn(py, &py.get_type::<PyUserWarning>(), &std::ffi::CString::new(message)?, 1)?;
    }
    if printing
        && let Some(reporter) = &reporter
        && let Some(kept) = report.outcome.kept()
    {
        let line = format!(
            "{} holds the best model: the one after {} training rounds (AUROC {:.4})",
            options.out.join(persistence::MODEL_FILE).display(),
            kept.round.saturating_sub(1),
            kept.auroc.unwrap_or(f64::NAN),
        );
        reporter.call1(py, (line,))?;
    }
    Ok(report)
}

/// One session as a printed line.
fn session_line(record: &RoundRecord) -> String {
    let figure = |name: &str, value: Option<f64>| value.map_or(String::new(), |v| format!(", {name} {v:.4}"));
    format!(
        "session {} ({}): {} hospitals{}{}{}{}, {:.2} s",
        record.round,
        record.kind,
        record.hospitals,
        figure("train loss", record.train_loss),
        figure("AUROC", record.auroc),
        figure("AUPRC", record.auprc),
        figure("ε", record.epsilon),
        record.seconds
    )
}

/// `records` as a list of dicts, or a DataFrame (see [`read_metrics`]).
fn records_to_python<'py>(
    py: Python<'py>,
    records: &[RoundRecord],
    as_frame: Option<bool>,
) -> PyResult<Bound<'py, PyAny>> {
    let list = pythonize::pythonize(py, records)?;
    let pandas = match (as_frame, py.import("pandas")) {
        (Some(false), _) => return Ok(list),
        (Some(true), pandas) => pandas?,
        (None, Ok(pandas)) => pandas,
        (None, Err(error)) if error.is_instance_of::<PyImportError>(py) => return Ok(list),
        (None, Err(error)) => return Err(error),
    };
    pandas.getattr("DataFrame")?.call1((list,))
}
