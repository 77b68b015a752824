//! Local optimizers: SGD with momentum and Adam, with PyTorch's update rules.
//!
//! ```text
//! SGD:  v ← m·v + g;            θ ← θ − lr·v
//! Adam: m ← β1·m + (1−β1)·g;    v ← β2·v + (1−β2)·g²
//!       θ ← θ − lr·(m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + ε)
//! ```

use alloc::vec;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Which optimizer to use, and its hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum OptimizerConfig {
    /// Stochastic gradient descent with (heavy-ball) momentum; `momentum = 0` is plain SGD.
    Sgd {
        /// Learning rate.
        lr: f32,
        /// Momentum factor in `[0, 1)`.
        momentum: f32,
    },
    /// Adam (Kingma & Ba), bias-corrected.
    Adam {
        /// Learning rate.
        lr: f32,
        /// Decay of the first moment, in `[0, 1)`.
        beta1: f32,
        /// Decay of the second moment, in `[0, 1)`.
        beta2: f32,
        /// Added to the denominator, `> 0`.
        eps: f32,
    },
}

impl OptimizerConfig {
    /// Adam with PyTorch's defaults and the given learning rate.
    pub fn adam(lr: f32) -> Self {
        Self::Adam { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }

    /// Checks every hyperparameter's range.
    pub fn validate(&self) -> Result<()> {
        let positive = |name, v: f32| {
            if v.is_finite() && v > 0.0 { Ok(()) } else { Err(Error::InvalidHyperparameter { name, value: v.into() }) }
        };
        let fraction = |name, v: f32| {
            if (0.0..1.0).contains(&v) { Ok(()) } else { Err(Error::InvalidHyperparameter { name, value: v.into() }) }
        };
        match *self {
            Self::Sgd { lr, momentum } => {
                positive("lr", lr)?;
                fraction("momentum", momentum)
            }
            Self::Adam { lr, beta1, beta2, eps } => {
                positive("lr", lr)?;
                fraction("beta1", beta1)?;
                fraction("beta2", beta2)?;
                positive("eps", eps)
            }
        }
    }
}

/// An optimizer's state for one parameter vector.
#[derive(Debug, Clone)]
pub struct Optimizer {
    config: OptimizerConfig,
    first: Vec<f32>,
    second: Vec<f32>,
    steps: u32,
}

impl Optimizer {
    /// Fresh state (zero moments) for `len` parameters.
    pub fn new(config: OptimizerConfig, len: usize) -> Result<Self> {
        config.validate()?;
        let second = match config {
            OptimizerConfig::Adam { .. } => vec![0.0; len],
            OptimizerConfig::Sgd { .. } => Vec::new(),
        };
        Ok(Self { config, first: vec![0.0; len], second, steps: 0 })
    }

    /// Number of steps taken.
    pub fn steps(&self) -> u32 {
        self.steps
    }

    /// One update of `params` along `grad`.
    ///
    /// # Panics
    /// If `params` or `grad` differ in length from the state (caller bug).
    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) {
        assert!(params.len() == self.first.len() && grad.len() == params.len(), "optimizer length mismatch");
        self.steps = self.steps.saturating_add(1);
        match self.config {
            OptimizerConfig::Sgd { lr, momentum } => {
                for ((p, &g), v) in params.iter_mut().zip(grad).zip(&mut self.first) {
                    *v = momentum * *v + g;
                    *p -= lr * *v;
                }
            }
            OptimizerConfig::Adam { lr, beta1, beta2, eps } => {
                let t = self.steps as i32;
                let correction1 = 1.0 - libm::powf(beta1, t as f32);
                let correction2 = 1.0 - libm::powf(beta2, t as f32);
                let step_size = lr / correction1;
                let root_correction2 = libm::sqrtf(correction2);
                for (((p, &g), m), v) in params.iter_mut().zip(grad).zip(&mut self.first).zip(&mut self.second) {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    let denom = libm::sqrtf(*v) / root_correction2 + eps;
                    *p -= step_size * *m / denom;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sgd_momentum_matches_hand_computation() {
        let mut opt = Optimizer::new(OptimizerConfig::Sgd { lr: 0.1, momentum: 0.5 }, 1).unwrap();
        let mut p = [1.0f32];
        opt.step(&mut p, &[2.0]); // v = 2, p = 1 - 0.2
        opt.step(&mut p, &[2.0]); // v = 3, p = 0.8 - 0.3
        assert!((p[0] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        let mut opt = Optimizer::new(OptimizerConfig::adam(0.01), 2).unwrap();
        let mut p = [0.0f32, 0.0];
        opt.step(&mut p, &[3.0, -0.5]);
        assert!((p[0] + 0.01).abs() < 1e-6 && (p[1] - 0.01).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn bad_hyperparameters_are_refused() {
        assert_eq!(
            Optimizer::new(OptimizerConfig::Sgd { lr: -1.0, momentum: 0.0 }, 1).err(),
            Some(Error::InvalidHyperparameter { name: "lr", value: -1.0 })
        );
        assert!(OptimizerConfig::Adam { lr: 0.1, beta1: 1.0, beta2: 0.9, eps: 1e-8 }.validate().is_err());
    }
}
