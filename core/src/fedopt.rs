//! Server-side update rules: FedAvg and FedAdam (Reddi et al., "Adaptive Federated
//! Optimization", 2021).
//!
//! The aggregator only ever sees the *mean* update `Δ = Σ_k (n_k/N)·(θ_k − θ)` (decrypted from
//! the homomorphic sum); these rules turn it into the next global model:
//!
//! ```text
//! FedAvg:  θ ← θ + η·Δ                      (η = 1 is McMahan et al.'s FedAvg)
//! FedAdam: m ← β1·m + (1−β1)·Δ;  v ← β2·v + (1−β2)·Δ²;  θ ← θ + η·m / (sqrt(v) + τ)
//! ```

use alloc::vec;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The weighted mean `Σ w_k·Δ_k / Σ w_k` of equally long updates, in `f64`.
///
/// This is the plaintext reference of what the encrypted aggregation computes.
pub fn weighted_mean(updates: &[(&[f32], f64)]) -> Result<Vec<f32>> {
    let Some(((first, _), rest)) = updates.split_first() else {
        return Err(Error::EmptyDataset);
    };
    if let Some((update, _)) = rest.iter().find(|(u, _)| u.len() != first.len()) {
        return Err(Error::ParamLength { expected: first.len(), got: update.len() });
    }
    if let Some(&(_, weight)) = updates.iter().find(|(_, w)| !(w.is_finite() && *w >= 0.0)) {
        return Err(Error::InvalidHyperparameter { name: "weight", value: weight });
    }
    let total: f64 = updates.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return Err(Error::InvalidHyperparameter { name: "total weight", value: total });
    }
    let mut sum = vec![0.0f64; first.len()];
    for (update, weight) in updates {
        for (s, &u) in sum.iter_mut().zip(*update) {
            *s += weight * f64::from(u);
        }
    }
    Ok(sum.into_iter().map(|s| (s / total) as f32).collect())
}

/// Which server rule to use, and its hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ServerOptimizerConfig {
    /// `θ ← θ + lr·Δ`.
    FedAvg {
        /// Server learning rate (1.0 for classic FedAvg).
        lr: f32,
    },
    /// Adam on the server with the mean update as the (negative) pseudo-gradient.
    FedAdam {
        /// Server learning rate `η`.
        lr: f32,
        /// First-moment decay `β1`.
        beta1: f32,
        /// Second-moment decay `β2`.
        beta2: f32,
        /// Adaptivity `τ` (> 0).
        tau: f32,
    },
}

impl Default for ServerOptimizerConfig {
    fn default() -> Self {
        Self::FedAvg { lr: 1.0 }
    }
}

/// The server's optimizer state across rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerOptimizer {
    config: ServerOptimizerConfig,
    first: Vec<f32>,
    second: Vec<f32>,
}

impl ServerOptimizer {
    /// Fresh state for `len` parameters.
    pub fn new(config: ServerOptimizerConfig, len: usize) -> Result<Self> {
        let bad = |name, value: f32| Err(Error::InvalidHyperparameter { name, value: value.into() });
        match config {
            ServerOptimizerConfig::FedAvg { lr } if !(lr.is_finite() && lr > 0.0) => return bad("lr", lr),
            ServerOptimizerConfig::FedAdam { lr, beta1, beta2, tau } => {
                if !(lr.is_finite() && lr > 0.0) {
                    return bad("lr", lr);
                }
                if !(0.0..1.0).contains(&beta1) {
                    return bad("beta1", beta1);
                }
                if !(0.0..1.0).contains(&beta2) {
                    return bad("beta2", beta2);
                }
                if !(tau.is_finite() && tau > 0.0) {
                    return bad("tau", tau);
                }
            }
            ServerOptimizerConfig::FedAvg { .. } => {}
        }
        let moments = match config {
            ServerOptimizerConfig::FedAdam { .. } => len,
            ServerOptimizerConfig::FedAvg { .. } => 0,
        };
        Ok(Self { config, first: vec![0.0; moments], second: vec![0.0; moments] })
    }

    /// Refuses a state (from another party) that is not for `config` and `len` parameters: the
    /// rule a federation agreed on must be the one applied.
    pub fn check(&self, config: ServerOptimizerConfig, len: usize) -> Result<()> {
        if self.config != config {
            return Err(Error::ServerRuleMismatch);
        }
        let moments = match config {
            ServerOptimizerConfig::FedAdam { .. } => len,
            ServerOptimizerConfig::FedAvg { .. } => 0,
        };
        for state in [&self.first, &self.second] {
            if state.len() != moments {
                return Err(Error::ParamLength { expected: moments, got: state.len() });
            }
        }
        if let Some(index) = self.first.iter().chain(&self.second).position(|v| !v.is_finite()) {
            return Err(Error::NonFiniteValue { index });
        }
        Ok(())
    }

    /// Applies one round's mean update to the global parameters.
    pub fn apply(&mut self, global: &mut [f32], mean_update: &[f32]) -> Result<()> {
        if mean_update.len() != global.len() {
            return Err(Error::ParamLength { expected: global.len(), got: mean_update.len() });
        }
        match self.config {
            ServerOptimizerConfig::FedAvg { lr } => {
                global.iter_mut().zip(mean_update).for_each(|(p, &d)| *p += lr * d);
            }
            ServerOptimizerConfig::FedAdam { lr, beta1, beta2, tau } => {
                if self.first.len() != global.len() {
                    return Err(Error::ParamLength { expected: self.first.len(), got: global.len() });
                }
                for (((p, &d), m), v) in global.iter_mut().zip(mean_update).zip(&mut self.first).zip(&mut self.second) {
                    *m = beta1 * *m + (1.0 - beta1) * d;
                    *v = beta2 * *v + (1.0 - beta2) * d * d;
                    *p += lr * *m / (libm::sqrtf(*v) + tau);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_mean_weighs_by_sample_count() {
        let a = [1.0f32, 0.0];
        let b = [4.0f32, 3.0];
        let mean = weighted_mean(&[(&a, 100.0), (&b, 200.0)]).unwrap();
        assert_eq!(mean, [3.0, 2.0]);
        assert_eq!(weighted_mean(&[(&a, 1.0), (&b[..1], 1.0)]), Err(Error::ParamLength { expected: 2, got: 1 }));
        assert!(weighted_mean(&[(&a, -1.0)]).is_err());
    }

    #[test]
    fn fedavg_adds_the_mean_update() {
        let mut server = ServerOptimizer::new(ServerOptimizerConfig::default(), 2).unwrap();
        let mut global = [1.0f32, 2.0];
        server.apply(&mut global, &[0.5, -1.0]).unwrap();
        assert_eq!(global, [1.5, 1.0]);
    }

    #[test]
    fn fedadam_first_round_moves_by_about_lr() {
        let config = ServerOptimizerConfig::FedAdam { lr: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-9 };
        let mut server = ServerOptimizer::new(config, 1).unwrap();
        let mut global = [0.0f32];
        server.apply(&mut global, &[0.02]).unwrap();
        // m = 0.002, v = 4e-6 -> step = 0.1 · 0.002 / 0.002 = 0.1
        assert!((global[0] - 0.1).abs() < 1e-5, "{global:?}");
    }
}
