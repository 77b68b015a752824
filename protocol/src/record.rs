//! What one completed session measured ([`RoundRecord`], one line of `metrics.jsonl`).

use fedcare_core::Platt;
use fedcare_core::metrics::CalibrationBin;
use fedcare_core::subgroup::SubgroupReport;
use serde::{Deserialize, Serialize};

use crate::contribution::GlobalEvaluation;
use crate::ids::{SessionId, SessionKind};

/// Calibration bins in each evaluated [`RoundRecord`].
pub const CALIBRATION_BINS: usize = 10;
/// Most points of the ROC curve in each evaluated [`RoundRecord`].
pub const ROC_POINTS: usize = 101;

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
    /// The final evaluation's figures per subgroup, of the model the federation hands out (the
    /// kept one); `None` in other sessions, or without subgroup columns.
    #[serde(default)]
    pub subgroups: Option<SubgroupReport>,
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
            subgroups: None,
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
