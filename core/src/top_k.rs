//! The shape of a `top_k` categorical column and the rule that chooses its slots, as the
//! aggregator, every hospital and the model file must agree on them.
//!
//! A `top_k` column hashes each value into one of `buckets` buckets (the hash lives with the
//! schemas, in `fedcare-data`) and one-hots over the `k` buckets with the largest pooled counts
//! plus one "other or missing" slot, so its width `k + 1` is fixed before any data is seen. The
//! pooled counts come from the secure sum of the setup session; [`choose_top_k`] picks the
//! buckets from them and [`slot_table`] maps every bucket to its slot.
//!
//! A consortium may key the hash with a secret the aggregator does not hold; the key's public
//! fingerprint then names the schema ([`keyed_schema_id`]), so that the aggregator, which holds
//! only the fingerprint, and the hospitals, which hold the key, name it alike.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The default number of hash buckets of a `top_k` column.
pub const DEFAULT_BUCKETS: u32 = 1024;
/// The most buckets a `top_k` column may have (each costs two values in the setup vector).
pub const MAX_BUCKETS: u32 = 1 << 16;

/// What a keyed schema's id carries after the schema's own id: the key's fingerprint.
pub const KEYED_ID_MARK: &str = "+top_k-key:";

/// The id of schema `id` with its `top_k` columns hashed under the key of fingerprint
/// `fingerprint`.
pub fn keyed_schema_id(id: &str, fingerprint: &str) -> String {
    format!("{id}{KEYED_ID_MARK}{fingerprint}")
}

/// The fingerprint of the `top_k` key a schema id names, if any.
pub fn key_fingerprint_of(id: &str) -> Option<&str> {
    id.split_once(KEYED_ID_MARK).map(|(_, fingerprint)| fingerprint)
}

/// The shape of one `top_k` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopKShape {
    /// Hash buckets.
    pub buckets: u32,
    /// One-hot slots (the most frequent buckets).
    pub k: u32,
}

impl TopKShape {
    /// Refuses `k = 0`, `buckets` outside `1..=MAX_BUCKETS` and `k > buckets`.
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 {
            return Err(Error::TopKZero);
        }
        if !(1..=MAX_BUCKETS).contains(&self.buckets) {
            return Err(Error::TopKBuckets { buckets: self.buckets, max: MAX_BUCKETS });
        }
        if self.k > self.buckets {
            return Err(Error::TopKExceedsBuckets { k: self.k, buckets: self.buckets });
        }
        Ok(())
    }

    /// Checks a choice of buckets for the `column`-th `top_k` column, received from a peer or
    /// read from a file: at most `k` distinct buckets, each below `buckets`.
    pub fn check_choice(&self, column: usize, chosen: &[u32]) -> Result<()> {
        if chosen.len() > self.k as usize {
            return Err(Error::TooManyBuckets { column, chosen: chosen.len(), k: self.k });
        }
        check_distinct(column, chosen)?;
        match chosen.iter().find(|&&bucket| bucket >= self.buckets) {
            Some(&bucket) => Err(Error::BucketOutOfRange { column, bucket, buckets: self.buckets }),
            None => Ok(()),
        }
    }
}

/// Refuses a choice that lists a bucket twice.
pub fn check_distinct(column: usize, chosen: &[u32]) -> Result<()> {
    for (i, bucket) in chosen.iter().enumerate() {
        if chosen[..i].contains(bucket) {
            return Err(Error::DuplicateBucket { column, bucket: *bucket });
        }
    }
    Ok(())
}

/// The `k` buckets with the largest counts, largest first (ties: the lower bucket first);
/// buckets with a count of 0 are never chosen, so fewer than `k` may come back.
pub fn choose_top_k(counts: &[u64], k: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..counts.len() as u32).filter(|&b| counts[b as usize] > 0).collect();
    order.sort_by(|&a, &b| counts[b as usize].cmp(&counts[a as usize]).then(a.cmp(&b)));
    order.truncate(k);
    order
}

/// The slot of every bucket of the `column`-th `top_k` column: `chosen[i]` maps to slot `i`,
/// every other bucket (and "missing", bucket index `buckets`) to the "other or missing" slot `k`.
pub fn slot_table(shape: TopKShape, column: usize, chosen: &[u32]) -> Result<Vec<u32>> {
    shape.check_choice(column, chosen)?;
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
        shape.validate().unwrap();
        assert_eq!(TopKShape { buckets: 8, k: 0 }.validate(), Err(Error::TopKZero));
        assert_eq!(TopKShape { buckets: 2, k: 3 }.validate(), Err(Error::TopKExceedsBuckets { k: 3, buckets: 2 }));
        assert_eq!(TopKShape { buckets: 0, k: 1 }.validate(), Err(Error::TopKBuckets { buckets: 0, max: MAX_BUCKETS }));
        assert!(TopKShape { buckets: MAX_BUCKETS + 1, k: 1 }.validate().is_err());
        assert_eq!(shape.check_choice(2, &[1, 2, 3, 4]), Err(Error::TooManyBuckets { column: 2, chosen: 4, k: 3 }));
        assert_eq!(shape.check_choice(0, &[8]), Err(Error::BucketOutOfRange { column: 0, bucket: 8, buckets: 8 }));
        assert_eq!(shape.check_choice(1, &[1, 1]), Err(Error::DuplicateBucket { column: 1, bucket: 1 }));
        assert_eq!(slot_table(shape, 0, &[6, 1]).unwrap(), [3, 1, 3, 3, 3, 3, 0, 3, 3]);
    }
}
