//! What a federation agreed to run ([`FederationSettings`], the same for every role), what it is
//! for ([`Job`]), its differential privacy ([`Privacy`]) and the figures its setup session makes
//! public ([`PublicFigures`]).

use core::time::Duration;

use fedcare_core::{CodecConfig, ColumnStats, ModelSpec, ServerOptimizerConfig, TrainConfig};
use serde::{Deserialize, Serialize};

use crate::contribution::ContributionLayout;
use crate::error::TrustError;
use crate::ids::NodeId;

/// The most attempts of one round: the coordinator gives a round up after this many, and a
/// hospital's default bound ([`crate::roster::Consortium::max_attempts`]).
pub const MAX_ATTEMPTS: u32 = 16;

/// What the setup session makes public to the federation: the pooled counts, the federated
/// statistics of every numeric feature and the buckets chosen for every `top_k` column. Every
/// task carries them; they are the same for every hospital.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PublicFigures {
    /// Training rows of all hospitals (0 before setup).
    pub train_rows: u64,
    /// Held-out rows of all hospitals (0 before setup).
    pub test_rows: u64,
    /// The federated mean and standard deviation of each numeric feature.
    pub feature_stats: Vec<ColumnStats>,
    /// Per `top_k` column, the buckets chosen, in slot order.
    pub top_k: Vec<Vec<u32>>,
}

/// The discrete Gaussian noise every hospital adds to an exploration's pooled statistics (its
/// setup session's counts, moments and buckets, and the exploration's counts), so that they are
/// differentially private for its patients by its own noise alone, as the training's pooled
/// statistics are ([`fedcare_core::privacy::PooledNoise`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExploreNoise {
    /// `σ`: the noise on each statistic over its sensitivity (> 0).
    pub multiplier: f64,
    /// The rows of one patient a hospital counts (its first ones; at least 1).
    pub rows_per_patient: u32,
}

impl ExploreNoise {
    /// The same noise as the setup session's [`fedcare_core::privacy::PooledNoise`].
    pub fn pooled(&self) -> fedcare_core::privacy::PooledNoise {
        fedcare_core::privacy::PooledNoise {
            multiplier: self.multiplier,
            evaluation_multiplier: self.multiplier,
            rows_per_patient: self.rows_per_patient,
        }
    }

    /// The noise's scale on one of an exploration's counts: `σ · rows_per_patient · √2` (one row
    /// changes a column's cell and the cell's positives by one each, so one patient changes the
    /// column's counts by at most `rows_per_patient · √2` in L2 norm).
    pub fn count_scale(&self) -> f64 {
        self.multiplier * f64::from(self.rows_per_patient) * core::f64::consts::SQRT_2
    }

    /// ρ (zCDP) of `statistics` statistics under this noise, `statistics / (2σ²)`: each is
    /// `1/(2σ²)`-zCDP by one hospital's noise alone.
    pub fn rho(&self, statistics: u64) -> f64 {
        statistics as f64 / (2.0 * self.multiplier * self.multiplier)
    }

    /// ε at `delta` of `statistics` statistics under this noise (the accountant's conversion of
    /// RDP `ρ·α` at every order).
    pub fn epsilon(&self, statistics: u64, delta: f64) -> f64 {
        fedcare_core::privacy::accountant::epsilon_of_zcdp(self.rho(statistics), delta)
    }
}

/// What a federation is for.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum Job {
    /// Train the model (setup, the training rounds, the final evaluation).
    #[default]
    Train,
    /// Explore the data (setup, then one session of every column's counts); nothing is
    /// trained.
    Explore {
        /// The smallest pooled count a report shows.
        min_cell: u64,
        /// What the label's positives are, for reports (`readmitted = <30`).
        label: String,
        /// Each hospital's noise on the pooled statistics (`None`: they are exact).
        noise: Option<ExploreNoise>,
    },
}

impl Job {
    /// Which job it is, without its settings.
    pub fn kind(&self) -> JobKind {
        match self {
            Self::Train => JobKind::Train,
            Self::Explore { .. } => JobKind::Explore,
        }
    }
}

/// What a federation is for, as `aggregator.toml` and `hospital.toml` say it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Train the model.
    #[default]
    Train,
    /// Count every column of the schema under the threshold encryption; train nothing.
    Explore,
}

impl JobKind {
    /// The job's name, as the configuration files write it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Explore => "explore",
        }
    }
}

/// What a hospital agreed to take part in, from its own configuration, never from the
/// aggregator: the federation (its ledger and its privacy budget are kept under this id) and the
/// job. Settings that say otherwise are refused by name ([`Agreement::check`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// The federation id.
    pub federation_id: String,
    /// The job.
    pub job: JobKind,
}

impl Agreement {
    /// A training federation `federation_id`.
    pub fn train(federation_id: impl Into<String>) -> Self {
        Self { federation_id: federation_id.into(), job: JobKind::Train }
    }

    /// Refuses settings of another federation or another job than this hospital agreed to: an
    /// aggregator that hands out a new federation id would give it an empty ledger and a fresh
    /// privacy budget.
    pub fn check(&self, settings: &FederationSettings) -> Result<(), TrustError> {
        if settings.federation_id != self.federation_id {
            return Err(TrustError::NotAgreed {
                what: "federation id",
                agreed: self.federation_id.clone(),
                offered: settings.federation_id.clone(),
            });
        }
        let job = settings.job.kind();
        if job != self.job {
            let (agreed, offered) = (self.job.name().into(), job.name().into());
            return Err(TrustError::NotAgreed { what: "job", agreed, offered });
        }
        Ok(())
    }
}

/// Differential privacy as a federation runs it: the DP-SGD settings every hospital trains with,
/// the noise every hospital adds to the pooled statistics, and the δ at which ε is reported. ε
/// depends on these settings and the layout alone (every hospital samples patients at the same
/// rate and noises the same statistics), so the aggregator, every hospital and the model file
/// give the same figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Privacy {
    /// DP-SGD's sampling rate, noise multiplier and clip norm (`None` for boosted trees, whose
    /// training sessions release histograms under the pooled noise instead:
    /// [`BOOSTING_SESSION_STATISTICS`] statistics a session).
    pub dp_sgd: Option<fedcare_core::privacy::DpSgd>,
    /// δ of the reported (ε, δ).
    pub delta: f64,
    /// The noise on the pooled statistics (`None`: they are decrypted exact, and README's
    /// "what is not protected" applies to them).
    pub pooled: Option<fedcare_core::privacy::PooledNoise>,
    /// The statistics the setup session releases ([`ContributionLayout::setup_statistics`]).
    pub setup_statistics: u32,
    /// The histograms the final evaluation releases
    /// ([`ContributionLayout::evaluation_statistics`]).
    pub evaluation_statistics: u32,
}

impl Privacy {
    /// ε after `rounds` training rounds of `epochs` local epochs each: DP-SGD's steps (or a
    /// boosting federation's histograms) composed with the pooled statistics, the setup's and the
    /// final evaluation's, counted from the start. (With pooled noise the training rounds
    /// evaluate nothing: a noisy evaluation every round would cost a statistic each and choose
    /// the model by its noise.)
    pub fn epsilon_after(&self, rounds: u32, epochs: u32) -> f64 {
        let trained = match self.dp_sgd {
            Some(_) => 0,
            None => u64::from(rounds) * u64::from(BOOSTING_SESSION_STATISTICS),
        };
        let rho = self.pooled.map_or(0.0, |pooled| {
            pooled.rho(u64::from(self.setup_statistics) + trained, u64::from(self.evaluation_statistics))
        });
        match self.dp_sgd {
            Some(dp_sgd) => {
                let steps = u64::from(rounds) * u64::from(epochs) * u64::from(dp_sgd.steps_per_epoch());
                dp_sgd.mechanism().epsilon_with(steps, rho, self.delta)
            }
            None => fedcare_core::privacy::accountant::epsilon_of_zcdp(rho, self.delta),
        }
    }

    /// Whether the training rounds carry an evaluation: not under pooled noise.
    pub fn evaluates_rounds(&self) -> bool {
        self.pooled.is_none()
    }
}

/// The pooled statistics a boosting training session releases, each under the pooled noise
/// `σ_p`: a level's histograms of gradients, of hessians and of rows (the base session's two
/// counts are charged as many).
pub const BOOSTING_SESSION_STATISTICS: u32 = 3;

/// What a hospital learns of the federation when it joins: everything it needs to take part.
#[derive(Debug, Clone, PartialEq)]
pub struct FederationSettings {
    /// The federation.
    pub federation_id: String,
    /// The model.
    pub spec: ModelSpec,
    /// The codec of every contribution.
    pub codec: CodecConfig,
    /// Local training (`seed` is the federation's training seed; a round adds its number).
    pub train: TrainConfig,
    /// The layout of every contribution.
    pub layout: ContributionLayout,
    /// The fewest contributors an aggregate may have for this hospital to help decrypt it.
    pub min_hospitals: usize,
    /// The largest upload the aggregator accepts, in bytes.
    pub max_upload_bytes: u64,
    /// Fraction of each hospital's rows held out for evaluation.
    pub test_fraction: f32,
    /// The schema the federation trains on (empty: any).
    pub schema_id: String,
    /// Training rounds.
    pub rounds: u32,
    /// Evaluations without a better AUROC after which training stops (`None`: every round).
    pub patience: Option<u32>,
    /// The server rule every hospital applies to the checked sum.
    pub server: ServerOptimizerConfig,
    /// Training or exploration.
    pub job: Job,
    /// DP-SGD's settings (`None`: training without differential privacy).
    pub privacy: Option<Privacy>,
    /// The smallest subgroup (rows, positives, negatives) whose figures the final evaluation's
    /// report shows ([`fedcare_core::subgroup`]).
    pub subgroup_min_cell: u64,
    /// Gradient-boosted trees instead of the network (`None`: the network of `spec`, whose
    /// input width the trees share).
    pub boosting: Option<crate::boosting::Boosting>,
    /// BLAKE3 of the configuration's wire form: every participant's transcript covers it, so
    /// hospitals given different settings do not agree.
    pub digest: crate::digest::SettingsDigest,
}

impl FederationSettings {
    /// Parameters of the global model: the network's, none for boosted trees (whose trees are
    /// in the server state, [`crate::boosting::BoostingState`]).
    pub fn param_count(&self) -> usize {
        if self.boosting.is_some() { 0 } else { self.spec.param_count() }
    }

    /// The server state before the first session: the rule's fresh state, and for boosted
    /// trees an ensemble yet to start.
    pub fn initial_server_state(&self) -> fedcare_core::Result<crate::selection::ServerState> {
        let mut state = crate::selection::ServerState::new(self.server, self.param_count())?;
        state.boosting = self.boosting.as_ref().map(|_| crate::boosting::BoostingState::default());
        Ok(state)
    }

    /// Whether training ends after training session `round`, which left `server`: the last of
    /// the rounds, `patience` run out ([`crate::selection::training_ends`]), or every tree grown.
    pub fn training_ends(&self, round: u32, server: &crate::selection::ServerState) -> bool {
        let best = server.best.as_ref().map(|b| b.trained_rounds);
        crate::selection::training_ends(round, self.rounds, self.patience, best)
            || self.boosting.as_ref().zip(server.boosting.as_ref()).is_some_and(|(b, s)| s.finished(b))
    }

    /// The noise every hospital adds to the setup session's pooled statistics: the privacy
    /// settings' of a training job, the exploration's of an exploration (`None`: exact).
    pub fn pooled_noise(&self) -> Option<fedcare_core::privacy::PooledNoise> {
        match &self.job {
            Job::Train => self.privacy.and_then(|privacy| privacy.pooled),
            Job::Explore { noise, .. } => noise.map(|noise| noise.pooled()),
        }
    }

    /// What every hospital divides its evaluation tail by (its loss sum and score-histogram
    /// counts) and the decoder multiplies back: the pooled held-out rows of `figures`; under
    /// pooled noise, that noisy count plus six standard deviations of the noise the most parties
    /// could have put on it, so that noise making the count small can never push one hospital's
    /// `count / scale` out of the codec's range. Public, so every party computes the same.
    pub fn tail_scale(&self, figures: &PublicFigures) -> u64 {
        let margin = self
            .pooled_noise()
            .map_or(0.0, |pooled| 6.0 * pooled.scale(1.0) * f64::from(self.codec.max_parties.max(1)).sqrt());
        figures.test_rows.saturating_add(margin.ceil() as u64)
    }

    /// The most values a decoded upload or relayed crypto message may hold: what
    /// [`FederationSettings::max_upload_bytes`] allows at 8 bytes a value.
    pub fn wire_limits(&self) -> fedcare_crypto::WireLimits {
        fedcare_crypto::WireLimits { max_values: usize::try_from(self.max_upload_bytes / 8).unwrap_or(usize::MAX) }
    }
}

/// What the aggregator runs: the settings every hospital takes part under (the same type the
/// hospitals receive), and what only the coordinator needs beside them.
#[derive(Debug, Clone, PartialEq)]
pub struct FederationPlan {
    /// What every hospital takes part under.
    pub settings: FederationSettings,
    /// The enrolled hospitals.
    pub hospitals: Vec<NodeId>,
    /// The seed of the initial model.
    pub seed: u64,
    /// How long the first session waits for every enrolled hospital to join.
    pub join_timeout: Duration,
    /// How long a phase waits for its participants before it drops the late ones.
    pub phase_timeout: Duration,
}

impl FederationPlan {
    /// Whether `node` is enrolled.
    pub fn is_enrolled(&self, node: &NodeId) -> bool {
        self.hospitals.contains(node)
    }
}
