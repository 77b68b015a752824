//! Gradient-boosted trees grown by a federation under the threshold encryption: the trees equal
//! the ones grown centrally on the union of the hospitals' training rows (the same splits, the
//! same leaf values bit for bit: the histograms are exact integer sums; each tree on the same
//! subsample of patients), the hospitals receive the model file that holds them and score with
//! it; numeric inputs without schema edges are cut alike at the pooled quantiles.

use fedcare_core::Dataset;
use fedcare_core::gbdt::{BoostingConfig, Ensemble, FINE_BINS, QUANTILE_BINS, fine_bin, train_centralized};
use fedcare_data::{BadRows, Schema, read_csv, split_seed};
use fedcare_federation::protocol::PublicFigures;
use fedcare_federation::protocol::SessionKind;
use fedcare_federation::protocol::boosting::{Boosting, BoostingState};
use fedcare_federation::simulation::{self, SimulateOptions, Transport};

fn boosting() -> BoostingConfig {
    BoostingConfig {
        trees: 4,
        depth: 3,
        min_child_weight: 1.0,
        learning_rate: 0.3,
        subsample: 0.8,
        ..BoostingConfig::default()
    }
}

/// A federation of the 3 hospitals whose files are in `cohort`, growing `boosting`'s trees.
fn options(cohort: &std::path::Path, out: &std::path::Path, boosting: BoostingConfig) -> SimulateOptions {
    SimulateOptions {
        hospitals: 3,
        data: Some(cohort.to_path_buf()),
        out: out.to_path_buf(),
        transport: Transport::InProcess,
        boosting: Some(boosting),
        ..SimulateOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn federated_trees_equal_centralized_trees_on_the_union_of_the_hospitals_rows() {
    let cohort = tempfile::tempdir().unwrap();
    let files = fedcare_data::synth::write_cohort(cohort.path(), 3, 500, 5).unwrap();
    let out = tempfile::tempdir().unwrap();
    let options = options(cohort.path(), out.path(), boosting());
    let report = simulation::run(&options, None, None).await.unwrap();
    assert!(report.outcome.failure.is_none(), "{:?}", report.outcome.failure);
    let records = &report.outcome.records;
    // Setup, the base session, a session per level of each tree (fewer when a tree stops
    // early), the final evaluation.
    let kinds: Vec<SessionKind> = records.iter().map(|r| r.kind).collect();
    assert_eq!(kinds.first(), Some(&SessionKind::Setup));
    assert_eq!(kinds.last(), Some(&SessionKind::Evaluate));
    let training = kinds.iter().filter(|&&k| k == SessionKind::Train).count();
    assert!((1 + 4..=1 + 4 * 3).contains(&training), "{training} training sessions");
    // Every tree's first level evaluated the ensemble before it (the base alone first).
    assert_eq!(records.iter().filter(|r| r.kind == SessionKind::Train && r.auroc.is_some()).count(), 4);

    // The same trees grown centrally on every hospital's training rows, encoded with the
    // federation's pooled statistics and binned by the same cuts.
    let schema = Schema::diabetes130(true);
    let figures = &report.outcome.figures;
    let (union, patients) = union_of_training_rows(&files, &schema, figures, options.seed);
    let config = boosting();
    let thresholds = schema
        .numeric
        .iter()
        .map(|c| c.edges.as_ref().filter(|e| e.len() > 2).map_or(Vec::new(), |e| e[1..e.len() - 1].to_vec()))
        .collect();
    let boosting = Boosting { config, numeric_thresholds: thresholds };
    let cuts = boosting.cuts(&figures.feature_stats, schema.width(), &BoostingState::default()).unwrap();
    let centralized = train_centralized(&union, &patients, &cuts, &config).unwrap();
    let unsampled = train_centralized(&union, &patients, &cuts, &BoostingConfig { subsample: 1.0, ..config }).unwrap();
    assert_ne!(centralized, unsampled, "the subsample changed the trees");

    let written = std::fs::read(out.path().join("model.bin")).unwrap();
    for (name, received) in report.hospitals.iter().zip(&report.received) {
        assert_eq!(received.as_deref(), Some(written.as_slice()), "{name} received another model");
    }
    let model = fedcare_core::ModelFile::from_bytes(&written).unwrap();
    let ensemble = model.ensemble.as_ref().expect("a boosted model file");
    assert_eq!(model.metrics.get("trees_grown"), Some(&4.0));
    let kept = model.metrics["trees"] as usize;
    assert!(kept >= 1, "the base margin alone was the best ensemble");
    // Tolerance 0: the histograms are exact sums of the same fixed-point gradients.
    assert_eq!(ensemble, &centralized.truncated(kept), "the federated trees are not the centralized ones");
    assert!(centralized.trees.iter().all(|t| t.leaves() >= 2), "every tree split at least once");
    assert_eq!(model.calibration, report.outcome.kept().unwrap().platt);

    // A hospital scores with the file it received: margins of the same trees.
    let scores = out.path().join("scores.csv");
    let scored = fedcare_data::predict::predict_file(&model, &schema, &files[0], &scores, BadRows::Reject).unwrap();
    let evaluation = scored.evaluation.unwrap();
    assert!(evaluation.auroc.is_some_and(|a| a > 0.55), "{evaluation:?}");
}

/// Every hospital's training rows (its split of `files`, as a federation of `seed` makes it),
/// encoded with the federation's `figures`, and each row's patient key.
fn union_of_training_rows(
    files: &[std::path::PathBuf],
    schema: &Schema,
    figures: &PublicFigures,
    seed: u64,
) -> (Dataset, Vec<u64>) {
    let mut features = Vec::new();
    let mut labels = Vec::new();
    let mut patients = Vec::new();
    for path in files {
        let (table, _) = read_csv(path, schema, BadRows::Skip { limit: 1000 }).unwrap();
        let name = path.file_stem().unwrap().to_str().unwrap();
        let (train, _) = table.split_by_group(0.2, split_seed(seed, name));
        let data = train.to_dataset_with(schema, &figures.feature_stats, &figures.top_k).unwrap();
        features.extend_from_slice(data.features());
        labels.extend_from_slice(data.labels());
        patients.extend(train.patient_keys(seed));
    }
    (Dataset::new(features, labels, schema.width()).unwrap(), patients)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inputs_without_edges_are_cut_at_the_pooled_quantiles_of_the_union_of_the_rows() {
    let cohort = tempfile::tempdir().unwrap();
    let files = fedcare_data::synth::write_cohort(cohort.path(), 3, 500, 6).unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut schema = Schema::diabetes130(true);
    schema.numeric.iter_mut().for_each(|column| column.edges = None);
    let config = BoostingConfig { subsample: 1.0, ..boosting() };
    let options = SimulateOptions {
        schema: Some(schema.clone()),
        // Age bands are subgroups only with edges.
        subgroups: Some(Vec::new()),
        ..options(cohort.path(), out.path(), config)
    };
    let report = simulation::run(&options, None, None).await.unwrap();
    assert!(report.outcome.failure.is_none(), "{:?}", report.outcome.failure);

    // The pooled quantiles of the union's standardised values, as the base session sums them.
    let figures = &report.outcome.figures;
    let (union, patients) = union_of_training_rows(&files, &schema, figures, options.seed);
    let fine: Vec<Vec<i64>> = (0..schema.numeric.len())
        .map(|input| {
            let mut counts = vec![0i64; FINE_BINS];
            (0..union.rows()).for_each(|row| counts[fine_bin(union.row(row)[input])] += 1);
            counts
        })
        .collect();
    let mut state = BoostingState { ensemble: Some(Ensemble::new(0.0)), ..BoostingState::default() };
    state.set_quantiles(&fine);
    let boosting = Boosting { config, numeric_thresholds: vec![Vec::new(); schema.numeric.len()] };
    let cuts = boosting.cuts(&figures.feature_stats, schema.width(), &state).unwrap();
    // num_lab_procedures takes many values: nearly every quantile is a threshold of its own
    // (two may fall in one fine bin).
    let lab = cuts.thresholds(1);
    assert!((20..QUANTILE_BINS).contains(&lab.len()) && lab.windows(2).all(|w| w[0] < w[1]), "{lab:?}");
    let centralized = train_centralized(&union, &patients, &cuts, &config).unwrap();

    let model = fedcare_core::ModelFile::from_bytes(&std::fs::read(out.path().join("model.bin")).unwrap()).unwrap();
    let kept = model.metrics["trees"] as usize;
    // Tolerance 0, as with the schema's edges.
    assert_eq!(model.ensemble.as_ref(), Some(&centralized.truncated(kept)), "other trees than the union's");
    let numeric_split = centralized.trees.iter().flat_map(|t| &t.nodes).any(|node| {
        matches!(node, fedcare_core::gbdt::Node::Split { input, .. } if (*input as usize) < schema.numeric.len())
    });
    assert!(numeric_split, "no tree split a numeric input");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn private_trees_grow_from_noisy_histograms_and_every_session_is_charged_to_epsilon() {
    use fedcare_core::privacy::PooledNoise;
    use fedcare_federation::config::PrivacyConfig;
    use fedcare_federation::protocol::{ContributionLayout, Privacy};

    let cohort = tempfile::tempdir().unwrap();
    let files = fedcare_data::synth::write_cohort(cohort.path(), 3, 1500, 9).unwrap();
    let out = tempfile::tempdir().unwrap();
    // Under noise a split needs children whose hessians stand well above it: min_child_weight
    // 20 (a rare category's noisy cell would win the gain otherwise).
    let config = BoostingConfig { trees: 3, depth: 2, min_child_weight: 20.0, ..boosting() };
    let sigma = 0.05;
    let options = SimulateOptions {
        privacy: Some(PrivacyConfig {
            sampling_rate: 0.02,
            noise_multiplier: None,
            target_epsilon: None,
            clip_norm: 5.0,
            delta: 1e-5,
            pooled_noise: sigma,
            evaluation_noise: 12.0,
            evaluation_bins: 16,
            pooled_rows_per_patient: 1,
        }),
        ..options(cohort.path(), out.path(), config)
    };
    let report = simulation::run(&options, None, None).await.unwrap();
    assert!(report.outcome.failure.is_none(), "{:?}", report.outcome.failure);

    // The setup's statistics, 3 a boosting session, the final evaluation's score histogram.
    let schema = Schema::diabetes130(true);
    let layout = ContributionLayout {
        params: 0,
        bins: 0,
        numeric: schema.numeric.len(),
        top_k: schema.top_k_shapes(),
        explore: Vec::new(),
        subgroups: Vec::new(),
    };
    let privacy = Privacy {
        dp_sgd: None,
        delta: 1e-5,
        pooled: Some(PooledNoise { multiplier: sigma, evaluation_multiplier: 12.0, rows_per_patient: 1 }),
        setup_statistics: layout.setup_statistics(),
        evaluation_statistics: layout.evaluation_statistics(),
    };
    let records = &report.outcome.records;
    let train: Vec<_> = records.iter().filter(|r| r.kind == SessionKind::Train).collect();
    assert!(train.len() > 3, "the base session and a level of each tree: {} sessions", train.len());
    for record in &train {
        assert_eq!(record.epsilon, Some(privacy.epsilon_after(record.round, 1)), "session {}", record.round);
        assert_eq!(record.auroc, None, "under pooled noise no tree's first level evaluates");
    }
    let last = records.last().unwrap();
    assert_eq!(last.kind, SessionKind::Evaluate);
    assert_eq!(last.epsilon, Some(privacy.epsilon_after(train.len() as u32, 1)));

    // Every tree is kept, and trees from histograms under light noise (σ_p 0.05: a large ε, to
    // check the mechanism, not the trade-off, which docs/benchmarks.md measures) still rank.
    let model = fedcare_data::predict::read_model_file(&out.path().join("model.bin")).unwrap();
    assert_eq!(model.ensemble.as_ref().map(|e| e.trees.len()), Some(3));
    assert_eq!(model.metrics.get("epsilon"), last.epsilon.as_ref());
    let scores = out.path().join("scores.csv");
    let scored = fedcare_data::predict::predict_file(&model, &schema, &files[0], &scores, BadRows::Reject).unwrap();
    let auroc = scored.evaluation.unwrap().auroc.unwrap();
    assert!(auroc > 0.55, "AUROC {auroc} of noisy trees");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_missing_a_column_is_left_out_with_its_name() {
    let cohort = tempfile::tempdir().unwrap();
    let files = fedcare_data::synth::write_cohort(cohort.path(), 3, 200, 5).unwrap();
    // The second hospital's file without its num_lab_procedures column.
    let text = std::fs::read_to_string(&files[1]).unwrap();
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let dropped = header.iter().position(|h| h == "num_lab_procedures").unwrap();
    let mut writer = csv::Writer::from_path(&files[1]).unwrap();
    let keep = |record: &csv::StringRecord| -> Vec<String> {
        record.iter().enumerate().filter(|&(i, _)| i != dropped).map(|(_, v)| v.to_owned()).collect()
    };
    writer.write_record(keep(&header)).unwrap();
    for record in reader.records() {
        writer.write_record(keep(&record.unwrap())).unwrap();
    }
    writer.flush().unwrap();
    let out = tempfile::tempdir().unwrap();
    let options = options(cohort.path(), out.path(), boosting());
    // The other two grow the trees; the file without the column is left out, named, with why.
    let report = simulation::run(&options, None, None).await.unwrap();
    assert!(report.outcome.failure.is_none(), "{:?}", report.outcome.failure);
    assert_eq!(report.hospitals.len(), 2);
    let [(file, why)] = report.left_out.as_slice() else { panic!("{:?}", report.left_out) };
    assert_eq!(file, &files[1]);
    assert!(why.contains("num_lab_procedures"), "{why}");
}
