//! Feature schemas: which CSV columns are numeric, which are categorical (with their
//! vocabularies, or `top_k`), which is the label and which groups rows (a patient id, for
//! splitting), and the built-in schema of the UCI "Diabetes 130-US hospitals 1999–2008" file
//! (docs/design.md §7).
//!
//! A schema TOML file (`schema = "path.toml"` in both roles' configurations):
//! ```toml
//! id = "icu/v1"                                  # recorded in model files
//! label = { column = "died", positive = ["yes"] } # every other value is negative
//! group = "patient"                              # optional: rows of one group stay on one side of the split
//! missing = ["?", ""]                            # texts meaning "missing" (this is the default)
//! drop_if = [["disposition", "11", "13"]]        # optional: drop (and count) rows with these values
//! exact_header = ["patient", "age", ...]         # optional: the header must be exactly this
//! subgroups = ["sex", "age"]                     # optional: the final evaluation's default subgroups
//! [[numeric]]
//! name = "age"
//! transform = "number"                           # or "age_band" ("[70-80)" -> 75)
//! edges = [0, 18, 40, 65, 80, 120]                # optional: histogram bins of `fedcare explore`
//! [[numeric]]
//! name = "admitted_at"
//! transform = "earlier_in_group"                 # ln(1 + the group's rows with a smaller value here, in this file)
//! [[categorical]]
//! name = "sex"
//! vocabulary = ["F", "M"]                        # one-hot over these, plus "other or missing"
//! transform = "number"                           # or "icd9_group" (a code -> its chapter group)
//! [[categorical]]
//! name = "ward"
//! top_k = 8                                      # instead of a vocabulary: the 8 most frequent values
//! buckets = 1024                                 # optional (default 1024): hash buckets, top_k <= buckets
//! ```
//! A categorical column has either a non-empty `vocabulary` or `top_k` ≥ 1, never both; `buckets`
//! goes only with `top_k`. A `top_k` column's values are hashed into buckets
//! ([`crate::top_k::bucket_of`]) and its `top_k` slots are the federation's most frequent buckets,
//! chosen through the secure sum in the setup session (see [`crate::top_k`]); its width is
//! `top_k + 1` whatever the data.
//!
//! A numeric column's `edges` (finite, strictly ascending, at least two) are the bins
//! `fedcare explore` counts it in; without them it uses 20 round bins over the federated mean ± 3
//! standard deviations ([`fedcare_core::explore`]). The built-in schema gives edges for every
//! numeric column of the Diabetes-130 file.
//!
//! Where a configuration names a schema it gives `diabetes130` (the built-in schema, death and
//! hospice encounters dropped), `diabetes130-all` (the same, nothing dropped) or a TOML file's
//! path ([`Schema::by_name`]).
//!
//! A schema turns a CSV record into raw values ([`Schema::parse_record`]): numeric values (or
//! missing), one category index per categorical column (a vocabulary column's index, then one
//! "other or missing" slot; a `top_k` column's bucket, or `buckets` when missing), the label and
//! the group. Standardising the numeric values and mapping buckets to slots need the
//! federation's statistics and happen later ([`crate::ingest`]).

use std::path::Path;

use fedcare_core::explore::{ColumnKind, ColumnSpec, DEFAULT_BINS};
use fedcare_core::top_k::{DEFAULT_BUCKETS, TopKShape};

use crate::top_k::BucketKey;
use serde::Deserialize;

use crate::error::{DataError, HeaderError, RowError, SchemaError};

/// How a column's text becomes a value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// The number as written.
    Number,
    /// An age band such as `[70-80)`, as its midpoint (75).
    AgeBand,
    /// An ICD-9 code such as `250.83`, `V57` or `E909`, as its chapter group (a category).
    Icd9Group,
    /// On a numeric column: `ln(1 + n)`, where n is the number of rows of the same group
    /// (patient) in the same file with a smaller value in this column. On `encounter_id`: the
    /// patient's earlier encounters. Needs the schema's `group`.
    EarlierInGroup,
}

/// A numeric column.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumericColumn {
    /// Header name.
    pub name: String,
    /// How its text becomes a number.
    #[serde(default = "number")]
    pub transform: Transform,
    /// Histogram bin edges for `fedcare explore` (none: bins from the federated statistics);
    /// their span is also the range the pooled moments clamp values to under differential
    /// privacy, which needs them.
    #[serde(default)]
    pub edges: Option<Vec<f64>>,
}

impl NumericColumn {
    /// A column without explicit bin edges.
    pub fn new(name: impl Into<String>, transform: Transform) -> Self {
        Self { name: name.into(), transform, edges: None }
    }

    /// The range its values are clamped to in the pooled moments under noise: the span of its
    /// `edges` (`None` without edges).
    pub fn value_range(&self) -> Option<(f64, f64)> {
        let edges = self.edges.as_ref()?;
        Some((*edges.first()?, *edges.last()?))
    }

    /// The model input's name: the header name, or `earlier_in_group(name)`.
    pub fn feature_name(&self) -> String {
        match self.transform {
            Transform::EarlierInGroup => format!("earlier_in_group({})", self.name),
            _ => self.name.clone(),
        }
    }

    /// The column as `fedcare explore` counts it.
    pub fn explore_spec(&self) -> ColumnSpec {
        ColumnSpec {
            name: self.feature_name(),
            kind: ColumnKind::Numeric { edges: self.edges.clone().unwrap_or_default(), bins: DEFAULT_BINS },
        }
    }
}

fn number() -> Transform {
    Transform::Number
}

impl CategoricalColumn {
    /// A column with a vocabulary.
    pub fn with_vocabulary(name: impl Into<String>, vocabulary: Vec<String>, transform: Transform) -> Self {
        Self { name: name.into(), vocabulary, top_k: None, buckets: None, transform }
    }

    /// The shape of a `top_k` column (`None` for a vocabulary column).
    pub fn top_k_shape(&self) -> Option<TopKShape> {
        self.top_k.map(|k| TopKShape { buckets: self.buckets.unwrap_or(DEFAULT_BUCKETS), k })
    }

    /// The column as `fedcare explore` counts it: its vocabulary and "other", or its hash buckets
    /// (missing values are counted apart).
    pub fn explore_spec(&self) -> ColumnSpec {
        let kind = match self.top_k_shape() {
            Some(shape) => ColumnKind::Categorical { categories: shape.buckets, labels: Vec::new() },
            None => {
                let mut labels = self.vocabulary.clone();
                labels.push("other".into());
                ColumnKind::Categorical { categories: labels.len() as u32, labels }
            }
        };
        ColumnSpec { name: self.name.clone(), kind }
    }

    /// One-hot slots before the "other or missing" one.
    pub fn slots(&self) -> usize {
        self.top_k.map_or(self.vocabulary.len(), |k| k as usize)
    }

    /// Refuses a column with both or neither of `vocabulary` and `top_k`, a bad `top_k` shape,
    /// or `buckets` without `top_k`.
    pub fn validate(&self) -> Result<(), SchemaError> {
        let column = || self.name.clone();
        match self.top_k_shape() {
            _ if self.transform == Transform::EarlierInGroup => {
                Err(SchemaError::EarlierInGroupKind { column: column() })
            }
            Some(_) if !self.vocabulary.is_empty() => Err(SchemaError::VocabularyAndTopK { column: column() }),
            Some(shape) => shape.validate().map_err(|source| SchemaError::TopK { column: column(), source }),
            None if self.buckets.is_some() => Err(SchemaError::BucketsWithoutTopK { column: column() }),
            None if self.vocabulary.is_empty() => Err(SchemaError::EmptyVocabulary { column: column() }),
            None => Ok(()),
        }
    }
}

/// A categorical column: one-hot over its vocabulary (or its `top_k` most frequent buckets)
/// plus an "other or missing" slot.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoricalColumn {
    /// Header name.
    pub name: String,
    /// The known values, in one-hot order (empty for a `top_k` column).
    #[serde(default)]
    pub vocabulary: Vec<String>,
    /// Instead of a vocabulary: one-hot over the federation's `top_k` most frequent buckets.
    #[serde(default)]
    pub top_k: Option<u32>,
    /// Hash buckets of a `top_k` column (default [`DEFAULT_BUCKETS`]).
    #[serde(default)]
    pub buckets: Option<u32>,
    /// `icd9_group` maps codes to their chapter group before the lookup.
    #[serde(default = "number")]
    pub transform: Transform,
}

/// The label column and the values that count as positive.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelColumn {
    /// Header name.
    pub column: String,
    /// Values meaning "positive" (every other value is negative).
    pub positive: Vec<String>,
}

/// A feature schema.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    /// Identifier recorded in model files (for example `diabetes130/v1`).
    pub id: String,
    /// The label.
    pub label: LabelColumn,
    /// Column whose value groups rows that must stay on one side of a train/test split.
    #[serde(default)]
    pub group: Option<String>,
    /// Texts that mean "missing".
    #[serde(default = "default_missing")]
    pub missing: Vec<String>,
    /// Rows whose column has one of these values are dropped (counted): `[["col", "v1", ...]]`.
    #[serde(default)]
    pub drop_if: Vec<Vec<String>>,
    /// Numeric features.
    #[serde(default)]
    pub numeric: Vec<NumericColumn>,
    /// Categorical features.
    #[serde(default)]
    pub categorical: Vec<CategoricalColumn>,
    /// When set, the CSV header must be exactly these columns in this order.
    #[serde(default)]
    pub exact_header: Option<Vec<String>>,
    /// The columns whose subgroups the final evaluation measures unless the aggregator names
    /// others (categorical columns, or numeric ones with edges; see [`Schema::subgroup_columns`]).
    #[serde(default)]
    pub subgroups: Vec<String>,
    /// The consortium's key of the `top_k` bucket hash (never in a schema file: set it with
    /// [`Schema::with_bucket_key`], which also names the key in [`id`](Self::id)).
    #[serde(skip)]
    pub bucket_key: Option<BucketKey>,
}

/// The keyed schema id convention, `fedcare-core`'s (the aggregator applies it too).
pub use fedcare_core::top_k::{KEYED_ID_MARK, key_fingerprint_of, keyed_schema_id};

fn default_missing() -> Vec<String> {
    vec!["?".into(), String::new()]
}

/// The ICD-9 chapter groups used for diagnosis codes (the usual grouping for this data set).
pub const ICD9_GROUPS: [&str; 9] = [
    "circulatory",
    "respiratory",
    "digestive",
    "diabetes",
    "injury",
    "musculoskeletal",
    "genitourinary",
    "neoplasms",
    "other",
];

/// The chapter group of an ICD-9 code (`None` for text that is not a code).
pub fn icd9_group(code: &str) -> Option<&'static str> {
    let code = code.trim();
    let first = code.chars().next()?;
    if first == 'V' || first == 'E' {
        return code[1..].parse::<f32>().ok().map(|_| "other");
    }
    let value: f32 = code.parse().ok()?;
    let whole = value.floor() as u32;
    Some(match whole {
        250 => "diabetes",
        390..=459 | 785 => "circulatory",
        460..=519 | 786 => "respiratory",
        520..=579 | 787 => "digestive",
        800..=999 => "injury",
        710..=739 => "musculoskeletal",
        580..=629 | 788 => "genitourinary",
        140..=239 => "neoplasms",
        _ => "other",
    })
}

/// The midpoint of an age band such as `[70-80)`.
pub fn age_band_midpoint(band: &str) -> Option<f32> {
    let inner = band.trim().strip_prefix('[')?.strip_suffix(')')?;
    let (low, high) = inner.split_once('-')?;
    let (low, high): (f32, f32) = (low.parse().ok()?, high.parse().ok()?);
    (low < high).then_some((low + high) / 2.0)
}

/// The UCI `diabetic_data.csv` header, in order (50 columns).
pub const DIABETES130_HEADER: [&str; 50] = [
    "encounter_id",
    "patient_nbr",
    "race",
    "gender",
    "age",
    "weight",
    "admission_type_id",
    "discharge_disposition_id",
    "admission_source_id",
    "time_in_hospital",
    "payer_code",
    "medical_specialty",
    "num_lab_procedures",
    "num_procedures",
    "num_medications",
    "number_outpatient",
    "number_emergency",
    "number_inpatient",
    "diag_1",
    "diag_2",
    "diag_3",
    "number_diagnoses",
    "max_glu_serum",
    "A1Cresult",
    "metformin",
    "repaglinide",
    "nateglinide",
    "chlorpropamide",
    "glimepiride",
    "acetohexamide",
    "glipizide",
    "glyburide",
    "tolbutamide",
    "pioglitazone",
    "rosiglitazone",
    "acarbose",
    "miglitol",
    "troglitazone",
    "tolazamide",
    "examide",
    "citoglipton",
    "insulin",
    "glyburide-metformin",
    "glipizide-metformin",
    "glimepiride-pioglitazone",
    "metformin-rosiglitazone",
    "metformin-pioglitazone",
    "change",
    "diabetesMed",
    "readmitted",
];

/// The 23 medication columns (values `No`, `Steady`, `Up`, `Down`).
pub const DIABETES130_MEDICATIONS: core::ops::Range<usize> = 24..47;

/// The payer codes of the published file.
pub const DIABETES130_PAYERS: [&str; 17] =
    ["MC", "HM", "SP", "BC", "MD", "CP", "UN", "CM", "OG", "PO", "DM", "CH", "WC", "OT", "MP", "SI", "FR"];

/// `top_k` of each diagnosis column's codes in the built-in schema.
pub const DIABETES130_CODES: u32 = 20;

/// `top_k` of `medical_specialty` (72 values in the published file) in the built-in schema.
pub const DIABETES130_SPECIALTIES: u32 = 30;

/// Discharge dispositions after which a readmission cannot happen (death, hospice).
pub const DIABETES130_NOT_READMITTABLE: [&str; 6] = ["11", "13", "14", "19", "20", "21"];

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn ids(range: core::ops::RangeInclusive<u32>) -> Vec<String> {
    range.map(|i| i.to_string()).collect()
}

impl Schema {
    /// The built-in schema of `diabetic_data.csv` (`diabetes130/v2`, 359 inputs);
    /// `drop_not_readmittable` drops encounters that ended in death or hospice.
    ///
    /// Numeric: the eight counts, the age band's midpoint and the patient's earlier encounters in
    /// the file. Categorical: race, gender, admission type, discharge disposition, admission
    /// source, the 30 most frequent medical specialties, glucose and A1C results, each diagnosis
    /// as its ICD-9 chapter group and again as one of the 20 most frequent codes, the 23
    /// medications, change, diabetesMed and the payer. The `top_k` columns' values are chosen
    /// by the federation (setup session). v1 had no earlier encounters, codes or payer and ten
    /// specialties (257 inputs); measured on the published file in README ("Real data").
    pub fn diabetes130(drop_not_readmittable: bool) -> Self {
        let h = |i: usize| DIABETES130_HEADER[i].to_string();
        let steps = |from: u32, to: u32, step: usize| (from..=to).step_by(step).map(f64::from).collect::<Vec<_>>();
        let visits = |top: f64| vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 10.0, 20.0, top];
        // Bins for `fedcare explore` that cover the published file's ranges.
        let numeric = [
            (9, steps(1, 15, 1)),
            (12, steps(0, 140, 10)),
            (13, steps(0, 7, 1)),
            (14, steps(0, 85, 5)),
            (15, visits(50.0)),
            (16, visits(80.0)),
            (17, visits(25.0)),
            (21, steps(1, 17, 1)),
        ]
        .into_iter()
        .map(|(i, edges)| NumericColumn { edges: Some(edges), ..NumericColumn::new(h(i), Transform::Number) })
        .chain(core::iter::once(NumericColumn {
            edges: Some(steps(0, 100, 10)),
            ..NumericColumn::new(h(4), Transform::AgeBand)
        }))
        // The patient's earlier encounters in the file (encounter ids grow with time), as
        // ln(1 + n); the bins are those of n = 0, 1, 2, 3, 5, 10, 20, 40.
        .chain(core::iter::once(NumericColumn {
            edges: Some([0.0f64, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 40.0].iter().map(|n| n.ln_1p()).collect()),
            ..NumericColumn::new(h(0), Transform::EarlierInGroup)
        }))
        .collect();
        let top_k = |i: usize, k: u32, buckets: u32| CategoricalColumn {
            top_k: Some(k),
            buckets: Some(buckets),
            ..CategoricalColumn::with_vocabulary(h(i), Vec::new(), Transform::Number)
        };
        let categorical_plain =
            |i: usize, vocabulary: Vec<String>| CategoricalColumn::with_vocabulary(h(i), vocabulary, Transform::Number);
        let mut categorical = vec![
            categorical_plain(2, words(&["Caucasian", "AfricanAmerican", "Hispanic", "Asian", "Other"])),
            categorical_plain(3, words(&["Female", "Male"])),
            categorical_plain(6, ids(1..=8)),
            categorical_plain(7, ids(1..=30)),
            categorical_plain(8, ids(1..=26)),
            top_k(11, DIABETES130_SPECIALTIES, 1024),
            categorical_plain(22, words(&["None", "Norm", ">200", ">300"])),
            categorical_plain(23, words(&["None", "Norm", ">7", ">8"])),
        ];
        for i in [18, 19, 20] {
            categorical.push(CategoricalColumn::with_vocabulary(h(i), words(&ICD9_GROUPS), Transform::Icd9Group));
        }
        // Besides their chapter groups, the federation's most frequent codes of each diagnosis.
        for i in [18, 19, 20] {
            categorical.push(top_k(i, DIABETES130_CODES, 4096));
        }
        for i in DIABETES130_MEDICATIONS {
            categorical.push(categorical_plain(i, words(&["No", "Steady", "Up", "Down"])));
        }
        categorical.push(categorical_plain(47, words(&["No", "Ch"])));
        categorical.push(categorical_plain(48, words(&["No", "Yes"])));
        categorical.push(categorical_plain(10, words(&DIABETES130_PAYERS)));
        let drop_if = if drop_not_readmittable {
            let mut rule = vec![h(7)];
            rule.extend(words(&DIABETES130_NOT_READMITTABLE));
            vec![rule]
        } else {
            Vec::new()
        };
        Self {
            id: "diabetes130/v2".into(),
            label: LabelColumn { column: h(49), positive: words(&["<30"]) },
            group: Some(h(1)),
            missing: default_missing(),
            drop_if,
            numeric,
            categorical,
            exact_header: Some(words(&DIABETES130_HEADER)),
            subgroups: words(&["race", "gender", "age", "payer_code"]),
            bucket_key: None,
        }
    }

    /// A schema from a TOML file's text.
    pub fn from_toml(text: &str) -> Result<Self, SchemaError> {
        let schema: Self = toml::from_str(text).map_err(|e| SchemaError::Invalid { message: e.to_string() })?;
        if schema.numeric.is_empty() && schema.categorical.is_empty() {
            return Err(SchemaError::NoFeatureColumn);
        }
        for column in &schema.categorical {
            column.validate()?;
        }
        for column in &schema.numeric {
            if column.transform == Transform::EarlierInGroup && schema.group.is_none() {
                return Err(SchemaError::EarlierInGroupWithoutGroup { column: column.name.clone() });
            }
            if column.edges.is_some() {
                column.explore_spec().validate().map_err(|_| SchemaError::Edges { column: column.name.clone() })?;
            }
        }
        if schema.drop_if.iter().any(Vec::is_empty) {
            return Err(SchemaError::EmptyDropRule);
        }
        schema.subgroup_columns(&schema.subgroups)?;
        Ok(schema)
    }

    /// This schema with its `top_k` columns hashed under the consortium's `key`: when it has
    /// `top_k` columns, its id gains the key's fingerprint ([`keyed_schema_id`]), so that data
    /// read under another key (or none) is refused wherever ids are compared (the federation's
    /// schema check, `fedcare predict`).
    #[must_use]
    pub fn with_bucket_key(mut self, key: BucketKey) -> Self {
        if !self.top_k_shapes().is_empty() {
            let base = self.id.split_once(KEYED_ID_MARK).map_or(self.id.as_str(), |(base, _)| base);
            self.id = keyed_schema_id(base, &key.fingerprint());
        }
        self.bucket_key = Some(key);
        self
    }

    /// A schema by name: `diabetes130`, `diabetes130-all`, or a schema TOML file's path.
    pub fn by_name(name: &str) -> Result<Self, DataError> {
        match name {
            "diabetes130" => Ok(Self::diabetes130(true)),
            "diabetes130-all" => Ok(Self::diabetes130(false)),
            path => {
                let path = Path::new(path);
                let text = std::fs::read_to_string(path)
                    .map_err(|source| DataError::Read { path: path.to_path_buf(), source })?;
                Self::from_toml(&text).map_err(|source| DataError::SchemaFile { path: path.to_path_buf(), source })
            }
        }
    }

    /// Number of model inputs: one per numeric column, slots + 1 per categorical column.
    pub fn width(&self) -> usize {
        self.numeric.len() + self.categorical.iter().map(|c| c.slots() + 1).sum::<usize>()
    }

    /// The most model inputs one row can move off their lowest value: every numeric input and,
    /// of each categorical column's one-hot inputs, the single one set to 1. A boosted tree's
    /// histograms are noised by it (`fedcare_protocol::boosting::Boosting::histogram_noise`).
    pub fn inputs_per_row(&self) -> usize {
        self.numeric.len() + self.categorical.len()
    }

    /// The shapes of the `top_k` columns, in schema order.
    pub fn top_k_shapes(&self) -> Vec<TopKShape> {
        self.categorical.iter().filter_map(CategoricalColumn::top_k_shape).collect()
    }

    /// The columns `fedcare explore` counts: the numeric ones, then the categorical ones.
    pub fn explore_columns(&self) -> Vec<ColumnSpec> {
        self.numeric
            .iter()
            .map(NumericColumn::explore_spec)
            .chain(self.categorical.iter().map(CategoricalColumn::explore_spec))
            .collect()
    }

    /// The exploration columns named `names` (subgroup columns), in that order; refuses a name
    /// this schema lacks.
    pub fn subgroup_columns(&self, names: &[String]) -> Result<Vec<ColumnSpec>, SchemaError> {
        let columns = self.explore_columns();
        names
            .iter()
            .map(|name| {
                columns.iter().find(|c| &c.name == name).cloned().ok_or_else(|| SchemaError::UnknownSubgroup {
                    column: name.clone(),
                    columns: columns.iter().map(|c| c.name.clone()).collect(),
                })
            })
            .collect()
    }

    /// What the label's positives are, for reports: `readmitted = <30`.
    pub fn label_description(&self) -> String {
        format!("{} = {}", self.label.column, self.label.positive.join(" or "))
    }

    /// The name of every model input, in order.
    pub fn feature_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.numeric.iter().map(NumericColumn::feature_name).collect();
        for column in &self.categorical {
            match column.top_k {
                Some(k) => names.extend((1..=k).map(|i| format!("{}=top{i}", column.name))),
                None => names.extend(column.vocabulary.iter().map(|v| format!("{}={v}", column.name))),
            }
            names.push(format!("{}=other", column.name));
        }
        names
    }

    /// Positions of this schema's columns in `header`, refusing a header that lacks one (or
    /// differs from an exact header).
    pub fn bind(&self, header: &csv::StringRecord) -> Result<BoundSchema, HeaderError> {
        if let Some(exact) = &self.exact_header
            && let Some(i) =
                (0..exact.len().max(header.len())).find(|&i| header.get(i) != exact.get(i).map(String::as_str))
        {
            return Err(HeaderError::Differs {
                schema: self.id.clone(),
                column: i + 1,
                expected: exact.get(i).map_or("(nothing)", String::as_str).to_owned(),
                found: header.get(i).unwrap_or("(nothing)").to_owned(),
            });
        }
        let find = |name: &str| -> Result<usize, HeaderError> {
            header.iter().position(|h| h == name).ok_or_else(|| HeaderError::MissingColumn { column: name.to_owned() })
        };
        Ok(BoundSchema {
            numeric: self.numeric.iter().map(|c| find(&c.name)).collect::<Result<_, _>>()?,
            categorical: self.categorical.iter().map(|c| find(&c.name)).collect::<Result<_, _>>()?,
            label: find(&self.label.column)?,
            group: self.group.as_deref().map(find).transpose()?,
            drop_if: self
                .drop_if
                .iter()
                // `from_toml` refuses empty rules; the built-in schema has none.
                .filter_map(|rule| rule.split_first())
                .map(|(column, values)| Ok((find(column)?, values.to_vec())))
                .collect::<Result<_, HeaderError>>()?,
            columns: header.len(),
        })
    }
}

/// A schema's columns located in one file's header.
#[derive(Debug, Clone)]
pub struct BoundSchema {
    numeric: Vec<usize>,
    categorical: Vec<usize>,
    label: usize,
    group: Option<usize>,
    drop_if: Vec<(usize, Vec<String>)>,
    columns: usize,
}

/// One parsed record.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedRecord {
    /// Numeric values (`None`: missing).
    pub numeric: Vec<Option<f32>>,
    /// Category index per categorical column: for a vocabulary column its index
    /// (`vocabulary.len()`: another value, `vocabulary.len() + 1`: missing; both one-hot into the
    /// "other or missing" slot), for a `top_k` column its bucket (`buckets` = missing).
    pub categories: Vec<usize>,
    /// Which categorical values were outside their vocabulary (not missing; always `false` for a
    /// `top_k` column, whose slots are chosen later).
    pub unknown: Vec<bool>,
    /// Per `earlier_in_group` numeric column (in order), this row's value there; the column's
    /// numeric value stays `None` until [`crate::read_csv`] has seen the whole file.
    pub order_keys: Vec<f64>,
    /// 1.0 for positive.
    pub label: f32,
    /// The group (patient) id, if the schema has one.
    pub group: Option<String>,
}

/// What to do with a record.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    /// Use it.
    Keep(ParsedRecord),
    /// Drop it by a `drop_if` rule (counted).
    Dropped,
}

impl Schema {
    /// Parses one record; an error names the column and the value.
    pub fn parse_record(&self, bound: &BoundSchema, record: &csv::StringRecord) -> Result<RecordOutcome, RowError> {
        if record.len() != bound.columns {
            return Err(RowError::ColumnCount { got: record.len(), expected: bound.columns });
        }
        for (column, values) in &bound.drop_if {
            if values.iter().any(|v| v == &record[*column]) {
                return Ok(RecordOutcome::Dropped);
            }
        }
        let missing = |text: &str| self.missing.iter().any(|m| m == text.trim());
        let mut numeric = Vec::with_capacity(self.numeric.len());
        let mut order_keys = Vec::new();
        for (spec, &at) in self.numeric.iter().zip(&bound.numeric) {
            let text = &record[at];
            let not_a_number = || RowError::NotANumber { column: spec.name.clone(), text: text.to_owned() };
            if spec.transform == Transform::EarlierInGroup {
                // The order of a group's rows: every row needs its place.
                let key = text.trim().parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(not_a_number)?;
                order_keys.push(key);
                numeric.push(None);
                continue;
            }
            if missing(text) {
                numeric.push(None);
                continue;
            }
            let value = match spec.transform {
                Transform::AgeBand => age_band_midpoint(text),
                _ => text.trim().parse::<f32>().ok().filter(|v| v.is_finite()),
            };
            numeric.push(Some(value.ok_or_else(not_a_number)?));
        }
        let mut categories = Vec::with_capacity(self.categorical.len());
        let mut unknown = Vec::with_capacity(self.categorical.len());
        for (spec, &at) in self.categorical.iter().zip(&bound.categorical) {
            let text = record[at].trim();
            let value = if spec.transform == Transform::Icd9Group && !missing(text) {
                Some(
                    icd9_group(text)
                        .ok_or_else(|| RowError::NotIcd9 { column: spec.name.clone(), text: text.to_owned() })?,
                )
            } else {
                None
            };
            let value = value.unwrap_or(text);
            if let Some(shape) = spec.top_k_shape() {
                unknown.push(false);
                categories.push(if missing(text) {
                    shape.buckets as usize
                } else {
                    crate::top_k::bucket_of(&spec.name, value, shape.buckets, self.bucket_key.as_ref()) as usize
                });
                continue;
            }
            let index = spec.vocabulary.iter().position(|v| v == value);
            unknown.push(index.is_none() && !missing(text));
            categories.push(match index {
                Some(index) => index,
                None if missing(text) => spec.vocabulary.len() + 1,
                None => spec.vocabulary.len(),
            });
        }
        let label_text = record[bound.label].trim();
        if missing(label_text) {
            return Err(RowError::MissingLabel { column: self.label.column.clone() });
        }
        let label = if self.label.positive.iter().any(|p| p == label_text) { 1.0 } else { 0.0 };
        let group = bound.group.map(|at| record[at].trim().to_string());
        Ok(RecordOutcome::Keep(ParsedRecord { numeric, categories, unknown, order_keys, label, group }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icd9_codes_and_age_bands() {
        assert_eq!(icd9_group("250.83"), Some("diabetes"));
        assert_eq!(icd9_group("428"), Some("circulatory"));
        assert_eq!(icd9_group("786.5"), Some("respiratory"));
        assert_eq!(icd9_group("V57"), Some("other"));
        assert_eq!(icd9_group("E909"), Some("other"));
        assert_eq!(icd9_group("996"), Some("injury"));
        assert_eq!(icd9_group("abc"), None);
        assert_eq!(age_band_midpoint("[70-80)"), Some(75.0));
        assert_eq!(age_band_midpoint("70-80"), None);
    }

    #[test]
    fn schemas_by_name() {
        assert_eq!(Schema::by_name("diabetes130").unwrap().width(), 359);
        assert!(Schema::by_name("diabetes130-all").unwrap().drop_if.is_empty());
        assert!(!Schema::diabetes130(true).drop_if.is_empty());
        let error = Schema::by_name("/nonexistent/schema.toml").unwrap_err();
        assert!(matches!(error, DataError::Read { .. }), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "id = 3").unwrap();
        let error = Schema::by_name(path.to_str().unwrap()).unwrap_err();
        assert!(matches!(error, DataError::SchemaFile { source: SchemaError::Invalid { .. }, .. }), "{error}");
        assert!(error.to_string().contains("bad.toml"), "{error}");
    }

    #[test]
    fn the_diabetes_schema_matches_the_uci_header() {
        let schema = Schema::diabetes130(true);
        let header = csv::StringRecord::from(DIABETES130_HEADER.to_vec());
        let bound = schema.bind(&header).unwrap();
        assert_eq!(bound.columns, 50);
        assert_eq!(schema.feature_names().len(), schema.width());
        let mut wrong = DIABETES130_HEADER.to_vec();
        wrong.swap(2, 3);
        let error = schema.bind(&csv::StringRecord::from(wrong)).unwrap_err().to_string();
        assert!(error.contains("column 3") && error.contains("race"), "{error}");
    }

    #[test]
    fn a_custom_schema_from_toml() {
        let schema = Schema::from_toml(
            r#"
            id = "icu/v1"
            label = { column = "died", positive = ["yes"] }
            group = "patient"
            [[numeric]]
            name = "age"
            [[categorical]]
            name = "sex"
            vocabulary = ["F", "M"]
            "#,
        )
        .unwrap();
        assert_eq!(schema.width(), 4);
        let header = csv::StringRecord::from(vec!["patient", "age", "sex", "died"]);
        let bound = schema.bind(&header).unwrap();
        let record = csv::StringRecord::from(vec!["p1", "71", "X", "yes"]);
        let RecordOutcome::Keep(parsed) = schema.parse_record(&bound, &record).unwrap() else { panic!("dropped") };
        assert_eq!(parsed.numeric, [Some(71.0)]);
        assert_eq!((parsed.categories[0], parsed.unknown[0], parsed.label), (2, true, 1.0));
        assert!(Schema::from_toml("id = 3").is_err());
    }

    fn with_ward(ward: &str) -> Result<Schema, SchemaError> {
        Schema::from_toml(&format!(
            "id = \"icu/v2\"\nlabel = {{ column = \"died\", positive = [\"yes\"] }}\n\
             [[numeric]]\nname = \"age\"\n[[categorical]]\nname = \"ward\"\n{ward}\n"
        ))
    }

    #[test]
    fn a_top_k_column_has_a_fixed_width_and_parses_to_its_bucket() {
        let schema = with_ward("top_k = 3\nbuckets = 16").unwrap();
        assert_eq!(schema.top_k_shapes(), [TopKShape { buckets: 16, k: 3 }]);
        assert_eq!(schema.width(), 1 + 3 + 1);
        assert_eq!(schema.feature_names(), ["age", "ward=top1", "ward=top2", "ward=top3", "ward=other"]);
        let default = with_ward("top_k = 2").unwrap();
        assert_eq!(default.top_k_shapes(), [TopKShape { buckets: DEFAULT_BUCKETS, k: 2 }]);
        let header = csv::StringRecord::from(vec!["age", "ward", "died"]);
        let bound = schema.bind(&header).unwrap();
        let parse = |ward: &str| match schema.parse_record(&bound, &csv::StringRecord::from(vec!["50", ward, "no"])) {
            Ok(RecordOutcome::Keep(parsed)) => (parsed.categories[0], parsed.unknown[0]),
            other => panic!("{other:?}"),
        };
        assert_eq!(parse("ICU"), (crate::top_k::bucket_of("ward", "ICU", 16, None) as usize, false));
        assert_eq!(parse(" ICU "), parse("ICU"));
        assert_eq!(parse("?"), (16, false), "missing is bucket `buckets`");
        assert_eq!(parse(""), (16, false));
    }

    #[test]
    fn bad_top_k_columns_are_refused_with_a_clear_error() {
        for (ward, expected) in [
            ("top_k = 0", "top_k must be at least 1"),
            ("top_k = 5\nbuckets = 4", "top_k (5) exceeds its buckets (4)"),
            ("top_k = 1\nbuckets = 0", "buckets is 0"),
            ("top_k = 1\nbuckets = 100000", "buckets is 100000"),
            ("top_k = 2\nvocabulary = [\"a\"]", "both a vocabulary and top_k"),
            ("vocabulary = [\"a\"]\nbuckets = 8", "buckets goes only with top_k"),
            ("", "empty vocabulary (give a vocabulary or top_k)"),
            ("top_k = -1", "invalid schema"),
            ("top_k = 2\ntop = 3", "invalid schema"),
        ] {
            let error = with_ward(ward).unwrap_err().to_string();
            assert!(error.contains(expected), "{ward:?}: {error}");
            assert!(error.contains("ward") || expected == "invalid schema", "{ward:?}: {error}");
        }
    }
}
