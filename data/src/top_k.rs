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
//!
//! # The consortium's key
//! Unkeyed, the hash is public: anyone holding the bucket totals (the aggregator included) could
//! hash a dictionary of codes (ICD-9 has about 17,000) and read the federation's count of each.
//! With a [`BucketKey`] — 256 secret bits every hospital of the consortium holds and the
//! aggregator does not (`top_k_key` in `hospital.toml`) — the hash is BLAKE3's keyed mode over
//! the same input, so a bucket says nothing about which codes fall in it without the key. The
//! key's [`fingerprint`](BucketKey::fingerprint) (public: BLAKE3 of the key, 64 bits shown)
//! becomes part of the schema id ([`crate::Schema::with_bucket_key`]): a hospital with another
//! key, or none, is refused by the federation's schema check, and `fedcare predict` refuses a
//! model trained under a key it was not given.

pub use fedcare_core::top_k::{DEFAULT_BUCKETS, MAX_BUCKETS, TopKShape, choose_top_k, slot_table};

/// The key-derivation context of the unkeyed [`bucket_of`]; changing it changes every model's
/// meaning.
const CONTEXT: &str = "fedcare 2026 top_k category bucket v1";
/// The key-derivation context of [`BucketKey::fingerprint`].
const FINGERPRINT_CONTEXT: &str = "fedcare 2026 top_k key fingerprint v1";

/// The consortium's secret key of the `top_k` bucket hash: 32 bytes, written as 64 hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct BucketKey([u8; 32]);

impl core::fmt::Debug for BucketKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "BucketKey({})", self.fingerprint())
    }
}

/// Why a `top_k` key could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BucketKeyError {
    /// The text is not 64 hex digits.
    #[error("a top_k key is 64 hex digits (32 bytes); found {found}")]
    Malformed {
        /// What was found instead, described (never the text itself: it may be a secret).
        found: String,
    },
    /// The key file could not be read.
    #[error("reading the top_k key {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system for a new top_k key: {0}")]
    Random(String),
}

impl BucketKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, BucketKeyError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| BucketKeyError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// The key of 64 hex digits (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, BucketKeyError> {
        let text = text.trim();
        let malformed = |found: String| BucketKeyError::Malformed { found };
        if text.len() != 64 {
            return Err(malformed(format!("{} characters", text.chars().count())));
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
            let digits = core::str::from_utf8(pair).ok().filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
            *byte = digits
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| malformed("a character that is not a hex digit".into()))?;
        }
        Ok(Self(bytes))
    }

    /// The key in the file `path` (64 hex digits).
    pub fn read(path: &std::path::Path) -> Result<Self, BucketKeyError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| BucketKeyError::Read { path: path.to_path_buf(), source })?;
        Self::from_hex(&text)
    }

    /// The key as 64 hex digits, for its file.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// A public name of the key: 16 hex digits of a BLAKE3 derivation from it. It tells keys
    /// apart and says nothing of the key.
    pub fn fingerprint(&self) -> String {
        let derived = blake3::derive_key(FINGERPRINT_CONTEXT, &self.0);
        derived[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The bucket of `value` in column `column` (`buckets` ≥ 1): the same on every machine for the
/// same `key` (BLAKE3 keyed by it; without one, BLAKE3 in key-derivation mode with a fixed
/// context, which anyone can compute).
pub fn bucket_of(column: &str, value: &str, buckets: u32, key: Option<&BucketKey>) -> u32 {
    let mut hasher = match key {
        Some(key) => blake3::Hasher::new_keyed(&key.0),
        None => blake3::Hasher::new_derive_key(CONTEXT),
    };
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
        assert_eq!(bucket_of("ward", "ICU", 1024, None), bucket_of("ward", "ICU", 1024, None));
        assert!(bucket_of("ward", "ICU", 1024, None) < 1024);
        assert_eq!(bucket_of("ward", "ICU", 1, None), 0);
        // Over many values, the column name changes most buckets.
        let differ = (0..200)
            .filter(|i| bucket_of("a", &i.to_string(), 1024, None) != bucket_of("b", &i.to_string(), 1024, None));
        assert!(differ.count() > 190);
        // The length prefix separates the column from the value.
        let pairs = (0..200).filter(|i| {
            bucket_of("ab", &format!("c{i}"), 1 << 16, None) == bucket_of("a", &format!("bc{i}"), 1 << 16, None)
        });
        assert!(pairs.count() < 5);
    }

    #[test]
    fn a_key_changes_the_buckets_and_only_its_holders_can_compute_them() {
        let key = BucketKey::generate().unwrap();
        let other = BucketKey::generate().unwrap();
        assert_ne!(key, other);
        let codes: Vec<String> = (0..500).map(|i| format!("{}", 250 + i)).collect();
        let keyed: Vec<u32> = codes.iter().map(|c| bucket_of("diag_1", c, 4096, Some(&key))).collect();
        let again: Vec<u32> = codes.iter().map(|c| bucket_of("diag_1", c, 4096, Some(&key))).collect();
        assert_eq!(keyed, again, "the same key, the same buckets");
        // A dictionary attack without the key (unkeyed, or another key) matches about 1 in 4096.
        for guess in [None, Some(&other)] {
            let matches = codes.iter().zip(&keyed).filter(|(c, b)| bucket_of("diag_1", c, 4096, guess) == **b);
            assert!(matches.count() < 5);
        }
    }

    #[test]
    fn keys_round_trip_through_hex_and_bad_text_is_refused_without_echoing_it() {
        let key = BucketKey::generate().unwrap();
        assert_eq!(BucketKey::from_hex(&format!("  {}\n", key.to_hex())).unwrap(), key);
        assert_eq!(key.fingerprint().len(), 16);
        assert_ne!(key.fingerprint(), BucketKey::generate().unwrap().fingerprint());
        assert!(!format!("{key:?}").contains(&key.to_hex()), "Debug shows the fingerprint only");
        let short = BucketKey::from_hex("abcd").unwrap_err().to_string();
        assert!(short.contains("64 hex digits") && short.contains("4 characters"), "{short}");
        let secret = format!("{}zz", &key.to_hex()[..62]);
        let error = BucketKey::from_hex(&secret).unwrap_err().to_string();
        assert!(error.contains("not a hex digit") && !error.contains(&secret), "{error}");
        let missing = BucketKey::read(std::path::Path::new("/nonexistent/top_k.key")).unwrap_err().to_string();
        assert!(missing.contains("/nonexistent/top_k.key"), "{missing}");
    }
}
