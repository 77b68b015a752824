//! Categorical columns whose one-hot slots are the federation's `top_k` most frequent values,
//! chosen through the secure sum so that no hospital's counts are revealed and no category
//! name ever leaves a hospital.
//!
//! Constraints: the model's input width must be fixed before the setup session (the aggregator
//! configures the model up front); the hospitals must agree on a value's slot without sending
//! values anywhere; the secure sum carries fixed-length vectors of numbers only.
//!
//! Solution: every value is mapped to one of `buckets` buckets by a hash that every hospital
//! computes identically ([`bucket_of`]: BLAKE3 in key-derivation mode with a fixed context, over
//! the column name and the value, modulo `buckets`). The column's inputs are `top_k` one-hot
//! slots plus one "other or missing" slot, so its width (`top_k + 1`) is known from the schema.
//! In the setup session each hospital adds its per-bucket counts of its training rows to the
//! encrypted setup vector (exact integer limbs, in `fedcare-federation`'s contribution layout);
//! from the decrypted totals the aggregator picks, per column, the `top_k` buckets with the
//! largest global counts ([`choose_top_k`]; ties go to the lower bucket index; buckets nobody saw
//! are never chosen, so with fewer distinct buckets than `top_k` the remaining slots stay 0 for
//! every row). The chosen buckets, in slot order, travel to every hospital in each task next to
//! the feature scaling and are stored in the model file, so `fedcare predict` maps values
//! identically. The shapes and the choice rule are `fedcare-core`'s ([`fedcare_core::top_k`]):
//! the aggregator, which never reads patient data, applies them too.
//!
//! Pros: one pass, no extra round, exact counts, nothing but bucket totals is decrypted.
//! Cons: two values may share a bucket (then they share a slot); with `buckets` well above the
//! number of distinct values this is rare, and it is the same for every hospital. The bucket
//! totals (not any hospital's) are public to the federation.

pub use fedcare_core::top_k::{DEFAULT_BUCKETS, MAX_BUCKETS, TopKShape, choose_top_k, slot_table};

/// The key-derivation context of [`bucket_of`]; changing it changes every model's meaning.
const CONTEXT: &str = "fedcare 2026 top_k category bucket v1";

/// The bucket of `value` in column `column` (`buckets` ≥ 1): the same on every machine.
pub fn bucket_of(column: &str, value: &str, buckets: u32) -> u32 {
    let mut hasher = blake3::Hasher::new_derive_key(CONTEXT);
    // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
    hasher.update(&(column.len() as u64).to_le_bytes());
    hasher.update(column.as_bytes());
    hasher.update(value.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    (u64::from_le_bytes(first) % u64::from(buckets.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_depend_on_the_column() {
        assert_eq!(bucket_of("ward", "ICU", 1024), bucket_of("ward", "ICU", 1024));
        assert!(bucket_of("ward", "ICU", 1024) < 1024);
        assert_eq!(bucket_of("ward", "ICU", 1), 0);
        // Over many values, the column name changes most buckets.
        let differ = (0..200).filter(|i| bucket_of("a", &i.to_string(), 1024) != bucket_of("b", &i.to_string(), 1024));
        assert!(differ.count() > 190);
        // The length prefix separates the column from the value.
        let pairs = (0..200)
            .filter(|i| bucket_of("ab", &format!("c{i}"), 1 << 16) == bucket_of("a", &format!("bc{i}"), 1 << 16));
        assert!(pairs.count() < 5);
    }
}
