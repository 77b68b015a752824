//! The 32-byte values a session's statements bind, one type each: a transcript digest cannot be
//! passed where a state digest, a challenge seed or a nonce belongs. Each serializes exactly as
//! its 32 bytes (`serde(transparent)`), so the signed statements, the checkpoint and the proto
//! messages carry the same bytes a bare array did. This module imports no other of the crate.

use core::fmt;

use serde::{Deserialize, Serialize};

macro_rules! digest_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            /// The type and the first 8 bytes in hex: enough to tell two apart in a log.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "("))?;
                self.0[..8].iter().try_for_each(|b| write!(f, "{b:02x}"))?;
                f.write_str("…)")
            }
        }
    };
}

digest_type! {
    /// BLAKE3 of the federation settings' wire form: every hospital and the aggregator compute
    /// it from the same bytes ([`crate::convert::settings_digest`]).
    SettingsDigest
}

digest_type! {
    /// The digest a hospital commits to its public key share with before any share is revealed
    /// ([`crate::transcript::key_share_digest`]).
    KeyShareDigest
}

digest_type! {
    /// The digest of everything a round depends on ([`crate::transcript::transcript_digest`]).
    TranscriptDigest
}

digest_type! {
    /// The digest of what a federation's state holds between sessions: model, server state,
    /// public figures ([`crate::transcript::state_content`]).
    StateContent
}

digest_type! {
    /// The digest of a federation's state in its chain: its content and the digest of the state
    /// the session that made it started from ([`crate::transcript::state_digest`]), so one digest
    /// names a state and every state before it.
    StateDigest
}

digest_type! {
    /// The digest hospitals endorse of a model file ([`crate::transcript::file_digest`]).
    FileDigest
}

digest_type! {
    /// The digest of an aggregate's masks, to which every decryption share is bound
    /// (`fedcare_crypto::AggregateMasks::digest`).
    MasksDigest
}

digest_type! {
    /// The digest of a decrypted sum, to which every hospital commits before the output challenge
    /// is drawn (`fedcare_crypto::DecryptedSum::digest`).
    SumDigest
}

digest_type! {
    /// The seed of a joint challenge, drawn from the transcript, what it checks and every
    /// participant's [`Nonce`] ([`crate::transcript::challenge_seed`]).
    ChallengeSeed
}

digest_type! {
    /// 32 fresh random bytes a hospital commits to a challenge, from the shell's random source.
    Nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_its_bytes_and_shows_its_kind() {
        let digest = StateDigest([7; 32]);
        let bytes = postcard::to_allocvec(&digest).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&[7u8; 32]).unwrap());
        assert_eq!(postcard::from_bytes::<StateDigest>(&bytes).unwrap(), digest);
        assert_eq!(format!("{digest:?}"), "StateDigest(0707070707070707…)");
    }
}
