//! TOML configuration of the two roles, with documented defaults, and the [`FederationPlan`]
//! the aggregator derives from its configuration once it is validated.
//!
//! `aggregator.toml` (every key optional except `hospitals`, `[model] input_width` and `[tls]`):
//! ```toml
//! federation_id = "fedcare"        # every message carries it
//! listen = "127.0.0.1:50051"        # port 0: any free port (the aggregator prints the one it got)
//! hospitals = ["st-marys", "general"]  # enrolled node ids (certificate names); others are refused
//! min_hospitals = 2                 # a round needs at least this many; fewer stops the federation
//! rounds = 10
//! patience = 20                     # optional: stop training after 20 evaluations without a better AUROC
//! phase_timeout_secs = 120          # a node that misses a phase deadline is dropped, the round restarts
//! join_timeout_secs = 300           # start with min_hospitals after this, or as soon as all joined
//! out_dir = "fedcare-out"           # metrics.jsonl, model.bin, aggregator.ckpt
//! eval_bins = 1024                  # bins of the encrypted score histograms (AUROC, loss; [privacy] evaluation_bins under pooled noise)
//! seed = 0                          # initial model
//! crypto_threads = 8                # optional: threads of the encrypted path (default: one per core)
//! schema = "diabetes130"            # optional: the hospitals' schema (sets numeric_features, top_k)
//! top_k_key_fingerprint = "…"       # optional: the fingerprint of the hospitals' top_k key
//! job = "train"                     # or "explore": count every column of the schema, train nothing
//! [evaluation] subgroups = ["race", "gender", "age", "payer_code"]  # the final evaluation's subgroup
//!           columns (default: the schema's own list, these four for diabetes130, but none under
//!           [privacy] pooled noise, where each costs ε; [] for none)
//!           min_cell = 10           # no subgroup of fewer rows, positives or negatives is shown
//! [tracking] mlflow = "http://mlflow:5000"   # optional: a run per federation in this MLflow server
//!           experiment = "fedcare"  # optional (default: the federation id); ca = "pki/mlflow-ca.pem" (https;
//!           default: the system's CA bundle); tensorboard = "runs": event files
//! [explore] min_cell = 10           # an exploration's reports show no count below this
//!           noise = 0.0, rows_per_patient = 1  # each hospital's discrete Gaussian noise on the pooled counts (0: exact)
//! [model]   input_width = 16, hidden = [32, 16]          # hidden = [] is logistic regression
//!           kind = "mlp" | "gbdt"   # gbdt: gradient-boosted trees ([boosting]; rounds, hidden, [training] unused)
//! [boosting] trees = 100, depth = 4, learning_rate = 0.15, lambda = 1.0, gamma = 0.0,
//!           min_child_weight = 5.0, pos_weight = 1.0, subsample = 1.0   # no patience with gbdt; under
//!           [privacy] its histograms take pooled_noise (no noise_multiplier; target_epsilon a check)
//! [training] epochs = 1, batch_size = 256, optimizer = "adam" | "sgd", learning_rate = 0.01, ...
//! [server]  rule = "fedavg" | "fedprox" | "fedadam", and that rule's settings (defaults below)
//! [privacy] target_epsilon = 8.0 (or noise_multiplier), sampling_rate = 0.02, clip_norm = 5.0, delta = 1e-6,
//!           pooled_noise = 50.0 (0: pooled statistics exact), evaluation_noise = 12.0, evaluation_bins = 16,
//!           pooled_rows_per_patient = 1
//! [tls]     ca = "pki/ca.pem", cert = "pki/aggregator.pem", key = "pki/aggregator.key"
//! ```
//! Each server rule has its own defaults: `fedavg` `lr = 1.0`; `fedprox` `lr = 1.0`,
//! `prox_mu = 0.01`; `fedadam` `lr = 0.1`, `beta1 = 0.9`, `beta2 = 0.99`, `tau = 0.01`. FedAdam's
//! step is about `lr` per parameter whatever the update's size (Reddi et al., "Adaptive
//! Federated Optimization"), so FedAvg's rate of 1.0 threw every weight far off (AUROC 0.5). With
//! τ = 0.01 small updates stay proportional (FedAvg-like) and large ones are capped near `lr`; τ =
//! 1e-3 moved weights the hospitals hardly changed as much as the others and stayed 0.010–0.016
//! below FedAvg on the default synthetic cohort, and `lr = 0.2` oscillated on the real
//! Diabetes-130 file. With these defaults FedAdam ends within 0.004 of FedAvg's AUROC on the
//! default cohort and within 0.008 on the real file split into 5 sites (10 rounds).
//!
//! The keys an environment variable may replace are [`AggregatorConfig`]'s [`EnvOverrides`].

use core::time::Duration;
use std::path::PathBuf;

use fedcare_core::explore::{ColumnSpec, DEFAULT_MIN_CELL};
use fedcare_core::privacy::accountant::SampledGaussian;
use fedcare_core::privacy::{DpSgd, PooledNoise};
use fedcare_core::{ModelSpec, OptimizerConfig, ServerOptimizerConfig, TopKShape, TrainConfig};
use fedcare_crypto::PARAMS_V2;
use serde::{Deserialize, Serialize};

pub use fedcare_net::config::{
    EnvKey, EnvOverrides, EnvValue, TlsFiles, env_key, load, load_with_env, load_with_overrides,
};
use fedcare_protocol::boosting::Boosting;
use fedcare_protocol::convert;
pub use fedcare_protocol::roster::Consortium;
use fedcare_protocol::{ContributionLayout, ExploreNoise, FederationSettings, Job, NodeId, Privacy};
pub use fedcare_protocol::{FederationPlan, JobKind};

use crate::error::ConfigError;

/// The model architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Features per row.
    pub input_width: u32,
    /// Hidden layer widths (empty: logistic regression).
    #[serde(default = "default_hidden")]
    pub hidden: Vec<u32>,
    /// A network (`hidden`) or gradient-boosted trees (`[boosting]`).
    #[serde(default)]
    pub kind: ModelKind,
}

/// What kind of model a federation trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Logistic regression or an MLP (`[model] hidden`), trained by federated averaging.
    #[default]
    Mlp,
    /// Gradient-boosted trees grown from summed histograms (`[boosting]`).
    Gbdt,
}

/// `[boosting]`: the trees of `[model] kind = "gbdt"`, every key optional (the defaults are
/// [`BoostingConfig::default`]'s).
pub use fedcare_core::gbdt::BoostingConfig;

fn default_hidden() -> Vec<u32> {
    vec![32, 16]
}

/// The hospitals' local optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LocalOptimizer {
    /// Adam (PyTorch's rules).
    #[default]
    Adam,
    /// SGD with momentum.
    Sgd,
}

/// Local training settings sent to every hospital.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingSettings {
    /// Local epochs per round.
    pub epochs: u32,
    /// Mini-batch size.
    pub batch_size: u32,
    /// The local optimizer.
    pub optimizer: LocalOptimizer,
    /// Learning rate.
    pub learning_rate: f32,
    /// SGD momentum.
    pub momentum: f32,
    /// L2 penalty on the weights.
    pub l2: f32,
    /// Positive-class weight; 0 lets each hospital balance its own classes.
    pub pos_weight: f32,
    /// Seed of the local batch order (and, mixed with each node id, of its train/test split).
    pub seed: u64,
    /// Fraction of each hospital's rows held out for evaluation.
    pub test_fraction: f32,
}

impl Default for TrainingSettings {
    fn default() -> Self {
        Self {
            epochs: 1,
            batch_size: 256,
            optimizer: LocalOptimizer::Adam,
            learning_rate: 0.01,
            momentum: 0.9,
            l2: 0.0,
            pos_weight: 0.0,
            seed: 0,
            test_fraction: 0.2,
        }
    }
}

impl TrainingSettings {
    /// The local optimizer with its learning rate.
    pub fn optimizer(&self) -> OptimizerConfig {
        match self.optimizer {
            LocalOptimizer::Adam => OptimizerConfig::adam(self.learning_rate),
            LocalOptimizer::Sgd => OptimizerConfig::Sgd { lr: self.learning_rate, momentum: self.momentum },
        }
    }
}

/// `[privacy]`: patient-level DP-SGD at every hospital ([`fedcare_core::privacy`]) and discrete
/// Gaussian noise on the pooled statistics ([`fedcare_core::privacy::PooledNoise`]), with ε of
/// both reported at `delta` after every round. Give `noise_multiplier`, or `target_epsilon` and
/// σ is chosen so that ε after every round and epoch, pooled statistics included, stays within
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// The probability that a step samples a given patient; an epoch is `round(1/q)` steps. The
    /// same for every hospital, so that ε depends on the settings alone.
    #[serde(default = "default_sampling_rate")]
    pub sampling_rate: f64,
    /// σ: the noise's standard deviation over the clip norm.
    #[serde(default)]
    pub noise_multiplier: Option<f32>,
    /// The ε the whole federation may spend (at `delta`): σ is chosen for it.
    #[serde(default)]
    pub target_epsilon: Option<f64>,
    /// The norm a patient's gradient is clipped to.
    #[serde(default = "default_clip_norm")]
    pub clip_norm: f32,
    /// δ of the reported (ε, δ): well below one over the number of patients.
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// σ_p: each hospital's discrete Gaussian noise on a setup statistic (row counts, a feature's
    /// present count, sum or sum of squares, a `top_k` column's buckets) over its sensitivity
    /// (0: every pooled statistic is decrypted exact, unprotected, and the rounds are evaluated).
    #[serde(default = "default_pooled_noise")]
    pub pooled_noise: f64,
    /// σ_e: the same for the final evaluation's score histograms.
    #[serde(default = "default_evaluation_noise")]
    pub evaluation_noise: f64,
    /// The bins of the score histograms under pooled noise (in place of `eval_bins`): every bin's
    /// noise blurs the AUROC and the calibration, so fewer bins are better.
    #[serde(default = "default_evaluation_bins")]
    pub evaluation_bins: u32,
    /// The rows of one patient each hospital counts in the pooled statistics (its first ones).
    #[serde(default = "default_pooled_rows_per_patient")]
    pub pooled_rows_per_patient: u32,
}

/// `pooled_noise`'s default. The Diabetes-130 schema's setup releases 35 statistics: at σ_p = 50
/// they cost ρ = 0.0070, and the final evaluation at σ_e = 12 ρ = 0.0035; together 60 % of what
/// ε = 1 at δ = 1e-6 allows (README, Differential privacy).
pub const DEFAULT_POOLED_NOISE: f64 = 50.0;
/// `evaluation_noise`'s default.
pub const DEFAULT_EVALUATION_NOISE: f64 = 12.0;
/// `evaluation_bins`'s default: enough for a Platt calibration and an AUROC within a few
/// hundredths on thousands of patients.
pub const DEFAULT_EVALUATION_BINS: u32 = 16;
/// `pooled_rows_per_patient`'s default: two in three Diabetes-130 patients have one encounter,
/// and counting one costs the least noise.
pub const DEFAULT_POOLED_ROWS_PER_PATIENT: u32 = 1;

fn default_pooled_noise() -> f64 {
    DEFAULT_POOLED_NOISE
}

fn default_evaluation_noise() -> f64 {
    DEFAULT_EVALUATION_NOISE
}

fn default_evaluation_bins() -> u32 {
    DEFAULT_EVALUATION_BINS
}

fn default_pooled_rows_per_patient() -> u32 {
    DEFAULT_POOLED_ROWS_PER_PATIENT
}

/// With `clip_norm` 5, the best of the settings tried on the Diabetes-130 file split into 5 sites
/// (README, Differential privacy).
fn default_sampling_rate() -> f64 {
    0.02
}

fn default_clip_norm() -> f32 {
    5.0
}

fn default_delta() -> f64 {
    1e-6
}

impl PrivacyConfig {
    /// The settings for `rounds` rounds of `epochs` local epochs, with a setup session that
    /// releases `setup_statistics` pooled statistics and a final evaluation that releases
    /// `evaluation_statistics` histograms: σ as given, or the smallest that keeps ε at `delta`
    /// (pooled statistics included) within `target_epsilon`.
    pub fn resolve(
        &self,
        rounds: u32,
        epochs: u32,
        setup_statistics: u32,
        evaluation_statistics: u32,
    ) -> core::result::Result<Privacy, ConfigError> {
        let probe = DpSgd { sampling_rate: self.sampling_rate, noise_multiplier: 1.0, clip_norm: self.clip_norm };
        probe.validate().map_err(|e| invalid("[privacy]", e.to_string(), "0 < sampling_rate <= 1, clip_norm > 0"))?;
        let pooled = self.pooled()?;
        let mut privacy =
            Privacy { dp_sgd: Some(probe), delta: self.delta, pooled, setup_statistics, evaluation_statistics };
        let pooled_rho = pooled.map_or(0.0, |p| p.rho(u64::from(setup_statistics), u64::from(evaluation_statistics)));
        let noise_multiplier = match (self.noise_multiplier, self.target_epsilon) {
            (Some(sigma), None) => sigma,
            (None, Some(target)) => {
                let steps = u64::from(rounds) * u64::from(epochs) * u64::from(probe.steps_per_epoch());
                let sigma = SampledGaussian::noise_for(target, self.sampling_rate, steps, pooled_rho, self.delta)
                    .ok_or_else(|| {
                        let pooled_epsilon = probe.mechanism().epsilon_with(0, pooled_rho, self.delta);
                        invalid(
                            "[privacy] target_epsilon",
                            target,
                            format!(
                                "an ε that {steps} steps at sampling rate {} can reach with σ ≤ 1000, beside the \
                                 pooled statistics' ε {pooled_epsilon:.3} (raise pooled_noise to spend less on them)",
                                self.sampling_rate
                            ),
                        )
                    })?;
                sigma as f32
            }
            (Some(_), Some(_)) => {
                return Err(invalid("[privacy]", "noise_multiplier and target_epsilon", "one of the two"));
            }
            (None, None) => {
                return Err(invalid("[privacy]", "neither noise_multiplier nor target_epsilon", "one of the two"));
            }
        };
        let dp_sgd = DpSgd { noise_multiplier, ..probe };
        dp_sgd.validate().map_err(|e| invalid("[privacy] noise_multiplier", noise_multiplier, e.to_string()))?;
        privacy.dp_sgd = Some(dp_sgd);
        Ok(privacy)
    }

    /// The settings for boosted trees grown in `rounds` sessions: no DP-SGD, the pooled noise on
    /// the setup's statistics, every level's histograms and the final evaluation
    /// ([`fedcare_protocol::boosting`]). Refuses `noise_multiplier` (DP-SGD's), `pooled_noise` 0
    /// (the histograms would be exact) and an ε over `target_epsilon`, naming the
    /// `pooled_noise` that would keep within it.
    pub fn resolve_boosting(
        &self,
        rounds: u32,
        setup_statistics: u32,
        evaluation_statistics: u32,
    ) -> core::result::Result<Privacy, ConfigError> {
        if self.noise_multiplier.is_some() {
            return Err(invalid(
                "[privacy] noise_multiplier",
                "with [model] kind = \"gbdt\"",
                "none: it is DP-SGD's; boosted trees' histograms take pooled_noise",
            ));
        }
        let Some(pooled) = self.pooled()? else {
            return Err(invalid(
                "[privacy] pooled_noise",
                0,
                "above 0 with [model] kind = \"gbdt\": it is the noise on the trees' histograms",
            ));
        };
        let privacy = |multiplier| Privacy {
            dp_sgd: None,
            delta: self.delta,
            pooled: Some(PooledNoise { multiplier, ..pooled }),
            setup_statistics,
            evaluation_statistics,
        };
        let epsilon = privacy(pooled.multiplier).epsilon_after(rounds, 1);
        if let Some(target) = self.target_epsilon.filter(|&target| epsilon > target) {
            // ε falls as σ_p grows: the smallest σ_p within the target, to 0.1 %, by bisection.
            let within = |sigma| privacy(sigma).epsilon_after(rounds, 1) <= target;
            let (mut low, mut high) = (pooled.multiplier, 1e6);
            let fits = if within(high) {
                while high / low > 1.001 {
                    let middle = (low * high).sqrt();
                    if within(middle) { high = middle } else { low = middle }
                }
                format!("pooled_noise ≥ {} keeps within it", significant(high))
            } else {
                "no pooled_noise keeps within it (the final evaluation's noise alone exceeds it)".into()
            };
            return Err(invalid(
                "[privacy] target_epsilon",
                target,
                format!(
                    "at least the ε {epsilon:.3} of {rounds} boosting sessions at pooled_noise {} (δ {:e}): {fits}",
                    pooled.multiplier, self.delta
                ),
            ));
        }
        Ok(privacy(pooled.multiplier))
    }

    /// The pooled noise (`None`: `pooled_noise` 0), checked with `delta`.
    fn pooled(&self) -> core::result::Result<Option<PooledNoise>, ConfigError> {
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(invalid("[privacy] delta", self.delta, "between 0 and 1 (exclusive), well below 1/patients"));
        }
        let pooled = (self.pooled_noise != 0.0).then_some(PooledNoise {
            multiplier: self.pooled_noise,
            evaluation_multiplier: self.evaluation_noise,
            rows_per_patient: self.pooled_rows_per_patient,
        });
        if let Some(pooled) = pooled {
            pooled.validate().map_err(|e| {
                invalid(
                    "[privacy]",
                    e.to_string(),
                    "pooled_noise > 0 (or 0: off), evaluation_noise > 0, pooled_rows_per_patient >= 1",
                )
            })?;
        }
        Ok(pooled)
    }
}

/// `value` to three significant digits, for messages.
fn significant(value: f64) -> String {
    let decimals = (2 - value.abs().log10().floor() as i32).max(0) as usize;
    format!("{value:.decimals$}")
}

/// FedAvg's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FedAvgSettings {
    /// Server learning rate (1.0: the plain weighted mean).
    pub lr: f32,
}

impl Default for FedAvgSettings {
    fn default() -> Self {
        Self { lr: 1.0 }
    }
}

/// FedProx's settings: FedAvg on the server, a proximal term in local training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FedProxSettings {
    /// Server learning rate.
    pub lr: f32,
    /// The proximal coefficient `μ` of local training.
    pub prox_mu: f32,
}

impl Default for FedProxSettings {
    fn default() -> Self {
        Self { lr: 1.0, prox_mu: 0.01 }
    }
}

/// FedAdam's settings (Reddi et al. 2021).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FedAdamSettings {
    /// Server learning rate `η`.
    pub lr: f32,
    /// First-moment decay `β1`.
    pub beta1: f32,
    /// Second-moment decay `β2`.
    pub beta2: f32,
    /// Adaptivity `τ`.
    pub tau: f32,
}

impl Default for FedAdamSettings {
    fn default() -> Self {
        Self { lr: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-2 }
    }
}

/// The server-side update rule, each with its own defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "lowercase")]
pub enum ServerRule {
    /// FedAvg: `θ ← θ + lr · mean update`.
    FedAvg(FedAvgSettings),
    /// FedAvg with a proximal term in the hospitals' local training.
    FedProx(FedProxSettings),
    /// Adam on the server with the mean update as pseudo-gradient.
    FedAdam(FedAdamSettings),
}

impl Default for ServerRule {
    fn default() -> Self {
        Self::FedAvg(FedAvgSettings::default())
    }
}

impl ServerRule {
    /// The rule with its default settings: `fedavg`, `fedprox` or `fedadam`.
    pub fn named(name: &str) -> core::result::Result<Self, ConfigError> {
        match name {
            "fedavg" => Ok(Self::FedAvg(FedAvgSettings::default())),
            "fedprox" => Ok(Self::FedProx(FedProxSettings::default())),
            "fedadam" => Ok(Self::FedAdam(FedAdamSettings::default())),
            other => Err(ConfigError::Invalid {
                key: "rule",
                value: format!("{other:?}"),
                expected: "one of \"fedavg\", \"fedprox\", \"fedadam\"".into(),
            }),
        }
    }

    /// The same rule with the server learning rate `lr` instead of its own.
    pub fn with_learning_rate(mut self, lr: f32) -> Self {
        match &mut self {
            Self::FedAvg(settings) => settings.lr = lr,
            Self::FedProx(settings) => settings.lr = lr,
            Self::FedAdam(settings) => settings.lr = lr,
        }
        self
    }

    /// The server optimizer's configuration.
    pub fn server_optimizer(&self) -> ServerOptimizerConfig {
        match *self {
            Self::FedAvg(FedAvgSettings { lr }) | Self::FedProx(FedProxSettings { lr, .. }) => {
                ServerOptimizerConfig::FedAvg { lr }
            }
            Self::FedAdam(FedAdamSettings { lr, beta1, beta2, tau }) => {
                ServerOptimizerConfig::FedAdam { lr, beta1, beta2, tau }
            }
        }
    }

    /// The proximal coefficient of local training (0 but for FedProx).
    pub fn prox_mu(&self) -> f32 {
        match self {
            Self::FedProx(settings) => settings.prox_mu,
            Self::FedAvg(_) | Self::FedAdam(_) => 0.0,
        }
    }
}

/// `aggregator.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorConfig {
    /// Every message carries it.
    #[serde(default = "default_federation_id")]
    pub federation_id: String,
    /// Address to listen on (port 0: any free port).
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
    /// Stop training once this many evaluations in a row found no better secure held-out AUROC
    /// than the best model's (`None`: train every round). Either way the best model is kept.
    #[serde(default)]
    pub patience: Option<u32>,
    /// Seconds a node has for each phase.
    #[serde(default = "default_phase_timeout")]
    pub phase_timeout_secs: u64,
    /// Seconds to wait for hospitals to join.
    #[serde(default = "default_join_timeout")]
    pub join_timeout_secs: u64,
    /// Where metrics, the model and the checkpoint are written.
    #[serde(default = "default_out_dir")]
    pub out_dir: PathBuf,
    /// Seed of the initial model.
    #[serde(default)]
    pub seed: u64,
    /// Threads of the encrypted path (aggregation, combination); `None`: one per core. The
    /// results are the same whatever the number.
    #[serde(default)]
    pub crypto_threads: Option<core::num::NonZeroUsize>,
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
    /// The hospitals' data schema: `"diabetes130"`, `"diabetes130-all"`, or the path of a schema
    /// TOML file. The aggregator never reads patient data: whoever starts it resolves the name
    /// into `numeric_features`, `top_k` and `schema_id` (`fedcare serve` does).
    #[serde(default)]
    pub schema: Option<String>,
    /// The fingerprint of the consortium's `top_k` key (`fedcare top-k-key` prints it; never the
    /// key: the aggregator does not hold it). With `schema`, a schema with `top_k` columns is
    /// named with it, so hospitals with another key, or none, are refused.
    #[serde(default)]
    pub top_k_key_fingerprint: Option<String>,
    /// Architecture.
    pub model: ModelConfig,
    /// `[boosting]`: the trees, when `[model] kind = "gbdt"`.
    #[serde(default)]
    pub boosting: BoostingConfig,
    /// Each numeric input's bin edges from the schema ([`Self::apply_schema`]; empty: none, the
    /// trees' bins are then at the pooled quantiles the base session measures).
    #[serde(skip)]
    pub numeric_edges: Vec<Vec<f64>>,
    /// Local training.
    #[serde(default)]
    pub training: TrainingSettings,
    /// Server rule.
    #[serde(default)]
    pub server: ServerRule,
    /// TLS material.
    pub tls: TlsFiles,
    /// Health, metrics and lifetime of the process (`[operations]`; all off by default).
    #[serde(default)]
    pub operations: Operations,
    /// What the federation is for: training (the default) or exploring the data.
    #[serde(default)]
    pub job: JobKind,
    /// `[explore]`: an exploration's settings.
    #[serde(default)]
    pub explore: ExploreSettings,
    /// `[evaluation]`: the final evaluation's subgroups.
    #[serde(default)]
    pub evaluation: EvaluationSettings,
    /// `[tracking]`: an MLflow tracking server and TensorBoard event files (both off by default).
    #[serde(default)]
    pub tracking: TrackingSettings,
    /// DP-SGD at every hospital (`[privacy]`; absent: off).
    #[serde(default)]
    pub privacy: Option<PrivacyConfig>,
}

/// `[explore]` of `aggregator.toml`, and the schema's columns an exploration counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExploreSettings {
    /// The smallest pooled count a report shows (at least 1).
    #[serde(default = "default_min_cell")]
    pub min_cell: u64,
    /// The schema's columns (set from `schema`, never read from the file).
    #[serde(skip)]
    pub columns: Vec<ColumnSpec>,
    /// What the label's positives are (set from `schema`).
    #[serde(skip)]
    pub label: String,
    /// Each hospital's discrete Gaussian noise on the pooled statistics (the setup's and the
    /// exploration's counts) over their sensitivity, `σ` (0: exact). A hospital with a privacy
    /// budget takes part only in an exploration with noise, and charges it.
    #[serde(default)]
    pub noise: f64,
    /// The rows of one patient each hospital counts under that noise (its first ones).
    #[serde(default = "default_explore_rows_per_patient")]
    pub rows_per_patient: u32,
}

/// `[tracking]` of `aggregator.toml`: where the federation's parameters, each session's metrics
/// and, at the end, its files are recorded besides `metrics.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackingSettings {
    /// An MLflow tracking server (`http://host:5000`): a run per federation
    /// ([`crate::tracking`]). A server that is down never stops or slows the federation.
    #[serde(default)]
    pub mlflow: Option<String>,
    /// The MLflow experiment (default: the federation id).
    #[serde(default)]
    pub experiment: Option<String>,
    /// The CA certificates (PEM) an `https` MLflow server is checked against (default: the
    /// system's bundle).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// A folder for TensorBoard event files ([`crate::tensorboard`]).
    #[serde(default)]
    pub tensorboard: Option<PathBuf>,
}

/// `[evaluation]` of `aggregator.toml`: the subgroups the final evaluation measures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationSettings {
    /// The subgroup columns by name (`None`: the schema's own list, or none under pooled noise,
    /// where each column costs ε; empty: none).
    #[serde(default)]
    pub subgroups: Option<Vec<String>>,
    /// The smallest subgroup (rows, positives and negatives) whose figures are shown.
    #[serde(default = "default_min_cell")]
    pub min_cell: u64,
    /// The subgroup columns resolved from `schema` (never read from the file).
    #[serde(skip)]
    pub columns: Vec<ColumnSpec>,
}

impl Default for EvaluationSettings {
    fn default() -> Self {
        Self { subgroups: None, min_cell: DEFAULT_MIN_CELL, columns: Vec::new() }
    }
}

impl Default for ExploreSettings {
    fn default() -> Self {
        Self {
            min_cell: DEFAULT_MIN_CELL,
            columns: Vec::new(),
            label: String::new(),
            noise: 0.0,
            rows_per_patient: default_explore_rows_per_patient(),
        }
    }
}

fn default_explore_rows_per_patient() -> u32 {
    1
}

fn default_min_cell() -> u64 {
    DEFAULT_MIN_CELL
}

/// `[operations]` of `aggregator.toml`: what a container deployment or a monitoring system
/// needs of the aggregator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operations {
    /// Address of the plaintext `grpc.health.v1` endpoint (`fedcare health` asks it). It
    /// answers only whether the aggregator serves: no data, no identity.
    #[serde(default)]
    pub health_listen: Option<String>,
    /// Address of the Prometheus metrics endpoint (HTTP, `GET /metrics`).
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// After the federation ends, keep the health and metrics endpoints up until a signal
    /// instead of exiting (a container service stays up, its figures readable, and a restart
    /// policy does not start it again).
    #[serde(default)]
    pub keep_serving: bool,
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

/// The shape a schema gives a federation: what the aggregator needs of it without reading it.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaShape {
    /// The schema's id.
    pub id: String,
    /// Model inputs.
    pub width: usize,
    /// Numeric columns.
    pub numeric: usize,
    /// Each numeric column's bin edges (empty: none), in input order.
    pub numeric_edges: Vec<Vec<f64>>,
    /// The `top_k` columns' shapes.
    pub top_k: Vec<TopKShape>,
    /// The columns an exploration counts.
    pub explore: Vec<ColumnSpec>,
    /// What the label's positives are.
    pub label: String,
    /// The schema's own subgroup columns (by name).
    pub subgroups: Vec<String>,
}

fn invalid(key: &'static str, value: impl ToString, expected: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key, value: value.to_string(), expected: expected.into() }
}

impl AggregatorConfig {
    /// Sets `numeric_features`, `top_k` and `schema_id` from the schema's shape, refusing a model
    /// input width that differs from the schema's.
    pub fn apply_schema(&mut self, shape: &SchemaShape) -> core::result::Result<(), ConfigError> {
        if self.model.input_width as usize != shape.width {
            return Err(invalid(
                "[model] input_width",
                self.model.input_width,
                format!("the {} schema has {} inputs", shape.id, shape.width),
            ));
        }
        self.numeric_features = shape.numeric as u32;
        self.numeric_edges = shape.numeric_edges.clone();
        self.top_k = shape.top_k.clone();
        self.schema_id = match &self.top_k_key_fingerprint {
            Some(fingerprint) if !shape.top_k.is_empty() => {
                if fingerprint.len() != 16 || !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(invalid(
                        "top_k_key_fingerprint",
                        format!("{fingerprint:?}"),
                        "16 hex digits, as `fedcare top-k-key` prints it",
                    ));
                }
                fedcare_core::top_k::keyed_schema_id(&shape.id, fingerprint)
            }
            _ => shape.id.clone(),
        };
        self.explore.columns = shape.explore.clone();
        self.explore.label = shape.label.clone();
        let names = self.evaluation.subgroups.as_ref().unwrap_or(&shape.subgroups);
        self.evaluation.columns = names
            .iter()
            .map(|name| {
                shape.explore.iter().find(|c| &c.name == name).cloned().ok_or_else(|| {
                    let columns: Vec<&str> = shape.explore.iter().map(|c| c.name.as_str()).collect();
                    invalid("[evaluation] subgroups", name, format!("columns of the {} schema: {columns:?}", shape.id))
                })
            })
            .collect::<core::result::Result<_, _>>()?;
        Ok(())
    }

    /// The trees of `[model] kind = "gbdt"` (`None` for a network): `[boosting]`'s settings and
    /// each numeric input's thresholds (its schema edges inside their range). Refuses boosting
    /// with `patience` (every tree is grown) or in an exploration.
    fn boosting_plan(&self) -> core::result::Result<Option<Boosting>, ConfigError> {
        if self.model.kind != ModelKind::Gbdt {
            return Ok(None);
        }
        if self.patience.is_some() {
            return Err(invalid(
                "patience",
                "with [model] kind = \"gbdt\"",
                "no patience: every tree is grown (the best ensemble evaluated is kept)",
            ));
        }
        if self.job != JobKind::Train {
            return Err(invalid("[model] kind", "gbdt", "a training job"));
        }
        let config = self.boosting;
        config.validate()?;
        let numeric_thresholds = (0..self.numeric_features as usize)
            .map(|input| match self.numeric_edges.get(input) {
                Some(edges) if edges.len() > 2 => edges[1..edges.len() - 1].to_vec(),
                _ => Vec::new(),
            })
            .collect();
        Ok(Some(Boosting { config, numeric_thresholds }))
    }

    /// The validated plan of the federation this configuration describes.
    pub fn plan(&self) -> core::result::Result<FederationPlan, ConfigError> {
        if self.hospitals.is_empty() {
            return Err(invalid("hospitals", "[]", "list the enrolled hospitals"));
        }
        let hospitals = self.hospitals.iter().map(NodeId::new).collect::<core::result::Result<Vec<_>, _>>()?;
        let mut unique = hospitals.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != hospitals.len() {
            return Err(invalid("hospitals", format!("{:?}", self.hospitals), "distinct names"));
        }
        let max_parties = PARAMS_V2.max_parties.0;
        if hospitals.len() > max_parties {
            return Err(invalid("hospitals", hospitals.len(), format!("at most {max_parties} hospitals")));
        }
        if self.min_hospitals < 2 {
            return Err(invalid(
                "min_hospitals",
                self.min_hospitals,
                "at least 2 (one hospital's update is not a sum)",
            ));
        }
        if self.min_hospitals as usize > hospitals.len() {
            return Err(invalid(
                "min_hospitals",
                self.min_hospitals,
                format!("at most the {} enrolled hospitals", hospitals.len()),
            ));
        }
        if self.rounds == 0 {
            return Err(invalid("rounds", 0, "at least 1"));
        }
        if self.patience == Some(0) {
            return Err(invalid("patience", 0, "at least 1 (leave it out to train every round)"));
        }
        if !(2..=4096).contains(&self.eval_bins) {
            return Err(invalid("eval_bins", self.eval_bins, "2 to 4096"));
        }
        if self.phase_timeout_secs == 0 {
            return Err(invalid("phase_timeout_secs", 0, "at least 1"));
        }
        let t = &self.training;
        if !(t.test_fraction > 0.0 && t.test_fraction < 1.0) {
            return Err(invalid("[training] test_fraction", t.test_fraction, "between 0 and 1 (exclusive)"));
        }
        if t.epochs == 0 {
            return Err(invalid("[training] epochs", 0, "at least 1"));
        }
        if t.batch_size == 0 {
            return Err(invalid("[training] batch_size", 0, "at least 1"));
        }
        for shape in &self.top_k {
            shape.validate()?;
        }
        let fixed = u64::from(self.numeric_features) + self.top_k.iter().map(|s| u64::from(s.k) + 1).sum::<u64>();
        if fixed > u64::from(self.model.input_width) {
            return Err(invalid(
                "[model] input_width",
                self.model.input_width,
                format!(
                    "at least {fixed}: numeric_features ({}) and the top_k columns' slots need {fixed} inputs",
                    self.numeric_features
                ),
            ));
        }
        let hidden: Vec<usize> = self.model.hidden.iter().map(|&h| h as usize).collect();
        let boosting = self.boosting_plan()?;
        let spec = match boosting {
            // The trees' inputs are the network's; the spec says their width.
            Some(_) => ModelSpec::logistic_regression(self.model.input_width as usize)?,
            None => ModelSpec::mlp(self.model.input_width as usize, &hidden)?,
        };
        t.optimizer().validate()?;
        let server = self.server.server_optimizer();
        fedcare_core::ServerOptimizer::new(server, 0)?;
        let codec = PARAMS_V2.codec_config();
        PARAMS_V2.check_codec(&codec)?;
        let job = match self.job {
            JobKind::Train => Job::Train,
            JobKind::Explore => {
                if self.explore.columns.is_empty() {
                    return Err(invalid(
                        "job",
                        "explore",
                        "a schema: an exploration counts the schema's columns (set `schema`)",
                    ));
                }
                if self.explore.min_cell == 0 {
                    return Err(invalid("[explore] min_cell", 0, "at least 1"));
                }
                for column in &self.explore.columns {
                    column.validate().map_err(|e| invalid("schema", &column.name, e.to_string()))?;
                }
                let explore = &self.explore;
                if !(explore.noise.is_finite() && explore.noise >= 0.0) {
                    return Err(invalid("[explore] noise", explore.noise, "0 (exact) or a positive multiplier"));
                }
                if explore.rows_per_patient == 0 {
                    return Err(invalid("[explore] rows_per_patient", 0, "at least 1"));
                }
                let noise = (explore.noise > 0.0)
                    .then_some(ExploreNoise { multiplier: explore.noise, rows_per_patient: explore.rows_per_patient });
                Job::Explore { min_cell: explore.min_cell, label: explore.label.clone(), noise }
            }
        };
        let evaluation = &self.evaluation;
        // Under pooled noise every subgroup column costs ε: measured only when named.
        let pooled_noise = job == Job::Train && self.privacy.as_ref().is_some_and(|p| p.pooled_noise != 0.0);
        let subgroups = match &evaluation.subgroups {
            None if pooled_noise => Vec::new(),
            _ => evaluation.columns.clone(),
        };
        if evaluation.columns.is_empty() && evaluation.subgroups.as_ref().is_some_and(|names| !names.is_empty()) {
            return Err(invalid(
                "[evaluation] subgroups",
                format!("{:?}", evaluation.subgroups),
                "a schema whose columns they are (set `schema`)",
            ));
        }
        if evaluation.min_cell == 0 {
            return Err(invalid("[evaluation] min_cell", 0, "at least 1"));
        }
        if subgroups.len() > convert::MAX_SUBGROUP_COLUMNS {
            return Err(invalid(
                "[evaluation] subgroups",
                subgroups.len(),
                format!("at most {} columns", convert::MAX_SUBGROUP_COLUMNS),
            ));
        }
        for column in &subgroups {
            convert::check_subgroup_column(column)
                .map_err(|e| invalid("[evaluation] subgroups", &column.name, e.to_string()))?;
        }
        let mut layout = ContributionLayout {
            params: spec.param_count(),
            bins: self.eval_bins as usize,
            numeric: self.numeric_features as usize,
            top_k: self.top_k.clone(),
            explore: if job == Job::Train { Vec::new() } else { self.explore.columns.clone() },
            subgroups: if job == Job::Train { subgroups } else { Vec::new() },
        };
        let privacy = match (&self.privacy, &job) {
            (Some(config), Job::Train) => {
                let (setup, evaluation) = (layout.setup_statistics(), layout.evaluation_statistics());
                let privacy = match &boosting {
                    Some(b) => config.resolve_boosting(b.rounds(), setup, evaluation)?,
                    None => config.resolve(self.rounds, t.epochs, setup, evaluation)?,
                };
                if !privacy.evaluates_rounds() {
                    if self.patience.is_some() {
                        return Err(invalid(
                            "patience",
                            "with [privacy] pooled_noise",
                            "no patience (with pooled noise the rounds are not evaluated: set pooled_noise = 0 to \
                             evaluate them exactly, unprotected)",
                        ));
                    }
                    if !(2..=4096).contains(&config.evaluation_bins) {
                        return Err(invalid("[privacy] evaluation_bins", config.evaluation_bins, "2 to 4096"));
                    }
                    layout.bins = config.evaluation_bins as usize;
                }
                Some(privacy)
            }
            (Some(_), Job::Explore { .. }) => {
                return Err(invalid("[privacy]", "an exploration", "a training job (an exploration trains nothing)"));
            }
            (None, _) => None,
        };
        let max_upload_bytes = match &boosting {
            Some(b) => layout
                .max_upload_bytes()
                .max(ContributionLayout::upload_bytes(b.longest(self.model.input_width as usize, &layout))),
            None => layout.max_upload_bytes(),
        };
        let train = TrainConfig {
            epochs: t.epochs,
            batch_size: t.batch_size as usize,
            optimizer: t.optimizer(),
            pos_weight: t.pos_weight,
            l2: t.l2,
            prox_mu: self.server.prox_mu(),
            seed: t.seed,
        };
        let mut settings = FederationSettings {
            federation_id: self.federation_id.clone(),
            spec,
            codec,
            train,
            layout,
            min_hospitals: self.min_hospitals as usize,
            max_upload_bytes,
            test_fraction: t.test_fraction,
            schema_id: self.schema_id.clone(),
            rounds: boosting.as_ref().map_or(self.rounds, Boosting::rounds),
            patience: self.patience,
            server,
            job,
            privacy,
            subgroup_min_cell: evaluation.min_cell,
            boosting,
            digest: fedcare_protocol::SettingsDigest([0; 32]),
        };
        settings.digest = convert::settings_digest(&settings);
        Ok(FederationPlan {
            settings,
            hospitals,
            seed: self.seed,
            join_timeout: Duration::from_secs(self.join_timeout_secs),
            phase_timeout: Duration::from_secs(self.phase_timeout_secs),
        })
    }
}

impl EnvOverrides for AggregatorConfig {
    const ENV: &'static [EnvKey] = &[
        env_key("FEDCARE_FEDERATION_ID", "federation_id", EnvValue::Text),
        env_key("FEDCARE_LISTEN", "listen", EnvValue::Text),
        env_key("FEDCARE_HOSPITALS", "hospitals", EnvValue::List),
        env_key("FEDCARE_OUT_DIR", "out_dir", EnvValue::Text),
        env_key("FEDCARE_HEALTH_LISTEN", "operations.health_listen", EnvValue::Text),
        env_key("FEDCARE_METRICS_LISTEN", "operations.metrics_listen", EnvValue::Text),
        env_key("FEDCARE_KEEP_SERVING", "operations.keep_serving", EnvValue::Bool),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> core::result::Result<AggregatorConfig, toml::de::Error> {
        toml::from_str(&format!(
            "hospitals = [\"a\", \"b\"]\n{extra}\n[model]\ninput_width = 6\n\
             [tls]\nca = \"ca.pem\"\ncert = \"a.pem\"\nkey = \"a.key\"\n"
        ))
    }

    #[test]
    fn an_exploration_takes_noise_and_travels_with_it() {
        let shape = SchemaShape {
            id: "wards/v1".into(),
            width: 6,
            numeric: 0,
            numeric_edges: Vec::new(),
            top_k: Vec::new(),
            explore: vec![ColumnSpec {
                name: "ward".into(),
                kind: fedcare_core::explore::ColumnKind::Categorical { categories: 3, labels: Vec::new() },
            }],
            label: "died = yes".into(),
            subgroups: Vec::new(),
        };
        let explore = |extra: &str| {
            let mut config = config(&format!("job = \"explore\"\n[explore]\n{extra}")).unwrap();
            config.apply_schema(&shape).unwrap();
            config.plan()
        };
        let exact = explore("").unwrap().settings;
        assert!(matches!(exact.job, Job::Explore { noise: None, min_cell: 10, .. }), "{:?}", exact.job);
        let noisy = explore("noise = 20.0\nrows_per_patient = 3").unwrap().settings;
        let noise = ExploreNoise { multiplier: 20.0, rows_per_patient: 3 };
        assert!(matches!(noisy.job, Job::Explore { noise: Some(n), .. } if n == noise), "{:?}", noisy.job);
        assert_eq!(noisy.pooled_noise(), Some(noise.pooled()), "the setup session gets the same noise");
        let received = convert::settings_from_proto(&convert::settings_to_proto(&noisy)).unwrap();
        assert_eq!(received.job, noisy.job, "the hospitals receive the noise");
        assert_ne!(convert::settings_digest(&noisy), convert::settings_digest(&exact), "their transcripts cover it");
        for (extra, key) in
            [("noise = -1.0", "[explore] noise"), ("noise = 2.0\nrows_per_patient = 0", "rows_per_patient")]
        {
            let error = explore(extra).unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
        }
    }

    #[test]
    fn the_schemas_subgroups_are_the_default_and_named_ones_are_checked() {
        use fedcare_core::explore::ColumnKind;
        let ward =
            ColumnSpec { name: "ward".into(), kind: ColumnKind::Categorical { categories: 3, labels: Vec::new() } };
        let age =
            ColumnSpec { name: "age".into(), kind: ColumnKind::Numeric { edges: vec![0.0, 50.0, 100.0], bins: 20 } };
        let code =
            ColumnSpec { name: "code".into(), kind: ColumnKind::Categorical { categories: 1024, labels: Vec::new() } };
        let shape = SchemaShape {
            id: "wards/v1".into(),
            width: 6,
            numeric: 1,
            numeric_edges: vec![Vec::new()],
            top_k: Vec::new(),
            explore: vec![age.clone(), ward.clone(), code],
            label: "died = yes".into(),
            subgroups: vec!["ward".into()],
        };
        let plan = |extra: &str| {
            let mut config = config(extra).unwrap();
            config.apply_schema(&shape)?;
            config.plan()
        };
        let default = plan("").unwrap().settings;
        assert_eq!((default.layout.subgroups.as_slice(), default.subgroup_min_cell), (&[ward.clone()][..], 10));
        let none = plan("[evaluation]\nsubgroups = []").unwrap().settings;
        assert!(none.layout.subgroups.is_empty());
        assert!(
            none.layout.len(fedcare_protocol::SessionKind::Evaluate)
                < default.layout.len(fedcare_protocol::SessionKind::Evaluate)
        );
        let named = plan("[evaluation]\nsubgroups = [\"age\", \"ward\"]\nmin_cell = 20").unwrap().settings;
        assert_eq!((named.layout.subgroups, named.subgroup_min_cell), (vec![age, ward], 20));
        // Under pooled noise each column costs ε: none unless named.
        let private = plan("[privacy]\ntarget_epsilon = 8.0").unwrap().settings;
        assert!(private.layout.subgroups.is_empty());
        assert_eq!(private.privacy.unwrap().evaluation_statistics, 1);
        let named = plan("[evaluation]\nsubgroups = [\"ward\"]\n[privacy]\ntarget_epsilon = 8.0").unwrap().settings;
        assert_eq!((named.layout.subgroups.len(), named.privacy.unwrap().evaluation_statistics), (1, 2));
        for (extra, expected) in [
            ("[evaluation]\nsubgroups = [\"sex\"]", "columns of the wards/v1 schema"),
            ("[evaluation]\nsubgroups = [\"code\"]", "at most 64 cells"),
            ("[evaluation]\nmin_cell = 0", "at least 1"),
        ] {
            let error = plan(extra).unwrap_err().to_string();
            assert!(error.contains("[evaluation]") && error.contains(expected), "{error}");
        }
    }

    #[test]
    fn a_schema_sets_the_columns_and_a_mismatched_width_is_refused() {
        let mut config = config("").unwrap();
        let shape = SchemaShape {
            id: "wards/v1".into(),
            width: 6,
            numeric: 1,
            numeric_edges: vec![Vec::new()],
            top_k: vec![TopKShape { buckets: 64, k: 4 }],
            explore: Vec::new(),
            label: "died = yes".into(),
            subgroups: Vec::new(),
        };
        config.apply_schema(&shape).unwrap();
        assert_eq!((config.numeric_features, config.schema_id.as_str()), (1, "wards/v1"));
        assert_eq!(config.top_k, [TopKShape { buckets: 64, k: 4 }]);
        config.plan().unwrap();
        // The hospitals' top_k key names the schema by its fingerprint; a malformed one is refused.
        let mut keyed = config.clone();
        keyed.top_k_key_fingerprint = Some("7f0b1803d3bbb335".into());
        keyed.apply_schema(&shape).unwrap();
        assert_eq!(keyed.schema_id, "wards/v1+top_k-key:7f0b1803d3bbb335");
        keyed.top_k_key_fingerprint = Some("the key itself".into());
        let error = keyed.apply_schema(&shape).unwrap_err().to_string();
        assert!(error.contains("top_k_key_fingerprint") && error.contains("16 hex digits"), "{error}");
        let wide = SchemaShape { width: 257, ..shape };
        let error = config.apply_schema(&wide).unwrap_err().to_string();
        assert!(error.contains("input_width = 6") && error.contains("257"), "{error}");
        // top_k columns whose slots exceed the input width are refused.
        config.top_k.push(TopKShape { buckets: 8, k: 2 });
        let error = config.plan().unwrap_err().to_string();
        assert!(error.contains("need 9 inputs") && error.contains("input_width = 6"), "{error}");
        config.top_k = vec![TopKShape { buckets: 8, k: 9 }];
        assert!(config.plan().unwrap_err().to_string().contains("exceeds its buckets"));
    }

    #[test]
    fn each_server_rule_has_its_own_defaults_and_unknown_names_list_the_valid_ones() {
        assert_eq!(config("").unwrap().server, ServerRule::FedAvg(FedAvgSettings { lr: 1.0 }));
        let adam = config("[server]\nrule = \"fedadam\"").unwrap().server;
        assert_eq!(adam, ServerRule::FedAdam(FedAdamSettings { lr: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-2 }));
        let tuned = config("[server]\nrule = \"fedadam\"\nlr = 0.03").unwrap().server;
        assert_eq!(tuned, ServerRule::FedAdam(FedAdamSettings { lr: 0.03, ..FedAdamSettings::default() }));
        let prox = config("[server]\nrule = \"fedprox\"\nprox_mu = 0.1").unwrap().server;
        assert_eq!(prox.prox_mu(), 0.1);
        assert_eq!(prox.server_optimizer(), ServerOptimizerConfig::FedAvg { lr: 1.0 });
        let error = config("[server]\nrule = \"fedsgd\"").unwrap_err().to_string();
        assert!(error.contains("fedavg") && error.contains("fedprox") && error.contains("fedadam"), "{error}");
        let error = config("[server]\nrule = \"fedavg\"\ntau = 0.1").unwrap_err().to_string();
        assert!(error.contains("tau"), "a setting of another rule is refused: {error}");
        let error = config("[training]\noptimizer = \"adagrad\"").unwrap_err().to_string();
        assert!(error.contains("adam") && error.contains("sgd"), "{error}");
        assert_eq!(ServerRule::named("fedadam").unwrap(), adam);
        assert!(ServerRule::named("other").unwrap_err().to_string().contains("\"fedavg\""));
    }

    #[test]
    fn bad_settings_are_refused_with_the_value() {
        for (extra, expected) in [
            ("min_hospitals = 1", "min_hospitals = 1"),
            ("min_hospitals = 3", "at most the 2 enrolled"),
            ("rounds = 0", "rounds = 0"),
            ("patience = 0", "leave it out to train every round"),
            ("eval_bins = 1", "eval_bins = 1"),
            ("[training]\ntest_fraction = 1.0", "test_fraction = 1"),
            ("[training]\nlearning_rate = -1.0", "lr = -1"),
        ] {
            let error = config(extra).unwrap().plan().unwrap_err().to_string();
            assert!(error.contains(expected), "{extra}: {error}");
        }
        let mut names = config("").unwrap();
        names.hospitals = vec!["a".into(), "bad name".into()];
        assert_eq!(names.plan().unwrap_err(), ConfigError::Name("bad name".into()));
        names.hospitals = vec!["a".into(), "a".into()];
        assert!(names.plan().unwrap_err().to_string().contains("distinct"));
    }

    #[test]
    fn privacy_takes_a_noise_multiplier_or_finds_one_for_a_target_epsilon() {
        let plan = config("rounds = 5\n[privacy]\nnoise_multiplier = 1.5").unwrap().plan().unwrap();
        let privacy = plan.settings.privacy.unwrap();
        assert_eq!(privacy.dp_sgd, Some(DpSgd { sampling_rate: 0.02, noise_multiplier: 1.5, clip_norm: 5.0 }));
        assert_eq!(privacy.delta, 1e-6);
        let plan = config("rounds = 5\n[privacy]\ntarget_epsilon = 3.0\nsampling_rate = 0.02").unwrap().plan().unwrap();
        let privacy = plan.settings.privacy.unwrap();
        // 5 rounds of one epoch of 50 steps.
        let spent = privacy.epsilon_after(5, 1);
        assert!(spent <= 3.0 && spent > 2.9, "{spent}");
        for (extra, expected) in [
            ("[privacy]", "one of the two"),
            ("[privacy]\nnoise_multiplier = 1.0\ntarget_epsilon = 2.0", "one of the two"),
            ("[privacy]\nnoise_multiplier = 1.0\ndelta = 1.0", "delta"),
            ("[privacy]\nnoise_multiplier = 1.0\nsampling_rate = 0.0", "sampling_rate"),
            ("[privacy]\nnoise_multiplier = 0.0", "noise_multiplier"),
            ("[privacy]\ntarget_epsilon = 0.000001", "target_epsilon"),
            ("patience = 3\n[privacy]\nnoise_multiplier = 1.0", "not evaluated"),
            ("[privacy]\nnoise_multiplier = 1.0\npooled_noise = -1.0", "pooled_noise"),
            ("[privacy]\nnoise_multiplier = 1.0\npooled_rows_per_patient = 0", "pooled_rows_per_patient"),
        ] {
            let error = config(extra).unwrap().plan().unwrap_err().to_string();
            assert!(error.contains(expected), "{extra}: {error}");
        }
        assert!(config("[privacy]\nsigma = 1.0").unwrap_err().to_string().contains("sigma"));
    }

    #[test]
    fn the_example_configuration_parses_and_plans() {
        let aggregator: AggregatorConfig = toml::from_str(include_str!("../../examples/aggregator.toml")).unwrap();
        aggregator.plan().unwrap();
        assert_eq!(aggregator.crypto_threads, None, "one thread per core");
    }

    #[test]
    fn environment_variables_replace_their_keys_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aggregator.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:1\"\nhospitals = [\"a\", \"b\"]\n[model]\ninput_width = 6\n\
             [tls]\nca = \"ca.pem\"\ncert = \"a.pem\"\nkey = \"a.key\"\n",
        )
        .unwrap();
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |var: &str| vars.iter().find(|(name, _)| *name == var).map(|(_, value)| (*value).to_owned())
        };
        let plain: AggregatorConfig = load_with_overrides(&path, AggregatorConfig::ENV, env(&[])).unwrap();
        assert_eq!((plain.listen.as_str(), &plain.operations), ("127.0.0.1:1", &Operations::default()));
        let set: AggregatorConfig = load_with_overrides(
            &path,
            AggregatorConfig::ENV,
            env(&[
                ("FEDCARE_LISTEN", "0.0.0.0:50051"),
                ("FEDCARE_HOSPITALS", "x, y ,z"),
                ("FEDCARE_METRICS_LISTEN", "0.0.0.0:9464"),
                ("FEDCARE_KEEP_SERVING", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(set.listen, "0.0.0.0:50051");
        assert_eq!(set.hospitals, ["x", "y", "z"]);
        assert_eq!(set.operations.metrics_listen.as_deref(), Some("0.0.0.0:9464"));
        assert!(set.operations.keep_serving);
        let bad = load_with_overrides::<AggregatorConfig>(
            &path,
            AggregatorConfig::ENV,
            env(&[("FEDCARE_KEEP_SERVING", "yes")]),
        )
        .unwrap_err();
        assert!(bad.to_string().contains("FEDCARE_KEEP_SERVING"), "{bad}");
    }

    fn gbdt(extra: &str) -> core::result::Result<AggregatorConfig, toml::de::Error> {
        toml::from_str(&format!(
            "hospitals = [\"a\", \"b\"]\n{extra}\n[model]\ninput_width = 6\nkind = \"gbdt\"\n\
             [tls]\nca = \"ca.pem\"\ncert = \"a.pem\"\nkey = \"a.key\"\n"
        ))
    }

    #[test]
    fn boosted_trees_take_their_settings_rounds_and_privacy_and_refuse_patience() {
        let plan = gbdt("[boosting]\ntrees = 3\ndepth = 2\nsubsample = 0.8").unwrap().plan().unwrap();
        let boosting = plan.settings.boosting.as_ref().unwrap();
        assert_eq!((boosting.config.trees, boosting.config.depth, boosting.config.subsample), (3, 2, 0.8));
        assert_eq!(boosting.config.min_child_weight, BoostingConfig::default().min_child_weight);
        assert_eq!(plan.settings.rounds, 1 + 3 * 2, "the base session and a session per level");
        assert_eq!(plan.settings.param_count(), 0);
        // With a schema, each numeric input is cut at its edges inside their range.
        let mut config = gbdt("").unwrap();
        let shape = SchemaShape {
            id: "wards/v1".into(),
            width: 6,
            numeric: 1,
            numeric_edges: vec![vec![0.0, 10.0, 20.0, 40.0]],
            top_k: Vec::new(),
            explore: Vec::new(),
            label: "died = yes".into(),
            subgroups: Vec::new(),
        };
        config.apply_schema(&shape).unwrap();
        let plan = config.plan().unwrap();
        assert_eq!(plan.settings.boosting.as_ref().unwrap().numeric_thresholds, [vec![10.0, 20.0]]);
        // The settings travel to a hospital and back unchanged.
        let back = convert::settings_from_proto(&convert::settings_to_proto(&plan.settings)).unwrap();
        assert_eq!(back.boosting, plan.settings.boosting);

        let refused = |extra: &str, key: &str| {
            let error = gbdt(extra).unwrap().plan().unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
        };
        // Under [privacy] every session's three histograms are charged like the setup's statistics.
        let plan = gbdt("[boosting]\ntrees = 3\ndepth = 2\n[privacy]\npooled_noise = 40.0").unwrap().plan().unwrap();
        let privacy = plan.settings.privacy.unwrap();
        assert_eq!(privacy.dp_sgd, None);
        let pooled = privacy.pooled.unwrap();
        let rho = (f64::from(privacy.setup_statistics) + 3.0 * 7.0) / (2.0 * 40.0 * 40.0)
            + f64::from(privacy.evaluation_statistics) / (2.0 * pooled.evaluation_multiplier.powi(2));
        let expected = fedcare_core::privacy::accountant::epsilon_of_zcdp(rho, privacy.delta);
        assert!((privacy.epsilon_after(7, 1) - expected).abs() < 1e-12, "{}", privacy.epsilon_after(7, 1));
        assert!(privacy.epsilon_after(7, 1) > privacy.epsilon_after(6, 1));
        let back = convert::settings_from_proto(&convert::settings_to_proto(&plan.settings)).unwrap();
        assert_eq!(back.privacy, plan.settings.privacy);
        let fits = gbdt("[boosting]\ntrees = 3\ndepth = 2\n[privacy]\npooled_noise = 40.0\ntarget_epsilon = 8.0");
        assert!(fits.unwrap().plan().is_ok(), "ε within the target");

        refused("patience = 3", "patience");
        refused("[privacy]\nnoise_multiplier = 1.0", "noise_multiplier");
        refused("[privacy]\npooled_noise = 0.0", "pooled_noise");
        refused("[privacy]\ntarget_epsilon = 0.5", "pooled_noise ≥");
        refused("[boosting]\nsubsample = 0.0", "subsample");
        refused("[boosting]\ndepth = 0", "depth");
        assert!(gbdt("[boosting]\nleaves = 8").is_err(), "an unknown key in [boosting]");
    }
}
