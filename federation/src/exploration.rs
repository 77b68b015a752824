//! An exploration's results as a federation holds them: the pooled counts of every column on its
//! resolved bins ([`Exploration`]: in memory only, never written), and the report that may be
//! written ([`report`], through [`fedcare_core::explore::figures`], which shows no count below
//! `min_cell`) as `explore.json` ([`write_report`], [`read_report`]).
//!
//! The aggregator writes the pooled report into its output directory; a hospital that took part
//! writes its own, with its own figures on the same bins beside the pooled ones (computed on its
//! side from its rows: nothing of them leaves it).

use std::path::{Path, PathBuf};

use fedcare_core::explore::{ColumnSpec, ExploreCounts, ExploreReport, LocalFigures, REPORT_FORMAT, figures};

use crate::error::{FederationError, Result};
use crate::persistence::write_atomically;
use crate::protocol::{Job, NodeId};

/// File name of an exploration's report.
pub const EXPLORE_FILE: &str = "explore.json";
/// The largest report read back.
const REPORT_LIMIT: u64 = 64 << 20;

/// An exploration's pooled counts and the columns (bins resolved) they were counted on.
#[derive(Debug, Clone, PartialEq)]
pub struct Exploration {
    /// The columns, numeric edges resolved.
    pub columns: Vec<ColumnSpec>,
    /// The federation's counts.
    pub counts: ExploreCounts,
}

/// What a report says of where its figures come from.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportContext {
    /// The schema's id.
    pub schema: String,
    /// What the label's positives are.
    pub label: String,
    /// The smallest count shown.
    pub min_cell: u64,
    /// The hospitals counted.
    pub hospitals: Vec<String>,
}

impl ReportContext {
    /// The context of an exploration of schema `schema` by `hospitals` (`None` for training).
    pub fn of_job(schema: &str, job: &Job, hospitals: &[NodeId]) -> Option<Self> {
        let Job::Explore { min_cell, label } = job else { return None };
        Some(Self {
            schema: schema.to_owned(),
            label: label.clone(),
            min_cell: *min_cell,
            hospitals: hospitals.iter().map(|h| h.as_str().to_owned()).collect(),
        })
    }
}

/// The report of `pooled`, with `local` (a hospital's name and its own counts on the same
/// columns) beside it.
pub fn report(
    context: &ReportContext,
    pooled: &Exploration,
    local: Option<(&str, &ExploreCounts)>,
) -> core::result::Result<ExploreReport, fedcare_core::Error> {
    let local = match local {
        Some((hospital, counts)) => Some(LocalFigures {
            hospital: hospital.to_owned(),
            figures: figures(&pooled.columns, counts, context.min_cell)?,
        }),
        None => None,
    };
    Ok(ExploreReport {
        format: REPORT_FORMAT,
        schema: context.schema.clone(),
        label: context.label.clone(),
        min_cell: context.min_cell.max(1),
        hospitals: context.hospitals.clone(),
        figures: figures(&pooled.columns, &pooled.counts, context.min_cell)?,
        local,
    })
}

/// The report of one hospital's own `table` (what `fedcare explore --local` writes), named
/// `hospital`: every column of `schema` counted on its bins, a numeric column without edges on
/// bins over this table's own mean ± 3 standard deviations. Nothing leaves the machine.
#[cfg(feature = "hospital")]
pub fn local_report(
    table: &fedcare_data::Table,
    schema: &fedcare_data::Schema,
    hospital: &str,
    min_cell: u64,
) -> Result<ExploreReport> {
    let stats: Vec<_> = table.numeric_moments().iter().map(|m| m.stats()).collect();
    let columns = fedcare_core::explore::resolve_columns(&schema.explore_columns(), &stats);
    let counts = table.explore_counts(schema, &columns)?;
    let context = ReportContext {
        schema: schema.id.clone(),
        label: schema.label_description(),
        min_cell,
        hospitals: vec![hospital.to_owned()],
    };
    Ok(report(&context, &Exploration { columns, counts }, None)?)
}

/// Writes `report` as `explore.json` in `dir` (atomically); returns the file's path.
pub fn write_report(dir: &Path, report: &ExploreReport) -> Result<PathBuf> {
    let path = dir.join(EXPLORE_FILE);
    std::fs::create_dir_all(dir).map_err(|source| FederationError::Write { path: dir.to_path_buf(), source })?;
    // Invariant: a report is plain data (numbers, strings, arrays), which JSON always encodes.
    let mut text = serde_json::to_string_pretty(report).expect("a report encodes as JSON");
    text.push('\n');
    write_atomically(&path, text.as_bytes())?;
    Ok(path)
}

/// Reads an `explore.json`, refusing another format version or a file past 64 MiB.
pub fn read_report(path: &Path) -> Result<ExploreReport> {
    let error = |message: String| FederationError::NotAReport { path: path.to_path_buf(), message };
    let size =
        std::fs::metadata(path).map_err(|source| FederationError::Read { path: path.to_path_buf(), source })?.len();
    if size > REPORT_LIMIT {
        return Err(error(format!("{size} bytes, more than a report's {REPORT_LIMIT}")));
    }
    let text =
        std::fs::read_to_string(path).map_err(|source| FederationError::Read { path: path.to_path_buf(), source })?;
    let report: ExploreReport = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
    if report.format != REPORT_FORMAT {
        return Err(error(format!("format {} (this build reads {REPORT_FORMAT})", report.format)));
    }
    Ok(report)
}
