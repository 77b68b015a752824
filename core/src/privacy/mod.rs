//! Differential privacy at the patient level: DP-SGD's settings ([`DpSgd`]), its randomness
//! ([`noise`]) and its accountant ([`accountant`]). The training loop is [`crate::train`].
//!
//! # The unit protected: a patient, with all their encounters
//! Constraints: a patient of the Diabetes-130 file has up to 40 encounters (rows); DP-SGD with
//! per-row clipping protects one row, and group privacy over k rows multiplies ε by about k (worse
//! under subsampling). With 3 to 20 hospitals, protecting a hospital is useless.
//!
//! Solution: the sampling unit and the clipping unit is the patient (the dataset's groups;
//! [`crate::Dataset::groups`]). Each step samples every patient independently with probability
//! `q` (Poisson sampling, as the accountant assumes), takes all of each sampled patient's rows,
//! sums each patient's gradient over their rows, clips that sum to norm `C`, adds Gaussian noise
//! of standard deviation `σ·C` to the sum over patients and divides by the expected number of
//! patients `q·P`. One patient then changes one step's sum by at most `C`: the sampled Gaussian
//! mechanism with rate `q` and multiplier `σ`, whatever their number of encounters. An epoch is
//! `round(1/q)` steps, and every hospital uses the same `q`, so ε depends on the settings alone:
//! the aggregator, every hospital and the model file report the same figure, and no hospital's
//! patient count is needed to compute it.
//!
//! Pros: ε is per patient, tight (no group-privacy factor), public. Cons: a patient's gradient is
//! the sum of several rows' and is clipped as one, which needs the cross terms of their rows
//! (cheap: patients have few rows); the batch size varies from step to step (its mean is `q·P`).
//!
//! # The pooled statistics: [`PooledNoise`]
//! Besides the model, a federation decrypts pooled integer statistics: the setup session's row
//! counts, feature moments and `top_k` bucket counts, and every evaluation's score histograms.
//! Each hospital counts at most `rows_per_patient` rows of a patient (its first ones) in them,
//! so one patient changes one statistic (a vector of counts, or one feature's sum) by at most
//! `Δ = rows_per_patient · (the most one row adds)`, and adds exact discrete Gaussian noise of
//! scale `σ_p·Δ` to it before encryption (`σ_e·Δ` on the final evaluation's histograms; the
//! training rounds are not evaluated under this noise). Each statistic is then
//! `1/(2σ_p²)`-zCDP (`1/(2σ_e²)`) for that hospital's patients by its own noise alone (Canonne, Kamath and Steinke 2020,
//! arXiv:2004.00010, Theorem 14), whatever the other hospitals and the aggregator do. The
//! accountant adds `ρ·α` to DP-SGD's RDP at every order before converting to (ε, δ).
//!
//! What no noise covers: the training loss and the test loss the federation decrypts
//! (README names them).

pub mod accountant;
pub mod batches;
pub mod noise;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// DP-SGD's settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DpSgd {
    /// The probability `q` that a step samples a given patient (0 < q ≤ 1); an epoch is
    /// `round(1/q)` steps.
    pub sampling_rate: f64,
    /// The noise's standard deviation over the clip norm, `σ` (> 0).
    pub noise_multiplier: f32,
    /// The norm `C` a patient's gradient is clipped to (> 0).
    pub clip_norm: f32,
}

impl DpSgd {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        let check =
            |name, ok: bool, value: f64| if ok { Ok(()) } else { Err(Error::InvalidHyperparameter { name, value }) };
        check(
            "sampling_rate",
            self.sampling_rate.is_finite() && self.sampling_rate > 0.0 && self.sampling_rate <= 1.0,
            self.sampling_rate,
        )?;
        check(
            "noise_multiplier",
            self.noise_multiplier.is_finite() && self.noise_multiplier > 0.0,
            self.noise_multiplier.into(),
        )?;
        check("clip_norm", self.clip_norm.is_finite() && self.clip_norm > 0.0, self.clip_norm.into())
    }

    /// Steps of one epoch: `round(1/q)`, at least 1.
    pub fn steps_per_epoch(&self) -> u32 {
        (libm::round(1.0 / self.sampling_rate) as u32).max(1)
    }

    /// The expected number of patients a step samples out of `patients`, `q·P` (at least one):
    /// what the clipped sum and its noise are divided by.
    pub fn expected_patients(&self, patients: usize) -> f32 {
        ((self.sampling_rate * patients as f64) as f32).max(1.0)
    }

    /// The accountant's view of these settings.
    pub fn mechanism(&self) -> accountant::SampledGaussian {
        accountant::SampledGaussian {
            sampling_rate: self.sampling_rate,
            noise_multiplier: f64::from(self.noise_multiplier),
        }
    }

    /// ε at `delta` after `epochs` local epochs (over all rounds).
    pub fn epsilon_after_epochs(&self, epochs: u64, delta: f64) -> f64 {
        self.mechanism().epsilon(epochs.saturating_mul(u64::from(self.steps_per_epoch())), delta)
    }
}

/// The noise on the pooled statistics (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PooledNoise {
    /// `σ_p`: each hospital's noise on a setup statistic over the statistic's sensitivity (> 0).
    pub multiplier: f64,
    /// `σ_e`: the same for the final evaluation's histograms (> 0; one statistic, usually given
    /// less noise than the setup's many).
    pub evaluation_multiplier: f64,
    /// The rows of one patient a hospital counts (its first ones; at least 1).
    pub rows_per_patient: u32,
}

impl PooledNoise {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in
            [("pooled noise multiplier", self.multiplier), ("evaluation noise multiplier", self.evaluation_multiplier)]
        {
            if !(value.is_finite() && value > 0.0) {
                return Err(Error::InvalidHyperparameter { name, value });
            }
        }
        if self.rows_per_patient == 0 {
            return Err(Error::InvalidHyperparameter { name: "pooled rows_per_patient", value: 0.0 });
        }
        Ok(())
    }

    /// The noise's scale on a setup statistic that one row changes by at most `per_row`:
    /// `σ_p · rows_per_patient · per_row`.
    pub fn scale(&self, per_row: f64) -> f64 {
        self.multiplier * f64::from(self.rows_per_patient) * per_row
    }

    /// The noise's scale on an evaluation histogram's cells: `σ_e · rows_per_patient`.
    pub fn evaluation_scale(&self) -> f64 {
        self.evaluation_multiplier * f64::from(self.rows_per_patient)
    }

    /// The rows a hospital counts in its pooled statistics: the first `rows_per_patient` rows of
    /// every patient (`groups[row]`, any ids), in row order.
    pub fn counted_rows<T: Ord>(&self, groups: &[T]) -> Vec<usize> {
        let mut seen: BTreeMap<&T, u32> = BTreeMap::new();
        (0..groups.len())
            .filter(|&row| {
                let count = seen.entry(&groups[row]).or_insert(0);
                *count += 1;
                *count <= self.rows_per_patient
            })
            .collect()
    }

    /// ρ (zCDP) of a federation's pooled statistics: `setup_statistics` of the setup session,
    /// `setup_statistics / (2σ_p²)`, and `evaluation_statistics` histograms of the final
    /// evaluation (the score histogram and one per subgroup column), each `1 / (2σ_e²)`.
    pub fn rho(&self, setup_statistics: u64, evaluation_statistics: u64) -> f64 {
        let rho = |statistics: f64, sigma: f64| statistics / (2.0 * sigma * sigma);
        rho(setup_statistics as f64, self.multiplier) + rho(evaluation_statistics as f64, self.evaluation_multiplier)
    }
}
