//! An exploration's results as a federation holds them: the pooled counts of every column on its
//! resolved bins ([`Exploration`]: in memory only, never written), and the report that may be
//! written of them ([`report`], through [`fedcare_core::explore::figures`], which shows no count
//! below `min_cell`). A hospital's report puts its own figures on the same bins beside the
//! pooled ones (computed on its side from its rows: nothing of them leaves it).

use fedcare_core::explore::{ColumnSpec, ExploreCounts, ExploreReport, LocalFigures, REPORT_FORMAT, figures};

use crate::ids::NodeId;
use crate::settings::Job;

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
        let Job::Explore { min_cell, label, .. } = job else { return None };
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
