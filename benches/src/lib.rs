//! Shared inputs of fedcare's benchmarks, so every bench (and the peers it is compared with)
//! measures the same problem.
//!
//! The training problem is the one `../shared/peers/torch_train_bench.py` uses: standard-normal
//! features, labels from a random linear rule plus noise, thresholded so that 11 % are positive.

use fedcare_core::Dataset;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

/// Fraction of positive labels in the benchmark problem.
pub const POSITIVE_RATE: f64 = 0.11;

/// `rows × width` standard-normal features; label 1 for the top 11 % of `x·w + 0.5·noise`.
pub fn readmission_like_problem(rows: usize, width: usize, seed: u64) -> Dataset {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut normal = || -> f32 { StandardNormal.sample(&mut rng) };
    let truth: Vec<f32> = (0..width).map(|_| normal()).collect();
    let mut features = Vec::with_capacity(rows * width);
    let mut scores = Vec::with_capacity(rows);
    for _ in 0..rows {
        let row: Vec<f32> = (0..width).map(|_| normal()).collect();
        let score: f32 = row.iter().zip(&truth).map(|(x, w)| x * w).sum::<f32>() + 0.5 * normal();
        scores.push(score);
        features.extend(row);
    }
    let mut sorted = scores.clone();
    sorted.sort_unstable_by(f32::total_cmp);
    let threshold = sorted[((1.0 - POSITIVE_RATE) * rows as f64) as usize];
    let labels = scores.iter().map(|&s| if s > threshold { 1.0 } else { 0.0 }).collect();
    // Invariant: finite features, 0/1 labels and rows × width values by construction.
    Dataset::new(features, labels, width).expect("generated problem is valid")
}
