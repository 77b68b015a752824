//! Schema-less hospital data: a simple numeric CSV loader (what `fedcare join` reads without a
//! schema), its row-level train/test split, and a small synthetic numeric cohort the tests use.
//! Data in a schema (the Diabetes-130 file) goes through [`crate::schema`] and [`crate::ingest`].
//!
//! CSV: a header row; a column named `label` (0 or 1) is the label, every other column a numeric
//! feature. A bad cell is reported with its line and column and the file is refused.

use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use fedcare_core::Dataset;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Features of the synthetic cohort.
pub const SYNTHETIC_FEATURES: usize = 16;

/// Loads a numeric CSV with a `label` column.
pub fn load_csv(path: &Path) -> Result<Dataset> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("cannot open {}", path.display()))?;
    let headers = reader.headers().with_context(|| format!("{}: no header row", path.display()))?.clone();
    let label_column = headers
        .iter()
        .position(|h| h == "label")
        .with_context(|| format!("{}: no `label` column in the header", path.display()))?;
    let width = headers.len() - 1;
    ensure!(width > 0, "{}: no feature columns", path.display());
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: unreadable row {}", path.display(), index + 2))?;
        let line = record.position().map_or(index as u64 + 2, |p| p.line());
        ensure!(
            record.len() == headers.len(),
            "{}:{line}: {} columns, expected {}",
            path.display(),
            record.len(),
            headers.len()
        );
        for (column, cell) in record.iter().enumerate() {
            let value: f32 = cell.trim().parse().map_err(|_| {
                anyhow::anyhow!("{}:{line}: column {:?}: {cell:?} is not a number", path.display(), &headers[column])
            })?;
            if !value.is_finite() {
                bail!("{}:{line}: column {:?}: {cell:?} is not finite", path.display(), &headers[column]);
            }
            if column == label_column {
                ensure!(value == 0.0 || value == 1.0, "{}:{line}: label {cell:?} is not 0 or 1", path.display());
                labels.push(value);
            } else {
                features.push(value);
            }
        }
    }
    ensure!(!labels.is_empty(), "{}: no data rows", path.display());
    Ok(Dataset::new(features, labels, width)?)
}

/// A deterministic split of `data` into (train, test), `test_fraction` of the rows held out.
pub fn split(data: &Dataset, test_fraction: f32, seed: u64) -> Result<(Dataset, Dataset)> {
    let mut rows: Vec<usize> = (0..data.rows()).collect();
    rows.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(seed ^ 0x05ee_d0f5_9117_u64));
    ensure!(data.rows() >= 2, "need at least 2 rows to hold some out");
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
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("data.csv");
        std::fs::write(&path, text)?;
        load_csv(&path)
    }

    #[test]
    fn a_good_csv_loads_and_bad_cells_name_their_line() {
        let data = load_text(b"age,label,visits\n1.5,0,3\n2,1,4\n").unwrap();
        assert_eq!((data.rows(), data.width()), (2, 2));
        assert_eq!(data.features(), &[1.5, 3.0, 2.0, 4.0]);
        let error = format!("{:#}", load_text(b"a,label\n1,0\nx,1\n").unwrap_err());
        assert!(error.contains(":3:") && error.contains("\"x\""), "{error}");
        let error = format!("{:#}", load_text(b"a,label\n1,0\nNaN,1\n").unwrap_err());
        assert!(error.contains("not finite"), "{error}");
        let error = format!("{:#}", load_text(b"a,label\n1,2\n").unwrap_err());
        assert!(error.contains("not 0 or 1"), "{error}");
        assert!(load_text(b"a,b\n1,0\n").is_err(), "no label column");
        assert!(load_text(b"a,label\n1\n").is_err(), "short row");
        assert!(load_text(b"a,label\n\xff,0\n").is_err(), "not UTF-8");
    }

    proptest! {
        /// Random bytes never panic the loader.
        #[test]
        fn random_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = load_text(&bytes);
        }
    }
}
