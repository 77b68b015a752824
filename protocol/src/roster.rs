//! The consortium as one hospital pins it ([`Consortium`]): who may take part, with which key,
//! and the bounds of what this hospital agrees to. The aggregator cannot change any of it; every
//! signed statement a hospital accepts passes [`Consortium::check`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::TrustError;
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
    /// The smallest `min_cell` of an exploration it takes part in: a report of the pooled counts
    /// shows none below it.
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
        Ok(())
    }
}
