//! Feature statistics: the exact moments a hospital contributes for each numeric column, and
//! the mean and standard deviation the federation standardises that column with.
//!
//! [`Moments`] are integers (values in fixed point, [`MOMENT_SCALE`] steps per unit), so that
//! their sum over hospitals — computed under encryption — is exact and the pooled statistics do
//! not depend on the order or grouping of the hospitals. [`ColumnStats`] is what a model file
//! stores per numeric input and what every hospital standardises with.

use serde::{Deserialize, Serialize};

/// Fixed-point steps per unit of [`Moments`]: `round(x · 256)`.
pub const MOMENT_SCALE: f64 = 256.0;

/// Exact moments of one numeric column: count, `Σ round(x · 256)` and `Σ round(x² · 256)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moments {
    /// Rows where the value is present.
    pub count: u64,
    /// `Σ round(x · 256)` (wrapping).
    pub sum: i64,
    /// `Σ round(x² · 256)` (wrapping).
    pub squares: i64,
}

impl Moments {
    /// Adds one present value.
    pub fn push(&mut self, value: f64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(libm::round(value * MOMENT_SCALE) as i64);
        self.squares = self.squares.wrapping_add(libm::round(value * value * MOMENT_SCALE) as i64);
    }

    /// Adds another hospital's moments.
    pub fn add(&mut self, other: &Moments) {
        self.count += other.count;
        self.sum = self.sum.wrapping_add(other.sum);
        self.squares = self.squares.wrapping_add(other.squares);
    }

    /// The column's mean and standard deviation.
    pub fn stats(&self) -> ColumnStats {
        ColumnStats::from_moments(self.count as f64, self.sum as f64 / MOMENT_SCALE, self.squares as f64 / MOMENT_SCALE)
    }
}

/// Mean and standard deviation of one numeric column: `x ↦ (x − mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    /// Mean.
    pub mean: f64,
    /// Standard deviation (1 when the column is constant or empty; always > 0).
    pub std: f64,
}

impl ColumnStats {
    /// From a count, a sum and a sum of squares (pooled over hospitals by the secure sum).
    pub fn from_moments(count: f64, sum: f64, sum_squares: f64) -> Self {
        if count < 1.0 {
            return Self { mean: 0.0, std: 1.0 };
        }
        let mean = sum / count;
        let variance = (sum_squares / count - mean * mean).max(0.0);
        let std = libm::sqrt(variance);
        Self { mean, std: if std > 1e-12 { std } else { 1.0 } }
    }

    /// Statistics received from a peer or read from a file: a non-positive or non-finite
    /// standard deviation becomes 1 (the value is only centred), a non-finite mean 0.
    pub fn sanitized(mean: f64, std: f64) -> Self {
        Self {
            mean: if mean.is_finite() { mean } else { 0.0 },
            std: if std.is_finite() && std > 0.0 { std } else { 1.0 },
        }
    }

    /// Whether both figures are finite and the standard deviation positive.
    pub fn is_valid(&self) -> bool {
        self.mean.is_finite() && self.std.is_finite() && self.std > 0.0
    }

    /// `value` standardised.
    pub fn standardize(&self, value: f32) -> f32 {
        ((f64::from(value) - self.mean) / self.std) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_moments_give_the_pooled_mean_and_deviation() {
        let (mut a, mut b) = (Moments::default(), Moments::default());
        [1.0, 2.0, 3.0].iter().for_each(|&v| a.push(v));
        [4.0, 5.0].iter().for_each(|&v| b.push(v));
        a.add(&b);
        let stats = a.stats();
        assert_eq!(a.count, 5);
        assert!((stats.mean - 3.0).abs() < 1e-12);
        assert!((stats.std - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(Moments::default().stats(), ColumnStats { mean: 0.0, std: 1.0 });
        let constant = ColumnStats::from_moments(3.0, 6.0, 12.0);
        assert_eq!(constant.std, 1.0, "a constant column is only centred");
        assert_eq!(ColumnStats::sanitized(f64::NAN, -1.0), ColumnStats { mean: 0.0, std: 1.0 });
        assert!((ColumnStats { mean: 1.0, std: 2.0 }.standardize(5.0) - 2.0).abs() < 1e-7);
    }
}
