//! The error type of the threshold-encryption layer.
//!
//! Variants carry the values that failed. Caller misuse (a spent key share, a configuration the
//! noise budget cannot carry) is kept apart from bad peer data (a message of another round,
//! another parameter set, the wrong size, or bytes that do not decode).

use super::keys::PartyId;

/// Everything that can go wrong in `fedcare-crypto`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    // --- configuration and caller misuse ---------------------------------------------------
    /// The party count is outside what the parameter set supports.
    #[error("{parties} parties: the parameter set {params} supports 1..={max}")]
    PartyCount {
        /// Parties asked for.
        parties: usize,
        /// The parameter set's maximum.
        max: usize,
        /// The parameter set's name.
        params: &'static str,
    },
    /// The worst-case noise of a configuration could make decoding wrong.
    #[error("noise budget exceeded: worst case 2^{worst_case_log2:.2} >= limit 2^{limit_log2} for {parties} parties")]
    NoiseBudget {
        /// Parties in the configuration.
        parties: usize,
        /// log2 of the worst-case total noise.
        worst_case_log2: f64,
        /// log2 of the largest noise that still decodes correctly (Δ/2).
        limit_log2: u32,
    },
    /// The codec's plaintext space or party count does not match the parameter set.
    #[error("codec mismatch: {what} is {got}, the parameter set requires {expected}")]
    CodecMismatch {
        /// Which setting.
        what: &'static str,
        /// What the parameter set requires.
        expected: u32,
        /// What the codec has.
        got: u32,
    },
    /// A plaintext word does not fit the plaintext space.
    #[error("plaintext word {index} = {word} does not fit {bits} bits")]
    WordOutOfRange {
        /// Index of the word.
        index: usize,
        /// The word.
        word: u64,
        /// Bits of the plaintext space.
        bits: u32,
    },
    /// A vector of no values was to be encrypted.
    #[error("nothing to encrypt: the vector is empty")]
    EmptyPlaintext,
    /// This party's key share has already made its one decryption share.
    #[error("this key share has already made its decryption share; reusing it would leak it")]
    KeyShareSpent,
    /// This party has already encrypted its contribution under this round's key.
    #[error("this party has already encrypted its contribution for this round")]
    AlreadyContributed,
    /// A decryption share was asked for an aggregate that does not contain this party's contribution.
    #[error("the aggregate does not contain this party's own contribution")]
    OwnContributionMissing,
    /// A decryption share was asked for an aggregate with too few contributors.
    #[error("the aggregate has {contributors} contributors, at least {min} are required")]
    TooFewContributors {
        /// Contributors in the aggregate.
        contributors: usize,
        /// The minimum.
        min: usize,
    },
    /// A party id is empty or too long.
    #[error("party id must be 1..={max} bytes, got {len}")]
    PartyIdLength {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },

    // --- bad peer data ---------------------------------------------------------------------
    /// A message belongs to another round (another CRS seed).
    #[error("message made for another round's CRS")]
    WrongCrs,
    /// A message names another parameter set.
    #[error("message made under parameter set {got}, this federation uses {expected}")]
    WrongParams {
        /// This federation's parameter set id.
        expected: u16,
        /// The message's.
        got: u16,
    },
    /// A message names a parameter set this build does not know.
    #[error("parameter set {0} is not known to this build of fedcare")]
    UnknownParams(u16),
    /// A message has another kind than expected.
    #[error("expected a {expected} message, got kind {got}")]
    WrongKind {
        /// The expected kind.
        expected: &'static str,
        /// The kind byte found.
        got: u8,
    },
    /// The message's envelope is not a crypto message of this format version, or is truncated
    /// or corrupted (its checksum does not match).
    #[error("crypto message envelope: {0}")]
    Envelope(fedcare_core::Error),
    /// A message is larger than the decode limit.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Its size (or claimed size).
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A message ends early.
    #[error("message truncated: {needed} bytes needed, {got} present")]
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        got: u64,
    },
    /// Bytes follow the end of a message.
    #[error("{count} unexpected bytes after the message")]
    TrailingBytes {
        /// Extra bytes.
        count: usize,
    },
    /// A field holds a value no valid message has.
    #[error("malformed message: {0}")]
    Malformed(&'static str),
    /// Two vectors that must have the same length do not.
    #[error("length mismatch: expected {expected} values, got {got}")]
    LengthMismatch {
        /// Expected length.
        expected: usize,
        /// Length found.
        got: usize,
    },
    /// A party contributed twice to the same aggregate (or sent two shares).
    #[error("duplicate message from party {0}")]
    Duplicate(PartyId),
    /// A message came from a party that is not part of this aggregate or key.
    #[error("party {0} is not part of this aggregate")]
    UnknownParty(PartyId),
    /// A decryption share is missing for a contributor.
    #[error("no decryption share from contributor {0}")]
    MissingShare(PartyId),
    /// A decryption share was made for another aggregate.
    #[error("decryption share from {0} was made for another aggregate")]
    ForeignAggregate(PartyId),
    /// A party in the collective key sent no ciphertext: the aggregate could never be decrypted
    /// (every key share is needed), so the round must restart with fresh keys.
    #[error("party {0} holds a key share but contributed no ciphertext")]
    MissingContribution(PartyId),
    /// A streamed contribution failed after part of it was added: the sum is lost.
    #[error("the round's sum is broken: {0}")]
    BrokenAggregate(String),
    /// The aggregate's contributors are not exactly the parties of the round's collective key.
    #[error("the aggregate's contributors are not the round's key holders")]
    ContributorsMismatch,
    /// The collective key does not include this party's key share.
    #[error("the collective key does not include this party's key share")]
    OwnKeyShareMissing,

    /// The collective key to encrypt under is not the one this party summed from the shares.
    #[error("the collective key is not the sum of the relayed key shares this party checked")]
    UnverifiedKey,

    /// The aggregate masks are not the sum of the contributors' masks.
    #[error(
        "the aggregate masks are not the sum of the contributions' masks (their fingerprints differ): refusing to decrypt"
    )]
    ForgedMasks,
    /// The decrypted sum is not what the contributions and decryption shares give.
    #[error(
        "the decrypted sum is not the contributions' bodies minus the decryption shares (their fingerprints differ): refusing the result"
    )]
    ForgedSum,
    /// An output check before this party made its decryption share.
    #[error("this party has not made its decryption share of this round")]
    OwnShareMissing,
    /// The crypto threads cannot be set up (the pool exists already, or the OS refused a thread).
    #[error("cannot set up {threads} crypto threads: {message}")]
    Threads {
        /// Threads asked for.
        threads: usize,
        /// rayon's reason.
        message: String,
    },
    /// Decoding the combined plaintext failed (a corrupted or incomplete aggregate).
    #[error("the combined plaintext does not decode: {0}")]
    Decode(#[from] fedcare_core::Error),
    /// The caller's random source failed: no key, encryption or noise is drawn in its place.
    #[error("the random source failed: {0}")]
    Random(String),
}
