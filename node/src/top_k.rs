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
//! encrypted setup vector (exact integer limbs, see [`crate::contribution`]); from the decrypted
//! totals the aggregator picks, per column, the `top_k` buckets with the largest global counts
//! ([`choose_top_k`]; ties go to the lower bucket index; buckets nobody saw are never chosen, so
//! with fewer distinct buckets than `top_k` the remaining slots stay 0 for every row). The chosen
//! buckets, in slot order, travel to every hospital in each task next to the feature scaling
//! and are stored in the model file, so `fedcare predict` maps values identically.
//!
//! Pros: one pass, no extra round, exact counts, nothing but bucket totals is decrypted.
//! Cons: two values may share a bucket (then they share a slot); with `buckets` well above the
//! number of distinct values this is rare, and it is the same for every hospital. The bucket
//! totals (not any hospital's) are public to the federation.

use anyhow::{Result, ensure};

/// The default number of hash buckets of a `top_k` column.
pub const DEFAULT_BUCKETS: u32 = 1024;
/// The most buckets a `top_k` column may have (each costs two values in the setup vector).
pub const MAX_BUCKETS: u32 = 1 << 16;

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

/// The shape of one `top_k` column, as the aggregator and hospitals must agree on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopKShape {
    /// Hash buckets.
    pub buckets: u32,
    /// One-hot slots (the most frequent buckets).
    pub k: u32,
}

impl TopKShape {
    /// Refuses `k = 0`, `buckets = 0`, `k > buckets` and more than [`MAX_BUCKETS`] buckets.
    pub fn validate(&self, column: &str) -> Result<()> {
        ensure!(self.k >= 1, "categorical column {column:?}: top_k must be at least 1");
        ensure!(
            (1..=MAX_BUCKETS).contains(&self.buckets),
            "categorical column {column:?}: buckets is {}, it must be 1 to {MAX_BUCKETS}",
            self.buckets
        );
        ensure!(
            self.k <= self.buckets,
            "categorical column {column:?}: top_k ({}) exceeds its buckets ({})",
            self.k,
            self.buckets
        );
        Ok(())
    }

    /// Checks a choice of buckets received from a peer or read from a file: at most `k`
    /// distinct buckets, each below `buckets`.
    pub fn check_choice(&self, chosen: &[u32]) -> Result<()> {
        ensure!(chosen.len() <= self.k as usize, "{} buckets chosen, top_k is {}", chosen.len(), self.k);
        if let Some(&bad) = chosen.iter().find(|&&b| b >= self.buckets) {
            anyhow::bail!("bucket {bad} chosen, the column has {} buckets", self.buckets);
        }
        let mut sorted = chosen.to_vec();
        sorted.sort_unstable();
        ensure!(sorted.windows(2).all(|w| w[0] != w[1]), "a bucket is chosen twice: {chosen:?}");
        Ok(())
    }
}

/// The `k` buckets with the largest counts, largest first (ties: the lower bucket first);
/// buckets with a count of 0 are never chosen, so fewer than `k` may come back.
pub fn choose_top_k(counts: &[u64], k: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..counts.len() as u32).filter(|&b| counts[b as usize] > 0).collect();
    order.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// Slot of every bucket for one column: `chosen[i]` maps to slot `i`, every other bucket (and
/// "missing", bucket index `buckets`) to the "other or missing" slot `k`.
pub fn slot_table(shape: TopKShape, chosen: &[u32]) -> Result<Vec<u32>> {
    shape.check_choice(chosen)?;
    let mut slots = vec![shape.k; shape.buckets as usize + 1];
    for (slot, &bucket) in chosen.iter().enumerate() {
        slots[bucket as usize] = slot as u32;
    }
    Ok(slots)
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

    #[test]
    fn the_largest_counts_win_and_ties_go_to_the_lower_bucket() {
        let counts = [5, 0, 9, 5, 1, 9, 0, 5];
        assert_eq!(choose_top_k(&counts, 3), [2, 5, 0]);
        assert_eq!(choose_top_k(&counts, 5), [2, 5, 0, 3, 7]);
        // Fewer seen buckets than k: only those, never an unseen one.
        assert_eq!(choose_top_k(&counts, 10), [2, 5, 0, 3, 7, 4]);
        assert_eq!(choose_top_k(&[0, 0, 0], 2), Vec::<u32>::new());
        assert_eq!(choose_top_k(&counts, 0), Vec::<u32>::new());
    }

    #[test]
    fn shapes_and_choices_are_checked() {
        let shape = TopKShape { buckets: 8, k: 3 };
        shape.validate("c").unwrap();
        let error = TopKShape { buckets: 8, k: 0 }.validate("c").unwrap_err().to_string();
        assert!(error.contains("at least 1"), "{error}");
        let error = TopKShape { buckets: 2, k: 3 }.validate("c").unwrap_err().to_string();
        assert!(error.contains("exceeds its buckets (2)"), "{error}");
        assert!(TopKShape { buckets: 0, k: 0 }.validate("c").is_err());
        assert!(TopKShape { buckets: MAX_BUCKETS + 1, k: 1 }.validate("c").is_err());
        assert!(shape.check_choice(&[1, 2, 3, 4]).is_err());
        assert!(shape.check_choice(&[8]).is_err());
        assert!(shape.check_choice(&[1, 1]).is_err());
        assert_eq!(slot_table(shape, &[6, 1]).unwrap(), [3, 1, 3, 3, 3, 3, 0, 3, 3]);
    }
}
