//! The error types of `fedcare-data`.
//!
//! [`DataError`] is what every function of the crate returns. Bad input (a file's header, a
//! row, a schema) is kept apart from caller misuse (statistics or buckets that do not fit the
//! schema, a model of another schema): each variant carries the values that failed, and a bad
//! row carries its file line and the column.

use std::path::PathBuf;

/// Why one CSV row cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RowError {
    /// The row has another number of fields than the header.
    #[error("{got} columns, expected {expected}")]
    ColumnCount {
        /// Fields in the row.
        got: usize,
        /// Fields in the header.
        expected: usize,
    },
    /// A numeric cell is not a finite number.
    #[error("column {column:?}: {text:?} is not a finite number")]
    NotANumber {
        /// The column's name.
        column: String,
        /// The cell.
        text: String,
    },
    /// A diagnosis cell is not an ICD-9 code.
    #[error("column {column:?}: {text:?} is not an ICD-9 code")]
    NotIcd9 {
        /// The column's name.
        column: String,
        /// The cell.
        text: String,
    },
    /// The label cell is missing.
    #[error("column {column:?}: the label is missing")]
    MissingLabel {
        /// The label column's name.
        column: String,
    },
    /// A 0/1 label cell holds something else.
    #[error("column {column:?}: label {text:?} is not 0 or 1")]
    LabelNotBinary {
        /// The label column's name.
        column: String,
        /// The cell.
        text: String,
    },
    /// The CSV reader could not read the row (for example, it is not UTF-8).
    #[error("unreadable row: {message}")]
    Unreadable {
        /// The reader's explanation.
        message: String,
    },
}

/// Why a file's header does not fit what is read from it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The header differs from the schema's exact header.
    #[error("the header differs from the {schema} schema at column {column}: expected {expected:?}, found {found:?}")]
    Differs {
        /// The schema's id.
        schema: String,
        /// 1-based column.
        column: usize,
        /// What the schema expects there (`(nothing)` past its end).
        expected: String,
        /// What the file has there (`(nothing)` past its end).
        found: String,
    },
    /// A column the schema (or the plain format) needs is absent.
    #[error("the header has no column {column:?}")]
    MissingColumn {
        /// The missing column's name.
        column: String,
    },
    /// A plain CSV has nothing but its label.
    #[error("no feature columns besides the label")]
    NoFeatureColumns,
    /// The file has no header row at all, or it cannot be read.
    #[error("no readable header row: {message}")]
    Unreadable {
        /// The reader's explanation.
        message: String,
    },
}

/// What is wrong with a schema.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// The TOML does not parse into a schema.
    #[error("invalid schema: {message}")]
    Invalid {
        /// The parser's explanation (line, key).
        message: String,
    },
    /// The schema names no feature column.
    #[error("the schema names no feature column")]
    NoFeatureColumn,
    /// A subgroup names no column of the schema.
    #[error("subgroup column {column:?} is not a column of the schema (it has {columns:?})")]
    UnknownSubgroup {
        /// The name given.
        column: String,
        /// The schema's feature columns.
        columns: Vec<String>,
    },
    /// A numeric column's `edges` are not bin edges.
    #[error("numeric column {column:?}: edges must be at least two finite numbers, strictly ascending")]
    Edges {
        /// The column.
        column: String,
    },
    /// A categorical column gives both a vocabulary and `top_k`.
    #[error("categorical column {column:?} has both a vocabulary and top_k: give one")]
    VocabularyAndTopK {
        /// The column.
        column: String,
    },
    /// A categorical column gives `buckets` without `top_k`.
    #[error("categorical column {column:?}: buckets goes only with top_k")]
    BucketsWithoutTopK {
        /// The column.
        column: String,
    },
    /// A categorical column gives neither a vocabulary nor `top_k`.
    #[error("categorical column {column:?} has an empty vocabulary (give a vocabulary or top_k)")]
    EmptyVocabulary {
        /// The column.
        column: String,
    },
    /// A `top_k` column's shape is not valid.
    #[error("categorical column {column:?}: {source}")]
    TopK {
        /// The column.
        column: String,
        /// What is wrong with its shape.
        source: fedcare_core::Error,
    },
    /// `earlier_in_group` on a categorical column.
    #[error("categorical column {column:?}: earlier_in_group goes only on a numeric column")]
    EarlierInGroupKind {
        /// The column.
        column: String,
    },
    /// `earlier_in_group` in a schema without a `group` column.
    #[error("numeric column {column:?}: earlier_in_group counts a group's rows, and the schema names no group")]
    EarlierInGroupWithoutGroup {
        /// The column.
        column: String,
    },
    /// A `drop_if` rule names no column.
    #[error("an empty drop_if rule")]
    EmptyDropRule,
}

/// Everything that can go wrong in `fedcare-data`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file cannot be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A file cannot be created or written.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A schema file is not a valid schema.
    #[error("invalid schema in {}: {source}", path.display())]
    SchemaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: SchemaError,
    },
    /// A schema is not valid.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// An exploration's columns are not this schema's.
    #[error("the exploration counts columns {got:?}; this hospital's schema has {expected:?}")]
    ExploreColumns {
        /// This schema's columns.
        expected: Vec<String>,
        /// The exploration's.
        got: Vec<String>,
    },
    /// A subgroup column the federation measures is not this schema's, or is counted otherwise.
    #[error("subgroup column {column:?}: {why}")]
    SubgroupColumn {
        /// The column's name.
        column: String,
        /// What differs.
        why: String,
    },
    /// A file's header does not fit.
    #[error("{}: {source}", path.display())]
    Header {
        /// The file.
        path: PathBuf,
        /// What is wrong with its header.
        source: HeaderError,
    },
    /// A bad row, where bad rows are refused.
    #[error("{}:{line}: {reason}", path.display())]
    BadRow {
        /// The file.
        path: PathBuf,
        /// The row's file line (the header is line 1).
        line: u64,
        /// What is wrong with it.
        reason: RowError,
    },
    /// More bad rows than the limit allows.
    #[error("{}: more than {limit} bad rows; the last, line {line}: {reason}", path.display())]
    TooManyBadRows {
        /// The file.
        path: PathBuf,
        /// The most bad rows tolerated.
        limit: usize,
        /// The file line of the row that went over the limit.
        line: u64,
        /// What is wrong with it.
        reason: RowError,
    },
    /// A file holds no usable row.
    #[error("{}: no usable rows", path.display())]
    NoRows {
        /// The file.
        path: PathBuf,
    },
    /// Too few rows or patients to hold some out for evaluation.
    #[error("too few patients to hold some out: {train} training and {test} held-out rows of {rows}")]
    TooFewToSplit {
        /// All rows.
        rows: usize,
        /// Rows on the training side.
        train: usize,
        /// Rows on the held-out side.
        test: usize,
    },
    /// Statistics given for another number of numeric columns.
    #[error("{got} statistics for {expected} numeric columns")]
    StatisticsCount {
        /// Numeric columns of the schema.
        expected: usize,
        /// Statistics given.
        got: usize,
    },
    /// Buckets chosen for another number of `top_k` columns.
    #[error("chosen buckets for {got} top_k columns, the schema has {expected}")]
    TopKColumns {
        /// `top_k` columns of the schema.
        expected: usize,
        /// Choices given.
        got: usize,
    },
    /// A choice of buckets that does not fit its column.
    #[error("{source} (column {column:?})")]
    TopKChoice {
        /// The column.
        column: String,
        /// What is wrong with the choice.
        source: fedcare_core::Error,
    },
    /// A file that is not a usable model file.
    #[error("{} is not a usable model file: {source}", path.display())]
    ModelFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: fedcare_core::Error,
    },
    /// A model trained on another schema.
    #[error("the model was trained on schema {model:?}, the data is read with {data:?}")]
    ModelSchema {
        /// The model's schema id.
        model: String,
        /// The data's schema id.
        data: String,
    },
    /// A model and data whose `top_k` columns were hashed under different keys (or one without).
    #[error("{}", top_k_key_message(model.as_deref(), data.as_deref()))]
    TopKKey {
        /// The fingerprint of the model's key (`None`: unkeyed).
        model: Option<String>,
        /// The fingerprint of the key the data is read with (`None`: unkeyed).
        data: Option<String>,
    },
    /// A model file whose stored encoding does not fit the schema.
    #[error("the model stores {what} for {model}, the schema has {schema}")]
    ModelEncoding {
        /// What does not fit ("scaling of numeric features", "inputs", "buckets of top_k columns").
        what: &'static str,
        /// The model's count.
        model: usize,
        /// The schema's count.
        schema: usize,
    },
    /// A fraction argument is out of range.
    #[error("{name} must be at least 0 and below 1, got {got}")]
    Fraction {
        /// The argument.
        name: &'static str,
        /// What was given.
        got: f64,
    },
    /// An argument out of range (for example `--hospitals 0`).
    #[error("{name} must be {expected}, got {got}")]
    Argument {
        /// The argument.
        name: &'static str,
        /// Its valid range.
        expected: &'static str,
        /// What was given.
        got: usize,
    },
    /// `fedcare-core` refused the data (a dataset, a model, a prediction).
    #[error(transparent)]
    Core(#[from] fedcare_core::Error),
}

/// Result type of this crate.
pub type Result<T, E = DataError> = core::result::Result<T, E>;

fn top_k_key_message(model: Option<&str>, data: Option<&str>) -> String {
    match (model, data) {
        (Some(model), None) => format!(
            "the model's top_k columns were hashed under the consortium's key (fingerprint {model}); give that key \
             (fedcare predict --top-k-key FILE, top_k_key in hospital.toml)"
        ),
        (None, Some(data)) => {
            format!("the model's top_k columns were hashed without a key; the data is read with key {data}: give none")
        }
        (model, data) => format!(
            "the model's top_k columns were hashed under key {}, the data is read with key {}: another consortium's key",
            model.unwrap_or("-"),
            data.unwrap_or("-")
        ),
    }
}
