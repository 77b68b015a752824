//! A hospital's signing key: the private key of its mTLS certificate (ECDSA P-256), read from
//! its own key file, which signs the protocol's statements ([`fedcare_protocol::signing`]) as
//! their [`Signer`].
//!
//! Guarantees:
//! - A private key is read from the hospital's own key file and never leaves this process.
//! - Signing fails with an error when the operating system's random source fails: no signature
//!   is made without a fresh nonce.

use core::fmt;
use std::path::Path;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};

pub use fedcare_protocol::signing::{DOMAIN, Fingerprint, PublicKey, Signed, Signer};

use crate::error::{FederationError, Result};

/// A hospital's private signing key (the key of its mTLS certificate).
pub struct SigningKey {
    pair: EcdsaKeyPair,
    random: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public_key().fingerprint())
    }
}

impl SigningKey {
    /// The key in a PEM file (PKCS#8, ECDSA P-256, as `fedcare keygen` and `fedcare certs` write).
    pub fn from_pem_file(path: &Path) -> Result<Self> {
        let pem = std::fs::read_to_string(path)
            .map_err(|source| FederationError::Read { path: path.to_path_buf(), source })?;
        Self::from_pem(&pem).map_err(|why| FederationError::Tls(format!("{}: {why}", path.display())))
    }

    /// The key in PEM text.
    pub fn from_pem(pem: &str) -> core::result::Result<Self, String> {
        let key = rcgen::KeyPair::from_pem(pem).map_err(|e| format!("not a private key: {e}"))?;
        let random = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der(), &random)
            .map_err(|e| format!("not an ECDSA P-256 key ({e}); make one with `fedcare keygen`"))?;
        Ok(Self { pair, random })
    }
}

impl Signer for SigningKey {
    fn public_key(&self) -> PublicKey {
        PublicKey::from_point(self.pair.public_key().as_ref().to_vec())
    }

    fn sign(&self, message: &[u8]) -> core::result::Result<Vec<u8>, String> {
        self.pair
            .sign(&self.random, message)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| "ECDSA signing failed: the operating system's random source is unavailable".to_owned())
    }
}

/// The fingerprint of the public key in a PEM certificate.
pub fn certificate_fingerprint(pem: &[u8]) -> core::result::Result<Fingerprint, String> {
    let (_, der) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der.contents).map_err(|e| format!("unreadable: {e}"))?;
    Ok(PublicKey::from_point(cert.public_key().subject_public_key.data.to_vec()).fingerprint())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_unchanged_and_fingerprints_are_the_spki_pin() {
        let pair = rcgen::KeyPair::generate().unwrap();
        let key = SigningKey::from_pem(&pair.serialize_pem()).unwrap();
        let spki = rcgen::PublicKeyData::subject_public_key_info(&pair);
        let pin: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, &spki).as_ref().try_into().unwrap();
        assert_eq!(key.public_key().fingerprint(), Fingerprint(pin));
        let fingerprint = key.public_key().fingerprint();
        assert_eq!(fingerprint.to_string().parse::<Fingerprint>().unwrap(), fingerprint);
        assert!("sha256:00".parse::<Fingerprint>().is_err());

        let signed = Signed::new(fedcare_protocol::NodeId::new("a").unwrap(), &key, b"round 3".to_vec()).unwrap();
        signed.verify().unwrap();
        let mut changed = signed.clone();
        changed.message[0] ^= 1;
        assert!(changed.verify().is_err());
        let other = SigningKey::from_pem(&rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
        let mut foreign_key = signed.clone();
        foreign_key.public_key = other.public_key();
        assert!(foreign_key.verify().is_err());
        assert!(SigningKey::from_pem("not a key").is_err());
    }
}
