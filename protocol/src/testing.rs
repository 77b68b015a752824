//! Helpers for tests of this crate and of the shells (the `testing` feature): what the
//! federation computes, without the encryption around it.

/// The decoded sum of `vectors` as the federation computes it: each encoded by the default
/// codec (64 parties at most), summed modulo the plaintext space, decoded.
///
/// # Panics
/// When a vector does not fit the codec (a test's mistake).
pub fn sum_through_codec(vectors: &[Vec<f64>]) -> Vec<f64> {
    let codec = fedcare_core::Codec::new(fedcare_core::CodecConfig::default()).expect("the default codec");
    let mut sum = vec![0u64; vectors[0].len()];
    for values in vectors {
        let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        let encoded = codec.encode(&values, 1.0).expect("values the codec encodes");
        assert_eq!(encoded.clipped, 0);
        codec.add_assign(&mut sum, &encoded.words).expect("vectors of one length");
    }
    let integers = codec.decode_sum_integers(&sum, vectors.len() as u32).expect("a sum of at most 64 vectors");
    integers.iter().map(|&i| i as f64 * codec.resolution()).collect()
}
