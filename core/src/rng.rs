//! Seeded, reproducible randomness for initialisation and batch order.
//!
//! Every random choice in training comes from a [`Xoshiro256PlusPlus`] seeded from the
//! training seed and a [`Stream`] tag, so initialisation and shuffling never share a stream and
//! the same seed always gives the same bits. This PRNG is for *training* only: it is not
//! cryptographic and must never seed keys or noise.

use alloc::vec::Vec;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use crate::spec::ModelSpec;

/// The independent random streams derived from one training seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Stream {
    /// Parameter initialisation.
    Init = 0x1f2e_3d4c_5b6a_7988,
    /// Mini-batch order.
    Shuffle = 0x0123_4567_89ab_cdef,
}

/// A deterministic generator for `stream` of `seed`.
pub fn stream(seed: u64, stream: Stream) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed ^ stream as u64)
}

/// Fresh parameters for `spec`, as PyTorch's `nn.Linear` draws them: every weight and bias of a
/// layer uniform in `±1/sqrt(fan_in)`.
pub fn init_params(spec: &ModelSpec, seed: u64) -> Vec<f32> {
    let mut rng = stream(seed, Stream::Init);
    let mut params = Vec::with_capacity(spec.param_count());
    for layer in spec.layers() {
        let bound = 1.0 / libm::sqrtf(layer.fan_in as f32);
        let count = layer.fan_in * layer.fan_out + layer.fan_out;
        params.extend((0..count).map(|_| rng.random_range(-bound..bound)));
    }
    params
}

/// The mini-batch order of successive epochs: a fresh permutation of the rows each epoch.
#[derive(Debug, Clone)]
pub struct BatchOrder {
    rng: Xoshiro256PlusPlus,
    order: Vec<u32>,
}

impl BatchOrder {
    /// The batch order of training with `seed` over `rows` rows.
    ///
    /// Row indices are `u32` so that the GPU trainer can upload the same order as it is.
    ///
    /// # Panics
    /// If `rows` exceeds [`MAX_ROWS`](crate::dataset::MAX_ROWS) ([`Dataset::new`](crate::Dataset::new) refuses such data).
    pub fn new(seed: u64, rows: usize) -> Self {
        let rows = u32::try_from(rows).expect("datasets are limited to MAX_ROWS rows");
        Self { rng: stream(seed, Stream::Shuffle), order: (0..rows).collect() }
    }

    /// Shuffles and returns the row order of the next epoch.
    pub fn next_epoch(&mut self) -> &[u32] {
        self.order.shuffle(&mut self.rng);
        &self.order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_deterministic_and_bounded() {
        let spec = ModelSpec::mlp(16, &[8]).unwrap();
        let a = init_params(&spec, 7);
        assert_eq!(a, init_params(&spec, 7));
        assert_ne!(a, init_params(&spec, 8));
        let first = &spec.layers()[0];
        assert!(a[first.weights()].iter().all(|w| w.abs() <= 0.25));
        assert!(a[first.weights()].iter().any(|w| w.abs() > 0.2));
    }

    #[test]
    fn batch_order_is_a_fresh_permutation_each_epoch() {
        let mut order = BatchOrder::new(3, 100);
        let first = order.next_epoch().to_vec();
        let second = order.next_epoch().to_vec();
        assert_ne!(first, second);
        let mut sorted = first.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<u32>>());
        assert_eq!(first, BatchOrder::new(3, 100).next_epoch());
    }
}
