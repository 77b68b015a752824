//! Federated exploration end to end (in-process gRPC, real threshold encryption): the pooled
//! counts equal the plaintext counts over every hospital's rows exactly, for the Diabetes-130
//! schema and for a TOML schema with a `top_k` column and bins that do not cover the data; no
//! report holds a small count; a hospital's own figures are its file's; and a hospital whose file
//! lacks a column refuses, by the column's name, while the others explore without it. Under
//! noise, every pooled count is within the hospitals' noise of the plaintext count, and a
//! hospital with a privacy budget takes part while the exploration fits it.

use std::path::{Path, PathBuf};

use fedcare_core::explore::{ColumnKind, ExploreCounts, figures, resolve_columns};
use fedcare_data::{BadRows, Schema, read_csv};
use fedcare_federation::protocol::ExploreNoise;
use fedcare_federation::simulation::{self, SimulateOptions, SimulationReport, Transport};

const MIN_CELL: u64 = 10;

fn explore(data: &Path, schema: Option<Schema>, out: &Path) -> SimulationReport {
    noisy_explore(data, schema, out, 0.0, None)
}

/// [`explore`] with each hospital's noise `noise` on the pooled counts and hospital `budget.0`'s
/// `max_epsilon` `budget.1`.
fn noisy_explore(
    data: &Path,
    schema: Option<Schema>,
    out: &Path,
    noise: f64,
    budget: Option<(usize, f64)>,
) -> SimulationReport {
    let options = SimulateOptions {
        data: Some(data.to_path_buf()),
        schema,
        out: out.to_path_buf(),
        transport: Transport::InProcess,
        explore: Some(MIN_CELL),
        explore_noise: noise,
        budget,
        phase_timeout_secs: 60,
        ..SimulateOptions::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(simulation::run(&options, None, None)).unwrap()
}

/// Every file's plaintext counts on `columns`, and their sum.
fn plaintext(
    files: &[PathBuf],
    schema: &Schema,
    columns: &[fedcare_core::explore::ColumnSpec],
) -> (Vec<ExploreCounts>, ExploreCounts) {
    let mut total = ExploreCounts::zeros(columns);
    let mut each = Vec::new();
    for file in files {
        let (table, _) = read_csv(file, schema, BadRows::Skip { limit: 1000 }).unwrap();
        let counts = table.explore_counts(schema, columns).unwrap();
        total.add(&counts).unwrap();
        each.push(counts);
    }
    (each, total)
}

/// Every count a report's JSON shows is 0 or at least MIN_CELL.
fn assert_no_small_count(json: &serde_json::Value, path: &str) {
    match json {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if let ("rows" | "positives" | "present" | "count", serde_json::Value::Number(n)) =
                    (key.as_str(), value)
                {
                    let n = n.as_u64().unwrap();
                    assert!(n == 0 || n >= MIN_CELL, "{path}.{key} = {n} is a small count");
                }
                assert_no_small_count(value, &format!("{path}.{key}"));
            }
        }
        serde_json::Value::Array(items) => {
            items.iter().enumerate().for_each(|(i, v)| assert_no_small_count(v, &format!("{path}[{i}]")))
        }
        _ => {}
    }
}

fn check_run(files: &[PathBuf], schema: &Schema, run: &SimulationReport, out: &Path) -> ExploreCounts {
    let (exploration, hospitals) = run.outcome.exploration.as_ref().expect("the exploration's counts");
    assert_eq!(hospitals.len(), files.len());
    assert_eq!(exploration.columns, resolve_columns(&schema.explore_columns(), &run.outcome.figures.feature_stats));
    let (each, total) = plaintext(files, schema, &exploration.columns);
    assert_eq!(exploration.counts, total, "pooled counts = plaintext counts over all rows");
    // The aggregator's report: nothing small, and a small pooled cell is marked.
    let text = std::fs::read_to_string(out.join("explore.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_no_small_count(&json, "explore.json");
    let report = fedcare_federation::exploration::read_report(&out.join("explore.json")).unwrap();
    assert_eq!(report.figures, figures(&exploration.columns, &total, MIN_CELL).unwrap());
    let mut marked = 0;
    for (column, counts) in report.figures.columns.iter().zip(&total.columns) {
        let small = counts.cells.iter().filter(|&&c| c > 0 && c < MIN_CELL).count();
        let small_positives = counts.positives.iter().filter(|&&c| c > 0 && c < MIN_CELL).count();
        marked += small + small_positives;
        let hidden_rates =
            column.cells.iter().filter(|c| c.positives.count().is_none()).count() as u64 + column.hidden_cells;
        assert!(hidden_rates >= small_positives as u64, "{}: small positives shown", column.name);
        let suppressed = column.cells.iter().filter(|c| c.count.count().is_none()).count() as u64 + column.hidden_cells;
        assert!(suppressed >= small as u64, "{}: {small} small cells, {suppressed} suppressed", column.name);
    }
    assert!(marked > 0, "the cohort has small cells to suppress");
    // Each hospital's own report: the pooled figures, and its file's beside them.
    for (i, own) in run.explorations.iter().enumerate() {
        let own = own.as_ref().expect("every hospital's report");
        assert_eq!(own.figures, report.figures, "a hospital's pooled figures are the aggregator's");
        let local = own.local.as_ref().unwrap();
        assert_eq!(local.hospital, run.hospitals[i].as_str());
        assert_eq!(local.figures, figures(&exploration.columns, &each[i], MIN_CELL).unwrap());
        assert_no_small_count(&serde_json::to_value(own).unwrap(), "hospital report");
    }
    total
}

#[test]
fn the_pooled_diabetes130_counts_are_the_plaintext_counts() {
    let dir = tempfile::tempdir().unwrap();
    let files = fedcare_data::synth::write_cohort(&dir.path().join("cohort"), 3, 600, 11).unwrap();
    let out = dir.path().join("out");
    let run = explore(&dir.path().join("cohort"), None, &out);
    let schema = Schema::diabetes130(true);
    let total = check_run(&files, &schema, &run, &out);
    assert_eq!(run.outcome.records.iter().map(|r| r.kind.name()).collect::<Vec<_>>(), ["setup", "explore"]);
    assert!(total.rows > 1000);
}

const CUSTOM: &str = r#"
id = "custom/v1"
label = { column = "readmitted", positive = ["<30"] }
group = "patient_nbr"
[[numeric]]
name = "time_in_hospital"
[[numeric]]
name = "num_lab_procedures"
edges = [20, 40, 60]
[[categorical]]
name = "race"
vocabulary = ["Caucasian", "AfricanAmerican"]
[[categorical]]
name = "medical_specialty"
top_k = 3
buckets = 64
"#;

#[test]
fn a_toml_schema_with_top_k_and_narrow_bins_pools_exactly_and_shows_its_overflow() {
    let dir = tempfile::tempdir().unwrap();
    let files = fedcare_data::synth::write_cohort(&dir.path().join("cohort"), 3, 600, 5).unwrap();
    let schema = Schema::from_toml(CUSTOM).unwrap();
    let out = dir.path().join("out");
    let run = explore(&dir.path().join("cohort"), Some(schema.clone()), &out);
    let total = check_run(&files, &schema, &run, &out);
    let labs = &total.columns[1];
    let (under, over) = (labs.cells[0], labs.cells[labs.cells.len() - 1]);
    assert!(under >= MIN_CELL && over >= MIN_CELL, "values outside [20, 60] are counted: {under} below, {over} above");
    let report = fedcare_federation::exploration::read_report(&out.join("explore.json")).unwrap();
    let shown = &report.figures.columns[1].cells;
    assert_eq!((shown[0].label.as_str(), shown[0].count.count()), ("< 20", Some(under)));
    assert_eq!((shown[3].label.as_str(), shown[3].count.count()), ("> 60", Some(over)));
    let ColumnKind::Numeric { edges, .. } = &run.outcome.exploration.as_ref().unwrap().0.columns[0].kind else {
        panic!()
    };
    assert_eq!(edges.len(), 21, "bins from the federated statistics");
}

#[test]
fn a_hospital_whose_file_lacks_a_column_refuses_and_the_others_explore() {
    let dir = tempfile::tempdir().unwrap();
    let cohort = dir.path().join("cohort");
    let files = fedcare_data::synth::write_cohort(&cohort, 3, 500, 3).unwrap();
    // The third hospital's file without the `race` column (the schema's header is not exact).
    fedcare_data::synth::remove_column(&files[2], "race").unwrap();
    let schema = Schema::from_toml(CUSTOM).unwrap();
    let out = dir.path().join("out");
    let run = explore(&cohort, Some(schema.clone()), &out);
    assert_eq!(run.left_out.len(), 1, "{:?}", run.left_out);
    assert_eq!(run.left_out[0].0, files[2]);
    assert!(run.left_out[0].1.contains("race"), "{}", run.left_out[0].1);
    check_run(&files[..2], &schema, &run, &out);
}

#[test]
fn a_noisy_exploration_is_within_its_noise_and_charged_to_a_hospitals_budget() {
    let dir = tempfile::tempdir().unwrap();
    let cohort = dir.path().join("cohort");
    let files = fedcare_data::synth::write_cohort(&cohort, 3, 300, 13).unwrap();
    let schema = Schema::diabetes130(true);
    let noise = ExploreNoise { multiplier: 4.0, rows_per_patient: 1 };
    // What the hospital charges (fedcare_protocol::roster::Consortium::privacy_charge at its
    // default max_delta of 1e-5): the setup's statistics, then the exploration's as well.
    let setup = (1 + 3 * schema.numeric.len() + schema.top_k_shapes().len()) as u64;
    let explored = setup + 1 + schema.explore_columns().len() as u64;
    let (setup_charge, explore_charge) = (noise.epsilon(setup, 1e-5), noise.epsilon(explored, 1e-5));

    // Hospital 0's budget fits the whole exploration: all three take part.
    let out = dir.path().join("fits");
    let run = noisy_explore(&cohort, Some(schema.clone()), &out, noise.multiplier, Some((0, explore_charge * 1.01)));
    let hospitals: Vec<usize> = run.outcome.records.iter().map(|r| r.hospitals).collect();
    assert_eq!(hospitals, [3, 3], "{:?}", run.left_out);
    let (exploration, _) = run.outcome.exploration.as_ref().unwrap();
    // Under noise each hospital counts the first row of each patient.
    let mut total = ExploreCounts::zeros(&exploration.columns);
    for file in &files {
        let (table, _) = read_csv(file, &schema, BadRows::Skip { limit: 1000 }).unwrap();
        let counted = table.select(&noise.pooled().counted_rows(table.groups()));
        total.add(&counted.explore_counts(&schema, &exploration.columns).unwrap()).unwrap();
    }
    // Each hospital's noise on a count has standard deviation σ·√2 (one row a patient): six
    // standard deviations of three hospitals' noise, read as zero below zero.
    let bound = (6.0 * noise.count_scale() * 3f64.sqrt()).ceil() as u64;
    let pooled = &exploration.counts;
    let mut counts = 0;
    let mut differ = 0;
    let mut compare = |noisy: u64, exact: u64, what: &str| {
        assert!(noisy.abs_diff(exact) <= bound, "{what}: {noisy} pooled, {exact} exact, bound {bound}");
        counts += 1;
        differ += usize::from(noisy != exact);
    };
    compare(pooled.rows, total.rows, "rows");
    compare(pooled.positives, total.positives, "positives");
    for (column, exact) in pooled.columns.iter().zip(&total.columns) {
        compare(column.missing, exact.missing, "missing");
        for (noisy, exact) in
            column.cells.iter().chain(&column.positives).zip(exact.cells.iter().chain(&exact.positives))
        {
            compare(*noisy, *exact, "cell");
        }
        assert_eq!(column.moments, fedcare_core::Moments::default(), "no moments under noise");
    }
    // An empty cell stays zero when its noise is not positive: about half of them.
    assert!(differ * 3 > counts, "{differ} of {counts} pooled counts differ from the exact ones");
    // The reports still show no small count.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("explore.json")).unwrap()).unwrap();
    assert_no_small_count(&json, "explore.json");
    let report = fedcare_federation::exploration::read_report(&out.join("explore.json")).unwrap();
    assert!(report.figures.columns.iter().all(|c| c.summary.is_none()), "no means without moments");

    // A budget that fits the setup's release but not the exploration's: hospital 0 takes part in
    // the setup only, and the others explore without it.
    let out = dir.path().join("past");
    let between = (setup_charge + explore_charge) / 2.0;
    let run = noisy_explore(&cohort, Some(schema), &out, noise.multiplier, Some((0, between)));
    let hospitals: Vec<usize> = run.outcome.records.iter().map(|r| r.hospitals).collect();
    assert_eq!(hospitals, [3, 2]);
    assert!(run.explorations[0].is_none() && run.explorations[1..].iter().all(Option::is_some));
}
