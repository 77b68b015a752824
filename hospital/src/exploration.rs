//! A hospital's exploration report of its own table alone (what `fedcare explore --local`
//! writes): nothing of it leaves the machine.

use fedcare_core::explore::ExploreReport;
use fedcare_protocol::exploration::{Exploration, ReportContext, report};

use crate::data_error;
use crate::error::Result;

/// The report of one hospital's own `table` (what `fedcare explore --local` writes), named
/// `hospital`: every column of `schema` counted on its bins, a numeric column without edges on
/// bins over this table's own mean ± 3 standard deviations. Nothing leaves the machine.
pub fn local_report(
    table: &fedcare_data::Table,
    schema: &fedcare_data::Schema,
    hospital: &str,
    min_cell: u64,
) -> Result<ExploreReport> {
    let stats: Vec<_> = table.numeric_moments().iter().map(|m| m.stats()).collect();
    let columns = fedcare_core::explore::resolve_columns(&schema.explore_columns(), &stats);
    let counts = table.explore_counts(schema, &columns).map_err(data_error)?;
    let context = ReportContext {
        schema: schema.id.clone(),
        label: schema.label_description(),
        min_cell,
        hospitals: vec![hospital.to_owned()],
    };
    Ok(report(&context, &Exploration { columns, counts }, None)?)
}
