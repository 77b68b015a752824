//! Reading a hospital's CSV through a [`Schema`] into a [`Table`]: bad rows are reported with
//! their file line (the header is line 1, for LF and CRLF files alike) and column, and skipped
//! (counted, up to a limit) or refused, never silently used; values outside a vocabulary are
//! counted.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{DataError, Result, RowError};
use crate::records::{Records, read_file};
use crate::schema::{RecordOutcome, Schema, Transform};
use crate::table::Table;

/// What to do with a row that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRows {
    /// Skip it and count it, but refuse the file when more than this many are bad.
    Skip {
        /// The most bad rows tolerated.
        limit: usize,
    },
    /// Refuse the file at the first bad row.
    Reject,
}

impl BadRows {
    /// The policy a `bad_rows_limit` setting names: 0 refuses the file at the first bad row,
    /// `n` skips up to `n`.
    pub fn from_limit(limit: usize) -> Self {
        match limit {
            0 => Self::Reject,
            limit => Self::Skip { limit },
        }
    }
}

/// A row that was skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    /// Its file line (the header is line 1).
    pub line: u64,
    /// What was wrong (column and value).
    pub reason: RowError,
}

/// What reading a file found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestReport {
    /// Rows kept.
    pub rows: usize,
    /// Rows dropped by the schema's `drop_if` rules.
    pub dropped: usize,
    /// Bad rows skipped (the first 20 kept here; `skipped_count` counts all).
    pub skipped: Vec<BadRow>,
    /// All bad rows skipped.
    pub skipped_count: usize,
    /// Values outside a categorical column's vocabulary, per column.
    pub unknown_categories: BTreeMap<String, usize>,
}

/// Reads `path` through `schema`.
pub fn read_csv(path: &Path, schema: &Schema, bad_rows: BadRows) -> Result<(Table, IngestReport)> {
    read_csv_bytes(&read_file(path)?, path, schema, bad_rows)
}

/// Reads a CSV file's `bytes` through `schema`, exactly as [`read_csv`] reads a file (a table
/// handed over in memory, such as a DataFrame written as CSV); errors name `path` as its file.
pub fn read_csv_bytes(bytes: &[u8], path: &Path, schema: &Schema, bad_rows: BadRows) -> Result<(Table, IngestReport)> {
    let mut records = Records::new(bytes);
    let header_error = |source| DataError::Header { path: path.to_path_buf(), source };
    let header = records.header().map_err(header_error)?;
    let bound = schema.bind(&header).map_err(header_error)?;
    let mut table = Table::empty_for(schema);
    let mut report = IngestReport::default();
    let mut record = csv::StringRecord::new();
    // Per `earlier_in_group` column, every row's key: counted once the whole file is read.
    let earlier_columns: Vec<usize> = (schema.numeric.iter().enumerate())
        .filter(|(_, c)| c.transform == Transform::EarlierInGroup)
        .map(|(column, _)| column)
        .collect();
    let mut order_keys = vec![Vec::new(); earlier_columns.len()];
    while let Some((line, read)) = records.next_into(&mut record) {
        let outcome = read.and_then(|()| schema.parse_record(&bound, &record));
        match outcome {
            Ok(RecordOutcome::Keep(parsed)) => {
                for (column, unknown) in schema.categorical.iter().zip(&parsed.unknown) {
                    if *unknown {
                        *report.unknown_categories.entry(column.name.clone()).or_default() += 1;
                    }
                }
                for (keys, &key) in order_keys.iter_mut().zip(&parsed.order_keys) {
                    keys.push(key);
                }
                table.push(parsed, line);
                report.rows += 1;
            }
            Ok(RecordOutcome::Dropped) => report.dropped += 1,
            Err(reason) => match bad_rows {
                BadRows::Reject => return Err(DataError::BadRow { path: path.to_path_buf(), line, reason }),
                BadRows::Skip { limit } => {
                    report.skipped_count += 1;
                    if report.skipped_count > limit {
                        return Err(DataError::TooManyBadRows { path: path.to_path_buf(), limit, line, reason });
                    }
                    if report.skipped.len() < 20 {
                        report.skipped.push(BadRow { line, reason });
                    }
                }
            },
        }
    }
    if report.rows == 0 {
        return Err(DataError::NoRows { path: path.to_path_buf() });
    }
    for (&column, keys) in earlier_columns.iter().zip(&order_keys) {
        table.set_earlier_in_group(column, keys);
    }
    Ok((table, report))
}

/// The file line of every record after the header of a CSV file's `bytes`, in order (whether
/// it parses or not): the lines [`Table::lines`] gives its kept rows, so a row of the table is
/// found among the file's records (a quoted field may span lines, so a line is not a record's
/// position).
pub fn record_lines(bytes: &[u8]) -> Vec<u64> {
    let mut records = Records::new(bytes);
    let mut lines = Vec::new();
    if records.header().is_err() {
        return lines;
    }
    let mut record = csv::StringRecord::new();
    while let Some((line, _)) = records.next_into(&mut record) {
        lines.push(line);
    }
    lines
}

impl IngestReport {
    /// One line for a log or a terminal: rows read, dropped and skipped, and the first bad row.
    pub fn summary(&self) -> String {
        let first = self.skipped.first().map_or(String::new(), |b| format!(", first at line {}: {}", b.line, b.reason));
        format!(
            "{} rows ({} dropped by the schema, {} bad rows skipped{first})",
            self.rows, self.dropped, self.skipped_count
        )
    }
}
