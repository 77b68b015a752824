//! TOML configuration of the two roles, with documented defaults.
//!
//! `aggregator.toml` (every key optional except `hospitals` and the TLS paths):
//! ```toml
//! federation_id = "fedcare"        # every message carries it
//! listen = "127.0.0.1:50051"
//! hospitals = ["st-marys", "general"]  # enrolled node ids (certificate names); others are refused
//! min_hospitals = 2                 # a round needs at least this many; fewer stops the federation
//! rounds = 10
//! phase_timeout_secs = 120          # a node that misses a phase deadline is dropped, the round restarts
//! join_timeout_secs = 300           # start with min_hospitals after this, or as soon as all joined
//! out_dir = "fedcare-out"           # metrics.jsonl, model.bin
//! eval_bins = 1024                  # bins of the encrypted score histograms (AUROC, loss)
//! seed = 0                          # initial model
//! schema = "diabetes130"            # optional: the hospitals' schema (sets numeric_features, top_k)
//! [model]   input_width = 16, hidden = [32, 16]
//! [training] epochs = 1, batch_size = 64, optimizer = "adam", learning_rate = 0.01, ...
//! [server]  rule = "fedavg" | "fedprox" | "fedadam", lr = 1.0, prox_mu = 0.01, beta1, beta2, tau
//! [tls]     ca = "pki/ca.pem", cert = "pki/aggregator.pem", key = "pki/aggregator.key"
//! ```
//! `hospital.toml`: `aggregator = "https://localhost:50051"`, `server_name = "localhost"`,
//! `[tls] ca, cert, key`, `trainer = "auto"` (or "gpu", "cpu"), optional `schema = "diabetes130"` and
//! `bad_rows_limit = 100`. `examples/` holds both files with every key explained.

use std::path::PathBuf;

use anyhow::{Result, ensure};
use fedcare_core::{ModelSpec, OptimizerConfig, ServerOptimizerConfig};
use fedcare_proto::v1;
use serde::{Deserialize, Serialize};

use crate::crypto::PARAMS_V1;
use crate::top_k::TopKShape;

/// Paths of a party's TLS material.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The federation's CA certificate.
    pub ca: PathBuf,
    /// This party's certificate.
    pub cert: PathBuf,
    /// This party's private key.
    pub key: PathBuf,
}

/// The model architecture.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Features per row.
    pub input_width: u32,
    /// Hidden layer widths (empty: logistic regression).
    #[serde(default = "default_hidden")]
    pub hidden: Vec<u32>,
}

fn default_hidden() -> Vec<u32> {
    vec![32, 16]
}

/// Local training settings sent to every hospital.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingSettings {
    /// Local epochs per round.
    pub epochs: u32,
    /// Mini-batch size.
    pub batch_size: u32,
    /// `"adam"` or `"sgd"`.
    pub optimizer: String,
    /// Learning rate.
    pub learning_rate: f32,
    /// SGD momentum.
    pub momentum: f32,
    /// L2 penalty on the weights.
    pub l2: f32,
    /// Positive-class weight; 0 lets each hospital balance its own classes.
    pub pos_weight: f32,
    /// Seed of the local batch order.
    pub seed: u64,
    /// Fraction of each hospital's rows held out for evaluation.
    pub test_fraction: f32,
}

impl Default for TrainingSettings {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 64,
            optimizer: "adam".into(),
            learning_rate: 0.01,
            momentum: 0.9,
            l2: 0.0,
            pos_weight: 0.0,
            seed: 0,
            test_fraction: 0.2,
        }
    }
}

/// The server-side update rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// `"fedavg"`, `"fedprox"` (FedAvg with a proximal term in local training) or `"fedadam"`.
    pub rule: String,
    /// Server learning rate.
    pub lr: f32,
    /// FedProx's `μ` (used when `rule = "fedprox"`).
    pub prox_mu: f32,
    /// FedAdam's `β1`.
    pub beta1: f32,
    /// FedAdam's `β2`.
    pub beta2: f32,
    /// FedAdam's `τ`.
    pub tau: f32,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self { rule: "fedavg".into(), lr: 1.0, prox_mu: 0.01, beta1: 0.9, beta2: 0.99, tau: 1e-3 }
    }
}

/// `aggregator.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorConfig {
    /// Every message carries it.
    #[serde(default = "default_federation_id")]
    pub federation_id: String,
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Enrolled hospitals (their certificate names).
    pub hospitals: Vec<String>,
    /// Fewest hospitals a round may have.
    #[serde(default = "default_min_hospitals")]
    pub min_hospitals: u32,
    /// Training rounds.
    #[serde(default = "default_rounds")]
    pub rounds: u32,
    /// Seconds a node has for each phase.
    #[serde(default = "default_phase_timeout")]
    pub phase_timeout_secs: u64,
    /// Seconds to wait for hospitals to join.
    #[serde(default = "default_join_timeout")]
    pub join_timeout_secs: u64,
    /// Where metrics and the model are written.
    #[serde(default = "default_out_dir")]
    pub out_dir: PathBuf,
    /// Seed of the initial model.
    #[serde(default)]
    pub seed: u64,
    /// Bins of the evaluation histograms.
    #[serde(default = "default_eval_bins")]
    pub eval_bins: u32,
    /// Feature schema id recorded in the model file.
    #[serde(default = "default_schema")]
    pub schema_id: String,
    /// How many leading model inputs are numeric features to standardise with federated
    /// statistics (the schema's numeric columns; 0 when the hospitals' data is ready as is).
    /// Set from `schema` when that is given.
    #[serde(default)]
    pub numeric_features: u32,
    /// The schema's `top_k` categorical columns, in schema order: their buckets are counted in
    /// the setup session and their slots chosen from the totals. Set from `schema` when that is
    /// given.
    #[serde(default)]
    pub top_k: Vec<TopKShape>,
    /// The hospitals' data schema: `"diabetes130"` (built in; drops death/hospice encounters),
    /// `"diabetes130-all"`, or the path of a schema TOML file. Sets `numeric_features`, `top_k`
    /// and `schema_id`, and `[model] input_width` must equal its width.
    #[serde(default)]
    pub schema: Option<String>,
    /// Architecture.
    pub model: ModelConfig,
    /// Local training.
    #[serde(default)]
    pub training: TrainingSettings,
    /// Server rule.
    #[serde(default)]
    pub server: ServerSettings,
    /// TLS material.
    pub tls: TlsFiles,
}

fn default_federation_id() -> String {
    "fedcare".into()
}
fn default_listen() -> String {
    "127.0.0.1:50051".into()
}
fn default_min_hospitals() -> u32 {
    2
}
fn default_rounds() -> u32 {
    10
}
fn default_phase_timeout() -> u64 {
    120
}
fn default_join_timeout() -> u64 {
    300
}
fn default_out_dir() -> PathBuf {
    "fedcare-out".into()
}
fn default_eval_bins() -> u32 {
    1024
}
fn default_schema() -> String {
    "synthetic/v1".into()
}

impl AggregatorConfig {
    /// Checks the settings that can be checked without the network.
    pub fn validate(&self) -> Result<()> {
        ensure!(!self.hospitals.is_empty(), "list the enrolled hospitals in `hospitals`");
        for name in &self.hospitals {
            crate::tls::check_name(name)?;
        }
        ensure!(self.min_hospitals >= 2, "min_hospitals must be at least 2 (one hospital's update is not a sum)");
        ensure!(
            self.min_hospitals as usize <= self.hospitals.len(),
            "min_hospitals ({}) exceeds the enrolled hospitals ({})",
            self.min_hospitals,
            self.hospitals.len()
        );
        ensure!(self.hospitals.len() <= PARAMS_V1.max_parties, "at most {} hospitals", PARAMS_V1.max_parties);
        ensure!(self.rounds >= 1, "rounds must be at least 1");
        ensure!((2..=4096).contains(&self.eval_bins), "eval_bins must be 2..=4096");
        ensure!(self.phase_timeout_secs >= 1, "phase_timeout_secs must be at least 1");
        let t = &self.training;
        ensure!(t.test_fraction > 0.0 && t.test_fraction < 1.0, "test_fraction must be in (0, 1)");
        if let Some(name) = &self.schema {
            let schema = load_schema(name)?;
            ensure!(
                self.model.input_width as usize == schema.width(),
                "[model] input_width is {}, the {} schema has {} inputs",
                self.model.input_width,
                schema.id,
                schema.width()
            );
        }
        for (i, shape) in self.top_k.iter().enumerate() {
            shape.validate(&format!("top_k[{i}]"))?;
        }
        let fixed = u64::from(self.numeric_features) + self.top_k.iter().map(|s| u64::from(s.k) + 1).sum::<u64>();
        ensure!(
            fixed <= u64::from(self.model.input_width),
            "numeric_features ({}) and the top_k columns' slots need {fixed} inputs, the model's input width is {}",
            self.numeric_features,
            self.model.input_width
        );
        self.spec()?;
        self.optimizer()?.validate()?;
        self.server_optimizer()?;
        Ok(())
    }

    /// The model spec.
    pub fn spec(&self) -> Result<ModelSpec> {
        let hidden: Vec<usize> = self.model.hidden.iter().map(|&h| h as usize).collect();
        Ok(ModelSpec::mlp(self.model.input_width as usize, &hidden)?)
    }

    /// The local optimizer.
    pub fn optimizer(&self) -> Result<OptimizerConfig> {
        let t = &self.training;
        Ok(match t.optimizer.as_str() {
            "adam" => OptimizerConfig::adam(t.learning_rate),
            "sgd" => OptimizerConfig::Sgd { lr: t.learning_rate, momentum: t.momentum },
            other => anyhow::bail!("unknown optimizer {other:?}: use \"adam\" or \"sgd\""),
        })
    }

    /// The server rule.
    pub fn server_optimizer(&self) -> Result<ServerOptimizerConfig> {
        let s = &self.server;
        Ok(match s.rule.as_str() {
            "fedavg" | "fedprox" => ServerOptimizerConfig::FedAvg { lr: s.lr },
            "fedadam" => ServerOptimizerConfig::FedAdam { lr: s.lr, beta1: s.beta1, beta2: s.beta2, tau: s.tau },
            other => anyhow::bail!("unknown server rule {other:?}: use \"fedavg\", \"fedprox\" or \"fedadam\""),
        })
    }

    /// The configuration every hospital receives when it joins.
    pub fn federation_config(&self, max_upload_bytes: u64) -> v1::FederationConfig {
        let t = &self.training;
        let codec = PARAMS_V1.codec_config();
        v1::FederationConfig {
            federation_id: self.federation_id.clone(),
            model: Some(v1::ModelSpec { input_width: self.model.input_width, hidden: self.model.hidden.clone() }),
            codec: Some(v1::CodecConfig {
                value_bits: codec.value_bits,
                frac_bits: codec.frac_bits,
                max_parties: codec.max_parties,
                plaintext_bits: codec.plaintext_bits,
            }),
            crypto_params_id: u32::from(PARAMS_V1.id),
            rounds: self.rounds,
            training: Some(v1::TrainingConfig {
                epochs: t.epochs,
                batch_size: t.batch_size,
                optimizer: if t.optimizer == "sgd" { v1::Optimizer::Sgd } else { v1::Optimizer::Adam } as i32,
                learning_rate: t.learning_rate,
                momentum: t.momentum,
                l2: t.l2,
                prox_mu: if self.server.rule == "fedprox" { self.server.prox_mu } else { 0.0 },
                pos_weight: t.pos_weight,
                seed: t.seed,
            }),
            min_hospitals: self.min_hospitals,
            eval_bins: self.eval_bins,
            schema_id: self.schema_id.clone(),
            max_upload_bytes,
            test_fraction: t.test_fraction,
            numeric_features: self.numeric_features,
            top_k_columns: self.top_k.iter().map(|s| v1::TopKColumn { buckets: s.buckets, k: s.k }).collect(),
        }
    }
}

/// A schema by name: `diabetes130`, `diabetes130-all`, or a schema TOML file's path.
pub fn load_schema(name: &str) -> Result<crate::schema::Schema> {
    use anyhow::Context as _;
    match name {
        "diabetes130" => Ok(crate::schema::Schema::diabetes130(true)),
        "diabetes130-all" => Ok(crate::schema::Schema::diabetes130(false)),
        path => {
            let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the schema {path}"))?;
            crate::schema::Schema::from_toml(&text).with_context(|| format!("invalid schema in {path}"))
        }
    }
}

impl AggregatorConfig {
    /// Fills the settings that follow from `schema` (`numeric_features`, `top_k`, `schema_id`).
    pub fn apply_schema(&mut self) -> Result<()> {
        if let Some(name) = &self.schema {
            let schema = load_schema(name)?;
            self.numeric_features = schema.numeric.len() as u32;
            self.top_k = schema.top_k_shapes();
            self.schema_id = schema.id;
        }
        Ok(())
    }
}

/// `hospital.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HospitalConfig {
    /// The aggregator's URL.
    #[serde(default = "default_aggregator")]
    pub aggregator: String,
    /// The name the aggregator's certificate must carry.
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// Federation to join.
    #[serde(default = "default_federation_id")]
    pub federation_id: String,
    /// `"auto"` (GPU when a hardware adapter exists, else CPU), `"gpu"` or `"cpu"`.
    #[serde(default = "default_trainer")]
    pub trainer: String,
    /// The data's schema (`"diabetes130"`, `"diabetes130-all"` or a schema TOML path); absent:
    /// a numeric CSV with a 0/1 `label` column, used as it is.
    #[serde(default)]
    pub schema: Option<String>,
    /// Bad rows skipped (and counted) before the file is refused; 0 refuses at the first.
    #[serde(default = "default_bad_rows")]
    pub bad_rows_limit: usize,
    /// TLS material.
    pub tls: TlsFiles,
}

fn default_aggregator() -> String {
    "https://localhost:50051".into()
}
fn default_server_name() -> String {
    "localhost".into()
}
fn default_trainer() -> String {
    "auto".into()
}
fn default_bad_rows() -> usize {
    100
}

/// Reads and parses a TOML file.
pub fn load<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid configuration in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_by_name_and_a_mismatched_input_width_is_refused() {
        assert_eq!(load_schema("diabetes130").unwrap().width(), 257);
        assert!(load_schema("/nonexistent/schema.toml").is_err());
        let text = r#"
            hospitals = ["a", "b"]
            schema = "diabetes130"
            [model]
            input_width = 250
            [tls]
            ca = "ca.pem"
            cert = "aggregator.pem"
            key = "aggregator.key"
        "#;
        let mut config: AggregatorConfig = toml::from_str(text).unwrap();
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("257"), "{error}");
        config.model.input_width = 257;
        config.validate().unwrap();
        config.apply_schema().unwrap();
        assert_eq!((config.numeric_features, config.schema_id.as_str()), (9, "diabetes130/v1"));
    }

    #[test]
    fn a_top_k_schema_sets_the_columns_and_their_slots_must_fit_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let schema = dir.path().join("wards.toml");
        std::fs::write(
            &schema,
            "id = \"wards/v1\"\nlabel = { column = \"y\", positive = [\"1\"] }\n\
             [[numeric]]\nname = \"age\"\n[[categorical]]\nname = \"ward\"\ntop_k = 4\nbuckets = 64\n",
        )
        .unwrap();
        let text = format!(
            "hospitals = [\"a\", \"b\"]\nschema = {:?}\n[model]\ninput_width = 6\n\
             [tls]\nca = \"ca.pem\"\ncert = \"a.pem\"\nkey = \"a.key\"\n",
            schema.display().to_string()
        );
        let mut config: AggregatorConfig = toml::from_str(&text).unwrap();
        config.validate().unwrap();
        config.apply_schema().unwrap();
        assert_eq!(config.top_k, [TopKShape { buckets: 64, k: 4 }]);
        let federation = config.federation_config(1 << 20);
        assert_eq!(federation.top_k_columns, [v1::TopKColumn { buckets: 64, k: 4 }]);
        config.validate().unwrap();
        // Without the schema, top_k columns whose slots exceed the input width are refused.
        config.schema = None;
        config.top_k.push(TopKShape { buckets: 8, k: 2 });
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("need 9 inputs") && error.contains("input width is 6"), "{error}");
        config.top_k = vec![TopKShape { buckets: 8, k: 9 }];
        assert!(config.validate().unwrap_err().to_string().contains("exceeds its buckets"));
    }
}
