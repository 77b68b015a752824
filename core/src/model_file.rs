//! The versioned model file: a trained model's spec, parameters, feature schema id, metrics, the
//! statistics its numeric inputs were standardised with, the hash buckets its `top_k`
//! categorical inputs were one-hot over and the calibration of its scores.
//!
//! It travels in the [`crate::envelope`] with magic `b"FEDCMODL"`; the payload is the postcard
//! encoding of [`ModelFile`] (format 7: spec, parameters, schema id, metrics, the feature scaling,
//! the top_k buckets, the hospitals' endorsements, the Platt scaling of its scores, the settings
//! it was trained with, its figures per subgroup and, for boosted trees, the ensemble; format 6,
//! the same without the ensemble, 5, also without the settings and subgroups, 4, also without
//! the scaling, and 3, also without endorsements, still read; version 2 had no buckets and
//! version 1 no scaling: both are refused).
//!
//! A boosted-tree model ([`ModelFile::boosted`]) holds its [`Ensemble`] over the same encoded
//! inputs, its spec says the input width (logistic regression's) and it has no parameters;
//! [`ModelFile::margins`] scores either kind.
//!
//! The endorsements are opaque here: `fedcare-federation` fills them with the hospitals' signed
//! statements over a digest of [`ModelFile::endorsed_bytes`] (the file's bytes with no endorsements), and
//! `fedcare inspect` checks them.
//!
//! Decoding never panics and never trusts the file: the envelope's checks come first (size
//! limit, magic, version, length, checksum), then the payload is decoded and the spec must be
//! valid, the parameters fit it and be finite, the scaling finite with positive deviations and
//! the buckets distinct and fit the input width.
//!
//! Golden vectors of every version still read, with the program that makes them, are in
//! `core/tests/golden/formats/`.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::calibration::Platt;
use crate::envelope::Format;
use crate::gbdt::Ensemble;
use crate::spec::ModelSpec;
use crate::stats::ColumnStats;
use crate::subgroup::SubgroupReport;
use crate::{Error, Result};

/// First bytes of every model file.
pub const MAGIC: [u8; 8] = *b"FEDCMODL";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u16 = 7;
/// The previous format, without the ensemble (still read).
const FORMAT_V6: Format = Format { magic: MAGIC, version: 6, name: "model file" };
/// The previous format, without the settings and subgroups (still read).
const FORMAT_V5: Format = Format { magic: MAGIC, version: 5, name: "model file" };
/// The format before, without the calibration either (still read).
const FORMAT_V4: Format = Format { magic: MAGIC, version: 4, name: "model file" };
/// The format before, without endorsements either (still read).
const FORMAT_V3: Format = Format { magic: MAGIC, version: 3, name: "model file" };
/// Bytes before the payload.
pub const HEADER_LEN: usize = crate::envelope::HEADER_LEN;
/// The model file's envelope.
pub const FORMAT: Format = Format { magic: MAGIC, version: FORMAT_VERSION, name: "model file" };
/// The default decode limit: 256 MiB (a 64M-parameter model).
pub const DEFAULT_SIZE_LIMIT: usize = 256 << 20;

/// A trained model and what is known about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// The architecture.
    pub spec: ModelSpec,
    /// The flat parameter vector (layout in [`crate::spec`]).
    pub params: Vec<f32>,
    /// Identifier of the feature schema the model's inputs follow (for example `diabetes130/v1`).
    pub schema_id: String,
    /// Named metrics (for example `auroc`, `round`).
    pub metrics: BTreeMap<String, f64>,
    /// The mean and standard deviation the leading numeric inputs were standardised with (one
    /// per numeric feature, in input order; empty when inputs are used as they are).
    pub feature_scaling: Vec<ColumnStats>,
    /// Per `top_k` categorical column (in schema order), the hash buckets its one-hot slots stand
    /// for, in slot order (empty when the schema has no `top_k` column). The bucket function and
    /// the column shapes are the schema's; `fedcare predict` checks them against it.
    pub category_buckets: Vec<Vec<u32>>,
    /// Signed statements over a digest of [`Self::endorsed_bytes`] by the parties that computed this file,
    /// in `fedcare-federation`'s relayed-bundle form (empty: not endorsed).
    pub endorsements: Vec<u8>,
    /// The Platt scaling of the model's logits, fitted on held-out rows (`None`: uncalibrated);
    /// `fedcare predict` reports `σ(a·z + b)`.
    pub calibration: Option<Platt>,
    /// How the model was trained, as `setting → value` text for its model card (`rule`,
    /// `rounds`, `model`, `optimizer`…; empty: not said).
    pub settings: BTreeMap<String, String>,
    /// Its figures per subgroup of the held-out rows (`None`: not measured).
    pub subgroups: Option<SubgroupReport>,
    /// A boosted-tree model's trees (`None`: the parameters are the model).
    pub ensemble: Option<Ensemble>,
}

/// Format 6's payload: a model file without an ensemble.
#[derive(Deserialize)]
struct ModelFileV6 {
    spec: ModelSpec,
    params: Vec<f32>,
    schema_id: String,
    metrics: BTreeMap<String, f64>,
    feature_scaling: Vec<ColumnStats>,
    category_buckets: Vec<Vec<u32>>,
    endorsements: Vec<u8>,
    calibration: Option<Platt>,
    settings: BTreeMap<String, String>,
    subgroups: Option<SubgroupReport>,
}

/// Format 5's payload: a model file without the settings and subgroups.
#[derive(Deserialize)]
struct ModelFileV5 {
    spec: ModelSpec,
    params: Vec<f32>,
    schema_id: String,
    metrics: BTreeMap<String, f64>,
    feature_scaling: Vec<ColumnStats>,
    category_buckets: Vec<Vec<u32>>,
    endorsements: Vec<u8>,
    calibration: Option<Platt>,
}

/// Format 4's payload: a model file without the calibration.
#[derive(Deserialize)]
struct ModelFileV4 {
    spec: ModelSpec,
    params: Vec<f32>,
    schema_id: String,
    metrics: BTreeMap<String, f64>,
    feature_scaling: Vec<ColumnStats>,
    category_buckets: Vec<Vec<u32>>,
    endorsements: Vec<u8>,
}

/// Format 3's payload: a model file without endorsements.
#[derive(Deserialize)]
struct ModelFileV3 {
    spec: ModelSpec,
    params: Vec<f32>,
    schema_id: String,
    metrics: BTreeMap<String, f64>,
    feature_scaling: Vec<ColumnStats>,
    category_buckets: Vec<Vec<u32>>,
}

impl From<ModelFileV3> for ModelFileV4 {
    fn from(old: ModelFileV3) -> Self {
        let ModelFileV3 { spec, params, schema_id, metrics, feature_scaling, category_buckets } = old;
        Self { spec, params, schema_id, metrics, feature_scaling, category_buckets, endorsements: Vec::new() }
    }
}

impl From<ModelFileV4> for ModelFileV5 {
    fn from(old: ModelFileV4) -> Self {
        let ModelFileV4 { spec, params, schema_id, metrics, feature_scaling, category_buckets, endorsements } = old;
        Self { spec, params, schema_id, metrics, feature_scaling, category_buckets, endorsements, calibration: None }
    }
}

impl From<ModelFileV5> for ModelFileV6 {
    fn from(old: ModelFileV5) -> Self {
        let ModelFileV5 {
            spec,
            params,
            schema_id,
            metrics,
            feature_scaling,
            category_buckets,
            endorsements,
            calibration,
        } = old;
        Self {
            spec,
            params,
            schema_id,
            metrics,
            feature_scaling,
            category_buckets,
            endorsements,
            calibration,
            settings: BTreeMap::new(),
            subgroups: None,
        }
    }
}

impl From<ModelFileV6> for ModelFile {
    fn from(old: ModelFileV6) -> Self {
        let ModelFileV6 {
            spec,
            params,
            schema_id,
            metrics,
            feature_scaling,
            category_buckets,
            endorsements,
            calibration,
            settings,
            subgroups,
        } = old;
        Self {
            spec,
            params,
            schema_id,
            metrics,
            feature_scaling,
            category_buckets,
            endorsements,
            calibration,
            settings,
            subgroups,
            ensemble: None,
        }
    }
}

impl ModelFile {
    /// A model file with no metrics; refuses parameters that do not fit the spec.
    pub fn new(spec: ModelSpec, params: Vec<f32>, schema_id: impl Into<String>) -> Result<Self> {
        let file = Self::unchecked(spec, params, schema_id.into(), None);
        file.validate()?;
        Ok(file)
    }

    fn unchecked(spec: ModelSpec, params: Vec<f32>, schema_id: String, ensemble: Option<Ensemble>) -> Self {
        Self {
            spec,
            params,
            schema_id,
            metrics: BTreeMap::new(),
            feature_scaling: Vec::new(),
            category_buckets: Vec::new(),
            endorsements: Vec::new(),
            calibration: None,
            settings: BTreeMap::new(),
            subgroups: None,
            ensemble,
        }
    }

    /// A boosted-tree model file over `width` encoded inputs; refuses a malformed ensemble.
    pub fn boosted(ensemble: Ensemble, width: usize, schema_id: impl Into<String>) -> Result<Self> {
        let spec = ModelSpec::logistic_regression(width)?;
        let file = Self::unchecked(spec, Vec::new(), schema_id.into(), Some(ensemble));
        file.validate()?;
        Ok(file)
    }

    /// The model's margins (logits, before calibration) of every row of `features` (the
    /// spec's input width a row).
    pub fn margins(&self, features: &[f32]) -> Result<Vec<f32>> {
        match &self.ensemble {
            Some(ensemble) => ensemble.margins(features, self.spec.input_width()),
            None => crate::Network::new(&self.spec).predict(&self.params, features),
        }
    }

    /// The model's kind and shape in words: `gradient-boosted trees (60 trees, depth ≤ 4, 359
    /// inputs)`, `MLP 359-32-16-1` or `logistic regression 359-1`.
    pub fn architecture(&self) -> String {
        match &self.ensemble {
            Some(ensemble) => alloc::format!(
                "gradient-boosted trees ({} trees, {} nodes, {} inputs)",
                ensemble.trees.len(),
                ensemble.nodes(),
                self.spec.input_width()
            ),
            None if self.spec.hidden().is_empty() => alloc::format!("logistic regression {}", self.spec.architecture()),
            None => alloc::format!("MLP {}", self.spec.architecture()),
        }
    }

    /// The probability the model gives for `logit`, calibrated when the file has a scaling.
    pub fn probability(&self, logit: f32) -> f32 {
        crate::loss::sigmoid(self.calibration.map_or(logit, |platt| platt.apply(logit)))
    }

    fn validate(&self) -> Result<()> {
        self.spec.validate()?;
        match &self.ensemble {
            Some(ensemble) => {
                ensemble.validate(self.spec.input_width())?;
                if !self.params.is_empty() {
                    return Err(Error::ParamLength { expected: 0, got: self.params.len() });
                }
            }
            None => self.spec.check_params(&self.params)?,
        }
        if let Some(index) = self.params.iter().position(|p| !p.is_finite()) {
            return Err(Error::NonFiniteValue { index });
        }
        if self.feature_scaling.len() > self.spec.input_width() {
            return Err(Error::FeatureWidth { expected: self.spec.input_width(), got: self.feature_scaling.len() });
        }
        if let Some(index) = self.feature_scaling.iter().position(|stats| !stats.is_valid()) {
            return Err(Error::NonFiniteValue { index });
        }
        // Every chosen bucket is one input, every top_k column one more ("other or missing").
        let inputs = self
            .category_buckets
            .iter()
            .fold(self.feature_scaling.len(), |total, chosen| total.saturating_add(chosen.len()).saturating_add(1));
        if inputs > self.spec.input_width() {
            return Err(Error::FeatureWidth { expected: self.spec.input_width(), got: inputs });
        }
        for (column, chosen) in self.category_buckets.iter().enumerate() {
            crate::top_k::check_distinct(column, chosen)?;
        }
        if let Some(platt) = self.calibration.filter(|platt| !platt.is_valid()) {
            return Err(Error::InvalidHyperparameter { name: "calibration slope", value: platt.a });
        }
        Ok(())
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let payload = postcard::to_allocvec(self).map_err(Error::Malformed)?;
        FORMAT.seal(&payload)
    }

    /// Decodes a file of at most [`DEFAULT_SIZE_LIMIT`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_bytes_with_limit(bytes, DEFAULT_SIZE_LIMIT)
    }

    /// Decodes a file of at most `limit` bytes (format 7; 6 read without an ensemble, 5 also
    /// without settings and subgroups, 4 also without a calibration, 3 also without endorsements).
    pub fn from_bytes_with_limit(bytes: &[u8], limit: usize) -> Result<Self> {
        let version = bytes.get(8..10).map(|v| u16::from_le_bytes([v[0], v[1]]));
        let file = if version == Some(FORMAT_V3.version) {
            let old: ModelFileV3 = whole(FORMAT_V3.open(bytes, limit)?)?;
            Self::from(ModelFileV6::from(ModelFileV5::from(ModelFileV4::from(old))))
        } else if version == Some(FORMAT_V4.version) {
            Self::from(ModelFileV6::from(ModelFileV5::from(whole::<ModelFileV4>(FORMAT_V4.open(bytes, limit)?)?)))
        } else if version == Some(FORMAT_V5.version) {
            Self::from(ModelFileV6::from(whole::<ModelFileV5>(FORMAT_V5.open(bytes, limit)?)?))
        } else if version == Some(FORMAT_V6.version) {
            Self::from(whole::<ModelFileV6>(FORMAT_V6.open(bytes, limit)?)?)
        } else {
            whole(FORMAT.open(bytes, limit)?)?
        };
        file.validate()?;
        Ok(file)
    }

    /// The file's bytes with no endorsements: what the endorsing parties sign a digest of.
    pub fn endorsed_bytes(&self) -> Result<Vec<u8>> {
        Self { endorsements: Vec::new(), ..self.clone() }.to_bytes()
    }
}

/// The value a payload encodes, refusing trailing bytes.
fn whole<T: serde::de::DeserializeOwned>(payload: &[u8]) -> Result<T> {
    let (value, rest): (T, &[u8]) = postcard::take_from_bytes(payload).map_err(Error::Malformed)?;
    if !rest.is_empty() {
        return Err(Error::TrailingBytes { count: rest.len() });
    }
    Ok(value)
}
