//! Hospital-held identities: a hospital's public key (ECDSA P-256, the key of its mTLS
//! certificate) and fingerprint, the [`Signer`] that holds its private key (the shell's: signing
//! draws randomness, which this crate never reads), and statements signed with it.
//!
//! Guarantees:
//! - A private key stays behind the [`Signer`] the shell hands in; the aggregator relays signed
//!   statements and cannot make one in a hospital's name.
//! - A [`Fingerprint`] is SHA-256 of the key's DER `SubjectPublicKeyInfo`, the usual public key
//!   pin (`openssl pkey -pubout -outform DER | sha256sum` gives the same hex).
//! - Every signature covers a domain string and the statement's exact bytes; a statement names
//!   its federation, session, session kind and CRS, so one signed for another round, federation
//!   or step never verifies as this one (the caller compares those fields).

use core::fmt;

use ring::signature::ECDSA_P256_SHA256_FIXED;
use serde::{Deserialize, Serialize};

use crate::error::{Error, TrustError};
pub use crate::ids::Fingerprint;
use crate::ids::NodeId;

/// The DER prefix of a P-256 `SubjectPublicKeyInfo` before its 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// What every signature signs before the statement's bytes.
pub const DOMAIN: &[u8] = b"fedcare/statement/v1\0";

/// A public signing key: the uncompressed P-256 point (65 bytes).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey(#[serde(with = "serde_bytes")] Vec<u8>);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl PublicKey {
    /// The key of an uncompressed P-256 point (65 bytes; a malformed one never verifies).
    pub fn from_point(point: Vec<u8>) -> Self {
        Self(point)
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        context.update(&P256_SPKI_PREFIX);
        context.update(&self.0);
        let mut out = [0u8; 32];
        out.copy_from_slice(context.finish().as_ref());
        Fingerprint(out)
    }

    /// Whether `signature` signs `message` under this key.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        let signed = [DOMAIN, message].concat();
        ring::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.0).verify(&signed, signature).is_ok()
    }
}

/// What holds a hospital's private key and signs with it. The shell implements it (ECDSA P-256
/// signing draws a nonce from the operating system); a failure of its random source is an error,
/// never a signature made without it.
pub trait Signer: Send + Sync + fmt::Debug {
    /// The public key.
    fn public_key(&self) -> PublicKey;

    /// A signature of `message` (fixed-size r‖s), exactly as given: [`Signed::new`] puts
    /// [`DOMAIN`] before the statement's bytes.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String>;
}

/// A statement's bytes, signed by the node it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// Who signed.
    pub signer: NodeId,
    /// Its public key (checked against a roster's fingerprint by the receiver).
    pub public_key: PublicKey,
    /// The statement, as its signer encoded it.
    #[serde(with = "serde_bytes")]
    pub message: Vec<u8>,
    /// The signature of `message`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl Signed {
    /// `message` signed by `signer` with `key`, under [`DOMAIN`].
    pub fn new(signer: NodeId, key: &dyn Signer, message: Vec<u8>) -> Result<Self, Error> {
        let signature = key.sign(&[DOMAIN, &message].concat()).map_err(Error::Sign)?;
        Ok(Self { signer, public_key: key.public_key(), signature, message })
    }

    /// Whether the signature verifies under the key it carries (the roster check is the
    /// receiver's).
    pub fn verify(&self) -> core::result::Result<(), TrustError> {
        if self.public_key.verifies(&self.message, &self.signature) {
            Ok(())
        } else {
            Err(TrustError::BadSignature { signer: self.signer.clone() })
        }
    }
}
