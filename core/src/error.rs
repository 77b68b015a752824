//! The one error type of `fedcare-core`.
//!
//! Variants carry the values that failed. They fall in three groups: *caller misuse* (a spec,
//! hyperparameter or codec configuration that cannot work), *bad data* (features, labels,
//! scores or values that are not finite or not the right size) and *bad files or peer bytes*
//! (model files and encoded sums that are truncated, corrupted or of another version).

use alloc::string::String;

use thiserror::Error;

/// Everything that can go wrong in `fedcare-core`.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum Error {
    // --- caller misuse -------------------------------------------------------------------
    /// A layer (0 = the input) has width zero.
    #[error("layer {layer} has width 0")]
    EmptyLayer {
        /// Index of the layer, 0 being the input.
        layer: usize,
    },
    /// The spec has more parameters than [`crate::spec::MAX_PARAMETERS`].
    #[error("model has more than {max} parameters")]
    TooManyParameters {
        /// The limit.
        max: usize,
    },
    /// A hyperparameter is out of its range.
    #[error("hyperparameter {name} = {value} is out of range")]
    InvalidHyperparameter {
        /// Its name.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// A server optimizer state made for another rule than the agreed one.
    #[error("the server optimizer state is for another rule than the federation's")]
    ServerRuleMismatch,
    /// A codec setting is out of its range.
    #[error("codec setting {name} = {value} is out of range")]
    InvalidCodec {
        /// Its name.
        name: &'static str,
        /// Its value.
        value: u32,
    },
    /// Sums of `max_parties` values of `value_bits` bits could overflow the plaintext space.
    #[error(
        "codec refused: {max_parties} parties × {value_bits}-bit values can overflow a {plaintext_bits}-bit plaintext"
    )]
    CodecOverflow {
        /// Bits per value.
        value_bits: u32,
        /// Parties whose values are summed.
        max_parties: u32,
        /// Bits of the plaintext space.
        plaintext_bits: u32,
    },
    /// A `top_k` column's slots are 0.
    #[error("top_k must be at least 1")]
    TopKZero,
    /// A `top_k` column's bucket count is out of range.
    #[error("buckets is {buckets}, it must be 1 to {max}")]
    TopKBuckets {
        /// Buckets asked for.
        buckets: u32,
        /// The most a column may have.
        max: u32,
    },
    /// A `top_k` column has more slots than buckets.
    #[error("top_k ({k}) exceeds its buckets ({buckets})")]
    TopKExceedsBuckets {
        /// Slots.
        k: u32,
        /// Buckets.
        buckets: u32,
    },
    /// A sum of more parties than the codec allows (or of none) was to be decoded.
    #[error("cannot decode a sum of {parties} parties (1..={max} allowed)")]
    TooManyParties {
        /// Parties claimed.
        parties: u32,
        /// The codec's maximum.
        max: u32,
    },
    /// An exploration column cannot be counted as described.
    #[error("exploration column {column:?}: {why}")]
    ExploreColumn {
        /// The column.
        column: String,
        /// What is wrong.
        why: String,
    },
    /// Exploration counts do not have the shape of their columns.
    #[error("exploration counts of another shape than the columns ({columns} columns)")]
    ExploreShape {
        /// Columns expected.
        columns: usize,
    },

    // --- bad data ----------------------------------------------------------------------------
    /// A parameter vector (or gradient, or update) has the wrong length.
    #[error("expected {expected} parameters, got {got}")]
    ParamLength {
        /// Length the spec requires.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// A feature buffer has the wrong number of values.
    #[error("expected {expected} feature values, got {got}")]
    FeatureCount {
        /// Values required.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A dataset's row width differs from the model's input width.
    #[error("model expects {expected} features per row, data has {got}")]
    FeatureWidth {
        /// The model's input width.
        expected: usize,
        /// The data's width.
        got: usize,
    },
    /// A feature is NaN or infinite.
    #[error("feature at row {row}, column {column} is not finite")]
    NonFiniteFeature {
        /// Row index (0-based).
        row: usize,
        /// Column index (0-based).
        column: usize,
    },
    /// A label is neither 0 nor 1.
    #[error("label at row {row} is {value}, expected 0 or 1")]
    InvalidLabel {
        /// Row index (0-based).
        row: usize,
        /// The label.
        value: f32,
    },
    /// A dataset has more rows than batch orders can index.
    #[error("dataset has {rows} rows, at most {max} are supported")]
    TooManyRows {
        /// Rows given.
        rows: usize,
        /// The limit.
        max: usize,
    },
    /// A dataset's group ids are not one per row.
    #[error("{got} group ids for {expected} rows")]
    GroupCount {
        /// Rows of the dataset.
        expected: usize,
        /// Group ids given.
        got: usize,
    },
    /// Labels and scores differ in count.
    #[error("expected {expected} labels, got {got}")]
    LabelCount {
        /// Count of scores.
        expected: usize,
        /// Count of labels.
        got: usize,
    },
    /// A dataset or score list is empty.
    #[error("no rows")]
    EmptyDataset,
    /// The gradient given to `backward` does not match the batch of the last `forward`.
    #[error("backward expected {expected} logit gradients for the last forward batch, got {got}")]
    BatchMismatch {
        /// Rows of the batch.
        expected: usize,
        /// Gradients given.
        got: usize,
    },
    /// A batch names a row the dataset does not have.
    #[error("a batch names row {row} of a {rows}-row dataset")]
    BatchRow {
        /// The row named.
        row: usize,
        /// Rows in the dataset.
        rows: usize,
    },
    /// Training produced a non-finite loss (learning rate too high, or bad data).
    #[error("training diverged: non-finite loss at epoch {epoch}, step {step}")]
    Diverged {
        /// Epoch (0-based).
        epoch: u32,
        /// Step within the epoch (0-based).
        step: usize,
    },
    /// A score is NaN.
    #[error("score {index} is NaN")]
    NonFiniteScore {
        /// Index of the score.
        index: usize,
    },
    /// A probability is outside `[0, 1]`.
    #[error("probability {index} is {value}, outside [0, 1]")]
    ProbabilityOutOfRange {
        /// Index of the probability.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// A ranking metric needs both classes.
    #[error("ranking metric needs both classes: {positives} positives, {negatives} negatives")]
    SingleClass {
        /// Positive rows.
        positives: usize,
        /// Negative rows.
        negatives: usize,
    },
    /// A value to encode (or a stored parameter) is NaN or infinite.
    #[error("value {index} is not finite")]
    NonFiniteValue {
        /// Index of the value.
        index: usize,
    },

    /// An input's bin thresholds are not finite and strictly ascending, or too many.
    #[error("input {input}: its {thresholds} bin thresholds are not finite, strictly ascending and fewer than 256")]
    InvalidCuts {
        /// The input.
        input: usize,
        /// Its thresholds.
        thresholds: usize,
    },

    // --- bad files or peer bytes ----------------------------------------------------------
    /// An encoded word lies outside the plaintext space.
    #[error("word {index} = {word} does not fit {plaintext_bits} bits")]
    WordOutOfRange {
        /// Index of the word.
        index: usize,
        /// The word.
        word: u64,
        /// Bits of the plaintext space.
        plaintext_bits: u32,
    },
    /// A decoded sum is larger than the claimed parties could produce.
    #[error("sum {index} = {sum} exceeds ±{bound}: not a sum of valid encodings")]
    SumOutOfRange {
        /// Index of the sum.
        index: usize,
        /// The decoded sum.
        sum: i64,
        /// The largest magnitude the claimed parties could produce.
        bound: i64,
    },
    /// A file or message is larger than the decode limit.
    #[error("{size} bytes exceed the limit of {limit}")]
    FileTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A file or message ends early.
    #[error("truncated: {needed} bytes needed, {got} present")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// A `top_k` column's choice lists one bucket in two slots.
    #[error("top_k column {column} lists bucket {bucket} twice")]
    DuplicateBucket {
        /// The column's position among the `top_k` columns.
        column: usize,
        /// The repeated bucket.
        bucket: u32,
    },
    /// A `top_k` column's choice names more buckets than it has slots.
    #[error("top_k column {column}: {chosen} buckets chosen, top_k is {k}")]
    TooManyBuckets {
        /// The column's position among the `top_k` columns.
        column: usize,
        /// Buckets chosen.
        chosen: usize,
        /// Slots of the column.
        k: u32,
    },
    /// A `top_k` column's choice names a bucket the column does not have.
    #[error("top_k column {column}: bucket {bucket} chosen, the column has {buckets} buckets")]
    BucketOutOfRange {
        /// The column's position among the `top_k` columns.
        column: usize,
        /// The bucket chosen.
        bucket: u32,
        /// Buckets of the column.
        buckets: u32,
    },
    /// A tree's node is malformed: an input out of range, a non-finite value, a child before its
    /// parent or reached twice, or a node never decided.
    #[error("tree node {node} is malformed")]
    InvalidTree {
        /// The node.
        node: usize,
    },
    /// A level's summed histograms are not the shape its tree asked for.
    #[error("{got} histogram cells where the level's nodes take {expected}")]
    HistogramShape {
        /// Cells expected.
        expected: usize,
        /// Cells received.
        got: usize,
    },
    /// A node's summed histogram disagrees with the total its parent's histogram gives it.
    #[error("the histogram of tree node {node} disagrees with its parent's")]
    HistogramTotal {
        /// The node.
        node: u32,
    },
    /// The bytes are not a fedcare file or message of the expected format.
    #[error("not a fedcare {format} (bad magic)")]
    BadMagic {
        /// The format expected ("model file", "checkpoint", …).
        format: &'static str,
    },
    /// The file was written in a format version this build cannot read.
    #[error("{format} format version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// The format ("model file", "checkpoint", …).
        format: &'static str,
        /// Version in the file.
        found: u16,
        /// Version this build reads.
        supported: u16,
    },
    /// Bytes follow the end of the payload.
    #[error("{count} unexpected bytes after the payload")]
    TrailingBytes {
        /// Extra bytes.
        count: usize,
    },
    /// The payload does not match its checksum (corrupted file).
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// Checksum in the header.
        stored: u32,
        /// Checksum of the payload.
        computed: u32,
    },
    /// The payload does not decode.
    #[error("malformed payload: {0}")]
    Malformed(postcard::Error),
}
