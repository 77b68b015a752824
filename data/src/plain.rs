//! Schema-less hospital data: a plain numeric CSV (what `fedcare join` reads without a schema),
//! its row-level train/test split, and a small synthetic numeric cohort the tests use. Data in a
//! schema (the Diabetes-130 file) goes through [`crate::schema`] and [`crate::ingest`].
//!
//! CSV: a header row; a column named `label` (0 or 1) is the label, every other column a numeric
//! feature. A bad cell is reported with its file line and column and the file is refused.

use std::path::Path;

use fedcare_core::Dataset;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::error::{DataError, HeaderError, Result, RowError};
use crate::records::{Records, read_file};

/// Features of the synthetic cohort.
pub const SYNTHETIC_FEATURES: usize = 16;

/// Fraction of positive labels in [`benchmark_problem`].
pub const BENCHMARK_POSITIVE_RATE: f64 = 0.11;

/// The training problem every benchmark (and the peers it is compared with, such as
/// `../shared/peers/torch_train_bench.py`) measures: `rows × width` standard-normal features,
/// label 1 for the top 11 % of `x·w + 0.5·noise` with `w` standard normal.
pub fn benchmark_problem(rows: usize, width: usize, seed: u64) -> Dataset {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut normal = || -> f32 { StandardNormal.sample(&mut rng) };
    let truth: Vec<f32> = (0..width).map(|_| normal()).collect();
    let mut features = Vec::with_capacity(rows * width);
    let mut scores = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f32> = (0..width).map(|_| normal()).collect();
        let score: f32 = row.iter().zip(&truth).map(|(x, w)| x * w).sum::<f32>() + 0.5 * normal();
        scores.push(score);
        features.extend(row);
    }
    let mut sorted = scores.clone();
    sorted.sort_unstable_by(f32::total_cmp);
    let threshold = sorted.get(((1.0 - BENCHMARK_POSITIVE_RATE) * rows as f64) as usize).copied().unwrap_or(f32::MAX);
    let labels = scores.iter().map(|&s| if s > threshold { 1.0 } else { 0.0 }).collect();
    // Invariant: finite features, 0/1 labels and rows × width values by construction.
    Dataset::new(features, labels, width).expect("generated problem is valid")
}

/// Loads a numeric CSV with a `label` column.
pub fn load_csv(path: &Path) -> Result<Dataset> {
    let bytes = read_file(path)?;
    let mut records = Records::new(&bytes);
    let header_error = |source| DataError::Header { path: path.to_path_buf(), source };
    let header = records.header().map_err(header_error)?;
    let label_column = header
        .iter()
        .position(|h| h == "label")
        .ok_or_else(|| header_error(HeaderError::MissingColumn { column: "label".into() }))?;
    let width = header.len() - 1;
    if width == 0 {
        return Err(header_error(HeaderError::NoFeatureColumns));
    }
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut record = csv::StringRecord::new();
    while let Some((line, read)) = records.next_into(&mut record) {
        let bad = |reason| DataError::BadRow { path: path.to_path_buf(), line, reason };
        read.map_err(bad)?;
        if record.len() != header.len() {
            return Err(bad(RowError::ColumnCount { got: record.len(), expected: header.len() }));
        }
        for (column, cell) in record.iter().enumerate() {
            let value = cell.trim().parse::<f32>().ok().filter(|v| v.is_finite()).ok_or_else(|| {
                bad(RowError::NotANumber { column: header[column].to_owned(), text: cell.to_owned() })
            })?;
            if column == label_column {
                if value != 0.0 && value != 1.0 {
                    return Err(bad(RowError::LabelNotBinary { column: "label".into(), text: cell.to_owned() }));
                }
                labels.push(value);
            } else {
                features.push(value);
            }
        }
    }
    if labels.is_empty() {
        return Err(DataError::NoRows { path: path.to_path_buf() });
    }
    Ok(Dataset::new(features, labels, width)?)
}

/// A deterministic split of `data` into (train, test), `test_fraction` of the rows held out.
pub fn split(data: &Dataset, test_fraction: f32, seed: u64) -> Result<(Dataset, Dataset)> {
    let mut rows: Vec<usize> = (0..data.rows()).collect();
    rows.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x05ee_d0f5_9117_u64));
    if data.rows() < 2 {
        return Err(DataError::TooFewToSplit { rows: data.rows(), train: data.rows(), test: 0 });
    }
    let test = ((data.rows() as f64 * f64::from(test_fraction)).round() as usize).clamp(1, data.rows() - 1);
    let (test_rows, train_rows) = rows.split_at(test);
    Ok((data.select(train_rows), data.select(test_rows)))
}

/// Hospital `index` of a synthetic non-IID cohort of `hospitals`: different sizes, feature shifts
/// (case mix) and base rates, labels from one hidden logistic model, about 11 % positives.
pub fn synthetic_hospital(index: usize, hospitals: usize, base_rows: usize, seed: u64) -> Dataset {
    let mut truth_rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let truth: Vec<f32> = (0..SYNTHETIC_FEATURES).map(|_| truth_rng.random_range(-1.0f32..1.0)).collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed.wrapping_add(1 + index as u64));
    let rows = base_rows * (2 + index % 3) / 3;
    let position = index as f32 / hospitals.max(1) as f32;
    let shift: Vec<f32> = (0..SYNTHETIC_FEATURES).map(|f| if f % 4 == 0 { position - 0.5 } else { 0.0 }).collect();
    let base_rate_offset = -2.6 + 0.6 * position;
    let mut features = Vec::with_capacity(rows * SYNTHETIC_FEATURES);
    let mut labels = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f32> = shift
            .iter()
            .map(|s| {
                let z: f32 = StandardNormal.sample(&mut rng);
                s + z
            })
            .collect();
        let logit: f32 = row.iter().zip(&truth).map(|(x, w)| x * w).sum::<f32>() + base_rate_offset;
        let p = fedcare_core::loss::sigmoid(logit);
        labels.push(if rng.random::<f32>() < p { 1.0 } else { 0.0 });
        features.extend(row);
    }
    // Invariant: finite features and 0/1 labels by construction.
    Dataset::new(features, labels, SYNTHETIC_FEATURES).expect("synthetic data is valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn load_text(text: &[u8]) -> Result<Dataset> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.csv");
        std::fs::write(&path, text).unwrap();
        load_csv(&path)
    }

    #[test]
    fn a_good_csv_loads_and_bad_cells_name_their_line() {
        let data = load_text(b"age,label,visits\n1.5,0,3\n2,1,4\n").unwrap();
        assert_eq!((data.rows(), data.width()), (2, 2));
        assert_eq!(data.features(), &[1.5, 3.0, 2.0, 4.0]);
        let error = load_text(b"a,label\n1,0\nx,1\n").unwrap_err().to_string();
        assert!(error.contains(":3:") && error.contains("\"x\""), "{error}");
        // The same line in a CRLF file.
        let error = load_text(b"a,label\r\n1,0\r\nx,1\r\n").unwrap_err().to_string();
        assert!(error.contains(":3:"), "{error}");
        let error = load_text(b"a,label\n1,0\nNaN,1\n").unwrap_err().to_string();
        assert!(error.contains("not a finite number"), "{error}");
        let error = load_text(b"a,label\n1,2\n").unwrap_err().to_string();
        assert!(error.contains("not 0 or 1"), "{error}");
        let missing = load_text(b"a,b\n1,0\n").unwrap_err();
        assert!(matches!(missing, DataError::Header { source: HeaderError::MissingColumn { .. }, .. }), "{missing}");
        let short = load_text(b"a,label\n1\n").unwrap_err();
        assert!(matches!(
            short,
            DataError::BadRow { line: 2, reason: RowError::ColumnCount { got: 1, expected: 2 }, .. }
        ));
        let binary = load_text(b"a,label\n\xff,0\n").unwrap_err();
        assert!(matches!(binary, DataError::BadRow { reason: RowError::Unreadable { .. }, .. }), "{binary}");
    }

    proptest! {
        /// Random bytes never panic the loader; a refusal is always about the file's contents.
        #[test]
        fn random_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Err(error) = load_text(&bytes) {
                prop_assert!(
                    matches!(error, DataError::Header { .. } | DataError::BadRow { .. } | DataError::NoRows { .. }),
                    "{error:?}"
                );
            }
        }
    }
}
