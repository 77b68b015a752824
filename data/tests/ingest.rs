//! Reading hospital data in the Diabetes-130 schema: the synthetic cohort loads, bad input gets
//! the documented outcome with its line number, and the split keeps each patient on one side.

use std::collections::BTreeSet;

use fedcare_core::{ColumnStats, ModelFile};
use fedcare_data::{BadRows, DataError, HeaderError, Schema, read_csv, synth};

fn cohort_file(dir: &std::path::Path) -> std::path::PathBuf {
    synth::write_cohort(dir, 2, 300, 11).unwrap().remove(0)
}

/// The `top_k` columns' slots as this one table would choose them (a federation chooses from
/// every hospital's counts).
fn chosen_here(table: &fedcare_data::Table, schema: &Schema) -> Vec<Vec<u32>> {
    let shapes = schema.top_k_shapes();
    table
        .bucket_counts(schema)
        .iter()
        .zip(&shapes)
        .map(|(counts, shape)| fedcare_data::top_k::choose_top_k(counts, shape.k as usize))
        .collect()
}

#[test]
fn the_synthetic_cohort_loads_in_the_uci_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = cohort_file(dir.path());
    let schema = Schema::diabetes130(true);
    let (table, report) = read_csv(&path, &schema, BadRows::Reject).unwrap();
    assert!(table.rows() > 150, "{report:?}");
    assert_eq!(report.skipped_count, 0);
    assert!(report.dropped > 0, "death/hospice encounters are dropped");
    assert!(report.unknown_categories.is_empty(), "every value is in its vocabulary: {report:?}");
    let patients: BTreeSet<&String> = table.groups().iter().collect();
    assert!(patients.len() < table.rows(), "repeat patients");

    let stats: Vec<ColumnStats> = table.numeric_moments().iter().map(|m| m.stats()).collect();
    let chosen = chosen_here(&table, &schema);
    assert_eq!(chosen.len(), 4, "medical_specialty and the three diagnoses' codes");
    assert!(chosen.iter().all(|c| !c.is_empty()));
    let data = table.to_dataset_with(&schema, &stats, &chosen).unwrap();
    assert_eq!(data.width(), schema.width());
    let rate = data.positives() as f64 / data.rows() as f64;
    assert!((0.04..0.25).contains(&rate), "readmission rate {rate}");
}

#[test]
fn the_split_keeps_each_patient_on_one_side_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let (table, _) = read_csv(&cohort_file(dir.path()), &Schema::diabetes130(false), BadRows::Reject).unwrap();
    let (train, test) = table.split_by_group(0.2, 5);
    let train_patients: BTreeSet<&String> = train.groups().iter().collect();
    assert!(test.groups().iter().all(|g| !train_patients.contains(g)));
    assert_eq!(train.rows() + test.rows(), table.rows());
    assert!(test.rows() > 0 && train.rows() > test.rows());
    assert_eq!(table.split_by_group(0.2, 5), (train, test));
}

/// Rewrites line `line` (1-based) of the cohort file with `edit`.
fn with_line(dir: &std::path::Path, name: &str, line: usize, edit: impl Fn(&str) -> Vec<u8>) -> std::path::PathBuf {
    let original = std::fs::read_to_string(cohort_file(dir)).unwrap();
    let mut out = Vec::new();
    for (i, text) in original.lines().enumerate() {
        if i + 1 == line {
            out.extend(edit(text));
        } else {
            out.extend(text.as_bytes());
        }
        out.push(b'\n');
    }
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    path
}

/// The same file with CRLF line endings (as the published UCI file, Python's `csv` module and
/// Excel write them).
fn to_crlf(path: &std::path::Path, name: &str) -> std::path::PathBuf {
    let text = std::fs::read(path).unwrap();
    let mut out = Vec::with_capacity(text.len() * 2);
    for &b in &text {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    let crlf = path.with_file_name(name);
    std::fs::write(&crlf, out).unwrap();
    crlf
}

#[test]
fn bad_rows_are_skipped_and_counted_or_refused_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Schema::diabetes130(false);
    let replace_field = |index: usize, value: &'static str| {
        move |text: &str| {
            let mut fields: Vec<&str> = text.split(',').collect();
            fields[index] = value;
            fields.join(",").into_bytes()
        }
    };
    let cases: Vec<(&str, std::path::PathBuf)> = vec![
        ("not a finite number", with_line(dir.path(), "nan.csv", 5, replace_field(9, "NaN"))),
        (
            "columns",
            with_line(dir.path(), "short.csv", 5, |text: &str| text.rsplit_once(',').unwrap().0.as_bytes().to_vec()),
        ),
        ("ICD-9", with_line(dir.path(), "icd.csv", 5, replace_field(18, "banana"))),
        ("UTF-8", with_line(dir.path(), "utf8.csv", 5, |text: &str| [&[0xff, 0xfe], text.as_bytes()].concat())),
    ];
    for (reason, lf) in cases {
        // The bad row is line 5 of the file whether its lines end with LF or CRLF.
        let crlf = to_crlf(&lf, &format!("crlf-{}", lf.file_name().unwrap().to_str().unwrap()));
        for path in [lf, crlf] {
            let (_, report) = read_csv(&path, &schema, BadRows::Skip { limit: 10 }).unwrap();
            assert_eq!(report.skipped_count, 1, "{reason}: {report:?}");
            assert_eq!(report.skipped[0].line, 5, "{reason}: {}", path.display());
            let text = report.skipped[0].reason.to_string();
            assert!(text.contains(reason), "{reason}: {text}");
            let error = read_csv(&path, &schema, BadRows::Reject).unwrap_err();
            assert!(matches!(error, DataError::BadRow { line: 5, .. }), "{reason}: {error}");
            assert!(error.to_string().contains(":5:"), "{reason}: {error}");
            let error = read_csv(&path, &schema, BadRows::Skip { limit: 0 }).unwrap_err();
            assert!(matches!(error, DataError::TooManyBadRows { limit: 0, line: 5, .. }), "{error}");
            assert!(error.to_string().contains("more than 0 bad rows"), "{error}");
        }
    }
}

#[test]
fn lf_and_crlf_files_read_the_same_rows_with_the_same_lines() {
    let dir = tempfile::tempdir().unwrap();
    let lf = cohort_file(dir.path());
    let crlf = to_crlf(&lf, "crlf.csv");
    let schema = Schema::diabetes130(true);
    let (lf_table, lf_report) = read_csv(&lf, &schema, BadRows::Reject).unwrap();
    let (crlf_table, crlf_report) = read_csv(&crlf, &schema, BadRows::Reject).unwrap();
    assert_eq!(lf_table, crlf_table);
    assert_eq!(lf_report, crlf_report);
    // The header is line 1; the first data row is line 2 (or later, if a dropped row came first).
    assert!(lf_table.lines()[0] >= 2);
    let first_kept =
        std::fs::read_to_string(&lf).unwrap().lines().nth(lf_table.lines()[0] as usize - 1).unwrap().to_owned();
    let patient = first_kept.split(',').nth(1).unwrap();
    assert_eq!(patient, lf_table.groups()[0], "line {} holds the first kept row", lf_table.lines()[0]);
}

/// `predict` writes each row's file line: the same for an LF and a CRLF copy of a file.
#[test]
fn predict_writes_the_file_line_for_lf_and_crlf_files() {
    use fedcare_core::ModelSpec;
    let dir = tempfile::tempdir().unwrap();
    let lf = cohort_file(dir.path());
    let crlf = to_crlf(&lf, "crlf.csv");
    let schema = Schema::diabetes130(true);
    let (table, _) = read_csv(&lf, &schema, BadRows::Reject).unwrap();
    let spec = ModelSpec::mlp(schema.width(), &[4]).unwrap();
    let mut model = ModelFile::new(spec.clone(), fedcare_core::rng::init_params(&spec, 3), schema.id.clone()).unwrap();
    model.feature_scaling = table.numeric_moments().iter().map(|m| m.stats()).collect();
    model.category_buckets = chosen_here(&table, &schema);
    let scores = |input: &std::path::Path, name: &str| {
        let out = dir.path().join(name);
        fedcare_data::predict::predict_file(&model, &schema, input, &out, BadRows::Reject).unwrap();
        std::fs::read_to_string(out).unwrap()
    };
    let (from_lf, from_crlf) = (scores(&lf, "lf-scores.csv"), scores(&crlf, "crlf-scores.csv"));
    assert_eq!(from_lf, from_crlf);
    let lines: Vec<u64> = from_lf.lines().skip(1).map(|l| l.split(',').next().unwrap().parse().unwrap()).collect();
    assert_eq!(lines, table.lines());
    let text = std::fs::read_to_string(&lf).unwrap();
    let file: Vec<&str> = text.lines().collect();
    for (row, &line) in lines.iter().enumerate().take(20) {
        let patient = file[line as usize - 1].split(',').nth(1).unwrap();
        assert_eq!(patient, table.groups()[row], "line {line}");
    }
    // A model of another schema, or without the scaling, is refused with the reason.
    let other = Schema { id: "other/v1".into(), ..Schema::diabetes130(true) };
    let out = dir.path().join("other.csv");
    let error = fedcare_data::predict::predict_file(&model, &other, &lf, &out, BadRows::Reject).unwrap_err();
    assert!(matches!(error, DataError::ModelSchema { .. }), "{error}");
    let mut unscaled = model.clone();
    unscaled.feature_scaling.clear();
    let error = fedcare_data::predict::predict_file(&unscaled, &schema, &lf, &out, BadRows::Reject).unwrap_err();
    assert!(error.to_string().contains("scaling of numeric features for 0, the schema has 10"), "{error}");
    assert!(!out.exists(), "nothing is written for a refused model");
}

#[test]
fn a_missing_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = with_line(dir.path(), "header.csv", 1, |text: &str| text.replace(",A1Cresult", "").into_bytes());
    let error = read_csv(&path, &Schema::diabetes130(false), BadRows::Reject).unwrap_err();
    assert!(matches!(error, DataError::Header { source: HeaderError::Differs { column: 24, .. }, .. }), "{error}");
    assert!(error.to_string().contains("A1Cresult"), "{error}");
    // Without an exact header, a missing column is named.
    let loose = Schema { exact_header: None, ..Schema::diabetes130(false) };
    let error = read_csv(&path, &loose, BadRows::Reject).unwrap_err();
    assert!(
        matches!(&error, DataError::Header { source: HeaderError::MissingColumn { column }, .. } if column == "A1Cresult"),
        "{error}"
    );
}

#[test]
fn bytes_in_memory_read_as_their_file_and_every_record_has_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = cohort_file(dir.path());
    let schema = Schema::diabetes130(true);
    let bytes = std::fs::read(&path).unwrap();
    let from_file = read_csv(&path, &schema, BadRows::Reject).unwrap();
    let from_bytes = fedcare_data::read_csv_bytes(&bytes, std::path::Path::new("DataFrame"), &schema, BadRows::Reject);
    assert_eq!(from_bytes.unwrap(), from_file);

    // Every kept row's line is one of the records' lines, in order; dropped rows are not kept.
    let lines = fedcare_data::record_lines(&bytes);
    assert_eq!(lines.len(), from_file.1.rows + from_file.1.dropped);
    assert_eq!(lines[0], 2);
    let mut records = lines.iter();
    assert!(from_file.0.lines().iter().all(|line| records.any(|l| l == line)));

    // A quoted field over two lines: the next record's line counts both.
    let text = "a,b\n1,\"x\ny\"\n2,z\r\n3,w\n";
    assert_eq!(fedcare_data::record_lines(text.as_bytes()), [2, 4, 5]);

    // Errors name the source given.
    let header_only = b"encounter_id\n";
    let error = fedcare_data::read_csv_bytes(header_only, std::path::Path::new("DataFrame"), &schema, BadRows::Reject)
        .unwrap_err();
    assert!(error.to_string().starts_with("DataFrame: "), "{error}");
    assert!(matches!(error, DataError::Header { source: HeaderError::Differs { .. }, .. }), "{error:?}");
}

#[test]
fn a_keyed_schema_hashes_other_buckets_and_predict_needs_the_same_key() {
    use fedcare_data::top_k::BucketKey;
    let dir = tempfile::tempdir().unwrap();
    let path = cohort_file(dir.path());
    let plain = Schema::diabetes130(true);
    let key = BucketKey::generate().unwrap();
    let keyed = plain.clone().with_bucket_key(key.clone());
    assert_eq!(keyed.id, format!("{}+top_k-key:{}", plain.id, key.fingerprint()));
    assert_eq!(keyed.clone().with_bucket_key(key.clone()).id, keyed.id, "keying twice names one key");
    let (plain_table, _) = read_csv(&path, &plain, BadRows::Reject).unwrap();
    let (keyed_table, _) = read_csv(&path, &keyed, BadRows::Reject).unwrap();
    // The same rows and the same totals, in other buckets.
    let (plain_counts, keyed_counts) = (plain_table.bucket_counts(&plain), keyed_table.bucket_counts(&keyed));
    for (p, k) in plain_counts.iter().zip(&keyed_counts) {
        assert_eq!(p.iter().sum::<u64>(), k.iter().sum::<u64>());
        assert_ne!(p, k, "a key moves the values to other buckets");
    }
    // A schema without top_k columns is not renamed by a key.
    let numeric_only = Schema { categorical: Vec::new(), ..plain.clone() };
    assert_eq!(numeric_only.clone().with_bucket_key(key.clone()).id, numeric_only.id);

    let spec = fedcare_core::ModelSpec::logistic_regression(keyed.width()).unwrap();
    let mut model = ModelFile::new(spec.clone(), fedcare_core::rng::init_params(&spec, 3), keyed.id.clone()).unwrap();
    model.feature_scaling = keyed_table.numeric_moments().iter().map(|m| m.stats()).collect();
    model.category_buckets = chosen_here(&keyed_table, &keyed);
    let out = dir.path().join("scores.csv");
    fedcare_data::predict::predict_file(&model, &keyed, &path, &out, BadRows::Reject).unwrap();
    let cases = [
        (plain.clone(), "give that key"),
        (plain.clone().with_bucket_key(BucketKey::generate().unwrap()), "another consortium's key"),
    ];
    for (schema, says) in cases {
        let error = fedcare_data::predict::predict_file(&model, &schema, &path, &out, BadRows::Reject).unwrap_err();
        assert!(matches!(error, DataError::TopKKey { .. }) && error.to_string().contains(says), "{error}");
        assert!(error.to_string().contains(&key.fingerprint()), "{error}");
    }
}
