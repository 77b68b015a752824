//! The protocol's types, each defined once: who a node is ([`NodeId`]), what a session computes
//! ([`SessionKind`]) and which attempt it is ([`SessionId`]), the figures the setup session makes
//! public ([`PublicFigures`]), what a hospital contributes to each kind of session
//! ([`contribution`]) and what a completed session measured ([`RoundRecord`], one line of
//! `metrics.jsonl`). Their wire forms are in [`crate::convert`], nowhere else.

pub mod contribution;

use core::fmt;

use bytes::Bytes;
use fedcare_core::metrics::CalibrationBin;
use fedcare_core::{CodecConfig, ColumnStats, ModelSpec, Platt, ServerOptimizerConfig, TrainConfig};
use fedcare_crypto::Crs;
use serde::{Deserialize, Serialize};

pub use contribution::{
    ContributionLayout, DecodedSum, GlobalEvaluation, LocalEvaluation, SetupCounts, check_exploration,
};

/// Calibration bins in each evaluated [`RoundRecord`].
pub const CALIBRATION_BINS: usize = 10;
/// Most points of the ROC curve in each evaluated [`RoundRecord`].
pub const ROC_POINTS: usize = 101;

/// A node's identity: the name in its mTLS certificate (a hospital's node id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(String);

impl NodeId {
    /// A node id of 1 to 64 letters, digits, `-` or `.`, not starting with `-`.
    pub fn new(name: impl Into<String>) -> Result<Self, crate::error::ConfigError> {
        let name = name.into();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !name.starts_with('-');
        if valid { Ok(Self(name)) } else { Err(crate::error::ConfigError::Name(name)) }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// What a session computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionKind {
    /// Before training: the secure sum of the hospitals' row counts, feature moments and `top_k`
    /// bucket counts.
    Setup,
    /// One round of local training: the secure sum of the weighted updates and evaluations.
    Train,
    /// After training: the secure evaluation of the final model.
    Evaluate,
    /// An exploration's one session after setup: the secure sum of every column's counts.
    Explore,
}

impl SessionKind {
    /// The kind's name, as in `metrics.jsonl`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Train => "train",
            Self::Evaluate => "evaluate",
            Self::Explore => "explore",
        }
    }
}

impl fmt::Display for SessionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that tables can align it (`{:>9}`).
        f.pad(self.name())
    }
}

/// One attempt at one round. A round that loses a hospital restarts as the next attempt, with
/// fresh keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionId {
    /// 0: setup; 1..=rounds: training; the round after the last training round (rounds + 1, or
    /// earlier when `patience` stopped training): final evaluation.
    pub round: u32,
    /// Restarts of this round before this attempt.
    pub attempt: u32,
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.attempt)
    }
}

/// A session planned next: its round and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    /// The round.
    pub round: u32,
    /// What it computes.
    pub kind: SessionKind,
}

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

/// What one completed session measured; one line of `metrics.jsonl`. Fields added after the
/// first release default when a line lacks them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// 0: setup; 1..=rounds: training; the round after the last training round (rounds + 1, or
    /// earlier when `patience` stopped training): final evaluation.
    pub round: u32,
    /// What the session computed.
    pub kind: SessionKind,
    /// Restarts this round needed.
    pub attempt: u32,
    /// Hospitals in the session.
    pub hospitals: usize,
    /// Weighted mean local training loss (training rounds).
    pub train_loss: Option<f64>,
    /// Mean log loss of the model the session started from, on all held-out rows.
    pub test_loss: Option<f64>,
    /// AUROC of that model on all held-out rows (binned scores).
    pub auroc: Option<f64>,
    /// AUPRC (average precision) of that model on all held-out rows (binned scores).
    #[serde(default)]
    pub auprc: Option<f64>,
    /// Held-out rows.
    #[serde(default)]
    pub test_rows: Option<u64>,
    /// Positives among the held-out rows.
    #[serde(default)]
    pub test_positives: Option<u64>,
    /// Ten equal-width calibration bins of that model's probabilities, merged from the score
    /// histogram; empty without an evaluation.
    #[serde(default)]
    pub calibration: Vec<CalibrationBin>,
    /// That model's ROC curve, `[FPR, TPR]` points thinned to at most [`ROC_POINTS`]; empty
    /// without an evaluation or without both classes.
    #[serde(default)]
    pub roc: Vec<[f64; 2]>,
    /// The Platt scaling of that model's scores, fitted to the held-out score histogram (the
    /// model file carries the kept model's); `None` without an evaluation.
    #[serde(default)]
    pub platt: Option<Platt>,
    /// With DP-SGD, ε (at the federation's δ) of every training round released once this
    /// session's sum is decrypted: a patient's privacy loss so far.
    #[serde(default)]
    pub epsilon: Option<f64>,
    /// Seconds from the session's start to its decoded result.
    pub seconds: f64,
    /// Bytes the hospitals uploaded in the session.
    pub bytes_up: u64,
    /// Bytes of task payloads sent to the hospitals in the session.
    pub bytes_down: u64,
}

impl RoundRecord {
    /// A record of a session with nothing measured yet.
    pub fn new(session: SessionId, kind: SessionKind, hospitals: usize) -> Self {
        Self {
            round: session.round,
            kind,
            attempt: session.attempt,
            hospitals,
            train_loss: None,
            test_loss: None,
            auroc: None,
            auprc: None,
            test_rows: None,
            test_positives: None,
            calibration: Vec::new(),
            roc: Vec::new(),
            platt: None,
            epsilon: None,
            seconds: 0.0,
            bytes_up: 0,
            bytes_down: 0,
        }
    }

    /// Fills the evaluation figures from the decrypted histograms.
    pub fn set_evaluation(&mut self, evaluation: &GlobalEvaluation) {
        let histogram = &evaluation.histogram;
        let (positives, negatives) = histogram.class_totals();
        self.test_loss = Some(evaluation.log_loss);
        self.auroc = histogram.auroc();
        self.auprc = histogram.auprc();
        self.test_rows = Some(positives + negatives);
        self.test_positives = Some(positives);
        self.calibration = histogram.calibration(CALIBRATION_BINS);
        self.roc = histogram.roc_curve(ROC_POINTS);
        self.platt = Platt::fit(histogram);
    }
}

/// The kinds of upload a hospital makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadKind {
    /// Its public key share, signed.
    KeyShare,
    /// Its encrypted contribution.
    Contribution,
    /// Its decryption share of the aggregate.
    DecryptionShare,
    /// A signed statement: its transcript, challenge commitment or mask fingerprint.
    Statement,
    /// The decrypted sum of a session it holds (empty: none), for an aggregator that resumes.
    Sum,
}

impl UploadKind {
    /// The kind's name, for errors.
    pub fn name(self) -> &'static str {
        match self {
            Self::KeyShare => "key share",
            Self::Contribution => "contribution",
            Self::DecryptionShare => "decryption share",
            Self::Statement => "signed statement",
            Self::Sum => "decrypted sum",
        }
    }
}

/// What an upload's header announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadHeader {
    /// The federation it is for.
    pub federation_id: String,
    /// The session it is for.
    pub session: Option<SessionId>,
    /// The node it claims to come from.
    pub node: String,
    /// What it is (`None`: a kind this build does not know).
    pub kind: Option<UploadKind>,
}

/// The kind of task a node gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Nothing new yet: ask again.
    Wait,
    /// Draw a fresh key share for the session's CRS and upload its public part, signed.
    KeyGen,
    /// Sections: every participant's signed key share, then the global model, the server
    /// optimizer state and the hospitals' endorsements of that state (to a hospital that holds
    /// the state: its digest alone). Upload the signed round transcript.
    Confirm,
    /// Section: every participant's signed transcript. Upload the encrypted contribution.
    Contribute,
    /// Section: the aggregate's masks. Upload a signed commitment with fresh randomness.
    Challenge,
    /// Section: every participant's signed commitment. Upload the signed mask fingerprint.
    Prove,
    /// Section: every participant's signed fingerprint. Upload a decryption share.
    Decrypt,
    /// Section: the decrypted sum, unrounded. Upload a signed commitment with fresh randomness.
    Result,
    /// Section: every participant's signed commitment. Upload the signed output fingerprint.
    Attest,
    /// Section: every participant's signed output fingerprint. Upload the signed output.
    Accept,
    /// The aggregator restarted after the session's result went out: upload the decrypted sum
    /// this node holds of the session (nothing when it holds none).
    Recover,
    /// The federation is over; section: the final model file.
    Done,
    /// The federation stopped; see the message.
    Failed,
}

/// A task for one node (what the aggregator sends, and what the node receives).
#[derive(Debug, Clone)]
pub struct Task {
    /// What to do.
    pub kind: TaskKind,
    /// The session it belongs to.
    pub session: Option<SessionId>,
    /// What the session computes.
    pub session_kind: Option<SessionKind>,
    /// The session's CRS.
    pub crs: Option<Crs>,
    /// What the setup session made public.
    pub figures: PublicFigures,
    /// The payload's sections (shared, never copied per node).
    pub sections: Vec<Bytes>,
    /// Why the federation failed (`Failed` tasks).
    pub message: String,
}

impl Task {
    /// What identifies the task, to tell a new one from one a node has handled.
    pub fn key(&self) -> (Option<SessionId>, TaskKind) {
        (self.session, self.kind)
    }
}

/// What a federation is for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
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
    },
}

/// Differential privacy as a federation runs it: the DP-SGD settings every hospital trains with,
/// the noise every hospital adds to the pooled statistics, and the δ at which ε is reported. ε
/// depends on these settings and the layout alone (every hospital samples patients at the same
/// rate and noises the same statistics), so the aggregator, every hospital and the model file
/// give the same figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Privacy {
    /// Sampling rate, noise multiplier and clip norm.
    pub dp_sgd: fedcare_core::privacy::DpSgd,
    /// δ of the reported (ε, δ).
    pub delta: f64,
    /// The noise on the pooled statistics (`None`: they are decrypted exact, and README's
    /// "what is not protected" applies to them).
    pub pooled: Option<fedcare_core::privacy::PooledNoise>,
    /// The statistics the setup session releases ([`ContributionLayout::setup_statistics`]).
    pub setup_statistics: u32,
}

impl Privacy {
    /// ε after `rounds` training rounds of `epochs` local epochs each: DP-SGD's steps composed
    /// with the pooled statistics, the setup's and the final evaluation's, counted from the
    /// start. (With pooled noise the training rounds evaluate nothing: a noisy evaluation every
    /// round would cost a statistic each and choose the model by its noise.)
    pub fn epsilon_after(&self, rounds: u32, epochs: u32) -> f64 {
        let steps = u64::from(rounds) * u64::from(epochs) * u64::from(self.dp_sgd.steps_per_epoch());
        let rho = self.pooled.map_or(0.0, |pooled| pooled.rho(u64::from(self.setup_statistics)));
        self.dp_sgd.mechanism().epsilon_with(steps, rho, self.delta)
    }

    /// Whether the training rounds carry an evaluation: not under pooled noise.
    pub fn evaluates_rounds(&self) -> bool {
        self.pooled.is_none()
    }
}

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
    /// BLAKE3 of the configuration's wire form: every participant's transcript covers it, so
    /// hospitals given different settings do not agree.
    pub digest: [u8; 32],
}
