//! The golden vectors of `fedcare-core`'s formats, built from fixed values only (no clock, no
//! randomness), so every run gives the same bytes. Shared by the generator
//! (`core/examples/golden_formats/main.rs`) and the test that checks them
//! (`core/tests/golden_formats.rs`); `core/tests/golden/formats/README.md` lists the files.
//!
//! The old model-file versions are written by this module's own copies of the old encoders
//! (the payload structs as they were when each version was current, sealed by hand as the old
//! `to_bytes` did), not by anything the crate still has: the crate only reads them.

use std::collections::BTreeMap;

use fedcare_core::envelope::Format;
use fedcare_core::explore::{
    ColumnKind, ColumnSpec, ExploreCounts, ExploreReport, LocalFigures, REPORT_FORMAT, figures,
};
use fedcare_core::gbdt::{Ensemble, Node, Tree};
use fedcare_core::model_file::MAGIC;
use fedcare_core::subgroup::SubgroupReport;
use fedcare_core::subgroup::{SubgroupHistograms, subgroup_report};
use fedcare_core::{ColumnStats, ModelFile, ModelSpec, Platt, ScoreHistogram};
use serde::Serialize;

/// The envelope of the envelope's own vectors: a magic no fedcare format uses, so the vectors
/// show the envelope alone.
pub(crate) const ENVELOPE: Format = Format { magic: *b"FEDCGOLD", version: 1, name: "golden envelope" };
/// The payload of `envelope.bin`.
pub(crate) const ENVELOPE_PAYLOAD: &[u8] = b"fedcare golden envelope payload";

/// Every vector: file name and bytes, in the order the README lists them.
pub(crate) fn all() -> Vec<(&'static str, Vec<u8>)> {
    let report = explore_report();
    vec![
        ("envelope.bin", ENVELOPE.seal(ENVELOPE_PAYLOAD).expect("a short payload fits an envelope")),
        ("envelope_empty.bin", ENVELOPE.seal(&[]).expect("an empty payload fits an envelope")),
        ("model_v7.bin", current(&full_model())),
        ("model_v7_boosted.bin", current(&boosted_model())),
        ("model_v7_logistic.bin", current(&logistic_model())),
        ("model_v6.bin", model_v6_bytes(&full_model())),
        ("model_v6_logistic.bin", model_v6_bytes(&logistic_model())),
        ("model_v5.bin", model_v5_bytes(&v5_model())),
        ("model_v5_as_v6.bin", model_v6_bytes(&v5_model())),
        ("model_v5_as_v7.bin", current(&v5_model())),
        ("model_v5_logistic.bin", model_v5_bytes(&logistic_model())),
        ("model_v4.bin", model_v4_bytes(&v4_model())),
        ("model_v4_as_v6.bin", model_v6_bytes(&v4_model())),
        ("model_v4_as_v7.bin", current(&v4_model())),
        ("model_v3.bin", model_v3_bytes(&v3_model())),
        ("model_v3_as_v6.bin", model_v6_bytes(&v3_model())),
        ("model_v3_as_v7.bin", current(&v3_model())),
        ("explore_report.json", explore_json(&report)),
    ]
}

/// A model file as this build writes it.
fn current(file: &ModelFile) -> Vec<u8> {
    file.to_bytes().expect("the golden model is valid")
}

/// A boosted-tree model file of format 7: two trees over 4 inputs (one a stump, one of depth
/// 2 with a leaf at depth 1), a base margin, metrics, a calibration and one setting. Every
/// value is an exact binary fraction.
pub(crate) fn boosted_model() -> ModelFile {
    let leaf = |value: f32| Node::Leaf { value };
    let ensemble = Ensemble {
        base_margin: -2.125,
        trees: vec![
            Tree { nodes: vec![Node::Split { input: 0, threshold: 0.5, left: 1, right: 2 }, leaf(-0.25), leaf(0.375)] },
            Tree {
                nodes: vec![
                    Node::Split { input: 3, threshold: -1.25, left: 1, right: 2 },
                    leaf(0.0625),
                    Node::Split { input: 1, threshold: 0.5, left: 3, right: 4 },
                    leaf(-0.125),
                    leaf(0.25),
                ],
            },
        ],
    };
    let mut file = ModelFile::boosted(ensemble, 4, "golden/v1").expect("a valid ensemble");
    file.metrics.insert("auroc".into(), 0.6875);
    file.feature_scaling = vec![ColumnStats { mean: 4.5, std: 2.0 }];
    file.calibration = Some(Platt { a: 1.125, b: 0.25 });
    file.settings = [("model".to_owned(), "gbdt (2 trees, depth 2)".to_owned())].into_iter().collect();
    file
}

/// A small MLP model file with every field of format 6 set: metrics, the scaling of one numeric
/// input, two `top_k` columns (one with two buckets, one with none), endorsements (opaque bytes
/// here), a Platt calibration, settings, and the figures of one subgroup column (made by the
/// library from fixed score histograms: one subgroup shown, one too small, the missing values
/// hidden with it). The parameters are exact binary fractions.
pub(crate) fn full_model() -> ModelFile {
    let mut file = v5_model();
    file.settings = [("model", "MLP 6-3-1"), ("rounds", "12"), ("rule", "fedavg")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let sex = ColumnSpec {
        name: "gender".into(),
        kind: ColumnKind::Categorical { categories: 2, labels: vec!["Female".into(), "Male".into()] },
    };
    let histogram = |positives: [u64; 4], negatives: [u64; 4]| ScoreHistogram {
        positives: positives.to_vec(),
        negatives: negatives.to_vec(),
    };
    let histograms = SubgroupHistograms {
        columns: vec![vec![
            histogram([2, 5, 9, 30], [80, 40, 12, 6]),
            histogram([1, 1, 2, 3], [2, 1, 1, 0]),
            histogram([0, 0, 1, 0], [1, 1, 0, 0]),
        ]],
    };
    file.subgroups = Some(subgroup_report(&[sex], &histograms, file.calibration.as_ref(), 10));
    file
}

/// What `model_v5.bin` holds (format 5 has no settings or subgroups).
pub(crate) fn v5_model() -> ModelFile {
    // 6 inputs -> 3 (ReLU) -> 1: 6·3 + 3 + 3·1 + 1 = 25 parameters.
    let spec = ModelSpec::mlp(6, &[3]).expect("a valid spec");
    let params = (0..spec.param_count()).map(|i| (i as f32 - 12.0) / 8.0).collect();
    let mut file = ModelFile::new(spec, params, "diabetes130/v2").expect("parameters fit the spec");
    file.metrics.insert("auroc".into(), 0.6834);
    file.metrics.insert("round".into(), 12.0);
    file.metrics.insert("epsilon".into(), 1.5);
    file.feature_scaling = vec![ColumnStats { mean: 71.5, std: 12.25 }];
    // 1 scaled input + (2 buckets + "other") + (0 buckets + "other") = 5 of the 6 inputs.
    file.category_buckets = vec![vec![17, 3], vec![]];
    file.endorsements = b"opaque endorsement bundle".to_vec();
    file.calibration = Some(Platt { a: 0.875, b: -1.75 });
    file
}

/// The smallest model file: logistic regression over 3 inputs and nothing else.
pub(crate) fn logistic_model() -> ModelFile {
    let spec = ModelSpec::logistic_regression(3).expect("a valid spec");
    ModelFile::new(spec, vec![0.5, -0.25, 2.0, -1.0], "golden/v1").expect("parameters fit the spec")
}

/// What `model_v4.bin` holds (format 4 has no calibration).
pub(crate) fn v4_model() -> ModelFile {
    ModelFile { calibration: None, ..v5_model() }
}

/// What `model_v3.bin` holds (format 3 has no endorsements either).
pub(crate) fn v3_model() -> ModelFile {
    ModelFile { endorsements: Vec::new(), ..v4_model() }
}

/// `ModelSpec` as every format so far wrote it (its fields have not changed since the first).
#[derive(Serialize)]
struct SpecV3 {
    input_width: usize,
    hidden: Vec<usize>,
}

/// Format 3's payload as its encoder wrote it (commit 02d61bf, `ModelFile` then; its scaling was
/// `(mean, std)` pairs, which postcard writes as `ColumnStats` is written now).
#[derive(Serialize)]
struct ModelFileV3 {
    spec: SpecV3,
    params: Vec<f32>,
    schema_id: String,
    metrics: BTreeMap<String, f64>,
    feature_scaling: Vec<(f64, f64)>,
    category_buckets: Vec<Vec<u32>>,
}

/// Format 4's payload as its encoder wrote it (commit b02afd0): format 3's and the endorsements.
#[derive(Serialize)]
struct ModelFileV4 {
    spec: SpecV3,
    params: Vec<f32>,
    schema_id: String,
    metrics: BTreeMap<String, f64>,
    feature_scaling: Vec<ColumnStats>,
    category_buckets: Vec<Vec<u32>>,
    endorsements: Vec<u8>,
}

/// Format 5's payload as its encoder wrote it (commit 44a915d): format 4's and the calibration.
#[derive(Serialize)]
struct ModelFileV5 {
    spec: SpecV3,
    params: Vec<f32>,
    schema_id: String,
    metrics: BTreeMap<String, f64>,
    feature_scaling: Vec<ColumnStats>,
    category_buckets: Vec<Vec<u32>>,
    endorsements: Vec<u8>,
    calibration: Option<(f64, f64)>,
}

/// Format 6's payload as its encoder wrote it (commit 098e8c5): format 5's, the settings and
/// the subgroups.
#[derive(Serialize)]
struct ModelFileV6 {
    spec: SpecV3,
    params: Vec<f32>,
    schema_id: String,
    metrics: BTreeMap<String, f64>,
    feature_scaling: Vec<ColumnStats>,
    category_buckets: Vec<Vec<u32>>,
    endorsements: Vec<u8>,
    calibration: Option<(f64, f64)>,
    settings: BTreeMap<String, String>,
    subgroups: Option<SubgroupReport>,
}

/// A model file of format 6, as the format-6 encoder wrote it.
pub(crate) fn model_v6_bytes(file: &ModelFile) -> Vec<u8> {
    let payload = ModelFileV6 {
        spec: old_spec(file),
        params: file.params.clone(),
        schema_id: file.schema_id.clone(),
        metrics: file.metrics.clone(),
        feature_scaling: file.feature_scaling.clone(),
        category_buckets: file.category_buckets.clone(),
        endorsements: file.endorsements.clone(),
        calibration: file.calibration.map(|platt| (platt.a, platt.b)),
        settings: file.settings.clone(),
        subgroups: file.subgroups.clone(),
    };
    old_envelope(6, &postcard::to_allocvec(&payload).expect("a payload encodes"))
}

/// A model file of format 5, as the format-5 encoder wrote it.
pub(crate) fn model_v5_bytes(file: &ModelFile) -> Vec<u8> {
    let payload = ModelFileV5 {
        spec: old_spec(file),
        params: file.params.clone(),
        schema_id: file.schema_id.clone(),
        metrics: file.metrics.clone(),
        feature_scaling: file.feature_scaling.clone(),
        category_buckets: file.category_buckets.clone(),
        endorsements: file.endorsements.clone(),
        calibration: file.calibration.map(|platt| (platt.a, platt.b)),
    };
    old_envelope(5, &postcard::to_allocvec(&payload).expect("a payload encodes"))
}

fn old_spec(file: &ModelFile) -> SpecV3 {
    SpecV3 { input_width: file.spec.input_width(), hidden: file.spec.hidden().to_vec() }
}

/// A model file of format 3, as the format-3 encoder wrote it.
pub(crate) fn model_v3_bytes(file: &ModelFile) -> Vec<u8> {
    let payload = ModelFileV3 {
        spec: old_spec(file),
        params: file.params.clone(),
        schema_id: file.schema_id.clone(),
        metrics: file.metrics.clone(),
        feature_scaling: file.feature_scaling.iter().map(|s| (s.mean, s.std)).collect(),
        category_buckets: file.category_buckets.clone(),
    };
    old_envelope(3, &postcard::to_allocvec(&payload).expect("a payload encodes"))
}

/// A model file of format 4, as the format-4 encoder wrote it.
pub(crate) fn model_v4_bytes(file: &ModelFile) -> Vec<u8> {
    let payload = ModelFileV4 {
        spec: old_spec(file),
        params: file.params.clone(),
        schema_id: file.schema_id.clone(),
        metrics: file.metrics.clone(),
        feature_scaling: file.feature_scaling.clone(),
        category_buckets: file.category_buckets.clone(),
        endorsements: file.endorsements.clone(),
    };
    old_envelope(4, &postcard::to_allocvec(&payload).expect("a payload encodes"))
}

/// The header the old encoders wrote by hand: magic, version, length, CRC-32, payload.
fn old_envelope(version: u16, payload: &[u8]) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&version.to_le_bytes());
    bytes.extend_from_slice(&u32::try_from(payload.len()).expect("a small payload").to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// An exploration report (`explore.json`, format 1) of 400 made-up rows over a numeric and a
/// categorical column, with a hospital's own figures beside the pooled ones: shown counts,
/// counts below `min_cell` (`"< 10"`), a count hidden because it would give one away, quantiles
/// inside bins and beyond the edges, rates and missing values. The figures are the library's.
pub(crate) fn explore_report() -> ExploreReport {
    let columns = vec![
        ColumnSpec { name: "age".into(), kind: ColumnKind::Numeric { edges: vec![20.0, 40.0, 60.0, 80.0], bins: 3 } },
        ColumnSpec {
            name: "admission_type".into(),
            kind: ColumnKind::Categorical { categories: 4, labels: vec!["emergency".into(), "elective".into()] },
        },
    ];
    // Row `row` of a table salted `salt`: a label, an age (missing every ninth row) and an
    // admission type (missing, a named one, or one of the two unnamed cells).
    let count = |rows: u64, salt: u64| {
        let mut counts = ExploreCounts::zeros(&columns);
        for row in 0..rows {
            let positive = (row * 7 + salt).is_multiple_of(4);
            counts.rows += 1;
            counts.positives += u64::from(positive);
            let age = (row % 9 != 4).then(|| 15.5 + ((row * 37 + salt) % 75) as f64);
            counts.columns[0].push_numeric(&columns[0], age, positive);
            let admission = &mut counts.columns[1];
            match (row * 5 + salt) % 23 {
                0 => admission.push_missing(positive),
                1 | 2 => admission.push_cell(3, positive),
                k if k.is_multiple_of(3) => admission.push_cell(2, positive),
                k => admission.push_cell(usize::from(k.is_multiple_of(2)), positive),
            }
        }
        counts
    };
    let pooled = count(400, 0);
    let local = count(45, 3);
    ExploreReport {
        format: REPORT_FORMAT,
        schema: "golden/v1".into(),
        label: "readmitted = <30".into(),
        min_cell: 10,
        hospitals: vec!["hospital-a".into(), "hospital-b".into()],
        figures: figures(&columns, &pooled, 10).expect("counts shaped for the columns"),
        local: Some(LocalFigures {
            hospital: "hospital-a".into(),
            figures: figures(&columns, &local, 10).expect("counts shaped for the columns"),
        }),
    }
}

/// `explore.json`'s bytes as fedcare writes them (`fedcare_federation::exploration::write_report`):
/// pretty-printed JSON and a final newline.
pub(crate) fn explore_json(report: &ExploreReport) -> Vec<u8> {
    let mut text = serde_json::to_string_pretty(report).expect("a report encodes as JSON");
    text.push('\n');
    text.into_bytes()
}
