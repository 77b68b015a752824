//! A hospital's rows as the federation needs them: its train/test split (by patient for schema
//! data), its share of the setup session's counts, the model inputs once the federation's
//! statistics and `top_k` buckets are known, and an exploration's counts of all its rows.
//!
//! Under pooled noise the setup counts count at most `rows_per_patient` rows of a patient and
//! clamp each numeric feature to its schema range, so that one patient's change to each is
//! bounded ([`fedcare_core::privacy::PooledNoise`]); the rows trained on are all of them.

use fedcare_core::explore::{ColumnSpec, ExploreCounts};
use fedcare_core::privacy::PooledNoise;
use fedcare_core::{Dataset, Moments};
use fedcare_data::schema::key_fingerprint_of;
use fedcare_data::{Schema, Table, patient_key, split_seed};

use crate::data_error;
use crate::error::{FederationError, ProtocolError, Result};
use crate::protocol::{FederationSettings, PublicFigures, SetupCounts};

/// A hospital's rows.
#[derive(Debug, Clone)]
pub enum HospitalData {
    /// Model inputs ready as they are (the federation standardises nothing).
    Ready(Dataset),
    /// Rows read through a schema; numeric features are standardised with federated statistics,
    /// `top_k` columns one-hot over the federation's chosen buckets.
    Table {
        /// The rows.
        table: Table,
        /// Their schema.
        schema: Box<Schema>,
    },
}

impl HospitalData {
    /// Model inputs per row.
    pub fn width(&self) -> usize {
        match self {
            Self::Ready(data) => data.width(),
            Self::Table { schema, .. } => schema.width(),
        }
    }
}

/// A hospital's split and, for schema data, the datasets once the federation's figures are known.
#[derive(Debug)]
pub struct LocalData {
    counts: SetupCounts,
    split: Split,
    /// Each training row's patient key ([`fedcare_data::patient_key`] under the federation's
    /// training seed), for boosting's row subsampling (empty for a network).
    train_patients: Vec<u64>,
    /// The exploration's counts of this hospital's rows, once made.
    explored: Option<ExploreCounts>,
}

#[derive(Debug)]
enum Split {
    Ready(Dataset, Dataset),
    Table(Box<TableSplit>),
}

#[derive(Debug)]
struct TableSplit {
    train: Table,
    test: Table,
    schema: Schema,
    /// The encoded datasets and the figures they were encoded with.
    built: Option<(PublicFigures, Dataset, Dataset)>,
}

/// The names of `columns`, for messages.
fn names(columns: &[ColumnSpec]) -> String {
    columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
}

fn mismatch(field: &'static str, value: impl ToString, expected: impl Into<String>) -> FederationError {
    ProtocolError::Invalid { field, value: value.to_string(), expected: expected.into() }.into()
}

impl LocalData {
    /// Splits `data` for the federation `settings` describe; `node` seeds the split. Refuses data
    /// of another schema or shape than the federation's, and a split with an empty side.
    pub fn new(data: &HospitalData, settings: &FederationSettings, node: &str) -> Result<Self> {
        let layout = &settings.layout;
        let seed = split_seed(settings.train.seed, node);
        match data {
            HospitalData::Ready(data) => {
                if layout.numeric != 0 || !layout.top_k.is_empty() {
                    return Err(mismatch(
                        "hospital data",
                        "a plain numeric CSV",
                        format!(
                            "schema data: the federation standardises {} features and has {} top_k columns",
                            layout.numeric,
                            layout.top_k.len()
                        ),
                    ));
                }
                let (train, test) =
                    fedcare_data::plain::split(data, settings.test_fraction, seed).map_err(data_error)?;
                let counts = SetupCounts {
                    train_rows: train.rows() as u64,
                    test_rows: test.rows() as u64,
                    ..SetupCounts::default()
                };
                if !layout.explore.is_empty() {
                    return Err(mismatch(
                        "hospital data",
                        "a plain numeric CSV",
                        "schema data: an exploration counts the columns of a schema",
                    ));
                }
                // Rows of a plain CSV have no patient id: each row (or its group) is its own.
                let train_patients = match (&settings.boosting, train.groups()) {
                    (None, _) => Vec::new(),
                    (Some(_), Some(groups)) => {
                        groups.iter().map(|g| patient_key(settings.train.seed, &format!("group-{g}"))).collect()
                    }
                    (Some(_), None) => {
                        (0..train.rows()).map(|row| patient_key(settings.train.seed, &format!("row-{row}"))).collect()
                    }
                };
                Ok(Self { counts, split: Split::Ready(train, test), train_patients, explored: None })
            }
            HospitalData::Table { table, schema } => {
                // A federation configured with a schema names it; the same shapes under another
                // schema would mean other columns, other categories and other buckets.
                if !settings.schema_id.is_empty() && settings.schema_id != schema.id {
                    // The id names the top_k key's fingerprint: other keys hash codes elsewhere.
                    let key =
                        |id| key_fingerprint_of(id).map_or("no top_k key".to_owned(), |f| format!("top_k key {f}"));
                    let keys = if key(&schema.id) == key(&settings.schema_id) {
                        String::new()
                    } else {
                        format!(
                            " (the federation's {}, this hospital's {}: every hospital needs the consortium's \
                             top_k_key)",
                            key(&settings.schema_id),
                            key(&schema.id)
                        )
                    };
                    return Err(mismatch(
                        "schema",
                        format!("{:?} (this hospital's)", schema.id),
                        format!("the federation trains on schema {:?}{keys}", settings.schema_id),
                    ));
                }
                if schema.numeric.len() != layout.numeric {
                    return Err(mismatch(
                        "numeric features",
                        schema.numeric.len(),
                        format!("the federation standardises {}", layout.numeric),
                    ));
                }
                if schema.top_k_shapes() != layout.top_k {
                    return Err(mismatch(
                        "top_k columns",
                        format!("{:?} (this hospital's schema)", schema.top_k_shapes()),
                        format!("the federation's {:?}", layout.top_k),
                    ));
                }
                if !layout.explore.is_empty() {
                    let own = schema.explore_columns();
                    let differs = (0..own.len().max(layout.explore.len()))
                        .find(|&i| own.get(i) != layout.explore.get(i))
                        .map(|i| (own.get(i).map(|c| c.name.as_str()), layout.explore.get(i).map(|c| c.name.as_str())));
                    if let Some((own, theirs)) = differs {
                        return Err(mismatch(
                            "exploration column",
                            format!("{} (this hospital's schema)", own.unwrap_or("(none)")),
                            format!("the federation's {}, counted the same way", theirs.unwrap_or("(none)")),
                        ));
                    }
                }
                let (train, test) =
                    table.split_for_evaluation(f64::from(settings.test_fraction), seed).map_err(data_error)?;
                // Under pooled noise: at most `rows_per_patient` rows of a patient, values clamped
                // to their schema ranges.
                let pooled = settings.pooled_noise();
                let ranges = match pooled {
                    Some(_) => schema
                        .numeric
                        .iter()
                        .map(|column| {
                            column.value_range().ok_or_else(|| {
                                mismatch(
                                    "numeric column",
                                    format!("{} without edges", column.name),
                                    "edges (their span is the range its values are clamped to in the noisy pooled \
                                     moments)",
                                )
                            })
                        })
                        .collect::<Result<Vec<_>>>()?,
                    None => vec![(f64::NEG_INFINITY, f64::INFINITY); schema.numeric.len()],
                };
                let selected;
                let (counted_train, counted_test_rows) = match pooled {
                    Some(pooled) => {
                        selected = train.select(&pooled.counted_rows(train.groups()));
                        (&selected, pooled.counted_rows(test.groups()).len())
                    }
                    None => (&train, test.rows()),
                };
                let counts = SetupCounts {
                    train_rows: counted_train.rows() as u64,
                    test_rows: counted_test_rows as u64,
                    moments: counted_train.numeric_moments_within(&ranges),
                    bucket_counts: counted_train.bucket_counts(schema),
                };
                Ok(Self {
                    counts,
                    train_patients: match settings.boosting {
                        Some(_) => train.patient_keys(settings.train.seed),
                        None => Vec::new(),
                    },
                    split: Split::Table(Box::new(TableSplit { train, test, schema: (**schema).clone(), built: None })),
                    explored: None,
                })
            }
        }
    }

    /// This hospital's setup counts (its share of the federation's totals, before noise).
    pub fn counts(&self) -> &SetupCounts {
        &self.counts
    }

    /// The most model inputs one row can move off their lowest value ([`Schema::inputs_per_row`];
    /// every input of plain data), which bounds one row's change to a boosted tree's histograms.
    pub fn inputs_per_row(&self) -> usize {
        match &self.split {
            Split::Ready(train, _) => train.width(),
            Split::Table(split) => split.schema.inputs_per_row(),
        }
    }

    /// Per numeric feature, the largest magnitude of its values clamped to the schema's range, as
    /// [`Self::counts`] has them under pooled noise (empty for data without a schema).
    pub fn moment_bounds(&self) -> Vec<f64> {
        let Split::Table(split) = &self.split else { return Vec::new() };
        let bound = |(low, high): (f64, f64)| low.abs().max(high.abs());
        split.schema.numeric.iter().map(|column| column.value_range().map_or(f64::INFINITY, bound)).collect()
    }

    /// This hospital's counts on the exploration's resolved `columns`: of all its rows (training
    /// and held out), kept for its report ([`Self::explored`]); under `noise`, of the rows the
    /// noise counts (each patient's first `rows_per_patient`) and without moments (their
    /// sensitivity is unbounded), which is what it contributes (the caller adds the noise).
    pub fn explore_counts(&mut self, columns: &[ColumnSpec], noise: Option<&PooledNoise>) -> Result<ExploreCounts> {
        let Split::Table(split) = &self.split else {
            return Err(mismatch("hospital data", "a plain numeric CSV", "schema data to explore"));
        };
        let count = |table: &Table| table.explore_counts(&split.schema, columns).map_err(data_error);
        let mut all = count(&split.train)?;
        all.add(&count(&split.test)?)?;
        let contributed = match noise {
            None => all.clone(),
            Some(noise) => {
                let mut counted = count(&split.train.select(&noise.counted_rows(split.train.groups())))?;
                counted.add(&count(&split.test.select(&noise.counted_rows(split.test.groups())))?)?;
                counted.columns.iter_mut().for_each(|column| column.moments = Moments::default());
                counted
            }
        };
        self.explored = Some(all);
        Ok(contributed)
    }

    /// The cell of every held-out row in each subgroup column (`cells[c][row]`, in the test
    /// dataset's row order). Refuses subgroups of data without a schema, and a column this
    /// hospital's schema lacks or counts otherwise, by its name.
    pub fn subgroup_cells(&self, columns: &[ColumnSpec]) -> Result<Vec<Vec<usize>>> {
        if columns.is_empty() {
            return Ok(Vec::new());
        }
        match &self.split {
            Split::Ready(..) => Err(mismatch(
                "hospital data",
                "a plain numeric CSV",
                format!("schema data: the final evaluation measures subgroups by {}", names(columns)),
            )),
            Split::Table(split) => split.test.subgroup_cells(&split.schema, columns).map_err(data_error),
        }
    }

    /// The exploration's counts of this hospital's rows, once made.
    pub fn explored(&self) -> Option<&ExploreCounts> {
        self.explored.as_ref()
    }

    /// The training and test datasets, encoded with the federation's `figures`, and each
    /// training row's patient key in the training dataset's row order (empty unless the
    /// federation grows boosted trees).
    pub fn datasets_and_patients(&mut self, figures: &PublicFigures) -> Result<(&Dataset, &Dataset, &[u64])> {
        let (train, test) = self.split.datasets(figures)?;
        Ok((train, test, &self.train_patients))
    }

    /// The training and test datasets, encoded with the federation's `figures`.
    pub fn datasets(&mut self, figures: &PublicFigures) -> Result<(&Dataset, &Dataset)> {
        self.split.datasets(figures)
    }
}

impl Split {
    fn datasets(&mut self, figures: &PublicFigures) -> Result<(&Dataset, &Dataset)> {
        match self {
            Split::Ready(train, test) => Ok((train, test)),
            Split::Table(split) => {
                let TableSplit { train, test, schema, built } = split.as_mut();
                if built.as_ref().is_none_or(|(used, _, _)| used != figures) {
                    if figures.feature_stats.len() != schema.numeric.len() {
                        return Err(mismatch(
                            "feature statistics",
                            figures.feature_stats.len(),
                            format!("{} (the schema's numeric features)", schema.numeric.len()),
                        ));
                    }
                    // The encoding checks the buckets against the schema's shapes.
                    let encode = |table: &Table| {
                        table.to_dataset_with(schema, &figures.feature_stats, &figures.top_k).map_err(data_error)
                    };
                    *built = Some((figures.clone(), encode(train)?, encode(test)?));
                }
                // Invariant: the branch above just filled it.
                let (_, train, test) = built.as_ref().expect("datasets were just built");
                Ok((train, test))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedcare_aggregator::config::{AggregatorConfig, ModelConfig, ServerRule, TlsFiles, TrainingSettings};
    use fedcare_data::{BadRows, read_csv};

    fn settings(schema: &Schema, schema_id: &str) -> FederationSettings {
        let plan = AggregatorConfig {
            privacy: None,
            federation_id: "f".into(),
            listen: "127.0.0.1:0".into(),
            hospitals: vec!["a".into(), "b".into()],
            min_hospitals: 2,
            rounds: 1,
            patience: None,
            phase_timeout_secs: 10,
            join_timeout_secs: 10,
            out_dir: "out".into(),
            seed: 0,
            crypto_threads: None,
            eval_bins: 16,
            schema_id: schema_id.into(),
            numeric_features: schema.numeric.len() as u32,
            top_k: schema.top_k_shapes(),
            schema: None,
            top_k_key_fingerprint: None,
            model: ModelConfig { input_width: schema.width() as u32, hidden: vec![], kind: Default::default() },
            boosting: Default::default(),
            numeric_edges: Vec::new(),
            training: TrainingSettings::default(),
            server: ServerRule::default(),
            tls: TlsFiles { ca: "ca".into(), cert: "c".into(), key: "k".into() },
            operations: Default::default(),
            job: Default::default(),
            explore: Default::default(),
            evaluation: Default::default(),
            tracking: Default::default(),
        }
        .plan()
        .unwrap();
        plan.settings
    }

    #[test]
    fn a_hospital_refuses_a_federation_on_another_schema() {
        let dir = tempfile::tempdir().unwrap();
        let files = fedcare_data::synth::write_cohort(dir.path(), 1, 200, 3).unwrap();
        let schema = Schema::diabetes130(true);
        let (table, _) = read_csv(&files[0], &schema, BadRows::Reject).unwrap();
        let data = HospitalData::Table { table, schema: Box::new(schema.clone()) };
        let error = LocalData::new(&data, &settings(&schema, "other-registry/v1"), "a").unwrap_err().to_string();
        assert!(error.contains("trains on schema \"other-registry/v1\"") && error.contains(&schema.id), "{error}");
        LocalData::new(&data, &settings(&schema, &schema.id), "a").unwrap();
        LocalData::new(&data, &settings(&schema, ""), "a").unwrap();
        // A federation keyed by the consortium's top_k key refuses a hospital without it.
        let keyed = schema.clone().with_bucket_key(fedcare_data::top_k::BucketKey::generate().unwrap());
        let error = LocalData::new(&data, &settings(&schema, &keyed.id), "a").unwrap_err().to_string();
        assert!(error.contains("this hospital's no top_k key") && error.contains("top_k_key)"), "{error}");
        // Plain numeric data cannot join a federation that standardises features.
        let plain = HospitalData::Ready(fedcare_data::plain::synthetic_hospital(0, 2, 50, 1));
        let error = LocalData::new(&plain, &settings(&schema, &schema.id), "a").unwrap_err().to_string();
        assert!(error.contains("schema data"), "{error}");
    }
}
