//! # fedcare-data
//!
//! A hospital's data, from its CSV file to model inputs: feature [`schema`]s (TOML files or the
//! built-in schema of the UCI Diabetes-130 file), CSV [`ingest`]ion with bad-row reports, the
//! parsed rows' [`table`] with the train/test split by patient and the encoding into model
//! inputs, [`top_k`] category buckets, the [`split`] of one file into site files, [`plain`] numeric CSVs, the [`synth`]etic cohort and
//! scoring a file with a model ([`predict`]).
//!
//! Guarantees:
//! - No network, no async runtime: scoring needs only this crate and `fedcare-core`, and the
//!   aggregator never depends on it (it never reads patient data).
//! - Nothing in a file is trusted: a bad row is reported with its file line (the header is line
//!   1, for LF and CRLF files alike) and the column and value that failed, and is skipped
//!   (counted, up to a limit) or refuses the file, never silently used.
//! - Deterministic: the split, the buckets and the synthetic cohort depend only on their seeds
//!   and inputs, the same on every machine.
#![forbid(unsafe_code)]

pub mod error;
pub mod ingest;
pub mod plain;
pub mod predict;
mod records;
pub mod schema;
pub mod split;
pub mod synth;
pub mod table;
pub mod top_k;

pub use error::{DataError, HeaderError, Result, RowError, SchemaError};
pub use ingest::{BadRow, BadRows, IngestReport, read_csv, read_csv_bytes, record_lines};
pub use schema::Schema;
pub use table::{Table, patient_key, split_seed};
