//! An exploration's report on disk: written as `explore.json` ([`write_report`]) and read back
//! ([`read_report`]); the pooled counts and the report made of them are
//! [`fedcare_protocol::exploration`]'s (a hospital's report of its own table alone is the
//! hospital's shell's).
//!
//! The aggregator writes the pooled report into its output directory; a hospital that took part
//! writes its own, with its own figures on the same bins beside the pooled ones (computed on its
//! side from its rows: nothing of them leaves it).

use std::path::{Path, PathBuf};

use fedcare_core::explore::{ExploreReport, REPORT_FORMAT};
pub use fedcare_protocol::exploration::{Exploration, ReportContext, report};

use crate::error::{FederationError, Result};
use fedcare_net::files::write_atomically;

/// File name of an exploration's report.
pub const EXPLORE_FILE: &str = "explore.json";
/// The largest report read back.
const REPORT_LIMIT: u64 = 64 << 20;

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
