//! The consortium as one hospital pins it ([`Consortium`]): who may take part, with which key,
//! and the bounds of what this hospital agrees to. The aggregator cannot change any of it; every
//! signed statement a hospital accepts passes [`Consortium::check`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::TrustError;
use crate::ids::SessionKind;
use crate::settings::{FederationSettings, Job, MAX_ATTEMPTS};
use crate::signing::{Fingerprint, Signed};

/// The consortium as one hospital pins it: who may take part (certificate name and key
/// fingerprint), and the bounds of what this hospital agrees to. The aggregator cannot change
/// any of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consortium {
    /// The members: certificate name = key fingerprint (`sha256:…`).
    pub members: BTreeMap<String, Fingerprint>,
    /// The fewest hospitals a session may have for this hospital to take part.
    #[serde(default = "default_consortium_min")]
    pub min_hospitals: usize,
    /// The most training rounds it accepts.
    #[serde(default = "default_max_rounds")]
    pub max_rounds: u32,
    /// The most attempts of one round it takes part in.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The largest model, in parameters.
    #[serde(default = "default_max_params")]
    pub max_params: u64,
    /// The most local epochs per round.
    #[serde(default = "default_max_epochs")]
    pub max_epochs: u32,
    /// The most privacy this hospital lets its patients spend: it takes part in no training
    /// round after which ε (at the federation's δ) would exceed this, and in none at all of a
    /// federation without differential privacy (absent: no limit).
    #[serde(default)]
    pub max_epsilon: Option<f64>,
    /// The largest δ at which it lets its ε be counted, when it sets `max_epsilon`.
    #[serde(default = "default_max_delta")]
    pub max_delta: f64,
    /// The least noise multiplier on the pooled statistics (σ_p, and σ_e of the final
    /// evaluation's) it takes part under, when it sets `max_epsilon` (default 0: any; its ε counts
    /// whatever noise there is).
    #[serde(default)]
    pub min_pooled_noise: f64,
    /// The smallest `min_cell` of an exploration, or of the final evaluation's subgroups, it takes
    /// part in: a report of the pooled counts shows none below it, nor a subgroup smaller.
    #[serde(default = "default_min_cell")]
    pub min_cell: u64,
    /// The most exploration sessions it releases counts in, over all federations (its ledger
    /// counts them).
    #[serde(default = "default_max_explorations")]
    pub max_explorations: u32,
}

fn default_consortium_min() -> usize {
    2
}
fn default_max_rounds() -> u32 {
    10_000
}
fn default_max_attempts() -> u32 {
    MAX_ATTEMPTS
}
fn default_max_params() -> u64 {
    1 << 24
}
fn default_max_epochs() -> u32 {
    100
}
fn default_max_delta() -> f64 {
    1e-5
}
fn default_min_cell() -> u64 {
    10
}
fn default_max_explorations() -> u32 {
    10
}

impl Consortium {
    /// A roster of `members` with the default bounds.
    pub fn new(members: BTreeMap<String, Fingerprint>) -> Self {
        Self {
            members,
            min_hospitals: default_consortium_min(),
            max_rounds: default_max_rounds(),
            max_attempts: default_max_attempts(),
            max_params: default_max_params(),
            max_epochs: default_max_epochs(),
            max_epsilon: None,
            max_delta: default_max_delta(),
            min_pooled_noise: 0.0,
            min_cell: default_min_cell(),
            max_explorations: default_max_explorations(),
        }
    }

    /// Refuses a signed statement from anyone off the roster, with a key other than the one it
    /// pins, or whose signature does not verify.
    pub fn check(&self, signed: &Signed) -> core::result::Result<(), TrustError> {
        let name = signed.signer.as_str();
        let pinned = *self.members.get(name).ok_or_else(|| TrustError::NotOnRoster { name: name.into() })?;
        let found = signed.public_key.fingerprint();
        if found != pinned {
            return Err(TrustError::KeyMismatch { name: name.into(), found, pinned });
        }
        signed.verify()
    }

    /// The fewest hospitals this hospital accepts in a federation that asks for `federation_min`.
    pub fn min_participants(&self, federation_min: usize) -> usize {
        self.min_hospitals.max(federation_min).max(2)
    }

    /// The fewest endorsements of its roster this hospital takes as the federation's word (for a
    /// state it did not compute, or a final model): a strict majority of the roster, or its
    /// `minimum` when that is more. Two branches of a federation cannot both have a majority.
    pub fn endorsement_quorum(&self, minimum: usize) -> usize {
        (self.members.len() / 2 + 1).max(minimum)
    }

    /// Refuses settings beyond this hospital's bounds.
    pub fn check_settings(&self, settings: &FederationSettings) -> core::result::Result<(), TrustError> {
        let bound = |what, got: u64, max: u64| {
            if got > max { Err(TrustError::OutOfBounds { what, got, max }) } else { Ok(()) }
        };
        bound("the model's parameter count", settings.spec.param_count() as u64, self.max_params)?;
        bound("the number of rounds", u64::from(settings.rounds), u64::from(self.max_rounds))?;
        bound("local epochs per round", settings.train.epochs as u64, u64::from(self.max_epochs))?;
        if let Job::Explore { min_cell, .. } = settings.job
            && min_cell < self.min_cell
        {
            return Err(TrustError::BelowFloor {
                what: "the exploration's min_cell",
                got: min_cell,
                min: self.min_cell,
            });
        }
        if !settings.layout.subgroups.is_empty() && settings.subgroup_min_cell < self.min_cell {
            return Err(TrustError::BelowFloor {
                what: "the subgroups' min_cell",
                got: settings.subgroup_min_cell,
                min: self.min_cell,
            });
        }
        Ok(())
    }

    /// The ε (at the federation's δ) of the federation of `settings` once a `kind` session of
    /// `round` is decrypted, by this hospital's own accounting from the settings it checked, when
    /// it sets a `max_epsilon` (`None` when it sets none). Every release is charged: the setup's
    /// pooled statistics and the final evaluation's from the first session on (as the
    /// accountant counts them), each training round's DP-SGD steps. `spent` is what its patients
    /// spent in other federations (its privacy ledger, [`crate::ledger::epsilon_spent_elsewhere`]);
    /// a release that would bring the total past `max_epsilon` is refused, and so is every
    /// release of a federation whose ε bounds nothing: one without differential privacy, a δ
    /// above `max_delta`, pooled statistics decrypted exact or with less noise than its
    /// `min_pooled_noise`. An exploration is charged its noisy pooled statistics at this
    /// hospital's own `max_delta` (the setup's, then the exploration's counts as well); one
    /// without noise is refused (its counts are exact).
    pub fn privacy_charge(
        &self,
        settings: &FederationSettings,
        kind: SessionKind,
        round: u32,
        spent: f64,
    ) -> core::result::Result<Option<f64>, TrustError> {
        let Some(max) = self.max_epsilon else { return Ok(None) };
        let policy = |why: String| Err(TrustError::PrivacyPolicy { why });
        if let Job::Explore { noise, .. } = &settings.job {
            let Some(noise) = noise else {
                return policy("an exploration without noise releases exact counts, which ε does not bound".into());
            };
            if noise.multiplier < self.min_pooled_noise {
                return policy(format!(
                    "the exploration's noise {} is below its min_pooled_noise of {}",
                    noise.multiplier, self.min_pooled_noise
                ));
            }
            let layout = &settings.layout;
            let explored = if kind == SessionKind::Explore { layout.explore_statistics() } else { 0 };
            let statistics = u64::from(layout.setup_statistics()) + u64::from(explored);
            let charge = noise.epsilon(statistics, self.max_delta);
            let epsilon = spent + charge;
            if epsilon > max {
                return Err(TrustError::PrivacyBudget { kind, round, epsilon, spent, delta: self.max_delta, max });
            }
            return Ok(Some(charge));
        }
        let Some(privacy) = settings.privacy else {
            let epsilon = f64::INFINITY;
            return Err(TrustError::PrivacyBudget { kind, round, epsilon, spent, delta: 0.0, max });
        };
        if privacy.delta > self.max_delta {
            return policy(format!(
                "the federation's δ is {:e}, above its max_delta of {:e}",
                privacy.delta, self.max_delta
            ));
        }
        let Some(pooled) = privacy.pooled else {
            return policy(
                "the federation decrypts its pooled statistics exact (pooled_noise = 0), which ε does not count".into(),
            );
        };
        if pooled.multiplier.min(pooled.evaluation_multiplier) < self.min_pooled_noise {
            return policy(format!(
                "the federation's pooled noise (pooled_noise {}, evaluation_noise {}) is below its min_pooled_noise of {}",
                pooled.multiplier, pooled.evaluation_multiplier, self.min_pooled_noise
            ));
        }
        let trained = match kind {
            SessionKind::Setup | SessionKind::Explore => 0,
            SessionKind::Train => round,
            SessionKind::Evaluate => round.saturating_sub(1),
        };
        let charge = privacy.epsilon_after(trained, settings.train.epochs);
        let epsilon = spent + charge;
        if epsilon > max {
            return Err(TrustError::PrivacyBudget { kind, round, epsilon, spent, delta: privacy.delta, max });
        }
        Ok(Some(charge))
    }
}
