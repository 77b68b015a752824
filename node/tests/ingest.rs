//! Reading hospital data in the Diabetes-130 schema: the synthetic cohort loads, bad input gets
//! the documented outcome with its line number, and the split keeps each patient on one side.

use std::collections::BTreeSet;

use fedcare_node::ingest::{BadRows, ColumnStats, read_csv};
use fedcare_node::schema::Schema;
use fedcare_node::synth;

fn cohort_file(dir: &std::path::Path) -> std::path::PathBuf {
    synth::write_cohort(dir, 2, 300, 11).unwrap().remove(0)
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
    assert!(report.unknown_categories.contains_key("medical_specialty"), "rare specialties are counted");
    let patients: BTreeSet<&String> = table.groups().iter().collect();
    assert!(patients.len() < table.rows(), "repeat patients");

    let stats: Vec<ColumnStats> = table.numeric_moments().iter().map(|m| m.stats()).collect();
    let data = table.to_dataset(&schema, &stats).unwrap();
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
    for (reason, path) in cases {
        let (_, report) = read_csv(&path, &schema, BadRows::Skip { limit: 10 }).unwrap();
        assert_eq!(report.skipped_count, 1, "{reason}: {report:?}");
        assert_eq!(report.skipped[0].line, 5, "{reason}");
        assert!(report.skipped[0].reason.contains(reason), "{reason}: {}", report.skipped[0].reason);
        let error = format!("{:#}", read_csv(&path, &schema, BadRows::Reject).unwrap_err());
        assert!(error.contains(":5:"), "{reason}: {error}");
        let error = format!("{:#}", read_csv(&path, &schema, BadRows::Skip { limit: 0 }).unwrap_err());
        assert!(error.contains("more than 0 bad rows"), "{error}");
    }
}

#[test]
fn a_missing_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = with_line(dir.path(), "header.csv", 1, |text: &str| text.replace(",A1Cresult", "").into_bytes());
    let error = format!("{:#}", read_csv(&path, &Schema::diabetes130(false), BadRows::Reject).unwrap_err());
    assert!(error.contains("A1Cresult"), "{error}");
}

/// A model trained by a simulation scores a file in the same schema; a mismatched schema is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn predict_scores_a_file_with_the_federated_scaling() {
    use fedcare_node::simulate::{self, SimulateOptions};
    let cohort = tempfile::tempdir().unwrap();
    let files = synth::write_cohort(cohort.path(), 2, 300, 4).unwrap();
    let out = tempfile::tempdir().unwrap();
    let options = SimulateOptions {
        rounds: 1,
        hidden: vec![8],
        data: Some(cohort.path().to_path_buf()),
        out: out.path().to_path_buf(),
        show_progress: false,
        ..SimulateOptions::default()
    };
    simulate::run(&options, None).await.unwrap();
    let model = fedcare_node::inspect::read_model_file(&out.path().join("model.bin")).unwrap();
    let schema = Schema::diabetes130(true);
    assert_eq!(model.feature_scaling.len(), schema.numeric.len());
    let scores = out.path().join("scores.csv");
    let report = fedcare_node::predict::predict_file(&model, &schema, &files[0], &scores, BadRows::Reject).unwrap();
    let text = std::fs::read_to_string(&scores).unwrap();
    assert_eq!(text.lines().count(), report.rows + 1);
    for line in text.lines().skip(1) {
        let probability: f64 = line.rsplit(',').next().unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&probability), "{line}");
    }
    let other = Schema { id: "other/v1".into(), ..Schema::diabetes130(true) };
    assert!(fedcare_node::predict::predict_file(&model, &other, &files[0], &scores, BadRows::Reject).is_err());
}
