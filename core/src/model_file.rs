//! The versioned model file: a trained model's spec, parameters, feature schema id, metrics, the
//! statistics its numeric inputs were standardised with and the hash buckets its `top_k`
//! categorical inputs were one-hot over.
//!
//! ```text
//! offset  size  field
//!      0     8  magic  b"FEDCMODL"
//!      8     2  format version, u16 little-endian (this crate writes and reads FORMAT_VERSION)
//!     10     4  payload length in bytes, u32 little-endian
//!     14     4  CRC-32 (IEEE) of the payload, u32 little-endian
//!     18     …  payload: postcard encoding of the spec, parameters, schema id, metrics, the
//!               feature scaling and the top_k buckets (version 3; version 2 had no buckets and
//!               version 1 no scaling: both are refused)
//! ```
//!
//! Decoding never panics and never trusts the file: it checks the size limit before anything
//! else, then the magic, version, length and checksum, then decodes the payload and checks that
//! the spec is valid and the parameters fit it and are finite.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::spec::ModelSpec;
use crate::{Error, Result};

/// First bytes of every model file.
pub const MAGIC: [u8; 8] = *b"FEDCMODL";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u16 = 3;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 18;
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
    /// The mean and standard deviation the leading numeric inputs were standardised with
    /// (`(mean, std)` per numeric feature, in input order; empty when inputs are used as they are).
    pub feature_scaling: Vec<(f64, f64)>,
    /// Per `top_k` categorical column (in schema order), the hash buckets its one-hot slots stand
    /// for, in slot order (empty when the schema has no `top_k` column). The bucket function and
    /// the column shapes are the schema's; `fedcare predict` checks them against it.
    pub category_buckets: Vec<Vec<u32>>,
}

impl ModelFile {
    /// A model file with no metrics; refuses parameters that do not fit the spec.
    pub fn new(spec: ModelSpec, params: Vec<f32>, schema_id: impl Into<String>) -> Result<Self> {
        let file = Self {
            spec,
            params,
            schema_id: schema_id.into(),
            metrics: BTreeMap::new(),
            feature_scaling: Vec::new(),
            category_buckets: Vec::new(),
        };
        file.validate()?;
        Ok(file)
    }

    fn validate(&self) -> Result<()> {
        self.spec.validate()?;
        self.spec.check_params(&self.params)?;
        if let Some(index) = self.params.iter().position(|p| !p.is_finite()) {
            return Err(Error::NonFiniteValue { index });
        }
        if self.feature_scaling.len() > self.spec.input_width() {
            return Err(Error::FeatureWidth { expected: self.spec.input_width(), got: self.feature_scaling.len() });
        }
        if let Some(index) =
            self.feature_scaling.iter().position(|&(m, s)| !(m.is_finite() && s.is_finite() && s > 0.0))
        {
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
            for (i, bucket) in chosen.iter().enumerate() {
                if chosen[..i].contains(bucket) {
                    return Err(Error::DuplicateBucket { column, bucket: *bucket });
                }
            }
        }
        Ok(())
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        self.validate()?;
        let payload = postcard::to_allocvec(self).map_err(Error::Malformed)?;
        let length = u32::try_from(payload.len())
            .map_err(|_| Error::FileTooLarge { size: payload.len(), limit: u32::MAX as usize })?;
        let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&length.to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        Ok(bytes)
    }

    /// Decodes a file of at most [`DEFAULT_SIZE_LIMIT`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_bytes_with_limit(bytes, DEFAULT_SIZE_LIMIT)
    }

    /// Decodes a file of at most `limit` bytes.
    pub fn from_bytes_with_limit(bytes: &[u8], limit: usize) -> Result<Self> {
        if bytes.len() > limit {
            return Err(Error::FileTooLarge { size: bytes.len(), limit });
        }
        let header = bytes.get(..HEADER_LEN).ok_or(Error::Truncated { needed: HEADER_LEN, got: bytes.len() })?;
        let field = |range: core::ops::Range<usize>| &header[range];
        if field(0..8) != MAGIC {
            return Err(Error::BadMagic);
        }
        let version = u16::from_le_bytes([header[8], header[9]]);
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion { found: version, supported: FORMAT_VERSION });
        }
        let length = u32::from_le_bytes([header[10], header[11], header[12], header[13]]) as usize;
        let checksum = u32::from_le_bytes([header[14], header[15], header[16], header[17]]);
        let payload = &bytes[HEADER_LEN..];
        if payload.len() < length {
            return Err(Error::Truncated { needed: HEADER_LEN + length, got: bytes.len() });
        }
        if payload.len() > length {
            return Err(Error::TrailingBytes { count: payload.len() - length });
        }
        let computed = crc32fast::hash(payload);
        if computed != checksum {
            return Err(Error::ChecksumMismatch { stored: checksum, computed });
        }
        let (file, rest): (Self, &[u8]) = postcard::take_from_bytes(payload).map_err(Error::Malformed)?;
        if !rest.is_empty() {
            return Err(Error::TrailingBytes { count: rest.len() });
        }
        file.validate()?;
        Ok(file)
    }
}
