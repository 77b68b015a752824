//! Splitting one file into the site files of a consortium (what `fedcare split` runs, for a
//! federation on a file that has no hospital column, like the published Diabetes-130 file):
//! every row of a patient goes to one site; the sites are alike ([`SplitBy::Patient`]) or skewed
//! by a column's values ([`SplitBy::Column`]: most patients of a value go to that value's home
//! site); and a held-out file can take patients no site has. Rows are copied field for field, so
//! the files keep the input's schema.
//!
//! Deterministic: a patient's file depends only on the seed and the patient's id (a keyed BLAKE3
//! hash), and in skewed splits on the values' ranking, the same on every machine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{DataError, HeaderError, Result};
use crate::records::{Records, read_file};

/// The key-derivation context of the split; changing it changes every split.
const SITE_CONTEXT: &str = "fedcare 2026 site split v1";
/// The share of a value's patients that go to its home site in a skewed split.
pub const SKEW: f64 = 0.8;

/// How patients are spread over the sites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitBy {
    /// Alike: each patient to a site at random (by its id's hash).
    Patient,
    /// Skewed by this column: the values, ranked by their patients, take turns as home of a site,
    /// and [`SKEW`] of a value's patients (by the value of their first row) go to its home.
    Column(String),
}

/// What a split makes.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitPlan {
    /// Site files (2 to 64).
    pub sites: usize,
    /// How patients are spread.
    pub by: SplitBy,
    /// Share of the patients held out of every site, in `holdout.csv` (0: none; below 1).
    pub holdout: f64,
    /// The seed.
    pub seed: u64,
    /// The column of the patient id (rows with an empty id are each their own patient).
    pub group: String,
}

/// One file a split wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitFile {
    /// Its path.
    pub path: PathBuf,
    /// Its rows.
    pub rows: usize,
    /// Its patients.
    pub patients: usize,
}

/// The files a split wrote: `sites/site-1.csv` … and, with a held-out share, `holdout.csv`
/// beside `sites/` (so that `sites/` is a federation's `--data` as it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitReport {
    /// The site files, in order.
    pub sites: Vec<SplitFile>,
    /// The held-out file.
    pub holdout: Option<SplitFile>,
}

/// Three uniform numbers in [0, 1) from the patient's id and the seed.
fn draws(seed: u64, patient: &str) -> [f64; 3] {
    let mut hasher = blake3::Hasher::new_derive_key(SITE_CONTEXT);
    hasher.update(&seed.to_le_bytes());
    hasher.update(patient.as_bytes());
    let hash = hasher.finalize();
    let bytes = hash.as_bytes();
    core::array::from_fn(|i| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[8 * i..8 * i + 8]);
        (u64::from_le_bytes(word) >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// Splits the CSV at `input` into `out/sites/site-1.csv` … (and `out/holdout.csv`) as `plan`
/// says.
/// Refuses a plan out of range, a file without the id (or skew) column, and an unreadable row
/// (with its line); nothing is written then.
pub fn split_file(input: &Path, out: &Path, plan: &SplitPlan) -> Result<SplitReport> {
    if !(2..=64).contains(&plan.sites) {
        return Err(DataError::Argument { name: "sites", expected: "2 to 64", got: plan.sites });
    }
    if !(0.0..1.0).contains(&plan.holdout) {
        return Err(DataError::Fraction { name: "holdout", got: plan.holdout });
    }
    let bytes = read_file(input)?;
    let mut records = Records::new(&bytes);
    let header_error = |source| DataError::Header { path: input.to_path_buf(), source };
    let header = records.header().map_err(header_error)?;
    let find = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| header_error(HeaderError::MissingColumn { column: name.into() }))
    };
    let group_at = find(&plan.group)?;
    let by_at = match &plan.by {
        SplitBy::Patient => None,
        SplitBy::Column(column) => Some(find(column)?),
    };
    let mut rows: Vec<(String, csv::StringRecord)> = Vec::new();
    let mut record = csv::StringRecord::new();
    while let Some((line, outcome)) = records.next_into(&mut record) {
        outcome.map_err(|reason| DataError::BadRow { path: input.to_path_buf(), line, reason })?;
        let id = record.get(group_at).map(str::trim).filter(|id| !id.is_empty());
        let patient = id.map_or_else(|| format!("row-{line}"), str::to_owned);
        rows.push((patient, record.clone()));
    }
    // A skewed split: each value's home site, the values ranked by their patients (first rows).
    let mut first_value: HashMap<&str, &str> = HashMap::new();
    if let Some(at) = by_at {
        for (patient, record) in &rows {
            first_value.entry(patient.as_str()).or_insert_with(|| record.get(at).unwrap_or(""));
        }
    }
    let mut patients_of: HashMap<&str, usize> = HashMap::new();
    for value in first_value.values() {
        *patients_of.entry(value).or_default() += 1;
    }
    let mut ranked: Vec<(&str, usize)> = patients_of.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let home: HashMap<&str, usize> =
        ranked.iter().enumerate().map(|(rank, (value, _))| (*value, rank % plan.sites)).collect();
    // The file of each patient: `plan.sites` is the held-out file.
    let file_of = |patient: &str| -> usize {
        let [hold, site, skew] = draws(plan.seed, patient);
        if hold < plan.holdout {
            return plan.sites;
        }
        let random = ((site * plan.sites as f64) as usize).min(plan.sites - 1);
        match first_value.get(patient).and_then(|value| home.get(value)) {
            Some(&home) if skew < SKEW => home,
            _ => random,
        }
    };
    let sites_dir = out.join("sites");
    std::fs::create_dir_all(&sites_dir).map_err(|source| DataError::Write { path: sites_dir.clone(), source })?;
    let files = plan.sites + usize::from(plan.holdout > 0.0);
    let paths: Vec<PathBuf> = (0..files)
        .map(|i| if i < plan.sites { sites_dir.join(format!("site-{}.csv", i + 1)) } else { out.join("holdout.csv") })
        .collect();
    let write_error =
        |path: &Path, e: csv::Error| DataError::Write { path: path.to_path_buf(), source: std::io::Error::other(e) };
    let mut writers: Vec<csv::Writer<Vec<u8>>> = (0..files).map(|_| csv::Writer::from_writer(Vec::new())).collect();
    for (writer, path) in writers.iter_mut().zip(&paths) {
        writer.write_record(&header).map_err(|e| write_error(path, e))?;
    }
    let mut counts = vec![(0usize, std::collections::HashSet::new()); files];
    for (patient, record) in &rows {
        let file = file_of(patient);
        writers[file].write_record(record).map_err(|e| write_error(&paths[file], e))?;
        counts[file].0 += 1;
        counts[file].1.insert(patient.as_str());
    }
    let mut written = Vec::with_capacity(files);
    for ((writer, path), (rows, patients)) in writers.into_iter().zip(paths).zip(counts) {
        // Invariant: flushing to memory cannot fail.
        let bytes = writer.into_inner().expect("writing to memory");
        std::fs::write(&path, bytes).map_err(|source| DataError::Write { path: path.clone(), source })?;
        written.push(SplitFile { path, rows, patients: patients.len() });
    }
    let holdout = (plan.holdout > 0.0).then(|| written.pop()).flatten();
    Ok(SplitReport { sites: written, holdout })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 400 patients with 1 to 3 rows each; `ward` is `icu` for a quarter of them.
    fn input(dir: &Path) -> PathBuf {
        let mut text = String::from("patient,ward,age\n");
        for p in 0..400 {
            for r in 0..(1 + p % 3) {
                let ward = if p % 4 == 0 { "icu" } else { "general" };
                text += &format!("p{p},{ward},{}\n", 20 + r);
            }
        }
        let path = dir.join("all.csv");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn plan(by: SplitBy, holdout: f64) -> SplitPlan {
        SplitPlan { sites: 3, by, holdout, seed: 7, group: "patient".into() }
    }

    /// Per file, its patients.
    fn patients(report: &SplitReport) -> Vec<Vec<String>> {
        report
            .sites
            .iter()
            .chain(&report.holdout)
            .map(|file| {
                let mut reader = csv::Reader::from_path(&file.path).unwrap();
                let mut ids: Vec<String> = reader.records().map(|r| r.unwrap()[0].to_string()).collect();
                ids.dedup();
                ids
            })
            .collect()
    }

    #[test]
    fn every_patient_is_in_one_file_and_the_split_is_the_same_each_time() {
        let dir = tempfile::tempdir().unwrap();
        let all = input(dir.path());
        let report = split_file(&all, &dir.path().join("a"), &plan(SplitBy::Patient, 0.2)).unwrap();
        assert_eq!(report.sites.len(), 3);
        let holdout = report.holdout.as_ref().unwrap();
        assert!((50..=110).contains(&holdout.patients), "about 20 % of 400 held out: {}", holdout.patients);
        let rows: usize = report.sites.iter().chain(&report.holdout).map(|f| f.rows).sum();
        assert_eq!(rows, (0..400).map(|p| 1 + p % 3).sum::<usize>(), "every row, once");
        let per_file = patients(&report);
        let mut seen: Vec<&String> = per_file.iter().flatten().collect();
        let total = seen.len();
        seen.sort();
        seen.dedup();
        assert_eq!((seen.len(), total), (400, 400), "no patient in two files");
        let again = split_file(&all, &dir.path().join("b"), &plan(SplitBy::Patient, 0.2)).unwrap();
        for (a, b) in report.sites.iter().zip(&again.sites) {
            assert_eq!(std::fs::read(&a.path).unwrap(), std::fs::read(&b.path).unwrap());
        }
        let header = std::fs::read_to_string(&report.sites[0].path).unwrap();
        assert!(header.starts_with("patient,ward,age\n"));
    }

    #[test]
    fn a_skewed_split_sends_most_of_a_values_patients_to_its_home_site() {
        let dir = tempfile::tempdir().unwrap();
        let all = input(dir.path());
        let report = split_file(&all, &dir.path().join("s"), &plan(SplitBy::Column("ward".into()), 0.0)).unwrap();
        assert!(report.holdout.is_none());
        // `general` (300 patients) is ranked first: site 1 is its home; `icu` (100): site 2.
        let icu: Vec<usize> = patients(&report)
            .iter()
            .map(|ids| ids.iter().filter(|id| id[1..].parse::<usize>().unwrap() % 4 == 0).count())
            .collect();
        assert!(icu[1] >= 70, "most icu patients at their home site: {icu:?}");
        assert!(icu[0] + icu[2] >= 5, "and some elsewhere: {icu:?}");
    }

    #[test]
    fn bad_plans_and_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let all = input(dir.path());
        let one_site = SplitPlan { sites: 1, ..plan(SplitBy::Patient, 0.0) };
        assert!(split_file(&all, dir.path(), &one_site).unwrap_err().to_string().contains("sites"));
        assert!(
            split_file(&all, dir.path(), &plan(SplitBy::Patient, 1.0)).unwrap_err().to_string().contains("holdout")
        );
        let no_column = SplitPlan { group: "patient_nbr".into(), ..plan(SplitBy::Patient, 0.0) };
        let error = split_file(&all, dir.path(), &no_column).unwrap_err().to_string();
        assert!(error.contains("patient_nbr") && error.contains("all.csv"), "{error}");
        let error = split_file(&all, dir.path(), &plan(SplitBy::Column("unit".into()), 0.0)).unwrap_err().to_string();
        assert!(error.contains("unit"), "{error}");
    }
}
