//! What both roles' configuration files share: TLS file paths ([`TlsFiles`]), reading a TOML
//! file ([`load`]), and the few per-deployment keys an environment variable may replace
//! ([`load_with_env`]).
//!
//! For containers, `aggregator.toml` also takes `[operations]`: `health_listen` (a plaintext
//! `grpc.health.v1` endpoint), `metrics_listen` (Prometheus, `GET /metrics`) and `keep_serving`
//! (stay up after the end), all off by default; and a few keys per deployment may come from the environment
//! ([`load_with_env`]): `FEDCARE_FEDERATION_ID`, `FEDCARE_LISTEN`, `FEDCARE_HOSPITALS` (comma
//! separated), `FEDCARE_OUT_DIR`, `FEDCARE_HEALTH_LISTEN`, `FEDCARE_METRICS_LISTEN`,
//! `FEDCARE_KEEP_SERVING` for the aggregator; `FEDCARE_FEDERATION_ID`, `FEDCARE_AGGREGATOR`,
//! `FEDCARE_SERVER_NAME`, `FEDCARE_STATE_DIR` for a hospital. A variable that is set wins over
//! the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{FederationError, Result};

/// Paths of a party's TLS material.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The federation's CA certificate.
    pub ca: PathBuf,
    /// This party's certificate.
    pub cert: PathBuf,
    /// This party's private key.
    pub key: PathBuf,
}

/// Reads and parses a TOML configuration file.
pub fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).map_err(|source| FederationError::Read { path: path.to_path_buf(), source })?;
    toml::from_str(&text).map_err(|e| FederationError::ConfigFile { path: path.to_path_buf(), message: e.to_string() })
}

/// How an environment variable's text becomes a configuration value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvValue {
    /// The text as it is.
    Text,
    /// A comma-separated list of names (blanks around each trimmed).
    List,
    /// `true` or `false`.
    Bool,
}

/// An environment variable that, when set, replaces one key of a configuration file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvKey {
    /// The variable, e.g. `FEDCARE_LISTEN`.
    pub var: &'static str,
    /// The key it replaces, e.g. `listen` (a dotted path for a key of a table:
    /// `operations.metrics_listen`).
    pub key: &'static str,
    /// How its text is read.
    pub value: EnvValue,
}

/// A configuration whose few per-deployment keys (addresses, names, directories) may come from
/// the environment: what a compose file or a container orchestrator varies per service.
pub trait EnvOverrides {
    /// The variables, each with the key it replaces.
    const ENV: &'static [EnvKey];
}

/// An [`EnvKey`], in a `const` list.
pub const fn env_key(var: &'static str, key: &'static str, value: EnvValue) -> EnvKey {
    EnvKey { var, key, value }
}

/// [`load`], with the keys of `T::ENV` replaced by the environment variables that are set.
pub fn load_with_env<T: serde::de::DeserializeOwned + EnvOverrides>(path: &Path) -> Result<T> {
    load_with_overrides(path, T::ENV, |var| std::env::var(var).ok())
}

/// [`load_with_env`] with the variables read by `lookup` (tests pass a map).
pub fn load_with_overrides<T: serde::de::DeserializeOwned>(
    path: &Path,
    keys: &[EnvKey],
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<T> {
    let set: Vec<(&EnvKey, String)> = keys.iter().filter_map(|key| Some((key, lookup(key.var)?))).collect();
    if set.is_empty() {
        // Parsed as the file is, so that an error points at its line.
        return load(path);
    }
    let text =
        std::fs::read_to_string(path).map_err(|source| FederationError::Read { path: path.to_path_buf(), source })?;
    let invalid = |message: String| FederationError::ConfigFile { path: path.to_path_buf(), message };
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
    for (key, text) in set {
        let value = match key.value {
            EnvValue::Text => toml::Value::String(text),
            EnvValue::List => toml::Value::Array(
                text.split(',')
                    .map(str::trim)
                    .filter(|name| !name.is_empty())
                    .map(|name| toml::Value::String(name.to_owned()))
                    .collect(),
            ),
            EnvValue::Bool => match text.trim() {
                "true" | "1" => toml::Value::Boolean(true),
                "false" | "0" => toml::Value::Boolean(false),
                other => {
                    return Err(invalid(format!("{} = {other:?}: expected true or false", key.var)));
                }
            },
        };
        let mut path: Vec<&str> = key.key.split('.').collect();
        let last = path.pop().unwrap_or(key.key);
        let mut target = &mut table;
        for part in path {
            let entry = target.entry(part).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            target = entry.as_table_mut().ok_or_else(|| invalid(format!("{part} must be a table")))?;
        }
        target.insert(last.to_owned(), value);
    }
    table.try_into().map_err(|e: toml::de::Error| invalid(e.to_string()))
}
