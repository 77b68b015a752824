//! Test data shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use fedcare_core::Dataset;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

/// `rows × width` standard-ish features and labels from a hidden linear rule.
/// `noise = 0` gives a linearly separable problem.
pub fn linear_problem(rows: usize, width: usize, noise: f32, seed: u64) -> Dataset {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let truth: Vec<f32> = (0..width).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let mut features = Vec::with_capacity(rows * width);
    let mut labels = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f32> = (0..width).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let score: f32 =
            row.iter().zip(&truth).map(|(x, w)| x * w).sum::<f32>() + noise * rng.random_range(-1.0f32..1.0);
        labels.push(if score > 0.3 { 1.0 } else { 0.0 });
        features.extend(row);
    }
    Dataset::new(features, labels, width).unwrap()
}

/// Random values in `[-scale, scale)`.
pub fn uniform(len: usize, scale: f32, seed: u64) -> Vec<f32> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-scale..scale)).collect()
}
